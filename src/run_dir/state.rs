//! The run's state: everything the run learned (logs, reproduction, attempts, verification, PR),
//! persisted as `state.json` in the run directory, written atomically (temp file + rename) after
//! every stage so a run can be resumed or inspected at any point. It changes only through
//! [`RunState::apply`], the one reducer of the [`Event`] stream.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::event::Event;
use crate::logs::Distilled;
use crate::pipeline::StageKind;

/// Overall status of a run; `status` leads `result.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Still running (or killed before it could record an end).
    Running,
    /// A fix was verified and proposed.
    Success,
    /// A fix passed, but the evidence falls short of the required confidence.
    Partial,
    /// The pipeline ended without a fix before the attempt loop (e.g. could not reproduce).
    Failed,
    /// Every attempt failed verification; a human has to take over.
    Escalated,
    /// Stopped by SIGINT/SIGTERM; resumable.
    Interrupted,
    /// The spec's `gate` passed at the base commit: there was no failure to fix.
    NothingToFix,
}

impl Status {
    /// Lowercase name as in `result.json`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Success => "success",
            Status::Partial => "partial",
            Status::Failed => "failed",
            Status::Escalated => "escalated",
            Status::Interrupted => "interrupted",
            Status::NothingToFix => "nothing-to-fix",
        }
    }
}

/// How one stage ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StageStatus {
    Passed,
    Failed,
    Timeout,
    Skipped,
    Error,
    /// Cut short by SIGINT/SIGTERM (`fixci kill`); a resume runs the stage again.
    Interrupted,
}

impl StageStatus {
    /// Lowercase name.
    pub fn as_str(&self) -> &'static str {
        match self {
            StageStatus::Passed => "passed",
            StageStatus::Failed => "failed",
            StageStatus::Timeout => "timeout",
            StageStatus::Skipped => "skipped",
            StageStatus::Error => "error",
            StageStatus::Interrupted => "interrupted",
        }
    }
}

/// The record of one finished stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageRecord {
    /// Stage id.
    pub id: String,
    /// Stage kind (kebab-case in JSON).
    pub kind: StageKind,
    /// Attempt number, for stages inside the attempt loop.
    pub attempt: Option<u32>,
    /// Outcome.
    pub status: StageStatus,
    /// One-line summary (what passed, why it failed).
    pub summary: String,
    /// Wall time in seconds.
    pub duration_s: f64,
    /// The budget it had, in seconds.
    pub budget_s: f64,
    /// True when fixci refused what the stage's agent produced (test edits that weaken the
    /// evidence), as opposed to the agent failing as a program.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub refused: bool,
    /// What the agent CLI reported, for an `agent` stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_report: Option<crate::agent::AgentReport>,
}

/// The repository a run works on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepoState {
    /// The repository that holds the fix branch (the user's repo, or fixci's cached clone).
    pub root: PathBuf,
    /// What the user named: a path, URL or bundle.
    pub source: String,
    /// Branch the fix is cut from.
    pub base: String,
    /// `base` resolved when the run started.
    pub base_commit: String,
    /// The commit the reproduction starts from.
    pub start_commit: String,
}

/// The log the run works from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogsState {
    /// The full log (a file in the run directory, or the user's file).
    pub path: Option<PathBuf>,
    /// The distilled failure.
    pub distilled: Distilled,
}

/// The confirmed (or proposed) reproduction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Repro {
    /// Test file, relative to the repository root.
    pub test_file: String,
    /// Shell command, run from the worktree root, that fails while the bug is present.
    pub command: String,
    /// `agent` (written by the reproduce stage) or `existing` (already in the repository).
    pub origin: String,
    /// fixci's own copy of the test file, restored before verification runs.
    pub copy: Option<PathBuf>,
    /// True once fixci saw it fail every confirmation run.
    pub confirmed: bool,
    /// Output of a failing confirmation run (tail).
    pub failure_output: String,
    /// fixci's copy of the test (SHA-256, bytes in memory), its runner and confirmed ids.
    #[serde(default)]
    pub sealed: Option<crate::verify::record::ReproRecord>,
}

impl Repro {
    /// Puts fixci's own copy of the confirmed reproduction test back into the worktree `wt` at
    /// `test_file` (no-op for a reproduction without a copy, and for the CI's own test: a fix may
    /// edit that one, e.g. a flaky test's set-up, and such edits are judged and verified as
    /// edited).
    ///
    /// Errors (exit 3): the folder cannot be created or the copy cannot be written.
    pub fn restore_into(&self, wt: &Path) -> Result<(), crate::error::Error> {
        let Some(copy) = self.copy.as_ref().filter(|_| self.origin != "existing") else {
            return Ok(());
        };
        let dest = wt.join(&self.test_file);
        if let Some(d) = dest.parent() {
            std::fs::create_dir_all(d).map_err(|e| crate::error::io_error("create", d, e))?;
        }
        std::fs::copy(copy, &dest)
            .map_err(|e| crate::error::io_error("restore the reproduction test to", &dest, e))?;
        Ok(())
    }
}

/// Run counts of a `run-test` stage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Runs made.
    pub runs: u64,
    /// Runs that exited 0.
    pub passed: u64,
    /// Runs that failed (non-zero exit, signal or timeout).
    pub failed: u64,
    /// Of the failed runs, those stopped at the budget.
    pub timed_out: u64,
    /// Runs the stage asked for.
    pub planned: u64,
}

/// One fix attempt.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// 1-based number.
    pub number: u32,
    /// `running`, `passed`, or the failing stage's status.
    pub outcome: AttemptOutcome,
    /// The agent this attempt ran (preset name, or `command`), as the attempt ladder chose it.
    #[serde(default)]
    pub agent: Option<String>,
    /// The model this attempt gave the agent, if any.
    #[serde(default)]
    pub model: Option<String>,
    /// Why it did not pass.
    pub reason: Option<String>,
    /// The attempt's diff against `base` (reproduction test excluded).
    pub diff: String,
    /// Verification output of the first failing run (tail).
    pub failure_output: String,
    /// Changes the agent made to the reproduction test or test markers, which fixci refused.
    pub tampering: Vec<String>,
    /// The agent's own explanation: its `root-cause.md`, else (when the attempt changed
    /// something) the final message its CLI reported.
    pub root_cause: Option<String>,
    /// Test-infrastructure changes accepted under `allow-test-infra-changes`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub test_infra_allowed: Vec<String>,
    /// Why this fix can end at best `partial`: it edits the CI's failing test (deterministic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edits_failing_test: Option<String>,
    /// Verification counts.
    pub verification: Option<Counts>,
    /// What the fix agent's CLI reported for this attempt (tokens, cost, error).
    #[serde(default)]
    pub agent_report: Option<crate::agent::AgentReport>,
    /// The checks fixci ran on this attempt's candidate commit.
    #[serde(default)]
    pub checks: Option<crate::verify::record::Verification>,
}

/// The PR (or the offline proposal).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrState {
    /// `proposal` (offline) or `opened`.
    pub mode: String,
    /// The fix branch.
    pub branch: String,
    /// PR title.
    pub title: String,
    /// `pr.md` in the run directory.
    pub body_file: PathBuf,
    /// The commands that publish it (proposal mode).
    pub commands: Vec<String>,
    /// The PR's URL (opened mode).
    pub url: Option<String>,
}

/// Everything the run knows. Serialized as `state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// fixci version that wrote it.
    pub fixci_version: String,
    /// Run id (the run directory's name).
    pub run_id: String,
    /// Overall status.
    pub status: Status,
    /// Why the run ended as it did.
    pub reason: Option<String>,
    /// The job spec file.
    pub spec_file: PathBuf,
    /// Pipeline name.
    pub pipeline: String,
    /// Agent name and command line.
    pub agent: String,
    /// Repository.
    pub repo: RepoState,
    /// fixci's private clone (`<run>/worktree`, its own `.git`), where the agents work.
    pub worktree: Option<PathBuf>,
    /// The fix branch.
    pub branch: Option<String>,
    /// The distilled log.
    pub logs: Option<LogsState>,
    /// The reproduction.
    pub repro: Option<Repro>,
    /// Fix attempts, in order.
    pub attempts: Vec<Attempt>,
    /// Finished stages, in order.
    pub stages: Vec<StageRecord>,
    /// Counts of the passing verification.
    pub verification: Option<Counts>,
    /// The fix commit.
    pub commit: Option<String>,
    /// PR or proposal.
    pub pr: Option<PrState>,
    /// RFC 3339 start time.
    pub started_at: String,
    /// RFC 3339 end time.
    pub finished_at: Option<String>,
    /// pid of the fixci process driving the run.
    pub pid: u32,
    /// How the run was started, so `fixci resume` can rebuild it.
    #[serde(default)]
    pub invocation: Invocation,
    /// Failure-rate statistics of a flaky reproduction, once measured.
    #[serde(default)]
    pub flaky: Option<FlakyStats>,
    /// Why a verified fix falls short of the required confidence (the run ends `partial`).
    #[serde(default)]
    pub partial_reason: Option<String>,
    /// The issue used as the task, when the spec names one.
    #[serde(default)]
    pub issue: Option<IssueState>,
    /// True when the pipeline builds a feature from the issue (`role = "acceptance"`; see
    /// [`crate::feature`]): the report and PR are worded for a feature.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub feature: bool,
    /// Where the run publishes, fixed before any agent ran.
    #[serde(default)]
    pub forge: Option<crate::forge::ForgeTarget>,
    /// The agents' sandbox, the processes they left behind and changes to the run directory.
    #[serde(default)]
    pub containment: super::Containment,
    /// The suite's outcome at the base commit, once run (for the regression check).
    #[serde(default)]
    pub base_suite: Option<crate::verify::record::SuiteRecord>,
    /// True while `branch` exists in the user's repository (brought there with the fix
    /// commit, not yet removed); before that `branch` is only the planned name.
    #[serde(default)]
    pub branch_created: bool,
    /// What the end of the run did with its private clone and branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleanup: Option<super::cleanup::Cleanup>,
    /// The spec's gate as fixci ran it at the base commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<crate::verify::gate::GateState>,
    /// The earlier run this one retries (`fixci retry`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_of: Option<super::retry::RetryOf>,
}

/// An issue used as the task (untrusted text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueState {
    /// `O/R#N`.
    pub reference: String,
    /// Title.
    pub title: String,
    /// Body (Markdown, untrusted).
    pub body: String,
    /// Web URL.
    pub url: String,
}

/// How a fix attempt ended (`running` while it runs); the names are those of [`StageStatus`]
/// for the stage that stopped it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttemptOutcome {
    /// Still running (or cut short by an interruption).
    #[default]
    Running,
    /// Every stage of the attempt passed.
    Passed,
    /// A stage failed.
    Failed,
    /// A stage ran out of its budget.
    Timeout,
    /// A stage was skipped (not a pass).
    Skipped,
    /// A stage could not do its job.
    Error,
}

impl AttemptOutcome {
    /// Lowercase name as in `result.json`.
    pub fn as_str(&self) -> &'static str {
        match self {
            AttemptOutcome::Running => "running",
            AttemptOutcome::Passed => "passed",
            AttemptOutcome::Failed => "failed",
            AttemptOutcome::Timeout => "timeout",
            AttemptOutcome::Skipped => "skipped",
            AttemptOutcome::Error => "error",
        }
    }
}

impl From<StageStatus> for AttemptOutcome {
    fn from(s: StageStatus) -> Self {
        match s {
            StageStatus::Passed => AttemptOutcome::Passed,
            StageStatus::Failed => AttemptOutcome::Failed,
            StageStatus::Timeout => AttemptOutcome::Timeout,
            StageStatus::Skipped => AttemptOutcome::Skipped,
            StageStatus::Error => AttemptOutcome::Error,
            StageStatus::Interrupted => AttemptOutcome::Running,
        }
    }
}

/// The command-line choices of a run, kept for `fixci resume`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Invocation {
    /// The pipeline file, when it did not come from the binary.
    pub pipeline_file: Option<PathBuf>,
    /// `--agent`.
    pub agent_flag: Option<String>,
    /// `--model`.
    #[serde(default)]
    pub model_flag: Option<String>,
    /// `--repo`.
    pub repo_flag: Option<String>,
    /// `--no-pr`.
    pub no_pr: bool,
    /// Total budget in seconds.
    pub total_budget_s: f64,
    /// `--api-url`.
    #[serde(default)]
    pub api_url: Option<String>,
    /// `--keep-worktree` (or the spec's `keep-worktree`).
    #[serde(default)]
    pub keep_worktree: bool,
}

impl RunState {
    /// A fresh state for a run that has done nothing yet: status `running`, started now by this
    /// process, no stages, attempts or results.
    pub fn new(
        run_id: String,
        spec_file: PathBuf,
        pipeline: String,
        agent: String,
        repo: RepoState,
        worktree: PathBuf,
        branch: String,
    ) -> RunState {
        RunState {
            fixci_version: env!("CARGO_PKG_VERSION").into(),
            run_id,
            status: Status::Running,
            reason: None,
            spec_file,
            pipeline,
            agent,
            repo,
            worktree: Some(worktree),
            branch: Some(branch),
            logs: None,
            repro: None,
            attempts: Vec::new(),
            stages: Vec::new(),
            verification: None,
            commit: None,
            pr: None,
            started_at: chrono::Utc::now().to_rfc3339(),
            finished_at: None,
            pid: std::process::id(),
            invocation: Invocation::default(),
            flaky: None,
            partial_reason: None,
            issue: None,
            feature: false,
            forge: None,
            containment: Default::default(),
            base_suite: None,
            branch_created: false,
            cleanup: None,
            gate: None,
            retry_of: None,
        }
    }

    /// The attempt numbered `n`.
    fn attempt_mut(&mut self, n: u32) -> Option<&mut Attempt> {
        self.attempts.iter_mut().rev().find(|a| a.number == n)
    }

    /// The one reducer: folds `e` into the state. Events that only inform (stage started,
    /// child started, test run) change nothing. A `run_stopping` event sets the status only
    /// while the run is still `running` (the first reason wins); `run_finished` sets the final
    /// status, reason and end time.
    pub fn apply(&mut self, e: &Event) {
        match e {
            Event::RunStarted { .. }
            | Event::StageStarted { .. }
            | Event::ChildStarted { .. }
            | Event::TestRun { .. } => {}
            Event::RunResumed { pid, .. } => {
                self.status = Status::Running;
                self.reason = None;
                self.finished_at = None;
                if *pid != 0 {
                    self.pid = *pid;
                }
            }
            Event::StageFinished {
                stage,
                kind,
                attempt,
                status,
                summary,
                duration_s,
                budget_s,
                refused,
                agent_report,
            } => self.stages.push(StageRecord {
                id: stage.clone(),
                kind: *kind,
                attempt: *attempt,
                status: *status,
                summary: summary.clone(),
                duration_s: *duration_s,
                budget_s: *budget_s,
                refused: *refused,
                agent_report: agent_report.clone(),
            }),
            Event::AgentFinished {
                attempt: Some(n),
                report,
                ..
            } => {
                if let Some(a) = self.attempt_mut(*n) {
                    a.agent_report = Some(report.clone());
                }
            }
            Event::AgentFinished { attempt: None, .. } => {}
            Event::LogsDistilled { logs } => self.logs = Some(logs.clone()),
            Event::GateRan { gate } => self.gate = Some(gate.clone()),
            Event::ReproductionRecorded { repro } => self.repro = Some(repro.clone()),
            Event::ReproductionTested {
                confirmed,
                failure_output,
            } => {
                if let Some(r) = self.repro.as_mut() {
                    r.confirmed = *confirmed;
                    if let Some(out) = failure_output {
                        r.failure_output = out.clone();
                    }
                }
            }
            Event::ReproductionSealed { record, command } => {
                if let Some(r) = self.repro.as_mut() {
                    r.sealed = Some(record.clone());
                    r.command = command.clone();
                }
            }
            Event::CandidateVerified {
                attempt,
                verification,
                base_suite,
                tampering,
            } => {
                if base_suite.is_some() {
                    self.base_suite = base_suite.clone();
                }
                if let Some(a) = attempt.and_then(|n| self.attempt_mut(n)) {
                    a.checks = verification.clone();
                    a.tampering.extend(tampering.iter().cloned());
                }
            }
            Event::FlakyMeasured { stats } => self.flaky = Some(stats.clone()),
            Event::VerificationRecorded {
                attempt,
                counts,
                passed,
                failure_output,
            } => match attempt.and_then(|n| self.attempt_mut(n)) {
                Some(a) => {
                    a.verification = Some(counts.clone());
                    if let Some(out) = failure_output {
                        a.failure_output = out.clone();
                    }
                }
                None if *passed => self.verification = Some(counts.clone()),
                None => {}
            },
            Event::PartialEvidence { reason } => self.partial_reason = Some(reason.clone()),
            Event::AttemptStarted {
                attempt,
                agent,
                model,
                ..
            } => self.attempts.push(Attempt {
                number: *attempt,
                outcome: AttemptOutcome::Running,
                agent: Some(agent.clone()),
                model: model.clone(),
                ..Default::default()
            }),
            Event::FixProposed {
                attempt,
                diff,
                tampering,
                root_cause,
                test_infra_allowed,
                edits_failing_test,
            } => {
                if let Some(a) = self.attempt_mut(*attempt) {
                    a.diff = diff.clone();
                    a.tampering = tampering.clone();
                    a.root_cause = root_cause.clone();
                    a.test_infra_allowed = test_infra_allowed.clone();
                    a.edits_failing_test = edits_failing_test.clone();
                }
            }
            Event::AttemptFinished {
                attempt,
                outcome,
                reason,
            } => {
                if let Some(a) = self.attempt_mut(*attempt) {
                    a.outcome = *outcome;
                    a.reason = reason.clone();
                    if *outcome == AttemptOutcome::Passed {
                        let v = a.verification.clone();
                        self.verification = v;
                    }
                }
            }
            Event::AttemptDiscarded { attempt } => {
                self.attempts.retain(|a| a.number != *attempt);
            }
            Event::CommitMade { commit } => self.commit = Some(commit.clone()),
            Event::FixBranchCreated { branch } => {
                self.branch = Some(branch.clone());
                self.branch_created = true;
            }
            Event::CleanedUp { cleanup } => {
                if cleanup.branch_removed.is_some() {
                    self.branch_created = false;
                }
                self.cleanup = Some(cleanup.clone());
            }
            Event::PrRecorded { pr } => self.pr = Some(pr.clone()),
            Event::Survivors { .. } | Event::RunDirChanged { .. } | Event::WritesDiscarded { .. } => {
                self.containment.apply(e)
            }
            Event::RunStopping { status, reason } => {
                if self.status == Status::Running {
                    self.status = *status;
                    self.reason = Some(reason.clone());
                }
            }
            Event::RunFinished {
                status,
                reason,
                finished_at,
                ..
            } => {
                self.status = *status;
                self.reason = reason.clone();
                self.finished_at = Some(if finished_at.is_empty() {
                    chrono::Utc::now().to_rfc3339()
                } else {
                    finished_at.clone()
                });
            }
        }
    }

    /// Why a verified fix ends `partial`, not `success`: the evidence fell short
    /// (`partial_reason`), and/or the last attempt's fix edits the CI's failing test (a
    /// deterministic failure: a human must judge); both joined with `; `.
    pub fn partial(&self) -> Option<String> {
        let edit = self
            .attempts
            .last()
            .and_then(|a| a.edits_failing_test.clone());
        match (self.partial_reason.clone(), edit) {
            (Some(a), Some(b)) => Some(format!("{b}; {a}")),
            (a, b) => b.or(a),
        }
    }

    /// The status a run that reached its end without a stop gets: `interrupted` when it was
    /// cancelled, `partial` when a verified fix fell short of the required confidence, else
    /// `success`; a run already stopped keeps its status. Returns the status and its reason.
    pub fn final_status(&self, cancelled: bool) -> (Status, Option<String>) {
        match self.status {
            Status::Running if cancelled => (Status::Interrupted, Some("interrupted".into())),
            Status::Running => match self.partial() {
                Some(why) => (Status::Partial, Some(why)),
                None => (Status::Success, None),
            },
            s => (s, self.reason.clone()),
        }
    }
}

/// Writes `bytes` to `path` atomically: a temp file in the same folder, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// The measured failure rate of a flaky reproduction (before the fix).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FlakyStats {
    /// Runs made under stress.
    pub runs: u64,
    /// Failures that counted (matching the CI failure signature when one applies).
    pub failures: u64,
    /// Failures with another signature, not counted.
    pub unmatched_failures: u64,
    /// p0 = failures / runs.
    pub failure_rate: f64,
    /// Clopper-Pearson interval of p0 at `confidence`.
    pub interval: (f64, f64),
    /// Confidence of the interval (0.95).
    pub confidence: f64,
    /// How failures were matched (`signature ...` or `any failure`).
    pub matched_by: String,
    /// Parallel copies (the amplification used).
    pub jobs: usize,
    /// Wall time of the measurement in seconds.
    pub wall_s: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> RunState {
        RunState::new(
            "r".into(),
            "info.json".into(),
            "deterministic".into(),
            "command".into(),
            RepoState {
                root: "/repo".into(),
                source: "/repo".into(),
                base: "main".into(),
                base_commit: "b".repeat(40),
                start_commit: "b".repeat(40),
            },
            "/o/r/worktree".into(),
            "fixci/x".into(),
        )
    }

    fn counts(runs: u64, passed: u64) -> Counts {
        Counts {
            runs,
            passed,
            failed: runs - passed,
            timed_out: 0,
            planned: runs,
        }
    }

    #[test]
    fn apply_folds_an_attempt_and_its_verification_into_the_state() {
        let mut st = state();
        st.apply(&Event::AttemptStarted {
            attempt: 1,
            max: 3,
            agent: "claude".into(),
            model: Some("m".into()),
        });
        st.apply(&Event::FixProposed {
            attempt: 1,
            diff: "diff --git a/x b/x".into(),
            tampering: vec![],
            root_cause: Some("off by one".into()),
            test_infra_allowed: vec![],
            edits_failing_test: None,
        });
        st.apply(&Event::VerificationRecorded {
            attempt: Some(1),
            counts: counts(5, 5),
            passed: true,
            failure_output: None,
        });
        assert_eq!(
            st.verification, None,
            "only a passed attempt sets the run's verification"
        );
        st.apply(&Event::AttemptFinished {
            attempt: 1,
            outcome: AttemptOutcome::Passed,
            reason: None,
        });
        let a = &st.attempts[0];
        assert_eq!(a.outcome, AttemptOutcome::Passed);
        assert_eq!(a.model.as_deref(), Some("m"));
        assert_eq!(a.root_cause.as_deref(), Some("off by one"));
        assert_eq!(st.verification, Some(counts(5, 5)));
    }

    #[test]
    fn the_first_stop_wins_and_the_end_decides_the_status_once() {
        let mut st = state();
        assert_eq!(st.final_status(false), (Status::Success, None));
        st.apply(&Event::PartialEvidence {
            reason: "3 of 9 runs".into(),
        });
        assert_eq!(
            st.final_status(false),
            (Status::Partial, Some("3 of 9 runs".into()))
        );
        assert_eq!(st.final_status(true).0, Status::Interrupted);
        st.apply(&Event::RunStopping {
            status: Status::Escalated,
            reason: "first".into(),
        });
        st.apply(&Event::RunStopping {
            status: Status::Failed,
            reason: "second".into(),
        });
        assert_eq!(
            st.final_status(false),
            (Status::Escalated, Some("first".into()))
        );
        let (status, reason) = st.final_status(false);
        st.apply(&Event::RunFinished {
            status,
            reason,
            duration_s: 1.0,
            finished_at: "2026-01-01T00:00:00+00:00".into(),
        });
        assert_eq!(st.finished_at.as_deref(), Some("2026-01-01T00:00:00+00:00"));
        // A resume reopens the run.
        st.apply(&Event::RunResumed {
            run_id: "r".into(),
            run_dir: "/o/r".into(),
            pid: 42,
        });
        assert_eq!(
            (st.status, st.reason.clone(), st.finished_at.clone(), st.pid),
            (Status::Running, None, None, 42)
        );
    }

    #[test]
    fn an_interrupted_attempt_is_discarded() {
        let mut st = state();
        for n in [1, 2] {
            st.apply(&Event::AttemptStarted {
                attempt: n,
                max: 3,
                agent: "command".into(),
                model: None,
            });
        }
        st.apply(&Event::AttemptDiscarded { attempt: 2 });
        assert_eq!(st.attempts.len(), 1);
        assert_eq!(st.attempts[0].number, 1);
    }
}
