//! What a stress run found.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::process::Termination;

/// Why a stress run stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopReason {
    /// The requested number of runs completed.
    Runs,
    /// The duration ran out.
    Duration,
    /// The requested number of failures was seen.
    UntilFailures,
    /// The caller's cancel flag was raised (e.g. Ctrl-C).
    Interrupted,
}

/// One kept run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// 0-based run number (order of start).
    pub index: u64,
    /// How it ended.
    pub termination: Termination,
    /// Wall time of the run, seconds.
    pub duration_s: f64,
    /// Its combined stdout+stderr.
    pub output: PathBuf,
    /// The failure signature of its output, `(timeout)` for a timed-out run, or
    /// `(no signature: exit N)` when the output shows no recognisable failure.
    pub signature: String,
    /// True when it counts as a failure (it failed and, with a match, matched).
    pub counted: bool,
    /// The shuffle seed it ran with, when shuffling.
    pub seed: Option<u64>,
    /// For a runner's run: the test ids its report shows failed or erroring.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_tests: Vec<String>,
    /// For a runner's run: why it did not pass by its report (a test failed, is missing, was
    /// skipped, the report is unreadable or disagrees with the run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// Live counts, passed to the progress callback.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Completed runs.
    pub runs: u64,
    /// Counted failures.
    pub failures: u64,
    /// Failing runs that did not match.
    pub unmatched_failures: u64,
    /// Runs going on now.
    pub in_flight: u64,
    /// Seconds since the start.
    pub elapsed_s: f64,
}

/// The failure rate of one in-process repetition, when each run repeats the test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RepetitionEstimate {
    /// Estimated failure rate of one repetition.
    pub failure_rate: f64,
    /// The per-run interval mapped to one repetition (same confidence).
    pub interval: (f64, f64),
}

/// The result of a stress run. Serialises to the JSON that `fixci stress --json` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StressReport {
    /// The command, as one display string.
    pub command: String,
    /// Completed runs (runs stopped because the stress run ended are not counted).
    pub runs: u64,
    /// Counted failures: failing runs (non-zero exit, signal, timeout) that, when a
    /// [`super::FailureMatch`] was given, matched it.
    pub failures: u64,
    /// Failing runs that did not match the [`super::FailureMatch`] (0 without one): a different
    /// flake, not a reproduction.
    pub unmatched_failures: u64,
    /// `failures / runs` (0 when no run completed).
    pub failure_rate: f64,
    /// Clopper-Pearson interval of the failure rate at `confidence`, `[lo, hi]`.
    pub interval: (f64, f64),
    /// Confidence level of `interval`.
    pub confidence: f64,
    /// Failing runs (counted or not) per signature.
    pub signatures: BTreeMap<String, u64>,
    /// Runs killed at the per-run timeout.
    pub timeouts: u64,
    /// Wall time of the whole stress run, seconds.
    pub wall_s: f64,
    /// `runs / wall_s`.
    pub runs_per_s: f64,
    /// Seconds from the start until the first counted failure ended, if any.
    pub time_to_first_failure_s: Option<f64>,
    /// Clean runs a verification needs so that a non-fix failing at `failure_rate` would have
    /// failed at least once with probability `confidence`:
    /// [`crate::stats::runs_needed`]`(failure_rate, 1 - confidence)`; `None` without failures.
    pub runs_to_verify: Option<u64>,
    /// Probability that a non-fix failing at `failure_rate` passes the plain five-run check:
    /// [`crate::stats::pass_probability`]`(failure_rate, 5)`.
    pub five_runs_pass_probability: f64,
    /// Repetitions of the test per run (1 unless [`super::StressConfig::repeat`]); all the
    /// counts above are per run.
    pub repetitions_per_run: u32,
    /// With more than one repetition per run: the failure rate of one repetition, derived from
    /// the per-run rate (see [`crate::stats::per_attempt_rate`]).
    pub per_repetition: Option<RepetitionEstimate>,
    /// Why it stopped.
    pub stop_reason: StopReason,
    /// Runs at a time.
    pub jobs: usize,
    /// CPU stressor processes that ran alongside.
    pub cpu_stressors: usize,
    /// Where outputs were kept.
    pub keep_dir: PathBuf,
    /// Every failing run (counted or not), in order of completion.
    pub failing_runs: Vec<RunRecord>,
    /// The kept outputs of passing runs.
    pub passing_samples: Vec<PathBuf>,
}

impl StressReport {
    /// The output files of the counted failures.
    pub fn failing_outputs(&self) -> Vec<PathBuf> {
        self.failing_runs
            .iter()
            .filter(|r| r.counted)
            .map(|r| r.output.clone())
            .collect()
    }
}
