//! Finding and summarising run directories for `list`, `status`, `peek`, `kill`, `clean`,
//! `resume` and `apply`. A run is named by its id, a unique prefix of it, or `last`.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::state::{RunState, Status};
use crate::error::Error;

/// A run as `fixci list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// `running`, `stale` (its fixci process is gone), or the run's final status.
    pub status: String,
    /// Run id.
    pub run_id: String,
    /// Job spec file.
    pub spec: String,
    /// Pipeline name.
    pub pipeline: String,
    /// The stage running now, or the last one that ran.
    pub stage: Option<String>,
    /// Fix attempts so far.
    pub attempts: usize,
    /// Seconds since the run started.
    pub age_s: i64,
    /// pid of the driving fixci process, when it is alive.
    pub pid: Option<u32>,
    /// Run directory.
    pub dir: PathBuf,
}

/// The runs under `out` (folders holding `state.json`), oldest first.
pub fn all(out: &Path) -> Vec<(PathBuf, RunState)> {
    let Ok(entries) = std::fs::read_dir(out) else {
        return Vec::new();
    };
    let mut v: Vec<(PathBuf, RunState)> = entries
        .flatten()
        .map(|e| e.path())
        .filter_map(|p| RunState::load(&p).ok().map(|s| (p, s)))
        .collect();
    v.sort_by(|a, b| {
        a.1.started_at
            .cmp(&b.1.started_at)
            .then(a.1.run_id.cmp(&b.1.run_id))
    });
    v
}

/// Finds one run under `out` by id, unique prefix, or `last` (the newest).
///
/// Errors (exit 2): no runs, no match, or an ambiguous prefix (the candidates are listed).
pub fn find(out: &Path, query: &str) -> Result<(PathBuf, RunState), Error> {
    let runs = all(out);
    if runs.is_empty() {
        return Err(Error::usage(format!("no runs in `{}`", out.display())).hint("runs live in `./outputs` of the directory fixci was started from; pass `--out DIR` for another"));
    }
    if query == "last" {
        return Ok(runs.into_iter().last().expect("non-empty"));
    }
    let matches: Vec<_> = runs
        .into_iter()
        .filter(|(_, s)| s.run_id == query || s.run_id.starts_with(query))
        .collect();
    match matches.len() {
        0 => Err(
            Error::usage(format!("no run `{query}` in `{}`", out.display()))
                .hint("`fixci list` shows the runs"),
        ),
        1 => Ok(matches.into_iter().next().expect("one")),
        _ => {
            if let Some(exact) = matches.iter().find(|(_, s)| s.run_id == query) {
                return Ok(exact.clone());
            }
            Err(
                Error::usage(format!("`{query}` matches {} runs", matches.len()))
                    .details(matches.iter().map(|(_, s)| s.run_id.clone())),
            )
        }
    }
}

/// Summarises a run: live or stale, current stage, attempts, age.
pub fn summary(dir: &Path, st: &RunState) -> RunSummary {
    let pid = super::live_pid(dir);
    let status = match (st.status, pid) {
        (Status::Running, Some(_)) => "running".to_string(),
        (Status::Running, None) => "stale".to_string(),
        (s, _) => s.as_str().to_string(),
    };
    let age_s = chrono::DateTime::parse_from_rfc3339(&st.started_at)
        .map(|t| (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds())
        .unwrap_or(0);
    RunSummary {
        status,
        run_id: st.run_id.clone(),
        spec: st.spec_file.display().to_string(),
        pipeline: st.pipeline.clone(),
        stage: current_stage(dir).or_else(|| st.stages.last().map(|s| s.id.clone())),
        attempts: st.attempts.len(),
        age_s,
        pid,
        dir: dir.to_path_buf(),
    }
}

/// The stage that started last and has not finished, from `events.jsonl`.
pub fn current_stage(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("events.jsonl")).ok()?;
    let mut open: Option<String> = None;
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        match v["event"].as_str() {
            Some("stage_started") => open = v["stage"].as_str().map(String::from),
            Some("stage_finished") => open = None,
            _ => {}
        }
    }
    open
}

/// The newest stage directory of a run (an attempt's folder inside the attempt loop).
pub fn latest_stage_dir(dir: &Path) -> Option<PathBuf> {
    fn newest(p: &Path) -> Option<(std::time::SystemTime, PathBuf)> {
        std::fs::read_dir(p)
            .ok()?
            .flatten()
            .filter(|e| e.path().is_dir())
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .max()
    }
    let (_, stage) = newest(&dir.join("stages"))?;
    match newest(&stage) {
        Some((_, sub))
            if sub
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("attempt-")) =>
        {
            Some(sub)
        }
        _ => Some(stage),
    }
}
