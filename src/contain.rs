//! What a run records about containing its agents: the sandbox it used (or why none), the
//! processes left behind that fixci killed, and changes to fixci's own run directory made while
//! an agent ran. The mechanisms live in [`crate::process::sandbox`] (bubblewrap) and
//! [`crate::process::reaper`] (subreaper and kill); the records ([`Containment`]) are part of
//! the run's state and live in [`crate::run_dir`] (re-exported here). This module holds the run
//! directory check, the events that feed the records, and the report section.
//!
//! The run directory check: before an agent runs, fixci hashes (SHA-256) every file of the run
//! directory except the places the agent may write (the worktree, its stage directory, the
//! sandbox's private home and temporary directory) and the files fixci itself appends to while
//! the agent runs (`events.jsonl`, `child.pid`, `fixci.pid`); afterwards any file added, removed
//! or changed is named. Under bubblewrap this cannot happen (the run directory is read-only to
//! the agent); without a sandbox it catches an agent that rewrote `state.json`, fixci's copy of
//! the reproduction test, `fix.diff` or another stage's output.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use crate::run_dir::{Containment, RunDirChange, SurvivorRecord};
use crate::run_dir::Event;
use crate::process::reaper::Survivor;
use crate::process::sandbox::Decision;

/// SHA-256 of every file in a run directory except the excluded paths; see the module docs.
#[derive(Debug, Clone)]
pub struct RunDirGuard {
    root: PathBuf,
    skip: Vec<PathBuf>,
    hashes: BTreeMap<PathBuf, [u8; 32]>,
}

/// Files fixci writes into the run directory while an agent runs.
const FIXCI_WRITES: &[&str] = &["events.jsonl", "child.pid", "fixci.pid"];

impl RunDirGuard {
    /// Hashes `run_dir` now, skipping `skip` (absolute paths: the worktree, the stage
    /// directory, the sandbox's places) and fixci's own running files.
    pub fn snapshot(run_dir: &Path, skip: &[PathBuf]) -> RunDirGuard {
        let mut skip: Vec<PathBuf> = skip.to_vec();
        skip.extend(FIXCI_WRITES.iter().map(|f| run_dir.join(f)));
        skip.push(run_dir.join("sandbox"));
        let mut g = RunDirGuard { root: run_dir.to_path_buf(), skip, hashes: BTreeMap::new() };
        g.hashes = g.hash_all();
        g
    }

    fn hash_all(&self) -> BTreeMap<PathBuf, [u8; 32]> {
        let mut out = BTreeMap::new();
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for e in entries.flatten() {
                let p = e.path();
                if self.skip.iter().any(|s| p.starts_with(s)) {
                    continue;
                }
                let Ok(ft) = e.file_type() else { continue };
                if ft.is_dir() {
                    stack.push(p);
                } else {
                    let bytes = if ft.is_symlink() {
                        std::fs::read_link(&p)
                            .map(|t| t.display().to_string().into_bytes())
                            .unwrap_or_default()
                    } else {
                        std::fs::read(&p).unwrap_or_default()
                    };
                    let rel = p.strip_prefix(&self.root).unwrap_or(&p).to_path_buf();
                    out.insert(rel, Sha256::digest(&bytes).into());
                }
            }
        }
        out
    }

    /// What changed since the snapshot: `PATH (changed|added|removed)`, sorted by path.
    pub fn changes(&self) -> Vec<String> {
        let now = self.hash_all();
        let mut out = Vec::new();
        for (p, h) in &self.hashes {
            match now.get(p) {
                None => out.push(format!("{} (removed)", p.display())),
                Some(n) if n != h => out.push(format!("{} (changed)", p.display())),
                _ => {}
            }
        }
        for p in now.keys().filter(|p| !self.hashes.contains_key(*p)) {
            out.push(format!("{} (added)", p.display()));
        }
        out.sort();
        out
    }
}

/// The containment of one agent invocation: its sandbox (when the run has one) and the run
/// directory snapshot taken before it starts.
pub struct AgentWatch {
    jail: Option<crate::process::sandbox::Jail>,
    guard: RunDirGuard,
}

/// What [`AgentWatch::finish`] found.
#[derive(Debug, Default)]
pub struct AgentFindings {
    /// Processes the sandbox's supervisor found alive after the agent's main process ended.
    pub in_sandbox: Vec<Survivor>,
    /// fixci's descendants left alive after the invocation (the reaper's finds).
    pub outside: Vec<Survivor>,
    /// Run-directory files that changed.
    pub run_dir_changes: Vec<String>,
    /// Writes to protected places, discarded (`PATH (created|written|deleted)`).
    pub discarded: Vec<String>,
}

impl AgentWatch {
    /// Prepares an invocation in `stage_dir` with working tree `worktree`: the sandbox's places
    /// when `decision` says bubblewrap, with a throw-away layer over `protected` (plus the run
    /// directory, fixci's cache, the user's `HOME` and fixci's working directory; see
    /// [`crate::process::sandbox::protected_places`]) when the decision has one, and the run
    /// directory snapshot.
    ///
    /// Errors: the sandbox's private directories cannot be created.
    pub fn start(
        decision: Option<&Decision>,
        run_dir: &Path,
        worktree: &Path,
        stage_dir: &Path,
        protected: &[PathBuf],
    ) -> std::io::Result<AgentWatch> {
        let jail = match decision.and_then(|d| d.bwrap.as_deref()) {
            Some(b) => {
                let mut j = crate::process::sandbox::Jail::new(b, run_dir, worktree, stage_dir)?;
                if let Some(unshare) = decision.and_then(|d| d.overlay.as_deref()) {
                    let mut places = protected.to_vec();
                    places.push(run_dir.to_path_buf());
                    places.push(crate::run_dir::workspace::cache_dir());
                    j.protect(unshare, &places)?;
                }
                Some(j)
            }
            None => None,
        };
        let guard =
            RunDirGuard::snapshot(run_dir, &[worktree.to_path_buf(), stage_dir.to_path_buf()]);
        Ok(AgentWatch { jail, guard })
    }

    /// The command to start: `cmd` itself without a sandbox, else wrapped into it (see
    /// [`crate::process::sandbox::Jail::wrap`]).
    ///
    /// Errors: as `Jail::wrap`.
    pub fn wrap(
        &self,
        cmd: crate::process::CommandSpec,
        out: crate::process::OutputTo,
        writable: &[String],
    ) -> Result<(crate::process::CommandSpec, crate::process::OutputTo), crate::process::SpawnError>
    {
        match &self.jail {
            Some(j) => j.wrap(cmd, &out, writable),
            None => Ok((cmd, out)),
        }
    }

    /// After the invocation: reads the sandbox supervisor's log (its other messages, such as
    /// bubblewrap's own errors, are appended to `agent_stderr`), kills fixci's unexpected
    /// descendants, and compares the run directory with the snapshot.
    pub fn finish(&self, agent_stderr: &Path) -> AgentFindings {
        let mut f = AgentFindings::default();
        if let Some(j) = &self.jail {
            let log = j.read_log();
            f.in_sandbox = log.survivors;
            f.discarded = log.discarded.iter().map(ToString::to_string).collect();
            let other = log.other;
            if !other.trim().is_empty() {
                use std::io::Write as _;
                if let Ok(mut file) =
                    std::fs::OpenOptions::new().create(true).append(true).open(agent_stderr)
                {
                    let _ = file.write_all(other.as_bytes());
                }
            }
        }
        f.outside = crate::process::reaper::reap_descendants();
        if let Some(j) = &self.jail {
            // The sandbox's own init, still being torn down after the agent ended: expected.
            let init = j.bwrap.display().to_string();
            let outer = ["/bin/sh -c trap '' TERM; exec", "/bin/sh -c # fixci-sandbox-overlay"];
            f.outside.retain(|s| {
                !(s.cmdline.starts_with(&init)
                    || outer.iter().any(|o| s.cmdline.starts_with(o))
                    || s.cmdline.starts_with("unshare -Urm /bin/sh -c # fixci-sandbox-overlay")
                    || s.cmdline == "[bwrap]")
            });
        }
        f.run_dir_changes = self.guard.changes();
        f
    }
}

/// The events that record what an agent invocation left: the processes found alive (inside
/// the sandbox, then outside it) and the run-directory changes; empty parts emit nothing.
pub fn agent_events((stage, attempt): (&str, Option<u32>), f: AgentFindings) -> Vec<Event> {
    let mut out = Vec::new();
    for (in_sandbox, list) in [(true, f.in_sandbox), (false, f.outside)] {
        out.extend(survivors_event((stage, attempt), "after the agent", in_sandbox, list));
    }
    if !f.discarded.is_empty() {
        out.push(Event::WritesDiscarded { stage: stage.to_string(), attempt, paths: f.discarded });
    }
    if !f.run_dir_changes.is_empty() {
        out.push(Event::RunDirChanged {
            stage: stage.to_string(),
            attempt,
            paths: f.run_dir_changes,
        });
    }
    out
}

/// The event naming processes fixci killed `when`; `None` for an empty list.
pub fn survivors_event(
    (stage, attempt): (&str, Option<u32>),
    when: &str,
    in_sandbox: bool,
    processes: Vec<Survivor>,
) -> Option<Event> {
    (!processes.is_empty()).then(|| Event::Survivors {
        stage: stage.to_string(),
        attempt,
        when: when.to_string(),
        in_sandbox,
        processes,
    })
}

/// Kills what is left running `when` (see [`crate::process::reaper::reap_descendants`]) and
/// returns the event naming it, if anything was.
pub fn reap(at: (&str, Option<u32>), when: &str) -> Option<Event> {
    survivors_event(at, when, false, crate::process::reaper::reap_descendants())
}

/// The reason the run ends `failed` with when `events` hold a run-directory change.
pub fn tamper_reason(events: &[Event]) -> Option<String> {
    events.iter().find_map(|e| match e {
        Event::RunDirChanged { paths, .. } => Some(run_dir_reason(paths)),
        _ => None,
    })
}

/// The `sandbox:` line of `fixci run --dry-run`: the spec's mode and what it means here.
pub fn dry_run_line(mode: crate::process::sandbox::SandboxMode) -> String {
    use crate::process::sandbox::{SandboxMode, probe};
    match (mode, probe()) {
        (SandboxMode::None, _) => "none (`sandbox = \"none\"`: agents run unsandboxed; fixci still kills what they leave running)".into(),
        (m, Ok(b)) => format!("bwrap ({}; `sandbox = \"{}\"`)", b.display(), m.as_str()),
        (SandboxMode::Bwrap, Err(why)) => format!("bwrap, NOT USABLE here: the run would stop with exit 3 ({why})"),
        (_, Err(why)) => format!("none: bubblewrap is not usable here ({why}); the report would lead with a warning"),
    }
}

/// The reason a run ends with when an agent changed fixci's run directory.
pub fn run_dir_reason(paths: &[String]) -> String {
    format!("the agent changed fixci's run directory: {}", paths.join(", "))
}

/// The warning that leads the report when agents ran without a sandbox under `auto`.
pub fn warning(c: &Containment) -> Option<&str> {
    c.sandbox.as_ref().and_then(|d| d.warning.as_deref())
}

/// Most discarded writes the report names per invocation.
const MAX_NAMED: usize = 50;

/// The report's `## Containment` section: the sandbox, the processes killed, the run-directory
/// changes.
pub fn markdown(c: &Containment) -> String {
    let mut m = String::from("## Containment\n\n");
    match &c.sandbox {
        Some(d) if d.sandboxed() => {
            m.push_str(
                "Agents ran under bubblewrap: their own PID namespace, the filesystem read-only \
                 except the worktree, the stage directory and a private HOME and TMPDIR; network \
                 on. In their namespace no process of fixci's or of anyone else's is visible: \
                 `/proc/*/environ` and process listings show the agent's own processes only \
                 (such reads cannot be observed, so they are not listed here). The sockets of \
                 SSH and GnuPG agents, the keyring and container engines were hidden from them \
                 and from test runs.\n\n",
            );
            match &d.overlay_why {
                None => m.push_str(
                    "Writes to the user's repository, fixci's run directory and cache, the \
                     home directory and the spec's folder went to a throw-away layer, \
                     discarded when the agent ended; they are named below.\n\n",
                ),
                Some(why) => {
                    let _ = writeln!(
                        m,
                        "Writes outside the writable places failed (read-only) and cannot be \
                         named here: {why}.\n"
                    );
                }
            }
            m.push_str(
                "Test commands (reproduction, verification, stress and gate runs) run the \
                 agent's code, so they ran under bubblewrap too: their own PID namespace, the \
                 user's repository, the spec's folder, fixci's run directory and cache \
                 read-only, ",
            );
            m.push_str(if d.overlay_why.is_none() {
                "and writes to the home directory and the other top-level directories (all \
                 but `/tmp`, `/run` and the kernel's) went to a throw-away layer discarded when \
                 each test run ended: no test run left a file there for a later run, for \
                 fixci's own git or for the user.\n\n"
            } else {
                "the rest of the filesystem as it is: without a throw-away layer here, what \
                 a test run wrote to the home directory or elsewhere was kept.\n\n"
            });
        }
        Some(d) if d.warning.is_some() => m.push_str("Agents ran without a sandbox (see the warning above); fixci killed what they left running and checked its run directory.\n\n"),
        Some(_) => m.push_str("Agents ran without a sandbox (`sandbox = \"none\"`); fixci killed what they left running and checked its run directory.\n\n"),
        None => m.push_str("No agent ran.\n\n"),
    }
    if c.survivors.is_empty() {
        m.push_str("No process outlived its agent.\n\n");
    } else {
        m.push_str("Processes left running, killed by fixci:\n\n| stage | attempt | when | pid | command |\n|---|---|---|---|---|\n");
        for s in &c.survivors {
            let _ = writeln!(
                m,
                "| {} | {} | {} | {}{} | `{}` |",
                s.stage,
                s.attempt.map(|a| a.to_string()).unwrap_or_else(|| "-".into()),
                s.when,
                s.process.pid,
                if s.in_sandbox { " (in the sandbox)" } else { "" },
                crate::markdown::cell(&s.process.cmdline).replace('`', "'")
            );
        }
        m.push('\n');
    }
    for ch in &c.discarded_writes {
        let _ = writeln!(
            m,
            "**The agent of stage `{}`{} tried to write outside its sandbox; discarded:**\n",
            ch.stage,
            ch.attempt.map(|a| format!(" (attempt {a})")).unwrap_or_default(),
        );
        for p in ch.paths.iter().take(MAX_NAMED) {
            // `PATH (kind)`: the path in code, its kind after it.
            let (path, kind) = match p.rsplit_once(" (") {
                Some((path, k)) if k.ends_with(')') => (path, format!(" ({k}")),
                _ => (p.as_str(), String::new()),
            };
            let _ = writeln!(
                m,
                "- `{}`{kind}",
                crate::markdown::cell(path).replace('`', "'")
            );
        }
        if ch.paths.len() > MAX_NAMED {
            let _ = writeln!(m, "- ... and {} more (all in `state.json`)", ch.paths.len() - MAX_NAMED);
        }
        m.push('\n');
    }
    for ch in &c.run_dir_changes {
        let _ = writeln!(
            m,
            "**The agent of stage `{}`{} changed fixci's run directory:** {}\n",
            ch.stage,
            ch.attempt.map(|a| format!(" (attempt {a})")).unwrap_or_default(),
            ch.paths.join(", ")
        );
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guard_names_changed_added_and_removed_files_outside_the_skipped_places() {
        let t = tempfile::tempdir().unwrap();
        let run = t.path();
        for d in ["worktree", "stages/fix", "repro-test/tests", "sandbox/home"] {
            std::fs::create_dir_all(run.join(d)).unwrap();
        }
        std::fs::write(run.join("state.json"), "{}").unwrap();
        std::fs::write(run.join("repro-test/tests/t.py"), "assert 0").unwrap();
        std::fs::write(run.join("spec.json"), "{}").unwrap();
        let g = RunDirGuard::snapshot(run, &[run.join("worktree"), run.join("stages/fix")]);
        assert!(g.changes().is_empty());
        std::fs::write(run.join("worktree/a.py"), "x").unwrap();
        std::fs::write(run.join("stages/fix/repro.json"), "x").unwrap();
        std::fs::write(run.join("sandbox/home/.x"), "x").unwrap();
        std::fs::write(run.join("events.jsonl"), "{}").unwrap();
        assert!(g.changes().is_empty(), "{:?}", g.changes());
        std::fs::write(run.join("repro-test/tests/t.py"), "assert 1").unwrap();
        std::fs::remove_file(run.join("spec.json")).unwrap();
        std::fs::write(run.join("result.json"), "{}").unwrap();
        assert_eq!(
            g.changes(),
            vec![
                "repro-test/tests/t.py (changed)".to_string(),
                "result.json (added)".into(),
                "spec.json (removed)".into()
            ]
        );
    }

    #[test]
    fn findings_become_events_that_the_reducer_records() {
        let f = AgentFindings {
            in_sandbox: vec![Survivor { pid: 7, cmdline: "sleep 9".into() }],
            outside: vec![],
            run_dir_changes: vec!["state.json (changed)".into()],
            discarded: vec!["/home/u/.bashrc (written)".into()],
        };
        let events = agent_events(("fix", Some(1)), f);
        assert_eq!(events.len(), 3, "no event for the empty outside list");
        assert_eq!(tamper_reason(&events).unwrap(), "the agent changed fixci's run directory: state.json (changed)");
        let mut c = Containment::default();
        events.iter().for_each(|e| c.apply(e));
        assert_eq!(c.survivors.len(), 1);
        assert!(c.survivors[0].in_sandbox && c.survivors[0].when == "after the agent");
        assert_eq!(c.run_dir_changes[0].paths, vec!["state.json (changed)".to_string()]);
        assert_eq!(c.discarded_writes[0].paths, vec!["/home/u/.bashrc (written)".to_string()]);
        assert!(reap(("x", None), "before the stage").is_none(), "the reaper is unarmed in tests");
    }

    #[test]
    fn the_section_names_survivors_and_changes() {
        let c = Containment {
            sandbox: Some(Decision::none(None)),
            survivors: vec![SurvivorRecord {
                stage: "fix".into(),
                attempt: Some(2),
                when: "after the agent".into(),
                in_sandbox: false,
                process: Survivor { pid: 42, cmdline: "sleep 1000 | x".into() },
            }],
            run_dir_changes: vec![RunDirChange {
                stage: "fix".into(),
                attempt: Some(2),
                paths: vec!["state.json (changed)".into()],
            }],
            discarded_writes: vec![RunDirChange {
                stage: "reproduce".into(),
                attempt: None,
                paths: vec!["/u/repo/.git/config (written)".into()],
            }],
        };
        let m = markdown(&c);
        assert!(m.contains("stage `reproduce` tried to write outside its sandbox; discarded:**\n\n- `/u/repo/.git/config` (written)"), "{m}");
        assert!(m.contains("| fix | 2 | after the agent | 42 | `sleep 1000 \\| x` |"), "{m}");
        assert!(m.contains("(attempt 2) changed fixci's run directory:** state.json (changed)"), "{m}");
        assert!(m.contains("`sandbox = \"none\"`"));
    }
}
