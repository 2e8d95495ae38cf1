//! `fixci retry`: a new run linked to an ended one, from its confirmed reproduction, with the
//! earlier attempts and the user's steer in the first prompt (see `crate::engine::retry`).

use std::path::PathBuf;

use clap::Args;

use crate::engine;
use crate::error::{Error, Result};
use crate::run_dir;

/// Start a new run from an ended one: its confirmed reproduction is reused (no reproduce
/// stage), and the first fix prompt shows the earlier attempts' diffs and failures and your
/// steer. The earlier run is not changed.
#[derive(Debug, Args)]
pub struct RetryArgs {
    /// The ended run: id, unique prefix, or `last`
    pub run: String,
    /// Guidance for this try (e.g. "the bug is in the parser, not the lexer")
    #[arg(long, value_name = "TEXT")]
    pub prompt: Option<String>,
    /// Agent preset for every stage, overriding the earlier run's agent
    #[arg(long, value_name = "NAME")]
    pub agent: Option<String>,
    /// Model passed to the agent
    #[arg(long)]
    pub model: Option<String>,
    /// Fix attempts of the new run
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=50))]
    pub max_attempts: Option<u32>,
    /// Folder holding run directories, the earlier one and the new one (default: `./outputs`)
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print the outcome as one JSON object on stdout (as `fixci run --json`)
    #[arg(long)]
    pub json: bool,
}

/// Runs `fixci retry`; returns the exit code.
///
/// Errors (exit 2, nothing written): an unknown run, a run whose fixci process is still alive.
pub fn execute(args: RetryArgs) -> Result<u8> {
    let out = super::resume::out_dir(&args.out);
    if run_dir::all(&out).is_empty() {
        return Err(Error::usage(format!(
            "no run `{}` in `{}`: it holds no runs",
            args.run,
            out.display()
        ))
        .hint("pass `--out DIR` for the folder the earlier run was written to"));
    }
    let (dir, st) = run_dir::find(&out, &args.run)?;
    if let Some(pid) = dir.live_pid() {
        return Err(Error::usage(format!(
            "run `{}` is still running (fixci pid {pid}); nothing was written",
            st.run_id
        ))
        .hint(format!(
            "wait for it to end, or stop it with `fixci kill {}`",
            st.run_id
        )));
    }
    let mut req = super::resume::rebuild_request(&dir, &st, out, |c| {
        if let Some(a) = &args.agent {
            c.agent_flag = Some(a.clone());
        }
        if let Some(m) = &args.model {
            c.spec.spec.model = Some(m.clone());
            c.spec.model_flag = Some(m.clone());
        }
        if let Some(n) = args.max_attempts {
            c.spec.spec.max_attempts = Some(n);
        }
    })?;
    // The same repository as the earlier run, wherever `fixci retry` is started from.
    if req.repo_flag.is_none() && req.spec.spec.repo.is_none() {
        req.repo_flag = Some(st.repo.root.display().to_string());
    }
    let earlier = engine::retry::Earlier {
        dir,
        st,
        steer: args.prompt.clone(),
    };
    super::resume::drive(args.json, |progress| {
        engine::run_retry(req, &earlier, progress)
    })
}
