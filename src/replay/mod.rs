//! `fixci replay`: replays a corpus of historical CI failures through the engine to measure a
//! prompt/pipeline/agent variant's success rate, on one machine (`-j N`) or sharded over a
//! cluster (`--shard i/n`), then merges, reports and compares the per-item records.
//!
//! Layout of an output folder: `plan.json` (every item of the replay), `records/<key>.json`
//! (one per finished item, written atomically), `work/<key>/` (the item's repository clone and
//! engine run directory), `report.{md,json,html}`.

pub mod case;
pub mod compare;
pub mod emit;
pub mod env;
pub mod merge;
pub mod plan;
pub mod record;
pub mod report;
pub mod run;
pub mod validate;
pub mod variant;

pub use plan::{Plan, PlanItem, Shard};
pub use record::{Record, Verdict};
