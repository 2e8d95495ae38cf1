//! `run-test` in sealed trees (see [`crate::verify`]): confirming a reproduction on the start
//! commit plus fixci's bytes of the test, and verifying a fix attempt by committing it as a
//! candidate and running the checks on that commit. The set-up ([`setup`], [`candidate`],
//! [`sealed_tree`]) is shared with the stress mode of [`super::run_test`]. This file only moves
//! data between the run state and [`crate::verify`].

use std::time::Instant;

use super::{StageCtx, StageResult, test_env_remove, worktree};
use crate::error::{Error, io_error};
use crate::run_dir::{Counts, Event, Repro, StageStatus};
use crate::runners::command::RunnerCommand;
use crate::vcs;
use crate::verify::record::{CheckRecord, CheckStatus, ReproRecord, sha256_hex};
use crate::verify::sealed::Sealed;
use crate::verify::{self, RunLimits};

/// What every run in a sealed tree starts from: the reproduction, fixci's bytes of its test and
/// their record, the runner fixci built, and the worktree's repository (which holds the
/// commits).
pub(crate) struct Setup {
    /// The reproduction from the run state.
    pub repro: Repro,
    /// fixci's bytes of the test.
    pub bytes: Vec<u8>,
    /// Their record (hash, runner, confirmed failing ids).
    pub rec: ReproRecord,
    /// The runner fixci runs the test with.
    pub runner: RunnerCommand,
    /// The worktree's repository.
    pub repo: git2::Repository,
}

/// The set-up of a `run-test` stage: `Ok(Err(why))` when fixci's copy of the test was changed
/// (tampering) or is gone.
///
/// Errors: no reproduction before this stage (usage), the worktree cannot be opened.
pub(crate) fn setup(cx: &StageCtx<'_>) -> Result<Result<Setup, String>, Error> {
    let wt = worktree(cx.st())?;
    let repro = cx.st().repro.clone().ok_or_else(|| {
        Error::usage(format!(
            "stage `{}` needs a reproduction (a reproduce stage or `existing-test-path`) before it",
            cx.id
        ))
    })?;
    let template = cx.env.spec().spec.test_command.clone();
    let (bytes, rec) = match repro_bytes(&repro, template.as_deref()) {
        Ok(x) => x,
        Err(why) => return Ok(Err(why)),
    };
    let runner = rec
        .runner
        .clone()
        .unwrap_or_else(|| verify::runner_for(&repro.test_file, template.as_deref()));
    let repo = vcs::open(&wt).map_err(|e| Error::infra("cannot open the worktree").source(e))?;
    Ok(Ok(Setup {
        repro,
        bytes,
        rec,
        runner,
        repo,
    }))
}

/// Commits the attempt as a candidate (the commit that would be proposed: without an agent's
/// reproduction test unless `keep-test`).
pub(crate) fn candidate(cx: &StageCtx<'_>, s: &Setup) -> Result<git2::Oid, Error> {
    let exclude = if s.repro.origin == "agent" && !cx.env.spec().spec.keep_test {
        vec![s.repro.test_file.clone()]
    } else {
        Vec::new()
    };
    verify::candidate_commit(
        &s.repo,
        &super::commit_message(cx.st(), cx.env.spec()),
        &exclude,
    )
}

/// `commit` checked out in a sealed tree, with fixci's bytes of the test written in when
/// `write_repro`; `Ok(Err(why))` when the commit is refused (a symlink leaves the repository).
pub(crate) fn sealed_tree(
    s: &Setup,
    commit: git2::Oid,
    write_repro: bool,
) -> Result<Result<Sealed, String>, Error> {
    let tree = match verify::seal_or_refuse(&s.repo, commit)? {
        Ok(t) => t,
        Err(why) => return Ok(Err(why)),
    };
    if write_repro {
        tree.write(&s.repro.test_file, &s.bytes)
            .map_err(|e| io_error("write the reproduction test into", &tree.root(), e))?;
    }
    Ok(Ok(tree))
}

/// Records that the attempt's candidate could not be verified at all (`why`: tampering with
/// fixci's copy of the test, a refused checkout), and fails the stage with it.
pub(crate) fn not_verified(cx: &mut StageCtx<'_>, planned: u64, why: String) -> StageResult {
    cx.emit(Event::CandidateVerified {
        attempt: cx.attempt,
        verification: None,
        base_suite: None,
        tampering: vec![why.clone()],
    });
    cx.emit(Event::VerificationRecorded {
        attempt: cx.attempt,
        counts: Counts {
            planned,
            ..Default::default()
        },
        passed: false,
        failure_output: Some(why.clone()),
    });
    StageResult::failed(why)
}

/// The start commit of the run (where a reproduction is confirmed).
pub(crate) fn start_commit(cx: &StageCtx<'_>) -> Result<git2::Oid, Error> {
    git2::Oid::from_str(&cx.st().repo.start_commit)
        .map_err(|e| Error::infra("bad start commit in state").source(e))
}

/// fixci's bytes of the reproduction test and its record: from memory, or (a resumed run) from
/// the run directory's copy when it still matches the recorded hash. `Err(why)` when the copy was
/// changed (tampering) or is gone.
fn repro_bytes(repro: &Repro, template: Option<&str>) -> Result<(Vec<u8>, ReproRecord), String> {
    let copy_bytes = repro.copy.as_ref().and_then(|c| std::fs::read(c).ok());
    match &repro.sealed {
        Some(rec) => {
            if let Some(c) = &copy_bytes {
                if sha256_hex(c) != rec.sha256 {
                    return Err(format!(
                        "tampering: fixci's copy of the reproduction test in the run directory (`{}`) no longer matches the SHA-256 recorded when it was confirmed ({})",
                        repro
                            .copy
                            .as_ref()
                            .map(|p| p.display().to_string())
                            .unwrap_or_default(),
                        &rec.sha256[..12]
                    ));
                }
            } else if repro.copy.is_some() {
                return Err("tampering: fixci's copy of the reproduction test was removed from the run directory".into());
            }
            let bytes = rec
                .bytes
                .clone()
                .or(copy_bytes)
                .ok_or("no copy of the reproduction test")?;
            Ok((bytes, rec.clone()))
        }
        None => {
            let bytes = copy_bytes.ok_or("no copy of the reproduction test")?;
            let (runner, note) = verify::repro_runner(&repro.test_file, None, template);
            Ok((bytes.clone(), ReproRecord::new(bytes, runner, note)))
        }
    }
}

pub(super) fn limits<'a>(
    cx: &'a StageCtx<'_>,
    on_run: &'a mut dyn FnMut(&str, u64, bool, String),
) -> RunLimits<'a> {
    RunLimits {
        deadline: Instant::now() + cx.budget,
        grace: cx.env.grace,
        cancel: Some(cx.env.req.cancel),
        env_remove: test_env_remove(cx.env),
        env: super::test_env(cx.env),
        log_dir: cx.dir.clone(),
        jail: super::test_jail(cx),
        on_run,
    }
}

fn write_counts(cx: &StageCtx<'_>, counts: &Counts) -> Result<(), Error> {
    let p = cx.dir.join("counts.json");
    std::fs::write(&p, serde_json::to_string_pretty(counts).unwrap_or_default())
        .map_err(|e| io_error("write", &p, e))
}

/// Confirms the reproduction: `n` runs on the start commit with fixci's bytes of the test.
pub(crate) fn confirm(cx: &mut StageCtx<'_>, n: u64) -> Result<StageResult, Error> {
    let Setup {
        repro,
        bytes,
        mut rec,
        runner,
        repo,
    } = match setup(cx)? {
        Ok(s) => s,
        Err(why) => return Ok(StageResult::failed(why)),
    };
    let start = start_commit(cx)?;
    let id = cx.id.to_string();
    let mut events = Vec::new();
    let mut on_run = |_: &str, k: u64, failed_as_expected: bool, how: String| {
        events.push(Event::TestRun {
            stage: id.clone(),
            run: k,
            of: n,
            passed: !failed_as_expected,
            how,
        });
    };
    let mut lim = limits(cx, &mut on_run);
    let (verdict, runs) =
        verify::confirm(&repo, start, &repro.test_file, &bytes, &runner, n, &mut lim)?;
    drop(lim);
    for e in events {
        cx.emit(e);
    }
    // Every failing run must fail for the CI's reason: an import or collection error, a missing
    // runner or a failure of another kind than the CI's never confirms a reproduction.
    let ci = cx
        .st()
        .logs
        .as_ref()
        .and_then(|l| crate::judge::reproduction::ci_kind(&l.distilled));
    // Acceptance tests: verification wants every test of the file to pass (the ids failing at
    // the base are often an import failure's stand-in, which never exists after the feature).
    let mut accepted: Option<String> = None;
    let verdict = if repro.origin == crate::feature::ORIGIN {
        crate::feature::confirm_verdict(&repo, start, verdict, &runs)?.map(
            |((_, evidence), why)| {
                accepted = Some(why);
                (Vec::new(), evidence)
            },
        )
    } else {
        verdict.and_then(|ok| {
        for (k, run) in runs.iter().enumerate() {
            crate::judge::reproduction::judge_failing_report(
                &run.tail(256 * 1024),
                &run.termination,
                run.cases.as_deref(),
                ci.as_ref(),
            )
            .map_err(|why| format!("run {} of {n}: {why}", k + 1))?;
        }
        Ok(ok)
    })
    };
    let failed_runs = match &verdict {
        Ok(_) => runs.len() as u64,
        Err(_) => runs.len().saturating_sub(1) as u64,
    };
    write_counts(
        cx,
        &Counts {
            runs: runs.len() as u64,
            passed: runs.len() as u64 - failed_runs,
            failed: failed_runs,
            timed_out: runs
                .iter()
                .filter(|r| matches!(r.termination, crate::process::Termination::TimedOut { .. }))
                .count() as u64,
            planned: n,
        },
    )?;
    let failure_output = runs.first().map(|r| r.tail(6 * 1024));
    rec.runner = Some(runner.clone());
    let confirmed = verdict.is_ok();
    let result = match verdict {
        Ok((_, evidence)) if accepted.is_some() => {
            rec.failing_ids = Vec::new();
            rec.evidence = evidence.into();
            StageResult::passed(format!(
                "the acceptance tests failed {n} of {n} runs at the base commit, as tests of a missing feature must: {}",
                accepted.as_deref().unwrap_or_default()
            ))
        }
        Ok((ids, evidence)) => {
            rec.failing_ids = ids.clone();
            rec.evidence = evidence.into();
            let what = if ids.is_empty() {
                "by exit code only (weaker evidence: no report)".to_string()
            } else {
                format!(
                    "per the {evidence} report: {}",
                    ids.iter()
                        .map(|i| format!("`{i}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            StageResult::passed(format!(
                "failed {n} of {n} runs, as a reproduction must, {what}"
            ))
        }
        Err(why) if repro.origin == crate::feature::ORIGIN => StageResult::failed(why),
        Err(why) => StageResult::failed(format!("it does not reproduce the failure: {why}")),
    };
    cx.emit(Event::ReproductionSealed {
        record: rec,
        command: runner.display(),
    });
    cx.emit(Event::ReproductionTested {
        confirmed,
        failure_output,
    });
    Ok(result)
}

/// Verifies the current attempt: commits it as a candidate, checks that commit out in a sealed
/// tree and runs the three checks.
pub(crate) fn verify(cx: &mut StageCtx<'_>, n: u64, restore: bool) -> Result<StageResult, Error> {
    // A gate run's reproduction is its failing gate (see `super::gate`): no test file.
    let s = if cx.st().repro.is_none() && !cx.env.spec().spec.gate.is_empty() {
        None
    } else {
        match setup(cx)? {
            Ok(s) => Some(s),
            Err(why) => return Ok(not_verified(cx, n, why)),
        }
    };
    let gate_repo;
    let (repo, candidate) = match &s {
        Some(s) => (&s.repo, candidate(cx, s)?),
        None => {
            let wt = worktree(cx.st())?;
            gate_repo =
                vcs::open(&wt).map_err(|e| Error::infra("cannot open the worktree").source(e))?;
            let message = super::commit_message(cx.st(), cx.env.spec());
            (
                &gate_repo,
                verify::candidate_commit(&gate_repo, &message, &[])?,
            )
        }
    };
    // A feature's acceptance tests are new too (and stay in the candidate, see `candidate`).
    let write_repro = restore || s.as_ref().is_some_and(|s| repro_is_new(&s.repro));
    let checks = Checks {
        candidate,
        runs: n,
        write_repro,
        stressed: None,
        deadline: Instant::now() + cx.budget,
    };
    let out = run_checks(cx, repo, s.as_ref(), checks)?;
    let repro_check = out
        .verification
        .checks
        .iter()
        .find(|c| c.name == "reproduction");
    let counts = Counts {
        runs: repro_check.map_or(0, |c| c.runs),
        passed: repro_check.map_or(0, |c| c.passed),
        failed: repro_check.map_or(0, |c| c.runs - c.passed),
        timed_out: 0,
        planned: n,
    };
    write_counts(cx, &counts)?;
    record(cx, &out, counts);
    let summary = out
        .verification
        .checks
        .iter()
        .map(|c| {
            format!(
                "{} {}",
                c.name,
                match c.status {
                    CheckStatus::Passed => "passed",
                    CheckStatus::Failed => "FAILED",
                    CheckStatus::NotRun => "not run",
                }
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let short = &candidate.to_string()[..10];
    match out.verification.failed() {
        Some(c) => Ok(StageResult::new(
            StageStatus::Failed,
            format!("commit {short}: {} check failed: {}", c.name, c.detail),
        )),
        None => Ok(StageResult::passed(format!(
            "commit {short} verified in a sealed checkout: {summary}"
        ))),
    }
}

/// True when the reproduction test is fixci's addition (an agent's test or a feature's
/// acceptance tests), not a test of the repository.
fn repro_is_new(r: &Repro) -> bool {
    r.origin == "agent" || r.origin == crate::feature::ORIGIN
}

/// What [`run_checks`] verifies on which commit.
pub(crate) struct Checks {
    /// The candidate commit.
    pub candidate: git2::Oid,
    /// Runs of the reproduction (check (a)) when `stressed` is `None`.
    pub runs: u64,
    /// Write fixci's bytes of the reproduction test into the tree.
    pub write_repro: bool,
    /// Check (a) already run on `candidate` under stress (see [`verify::VerifyInput::stressed`]).
    pub stressed: Option<CheckRecord>,
    /// The stage's deadline: no run starts after it.
    pub deadline: Instant,
}

/// Runs [`verify::verify_candidate`] on `checks.candidate` in a sealed tree: (a) the
/// reproduction (or the statistical check already run), (b) the CI's failing tests, the gate,
/// (c) no regressions against the base commit. Emits a `TestRun` per run and writes
/// `verification.json` into the stage folder; the caller records the outcome ([`record`]).
///
/// Errors: a bad base commit in the state, git or disk trouble, a runner that cannot start.
pub(crate) fn run_checks(
    cx: &mut StageCtx<'_>,
    repo: &git2::Repository,
    s: Option<&Setup>,
    checks: Checks,
) -> Result<verify::VerifyOutput, Error> {
    let spec = cx.env.spec().spec.clone();
    let base = git2::Oid::from_str(&cx.st().repo.base_commit)
        .map_err(|e| Error::infra("bad base commit in state").source(e))?;
    // The CI's failing tests: from the distilled log, or the existing test itself.
    let ci_tests: Vec<(String, Option<String>)> = cx
        .st()
        .logs
        .as_ref()
        .map(|l| {
            l.distilled
                .failures
                .iter()
                .filter(|f| f.kind.as_deref() != Some("generic"))
                .map(|f| (f.test.clone(), f.file.clone()))
                .collect()
        })
        .unwrap_or_default();
    let n = checks.runs;
    let input = verify::VerifyInput {
        repo,
        base,
        candidate: checks.candidate,
        repro: s.map(|s| verify::ReproInput {
            file: s.repro.test_file.as_str(),
            bytes: checks.write_repro.then_some(s.bytes.as_slice()),
            runner: &s.runner,
            ids: s.rec.failing_ids.as_slice(),
        }),
        repro_is_new: s.is_some_and(|s| repro_is_new(&s.repro)),
        runs: n,
        ci_tests,
        template: spec.test_command.as_deref(),
        suite_command: spec.suite_command.as_deref(),
        base_suite: cx.st().base_suite.clone(),
        gate: &spec.gate,
        stressed: checks.stressed,
    };
    let id = cx.id.to_string();
    let mut events = Vec::new();
    let mut on_run = |label: &str, k: u64, passed: bool, how: String| {
        events.push(Event::TestRun {
            stage: id.clone(),
            run: k,
            of: if label == "reproduction" { n } else { k },
            passed,
            how: format!("{label}: {how}"),
        });
    };
    let mut lim = limits(cx, &mut on_run);
    lim.deadline = checks.deadline;
    let out = verify::verify_candidate(&input, &mut lim)?;
    drop(lim);
    for e in events {
        cx.emit(e);
    }
    let p = cx.dir.join("verification.json");
    std::fs::write(
        &p,
        serde_json::to_string_pretty(&out.verification).unwrap_or_default(),
    )
    .map_err(|e| io_error("write", &p, e))?;
    Ok(out)
}

/// Records the attempt's checks (`CandidateVerified`, with the base suite for later attempts)
/// and its verification counts, passed when no check failed; a failed check's output goes to
/// the next attempt's prompt.
pub(crate) fn record(cx: &mut StageCtx<'_>, out: &verify::VerifyOutput, counts: Counts) {
    cx.emit(Event::CandidateVerified {
        attempt: cx.attempt,
        verification: Some(out.verification.clone()),
        base_suite: out.base_suite.clone(),
        tampering: Vec::new(),
    });
    cx.emit(Event::VerificationRecorded {
        attempt: cx.attempt,
        counts,
        passed: out.verification.failed().is_none(),
        failure_output: out.failure_output.as_deref().map(crate::redact::redact),
    });
}
