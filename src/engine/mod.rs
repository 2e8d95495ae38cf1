//! The engine: executes a pipeline's stages in order under their budgets, runs the attempt
//! loop, and is the one writer of the run: every change to the state is an [`Event`] that the
//! engine applies through [`RunState::apply`] (the one reducer), then fans out to the run's
//! listeners (`events.jsonl`, the caller's progress display or recorder, the report writer).
//! The state is saved after every stage; the final status is decided in one place
//! ([`RunState::final_status`], at the end of the run). It knows nothing of how a stage does its
//! work: each kind lives in `stages/`.

pub mod dry_run;
pub mod guard;
pub mod needs;
pub mod ladder;
pub mod plan;
pub mod preflight;
pub mod retry;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use crate::stages::{RunEnv, RunRequest, eval_count};

use crate::error::{Error, io_error};
use crate::pipeline::{self, StageKind, Templates};
use crate::report::ReportWriter;
use crate::run_dir::workspace;
use crate::run_dir::{
    AttemptOutcome, Event, EventLog, Invocation, Listener, RepoState, Repro, RunDir, RunState,
    StageStatus, Status,
};
use crate::stages::{self, StageCtx, StageResult, forge_inputs};
use crate::vcs;

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
pub fn run(req: RunRequest, observer: &mut dyn Listener) -> Result<Outcome, Error> {
    start(req, None, observer)
}

/// Starts a new run that retries `earlier` (see [`retry`]): as [`run`], from the earlier run's
/// start commit, reusing its distilled log and confirmed reproduction.
pub fn run_retry(
    req: RunRequest,
    earlier: &retry::Earlier,
    observer: &mut dyn Listener,
) -> Result<Outcome, Error> {
    start(req, Some(earlier), observer)
}

fn start(
    req: RunRequest,
    earlier: Option<&retry::Earlier>,
    observer: &mut dyn Listener,
) -> Result<Outcome, Error> {
    let started = Instant::now();
    // The plan the run executes (as `--dry-run` prints it): a bad attempt ladder or `max`
    // stops the run before anything is cloned or written; so does a sandbox that was asked for
    // and is not usable here.
    let plan = plan::build(&req)?;
    let sandbox = crate::process::sandbox::decide(req.spec.spec.sandbox)?;
    // Pre-flight, before anything is cloned or written: the spec's repository checks when the
    // repository is at hand (exit 2 first), then every program the plan starts (exit 3).
    let found = preflight::without_writing(&req, true)?;
    if let Some(e) = found.missing.into_iter().next() {
        return Err(e);
    }
    let spec = &req.spec;
    let source = workspace::resolve_repo(spec, req.repo_flag.as_deref(), true)
        .map_err(|e| interrupted_before(&req, e))?;
    let repo = vcs::open(&source.root)
        .or_else(|_| vcs::discover(&source.root))
        .map_err(|e| Error::infra("cannot open the target repository").source(e))?;
    // A run URL is fetched first: a run still in progress is refused before anything is written.
    // A retry reuses the earlier run's log, issue and start commit: nothing is fetched again.
    let prefetched = match &spec.logs {
        crate::spec::LogsInput::Url(u) if earlier.is_none() => Some(
            forge_inputs::prefetch(u, req.api_url.as_deref())
                .map_err(|e| interrupted_before(&req, e))?,
        ),
        _ => None,
    };
    let issue = match earlier {
        Some(e) => e.st.issue.clone(),
        None => forge_inputs::issue_of(spec, req.api_url.as_deref())
            .map_err(|e| interrupted_before(&req, e))?,
    };
    // The run's head SHA is where the reproduction starts, when the repository has it.
    let head = prefetched
        .as_ref()
        .map(|p| p.run.head_sha.clone())
        .or_else(|| earlier.map(|e| e.st.repo.start_commit.clone()))
        .and_then(|sha| git2::Oid::from_str(&sha).ok())
        .filter(|oid| repo.find_commit(*oid).is_ok());
    let commits = preflight::repository(spec, &repo, &source.root, head)?;
    let (base_commit, start_commit) = (commits.base, commits.start);

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
    let run_id = new_run_id(&slug);
    // A signal before anything is written ends the run here, leaving nothing behind.
    if req.cancel.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(interrupted_before(&req, Error::interrupted("")));
    }
    let run_dir = RunDir::create(&req.out_dir, &run_id)?;
    let run_id = run_dir.id();

    let write = |path: PathBuf, bytes: &[u8]| {
        crate::run_dir::write_atomic(&path, bytes).map_err(|e| io_error("write", &path, e))
    };
    write(
        run_dir.spec_file(),
        crate::redact::redact(&serde_json::to_string_pretty(&spec.spec).unwrap_or_default())
            .as_bytes(),
    )?;
    write(run_dir.pipeline_file(), req.pipeline.text.as_bytes())?;

    // An event's later attempt continues its fix branch (`fixci run --event`).
    // A new branch named after the failure signature keeps that name, so two runs for one
    // failure meet on one branch (the second push is refused; `cli::ci` reads that).
    let branch = match spec.ci.as_ref().and_then(|c| {
        c.continue_branch
            .clone()
            .or_else(|| c.new_branch().map(str::to_string))
    }) {
        Some(b) => b,
        None => vcs::free_branch_name(&repo, &slug),
    };
    let worktree = run_dir.worktree();
    // The agent works in a private clone (its own `.git`, objects borrowed from the user's
    // repository); the branch reaches the user's repository only when there is a fix.
    let clone = vcs::private_clone(&repo, &worktree, &branch, start_commit)
        .map_err(|e| Error::infra("cannot create the private clone").source(e))?;
    // The base branch too, under its own name, so `git diff main` works in the clone.
    if let Ok(c) = clone.find_commit(base_commit) {
        let _ = clone.branch(&spec.spec.base, &c, false);
    }
    drop(clone);

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
    st.invocation = Invocation {
        pipeline_file: match &req.pipeline.origin {
            pipeline::Origin::File(f) => Some(f.clone()),
            pipeline::Origin::Builtin => None,
        },
        agent_flag: req.agent_flag.clone(),
        model_flag: req.spec.model_flag.clone(),
        repo_flag: req.repo_flag.clone(),
        no_pr: req.no_pr,
        total_budget_s: plan.total.as_secs_f64(),
        api_url: req.api_url.clone(),
        keep_worktree: spec.spec.keep_worktree,
    };
    st.issue = issue;
    st.feature = req.pipeline.pipeline.builds_feature();
    // Where the run publishes is fixed now, before any agent runs.
    st.forge = guard::forge_target(
        &repo,
        &spec.spec.pr.remote_name(),
        spec.spec.url.as_deref(),
        req.api_url.as_deref(),
    );
    st.containment.sandbox = Some(sandbox);
    if let Some(t) = &spec.spec.existing_test_path {
        let copy = run_dir.repro_copy(t);
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
    if let Some(e) = earlier {
        retry::seed(&mut st, e, &run_dir, &req.pipeline.pipeline)?;
    }
    run_dir.save_state(&st)?;

    let env = make_env(req, run_dir, started, plan.total, false, prefetched);
    env.user_repo
        .record(&st.repo.root)
        .map_err(|e| Error::infra("cannot fingerprint the target repository").source(e))?;
    drive(env, st, &plan, observer)
}

/// The error of a run stopped before its run directory exists: when a signal arrived, the
/// interruption (exit 130, one line) whatever `e` was (a fetch cut short by it, say); else `e`.
fn interrupted_before(req: &RunRequest, e: Error) -> Error {
    if req.cancel.load(std::sync::atomic::Ordering::SeqCst) {
        Error::interrupted("interrupted before the run started; nothing was written")
    } else {
        e
    }
}

/// A run id: the local start time to the second, the slug, then 6 hex digits from the clock's
/// nanoseconds and the process id, so that runs started in the same second (by any process,
/// with any `--out`) get different ids, and so different names in the repository.
fn new_run_id(slug: &str) -> String {
    let now = chrono::Local::now();
    let nanos = now.timestamp_subsec_nanos() as u64;
    let mix = (nanos ^ (u64::from(std::process::id()) << 20)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!(
        "{}_{}_{:06x}",
        now.format("%Y-%m-%d_%H-%M-%S"),
        slug,
        (mix >> 40) & 0xff_ffff
    )
}

fn make_env(
    req: RunRequest,
    run_dir: RunDir,
    started: Instant,
    budget: Duration,
    resumed: bool,
    prefetched: Option<forge_inputs::Prefetched>,
) -> RunEnv {
    let grace = req
        .pipeline
        .pipeline
        .defaults
        .grace
        .unwrap_or(crate::defaults::GRACE);
    let mut template_roots = req.template_roots.clone();
    template_roots.extend(req.pipeline.template_roots());
    template_roots.push(req.spec.dir.clone());
    // fixci's own places, when they lie inside the repository, are not the agent's changes.
    let user_repo = vcs::UserRepoGuard::default();
    user_repo.exclude(
        run_dir.path().parent().map(Path::to_path_buf).into_iter()
            .chain([crate::run_dir::workspace::cache_dir()])
            .collect(),
    );
    RunEnv {
        req,
        run_dir,
        template_roots,
        grace,
        deadline: Instant::now() + budget,
        started,
        resumed,
        prefetched,
        user_repo,
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
    run_dir: &RunDir,
    observer: &mut dyn Listener,
) -> Result<Outcome, Error> {
    let plan = plan::build(&req)?;
    preflight::programs(&req)?;
    let mut st = run_dir.load_state()?;
    if !matches!(st.status, Status::Running | Status::Interrupted) {
        return Err(Error::usage(format!(
            "run `{}` already ended with status `{}`; nothing to resume",
            st.run_id,
            st.status.as_str()
        )));
    }
    if let Some(pid) = run_dir.live_pid() {
        return Err(Error::usage(format!(
            "run `{}` is still running (fixci pid {pid})",
            st.run_id
        ))
        .hint(format!("stop it first with `fixci kill {}`", st.run_id)));
    }
    // A child left behind by a fixci that was killed outright is stopped before going on.
    run_dir.kill_child();
    let wt = st.worktree.clone().unwrap_or_default();
    if !wt.exists() {
        // Gone (removed by hand): rebuilt from the repository and fixci's records.
        crate::run_dir::cleanup::rebuild_clone(run_dir.path(), &st)?;
    } else if !vcs::clone::is_private_clone(&wt) {
        return Err(Error::usage(format!(
            "run `{}` cannot be resumed: its worktree `{}` is not a private clone (a run of an older fixci)",
            st.run_id,
            wt.display()
        )));
    }
    // The fix branch lives in the private clone until there is a fix.
    let repo =
        vcs::open(&wt).map_err(|e| Error::infra("cannot open the private clone").source(e))?;
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
    // The machine may have changed since the run started: the sandbox is decided again.
    st.containment.sandbox = Some(crate::process::sandbox::decide(req.spec.spec.sandbox)?);
    let used: f64 = st.stages.iter().map(|s| s.duration_s).sum();
    let total = Duration::from_secs_f64(
        (st.invocation.total_budget_s - used).max(crate::defaults::RESUME_MIN_BUDGET.as_secs_f64()),
    );
    let env = make_env(req, run_dir.clone(), Instant::now(), total, true, None);
    // The user may have worked in the repository since: what counts is how it is now.
    env.user_repo
        .record(&st.repo.root)
        .map_err(|e| Error::infra("cannot fingerprint the target repository").source(e))?;
    drive(env, st, &plan, observer)
}

/// The one writer of a run: owns the state, applies every event to it (the one reducer,
/// [`RunState::apply`]), then hands the event to `events.jsonl` and the listeners.
struct Recorder<'l> {
    st: RunState,
    dir: RunDir,
    log: EventLog,
    listeners: Vec<&'l mut dyn Listener>,
}

impl stages::Recorder for Recorder<'_> {
    fn state(&self) -> &RunState {
        &self.st
    }

    fn emit(&mut self, e: Event) {
        self.st.apply(&e);
        self.log.write(&e);
        for l in self.listeners.iter_mut() {
            l.event(&e, &self.st);
        }
    }
}

impl Recorder<'_> {
    /// Writes `state.json`.
    fn save(&self) -> Result<(), Error> {
        self.dir.save_state(&self.st)
    }

    /// Stops the run with `status` and `reason`, unless it already stopped (the first reason
    /// wins).
    fn stop(&mut self, status: Status, reason: &str) {
        if self.st.status == Status::Running {
            stages::Recorder::emit(
                self,
                Event::RunStopping {
                    status,
                    reason: reason.to_string(),
                },
            );
        }
    }
}

/// Runs the remaining stages of `st`, decides the final status, and records the end (the
/// report writer writes `report.md`, `result.json` and `fix.diff` then).
fn drive(
    env: RunEnv,
    st: RunState,
    plan: &plan::Plan,
    observer: &mut dyn Listener,
) -> Result<Outcome, Error> {
    use stages::Recorder as _;
    let run_dir = env.run_dir.clone();
    let started = Instant::now();
    let _active = crate::process::reaper::ActiveRun::enter();
    run_dir.claim()?;
    let log = EventLog::open(&run_dir.events_file())
        .map_err(|e| io_error("write", &run_dir.events_file(), e))?;
    let mut report = ReportWriter::new(run_dir.clone(), env.req.spec.clone());
    let mut rec = Recorder {
        st,
        dir: run_dir.clone(),
        log,
        listeners: vec![observer, &mut report],
    };
    if env.resumed {
        rec.emit(Event::RunResumed {
            run_id: rec.st.run_id.clone(),
            run_dir: run_dir.path().display().to_string(),
            pid: std::process::id(),
        });
    } else {
        rec.emit(Event::RunStarted {
            run_id: rec.st.run_id.clone(),
            pipeline: rec.st.pipeline.clone(),
            run_dir: run_dir.path().display().to_string(),
        });
    }
    rec.save()?;
    let result = execute(&env, &mut rec, plan);
    // No process an agent started is alive when the verdict is written.
    if let Some(e) = crate::contain::reap(("end", None), "before the verdict") {
        rec.emit(e);
    }
    let (status, reason) = rec.st.final_status(env.cancelled());
    if !matches!(status, Status::Interrupted | Status::Running) {
        let keep = env.req.spec.spec.keep_worktree;
        let cleanup = crate::run_dir::cleanup::after_run(run_dir.path(), &rec.st, status, keep);
        rec.emit(Event::CleanedUp { cleanup });
    }
    rec.emit(Event::RunFinished {
        status,
        reason,
        duration_s: started.elapsed().as_secs_f64(),
        finished_at: chrono::Utc::now().to_rfc3339(),
    });
    let saved = rec.save();
    let st = rec.st;
    run_dir.release();
    saved?;
    if let Some(e) = report.take_error() {
        return Err(e);
    }
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
        run_dir: run_dir.path().to_path_buf(),
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

/// The stage loop. Stops the run on the first failure; `always` stages still run. A
/// deprecated `report` stage is a no-op (the report is written when the run ends).
fn execute(env: &RunEnv, rec: &mut Recorder<'_>, plan: &plan::Plan) -> Result<(), Error> {
    let mut deferred: Option<Error> = None;
    for ps in &plan.stages {
        let def = &ps.def;
        if def.kind == StageKind::Report {
            continue;
        }
        if done(&rec.st, &def.id) && !def.always {
            continue;
        }
        let failed = rec.st.status != Status::Running;
        if failed && !def.always {
            continue;
        }
        if env.cancelled() && !def.always {
            rec.stop(Status::Interrupted, &interrupted_at(&def.id));
            continue;
        }
        if def.kind == StageKind::Attempts {
            if let Err(e) = attempts(env, rec, ps) {
                if env.cancelled() {
                    rec.stop(Status::Interrupted, &interrupted_at(&def.id));
                } else {
                    rec.stop(Status::Failed, &e.message);
                    deferred = Some(e);
                }
            }
            continue;
        }
        match run_stage(env, rec, ps, None) {
            Ok(r) if matches!(r.status, StageStatus::Passed | StageStatus::Skipped) => {}
            // A stage cut short by a signal did not fail: the run stops resumable there.
            _ if env.cancelled() && !def.always => {
                rec.stop(Status::Interrupted, &interrupted_at(&def.id));
            }
            Ok(r) => {
                let reason = def.fail_reason.clone().unwrap_or_else(|| {
                    format!("stage `{}` {}: {}", def.id, r.status.as_str(), r.summary)
                });
                rec.stop(Status::Failed, &reason);
            }
            Err(e) => {
                rec.stop(
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

/// The attempt loop: runs its stages until one attempt passes them all, at most `max` times;
/// each new attempt starts from a clean worktree (base + the reproduction test) and sees the
/// previous attempts' diffs and failures in its prompt. Each attempt runs the agent and model
/// the ladder chooses (see [`ladder`]), handed to its stages as an [`ladder::Attempt`]; the
/// run's environment is never changed, so stages outside the loop keep the run's own.
fn attempts(env: &RunEnv, rec: &mut Recorder<'_>, ps: &plan::PlannedStage) -> Result<(), Error> {
    use stages::Recorder as _;
    let def = &ps.def;
    let max = ps.max();
    let subs = &ps.stages;
    if rec
        .st
        .attempts
        .iter()
        .any(|a| a.outcome == AttemptOutcome::Passed)
    {
        return Ok(());
    }
    // An attempt cut short by an interruption is redone from a clean worktree.
    if let Some(a) = rec
        .st
        .attempts
        .last()
        .filter(|a| a.outcome == AttemptOutcome::Running)
    {
        let attempt = a.number;
        rec.emit(Event::AttemptDiscarded { attempt });
    }
    let first = rec.st.attempts.len() as u32 + 1;
    if env.resumed && first <= max {
        stages::reset_for_attempt(env, &rec.st)?;
    }
    for n in first..=max {
        // A stage may end the whole run (an agent that changed fixci's run directory).
        if rec.st.status != Status::Running {
            return Ok(());
        }
        if env.cancelled() {
            rec.stop(Status::Interrupted, &interrupted_at(&def.id));
            return Ok(());
        }
        if n > 1 {
            if let Some(who) = human_commits(&rec.st) {
                rec.stop(
                    Status::Escalated,
                    &format!(
                        "a commit by someone other than fixci appeared on the fix branch ({who}); automatic attempts stopped"
                    ),
                );
                return Ok(());
            }
            if n > first {
                stages::reset_for_attempt(env, &rec.st)?;
            }
        }
        let chosen = &ps.attempts[(n - 1) as usize];
        rec.emit(Event::AttemptStarted {
            attempt: n,
            max,
            agent: chosen.agent.name.clone(),
            model: chosen.model.clone(),
        });
        let mut failure: Option<(AttemptOutcome, String)> = None;
        for sub in subs {
            let r = run_stage(env, rec, sub, Some(chosen));
            // A stage cut short by a signal is no failure of the attempt: the attempt stays
            // `running` and a resume redoes it from a clean worktree.
            if env.cancelled()
                && !matches!(&r, Ok(r) if matches!(r.status, StageStatus::Passed | StageStatus::Skipped))
            {
                rec.stop(Status::Interrupted, &interrupted_at(&sub.def.id));
                return Ok(());
            }
            let r = r?;
            if rec.st.status != Status::Running {
                // The run ended inside the attempt (the user's repository changed).
                rec.emit(Event::AttemptFinished {
                    attempt: n,
                    outcome: r.status.into(),
                    reason: rec.st.reason.clone(),
                });
                rec.save()?;
                return Ok(());
            }
            if !matches!(r.status, StageStatus::Passed | StageStatus::Skipped) {
                failure = Some((
                    r.status.into(),
                    format!("stage `{}` {}: {}", sub.def.id, r.status.as_str(), r.summary),
                ));
                break;
            }
            if env.cancelled() {
                rec.stop(Status::Interrupted, &interrupted_at(&sub.def.id));
                return Ok(());
            }
        }
        match failure {
            None => {
                rec.emit(Event::AttemptFinished {
                    attempt: n,
                    outcome: AttemptOutcome::Passed,
                    reason: None,
                });
                rec.save()?;
                return Ok(());
            }
            Some((outcome, reason)) => {
                rec.emit(Event::AttemptFinished {
                    attempt: n,
                    outcome,
                    reason: Some(reason),
                });
                rec.save()?;
            }
        }
    }
    rec.stop(
        Status::Escalated,
        &format!(
            "no fix passed verification in {max} attempt{}",
            if max == 1 { "" } else { "s" }
        ),
    );
    Ok(())
}

/// The reason of a run stopped by a signal at (or just before) stage `id`.
fn interrupted_at(id: &str) -> String {
    format!("interrupted at {id}")
}

/// Commits on the fix branch not made by fixci, as `id by Name <email>`.
fn human_commits(st: &RunState) -> Option<String> {
    let repo = vcs::open(st.worktree.as_ref()?).ok()?;
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
    rec: &mut Recorder<'_>,
    ps: &plan::PlannedStage,
    plan: Option<&ladder::Attempt>,
) -> Result<StageResult, Error> {
    use stages::Recorder as _;
    let def = &ps.def;
    let attempt = plan.map(|a| a.number);
    let model = match plan {
        Some(a) => a.model.as_deref(),
        None => env.spec().spec.model.as_deref(),
    };
    let planned = ps.budget;
    let remaining = env.deadline.saturating_duration_since(Instant::now());
    let budget = if def.always {
        planned
    } else {
        planned.min(remaining)
    };
    let stage_dir = env.run_dir.stage_dir(&def.id, attempt);
    std::fs::create_dir_all(&stage_dir).map_err(|e| io_error("create", &stage_dir, e))?;
    rec.emit(Event::StageStarted {
        stage: def.id.clone(),
        kind: def.kind,
        attempt,
        budget_s: budget.as_secs_f64(),
    });
    // Whatever an earlier stage left running is killed before this one (a verification
    // included) starts.
    if let Some(e) = crate::contain::reap((&def.id, attempt), "before the stage") {
        rec.emit(e);
    }
    let t0 = Instant::now();
    let skip_reason = match &def.condition {
        Some(cond) if !budget.is_zero() => {
            let ctx =
                stages::prompt_context(env, &rec.st, &def.id, &stage_dir, attempt, model, budget);
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
            &mut StageCtx::new(env, rec, &def.id, stage_dir.clone(), plan, budget),
        )
    };
    let duration = t0.elapsed();
    // After code an agent wrote ran, the user's repository must be as it was.
    let result = match guard::runs_agent_code(def.kind)
        .then(|| env.user_repo.changed())
        .flatten()
    {
        Some(why) => {
            rec.stop(Status::Failed, &why);
            Ok(StageResult::failed(why))
        }
        None => result,
    };
    let (mut status, mut summary, agent_report, refused) = match &result {
        Ok(r) => (
            r.status,
            r.summary.clone(),
            r.agent_report.clone(),
            r.refused,
        ),
        Err(e) => (StageStatus::Error, e.message.clone(), None, false),
    };
    // What a stage cut short by a signal produced says nothing about the run.
    if env.cancelled() && !matches!(status, StageStatus::Passed | StageStatus::Skipped) {
        status = StageStatus::Interrupted;
        summary = format!("interrupted ({summary})");
    }
    rec.emit(Event::StageFinished {
        stage: def.id.clone(),
        kind: def.kind,
        attempt,
        status,
        summary,
        duration_s: duration.as_secs_f64(),
        budget_s: budget.as_secs_f64(),
        refused,
        agent_report,
    });
    rec.save()?;
    let _ = std::fs::write(
        RunDir::stage_result_file(&stage_dir),
        serde_json::to_string_pretty(rec.st.stages.last().expect("recorded")).unwrap_or_default(),
    );
    result
}

fn copy_file(from: &Path, to: &Path) -> Result<(), Error> {
    if let Some(d) = to.parent() {
        std::fs::create_dir_all(d).map_err(|e| io_error("create", d, e))?;
    }
    std::fs::copy(from, to).map_err(|e| io_error("copy", from, e))?;
    Ok(())
}

/// The first component of `rel` that is a symlink in `tree`, if any: a path through a symlink
/// may lead outside the repository.
fn symlink_in_tree(tree: &git2::Tree<'_>, rel: &str) -> Option<String> {
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
    None
}
