//! Stage kinds: one file per kind, each a type behind the [`Stage`] trait. A stage reads the run
//! state, writes into its stage directory, and tells what it learned by emitting typed
//! [`Event`]s; it never writes the state (the engine applies each event through
//! [`RunState::apply`]) and never prints. A stage that fails returns a [`StageResult`] with that
//! status; `Err` is reserved for fixci not being able to do its job (exit 2/3).

mod agent;
mod command;
pub mod context;
mod fetch_logs;
pub mod forge_inputs;
mod gate;
mod git_branch;
mod git_commit;
mod open_pr;
mod run_test;
mod sealed_run;
mod strip_test;

use std::path::PathBuf;
use std::time::Duration;

use crate::agent::Agent;
use crate::error::Error;
use crate::pipeline::ladder::Attempt;
use crate::pipeline::{StageDef, StageKind};
use crate::run_dir::{Event, RunState, StageStatus};

pub use context::{RunEnv, RunRequest, eval_count, prompt_context};
pub use git_branch::reset_for_attempt;
pub use open_pr::github_slug;

/// Where a stage's events go. The engine's implementation applies each event to the run state
/// (the one reducer, [`RunState::apply`]) and then hands it to the run's listeners, so
/// [`Recorder::state`] already shows an event's effect when `emit` returns.
pub trait Recorder {
    /// The run state as it is now.
    fn state(&self) -> &RunState;
    /// Records `e`.
    fn emit(&mut self, e: Event);
}

/// What a stage sees: the run-wide environment, its id, directory, attempt and budget, and,
/// through [`StageCtx::st`] and [`StageCtx::emit`], the run state (read-only) and the event
/// stream.
pub struct StageCtx<'a> {
    /// Run-wide context.
    pub env: &'a RunEnv,
    /// Stage id.
    pub id: &'a str,
    /// The stage's directory (`stages/<id>` or `stages/<id>/attempt-N`).
    pub dir: PathBuf,
    /// Attempt number inside the attempt loop.
    pub attempt: Option<u32>,
    /// The agent this stage runs: the attempt's inside the attempt loop (the ladder's choice),
    /// else the run's.
    pub agent: &'a Agent,
    /// The model given to the agent: the attempt's inside the attempt loop, else the spec's.
    pub model: Option<&'a str>,
    /// Time this stage may take.
    pub budget: Duration,
    /// The state and the event sink.
    rec: &'a mut dyn Recorder,
}

impl<'a> StageCtx<'a> {
    /// A context for stage `id` running in `dir` with `budget`, recording into `rec`; inside
    /// the attempt loop, `attempt` gives the attempt's number, agent and model.
    pub fn new(
        env: &'a RunEnv,
        rec: &'a mut dyn Recorder,
        id: &'a str,
        dir: PathBuf,
        attempt: Option<&'a Attempt>,
        budget: Duration,
    ) -> Self {
        let (agent, model) = match attempt {
            Some(a) => (&a.agent, a.model.as_deref()),
            None => (&env.req.agent, env.spec().spec.model.as_deref()),
        };
        StageCtx {
            env,
            id,
            dir,
            attempt: attempt.map(|a| a.number),
            agent,
            model,
            budget,
            rec,
        }
    }

    /// The run state (read-only; it changes only through [`StageCtx::emit`]).
    pub fn st(&self) -> &RunState {
        self.rec.state()
    }

    /// Emits `e`: the engine applies it to the state, then fans it out to the listeners.
    pub fn emit(&mut self, e: Event) {
        self.rec.emit(e);
    }
}

/// How a stage ended, with a one-line summary.
#[derive(Debug, Clone)]
pub struct StageResult {
    /// Outcome.
    pub status: StageStatus,
    /// What happened, or why it failed.
    pub summary: String,
    /// What the agent CLI reported (agent stages only).
    pub agent_report: Option<crate::agent::AgentReport>,
    /// True when fixci refused what the agent produced (e.g. test edits that only weaken the
    /// evidence), as opposed to the agent failing as a program.
    pub refused: bool,
}

impl StageResult {
    /// A result with `status` and `summary`.
    pub fn new(status: StageStatus, summary: impl Into<String>) -> Self {
        Self {
            status,
            summary: summary.into(),
            agent_report: None,
            refused: false,
        }
    }

    /// A passed stage.
    pub fn passed(summary: impl Into<String>) -> Self {
        Self::new(StageStatus::Passed, summary)
    }

    /// A failed stage.
    pub fn failed(summary: impl Into<String>) -> Self {
        Self::new(StageStatus::Failed, summary)
    }
}

/// One stage kind.
pub trait Stage {
    /// Runs the stage.
    fn run(&self, cx: &mut StageCtx<'_>) -> Result<StageResult, Error>;
}

/// Runs the stage `def` (not `attempts`, which the engine drives).
pub fn run(def: &StageDef, cx: &mut StageCtx<'_>) -> Result<StageResult, Error> {
    let stage: Box<dyn Stage> = match def.kind {
        StageKind::FetchLogs => Box::new(fetch_logs::FetchLogs),
        StageKind::Agent => Box::new(agent::AgentStage {
            role: def.role.ok_or_else(|| {
                Error::usage(format!("stage `{}`: an agent stage needs `role`", def.id))
            })?,
            prompt: def.prompt.clone().ok_or_else(|| {
                Error::usage(format!("stage `{}`: an agent stage needs `prompt`", def.id))
            })?,
        }),
        StageKind::RunTest => Box::new(run_test::RunTest {
            expect: def.expect.ok_or_else(|| {
                Error::usage(format!(
                    "stage `{}`: a run-test stage needs `expect`",
                    def.id
                ))
            })?,
            runs: def.runs.clone(),
            restore: def.restore_test.unwrap_or(false),
            mode: def.mode.unwrap_or(crate::pipeline::RunMode::Repeat),
            alpha: def.alpha.unwrap_or(crate::defaults::ALPHA),
            until_failures: def.until_failures,
        }),
        StageKind::GitBranch => Box::new(git_branch::GitBranch),
        StageKind::GitCommit => Box::new(git_commit::GitCommit),
        StageKind::StripTest => Box::new(strip_test::StripTest),
        StageKind::OpenPr => Box::new(open_pr::OpenPr),
        StageKind::Report => {
            return Ok(StageResult::new(
                StageStatus::Skipped,
                "`kind = \"report\"` is deprecated: the report is written when the run ends",
            ));
        }
        StageKind::Command => Box::new(command::CommandStage {
            command: def.command.clone().ok_or_else(|| {
                Error::usage(format!(
                    "stage `{}`: a command stage needs `command`",
                    def.id
                ))
            })?,
        }),
        StageKind::Attempts => {
            return Err(Error::usage(format!(
                "stage `{}`: attempt loops run only at the top level",
                def.id
            )));
        }
    };
    stage.run(cx)
}

/// The worktree of the run, or an error when the run has none.
pub(crate) fn worktree(st: &RunState) -> Result<PathBuf, Error> {
    st.worktree
        .clone()
        .ok_or_else(|| Error::infra("this run has no worktree"))
}

/// The fix commit's message: the report's title, then the agent's root cause (if any).
pub(crate) fn commit_message(st: &RunState, spec: &crate::spec::LoadedSpec) -> String {
    commit_message_with(st, spec, "")
}

/// [`commit_message`] with `extra` lines after the root cause; an event run's trailers
/// (`Fixci-Attempt`, `Fixci-Run`) always end the message, where git's trailer parser reads them.
pub(crate) fn commit_message_with(
    st: &RunState,
    spec: &crate::spec::LoadedSpec,
    extra: &str,
) -> String {
    let mut msg = format!("{}\n\n", crate::report::title(st, spec));
    if let Some(rc) = st.attempts.iter().rev().find_map(|a| a.root_cause.clone()) {
        msg.push_str(&format!("{rc}\n\n"));
    }
    msg.push_str(extra);
    if let Some(ci) = &spec.ci {
        msg.push_str(&ci.trailers());
    }
    msg
}

/// Variables set for test and command stages: the request's `env` (a replay case's `env` and
/// `path`), empty outside replay.
pub(crate) fn test_env(env: &RunEnv) -> Vec<(String, String)> {
    env.req.env.clone()
}

/// The environment a test or user command runs with: the forge tokens and `secret-env` removed.
/// Variables whose names contain `FIXCI` (fixci's own `FIXCI_*`) are removed too: no variable
/// name in a test's environment tells verification from CI.
pub(crate) fn test_env_remove(env: &RunEnv) -> Vec<String> {
    let mut v = crate::agent::scrubbed_env(&env.spec().spec.secret_env);
    v.extend(
        std::env::vars_os()
            .filter_map(|(k, _)| k.into_string().ok())
            .filter(|k| k.to_ascii_uppercase().contains("FIXCI")),
    );
    v
}

/// What a sandboxed agent must not get written besides fixci's own places: the repository
/// the run works on (the user's checkout, or fixci's cached clone) with its git folder, and the
/// spec's folder.
pub(crate) fn protected_places(cx: &StageCtx<'_>) -> Vec<std::path::PathBuf> {
    let root = cx.st().repo.root.clone();
    let mut v = vec![root.clone()];
    if let Ok(r) = git2::Repository::open(&root) {
        v.push(r.commondir().to_path_buf());
    }
    if let Some(d) = cx.env.spec().path.parent() {
        v.push(d.to_path_buf());
    }
    v
}

/// The sandbox of the run's test commands (see [`crate::process::sandbox::TestJail`]): when the
/// run has bubblewrap, [`protected_places`], the run directory and fixci's cache are read-only
/// and the tests get their own PID namespace; where throw-away layers mount, writes to `HOME`
/// and the other top-level directories are discarded when each test run ends (their `tmpfs` is
/// mounted on `RUN/sandbox/test-layers`). `None` without a sandbox.
pub(crate) fn test_jail(cx: &StageCtx<'_>) -> Option<crate::process::sandbox::TestJail> {
    let sandbox = cx.st().containment.sandbox.clone()?;
    let bwrap = sandbox.bwrap?;
    let mut places = protected_places(cx);
    places.push(cx.env.run_dir.path().to_path_buf());
    places.push(crate::run_dir::workspace::cache_dir());
    let jail = crate::process::sandbox::TestJail::new(&bwrap, &places);
    let stage = cx.env.run_dir.path().join("sandbox/test-layers");
    match sandbox.overlay {
        Some(unshare) if std::fs::create_dir_all(&stage).is_ok() => {
            Some(jail.discarding(&unshare, &stage))
        }
        _ => Some(jail),
    }
}

/// Puts fixci's own copy of the confirmed reproduction test back into the worktree (see
/// [`crate::run_dir::Repro::restore_into`]).
pub(crate) fn restore_repro_test(
    wt: &std::path::Path,
    repro: &crate::run_dir::Repro,
) -> Result<(), Error> {
    repro.restore_into(wt)
}
