//! `fixci stress` tests: the real binary on real processes.
//!
//! The flaky helper is bash's `$SRANDOM` (32 bits from the OS's getrandom, bash >= 5.1), so
//! runs are independent and the failure probability is known exactly (`SRANDOM % 10 == 0` is
//! 0.1 up to a 1e-9 modulo bias). Statistical assertions use bounds whose false-failure
//! probability is stated beside them and is at most 1e-6.

use std::path::Path;

use serde_json::Value;

use crate::common::fixci;

/// A command that fails (exit 1) with probability 1/`modulus`.
fn flaky(modulus: u32) -> Vec<String> {
    vec![
        "bash".into(),
        "-c".into(),
        format!("exit $(( SRANDOM % {modulus} == 0 ))"),
    ]
}

/// Runs `fixci stress --json ARGS -- CMD` in `dir`; returns (exit code, report).
fn stress_json(dir: &Path, args: &[&str], cmd: &[String]) -> (i32, Value) {
    let out = fixci()
        .current_dir(dir)
        .arg("stress")
        .arg("--json")
        .args(args)
        .arg("--")
        .args(cmd)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), v)
}

fn interval(v: &Value) -> (f64, f64) {
    (
        v["interval"][0].as_f64().unwrap(),
        v["interval"][1].as_f64().unwrap(),
    )
}

#[test]
fn estimated_rate_interval_contains_the_true_rate() {
    let dir = tempfile::tempdir().unwrap();
    // At confidence 0.999999 the exact (conservative) interval misses the true rate with
    // probability <= 1e-6.
    let (code, v) = stress_json(
        dir.path(),
        &[
            "--runs",
            "2000",
            "--confidence",
            "0.999999",
            "--keep-dir",
            "k",
        ],
        &flaky(10),
    );
    assert_eq!(code, 1, "some run failed, so exit 1: {v}");
    assert_eq!(v["runs"], 2000);
    assert_eq!(v["stop_reason"], "runs");
    let (lo, hi) = interval(&v);
    assert!(
        lo < 0.1 && 0.1 < hi,
        "interval [{lo}, {hi}] misses 0.1: {}",
        v["failures"]
    );
    // The interval is informative, not [0, 1]: at n = 2000 its width is about 0.07.
    assert!(hi - lo < 0.1, "[{lo}, {hi}]");
    let failures = v["failures"].as_u64().unwrap();
    assert_eq!(
        v["failure_rate"].as_f64().unwrap(),
        failures as f64 / 2000.0
    );
    assert_eq!(
        v["signatures"]["(no signature: exit 1)"].as_u64(),
        Some(failures)
    );
    for key in [
        "confidence",
        "wall_s",
        "runs_per_s",
        "time_to_first_failure_s",
    ] {
        assert!(v[key].is_number(), "{key}: {v}");
    }
    // Every failing run's output was kept; passing outputs only as a sample of 3.
    let runs = dir.path().join("k/runs");
    assert_eq!(
        std::fs::read_dir(&runs).unwrap().count() as u64,
        failures + 3
    );
    assert!(dir.path().join("k/stress.json").is_file());
}

#[test]
fn until_failures_stops_early() {
    let dir = tempfile::tempdir().unwrap();
    // P(fewer than 3 failures in 2000 runs at p = 0.1) is about 1e-88, so the stop always
    // comes from --until-failures.
    let (code, v) = stress_json(
        dir.path(),
        &[
            "--runs",
            "2000",
            "--until-failures",
            "3",
            "--jobs",
            "2",
            "--keep-dir",
            "k",
        ],
        &flaky(10),
    );
    assert_eq!(code, 1);
    assert_eq!(v["stop_reason"], "until-failures");
    let failures = v["failures"].as_u64().unwrap();
    // Runs that end together may add one failure per other job.
    assert!((3..=4).contains(&failures), "{v}");
    assert!(v["runs"].as_u64().unwrap() < 2000, "{v}");
}

/// A command that fails two ways with different unittest-style assertion messages, each with
/// probability 1/3, and passes otherwise.
fn two_ways() -> Vec<String> {
    let script = r#"case $(( SRANDOM % 3 )) in
  0) echo 'AssertionError: alpha 1 != 2'; exit 1;;
  1) echo 'AssertionError: beta is not None'; exit 1;;
esac"#;
    vec!["bash".into(), "-c".into(), script.into()]
}

#[test]
fn match_text_counts_only_the_matching_failure() {
    let dir = tempfile::tempdir().unwrap();
    let (_, v) = stress_json(
        dir.path(),
        &[
            "--runs",
            "300",
            "--match-text",
            "AssertionError: alpha",
            "--keep-dir",
            "k",
            "--confidence",
            "0.999999",
        ],
        &two_ways(),
    );
    let failures = v["failures"].as_u64().unwrap();
    let unmatched = v["unmatched_failures"].as_u64().unwrap();
    // Each way has probability 1/3; P(either count is 0 in 300 runs) = 2 (2/3)^300 ~ 1e-53.
    assert!(failures > 0 && unmatched > 0, "{v}");
    let (lo, hi) = interval(&v);
    assert!(
        lo < 1.0 / 3.0 && 1.0 / 3.0 < hi,
        "[{lo}, {hi}] misses 1/3 (p <= 1e-6)"
    );
    for r in v["failing_runs"].as_array().unwrap() {
        let text = std::fs::read_to_string(dir.path().join(r["output"].as_str().unwrap())).unwrap();
        let counted = r["counted"].as_bool().unwrap();
        assert_eq!(counted, text.contains("alpha"), "{r}: {text}");
        assert_eq!(!counted, text.contains("beta"), "{r}: {text}");
    }
}

#[test]
fn match_signature_counts_only_the_matching_failure() {
    let dir = tempfile::tempdir().unwrap();
    // A Python unittest that fails two different ways.
    std::fs::write(
        dir.path().join("test_two_ways.py"),
        r#"import os, unittest

class TestTwoWays(unittest.TestCase):
    def test_it(self):
        r = int.from_bytes(os.urandom(4), "big") % 3
        if r == 0:
            self.assertEqual(1, 2)
        if r == 1:
            self.assertIsNone("beta")
"#,
    )
    .unwrap();
    let cmd: Vec<String> = ["python3", "-m", "unittest", "test_two_ways"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    // First learn the two signatures from an unfiltered run.
    let (_, v) = stress_json(dir.path(), &["--runs", "60", "--keep-dir", "a"], &cmd);
    let sig_of = |needle: &str| -> String {
        v["failing_runs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| {
                std::fs::read_to_string(dir.path().join(r["output"].as_str().unwrap()))
                    .unwrap()
                    .contains(needle)
            })
            .map(|r| r["signature"].as_str().unwrap().to_string())
            .expect("both failures occur in 60 runs (p of not ~ 1e-10)")
    };
    let (alpha, beta) = (sig_of("1 != 2"), sig_of("'beta' is not None"));
    assert_ne!(alpha, beta, "two different failures need two signatures");
    assert!(!alpha.starts_with("(no signature"), "{alpha}");
    let (_, v) = stress_json(
        dir.path(),
        &[
            "--runs",
            "60",
            "--keep-dir",
            "b",
            "--match-signature",
            &alpha,
        ],
        &cmd,
    );
    assert!(v["failures"].as_u64().unwrap() > 0 && v["unmatched_failures"].as_u64().unwrap() > 0);
    for r in v["failing_runs"].as_array().unwrap() {
        let text = std::fs::read_to_string(dir.path().join(r["output"].as_str().unwrap())).unwrap();
        assert_eq!(
            r["counted"].as_bool().unwrap(),
            text.contains("1 != 2"),
            "{r}"
        );
    }
}

#[test]
fn all_passing_runs_exit_zero_and_bound_the_rate() {
    let dir = tempfile::tempdir().unwrap();
    let out = fixci()
        .current_dir(dir.path())
        .args(["stress", "--runs", "20", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("runs:          20"), "{text}");
    // 1 - 0.05^(1/20) = 13.91%.
    assert!(text.contains("rate < 13.91% at 95% confidence"), "{text}");
    // The default keep dir is a run directory under outputs/.
    let outputs: Vec<_> = std::fs::read_dir(dir.path().join("outputs"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(outputs.len(), 1);
    assert!(
        outputs[0]
            .file_name()
            .to_string_lossy()
            .ends_with("_stress")
    );
}

#[test]
fn a_run_past_its_timeout_is_killed_and_counts_as_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let (code, v) = stress_json(
        dir.path(),
        &["--runs", "2", "--timeout", "200ms", "--keep-dir", "k"],
        &["sleep".to_string(), "30".to_string()],
    );
    assert_eq!(code, 1);
    assert_eq!(v["failures"], 2);
    assert_eq!(v["timeouts"], 2);
    assert_eq!(v["signatures"]["(timeout)"], 2);
}

#[test]
fn duration_stops_the_run_and_a_shell_string_is_a_script() {
    let dir = tempfile::tempdir().unwrap();
    let (code, v) = stress_json(
        dir.path(),
        &["--duration", "1s", "--keep-dir", "k"],
        &["sleep 0.05".to_string()],
    );
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["stop_reason"], "duration");
    assert!(v["runs"].as_u64().unwrap() > 0);
    assert_eq!(v["command"], "sleep 0.05");
}

#[test]
fn explore_measures_each_amplification_and_records_the_choice() {
    let dir = tempfile::tempdir().unwrap();
    let (_, v) = stress_json(
        dir.path(),
        &["--runs", "60", "--explore", "--keep-dir", "k"],
        &flaky(4),
    );
    let e = &v["explore"];
    let names: Vec<&str> = e["trials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        &names[..3],
        &[
            "plain",
            format!("parallel-x{}", 2 * cpus()).as_str(),
            format!("cpu-stress-x{}", cpus()).as_str()
        ]
    );
    let best = e["trials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["failure_rate"].as_f64().unwrap())
        .fold(0.0, f64::max);
    assert_eq!(e["chosen_trial_rate"].as_f64().unwrap(), best);
    assert!(names.contains(&e["chosen"].as_str().unwrap()));
    // 40% of 60 runs over 3 candidates: 8 each; the rest (36) on the chosen one.
    assert_eq!(v["runs"], 36);
    assert!(dir.path().join("k/explore/plain/stress.json").is_file());
}

fn cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

#[test]
fn bad_arguments_are_usage_errors_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for (args, needle) in [
        (
            &["--jobs", "0", "--", "true"][..],
            "`--jobs` must be at least 1",
        ),
        (
            &["--runs", "0", "--", "true"][..],
            "`--runs` must be at least 1",
        ),
        (
            &["--until-failures", "0", "--", "true"][..],
            "`--until-failures` must be at least 1",
        ),
        (
            &["--confidence", "1.5", "--", "true"][..],
            "`--confidence` must be strictly between 0 and 1",
        ),
        (
            &["--", "definitely-not-a-command-fixci"][..],
            "command `definitely-not-a-command-fixci` not found",
        ),
        (
            &["--", "./missing.sh"][..],
            "command `./missing.sh` not found",
        ),
        (
            &["--repeat", "3", "--", "true"][..],
            "`--repeat` needs a pytest command",
        ),
        (
            &["--shuffle", "--", "true"][..],
            "`--shuffle` needs a pytest command",
        ),
        (
            &["--repeat", "0", "--", "true"][..],
            "`--repeat` must be at least 1",
        ),
    ] {
        let out = fixci()
            .current_dir(dir.path())
            .arg("stress")
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    assert!(!dir.path().join("outputs").exists());
}

#[test]
fn a_keep_dir_with_earlier_runs_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        fixci()
            .current_dir(dir.path())
            .args(["stress", "--runs", "2", "--keep-dir", "k", "--", "false"])
            .output()
            .unwrap()
    };
    assert_eq!(run().status.code(), Some(1));
    let out = run();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already holds the outputs"));
}

#[test]
fn sigint_stops_every_run_and_exits_130_with_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("started");
    let script = format!("touch {}; exec sleep 1000", marker.display());
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("fixci"))
        .current_dir(dir.path())
        .args([
            "stress",
            "--json",
            "--runs",
            "10",
            "--jobs",
            "2",
            "--keep-dir",
            "k",
            "--",
            &script,
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = child;
    while !marker.exists() {
        // A fixci that exits before starting a run would otherwise leave this loop waiting.
        if let Some(status) = child.try_wait().unwrap() {
            panic!("fixci exited before starting a run: {status}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["stop_reason"], "interrupted");
    assert_eq!(v["runs"], 0, "the stopped runs are not counted");
    // No `sleep 1000` of ours survived (each run's group was killed before fixci exited).
    let ps = std::process::Command::new("pgrep")
        .args(["-f", "^sleep 1000$"])
        .output();
    if let Ok(ps) = ps {
        let me = String::from_utf8_lossy(&ps.stdout).to_string();
        let ours: Vec<_> = me
            .lines()
            .filter(|pid| {
                std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|c| c == dir.path())
            })
            .collect();
        assert!(ours.is_empty(), "left running: {ours:?}");
    }
}

#[test]
fn repeat_and_shuffle_reach_pytest_and_estimate_the_per_repetition_rate() {
    // A stand-in `python3 -m pytest` on PYTHONPATH, with importable `pytest_repeat` and
    // `pytest_randomly`, so detection, argument passing and the per-repetition estimate run
    // for real without installing pytest. Each repetition fails with probability 0.1.
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    std::fs::create_dir_all(lib.join("pytest")).unwrap();
    std::fs::write(lib.join("pytest/__init__.py"), "").unwrap();
    std::fs::write(lib.join("pytest_repeat.py"), "").unwrap();
    std::fs::write(lib.join("pytest_randomly.py"), "").unwrap();
    std::fs::write(
        lib.join("pytest/__main__.py"),
        r#"import os, sys
print("argv:", " ".join(sys.argv[1:]))
count = next(int(a.split("=")[1]) for a in sys.argv if a.startswith("--count="))
assert "-x" in sys.argv and "randomly" in sys.argv
for i in range(count):
    if int.from_bytes(os.urandom(4), "big") % 10 == 0:
        print(f"AssertionError: repetition {i}")
        sys.exit(1)
"#,
    )
    .unwrap();
    let out = fixci()
        .current_dir(dir.path())
        .env("PYTHONPATH", &lib)
        .args([
            "stress",
            "--json",
            "--runs",
            "60",
            "--repeat",
            "10",
            "--shuffle",
        ])
        .args(["--confidence", "0.999999", "--keep-dir", "k", "--"])
        .args(["python3", "-m", "pytest", "test_x.py"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(v["repetitions_per_run"], 10);
    // Per-repetition interval at confidence 0.999999 misses 0.1 with probability <= 1e-6.
    let rep = &v["per_repetition"];
    let (lo, hi) = (
        rep["interval"][0].as_f64().unwrap(),
        rep["interval"][1].as_f64().unwrap(),
    );
    assert!(lo < 0.1 && 0.1 < hi, "[{lo}, {hi}]: {v}");
    // A run fails with probability 1 - 0.9^10 = 0.65; P(no failing run in 60) ~ 1e-27.
    let failing = v["failing_runs"].as_array().unwrap();
    assert!(!failing.is_empty());
    for r in failing {
        let seed = r["seed"].as_u64().expect("a logged seed");
        let text = std::fs::read_to_string(dir.path().join(r["output"].as_str().unwrap())).unwrap();
        assert!(
            text.contains(&format!("--count=10 -x -p randomly --randomly-seed={seed}")),
            "{text}"
        );
    }
}
