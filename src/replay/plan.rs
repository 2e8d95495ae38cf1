//! The replay plan: every (case, variant, epoch) item of a replay with its record key, and the
//! shard of it one process runs. Written as `plan.json` in the output folder so `merge
//! --require-complete` can tell a finished replay from a partial one.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, io_error};

/// One planned item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanItem {
    /// Record key (see [`super::record::Record::key`]).
    pub key: String,
    /// Case id.
    pub case: String,
    /// Variant name.
    pub variant: String,
    /// 0-based epoch.
    pub epoch: u32,
}

/// Which part of the plan a process runs: items whose index `i` in the plan satisfies
/// `i % count == index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// 0-based shard index.
    pub index: u32,
    /// Number of shards (at least 1).
    pub count: u32,
}

impl Shard {
    /// The whole plan.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// True when plan item number `i` belongs to this shard.
    pub fn contains(&self, i: usize) -> bool {
        i % self.count as usize == self.index as usize
    }
}

/// The full plan of a replay (all shards).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Format version (1).
    pub format: u32,
    /// fixci version that made the plan.
    pub fixci_version: String,
    /// Epochs per (case, variant).
    pub epochs: u32,
    /// Variant names, in the order given.
    pub variants: Vec<String>,
    /// Case ids, sorted.
    pub cases: Vec<String>,
    /// Every item, in plan order (case, variant, epoch).
    pub items: Vec<PlanItem>,
}

impl Plan {
    /// Reads `plan.json` from a replay output folder; `None` when it has none.
    ///
    /// Errors (exit 2): a `plan.json` that does not parse.
    pub fn load(out: &Path) -> Result<Option<Plan>, Error> {
        let path = out.join("plan.json");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error("read", &path, e)),
        };
        serde_json::from_str(&text).map(Some).map_err(|e| {
            Error::usage(format!("invalid replay plan `{}`", path.display())).detail(format!(
                "line {}, column {}: {e}",
                e.line(),
                e.column()
            ))
        })
    }

    /// Writes `plan.json` atomically.
    ///
    /// Errors (exit 3): the folder cannot be written.
    pub fn save(&self, out: &Path) -> Result<(), Error> {
        std::fs::create_dir_all(out).map_err(|e| io_error("create", out, e))?;
        let path = out.join("plan.json");
        let text = serde_json::to_string_pretty(self).expect("plans serialize");
        crate::run_dir::write_atomic(&path, text.as_bytes())
            .map_err(|e| io_error("write", &path, e))
    }
}
