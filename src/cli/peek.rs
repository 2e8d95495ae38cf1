//! `fixci peek`: the agent's worklog and the tail of the current stage's output.

use std::path::PathBuf;

use clap::Args;

use crate::run_dir;
use crate::error::{Error, Result};

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
    let Some(stage) = dir.latest_stage_dir() else {
        return Err(Error::usage(format!(
            "run `{}` has not started a stage yet",
            st.run_id
        )));
    };
    outln!(
        "run {} — {}",
        st.run_id,
        stage.strip_prefix(dir.path()).unwrap_or(&stage).display()
    );
    let mut files: Vec<PathBuf> = std::fs::read_dir(&stage)
        .map(|r| r.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| {
        p.extension().is_some_and(|e| e == "log")
            || p.file_name().is_some_and(|n| n == "root-cause.md")
    });
    files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    // The agent's worklog first, then the newest test run.
    let mut shown: Vec<PathBuf> = files
        .iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("agent."))
        })
        .cloned()
        .collect();
    if let Some(run) = files.iter().rev().find(|p| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("run-") || n == "output.log")
    }) {
        shown.push(run.clone());
    }
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
