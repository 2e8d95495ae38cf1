//! `fixci status`: one run in detail.

use std::path::PathBuf;

use clap::Args;

use crate::error::Result;
use crate::run_dir;

/// Show one run: status, reason, current stage, stages so far, paths.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Run id, unique prefix, or `last`
    pub run: String,
    /// Print the run's summary and state as JSON
    #[arg(long)]
    pub json: bool,
    /// Folder holding run directories (default: `./outputs`)
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Runs `fixci status`; returns the exit code.
pub fn execute(args: StatusArgs) -> Result<u8> {
    let out = super::resume::out_dir(&args.out);
    let (dir, st) = run_dir::find(&out, &args.run)?;
    let sum = dir.summary(&st);
    if args.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"summary": sum, "state": st}))
                .unwrap_or_default()
        );
        return Ok(0);
    }
    outln!("run:      {}", st.run_id);
    // A success on disk is checked against git before it is shown as one.
    let unverified = (st.status == crate::run_dir::Status::Success)
        .then(|| {
            let patch = std::fs::read(dir.fix_diff_file()).unwrap_or_default();
            super::apply::trusted_fix(&dir, &st, &patch).err()
        })
        .flatten();
    outln!(
        "status:   {}{}",
        sum.status,
        st.reason
            .as_ref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    );
    if let Some(why) = &unverified {
        outln!("warning:  this success is not trusted: {why}");
    }
    if let Some(p) = sum.pid {
        outln!("pid:      {p}");
    }
    outln!("stage:    {}", sum.stage.as_deref().unwrap_or("-"));
    outln!("pipeline: {}", st.pipeline);
    outln!("spec:     {}", st.spec_file.display());
    outln!("branch:   {}", st.branch.as_deref().filter(|_| st.branch_created).unwrap_or("-"));
    outln!("attempts: {}", st.attempts.len());
    outln!("age:      {}", super::list::age(sum.age_s));
    outln!("dir:      {}", dir.path().display());
    outln!("\nstages:");
    for s in &st.stages {
        let a = s.attempt.map(|a| format!(" #{a}")).unwrap_or_default();
        outln!(
            "  {:<16} {:<8} {:>6.1}s  {}",
            format!("{}{a}", s.id),
            s.status.as_str(),
            s.duration_s,
            s.summary
        );
    }
    Ok(0)
}
