//! Finding and summarising run directories for `list`, `status`, `peek`, `kill`, `clean`,
//! `resume` and `apply`. A run is named by its id, a unique prefix of it, or `last`.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{Event, RunDir, RunState, Status};
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
    /// The run this one retries (`fixci retry`), if any.
    pub retry_of: Option<String>,
}

/// The runs under `out` (folders holding a readable `state.json`), oldest first.
pub fn all(out: &Path) -> Vec<(RunDir, RunState)> {
    let Ok(entries) = std::fs::read_dir(out) else {
        return Vec::new();
    };
    let mut v: Vec<(RunDir, RunState)> = entries
        .flatten()
        .map(|e| RunDir::new(e.path()))
        .filter_map(|d| d.load_state().ok().map(|s| (d, s)))
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
pub fn find(out: &Path, query: &str) -> Result<(RunDir, RunState), Error> {
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

impl RunDir {
    /// Summarises the run whose state is `st`: live or stale, current stage, attempts, age.
    pub fn summary(&self, st: &RunState) -> RunSummary {
        let pid = self.live_pid();
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
            stage: self
                .current_stage()
                .or_else(|| st.stages.last().map(|s| s.id.clone())),
            attempts: st.attempts.len(),
            age_s,
            pid,
            dir: self.path().to_path_buf(),
            retry_of: st.retry_of.as_ref().map(|r| r.run_id.clone()),
        }
    }

    /// The stage that started last and has not finished, from `events.jsonl`.
    pub fn current_stage(&self) -> Option<String> {
        let mut open: Option<String> = None;
        for (e, _) in self.events() {
            match e {
                Event::StageStarted { stage, .. } => open = Some(stage),
                Event::StageFinished { .. } => open = None,
                _ => {}
            }
        }
        open
    }

    /// The newest stage directory of the run (an attempt's folder inside the attempt loop).
    pub fn latest_stage_dir(&self) -> Option<PathBuf> {
        fn newest(p: &Path) -> Option<(std::time::SystemTime, PathBuf)> {
            std::fs::read_dir(p)
                .ok()?
                .flatten()
                .filter(|e| e.path().is_dir())
                .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
                .max()
        }
        let (_, stage) = newest(&self.stages_dir())?;
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
}
