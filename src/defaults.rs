//! Every default value of a run in one place; the pipeline's keys and the job spec override
//! them. Durations are [`Duration`]s, counts are run or attempt numbers. Also where fixci's cache
//! lives ([`cache_dir`]), which the run directory, the sandbox and git's exported-branch record
//! share.

use std::path::PathBuf;
use std::time::Duration;

/// Fix attempts of an `attempts` loop without `max`.
pub const MAX_ATTEMPTS: u64 = 3;

/// Runs of a `run-test` stage that confirms a reproduction (`expect = "fail"`) without `runs`.
pub const CONFIRM_RUNS: u64 = 3;

/// Runs of a verification (`expect = "pass"`) when neither the stage's `runs` nor the spec's
/// `verify-runs` says: DESIGN.md's "plain default of five runs" for deterministic failures.
pub const VERIFY_RUNS: u32 = 5;

/// Most parallel runs of a stress confirmation (`mode = "stress"`, `expect = "fail"`) without
/// `runs`.
pub const STRESS_RUNS: u64 = 400;

/// Significance of a stress verification: N = ceil(ln(alpha) / ln(1 - p0/k)) (DESIGN.md §4).
pub const ALPHA: f64 = 0.05;

/// The factor k by which a flaky fix must at least divide the failure rate, when the spec's
/// `min-improvement` says nothing: N = ceil(ln(alpha) / ln(1 - p0/k)).
pub const MIN_IMPROVEMENT: f64 = 4.0;

/// The spec's `min-improvement`, or [`MIN_IMPROVEMENT`].
pub fn min_improvement(spec_value: Option<f64>) -> f64 {
    spec_value.unwrap_or(MIN_IMPROVEMENT)
}

/// SIGTERM -> SIGKILL grace period when the pipeline's `[defaults] grace` says nothing.
pub const GRACE: Duration = Duration::from_secs(5);

/// Budget of a stage that declares none.
pub const STAGE_BUDGET: Duration = Duration::from_secs(300);

/// The whole run's budget when neither the spec nor the pipeline sets one (the original plan's
/// 23 minutes).
pub const TOTAL_BUDGET: Duration = Duration::from_secs(23 * 60);

/// The least budget a resumed run gets, whatever its earlier part used.
pub const RESUME_MIN_BUDGET: Duration = Duration::from_secs(60);

/// The spec's `verify-runs`, or [`VERIFY_RUNS`].
pub fn verify_runs(spec_value: Option<u32>) -> u32 {
    spec_value.unwrap_or(VERIFY_RUNS)
}

/// fixci's cache folder: `$FIXCI_CACHE_DIR`, else `$XDG_CACHE_HOME/fixci`, else
/// `~/.cache/fixci`.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("FIXCI_CACHE_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("fixci");
    }
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(".cache/fixci")
}
