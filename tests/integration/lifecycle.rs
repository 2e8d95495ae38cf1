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
        "agent": {"command": ["sh", pause.clone(), "sh", agent]},
        // fixci runs the reproduction with the spec's template (never the agent's command), in
        // its sealed checkouts; the template goes through `pause.sh` so a test run can pause.
        "test-command": format!("sh {pause} python3 -m unittest tests.test_repro"),
        "budgets": {"reproduce": "60s", "fix": "60s"},
        // The agent's pause marker lives beside this test's files, which the bubblewrap sandbox
        // makes read-only; interruption is what is tested here, not containment.
        "sandbox": "none",
    });
    let p = root.join("info.json");
    std::fs::write(&p, serde_json::to_string_pretty(&spec).unwrap()).unwrap();
    p
}

/// The temporary folder (`TMPDIR`) of the runs in `e`, created empty if missing: fixci's sealed
/// checkouts go there.
fn tmp_dir(e: &TestEnv) -> PathBuf {
    let tmp = e.root.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    tmp
}

/// What is left in `tmp`: names of the entries (a sealed tree is a `.tmpXXXXXX` folder, one
/// being removed `.tmpXXXXXX.removing`).
fn left_in(tmp: &Path) -> Vec<String> {
    std::fs::read_dir(tmp)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn spawn(e: &TestEnv, spec: &Path, out: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_fixci"))
        .current_dir(&e.root)
        .env("FIXCI_CACHE_DIR", e.root.join("cache"))
        .env("TMPDIR", tmp_dir(e))
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
        .env("TMPDIR", tmp_dir(e))
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
    interrupt_remove_clone_then_resume(stage, how, false)
}

/// [`interrupt_then_resume`], removing the run's private clone before the resume when
/// `remove_clone` (the resume rebuilds it).
fn interrupt_remove_clone_then_resume(stage: &str, how: &str, remove_clone: bool) {
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
    // An interrupted run keeps its private clone for the resume, but no sealed checkout: not
    // the one a test ran in when the signal came, nor one still being removed or written in
    // the background (during verification, the base commit's).
    assert!(run.join("worktree/.git").is_dir());
    assert_eq!(left_in(&tmp_dir(&e)), Vec::<String>::new());
    if remove_clone {
        std::fs::remove_dir_all(run.join("worktree")).unwrap();
    }

    fixci_out(&e, &["resume", &id]).code(0);
    let r = result(&run);
    assert_eq!(r["status"], "success", "{r}");
    assert_eq!(left_in(&tmp_dir(&e)), Vec::<String>::new());
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
fn sigint_during_the_fix_agent_then_resume_without_the_private_clone_rebuilds_it() {
    interrupt_remove_clone_then_resume("fix", "sigint", true);
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

/// A folder with only the programs a scripted run needs (git, sh, python3), for a `PATH` that
/// has no agent CLI.
fn bare_path(root: &Path) -> PathBuf {
    let bin = root.join("bare-bin");
    std::fs::create_dir_all(&bin).unwrap();
    for p in ["git", "sh", "python3"] {
        let out = Command::new("sh")
            .args(["-c", &format!("command -v {p}")])
            .output()
            .unwrap();
        let found = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(!found.is_empty(), "{p} not found");
        std::os::unix::fs::symlink(found, bin.join(p)).unwrap();
    }
    bin
}

#[test]
fn a_missing_agent_cli_is_exit_3_with_its_install_hint_and_nothing_written() {
    let e = test_env();
    let spec = pausing_job(&e.root, &e.repo);
    let branches = git(&e.repo, &["branch", "--list"]);
    let worktrees = git(&e.repo, &["worktree", "list"]);
    let path = bare_path(&e.root);
    let out = fixci()
        .current_dir(&e.root)
        .env("PATH", &path)
        .env("FIXCI_CACHE_DIR", e.root.join("cache"))
        .args(["run", spec.to_str().unwrap(), "--agent", "claude", "--out"])
        .arg(&e.out)
        .assert()
        .code(3)
        .get_output()
        .clone();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`claude`"), "{err}");
    assert!(err.contains("npm install -g @anthropic-ai/claude-code"), "{err}");
    assert!(!e.out.exists(), "a run directory was written");
    assert_eq!(git(&e.repo, &["branch", "--list"]), branches);
    assert_eq!(git(&e.repo, &["worktree", "list"]), worktrees);

    // A ladder attempt's agent is checked too, before anything is written.
    let pipe = e.root.join("ladder.toml");
    let builtin = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/deterministic.toml"),
    )
    .unwrap();
    std::fs::write(
        &pipe,
        builtin.replace(
            "max = \"spec.max_attempts or 3\"",
            "max = 2\nagent = \"{{ '' if attempt.number == 1 else 'codex' }}\"",
        ),
    )
    .unwrap();
    let out = fixci()
        .current_dir(&e.root)
        .env("PATH", &path)
        .env("FIXCI_CACHE_DIR", e.root.join("cache"))
        .args(["run", spec.to_str().unwrap(), "--pipeline"])
        .arg(&pipe)
        .arg("--out")
        .arg(&e.out)
        .assert()
        .get_output()
        .clone();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("codex") && err.contains("attempt 2"), "{err}");
    assert!(!e.out.exists(), "a run directory was written");
}

#[test]
fn validate_runs_the_repository_checks_of_a_dry_run() {
    let e = test_env();
    let spec = pausing_job(&e.root, &e.repo);
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&spec).unwrap()).unwrap();
    let write = |name: &str, v: &Value| {
        let p = e.root.join(name);
        std::fs::write(&p, v.to_string()).unwrap();
        p
    };
    let ok = write("ok.json", &v);
    fixci().arg("validate").arg(&ok).assert().code(0);

    v.as_object_mut().unwrap().remove("budgets");
    v["existing-test-path"] = json!("tests/test_missing.py");
    let missing = write("missing.json", &v);
    for args in [vec!["validate", missing.to_str().unwrap()], vec!["run", missing.to_str().unwrap(), "--dry-run"]] {
        let out = fixci().current_dir(&e.root).args(&args).assert().code(2).get_output().clone();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("/existing-test-path") && err.contains("tests/test_missing.py"), "{args:?}: {err}");
    }
    v["existing-test-path"] = json!("tests/test_stats.py");
    v["url"] = json!("https://github.com/o/r/actions/runs/1");
    v.as_object_mut().unwrap().remove("raw-logs");
    fixci().arg("validate").arg(write("existing-with-url.json", &v)).assert().code(0);

    v.as_object_mut().unwrap().remove("url");
    v["pipeline"] = json!("no-such-pipeline");
    let unknown = write("unknown.json", &v);
    let out = fixci().arg("validate").arg(&unknown).assert().code(2).get_output().clone();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no-such-pipeline"), "{err}");

    // A repository not reachable without cloning: the checks that need it are named as not run.
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&ok).unwrap()).unwrap();
    v["repo"] = json!("https://github.com/fixci-test/not-cloned.git");
    let out = fixci()
        .current_dir(&e.root)
        .env("FIXCI_CACHE_DIR", e.root.join("cache"))
        .arg("validate")
        .arg(write("remote.json", &v))
        .assert()
        .code(0)
        .get_output()
        .clone();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not checked") && err.contains("existing-test-path"), "{err}");
}

#[test]
fn doctor_checks_a_token_only_for_a_spec_that_uses_github() {
    let e = test_env();
    let spec = pausing_job(&e.root, &e.repo);
    let doctor = || {
        let out = fixci()
            .current_dir(&e.root)
            .env_remove("GITHUB_TOKEN")
            .env_remove("GH_TOKEN")
            .arg("doctor")
            .arg(&spec)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let out = doctor();
    assert!(out.contains("runner sh"), "{out}");
    assert!(!out.contains("GitHub token"), "{out}");
    // The same spec, its repository now on GitHub: the PR stage would use a token.
    git(&e.repo, &["remote", "add", "origin", "https://github.com/o/r.git"]);
    let out = doctor();
    assert!(out.contains("GitHub token"), "{out}");
}
