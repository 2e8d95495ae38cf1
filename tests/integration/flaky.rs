//! The flaky pipeline end to end: a repository whose existing (shell) test fails now and then,
//! parallel stress reproduction, a fix verified with the number of runs the formula gives
//! (N = ceil(ln(alpha) / ln(1 - p0/k)), k = `min-improvement` = 4), and a "fix" that only
//! retries once (30% -> 9%) caught by verification in at least 19 of 20 trials.
//!
//! Determinism: every test run takes the next seed from a counter file (under `flock`), so the
//! outcome of run k is fixed by the trial's starting seed; the trials are a fixed seed plan and
//! this test is not itself flaky.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::common::*;

/// The code under test: a worker picker that returns nothing for about `per_mille` seeds in 1000
/// (its check should be `-ge 0`; a CRC of the seed is the "randomness").
fn dispatch(per_mille: u32) -> String {
    format!(
        "pick_worker() {{\n  h=$(printf 'seed-%s' \"$1\" | cksum | cut -d' ' -f1)\n  [ $((h % 1000)) -ge {per_mille} ] && echo \"worker-$((h % 6))\"\n}}\n"
    )
}

/// The existing test: takes the next seed of the plan (a counter file under `flock`).
const TEST: &str = "#!/bin/sh\nseed=$(flock \"$FLAKY_SEED_FILE\" sh -c 'n=$(cat \"$0\"); echo $((n + 1)) > \"$0\"; echo $n' \"$FLAKY_SEED_FILE\")\n. ./app/dispatch.sh\nw=$(pick_worker \"$seed\")\nif [ -z \"$w\" ]; then\n  echo \"FAIL: test_pick_worker (seed $seed)\"\n  echo \"AssertionError: pick_worker returned nothing\"\n  exit 1\nfi\necho ok\n";

const FIX_AGENT: &str = r#"
import os, pathlib, re, sys
p = pathlib.Path("app/dispatch.sh")
src = p.read_text()
if sys.argv[1] == "good":
    p.write_text(re.sub(r"-ge \d+", "-ge 0", src))
else:  # retries once with another draw: 30% -> 9%, without fixing anything
    p.write_text(src.replace("pick_worker() {", "pick_worker_once() {") + 'pick_worker() {\n  pick_worker_once "$1" || pick_worker_once "$1-retry"\n}\n')
pathlib.Path(os.environ["FIXCI_STAGE_DIR"], "root-cause.md").write_text("the range check excluded valid hashes")
"#;

fn flaky_repo(dir: &Path, per_mille: u32) {
    std::fs::create_dir_all(dir.join("app")).unwrap();
    std::fs::create_dir_all(dir.join("tests")).unwrap();
    std::fs::write(dir.join("app/dispatch.sh"), dispatch(per_mille)).unwrap();
    std::fs::write(dir.join("tests/test_dispatch.sh"), TEST).unwrap();
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-qm", "dispatch"]);
}

/// Runs the flaky pipeline once on a test failing `per_mille` runs in 1000, with the seed plan
/// starting at `seed` and `confirm_runs` stress runs before the fix; returns the run directory
/// and the exit code.
fn trial(root: &Path, mode: &str, seed: u64, per_mille: u32, confirm_runs: u64) -> (PathBuf, i32) {
    let dir = root.join(format!("{mode}-{seed}"));
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    flaky_repo(&repo, per_mille);
    std::fs::write(dir.join("fix_agent.py"), FIX_AGENT).unwrap();
    // A pipeline beside the spec overrides the built-in one: fewer confirmation runs for speed.
    crate::common::flaky_pipeline_with_runs(&dir, confirm_runs);
    let spec = dir.join("info.json");
    std::fs::write(
        &spec,
        json!({
            "deterministic": false,
            "prompt": "test_pick_worker fails now and then",
            "existing-test-path": "tests/test_dispatch.sh",
            "test-command": "sh tests/test_dispatch.sh",
            "repo": repo.display().to_string(),
            "agent": {"command": ["python3", "fix_agent.py", mode]},
            "max-attempts": 1,
        })
        .to_string(),
    )
    .unwrap();
    // Outside the spec's folder, which test runs see read-only (fixci's test sandbox).
    let seeds = root.join(format!("{mode}-{seed}.seeds"));
    std::fs::write(&seeds, seed.to_string()).unwrap();
    run_in(&dir, &spec, &[("FLAKY_SEED_FILE", seeds.as_path())])
}

/// `fixci run SPEC --out DIR/out` from `dir` with its own cache and `env`; the run directory
/// and the exit code.
fn run_in(dir: &Path, spec: &Path, env: &[(&str, &Path)]) -> (PathBuf, i32) {
    let out = dir.join("out");
    let mut cmd = fixci();
    cmd.current_dir(dir).env("FIXCI_CACHE_DIR", dir.join("cache"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let code = cmd
        .args([
            "run",
            spec.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap()
        .status
        .code()
        .unwrap();
    (run_dir(&out), code)
}

/// N = ceil(ln(alpha) / ln(1 - p0/k)), computed here independently of fixci.
fn runs_needed(p0: f64, k: f64, alpha: f64) -> u64 {
    (alpha.ln() / (1.0 - p0 / k).ln()).ceil() as u64
}

#[test]
fn a_real_fix_is_verified_with_the_runs_the_formula_gives_and_the_report_states_the_bound() {
    let tmp = tempfile::tempdir().unwrap();
    let (run, code) = trial(tmp.path(), "good", 0, 143, 200);
    let r: Value = result(&run);
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["status"], "success");
    assert_eq!(r["pipeline"], "flaky");
    let p0 = r["flaky"]["failure_rate"].as_f64().unwrap();
    assert!(p0 > 0.03 && p0 < 0.4, "p0 = {p0}");
    // The confirm stage stopped once it had its 20 failures (the seed plan's 20th failing seed
    // is 157), before the 200-run cap.
    let (failures, runs) = (
        r["flaky"]["failures"].as_u64().unwrap(),
        r["flaky"]["runs"].as_u64().unwrap(),
    );
    assert!(
        failures >= 20 && runs < 200,
        "{failures} failures in {runs} runs"
    );
    let lo = r["flaky"]["interval"][0].as_f64().unwrap();
    let hi = r["flaky"]["interval"][1].as_f64().unwrap();
    assert!(lo <= p0 && p0 <= hi);
    let n = runs_needed(p0, 4.0, 0.05);
    assert_eq!(r["verification"]["planned"], n);
    assert_eq!(r["verification"]["runs"], n);
    assert_eq!(r["verification"]["failed"], 0);
    let bound = 1.0 - 0.05f64.powf(1.0 / n as f64);
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(
        report.contains(&format!(
            "failure rate after fix < {bound:.4} at 95% confidence"
        )),
        "{report}"
    );
    assert!(report.contains("Clopper-Pearson"));
}

#[test]
fn a_fix_that_only_retries_once_is_caught_in_at_least_19_of_20_trials() {
    // 30% of runs fail; the "fix" retries once, so 9% still fail. With k = 4 verification makes
    // N = ceil(ln(0.05) / ln(1 - p0/4)) runs (39 at p0 = 0.3): a 9% rate passes them all with
    // probability 0.91^39 = 0.025. The seed plan makes each trial reproducible.
    let tmp = tempfile::tempdir().unwrap();
    let plan: Vec<u64> = (1..=20).map(|i| i * 10_000).collect();
    let mut caught = 0;
    let mut missed = Vec::new();
    for &seed in &plan {
        let (run, code) = trial(tmp.path(), "retry", seed, 300, 100);
        let r = result(&run);
        let p0 = r["flaky"]["failure_rate"].as_f64().unwrap();
        assert!(p0 > 0.1 && p0 < 0.6, "seed {seed}: p0 = {p0}");
        if r["status"] == "escalated" {
            assert_eq!(code, 1);
            assert!(
                r["verification"].is_null() || r["attempts"][0]["verification"]["failed"] == 1,
                "{r}"
            );
            caught += 1;
        } else {
            // When the seeds let it through, it passed the N runs a real fix would have.
            assert_eq!(r["status"], "success", "{r}");
            assert_eq!(r["verification"]["runs"], runs_needed(p0, 4.0, 0.05), "{r}");
            missed.push(seed);
        }
    }
    eprintln!(
        "the retry-once \"fix\" was caught in {caught} of {} trials (missed: {missed:?})",
        plan.len()
    );
    assert!(
        caught >= 19,
        "caught in only {caught} of {} trials (missed: {missed:?})",
        plan.len()
    );
}

/// A real-style flaky Python test: it draws unseeded random numbers and fails about half the
/// time; the code under test is fine.
const PY_TEST: &str = "import random\nimport unittest\n\nfrom app.sample import top\n\n\nclass SampleTest(unittest.TestCase):\n    def test_top_is_below_the_cap(self):\n        rng = random.Random()\n        xs = [rng.random() for _ in range(3)]\n        self.assertLess(top(xs), 0.8)\n";

/// Another test of the repository, which every honest fix leaves passing.
const PY_DOUBLE_TEST: &str = "import unittest\n\nfrom app.sample import double\n\n\nclass DoubleTest(unittest.TestCase):\n    def test_double(self):\n        self.assertEqual(double(7), 14)\n";

/// The code under test: `top` is fine, `double` is what a careless fix breaks; the TODO marker
/// is what the gate trial's lint refuses.
const PY_SAMPLE: &str = "# TODO: tidy\ndef top(xs):\n    return max(xs)\n\n\ndef double(x):\n    return 2 * x\n";

/// `seed`: the real upstream kind of fix, seeding the test's randomness inside the test.
/// `seed-breaks`: the same, and (first attempt only) it breaks `double`, which another test
/// covers. `seed-weakens`: the same break, with that other test's expected value changed to match.
/// `seed-lint`: the seed fix, and the TODO marker the gate refuses removed.
/// `untracked`: a "fix" that only works through a file git does not track (hidden by
/// `.git/info/exclude`), with a tracked change that imports it when present.
const PY_FIX_AGENT: &str = r##"
import os, pathlib, subprocess, sys
mode = sys.argv[1]
attempt = int(os.environ["FIXCI_ATTEMPT"])
if mode == "runtime-seed":
    # The commit leaves the test alone; the module, whenever a test run imports it, seeds the
    # test in the tree it runs in, so every later run there passes.
    s = pathlib.Path("app/sample.py")
    s.write_text(s.read_text() + "\nimport pathlib as _p\n_t = _p.Path('tests/test_sample.py')\nif _t.exists():\n    _t.write_text(_t.read_text().replace('random.Random()', 'random.Random(4)'))\n")
elif mode.startswith("seed"):
    t = pathlib.Path("tests/test_sample.py")
    t.write_text(t.read_text().replace("random.Random()", "random.Random(4)"))
    s = pathlib.Path("app/sample.py")
    src = s.read_text().replace("return 2 * x + 1", "return 2 * x")
    if mode in ("seed-breaks", "seed-weakens") and attempt == 1:
        src = src.replace("return 2 * x", "return 2 * x + 1")
    if mode == "seed-weakens":
        d = pathlib.Path("tests/test_double.py")
        d.write_text(d.read_text().replace("double(7), 14)", "double(7), 15)"))
    if mode == "seed-lint":
        src = src.replace("# TODO: tidy\n", "")
    s.write_text(src)
else:
    common = subprocess.check_output(["git", "rev-parse", "--git-common-dir"], text=True).strip()
    info = pathlib.Path(common, "info")
    info.mkdir(exist_ok=True)
    with open(info / "exclude", "a") as f:
        f.write("app/_local.py\n")
    pathlib.Path("app/_local.py").write_text("def top(xs):\n    return 0.0\n")
    s = pathlib.Path("app/sample.py")
    s.write_text("try:\n    from app._local import top  # noqa\nexcept ImportError:\n" + "".join("    " + l + "\n" for l in s.read_text().splitlines()))
pathlib.Path(os.environ["FIXCI_STAGE_DIR"], "root-cause.md").write_text("the test drew unseeded random numbers")
"##;

/// Runs the flaky pipeline on the Python repository with the fix agent in `mode`.
fn py_trial(root: &Path, mode: &str) -> (PathBuf, i32) {
    py_trial_with(root, mode, json!({}))
}

/// [`py_trial`] with more spec keys (`keys` overrides the defaults).
fn py_trial_with(root: &Path, mode: &str, keys: Value) -> (PathBuf, i32) {
    let dir = root.join(mode);
    let repo = dir.join("repo");
    std::fs::create_dir_all(repo.join("app")).unwrap();
    std::fs::create_dir_all(repo.join("tests")).unwrap();
    std::fs::write(repo.join("app/__init__.py"), "").unwrap();
    std::fs::write(repo.join("app/sample.py"), PY_SAMPLE).unwrap();
    std::fs::write(repo.join("tests/__init__.py"), "").unwrap();
    std::fs::write(repo.join("tests/test_sample.py"), PY_TEST).unwrap();
    std::fs::write(repo.join("tests/test_double.py"), PY_DOUBLE_TEST).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "sample"]);
    std::fs::write(dir.join("fix_agent.py"), PY_FIX_AGENT).unwrap();
    crate::common::flaky_pipeline_with_runs(&dir, 80);
    let spec = dir.join("info.json");
    let mut doc = json!({
        "deterministic": false,
        "prompt": "test_top_is_below_the_cap fails now and then",
        "existing-test-path": "tests/test_sample.py",
        "repo": repo.display().to_string(),
        "agent": {"command": ["python3", "fix_agent.py", mode]},
        "max-attempts": 1,
        "allow-test-infra-changes": true,
        "sandbox": "none",
    });
    for (k, v) in keys.as_object().unwrap() {
        doc[k] = v.clone();
    }
    std::fs::write(&spec, doc.to_string()).unwrap();
    run_in(&dir, &spec, &[])
}

/// The trial's result, report, state and the first check of its first attempt.
fn py_outcome(root: &Path, mode: &str) -> (i32, Value, String, Value, Value) {
    let (run, code) = py_trial(root, mode);
    let r = result(&run);
    let rep = std::fs::read_to_string(run.join("report.md")).unwrap();
    let st: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("state.json")).unwrap()).unwrap();
    let check = st["attempts"][0]["checks"]["checks"][0].clone();
    (code, r, rep, st, check)
}

#[test]
fn a_fix_that_seeds_the_tests_randomness_verifies_in_the_sealed_tree_and_succeeds() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, r, rep, st, check) = py_outcome(tmp.path(), "seed");
    assert_eq!(code, 0, "{rep}");
    assert_eq!(r["status"], "success", "{rep}");
    let p0 = r["flaky"]["failure_rate"].as_f64().unwrap();
    assert!(p0 > 0.2 && p0 < 0.8, "p0 = {p0}");
    let n = runs_needed(p0, 4.0, 0.05);
    assert_eq!(r["verification"]["runs"], n, "{r}");
    // The verified commit is the proposed one, and it holds the edited (seeded) test.
    let verified = st["attempts"][0]["checks"]["commit"].as_str().unwrap();
    assert_eq!(st["commit"].as_str().unwrap(), verified);
    assert_eq!(check["status"], "passed", "{check}");
    // The stress runs were judged by the runner's report, naming the CI's test.
    assert_ne!(check["evidence"], "exit-code", "{check}");
    assert!(
        st["repro"]["sealed"]["failing_ids"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i.as_str().unwrap().ends_with("test_top_is_below_the_cap")),
        "{}",
        st["repro"]
    );
    let clone = PathBuf::from(st["repo"]["root"].as_str().unwrap());
    let test = git(
        &clone,
        &["show", &format!("{verified}:tests/test_sample.py")],
    );
    assert!(test.contains("random.Random(4)"), "{test}");
    // The statistical check and the regression check ran on that one commit: the other test of
    // the folder still passes (the stressed test, one run of which is chance, is left out).
    assert_eq!(check_names(&st, 0), ["reproduction", "ci-tests", "regressions"], "{st}");
    let reg = &st["attempts"][0]["checks"]["checks"][2];
    assert_eq!(reg["status"], "passed", "{reg}");
    assert_eq!(reg["evidence"], "junit", "{reg}");
    assert!(
        st["base_suite"]["passed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i.as_str().unwrap().ends_with("test_double")),
        "{}",
        st["base_suite"]
    );
}

/// The names of the checks recorded for attempt `k` (0-based).
fn check_names(st: &Value, k: usize) -> Vec<String> {
    st["attempts"][k]["checks"]["checks"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

/// The check named `name` of attempt `k` (0-based).
fn check_of(st: &Value, k: usize, name: &str) -> Value {
    st["attempts"][k]["checks"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no {name} check in attempt {}: {st}", k + 1))
}

#[test]
fn a_flaky_fix_that_breaks_another_test_fails_its_attempt_and_the_regression_reaches_the_next_prompt() {
    let tmp = tempfile::tempdir().unwrap();
    let (run, code) = py_trial_with(tmp.path(), "seed-breaks", json!({"max-attempts": 2}));
    let rep = std::fs::read_to_string(run.join("report.md")).unwrap();
    let st: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("state.json")).unwrap()).unwrap();
    // Attempt 1 really fixes the flake (the statistical check passes) but breaks `double`.
    assert_eq!(st["attempts"][0]["outcome"], "failed", "{rep}");
    assert_eq!(check_of(&st, 0, "reproduction")["status"], "passed", "{st}");
    let reg = check_of(&st, 0, "regressions");
    assert_eq!(reg["status"], "failed", "{reg}");
    assert!(reg["detail"].as_str().unwrap().contains("test_double"), "{reg}");
    // Both checks were run on the same candidate commit, recorded together.
    assert_eq!(check_names(&st, 0), ["reproduction", "ci-tests", "regressions"], "{st}");
    let r1 = result(&run);
    let reason = r1["attempts"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("regressions") && reason.contains("test_double"), "{r1}");
    // The regression's output is in the next attempt's prompt.
    let prompt2 = std::fs::read_to_string(run.join("stages/fix/attempt-2/prompt.md")).unwrap();
    assert!(prompt2.contains("breaks tests that passed before it"), "{prompt2}");
    assert!(prompt2.contains("test_double"), "{prompt2}");
    assert!(prompt2.contains("15 != 14") || prompt2.contains("assert 15 == 14"), "{prompt2}");
    // Attempt 2 keeps the seed and leaves `double` alone: success.
    assert_eq!(code, 0, "{rep}");
    assert_eq!(r1["status"], "success", "{rep}");
    assert_eq!(check_of(&st, 1, "regressions")["status"], "passed", "{st}");
}

#[test]
fn a_flaky_fix_whose_code_seeds_the_test_in_the_verified_tree_at_run_time_is_tampering() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, r, rep, _, check) = py_outcome(tmp.path(), "runtime-seed");
    assert_eq!(code, 1, "{rep}");
    assert_ne!(r["status"], "success", "{rep}");
    assert_eq!(check["name"], "reproduction", "{check}");
    assert_eq!(check["status"], "failed", "{check}");
    assert!(
        check["detail"].as_str().unwrap().starts_with(
            "the test run changed the tree being verified (the commit's files are fixci's): `tests/test_sample.py`, a file of the commit, was changed"
        ),
        "{check}"
    );
}

#[test]
fn a_flaky_fix_that_breaks_another_test_and_weakens_it_is_still_caught() {
    let tmp = tempfile::tempdir().unwrap();
    let (run, code) = py_trial(tmp.path(), "seed-weakens");
    let rep = std::fs::read_to_string(run.join("report.md")).unwrap();
    let st: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("state.json")).unwrap()).unwrap();
    assert_eq!(code, 1, "{rep}");
    assert_ne!(result(&run)["status"], "success", "{rep}");
    // The attempt changed the other test to match the break: its own version passes, the base
    // commit's version (which the regression check runs) does not.
    let diff = st["attempts"][0]["diff"].as_str().unwrap();
    assert!(diff.contains("+        self.assertEqual(double(7), 15)"), "{diff}");
    assert_eq!(check_of(&st, 0, "reproduction")["status"], "passed", "{st}");
    let reg = check_of(&st, 0, "regressions");
    assert_eq!(reg["status"], "failed", "{reg}");
    assert!(reg["detail"].as_str().unwrap().contains("test_double"), "{reg}");
    assert!(rep.contains("regressions") && rep.contains("test_double"), "{rep}");
}

#[test]
fn in_a_flaky_run_with_a_gate_the_gate_runs_on_the_statistically_verified_commit() {
    // The gate (a lint refusing a TODO marker) fails at the base commit; the fix must pass it on
    // the same commit the stress runs verified, and the attempt records both.
    let tmp = tempfile::tempdir().unwrap();
    let gate = json!({"gate": ["! grep -n TODO app/sample.py"]});
    for (mode, ok) in [("seed-lint", true), ("seed", false)] {
        let (run, code) = py_trial_with(tmp.path(), mode, gate.clone());
        let rep = std::fs::read_to_string(run.join("report.md")).unwrap();
        let st: Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("state.json")).unwrap())
                .unwrap();
        assert_eq!(st["gate"]["outcomes"][0]["passed"], false, "{mode}: {}", st["gate"]);
        let names = check_names(&st, 0);
        assert_eq!(names[0], "reproduction", "{mode}: {st}");
        let stat = check_of(&st, 0, "reproduction");
        assert_eq!(stat["status"], "passed", "{mode}: {stat}");
        let p0 = st["flaky"]["failure_rate"].as_f64().unwrap();
        assert_eq!(stat["runs"], runs_needed(p0, 4.0, 0.05), "{mode}: {stat}");
        let g = check_of(&st, 0, "gate");
        assert_eq!(g["command"], "! grep -n TODO app/sample.py", "{mode}: {g}");
        if ok {
            assert_eq!(code, 0, "{mode}: {rep}");
            assert_eq!(result(&run)["status"], "success", "{mode}: {rep}");
            assert_eq!(g["status"], "passed", "{mode}: {g}");
            // One commit: verified statistically, gated, and proposed.
            let verified = st["attempts"][0]["checks"]["commit"].as_str().unwrap();
            assert_eq!(st["commit"].as_str().unwrap(), verified, "{st}");
        } else {
            assert_eq!(code, 1, "{mode}: {rep}");
            assert_ne!(result(&run)["status"], "success", "{mode}: {rep}");
            assert_eq!(g["status"], "failed", "{mode}: {g}");
            assert!(rep.contains("gate"), "{mode}: {rep}");
        }
    }
}

#[test]
fn a_fix_that_only_lives_in_untracked_files_is_not_seen_by_verification() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, r, rep, _, check) = py_outcome(tmp.path(), "untracked");
    assert_eq!(code, 1, "{rep}");
    assert_ne!(r["status"], "success", "{rep}");
    assert_eq!(check["status"], "failed", "{check}");
    assert!(
        check["detail"]
            .as_str()
            .unwrap()
            .contains("test_top_is_below_the_cap"),
        "{check}"
    );
    assert!(rep.contains("verification failed"), "{rep}");
}
