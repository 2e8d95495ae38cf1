//! What every stage sees of the run besides the state: the request ([`RunRequest`]) and the
//! run-wide environment ([`RunEnv`]), and the template context of a stage ([`prompt_context`]:
//! `spec`, `logs`, `repro`, `attempt`, `repo`, `stage`, `budget`, `verify_runs`; every key is
//! always present, absent values are `none`, so strict templates fail only on real typos).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::agent::Agent;
use crate::defaults;
use crate::error::Error;
use crate::pipeline::{self, Count, Templates};
use crate::run_dir::{AttemptOutcome, RunDir, RunState};
use crate::spec::LoadedSpec;

/// What to run.
pub struct RunRequest {
    /// The validated job spec.
    pub spec: LoadedSpec,
    /// The selected pipeline.
    pub pipeline: pipeline::Loaded,
    /// The resolved agent.
    pub agent: Agent,
    /// `--repo`, overriding the spec's `repo`.
    pub repo_flag: Option<String>,
    /// `--agent`, kept for resume; fixes the agent of every attempt (the ladder is off).
    pub agent_flag: Option<String>,
    /// `--api-url`: the forge API root.
    pub api_url: Option<String>,
    /// Folder that holds run directories (`./outputs` or `--out`).
    pub out_dir: PathBuf,
    /// Write a PR proposal even when a forge token is available.
    pub no_pr: bool,
    /// Set by the signal handler; stops children and the run.
    pub cancel: &'static AtomicBool,
    /// Extra template folders, searched before the pipeline's own (a replay variant's prompts).
    pub template_roots: Vec<PathBuf>,
    /// Variables set on every test and command stage the run starts (a replay case's `env` and
    /// `path`); empty outside replay.
    pub env: Vec<(String, String)>,
}

/// Run-wide, read-only context handed to every stage.
pub struct RunEnv {
    /// The request.
    pub req: RunRequest,
    /// The run directory.
    pub run_dir: RunDir,
    /// Template search roots, most specific first.
    pub template_roots: Vec<PathBuf>,
    /// SIGTERM -> SIGKILL grace period.
    pub grace: Duration,
    /// When the run's total budget runs out.
    pub deadline: Instant,
    /// The run's start.
    pub started: Instant,
    /// True when this process resumed an earlier run.
    pub resumed: bool,
    /// A run URL's logs fetched before the run directory was created.
    pub prefetched: Option<super::forge_inputs::Prefetched>,
    /// The user's repository as it was before the first agent ran; checked after every stage
    /// that runs agent code and before the fix branch is created.
    pub user_repo: crate::vcs::UserRepoGuard,
}

impl RunEnv {
    /// The job spec.
    pub fn spec(&self) -> &LoadedSpec {
        &self.req.spec
    }

    /// True once fixci was asked to stop.
    pub fn cancelled(&self) -> bool {
        self.req.cancel.load(Ordering::SeqCst)
    }

    /// Evaluates a `runs` / `max` count (integer or expression over `spec`), with `default`.
    ///
    /// Errors (exit 2): an expression that fails or does not give a positive integer.
    pub fn count(&self, c: Option<&Count>, default: u64, what: &str) -> Result<u64, Error> {
        eval_count(&self.req, c, default, what)
    }
}

/// Evaluates a `runs` / `max` count of `req`'s pipeline (integer or expression over `spec`),
/// with `default` when absent; `what` names the key in errors.
///
/// Errors (exit 2): an expression that fails or does not give a positive integer.
pub fn eval_count(
    req: &RunRequest,
    c: Option<&Count>,
    default: u64,
    what: &str,
) -> Result<u64, Error> {
    match c {
        None => Ok(default),
        Some(Count::Fixed(n)) => Ok(*n),
        Some(Count::Expr(e)) => {
            let env = Templates::expression_env();
            let ctx = pipeline::spec_context(&req.spec.spec);
            let v = env
                .compile_expression(e)
                .and_then(|x| x.eval(minijinja::context! { spec => minijinja::Value::from(minijinja::value::Serde(&ctx)) }))
                .map_err(|err| Error::usage(format!("pipeline `{}`: cannot evaluate {what} `{e}`", req.pipeline.pipeline.name)).detail(err.to_string()))?;
            u64::try_from(v.clone())
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    Error::usage(format!(
                        "pipeline `{}`: {what} `{e}` gave `{v}`, expected a positive integer",
                        req.pipeline.pipeline.name
                    ))
                })
        }
    }
}

/// Builds the context for a stage `id` with directory `dir`, in attempt `attempt`; `model` is
/// the model the stage's agent runs (the attempt's inside the attempt loop), shown as
/// `spec.model`.
pub fn prompt_context(
    env: &RunEnv,
    st: &RunState,
    id: &str,
    dir: &Path,
    attempt: Option<u32>,
    model: Option<&str>,
    budget: Duration,
) -> Value {
    let logs = match &st.logs {
        Some(l) => json!({
            "available": true,
            "failures": l.distilled.failures,
            "no_test_failure": l.distilled.no_test_failure,
            "signature": l.distilled.signature,
            "excerpt": l.distilled.excerpt,
            "path": l.path.as_ref().map(|p| p.display().to_string()),
        }),
        None => {
            json!({"available": false, "failures": [], "no_test_failure": null, "signature": null, "excerpt": "", "path": null})
        }
    };
    let repro = match &st.repro {
        Some(r) => json!({
            "test_file": r.test_file, "command": r.command, "origin": r.origin,
            "failure_output": r.failure_output, "confirmed": r.confirmed,
        }),
        None => {
            json!({"test_file": null, "command": null, "origin": null, "failure_output": "", "confirmed": false})
        }
    };
    let previous: Vec<Value> = st
        .attempts
        .iter()
        .filter(|a| Some(a.number) != attempt && a.outcome != AttemptOutcome::Running)
        .map(|a| {
            json!({
                "number": a.number,
                "reason": a.reason.clone().unwrap_or_default(),
                "diff": a.diff,
                "failure_output": a.failure_output,
            })
        })
        .collect();
    let max_attempts = env
        .req
        .pipeline
        .pipeline
        .stages
        .iter()
        .find(|s| s.kind == pipeline::StageKind::Attempts)
        .and_then(|s| {
            env.count(s.max.as_ref(), defaults::MAX_ATTEMPTS, "`max`")
                .ok()
        })
        .unwrap_or(defaults::MAX_ATTEMPTS);
    let verify_runs = defaults::verify_runs(env.spec().spec.verify_runs);
    let mut spec = pipeline::spec_context(&env.spec().spec);
    spec["model"] = json!(model);
    json!({
        "spec": spec,
        "logs": logs,
        "repro": repro,
        "attempt": {"number": attempt.unwrap_or(1), "max": max_attempts, "previous": previous},
        "repo": {
            "root": st.repo.root.display().to_string(),
            "worktree": st.worktree.as_ref().map(|p| p.display().to_string()),
            "base": st.repo.base,
            "commit": st.repo.start_commit,
            "branch": st.branch,
        },
        "stage": {"id": id, "dir": dir.display().to_string()},
        "budget": {"seconds": budget.as_secs(), "human": humantime::format_duration(Duration::from_secs(budget.as_secs())).to_string()},
        "verify_runs": verify_runs,
        "issue": st.issue,
    })
}
