//! `run-test`: fixci runs the reproduction itself, each run in its own process group under what
//! is left of the stage budget. In repeat mode both directions run in sealed checkouts
//! ([`super::sealed_run`]): `expect = "fail"` confirms a reproduction on the start commit (every
//! run must fail); `expect = "pass"` commits the attempt and verifies that commit (the
//! reproduction passes N times, the CI's failing tests pass, no regressions). With
//! `restore-test`, fixci's own bytes of the confirmed test are used, so an agent cannot pass
//! verification by editing the test. Stress mode (flaky failures) runs in sealed trees too: the
//! start commit with fixci's bytes of the test to confirm, the committed attempt to verify (the
//! CI's own test as the attempt edited it, an agent's test from fixci's bytes), each run judged
//! by its report where the runner writes one. A fix that passes the statistical check then gets
//! the other checks on the same commit ([`sealed_run::run_checks`]): the CI's failing tests, the
//! spec's gate, and no regressions against the base commit.
//!
//! The CI's own failing test in a flaky run is itself flaky. Check (b) therefore does not run a
//! CI test again when the statistical check covered it (the same test id as one that failed
//! under stress, or, for an existing test judged by exit code only, a test of the stressed file):
//! N runs under stress are stronger evidence than one more run. A CI failing test the stress did
//! not cover (an agent's new reproduction test has another id) runs once, and a failure fails
//! the attempt like any other check. Check (c) leaves the stressed ids out of the comparison
//! (one run of a flaky test is chance), compares every other test that passed at the base.

use super::sealed_run;
use super::{Stage, StageCtx, StageResult, test_env_remove};
use crate::defaults;
use crate::error::{Error, io_error};
use crate::judge::reproduction::{judge_failing_run, judge_passing_run};
use crate::pipeline::{Count, Expect, RunMode};
use crate::process;
use crate::run_dir::Event;
use crate::run_dir::{Counts, FlakyStats};
use crate::verify::record::{CheckRecord, CheckStatus, Verification};

/// The `run-test` stage.
pub struct RunTest {
    /// Expected outcome of every run.
    pub expect: Expect,
    /// Number of runs (default: 3 to confirm, the spec's `verify-runs` or 5 to verify).
    pub runs: Option<Count>,
    /// Restore fixci's copy of the reproduction test before each run.
    pub restore: bool,
    /// One run after another, or in parallel under stress.
    pub mode: RunMode,
    /// Stress verification: probability that an ineffective fix passes.
    pub alpha: f64,
    /// Stress confirmation: stop once this many failures were seen.
    pub until_failures: Option<u64>,
}

impl Stage for RunTest {
    fn run(&self, cx: &mut StageCtx<'_>) -> Result<StageResult, Error> {
        if self.mode == RunMode::Stress {
            return self.stress(cx);
        }
        // A gate run verifies without a reproduction test: its gate is the reproduction.
        let gate_verify = self.expect == Expect::Pass && !cx.env.spec().spec.gate.is_empty();
        if cx.st().repro.is_none() && !gate_verify {
            return Err(Error::usage(format!(
                "stage `{}` needs a reproduction (a reproduce stage or `existing-test-path`) before it",
                cx.id
            )));
        }
        let default = match self.expect {
            Expect::Fail => defaults::CONFIRM_RUNS,
            Expect::Pass => u64::from(defaults::verify_runs(cx.env.spec().spec.verify_runs)),
        };
        let n = cx.env.count(self.runs.as_ref(), default, "`runs`")?;
        // Both run in sealed checkouts with commands fixci builds (see `sealed_run`).
        match self.expect {
            Expect::Fail => super::sealed_run::confirm(cx, n),
            Expect::Pass => super::sealed_run::verify(cx, n, self.restore),
        }
    }
}

/// Records the statistical check as the attempt's only check (it failed, or the budget left no
/// time for the others); passed when it passed, with `failure_output` for the next prompt.
fn record_statistical_only(
    cx: &mut StageCtx<'_>,
    commit: git2::Oid,
    check: CheckRecord,
    counts: Counts,
    failure_output: Option<String>,
) {
    let passed = check.status == CheckStatus::Passed;
    cx.emit(Event::CandidateVerified {
        attempt: cx.attempt,
        verification: Some(Verification {
            commit: commit.to_string(),
            checks: vec![check],
        }),
        base_suite: None,
        tampering: Vec::new(),
    });
    cx.emit(Event::VerificationRecorded {
        attempt: cx.attempt,
        counts,
        passed,
        failure_output,
    });
}

/// The CI failure's kind and signature, from the distilled log of the run (if any).
fn ci_kind(st: &crate::run_dir::RunState) -> Option<(crate::judge::FailureKind, String)> {
    st.logs
        .as_ref()
        .and_then(|l| crate::judge::reproduction::ci_kind(&l.distilled))
}

impl RunTest {
    /// Parallel runs through the stress runner. `expect = "fail"` confirms a flaky reproduction
    /// (at least one counted failure) and measures p0; `expect = "pass"` verifies a fix with
    /// N = ceil(ln(alpha) / ln(1 - p0/k)) runs (k = the spec's `min-improvement`), stopping at
    /// the first failure. Only failures that can confirm a reproduction count towards p0
    /// ([`crate::judge::reproduction`]).
    fn stress(&self, cx: &mut StageCtx<'_>) -> Result<StageResult, Error> {
        use crate::stress::{self, FailureMatch, StopReason, StressCommand, StressConfig};
        let deadline = std::time::Instant::now() + cx.budget;
        let planned_default = || u64::from(defaults::verify_runs(cx.env.spec().spec.verify_runs));
        let setup = match sealed_run::setup(cx)? {
            Ok(s) => s,
            Err(why) if self.expect == Expect::Pass => {
                return Ok(sealed_run::not_verified(cx, planned_default(), why));
            }
            Err(why) => return Ok(StageResult::failed(why)),
        };
        let repro = setup.repro.clone();
        // Confirm on the start commit with fixci's bytes; verify the committed attempt, with
        // fixci's bytes of an agent's test (`restore`) and the CI's own test as the attempt
        // edited it (such edits are judged before: `crate::judge::test_edits`).
        let (commit, write_repro) = match self.expect {
            Expect::Fail => (sealed_run::start_commit(cx)?, true),
            Expect::Pass => (
                sealed_run::candidate(cx, &setup)?,
                self.restore && repro.origin != "existing",
            ),
        };
        let tree = match sealed_run::sealed_tree(&setup, commit, write_repro)? {
            Ok(t) => t,
            Err(why) if self.expect == Expect::Pass => {
                return Ok(sealed_run::not_verified(cx, planned_default(), why));
            }
            Err(why) => return Ok(StageResult::failed(why)),
        };
        // The candidate's runs must leave its tree the commit's (see `verify::integrity`).
        let mut guard = match self.expect {
            Expect::Pass => {
                let mut g = crate::verify::integrity::Guard::new(&setup.repo, commit, &tree.root())
                    .map_err(|e| Error::infra("cannot read the commit to verify").source(e))?;
                if write_repro {
                    g.expect(&setup.repro.test_file, Some(&setup.bytes));
                }
                Some(g)
            }
            Expect::Fail => None,
        };
        let (rec, runner) = (setup.rec.clone(), setup.runner.clone());
        let mut cfg = StressConfig::new(
            StressCommand::Runner(runner.clone()),
            tree.root(),
            cx.dir.join("stress"),
        );
        cfg.scratch = Some(tree.scratch());
        if !runner.runner.parallel_safe() {
            // Maven builds into the tree's `target/` on every run: one run at a time.
            cfg.jobs = 1;
        }
        if self.expect == Expect::Pass {
            cfg.wanted = rec.failing_ids.clone();
        }
        cfg.env_remove = test_env_remove(cx.env);
        cfg.jail = super::test_jail(cx);
        cfg.env = super::test_env(cx.env);
        cfg.duration = Some(cx.budget);
        cfg.grace = cx.env.grace.min(std::time::Duration::from_secs(2));
        cfg.per_run_timeout = cx.budget;
        // Only an existing test can be held to the CI log's failure signature: an agent's new
        // test has another test id, so there every failure counts.
        let signature = cx
            .st()
            .logs
            .as_ref()
            .and_then(|l| l.distilled.signature.clone());
        let ci = ci_kind(cx.st());
        let (signature, matched_by) = match (&signature, repro.origin.as_str()) {
            (Some(sig), "existing") => (
                Some(sig.clone()),
                format!("the CI failure signature `{sig}`"),
            ),
            _ => match &ci {
                Some((kind, _)) => (
                    None,
                    format!("failures of the CI's kind ({kind}) of the reproduction command"),
                ),
                None => (None, "any failure of the reproduction command".to_string()),
            },
        };
        // An import, collection or environment error never counts as a reproduction.
        cfg.failure_match = Some(FailureMatch::Reproduction {
            signature,
            ci_kind: ci.map(|(k, _)| k),
        });
        let planned = match self.expect {
            Expect::Fail => {
                cfg.runs = Some(cx.env.count(
                    self.runs.as_ref(),
                    defaults::STRESS_RUNS,
                    "`runs`",
                )?);
                cfg.until_failures = self.until_failures;
                cfg.runs.unwrap_or(400)
            }
            Expect::Pass => {
                let p0 = cx
                    .st()
                    .flaky
                    .as_ref()
                    .map(|f| f.failure_rate)
                    .unwrap_or(0.0);
                let n = match &self.runs {
                    Some(c) => cx.env.count(Some(c), 1, "`runs`")?,
                    None if p0 > 0.0 => crate::stats::runs_to_catch(
                        p0,
                        defaults::min_improvement(cx.env.spec().spec.min_improvement),
                        self.alpha,
                    ),
                    None => u64::from(defaults::verify_runs(cx.env.spec().spec.verify_runs)),
                };
                cfg.runs = Some(n);
                cfg.until_failures = Some(1);
                n
            }
        };
        let report = stress::run(&cfg, Some(cx.env.req.cancel), &mut |_| {}).map_err(|e| {
            Error::infra(format!("stage `{}`: the stress runner failed", cx.id)).source(e)
        })?;
        let tampered = guard.as_mut().and_then(|g| g.tampering());
        drop(tree);
        let evidence = if crate::verify::has_report(&runner) {
            if runner.runner == crate::runners::command::Runner::GoTest {
                "go-json"
            } else {
                "junit"
            }
        } else {
            "exit-code"
        };
        std::fs::write(
            cx.dir.join("stress.json"),
            serde_json::to_string_pretty(&report).unwrap_or_default(),
        )
        .map_err(|e| io_error("write", &cx.dir.join("stress.json"), e))?;
        let first = report.failing_runs.iter().find(|r| r.counted);
        let first_failure = first.map(|r| {
            let why = r
                .why
                .as_ref()
                .map(|w| format!("{w}\n\n"))
                .unwrap_or_default();
            crate::redact::redact(&format!("{why}{}", process::tail(&r.output, 6 * 1024)))
        });
        let first_why = first.and_then(|r| r.why.clone());
        let counts = Counts {
            runs: report.runs,
            passed: report.runs - report.failures - report.unmatched_failures,
            failed: report.failures + report.unmatched_failures,
            timed_out: report.timeouts,
            planned,
        };
        if report.stop_reason == StopReason::Interrupted {
            return Ok(StageResult::failed("interrupted"));
        }
        match self.expect {
            Expect::Fail => {
                let stats = FlakyStats {
                    runs: report.runs,
                    failures: report.failures,
                    unmatched_failures: report.unmatched_failures,
                    failure_rate: report.failure_rate,
                    interval: report.interval,
                    confidence: report.confidence,
                    matched_by: matched_by.clone(),
                    jobs: report.jobs,
                    wall_s: report.wall_s,
                };
                cx.emit(Event::FlakyMeasured { stats });
                // The test ids that failed under stress are what verification requires to pass.
                let mut ids: Vec<String> = Vec::new();
                for r in report.failing_runs.iter().filter(|r| r.counted) {
                    for t in &r.failed_tests {
                        if !ids.contains(t) {
                            ids.push(t.clone());
                        }
                    }
                }
                let mut sealed = rec.clone();
                sealed.runner = Some(runner.clone());
                sealed.failing_ids = ids;
                sealed.evidence = evidence.into();
                cx.emit(Event::ReproductionSealed {
                    record: sealed,
                    command: runner.display(),
                });
                cx.emit(Event::ReproductionTested {
                    confirmed: report.failures > 0,
                    failure_output: first_failure,
                });
                if report.failures == 0 {
                    let other = if report.unmatched_failures > 0 {
                        let why = report
                            .failing_runs
                            .iter()
                            .find(|r| !r.counted)
                            .and_then(|r| {
                                let out = process::tail(&r.output, 256 * 1024);
                                judge_failing_run(&out, &r.termination, ci_kind(cx.st()).as_ref())
                                    .err()
                            })
                            .map(|w| format!("; the first: {w}"))
                            .unwrap_or_default();
                        format!(
                            " ({} failures of another signature or kind did not count{why})",
                            report.unmatched_failures
                        )
                    } else {
                        String::new()
                    };
                    return Ok(StageResult::failed(format!(
                        "no failure matching {matched_by} in {} runs under stress{other}",
                        report.runs
                    )));
                }
                Ok(StageResult::passed(format!(
                    "reproduced: {} of {} runs failed (p0 = {:.3}, {:.0}% interval [{:.3}, {:.3}]), {} jobs in parallel",
                    report.failures,
                    report.runs,
                    report.failure_rate,
                    report.confidence * 100.0,
                    report.interval.0,
                    report.interval.1,
                    report.jobs
                )))
            }
            Expect::Pass => {
                // A passing run that ran no test (a test renamed away) passes nothing.
                let no_test = report
                    .passing_samples
                    .iter()
                    .find_map(|p| judge_passing_run(&process::tail(p, 256 * 1024)).err());
                let passed = report.failures + report.unmatched_failures == 0
                    && no_test.is_none()
                    && tampered.is_none();
                let check = CheckRecord {
                    name: "reproduction".into(),
                    command: runner.display(),
                    runs: report.runs,
                    passed: counts.passed,
                    evidence: evidence.into(),
                    status: if passed {
                        CheckStatus::Passed
                    } else {
                        CheckStatus::Failed
                    },
                    detail: match (&first_why, &no_test) {
                        _ if tampered.is_some() => tampered.clone().unwrap_or_default(),
                        _ if passed => format!(
                            "passed {} of {planned} runs under stress (N from p0 and k)",
                            report.runs
                        ),
                        (Some(w), _) => format!("a failure after {} runs: {w}", report.runs),
                        (None, Some(w)) => w.clone(),
                        (None, None) => format!("a failure after {} runs", report.runs),
                    },
                    tests: rec.failing_ids.clone(),
                };
                if !passed {
                    let out = tampered.clone().or(first_failure).or(no_test.clone());
                    record_statistical_only(cx, commit, check, counts.clone(), out);
                    return Ok(StageResult::failed(format!(
                        "verification failed: {}",
                        match &no_test {
                            _ if tampered.is_some() => tampered.clone().unwrap_or_default(),
                            Some(w) if report.failures + report.unmatched_failures == 0 => w.clone(),
                            _ => format!(
                                "a failure after {} of {planned} runs{}",
                                report.runs,
                                first_why.map(|w| format!(": {w}")).unwrap_or_default()
                            ),
                        }
                    )));
                }
                if report.runs < planned {
                    // The budget ran out before N runs: no time is left for the other checks,
                    // and the run ends `partial` whatever they would say.
                    record_statistical_only(cx, commit, check, counts.clone(), None);
                    cx.emit(Event::PartialEvidence { reason: format!(
                        "verification reached {} of the {planned} runs the measured failure rate demands before its budget ran out (the CI's failing tests, the gate and the regression check were not run)",
                        report.runs
                    ) });
                } else {
                    // The other checks on the same commit: the CI's failing tests (those the
                    // stress runs did not already cover, run once), the spec's gate, and no
                    // regressions.
                    let checks = sealed_run::Checks {
                        candidate: commit,
                        runs: planned,
                        write_repro,
                        stressed: Some(check),
                        deadline,
                    };
                    let out = sealed_run::run_checks(cx, &setup.repo, Some(&setup), checks)?;
                    sealed_run::record(cx, &out, counts.clone());
                    if let Some(c) = out.verification.failed() {
                        return Ok(StageResult::failed(format!(
                            "verification failed: the {} check failed on commit {}: {}",
                            c.name,
                            &commit.to_string()[..10],
                            c.detail
                        )));
                    }
                }
                let bound = crate::stats::upper_bound_after_zero_failures(report.runs, 0.95);
                let k = defaults::min_improvement(cx.env.spec().spec.min_improvement);
                Ok(StageResult::passed(format!(
                    "passed {} of {planned} runs; failure rate after the fix < {bound:.4} at 95% confidence; a change dividing p0 by less than k = {k} would have failed with probability >= {:.3}",
                    report.runs,
                    1.0 - crate::stats::pass_probability(
                        cx.st().flaky.as_ref().map_or(0.0, |f| f.failure_rate) / k,
                        report.runs
                    )
                )))
            }
        }
    }
}
