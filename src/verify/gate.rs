//! Running the spec's `gate`: each command through `sh -c` in a tree fixci owns (a sealed
//! checkout of the base commit, or of a candidate fix), in its own process group under what is
//! left of the caller's budget, output to a log file fixci owns. A gate command passes when it
//! exits 0; nothing else counts (a gate is defined by its exit code, as in CI).

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::RunLimits;
use super::record::{CheckRecord, CheckStatus};
use crate::error::Error;
use crate::process::{self, CommandSpec, Limits, OutputTo, Termination};

/// How one gate command ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateOutcome {
    /// The command line, as the spec gives it.
    pub command: String,
    /// True when it exited 0.
    pub passed: bool,
    /// How it ended: `exit 1`, `timeout`, `killed by signal 9`, `cancelled`.
    pub ended: String,
    /// Its combined output (a file in the run directory).
    pub log: PathBuf,
}

/// The gate as fixci ran it at the base commit (kept in the run state).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateState {
    /// The commit the gate ran on.
    pub commit: String,
    /// Each command's outcome, in order.
    pub outcomes: Vec<GateOutcome>,
}

impl GateState {
    /// True when at least one command failed: the gate reproduces a failure.
    pub fn failed(&self) -> bool {
        self.outcomes.iter().any(|o| !o.passed)
    }
}

/// Runs every command of `gate` in `tree`, one after another (a failing command does not stop
/// the others: each command's outcome is wanted), logs at `<log_dir>/<prefix>-<k>.log`. A
/// command that starts after the deadline is not started and ends `timeout`; an interruption
/// stops the remaining commands.
///
/// Errors (exit 3): `sh` cannot be started.
pub fn run(
    gate: &[String],
    tree: &Path,
    prefix: &str,
    lim: &mut RunLimits<'_>,
) -> Result<Vec<GateOutcome>, Error> {
    let mut out = Vec::new();
    for (k, command) in gate.iter().enumerate() {
        let log = lim.log_dir.join(format!("{prefix}-{}.log", k + 1));
        let remaining = lim.deadline.saturating_duration_since(Instant::now());
        let termination = if remaining.is_zero() {
            let _ = std::fs::write(&log, "not started: the budget ran out\n");
            Termination::TimedOut { killed: false }
        } else {
            let spec = CommandSpec {
                program: "sh".into(),
                args: vec!["-c".into(), command.clone()],
                cwd: tree.to_path_buf(),
                env: lim.env.clone(),
                env_remove: lim.env_remove.clone(),
                stdin: None,
            };
            let spec = match &lim.jail {
                Some(j) => j.wrap(spec, &[tree]).map_err(|e| {
                    Error::infra(format!("cannot start the gate command `{command}`")).source(e)
                })?,
                None => spec,
            };
            process::run(
                &spec,
                &OutputTo::Combined(log.clone()),
                Limits {
                    budget: remaining,
                    grace: lim.grace,
                },
                lim.cancel,
                &mut |_| {},
            )
            .map_err(|e| Error::infra(format!("cannot start the gate command `{command}`")).source(e))?
            .termination
        };
        (lim.on_run)(
            &format!("gate `{command}`"),
            k as u64 + 1,
            termination.success(),
            termination.describe(),
        );
        out.push(GateOutcome {
            command: command.clone(),
            passed: termination.success(),
            ended: termination.describe(),
            log,
        });
        if termination == Termination::Cancelled {
            break;
        }
    }
    Ok(out)
}

/// The failing commands' output, each headed by its command line and how it ended: the text
/// fixci distils as the gate's CI log. Redacted.
pub fn failing_output(outcomes: &[GateOutcome], max_bytes: u64) -> String {
    outcomes
        .iter()
        .filter(|o| !o.passed)
        .map(|o| {
            format!(
                "$ {}\n{}\n[gate command ended with {}]\n",
                o.command,
                process::tail(&o.log, max_bytes),
                o.ended
            )
        })
        .map(|s| crate::redact::redact(&s))
        .collect::<Vec<_>>()
        .join("\n")
}

/// One verification check per gate command (`gate`, the command, passed or failed), for the
/// report's verification table.
pub fn checks(outcomes: &[GateOutcome]) -> Vec<CheckRecord> {
    outcomes
        .iter()
        .map(|o| CheckRecord {
            name: "gate".into(),
            command: o.command.clone(),
            runs: 1,
            passed: u64::from(o.passed),
            evidence: "exit-code".into(),
            status: if o.passed {
                CheckStatus::Passed
            } else {
                CheckStatus::Failed
            },
            detail: if o.passed {
                "exit 0 on the fix commit".into()
            } else {
                format!("ended with {} on the fix commit", o.ended)
            },
            tests: Vec::new(),
        })
        .collect()
}
