//! The engine: executes a pipeline's stages in order under their budgets, runs the attempt
//! loop, keeps the run's state (written after every stage) and emits the event stream. It knows
//! nothing of how a stage does its work: each kind lives in `stages/`.

mod context;
pub mod dry_run;
pub mod events;
pub mod forge_inputs;
pub mod ladder;
pub mod runs;
pub mod state;
pub mod workspace;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub use context::prompt_context;
pub use events::{Event, EventLog, Observer};
pub use state::{RunState, Status};

use crate::agent::Agent;
use crate::error::{Error, io_error};
use crate::pipeline::{self, Count, StageDef, StageKind, Templates};
use crate::spec::LoadedSpec;
use crate::stages::{self, StageCtx, StageResult};
use crate::vcs;
use state::{Attempt, RepoState, Repro, StageRecord, StageStatus};

/// Default budget of a stage that declares none: 5 minutes.
pub const DEFAULT_STAGE_BUDGET: Duration = Duration::from_secs(300);

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
}

/// Run-wide, read-only context handed to every stage.
pub struct RunEnv {
    /// The request.
    pub req: RunRequest,
    /// The run directory.
    pub run_dir: PathBuf,
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
    pub prefetched: Option<forge_inputs::Prefetched>,
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

/// How a run ended.
#[derive(Debug)]
pub struct Outcome {
    /// Final status.
    pub status: Status,
    /// Why.
    pub reason: Option<String>,
    /// The run directory.
    pub run_dir: PathBuf,
}

/// Prepares the workspace (repository, run directory, branch and worktree) and runs the
/// pipeline to its end. Stage failures are results (see [`Outcome`]); `Err` means fixci could
/// not do its job: a bad spec detail found late (exit 2), git or disk failures (exit 3), an
/// interruption (exit 130, state saved).
pub fn run(req: RunRequest, observer: &mut dyn Observer) -> Result<Outcome, Error> {
    let started = Instant::now();
    // A bad attempt ladder stops the run before anything is cloned or written.
    ladder::check(&req)?;
    let spec = &req.spec;
    let source = workspace::resolve_repo(spec, req.repo_flag.as_deref(), true)?;
    let repo = vcs::open(&source.root)
        .or_else(|_| vcs::discover(&source.root))
        .map_err(|e| Error::infra("cannot open the target repository").source(e))?;
    let base_commit = vcs::resolve_commit(&repo, &spec.spec.base).map_err(|e| {
        Error::usage(format!(
            "base branch `{}` not found in `{}`",
            spec.spec.base,
            source.root.display()
        ))
        .source(e)
        .hint("set `base` in the spec to the branch the fix should be cut from")
    })?;
    // A run URL is fetched first: a run still in progress is refused before anything is written.
    let prefetched = match &spec.logs {
        crate::spec::LogsInput::Url(u) => Some(forge_inputs::prefetch(u, req.api_url.as_deref())?),
        _ => None,
    };
    let issue = match &spec.spec.issue {
        Some(i) => Some(forge_inputs::fetch_issue(i, req.api_url.as_deref())?),
        None => None,
    };
    // The run's head SHA is where the reproduction starts, when the repository has it.
    let head = prefetched
        .as_ref()
        .and_then(|p| git2::Oid::from_str(&p.run.head_sha).ok())
        .filter(|oid| repo.find_commit(*oid).is_ok());
    let start_commit = match &spec.spec.commit {
        Some(c) => vcs::resolve_commit(&repo, c)
            .map_err(|e| Error::usage(format!("commit `{c}` not found")).source(e))?,
        None => head.unwrap_or(base_commit),
    };
    if let Some(t) = &spec.spec.existing_test_path {
        let tree = repo
            .find_commit(start_commit)
            .and_then(|c| c.tree())
            .map_err(|e| Error::infra("cannot read the start commit").source(e))?;
        if let Some(link) = symlink_in_tree(&repo, &tree, t) {
            return Err(Error::usage(format!("invalid job spec `{}`", spec.path.display()))
                .detail(format!("/existing-test-path: `{t}` goes through the symlink `{link}`; give the real path inside the repository")));
        }
        if tree.get_path(Path::new(t)).is_err() {
            return Err(
                Error::usage(format!("invalid job spec `{}`", spec.path.display())).detail(
                    format!(
                        "/existing-test-path: `{t}` does not exist in `{}` at {}",
                        source.root.display(),
                        &start_commit.to_string()[..10]
                    ),
                ),
            );
        }
    }

    // The distilled log names the run; distilling a local log here is cheap and pure.
    let first_failure = match &spec.logs {
        crate::spec::LogsInput::File(p) => crate::logs::distil_path(p, &Default::default()).ok(),
        crate::spec::LogsInput::Inline(t) => {
            crate::logs::distil_bytes(t.as_bytes(), &Default::default()).ok()
        }
        _ => None,
    }
    .and_then(|d| d.failures.first().map(|f| f.test.clone()));
    let slug = workspace::run_slug(spec, first_failure.as_deref());
    let run_id = format!(
        "{}_{}",
        chrono::Local::now().format("%Y-%m-%d_%H-%M-%S"),
        slug
    );
    let run_dir = unique_dir(&req.out_dir.join(&run_id));
    std::fs::create_dir_all(run_dir.join("stages"))
        .map_err(|e| io_error("create the run directory", &run_dir, e))?;
    let run_id = run_dir
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or(run_id);

    let write = |name: &str, bytes: &[u8]| {
        state::write_atomic(&run_dir.join(name), bytes)
            .map_err(|e| io_error("write", &run_dir.join(name), e))
    };
    write(
        "spec.json",
        crate::redact::redact(&serde_json::to_string_pretty(&spec.spec).unwrap_or_default())
            .as_bytes(),
    )?;
    write("pipeline.toml", req.pipeline.text.as_bytes())?;

    let branch = vcs::free_branch_name(&repo, &slug);
    let worktree = run_dir.join("worktree");
    vcs::add_worktree(
        &repo,
        &branch,
        start_commit,
        &worktree,
        &run_id.replace('.', "-"),
    )
    .map_err(|e| Error::infra("cannot create the fix branch and its worktree").source(e))?;

    let mut st = RunState::new(
        run_id.clone(),
        spec.path.clone(),
        req.pipeline.pipeline.name.clone(),
        format!("{} ({})", req.agent.name, req.agent.argv.join(" ")),
        RepoState {
            root: source.root.clone(),
            source: source.source.clone(),
            base: spec.spec.base.clone(),
            base_commit: base_commit.to_string(),
            start_commit: start_commit.to_string(),
        },
        worktree.clone(),
        branch,
    );
    st.invocation = state::Invocation {
        pipeline_file: match &req.pipeline.origin {
            pipeline::Origin::File(f) => Some(f.clone()),
            pipeline::Origin::Builtin => None,
        },
        agent_flag: req.agent_flag.clone(),
        model_flag: req.spec.model_flag.clone(),
        repo_flag: req.repo_flag.clone(),
        no_pr: req.no_pr,
        total_budget_s: pipeline::total_budget(spec, &req.pipeline.pipeline).as_secs_f64(),
        api_url: req.api_url.clone(),
    };
    st.issue = issue;
    if let Some(t) = &spec.spec.existing_test_path {
        let copy = run_dir.join("repro-test").join(t);
        copy_file(&worktree.join(t), &copy)?;
        let bytes = std::fs::read(&copy).map_err(|e| io_error("read", &copy, e))?;
        let runner = crate::verify::runner_for(t, spec.spec.test_command.as_deref());
        st.repro = Some(Repro {
            test_file: t.clone(),
            command: runner.display(),
            origin: "existing".into(),
            copy: Some(copy),
            confirmed: false,
            failure_output: String::new(),
            sealed: Some(crate::verify::record::ReproRecord::new(bytes, runner, None)),
        });
    }
    st.save(&run_dir)
        .map_err(|e| io_error("write", &run_dir.join("state.json"), e))?;

    let total = pipeline::total_budget(spec, &req.pipeline.pipeline);
    let mut env = make_env(req, run_dir, started, total, false);
    env.prefetched = prefetched;
    drive(env, st, observer)
}

fn make_env(
    req: RunRequest,
    run_dir: PathBuf,
    started: Instant,
    budget: Duration,
    resumed: bool,
) -> RunEnv {
    let grace = req
        .pipeline
        .pipeline
        .defaults
        .grace
        .as_deref()
        .and_then(|g| humantime::parse_duration(g.trim()).ok())
        .unwrap_or(Duration::from_secs(5));
    let mut template_roots = req.template_roots.clone();
    template_roots.extend(req.pipeline.template_roots());
    template_roots.push(req.spec.dir.clone());
    RunEnv {
        req,
        run_dir,
        template_roots,
        grace,
        deadline: Instant::now() + budget,
        started,
        resumed,
        prefetched: None,
    }
}

/// Continues the run in `run_dir` at its first unfinished stage, reusing its worktree, its
/// confirmed reproduction and its earlier attempts. `req` is rebuilt by the caller from the
/// run's `spec.json` and `state.json`.
///
/// Errors (exit 2): the run already ended, another fixci process drives it, its worktree is
/// gone, or someone else moved its fix branch.
pub fn resume(
    req: RunRequest,
    run_dir: &Path,
    observer: &mut dyn Observer,
) -> Result<Outcome, Error> {
    ladder::check(&req)?;
    let mut st =
        RunState::load(run_dir).map_err(|e| io_error("read", &run_dir.join("state.json"), e))?;
    if !matches!(st.status, Status::Running | Status::Interrupted) {
        return Err(Error::usage(format!(
            "run `{}` already ended with status `{}`; nothing to resume",
            st.run_id,
            st.status.as_str()
        )));
    }
    if let Some(pid) = live_pid(run_dir) {
        return Err(Error::usage(format!(
            "run `{}` is still running (fixci pid {pid})",
            st.run_id
        ))
        .hint(format!("stop it first with `fixci kill {}`", st.run_id)));
    }
    // A child left behind by a fixci that was killed outright is stopped before going on.
    if let Some(pgid) = std::fs::read_to_string(run_dir.join("child.pid"))
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
    {
        crate::process::kill_group(pgid, libc::SIGKILL);
        let _ = std::fs::remove_file(run_dir.join("child.pid"));
    }
    let wt = st.worktree.clone().unwrap_or_default();
    if !wt.join(".git").exists() {
        return Err(Error::usage(format!(
            "run `{}` cannot be resumed: its worktree `{}` is gone",
            st.run_id,
            wt.display()
        )));
    }
    let repo = vcs::open(&st.repo.root)
        .map_err(|e| Error::infra("cannot open the target repository").source(e))?;
    let branch = st.branch.clone().unwrap_or_default();
    let tip = repo
        .find_reference(&format!("refs/heads/{branch}"))
        .and_then(|r| r.peel_to_commit())
        .map(|c| c.id().to_string())
        .map_err(|_| {
            Error::usage(format!(
                "run `{}` cannot be resumed: its branch `{branch}` is gone",
                st.run_id
            ))
        })?;
    let expected: Vec<&String> = [
        Some(&st.repo.start_commit),
        Some(&st.repo.base_commit),
        st.commit.as_ref(),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !expected.contains(&&tip) {
        let tip_oid =
            git2::Oid::from_str(&tip).map_err(|e| Error::infra("bad commit id").source(e))?;
        let start = git2::Oid::from_str(&st.repo.start_commit)
            .map_err(|e| Error::infra("bad commit id in state").source(e))?;
        let who = vcs::foreign_commits(&repo, tip_oid, start);
        return Err(Error::usage(format!(
            "run `{}` cannot be resumed: someone else changed its branch `{branch}` (now at {})",
            st.run_id,
            &tip[..10]
        ))
        .details(who.into_iter().map(|(id, a)| format!("commit {id} by {a}")))
        .hint("start a new run, or `fixci apply` the run's fix.diff by hand"));
    }
    st.status = Status::Running;
    st.reason = None;
    st.pid = std::process::id();
    let used: f64 = st.stages.iter().map(|s| s.duration_s).sum();
    let total = Duration::from_secs_f64((st.invocation.total_budget_s - used).max(60.0));
    let env = make_env(req, run_dir.to_path_buf(), Instant::now(), total, true);
    drive(env, st, observer)
}

/// The pid of a live fixci process driving the run in `run_dir`, from its `fixci.pid` file.
/// A pid file whose process is gone (or is not fixci) is stale and yields `None`.
pub fn live_pid(run_dir: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(run_dir.join("fixci.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, r)| r.split_whitespace().next())
        .unwrap_or("Z");
    let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let is_fixci = String::from_utf8_lossy(&cmd)
        .split('\0')
        .next()
        .is_some_and(|a| a.ends_with("fixci"));
    (state != "Z" && is_fixci && pid != std::process::id()).then_some(pid)
}

/// Runs the remaining stages of `st` and records the end.
fn drive(mut env: RunEnv, mut st: RunState, observer: &mut dyn Observer) -> Result<Outcome, Error> {
    let run_dir = env.run_dir.clone();
    let started = Instant::now();
    std::fs::write(run_dir.join("fixci.pid"), std::process::id().to_string())
        .map_err(|e| io_error("write", &run_dir.join("fixci.pid"), e))?;
    st.save(&run_dir)
        .map_err(|e| io_error("write", &run_dir.join("state.json"), e))?;
    let mut log = EventLog::open(&run_dir)
        .map_err(|e| io_error("write", &run_dir.join("events.jsonl"), e))?;
    let mut emit = |e: Event| {
        log.write(&e);
        observer.event(&e);
    };
    if env.resumed {
        emit(Event::RunResumed {
            run_id: st.run_id.clone(),
            run_dir: run_dir.display().to_string(),
        });
    } else {
        emit(Event::RunStarted {
            run_id: st.run_id.clone(),
            pipeline: st.pipeline.clone(),
            run_dir: run_dir.display().to_string(),
        });
    }
    let result = execute(&mut env, &mut st, &mut emit);
    if st.status == Status::Running {
        st.status = if env.cancelled() {
            Status::Interrupted
        } else if let Some(why) = st.partial_reason.clone() {
            st.reason = Some(why);
            Status::Partial
        } else {
            Status::Success
        };
    }
    st.finished_at = Some(chrono::Utc::now().to_rfc3339());
    st.save(&run_dir)
        .map_err(|e| io_error("write", &run_dir.join("state.json"), e))?;
    emit(Event::RunFinished {
        status: st.status.as_str().into(),
        reason: st.reason.clone(),
        duration_s: started.elapsed().as_secs_f64(),
    });
    let _ = std::fs::remove_file(run_dir.join("fixci.pid"));
    result?;
    if st.status == Status::Interrupted {
        return Err(
            Error::interrupted(format!("run `{}` interrupted; state saved", st.run_id))
                .hint(format!("resume it with `fixci resume {}`", st.run_id)),
        );
    }
    Ok(Outcome {
        status: st.status,
        reason: st.reason.clone(),
        run_dir,
    })
}

/// True when a top-level stage `id` already finished (passed or skipped) in an earlier process.
fn done(st: &RunState, id: &str) -> bool {
    st.stages.iter().any(|r| {
        r.id == id
            && r.attempt.is_none()
            && matches!(r.status, StageStatus::Passed | StageStatus::Skipped)
    })
}

/// The stage loop. Sets `st.status` / `st.reason` on failure; `always` stages still run.
fn execute(env: &mut RunEnv, st: &mut RunState, emit: &mut dyn FnMut(Event)) -> Result<(), Error> {
    let mut deferred: Option<Error> = None;
    let stages = env.req.pipeline.pipeline.stages.clone();
    for def in &stages {
        // Finalizers (`always`) run again on resume so the report describes the whole run.
        if done(st, &def.id) && !def.always {
            continue;
        }
        let failed = st.status != Status::Running;
        if failed && !def.always {
            continue;
        }
        if env.cancelled() && !def.always {
            st.status = Status::Interrupted;
            st.reason = Some("interrupted".into());
            continue;
        }
        if def.kind == StageKind::Attempts {
            match attempts(env, st, def, emit) {
                Ok(()) => {}
                Err(e) => {
                    fail(st, Status::Failed, &e.message);
                    deferred = Some(e);
                }
            }
            continue;
        }
        match run_stage(env, st, def, None, emit) {
            Ok(r) if matches!(r.status, StageStatus::Passed | StageStatus::Skipped) => {}
            Ok(r) => {
                let reason = def.fail_reason.clone().unwrap_or_else(|| {
                    format!("stage `{}` {}: {}", def.id, r.status.as_str(), r.summary)
                });
                fail(st, Status::Failed, &reason);
            }
            Err(e) => {
                fail(
                    st,
                    Status::Failed,
                    &format!("stage `{}`: {}", def.id, e.message),
                );
                deferred = Some(e);
            }
        }
    }
    match deferred {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn fail(st: &mut RunState, status: Status, reason: &str) {
    if st.status == Status::Running {
        st.status = status;
        st.reason = Some(reason.to_string());
    }
}

/// The attempt loop: runs its stages until one attempt passes them all, at most `max` times;
/// each new attempt starts from a clean worktree (base + the reproduction test) and sees the
/// previous attempts' diffs and failures in its prompt. Each attempt runs the agent and model
/// the ladder chooses (see [`ladder`]): the run's agent and the spec's model are swapped for the
/// attempt's while its stages run, and restored afterwards, so stages outside the loop keep the
/// run's own.
fn attempts(
    env: &mut RunEnv,
    st: &mut RunState,
    def: &StageDef,
    emit: &mut dyn FnMut(Event),
) -> Result<(), Error> {
    let run_agent = env.req.agent.clone();
    let run_model = env.req.spec.spec.model.clone();
    let result = attempt_loop(env, st, def, emit, &run_agent, &run_model);
    env.req.agent = run_agent;
    env.req.spec.spec.model = run_model;
    result
}

fn attempt_loop(
    env: &mut RunEnv,
    st: &mut RunState,
    def: &StageDef,
    emit: &mut dyn FnMut(Event),
    run_agent: &Agent,
    run_model: &Option<String>,
) -> Result<(), Error> {
    let max = env.count(def.max.as_ref(), 3, "`max`")? as u32;
    let subs = def.stages.as_deref().unwrap_or_default();
    if st.attempts.iter().any(|a| a.outcome == "passed") {
        return Ok(());
    }
    // An attempt cut short by an interruption is redone from a clean worktree.
    if st.attempts.last().is_some_and(|a| a.outcome == "running") {
        st.attempts.pop();
    }
    let first = st.attempts.len() as u32 + 1;
    if env.resumed && first <= max {
        stages::reset_for_attempt(env, st)?;
    }
    for n in first..=max {
        if env.cancelled() {
            st.status = Status::Interrupted;
            st.reason = Some("interrupted".into());
            return Ok(());
        }
        if n > 1 {
            if let Some(who) = human_commits(st) {
                fail(
                    st,
                    Status::Escalated,
                    &format!(
                        "a commit by someone other than fixci appeared on the fix branch ({who}); automatic attempts stopped"
                    ),
                );
                return Ok(());
            }
            if n > first {
                stages::reset_for_attempt(env, st)?;
            }
        }
        // The ladder sees the run's own agent and model, not the previous attempt's.
        env.req.agent = run_agent.clone();
        env.req.spec.spec.model = run_model.clone();
        let chosen = ladder::choose(&env.req, def, n, max)?;
        env.req.agent = chosen.agent;
        env.req.spec.spec.model = chosen.model.clone();
        st.attempts.push(Attempt {
            number: n,
            outcome: "running".into(),
            agent: Some(env.req.agent.name.clone()),
            model: chosen.model.clone(),
            ..Default::default()
        });
        emit(Event::AttemptStarted {
            attempt: n,
            max,
            agent: env.req.agent.name.clone(),
            model: chosen.model,
        });
        let mut failure: Option<String> = None;
        for sub in subs {
            let r = run_stage(env, st, sub, Some(n), emit)?;
            if !matches!(r.status, StageStatus::Passed | StageStatus::Skipped) {
                let a = st.attempts.last_mut().expect("attempt pushed");
                a.outcome = r.status.as_str().into();
                failure = Some(format!(
                    "stage `{}` {}: {}",
                    sub.id,
                    r.status.as_str(),
                    r.summary
                ));
                break;
            }
            if env.cancelled() {
                st.status = Status::Interrupted;
                st.reason = Some("interrupted".into());
                return Ok(());
            }
        }
        let a = st.attempts.last_mut().expect("attempt pushed");
        match failure {
            None => {
                a.outcome = "passed".into();
                st.verification = a.verification.clone();
                st.save(&env.run_dir)
                    .map_err(|e| io_error("write", &env.run_dir.join("state.json"), e))?;
                return Ok(());
            }
            Some(reason) => {
                a.reason = Some(reason.clone());
                emit(Event::AttemptFailed { attempt: n, reason });
                st.save(&env.run_dir)
                    .map_err(|e| io_error("write", &env.run_dir.join("state.json"), e))?;
            }
        }
    }
    fail(
        st,
        Status::Escalated,
        &format!(
            "no fix passed verification in {max} attempt{}",
            if max == 1 { "" } else { "s" }
        ),
    );
    Ok(())
}

/// Commits on the fix branch not made by fixci, as `id by Name <email>`.
fn human_commits(st: &RunState) -> Option<String> {
    let repo = vcs::open(&st.repo.root).ok()?;
    let branch = st.branch.as_ref()?;
    let tip = repo
        .find_reference(&format!("refs/heads/{branch}"))
        .ok()?
        .peel_to_commit()
        .ok()?
        .id();
    let base = git2::Oid::from_str(&st.repo.start_commit).ok()?;
    let foreign = vcs::foreign_commits(&repo, tip, base);
    foreign.first().map(|(id, who)| format!("{id} by {who}"))
}

/// Runs one stage under its budget and records it.
fn run_stage(
    env: &RunEnv,
    st: &mut RunState,
    def: &StageDef,
    attempt: Option<u32>,
    emit: &mut dyn FnMut(Event),
) -> Result<StageResult, Error> {
    let planned = pipeline::stage_budget(env.spec(), def, DEFAULT_STAGE_BUDGET);
    let remaining = env.deadline.saturating_duration_since(Instant::now());
    let budget = if def.always {
        planned
    } else {
        planned.min(remaining)
    };
    let stage_dir = match attempt {
        Some(n) => env
            .run_dir
            .join("stages")
            .join(&def.id)
            .join(format!("attempt-{n}")),
        None => env.run_dir.join("stages").join(&def.id),
    };
    std::fs::create_dir_all(&stage_dir).map_err(|e| io_error("create", &stage_dir, e))?;
    let kind = serde_json::to_value(def.kind)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default();
    emit(Event::StageStarted {
        stage: def.id.clone(),
        kind: kind.clone(),
        attempt,
        budget_s: budget.as_secs_f64(),
    });
    let t0 = Instant::now();
    let skip_reason = match &def.condition {
        Some(cond) if !budget.is_zero() => {
            let ctx = context::prompt_context(env, st, &def.id, &stage_dir, attempt, budget);
            let ok = Templates::expression_env()
                .compile_expression(cond)
                .and_then(|x| x.eval(minijinja::Value::from(minijinja::value::Serde(&ctx))))
                .map_err(|e| {
                    Error::usage(format!(
                        "stage `{}`: cannot evaluate `if = \"{cond}\"`",
                        def.id
                    ))
                    .detail(e.to_string())
                })?;
            (!ok.is_true()).then(|| format!("`if = \"{cond}\"` is false"))
        }
        _ => None,
    };
    let result = if budget.is_zero() {
        Ok(StageResult::new(
            StageStatus::Timeout,
            "the run's total budget ran out before this stage",
        ))
    } else if let Some(why) = skip_reason {
        Ok(StageResult::new(StageStatus::Skipped, why))
    } else {
        stages::run(
            def,
            &mut StageCtx {
                env,
                st,
                id: &def.id,
                dir: stage_dir.clone(),
                attempt,
                budget,
                emit,
            },
        )
    };
    let duration = t0.elapsed();
    let (status, summary, agent_report) = match &result {
        Ok(r) => (r.status, r.summary.clone(), r.agent_report.clone()),
        Err(e) => (StageStatus::Error, e.message.clone(), None),
    };
    st.stages.push(StageRecord {
        id: def.id.clone(),
        kind,
        attempt,
        status,
        summary: summary.clone(),
        duration_s: duration.as_secs_f64(),
        budget_s: budget.as_secs_f64(),
        agent_report,
    });
    if let Err(e) = st.save(&env.run_dir) {
        return Err(io_error("write", &env.run_dir.join("state.json"), e));
    }
    let _ = std::fs::write(
        stage_dir.join("result.json"),
        serde_json::to_string_pretty(st.stages.last().expect("pushed")).unwrap_or_default(),
    );
    emit(Event::StageFinished {
        stage: def.id.clone(),
        attempt,
        status: status.as_str().into(),
        summary,
        duration_s: duration.as_secs_f64(),
    });
    result
}

/// The command that runs one test file, as fixci runs it (report options aside): the spec's
/// `test-command` with `{test_file}` substituted, else the runner detected from the file type
/// (see [`crate::runners::command::detect`]).
pub fn test_command(template: Option<&str>, test_file: &str) -> String {
    crate::verify::runner_for(test_file, template).display()
}

fn copy_file(from: &Path, to: &Path) -> Result<(), Error> {
    if let Some(d) = to.parent() {
        std::fs::create_dir_all(d).map_err(|e| io_error("create", d, e))?;
    }
    std::fs::copy(from, to).map_err(|e| io_error("copy", from, e))?;
    Ok(())
}

/// `path`, or `path-2`, `path-3`, ... if it exists.
fn unique_dir(path: &Path) -> PathBuf {
    let mut p = path.to_path_buf();
    let mut n = 2;
    while p.exists() {
        p = PathBuf::from(format!("{}-{n}", path.display()));
        n += 1;
    }
    p
}

/// The first component of `rel` that is a symlink in `tree`, if any: a path through a symlink
/// may lead outside the repository.
fn symlink_in_tree(repo: &git2::Repository, tree: &git2::Tree<'_>, rel: &str) -> Option<String> {
    let mut prefix = PathBuf::new();
    for c in Path::new(rel).components() {
        prefix.push(c);
        let entry = tree.get_path(&prefix).ok()?;
        if entry.filemode() == 0o120000 {
            return Some(prefix.display().to_string());
        }
        if entry.kind() != Some(git2::ObjectType::Tree) {
            break;
        }
    }
    let _ = repo;
    None
}
