//! `fixci replay run` and `fixci replay merge`.

use std::path::PathBuf;

use clap::Args;

use crate::error::{Error, Result};

/// Arguments of `fixci replay run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// A corpus folder (one sub-folder per case, each with `case.toml`), a case folder, or a
    /// `case.toml` file.
    pub cases: PathBuf,
    /// A variant: a folder (its `variant.toml`, `pipelines/` and prompt templates) or a TOML
    /// file. Repeat for several variants.
    #[arg(long = "variant", value_name = "DIR_OR_TOML")]
    pub variants: Vec<PathBuf>,
    /// Output folder: `plan.json`, `records/`, `work/`.
    #[arg(long)]
    pub out: PathBuf,
    /// Repetitions of each (case, variant), for pass@k.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub epochs: u32,
    /// Items run at once.
    #[arg(short = 'j', long = "jobs", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs: u32,
    /// Run one shard of the plan: `i/n` (0-based i), or `auto/n` to read the index from
    /// `JOB_COMPLETION_INDEX`, `AWS_BATCH_JOB_ARRAY_INDEX` or `SLURM_ARRAY_TASK_ID`.
    #[arg(long)]
    pub shard: Option<String>,
    /// Skip items whose record already exists in `--out`.
    #[arg(long)]
    pub resume: bool,
    /// Agent for every variant (`gold` applies each case's gold patch: the corpus check).
    #[arg(long)]
    pub agent: Option<String>,
    /// Retries of an item after an infrastructure failure (not after an agent failure).
    #[arg(long, default_value_t = 2)]
    pub retries: u32,
    /// Keep each item's repository clone and worktree (by default only the run directory's
    /// reports and logs are kept).
    #[arg(long)]
    pub keep_work: bool,
}

/// Arguments of `fixci replay merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Replay output folders (shards) to merge.
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// The merged output folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Fail (exit 1) unless every item of the plan has a record.
    #[arg(long)]
    pub require_complete: bool,
}

/// Runs `fixci replay run`.
pub fn execute(_args: RunArgs) -> Result<u8> {
    Err(Error::usage("`fixci replay run` is not built yet"))
}

/// Runs `fixci replay merge`.
pub fn merge(_args: MergeArgs) -> Result<u8> {
    Err(Error::usage("`fixci replay merge` is not built yet"))
}
