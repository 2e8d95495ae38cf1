//! `fixci clean`: remove run directories (with their private clones), fix branches that were
//! never proposed, and the registered worktrees of runs made before fixci used private clones.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::engine::{self, RunState, runs};
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
    let targets: Vec<(PathBuf, RunState)> = if let Some(r) = &args.run {
        vec![runs::find(&out, r)?]
    } else {
        runs::all(&out)
            .into_iter()
            .filter(|(d, s)| {
                args.all
                    || args
                        .older
                        .is_some_and(|o| runs::summary(d, s).age_s as u64 >= o.as_secs())
            })
            .collect()
    };
    let running: Vec<String> = targets
        .iter()
        .filter(|(d, _)| engine::live_pid(d).is_some())
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
        let kept = remove_run(dir, st)?;
        outln!("removed {}{}", st.run_id, kept);
    }
    if targets.is_empty() {
        let _ = writeln!(std::io::stderr(), "nothing to clean in `{}`", out.display());
    }
    Ok(0)
}

/// Removes a run's worktree, its unproposed branch and its directory; returns a note on what was
/// kept.
fn remove_run(dir: &std::path::Path, st: &RunState) -> Result<String> {
    let mut note = String::new();
    if let Ok(repo) = crate::vcs::open(&st.repo.root) {
        let name = st.run_id.replace('.', "-");
        if let Ok(wt) = repo.find_worktree(&name) {
            let mut opts = git2::WorktreePruneOptions::new();
            opts.valid(true).working_tree(true).locked(false);
            wt.prune(Some(&mut opts))
                .map_err(|e| Error::infra(format!("cannot remove worktree `{name}`")).source(e))?;
        }
        if let Some(b) = &st.branch {
            if st.pr.is_none() {
                if let Ok(mut br) = repo.find_branch(b, git2::BranchType::Local) {
                    br.delete().map_err(|e| {
                        Error::infra(format!("cannot delete branch `{b}`")).source(e)
                    })?;
                }
            } else {
                note = format!(" (kept branch `{b}`: it was proposed)");
            }
        }
    }
    std::fs::remove_dir_all(dir).map_err(|e| crate::error::io_error("remove", dir, e))?;
    Ok(note)
}
