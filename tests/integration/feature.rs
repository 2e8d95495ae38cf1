//! The `feature` pipeline end to end: an issue (a Markdown `issue-file`, or `issue = "o/r#1"`
//! from a mocked GitHub API) becomes acceptance tests written first, confirmed failing at the base
//! commit, an implementation verified in a sealed checkout, and a fix commit holding the tests.
//! Real git repositories, real test processes, a scripted agent (python3).

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::*;

/// The scripted agent: `FIXCI_STAGE` is `tests` (write acceptance tests) or `implement`; the mode
/// (first argument) picks the behaviour: `good` (tests of a new `median`, then an
/// implementation), `tests-pass` (a "test" of behaviour that already exists), `tests-syntax` (a
/// broken test file), `weaken` (the implementation agent rewrites the acceptance tests to pass and
/// implements nothing).
const FEATURE_AGENT: &str = r#"
import json, os, pathlib, sys
mode = sys.argv[1]
stage = os.environ["FIXCI_STAGE"]
stage_dir = pathlib.Path(os.environ["FIXCI_STAGE_DIR"])
prompt = pathlib.Path(os.environ["FIXCI_PROMPT_FILE"]).read_text()
(stage_dir / "seen-prompt.md").write_text(prompt)
test = pathlib.Path("tests/test_median.py")
if stage == "tests":
    if mode == "tests-pass":
        body = "from mathlib.stats import mean\n\n\nclass T(unittest.TestCase):\n    def test_mean(self):\n        self.assertEqual(mean([1, 2, 3]), 2)\n"
    elif mode == "tests-syntax":
        body = "from mathlib.stats import median\n\n\nclass T(unittest.TestCase):\n    def test_median(self:\n        pass\n"
    else:
        body = ("from mathlib.stats import median\n\n\nclass T(unittest.TestCase):\n"
                "    def test_odd(self):\n        self.assertEqual(median([3, 1, 2]), 2)\n\n"
                "    def test_even(self):\n        self.assertEqual(median([4, 1, 3, 2]), 2.5)\n")
    test.write_text("import unittest\n" + body)
    (stage_dir / "repro.json").write_text(json.dumps({"test_file": str(test), "command": "python3 -m unittest tests.test_median"}))
elif stage == "implement":
    if mode == "weaken":
        test.write_text("import unittest\n\n\nclass T(unittest.TestCase):\n    def test_odd(self):\n        self.assertTrue(True)\n")
        pathlib.Path("mathlib/stats.py").write_text(pathlib.Path("mathlib/stats.py").read_text() + "\n# median: later\n")
    else:
        stats = pathlib.Path("mathlib/stats.py")
        stats.write_text(stats.read_text() + "\n\ndef median(xs):\n    s = sorted(xs)\n    n = len(s)\n    mid = n // 2\n    return s[mid] if n % 2 else (s[mid - 1] + s[mid]) / 2\n")
        (stage_dir / "root-cause.md").write_text("Added mathlib.stats.median: sorts the values and takes the middle one.")
"#;

const ISSUE_MD: &str = "# Add a median function to mathlib.stats\n\n`median(xs)` returns the middle value of a non-empty list; for an even length, the mean of the two middle values.\n";

type Env = TestEnv;

/// A repository, the agent and a feature spec (`extra` keys merged in); returns the spec path.
fn setup(mode: &str, extra: Value) -> (Env, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let repo = root.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    stats_repo(&repo, "len(xs)");
    std::fs::write(root.join("agent.py"), FEATURE_AGENT).unwrap();
    std::fs::write(root.join("issue.md"), ISSUE_MD).unwrap();
    let mut spec = json!({
        "deterministic": true,
        "prompt": "Build the feature the issue asks for.",
        "issue-file": "issue.md",
        "repo": repo.display().to_string(),
        "agent": {"command": ["python3", "agent.py", mode]},
        "budgets": {"tests": "60s", "implement": "60s"},
        "suite-command": "python3 -m unittest discover -s tests -t .",
        "max-attempts": 1,
        "verify-runs": 2,
    });
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            spec.as_object_mut().unwrap().remove(k);
        } else {
            spec[k] = v.clone();
        }
    }
    let p = root.join("info.json");
    std::fs::write(&p, serde_json::to_string_pretty(&spec).unwrap()).unwrap();
    let out = root.join("out");
    (
        Env {
            _tmp: tmp,
            root,
            repo,
            out,
        },
        p,
    )
}

/// `fixci run --no-pr` (see [`crate::run::run`]).
fn run(e: &Env, spec: &Path, extra: &[&str]) -> assert_cmd::assert::Assert {
    crate::run::run(e, spec, &[&["--no-pr"], extra].concat())
}

fn stage_ids(r: &Value) -> Vec<String> {
    r["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

/// The successful run's checks: tests first, confirmed failing for the missing name, the
/// implementation verified, the tests in the fix commit with the agent's bytes.
fn assert_feature_built(e: &Env, issue_title: &str) {
    let run = run_dir(&e.out);
    let r = result(&run);
    assert_eq!(r["status"], "success", "{r:#}");
    assert_eq!(r["pipeline"], "feature");
    let ids = stage_ids(&r);
    let pos = |id: &str| {
        ids.iter()
            .position(|s| s == id)
            .unwrap_or_else(|| panic!("{id} in {ids:?}"))
    };
    assert!(
        pos("tests") < pos("confirm") && pos("confirm") < pos("implement"),
        "{ids:?}"
    );
    assert!(!ids.contains(&"strip-test".to_string()));
    let confirm = &r["stages"][pos("confirm")];
    assert_eq!(confirm["status"], "passed", "{confirm}");
    // The confirmation saw the missing name, not a broken test.
    let out = std::fs::read_to_string(run.join("stages/confirm/run-1.log")).unwrap();
    assert!(out.contains("cannot import name 'median'"), "{out}");
    let tests_prompt = std::fs::read_to_string(run.join("stages/tests/prompt.md")).unwrap();
    assert!(tests_prompt.contains(issue_title), "{tests_prompt}");
    assert!(tests_prompt.contains("acceptance tests"));
    let impl_prompt =
        std::fs::read_to_string(run.join("stages/implement/attempt-1/prompt.md")).unwrap();
    assert!(impl_prompt.contains("tests/test_median.py") && impl_prompt.contains(issue_title));
    // The fix commit in the user's repository holds the implementation and the tests.
    let branch = r["branch"].as_str().unwrap().to_string();
    let files = git(&e.repo, &["show", "--name-only", "--format=", &branch]);
    let files: Vec<&str> = files.lines().collect();
    assert!(
        files.contains(&"tests/test_median.py") && files.contains(&"mathlib/stats.py"),
        "{files:?}"
    );
    let kept = git(
        &e.repo,
        &["show", &format!("{branch}:tests/test_median.py")],
    );
    assert!(kept.contains("median([4, 1, 3, 2]), 2.5"), "{kept}");
    let subject = git(&e.repo, &["log", "-1", "--format=%s", &branch]);
    assert!(subject.starts_with("Feature: "), "{subject}");
    // Report and PR text are worded for a feature.
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    for s in [
        "## What was asked",
        issue_title,
        "## What was built",
        "## The tests that prove it",
        "Added mathlib.stats.median",
    ] {
        assert!(report.contains(s), "report lacks {s}:\n{report}");
    }
    let pr = std::fs::read_to_string(run.join("pr.md")).unwrap();
    for s in [
        "## What was asked",
        "## The tests that prove it",
        "tests/test_median.py",
        "included in this change",
    ] {
        assert!(pr.contains(s), "pr.md lacks {s}:\n{pr}");
    }
    assert!(
        !pr.contains("Root cause") && !pr.contains("## Reproduction"),
        "{pr}"
    );
}

#[test]
fn a_feature_from_an_issue_file_gets_tests_first_then_a_verified_implementation_with_the_tests_kept()
 {
    let (e, spec) = setup("good", json!({}));
    run(&e, &spec, &[]).code(0);
    assert_feature_built(&e, "Add a median function to mathlib.stats");
}

#[test]
fn a_test_that_already_passes_at_the_base_is_refused() {
    let (e, spec) = setup("tests-pass", json!({}));
    run(&e, &spec, &[]).code(1);
    let run = run_dir(&e.out);
    let r = result(&run);
    assert_eq!(r["status"], "failed");
    assert_eq!(
        r["reason"],
        "the acceptance tests do not show the behaviour missing at the base commit"
    );
    assert!(
        !run.join("stages/implement").exists(),
        "no implementation ran"
    );
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(
        report.contains("already pass at the base commit"),
        "{report}"
    );
    assert!(report.contains("## What was asked"), "{report}");
}

#[test]
fn a_broken_test_file_is_not_missing_behaviour() {
    let (e, spec) = setup("tests-syntax", json!({}));
    run(&e, &spec, &[]).code(1);
    let r = result(&run_dir(&e.out));
    assert_eq!(r["status"], "failed");
    let confirm = r["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "confirm")
        .unwrap();
    assert!(
        confirm["summary"]
            .as_str()
            .unwrap()
            .contains("syntax error"),
        "{confirm}"
    );
}

#[test]
fn an_implementation_that_weakens_the_acceptance_tests_is_refused() {
    let (e, spec) = setup("weaken", json!({}));
    run(&e, &spec, &[]).code(1);
    let run = run_dir(&e.out);
    let r = result(&run);
    assert_ne!(r["status"], "success");
    let reason = r["attempts"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("refused") && reason.contains("modified the acceptance tests"),
        "{reason}"
    );
    // Nothing reached the user's repository.
    assert!(r["commit"].is_null(), "{r:#}");
}

#[test]
fn a_feature_from_a_github_issue_fetched_by_reference() {
    // A real issue answer's shape (the recorded PyGithub issue), retitled for this repository.
    let Some(fx) = fixtures() else { return };
    let rec: Value =
        serde_json::from_str(&std::fs::read_to_string(fx.join("github/issue.json")).unwrap())
            .unwrap();
    let mut body = rec["exchanges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["path"].as_str().unwrap().contains("/issues/"))
        .unwrap()["body"]
        .clone();
    body["number"] = 1.into();
    body["title"] = "Support the median of a list".into();
    body["body"] = "mathlib.stats should have `median(xs)`: the middle value, or the mean of the two middle values.".into();
    body["html_url"] = "https://github.com/o/r/issues/1".into();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(MockServer::start());
    rt.block_on(
        Mock::given(method("GET"))
            .and(path("/repos/o/r/issues/1"))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
            .mount(&server),
    );
    let (e, spec) = setup("good", json!({"issue-file": null, "issue": "o/r#1"}));
    run(&e, &spec, &["--api-url", &server.uri()]).code(0);
    assert_feature_built(&e, "Support the median of a list");
    let r = result(&run_dir(&e.out));
    assert_eq!(r["pipeline"], "feature");
    let report = std::fs::read_to_string(run_dir(&e.out).join("report.md")).unwrap();
    assert!(
        report.contains("https://github.com/o/r/issues/1"),
        "{report}"
    );
}

#[test]
fn bad_feature_inputs_exit_2_naming_the_key_and_write_nothing() {
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            json!({"issue-file": "missing-issue.md"}),
            vec!["/issue-file", "missing-issue.md", "does not exist"],
        ),
        (
            json!({"issue-file": null, "issue": "o/r/1"}),
            vec!["/issue"],
        ),
        (
            json!({"issue-file": null, "issue": "not an issue"}),
            vec!["/issue"],
        ),
        (
            json!({"pipeline": "feature", "raw-logs": "a\nb"}),
            vec!["/raw-logs", "pipeline `feature`"],
        ),
        (
            json!({"pipeline": "feature", "issue-file": null, "raw-logs": "a\nb"}),
            vec!["/issue", "`issue-file`"],
        ),
    ];
    for (extra, words) in cases {
        let (e, spec) = setup("good", extra.clone());
        let out = run(&e, &spec, &[]).code(2).get_output().clone();
        let err = String::from_utf8_lossy(&out.stderr);
        for w in &words {
            assert!(err.contains(w), "{extra}: `{w}` not in: {err}");
        }
        assert!(
            err.contains("info.json"),
            "{extra}: the file is named: {err}"
        );
        assert!(
            !e.out.exists(),
            "{extra}: the run wrote {}",
            e.out.display()
        );
        let branches = git(&e.repo, &["branch", "--list"]);
        assert_eq!(branches.trim(), "* main", "{extra}");
    }
}

#[test]
fn validate_and_dry_run_show_the_feature_pipeline() {
    let (e, spec) = setup("good", json!({}));
    let out = fixci()
        .current_dir(&e.root)
        .arg("validate")
        .arg(&spec)
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8_lossy(&out);
    assert!(out.contains("pipeline `feature`"), "{out}");
    let out = fixci()
        .current_dir(&e.root)
        .args(["run", "--dry-run", "--out"])
        .arg(&e.out)
        .arg(&spec)
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let plan = String::from_utf8_lossy(&out);
    for s in [
        "feature",
        "tests",
        "acceptance",
        "implement",
        "Add a median function to mathlib.stats",
    ] {
        assert!(plan.contains(s), "plan lacks {s}:\n{plan}");
    }
    assert!(!e.out.exists());
}
