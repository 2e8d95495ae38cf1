//! One replay record: the outcome of one (case, variant, epoch) item, stored as
//! `records/<key>.json` in a replay output folder, written atomically. Records are the only
//! thing `merge`, `report` and `compare` read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use super::env::SetupRun;
use crate::error::{Error, io_error};

/// Version of the record format; bumped when a field changes meaning. 2: `repo` is the
/// repository's root commit; `flags` always present; before-fix checks and failure kinds.
pub const RECORD_FORMAT: u32 = 2;

/// The verdict of one replay item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Every fail-to-pass command passes and every pass-to-pass command still passes on the fix
    /// branch, as fixci measured them.
    Resolved,
    /// The pipeline ended without a fix, or the fix did not pass the case's commands.
    Unresolved,
    /// The pipeline could not reproduce the failure.
    CouldNotReproduce,
    /// A stage (or the run) ran out of its budget before a fix was verified.
    Timeout,
    /// The agent failed as a program (error reported, bad exit, nothing produced).
    AgentError,
    /// fixci could not do its job (clone, git, disk) even after retries.
    InfraError,
}

impl Verdict {
    /// All verdicts, in report order.
    pub const ALL: [Verdict; 6] = [
        Verdict::Resolved,
        Verdict::Unresolved,
        Verdict::CouldNotReproduce,
        Verdict::Timeout,
        Verdict::AgentError,
        Verdict::InfraError,
    ];

    /// Kebab-case name, as in the JSON.
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Resolved => "resolved",
            Verdict::Unresolved => "unresolved",
            Verdict::CouldNotReproduce => "could-not-reproduce",
            Verdict::Timeout => "timeout",
            Verdict::AgentError => "agent-error",
            Verdict::InfraError => "infra-error",
        }
    }
}

/// How far a replay item got: the per-stage funnel of the report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Funnel {
    /// fixci saw the failure reproduce (or, for the gold agent, the fail-to-pass commands fail
    /// before the patch).
    pub reproduced: bool,
    /// An attempt produced a change (for the gold agent: the gold patch applied).
    pub fixed: bool,
    /// fixci's own verification of the change passed (run status success or partial).
    pub verified: bool,
}

/// One measured command (fail-to-pass or pass-to-pass), before or after the fix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandCheck {
    /// The shell command, run from the repository root.
    pub command: String,
    /// Runs made.
    pub runs: u64,
    /// Runs that exited 0.
    pub passed: u64,
    /// Failing runs per failure kind (see [`crate::judge::FailureKind::label`]: `assertion`,
    /// `exception:TypeError`, `collection-error`, ...); empty when every run passed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub failure_kinds: BTreeMap<String, u64>,
    /// For each key of `failure_kinds`, the line that names the first such failure (the
    /// exception or assertion, e.g. `AssertionError: 2 != 3`, or the import error's cause;
    /// [`crate::judge::failure_kind::failure_line`]), redacted; kinds whose output names
    /// nothing have none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub failure_lines: BTreeMap<String, String>,
    /// Tail of the output of the last failing run (empty when all passed).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub output: String,
}

impl CommandCheck {
    /// Failing runs.
    pub fn failed(&self) -> u64 {
        self.runs - self.passed
    }
}

/// Wall time of one engine stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageTiming {
    /// Stage id (with `#N` for attempt N).
    pub id: String,
    /// Stage kind (kebab-case).
    pub kind: String,
    /// How it ended (`passed`, `failed`, `timeout`, ...).
    pub status: String,
    /// Wall time in seconds.
    pub seconds: f64,
}

/// Tokens the agent reported, summed over the item's agent invocations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    /// Input (prompt) tokens.
    pub input: u64,
    /// Output (completion) tokens.
    pub output: u64,
    /// Tokens read from the provider's prompt cache.
    pub cache_read: u64,
    /// Tokens written to the provider's prompt cache.
    pub cache_write: u64,
}

/// The outcome of one (case, variant, epoch) item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Record format version ([`RECORD_FORMAT`]).
    pub format: u32,
    /// Content hash naming the item (hex SHA-256 of case, variant files, agent, model, epoch
    /// and fixci version); the file name is `<key>.json`.
    pub key: String,
    /// Case id (`case.toml` `id`).
    pub case: String,
    /// The case's repository, the cluster of the repo-clustered standard error: its root
    /// commit (the smallest SHA when the case's commit has several roots), which names the
    /// repository whatever its file or URL; the name `case.toml` gives when the repository
    /// could not be read.
    pub repo: String,
    /// The case's tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// True when the case's job spec says the failure is deterministic.
    pub deterministic: bool,
    /// Variant name.
    pub variant: String,
    /// Agent preset or `gold`.
    pub agent: String,
    /// Model, when one was configured.
    #[serde(default)]
    pub model: Option<String>,
    /// 0-based epoch (repetition of the same case and variant).
    pub epoch: u32,
    /// fixci version that produced the record.
    pub fixci_version: String,
    /// The verdict.
    pub verdict: Verdict,
    /// One line saying why (the run's reason, the failing command, the error).
    pub reason: String,
    /// How far the item got.
    pub funnel: Funnel,
    /// Setup commands of the case and variant as they ran (empty without `setup`).
    #[serde(default)]
    pub setup: Vec<SetupRun>,
    /// Fail-to-pass commands measured at the failing commit (`--agent gold`: before the gold
    /// patch; empty for other agents, whose reproduction is the engine's).
    #[serde(default)]
    pub fail_to_pass_before: Vec<CommandCheck>,
    /// Pass-to-pass commands measured at the failing commit (`--agent gold`).
    #[serde(default)]
    pub pass_to_pass_before: Vec<CommandCheck>,
    /// Fail-to-pass commands as measured on the fix branch (empty when there was no fix).
    #[serde(default)]
    pub fail_to_pass: Vec<CommandCheck>,
    /// Pass-to-pass commands as measured on the fix branch.
    #[serde(default)]
    pub pass_to_pass: Vec<CommandCheck>,
    /// Gold check findings (`--agent gold` only), each `name: details`: `gold-patch-empty`,
    /// `gold-patch-does-not-apply`, `gold-patch-does-not-resolve`,
    /// `fail-to-pass-passes-before-fix`, `fail-to-pass-flaky`,
    /// `fail-to-pass-fails-for-another-reason`, `fail-to-pass-fails-differently`,
    /// `pass-to-pass-fails-before-fix`, `pass-to-pass-fails`. Empty (present) when none.
    #[serde(default)]
    pub flags: Vec<String>,
    /// Wall time of the whole item in seconds.
    pub wall_s: f64,
    /// Seconds spent in the agent and in test commands (the rest is fixci's own overhead).
    pub agent_and_tests_s: f64,
    /// Engine stages in order.
    #[serde(default)]
    pub stages: Vec<StageTiming>,
    /// Attempts the fix loop made.
    #[serde(default)]
    pub attempts: u32,
    /// Tokens, when the agent reported them.
    #[serde(default)]
    pub tokens: Option<Tokens>,
    /// Cost in US dollars, when the agent reported it.
    #[serde(default)]
    pub cost_usd: Option<f64>,
    /// Infrastructure retries made before this outcome.
    #[serde(default)]
    pub retries: u32,
    /// The engine's run directory, relative to the replay output folder (absent for gold).
    #[serde(default)]
    pub run_dir: Option<String>,
    /// When the item finished (RFC 3339).
    pub finished_at: String,
}

impl Record {
    /// The flag names (the text before `:`), e.g. `fail-to-pass-flaky`.
    pub fn flag_names(&self) -> Vec<&str> {
        self.flags
            .iter()
            .map(|f| f.split_once(':').map_or(f.as_str(), |(n, _)| n).trim())
            .collect()
    }

    /// True for the one verdict that counts as a success.
    pub fn resolved(&self) -> bool {
        self.verdict == Verdict::Resolved
    }

    /// fixci's own overhead in seconds: wall time minus agent and test time (never negative).
    pub fn overhead_s(&self) -> f64 {
        (self.wall_s - self.agent_and_tests_s).max(0.0)
    }
}

/// `records/` inside a replay output folder.
pub fn records_dir(out: &Path) -> PathBuf {
    out.join("records")
}

/// Writes `records/<key>.json` atomically (temp file, fsync, rename).
///
/// Errors (exit 3): the folder cannot be created or written.
pub fn write(out: &Path, r: &Record) -> Result<PathBuf, Error> {
    let dir = records_dir(out);
    std::fs::create_dir_all(&dir).map_err(|e| io_error("create", &dir, e))?;
    let path = dir.join(format!("{}.json", r.key));
    let text = serde_json::to_string_pretty(r).expect("records serialize");
    crate::run_dir::write_atomic(&path, text.as_bytes())
        .map_err(|e| io_error("write", &path, e))?;
    Ok(path)
}

/// Reads every `records/*.json` of a replay output folder, sorted by (variant, case, epoch).
/// Temporary files of interrupted writes are ignored.
///
/// Errors (exit 2): the folder has no `records/` (not a replay output), or a record that does
/// not parse (named with its path and the JSON error).
pub fn load_all(out: &Path) -> Result<Vec<(PathBuf, Record)>, Error> {
    let dir = records_dir(out);
    let entries = std::fs::read_dir(&dir).map_err(|e| {
        Error::usage(format!("`{}` is not a replay output folder", out.display()))
            .detail(format!("cannot read `{}`: {e}", dir.display()))
            .hint("give the `--out` folder of `fixci replay run`")
    })?;
    let mut out_records = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| io_error("read", &path, e))?;
        let r: Record = serde_json::from_str(&text).map_err(|e| {
            Error::usage(format!("invalid replay record `{}`", path.display())).detail(format!(
                "line {}, column {}: {e}",
                e.line(),
                e.column()
            ))
        })?;
        out_records.push((path, r));
    }
    out_records.sort_by(|a, b| {
        (&a.1.variant, &a.1.case, a.1.epoch).cmp(&(&b.1.variant, &b.1.case, b.1.epoch))
    });
    Ok(out_records)
}
