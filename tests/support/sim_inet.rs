//! `sim-inet`: the egress suites' simulated internet (support/inet.rs) as a process of its own,
//! for suites that are not Rust (tests/vscode/run.sh). Prints `ready UPSTREAM` once it is up and
//! removes it all when its stdin closes (or reaches end of file).
use std::io::Read;

fn main() {
    sandbox_e2e::inet::inet();
    println!("ready {}", sandbox_e2e::inet::UPSTREAM);
    let _ = std::io::Write::flush(&mut std::io::stdout());
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    // exit() runs the atexit hook that takes the namespace, its servers and routes down.
    std::process::exit(0);
}
