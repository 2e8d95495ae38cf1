//! `fixci retry`: a new run that starts from an ended one. The new run gets its own id, run
//! directory, private clone and branch; the earlier run's directory is only read. What the
//! earlier run established is reused when it holds: its distilled log, and its confirmed
//! reproduction (fixci's copy of the test, checked against the SHA-256 recorded when it was
//! confirmed) or, for a gate run, its gate failing at the base. The stages that produced them
//! (`fetch-logs`, the reproduce agent, the confirming `run-test`) are then recorded as skipped
//! ("reused from run ...") and do not run again; without a confirmed reproduction every stage
//! runs. The earlier attempts (diffs, failures) and the user's steer reach the prompts as
//! `previous_attempts` and `steer`.

use crate::error::{Error, io_error};
use crate::pipeline::{Expect, Pipeline, Role, StageKind};
use crate::run_dir::retry::RetryOf;
use crate::run_dir::{AttemptOutcome, RunDir, RunState, StageRecord, StageStatus};
use crate::verify::record::sha256_hex;

/// The ended run a retry starts from, and the user's steer.
pub struct Earlier {
    /// Its directory (read only).
    pub dir: RunDir,
    /// Its state.
    pub st: RunState,
    /// `--prompt`: guidance for the new try.
    pub steer: Option<String>,
}

/// Seeds the new run's state `st` (run directory `run_dir`, pipeline `pipeline`) from
/// `earlier`: the link, the log, the reproduction when it was confirmed, and the reused stages.
///
/// Errors (exit 3): fixci's copy of the reproduction cannot be written into the new run.
pub fn seed(
    st: &mut RunState,
    earlier: &Earlier,
    run_dir: &RunDir,
    pipeline: &Pipeline,
) -> Result<(), Error> {
    let old = &earlier.st;
    let repro = match confirmed_repro(earlier) {
        Some((mut repro, bytes)) => {
            let copy = run_dir.repro_copy(&repro.test_file);
            if let Some(d) = copy.parent() {
                std::fs::create_dir_all(d).map_err(|e| io_error("create", d, e))?;
            }
            std::fs::write(&copy, &bytes).map_err(|e| io_error("write", &copy, e))?;
            repro.copy = Some(copy);
            if let Some(rec) = repro.sealed.as_mut() {
                rec.bytes = Some(bytes);
            }
            Some(repro)
        }
        None => None,
    };
    let gate_failed = old.repro.is_none() && old.gate.as_ref().is_some_and(|g| g.failed());
    let reuse = repro.is_some() || gate_failed;
    let mut reused = Vec::new();
    if reuse {
        st.logs = old.logs.clone();
        st.gate = old.gate.clone();
        st.flaky = old.flaky.clone();
        if repro.is_some() {
            st.repro = repro;
        }
        for def in &pipeline.stages {
            if matches!(def.kind, StageKind::GitBranch | StageKind::Attempts) {
                break;
            }
            let reusable = match def.kind {
                StageKind::FetchLogs => true,
                StageKind::Agent => def.role == Some(Role::Reproduce),
                StageKind::RunTest => def.expect == Some(Expect::Fail),
                _ => false,
            };
            let Some(rec) = old.stages.iter().find(|r| {
                r.id == def.id
                    && r.attempt.is_none()
                    && matches!(r.status, StageStatus::Passed | StageStatus::Skipped)
            }) else {
                continue;
            };
            if !reusable {
                continue;
            }
            st.stages.push(StageRecord {
                summary: format!("reused from run `{}`: {}", old.run_id, rec.summary),
                status: StageStatus::Skipped,
                duration_s: 0.0,
                budget_s: 0.0,
                refused: false,
                agent_report: None,
                ..rec.clone()
            });
            reused.push(def.id.clone());
        }
    }
    st.retry_of = Some(RetryOf {
        run_id: old.run_id.clone(),
        run_dir: earlier.dir.path().to_path_buf(),
        status: old.status,
        reason: old.reason.clone(),
        steer: earlier.steer.clone(),
        attempts: old
            .attempts
            .iter()
            .filter(|a| a.outcome != AttemptOutcome::Running)
            .cloned()
            .collect(),
        reused,
    });
    Ok(())
}

/// The earlier run's reproduction with fixci's bytes of the test, when fixci confirmed it and
/// its copy still matches the SHA-256 recorded then (a changed copy is not reused).
fn confirmed_repro(earlier: &Earlier) -> Option<(crate::run_dir::Repro, Vec<u8>)> {
    let repro = earlier.st.repro.clone().filter(|r| r.confirmed)?;
    let rec = repro.sealed.as_ref()?;
    let bytes = std::fs::read(repro.copy.as_ref()?).ok()?;
    (sha256_hex(&bytes) == rec.sha256).then_some((repro, bytes))
}
