//! What verification records in the run state (serialized in `state.json`): fixci's copy of the
//! reproduction test, the checks it ran on a candidate commit, and the base commit's suite.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::runners::command::RunnerCommand;

/// fixci's own copy of the confirmed reproduction test and how it runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReproRecord {
    /// Hex SHA-256 of the test's bytes.
    pub sha256: String,
    /// The runner and options fixci uses for it (`None`: not decided yet).
    pub runner: Option<RunnerCommand>,
    /// Why the agent's own command was not used, when it was not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_note: Option<String>,
    /// Test ids that failed in every confirmation run (empty when only an exit code was seen).
    #[serde(default)]
    pub failing_ids: Vec<String>,
    /// `junit`, `go-json` or `exit-code`: where the confirmation's outcomes came from.
    #[serde(default)]
    pub evidence: String,
    /// The bytes, held in memory by the fixci process that confirmed them (a resumed run reads
    /// the run directory's copy and checks it against `sha256`).
    #[serde(skip)]
    pub bytes: Option<Vec<u8>>,
}

impl ReproRecord {
    /// A record of `bytes` run with `runner`.
    pub fn new(bytes: Vec<u8>, runner: RunnerCommand, command_note: Option<String>) -> Self {
        Self {
            sha256: sha256_hex(&bytes),
            runner: Some(runner),
            command_note,
            failing_ids: Vec::new(),
            evidence: String::new(),
            bytes: Some(bytes),
        }
    }
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckStatus {
    /// Every run met the check.
    Passed,
    /// A run did not.
    Failed,
    /// fixci could not run it (no tests to run, not locatable); said why in `detail`.
    NotRun,
}

/// One of the three checks on a candidate commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRecord {
    /// `reproduction`, `ci-tests` or `regressions`.
    pub name: String,
    /// The command fixci ran (report options left out).
    pub command: String,
    /// Runs made.
    pub runs: u64,
    /// Runs that met the check.
    pub passed: u64,
    /// `junit`, `go-json` or `exit-code` (weaker: the runner wrote no report fixci could read).
    pub evidence: String,
    /// Outcome.
    pub status: CheckStatus,
    /// What was checked, or why it failed / did not run.
    pub detail: String,
    /// The test ids the check required to pass.
    #[serde(default)]
    pub tests: Vec<String>,
}

/// The verification of one candidate commit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    /// The commit checked out and verified (the one that is proposed).
    pub commit: String,
    /// The checks, in order.
    pub checks: Vec<CheckRecord>,
}

impl Verification {
    /// The first failed check.
    pub fn failed(&self) -> Option<&CheckRecord> {
        self.checks.iter().find(|c| c.status == CheckStatus::Failed)
    }

    /// The CI test ids the `ci-tests` check saw pass.
    pub fn ci_tests_passed(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter(|c| c.name == "ci-tests" && c.status == CheckStatus::Passed)
            .flat_map(|c| c.tests.clone())
            .collect()
    }
}

/// The suite's outcome at the base commit (run once per run, reused by every attempt).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuiteRecord {
    /// The base commit.
    pub commit: String,
    /// The command.
    pub command: String,
    /// The test files run (empty with `suite-command`).
    pub files: Vec<String>,
    /// `junit`, `go-json` or `exit-code`.
    pub evidence: String,
    /// Ids that passed at the base.
    pub passed: Vec<String>,
    /// The run's exit status was success.
    pub exit_ok: bool,
}
