//! `sandbox`: the CLI, and (later) `sandbox lsp` and `sandbox serve`.
fn main() -> std::process::ExitCode {
    sandbox_cli::main()
}

mod sandbox_cli {
    pub use sandbox::cli::main;
}
