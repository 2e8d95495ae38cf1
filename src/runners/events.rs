//! A second, live account of a Python test run, so that the code under test cannot forge its
//! outcome by rewriting the JUnit report or the exit status (an `atexit` hook that rewrites the
//! XML and calls `os._exit(0)`).
//!
//! fixci's helper ([`super::command::PY_RUNNER`]) opens a FIFO that fixci created in its private
//! scratch folder, unlinks it (so nothing else can open it by path) before any test code is
//! imported, and writes one JSON line per test report as pytest (or unittest) makes it:
//! `{"id": "tests/test_x.py::test_a", "when": "call", "outcome": "failed"}`, and last
//! `{"exit": N}`, the status it is about to exit with. A pipe keeps what was written: code that
//! runs later can add lines but not take back a failure, so per test the WORST outcome of all
//! its lines counts. [`cross_check`] then compares this account with the JUnit report and the
//! process's exit status; any disagreement is named as tampering and the run fails.
//!
//! Limits: code under test runs in the same process as the runner, so a deliberate attack on
//! the helper itself (patching pytest's report objects at import, reading fixci's records back
//! out of the pipe through `/proc/self/fd`) is not excluded; it is made to require knowing and
//! targeting fixci's helper, and every simpler forgery is caught.

use std::io::{Read, Write};
use std::path::Path;

use serde::Deserialize;

use super::outcome::{Case, CaseOutcome, normalise_id};

/// Listens on the FIFO at `path` while a run goes on (see the module docs).
pub struct Listener {
    /// The reader's own descriptor, cloned: the end mark is written through it.
    writer: std::fs::File,
    nonce: String,
    thread: Option<std::thread::JoinHandle<Vec<u8>>>,
}

/// Creates the FIFO at `path` (mode 0600).
///
/// Errors: `mkfifo(3)` failed.
pub fn make_fifo(path: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let _ = std::fs::remove_file(path);
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: `c` is a valid NUL-terminated path; mkfifo touches no memory of ours.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

impl Listener {
    /// Starts reading the FIFO at `path` (created by [`make_fifo`]) in a thread. The read end is
    /// opened read-write, so it never blocks and never sees end-of-file before
    /// [`Listener::finish`].
    pub fn start(path: &Path) -> std::io::Result<Listener> {
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        let writer = f.try_clone()?;
        let mut raw = [0u8; 16];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut raw)?;
        let nonce: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let end = format!("{{\"fixci-end\":\"{nonce}\"}}\n").into_bytes();
        let thread = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 8192];
            loop {
                match f.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
                if let Some(at) = memchr::memmem::find(&buf, &end) {
                    buf.truncate(at);
                    break;
                }
            }
            buf
        });
        Ok(Listener {
            writer,
            nonce,
            thread: Some(thread),
        })
    }

    /// After the run: writes the end mark (with a nonce the run never saw) and returns every
    /// byte the run wrote before it.
    pub fn finish(mut self) -> Vec<u8> {
        self.close()
    }

    fn close(&mut self) -> Vec<u8> {
        let Some(t) = self.thread.take() else {
            return Vec::new();
        };
        let mark = format!("{{\"fixci-end\":\"{}\"}}\n", self.nonce);
        let _ = self.writer.write_all(mark.as_bytes());
        t.join().unwrap_or_default()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

#[derive(Deserialize)]
struct Line {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    when: Option<String>,
    #[serde(default)]
    outcome: Option<String>,
    #[serde(default)]
    exit: Option<i64>,
}

/// The run as the helper saw it: per test (normalised id) its worst outcome, in first-seen
/// order, and the exit status it announced (`None`: it never got to announce one).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Account {
    /// `(normalised id, outcome)`.
    pub tests: Vec<(String, CaseOutcome)>,
    /// The status the helper was about to exit with.
    pub exit: Option<i64>,
}

fn rank(o: CaseOutcome) -> u8 {
    match o {
        CaseOutcome::Passed => 0,
        CaseOutcome::Skipped => 1,
        CaseOutcome::Failed => 2,
        CaseOutcome::Error => 3,
    }
}

/// A test id in the form both accounts are compared in: [`normalise_id`], and a module's own
/// id (a collection error) without its `.py`.
fn key(id: &str) -> String {
    let n = normalise_id(id);
    n.strip_suffix(".py").map(str::to_string).unwrap_or(n)
}

/// Reads the helper's lines (malformed lines are ignored). A phase's outcome maps as JUnit
/// does: a failed `call` is a failure, a failed `setup`/`teardown` an error, `skipped` (xfail
/// too) skipped, `rerun` (a retry plugin) a failure. The first `exit` line counts.
pub fn parse(bytes: &[u8]) -> Account {
    let mut a = Account::default();
    for line in bytes.split(|b| *b == b'\n') {
        let Ok(l) = serde_json::from_slice::<Line>(line) else {
            continue;
        };
        if let Some(x) = l.exit {
            a.exit.get_or_insert(x);
            continue;
        }
        let (Some(id), Some(outcome)) = (l.id, l.outcome) else {
            continue;
        };
        let o = match (outcome.as_str(), l.when.as_deref()) {
            ("passed", _) => CaseOutcome::Passed,
            ("skipped", _) => CaseOutcome::Skipped,
            ("failed" | "rerun", Some("setup" | "teardown" | "collect")) => CaseOutcome::Error,
            ("error", _) => CaseOutcome::Error,
            _ => CaseOutcome::Failed,
        };
        let id = key(&id);
        match a.tests.iter_mut().find(|(i, _)| *i == id) {
            Some((_, prev)) if rank(o) > rank(*prev) => *prev = o,
            Some(_) => {}
            None => a.tests.push((id, o)),
        }
    }
    a
}

/// Compares the helper's account with the JUnit cases and the process's exit `status`
/// (`None`: killed by a signal or timed out). Returns why they disagree (tampering), or `None`.
pub fn cross_check(a: &Account, cases: &[Case], status: Option<i32>) -> Option<String> {
    let Some(exit) = a.exit else {
        return Some(
            "the test process ended before fixci's runner could finish (`os._exit` or a crash in the code under test); its report is not trusted"
                .into(),
        );
    };
    if let Some(s) = status {
        if i64::from(s) != exit {
            return Some(format!(
                "tampering: the test runner finished with status {exit}, but the process exited with {s} (code under test changed the exit status)"
            ));
        }
    }
    for (id, o) in &a.tests {
        let in_report: Vec<&Case> = cases.iter().filter(|c| key(&c.id()) == *id).collect();
        if in_report.is_empty() {
            return Some(format!(
                "tampering: test `{id}` ran ({}) but the JUnit report does not list it",
                o.as_str()
            ));
        }
        if let Some(c) = in_report.iter().find(|c| c.outcome != *o) {
            return Some(format!(
                "tampering: the JUnit report says test `{id}` {}, but fixci's runner saw it {}",
                c.outcome.as_str(),
                o.as_str()
            ));
        }
    }
    if let Some(c) = cases
        .iter()
        .find(|c| !a.tests.iter().any(|(id, _)| *id == key(&c.id())))
    {
        return Some(format!(
            "tampering: the JUnit report lists test `{}`, which fixci's runner never saw run",
            c.id()
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(id: &str, o: CaseOutcome) -> Case {
        let (c, n) = id.rsplit_once('.').unwrap();
        Case {
            classname: c.into(),
            name: n.into(),
            file: None,
            line: None,
            outcome: o,
            message: None,
            text: String::new(),
            report_line: 0,
            failure_line: 0,
        }
    }

    #[test]
    fn a_later_line_cannot_take_back_a_failure_and_the_report_must_agree() {
        let lines = br#"{"id":"tests/test_x.py::test_a","when":"setup","outcome":"passed"}
{"id":"tests/test_x.py::test_a","when":"call","outcome":"failed"}
{"id":"tests/test_x.py::test_a","when":"call","outcome":"passed"}
not json
{"exit":1}
{"exit":0}"#;
        let a = parse(lines);
        assert_eq!(
            a.tests,
            vec![("tests.test_x.test_a".to_string(), CaseOutcome::Failed)]
        );
        assert_eq!(a.exit, Some(1));
        assert_eq!(
            cross_check(
                &a,
                &[case("tests.test_x.test_a", CaseOutcome::Failed)],
                Some(1)
            ),
            None
        );
        // The XML rewritten to passed.
        let why = cross_check(
            &a,
            &[case("tests.test_x.test_a", CaseOutcome::Passed)],
            Some(1),
        )
        .unwrap();
        assert!(
            why.contains("says test `tests.test_x.test_a` passed"),
            "{why}"
        );
        // The exit status forced to 0.
        let why = cross_check(
            &a,
            &[case("tests.test_x.test_a", CaseOutcome::Failed)],
            Some(0),
        )
        .unwrap();
        assert!(why.contains("exited with 0"), "{why}");
        // A case the runner never saw, or none of its lines at all.
        assert!(
            cross_check(
                &a,
                &[
                    case("tests.test_x.test_a", CaseOutcome::Failed),
                    case("tests.test_x.test_b", CaseOutcome::Passed)
                ],
                Some(1)
            )
            .unwrap()
            .contains("never saw run")
        );
        assert!(cross_check(&parse(b""), &[], Some(0)).is_some());
        // Set-up failures are errors, retries failures.
        let a = parse(
            br#"{"id":"t.py::a","when":"setup","outcome":"failed"}
{"id":"t.py::b","when":"call","outcome":"rerun"}
{"id":"t.py::b","when":"call","outcome":"passed"}"#,
        );
        assert_eq!(
            a.tests,
            vec![
                ("t.a".to_string(), CaseOutcome::Error),
                ("t.b".to_string(), CaseOutcome::Failed)
            ]
        );
    }

    #[test]
    fn the_listener_collects_what_a_writer_sends_until_the_end_mark() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("events");
        make_fifo(&fifo).unwrap();
        let l = Listener::start(&fifo).unwrap();
        {
            let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
            std::fs::remove_file(&fifo).unwrap();
            w.write_all(b"{\"exit\":0}\n").unwrap();
        }
        assert_eq!(l.finish(), b"{\"exit\":0}\n");
    }
}
