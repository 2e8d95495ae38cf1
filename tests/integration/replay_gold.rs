//! `fixci replay run --agent gold` qualifying cases, on small synthetic cases built here: real
//! git repositories shipped as `repo.bundle`, real shell and Python tests. Each gold-check flag,
//! the case environment (`env`, `path`, `setup`), a missing test runner, the repository cluster
//! key, the report's qualification table, and `fixci validate` on cases and variants.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::{fixci, git};

/// One synthetic case: the files at the failing commit, the files the gold patch changes, the
/// commands, and extra top-level `case.toml` lines.
struct Def<'a> {
    id: &'a str,
    files: &'a [(&'a str, &'a str)],
    fix: &'a [(&'a str, &'a str)],
    f2p: &'a [&'a str],
    p2p: &'a [&'a str],
    deterministic: bool,
    extra: &'a str,
}

/// Builds `root/<id>/` with `repo.bundle` (one commit on `main`), `gold.patch` and
/// `case.toml`; returns the case folder and the repository's root commit.
fn make_case(root: &Path, d: &Def) -> (PathBuf, String) {
    let src = root.join("src").join(d.id);
    std::fs::create_dir_all(&src).unwrap();
    git(&src, &["init", "-q", "-b", "main"]);
    for (p, t) in d.files {
        let f = src.join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, t).unwrap();
    }
    git(&src, &["add", "-A"]);
    git(
        &src,
        &[
            "commit",
            "-q",
            "-m",
            &format!("{} at the failing commit", d.id),
        ],
    );
    let commit = git(&src, &["rev-parse", "HEAD"]).trim().to_string();
    for (p, t) in d.fix {
        std::fs::write(src.join(p), t).unwrap();
    }
    let gold = git(&src, &["diff"]);
    git(&src, &["checkout", "-q", "--", "."]);
    let case = root.join("cases").join(d.id);
    std::fs::create_dir_all(&case).unwrap();
    git(
        &src,
        &[
            "bundle",
            "create",
            "-q",
            case.join("repo.bundle").to_str().unwrap(),
            "HEAD",
            "main",
        ],
    );
    std::fs::write(case.join("gold.patch"), gold).unwrap();
    let list = |v: &[&str]| {
        v.iter()
            .map(|c| serde_json::to_string(c).unwrap())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let test_path = d
        .files
        .iter()
        .find(|(p, _)| p.starts_with("tests/"))
        .unwrap()
        .0;
    std::fs::write(
        case.join("case.toml"),
        format!(
            "id = \"{}\"\nrepo = \"repo.bundle\"\ncommit = \"{commit}\"\ngold-patch = \"gold.patch\"\nfail-to-pass = [{}]\npass-to-pass = [{}]\n{}\n\n[info]\ndeterministic = {}\nprompt = \"fix it\"\nexisting-test-path = \"{test_path}\"\ntest-command = \"sh {{test_file}}\"\n",
            d.id,
            list(d.f2p),
            list(d.p2p),
            d.extra,
            d.deterministic
        ),
    )
    .unwrap();
    let root_commit = git(&src, &["rev-list", "--max-parents=0", "HEAD"])
        .trim()
        .to_string();
    (case, root_commit)
}

/// The records sorted by (case, epoch).
fn records(out: &Path) -> Vec<Value> {
    let mut v = crate::replay::records(out);
    v.sort_by_key(|r| (r["case"].as_str().unwrap().to_string(), r["epoch"].as_u64()));
    v
}

/// Runs `fixci replay run ROOT/cases --agent gold -j 1 EXTRA... --out OUT`, which must exit 0;
/// returns the records as [`records`] does.
fn replay_gold(root: &Path, out: &Path, extra: &[&str]) -> Vec<Value> {
    let o = fixci()
        .args(["replay", "run"])
        .arg(root.join("cases"))
        .args(["--agent", "gold", "-j", "1"])
        .args(extra)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    records(out)
}

/// Runs `fixci replay report OUT`, which must succeed: its Markdown (stdout) and
/// `OUT/report.json`.
fn replay_report(out: &Path) -> (String, Value) {
    let rep = fixci()
        .args(["replay", "report"])
        .arg(out)
        .output()
        .unwrap();
    assert!(
        rep.status.success(),
        "{}",
        String::from_utf8_lossy(&rep.stderr)
    );
    let json = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    (String::from_utf8_lossy(&rep.stdout).into_owned(), json)
}

fn flag_names(r: &Value) -> Vec<String> {
    r["flags"]
        .as_array()
        .unwrap_or_else(|| panic!("no flags array: {r}"))
        .iter()
        .map(|f| f.as_str().unwrap().split(':').next().unwrap().to_string())
        .collect()
}

const OK: &str = "exit 0\n";

/// A counter file outside the repository: each run of the test increments it.
const COUNTING: &str = "n=$(cat \"$COUNTER\" 2>/dev/null || echo 0); n=$((n+1)); echo $n > \"$COUNTER\"\n. ./lib.sh\ncheck $n\n";

#[test]
fn a_half_failing_test_declared_deterministic_is_flagged_in_every_epoch() {
    let tmp = tempfile::tempdir().unwrap();
    let counter = tmp.path().join("flip-count");
    let extra = format!("env = {{ COUNTER = {:?} }}", counter.display().to_string());
    // Fails every other run (so exactly half of any 10 consecutive runs) until the fix.
    make_case(
        tmp.path(),
        &Def {
            id: "flip",
            files: &[
                (
                    "lib.sh",
                    "check() { [ $(($1 % 2)) -eq 0 ] || { echo \"AssertionError: odd run $1\"; exit 1; }; }\n",
                ),
                ("tests/test_flip.sh", COUNTING),
                ("tests/test_ok.sh", OK),
            ],
            fix: &[("lib.sh", "check() { :; }\n")],
            f2p: &["sh tests/test_flip.sh"],
            p2p: &["sh tests/test_ok.sh"],
            deterministic: true,
            extra: &extra,
        },
    );
    let out = tmp.path().join("out");
    let recs = replay_gold(tmp.path(), &out, &["--epochs", "3"]);
    assert_eq!(recs.len(), 3);
    for r in &recs {
        assert_eq!(r["verdict"], "unresolved", "{r}");
        assert_eq!(flag_names(r), ["fail-to-pass-flaky"], "{r}");
        let flag = r["flags"][0].as_str().unwrap();
        // The measured rate and its 95% Wilson interval (5 of 10: 23.7%–76.3%).
        assert!(flag.contains("failed 5 of 10 runs"), "{flag}");
        assert!(flag.contains("failure rate 50.0%"), "{flag}");
        assert!(flag.contains("23.7%–76.3%"), "{flag}");
        let before = &r["fail_to_pass_before"][0];
        assert_eq!(
            (before["runs"].as_u64(), before["passed"].as_u64()),
            (Some(10), Some(5))
        );
        assert_eq!(before["failure_kinds"]["assertion"], 5, "{r}");
        assert_eq!(r["fail_to_pass"][0]["passed"], 10, "{r}");
    }
}

#[test]
fn gold_flags_environments_missing_runners_and_the_qualification_report() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let counter = root.join("seven-count");
    let seven_env = format!("env = {{ COUNTER = {:?} }}", counter.display().to_string());
    // The case's own tools folder, put on PATH by `path`.
    let bug = "value() { echo 1; }\n";
    let fixed = "value() { echo 2; }\n";
    let test = ". ./lib.sh\n[ \"$(value)\" = 2 ] || { echo \"AssertionError: value is $(value)\"; exit 1; }\n";
    let (sound, sound_root) = make_case(
        root,
        &Def {
            id: "a-sound",
            files: &[
                ("lib.sh", bug),
                ("tests/test_value.sh", test),
                ("tests/test_ok.sh", OK),
            ],
            fix: &[("lib.sh", fixed)],
            f2p: &["case-runner tests/test_value.sh"],
            p2p: &["case-runner tests/test_ok.sh"],
            deterministic: true,
            // `setup` makes a file the runner needs; `env` a variable it checks.
            extra: "qualify-runs = 3\npath = [\"tools\"]\nenv = { GREETING = \"hello\" }\nsetup = [\"echo preparing; printf built > built.txt\"]",
        },
    );
    std::fs::create_dir_all(sound.join("tools")).unwrap();
    let runner = sound.join("tools/case-runner");
    std::fs::write(
        &runner,
        "#!/bin/sh\n[ \"$GREETING\" = hello ] || { echo 'GREETING unset'; exit 9; }\n[ -f built.txt ] || { echo 'setup did not run'; exit 9; }\nexec sh \"$@\"\n",
    )
    .unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&runner)
        .status()
        .unwrap();
    // A flaky case failing one run in seven: it needs its first failure, not a fixed count.
    make_case(
        root,
        &Def {
            id: "b-one-in-seven",
            files: &[
                (
                    "lib.sh",
                    "check() { [ $(($1 % 7)) -ne 0 ] || { echo \"AssertionError: run $1\"; exit 1; }; }\n",
                ),
                ("tests/test_seven.sh", COUNTING),
                ("tests/test_ok.sh", OK),
            ],
            fix: &[("lib.sh", "check() { :; }\n")],
            f2p: &["sh tests/test_seven.sh"],
            p2p: &["sh tests/test_ok.sh"],
            deterministic: false,
            extra: &seven_env,
        },
    );
    // Pass-to-pass already broken at the failing commit.
    make_case(
        root,
        &Def {
            id: "c-broken-p2p",
            files: &[
                ("lib.sh", bug),
                ("tests/test_value.sh", test),
                (
                    "tests/test_other.sh",
                    "echo 'AssertionError: other is broken'; exit 1\n",
                ),
            ],
            fix: &[("lib.sh", fixed)],
            f2p: &["sh tests/test_value.sh"],
            p2p: &["sh tests/test_other.sh"],
            deterministic: true,
            extra: "qualify-runs = 3",
        },
    );
    // The fail-to-pass test never imports: a missing dependency, not the bug.
    make_case(
        root,
        &Def {
            id: "d-import-error",
            files: &[
                ("lib.sh", bug),
                ("tests/__init__.py", ""),
                (
                    "tests/test_imp.py",
                    "import fixci_absent_dependency\nimport unittest\n\n\nclass T(unittest.TestCase):\n    def test_x(self):\n        pass\n",
                ),
            ],
            fix: &[("lib.sh", fixed)],
            f2p: &["python3 -m unittest -q tests.test_imp"],
            p2p: &[],
            deterministic: true,
            extra: "qualify-runs = 3",
        },
    );
    // An empty gold patch.
    let (empty, _) = make_case(
        root,
        &Def {
            id: "e-empty-gold",
            files: &[("lib.sh", bug), ("tests/test_value.sh", test)],
            fix: &[],
            f2p: &["sh tests/test_value.sh"],
            p2p: &[],
            deterministic: true,
            extra: "qualify-runs = 3",
        },
    );
    assert_eq!(
        std::fs::read_to_string(empty.join("gold.patch")).unwrap(),
        ""
    );
    // Test runners that are not there: a Python module and a program on no PATH folder.
    make_case(
        root,
        &Def {
            id: "f-no-module",
            files: &[("lib.sh", bug), ("tests/test_value.sh", test)],
            fix: &[("lib.sh", fixed)],
            f2p: &["python3 -m fixci_no_such_runner tests"],
            p2p: &[],
            deterministic: true,
            extra: "",
        },
    );
    make_case(
        root,
        &Def {
            id: "g-no-program",
            files: &[("lib.sh", bug), ("tests/test_value.sh", test)],
            fix: &[("lib.sh", fixed)],
            f2p: &["fixci-missing-runner tests/test_value.sh"],
            p2p: &[],
            deterministic: true,
            extra: "path = [\"venv/bin\"]",
        },
    );
    // A setup command that fails.
    make_case(
        root,
        &Def {
            id: "h-bad-setup",
            files: &[("lib.sh", bug), ("tests/test_value.sh", test)],
            fix: &[("lib.sh", fixed)],
            f2p: &["sh tests/test_value.sh"],
            p2p: &[],
            deterministic: true,
            extra: "setup = [\"echo installing deps; exit 3\"]",
        },
    );
    let out = root.join("out");
    let o = fixci()
        .args(["replay", "run"])
        .arg(root.join("cases"))
        .args(["--agent", "gold", "-j", "2", "--retries", "0", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    // Infra errors (the missing runners, the failed setup) make the run exit 3.
    assert_eq!(o.status.code(), Some(3), "{stderr}");
    let recs = records(&out);
    let by = |id: &str| {
        recs.iter()
            .find(|r| r["case"] == id)
            .unwrap_or_else(|| panic!("{id}"))
    };

    let r = by("a-sound");
    assert_eq!(r["verdict"], "resolved", "{r}");
    assert_eq!(r["flags"], serde_json::json!([]), "{r}");
    assert_eq!(r["setup"][0]["ended"], "exit 0", "{r}");
    assert_eq!(r["fail_to_pass_before"][0]["runs"], 3, "{r}");
    assert_eq!(r["fail_to_pass_before"][0]["passed"], 0, "{r}");
    assert_eq!(r["pass_to_pass_before"][0]["passed"], 3, "{r}");
    // The cluster key is the repository's root commit, not the bundle's file name.
    assert_eq!(r["repo"], sound_root.as_str(), "{r}");
    let key = r["key"].as_str().unwrap();
    let log = std::fs::read_to_string(out.join("runs").join(key).join("setup.log")).unwrap();
    assert!(
        log.contains("$ echo preparing") && log.contains("preparing\n"),
        "{log}"
    );

    let r = by("b-one-in-seven");
    assert_eq!(r["verdict"], "resolved", "{r}");
    // Stopped at the first failure (run 7 of at most 100), then verified with
    // max(check-runs 20, ceil(ln 0.05 / ln(6/7)) = 20) runs.
    assert_eq!(r["fail_to_pass_before"][0]["runs"], 7, "{r}");
    assert_eq!(r["fail_to_pass_before"][0]["passed"], 6, "{r}");
    assert_eq!(r["fail_to_pass"][0]["runs"], 20, "{r}");

    let r = by("c-broken-p2p");
    assert_eq!(r["verdict"], "unresolved", "{r}");
    assert!(
        flag_names(r).contains(&"pass-to-pass-fails-before-fix".to_string()),
        "{r}"
    );
    assert_eq!(r["pass_to_pass_before"][0]["passed"], 0, "{r}");

    let r = by("d-import-error");
    // (Its "fix" does not make it import either.)
    assert_eq!(
        flag_names(r),
        [
            "fail-to-pass-fails-for-another-reason",
            "gold-patch-does-not-resolve"
        ],
        "{r}"
    );
    assert!(
        r["flags"][0]
            .as_str()
            .unwrap()
            .contains("fixci_absent_dependency"),
        "{r}"
    );
    assert_eq!(r["verdict"], "could-not-reproduce", "{r}");
    assert_eq!(r["funnel"]["reproduced"], false, "{r}");

    let r = by("e-empty-gold");
    assert_eq!(flag_names(r), ["gold-patch-empty"], "{r}");
    assert_eq!(r["verdict"], "unresolved", "{r}");

    for (id, needle) in [
        ("f-no-module", "No module named fixci_no_such_runner"),
        ("g-no-program", "fixci-missing-runner"),
        (
            "h-bad-setup",
            "setup command `echo installing deps; exit 3` failed (exit 3",
        ),
    ] {
        let r = by(id);
        assert_eq!(r["verdict"], "infra-error", "{r}");
        assert!(r["reason"].as_str().unwrap().contains(needle), "{id}: {r}");
        assert_eq!(r["funnel"]["reproduced"], false, "{r}");
    }

    // The report: disqualified cases first, every case in the per-case table, one cluster per
    // repository although every bundle is named `repo.bundle`.
    let (md, json) = replay_report(&out);
    assert!(md.contains("2 of 8 cases qualified"), "{md}");
    let row = |id: &str| {
        md.find(&format!("| {id} | "))
            .unwrap_or_else(|| panic!("{id}: {md}"))
    };
    for bad in [
        "c-broken-p2p",
        "d-import-error",
        "e-empty-gold",
        "f-no-module",
        "g-no-program",
        "h-bad-setup",
    ] {
        assert!(row(bad) < row("a-sound"), "{bad} after a-sound: {md}");
    }
    assert!(md.contains("## Cases"), "{md}");
    assert_eq!(json["variants"][0]["repos"], 5, "{json}");
    let q = &json["qualification"];
    assert_eq!(q[0]["qualified"], false);
    assert_eq!(q[7]["qualified"], true);
}

#[test]
fn validate_checks_cases_against_their_repository_and_variants_by_schema() {
    let tmp = tempfile::tempdir().unwrap();
    let (case, _) = make_case(
        tmp.path(),
        &Def {
            id: "v",
            files: &[
                ("lib.sh", "value() { echo 1; }\n"),
                ("tests/test_value.sh", "exit 1\n"),
            ],
            fix: &[("lib.sh", "value() { echo 2; }\n")],
            f2p: &["sh tests/test_value.sh"],
            p2p: &[],
            deterministic: true,
            extra: "",
        },
    );
    let file = case.join("case.toml");
    fixci().arg("validate").arg(&file).assert().success();
    let good = std::fs::read_to_string(&file).unwrap();
    let gold = std::fs::read_to_string(case.join("gold.patch")).unwrap();
    let check = |args: &[&Path], needles: &[&str]| {
        let o = fixci().arg("validate").args(args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        for n in needles {
            assert!(err.contains(n), "`{n}` not in {err}");
        }
    };
    let path = file.display().to_string();
    let edits: &[(&str, &str, &[&str])] = &[
        (
            "existing-test-path = \"tests/test_value.sh\"",
            "existing-test-path = \"tests/test_gone.sh\"",
            &[
                "/info/existing-test-path",
                "tests/test_gone.sh",
                "does not exist at commit",
            ],
        ),
        (
            "fail-to-pass = [\"sh tests/test_value.sh\"]",
            "fail-to-pass = [\"   \"]",
            &["/fail-to-pass/0"],
        ),
    ];
    for (from, to, needles) in edits {
        std::fs::write(&file, good.replace(from, to)).unwrap();
        let mut n = vec![path.as_str()];
        n.extend(needles.iter());
        check(&[&file], &n);
    }
    for (extra, needle) in [
        ("setup-budget = \"soon\"\n", "/setup-budget"),
        ("env = { \"BAD-NAME\" = \"x\" }\n", "/env"),
        ("qualify-runs = 0\n", "/qualify-runs"),
    ] {
        std::fs::write(&file, format!("{extra}{good}")).unwrap();
        check(&[&file], &[&path, needle]);
    }
    std::fs::write(&file, &good).unwrap();
    // A gold patch that does not apply, then an empty one.
    std::fs::write(case.join("gold.patch"), gold.replace("echo 1", "echo 7")).unwrap();
    check(&[&file], &[&path, "/gold-patch", "does not apply"]);
    std::fs::write(case.join("gold.patch"), "\n").unwrap();
    check(&[&file], &[&path, "/gold-patch", "holds no diff"]);
    std::fs::write(case.join("gold.patch"), &gold).unwrap();

    // Variants: checked by their schema, never read as job specs.
    let variant = tmp.path().join("variant.toml");
    std::fs::write(
        &variant,
        "name = \"v1\"\nmodel = \"m\"\npath = [\"bin\"]\nsetup = [\"true\"]\n",
    )
    .unwrap();
    let o = fixci().arg("validate").arg(&variant).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("replay variant"));
    std::fs::write(&variant, "name = \"v1\"\nmodle = \"m\"\n").unwrap();
    check(&[&variant], &[&variant.display().to_string(), "modle"]);
    std::fs::write(&variant, "name = \"v1\"\nsetup = [\"\"]\n").unwrap();
    check(&[&variant], &["variant.toml", "/setup/0"]);
    let s = fixci().args(["schema", "variant"]).output().unwrap();
    let schema: Value = serde_json::from_slice(&s.stdout).unwrap();
    assert_eq!(schema["properties"]["path"]["type"], "array");

    // `--variant` with `--agent gold` is an error that writes nothing.
    let out = tmp.path().join("out");
    std::fs::write(&variant, "name = \"v1\"\n").unwrap();
    let o = fixci()
        .args(["replay", "run"])
        .arg(tmp.path().join("cases"))
        .args(["--agent", "gold", "--variant"])
        .arg(&variant)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--variant") && err.contains("--agent gold"),
        "{err}"
    );
    assert!(!out.exists());
}

/// `lib.py` of a case whose test counts its runs in `$COUNTER` and fails, until the fix, by
/// `assertEqual` except in the runs `odd_run` (a Python condition on the run number `n`) picks,
/// where the code under test does `odd_code` instead.
fn counting_lib(odd_run: &str, odd_code: &str) -> String {
    format!(
        "import os\n\n\ndef value():\n    path = os.environ['COUNTER']\n    n = int(open(path).read()) if os.path.exists(path) else 0\n    n += 1\n    open(path, 'w').write(str(n))\n    if {odd_run}:\n        {odd_code}\n    return n\n"
    )
}

/// The test of [`counting_lib`]: the value must be 0 (the assertion message holds the run
/// number, so it differs in every run while the kind stays the same).
const COUNTING_TEST: &str = "import unittest\n\nfrom lib import value\n\n\nclass T(unittest.TestCase):\n    def test_value(self):\n        self.assertEqual(value(), 0)\n";

#[test]
fn a_deterministic_fail_to_pass_failing_in_different_ways_is_flagged_and_not_qualified() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let fixed = "def value():\n    return 0\n";
    let def = |id: &'static str, lib: String, runs: u32, budget: &str| {
        let counter = root.join(format!("{id}.count"));
        let extra = format!(
            "qualify-runs = {runs}\ncheck-budget = \"{budget}\"\nenv = {{ COUNTER = {:?} }}",
            counter.display().to_string()
        );
        make_case(
            root,
            &Def {
                id,
                files: &[
                    ("lib.py", &lib),
                    ("tests/__init__.py", ""),
                    ("tests/test_value.py", COUNTING_TEST),
                ],
                fix: &[("lib.py", fixed)],
                f2p: &["python3 -m unittest tests.test_value"],
                p2p: &[],
                deterministic: true,
                extra: &extra,
            },
        );
    };
    // An assertion in 8 runs, a ModuleNotFoundError raised in the test's body (through the
    // code under test) in 2.
    def(
        "body-import",
        counting_lib("n % 5 == 0", "import fixci_absent_module"),
        10,
        "60s",
    );
    // An assertion in 3 runs, a timeout in the 3rd.
    def(
        "timeout",
        counting_lib("n == 3", "import time; time.sleep(60)"),
        4,
        "3s",
    );
    // An assertion in every run, each with another message: the same way.
    def("same-way", counting_lib("False", "pass"), 4, "60s");
    let out = root.join("out");
    let recs = replay_gold(root, &out, &[]);
    let by = |id: &str| recs.iter().find(|r| r["case"] == id).unwrap();

    let r = by("body-import");
    assert_eq!(flag_names(r), ["fail-to-pass-fails-differently"], "{r}");
    let flag = r["flags"][0].as_str().unwrap();
    assert!(
        flag.contains("assertion ×8") && flag.contains("exception:ModuleNotFoundError ×2"),
        "{flag}"
    );
    // The record names each kind's failure.
    let before = &r["fail_to_pass_before"][0];
    assert_eq!(before["failure_kinds"]["assertion"], 8, "{r}");
    assert_eq!(
        before["failure_kinds"]["exception:ModuleNotFoundError"], 2,
        "{r}"
    );
    assert!(
        before["failure_lines"]["exception:ModuleNotFoundError"]
            .as_str()
            .unwrap()
            .contains("No module named 'fixci_absent_module'"),
        "{r}"
    );
    assert!(
        before["failure_lines"]["assertion"]
            .as_str()
            .unwrap()
            .contains("AssertionError: 1 != 0"),
        "{r}"
    );
    // Raised in the test's body, the import error is the test failing: reproduced, then fixed.
    assert_eq!(r["funnel"]["reproduced"], true, "{r}");
    assert_eq!(r["fail_to_pass"][0]["passed"], 10, "{r}");
    assert_eq!(r["verdict"], "unresolved", "{r}");

    let r = by("timeout");
    assert_eq!(flag_names(r), ["fail-to-pass-fails-differently"], "{r}");
    let kinds = &r["fail_to_pass_before"][0]["failure_kinds"];
    assert_eq!(
        (kinds["assertion"].as_u64(), kinds["timeout"].as_u64()),
        (Some(3), Some(1)),
        "{r}"
    );

    let r = by("same-way");
    assert_eq!(r["flags"], serde_json::json!([]), "{r}");
    assert_eq!(r["verdict"], "resolved", "{r}");
    assert_eq!(
        r["fail_to_pass_before"][0]["failure_kinds"]["assertion"], 4,
        "{r}"
    );

    // Only the case failing the same way qualifies.
    let (_, json) = replay_report(&out);
    let q = json["qualification"].as_array().unwrap();
    let qualified: Vec<&str> = q
        .iter()
        .filter(|c| c["qualified"] == true)
        .map(|c| c["case"].as_str().unwrap())
        .collect();
    assert_eq!(qualified, ["same-way"], "{json}");
}
