//! The run's state: everything stages learn (logs, reproduction, attempts, verification, PR),
//! persisted as `state.json` in the run directory, written atomically (temp file + rename) after
//! every stage so a run can be resumed or inspected at any point.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::logs::Distilled;

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
        }
    }
}

/// The record of one finished stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageRecord {
    /// Stage id.
    pub id: String,
    /// Stage kind (kebab-case).
    pub kind: String,
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
    /// What the agent CLI reported, for an `agent` stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_report: Option<crate::agent::AgentReport>,
}

/// The repository a run works on.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogsState {
    /// The full log (a file in the run directory, or the user's file).
    pub path: Option<PathBuf>,
    /// The distilled failure.
    pub distilled: Distilled,
}

/// The confirmed (or proposed) reproduction.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Attempt {
    /// 1-based number.
    pub number: u32,
    /// `passed` or the failing stage's status.
    pub outcome: String,
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
    /// Verification counts.
    pub verification: Option<Counts>,
    /// What the fix agent's CLI reported for this attempt (tokens, cost, error).
    #[serde(default)]
    pub agent_report: Option<crate::agent::AgentReport>,
}

/// The PR (or the offline proposal).
#[derive(Debug, Clone, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// fixci's worktree.
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
    pub issue: Option<super::forge_inputs::IssueState>,
}

/// The command-line choices of a run, kept for `fixci resume`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
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
        }
    }

    /// Writes `state.json` into `run_dir` atomically (temp file in the same folder + rename).
    pub fn save(&self, run_dir: &Path) -> std::io::Result<()> {
        write_atomic(
            &run_dir.join("state.json"),
            serde_json::to_string_pretty(self)?.as_bytes(),
        )
    }

    /// Reads `state.json` from `run_dir`.
    pub fn load(run_dir: &Path) -> std::io::Result<RunState> {
        let text = std::fs::read_to_string(run_dir.join("state.json"))?;
        serde_json::from_str(&text).map_err(std::io::Error::other)
    }

    /// The attempt being worked on.
    pub fn current_attempt(&mut self) -> Option<&mut Attempt> {
        self.attempts.last_mut()
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
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
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
