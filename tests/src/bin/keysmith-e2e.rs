//! The `keysmith` command line, built inside the test crate so that its tests
//! can start it as a process (`CARGO_BIN_EXE_keysmith-e2e`): the same
//! `keysmith::cli::main` the real binary runs.

fn main() -> std::process::ExitCode {
    keysmith::cli::main()
}
