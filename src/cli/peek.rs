//! `fixci peek`: the agent's worklog and the tail of the current stage's output.

use std::path::PathBuf;

use clap::Args;

use crate::error::{Error, Result};
use crate::run_dir;

/// Show the tail of the current (or last) stage's output: the agent's stdout/stderr, or the
/// newest test run's log.
#[derive(Debug, Args)]
pub struct PeekArgs {
    /// Run id, unique prefix, or `last`
    pub run: String,
    /// Lines to show from each log
    #[arg(long, default_value_t = 40)]
    pub log: usize,
    /// Folder holding run directories (default: `./outputs`)
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Runs `fixci peek`; returns the exit code.
pub fn execute(args: PeekArgs) -> Result<u8> {
    let out = super::resume::out_dir(&args.out);
    let (dir, st) = run_dir::find(&out, &args.run)?;
    let Some(latest) = dir.latest_stage_dir() else {
        return Err(Error::usage(format!(
            "run `{}` has not started a stage yet",
            st.run_id
        )));
    };
    // A running run shows its current stage, even before it wrote anything; an ended one shows
    // the last stage that left output (its final stages, such as the commit, print nothing).
    let running = st.status == crate::run_dir::Status::Running;
    let (stage, shown) = std::iter::once(latest.clone())
        .chain(if running { Vec::new() } else { stage_dirs_newest_first(dir.path()) })
        .map(|d| {
            let files = output_files(&d);
            (d, files)
        })
        .find(|(_, files)| !files.is_empty())
        .unwrap_or((latest, Vec::new()));
    outln!(
        "run {} — {}",
        st.run_id,
        stage.strip_prefix(dir.path()).unwrap_or(&stage).display()
    );
    if shown.is_empty() {
        outln!("(no output yet)");
    }
    for f in shown {
        let text = crate::redact::redact(&crate::process::tail(&f, 64 * 1024));
        outln!(
            "\n--- {} (last {} lines) ---\n{}",
            f.file_name().unwrap_or_default().to_string_lossy(),
            args.log,
            tail_lines(&text, args.log)
        );
    }
    Ok(0)
}

/// Every stage directory of the run (`stages/<id>` and `stages/<id>/attempt-N`), newest first.
fn stage_dirs_newest_first(run: &std::path::Path) -> Vec<PathBuf> {
    let subdirs = |p: &std::path::Path| -> Vec<PathBuf> {
        std::fs::read_dir(p)
            .map(|r| r.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect())
            .unwrap_or_default()
    };
    let mut all: Vec<PathBuf> = Vec::new();
    for stage in subdirs(&run.join("stages")) {
        all.extend(subdirs(&stage));
        all.push(stage);
    }
    all.sort_by_key(|p| std::cmp::Reverse(std::fs::metadata(p).and_then(|m| m.modified()).ok()));
    all
}

/// What `peek` shows of one stage directory: the agent's worklog (`agent.*.log`,
/// `root-cause.md`) first, then the newest other log (a test run's or a command's).
fn output_files(stage: &std::path::Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(stage)
        .map(|r| r.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| {
        p.extension().is_some_and(|e| e == "log")
            || p.file_name().is_some_and(|n| n == "root-cause.md")
    });
    files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    let mut shown: Vec<PathBuf> = files
        .iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("agent."))
        })
        .cloned()
        .collect();
    // The newest test run's log: `run-N.log`, a verification's `repro-run-N.log`,
    // `ci-tests-N.log`, `suite-*.log`, or a command's `output.log`.
    if let Some(run) = files.iter().rev().find(|p| {
        p.extension().is_some_and(|e| e == "log")
            && p.file_name()
                .is_some_and(|n| !n.to_string_lossy().starts_with("agent."))
    }) {
        shown.push(run.clone());
    }
    shown
}
