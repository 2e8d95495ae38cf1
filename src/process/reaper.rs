//! No survivors: fixci makes itself a child subreaper (`prctl(PR_SET_CHILD_SUBREAPER)`, see
//! `man 2 prctl`), so a process an agent detaches with `setsid` or a double fork is re-parented
//! to fixci instead of `init` and stays fixci's descendant. [`reap_descendants`] then kills every
//! descendant fixci did not expect (after each agent invocation, before every verification and
//! before the verdict is written) and names them, so the run can record them.
//!
//! "Expected" are the children [`super::run`] is running right now in other threads (their
//! process groups are tracked) and everything below them, and, while more than one run shares this process (`fixci replay
//! -j N`), fixci's own short-lived helpers (direct children in fixci's process group, such as
//! `git`). The reaper is armed only by the `fixci` binary ([`become_subreaper`]); a library
//! caller (and the unit tests, which share one process) never has its children killed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static ARMED: AtomicBool = AtomicBool::new(false);
static ACTIVE_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Held by [`super::run`] from spawn until the child's group is tracked, and by the reaper while
/// it scans and kills, so a child being started is never taken for a survivor.
pub(crate) static SPAWN_LOCK: Mutex<()> = Mutex::new(());

/// A process fixci did not expect, found among its descendants and killed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Survivor {
    /// Its process id (in fixci's PID namespace; for a survivor found inside a sandbox, in the
    /// sandbox's own).
    pub pid: u32,
    /// Its command line, arguments joined by spaces (at most 200 characters); `[comm]` when the
    /// command line was already gone.
    pub cmdline: String,
}

/// Makes this process a child subreaper and arms [`reap_descendants`]. Called once by the
/// `fixci` binary at start-up. Returns false (and leaves the reaper disarmed) when the kernel
/// refuses, which only happens on kernels older than 3.4.
pub fn become_subreaper() -> bool {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes one integer argument and touches no memory.
    let ok = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } == 0;
    ARMED.store(ok, Ordering::SeqCst);
    ok
}

/// True once [`become_subreaper`] succeeded in this process.
pub fn armed() -> bool {
    ARMED.load(Ordering::SeqCst)
}

/// Marks one engine run as active for as long as the guard lives; with more than one active,
/// the reaper spares fixci's own helpers (direct children in its process group).
pub struct ActiveRun(());

impl ActiveRun {
    /// Counts a run in.
    pub fn enter() -> Self {
        ACTIVE_RUNS.fetch_add(1, Ordering::SeqCst);
        ActiveRun(())
    }
}

impl Drop for ActiveRun {
    fn drop(&mut self) {
        ACTIVE_RUNS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One row of `/proc/PID/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcStat {
    pub pid: u32,
    pub ppid: u32,
    pub pgid: u32,
    /// The state letter (`R`, `S`, `Z`, ...).
    pub state: char,
}

/// Parses `/proc/PID/stat` (format: `man 5 proc`; the command name in parentheses may contain
/// spaces and parentheses, so fields are read after the last `)`).
pub(crate) fn parse_stat(text: &str) -> Option<ProcStat> {
    let (head, rest) = text.rsplit_once(')')?;
    let pid = head.split_once(' ')?.0.trim().parse().ok()?;
    let mut f = rest.split_whitespace();
    let state = f.next()?.chars().next()?;
    let ppid = f.next()?.parse().ok()?;
    let pgid = f.next()?.parse().ok()?;
    Some(ProcStat { pid, ppid, pgid, state })
}

fn all_processes() -> Vec<ProcStat> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|s| parse_stat(&s))
        .collect()
}

/// The descendants of `root` in `table`, leaving out the processes `spared` accepts and their
/// whole subtrees.
pub(crate) fn descendants_pruned(
    root: u32,
    table: &[ProcStat],
    spared: &dyn Fn(&ProcStat) -> bool,
) -> Vec<ProcStat> {
    let mut children: BTreeMap<u32, Vec<&ProcStat>> = BTreeMap::new();
    for p in table {
        children.entry(p.ppid).or_default().push(p);
    }
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    let mut stack = vec![root];
    while let Some(pid) = stack.pop() {
        for c in children.get(&pid).into_iter().flatten() {
            if c.pid != root && !spared(c) && seen.insert(c.pid) {
                out.push(**c);
                stack.push(c.pid);
            }
        }
    }
    out
}

/// The command line of `pid`, arguments joined by spaces, at most 200 characters.
pub fn cmdline(pid: u32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let mut s: String = String::from_utf8_lossy(&raw)
        .split('\0')
        .filter(|a| !a.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if s.is_empty() {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        s = format!("[{}]", comm.trim());
    }
    if s.chars().count() > 200 {
        s = format!("{}…", s.chars().take(199).collect::<String>());
    }
    s
}

/// Kills (SIGKILL) every descendant of fixci it did not expect and waits until they are gone
/// (at most about 2 s), reaping those that became its own zombies. Returns the processes it
/// killed, in the order found; empty when nothing survived or the reaper is not armed.
///
/// Expected, and left alone: processes in a process group [`super::run`] is running now, and
/// direct children of fixci in its own process group (its `git` and `gh` helpers, of this run or
/// of another run or replay worker in the same process). An agent cannot pass for one: every
/// child fixci starts through [`super::run`] gets a session of its own, and a process cannot
/// join a process group of another session.
pub fn reap_descendants() -> Vec<Survivor> {
    if !armed() {
        return Vec::new();
    }
    let _lock = SPAWN_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: getpid/getpgrp have no preconditions.
    let (me, my_pgid) = unsafe { (libc::getpid() as u32, libc::getpgrp() as u32) };
    let live = super::live_groups();
    let expected =
        |p: &ProcStat| live.contains(&p.pgid) || (p.ppid == me && p.pgid == my_pgid);
    let mut found: Vec<Survivor> = Vec::new();
    let mut named = BTreeSet::new();
    let until = Instant::now() + Duration::from_secs(2);
    loop {
        let table = all_processes();
        // An expected process's own descendants are expected too (another run's test and what
        // it started, a `git` helper's children).
        let targets = descendants_pruned(me, &table, &expected);
        let mut running = 0;
        for p in &targets {
            if p.state == 'Z' || p.state == 'X' {
                // A zombie of ours that no `Child` owns: a re-parented orphan.
                if p.ppid == me && p.pgid != my_pgid {
                    reap(p.pid);
                }
                continue;
            }
            running += 1;
            if named.insert(p.pid) {
                found.push(Survivor { pid: p.pid, cmdline: cmdline(p.pid) });
            }
            // SAFETY: kill has no memory-safety preconditions.
            unsafe {
                libc::kill(p.pid as libc::pid_t, libc::SIGKILL);
            }
        }
        if running == 0 || Instant::now() >= until {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    found
}

/// Reaps zombie `pid` if it is our child; never blocks.
fn reap(pid: u32) {
    let mut status = 0;
    // SAFETY: waitpid writes only into `status`.
    unsafe {
        libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_odd_command_names_parse() {
        let p = parse_stat("4242 (a (b) c) S 17 4242 4242 0 -1 4194560 0").unwrap();
        assert_eq!(p, ProcStat { pid: 4242, ppid: 17, pgid: 4242, state: 'S' });
        assert!(parse_stat("garbage").is_none());
    }

    #[test]
    fn descendants_follow_the_parent_chain_only() {
        let row = |pid, ppid| ProcStat { pid, ppid, pgid: pid, state: 'S' };
        let table = [row(1, 0), row(10, 1), row(11, 10), row(12, 11), row(20, 1), row(13, 10)];
        let mut d: Vec<u32> = descendants_pruned(10, &table, &|_| false).iter().map(|p| p.pid).collect();
        d.sort();
        assert_eq!(d, vec![11, 12, 13]);
        let spared = |p: &ProcStat| p.pid == 11;
        let d: Vec<u32> = descendants_pruned(10, &table, &spared).iter().map(|p| p.pid).collect();
        assert_eq!(d, vec![13], "11 and its child 12 are spared");
    }

    #[test]
    fn an_unarmed_reaper_kills_nothing() {
        // Unit tests share one process and never call `become_subreaper`.
        assert!(!armed());
        assert!(reap_descendants().is_empty());
    }

    #[test]
    fn own_command_line_is_readable() {
        let me = std::process::id();
        assert!(!cmdline(me).is_empty());
    }
}
