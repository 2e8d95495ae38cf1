//! `run-test`: fixci runs the reproduction command itself, N times in the worktree, each run in
//! its own process group under what is left of the stage budget. `expect = "fail"` confirms a
//! reproduction (every run must fail); `expect = "pass"` verifies a fix (every run must pass).
//! With `restore-test`, fixci's own copy of the confirmed test is put back before each run, so
//! an agent cannot pass verification by editing the test.

use std::time::Instant;

use super::{Stage, StageCtx, StageResult, restore_repro_test, test_env_remove, worktree};
use crate::defaults;
use crate::run_dir::Event;
use crate::run_dir::{Counts, FlakyStats, StageStatus};
use crate::error::{Error, io_error};
use crate::pipeline::{Count, Expect, RunMode};
use crate::process::{self, CommandSpec, Limits, OutputTo, Termination};

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
}

impl Stage for RunTest {
    fn run(&self, cx: &mut StageCtx<'_>) -> Result<StageResult, Error> {
        if self.mode == RunMode::Stress {
            return self.stress(cx);
        }
        let wt = worktree(cx.st())?;
        let repro = cx.st().repro.clone().ok_or_else(|| Error::usage(format!("stage `{}` needs a reproduction (a reproduce stage or `existing-test-path`) before it", cx.id)))?;
        let default = match self.expect {
            Expect::Fail => defaults::CONFIRM_RUNS,
            Expect::Pass => u64::from(defaults::verify_runs(cx.env.spec().spec.verify_runs)),
        };
        let n = cx.env.count(self.runs.as_ref(), default, "`runs`")?;
        let started = Instant::now();
        let mut counts = Counts {
            planned: n,
            ..Default::default()
        };
        let mut first_failure: Option<String> = None;
        let mut verdict: Option<StageResult> = None;
        for k in 1..=n {
            if cx.env.cancelled() {
                verdict = Some(StageResult::failed("interrupted"));
                break;
            }
            let remaining = cx.budget.saturating_sub(started.elapsed());
            if remaining.is_zero() {
                verdict = Some(StageResult::new(
                    StageStatus::Timeout,
                    format!("the stage budget ran out after {} of {n} runs", counts.runs),
                ));
                break;
            }
            if self.restore {
                restore_repro_test(&wt, &repro)?;
            }
            let mut cmd = CommandSpec::shell(&repro.command, &wt);
            cmd.env_remove = test_env_remove(cx.env);
            let log = cx.dir.join(format!("run-{k}.log"));
            let f = process::run(
                &cmd,
                &OutputTo::Combined(log.clone()),
                Limits {
                    budget: remaining,
                    grace: cx.env.grace,
                },
                Some(cx.env.req.cancel),
                &mut |pid| {
                    cx.env.run_dir.record_child(pid);
                },
            )
            .map_err(|e| Error::infra("cannot start `sh` to run the test").source(e))?;
            cx.env.run_dir.clear_child();
            counts.runs += 1;
            let passed = f.termination.success();
            if passed {
                counts.passed += 1;
            } else {
                counts.failed += 1;
                if matches!(f.termination, Termination::TimedOut { .. }) {
                    counts.timed_out += 1;
                }
                if first_failure.is_none() {
                    first_failure = Some(crate::redact::redact(&process::tail(&log, 6 * 1024)));
                }
            }
            cx.emit(Event::TestRun {
                stage: cx.id.to_string(),
                run: k,
                of: n,
                passed,
                how: f.termination.describe(),
            });
            if f.termination == Termination::Cancelled {
                verdict = Some(StageResult::failed("interrupted"));
                break;
            }
            match (self.expect, passed) {
                (Expect::Fail, true) => {
                    verdict = Some(StageResult::failed(format!(
                        "the reproduction passed on run {k} of {n}: it does not reproduce the failure"
                    )));
                    break;
                }
                (Expect::Pass, false) => {
                    verdict = Some(StageResult::failed(format!(
                        "verification run {k} of {n} failed ({})",
                        f.termination.describe()
                    )));
                    break;
                }
                _ => {}
            }
        }
        std::fs::write(
            cx.dir.join("counts.json"),
            serde_json::to_string_pretty(&counts).unwrap_or_default(),
        )
        .map_err(|e| io_error("write", &cx.dir.join("counts.json"), e))?;
        let ok = verdict.is_none();
        match self.expect {
            Expect::Fail => cx.emit(Event::ReproductionTested {
                confirmed: ok,
                failure_output: first_failure.clone(),
            }),
            Expect::Pass => cx.emit(Event::VerificationRecorded {
                attempt: cx.attempt,
                counts: counts.clone(),
                passed: ok,
                failure_output: first_failure.clone(),
            }),
        }
        Ok(verdict.unwrap_or_else(|| {
            let timeouts = if counts.timed_out > 0 {
                format!(" ({} by timeout)", counts.timed_out)
            } else {
                String::new()
            };
            match self.expect {
                Expect::Fail => StageResult::passed(format!(
                    "failed {} of {} runs{timeouts}, as a reproduction must",
                    counts.failed, counts.runs
                )),
                Expect::Pass => {
                    StageResult::passed(format!("passed {} of {} runs", counts.passed, counts.runs))
                }
            }
        }))
    }
}

impl RunTest {
    /// Parallel runs through the stress runner. `expect = "fail"` confirms a flaky reproduction
    /// (at least one counted failure) and measures p0; `expect = "pass"` verifies a fix with
    /// N = ceil(ln(alpha) / ln(1 - p0)) runs, stopping at the first failure.
    fn stress(&self, cx: &mut StageCtx<'_>) -> Result<StageResult, Error> {
        use crate::stress::{self, FailureMatch, StopReason, StressCommand, StressConfig};
        let wt = worktree(cx.st())?;
        let repro = cx.st().repro.clone().ok_or_else(|| {
            Error::usage(format!("stage `{}` needs a reproduction before it", cx.id))
        })?;
        if self.restore {
            restore_repro_test(&wt, &repro)?;
        }
        let mut cfg = StressConfig::new(
            StressCommand::Shell(repro.command.clone()),
            wt.clone(),
            cx.dir.join("stress"),
        );
        cfg.env_remove = test_env_remove(cx.env);
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
        let matched_by = match (&signature, repro.origin.as_str()) {
            (Some(sig), "existing") => {
                cfg.failure_match = Some(FailureMatch::Signature(sig.clone()));
                format!("the CI failure signature `{sig}`")
            }
            _ => "any failure of the reproduction command".to_string(),
        };
        let planned = match self.expect {
            Expect::Fail => {
                cfg.runs = Some(cx.env.count(self.runs.as_ref(), defaults::STRESS_RUNS, "`runs`")?);
                cfg.runs.unwrap_or(400)
            }
            Expect::Pass => {
                let p0 = cx.st().flaky.as_ref().map(|f| f.failure_rate).unwrap_or(0.0);
                let n = match &self.runs {
                    Some(c) => cx.env.count(Some(c), 1, "`runs`")?,
                    None if p0 > 0.0 => crate::stats::runs_needed(p0, self.alpha),
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
        std::fs::write(
            cx.dir.join("stress.json"),
            serde_json::to_string_pretty(&report).unwrap_or_default(),
        )
        .map_err(|e| io_error("write", &cx.dir.join("stress.json"), e))?;
        let first_failure = report
            .failing_runs
            .iter()
            .find(|r| r.counted)
            .map(|r| crate::redact::redact(&process::tail(&r.output, 6 * 1024)));
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
                cx.emit(Event::ReproductionTested {
                    confirmed: report.failures > 0,
                    failure_output: first_failure,
                });
                if report.failures == 0 {
                    let other = if report.unmatched_failures > 0 {
                        format!(
                            " ({} failures with another signature did not count)",
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
                cx.emit(Event::VerificationRecorded {
                    attempt: cx.attempt,
                    counts: counts.clone(),
                    passed: report.failures + report.unmatched_failures == 0,
                    failure_output: first_failure,
                });
                if report.failures + report.unmatched_failures > 0 {
                    return Ok(StageResult::failed(format!(
                        "verification failed: a failure after {} of {planned} runs",
                        report.runs
                    )));
                }
                if report.runs < planned {
                    cx.emit(Event::PartialEvidence { reason: format!(
                        "verification reached {} of the {planned} runs the measured failure rate demands before its budget ran out",
                        report.runs
                    ) });
                }
                let bound = crate::stats::upper_bound_after_zero_failures(report.runs, 0.95);
                Ok(StageResult::passed(format!(
                    "passed {} of {planned} runs; failure rate after the fix < {bound:.4} at 95% confidence",
                    report.runs
                )))
            }
        }
    }
}
