//! Verification of a committed fix in a tree fixci owns (DESIGN §4 "Verify the commit").
//!
//! The fix is committed as a candidate ([`candidate_commit`]), checked out from the git objects
//! into a fresh directory ([`sealed::seal`]), and fixci's copy of the reproduction test is written
//! there from the bytes it holds. Then three checks, each with commands fixci builds
//! ([`crate::runners::command`]) and outcomes read from reports where the runner can write one
//! ([`crate::runners::outcome`]):
//! (a) the reproduction test passes `runs` times;
//! (b) the CI's own failing tests pass;
//! (c) no regressions: the tests that passed at the base commit still pass at the candidate, run
//!     with the base commit's versions of the test files.
//!
//! Every run's outcome (termination, report cases, log) is returned, so a classifier of failure
//! kinds can be applied by the caller.

pub mod gate;
pub mod integrity;
pub mod record;
pub mod report;
pub mod sealed;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use git2::{Oid, Repository};

use crate::error::{Error, io_error};
use crate::process::{self, CommandSpec, Limits, OutputTo, Termination};
use crate::runners::command::{self, ReportAt, Runner, RunnerCommand};
use crate::runners::outcome::{self, Case, CaseOutcome};
pub use crate::runners::{pytest_available, runner_for};
use record::{CheckRecord, CheckStatus, SuiteRecord, Verification};
use sealed::{BackgroundSeal, SealError, Sealed};

/// How runs are bounded and where their output goes.
pub struct RunLimits<'a> {
    /// No run starts after this instant; a running one is stopped at it.
    pub deadline: Instant,
    /// SIGTERM -> SIGKILL grace.
    pub grace: Duration,
    /// Ctrl-C.
    pub cancel: Option<&'a AtomicBool>,
    /// Variables removed from the test's environment (forge tokens, `secret-env`).
    pub env_remove: Vec<String>,
    /// Variables set for the test (a replay case's `env` and `path`); the runner's own settings
    /// (e.g. `PYTHONSAFEPATH`) are applied after them.
    pub env: Vec<(String, String)>,
    /// Folder for the run logs.
    pub log_dir: PathBuf,
    /// The sandbox the runs start in (see [`crate::process::sandbox::TestJail`]); `None`: no
    /// sandbox (the run has none).
    pub jail: Option<crate::process::sandbox::TestJail>,
    /// Called after each run with `(label, run number, passed, how it ended)`.
    pub on_run: &'a mut dyn FnMut(&str, u64, bool, String),
}

/// One run of a test command.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// How the process ended.
    pub termination: Termination,
    /// The runner's report, when one was asked for and could be read.
    pub cases: Option<Vec<Case>>,
    /// Why the report could not be read, when one was asked for.
    pub report_error: Option<String>,
    /// `junit`, `go-json` or `exit-code`.
    pub evidence: &'static str,
    /// The combined output.
    pub log: PathBuf,
    /// Wall time of the test process (zero when not measured).
    pub duration: Duration,
    /// What the run changed in the tree being verified, when it changed a file of the commit
    /// or planted one a later run would load ([`integrity::Guard::tampering`]): the run fails
    /// whatever its report says.
    pub tampered: Option<String>,
}

impl RunOutcome {
    /// The last `max` bytes of the output, redacted.
    pub fn tail(&self, max: u64) -> String {
        crate::redact::redact(&process::tail(&self.log, max))
    }
}

/// Runs `cmd` once in `tree` (report under `scratch`), output to `log`.
pub fn run_once(
    cmd: &RunnerCommand,
    tree: &Path,
    scratch: &Path,
    log: &Path,
    lim: &RunLimits<'_>,
) -> Result<RunOutcome, Error> {
    let inv = cmd
        .invocation(tree, scratch)
        .map_err(|e| io_error("prepare the test command in", scratch, e))?;
    let spec = CommandSpec {
        program: inv.argv[0].clone(),
        args: inv.argv[1..].to_vec(),
        cwd: tree.to_path_buf(),
        env: lim.env.iter().chain(inv.env.iter()).cloned().collect(),
        env_remove: lim.env_remove.clone(),
        stdin: None,
    };
    let spec = match &lim.jail {
        Some(j) => j
            .wrap(spec, &[tree, scratch])
            .map_err(|e| Error::infra(format!("cannot start `{}`", inv.argv[0])).source(e))?,
        None => spec,
    };
    let remaining = lim.deadline.saturating_duration_since(Instant::now());
    let listener = listen(&inv.report)?;
    let f = process::run(
        &spec,
        &OutputTo::Combined(log.to_path_buf()),
        Limits {
            budget: remaining,
            grace: lim.grace,
        },
        lim.cancel,
        &mut |_| {},
    )
    .map_err(|e| Error::infra(format!("cannot start `{}`", inv.argv[0])).source(e))?;
    let events = listener.map(crate::runners::events::Listener::finish);
    let mut o = outcome_of(&inv.report, f.termination, log, events.as_deref());
    o.duration = f.duration;
    Ok(o)
}

/// `run` with what it did to the tree [`integrity::Guard`] watches (see [`RunOutcome::tampered`]).
fn guarded(mut run: RunOutcome, guard: &mut integrity::Guard) -> RunOutcome {
    run.tampered = guard.tampering();
    run
}

/// Starts listening to fixci's Python helper, for a report that has its live account.
///
/// Errors: the FIFO cannot be opened.
pub fn listen(report: &ReportAt) -> Result<Option<crate::runners::events::Listener>, Error> {
    match report {
        ReportAt::PyJunit { events, .. } => crate::runners::events::Listener::start(events)
            .map(Some)
            .map_err(|e| io_error("open the test runner's event pipe", events, e)),
        _ => Ok(None),
    }
}

/// The outcome of a finished run: its report read from `report` (a JUnit file or folder, or
/// the `go test -json` stream in `log`), or only its exit code. For fixci's Python helper,
/// `events` is what it wrote into its FIFO: the JUnit cases count only when they agree with it
/// and with the exit status ([`crate::runners::events::cross_check`]); otherwise the run has a
/// `report_error` naming the tampering.
pub fn outcome_of(
    report: &ReportAt,
    termination: Termination,
    log: &Path,
    events: Option<&[u8]>,
) -> RunOutcome {
    let (cases, report_error, evidence) = match report {
        ReportAt::ExitCode => (None, None, "exit-code"),
        ReportAt::PyJunit { junit, .. } => match outcome::read_junit(junit) {
            Ok(c) => {
                let account = crate::runners::events::parse(events.unwrap_or_default());
                let status = match termination {
                    Termination::Exited { code } => Some(code),
                    _ => None,
                };
                let stopped = matches!(
                    termination,
                    Termination::TimedOut { .. } | Termination::Cancelled
                );
                match crate::runners::events::cross_check(&account, &c, status) {
                    Some(why) if !stopped => (None, Some(why), "junit"),
                    _ => (Some(c), None, "junit"),
                }
            }
            Err(e) => (
                None,
                Some(format!("no readable JUnit report: {e}")),
                "junit",
            ),
        },
        ReportAt::Junit(p) => match outcome::read_junit(p) {
            Ok(c) => (Some(c), None, "junit"),
            Err(e) => (
                None,
                Some(format!("no readable JUnit report: {e}")),
                "junit",
            ),
        },
        ReportAt::JunitDir(d) => match outcome::read_junit_dir(d) {
            Ok(c) => (Some(c), None, "junit"),
            Err(e) => (
                None,
                Some(format!("no readable Surefire reports: {e}")),
                "junit",
            ),
        },
        ReportAt::GoJson => {
            let text =
                String::from_utf8_lossy(&std::fs::read(log).unwrap_or_default()).into_owned();
            (Some(outcome::parse_go_json(&text)), None, "go-json")
        }
    };
    RunOutcome {
        termination,
        cases,
        report_error,
        evidence,
        log: log.to_path_buf(),
        duration: Duration::ZERO,
        tampered: None,
    }
}
/// Whether a run shows every `wanted` test passing. With a report: each wanted id present and
/// passed (missing, skipped, deselected, xfail = failed); with no wanted ids, at least one case
/// and every case passed ("no tests ran" fails). Without a report: the exit code.
pub fn passes(run: &RunOutcome, wanted: &[String]) -> Result<(), String> {
    if let Some(why) = &run.tampered {
        return Err(why.clone());
    }
    if let Some(why) = &run.report_error {
        return Err(why.clone());
    }
    let Some(cases) = &run.cases else {
        return if run.termination.success() {
            Ok(())
        } else {
            Err(format!(
                "the command ended with {}",
                run.termination.describe()
            ))
        };
    };
    if cases.is_empty() {
        return Err("no tests ran (the report lists no test case)".into());
    }
    if wanted.is_empty() {
        if let Some(c) = cases.iter().find(|c| c.outcome != CaseOutcome::Passed) {
            return Err(describe_case(c));
        }
        return Ok(());
    }
    for w in wanted {
        let mine: Vec<&Case> = cases
            .iter()
            .filter(|c| outcome::same_test(&c.id(), w))
            .collect();
        if mine.is_empty() {
            return Err(format!("test `{w}` is not in the report (it did not run)"));
        }
        if let Some(c) = mine.iter().find(|c| c.outcome != CaseOutcome::Passed) {
            return Err(describe_case(c));
        }
    }
    Ok(())
}

fn describe_case(c: &Case) -> String {
    format!(
        "test `{}` {}{}",
        c.id(),
        c.outcome.as_str(),
        c.message
            .as_deref()
            .map(|m| format!(": {m}"))
            .unwrap_or_default()
    )
}

/// The failing test ids of a run that should fail: with a report, the failed or erroring cases
/// (none: "no test failed"); without one, a failing exit code (empty ids).
pub fn failing_ids(run: &RunOutcome) -> Result<Vec<String>, String> {
    if let Some(why) = &run.report_error {
        return Err(why.clone());
    }
    if matches!(run.termination, Termination::TimedOut { .. }) && run.cases.is_none() {
        // A hang is a failure; without a report it has no test id.
        return Ok(Vec::new());
    }
    match &run.cases {
        None if run.termination.success() => Err("the command exited 0".into()),
        None => Ok(Vec::new()),
        Some(cases) if cases.is_empty() => {
            Err("no tests ran (the report lists no test case)".into())
        }
        Some(cases) => {
            let ids: Vec<String> = cases
                .iter()
                .filter(|c| matches!(c.outcome, CaseOutcome::Failed | CaseOutcome::Error))
                .map(Case::id)
                .collect();
            if ids.is_empty() {
                Err(format!("no test failed ({} ran)", cases.len()))
            } else {
                Ok(ids)
            }
        }
    }
}

/// The runner of a reproduction test: the spec's template or the detected runner; the agent's
/// own `command` replaces it only when it is that runner on that file. Returns the runner and,
/// when the agent's command was not used, why.
pub fn repro_runner(
    test_file: &str,
    agent_command: Option<&str>,
    template: Option<&str>,
) -> (RunnerCommand, Option<String>) {
    let fixci = runner_for(test_file, template);
    if template.is_some() {
        return (fixci, None);
    }
    match agent_command {
        Some(a) => match command::accept_agent_command(a, test_file, &fixci) {
            Ok(c) => (c, None),
            Err(why) => {
                let note = format!(
                    "the agent's command `{a}` was not used ({why}); fixci runs `{}`",
                    fixci.display()
                );
                (fixci, Some(note))
            }
        },
        None => (fixci, None),
    }
}

/// Commits the worktree's changes as a candidate: a commit object on top of HEAD that no branch
/// points at yet (ignored files, droppings and `exclude` left out). The same commit is verified
/// and, if it passes, proposed.
pub fn candidate_commit(wt: &Repository, message: &str, exclude: &[String]) -> Result<Oid, Error> {
    let infra = |what: &str, e: &dyn std::fmt::Display| Error::infra(format!("cannot {what}: {e}"));
    let tree_id = crate::vcs::stage_tree(wt, exclude).map_err(|e| infra("stage the fix", &e))?;
    let tree = wt
        .find_tree(tree_id)
        .map_err(|e| infra("read the fix tree", &e))?;
    let head = wt
        .head()
        .and_then(|h| h.peel_to_commit())
        .map_err(|e| infra("read HEAD", &e))?;
    let sig = crate::vcs::fixci_signature();
    wt.commit(None, &sig, &sig, message, &tree, &[&head])
        .map_err(|e| infra("commit the candidate", &e))
}

/// Seals `commit`; a symlink that leaves the repository is a refusal (`Ok(Err(why))`), git or
/// disk trouble an infrastructure error.
pub fn seal_or_refuse(repo: &Repository, commit: Oid) -> Result<Result<Sealed, String>, Error> {
    refuse_or_fail(sealed::seal(repo, commit, None))
}

/// [`seal_or_refuse`]'s reading of a seal's result.
fn refuse_or_fail(sealed: Result<Sealed, SealError>) -> Result<Result<Sealed, String>, Error> {
    match sealed {
        Ok(s) => Ok(Ok(s)),
        Err(e @ SealError::Escapes(_)) => Ok(Err(format!("refused: {e}"))),
        Err(e) => Err(Error::infra("cannot check out the commit to verify").source(e)),
    }
}

/// The reproduction test as [`verify_candidate`] runs it.
#[derive(Debug, Clone, Copy)]
pub struct ReproInput<'a> {
    /// Path relative to the root.
    pub file: &'a str,
    /// fixci's bytes, written over the tree's copy when `Some`.
    pub bytes: Option<&'a [u8]>,
    /// How it runs.
    pub runner: &'a RunnerCommand,
    /// The ids that failed when it was confirmed (empty: exit code only).
    pub ids: &'a [String],
}

/// What [`verify_candidate`] needs to know.
pub struct VerifyInput<'a> {
    /// The repository that holds both commits.
    pub repo: &'a Repository,
    /// The base commit.
    pub base: Oid,
    /// The candidate commit.
    pub candidate: Oid,
    /// The reproduction test.
    pub repro: Option<ReproInput<'a>>,
    /// True when the reproduction test is fixci's addition (an agent's), not a test of the
    /// repository: it is then left out of the regression suite.
    pub repro_is_new: bool,
    /// Runs of the reproduction.
    pub runs: u64,
    /// The CI's failing tests: `(id, file as the log names it)`.
    pub ci_tests: Vec<(String, Option<String>)>,
    /// The spec's `test-command`.
    pub template: Option<&'a str>,
    /// The spec's `suite-command`.
    pub suite_command: Option<&'a str>,
    /// The base suite, when an earlier attempt ran it.
    pub base_suite: Option<SuiteRecord>,
    /// The spec's `gate`: every command must pass on the candidate (empty: no gate check).
    pub gate: &'a [String],
    /// The reproduction check fixci already ran on this candidate: the flaky pipeline's
    /// statistical check (N runs under stress, [`crate::stages`] `run-test` in stress mode). It
    /// is recorded as check (a) instead of running the reproduction `runs` times, and its
    /// `tests` (the ids that failed under stress at the start commit) are "covered": a CI
    /// failing test with such an id is not run again by (b), and those ids are left out of the
    /// regression comparison (c), since one run of a flaky test is chance, not evidence. When it
    /// has no ids (exit code only), the reproduction's file stands for them: it is left out of
    /// the default suite and keeps the candidate's version in the suite run.
    pub stressed: Option<CheckRecord>,
}

/// What [`verify_candidate`] found.
#[derive(Debug, Clone, Default)]
pub struct VerifyOutput {
    /// The checks.
    pub verification: Verification,
    /// The base suite (to keep for later attempts).
    pub base_suite: Option<SuiteRecord>,
    /// Output for the next attempt's prompt when a check failed.
    pub failure_output: Option<String>,
    /// Every run, labelled by check (for failure-kind classifiers).
    pub runs: Vec<(String, RunOutcome)>,
}

/// Runs the three checks on the candidate, stopping at the first that fails.
pub fn verify_candidate(
    input: &VerifyInput<'_>,
    lim: &mut RunLimits<'_>,
) -> Result<VerifyOutput, Error> {
    let mut out = VerifyOutput {
        verification: Verification {
            commit: input.candidate.to_string(),
            checks: Vec::new(),
        },
        base_suite: input.base_suite.clone(),
        ..Default::default()
    };
    // The regression check's base tree, when it will need one (no base suite yet for this
    // base), is checked out on its own thread from the start: its cost hides behind the
    // candidate's checkout and the runs of checks (a) and (b). Dropped unused (a check failed
    // first), it is waited for and removed.
    let base_seal = cached_base_suite(input, &out)
        .is_none()
        .then(|| BackgroundSeal::start(input.repo, input.base, None));
    let tree = match seal_or_refuse(input.repo, input.candidate)? {
        Ok(t) => t,
        Err(why) => {
            out.verification.checks.push(CheckRecord {
                name: "checkout".into(),
                command: String::new(),
                runs: 0,
                passed: 0,
                evidence: String::new(),
                status: CheckStatus::Failed,
                detail: why.clone(),
                tests: Vec::new(),
            });
            out.failure_output = Some(why);
            return Ok(out);
        }
    };
    let mut guard = integrity::Guard::new(input.repo, input.candidate, &tree.root())
        .map_err(|e| Error::infra("cannot read the commit to verify").source(e))?;
    if let Some(ReproInput {
        file,
        bytes: Some(b),
        ..
    }) = input.repro
    {
        tree.write(file, b)
            .map_err(|e| io_error("write the reproduction test into", &tree.root(), e))?;
        guard.expect(file, Some(b));
    }
    // (a) the reproduction: run here, or already run under stress on this candidate.
    if let Some(check) = &input.stressed {
        out.verification.checks.push(check.clone());
        if check.status == CheckStatus::Failed {
            return Ok(out);
        }
    } else if let Some(ReproInput { runner, ids, .. }) = input.repro {
        let mut check = new_check("reproduction", runner, ids.to_vec());
        for k in 1..=input.runs {
            let log = lim.log_dir.join(format!("repro-run-{k}.log"));
            let run = guarded(run_once(runner, &tree.root(), &tree.scratch(), &log, lim)?, &mut guard);
            check.runs += 1;
            check.evidence = run.evidence.into();
            let verdict = passes(&run, ids);
            (lim.on_run)(
                "reproduction",
                k,
                verdict.is_ok(),
                run.termination.describe(),
            );
            let cancelled = run.termination == Termination::Cancelled;
            match verdict {
                Ok(()) => check.passed += 1,
                Err(why) => {
                    check.status = CheckStatus::Failed;
                    check.detail = format!("run {k} of {}: {why}", input.runs);
                    out.failure_output =
                        Some(format!("{}\n\n{}", check.detail, run.tail(6 * 1024)));
                }
            }
            out.runs.push(("reproduction".into(), run));
            if check.status == CheckStatus::Failed || cancelled {
                break;
            }
        }
        if check.status != CheckStatus::Failed {
            check.detail = format!("passed {} of {} runs", check.passed, input.runs);
        }
        let failed = check.status == CheckStatus::Failed;
        out.verification.checks.push(check);
        if failed {
            return Ok(out);
        }
    }
    // (b) the CI's own failing tests.
    let ci = ci_check(input, &tree, &mut guard, lim, &mut out)?;
    out.verification.checks.push(ci);
    if out.verification.failed().is_some() {
        return Ok(out);
    }
    // The gate, when the spec has one: every command on the candidate.
    if !input.gate.is_empty() {
        let outcomes = gate::run(input.gate, &tree.root(), "gate-fix", lim)?;
        out.verification.checks.extend(gate::checks(&outcomes));
        if let Some(why) = guard.tampering() {
            out.verification.checks.push(CheckRecord {
                status: CheckStatus::Failed,
                detail: format!("the gate: {why}"),
                ..not_run("tree", String::new())
            });
            out.failure_output = Some(format!("The gate changed the tree being verified: {why}"));
            return Ok(out);
        }
        if outcomes.iter().any(|o| !o.passed) {
            out.failure_output = Some(format!(
                "The gate still fails on the fix commit:\n\n{}",
                gate::failing_output(&outcomes, 6 * 1024)
            ));
            return Ok(out);
        }
    }
    // (c) no regressions.
    let reg = regression_check(input, &tree, base_seal, &mut guard, lim, &mut out)?;
    out.verification.checks.push(reg);
    Ok(out)
}

fn new_check(name: &str, runner: &RunnerCommand, tests: Vec<String>) -> CheckRecord {
    CheckRecord {
        name: name.into(),
        command: runner.display(),
        runs: 0,
        passed: 0,
        evidence: String::new(),
        status: CheckStatus::Passed,
        detail: String::new(),
        tests,
    }
}

fn not_run(name: &str, why: String) -> CheckRecord {
    CheckRecord {
        name: name.into(),
        command: String::new(),
        runs: 0,
        passed: 0,
        evidence: String::new(),
        status: CheckStatus::NotRun,
        detail: why,
        tests: Vec::new(),
    }
}

/// The file of a test in `root`: the log's file (or its longest suffix that exists), a pytest
/// node id's path, or the longest dotted prefix of the id that names a `.py` file.
pub fn locate_test_file(root: &Path, id: &str, file: Option<&str>) -> Option<String> {
    let exists = |rel: &str| !rel.is_empty() && root.join(rel).is_file();
    if let Some(f) = file {
        let f = f.replace('\\', "/");
        let parts: Vec<&str> = f.split('/').filter(|p| !p.is_empty()).collect();
        for i in 0..parts.len() {
            let rel = parts[i..].join("/");
            if crate::spec::check_relative_inside(&rel).is_ok() && exists(&rel) {
                return Some(rel);
            }
        }
    }
    if let Some((path, _)) = id.split_once("::") {
        if crate::spec::check_relative_inside(path).is_ok() && exists(path) {
            return Some(path.to_string());
        }
    }
    let parts: Vec<&str> = id.split('.').collect();
    for k in (1..parts.len()).rev() {
        let rel = format!("{}.py", parts[..k].join("/"));
        if crate::spec::check_relative_inside(&rel).is_ok() && exists(&rel) {
            return Some(rel);
        }
    }
    None
}

fn ci_check(
    input: &VerifyInput<'_>,
    tree: &Sealed,
    guard: &mut integrity::Guard,
    lim: &mut RunLimits<'_>,
    out: &mut VerifyOutput,
) -> Result<CheckRecord, Error> {
    let ci_tests: Vec<&(String, Option<String>)> = input
        .ci_tests
        .iter()
        .filter(|(id, file)| !stress_covers(input, &tree.root(), id, file.as_deref()))
        .collect();
    if ci_tests.is_empty() {
        let why = if input.stressed.is_some() && !input.ci_tests.is_empty() {
            "the CI's failing test is the test run under stress: checked statistically above"
        } else if input.repro.is_some() && !input.repro_is_new {
            "the CI's failing test is the reproduction: checked above"
        } else {
            "the run has no CI failure naming a test"
        };
        return Ok(not_run("ci-tests", why.into()));
    }
    let mut by_file: Vec<(String, Vec<String>)> = Vec::new();
    let mut unlocated = Vec::new();
    for (id, file) in ci_tests {
        match locate_test_file(&tree.root(), id, file.as_deref()) {
            Some(f) => match by_file.iter_mut().find(|(g, _)| *g == f) {
                Some((_, ids)) => ids.push(id.clone()),
                None => by_file.push((f, vec![id.clone()])),
            },
            None => unlocated.push(id.clone()),
        }
    }
    if by_file.is_empty() {
        return Ok(not_run(
            "ci-tests",
            format!(
                "no test file found for {}",
                unlocated
                    .iter()
                    .map(|i| format!("`{i}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let mut check = CheckRecord {
        tests: by_file.iter().flat_map(|(_, ids)| ids.clone()).collect(),
        ..new_check(
            "ci-tests",
            &runner_for(&by_file[0].0, input.template),
            Vec::new(),
        )
    };
    let mut commands = Vec::new();
    for (k, (file, ids)) in by_file.iter().enumerate() {
        let runner = runner_for(file, input.template);
        commands.push(runner.display());
        // Without a report, the CI test's own id cannot be told apart: the file's exit code.
        let log = lim.log_dir.join(format!("ci-tests-{}.log", k + 1));
        let run = guarded(run_once(&runner, &tree.root(), &tree.scratch(), &log, lim)?, guard);
        check.runs += 1;
        check.evidence = run.evidence.into();
        let verdict = passes(&run, ids);
        (lim.on_run)(
            "ci-tests",
            k as u64 + 1,
            verdict.is_ok(),
            run.termination.describe(),
        );
        match verdict {
            Ok(()) => check.passed += 1,
            Err(why) => {
                check.status = CheckStatus::Failed;
                check.detail = match &run.tampered {
                    Some(_) => why,
                    None => format!("the CI's failing test still fails: {why}"),
                };
                out.failure_output = Some(format!("{}\n\n{}", check.detail, run.tail(6 * 1024)));
            }
        }
        out.runs.push(("ci-tests".into(), run));
        if check.status == CheckStatus::Failed {
            break;
        }
    }
    check.command = commands.join("; ");
    if check.status == CheckStatus::Passed {
        check.detail = format!(
            "{} passed{}",
            check
                .tests
                .iter()
                .map(|t| format!("`{t}`"))
                .collect::<Vec<_>>()
                .join(", "),
            if unlocated.is_empty() {
                String::new()
            } else {
                format!("; not found, not run: {}", unlocated.join(", "))
            }
        );
        check.tests.retain(|t| !unlocated.contains(t));
    }
    Ok(check)
}

/// True when the CI's failing test `id` (in `file` as the log names it) is covered by the
/// statistical check of [`VerifyInput::stressed`]: one of its ids, or, when it has none (exit
/// code only), a test of the reproduction's own file (an existing test, not an agent's new one).
fn stress_covers(input: &VerifyInput<'_>, root: &Path, id: &str, file: Option<&str>) -> bool {
    let Some(s) = &input.stressed else {
        return false;
    };
    if s.tests.is_empty() {
        let repro = input.repro.filter(|_| !input.repro_is_new).map(|r| r.file);
        repro.is_some() && locate_test_file(root, id, file).as_deref() == repro
    } else {
        s.tests.iter().any(|t| outcome::same_test(t, id))
    }
}

/// The reproduction's file when [`VerifyInput::stressed`] has no test ids (exit code only): it
/// stands for the flaky test, whose one-run outcome is chance.
fn stressed_file<'a>(input: &VerifyInput<'a>) -> Option<&'a str> {
    input
        .stressed
        .as_ref()
        .filter(|s| s.tests.is_empty())
        .and(input.repro)
        .map(|r| r.file)
}

/// The test files the suite runs without `suite-command`: the CI failure's files and the test
/// files in the reproduction's folder, as the base commit has them.
fn suite_files(input: &VerifyInput<'_>, base_tree: &Sealed) -> Vec<String> {
    let mut files: Vec<String> = input
        .ci_tests
        .iter()
        .filter_map(|(id, f)| locate_test_file(&base_tree.root(), id, f.as_deref()))
        .collect();
    if let Some(ReproInput { file: repro, .. }) = input.repro {
        if !input.repro_is_new {
            // The repository's own failing test: its other tests belong to the suite.
            files.push(repro.to_string());
        }
        let folder = Path::new(repro).parent().unwrap_or(Path::new(""));
        let ext = Path::new(repro)
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("");
        if let Ok(rd) = std::fs::read_dir(base_tree.root().join(folder)) {
            let mut found: Vec<String> = rd
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .map(|e| {
                    let rel = folder.join(e.file_name());
                    rel.to_string_lossy().replace('\\', "/")
                })
                .filter(|rel| {
                    rel.as_str() != repro
                        && Path::new(rel).extension().and_then(|e| e.to_str()) == Some(ext)
                        && crate::runners::looks_like_test(rel)
                        && !rel.ends_with("conftest.py")
                        && !rel.ends_with("__init__.py")
                })
                .collect();
            found.sort();
            files.extend(found);
        }
    }
    let mut seen = std::collections::HashSet::new();
    files.retain(|f| seen.insert(f.clone()) && Some(f.as_str()) != stressed_file(input));
    files
}

fn suite_runner(input: &VerifyInput<'_>, files: &[String]) -> Option<RunnerCommand> {
    match input.suite_command {
        Some(line) => Some(command::parse_line(line)),
        None => files
            .first()
            .map(|f| runner_for(f, input.template).with_targets(Some(files))),
    }
}

/// The base suite an earlier attempt ran at this verification's base commit, if any.
fn cached_base_suite(input: &VerifyInput<'_>, out: &VerifyOutput) -> Option<SuiteRecord> {
    out.base_suite
        .clone()
        .filter(|b| b.commit == input.base.to_string())
}

/// Check (c). `base_seal` is the base commit's checkout started in the background, if any
/// (sealed here when it is `None` and the base suite must run).
fn regression_check(
    input: &VerifyInput<'_>,
    fix_tree: &Sealed,
    base_seal: Option<BackgroundSeal>,
    guard: &mut integrity::Guard,
    lim: &mut RunLimits<'_>,
    out: &mut VerifyOutput,
) -> Result<CheckRecord, Error> {
    // The base suite: once per run.
    let base = match cached_base_suite(input, out) {
        Some(b) => b,
        None => {
            let (sealed, beside_runs) = match base_seal.filter(|b| b.commit() == input.base) {
                Some(b) => (b.join(input.repo), true),
                None => (sealed::seal(input.repo, input.base, None), false),
            };
            // Dropped at the end of this arm, before the fix's suite runs: removed in the
            // background (see `sealed::remove_later`).
            let base_tree = match refuse_or_fail(sealed)? {
                Ok(t) => t,
                Err(why) => {
                    return Ok(not_run(
                        "regressions",
                        format!("the base commit cannot be checked out: {why}"),
                    ));
                }
            };
            if beside_runs {
                // Checked out while the candidate's tests ran (the agent's code, which could
                // reach it): every file must still be the base commit's, by content.
                let mut g = integrity::Guard::new(input.repo, input.base, &base_tree.root())
                    .map_err(|e| Error::infra("cannot read the base commit").source(e))?;
                let found = g.findings_by_content();
                if !found.is_empty() {
                    let why = format!(
                        "the base commit's checkout was changed while the candidate's tests ran: {}",
                        found.join("; ")
                    );
                    out.failure_output = Some(why.clone());
                    return Ok(CheckRecord {
                        status: CheckStatus::Failed,
                        ..not_run("regressions", why)
                    });
                }
            }
            let files = if input.suite_command.is_some() {
                Vec::new()
            } else {
                suite_files(input, &base_tree)
            };
            let Some(runner) = suite_runner(input, &files) else {
                return Ok(not_run("regressions", "no suite: no `suite-command` and no other test files beside the reproduction or the CI failure".into()));
            };
            let log = lim.log_dir.join("suite-base.log");
            let run = run_once(&runner, &base_tree.root(), &base_tree.scratch(), &log, lim)?;
            (lim.on_run)(
                "suite at base",
                1,
                run.termination.success(),
                run.termination.describe(),
            );
            let rec = SuiteRecord {
                commit: input.base.to_string(),
                command: runner.display(),
                files,
                evidence: run.evidence.into(),
                passed: run
                    .cases
                    .iter()
                    .flatten()
                    .filter(|c| c.outcome == CaseOutcome::Passed)
                    .map(Case::id)
                    .collect(),
                exit_ok: run.termination.success(),
            };
            out.runs.push(("suite-base".into(), run));
            out.base_suite = Some(rec.clone());
            rec
        }
    };
    let runner = match input.suite_command {
        Some(line) => command::parse_line(line),
        None => match base.files.first() {
            Some(f) => runner_for(f, input.template).with_targets(Some(&base.files)),
            None => return Ok(not_run("regressions", "no suite: no `suite-command` and no other test files beside the reproduction or the CI failure".into())),
        },
    };
    // The candidate with the base commit's test files: a weakened or deleted test cannot hide
    // a regression.
    restore_base_tests(
        input.repo,
        input.base,
        input.candidate,
        fix_tree,
        guard,
        stressed_file(input),
    )?;
    if let Some(ReproInput { file, .. }) = input.repro.filter(|_| input.repro_is_new) {
        // An added reproduction test is not part of the base suite.
        fix_tree
            .remove(file)
            .map_err(|e| io_error("remove the reproduction test from", &fix_tree.root(), e))?;
        guard.expect(file, None);
    }
    let log = lim.log_dir.join("suite-fix.log");
    let run = guarded(run_once(&runner, &fix_tree.root(), &fix_tree.scratch(), &log, lim)?, guard);
    let mut check = new_check("regressions", &runner, Vec::new());
    check.runs = 1;
    check.evidence = run.evidence.into();
    let exclude: Vec<&String> = input
        .ci_tests
        .iter()
        .map(|(id, _)| id)
        .chain(input.stressed.iter().flat_map(|s| &s.tests))
        .collect();
    let verdict: Result<String, String> = match (&run.cases, &run.report_error, base.evidence.as_str()) {
        _ if run.tampered.is_some() => Err(run.tampered.clone().unwrap_or_default()),
        (Some(cases), None, "junit" | "go-json") => {
            let broken: Vec<String> = base
                .passed
                .iter()
                .filter(|id| !exclude.iter().any(|e| outcome::same_test(id, e)))
                .filter(|id| {
                    !cases
                        .iter()
                        .any(|c| c.id() == **id && c.outcome == CaseOutcome::Passed)
                })
                .map(|id| {
                    let now = cases.iter().find(|c| c.id() == *id);
                    match now {
                        Some(c) => describe_case(c),
                        None => format!("test `{id}` no longer runs"),
                    }
                })
                .collect();
            if broken.is_empty() {
                Ok(format!("{} tests that passed at the base still pass", base.passed.len()))
            } else {
                Err(format!("regressions: {}", broken.join("; ")))
            }
        }
        (_, Some(why), _) if base.exit_ok || !base.passed.is_empty() => Err(format!("the suite wrote no report at the fix: {why}")),
        _ if !base.exit_ok => Ok("the suite already failed at the base and has no report to compare by test id: no regression evidence (weaker)".into()),
        _ if run.termination.success() => Ok("the suite passed at the base and at the fix (exit code only: weaker evidence)".into()),
        _ => Err(format!("the suite passed at the base but ended with {} at the fix", run.termination.describe())),
    };
    (lim.on_run)(
        "suite at fix",
        1,
        verdict.is_ok(),
        run.termination.describe(),
    );
    match verdict {
        Ok(d) => {
            check.passed = 1;
            check.detail = d;
        }
        Err(d) => {
            check.status = CheckStatus::Failed;
            check.detail = d.clone();
            out.failure_output = Some(format!(
                "The fix breaks tests that passed before it (run with the base commit's test files):\n{d}\n\n{}",
                run.tail(6 * 1024)
            ));
        }
    }
    out.runs.push(("suite-fix".into(), run));
    Ok(check)
}

/// Puts the base commit's version of every test file the candidate changed back into `tree`
/// (files the candidate added are removed), except `keep` (the flaky test's own file when only
/// its exit code tells its outcome, see [`VerifyInput::stressed`]).
fn restore_base_tests(
    repo: &Repository,
    base: Oid,
    candidate: Oid,
    tree: &Sealed,
    guard: &mut integrity::Guard,
    keep: Option<&str>,
) -> Result<(), Error> {
    let infra =
        |e: git2::Error| Error::infra("cannot diff the candidate against the base").source(e);
    let bt = repo
        .find_commit(base)
        .and_then(|c| c.tree())
        .map_err(infra)?;
    let ct = repo
        .find_commit(candidate)
        .and_then(|c| c.tree())
        .map_err(infra)?;
    let diff = repo
        .diff_tree_to_tree(Some(&bt), Some(&ct), None)
        .map_err(infra)?;
    for d in diff.deltas() {
        for p in [d.old_file().path(), d.new_file().path()]
            .into_iter()
            .flatten()
        {
            let rel = p.to_string_lossy().replace('\\', "/");
            if !crate::runners::looks_like_test(&rel) || Some(rel.as_str()) == keep {
                continue;
            }
            let res = match bt
                .get_path(p)
                .ok()
                .and_then(|e| repo.find_blob(e.id()).ok())
            {
                Some(blob) => {
                    let r = tree.write(&rel, blob.content());
                    guard.expect(&rel, Some(blob.content()));
                    r
                }
                None => {
                    let r = tree.remove(&rel);
                    guard.expect(&rel, None);
                    r
                }
            };
            res.map_err(|e| io_error("restore a base test file in", &tree.root(), e))?;
        }
    }
    Ok(())
}

/// Confirms a reproduction: `runs` runs of `runner` in a sealed `commit` with `bytes` written at
/// `test_file`; every run must fail (with a report: a test case of the file failed). Returns the
/// ids that failed in every run, the evidence kind, and the runs; `Err(why)` inside `Ok` when it
/// is not a reproduction.
#[allow(clippy::type_complexity)]
pub fn confirm(
    repo: &Repository,
    commit: Oid,
    test_file: &str,
    bytes: &[u8],
    runner: &RunnerCommand,
    runs: u64,
    lim: &mut RunLimits<'_>,
) -> Result<(Result<(Vec<String>, &'static str), String>, Vec<RunOutcome>), Error> {
    let tree = match seal_or_refuse(repo, commit)? {
        Ok(t) => t,
        Err(why) => return Ok((Err(why), Vec::new())),
    };
    tree.write(test_file, bytes)
        .map_err(|e| io_error("write the reproduction test into", &tree.root(), e))?;
    // A reproduction that fails only because it rewrote the code it tests proves nothing.
    let mut guard = integrity::Guard::new(repo, commit, &tree.root())
        .map_err(|e| Error::infra("cannot read the commit to check out").source(e))?;
    guard.expect(test_file, Some(bytes));
    let mut common: Option<Vec<String>> = None;
    let mut evidence = "exit-code";
    let mut timed_out = false;
    let mut all = Vec::new();
    for k in 1..=runs {
        let log = lim.log_dir.join(format!("run-{k}.log"));
        let run = guarded(run_once(runner, &tree.root(), &tree.scratch(), &log, lim)?, &mut guard);
        evidence = run.evidence;
        timed_out |= matches!(run.termination, Termination::TimedOut { .. });
        let verdict = match &run.tampered {
            Some(why) => Err(why.clone()),
            None => failing_ids(&run),
        };
        (lim.on_run)("confirm", k, verdict.is_err(), run.termination.describe());
        let cancelled = run.termination == Termination::Cancelled;
        all.push(run);
        match verdict {
            Ok(ids) => {
                common = Some(match common {
                    None => ids,
                    Some(prev) => prev.into_iter().filter(|i| ids.contains(i)).collect(),
                });
            }
            Err(why) => return Ok((Err(format!("run {k} of {runs}: {why}")), all)),
        }
        if cancelled {
            return Ok((Err("interrupted".into()), all));
        }
    }
    let ids = common.unwrap_or_default();
    if evidence != "exit-code" && ids.is_empty() {
        if !timed_out {
            return Ok((Err("no test failed in every run".into()), all));
        }
        evidence = "exit-code";
    }
    Ok((Ok((ids, evidence)), all))
}

/// `true` when the runner's outcome comes from a report.
pub fn has_report(r: &RunnerCommand) -> bool {
    r.runner.has_report() && r.runner != Runner::Shell
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(tests: &[&str]) -> CheckRecord {
        CheckRecord {
            tests: tests.iter().map(|t| t.to_string()).collect(),
            ..not_run("reproduction", String::new())
        }
    }

    #[test]
    fn the_statistical_check_covers_its_own_ids_or_without_ids_its_existing_file() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = Repository::init(tmp.path()).unwrap();
        std::fs::create_dir_all(tmp.path().join("tests")).unwrap();
        for f in ["tests/test_a.py", "tests/test_b.py"] {
            std::fs::write(tmp.path().join(f), "").unwrap();
        }
        let runner = command::parse_line("python3 -m pytest tests/test_a.py");
        let mut input = VerifyInput {
            repo: &repo,
            base: Oid::ZERO_SHA1,
            candidate: Oid::ZERO_SHA1,
            repro: Some(ReproInput {
                file: "tests/test_a.py",
                bytes: None,
                runner: &runner,
                ids: &[],
            }),
            repro_is_new: false,
            runs: 1,
            ci_tests: Vec::new(),
            template: None,
            suite_command: None,
            base_suite: None,
            gate: &[],
            stressed: None,
        };
        let root = tmp.path();
        let a = "tests/test_a.py::test_flaky";
        let b = "tests/test_b.py::test_other";
        // Without a statistical check, nothing is covered (the deterministic path runs (b)).
        assert!(!stress_covers(&input, root, a, None));
        assert_eq!(stressed_file(&input), None);
        // With ids: the same test (pytest or dotted form), not another of the same file.
        input.stressed = Some(stat(&["tests.test_a.test_flaky"]));
        assert!(stress_covers(&input, root, a, None));
        assert!(!stress_covers(&input, root, "tests/test_a.py::test_x", None));
        assert!(!stress_covers(&input, root, b, None));
        assert_eq!(stressed_file(&input), None);
        // Exit code only: the stressed file stands for its tests.
        input.stressed = Some(stat(&[]));
        assert!(stress_covers(&input, root, a, None));
        assert!(!stress_covers(&input, root, b, Some("tests/test_b.py")));
        assert_eq!(stressed_file(&input), Some("tests/test_a.py"));
        // An agent's new test has other ids: the CI's own test is not covered and runs once.
        input.repro_is_new = true;
        assert!(!stress_covers(&input, root, a, None));
    }
}
