//! `fixci run`: the deterministic and existing-test pipelines end to end, with real git
//! repositories, real test processes and scripted agents.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::common::*;

type Env = TestEnv;

fn env() -> Env {
    test_env()
}

/// `fixci run SPEC --out OUT EXTRA...` in the scratch folder, without a forge token.
pub(crate) fn run(e: &Env, spec: &Path, extra: &[&str]) -> assert_cmd::assert::Assert {
    let mut cmd = fixci();
    cmd.current_dir(&e.root)
        .env("FIXCI_CACHE_DIR", e.root.join("cache"))
        .env_remove("GITHUB_TOKEN")
        .env_remove("GH_TOKEN")
        .arg("run")
        .arg(spec)
        .arg("--out")
        .arg(&e.out)
        .args(extra);
    cmd.assert()
}

#[test]
fn quickstart_ends_with_a_verified_fix_on_a_branch_without_the_reproduction_test() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("reproduce-deterministic/examples/shipping/info.json");
    let out = tmp.path().join("outputs");
    fixci()
        .current_dir(tmp.path())
        .env("FIXCI_CACHE_DIR", tmp.path().join("cache"))
        .env_remove("GITHUB_TOKEN")
        .env_remove("GH_TOKEN")
        .args([
            "run",
            spec.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .assert()
        .code(0);
    let run = run_dir(&out);
    let r = result(&run);
    assert_eq!(r["status"], "success");
    assert_eq!(r["verification"]["runs"], 5);
    assert_eq!(r["verification"]["passed"], 5);
    // Verified in a sealed checkout, outcomes from the unittest helper's JUnit report, and the
    // branch is the verified commit.
    let st: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir(&out).join("state.json")).unwrap())
            .unwrap();
    let checks = &st["attempts"][0]["checks"];
    assert_eq!(checks["checks"][0]["name"], "reproduction");
    assert_eq!(checks["checks"][0]["passed"], 5);
    assert_eq!(checks["checks"][0]["evidence"], "junit");
    assert_eq!(checks["commit"], st["commit"]);
    for f in [
        "report.md",
        "result.json",
        "fix.diff",
        "pr.md",
        "state.json",
        "events.jsonl",
        "spec.json",
        "pipeline.toml",
    ] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    let branch = r["branch"].as_str().unwrap();
    assert!(branch.starts_with("fixci/"), "{branch}");
    // The branch holds only the fix: no reproduction test in base...branch.
    let st: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("state.json")).unwrap()).unwrap();
    // The report is written after the run's end is recorded.
    assert!(r["finished_at"].is_string(), "{}", r["finished_at"]);
    assert_eq!(r["finished_at"], st["finished_at"]);
    assert_eq!(r["version"], 1);
    // Every line of events.jsonl reads back into the typed event stream, ending the run.
    let lines = std::fs::read_to_string(run.join("events.jsonl")).unwrap();
    let typed = fixci::run_dir::read_events(&run.join("events.jsonl")).unwrap();
    assert_eq!(typed.len(), lines.lines().count(), "{lines}");
    assert!(typed.iter().all(|(_, ts)| !ts.is_empty()));
    assert!(matches!(
        typed.last().map(|(e, _)| e),
        Some(fixci::run_dir::Event::RunFinished {
            status: fixci::run_dir::Status::Success,
            ..
        })
    ));
    // No `report` stage: the report is not a stage any more.
    assert!(
        r["stages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["kind"] != "report")
    );
    let clone = PathBuf::from(st["repo"]["root"].as_str().unwrap());
    let changed = git(
        &clone,
        &["diff", "--name-only", &format!("main...{branch}")],
    );
    assert_eq!(
        changed.trim(),
        "shipping/rates.py",
        "branch diff: {changed}"
    );
    let diff = std::fs::read_to_string(run.join("fix.diff")).unwrap();
    assert!(
        diff.contains("+    return weight_kg >= LIGHT_LIMIT_KG")
            && !diff.contains("test_fixci_repro"),
        "{diff}"
    );
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    for section in [
        "## Summary",
        "## Input configuration",
        "## Reproduction",
        "## Root cause",
        "## Fix",
        "## Verification",
        "## Pull request",
        "## Next steps",
        "## Relevant developers",
    ] {
        assert!(report.contains(section), "report lacks {section}");
    }
    assert!(
        report.contains("Dana Whitfield"),
        "blame names the author of the changed line"
    );
    let pr = std::fs::read_to_string(run.join("pr.md")).unwrap();
    assert!(pr.contains("## Summary"));
    assert!(report.contains("gh pr create --draft"));
    assert!(
        report.contains("push YOUR-REMOTE-URL fixci/"),
        "a bundle's clone cannot push to `origin`"
    );
}

#[test]
fn a_reproduction_that_passes_ends_failed_could_not_reproduce() {
    let e = env();
    let spec = scripted_job(&e.root, &e.repo, "repro-passes", json!({}));
    run(&e, &spec, &[]).code(1);
    let run = run_dir(&e.out);
    let r = result(&run);
    assert_eq!(r["status"], "failed");
    assert_eq!(r["reason"], "could not reproduce");
    assert!(run.join("report.md").is_file());
    // No fix stage ran.
    assert!(!run.join("stages/fix").exists());
}

#[test]
fn a_fix_that_never_passes_uses_exactly_max_attempts_and_escalates() {
    let e = env();
    let spec = scripted_job(&e.root, &e.repo, "never", json!({"max-attempts": 3}));
    run(&e, &spec, &[]).code(1);
    let run = run_dir(&e.out);
    let r = result(&run);
    assert_eq!(r["status"], "escalated");
    assert_eq!(r["attempts"].as_array().unwrap().len(), 3);
    for n in 1..=3 {
        assert!(
            run.join(format!("stages/fix/attempt-{n}/prompt.md"))
                .is_file()
        );
    }
    assert!(!run.join("stages/fix/attempt-4").exists());
    // The previous failure is visible in the later prompts.
    let p2 = std::fs::read_to_string(run.join("stages/fix/attempt-2/prompt.md")).unwrap();
    assert!(
        p2.contains("Attempt 1") && p2.contains("AssertionError: 3.0 != 2"),
        "{p2}"
    );
    assert!(p2.contains("(len(xs) - 1.0)"), "the previous diff is shown");
    let p3 = std::fs::read_to_string(run.join("stages/fix/attempt-3/prompt.md")).unwrap();
    assert!(p3.contains("Attempt 1") && p3.contains("Attempt 2"));
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(report.contains("| 3 | failed |"), "{report}");
}

fn assert_tampering_refused(mode: &str, words: &str) {
    let e = env();
    let spec = scripted_job(&e.root, &e.repo, mode, json!({"max-attempts": 1}));
    run(&e, &spec, &[]).code(1);
    let run = run_dir(&e.out);
    let r = result(&run);
    assert_ne!(r["status"], "success", "{mode} must not succeed");
    let tamper = r["attempts"][0]["tampering"].as_array().unwrap();
    assert!(
        tamper.iter().any(|t| t.as_str().unwrap().contains(words)),
        "{mode}: {tamper:?}"
    );
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(
        report.contains("Test tampering detected") && report.contains(words),
        "{mode}"
    );
}

#[test]
fn a_fix_agent_that_edits_the_reproduction_test_does_not_succeed() {
    assert_tampering_refused("tamper-edit", "modified the reproduction test");
}

#[test]
fn a_fix_agent_that_deletes_the_reproduction_test_does_not_succeed() {
    assert_tampering_refused("tamper-delete", "deleted the reproduction test");
}

#[test]
fn a_fix_agent_that_adds_a_skip_marker_does_not_succeed() {
    assert_tampering_refused("tamper-skip", "skip");
}

#[test]
fn a_good_fix_succeeds_and_the_agent_never_sees_the_forge_token() {
    let e = env();
    let spec = scripted_job(
        &e.root,
        &e.repo,
        "good",
        json!({"secret-env": ["MY_DEPLOY_KEY"]}),
    );
    let mut cmd = fixci();
    cmd.current_dir(&e.root)
        .env("FIXCI_CACHE_DIR", e.root.join("cache"))
        .env("GITHUB_TOKEN", "ghp_abcdefghijklmnopqrstuvwxyz0123456789")
        .env("MY_DEPLOY_KEY", "very-secret-deploy-key")
        .args([
            "run",
            spec.to_str().unwrap(),
            "--out",
            e.out.to_str().unwrap(),
            "--no-pr",
        ]);
    cmd.assert().code(0);
    let run = run_dir(&e.out);
    let seen: BTreeMap<String, String> = serde_json::from_str(
        &std::fs::read_to_string(run.join("stages/fix/attempt-1/seen-env.json")).unwrap(),
    )
    .unwrap();
    assert!(!seen.contains_key("GITHUB_TOKEN") && !seen.contains_key("MY_DEPLOY_KEY"));
    assert_eq!(seen["FIXCI_STAGE"], "fix");
    assert_eq!(seen["FIXCI_ATTEMPT"], "1");
    assert_eq!(
        seen["FIXCI_STAGE_DIR"],
        run.join("stages/fix/attempt-1").display().to_string()
    );
    assert_eq!(seen["FIXCI_RUN_DIR"], run.display().to_string());
    assert!(seen["FIXCI_PROMPT_FILE"].ends_with("prompt.md"));
    // The branch in the user's repository holds the fix only.
    let branch = result(&run)["branch"].as_str().unwrap().to_string();
    assert_eq!(
        git(
            &e.repo,
            &["diff", "--name-only", &format!("main...{branch}")]
        )
        .trim(),
        "mathlib/stats.py"
    );
}

#[test]
fn an_agent_that_sleeps_forever_is_killed_at_its_budget_with_its_grandchild() {
    let e = env();
    let spec = scripted_job(
        &e.root,
        &e.repo,
        "sleep",
        json!({"budgets": {"reproduce": "2s"}}),
    );
    run(&e, &spec, &[]).code(1);
    let run = run_dir(&e.out);
    let pids = std::fs::read_to_string(e.root.join("pids")).unwrap();
    let pids: Vec<u32> = pids
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 2);
    for p in &pids {
        assert!(!alive(*p), "process {p} survived its budget");
    }
    let r = result(&run);
    let stage = r["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "reproduce")
        .unwrap()
        .clone();
    assert_eq!(stage["status"], "timeout");
    assert_eq!(r["status"], "failed");
}

#[test]
fn the_users_checkout_branch_index_and_untracked_files_are_untouched() {
    let e = env();
    git(&e.repo, &["checkout", "-q", "-b", "feature"]);
    std::fs::write(e.repo.join("README.md"), "staged change\n").unwrap();
    git(&e.repo, &["add", "README.md"]);
    std::fs::write(
        e.repo.join("mathlib/stats.py"),
        "# my local edit, not committed\n",
    )
    .unwrap();
    std::fs::write(e.repo.join("notes.txt"), "untracked notes\n").unwrap();
    let snapshot = |repo: &Path| {
        let mut s = BTreeMap::new();
        for f in [
            ".git/HEAD",
            ".git/index",
            "README.md",
            "mathlib/stats.py",
            "notes.txt",
            "tests/test_stats.py",
        ] {
            s.insert(f.to_string(), std::fs::read(repo.join(f)).unwrap());
        }
        s.insert(
            "status".into(),
            git(repo, &["status", "--porcelain=v2", "--branch"]).into_bytes(),
        );
        s.insert("stash".into(), git(repo, &["stash", "list"]).into_bytes());
        s.insert(
            "branches".into(),
            git(
                repo,
                &[
                    "for-each-ref",
                    "--format=%(refname) %(objectname)",
                    "refs/heads/main",
                    "refs/heads/feature",
                ],
            )
            .into_bytes(),
        );
        s
    };
    let before = snapshot(&e.repo);
    let spec = scripted_job(&e.root, &e.repo, "good", json!({}));
    run(&e, &spec, &[]).code(0);
    assert_eq!(before, snapshot(&e.repo));
}

#[test]
fn dry_run_prints_the_plan_and_creates_nothing() {
    let e = env();
    let spec = scripted_job(&e.root, &e.repo, "good", json!({"budgets": {"fix": "7m"}}));
    let branches = git(&e.repo, &["branch", "--list"]);
    let worktrees = git(&e.repo, &["worktree", "list"]);
    let out = run(&e, &spec, &["--dry-run"])
        .code(0)
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("pipeline:   deterministic"), "{out}");
    assert!(out.contains("fix          agent       budget 7m"), "{out}");
    assert!(out.contains("verify") && out.contains("5 runs, every run must pass"));
    assert!(
        out.contains("===== prompt of stage `reproduce`")
            && out.contains("===== prompt of stage `fix`, attempt 1")
    );
    assert!(out.contains("test_mean fails in CI. Fix it."));
    assert_eq!(branches, git(&e.repo, &["branch", "--list"]));
    assert_eq!(worktrees, git(&e.repo, &["worktree", "list"]));
    assert!(!e.out.exists(), "dry run created {}", e.out.display());
}

#[test]
fn the_existing_test_pipeline_fixes_a_test_already_in_the_repository() {
    let e = env();
    std::fs::write(e.root.join("agent.py"), AGENT_PY).unwrap();
    let spec = e.root.join("info.json");
    std::fs::write(
        &spec,
        json!({
            "deterministic": true, "prompt": "tests/test_stats.py fails", "existing-test-path": "tests/test_stats.py",
            "test-command": "python3 -m unittest tests.test_stats", "repo": e.repo.display().to_string(),
            "agent": {"command": ["python3", "agent.py", "good"]},
        })
        .to_string(),
    )
    .unwrap();
    run(&e, &spec, &[]).code(0);
    let r = result(&run_dir(&e.out));
    assert_eq!(r["pipeline"], "existing-test");
    assert_eq!(r["reproduction"]["origin"], "existing");
    assert_eq!(r["status"], "success");
}

#[test]
fn an_existing_test_with_a_ci_log_feeds_the_log_to_the_prompt_and_prints_the_outcome_as_json() {
    let e = env();
    std::fs::write(e.root.join("agent.py"), AGENT_PY).unwrap();
    std::fs::write(e.root.join("ci.log"), CI_LOG).unwrap();
    let spec = e.root.join("info.json");
    std::fs::write(
        &spec,
        json!({
            "deterministic": true, "prompt": "tests/test_stats.py fails", "existing-test-path": "tests/test_stats.py",
            "raw-logs": "ci.log",
            "test-command": "python3 -m unittest tests.test_stats", "repo": e.repo.display().to_string(),
            "agent": {"command": ["python3", "agent.py", "good"]},
        })
        .to_string(),
    )
    .unwrap();
    let out = run(&e, &spec, &["--json"]).code(0).get_output().stdout.clone();
    let printed: serde_json::Value = serde_json::from_slice(&out).expect("stdout is one JSON object");
    let run = run_dir(&e.out);
    assert_eq!(printed["status"], "success");
    assert_eq!(printed["report"], run.join("report.md").display().to_string());
    assert!(printed["branch"].as_str().unwrap().starts_with("fixci/"), "{printed}");
    let r = result(&run);
    assert_eq!(r["pipeline"], "existing-test");
    // The log was distilled, and the fix prompt names the CI's failing test and its message.
    let distilled = std::fs::read_to_string(run.join("stages/fetch-logs/distilled.json")).unwrap();
    assert!(distilled.contains("test_mean"), "{distilled}");
    let prompt = std::fs::read_to_string(run.join("stages/fix/attempt-1/prompt.md")).unwrap();
    assert!(prompt.contains("AssertionError: 3.0 != 2"), "{prompt}");
}

#[test]
fn the_outcome_is_printed_on_stdout_one_key_per_line() {
    let e = env();
    std::fs::write(e.root.join("agent.py"), AGENT_PY).unwrap();
    let spec = scripted_job(&e.root, &e.repo, "repro-passes", json!({}));
    let out = run(&e, &spec, &[]).code(1).get_output().stdout.clone();
    let out = String::from_utf8(out).unwrap();
    let run = run_dir(&e.out);
    assert!(out.starts_with("status: failed\nreason: could not reproduce\n"), "{out}");
    assert!(out.contains(&format!("report: {}\n", run.join("report.md").display())), "{out}");
    assert!(!out.contains("branch:"), "no fix, no branch: {out}");
}

#[test]
fn peek_of_an_ended_run_shows_the_last_stage_that_left_output() {
    let e = env();
    let spec = scripted_job(&e.root, &e.repo, "good", json!({}));
    run(&e, &spec, &[]).code(0);
    let out = fixci()
        .current_dir(&e.root)
        .args(["peek", "last", "--out"])
        .arg(&e.out)
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    assert!(!out.contains("no output yet"), "{out}");
    // The verification's last test run is the last output of a successful run.
    assert!(out.contains("stages/verify/attempt-1"), "{out}");
    assert!(out.contains(".log (last "), "{out}");
}

#[test]
fn an_existing_test_path_missing_from_the_repository_is_exit_2_naming_the_key() {
    let e = env();
    let spec = e.root.join("info.json");
    std::fs::write(&spec, json!({"deterministic": true, "prompt": "x", "existing-test-path": "tests/test_nope.py", "repo": e.repo.display().to_string(), "agent": "claude"}).to_string()).unwrap();
    let err = run(&e, &spec, &[]).code(2).get_output().stderr.clone();
    let err = String::from_utf8(err).unwrap();
    assert!(
        err.contains("/existing-test-path") && err.contains("tests/test_nope.py"),
        "{err}"
    );
    assert!(!e.out.exists());
}

#[test]
fn a_missing_agent_binary_is_an_infrastructure_error_with_a_hint() {
    let e = env();
    let spec = e.root.join("info.json");
    std::fs::write(&spec, json!({"deterministic": true, "prompt": "x", "raw-logs": CI_LOG, "repo": e.repo.display().to_string(), "agent": {"command": ["fixci-no-such-agent-cli"]}}).to_string()).unwrap();
    let err = run(&e, &spec, &[]).code(3).get_output().stderr.clone();
    let err = String::from_utf8(err).unwrap();
    assert!(
        err.contains("`fixci-no-such-agent-cli` not found") && err.contains("hint:"),
        "{err}"
    );
    // Pre-flight: found missing before anything is written.
    assert!(!e.out.exists());
}

#[test]
fn budgets_naming_unknown_stages_are_refused() {
    let e = env();
    let spec = scripted_job(
        &e.root,
        &e.repo,
        "good",
        json!({"budgets": {"reproduse": "1m"}}),
    );
    let err = run(&e, &spec, &[]).code(2).get_output().stderr.clone();
    let err = String::from_utf8(err).unwrap();
    assert!(
        err.contains("/budgets/reproduse") && err.contains("reproduce"),
        "{err}"
    );
}

#[test]
fn the_real_pytest_log_names_the_real_failing_test_in_the_prompt() {
    let Some(fx) = fixtures() else { return };
    let e = env();
    let spec = scripted_job(&e.root, &e.repo, "no-repro", json!({}));
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&spec).unwrap()).unwrap();
    v["raw-logs"] = json!(
        fx.join("logs/pytest-step-gitauto.txt")
            .display()
            .to_string()
    );
    std::fs::write(&spec, v.to_string()).unwrap();
    run(&e, &spec, &[]).code(1);
    let run = run_dir(&e.out);
    let prompt = std::fs::read_to_string(run.join("stages/reproduce/prompt.md")).unwrap();
    assert!(
        prompt.contains("utils/files/test_should_test_file.py::TestShouldTestFile::test_should_test_file_with_boolean_return_values"),
        "{prompt}"
    );
    assert!(prompt.len() < 40_000, "prompt is {} bytes", prompt.len());
}

#[test]
fn the_real_phpunit_archive_names_the_failures_without_the_warning_flood() {
    let Some(fx) = fixtures() else { return };
    let e = env();
    let spec = scripted_job(&e.root, &e.repo, "no-repro", json!({}));
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&spec).unwrap()).unwrap();
    v["raw-logs"] = json!(
        fx.join("logs/run-logs-archive-phpunit.zip")
            .display()
            .to_string()
    );
    std::fs::write(&spec, v.to_string()).unwrap();
    run(&e, &spec, &[]).code(1);
    let prompt =
        std::fs::read_to_string(run_dir(&e.out).join("stages/reproduce/prompt.md")).unwrap();
    assert!(
        prompt.contains("testBooleanWithStringTrueMixedCase"),
        "{prompt}"
    );
    assert!(
        !prompt.contains("failed to open stream"),
        "warnings flood the prompt"
    );
}

#[test]
fn a_closed_stderr_does_not_stop_a_run_regression() {
    // `fixci run ... 2>&1 | head -2` closes the pipe early; the run must still finish.
    let e = env();
    let spec = scripted_job(&e.root, &e.repo, "good", json!({}));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_fixci"))
        .current_dir(&e.root)
        .env("FIXCI_CACHE_DIR", e.root.join("cache"))
        .args([
            "run",
            spec.to_str().unwrap(),
            "--out",
            e.out.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stderr.take());
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert_eq!(result(&run_dir(&e.out))["status"], "success");
}
