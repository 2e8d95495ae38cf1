//! Runs child processes under a budget: every child starts in its own session and process group
//! (no controlling terminal); at the
//! budget the whole group gets SIGTERM, then after a grace period SIGKILL. Output goes straight to
//! files (no pipes, so a chatty child never blocks). When the group leader exits, whatever it left
//! behind in its group is killed too, so no test or agent process outlives its stage.
//!
//! This module decides no policy: it reports how the child ended and lets the caller judge.
//! The pattern follows cargo-nextest's `runner/unix.rs` (process groups, TERM -> grace -> KILL).

use std::fs::File;
use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub mod reaper;
pub mod sandbox;

/// Process groups of the children running now (0 = free slot), so a signal handler can kill them
/// all at once ([`kill_all_groups`]). 256 slots cover the widest stress run.
static LIVE_GROUPS: [AtomicU32; 256] = [const { AtomicU32::new(0) }; 256];

fn track(pgid: u32) {
    for slot in &LIVE_GROUPS {
        if slot
            .compare_exchange(0, pgid, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            return;
        }
    }
}

fn untrack(pgid: u32) {
    for slot in &LIVE_GROUPS {
        if slot
            .compare_exchange(pgid, 0, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            return;
        }
    }
}

/// The process groups of the children [`run`] is running now.
pub fn live_groups() -> Vec<u32> {
    LIVE_GROUPS
        .iter()
        .map(|s| s.load(Ordering::SeqCst))
        .filter(|g| *g != 0)
        .collect()
}

/// Sends SIGKILL to every child group started by [`run`] that is still running. Only atomics and
/// `killpg`: safe to call from a signal handler (the second Ctrl-C).
pub fn kill_all_groups() {
    for slot in &LIVE_GROUPS {
        let g = slot.load(Ordering::SeqCst);
        if g != 0 {
            // SAFETY: killpg is async-signal-safe and has no memory-safety preconditions.
            unsafe {
                libc::killpg(g as libc::pid_t, libc::SIGKILL);
            }
        }
    }
}

/// What a child is started as.
#[derive(Debug, Clone)]
pub struct CommandSpec {
    /// Program name (looked up on `PATH`) or path.
    pub program: String,
    /// Arguments, not shell-interpreted.
    pub args: Vec<String>,
    /// Working directory.
    pub cwd: PathBuf,
    /// Variables set on top of the inherited environment.
    pub env: Vec<(String, String)>,
    /// Variables removed from the inherited environment (e.g. forge tokens).
    pub env_remove: Vec<String>,
    /// A file whose contents are fed on standard input; `None` means `/dev/null`.
    pub stdin: Option<PathBuf>,
}

impl CommandSpec {
    /// A command that runs `script` with `sh -c` in `cwd`.
    pub fn shell(script: &str, cwd: &Path) -> Self {
        Self {
            program: "sh".into(),
            args: vec!["-c".into(), script.into()],
            cwd: cwd.to_path_buf(),
            env: Vec::new(),
            env_remove: Vec::new(),
            stdin: None,
        }
    }

    /// The command line as one display string (arguments with spaces are quoted).
    pub fn display(&self) -> String {
        std::iter::once(&self.program)
            .chain(&self.args)
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Quotes a word for a POSIX shell when it needs it.
pub fn shell_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Finds `program` as the OS would start it: a path containing `/` must be an executable
/// file; a bare name is looked up in `PATH`.
pub fn which(program: &str) -> Option<PathBuf> {
    let executable = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        p.is_file()
            && std::fs::metadata(p)
                .map(|m| m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
    };
    if program.contains('/') {
        let p = PathBuf::from(program);
        return executable(&p).then_some(p);
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join(program))
            .find(|p| executable(p))
    })
}

/// Where the child's output goes.
#[derive(Debug, Clone)]
pub enum OutputTo {
    /// stdout and stderr interleaved into one file.
    Combined(PathBuf),
    /// stdout and stderr into two files.
    Separate { stdout: PathBuf, stderr: PathBuf },
}

/// Time limits for one child.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Wall-clock budget from spawn to SIGTERM.
    pub budget: Duration,
    /// Time between SIGTERM and SIGKILL.
    pub grace: Duration,
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", tag = "how")]
pub enum Termination {
    /// Exited by itself with this code.
    Exited { code: i32 },
    /// Killed by a signal fixci did not send.
    Signaled { signal: i32 },
    /// Outlived its budget and was stopped by fixci; `killed` is true when SIGTERM was not
    /// enough and SIGKILL was needed.
    TimedOut { killed: bool },
    /// Stopped because fixci was interrupted (Ctrl-C / SIGTERM to fixci).
    Cancelled,
}

impl Termination {
    /// True for a clean exit with code 0.
    pub fn success(&self) -> bool {
        matches!(self, Termination::Exited { code: 0 })
    }

    /// A short human description, e.g. `exit 1`, `timeout`.
    pub fn describe(&self) -> String {
        match self {
            Termination::Exited { code } => format!("exit {code}"),
            Termination::Signaled { signal } => format!("killed by signal {signal}"),
            Termination::TimedOut { .. } => "timeout".into(),
            Termination::Cancelled => "cancelled".into(),
        }
    }
}

/// The result of [`run`].
#[derive(Debug, Clone)]
pub struct Finished {
    /// How the child ended.
    pub termination: Termination,
    /// Wall time from spawn to the end of the group.
    pub duration: Duration,
    /// The child's pid, which is also its process-group id.
    pub pid: u32,
}

/// Error starting a child.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The program could not be started (not found, not executable).
    #[error("cannot start `{program}`")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },
    /// An output or input file could not be opened.
    #[error("cannot open `{path}`")]
    File {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Runs `spec` to completion under `limits`, writing its output to `out`.
///
/// The child is the leader of a new process group. When the budget runs out the group receives
/// SIGTERM, then SIGKILL after `limits.grace`. When the leader exits (by itself or not), every
/// process still in its group is killed before the leader is reaped, so no descendant that stayed
/// in the group survives. `cancel`, polled every 50 ms, stops the child like a timeout and returns
/// [`Termination::Cancelled`]. `on_spawn` receives the pid (also the group id) right after spawn.
///
/// Errors: [`SpawnError`] when the program or a file cannot be opened; nothing is left running.
pub fn run(
    spec: &CommandSpec,
    out: &OutputTo,
    limits: Limits,
    cancel: Option<&AtomicBool>,
    on_spawn: &mut dyn FnMut(u32),
) -> Result<Finished, SpawnError> {
    let open = |p: &Path| {
        File::create(p).map_err(|source| SpawnError::File {
            path: p.to_path_buf(),
            source,
        })
    };
    let (stdout, stderr) = match out {
        OutputTo::Combined(p) => {
            let f = open(p)?;
            let g = f.try_clone().map_err(|source| SpawnError::File {
                path: p.clone(),
                source,
            })?;
            (f, g)
        }
        OutputTo::Separate { stdout, stderr } => (open(stdout)?, open(stderr)?),
    };
    let stdin = match &spec.stdin {
        Some(p) => Stdio::from(File::open(p).map_err(|source| SpawnError::File {
            path: p.clone(),
            source,
        })?),
        None => Stdio::null(),
    };
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args)
        .current_dir(&spec.cwd)
        .stdin(stdin)
        .stdout(stdout)
        .stderr(stderr);
    // A new session (so also a new process group, id = pid): the child has no controlling
    // terminal, so it cannot push keystrokes into the user's shell (TIOCSTI).
    // SAFETY: setsid is async-signal-safe and touches no memory.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    for k in &spec.env_remove {
        cmd.env_remove(k);
    }
    for (k, v) in &spec.env {
        cmd.env(k, v);
    }
    let start = Instant::now();
    // Spawn and track under the reaper's lock: a child being started is never a survivor.
    let spawn_lock = reaper::SPAWN_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut child = cmd.spawn().map_err(|source| SpawnError::Spawn {
        program: spec.program.clone(),
        source,
    })?;
    let pid = child.id();
    track(pid);
    drop(spawn_lock);
    on_spawn(pid);

    // A waiter thread observes the leader's exit without reaping it (WNOWAIT), so the group id
    // stays reserved while we kill the rest of the group.
    let (tx, rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        wait_no_reap(pid);
        let _ = tx.send(());
    });

    let deadline = start + limits.budget;
    let mut outcome: Option<Termination> = None;
    loop {
        let now = Instant::now();
        if cancel.is_some_and(|c| c.load(Ordering::SeqCst)) {
            outcome = Some(Termination::Cancelled);
            break;
        }
        if now >= deadline {
            break;
        }
        let slice = (deadline - now).min(Duration::from_millis(50));
        match rx.recv_timeout(slice) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                kill_group(pid, libc::SIGKILL);
                let status = child.wait().map_err(|source| SpawnError::Spawn {
                    program: spec.program.clone(),
                    source,
                })?;
                settle_group(pid);
                let termination = match (status.code(), status.signal()) {
                    (Some(code), _) => Termination::Exited { code },
                    (None, Some(signal)) => Termination::Signaled { signal },
                    (None, None) => Termination::Signaled { signal: 0 },
                };
                untrack(pid);
                return Ok(Finished {
                    termination,
                    duration: start.elapsed(),
                    pid,
                });
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
    }
    // Budget exhausted or cancelled: TERM the group, wait the grace period, then KILL.
    kill_group(pid, libc::SIGTERM);
    // On an interruption the user is waiting at the terminal: at most 2 s of grace.
    let grace = if outcome == Some(Termination::Cancelled) {
        limits.grace.min(Duration::from_secs(2))
    } else {
        limits.grace
    };
    let exited = rx.recv_timeout(grace).is_ok();
    kill_group(pid, libc::SIGKILL);
    if !exited {
        let _ = rx.recv();
    }
    let _ = child.wait();
    settle_group(pid);
    let termination = outcome.unwrap_or(Termination::TimedOut { killed: !exited });
    untrack(pid);
    Ok(Finished {
        termination,
        duration: start.elapsed(),
        pid,
    })
}

/// Blocks until process `pid` has exited, leaving it a zombie (not reaped).
fn wait_no_reap(pid: u32) {
    loop {
        // SAFETY: `info` is a plain C struct that waitid fills in; `pid` is our own child.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if rc == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return;
        }
    }
}

/// Sends `signal` to every process in group `pgid`; a group that is already gone is fine.
pub fn kill_group(pgid: u32, signal: libc::c_int) {
    // SAFETY: killpg has no memory-safety preconditions.
    unsafe {
        libc::killpg(pgid as libc::pid_t, signal);
    }
}

/// Waits (at most 2 s) until SIGKILLed members of group `pgid` are gone, so that callers observe
/// a dead group when [`run`] returns. Cheap when the group is already empty.
fn settle_group(pgid: u32) {
    // SAFETY: kill with signal 0 only checks for existence.
    let any = unsafe { libc::kill(-(pgid as libc::pid_t), 0) } == 0;
    if !any {
        return;
    }
    let until = Instant::now() + Duration::from_secs(2);
    while group_alive(pgid) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// True when some process of group `pgid` is still alive (zombies, which hold no resources and
/// run no code, do not count).
pub fn group_alive(pgid: u32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|e| {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            return false;
        };
        // Fields after the `(comm)` that may contain spaces: state ppid pgrp ...
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            return false;
        };
        let mut f = rest.split_whitespace();
        let state = f.next().unwrap_or("");
        let _ppid = f.next();
        let pgrp: u32 = f.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        pgrp == pgid && state != "Z" && state != "X"
    })
}

/// The last `max_bytes` of a file as text (lossy UTF-8), starting at a line boundary when one
/// is near. Missing files read as empty.
pub fn tail(path: &Path, max_bytes: u64) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(max_bytes);
    if f.seek(SeekFrom::Start(start)).is_err() {
        return String::new();
    }
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let mut text = String::from_utf8_lossy(&buf).into_owned();
    if start > 0 {
        if let Some(i) = text.find('\n') {
            if i < 200 {
                text.drain(..=i);
            }
        }
        text.insert_str(0, "[...]\n");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_needs_an_executable_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("tool");
        std::fs::write(&f, "#!/bin/sh\n").unwrap();
        assert_eq!(which(f.to_str().unwrap()), None);
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(which(f.to_str().unwrap()), Some(f.clone()));
        assert!(which("sh").is_some());
        assert!(which("surely-no-such-program-fixci").is_none());
    }

    fn limits(ms: u64) -> Limits {
        Limits {
            budget: Duration::from_millis(ms),
            grace: Duration::from_millis(500),
        }
    }

    #[test]
    fn exit_code_and_output_are_captured() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("out.log");
        let spec = CommandSpec::shell("echo hello; echo oops >&2; exit 3", dir.path());
        let f = run(
            &spec,
            &OutputTo::Combined(log.clone()),
            limits(10_000),
            None,
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(f.termination, Termination::Exited { code: 3 });
        let text = std::fs::read_to_string(log).unwrap();
        assert!(text.contains("hello") && text.contains("oops"), "{text}");
    }

    #[test]
    fn budget_kills_the_whole_group_including_grandchildren() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("out.log");
        // The grandchild ignores SIGTERM, so SIGKILL is required.
        let spec = CommandSpec::shell("(trap '' TERM; sleep 1000) & sleep 1000", dir.path());
        let mut pgid = 0;
        let f = run(
            &spec,
            &OutputTo::Combined(log),
            limits(300),
            None,
            &mut |p| pgid = p,
        )
        .unwrap();
        assert!(
            matches!(f.termination, Termination::TimedOut { .. }),
            "{:?}",
            f.termination
        );
        assert!(!group_alive(pgid), "processes of group {pgid} survived");
    }

    #[test]
    fn leftovers_of_a_finished_leader_are_killed() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("out.log");
        let spec = CommandSpec::shell("sleep 1000 & exit 0", dir.path());
        let mut pgid = 0;
        let f = run(
            &spec,
            &OutputTo::Combined(log),
            limits(10_000),
            None,
            &mut |p| pgid = p,
        )
        .unwrap();
        assert!(f.termination.success());
        assert!(!group_alive(pgid));
    }

    #[test]
    fn missing_program_is_a_spawn_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = CommandSpec::shell("true", dir.path());
        spec.program = "definitely-not-a-program-fixci".into();
        let err = run(
            &spec,
            &OutputTo::Combined(dir.path().join("o")),
            limits(1000),
            None,
            &mut |_| {},
        )
        .unwrap_err();
        assert!(err.to_string().contains("definitely-not-a-program-fixci"));
    }

    #[test]
    fn cancel_stops_the_child() {
        let dir = tempfile::tempdir().unwrap();
        let flag = AtomicBool::new(true);
        let spec = CommandSpec::shell("sleep 1000", dir.path());
        let f = run(
            &spec,
            &OutputTo::Combined(dir.path().join("o")),
            limits(60_000),
            Some(&flag),
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(f.termination, Termination::Cancelled);
    }

    #[test]
    fn shell_quote_quotes_only_when_needed() {
        assert_eq!(shell_quote("abc/d.py"), "abc/d.py");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
