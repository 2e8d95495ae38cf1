//! `fixci clean`: remove run directories, their worktrees, and fix branches that were never
//! proposed.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::run_dir::{self, RunDir, RunState};
use crate::error::{Error, Result};

/// Remove runs: their run directory, their worktree, and their branch unless a PR was proposed
/// or opened for it. Refuses runs that are still running.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["run", "older", "all"])))]
pub struct CleanArgs {
    /// Run id, unique prefix, or `last`
    pub run: Option<String>,
    /// Every run that started longer ago than this (e.g. `7d`, `12h`)
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub older: Option<Duration>,
    /// Every run
    #[arg(long)]
    pub all: bool,
    /// Folder holding run directories (default: `./outputs`)
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Runs `fixci clean`; returns the exit code.
pub fn execute(args: CleanArgs) -> Result<u8> {
    let out = super::resume::out_dir(&args.out);
    let targets: Vec<(RunDir, RunState)> = if let Some(r) = &args.run {
        vec![run_dir::find(&out, r)?]
    } else {
        run_dir::all(&out)
            .into_iter()
            .filter(|(d, s)| {
                args.all
                    || args
                        .older
                        .is_some_and(|o| d.summary(s).age_s as u64 >= o.as_secs())
            })
            .collect()
    };
    let running: Vec<String> = targets
        .iter()
        .filter(|(d, _)| d.live_pid().is_some())
        .map(|(_, s)| s.run_id.clone())
        .collect();
    if !running.is_empty() {
        return Err(Error::usage(format!(
            "refusing to clean {} running run(s)",
            running.len()
        ))
        .details(running)
        .hint("stop them first with `fixci kill RUN`"));
    }
    for (dir, st) in &targets {
        let kept = dir.remove(st)?;
        outln!("removed {}{}", st.run_id, kept);
    }
    if targets.is_empty() {
        let _ = writeln!(std::io::stderr(), "nothing to clean in `{}`", out.display());
    }
    Ok(0)
}
