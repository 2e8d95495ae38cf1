//! `fixci logs` tests: the real binary on the real GitHub logs in `../shared/fixtures/logs` and on
//! adversarial inputs built in temp dirs.

use serde_json::Value;

use crate::common::{fixci, fixtures};

fn json_of(args: &[&str]) -> Value {
    let out = fixci()
        .arg("logs")
        .arg("--json")
        .args(args)
        .output()
        .expect("run fixci");
    assert!(
        out.status.success(),
        "fixci logs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

fn tests_of(v: &Value) -> Vec<String> {
    v["failures"]
        .as_array()
        .expect("failures")
        .iter()
        .map(|f| f["test"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn pytest_step_log_reports_only_the_failing_test() {
    let Some(fx) = fixtures() else { return };
    let v = json_of(&[fx.join("logs/pytest-step-gitauto.txt").to_str().unwrap()]);
    assert_eq!(
        tests_of(&v),
        vec![
            "utils/files/test_should_test_file.py::TestShouldTestFile::test_should_test_file_with_boolean_return_values"
        ]
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
    assert!(
        !excerpt.contains("collected 2900 items"),
        "setup noise in the excerpt"
    );
    // Line numbers point into the original file.
    let lines: Vec<u64> = v["source_lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .collect();
    let original = std::fs::read_to_string(fx.join("logs/pytest-step-gitauto.txt")).unwrap();
    let original: Vec<&str> = original.lines().collect();
    for (text, no) in excerpt.lines().zip(&lines) {
        assert_eq!(
            original[*no as usize - 1].trim_end(),
            text.trim_end(),
            "line {no}"
        );
    }
}

#[test]
fn phpunit_run_logs_archive_reports_the_phpunit_failures_not_the_warnings() {
    let Some(fx) = fixtures() else { return };
    let v = json_of(&[fx
        .join("logs/run-logs-archive-phpunit.zip")
        .to_str()
        .unwrap()]);
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
        assert!(
            !f["message"]
                .as_str()
                .unwrap()
                .contains("failed to open stream")
        );
    }
    assert_eq!(
        v["failures"][2]["message"],
        "Failed asserting that false is true."
    );
    assert_eq!(v["failures"][2]["line"], 42);
    let excerpt = v["excerpt"].as_str().unwrap();
    assert!(!excerpt.contains("failed to open stream"), "{excerpt}");
    assert!(
        !excerpt.contains("2026-02-11T"),
        "timestamps must be stripped: {excerpt}"
    );
    assert!(excerpt.contains("Tests: 5125, Assertions: 14582, Errors: 1, Failures: 2"));
    assert!(
        v["source_lines"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n.as_u64().unwrap() > 1000)
    );
}

#[test]
fn markdown_output_lists_failures_and_numbered_excerpt() {
    let Some(fx) = fixtures() else { return };
    let out = fixci()
        .arg("logs")
        .arg(fx.join("logs/run-logs-archive-phpunit.zip"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let md = String::from_utf8(out.stdout).unwrap();
    assert!(md.contains("## Failures"), "{md}");
    assert!(
        md.contains(r"- `Tests\Unit\Php\BaseParserClassTest::testBooleanWithStringTrueMixedCase`"),
        "{md}"
    );
    assert!(
        md.contains("1034 | Failed asserting that false is true."),
        "{md}"
    );
}

#[test]
fn a_url_that_is_not_a_run_url_is_a_usage_error_naming_it() {
    fixci()
        .args(["logs", "https://github.com/o/r/pull/7"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("https://github.com/o/r/pull/7"));
}

#[test]
fn a_missing_file_is_a_usage_error_naming_it() {
    fixci()
        .args(["logs", "/nonexistent/ci.log"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("`/nonexistent/ci.log`"));
}

fn write_zip(path: &std::path::Path, entries: &[(&str, &[u8])]) {
    let f = std::fs::File::create(path).unwrap();
    let mut z = zip::ZipWriter::new(f);
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in entries {
        z.start_file(*name, opts).unwrap();
        std::io::Write::write_all(&mut z, data).unwrap();
    }
    z.finish().unwrap();
}

const PYTEST_TAIL: &str = "=================================== FAILURES ===================================\n\
_________________________________ test_even[1] _________________________________\n\
\n\
n = 1\n\
\n\
>       assert n % 2 == 0\n\
E       assert (1 % 2) == 0\n\
\n\
tests/test_x.py:16: AssertionError\n\
=========================== short test summary info ============================\n\
FAILED tests/test_x.py::test_even[1] - assert (1 % 2) == 0\n\
============================== 1 failed in 0.04s ===============================\n";

#[test]
fn run_logs_zip_prefers_step_files_and_names_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let zip = dir.path().join("logs.zip");
    let step = format!(
        "2026-02-11T00:08:26.4935586Z ##[group]Run pytest\n2026-02-11T00:08:26.4935586Z collected 3 items\n{}",
        PYTEST_TAIL
    );
    let job = format!("setup line\n{step}");
    write_zip(
        &zip,
        &[
            ("1_test.txt", job.as_bytes()),
            (
                "test/1_Set up job.txt",
                b"Current runner version: '2.331.0'\n",
            ),
            ("test/4_Run pytest.txt", step.as_bytes()),
            ("test/system.txt", b"Requested labels: ubuntu-latest\n"),
        ],
    );
    let v = json_of(&[zip.to_str().unwrap()]);
    assert_eq!(tests_of(&v), vec!["tests/test_x.py::test_even[1]"]);
    assert_eq!(v["failures"][0]["entry"], "test/4_Run pytest.txt");
    assert_eq!(v["failures"][0]["step"], "Run pytest");
    // Line numbers are those of the step file (the `E` line is its 9th line).
    let excerpt: Vec<&str> = v["excerpt"].as_str().unwrap().lines().collect();
    let i = excerpt
        .iter()
        .position(|l| l.starts_with("E       assert"))
        .unwrap();
    assert_eq!(v["source_lines"][i], 9);
}

#[test]
fn zip_bomb_is_refused_past_the_size_limit() {
    let dir = tempfile::tempdir().unwrap();
    let zip = dir.path().join("bomb.zip");
    let zeros = vec![b'\n'; 8 << 20];
    write_zip(&zip, &[("0_job.txt", &zeros)]);
    assert!(
        std::fs::metadata(&zip).unwrap().len() < 200_000,
        "the test archive should be small"
    );
    let err = fixci::logs::distil_path_with_limit(&zip, &Default::default(), 1 << 20).unwrap_err();
    assert!(err.to_string().contains("over the limit"), "{err}");
    assert!(err.to_string().contains("bomb.zip"), "{err}");
    // An archive whose headers understate the size is cut off while inflating.
    let mut bytes = std::fs::read(&zip).unwrap();
    for sig in [&b"PK\x03\x04"[..], b"PK\x01\x02"] {
        let at = bytes.windows(4).position(|w| w == sig).unwrap();
        let off = if sig == b"PK\x03\x04" { 22 } else { 24 };
        bytes[at + off..at + off + 4].copy_from_slice(&1000u32.to_le_bytes());
    }
    std::fs::write(&zip, &bytes).unwrap();
    match fixci::logs::distil_path_with_limit(&zip, &Default::default(), 1 << 20) {
        Ok(d) => assert!(d.failures.is_empty()),
        Err(e) => assert!(e.to_string().contains("bomb.zip"), "{e}"),
    }
    // Through the CLI a broken archive is a usage error naming the file.
    std::fs::write(&zip, b"PK\x03\x04 truncated").unwrap();
    fixci()
        .arg("logs")
        .arg(&zip)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("bomb.zip"));
}

#[test]
fn empty_file_gives_an_empty_result() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("empty.log");
    std::fs::write(&p, b"").unwrap();
    let v = json_of(&[p.to_str().unwrap()]);
    assert_eq!(v["failures"].as_array().unwrap().len(), 0);
    assert!(v["signature"].is_null());
    assert_eq!(v["excerpt"], "");
}

#[test]
fn binary_garbage_is_a_clear_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("core.bin");
    let garbage: Vec<u8> = (0..100_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&p, &garbage).unwrap();
    fixci()
        .arg("logs")
        .arg(&p)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("looks binary"));
}

#[test]
fn two_gb_sparse_file_is_refused_quickly() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("sparse.log");
    let f = std::fs::File::create(&p).unwrap();
    f.set_len(2 << 30).unwrap();
    drop(f);
    fixci()
        .arg("logs")
        .arg(&p)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("NUL byte at offset 0"));
}

#[test]
fn ten_megabyte_lines_are_truncated_and_the_failure_still_found() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("long.log");
    let mut log = Vec::new();
    log.extend_from_slice(b"2026-02-11T00:08:26.4935586Z ");
    log.extend(std::iter::repeat_n(b'x', 10 << 20));
    log.extend_from_slice(b"\nERROR in the middle of a long line: ");
    log.extend(std::iter::repeat_n(b'y', 10 << 20));
    log.push(b'\n');
    let tail = PYTEST_TAIL.replace("n = 1\n", &format!("n = {}\n", "z".repeat(10 << 20)));
    log.extend_from_slice(tail.as_bytes());
    std::fs::write(&p, &log).unwrap();
    let v = json_of(&[p.to_str().unwrap(), "--budget", "100000"]);
    assert_eq!(tests_of(&v), vec!["tests/test_x.py::test_even[1]"]);
    assert_eq!(v["failures"][0]["message"], "assert (1 % 2) == 0");
    let excerpt = v["excerpt"].as_str().unwrap();
    assert!(excerpt.len() <= 100_000);
    assert!(
        excerpt.lines().all(|l| l.len() <= 4096),
        "excerpt lines are capped"
    );
    // Line numbers still count the long lines: the `E` line is line 9.
    let i = excerpt
        .lines()
        .position(|l| l.starts_with("E       assert"))
        .unwrap();
    assert_eq!(v["source_lines"][i], 9);
}

#[test]
fn invalid_utf8_is_replaced_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("latin1.log");
    let mut log = b"caf\xe9 au lait\n".to_vec();
    log.extend_from_slice(
        PYTEST_TAIL
            .replace(
                "assert (1 % 2) == 0\n\ntests",
                "assert '\u{fffd}' == 0\n\ntests",
            )
            .as_bytes(),
    );
    log.extend_from_slice(b"FAILED tests/test_y.py::test_bytes - assert b'\xff' == b''\n");
    std::fs::write(&p, &log).unwrap();
    let v = json_of(&[p.to_str().unwrap()]);
    assert_eq!(
        tests_of(&v),
        vec![
            "tests/test_x.py::test_even[1]",
            "tests/test_y.py::test_bytes"
        ]
    );
    assert!(
        v["failures"][1]["message"]
            .as_str()
            .unwrap()
            .contains('\u{fffd}')
    );
}

#[test]
fn junit_xml_file_is_read_directly() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("report.xml");
    std::fs::write(
        &p,
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<testsuites>\n<testsuite name=\"pytest\" failures=\"1\">\n\
<testcase classname=\"tests.test_x\" name=\"test_even[1]\" file=\"tests/test_x.py\" line=\"14\">\n\
<failure message=\"assert (1 % 2) == 0\">n = 1\n&gt;       assert n % 2 == 0\nE       assert (1 % 2) == 0</failure>\n\
</testcase>\n</testsuite>\n</testsuites>\n",
    )
    .unwrap();
    let v = json_of(&[p.to_str().unwrap()]);
    assert_eq!(tests_of(&v), vec!["tests.test_x.test_even[1]"]);
    assert_eq!(v["failures"][0]["file"], "tests/test_x.py");
    assert_eq!(v["failures"][0]["line"], 14);
    assert_eq!(
        v["signature"],
        "tests.test_x.test_even[1]: assert (N % N) == N"
    );
}

#[test]
fn a_directory_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    fixci()
        .arg("logs")
        .arg(dir.path())
        .assert()
        .code(2)
        .stderr(predicates::str::contains("directory"));
}
