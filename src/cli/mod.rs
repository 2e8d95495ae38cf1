//! Command-line interface: clap argument types (one file per command) and the rendering of
//! errors and exit codes. No engine logic lives here.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// `println!` that never panics: a closed standard output (`fixci ... | head`) is ignored, as
/// ripgrep and git do, instead of aborting the command.
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

/// `print!` that never panics on a closed standard output.
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($t)*);
    }};
}

/// `eprintln!` that never panics on a closed standard error.
macro_rules! errln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

/// `eprint!` that never panics on a closed standard error.
macro_rules! err {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($t)*);
    }};
}

pub mod apply;
pub mod ci;
pub mod clean;
pub mod doctor;
pub mod kill;
pub mod list;
pub mod logs;
pub mod peek;
pub mod replay;
pub mod resume;
pub mod retry;
pub mod run;
pub mod schema;
pub mod status;
pub mod stress;
pub mod validate;

/// fixci: turn a red CI run into a verified fix proposal.
#[derive(Debug, Parser)]
#[command(name = "fixci", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a pipeline on a job spec: reproduce, fix, verify, propose.
    Run(run::RunArgs),
    /// Validate job specs and pipeline files.
    Validate(validate::ValidateArgs),
    /// Continue an interrupted run at its first unfinished stage.
    Resume(resume::ResumeArgs),
    /// Start a new run from an ended one, with its reproduction and a steer.
    Retry(retry::RetryArgs),
    /// List runs: status, stage, attempts, age.
    List(list::ListArgs),
    /// Show one run in detail.
    Status(status::StatusArgs),
    /// Show the agent's worklog and the tail of the current stage's output.
    Peek(peek::PeekArgs),
    /// Stop a run started from another terminal.
    Kill(kill::KillArgs),
    /// Remove runs, their worktrees and unproposed branches.
    Clean(clean::CleanArgs),
    /// Create a branch with a run's fix in a checkout.
    Apply(apply::ApplyArgs),
    /// Print the JSON Schema of a job spec or a pipeline.
    Schema(schema::SchemaArgs),
    /// Fetch and distil a CI log: failing tests, failure signature, excerpt.
    Logs(logs::LogsArgs),
    /// Run a command many times in parallel; failure rate with its interval.
    Stress(stress::StressArgs),
    /// Check git, the agent CLIs and their flags, test runners and the GitHub token.
    Doctor(doctor::DoctorArgs),
    /// Replay a corpus of past failures to measure variants' success rates.
    Replay(replay::ReplayArgs),
}

/// Parses the process arguments, runs the command and returns its exit code.
pub fn main() -> ExitCode {
    // Processes that escape their group (`setsid`, double fork) stay fixci's descendants, so
    // they can be found and killed (src/process/reaper.rs).
    crate::process::reaper::become_subreaper();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(a) => run::execute(a),
        Command::Validate(a) => validate::execute(a),
        Command::Schema(a) => schema::execute(a),
        Command::Resume(a) => resume::execute(a),
        Command::Retry(a) => retry::execute(a),
        Command::List(a) => list::execute(a),
        Command::Status(a) => status::execute(a),
        Command::Peek(a) => peek::execute(a),
        Command::Kill(a) => kill::execute(a),
        Command::Clean(a) => clean::execute(a),
        Command::Apply(a) => apply::execute(a),
        Command::Logs(a) => logs::execute(a),
        Command::Stress(a) => stress::execute(a),
        Command::Doctor(a) => doctor::execute(a),
        Command::Replay(a) => replay::execute(a),
    };
    // Nothing fixci started outlives it, whatever path it leaves by.
    crate::process::reaper::reap_descendants();
    // Sealed trees are removed in the background once dropped (interrupted runs drop theirs
    // while unwinding): none is left behind when fixci exits.
    crate::verify::sealed::wait_for_removals();
    finish(result)
}

/// Prints an error (if any) to stderr and converts the outcome to an exit code.
pub fn finish(result: crate::error::Result<u8>) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            err!("{}", e.render());
            ExitCode::from(e.exit_code())
        }
    }
}
