//! The simulated Anthropic Messages API (tests/support/anthropic.rs) as a program, for the
//! VS Code suite and the benchmark: `sim-anthropic --listen ADDR [--log FILE] [--text TEXT]`.
//! Prints its URL on the first line once it accepts connections; every request is appended to
//! FILE as one JSON line. Runs until killed.
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let listen = arg("--listen").unwrap_or_else(|| "127.0.0.1:0".into());
    let text = arg("--text").unwrap_or_else(|| "pong from the simulated API".into());
    let log = arg("--log").map(std::path::PathBuf::from);
    let listener = std::net::TcpListener::bind(&listen).unwrap_or_else(|e| {
        eprintln!("sim-anthropic: cannot listen on {listen}: {e}");
        std::process::exit(1)
    });
    let sim = sandbox_e2e::anthropic::Sim::serve(listener, &text, log);
    println!("{}", sim.url);
    use std::io::Write;
    let _ = std::io::stdout().flush();
    loop {
        std::thread::park();
    }
}
