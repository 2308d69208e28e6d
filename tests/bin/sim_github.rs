//! The simulated GitHub (tests/support/gitfake.rs: its REST API on loopback, a real sshd git
//! server in a network namespace) as a program, for the VS Code suite and the benchmarks:
//! `sim-github [--repo OWNER/NAME]…` (default acme/app). Prints `api URL`, `token TOKEN`, then
//! `repo SLUG SSH_URL BARE_DIR` per repository and `ready`; serves until its standard input
//! closes, then removes its namespace, sshd and its line in $SANDBOX_HOME/git_known_hosts.
use std::io::{Read, Write};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut repos: Vec<&str> =
        args.iter().zip(args.iter().skip(1)).filter(|(a, _)| *a == "--repo").map(|(_, r)| r.as_str()).collect();
    if repos.is_empty() {
        repos.push("acme/app");
    }
    let gh = sandbox_e2e::gitfake::GitHub::start(&repos);
    let mut out = std::io::stdout().lock();
    for (k, v) in gh.env() {
        let key = if k == "SANDBOX_GITHUB_API" { "api" } else { "token" };
        let _ = writeln!(out, "{key} {v}");
    }
    for r in &repos {
        let _ = writeln!(out, "repo {r} {} {}", gh.url(r), gh.repo_dir(r).display());
    }
    let _ = writeln!(out, "ready");
    let _ = out.flush();
    drop(out);
    // Until the caller closes our standard input (or ends).
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    drop(gh);
}
