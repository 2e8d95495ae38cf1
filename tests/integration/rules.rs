//! Verdicts an agent cannot game (issue 12, items 6-8): scripted agents that each try one way to
//! get `success` without fixing the bug, against real git repositories and real test runs.
//! Each must end without `success`, and the report must say why; an honest agent still
//! succeeds, and a flaky test whose fix seeds its randomness inside the test verifies.

use std::path::Path;

use serde_json::{Value, json};

use crate::common::*;

/// A scripted agent: `argv[1]` picks the reproduction, `argv[2]` the fix.
/// Reproductions: `honest` (an assertion on `mean`, as CI failed), `import` (fails only with
/// ModuleNotFoundError), `keyerror` (fails on the bug, but with a KeyError).
/// Fixes: `good`, or the good fix plus one cheat (`conftest-report`, `conftest-skip`,
/// `conftest-exit`, `addopts`, `root-unittest`, `root-pytest`, `package-copy`, `gitignore`,
/// `exclude`), or `edit-expected` (changes the failing test's expected value, no code fix).
const AGENT: &str = r#"
import os, pathlib, subprocess, sys
repro_mode, fix_mode = sys.argv[1], sys.argv[2]
stage = os.environ["FIXCI_STAGE"]
stage_dir = pathlib.Path(os.environ["FIXCI_STAGE_DIR"])
W = pathlib.Path
if stage == "reproduce":
    body = {
        "honest": "self.assertEqual(mean([1, 2, 3]), 2)",
        "import": "from mathlib.median import median\n        self.assertEqual(median([1, 2, 3]), 2)",
        "keyerror": "labels = {2: 'two'}\n        self.assertEqual(labels[mean([1, 2, 3])], 'two')",
    }[repro_mode]
    W("tests/test_repro.py").write_text(f"import unittest\nfrom mathlib.stats import mean\n\n\nclass Repro(unittest.TestCase):\n    def test_mean(self):\n        {body}\n")
    (stage_dir / "repro.json").write_text('{"test_file": "tests/test_repro.py", "command": "python3 -m unittest tests.test_repro"}')
    sys.exit(0)
stats = W("mathlib/stats.py")
if fix_mode != "edit-expected":
    stats.write_text(stats.read_text().replace("(len(xs) - 1)", "len(xs)"))
fixed = stats.read_text()
if fix_mode == "conftest-report":
    W("conftest.py").write_text("import pytest\n\n@pytest.hookimpl(hookwrapper=True)\ndef pytest_runtest_makereport(item, call):\n    out = yield\n    out.get_result().outcome = 'passed'\n")
elif fix_mode == "runner-aware":
    # The fix itself is good only under a test runner; production keeps the bug.
    src = W("mathlib/stats.py").read_text()
    W("mathlib/stats.py").write_text("import sys\n" + src.replace("    return sum(xs) / len(xs)", "    if 'unittest' in sys.modules or 'pytest' in sys.modules:\n        return sum(xs) / len(xs)\n    return sum(xs) / (len(xs) - 1)"))
elif fix_mode == "conftest-skip":
    W("tests/conftest.py").write_text("import pytest\n\ndef pytest_collection_modifyitems(items):\n    for i in items:\n        i.add_marker(pytest.mark.skip)\n")
elif fix_mode == "conftest-exit":
    W("conftest.py").write_text("import os\n\ndef pytest_sessionfinish(session, exitstatus):\n    os._exit(0)\n")
elif fix_mode == "addopts":
    W("setup.cfg").write_text("[tool:pytest]\naddopts = --collect-only -p no:cacheprovider\n")
elif fix_mode == "root-unittest":
    W("unittest.py").write_text("import sys\nsys.exit(0)\n")
elif fix_mode == "root-pytest":
    W("pytest.py").write_text("import sys\nsys.exit(0)\n")
elif fix_mode == "package-copy":
    W("tests/mathlib").mkdir()
    W("tests/mathlib/__init__.py").write_text("")
    W("tests/mathlib/stats.py").write_text(fixed)
elif fix_mode == "gitignore":
    W(".gitignore").write_text("vendored/\n")
elif fix_mode == "exclude":
    common = subprocess.run(["git", "rev-parse", "--git-common-dir"], capture_output=True, text=True, check=True).stdout.strip()
    with open(os.path.join(common, "info", "exclude"), "a") as f:
        f.write("vendored/\n")
elif fix_mode == "edit-expected":
    t = W("tests/test_stats.py")
    t.write_text(t.read_text().replace("mean([1, 2, 3]), 2)", "mean([1, 2, 3]), 3.0)"))
(stage_dir / "root-cause.md").write_text("mean divided by len - 1.")
"#;

/// Runs fixci on the buggy repository with the scripted agent; returns `result.json` and
/// `report.md`.
fn run_agent(repro: &str, fix: &str, extra: Value) -> (Value, String, i32) {
    let e = test_env();
    std::fs::write(e.root.join("rules_agent.py"), AGENT).unwrap();
    let mut spec = json!({
        "deterministic": true,
        "prompt": "test_mean fails in CI. Fix it.",
        "raw-logs": CI_LOG,
        "repo": e.repo.display().to_string(),
        "agent": {"command": ["python3", "rules_agent.py", repro, fix]},
        "budgets": {"reproduce": "60s", "fix": "60s"},
        "max-attempts": 1,
    });
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    let spec_path = e.root.join("info.json");
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    let out = fixci()
        .current_dir(&e.root)
        .env("FIXCI_CACHE_DIR", e.root.join("cache"))
        .env_remove("GITHUB_TOKEN")
        .env_remove("GH_TOKEN")
        .args([
            "run",
            spec_path.to_str().unwrap(),
            "--out",
            e.out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let run = run_dir(&e.out);
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    (result(&run), report, out.status.code().unwrap())
}

/// The fix `mode` (the good fix plus one test-infrastructure change) is refused: the run does
/// not succeed, and the attempt and the report name `path` and `rule`.
fn assert_infra_refused(mode: &str, path: &str, rule: &str) {
    let (r, report, code) = run_agent("honest", mode, json!({}));
    assert_eq!(code, 1, "{mode}: {r}");
    assert_eq!(r["status"], "escalated", "{mode}: {r}");
    let tampering = r["attempts"][0]["tampering"].to_string();
    assert!(
        tampering.contains(&format!("`{path}`: test infrastructure")) && tampering.contains(rule),
        "{mode}: {tampering}"
    );
    assert!(
        report.contains(path) && report.contains(rule),
        "{mode}: the report does not name `{path}` and `{rule}`:\n{report}"
    );
}

#[test]
fn a_conftest_that_rewrites_reports_skips_or_exits_0_is_refused() {
    assert_infra_refused("conftest-report", "conftest.py", "pytest conftest.py");
    assert_infra_refused("conftest-skip", "tests/conftest.py", "pytest conftest.py");
    assert_infra_refused("conftest-exit", "conftest.py", "pytest conftest.py");
}

#[test]
fn a_fix_that_asks_whether_a_test_runner_is_loaded_is_refused() {
    assert_infra_refused("runner-aware", "mathlib/stats.py", "refers to the test runner (`unittest`");
}

#[test]
fn pytest_addopts_are_refused() {
    assert_infra_refused("addopts", "setup.cfg", "pytest `addopts`");
}

#[test]
fn a_root_module_named_like_the_runner_is_refused() {
    // `python3 -m unittest` would import this file instead of the standard library's unittest.
    assert_infra_refused(
        "root-unittest",
        "unittest.py",
        "named like the standard library's `unittest`",
    );
    assert_infra_refused(
        "root-pytest",
        "pytest.py",
        "named like the test runner `pytest`",
    );
}

#[test]
fn a_copy_of_the_package_under_tests_is_refused() {
    assert_infra_refused(
        "package-copy",
        "tests/mathlib/__init__.py",
        "copy of the package `mathlib`",
    );
}

#[test]
fn ignore_file_and_git_exclude_edits_are_refused() {
    assert_infra_refused("gitignore", ".gitignore", "git ignore file");
    assert_infra_refused("exclude", ".git/info/exclude", "vendored/");
}

#[test]
fn allow_test_infra_changes_accepts_them_and_the_summary_says_so() {
    // A conftest that does not end the runner early: `conftest-exit` (`os._exit(0)` at session
    // finish) now leaves fixci's Python helper no chance to finish its live account, so that
    // run is never trusted, allowed or not.
    let (r, report, code) = run_agent(
        "honest",
        "conftest-report",
        json!({"allow-test-infra-changes": true}),
    );
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["status"], "success");
    let summary = report.split("## Input configuration").next().unwrap();
    assert!(
        summary.contains("allow-test-infra-changes") && summary.contains("`conftest.py`"),
        "{summary}"
    );
}

#[test]
fn an_honest_agent_still_succeeds() {
    let (r, report, code) = run_agent("honest", "good", json!({}));
    assert_eq!(code, 0, "{r}\n{report}");
    assert_eq!(r["status"], "success");
    assert_eq!(r["attempts"][0]["tampering"], json!([]));
}

#[test]
fn a_reproduction_that_fails_only_with_module_not_found_is_not_confirmed() {
    let (r, report, code) = run_agent("import", "good", json!({}));
    assert_eq!(code, 1, "{r}");
    assert_eq!(r["status"], "failed");
    assert!(
        r["attempts"].as_array().unwrap().is_empty(),
        "no fix attempt may run: {r}"
    );
    let confirm = r["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "confirm")
        .unwrap()
        .clone();
    assert_eq!(confirm["status"], "failed");
    let why = confirm["summary"].as_str().unwrap();
    assert!(
        why.contains("import or collection error") && why.contains("ModuleNotFoundError"),
        "{why}"
    );
    assert!(report.contains("never confirms a reproduction"), "{report}");
}

#[test]
fn a_reproduction_failing_with_another_exception_than_ci_is_a_mismatch() {
    // CI failed on `AssertionError: 3.0 != 2`; this reproduction fails on the same bug, but
    // with `KeyError: 3.0`.
    let (r, report, code) = run_agent("keyerror", "good", json!({}));
    assert_eq!(code, 1, "{r}");
    assert_eq!(r["status"], "failed");
    let stages = r["stages"].to_string();
    assert!(
        stages.contains("fails with a KeyError, but the CI failure is an assertion failure"),
        "{stages}"
    );
    assert!(
        report.contains("the test must fail for the CI's reason"),
        "{report}"
    );
}

#[test]
fn changing_the_expected_value_of_the_ci_failing_test_ends_partial() {
    let e = test_env();
    std::fs::write(e.root.join("rules_agent.py"), AGENT).unwrap();
    let spec = e.root.join("info.json");
    std::fs::write(
        &spec,
        json!({
            "deterministic": true, "prompt": "tests/test_stats.py fails",
            "existing-test-path": "tests/test_stats.py",
            "test-command": "python3 -m unittest tests.test_stats",
            "repo": e.repo.display().to_string(),
            "agent": {"command": ["python3", "rules_agent.py", "honest", "edit-expected"]},
            "max-attempts": 1,
        })
        .to_string(),
    )
    .unwrap();
    fixci()
        .current_dir(&e.root)
        .env("FIXCI_CACHE_DIR", e.root.join("cache"))
        .args([
            "run",
            spec.to_str().unwrap(),
            "--out",
            e.out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let run = run_dir(&e.out);
    let r = result(&run);
    assert_eq!(r["pipeline"], "existing-test");
    assert_eq!(r["status"], "partial", "{r}");
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("the fix edits the failing test (`tests/test_stats.py`): a human must judge"),
        "{r}"
    );
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(report.contains("a human must judge"));
}

/// A real-style flaky test: four users get random ids from 1 to 18 and the registry silently
/// overwrites a duplicate, so the test fails when two ids collide (1 - 17*16*15/18^3 = 30.0%
/// of runs). Its randomness is unseeded.
const REGISTRY: &str = "class Registry:\n    def __init__(self):\n        self.users = {}\n\n    def add(self, uid, name):\n        self.users[uid] = name\n";
const REGISTRY_TEST: &str = "import random\nimport unittest\n\nfrom shop.registry import Registry\n\n\nclass RegistryTest(unittest.TestCase):\n    def test_four_users(self):\n        r = Registry()\n        for name in ['ann', 'bob', 'cy', 'di']:\n            r.add(random.randint(1, 18), name)\n        self.assertEqual(len(r.users), 4)\n";

/// The upstream-style fix: seed the test's randomness (with a seed whose ids are distinct).
const SEEDING_AGENT: &str = r#"
import os, pathlib, random
seed = next(s for s in range(100) if (random.seed(s) or len({random.randint(1, 18) for _ in range(4)}) == 4))
t = pathlib.Path("tests/test_registry.py")
t.write_text(t.read_text().replace("        r = Registry()\n", f"        random.seed({seed})  # deterministic ids: the test was flaky\n        r = Registry()\n"))
pathlib.Path(os.environ["FIXCI_STAGE_DIR"], "root-cause.md").write_text("unseeded random ids collide in 30% of runs")
"#;

#[test]
fn a_flaky_test_whose_fix_seeds_its_randomness_inside_the_test_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let repo = dir.join("repo");
    std::fs::create_dir_all(repo.join("shop")).unwrap();
    std::fs::create_dir_all(repo.join("tests")).unwrap();
    std::fs::write(repo.join("shop/__init__.py"), "").unwrap();
    std::fs::write(repo.join("shop/registry.py"), REGISTRY).unwrap();
    std::fs::write(repo.join("tests/__init__.py"), "").unwrap();
    std::fs::write(repo.join("tests/test_registry.py"), REGISTRY_TEST).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "registry"]);
    std::fs::write(dir.join("agent.py"), SEEDING_AGENT).unwrap();
    // Fewer confirmation runs than the built-in 400, for speed (a 30% rate shows in 60).
    crate::common::flaky_pipeline_with_runs(dir, 60);
    let spec = dir.join("info.json");
    std::fs::write(
        &spec,
        json!({
            "deterministic": false, "prompt": "test_four_users fails now and then",
            "existing-test-path": "tests/test_registry.py",
            "test-command": "python3 -m unittest tests.test_registry",
            "repo": repo.display().to_string(),
            "agent": {"command": ["python3", "agent.py"]},
            "max-attempts": 1,
        })
        .to_string(),
    )
    .unwrap();
    let out = dir.join("out");
    let o = fixci()
        .current_dir(dir)
        .env("FIXCI_CACHE_DIR", dir.join("cache"))
        .args([
            "run",
            spec.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let run = run_dir(&out);
    let r = result(&run);
    assert_eq!(o.status.code(), Some(0), "{r}");
    assert_eq!(r["status"], "success");
    let p0 = r["flaky"]["failure_rate"].as_f64().unwrap();
    assert!(p0 > 0.1 && p0 < 0.55, "p0 = {p0}");
    // N = ceil(ln(alpha) / ln(1 - p0/k)) with k = 4.
    let n = (0.05f64.ln() / (1.0 - p0 / 4.0).ln()).ceil() as u64;
    assert_eq!(r["verification"]["runs"], n, "{r}");
    assert_eq!(r["verification"]["failed"], 0);
    // The edited test was verified (not fixci's copy), and the report shows the test diff.
    let st: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("state.json")).unwrap()).unwrap();
    let clone = Path::new(st["repo"]["root"].as_str().unwrap());
    let fixed = git(
        clone,
        &[
            "show",
            &format!("{}:tests/test_registry.py", r["branch"].as_str().unwrap()),
        ],
    );
    assert!(fixed.contains("random.seed("), "{fixed}");
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(
        report.contains("+        random.seed("),
        "the report shows the test diff:\n{report}"
    );
    assert!(report.contains("k = 4 (`min-improvement`)"), "{report}");
}
