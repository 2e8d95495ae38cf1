//! The link from a run to the earlier run it retries (`fixci retry`): which run, how it ended,
//! the steer the user gave, the earlier attempts (their diffs and failures feed the first fix
//! prompt), and which of its stages the new run reuses instead of running again.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::state::{Attempt, Status};

/// The earlier run a retry starts from. Kept in `state.json`, `result.json` and the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryOf {
    /// The earlier run's id.
    pub run_id: String,
    /// The earlier run's directory (read, never written).
    pub run_dir: PathBuf,
    /// How the earlier run ended.
    pub status: Status,
    /// Why it ended so.
    #[serde(default)]
    pub reason: Option<String>,
    /// The user's guidance for this try (`--prompt`), if any.
    #[serde(default)]
    pub steer: Option<String>,
    /// The earlier run's fix attempts, in order.
    #[serde(default)]
    pub attempts: Vec<Attempt>,
    /// Ids of the earlier run's stages this run reuses (not run again).
    #[serde(default)]
    pub reused: Vec<String>,
}
