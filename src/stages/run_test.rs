//! `run-test`: fixci runs the reproduction command itself, N times in the worktree, each run in
//! its own process group under what is left of the stage budget. `expect = "fail"` confirms a
//! reproduction (every run must fail); `expect = "pass"` verifies a fix (every run must pass).
//! With `restore-test`, fixci's own copy of the confirmed test is put back before each run, so
//! an agent cannot pass verification by editing the test.

use std::time::Instant;

use super::{Stage, StageCtx, StageResult, test_env_remove, worktree};
use crate::engine::Event;
use crate::engine::state::{Counts, StageStatus};
use crate::error::{Error, io_error};
use crate::pipeline::{Count, Expect};
use crate::process::{self, CommandSpec, Limits, OutputTo, Termination};

/// The `run-test` stage.
pub struct RunTest {
    /// Expected outcome of every run.
    pub expect: Expect,
    /// Number of runs (default: 3 to confirm, the spec's `verify-runs` or 5 to verify).
    pub runs: Option<Count>,
    /// Restore fixci's copy of the reproduction test before each run.
    pub restore: bool,
}

impl Stage for RunTest {
    fn run(&self, cx: &mut StageCtx<'_>) -> Result<StageResult, Error> {
        let wt = worktree(cx.st)?;
        let repro = cx.st.repro.clone().ok_or_else(|| Error::usage(format!("stage `{}` needs a reproduction (a reproduce stage or `existing-test-path`) before it", cx.id)))?;
        let default = match self.expect {
            Expect::Fail => 3,
            Expect::Pass => u64::from(cx.env.spec().spec.verify_runs.unwrap_or(5)),
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
                if let Some(copy) = &repro.copy {
                    let dest = wt.join(&repro.test_file);
                    if let Some(d) = dest.parent() {
                        std::fs::create_dir_all(d).map_err(|e| io_error("create", d, e))?;
                    }
                    std::fs::copy(copy, &dest)
                        .map_err(|e| io_error("restore the reproduction test to", &dest, e))?;
                }
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
                    let _ = std::fs::write(cx.env.run_dir.join("child.pid"), pid.to_string());
                },
            )
            .map_err(|e| Error::infra("cannot start `sh` to run the test").source(e))?;
            let _ = std::fs::remove_file(cx.env.run_dir.join("child.pid"));
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
            (cx.emit)(Event::TestRun {
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
            Expect::Fail => {
                let r = cx.st.repro.as_mut().expect("checked above");
                r.confirmed = ok;
                if let Some(out) = &first_failure {
                    r.failure_output = out.clone();
                }
            }
            Expect::Pass => {
                if let Some(a) = cx.st.current_attempt() {
                    a.verification = Some(counts.clone());
                    if let Some(out) = &first_failure {
                        a.failure_output = out.clone();
                    }
                } else if ok {
                    cx.st.verification = Some(counts.clone());
                }
            }
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
