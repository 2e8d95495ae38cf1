//! `fixci replay`: run a case corpus through the engine, merge shard outputs, report success
//! rates, compare two variants, emit cluster manifests.

use clap::{Args, Subcommand};

use crate::error::Result;

pub mod compare;
pub mod emit;
pub mod report;
mod run;

/// `fixci replay SUBCOMMAND`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[command(subcommand)]
    pub command: ReplayCommand,
}

/// The replay subcommands.
#[derive(Debug, Subcommand)]
pub enum ReplayCommand {
    /// Replay cases with one or more variants; one record per (case, variant, epoch).
    Run(run::RunArgs),
    /// Merge the output folders of several shards into one, deduplicating by key.
    Merge(run::MergeArgs),
    /// Success rate per variant with intervals, pass@k, funnel and cost (Markdown, JSON, HTML).
    Report(report::ReportArgs),
    /// Paired comparison of two variants on their common cases (exact McNemar test).
    Compare(compare::CompareArgs),
    /// Print a Kubernetes Indexed Job or a GitHub Actions matrix workflow that runs the shards.
    Emit(emit::EmitArgs),
}

/// Runs `fixci replay ...`; returns the exit code.
pub fn execute(args: ReplayArgs) -> Result<u8> {
    match args.command {
        ReplayCommand::Run(a) => run::execute(a),
        ReplayCommand::Merge(a) => run::merge(a),
        ReplayCommand::Report(a) => report::execute(a),
        ReplayCommand::Compare(a) => compare::execute(a),
        ReplayCommand::Emit(a) => emit::execute(a),
    }
}
