//! Progress reporting: engine operations name their steps and stream tool output; each front
//! renders it (CLI: stderr; LSP: work-done progress; API: subscription messages).
use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

pub trait Progress: Send + Sync {
    /// A new step ("Copying golden-base", "Running stacks/base.sh").
    fn step(&self, message: &str);
    /// A line of output from a tool or script running for the current step.
    fn line(&self, _line: &str) {}
}

pub type ProgressRef = Arc<dyn Progress>;

/// Discards everything.
pub struct Silent;
impl Progress for Silent {
    fn step(&self, _: &str) {}
}

/// Prints steps (and optionally output lines) to stderr with elapsed time.
pub struct Stderr {
    start: Instant,
    pub show_lines: bool,
}

impl Stderr {
    pub fn new(show_lines: bool) -> Self {
        Self { start: Instant::now(), show_lines }
    }
}

impl Progress for Stderr {
    fn step(&self, message: &str) {
        tracing::debug!("step: {message}");
        // A closed stderr (`sandbox start x 2>&1 | head -1`) must not stop the operation.
        let _ = writeln!(std::io::stderr(), "[{:>5.1}s] {message}", self.start.elapsed().as_secs_f64());
    }
    fn line(&self, line: &str) {
        if self.show_lines {
            let _ = writeln!(std::io::stderr(), "        │ {line}");
        }
    }
}

/// Splits streamed bytes into lines for `Progress::line`, keeping the last lines for errors.
pub struct LineSplitter {
    buf: Vec<u8>,
    tail: std::collections::VecDeque<String>,
    keep: usize,
}

impl LineSplitter {
    pub fn new(keep: usize) -> Self {
        Self { buf: Vec::new(), tail: Default::default(), keep }
    }
    pub fn feed(&mut self, data: &[u8], mut emit: impl FnMut(&str)) {
        self.buf.extend_from_slice(data);
        while let Some(pos) = self.buf.iter().position(|&b| b == b'\n' || b == b'\r') {
            let line: Vec<u8> = self.buf.drain(..=pos).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]).trim_end().to_string();
            if !text.is_empty() {
                emit(&text);
                self.push_tail(text);
            }
        }
    }
    pub fn finish(&mut self, emit: impl FnOnce(&str)) {
        if !self.buf.is_empty() {
            let text = String::from_utf8_lossy(&self.buf).trim_end().to_string();
            self.buf.clear();
            if !text.is_empty() {
                emit(&text);
                self.push_tail(text);
            }
        }
    }
    fn push_tail(&mut self, line: String) {
        self.tail.push_back(line);
        while self.tail.len() > self.keep {
            self.tail.pop_front();
        }
    }
    pub fn tail(&self) -> Vec<String> {
        self.tail.iter().cloned().collect()
    }
}
