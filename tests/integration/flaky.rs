//! The flaky pipeline end to end: a repository whose existing (shell) test fails about 1 run in 7,
//! parallel stress reproduction, a fix verified with the number of runs the formula gives, and
//! a "fix" that only lowers the rate caught by verification in most trials.
//!
//! Determinism: every test run takes the next seed from a counter file (under `flock`), so the
//! outcome of run k is fixed by the trial's starting seed; the trials are a fixed seed plan and
//! this test is not itself flaky.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::common::*;

/// The code under test: a worker picker that returns nothing for about 1 seed in 7 (its check
/// should be `-ge 0`; a CRC of the seed is the "randomness").
const DISPATCH: &str = "pick_worker() {\n  h=$(printf 'seed-%s' \"$1\" | cksum | cut -d' ' -f1)\n  [ $((h % 1000)) -ge 143 ] && echo \"worker-$((h % 6))\"\n}\n";

/// The existing test: takes the next seed of the plan (a counter file under `flock`).
const TEST: &str = "#!/bin/sh\nseed=$(flock \"$FLAKY_SEED_FILE\" sh -c 'n=$(cat \"$0\"); echo $((n + 1)) > \"$0\"; echo $n' \"$FLAKY_SEED_FILE\")\n. ./app/dispatch.sh\nw=$(pick_worker \"$seed\")\nif [ -z \"$w\" ]; then\n  echo \"FAIL: test_pick_worker (seed $seed)\"\n  echo \"AssertionError: pick_worker returned nothing\"\n  exit 1\nfi\necho ok\n";

const FIX_AGENT: &str = r#"
import os, pathlib, sys
p = pathlib.Path("app/dispatch.sh")
src = p.read_text()
if sys.argv[1] == "good":
    p.write_text(src.replace("-ge 143", "-ge 0"))
else:  # lowers the failure rate from 14.3% to 5%, without fixing it
    p.write_text(src.replace("-ge 143", "-ge 50"))
pathlib.Path(os.environ["FIXCI_STAGE_DIR"], "root-cause.md").write_text("the range check excluded valid hashes")
"#;

fn flaky_repo(dir: &Path) {
    std::fs::create_dir_all(dir.join("app")).unwrap();
    std::fs::create_dir_all(dir.join("tests")).unwrap();
    std::fs::write(dir.join("app/dispatch.sh"), DISPATCH).unwrap();
    std::fs::write(dir.join("tests/test_dispatch.sh"), TEST).unwrap();
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-qm", "dispatch"]);
}

/// Runs the flaky pipeline once with the seed plan starting at `seed`; returns the run directory
/// and the exit code.
fn trial(root: &Path, mode: &str, seed: u64) -> (PathBuf, i32) {
    let dir = root.join(format!("{mode}-{seed}"));
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    flaky_repo(&repo);
    std::fs::write(dir.join("fix_agent.py"), FIX_AGENT).unwrap();
    // A pipeline beside the spec overrides the built-in one: fewer confirmation runs for speed.
    std::fs::create_dir_all(dir.join("pipelines")).unwrap();
    let builtin =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/flaky.toml"))
            .unwrap();
    std::fs::write(
        dir.join("pipelines/flaky.toml"),
        builtin.replace("runs = 400", "runs = 200"),
    )
    .unwrap();
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
    let seeds = dir.join("seeds");
    std::fs::write(&seeds, seed.to_string()).unwrap();
    let out = dir.join("out");
    let code = fixci()
        .current_dir(&dir)
        .env("FIXCI_CACHE_DIR", dir.join("cache"))
        .env("FLAKY_SEED_FILE", &seeds)
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

fn runs_needed(p0: f64, alpha: f64) -> u64 {
    (alpha.ln() / (1.0 - p0).ln()).ceil() as u64
}

#[test]
fn a_real_fix_is_verified_with_the_runs_the_formula_gives_and_the_report_states_the_bound() {
    let tmp = tempfile::tempdir().unwrap();
    let (run, code) = trial(tmp.path(), "good", 0);
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
    let n = runs_needed(p0, 0.05);
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
fn a_fix_that_only_lowers_the_rate_is_caught_in_most_trials() {
    let tmp = tempfile::tempdir().unwrap();
    let plan = [
        1_000u64, 2_000, 3_000, 4_000, 5_000, 6_000, 7_000, 8_000, 9_000,
    ];
    let mut caught = 0;
    for seed in plan {
        let (run, code) = trial(tmp.path(), "partial", seed);
        let r = result(&run);
        if r["status"] == "escalated" {
            assert_eq!(code, 1);
            caught += 1;
        } else {
            // When the seeds let it through, it passed the same N runs a real fix would have.
            assert_eq!(r["status"], "success", "{r}");
        }
    }
    eprintln!(
        "the 5% \"fix\" was caught in {caught} of {} trials",
        plan.len()
    );
    assert!(
        caught * 2 > plan.len(),
        "caught in only {caught} of {} trials",
        plan.len()
    );
}
