//! Our entries in a file the user owns too (`~/.sandbox/ssh_config`, `known_hosts`), edited as
//! bytes: a block from `# BEGIN sandbox NAME` to `# END sandbox NAME` is ours; every other byte of
//! the file — a line that is not UTF-8, a line without a final newline, CRLF — stays exactly as it
//! was. A block whose END is missing cannot be told apart from what follows it, so it is never
//! edited: the caller leaves the file as it is and says so.
use std::ops::Range;

/// NAME's block has a BEGIN line and no END line (before the file ends or the next block begins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    pub name: String,
}

pub fn begin(name: &str) -> String {
    format!("# BEGIN sandbox {name}")
}

pub fn end(name: &str) -> String {
    format!("# END sandbox {name}")
}

/// Each line with its line end, and where it starts.
fn lines(text: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    text.split_inclusive(|b| *b == b'\n').scan(0, |at, l| {
        let start = *at;
        *at += l.len();
        Some((start, l))
    })
}

/// A line without its line end (`\n` or `\r\n`).
fn body(line: &[u8]) -> &[u8] {
    let l = line.strip_suffix(b"\n").unwrap_or(line);
    l.strip_suffix(b"\r").unwrap_or(l)
}

/// The name a BEGIN line opens a block for.
fn begun(line: &[u8]) -> Option<&[u8]> {
    body(line).strip_prefix(b"# BEGIN sandbox ")
}

/// Byte ranges of NAME's blocks (END line included).
fn ranges(text: &[u8], name: &str) -> Result<Vec<Range<usize>>, Malformed> {
    let (open, close) = (begin(name), end(name));
    let mut out = Vec::new();
    let mut current: Option<usize> = None;
    for (at, line) in lines(text) {
        match current {
            None if body(line) == open.as_bytes() => current = Some(at),
            Some(start) if body(line) == close.as_bytes() => {
                out.push(start..at + line.len());
                current = None;
            }
            Some(_) if begun(line).is_some() => return Err(Malformed { name: name.to_string() }),
            _ => {}
        }
    }
    match current {
        Some(_) => Err(Malformed { name: name.to_string() }),
        None => Ok(out),
    }
}

/// `text` without NAME's blocks; every other byte kept.
pub fn without(text: &[u8], name: &str) -> Result<Vec<u8>, Malformed> {
    let mut out = Vec::with_capacity(text.len());
    let mut from = 0;
    for r in ranges(text, name)? {
        out.extend_from_slice(&text[from..r.start]);
        from = r.end;
    }
    out.extend_from_slice(&text[from..]);
    Ok(out)
}

/// `text` with `block` (its lines, each ending in `\n`) appended after a last line that may lack
/// its newline.
pub fn append(mut text: Vec<u8>, block: &str) -> Vec<u8> {
    if !text.is_empty() && !text.ends_with(b"\n") {
        text.push(b'\n');
    }
    text.extend_from_slice(block.as_bytes());
    text
}

/// Whether NAME has a block (complete or not).
pub fn has(text: &[u8], name: &str) -> bool {
    lines(text).any(|(_, l)| begun(l) == Some(name.as_bytes()))
}

/// The names of every block in `text` (valid UTF-8 names only), in order.
pub fn names(text: &[u8]) -> Vec<String> {
    lines(text).filter_map(|(_, l)| std::str::from_utf8(begun(l)?).ok().map(str::to_owned)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &[u8] = b"# header\nHost mine\n  Port 1\n# BEGIN sandbox a\nHost a\n# END sandbox a\n\
# caf\xe9 (a note)\n# BEGIN sandbox b\r\nHost b\r\n# END sandbox b\r\nno newline at the end";

    #[test]
    fn only_the_named_block_goes_and_every_other_byte_stays() {
        let t = without(TEXT, "a").unwrap();
        assert_eq!(
            t,
            b"# header\nHost mine\n  Port 1\n# caf\xe9 (a note)\n# BEGIN sandbox b\r\nHost b\r\n# END sandbox b\r\nno newline at the end"
        );
        let t = without(&t, "b").unwrap();
        assert_eq!(t, b"# header\nHost mine\n  Port 1\n# caf\xe9 (a note)\nno newline at the end");
        assert_eq!(without(TEXT, "zz").unwrap(), TEXT, "no block: unchanged");
        assert_eq!(names(TEXT), ["a", "b"]);
        assert!(has(TEXT, "b") && !has(TEXT, "ab"));
    }

    #[test]
    fn a_block_without_its_end_is_never_edited() {
        let broken = b"# BEGIN sandbox a\nHost a\n# BEGIN sandbox b\nHost b\n# END sandbox b\nmine\n";
        assert_eq!(without(broken, "a"), Err(Malformed { name: "a".into() }));
        // Another name's block is still found; a's is left as it is.
        assert_eq!(without(broken, "b").unwrap(), b"# BEGIN sandbox a\nHost a\nmine\n");
        assert!(without(b"x\n# BEGIN sandbox a\nHost a\n", "a").is_err(), "END missing at the end of the file");
    }

    #[test]
    fn appending_after_a_last_line_without_newline() {
        assert_eq!(append(b"x".to_vec(), "# BEGIN sandbox a\n"), b"x\n# BEGIN sandbox a\n");
        assert_eq!(append(Vec::new(), "y\n"), b"y\n");
        assert_eq!(append(b"x\n".to_vec(), "y\n"), b"x\ny\n");
    }
}
