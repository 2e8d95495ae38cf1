//! `fixci list`: the runs in `./outputs`, like a job CLI's list.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use crate::error::Result;
use crate::run_dir;

/// List runs: status, id, spec, pipeline, stage, attempts, age.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print JSON (an array of runs)
    #[arg(long)]
    pub json: bool,
    /// Folder holding run directories (default: `./outputs`)
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// `3d`, `5h`, `12m`, `40s`.
pub fn age(s: i64) -> String {
    match s {
        s if s >= 86_400 => format!("{}d", s / 86_400),
        s if s >= 3_600 => format!("{}h", s / 3_600),
        s if s >= 60 => format!("{}m", s / 60),
        s => format!("{}s", s.max(0)),
    }
}

/// Runs `fixci list`; returns the exit code.
pub fn execute(args: ListArgs) -> Result<u8> {
    let out = super::resume::out_dir(&args.out);
    let rows: Vec<_> = run_dir::all(&out)
        .iter()
        .map(|(d, s)| d.summary(s))
        .collect();
    if args.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&rows).unwrap_or_default()
        );
        return Ok(0);
    }
    if rows.is_empty() {
        let _ = writeln!(std::io::stderr(), "no runs in `{}`", out.display());
        return Ok(0);
    }
    outln!(
        "{:<11} {:<48} {:<14} {:<12} {:>8} {:>5}",
        "STATUS",
        "RUN",
        "PIPELINE",
        "STAGE",
        "ATTEMPTS",
        "AGE"
    );
    for r in rows {
        outln!(
            "{:<11} {:<48} {:<14} {:<12} {:>8} {:>5}{}",
            r.status,
            r.run_id,
            r.pipeline,
            r.stage.unwrap_or_else(|| "-".into()),
            r.attempts,
            age(r.age_s),
            r.retry_of
                .map(|id| format!("  (retry of {id})"))
                .unwrap_or_default()
        );
    }
    Ok(0)
}
