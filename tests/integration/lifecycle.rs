//! A run's life cycle: interrupted (SIGINT or `fixci kill`) at any stage, it exits 130, says
//! where it stopped, and `fixci resume` reaches the outcome of an uninterrupted run; run ids of
//! runs started together never collide; pre-flight refuses a plan it cannot carry out before
//! anything is written.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::*;

/// Wraps a program: when the marker `pause-<stage>` exists in `root`, removes it, writes
/// `paused`, and sleeps (until fixci stops it); then runs the program. The stage is
/// `FIXCI_STAGE` for an agent, and for the reproduction test `confirm` before the fix and
/// `verify` after it.
const PAUSE_SH: &str = r#"#!/bin/sh
root="$(dirname "$0")"
stage="$FIXCI_STAGE"
if [ -z "$stage" ]; then
  if grep -q 'len(xs) - 1' mathlib/stats.py; then stage=confirm; else stage=verify; fi
fi
if [ -f "$root/pause-$stage" ]; then
  rm -f "$root/pause-$stage"
  : > "$root/paused"
  sleep 60
fi
exec "$@"
"#;

/// Agent (via `pause.sh`) that writes the reproduction with a test command that goes through
/// `pause.sh` too, and fixes the bug.
const AGENT_SH: &str = r#"#!/bin/sh
root="$(dirname "$0")"
case "$FIXCI_STAGE" in
reproduce)
  printf 'import unittest\nfrom mathlib.stats import mean\n\n\nclass Repro(unittest.TestCase):\n    def test_mean(self):\n        self.assertEqual(mean([1, 2, 3]), 2)\n' > tests/test_repro.py
  printf '{"test_file": "tests/test_repro.py", "command": "sh %s/pause.sh python3 -m unittest tests.test_repro"}' "$root" > "$FIXCI_STAGE_DIR/repro.json"
  ;;
fix)
  sed -i 's/(len(xs) - 1)/len(xs)/' mathlib/stats.py
  echo 'mean divided by len - 1.' > "$FIXCI_STAGE_DIR/root-cause.md"
  ;;
esac
"#;

/// A job spec in `root` whose agent and tests pause at a stage when told to.
fn pausing_job(root: &Path, repo: &Path) -> PathBuf {
    std::fs::write(root.join("pause.sh"), PAUSE_SH).unwrap();
    std::fs::write(root.join("agent.sh"), AGENT_SH).unwrap();
    let pause = root.join("pause.sh").display().to_string();
    let agent = root.join("agent.sh").display().to_string();
    let spec = json!({
        "deterministic": true,
        "prompt": "test_mean fails in CI. Fix it.",
        "raw-logs": CI_LOG,
        "repo": repo.display().to_string(),
        "agent": {"command": ["sh", pause, "sh", agent]},
        "budgets": {"reproduce": "60s", "fix": "60s"},
    });
    let p = root.join("info.json");
    std::fs::write(&p, serde_json::to_string_pretty(&spec).unwrap()).unwrap();
    p
}

fn spawn(e: &TestEnv, spec: &Path, out: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_fixci"))
        .current_dir(&e.root)
        .env("FIXCI_CACHE_DIR", e.root.join("cache"))
        .env_remove("GITHUB_TOKEN")
        .args(["run", spec.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn fixci_out(e: &TestEnv, args: &[&str]) -> assert_cmd::assert::Assert {
    fixci()
        .current_dir(&e.root)
        .env("FIXCI_CACHE_DIR", e.root.join("cache"))
        .env_remove("GITHUB_TOKEN")
        .args(args)
        .arg("--out")
        .arg(&e.out)
        .assert()
}

fn wait_paused(e: &TestEnv, child: &mut Child) {
    let until = Instant::now() + Duration::from_secs(120);
    while !e.root.join("paused").exists() {
        if let Some(st) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            panic!("fixci ended ({st}) before the stage paused:\n{err}");
        }
        assert!(Instant::now() < until, "the stage never paused");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stage_starts(run: &Path, stage: &str) -> usize {
    std::fs::read_to_string(run.join("events.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["event"] == "stage_started" && e["stage"] == stage)
        .count()
}

/// Stops a run paused at `stage` with `how` (`sigint` or `kill`), checks the interrupted run,
/// resumes it and checks it ends as an uninterrupted run does.
fn interrupt_then_resume(stage: &str, how: &str) {
    let e = test_env();
    let spec = pausing_job(&e.root, &e.repo);
    std::fs::write(e.root.join(format!("pause-{stage}")), "").unwrap();
    let mut child = spawn(&e, &spec, &e.out);
    wait_paused(&e, &mut child);
    let run = run_dir(&e.out);
    let id = run.file_name().unwrap().to_str().unwrap().to_string();
    match how {
        "sigint" => unsafe {
            libc::kill(child.id() as i32, libc::SIGINT);
        },
        _ => {
            fixci_out(&e, &["kill", &id]).code(0);
        }
    }
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("fixci resume"), "{err}");
    let r = result(&run);
    assert_eq!(r["status"], "interrupted", "{r}");
    assert_eq!(r["reason"], format!("interrupted at {stage}"), "{r}");
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(report.contains(&format!("interrupted at {stage}")), "{report}");
    assert!(!report.contains("longer `reproduce` budget"), "{report}");

    fixci_out(&e, &["resume", &id]).code(0);
    let r = result(&run);
    assert_eq!(r["status"], "success", "{r}");
    // The interrupted stage ran again; the stages before it did not.
    assert_eq!(stage_starts(&run, stage), 2, "{stage} was not redone");
    if stage != "reproduce" {
        assert_eq!(stage_starts(&run, "reproduce"), 1);
    }
    // The same fix as an uninterrupted run: on the fix branch, one commit, the bug gone.
    let branch = r["branch"].as_str().unwrap();
    let stats = git(&e.repo, &["show", &format!("{branch}:mathlib/stats.py")]);
    assert!(stats.contains("sum(xs) / len(xs)"), "{stats}");
    assert_eq!(
        git(&e.repo, &["rev-list", "--count", &format!("main..{branch}")]).trim(),
        "1"
    );
}

#[test]
fn sigint_during_the_reproduce_agent_then_resume_succeeds() {
    interrupt_then_resume("reproduce", "sigint");
}

#[test]
fn sigint_during_the_confirm_runs_then_resume_succeeds() {
    interrupt_then_resume("confirm", "sigint");
}

#[test]
fn sigint_during_verification_then_resume_succeeds() {
    interrupt_then_resume("verify", "sigint");
}

#[test]
fn fixci_kill_during_reproduce_then_resume_succeeds() {
    interrupt_then_resume("reproduce", "kill");
}

#[test]
fn fixci_kill_during_the_fix_agent_then_resume_succeeds() {
    interrupt_then_resume("fix", "kill");
}

#[test]
fn two_runs_of_one_spec_started_together_with_different_out_both_complete() {
    let e = test_env();
    let spec = pausing_job(&e.root, &e.repo);
    let outs = [e.root.join("out-a"), e.root.join("out-b")];
    let children: Vec<Child> = outs.iter().map(|o| spawn(&e, &spec, o)).collect();
    let mut ids = Vec::new();
    for (mut c, o) in children.into_iter().zip(&outs) {
        let st = c.wait().unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(&mut c.stderr.take().unwrap(), &mut err).unwrap();
        assert_eq!(st.code(), Some(0), "{err}");
        let run = run_dir(o);
        assert_eq!(result(&run)["status"], "success");
        ids.push(run.file_name().unwrap().to_str().unwrap().to_string());
    }
    assert_ne!(ids[0], ids[1]);
}
