//! The event stream: one typed record per thing that happens in a run. The engine applies every
//! event to the [`RunState`](super::RunState) (the one reducer, [`RunState::apply`](super::RunState::apply))
//! and then hands it to its listeners: `events.jsonl` ([`EventLog`]), the terminal progress, the
//! report writer, replay's recorder. Nothing prints from inside a stage, and no stage writes the
//! state: a stage tells what it learned by emitting one of these.
//!
//! On disk (`events.jsonl`) each event is one JSON object tagged by `event` (snake_case variant
//! name) with an RFC 3339 `ts`; [`read_events`] reads a file back into [`Event`]s.

use std::io::{BufRead, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::state::{
    AttemptOutcome, Counts, FlakyStats, LogsState, PrState, Repro, RunState, StageStatus, Status,
};
use crate::agent::AgentReport;
use crate::pipeline::StageKind;

/// One event. Serialized as one JSON line with an `event` tag (the variant in snake_case).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The run started.
    RunStarted {
        run_id: String,
        pipeline: String,
        run_dir: String,
    },
    /// An interrupted run was resumed by this process (`pid`).
    RunResumed {
        run_id: String,
        run_dir: String,
        #[serde(default)]
        pid: u32,
    },
    /// A stage started.
    StageStarted {
        stage: String,
        kind: StageKind,
        attempt: Option<u32>,
        /// The budget it has, in seconds.
        budget_s: f64,
    },
    /// A stage ended; the engine records it in `state.stages`.
    StageFinished {
        stage: String,
        kind: StageKind,
        attempt: Option<u32>,
        status: StageStatus,
        summary: String,
        /// Wall time in seconds.
        duration_s: f64,
        /// The budget it had, in seconds.
        #[serde(default)]
        budget_s: f64,
        /// True when fixci refused what the stage's agent produced (e.g. test edits that only
        /// weaken the evidence), as opposed to the agent failing as a program.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        refused: bool,
        /// What the agent CLI reported, for an `agent` stage.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        agent_report: Option<AgentReport>,
    },
    /// A child process was started (for `fixci kill` / `peek`).
    ChildStarted {
        stage: String,
        pid: u32,
        command: String,
    },
    /// An agent CLI finished (or was stopped): what it reported about its own run. Inside an
    /// attempt of the attempt loop the report is kept on that attempt.
    AgentFinished {
        stage: String,
        attempt: Option<u32>,
        /// The agent preset (`claude`, `codex`, ..., `command`).
        agent: String,
        report: AgentReport,
    },
    /// One run of a test finished.
    TestRun {
        stage: String,
        run: u64,
        of: u64,
        passed: bool,
        how: String,
    },
    /// The distilled CI failure the run works from.
    LogsDistilled { logs: LogsState },
    /// fixci ran the spec's gate at the base commit.
    GateRan {
        gate: crate::verify::gate::GateState,
    },
    /// A reproduction was recorded (not yet confirmed by fixci).
    ReproductionRecorded { repro: Repro },
    /// fixci ran the reproduction: `confirmed` when it failed as a reproduction must.
    ReproductionTested {
        confirmed: bool,
        /// Output of a failing run (tail), when one failed.
        failure_output: Option<String>,
    },
    /// fixci's record of the reproduction test (hash, runner, confirmed ids) and the command it
    /// runs it with.
    ReproductionSealed {
        record: crate::verify::record::ReproRecord,
        command: String,
    },
    /// The checks on an attempt's candidate commit (`None` when it could not be checked), the
    /// base suite when it was run, and tampering found.
    CandidateVerified {
        attempt: Option<u32>,
        verification: Option<crate::verify::record::Verification>,
        base_suite: Option<crate::verify::record::SuiteRecord>,
        tampering: Vec<String>,
    },
    /// The failure rate of a flaky reproduction was measured.
    FlakyMeasured { stats: FlakyStats },
    /// A verification (`run-test` with `expect = "pass"`) ended, inside `attempt` or outside the
    /// attempt loop.
    VerificationRecorded {
        attempt: Option<u32>,
        counts: Counts,
        /// True when every run passed.
        passed: bool,
        /// Output of the first failing run (tail).
        failure_output: Option<String>,
    },
    /// A verified fix falls short of the required confidence; the run will end `partial`.
    PartialEvidence { reason: String },
    /// An attempt started, with the agent (preset name or `command`) and model it runs.
    AttemptStarted {
        attempt: u32,
        max: u32,
        agent: String,
        model: Option<String>,
    },
    /// The fix agent of `attempt` left this change.
    FixProposed {
        attempt: u32,
        /// The diff against `base` (reproduction test excluded).
        diff: String,
        /// Refused or restored changes to tests.
        tampering: Vec<String>,
        /// The agent's own explanation: its `root-cause.md`, else (when it changed something)
        /// the final message its CLI reported.
        root_cause: Option<String>,
        /// Test-infrastructure changes accepted under `allow-test-infra-changes`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        test_infra_allowed: Vec<String>,
        /// Why a verified fix can end at best `partial`: a deterministic fix edits the CI's
        /// failing test ([`crate::judge::failing_test::failing_test_edit`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        edits_failing_test: Option<String>,
    },
    /// An attempt ended.
    AttemptFinished {
        attempt: u32,
        outcome: AttemptOutcome,
        /// Why it did not pass.
        reason: Option<String>,
    },
    /// An attempt cut short by an interruption is dropped (it is redone on resume).
    AttemptDiscarded { attempt: u32 },
    /// fixci committed the fix on the fix branch.
    CommitMade { commit: String },
    /// The fix commit was brought from the private clone into the user's repository as
    /// `branch` (the planned name, or `-2`, `-3`, ... when a branch of that name had appeared).
    FixBranchCreated { branch: String },
    /// The PR was proposed (offline) or opened.
    PrRecorded { pr: PrState },
    /// Processes left running that fixci killed: after an agent (`in_sandbox`: found by the
    /// sandbox's supervisor, pids of the sandbox), before a stage, or before the verdict.
    Survivors {
        stage: String,
        attempt: Option<u32>,
        when: String,
        in_sandbox: bool,
        processes: Vec<crate::process::reaper::Survivor>,
    },
    /// Writes of a sandboxed agent outside its writable places, discarded with the sandbox's
    /// throw-away layer: `PATH (created|written|deleted)`.
    WritesDiscarded {
        stage: String,
        attempt: Option<u32>,
        paths: Vec<String>,
    },
    /// Files of fixci's run directory changed while an agent ran.
    RunDirChanged {
        stage: String,
        attempt: Option<u32>,
        paths: Vec<String>,
    },
    /// The run ended (not interrupted): its private clone and, without a fix, its branch were
    /// removed or kept (see [`crate::run_dir::cleanup`]).
    CleanedUp { cleanup: crate::run_dir::cleanup::Cleanup },
    /// The run stops going on: the first such event sets the outcome that the end keeps.
    RunStopping { status: Status, reason: String },
    /// The run ended; `status` is final.
    RunFinished {
        status: Status,
        reason: Option<String>,
        /// Wall time of this process's part of the run, in seconds.
        duration_s: f64,
        /// RFC 3339 end time.
        #[serde(default)]
        finished_at: String,
    },
}

/// Receives the events of a run, in order, after the engine applied each to the state.
pub trait Listener {
    /// Called for every event with the state as it is after the event.
    fn event(&mut self, e: &Event, st: &RunState);
}

/// Appends events to `events.jsonl`.
pub struct EventLog {
    file: std::fs::File,
}

impl EventLog {
    /// Opens (appending) the events file at `path`.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Self { file })
    }

    /// Appends one event as a JSON line with its time (best effort: a full disk does not stop
    /// the run here; `state.json` writes report it).
    pub fn write(&mut self, e: &Event) {
        let Ok(mut v) = serde_json::to_value(e) else {
            return;
        };
        if let Some(o) = v.as_object_mut() {
            o.insert("ts".into(), chrono::Utc::now().to_rfc3339().into());
        }
        let _ = writeln!(self.file, "{v}");
    }
}

impl Listener for EventLog {
    fn event(&mut self, e: &Event, _st: &RunState) {
        self.write(e);
    }
}

/// Reads an `events.jsonl` file: the events with their RFC 3339 times, in order. Lines that are
/// not events (a line cut short by a crash, an event of a newer fixci) are skipped.
///
/// Errors: the file cannot be read.
pub fn read_events(path: &Path) -> std::io::Result<Vec<(Event, String)>> {
    let file = std::fs::File::open(path)?;
    let mut out = Vec::new();
    for line in std::io::BufReader::new(file).lines() {
        let line = line?;
        let Ok(serde_json::Value::Object(mut o)) = serde_json::from_str(&line) else {
            continue;
        };
        let ts = match o.remove("ts") {
            Some(serde_json::Value::String(t)) => t,
            _ => String::new(),
        };
        if let Ok(e) = serde_json::from_value::<Event>(serde_json::Value::Object(o)) {
            out.push((e, ts));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run_dir::{AttemptOutcome, Counts, Status};

    /// One event of each shape that carries enums or nested types.
    fn sample() -> Vec<Event> {
        vec![
            Event::RunStarted {
                run_id: "r".into(),
                pipeline: "deterministic".into(),
                run_dir: "/o/r".into(),
            },
            Event::StageStarted {
                stage: "verify".into(),
                kind: StageKind::RunTest,
                attempt: Some(2),
                budget_s: 60.0,
            },
            Event::StageFinished {
                stage: "fix".into(),
                kind: StageKind::Agent,
                attempt: Some(2),
                status: StageStatus::Failed,
                summary: "refused test edits: skip marker".into(),
                duration_s: 1.5,
                budget_s: 60.0,
                refused: true,
                agent_report: Some(AgentReport {
                    agent: "command".into(),
                    is_error: true,
                    ..Default::default()
                }),
            },
            Event::VerificationRecorded {
                attempt: Some(2),
                counts: Counts {
                    runs: 5,
                    passed: 5,
                    planned: 5,
                    ..Default::default()
                },
                passed: true,
                failure_output: None,
            },
            Event::AttemptFinished {
                attempt: 2,
                outcome: AttemptOutcome::Timeout,
                reason: Some("stage `verify` timeout".into()),
            },
            Event::RunFinished {
                status: Status::Escalated,
                reason: Some("no fix".into()),
                duration_s: 3.0,
                finished_at: "2026-01-01T00:00:00+00:00".into(),
            },
        ]
    }

    #[test]
    fn events_round_trip_through_events_jsonl() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("events.jsonl");
        let mut log = EventLog::open(&path).unwrap();
        for e in sample() {
            log.write(&e);
        }
        drop(log);
        let text = std::fs::read_to_string(&path).unwrap();
        // Enums are written as their kebab-case names, as `result.json` has them.
        assert!(text.contains(r#""kind":"run-test""#), "{text}");
        assert!(text.contains(r#""status":"escalated""#), "{text}");
        assert!(text.contains(r#""outcome":"timeout""#), "{text}");
        // A torn last line (a crash mid-write) and a foreign line are skipped, not fatal.
        std::fs::write(
            &path,
            format!("{text}{{\"event\":\"from_the_future\"}}\n{{\"event\":\"run_sta"),
        )
        .unwrap();
        let back = read_events(&path).unwrap();
        let events: Vec<Event> = back.iter().map(|(e, _)| e.clone()).collect();
        assert_eq!(events, sample());
        assert!(
            back.iter()
                .all(|(_, ts)| chrono::DateTime::parse_from_rfc3339(ts).is_ok())
        );
    }

    #[test]
    fn a_missing_events_file_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(read_events(&tmp.path().join("events.jsonl")).is_err());
    }
}
