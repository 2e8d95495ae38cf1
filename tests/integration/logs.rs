//! `fixci logs` tests: the real binary on the real GitHub logs in `../shared/fixtures/logs` and on
//! adversarial inputs built in temp dirs.

use serde_json::Value;

use crate::common::{fixci, fixtures};

fn json_of(args: &[&str]) -> Value {
    let out = fixci().arg("logs").arg("--json").args(args).output().expect("run fixci");
    assert!(out.status.success(), "fixci logs failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

fn tests_of(v: &Value) -> Vec<String> {
    v["failures"].as_array().expect("failures").iter().map(|f| f["test"].as_str().unwrap_or("").to_string()).collect()
}

#[test]
fn pytest_step_log_reports_only_the_failing_test() {
    let Some(fx) = fixtures() else { return };
    let v = json_of(&[fx.join("logs/pytest-step-gitauto.txt").to_str().unwrap()]);
    assert_eq!(
        tests_of(&v),
        vec!["utils/files/test_should_test_file.py::TestShouldTestFile::test_should_test_file_with_boolean_return_values"]
    );
    let f = &v["failures"][0];
    assert_eq!(f["file"], "utils/files/test_should_test_file.py");
    assert_eq!(f["line"], 534);
    assert_eq!(f["message"], "assert False");
    assert_eq!(
        v["signature"],
        "utils/files/test_should_test_file.py::TestShouldTestFile::test_should_test_file_with_boolean_return_values: assert False"
    );
    let excerpt = v["excerpt"].as_str().unwrap();
    assert!(excerpt.contains("E           assert False"), "{excerpt}");
    assert!(!excerpt.contains("collected 2900 items"), "setup noise in the excerpt");
    // Line numbers point into the original file.
    let lines: Vec<u64> = v["source_lines"].as_array().unwrap().iter().map(|n| n.as_u64().unwrap()).collect();
    let original = std::fs::read_to_string(fx.join("logs/pytest-step-gitauto.txt")).unwrap();
    let original: Vec<&str> = original.lines().collect();
    for (text, no) in excerpt.lines().zip(&lines) {
        assert_eq!(original[*no as usize - 1].trim_end(), text.trim_end(), "line {no}");
    }
}

#[test]
fn phpunit_run_logs_archive_reports_the_phpunit_failures_not_the_warnings() {
    let Some(fx) = fixtures() else { return };
    let v = json_of(&[fx.join("logs/run-logs-archive-phpunit.zip").to_str().unwrap()]);
    assert_eq!(
        tests_of(&v),
        vec![
            r"Tests\Unit\Php\BaseParserClassTest::testBooleanWithObject",
            r"Tests\Unit\Php\BaseParserClassTest::testBooleanWithStringTrueUpperCase",
            r"Tests\Unit\Php\BaseParserClassTest::testBooleanWithStringTrueMixedCase",
        ]
    );
    for f in v["failures"].as_array().unwrap() {
        assert_eq!(f["kind"], "phpunit");
        assert_eq!(f["entry"], "0_php-unit.txt");
        assert!(!f["message"].as_str().unwrap().contains("failed to open stream"));
    }
    assert_eq!(v["failures"][2]["message"], "Failed asserting that false is true.");
    assert_eq!(v["failures"][2]["line"], 42);
    let excerpt = v["excerpt"].as_str().unwrap();
    assert!(!excerpt.contains("failed to open stream"), "{excerpt}");
    assert!(!excerpt.contains("2026-02-11T"), "timestamps must be stripped: {excerpt}");
    assert!(excerpt.contains("Tests: 5125, Assertions: 14582, Errors: 1, Failures: 2"));
    assert!(v["source_lines"].as_array().unwrap().iter().all(|n| n.as_u64().unwrap() > 1000));
}

#[test]
fn markdown_output_lists_failures_and_numbered_excerpt() {
    let Some(fx) = fixtures() else { return };
    let out = fixci().arg("logs").arg(fx.join("logs/run-logs-archive-phpunit.zip")).output().unwrap();
    assert!(out.status.success());
    let md = String::from_utf8(out.stdout).unwrap();
    assert!(md.contains("## Failures"), "{md}");
    assert!(md.contains(r"- `Tests\Unit\Php\BaseParserClassTest::testBooleanWithStringTrueMixedCase`"), "{md}");
    assert!(md.contains("1034 | Failed asserting that false is true."), "{md}");
}

#[test]
fn a_url_is_a_usage_error_until_the_forge_module_lands() {
    fixci()
        .args(["logs", "https://github.com/o/r/actions/runs/1"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("forge module"));
}

#[test]
fn a_missing_file_is_a_usage_error_naming_it() {
    fixci()
        .args(["logs", "/nonexistent/ci.log"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("`/nonexistent/ci.log`"));
}
