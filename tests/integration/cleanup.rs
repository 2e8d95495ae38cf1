//! Clean-up by outcome and the user-repository fingerprint: a run without a fix leaves the
//! user's repository's branches and worktrees as they were; a run with one adds exactly its
//! branch; the private clone goes unless `--keep-worktree`; an agent without a sandbox that
//! changes any kind of ref or git file of the user's repository ends the run `failed`, naming
//! it; a signal before the run directory exists leaves nothing.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::*;

/// Branches and registered worktrees of `repo`.
fn branches_and_worktrees(repo: &Path) -> (String, String) {
    (
        git(repo, &["for-each-ref", "--format=%(refname) %(objectname)", "refs/heads"]),
        git(repo, &["worktree", "list", "--porcelain"]),
    )
}

fn run_fixci(e: &TestEnv, spec: &Path, extra: &[&str]) -> std::process::Output {
    fixci()
        .current_dir(&e.root)
        .env("FIXCI_CACHE_DIR", e.root.join("cache"))
        .env_remove("GITHUB_TOKEN")
        .args(["run", spec.to_str().unwrap(), "--out", e.out.to_str().unwrap(), "--no-pr"])
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn a_run_that_could_not_reproduce_leaves_the_repository_as_it_was_and_removes_its_clone() {
    let e = test_env();
    let before = branches_and_worktrees(&e.repo);
    let spec = scripted_job(&e.root, &e.repo, "no-repro", json!({}));
    let out = run_fixci(&e, &spec, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let run = run_dir(&e.out);
    let r = result(&run);
    assert_eq!(r["status"], "failed", "{r}");
    assert_eq!(branches_and_worktrees(&e.repo), before);
    assert!(r["branch"].is_null(), "no branch exists: {r}");
    assert!(!run.join("worktree").exists(), "the private clone is removed");
    // What happened stays readable.
    assert!(run.join("stages/reproduce/agent.stdout.log").exists());
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(report.contains("- **Branch:** none in your repository"), "{report}");
    assert!(report.contains("- **Worktree:** removed"), "{report}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("fixci/"), "no branch is printed: {stdout}");
}

#[test]
fn a_run_with_a_fix_adds_exactly_its_branch_and_no_worktree() {
    let e = test_env();
    let (heads_before, worktrees_before) = branches_and_worktrees(&e.repo);
    let spec = scripted_job(&e.root, &e.repo, "good", json!({}));
    let out = run_fixci(&e, &spec, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let run = run_dir(&e.out);
    let r = result(&run);
    let branch = r["branch"].as_str().unwrap();
    let (heads, worktrees) = branches_and_worktrees(&e.repo);
    assert_eq!(worktrees, worktrees_before);
    let added: Vec<&str> = heads.lines().filter(|l| !heads_before.lines().any(|b| b == *l)).collect();
    assert_eq!(added.len(), 1, "{heads}");
    assert!(added[0].starts_with(&format!("refs/heads/{branch} {}", r["commit"].as_str().unwrap())));
    assert!(!run.join("worktree").exists(), "the private clone is removed");
    // The fix is still readable from the user's repository: `fixci apply` checks it there.
    let other = tempfile::tempdir().unwrap();
    git(other.path(), &["clone", "-q", e.repo.to_str().unwrap(), "c"]);
    let clone = other.path().join("c");
    fixci()
        .current_dir(&clone)
        .args(["apply", run.file_name().unwrap().to_str().unwrap(), "--out", e.out.to_str().unwrap()])
        .assert()
        .code(0);
}

#[test]
fn keep_worktree_keeps_the_private_clone_and_the_report_says_where() {
    let e = test_env();
    let spec = scripted_job(&e.root, &e.repo, "no-repro", json!({}));
    let out = run_fixci(&e, &spec, &["--keep-worktree"]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let run = run_dir(&e.out);
    assert!(run.join("worktree/.git").is_dir(), "the clone is kept");
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    let kept = format!("- **Worktree:** kept at `{}`", run.join("worktree").display());
    assert!(report.contains(&kept), "{report}");
    // The spec key does the same.
    let e = test_env();
    let spec = scripted_job(&e.root, &e.repo, "no-repro", json!({"keep-worktree": true}));
    run_fixci(&e, &spec, &[]);
    assert!(run_dir(&e.out).join("worktree/.git").is_dir());
}

#[test]
fn keep_worktree_must_be_a_boolean() {
    let e = test_env();
    let spec = scripted_job(&e.root, &e.repo, "good", json!({"keep-worktree": "yes"}));
    let out = fixci().args(["validate", spec.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("keep-worktree"));
}

/// An agent (no sandbox) that runs `CHANGE` in the user's repository during reproduce, then
/// writes a good reproduction.
const CHANGING_AGENT: &str = r#"#!/bin/sh
if [ "$FIXCI_STAGE" = reproduce ]; then
  (cd "$USER_REPO" && sh -c "$CHANGE") >/dev/null 2>&1
  printf 'import unittest\nfrom mathlib.stats import mean\n\n\nclass Repro(unittest.TestCase):\n    def test_mean(self):\n        self.assertEqual(mean([1, 2, 3]), 2)\n' > tests/test_repro.py
  printf '{"test_file": "tests/test_repro.py", "command": "python3 -m unittest tests.test_repro"}' > "$FIXCI_STAGE_DIR/repro.json"
fi
"#;

/// Runs a job whose agent makes `change` in the user's repository without a sandbox; asserts
/// the run ends `failed` naming `named`.
fn change_is_caught(change: &str, named: &str) {
    let e = test_env();
    // An ignore rule and an ignored file, as a real checkout has.
    std::fs::write(e.repo.join(".gitignore"), "*.log\nbuild/\n").unwrap();
    git(&e.repo, &["add", ".gitignore"]);
    git(&e.repo, &["-c", "user.name=U", "-c", "user.email=u@example.com", "commit", "-qm", "ignore"]);
    std::fs::write(e.repo.join("old.log"), "one\n").unwrap();
    std::fs::create_dir_all(e.repo.join("build")).unwrap();
    std::fs::write(e.repo.join("build/out.bin"), "bin").unwrap();
    git(&e.repo, &["update-ref", "refs/remotes/origin/main", "HEAD"]);
    std::fs::write(e.root.join("agent.sh"), CHANGING_AGENT).unwrap();
    let spec = json!({
        "deterministic": true,
        "prompt": "test_mean fails in CI. Fix it.",
        "raw-logs": CI_LOG,
        "repo": e.repo.display().to_string(),
        "agent": {"command": ["sh", e.root.join("agent.sh").display().to_string()], "env": {"USER_REPO": e.repo.display().to_string(), "CHANGE": change}},
        "sandbox": "none",
    });
    let p = e.root.join("info.json");
    std::fs::write(&p, serde_json::to_string_pretty(&spec).unwrap()).unwrap();
    let out = run_fixci(&e, &p, &[]);
    let run = run_dir(&e.out);
    let r = result(&run);
    assert_eq!(r["status"], "failed", "{change}: {r}\n{}", String::from_utf8_lossy(&out.stderr));
    let reason = r["reason"].as_str().unwrap();
    assert!(reason.starts_with("the agent changed your repository: "), "{change}: {reason}");
    assert!(reason.contains(named), "{change}: {named} not in {reason}");
}

#[test]
fn without_a_sandbox_a_moved_remote_tracking_ref_is_caught() {
    change_is_caught("git update-ref refs/remotes/origin/main HEAD~1", "refs/remotes/origin/main");
}

#[test]
fn without_a_sandbox_a_new_fixci_branch_is_caught() {
    change_is_caught("git branch fixci/planted", "refs/heads/fixci/planted");
}

#[test]
fn without_a_sandbox_packed_refs_are_caught() {
    change_is_caught("git pack-refs --all", ".git/packed-refs");
}

#[test]
fn without_a_sandbox_a_new_or_changed_ignored_file_is_caught() {
    change_is_caught("echo more >> old.log; echo x > build/new.bin", "build, old.log");
}

#[test]
fn without_a_sandbox_info_attributes_head_and_hooks_are_caught() {
    change_is_caught(
        "echo '* filter=evil' > .git/info/attributes; git symbolic-ref HEAD refs/heads/elsewhere; printf '#!/bin/sh\\n' > .git/hooks/pre-commit",
        ".git/hooks/pre-commit, .git/info/attributes",
    );
}

#[test]
fn without_a_sandbox_the_index_and_config_are_caught() {
    change_is_caught("git rm -q --cached README.md || git rm -q --cached mathlib/stats.py; git config core.pager evil", ".git/config, .git/index");
}

/// A GitHub API stand-in that accepts one connection, then lets `on_connect` run (the test
/// signals fixci there) and closes without answering.
fn one_shot_api(on_connect: impl FnOnce() + Send + 'static) -> (String, std::thread::JoinHandle<bool>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    l.set_nonblocking(true).unwrap();
    let h = std::thread::spawn(move || {
        let until = Instant::now() + Duration::from_secs(120);
        while Instant::now() < until {
            if let Ok((conn, _)) = l.accept() {
                drop(l);
                on_connect();
                std::thread::sleep(Duration::from_millis(300));
                drop(conn);
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    });
    (url, h)
}

#[test]
fn sigint_during_pre_flight_exits_130_with_one_line_and_leaves_nothing() {
    use std::sync::atomic::{AtomicI32, Ordering};
    let e = test_env();
    let spec = json!({
        "deterministic": true,
        "prompt": "the CI run fails. Fix it.",
        "url": "https://github.com/o/r/actions/runs/1",
        "repo": e.repo.display().to_string(),
        "agent": {"command": ["true"]},
    });
    let p = e.root.join("info.json");
    std::fs::write(&p, serde_json::to_string_pretty(&spec).unwrap()).unwrap();
    // The run URL is fetched in pre-flight, before the run directory exists: the signal comes
    // while fixci waits for the answer.
    let pid = std::sync::Arc::new(AtomicI32::new(0));
    let signalled = pid.clone();
    let (url, api) = one_shot_api(move || unsafe {
        libc::kill(signalled.load(Ordering::SeqCst), libc::SIGINT);
    });
    let child = Command::new(env!("CARGO_BIN_EXE_fixci"))
        .current_dir(&e.root)
        .env("FIXCI_CACHE_DIR", e.root.join("cache"))
        .env("GITHUB_TOKEN", "ghp_fixcitest")
        .args(["run", p.to_str().unwrap(), "--out", e.out.to_str().unwrap(), "--api-url", &url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    pid.store(child.id() as i32, Ordering::SeqCst);
    let out = child.wait_with_output().unwrap();
    assert!(api.join().unwrap(), "fixci never asked the API");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains("interrupted before the run started; nothing was written"), "{err}");
    assert!(
        !e.out.exists() || std::fs::read_dir(&e.out).unwrap().next().is_none(),
        "nothing is written"
    );
    assert_eq!(git(&e.repo, &["branch", "--list", "fixci/*"]), "");
}
