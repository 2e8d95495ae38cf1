//! `fixci stress`: run a command many times in parallel and estimate its failure rate.

/// Run a command repeatedly in parallel; report the failure rate with its interval.
#[derive(Debug, clap::Args)]
pub struct StressArgs {
    /// The command to run, after `--`.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// Runs `fixci stress`; returns the exit code.
pub fn execute(args: StressArgs) -> crate::error::Result<u8> {
    Err(crate::error::Error::usage(format!(
        "`fixci stress` is not available in this build (command: {:?})",
        args.command
    )))
}
