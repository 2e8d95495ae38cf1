//! The event stream: one record per thing that happens in a run. It feeds `events.jsonl` in
//! the run directory and the terminal progress display; nothing prints from inside a stage.

use std::io::Write;
use std::path::Path;

use serde::Serialize;

/// One event. Serialized as one JSON line with an `event` tag and an RFC 3339 `ts`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The run started.
    RunStarted {
        run_id: String,
        pipeline: String,
        run_dir: String,
    },
    /// An interrupted run was resumed.
    RunResumed { run_id: String, run_dir: String },
    /// A stage started.
    StageStarted {
        stage: String,
        kind: String,
        attempt: Option<u32>,
        budget_s: f64,
    },
    /// A stage ended.
    StageFinished {
        stage: String,
        attempt: Option<u32>,
        status: String,
        summary: String,
        duration_s: f64,
    },
    /// A child process was started (for `fixci kill` / `peek`).
    ChildStarted {
        stage: String,
        pid: u32,
        command: String,
    },
    /// An agent CLI finished (or was stopped): what it reported about its own run.
    AgentFinished {
        stage: String,
        attempt: Option<u32>,
        /// The agent preset (`claude`, `codex`, ..., `command`).
        agent: String,
        report: crate::agent::AgentReport,
    },
    /// One run of a test finished.
    TestRun {
        stage: String,
        run: u64,
        of: u64,
        passed: bool,
        how: String,
    },
    /// An attempt started, with the agent (preset name or `command`) and model it runs.
    AttemptStarted {
        attempt: u32,
        max: u32,
        agent: String,
        model: Option<String>,
    },
    /// An attempt failed.
    AttemptFailed { attempt: u32, reason: String },
    /// Processes left running that fixci killed: after an agent (`in_sandbox`: found by the
    /// sandbox's supervisor, pids of the sandbox), before a stage, or before the verdict.
    Survivors {
        stage: String,
        attempt: Option<u32>,
        when: String,
        in_sandbox: bool,
        processes: Vec<crate::process::reaper::Survivor>,
    },
    /// Files of fixci's run directory changed while an agent ran.
    RunDirChanged {
        stage: String,
        attempt: Option<u32>,
        paths: Vec<String>,
    },
    /// The run ended.
    RunFinished {
        status: String,
        reason: Option<String>,
        duration_s: f64,
    },
}

/// Receives events: the JSON Lines file and, on a terminal, the progress display.
pub trait Observer {
    /// Called for every event, in order.
    fn event(&mut self, e: &Event);
}

/// Appends events to `events.jsonl`.
pub struct EventLog {
    file: std::fs::File,
}

impl EventLog {
    /// Opens (appending) `events.jsonl` in `run_dir`.
    pub fn open(run_dir: &Path) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(run_dir.join("events.jsonl"))?;
        Ok(Self { file })
    }

    /// Appends one event as a JSON line (best effort: a full disk does not stop the run here;
    /// `state.json` writes report it).
    pub fn write(&mut self, e: &Event) {
        let mut v = serde_json::to_value(e).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert("ts".into(), chrono::Utc::now().to_rfc3339().into());
        }
        let _ = writeln!(self.file, "{v}");
    }
}
