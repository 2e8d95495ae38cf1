//! Runs that survive faults: SIGINT and SIGKILL then `fixci resume`, run management from another
//! terminal (`list`, `status`, `kill`, `clean`, `apply`), human commits, secrets, path escapes and
//! disk errors.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::*;

type Env = TestEnv;

fn env() -> Env {
    test_env()
}

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_fixci"))
}

fn fixci_in(e: &Env, args: &[&str]) -> assert_cmd::assert::Assert {
    let mut c = fixci();
    c.current_dir(&e.root)
        .env("FIXCI_CACHE_DIR", e.root.join("cache"))
        .args(args)
        .arg("--out")
        .arg(&e.out);
    c.assert()
}

/// Starts `fixci run` in the background.
fn spawn_run(e: &Env, spec: &Path) -> Child {
    Command::new(bin())
        .current_dir(&e.root)
        .env("FIXCI_CACHE_DIR", e.root.join("cache"))
        .env_remove("GITHUB_TOKEN")
        .args([
            "run",
            spec.to_str().unwrap(),
            "--out",
            e.out.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits (at most 60 s) until the scripted agent has written the pids of its sleeping fix stage.
fn wait_for_pids(e: &Env) -> (PathBuf, Vec<u32>) {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(t) = std::fs::read_to_string(e.root.join("pids")) {
            let pids: Vec<u32> = t
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect();
            if pids.len() == 2 {
                return (run_dir(&e.out), pids);
            }
        }
        assert!(Instant::now() < until, "the fix stage never started");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn events(run: &Path) -> Vec<Value> {
    std::fs::read_to_string(run.join("events.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn started(run: &Path, stage: &str) -> usize {
    events(run)
        .iter()
        .filter(|e| e["event"] == "stage_started" && e["stage"] == stage)
        .count()
}

#[test]
fn sigint_during_the_fix_stage_exits_130_kills_children_and_resume_completes_without_reproducing_again()
 {
    let e = env();
    let spec = scripted_job(&e.root, &e.repo, "slow-once", json!({}));
    let mut child = spawn_run(&e, &spec);
    let (run, pids) = wait_for_pids(&e);
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let t0 = Instant::now();
    let status = child.wait().unwrap();
    let waited = t0.elapsed();
    assert_eq!(status.code(), Some(130));
    assert!(
        waited < Duration::from_secs(5),
        "fixci took {waited:?} to stop"
    );
    for p in pids {
        assert!(!alive(p), "child {p} survived the interruption");
    }
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(err.contains("fixci resume"), "{err}");
    assert_eq!(result(&run)["status"], "interrupted");
    let first_end = result(&run)["finished_at"].as_str().unwrap().to_string();
    assert_eq!(started(&run, "reproduce"), 1);

    let id = run.file_name().unwrap().to_str().unwrap().to_string();
    fixci_in(&e, &["resume", &id[..12]]).code(0);
    // The report is rewritten after the resumed run's end, with its own end time.
    let st: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("state.json")).unwrap()).unwrap();
    let end = result(&run)["finished_at"].as_str().unwrap().to_string();
    assert_eq!(st["finished_at"].as_str(), Some(end.as_str()));
    let t = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap();
    assert!(t(&end) > t(&first_end), "{end} <= {first_end}");
    assert_eq!(
        started(&run, "reproduce"),
        1,
        "resume ran the reproduce stage again"
    );
    assert!(events(&run).iter().any(|e| e["event"] == "run_resumed"));
    assert_eq!(result(&run)["status"], "success");
}

#[test]
fn sigkill_mid_stage_then_resume_completes_the_run() {
    let e = env();
    let spec = scripted_job(&e.root, &e.repo, "slow-once", json!({}));
    let mut child = spawn_run(&e, &spec);
    let (run, pids) = wait_for_pids(&e);
    child.kill().unwrap();
    child.wait().unwrap();
    // The orphaned agent is still there until resume stops it.
    fixci_in(&e, &["resume", "last"]).code(0);
    for p in pids {
        assert!(!alive(p), "orphan {p} survived resume");
    }
    assert_eq!(started(&run, "reproduce"), 1);
    assert_eq!(result(&run)["status"], "success");
}

#[test]
fn list_status_kill_and_clean_manage_a_run_from_another_terminal() {
    let e = env();
    let spec = scripted_job(&e.root, &e.repo, "slow-once", json!({}));
    let mut child = spawn_run(&e, &spec);
    let (run, pids) = wait_for_pids(&e);
    let id = run.file_name().unwrap().to_str().unwrap().to_string();

    let out = fixci_in(&e, &["list", "--json"])
        .code(0)
        .get_output()
        .stdout
        .clone();
    let list: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(list[0]["status"], "running");
    assert_eq!(list[0]["stage"], "fix");
    assert_eq!(list[0]["run_id"], id.as_str());
    let out = fixci_in(&e, &["status", &id])
        .code(0)
        .get_output()
        .stdout
        .clone();
    let status = String::from_utf8_lossy(&out);
    assert!(
        status.contains("status:   running") && status.contains("stage:    fix"),
        "{status}"
    );

    // clean refuses a running run.
    let err = fixci_in(&e, &["clean", &id])
        .code(2)
        .get_output()
        .stderr
        .clone();
    assert!(String::from_utf8_lossy(&err).contains("running"));
    assert!(run.exists());

    fixci_in(&e, &["kill", &id]).code(0);
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(130));
    for p in pids {
        assert!(!alive(p));
    }
    let out = fixci_in(&e, &["list", "--json"])
        .code(0)
        .get_output()
        .stdout
        .clone();
    let list: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(list[0]["status"], "interrupted");
    // A second kill finds nothing running.
    fixci_in(&e, &["kill", &id]).code(2);

    // The planned branch (none exists yet in the user's repository: `result.json` says null).
    assert!(result(&run)["branch"].is_null());
    let st: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("state.json")).unwrap()).unwrap();
    let branch = st["branch"].as_str().unwrap().to_string();
    fixci_in(&e, &["clean", &id]).code(0);
    assert!(!run.exists());
    assert!(
        git(&e.repo, &["branch", "--list", &branch])
            .trim()
            .is_empty(),
        "branch of an unproposed run kept"
    );
    assert!(!git(&e.repo, &["worktree", "list"]).contains(&id));
}

#[test]
fn a_stale_pid_file_is_detected() {
    let e = env();
    let spec = scripted_job(&e.root, &e.repo, "slow-once", json!({}));
    let mut child = spawn_run(&e, &spec);
    let (run, _) = wait_for_pids(&e);
    child.kill().unwrap();
    child.wait().unwrap();
    let out = fixci_in(&e, &["list", "--json"])
        .code(0)
        .get_output()
        .stdout
        .clone();
    let list: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(list[0]["status"], "stale");
    let err = fixci_in(&e, &["kill", "last"])
        .code(2)
        .get_output()
        .stderr
        .clone();
    assert!(String::from_utf8_lossy(&err).contains("not running"));
    assert!(
        !run.join("fixci.pid").exists(),
        "the stale pid file was not removed"
    );
    // Clean still works on it.
    fixci_in(&e, &["clean", "--all"]).code(0);
    assert!(!run.exists());
}

#[test]
fn apply_creates_the_fix_branch_in_another_checkout_without_touching_it() {
    let e = env();
    let spec = scripted_job(&e.root, &e.repo, "good", json!({}));
    fixci_in(&e, &["run", spec.to_str().unwrap()]).code(0);
    let other = e.root.join("other");
    git(
        &e.root,
        &[
            "clone",
            "-q",
            e.repo.to_str().unwrap(),
            other.to_str().unwrap(),
        ],
    );
    let head = git(&other, &["rev-parse", "HEAD"]);
    let out = fixci_in(&e, &["apply", "last", "--repo", other.to_str().unwrap()])
        .code(0)
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8_lossy(&out);
    let name = out.split('`').nth(1).unwrap().to_string();
    assert!(name.starts_with("fixci/"), "{out}");
    assert_eq!(head, git(&other, &["rev-parse", "HEAD"]));
    assert!(git(&other, &["status", "--porcelain"]).trim().is_empty());
    let shown = git(&other, &["show", &format!("{name}:mathlib/stats.py")]);
    assert!(shown.contains("sum(xs) / len(xs)"), "{shown}");
    // The commit carries the run's own message (title and body), not a generic line.
    let run = run_dir(&e.out);
    let branch = result(&run)["branch"].as_str().unwrap().to_string();
    let original = git(&e.repo, &["log", "-1", "--format=%B", &branch]);
    let applied = git(&other, &["log", "-1", "--format=%B", &name]);
    assert_eq!(applied, original);
    assert!(!applied.starts_with("Fix from fixci run"), "{applied}");
    // The hint is a complete `gh pr create`: title and the run's body file; `other` has `origin`.
    let title = original.lines().next().unwrap();
    assert!(out.contains(&format!("git push -u origin {name}")), "{out}");
    assert!(out.contains("gh pr create --draft --base main"), "{out}");
    assert!(out.contains(&format!("--body-file {}", run.join("pr.md").display())), "{out}");
    assert!(out.contains(title.split_whitespace().next().unwrap()), "{out}");
}

#[test]
fn pr_text_has_no_local_paths_and_publish_hints_match_the_remotes() {
    let e = env();
    let spec = scripted_job(&e.root, &e.repo, "good", json!({}));
    fixci_in(&e, &["run", spec.to_str().unwrap()]).code(0);
    let run = run_dir(&e.out);
    let pr = std::fs::read_to_string(run.join("pr.md")).unwrap();
    assert!(!pr.contains(e.root.to_str().unwrap()), "a local path in the PR body: {pr}");
    assert!(pr.contains("Opened by fixci from `info.json`"), "{pr}");
    assert!(!run.join("stages/pr/pr-body.md").exists(), "one body file");
    // The repository has no remote: the hints say how to add one before pushing.
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(report.contains("remote add origin YOUR-REMOTE-URL"), "{report}");
    assert!(report.contains(&format!("--body-file {}", run.join("pr.md").display())), "{report}");
}

#[test]
fn a_commit_by_someone_else_on_the_fix_branch_stops_the_attempts() {
    let e = env();
    let spec = scripted_job(&e.root, &e.repo, "human", json!({"max-attempts": 3}));
    fixci_in(&e, &["run", spec.to_str().unwrap()]).code(1);
    let run = run_dir(&e.out);
    let r = result(&run);
    assert_eq!(r["status"], "escalated");
    assert_eq!(r["attempts"].as_array().unwrap().len(), 1);
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("Jane Doe <jane@example.com>"),
        "{r}"
    );
    assert!(
        std::fs::read_to_string(run.join("report.md"))
            .unwrap()
            .contains("Jane Doe")
    );
}

/// The fix branch's commits after `main`, as `author: subject`, and its files.
fn branch_commits_and_files(repo: &Path, branch: &str) -> (Vec<String>, String) {
    let log = git(
        repo,
        &["log", "--format=%an: %s", &format!("main..{branch}")],
    );
    let files = git(repo, &["ls-tree", "-r", "--name-only", branch]);
    (log.lines().map(String::from).collect(), files)
}

#[test]
fn commits_an_agent_makes_during_its_run_are_folded_into_the_single_fix_commit() {
    for mode in ["self-commit", "self-commit-branch"] {
        let e = env();
        let spec = scripted_job(&e.root, &e.repo, mode, json!({}));
        fixci_in(&e, &["run", spec.to_str().unwrap()]).code(0);
        let run = run_dir(&e.out);
        let r = result(&run);
        assert_eq!(r["status"], "success", "{mode}: {r}");
        let branch = r["branch"].as_str().unwrap();
        let (log, files) = branch_commits_and_files(&e.repo, branch);
        assert_eq!(log.len(), 1, "{mode}: one commit, fixci's: {log:?}");
        assert!(log[0].starts_with("fixci: "), "{mode}: {log:?}");
        assert!(
            !files.contains(".aider") && files.contains("mathlib/stats.py"),
            "{mode}: no dropping in the fix commit: {files}"
        );
        // The file the agent staged is an ordinary change of the fix.
        assert!(files.contains("NOTES.md"), "{mode}: {files}");
        let fix = r["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == "fix")
            .unwrap();
        let summary = fix["summary"].as_str().unwrap();
        assert!(
            summary.contains("\"agent: fix mean\") folded into fixci's commit"),
            "{mode}: {summary}"
        );
        if mode == "self-commit-branch" {
            assert!(summary.contains("HEAD, which the agent had moved off the fix branch"));
        }
    }
}

#[test]
fn agent_commits_reject_fails_the_attempt_and_undoes_the_commit() {
    let e = env();
    let spec = scripted_job(
        &e.root,
        &e.repo,
        "self-commit",
        json!({"agent-commits": "reject", "max-attempts": 1, "keep-worktree": true}),
    );
    fixci_in(&e, &["run", spec.to_str().unwrap()]).code(1);
    let run = run_dir(&e.out);
    let r = result(&run);
    assert_eq!(r["status"], "escalated", "{r}");
    let reason = r["attempts"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("rejected") && reason.contains("agent-commits"),
        "{reason}"
    );
    assert_eq!(r["agent"]["error"], true);
    // No branch exists in the user's repository; the planned one lives in the kept clone.
    assert!(r["branch"].is_null(), "{r}");
    let st: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("state.json")).unwrap()).unwrap();
    let branch = st["branch"].as_str().unwrap();
    let (log, _) = branch_commits_and_files(&run.join("worktree"), branch);
    assert!(log.is_empty(), "the agent's commit is gone: {log:?}");
    assert!(
        git(&e.repo, &["branch", "--list", branch])
            .trim()
            .is_empty()
    );
}

#[test]
fn a_forge_token_in_the_environment_and_the_ci_log_is_in_no_run_file() {
    let e = env();
    let token = "ghp_SECRETsecret0123456789abcdefABCDEF99";
    let log = format!(
        "{CI_LOG}2026-11-02T10:00:03.0000000Z curl -H 'Authorization: token {token}' https://api.github.com\n"
    );
    let spec = scripted_job(&e.root, &e.repo, "good", json!({"raw-logs": log}));
    fixci()
        .current_dir(&e.root)
        .env("FIXCI_CACHE_DIR", e.root.join("cache"))
        .env("GITHUB_TOKEN", token)
        .args([
            "run",
            spec.to_str().unwrap(),
            "--out",
            e.out.to_str().unwrap(),
            "--no-pr",
        ])
        .assert()
        .code(0);
    let run = run_dir(&e.out);
    let mut stack = vec![run.clone()];
    while let Some(d) = stack.pop() {
        for f in std::fs::read_dir(&d).unwrap().flatten() {
            let p = f.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                assert!(
                    !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
                    "token in {}",
                    p.display()
                );
            }
        }
    }
    let seen: Value = serde_json::from_str(
        &std::fs::read_to_string(run.join("stages/reproduce/seen-env.json")).unwrap(),
    )
    .unwrap();
    assert!(seen.get("GITHUB_TOKEN").is_none());
}

fn assert_escape_refused(mode: &str) {
    let e = env();
    let spec = scripted_job(&e.root, &e.repo, mode, json!({}));
    let err = fixci_in(&e, &["run", spec.to_str().unwrap()])
        .code(2)
        .get_output()
        .stderr
        .clone();
    assert!(
        String::from_utf8_lossy(&err).contains("test_file"),
        "{mode}: {}",
        String::from_utf8_lossy(&err)
    );
}

#[test]
fn an_agent_test_file_that_escapes_the_repository_is_refused() {
    assert_escape_refused("escape-abs");
    assert_escape_refused("escape-dotdot");
    assert_escape_refused("escape-symlink");
}

#[test]
fn an_existing_test_path_through_a_symlink_is_refused() {
    let e = env();
    std::os::unix::fs::symlink("/etc", e.repo.join("linked")).unwrap();
    git(&e.repo, &["add", "linked"]);
    git(&e.repo, &["commit", "-qm", "a symlink"]);
    let spec = e.root.join("info.json");
    std::fs::write(&spec, json!({"deterministic": true, "prompt": "x", "existing-test-path": "linked/hostname", "repo": e.repo.display().to_string(), "agent": "claude"}).to_string()).unwrap();
    let err = fixci_in(&e, &["run", spec.to_str().unwrap()])
        .code(2)
        .get_output()
        .stderr
        .clone();
    let err = String::from_utf8_lossy(&err);
    assert!(
        err.contains("/existing-test-path") && err.contains("symlink"),
        "{err}"
    );
    assert!(!e.out.exists());
}

#[test]
fn a_prompt_template_that_escapes_the_pipeline_folder_is_refused() {
    let e = env();
    let spec = scripted_job(&e.root, &e.repo, "good", json!({}));
    let pipes = e.root.join("pipelines");
    std::fs::create_dir_all(&pipes).unwrap();
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/deterministic.toml"),
    )
    .unwrap();
    std::fs::write(
        pipes.join("deterministic.toml"),
        text.replace(
            "prompt = \"reproduce-deterministic/AI_PROMPT.md\"",
            "prompt = \"../../../etc/hostname\"",
        ),
    )
    .unwrap();
    let err = fixci_in(&e, &["run", spec.to_str().unwrap(), "--dry-run"])
        .code(2)
        .get_output()
        .stderr
        .clone();
    assert!(String::from_utf8_lossy(&err).contains("../../../etc/hostname"));
    // A symlink out of the folder is refused too.
    std::fs::create_dir_all(e.root.join("reproduce-deterministic")).unwrap();
    std::os::unix::fs::symlink(
        "/etc/hostname",
        e.root.join("reproduce-deterministic/AI_PROMPT.md"),
    )
    .unwrap();
    std::fs::write(pipes.join("deterministic.toml"), &text).unwrap();
    let err = fixci_in(&e, &["run", spec.to_str().unwrap(), "--dry-run"])
        .code(2)
        .get_output()
        .stderr
        .clone();
    assert!(
        String::from_utf8_lossy(&err).contains("symlink"),
        "{}",
        String::from_utf8_lossy(&err)
    );
}

#[test]
fn an_unwritable_run_directory_is_exit_3_naming_the_path_and_the_repository_is_untouched() {
    let e = env();
    let spec = scripted_job(&e.root, &e.repo, "good", json!({}));
    let blocker = e.root.join("not-a-dir");
    std::fs::write(&blocker, "a file where the output folder should be").unwrap();
    let before = git(&e.repo, &["for-each-ref"]);
    let out = fixci()
        .current_dir(&e.root)
        .env("FIXCI_CACHE_DIR", e.root.join("cache"))
        .args([
            "run",
            spec.to_str().unwrap(),
            "--out",
            blocker.join("outputs").to_str().unwrap(),
        ])
        .assert()
        .code(3)
        .get_output()
        .stderr
        .clone();
    assert!(
        String::from_utf8_lossy(&out).contains("not-a-dir"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    assert_eq!(before, git(&e.repo, &["for-each-ref"]));
    assert!(git(&e.repo, &["worktree", "list"]).lines().count() == 1);
}

#[test]
fn a_second_ctrl_c_exits_at_once_and_still_kills_the_children() {
    let e = env();
    let spec = scripted_job(&e.root, &e.repo, "slow-once", json!({}));
    let mut child = spawn_run(&e, &spec);
    let (_, pids) = wait_for_pids(&e);
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    assert_eq!(child.wait().unwrap().code(), Some(130));
    let until = Instant::now() + Duration::from_secs(2);
    while pids.iter().any(|p| alive(*p)) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    for p in pids {
        assert!(!alive(p), "child {p} was orphaned by the second Ctrl-C");
    }
}

#[test]
fn peek_shows_the_agents_worklog_of_the_running_stage() {
    let e = env();
    let spec = scripted_job(&e.root, &e.repo, "slow-once", json!({}));
    let mut child = spawn_run(&e, &spec);
    let (run, _) = wait_for_pids(&e);
    let out = fixci_in(&e, &["peek", "last", "--log", "5"])
        .code(0)
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8_lossy(&out);
    assert!(out.contains("stages/fix/attempt-1"), "{out}");
    assert!(out.contains("scripted agent: stage fix"), "{out}");
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(child.wait().unwrap().code(), Some(130));
    assert_eq!(result(&run)["status"], "interrupted");
}
