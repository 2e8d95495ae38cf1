//! `fixci resume`: continue an interrupted run at its first unfinished stage.

use std::path::PathBuf;

use clap::Args;

use crate::engine::{self, RunRequest};
use crate::error::{Error, Result};
use crate::run_dir::{self, Status};
use crate::{agent, exit_codes, pipeline, spec};

/// Continue an interrupted (or killed) run at its first unfinished stage, reusing its worktree,
/// its confirmed reproduction and its earlier attempts.
#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// Run id, unique prefix, or `last`
    pub run: String,
    /// Folder holding run directories (default: `./outputs`)
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print the outcome as one JSON object on stdout (as `fixci run --json`)
    #[arg(long)]
    pub json: bool,
}

/// The folder holding run directories.
pub fn out_dir(out: &Option<PathBuf>) -> PathBuf {
    spec::absolute(out.as_deref().unwrap_or(std::path::Path::new("outputs")))
}

/// Runs `fixci resume`; returns the exit code.
pub fn execute(args: ResumeArgs) -> Result<u8> {
    let out = out_dir(&args.out);
    let (dir, st) = run_dir::find(&out, &args.run)?;
    let req = rebuild_request(&dir, &st, out, |_| {})?;
    drive(args.json, |progress| engine::resume(req, &dir, progress))
}

/// Runs `engine` with signal handlers and the progress display, prints the outcome (as `fixci
/// run` does, JSON with `json`) and returns its exit code.
pub fn drive(
    json: bool,
    engine: impl FnOnce(&mut super::run::Progress) -> Result<engine::Outcome>,
) -> Result<u8> {
    super::run::install_signal_handlers();
    let mut progress = super::run::Progress::new();
    let outcome = engine(&mut progress);
    progress.finish();
    let outcome = outcome?;
    super::run::print_outcome(&outcome, json);
    Ok(exit_code(outcome.status))
}

/// The exit code of a run that ended with `status` (see `crate::exit_codes`).
pub fn exit_code(status: Status) -> u8 {
    match status {
        Status::Success | Status::NothingToFix => exit_codes::SUCCESS,
        Status::Interrupted => exit_codes::INTERRUPTED,
        _ => exit_codes::NO_FIX,
    }
}

/// The request of the run in `dir` (state `st`), rebuilt from its `spec.json` and the
/// command-line choices kept in its state, with run directories under `out`. `adjust` may change
/// the spec (and the agent flag, through the spec's `agent`) before the agent is resolved, as
/// `fixci retry` does with its flags.
///
/// Errors (exit 2): an unreadable `spec.json`, a spec, pipeline or agent that no longer loads.
pub fn rebuild_request(
    dir: &run_dir::RunDir,
    st: &run_dir::RunState,
    out: PathBuf,
    adjust: impl FnOnce(&mut RequestChoices),
) -> Result<RunRequest> {
    let text = std::fs::read_to_string(dir.spec_file()).map_err(|e| {
        Error::infra(format!("cannot read `{}`", dir.spec_file().display())).source(e)
    })?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        Error::usage(format!("`{}` is not valid JSON", dir.spec_file().display())).source(e)
    })?;
    let spec_dir = st
        .spec_file
        .parent()
        .map(|p| p.to_path_buf())
        .unwrap_or_else(|| PathBuf::from("/"));
    let mut loaded = spec::from_value(value, &st.spec_file, &spec_dir)?;
    // `--model` of the first invocation still beats the attempt ladder.
    loaded.model_flag = st.invocation.model_flag.clone();
    let mut choices = RequestChoices {
        spec: loaded,
        agent_flag: st.invocation.agent_flag.clone(),
    };
    adjust(&mut choices);
    let RequestChoices {
        spec: mut loaded,
        agent_flag,
    } = choices;
    let pipeline = match &st.invocation.pipeline_file {
        Some(f) => pipeline::load_file(f)?,
        None => pipeline::select(&loaded, Some(&st.pipeline), std::slice::from_ref(&spec_dir))?,
    };
    let agent = agent::resolve(
        agent_flag.as_deref(),
        loaded.spec.agent.as_ref(),
        pipeline.pipeline.defaults.agent.as_deref(),
        loaded.spec.model.as_deref(),
        &loaded.dir,
    )?;
    if st.invocation.keep_worktree {
        loaded.spec.keep_worktree = true;
    }
    Ok(RunRequest {
        spec: loaded,
        pipeline,
        agent,
        repo_flag: st.invocation.repo_flag.clone(),
        agent_flag,
        api_url: st.invocation.api_url.clone(),
        out_dir: out,
        no_pr: st.invocation.no_pr,
        cancel: super::run::cancel_flag(),
        template_roots: Vec::new(),
        env: Vec::new(),
    })
}

/// What [`rebuild_request`]'s caller may change before the agent is resolved.
pub struct RequestChoices {
    /// The spec as `spec.json` has it.
    pub spec: spec::LoadedSpec,
    /// `--agent` of the first invocation.
    pub agent_flag: Option<String>,
}
