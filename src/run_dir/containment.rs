//! [`Containment`]: what a run records about containing its agents (`containment` in
//! `state.json` and `result.json`), and its arm of the reducer. The run directory check, the
//! events that feed this record and the report section live in `crate::contain`.

use serde::{Deserialize, Serialize};

use crate::process::reaper::Survivor;
use crate::process::sandbox::Decision;

use super::Event;

/// The containment record of a run (`containment` in `state.json` and `result.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Containment {
    /// The sandbox agents run in, decided before the run directory was written.
    #[serde(default)]
    pub sandbox: Option<Decision>,
    /// Processes fixci found alive where none should be, and killed.
    #[serde(default)]
    pub survivors: Vec<SurvivorRecord>,
    /// Files of the run directory that changed while an agent ran.
    #[serde(default)]
    pub run_dir_changes: Vec<RunDirChange>,
    /// Writes of sandboxed agents outside their writable places, discarded with the sandbox's
    /// throw-away layer (absolute paths, each with `created`, `written` or `deleted`).
    #[serde(default)]
    pub discarded_writes: Vec<RunDirChange>,
}

/// A process left alive that fixci killed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SurvivorRecord {
    /// The stage after whose agent (or before which) it was found.
    pub stage: String,
    /// The attempt, inside the attempt loop.
    pub attempt: Option<u32>,
    /// When: `after the agent`, `before the stage`, `before the verdict`.
    pub when: String,
    /// True when the sandbox's supervisor found it (its pid is the sandbox's own).
    pub in_sandbox: bool,
    /// The process.
    #[serde(flatten)]
    pub process: Survivor,
}

/// Paths an agent invocation changed (run-directory files, relative to it) or tried to
/// (discarded writes, absolute).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunDirChange {
    /// The agent's stage.
    pub stage: String,
    /// The attempt, inside the attempt loop.
    pub attempt: Option<u32>,
    /// The paths, each with what happened: `changed`, `added`, `removed` (run directory);
    /// `created`, `written`, `deleted` (discarded writes).
    pub paths: Vec<String>,
}

impl Containment {
    /// The reducer arm of the containment events ([`Event::Survivors`],
    /// [`Event::RunDirChanged`]); other events leave it unchanged.
    pub fn apply(&mut self, e: &Event) {
        match e {
            Event::Survivors { stage, attempt, when, in_sandbox, processes } => {
                self.survivors.extend(processes.iter().map(|p| SurvivorRecord {
                    stage: stage.clone(),
                    attempt: *attempt,
                    when: when.clone(),
                    in_sandbox: *in_sandbox,
                    process: p.clone(),
                }))
            }
            Event::RunDirChanged { stage, attempt, paths } => {
                self.run_dir_changes.push(RunDirChange {
                    stage: stage.clone(),
                    attempt: *attempt,
                    paths: paths.clone(),
                })
            }
            Event::WritesDiscarded { stage, attempt, paths } => {
                self.discarded_writes.push(RunDirChange {
                    stage: stage.clone(),
                    attempt: *attempt,
                    paths: paths.clone(),
                })
            }
            _ => {}
        }
    }
}
