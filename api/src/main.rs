//! The `keysmith` binary; everything it does lives in [`keysmith::cli`].

fn main() -> std::process::ExitCode {
    keysmith::cli::main()
}
