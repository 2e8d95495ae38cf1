//! A run and its directory, shared by the engine, the stages, the reports and the commands that
//! manage runs (`list`, `status`, `peek`, `kill`, `clean`, `resume`, `apply`). A leaf: it knows
//! nothing of the engine, the stages or the CLI.
//!
//! - [`RunState`] (`state.json`) and its one reducer [`RunState::apply`];
//! - [`Event`], the typed event stream (`events.jsonl`), and the [`Listener`] trait;
//! - [`ResultJson`], the `result.json` contract;
//! - [`RunDir`], every path of a run directory, and the run-management operations
//!   ([`find`], [`all`], [`RunDir::live_pid`], [`RunDir::kill`], [`RunDir::remove`]).
//!
//! Layout of `outputs/<YYYY-MM-DD_HH-MM-SS>_<slug>/`: `spec.json`, `pipeline.toml`,
//! `state.json`, `events.jsonl`, `fixci.pid` / `child.pid` (while running), `stages/<id>/`
//! (`stages/<id>/attempt-N/` inside the attempt loop), `repro-test/` (fixci's copy of the
//! reproduction test), `worktree/`, `pr.md`, `fix.diff`, `report.md`, `result.json`.

pub mod cleanup;
mod containment;
pub mod event;
mod result_json;
pub mod retry;
mod runs;
pub mod state;
pub mod workspace;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use containment::{Containment, RunDirChange, SurvivorRecord};
pub use event::{Event, EventLog, Listener, read_events};
pub use result_json::{
    AgentSummary, AttemptSummary, InvocationSummary, ReproSummary, ResultJson, TokenTotals,
};
pub use runs::{RunSummary, all, find};
pub use state::{
    Attempt, AttemptOutcome, Counts, FlakyStats, Invocation, IssueState, LogsState, PrState,
    RepoState, Repro, RunState, StageRecord, StageStatus, Status, write_atomic,
};

use crate::error::{Error, io_error};

/// A run directory: every path inside it, and the operations on the run it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    path: PathBuf,
}

/// How [`RunDir::kill`] stopped a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Killed {
    /// The fixci process exited after SIGTERM (it stopped its children and saved its state).
    Terminated,
    /// It was still alive after the grace period: it and its child's group got SIGKILL, and a
    /// `running` state was marked `interrupted`.
    ForceKilled,
}

impl RunDir {
    /// The run directory at `path` (which need not exist).
    pub fn new(path: impl Into<PathBuf>) -> RunDir {
        RunDir { path: path.into() }
    }

    /// Creates a new run directory `out/<run_id>` (or `out/<run_id>-2`, `-3`, ... when taken)
    /// with its `stages/` folder.
    ///
    /// Errors: the folder cannot be created.
    pub fn create(out: &Path, run_id: &str) -> Result<RunDir, Error> {
        let base = out.join(run_id);
        std::fs::create_dir_all(out).map_err(|e| io_error("create the run directory", out, e))?;
        // `create_dir` is atomic: of two runs that pick the same name, one gets `-2`.
        let mut p = base.clone();
        let mut n = 2;
        loop {
            match std::fs::create_dir(&p) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    p = PathBuf::from(format!("{}-{n}", base.display()));
                    n += 1;
                }
                Err(e) => return Err(io_error("create the run directory", &p, e)),
            }
        }
        let dir = RunDir::new(p);
        std::fs::create_dir_all(dir.stages_dir())
            .map_err(|e| io_error("create the run directory", dir.path(), e))?;
        Ok(dir)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The run id: the directory's name.
    pub fn id(&self) -> String {
        self.path
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// `state.json`.
    pub fn state_file(&self) -> PathBuf {
        self.path.join("state.json")
    }
    /// `events.jsonl`.
    pub fn events_file(&self) -> PathBuf {
        self.path.join("events.jsonl")
    }
    /// `result.json`.
    pub fn result_file(&self) -> PathBuf {
        self.path.join("result.json")
    }
    /// `report.md`.
    pub fn report_file(&self) -> PathBuf {
        self.path.join("report.md")
    }
    /// `fix.diff`: the fix as a patch against `base`.
    pub fn fix_diff_file(&self) -> PathBuf {
        self.path.join("fix.diff")
    }
    /// `spec.json`: the normalised, redacted job spec.
    pub fn spec_file(&self) -> PathBuf {
        self.path.join("spec.json")
    }
    /// `pipeline.toml`: the resolved pipeline.
    pub fn pipeline_file(&self) -> PathBuf {
        self.path.join("pipeline.toml")
    }
    /// `pr.md`: the PR body.
    pub fn pr_body_file(&self) -> PathBuf {
        self.path.join("pr.md")
    }
    /// `fixci.pid`: the pid of the fixci process driving the run.
    pub fn pid_file(&self) -> PathBuf {
        self.path.join("fixci.pid")
    }
    /// `child.pid`: the process group of the child running now.
    pub fn child_pid_file(&self) -> PathBuf {
        self.path.join("child.pid")
    }
    /// `worktree/`: fixci's worktree of the fix branch.
    pub fn worktree(&self) -> PathBuf {
        self.path.join("worktree")
    }
    /// `stages/`.
    pub fn stages_dir(&self) -> PathBuf {
        self.path.join("stages")
    }
    /// `stages/<id>/`, or `stages/<id>/attempt-N/` inside the attempt loop.
    pub fn stage_dir(&self, id: &str, attempt: Option<u32>) -> PathBuf {
        let d = self.stages_dir().join(id);
        match attempt {
            Some(n) => d.join(format!("attempt-{n}")),
            None => d,
        }
    }
    /// `result.json` of a stage directory.
    pub fn stage_result_file(stage_dir: &Path) -> PathBuf {
        stage_dir.join("result.json")
    }
    /// fixci's own copy of the reproduction test `test_file`, under `repro-test/`.
    pub fn repro_copy(&self, test_file: &str) -> PathBuf {
        self.path.join("repro-test").join(test_file)
    }

    /// Reads `state.json`.
    ///
    /// Errors: the file is missing or is not a state.
    pub fn load_state(&self) -> Result<RunState, Error> {
        let p = self.state_file();
        let text = std::fs::read_to_string(&p).map_err(|e| io_error("read", &p, e))?;
        serde_json::from_str(&text)
            .map_err(|e| Error::infra(format!("cannot read `{}`", p.display())).source(e))
    }

    /// Writes `state.json` atomically (temp file in the same folder + rename).
    ///
    /// Errors: the file cannot be written.
    pub fn save_state(&self, st: &RunState) -> Result<(), Error> {
        let p = self.state_file();
        let text = serde_json::to_string_pretty(st)
            .map_err(|e| Error::infra("cannot serialise the run state").source(e))?;
        write_atomic(&p, text.as_bytes()).map_err(|e| io_error("write", &p, e))
    }

    /// Reads `result.json`, when the run wrote one.
    pub fn load_result(&self) -> Option<ResultJson> {
        let text = std::fs::read_to_string(self.result_file()).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// The run's events (`events.jsonl`) with their times; empty when there are none.
    pub fn events(&self) -> Vec<(Event, String)> {
        read_events(&self.events_file()).unwrap_or_default()
    }

    /// Marks this process as the one driving the run (`fixci.pid`).
    ///
    /// Errors: the file cannot be written.
    pub fn claim(&self) -> Result<(), Error> {
        let p = self.pid_file();
        std::fs::write(&p, std::process::id().to_string()).map_err(|e| io_error("write", &p, e))
    }

    /// Drops the claim of [`RunDir::claim`].
    pub fn release(&self) {
        let _ = std::fs::remove_file(self.pid_file());
    }

    /// Records the process group of the child running now (`child.pid`).
    pub fn record_child(&self, pgid: u32) {
        let _ = std::fs::write(self.child_pid_file(), pgid.to_string());
    }

    /// Forgets the child of [`RunDir::record_child`].
    pub fn clear_child(&self) {
        let _ = std::fs::remove_file(self.child_pid_file());
    }

    /// Kills the recorded child's process group with SIGKILL (a child left behind by a fixci
    /// killed outright), and forgets it.
    pub fn kill_child(&self) {
        if let Some(pgid) = std::fs::read_to_string(self.child_pid_file())
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
        {
            crate::process::kill_group(pgid, libc::SIGKILL);
        }
        self.clear_child();
    }

    /// The pid of a live fixci process driving the run, from `fixci.pid`. A pid file whose
    /// process is gone, is a zombie, is not fixci, or is this process yields `None`.
    pub fn live_pid(&self) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(self.pid_file())
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().next())
            .unwrap_or("Z");
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let is_fixci = String::from_utf8_lossy(&cmd)
            .split('\0')
            .next()
            .is_some_and(|a| a.ends_with("fixci"));
        (state != "Z" && is_fixci && pid != std::process::id()).then_some(pid)
    }

    /// Stops the fixci process `pid` driving the run: SIGTERM (it stops its children and saves
    /// its state), then, if it is still alive after `grace`, SIGKILL to it and to its child's
    /// process group, and a `running` state is marked `interrupted` with `reason`.
    pub fn kill(&self, pid: u32, grace: Duration, reason: &str) -> Killed {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
        let until = Instant::now() + grace;
        while self.live_pid().is_some() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
        }
        if self.live_pid().is_none() {
            return Killed::Terminated;
        }
        // SAFETY: as above.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        self.kill_child();
        self.release();
        if let Ok(mut st) = self.load_state() {
            if st.status == Status::Running {
                st.status = Status::Interrupted;
                st.reason = Some(reason.into());
                let _ = self.save_state(&st);
            }
        }
        Killed::ForceKilled
    }

    /// Removes the run: its worktree (registered in the target repository as
    /// [`worktree_name`]), its fix branch unless a PR was proposed or opened for it, and the
    /// directory. Returns a note on what was kept (empty when nothing).
    ///
    /// Errors (exit 3): the worktree, branch or directory cannot be removed.
    pub fn remove(&self, st: &RunState) -> Result<String, Error> {
        let mut note = String::new();
        if let Ok(repo) = crate::vcs::open(&st.repo.root) {
            let name = worktree_name(&st.run_id);
            crate::vcs::prune_worktree(&repo, &name)
                .map_err(|e| Error::infra(format!("cannot remove worktree `{name}`")).source(e))?;
            // Only a branch the run brought into the repository is its to delete.
            if let Some(b) = st.branch.as_ref().filter(|_| st.branch_created || st.commit.is_some()) {
                if st.pr.is_none() {
                    crate::vcs::delete_branch(&repo, b).map_err(|e| {
                        Error::infra(format!("cannot delete branch `{b}`")).source(e)
                    })?;
                } else {
                    note = format!(" (kept branch `{b}`: it was proposed)");
                }
            }
        }
        std::fs::remove_dir_all(&self.path).map_err(|e| io_error("remove", &self.path, e))?;
        Ok(note)
    }
}

/// The name under which a run's worktree is registered in the target repository (git worktree
/// names cannot hold `.`).
pub fn worktree_name(run_id: &str) -> String {
    run_id.replace('.', "-")
}
