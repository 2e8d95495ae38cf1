//! The `fixci` binary: parse arguments, run, turn the outcome into an exit code.

fn main() -> std::process::ExitCode {
    // First, before any thread: the forge token leaves the environment (fixci re-executes
    // itself without it) and fixci becomes non-dumpable.
    fixci::forge::seal_process();
    fixci::cli::main()
}
