//! Executing a replay: the plan (every case × variant × epoch, keyed by content), the shard one
//! process runs, a bounded pool of workers that run items through the engine (each in its own
//! repository clone, worktree and budget), the measurement of the case's fail-to-pass and
//! pass-to-pass commands on the fix branch, and one atomically written record per item.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::case::{Case, content_hash};
use super::env::{Environment, ItemCommand};
use super::plan::{Plan, PlanItem, Shard};
use super::record::{self, CommandCheck, Funnel, Record, StageTiming, Tokens, Verdict};
use super::variant::Variant;
use crate::agent::{self, Agent};
use crate::engine::{self, RunRequest};
use crate::error::{Error, io_error};
use crate::judge::failure_kind::{FailureKind, classify_run, failure_line};
use crate::pipeline;
use crate::pipeline::StageKind;
use crate::process;
use crate::run_dir::{
    Event, Listener, ResultJson, RunDir, RunState, StageRecord, StageStatus, Status,
};
use crate::spec::LoadedSpec;

/// fixci's version, part of every record key.
pub const FIXCI_VERSION: &str = env!("CARGO_PKG_VERSION");

/// What the agent of an item is.
#[derive(Debug, Clone)]
pub enum ItemAgent {
    /// Apply the case's gold patch.
    Gold,
    /// Run the engine with this agent.
    Engine(Agent),
}

/// One planned item, resolved: everything needed to run it.
#[derive(Debug, Clone)]
pub struct Item {
    /// Record key.
    pub key: String,
    /// Index of the case in the corpus.
    pub case: usize,
    /// Index of the variant.
    pub variant: usize,
    /// 0-based epoch.
    pub epoch: u32,
    /// The agent.
    pub agent: ItemAgent,
    /// The job spec with the variant applied (model, agent, budgets, attempts, start commit).
    pub spec: LoadedSpec,
    /// The selected pipeline.
    pub pipeline: Option<pipeline::Loaded>,
    /// The case's environment with the variant's layered over it.
    pub environment: Environment,
}

/// Builds the plan: for every case, variant and epoch (in that order), the job spec with the
/// variant applied, the pipeline and agent it selects, and the record key: hex SHA-256 of the
/// case's content hash, the variant's files hash, the agent (name, argv, env names), the model,
/// the epoch and fixci's version.
///
/// Errors (exit 2): a variant whose pipeline, budgets or agent do not fit a case (case and
/// variant named).
pub fn plan(
    cases: &[Case],
    variants: &[Variant],
    epochs: u32,
    agent_flag: Option<&str>,
) -> Result<(Plan, Vec<Item>), Error> {
    let gold = agent_flag == Some("gold");
    let mut items = Vec::new();
    for (ci, case) in cases.iter().enumerate() {
        for (vi, variant) in variants.iter().enumerate() {
            let ctx = |e: Error| {
                e.hint(format!(
                    "case `{}` ({}) with variant `{}` ({})",
                    case.id,
                    case.file.display(),
                    variant.name,
                    variant.source.display()
                ))
            };
            let mut spec = case.spec.clone();
            spec.spec.commit = Some(case.commit.clone());
            spec.spec.base = case.commit.clone();
            spec.spec.pr.escalate = false;
            if let Some(m) = &variant.model {
                spec.spec.model = Some(m.clone());
            }
            if let Some(n) = variant.max_attempts {
                spec.spec.max_attempts = Some(n);
            }
            for (k, v) in &variant.budgets {
                spec.spec.budgets.stages.insert(k.clone(), *v);
            }
            let (agent, pipeline, agent_id) = if gold {
                if case.gold_patch.is_none() {
                    return Err(ctx(Error::usage(format!(
                        "case `{}` has no `gold-patch`, so `--agent gold` cannot check it",
                        case.id
                    ))));
                }
                (ItemAgent::Gold, None, "gold".to_string())
            } else {
                let mut dirs = variant.pipeline_dirs.clone();
                dirs.push(spec.dir.clone());
                let p = pipeline::select(&spec, variant.pipeline.as_deref(), &dirs).map_err(ctx)?;
                let (agent_spec, agent_dir) = match &variant.agent {
                    Some(a) => (Some(a), variant.dir.as_path()),
                    None => (spec.spec.agent.as_ref(), spec.dir.as_path()),
                };
                let a = agent::resolve(
                    agent_flag,
                    agent_spec,
                    p.pipeline.defaults.agent.as_deref(),
                    spec.spec.model.as_deref(),
                    agent_dir,
                )
                .map_err(ctx)?;
                let env_names: Vec<&String> = a.env.keys().collect();
                let id = format!("{} {:?} {:?}", a.name, a.argv, env_names);
                (ItemAgent::Engine(a), Some(p), id)
            };
            let model = spec.spec.model.clone().unwrap_or_default();
            let environment = case.environment.layered(&variant.environment);
            for epoch in 0..epochs {
                let key = content_hash([
                    case.hash.as_bytes(),
                    variant.hash.as_bytes(),
                    agent_id.as_bytes(),
                    model.as_bytes(),
                    epoch.to_string().as_bytes(),
                    FIXCI_VERSION.as_bytes(),
                ]);
                items.push(Item {
                    key,
                    case: ci,
                    variant: vi,
                    epoch,
                    agent: agent.clone(),
                    spec: spec.clone(),
                    pipeline: pipeline.clone(),
                    environment: environment.clone(),
                });
            }
        }
    }
    let plan = Plan {
        format: 1,
        fixci_version: FIXCI_VERSION.into(),
        epochs,
        variants: variants.iter().map(|v| v.name.clone()).collect(),
        cases: cases.iter().map(|c| c.id.clone()).collect(),
        items: items
            .iter()
            .map(|i| PlanItem {
                key: i.key.clone(),
                case: cases[i.case].id.clone(),
                variant: variants[i.variant].name.clone(),
                epoch: i.epoch,
            })
            .collect(),
    };
    Ok((plan, items))
}

/// Parses `--shard`: `i/n` (0-based `i < n`) or `auto/n`, which reads the index from
/// `JOB_COMPLETION_INDEX` (Kubernetes Indexed Jobs), `AWS_BATCH_JOB_ARRAY_INDEX` (AWS Batch
/// array jobs) or `SLURM_ARRAY_TASK_ID` (Slurm job arrays), the first one set. `env` looks a
/// variable up (the process environment in production).
///
/// Errors (exit 2): malformed text, `n = 0`, `i >= n`, `auto` with none of the variables set
/// or a non-integer value.
pub fn parse_shard(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Shard, Error> {
    let bad = |why: String| {
        Error::usage(format!("invalid `--shard {text}`"))
            .detail(why)
            .hint("use `--shard I/N` with 0 <= I < N, or `--shard auto/N` inside a Kubernetes Indexed Job, an AWS Batch array job or a Slurm job array")
    };
    let (i, n) = text
        .split_once('/')
        .ok_or_else(|| bad("expected `I/N` or `auto/N`".into()))?;
    let count: u32 = n
        .trim()
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| bad(format!("`{n}` is not a positive shard count")))?;
    let index: u32 = if i.trim() == "auto" {
        let vars = [
            "JOB_COMPLETION_INDEX",
            "AWS_BATCH_JOB_ARRAY_INDEX",
            "SLURM_ARRAY_TASK_ID",
        ];
        let (var, value) = vars
            .iter()
            .find_map(|v| env(v).map(|x| (*v, x)))
            .ok_or_else(|| bad(format!("none of {} is set", vars.join(", "))))?;
        value
            .trim()
            .parse()
            .map_err(|_| bad(format!("{var}=`{value}` is not a shard index")))?
    } else {
        i.trim()
            .parse()
            .map_err(|_| bad(format!("`{i}` is not a shard index")))?
    };
    if index >= count {
        return Err(bad(format!(
            "shard index {index} is not below the shard count {count} (indices are 0-based)"
        )));
    }
    Ok(Shard { index, count })
}

/// Options of [`execute`].
pub struct Options<'a> {
    /// The corpus.
    pub cases: &'a [Case],
    /// The variants.
    pub variants: &'a [Variant],
    /// The replay output folder.
    pub out: PathBuf,
    /// Workers.
    pub jobs: u32,
    /// Infrastructure retries per item.
    pub retries: u32,
    /// Keep clones and worktrees.
    pub keep_work: bool,
    /// Set by the signal handler.
    pub cancel: &'static AtomicBool,
}

/// What [`execute`] did.
#[derive(Debug, Default)]
pub struct Summary {
    /// Items of the shard.
    pub planned: usize,
    /// Records written by this process, in the order they finished.
    pub written: Vec<Record>,
    /// True when interrupted before every item ran.
    pub interrupted: bool,
}

/// Progress callback: (items done, items to do, the record just written).
pub type OnRecord<'a> = dyn Fn(usize, usize, &Record) + Sync + 'a;

/// Runs `items` with `opts.jobs` workers, writing one record per finished item. An item that
/// fails for infrastructure reasons (exit 3: clone, git, disk) is retried up to `opts.retries`
/// times and then recorded as `infra-error`; an interrupted item writes no record (a later
/// `--resume` runs it again).
///
/// Errors (exit 3): a record cannot be written.
pub fn execute(
    opts: &Options<'_>,
    items: &[Item],
    on_record: &OnRecord<'_>,
) -> Result<Summary, Error> {
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let written = Mutex::new(Vec::new());
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    let workers = (opts.jobs as usize).clamp(1, items.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    if opts.cancel.load(Ordering::SeqCst) || failure.lock().unwrap().is_some() {
                        return;
                    }
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(item) = items.get(i) else { return };
                    match run_item(opts, item) {
                        Ok(Some(rec)) => {
                            if let Err(e) = record::write(&opts.out, &rec) {
                                *failure.lock().unwrap() = Some(e);
                                return;
                            }
                            let n = done.fetch_add(1, Ordering::SeqCst) + 1;
                            on_record(n, items.len(), &rec);
                            written.lock().unwrap().push(rec);
                        }
                        Ok(None) => return,
                        Err(e) => {
                            *failure.lock().unwrap() = Some(e);
                            return;
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().unwrap() {
        return Err(e);
    }
    let written = written.into_inner().unwrap();
    Ok(Summary {
        planned: items.len(),
        interrupted: written.len() < items.len(),
        written,
    })
}

/// The item's scratch folder (repository clone): `work/<key>`.
pub fn work_dir(out: &Path, key: &str) -> PathBuf {
    out.join("work").join(key)
}

/// The item's engine run folder: `runs/<key>`.
pub fn runs_dir(out: &Path, key: &str) -> PathBuf {
    out.join("runs").join(key)
}

/// Removes what an unfinished earlier attempt at an item left behind: kills a child process
/// group recorded in a `child.pid` (a replay killed outright leaves its agents running), then
/// deletes the item's work and run folders.
pub fn clear_leftovers(out: &Path, key: &str) {
    let runs = runs_dir(out, key);
    if let Ok(entries) = std::fs::read_dir(&runs) {
        for e in entries.flatten() {
            RunDir::new(e.path()).kill_child();
        }
    }
    let _ = std::fs::remove_dir_all(&runs);
    let _ = std::fs::remove_dir_all(work_dir(out, key));
}

/// Replay's recorder: a listener of the item's run that keeps the state as it was when the
/// run finished (replay shows its own progress, so it prints nothing).
#[derive(Default)]
struct ItemRecorder {
    finished: Option<RunState>,
}

impl Listener for ItemRecorder {
    fn event(&mut self, e: &Event, st: &RunState) {
        if let Event::RunFinished { .. } = e {
            self.finished = Some(st.clone());
        }
    }
}

/// Runs one item with infrastructure retries; `None` when interrupted.
fn run_item(opts: &Options<'_>, item: &Item) -> Result<Option<Record>, Error> {
    let case = &opts.cases[item.case];
    let variant = &opts.variants[item.variant];
    let mut tries = 0;
    // Wall time covers every try and the clean-up.
    let started = Instant::now();
    loop {
        clear_leftovers(&opts.out, &item.key);
        let mut rec = blank_record(item, case, variant);
        let result = match &item.agent {
            ItemAgent::Gold => run_gold(opts, item, case, &mut rec),
            ItemAgent::Engine(a) => run_engine(opts, item, case, variant, a, &mut rec),
        };
        match result {
            Err(e) if e.exit_code() == crate::exit_codes::INTERRUPTED => return Ok(None),
            _ if opts.cancel.load(Ordering::SeqCst) => return Ok(None),
            Err(e) if e.exit_code() == crate::exit_codes::INFRA && tries < opts.retries => {
                tries += 1;
                continue;
            }
            Err(e) => {
                rec.verdict = Verdict::InfraError;
                rec.reason = one_line(&e.render());
            }
            Ok(()) => {}
        }
        rec.retries = tries;
        if !opts.keep_work {
            let _ = std::fs::remove_dir_all(work_dir(&opts.out, &item.key));
            if let Ok(entries) = std::fs::read_dir(runs_dir(&opts.out, &item.key)) {
                for e in entries.flatten() {
                    let _ = std::fs::remove_dir_all(RunDir::new(e.path()).worktree());
                }
            }
        }
        // The clean-up is part of the item's cost.
        rec.wall_s = started.elapsed().as_secs_f64();
        rec.finished_at = chrono::Local::now().to_rfc3339();
        return Ok(Some(rec));
    }
}

fn one_line(s: &str) -> String {
    let s: Vec<&str> = s.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let s = s.join(" | ");
    if s.len() > 500 {
        // (`str::floor_char_boundary` is newer than the MSRV, 1.85)
        let end = (0..=500).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
        format!("{}…", &s[..end])
    } else {
        s
    }
}

fn blank_record(item: &Item, case: &Case, variant: &Variant) -> Record {
    let (agent, model) = match &item.agent {
        ItemAgent::Gold => ("gold".to_string(), None),
        ItemAgent::Engine(a) => (a.name.clone(), item.spec.spec.model.clone()),
    };
    Record {
        format: record::RECORD_FORMAT,
        key: item.key.clone(),
        case: case.id.clone(),
        repo: case.repo.clone(),
        tags: case.tags.clone(),
        deterministic: case.spec.spec.deterministic,
        variant: variant.name.clone(),
        agent,
        model,
        epoch: item.epoch,
        fixci_version: FIXCI_VERSION.into(),
        verdict: Verdict::Unresolved,
        reason: String::new(),
        funnel: Funnel::default(),
        setup: Vec::new(),
        fail_to_pass_before: Vec::new(),
        pass_to_pass_before: Vec::new(),
        fail_to_pass: Vec::new(),
        pass_to_pass: Vec::new(),
        flags: Vec::new(),
        wall_s: 0.0,
        agent_and_tests_s: 0.0,
        stages: Vec::new(),
        attempts: 0,
        tokens: None,
        cost_usd: None,
        retries: 0,
        run_dir: None,
        finished_at: String::new(),
    }
}

/// Runs `git` with `args` in `cwd`; exit 3 with git's stderr on failure.
pub(crate) fn git(cwd: &Path, args: &[&str]) -> Result<String, Error> {
    let out = crate::vcs::git_cmd::git()
        .args(args)
        .current_dir(cwd)
        .output()
        .map_err(|e| Error::infra("cannot run git").source(e))?;
    if !out.status.success() {
        return Err(Error::infra(format!("`git {}` failed", args.join(" ")))
            .detail(String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Serialises clones of the same remote into the shared cache across this process's workers.
static CACHE_LOCK: Mutex<()> = Mutex::new(());

/// A case's repository cloned for one item.
pub(crate) struct Cloned {
    /// The case's commit, resolved to a SHA.
    pub commit: String,
    /// The repository's root commit reachable from the case's commit (the smallest SHA when
    /// there are several): the repository's identity, whatever its file name or URL.
    pub root: String,
}

/// Clones the case's repository into `dest` without a checkout and checks that it has the
/// case's commit. A URL is cloned once into fixci's cache and then cloned locally from there.
///
/// Errors: the clone fails (exit 3); the commit is missing (exit 3, named).
pub(crate) fn clone_case(case: &Case, dest: &Path) -> Result<Cloned, Error> {
    let source = if crate::spec::is_remote_url(&case.repo_source) {
        let _guard = CACHE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let cached = crate::run_dir::workspace::cache_dir()
            .join("replay-repos")
            .join(
                content_hash([case.repo_source.as_bytes()])
                    .get(..16)
                    .unwrap_or("repo"),
            );
        crate::vcs::clone_or_fetch(&case.repo_source, &cached)
            .map_err(|e| Error::infra(format!("cannot clone `{}`", case.repo_source)).source(e))?;
        cached.display().to_string()
    } else {
        case.repo_source.clone()
    };
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io_error("create", parent, e))?;
    }
    git(
        dest.parent().unwrap_or(Path::new("/")),
        &[
            "clone",
            "-q",
            "--no-checkout",
            &source,
            &dest.display().to_string(),
        ],
    )?;
    let commit = git(
        dest,
        &[
            "rev-parse",
            "--verify",
            &format!("{}^{{commit}}", case.commit),
        ],
    )
    .map_err(|_| {
        Error::infra(format!(
            "commit `{}` of case `{}` is not in `{}`",
            case.commit, case.id, case.repo
        ))
    })?;
    let roots = git(dest, &["rev-list", "--max-parents=0", &commit])?;
    let root = roots
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .min()
        .unwrap_or(&commit)
        .to_string();
    Ok(Cloned { commit, root })
}

/// How many times [`Checker::run`] runs each command.
#[derive(Debug, Clone, Copy)]
struct Runs {
    /// At most this many runs.
    max: u32,
    /// Stop a command once it failed this many times.
    until_failures: Option<u32>,
}

impl Runs {
    fn all(max: u32) -> Runs {
        Runs {
            max,
            until_failures: None,
        }
    }
}

/// One measured command with what its failures were.
struct Measured {
    check: CommandCheck,
    /// The first failure that was not the code under test failing (import or collection
    /// error, no test collected): its kind label and the line that says so.
    other_reason: Option<String>,
}

/// Runs a case's check commands in one checkout: the repository clone, a scratch folder for the
/// output, the case's per-run budget, its environment, its secrets removed.
struct Checker<'a> {
    cwd: &'a Path,
    scratch: PathBuf,
    budget: Duration,
    env: Vec<(String, String)>,
    env_remove: Vec<String>,
    cancel: &'static AtomicBool,
}

impl<'a> Checker<'a> {
    fn new(
        item: &Item,
        case: &Case,
        cwd: &'a Path,
        work: &Path,
        cancel: &'static AtomicBool,
    ) -> Self {
        Checker {
            cwd,
            scratch: work.join("checks"),
            budget: case.check_budget,
            env: item.environment.process_vars(),
            env_remove: agent::scrubbed_env(&case.spec.spec.secret_env),
            cancel,
        }
    }

    /// Runs each command as `runs` says. Each failing run is judged by its kind (see
    /// [`crate::judge::failure_kind::classify_run`], the engine's classifier). Returns the measurements and the seconds spent.
    ///
    /// Errors: a run whose interpreter or test runner is missing (exit 3, naming the command
    /// and the line that says what is missing); interrupted (exit 130).
    fn run(&self, commands: &[String], runs: Runs) -> Result<(Vec<Measured>, f64), Error> {
        let started = Instant::now();
        let scratch = self.scratch.as_path();
        std::fs::create_dir_all(scratch).map_err(|e| io_error("create", scratch, e))?;
        let log = scratch.join("check.log");
        let mut out = Vec::new();
        for c in commands {
            let mut m = Measured {
                check: CommandCheck {
                    command: c.clone(),
                    runs: 0,
                    passed: 0,
                    failure_kinds: Default::default(),
                    failure_lines: Default::default(),
                    output: String::new(),
                },
                other_reason: None,
            };
            for _ in 0..runs.max {
                if self.cancel.load(Ordering::SeqCst) {
                    return Err(Error::interrupted("replay interrupted"));
                }
                let f = ItemCommand {
                    cwd: self.cwd,
                    env: &self.env,
                    env_remove: &self.env_remove,
                    budget: self.budget,
                    cancel: self.cancel,
                }
                .run(c, &log, "")?;
                if matches!(f.termination, process::Termination::Cancelled) {
                    return Err(Error::interrupted("replay interrupted"));
                }
                let check = &mut m.check;
                check.runs += 1;
                if f.termination.success() {
                    check.passed += 1;
                    continue;
                }
                let output = process::tail(&log, 64 * 1024);
                let kind = classify_run(&output, &f.termination, None);
                if let FailureKind::MissingRunner { why } = &kind {
                    return Err(Error::infra(format!(
                        "`{c}` cannot run: {}",
                        crate::redact::redact(why)
                    ))
                    .hint("the interpreter or test runner is missing: give the case (or variant) a `path` (e.g. a venv's `bin`), `env` or `setup` commands that provide it"));
                }
                if !kind.ran_the_test() && m.other_reason.is_none() {
                    let detail = match &kind {
                        FailureKind::ImportOrCollection { why } if !why.is_empty() => {
                            format!(" ({why})")
                        }
                        _ => String::new(),
                    };
                    m.other_reason =
                        Some(crate::redact::redact(&format!("{}{detail}", kind.label())));
                }
                let label = kind.label();
                if let Some(line) = failure_line(&output, &kind) {
                    check
                        .failure_lines
                        .entry(label.clone())
                        .or_insert_with(|| crate::redact::redact(&line));
                }
                *check.failure_kinds.entry(label).or_default() += 1;
                check.output = crate::redact::redact(&process::tail(&log, 2000));
                if runs
                    .until_failures
                    .is_some_and(|k| check.failed() >= u64::from(k))
                {
                    break;
                }
            }
            out.push(m);
        }
        Ok((out, started.elapsed().as_secs_f64()))
    }
}

fn all_pass(checks: &[CommandCheck]) -> bool {
    checks.iter().all(|c| c.runs > 0 && c.passed == c.runs)
}

fn checks(m: Vec<Measured>) -> Vec<CommandCheck> {
    m.into_iter().map(|m| m.check).collect()
}

/// `failed k of n runs (rate r%, 95% Wilson interval lo%–hi%)`, the interval from
/// [`crate::stats::wilson`].
fn rate_text(c: &CommandCheck) -> String {
    let (lo, hi) = crate::stats::wilson(c.failed(), c.runs, 0.95);
    format!(
        "failed {} of {} runs (failure rate {:.1}%, 95% Wilson interval {:.1}%–{:.1}%)",
        c.failed(),
        c.runs,
        100.0 * c.failed() as f64 / c.runs.max(1) as f64,
        100.0 * lo,
        100.0 * hi
    )
}

/// `assertion ×9 (`AssertionError: 2 != 3`), exception:ImportError ×1 (`ImportError: ...`)`:
/// each failure kind with its count and the line that named its first failure.
fn kinds_text(c: &CommandCheck) -> String {
    c.failure_kinds
        .iter()
        .map(|(k, n)| match c.failure_lines.get(k) {
            Some(l) => format!("{k} ×{n} (`{}`)", one_line(l)),
            None => format!("{k} ×{n}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// True when a patch holds no change: no `diff --git` header and no hunk.
pub(crate) fn patch_is_empty(patch: &str) -> bool {
    !patch
        .lines()
        .any(|l| l.starts_with("diff --git ") || l.starts_with("@@ "))
}

/// Runs the case's and variant's setup commands in the item's clone (checked out at the case's
/// commit), logging to `runs/<key>/setup.log`.
fn setup(
    opts: &Options<'_>,
    item: &Item,
    case: &Case,
    repo: &Path,
    rec: &mut Record,
) -> Result<(), Error> {
    let log = runs_dir(&opts.out, &item.key).join("setup.log");
    let env_remove = agent::scrubbed_env(&case.spec.spec.secret_env);
    let started = Instant::now();
    let r = item
        .environment
        .run_setup(repo, &log, &env_remove, opts.cancel);
    rec.agent_and_tests_s += started.elapsed().as_secs_f64();
    rec.setup = r?;
    Ok(())
}

/// The gold check, which qualifies a case for a corpus. At the case's commit: the fail-to-pass
/// commands run `qualify-runs` times (deterministic case) or until `qualify-failures` failures,
/// at most `qualify-runs` times (flaky case), and must fail, for the code's reason (not an
/// import or collection error), and for a deterministic case in every run and the same way;
/// the pass-to-pass commands must pass. Then the gold patch must hold a change and apply, and
/// every fail-to-pass command must pass every run: `qualify-runs` runs for a deterministic case;
/// for a flaky one `max(check-runs, N)` with N = ceil(ln 0.05 / ln(1 - p0)) and p0 the lowest
/// failure rate measured before the patch ([`crate::stats::runs_needed`]). The pass-to-pass
/// commands run `max(check-runs, 3)` times (no more than the fail-to-pass ones) before and
/// after the patch and must pass every run.
/// Each finding is a flag; a record is `resolved` only without flags.
fn run_gold(opts: &Options<'_>, item: &Item, case: &Case, rec: &mut Record) -> Result<(), Error> {
    let work = work_dir(&opts.out, &item.key);
    let repo = work.join("repo");
    let cloned = clone_case(case, &repo)?;
    rec.repo = cloned.root.clone();
    git(&repo, &["checkout", "-q", "--detach", "-f", &cloned.commit])?;
    setup(opts, item, case, &repo, rec)?;
    let deterministic = case.spec.spec.deterministic;
    let n = case.qualify_runs;
    let before_runs = if deterministic {
        Runs::all(n)
    } else {
        Runs {
            max: n,
            until_failures: Some(case.qualify_failures),
        }
    };
    let checker = Checker::new(item, case, &repo, &work, opts.cancel);
    let (f2p_before, t0) = checker.run(&case.fail_to_pass, before_runs)?;
    rec.agent_and_tests_s += t0;
    let mut flags = Vec::new();
    let mut reproduced = true;
    for m in &f2p_before {
        let c = &m.check;
        if c.failed() == 0 {
            reproduced = false;
            flags.push(format!(
                "fail-to-pass-passes-before-fix: `{}` passed all {} runs at the failing commit{}",
                c.command,
                c.runs,
                if deterministic {
                    String::new()
                } else {
                    format!(
                        " (needed {} failure{} of this flaky case)",
                        case.qualify_failures,
                        if case.qualify_failures == 1 { "" } else { "s" }
                    )
                }
            ));
            continue;
        }
        if let Some(why) = &m.other_reason {
            flags.push(format!(
                "fail-to-pass-fails-for-another-reason: `{}` failed at the failing commit with {why}, not from the code under test",
                c.command
            ));
        }
        let own_failures = c
            .failure_kinds
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "collection-error" | "no-tests-ran"))
            .count();
        if own_failures == 0 {
            reproduced = false;
        }
        if deterministic && c.passed > 0 {
            flags.push(format!(
                "fail-to-pass-flaky: `{}` {} at the failing commit of a case declared deterministic",
                c.command,
                rate_text(c)
            ));
        }
        if deterministic && c.failure_kinds.len() > 1 {
            flags.push(format!(
                "fail-to-pass-fails-differently: `{}` failed in {} ways at the failing commit of a case declared deterministic: {}",
                c.command,
                c.failure_kinds.len(),
                kinds_text(c)
            ));
        }
    }
    let after = if deterministic {
        n
    } else {
        let p0 = f2p_before
            .iter()
            .map(|m| m.check.failed() as f64 / m.check.runs.max(1) as f64)
            .filter(|p| *p > 0.0)
            .fold(f64::INFINITY, f64::min);
        let needed = if p0.is_finite() {
            crate::stats::runs_needed(p0.min(0.999), 0.05).min(10_000) as u32
        } else {
            0
        };
        case.check_runs.max(needed)
    };
    // Pass-to-pass commands only have to pass: `check-runs` runs (at least 3) before and after.
    let p2p_runs = after.min(case.check_runs.max(3));
    let (p2p_before, t1) = checker.run(&case.pass_to_pass, Runs::all(p2p_runs))?;
    rec.agent_and_tests_s += t1;
    for m in &p2p_before {
        let c = &m.check;
        if c.failed() > 0 {
            flags.push(format!(
                "pass-to-pass-fails-before-fix: `{}` {} at the failing commit ({})",
                c.command,
                rate_text(c),
                kinds_text(c)
            ));
        }
    }
    rec.funnel.reproduced = reproduced;
    rec.fail_to_pass_before = checks(f2p_before);
    rec.pass_to_pass_before = checks(p2p_before);
    let gold = case.gold_patch.as_deref().unwrap_or_default();
    let finish = |rec: &mut Record, flags: Vec<String>, reason: &str| {
        rec.verdict = if rec.funnel.reproduced {
            Verdict::Unresolved
        } else {
            Verdict::CouldNotReproduce
        };
        rec.reason = reason.to_string();
        rec.flags = flags;
    };
    if patch_is_empty(gold) {
        flags.push(format!(
            "gold-patch-empty: the gold patch of case `{}` holds no diff ({} bytes, no `diff --git` header or hunk)",
            case.id,
            gold.len()
        ));
        finish(rec, flags, "the gold patch is empty");
        return Ok(());
    }
    let patch = work.join("gold.patch");
    std::fs::write(&patch, gold).map_err(|e| io_error("write", &patch, e))?;
    if let Err(e) = git(
        &repo,
        &["apply", "--whitespace=nowarn", &patch.display().to_string()],
    ) {
        let why = e.details.join(" | ");
        flags.push(format!(
            "gold-patch-does-not-apply: `git apply` at {}: {}",
            &cloned.commit[..cloned.commit.len().min(10)],
            one_line(&why)
        ));
        finish(
            rec,
            flags,
            "the gold patch does not apply at the case's commit",
        );
        return Ok(());
    }
    rec.funnel.fixed = true;
    let (f2p, t2) = checker.run(&case.fail_to_pass, Runs::all(after))?;
    let (p2p, t3) = checker.run(&case.pass_to_pass, Runs::all(p2p_runs))?;
    rec.agent_and_tests_s += t2 + t3;
    let (f2p, p2p) = (checks(f2p), checks(p2p));
    for c in &f2p {
        if c.passed == 0 {
            flags.push(format!(
                "gold-patch-does-not-resolve: `{}` still fails after the gold patch ({} runs, {})",
                c.command,
                c.runs,
                kinds_text(c)
            ));
        } else if c.passed < c.runs {
            flags.push(format!(
                "fail-to-pass-flaky: `{}` {} after the gold patch",
                c.command,
                rate_text(c)
            ));
        }
    }
    for c in &p2p {
        if c.passed < c.runs {
            flags.push(format!(
                "pass-to-pass-fails: `{}` {} after the gold patch",
                c.command,
                rate_text(c)
            ));
        }
    }
    rec.funnel.verified = all_pass(&f2p);
    let resolved = all_pass(&f2p) && all_pass(&p2p);
    rec.fail_to_pass = f2p;
    rec.pass_to_pass = p2p;
    rec.verdict = if !rec.funnel.reproduced {
        Verdict::CouldNotReproduce
    } else if resolved && flags.is_empty() {
        Verdict::Resolved
    } else {
        Verdict::Unresolved
    };
    rec.reason = match flags.first() {
        None => "the gold patch resolves the case".into(),
        Some(f) => f.clone(),
    };
    rec.flags = flags;
    Ok(())
}

/// Runs the engine on the item, then judges the fix branch with the case's commands.
fn run_engine(
    opts: &Options<'_>,
    item: &Item,
    case: &Case,
    variant: &Variant,
    agent: &Agent,
    rec: &mut Record,
) -> Result<(), Error> {
    let work = work_dir(&opts.out, &item.key);
    let repo = work.join("repo");
    let cloned = clone_case(case, &repo)?;
    rec.repo = cloned.root.clone();
    if !item.environment.setup.is_empty() {
        git(&repo, &["checkout", "-q", "--detach", "-f", &cloned.commit])?;
        setup(opts, item, case, &repo, rec)?;
    }
    let runs = runs_dir(&opts.out, &item.key);
    let vars = item.environment.process_vars();
    let mut agent = agent.clone();
    agent.env.extend(vars.iter().cloned());
    // `--keep-work` keeps the run's private clone too.
    let mut spec = item.spec.clone();
    spec.spec.keep_worktree |= opts.keep_work;
    let req = RunRequest {
        spec,
        pipeline: item.pipeline.clone().expect("engine items have a pipeline"),
        agent,
        env: vars,
        repo_flag: Some(repo.display().to_string()),
        agent_flag: None,
        api_url: None,
        out_dir: runs.clone(),
        no_pr: true,
        cancel: opts.cancel,
        template_roots: variant.template_roots.clone(),
    };
    let mut recorder = ItemRecorder::default();
    let outcome = engine::run(req, &mut recorder)?;
    let run_dir = RunDir::new(&outcome.run_dir);
    rec.run_dir = outcome
        .run_dir
        .strip_prefix(&opts.out)
        .ok()
        .map(|p| p.display().to_string());
    let st = match recorder.finished {
        Some(st) => st,
        None => run_dir.load_state()?,
    };
    if st.status == Status::Interrupted {
        return Err(Error::interrupted("replay interrupted"));
    }
    rec.stages = st
        .stages
        .iter()
        .map(|s| StageTiming {
            id: match s.attempt {
                Some(a) => format!("{}#{a}", s.id),
                None => s.id.clone(),
            },
            kind: s.kind.as_str().into(),
            status: s.status.as_str().into(),
            seconds: s.duration_s,
        })
        .collect();
    // Added to the setup commands' time.
    rec.agent_and_tests_s += st
        .stages
        .iter()
        .filter(|s| {
            matches!(
                s.kind,
                StageKind::Agent | StageKind::RunTest | StageKind::Command
            )
        })
        .map(|s| s.duration_s)
        .sum::<f64>();
    rec.attempts = st.attempts.len() as u32;
    let result = run_dir.load_result();
    read_agent_report(result.as_ref(), rec);
    rec.funnel.reproduced = st.repro.as_ref().is_some_and(|r| r.confirmed);
    rec.funnel.fixed = st.attempts.iter().any(|a| !a.diff.trim().is_empty());
    rec.funnel.verified = matches!(st.status, Status::Success | Status::Partial);
    let reason = st.reason.clone().unwrap_or_default();
    if rec.funnel.verified {
        let Some(fix) = st.commit.clone() else {
            rec.verdict = Verdict::Unresolved;
            rec.reason = "the run verified a fix but recorded no fix commit".into();
            return Ok(());
        };
        git(&repo, &["checkout", "-q", "--detach", "-f", &fix])?;
        let checker = Checker::new(item, case, &repo, &work, opts.cancel);
        let judge = Runs {
            max: case.check_runs,
            until_failures: Some(1),
        };
        let (f2p, t1) = checker.run(&case.fail_to_pass, judge)?;
        let (p2p, t2) = checker.run(&case.pass_to_pass, judge)?;
        let (f2p, p2p) = (checks(f2p), checks(p2p));
        rec.agent_and_tests_s += t1 + t2;
        let resolved = all_pass(&f2p) && all_pass(&p2p);
        rec.reason = if resolved {
            format!(
                "fix {} passes every fail-to-pass and pass-to-pass command",
                &fix[..fix.len().min(10)]
            )
        } else {
            f2p.iter()
                .map(|c| ("fail-to-pass", c))
                .chain(p2p.iter().map(|c| ("pass-to-pass", c)))
                .find(|(_, c)| c.passed < c.runs)
                .map(|(k, c)| format!("{k} `{}` failed on the fix branch", c.command))
                .unwrap_or_default()
        };
        rec.verdict = if resolved {
            Verdict::Resolved
        } else {
            Verdict::Unresolved
        };
        rec.fail_to_pass = f2p;
        rec.pass_to_pass = p2p;
        return Ok(());
    }
    rec.verdict = classify_unverified(
        &st,
        rec.funnel.reproduced,
        result.as_ref().map(|r| r.agent.error),
    );
    rec.reason = if reason.is_empty() {
        st.status.as_str().to_string()
    } else {
        one_line(&reason)
    };
    Ok(())
}

/// The verdict of a run that verified no fix: a timeout when the phase that failed (the
/// reproduction, or every attempt) ran out of budget; an agent error when the agent failed as a
/// program there (the agent's own error flag, a non-zero exit, or nothing produced); else
/// could-not-reproduce (before a confirmed reproduction) or unresolved.
fn classify_unverified(st: &RunState, reproduced: bool, agent_error: Option<bool>) -> Verdict {
    let agent_failed = |s: &StageRecord| {
        s.kind == StageKind::Agent
            && matches!(s.status, StageStatus::Failed | StageStatus::Error)
            && !s.refused
    };
    if !reproduced {
        let pre: Vec<_> = st.stages.iter().filter(|s| s.attempt.is_none()).collect();
        if pre.iter().any(|s| s.status == StageStatus::Timeout) {
            return Verdict::Timeout;
        }
        if pre.iter().any(|s| agent_failed(s)) || agent_error == Some(true) {
            return Verdict::AgentError;
        }
        return Verdict::CouldNotReproduce;
    }
    let attempts: Vec<u32> = st.attempts.iter().map(|a| a.number).collect();
    if attempts.is_empty() {
        return if st.stages.iter().any(|s| s.status == StageStatus::Timeout) {
            Verdict::Timeout
        } else {
            Verdict::Unresolved
        };
    }
    let in_attempt = |n: u32| st.stages.iter().filter(move |s| s.attempt == Some(n));
    if attempts
        .iter()
        .all(|n| in_attempt(*n).any(|s| s.status == StageStatus::Timeout))
    {
        return Verdict::Timeout;
    }
    if attempts.iter().all(|n| in_attempt(*n).any(&agent_failed)) {
        return Verdict::AgentError;
    }
    Verdict::Unresolved
}

/// Tokens and cost from the run's `result.json` (`agent.tokens`, `agent.cost_usd`), when the
/// run wrote one.
fn read_agent_report(result: Option<&ResultJson>, rec: &mut Record) {
    let Some(r) = result else {
        return;
    };
    let t = &r.agent.tokens;
    rec.tokens = Some(Tokens {
        input: t.input,
        output: t.output,
        cache_read: t.cache_read,
        cache_write: t.cache_write,
    });
    rec.cost_usd = r.agent.cost_usd;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn shards_parse_and_partition() {
        let none = env(&[]);
        assert_eq!(
            parse_shard("1/3", &none).unwrap(),
            Shard { index: 1, count: 3 }
        );
        for bad in ["3/3", "1", "a/2", "0/0", "auto/2"] {
            let e = parse_shard(bad, &none).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad}");
            assert!(e.render().contains(bad), "{}", e.render());
        }
        let k8s = env(&[("JOB_COMPLETION_INDEX", "2")]);
        assert_eq!(parse_shard("auto/4", &k8s).unwrap().index, 2);
        let slurm = env(&[("SLURM_ARRAY_TASK_ID", "1")]);
        assert_eq!(parse_shard("auto/2", &slurm).unwrap().index, 1);
        let batch = env(&[("AWS_BATCH_JOB_ARRAY_INDEX", "x")]);
        assert!(
            parse_shard("auto/2", &batch)
                .unwrap_err()
                .render()
                .contains("AWS_BATCH_JOB_ARRAY_INDEX")
        );
        let over = env(&[("JOB_COMPLETION_INDEX", "5")]);
        assert!(parse_shard("auto/2", &over).is_err());
        // Shards partition the plan: every index in exactly one shard.
        let shards: Vec<Shard> = (0..3).map(|i| Shard { index: i, count: 3 }).collect();
        for i in 0..50 {
            assert_eq!(shards.iter().filter(|s| s.contains(i)).count(), 1);
        }
    }
}
