//! `gate` (a local check as the failure input) and `fixci retry`, end to end: real git
//! repositories, the gate's real `python3 -m unittest` processes, scripted agents.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::common::*;

/// A scripted agent for gate and retry runs. Reproduce stage: writes a failing unittest for
/// `mean` (as [`AGENT_PY`]). Fix stage, by its first argument: `good` fixes `mean`, `wrong`
/// makes a change that does not fix it, `steer` fixes it only when the prompt carries the
/// user's steer `DIVIDE-BY-LEN`.
const GATE_AGENT: &str = r#"
import json, os, pathlib, sys
mode = sys.argv[1]
stage = os.environ["FIXCI_STAGE"]
stage_dir = pathlib.Path(os.environ["FIXCI_STAGE_DIR"])
prompt = pathlib.Path(os.environ["FIXCI_PROMPT_FILE"]).read_text()
if stage == "reproduce":
    pathlib.Path("tests/test_repro.py").write_text("import unittest\nfrom mathlib.stats import mean\n\n\nclass Repro(unittest.TestCase):\n    def test_mean(self):\n        self.assertEqual(mean([1, 2, 3]), 2)\n")
    (stage_dir / "repro.json").write_text(json.dumps({"test_file": "tests/test_repro.py", "command": "python3 -m unittest tests.test_repro"}))
    sys.exit(0)
if mode == "steer":
    mode = "good" if "DIVIDE-BY-LEN" in prompt else "wrong"
stats = pathlib.Path("mathlib/stats.py")
src = stats.read_text()
if mode == "good":
    stats.write_text(src.replace("(len(xs) - 1)", "len(xs)"))
    (stage_dir / "root-cause.md").write_text("mean divided by len - 1 instead of len.")
else:
    stats.write_text(src.replace("(len(xs) - 1)", "(len(xs) - 1.0)"))
"#;

/// Writes the agent and a spec with `keys` (plus `repo` and `agent`) into `e.root`.
fn spec(e: &TestEnv, mode: &str, keys: serde_json::Value) -> PathBuf {
    std::fs::write(e.root.join("gate_agent.py"), GATE_AGENT).unwrap();
    let mut v = json!({
        "repo": e.repo.display().to_string(),
        "agent": {"command": ["python3", "gate_agent.py", mode]},
    });
    for (k, val) in keys.as_object().unwrap() {
        v[k] = val.clone();
    }
    let p = e.root.join("info.json");
    std::fs::write(&p, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    p
}

fn fixci_in(e: &TestEnv) -> assert_cmd::Command {
    let mut cmd = fixci();
    cmd.current_dir(&e.root)
        .env("FIXCI_CACHE_DIR", e.root.join("cache"))
        .env_remove("GITHUB_TOKEN")
        .env_remove("GH_TOKEN");
    cmd
}

fn run(e: &TestEnv, spec: &Path, extra: &[&str]) -> assert_cmd::assert::Assert {
    fixci_in(e)
        .arg("run")
        .arg(spec)
        .arg("--out")
        .arg(&e.out)
        .args(extra)
        .assert()
}

fn state(run: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("state.json")).unwrap()).unwrap()
}

fn branches(repo: &Path) -> String {
    git(repo, &["branch", "--list", "--format=%(refname:short)"])
}

#[test]
fn a_failing_unittest_gate_with_only_gate_and_prompt_ends_success_and_the_gate_passes_on_the_fix() {
    let e = test_env();
    let spec = spec(
        &e,
        "good",
        json!({"prompt": "The test suite is red. Fix it.", "gate": ["python3 -m unittest"]}),
    );
    run(&e, &spec, &[]).code(0);
    let run = run_dir(&e.out);
    let r = result(&run);
    assert_eq!(r["status"], "success", "{r:#}");
    let st = state(&run);
    assert_eq!(st["pipeline"], "gate");
    // The gate ran at the base, failed, and its output named the failing unittest.
    assert_eq!(st["gate"]["outcomes"][0]["passed"], false, "{:#}", st["gate"]);
    assert_eq!(st["gate"]["commit"], st["repo"]["start_commit"]);
    let failures = st["logs"]["distilled"]["failures"].as_array().unwrap();
    assert!(
        failures.iter().any(|f| f["test"].as_str().unwrap().contains("test_mean")),
        "{failures:?}"
    );
    // No reproduce stage: the failing gate is the reproduction.
    assert!(!run.join("stages/reproduce").exists());
    let prompt = std::fs::read_to_string(run.join("stages/fix/attempt-1/prompt.md")).unwrap();
    assert!(prompt.contains("python3 -m unittest") && prompt.contains("test_mean"), "{prompt}");
    // The fix commit was verified with the whole gate passing on it.
    let checks = st["attempts"][0]["checks"]["checks"].as_array().unwrap();
    let gate: Vec<_> = checks.iter().filter(|c| c["name"] == "gate").collect();
    assert_eq!(gate.len(), 1, "{checks:?}");
    assert_eq!(gate[0]["status"], "passed");
    assert_eq!(gate[0]["command"], "python3 -m unittest");
    assert_eq!(st["attempts"][0]["checks"]["commit"], st["commit"]);
    // The branch reached the user's repository, and the gate passes there on the fix commit.
    let branch = r["branch"].as_str().unwrap();
    let check = e.root.join("check");
    git(&e.root, &["clone", "-q", "-b", branch, e.repo.to_str().unwrap(), check.to_str().unwrap()]);
    let status = std::process::Command::new("python3")
        .args(["-m", "unittest", "-q"])
        .current_dir(&check)
        .output()
        .unwrap();
    assert!(status.status.success(), "the gate fails on the fix branch: {status:?}");
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(report.contains("python3 -m unittest"), "{report}");
}

#[test]
fn a_gate_that_already_passes_exits_0_with_nothing_to_fix_and_writes_no_branch() {
    let e = test_env();
    let before = (git(&e.repo, &["rev-parse", "HEAD"]), branches(&e.repo));
    // The default agent must exist for the pre-flight; a gate that passes never starts it.
    let bin = e.root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let claude = bin.join("claude");
    std::fs::write(&claude, "#!/bin/sh\necho started >> \"$0.log\"\nexit 1\n").unwrap();
    std::fs::set_permissions(&claude, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let out = fixci_in(&e)
        .current_dir(&e.repo)
        .env("PATH", path)
        .args(["run", "--gate", "python3 -c pass", "--gate", "true"])
        .args(["--prompt", "keep it green", "--out"])
        .arg(&e.out)
        .assert()
        .code(0);
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(stdout.contains("status: nothing-to-fix"), "{stdout}");
    assert!(stdout.contains("nothing to fix"), "{stdout}");
    let run = run_dir(&e.out);
    let st = state(&run);
    assert_eq!(st["status"], "nothing-to-fix");
    assert_eq!(st["gate"]["outcomes"].as_array().unwrap().len(), 2);
    assert!(st["attempts"].as_array().unwrap().is_empty(), "no attempt");
    assert!(!bin.join("claude.log").exists(), "no agent ran");
    assert_eq!(result(&run)["status"], "nothing-to-fix");
    assert_eq!((git(&e.repo, &["rev-parse", "HEAD"]), branches(&e.repo)), before);
    assert_eq!(git(&e.repo, &["status", "--porcelain"]), "");
}

#[test]
fn a_fix_that_greens_the_tests_but_leaves_another_gate_command_red_is_not_success() {
    let e = test_env();
    // A second gate command that is red at the base and that the fix does not touch.
    std::fs::write(
        e.repo.join("check_style.py"),
        "import pathlib, sys\nsys.exit('TODO left in mathlib/stats.py' if 'TODO' in pathlib.Path('mathlib/stats.py').read_text() else 0)\n",
    )
    .unwrap();
    let stats = e.repo.join("mathlib/stats.py");
    let src = std::fs::read_to_string(&stats).unwrap();
    std::fs::write(&stats, format!("# TODO: document\n{src}")).unwrap();
    git(&e.repo, &["add", "-A"]);
    git(&e.repo, &["commit", "-qm", "style check"]);
    let spec = spec(
        &e,
        "good",
        json!({"prompt": "Fix the gate.", "gate": ["python3 -m unittest", "python3 check_style.py"], "max-attempts": 1}),
    );
    run(&e, &spec, &[]).code(1);
    let run = run_dir(&e.out);
    let r = result(&run);
    assert_eq!(r["status"], "escalated", "{r:#}");
    let st = state(&run);
    let checks = st["attempts"][0]["checks"]["checks"].as_array().unwrap();
    let gate: Vec<(String, String)> = checks
        .iter()
        .filter(|c| c["name"] == "gate")
        .map(|c| (c["command"].as_str().unwrap().into(), c["status"].as_str().unwrap().into()))
        .collect();
    assert_eq!(
        gate,
        [
            ("python3 -m unittest".to_string(), "passed".to_string()),
            ("python3 check_style.py".to_string(), "failed".to_string())
        ]
    );
    assert_eq!(branches(&e.repo).trim(), "main");
}

fn assert_refused(e: &TestEnv, keys: serde_json::Value, words: &[&str]) {
    let spec = spec(e, "good", keys);
    let out = run(e, &spec, &[]).code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    for w in words {
        assert!(stderr.contains(w), "stderr lacks {w}: {stderr}");
    }
    assert!(!e.out.exists(), "nothing is written for bad input");
}

#[test]
fn a_gate_together_with_url_or_raw_logs_is_exit_2_naming_the_key() {
    let e = test_env();
    assert_refused(
        &e,
        json!({"prompt": "x", "gate": "make check", "url": "https://github.com/o/r/actions/runs/1"}),
        &["/url", "`gate`"],
    );
    assert_refused(
        &e,
        json!({"prompt": "x", "gate": ["make check"], "raw-logs": "FAILED x\nline"}),
        &["/raw-logs", "`gate`"],
    );
}

#[test]
fn an_empty_gate_or_gate_command_is_exit_2_naming_the_json_path() {
    let e = test_env();
    assert_refused(&e, json!({"prompt": "x", "gate": []}), &["/gate"]);
    assert_refused(&e, json!({"prompt": "x", "gate": ["true", ""]}), &["/gate/1"]);
    assert_refused(&e, json!({"prompt": "x", "gate": ["  "]}), &["/gate/0", "empty command"]);
    assert_refused(&e, json!({"prompt": "x", "gate": ""}), &["/gate"]);
    // Without a gate, `deterministic` stays required.
    assert_refused(&e, json!({"prompt": "x", "raw-logs": "a\nb"}), &["deterministic"]);
    let out = fixci_in(&e)
        .args(["run", "--gate", "", "--out"])
        .arg(&e.out)
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("/gate/0"), "{stderr}");
    assert!(!e.out.exists());
}

/// SHA-256 of every file under `dir` (symlinks by their target), by relative path.
fn tree_hashes(dir: &Path) -> std::collections::BTreeMap<String, String> {
    fn walk(root: &Path, d: &Path, out: &mut std::collections::BTreeMap<String, String>) {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                walk(root, &p, out);
            } else if t.is_symlink() {
                out.insert(rel, std::fs::read_link(&p).unwrap().display().to_string());
            } else {
                out.insert(rel, fixci::verify::record::sha256_hex(&std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn retry_after_an_escalated_run_reuses_the_reproduction_follows_the_steer_and_succeeds() {
    let e = test_env();
    let spec = spec(
        &e,
        "steer",
        json!({"deterministic": true, "prompt": "test_mean fails in CI. Fix it.", "raw-logs": CI_LOG, "max-attempts": 1}),
    );
    run(&e, &spec, &[]).code(1);
    let first = run_dir(&e.out);
    assert_eq!(result(&first)["status"], "escalated");
    let first_id = first.file_name().unwrap().to_string_lossy().into_owned();
    let before = tree_hashes(&first);

    let steer = "DIVIDE-BY-LEN: the mean must divide by the number of items";
    let out = fixci_in(&e)
        .args(["retry", &first_id[..first_id.len() - 3], "--prompt", steer, "--max-attempts", "2", "--out"])
        .arg(&e.out)
        .assert()
        .code(0);
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(stdout.contains("status: success"), "{stdout}");
    // The earlier run is untouched, byte for byte.
    assert_eq!(tree_hashes(&first), before, "the earlier run directory changed");
    let second = std::fs::read_dir(&e.out)
        .unwrap()
        .flatten()
        .map(|d| d.path())
        .find(|p| *p != first)
        .expect("a new run directory");
    let st = state(&second);
    assert_eq!(st["status"], "success");
    assert_eq!(st["retry_of"]["run_id"], first_id.as_str());
    assert_eq!(st["retry_of"]["steer"], steer);
    // The reproduce and confirm stages did not run again: recorded as reused, no stage folder.
    assert!(!second.join("stages/reproduce").exists());
    assert!(!second.join("stages/confirm").exists());
    for id in ["reproduce", "confirm"] {
        let rec = st["stages"].as_array().unwrap().iter().find(|s| s["id"] == id).unwrap();
        assert_eq!(rec["status"], "skipped");
        assert!(rec["summary"].as_str().unwrap().contains(&first_id), "{rec}");
    }
    // The same test bytes as the earlier run confirmed.
    let old_st = state(&first);
    assert_eq!(st["repro"]["sealed"]["sha256"], old_st["repro"]["sealed"]["sha256"]);
    assert!(st["repro"]["confirmed"].as_bool().unwrap());
    // The first prompt carries the steer and the earlier attempt's diff and failure.
    let prompt = std::fs::read_to_string(second.join("stages/fix/attempt-1/prompt.md")).unwrap();
    assert!(prompt.contains(steer), "{prompt}");
    assert!(prompt.contains("len(xs) - 1.0"), "the earlier diff is in the prompt:\n{prompt}");
    assert_eq!(st["attempts"].as_array().unwrap().len(), 1);
    // result.json and the report name the earlier run.
    assert_eq!(result(&second)["retry_of"]["run_id"], first_id.as_str());
    let report = std::fs::read_to_string(second.join("report.md")).unwrap();
    assert!(report.contains(&first_id) && report.contains(steer), "{report}");
    // Both runs are listed, with the link.
    let list = fixci_in(&e).args(["list", "--out"]).arg(&e.out).assert().code(0);
    let list = String::from_utf8_lossy(&list.get_output().stdout).into_owned();
    let second_id = second.file_name().unwrap().to_string_lossy().into_owned();
    assert!(list.contains(&first_id) && list.contains(&second_id), "{list}");
    assert!(list.contains(&format!("(retry of {first_id})")), "{list}");
    let json = fixci_in(&e).args(["list", "--json", "--out"]).arg(&e.out).assert().code(0);
    let rows: serde_json::Value = serde_json::from_slice(&json.get_output().stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 2);
}

#[test]
fn retry_of_an_unknown_or_running_run_is_exit_2_naming_the_run_and_writes_nothing() {
    let e = test_env();
    std::fs::create_dir_all(&e.out).unwrap();
    let out = fixci_in(&e)
        .args(["retry", "no-such-run", "--out"])
        .arg(&e.out)
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("no-such-run"), "{stderr}");
    assert_eq!(std::fs::read_dir(&e.out).unwrap().count(), 0);

    // A run whose gate hangs: its fixci process is alive while the retry is asked for.
    // Outside the spec's folder, which test and gate commands see read-only.
    let elsewhere = tempfile::tempdir().unwrap();
    let marker = elsewhere.path().join("gate-started");
    let spec = spec(
        &e,
        "good",
        json!({"prompt": "x", "gate": format!("touch {}; sleep 60", marker.display())}),
    );
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_fixci"))
        .current_dir(&e.root)
        .env("FIXCI_CACHE_DIR", e.root.join("cache"))
        .env_remove("GITHUB_TOKEN")
        .args(["run", spec.to_str().unwrap(), "--out", e.out.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !marker.exists() {
        assert!(child.try_wait().unwrap().is_none(), "fixci ended before its gate started");
        assert!(std::time::Instant::now() < until, "the gate never started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let running = run_dir(&e.out);
    let id = running.file_name().unwrap().to_string_lossy().into_owned();
    let out = fixci_in(&e)
        .args(["retry", &id, "--prompt", "steer", "--out"])
        .arg(&e.out)
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains(&id) && stderr.contains("still running"), "{stderr}");
    assert_eq!(std::fs::read_dir(&e.out).unwrap().count(), 1, "no new run directory");
    // SAFETY: kill has no memory-safety preconditions; the child is ours.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(child.wait().unwrap().code(), Some(130));
}

#[test]
fn retry_of_an_escalated_gate_run_reuses_the_failing_gate_and_verifies_the_whole_gate() {
    let e = test_env();
    let spec = spec(
        &e,
        "steer",
        json!({"prompt": "The suite is red.", "gate": "python3 -m unittest", "max-attempts": 1}),
    );
    run(&e, &spec, &[]).code(1);
    let first = run_dir(&e.out);
    assert_eq!(result(&first)["status"], "escalated");
    let first_id = first.file_name().unwrap().to_string_lossy().into_owned();
    // From another directory: the retry still works on the earlier run's repository.
    fixci_in(&e)
        .current_dir("/")
        .args(["retry", &first_id, "--prompt", "DIVIDE-BY-LEN", "--out"])
        .arg(&e.out)
        .assert()
        .code(0);
    let second = std::fs::read_dir(&e.out)
        .unwrap()
        .flatten()
        .map(|d| d.path())
        .find(|p| *p != first)
        .unwrap();
    let st = state(&second);
    assert_eq!(st["status"], "success", "{:#}", st["reason"]);
    assert!(!second.join("stages/gate").exists(), "the gate at the base is not run again");
    assert_eq!(st["retry_of"]["reused"], json!(["gate"]));
    assert_eq!(st["gate"], state(&first)["gate"]);
    let checks = st["attempts"][0]["checks"]["checks"].as_array().unwrap();
    assert!(
        checks.iter().any(|c| c["name"] == "gate" && c["status"] == "passed"),
        "{checks:?}"
    );
}
