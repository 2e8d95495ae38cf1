//! fixci: turns a red CI run into a verified fix proposal.
//!
//! A declarative pipeline engine: a job spec picks a pipeline (TOML under `pipelines/`), whose
//! stages fetch logs, let an AI coding agent reproduce and fix the failure, and verify every claim
//! by running the commands itself. See `DESIGN.md` in the shared folder for the contracts.

pub mod agent;
pub mod ci_event;
pub mod cli;
pub mod contain;
pub mod defaults;
pub mod doctor;
pub mod engine;
pub mod error;
pub mod feature;
pub mod exit_codes;
pub mod forge;
pub mod judge;
pub mod logs;
pub mod markdown;
pub mod pipeline;
pub mod process;
pub mod redact;
pub mod replay;
pub mod report;
pub mod run_dir;
pub mod runners;
pub mod spec;
pub mod stages;
pub mod stats;
pub mod stress;
pub mod vcs;
pub mod verify;
