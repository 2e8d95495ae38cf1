//! Rule-pack tests over real runner output in `tests/data/logs/` (pytest, unittest and cargo test
//! output was produced by running the tools; the others follow each runner's documented format),
//! plus the same outputs wrapped the way GitHub Actions stores them.

use super::*;

macro_rules! sample {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/logs/",
            $name
        ))
    };
}

fn distil(text: &str) -> Distilled {
    distil_bytes(text.as_bytes(), &DistilOptions::default()).expect("distils")
}

/// `(test, file, line, message)` of one failure.
type Row = (String, Option<String>, Option<u32>, Option<String>);

fn rows(d: &Distilled) -> Vec<Row> {
    d.failures
        .iter()
        .map(|f| (f.test.clone(), f.file.clone(), f.line, f.message.clone()))
        .collect()
}

fn row(test: &str, file: Option<&str>, line: Option<u32>, msg: Option<&str>) -> Row {
    (
        test.to_string(),
        file.map(str::to_string),
        line,
        msg.map(str::to_string),
    )
}

/// Wraps a log as a GitHub Actions job log: timestamps, a `##[group]` for setup, ANSI colour on
/// some lines, setup noise, a trailing `##[error]` line. Returns the text and the line offset.
fn github_wrap(text: &str) -> (String, u64) {
    let mut out = String::new();
    let mut n = 0u64;
    let mut push = |out: &mut String, l: &str| {
        out.push_str(&format!(
            "2026-02-11T00:08:{:02}.{:07}Z {l}\n",
            n % 60,
            n * 7919 % 10_000_000
        ));
        n += 1;
    };
    push(&mut out, "##[group]Run actions/setup-python@v5");
    for i in 0..50 {
        push(
            &mut out,
            &format!("Successfully installed package-{i} (Error: none reported)"),
        );
    }
    push(&mut out, "##[endgroup]");
    push(&mut out, "##[group]Run the tests");
    let offset = 53;
    for (i, l) in text.lines().enumerate() {
        if i % 3 == 0 && !l.is_empty() {
            push(&mut out, &format!("\x1b[1m{l}\x1b[0m"));
        } else {
            push(&mut out, l);
        }
    }
    push(&mut out, "##[endgroup]");
    push(&mut out, "##[error]Process completed with exit code 1.");
    (out, offset)
}

/// `text` extracted twice: reading only the prefilter's candidate lines outside sections and
/// blocks, and reading every line.
fn fast_and_exhaustive(text: &str) -> (Extracted, Extracted) {
    let book = rule_pack::embedded().unwrap();
    let mut fast = extractor::Extractor::new(book);
    fast.feed(text.as_bytes());
    let mut slow = extractor::Extractor::new(book);
    slow.exhaustive = true;
    slow.feed(text.as_bytes());
    (fast.finish(), slow.finish())
}

/// The failures are the same plain and wrapped (line numbers shifted), and the fast path agrees
/// with processing every line.
fn check_stable(text: &str) {
    let plain = distil(text);
    let (wrapped, offset) = github_wrap(text);
    let w = distil(&wrapped);
    assert_eq!(rows(&plain), rows(&w), "wrapping changed the result");
    assert_eq!(plain.signature, w.signature);
    let shifted: Vec<u64> = plain.source_lines.iter().map(|n| n + offset).collect();
    let w_lines: Vec<u64> = w
        .source_lines
        .iter()
        .copied()
        .filter(|n| *n <= offset + text.lines().count() as u64)
        .collect();
    assert_eq!(shifted, w_lines);
    for t in [text, wrapped.as_str()] {
        let (f, s) = fast_and_exhaustive(t);
        let ids = |e: &Extracted| {
            e.failures
                .iter()
                .map(|c| (c.test.clone(), c.message.clone(), c.line))
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&f), ids(&s), "the prefilter missed a line");
        assert_eq!(f.lines, s.lines);
    }
}

#[test]
fn pytest_errors_and_failures_with_summary_ids() {
    let text = sample!("pytest-plain.txt");
    let d = distil(text);
    assert_eq!(
        rows(&d),
        vec![
            row(
                "tests/test_pyfuncs.py::test_uses_broken",
                Some("tests/test_pyfuncs.py"),
                Some(25),
                Some("RuntimeError: fixture exploded")
            ),
            row(
                "tests/test_pyfuncs.py::test_box_value",
                Some("tests/test_pyfuncs.py"),
                Some(11),
                Some(
                    "AssertionError: unexpected box <tests.test_pyfuncs.Box object at 0x7f013cd865d0>"
                )
            ),
            row(
                "tests/test_pyfuncs.py::test_even[1]",
                Some("tests/test_pyfuncs.py"),
                Some(16),
                Some("assert (1 % 2) == 0")
            ),
        ]
    );
    assert_eq!(
        d.signature.as_deref(),
        Some("tests/test_pyfuncs.py::test_uses_broken: RuntimeError: fixture exploded")
    );
    assert!(d.excerpt.contains("E       assert (1 % 2) == 0"));
    check_stable(text);
}

#[test]
fn pytest_verbose_coloured_output() {
    let text = sample!("pytest-verbose-color.txt");
    let d = distil(text);
    let tests: Vec<&str> = d.failures.iter().map(|f| f.test.as_str()).collect();
    assert_eq!(
        tests,
        vec![
            "tests/test_pyfuncs.py::test_box_value",
            "tests/test_pyfuncs.py::test_even[1]",
            "tests/test_pyfuncs.py::test_uses_broken"
        ]
    );
    assert!(!d.excerpt.contains('\x1b'), "ANSI left in the excerpt");
    check_stable(text);
}

#[test]
fn unittest_fail_and_error_blocks() {
    for text in [sample!("unittest.txt"), sample!("unittest-verbose.txt")] {
        let d = distil(text);
        let file = Some("/home/runner/work/calc/calc/tests/test_calc.py");
        assert_eq!(
            rows(&d),
            vec![
                row(
                    "tests.test_calc.TestCalc.test_lookup",
                    file,
                    Some(18),
                    Some("KeyError: 'b'")
                ),
                row(
                    "tests.test_calc.TestCalc.test_add_one",
                    file,
                    Some(13),
                    Some("AssertionError: 4 != 3")
                ),
            ]
        );
        assert!(d.excerpt.contains("FAILED (failures=1, errors=1)"));
        check_stable(text);
    }
}

#[test]
fn unittest_before_python_3_11_names_the_class_only() {
    let text = "F\n======================================================================\nFAIL: test_add_one (tests.test_calc.TestCalc)\n----------------------------------------------------------------------\nTraceback (most recent call last):\n  File \"/w/tests/test_calc.py\", line 13, in test_add_one\n    self.assertEqual(add(1, 2), 3)\nAssertionError: 4 != 3\n\n----------------------------------------------------------------------\nRan 1 test in 0.000s\n\nFAILED (failures=1)\n";
    let d = distil(text);
    assert_eq!(
        rows(&d),
        vec![row(
            "tests.test_calc.TestCalc.test_add_one",
            Some("/w/tests/test_calc.py"),
            Some(13),
            Some("AssertionError: 4 != 3")
        )]
    );
    assert_eq!(
        d.signature.as_deref(),
        Some("tests.test_calc.TestCalc.test_add_one: AssertionError: N != N")
    );
}

#[test]
fn cargo_test_panics() {
    let text = sample!("cargo-test.txt");
    let d = distil(text);
    assert_eq!(
        rows(&d),
        vec![
            row(
                "tests::adds_one",
                Some("src/lib.rs"),
                Some(16),
                Some("assertion `left == right` failed")
            ),
            row(
                "tests::parses",
                Some("src/lib.rs"),
                Some(23),
                Some("a number: ParseIntError { kind: InvalidDigit }")
            ),
        ]
    );
    assert!(
        d.excerpt
            .contains("test result: FAILED. 1 passed; 2 failed")
    );
    check_stable(text);
}

#[test]
fn cargo_compile_errors() {
    let text = sample!("cargo-compile-error.txt");
    let d = distil(text);
    // A compile error is not a failing test: no failure, the first error as the reason.
    assert!(d.failures.is_empty(), "{:?}", d.failures);
    let n = d.no_test_failure.expect("a no-test failure");
    assert_eq!(n.error_line, "error[E0308]: mismatched types");
    assert_eq!(n.file.as_deref(), Some("src/lib.rs"));
    assert_eq!(n.line, Some(2));
    assert_eq!(n.kind, "cargo");
    assert!(d.excerpt.contains("error[E0308]: mismatched types"));
    assert_eq!(d.signature, None);
}

#[test]
fn nextest_failures() {
    for text in [sample!("nextest.txt"), sample!("nextest-old.txt")] {
        let d = distil(text);
        assert_eq!(
            rows(&d),
            vec![row(
                "calc tests::adds_one",
                Some("src/lib.rs"),
                Some(16),
                Some("assertion `left == right` failed")
            )]
        );
        check_stable(text);
    }
}

#[test]
fn go_test_plain_verbose_and_panic() {
    for text in [sample!("go-test.txt"), sample!("go-test-v.txt")] {
        let d = distil(text);
        assert_eq!(
            rows(&d),
            vec![
                row(
                    "TestAdd",
                    Some("calc_test.go"),
                    Some(13),
                    Some("Add(1, 2) = 4, want 3")
                ),
                row(
                    "TestTable/one",
                    Some("calc_test.go"),
                    Some(21),
                    Some("Add(1, 1) = 3, want 2")
                ),
            ],
            "{text}"
        );
        assert!(d.excerpt.contains("FAIL\texample.com/calc"));
        check_stable(text);
    }
    let text = sample!("go-test-panic.txt");
    let d = distil(text);
    let last = d.failures.last().unwrap();
    assert_eq!(last.test, "TestIndex");
    assert_eq!(
        last.message.as_deref(),
        Some("runtime error: index out of range [3] with length 0")
    );
    assert_eq!(
        (last.file.as_deref(), last.line),
        (Some("/home/runner/work/calc/calc/panic_test.go"), Some(7))
    );
    assert_eq!(d.failures.len(), 3);
    check_stable(text);
}

#[test]
fn jest_blocks() {
    let text = sample!("jest.txt");
    let d = distil(text);
    assert_eq!(
        rows(&d),
        vec![
            row(
                "sum › adds 1 + 2 to equal 3",
                Some("src/sum.test.js"),
                Some(10),
                Some("expect(received).toBe(expected) // Object.is equality")
            ),
            row(
                "parse › rejects bad input",
                // The test's own frame (the call into parse.js), not the throw site.
                Some("src/sum.test.js"),
                Some(16),
                Some("TypeError: Cannot read properties of undefined (reading 'trim')")
            ),
        ]
    );
    assert!(
        d.excerpt
            .contains("Tests:       2 failed, 1 passed, 3 total")
    );
    check_stable(text);
}

#[test]
fn vitest_blocks() {
    let text = sample!("vitest.txt");
    let d = distil(text);
    assert_eq!(
        rows(&d),
        vec![row(
            "sum > adds 1 + 2",
            Some("src/sum.test.ts"),
            Some(10),
            Some("AssertionError: expected 4 to be 3 // Object.is equality")
        )]
    );
    check_stable(text);
}

#[test]
fn googletest_confirmed_failures_only() {
    let text = sample!("gtest.txt");
    let d = distil(text);
    assert_eq!(
        rows(&d),
        vec![row(
            "CalcTest.AddsOne",
            Some("/home/runner/work/calc/calc/test/calc_test.cc"),
            Some(12),
            Some("Expected equality of these values:")
        )]
    );
    check_stable(text);
}

#[test]
fn phpunit_sections_ignore_warnings() {
    let text = sample!("phpunit.txt");
    let d = distil(text);
    assert_eq!(
        rows(&d),
        vec![
            row(
                r"Tests\Unit\CalcTest::testDivide",
                Some("/app/tests/Unit/CalcTest.php"),
                Some(27),
                Some("DivisionByZeroError: Division by zero")
            ),
            row(
                r"Tests\Unit\CalcTest::testAdd",
                Some("/app/tests/Unit/CalcTest.php"),
                Some(19),
                Some("Failed asserting that 4 matches expected 3.")
            ),
        ]
    );
    assert!(!d.excerpt.contains("failed to open stream"));
    check_stable(text);
}

#[test]
fn generic_errors_only_when_no_test_failed() {
    let text = "Run make\nbuilding...\nFATAL: disk quota exceeded on /build\n##[error]Process completed with exit code 2.\n";
    let d = distil(text);
    assert!(d.failures.is_empty());
    let n = d.no_test_failure.expect("a no-test failure");
    assert_eq!(n.error_line, "FATAL: disk quota exceeded on /build");
    assert_eq!(n.log_line, 3);
    assert_eq!(n.kind, "generic");
    assert_eq!(d.signature, None);
    // With a test failure, the exit-code line is context, not a failure.
    let d = distil(sample!("cargo-test.txt"));
    assert!(
        d.failures
            .iter()
            .all(|f| f.kind.as_deref() == Some("cargo"))
    );
}

#[test]
fn signatures_match_across_runs_with_other_addresses() {
    let ci = distil(sample!("pytest-plain.txt"));
    let sig = ci
        .failures
        .iter()
        .find(|f| f.test.ends_with("test_box_value"))
        .map(|f| signature::signature(&f.test, f.message.as_deref()))
        .unwrap();
    assert_eq!(
        sig,
        "tests/test_pyfuncs.py::test_box_value: AssertionError: unexpected box <tests.test_pyfuncs.Box object at H>"
    );
    let rerun = sample!("pytest-one-rerun.txt");
    assert_eq!(
        output_signature(rerun.as_bytes()).as_deref(),
        Some(sig.as_str())
    );
    assert!(signature_matches(&sig, rerun.as_bytes()));
    assert!(!signature_matches(&sig, sample!("unittest.txt").as_bytes()));

    let ci = distil(sample!("unittest.txt"));
    let sig = signature::signature(&ci.failures[1].test, ci.failures[1].message.as_deref());
    let rerun = sample!("unittest-one-rerun.txt");
    assert_eq!(
        output_signature(rerun.as_bytes()).as_deref(),
        Some(sig.as_str())
    );
    assert!(signature_matches(&sig, rerun.as_bytes()));
    // A pytest run of the same unittest test names it `path::Class::test`: still a match.
    let via_pytest = "FAILED tests/test_calc.py::TestCalc::test_add_one - AssertionError: 5 != 3\n";
    assert!(signature_matches(
        "TestCalc.test_add_one: AssertionError: N != N",
        via_pytest.as_bytes()
    ));
    assert!(!signature_matches(&sig, b"all good\n"));
}

#[test]
fn excerpt_respects_the_budget_and_keeps_the_error() {
    let text = sample!("cargo-test.txt");
    for budget in [0, 50, 200, 600, 1500, 100_000] {
        let d = distil_bytes(
            text.as_bytes(),
            &DistilOptions {
                budget_bytes: budget,
            },
        )
        .unwrap();
        assert!(
            d.excerpt.len() <= budget,
            "budget {budget}: {} bytes",
            d.excerpt.len()
        );
        assert_eq!(d.excerpt.lines().count(), d.source_lines.len());
        assert_eq!(d.failures.len(), 2, "failures do not depend on the budget");
    }
    let d = distil_bytes(text.as_bytes(), &DistilOptions { budget_bytes: 600 }).unwrap();
    for want in [
        "test tests::adds_one ... FAILED",
        "thread 'tests::adds_one' (25797) panicked at src/lib.rs:16:9:",
        "assertion `left == right` failed",
    ] {
        assert!(
            d.excerpt.contains(want),
            "{want} missing from a cut excerpt: {}",
            d.excerpt
        );
    }
    assert!(
        !d.excerpt.contains("FnOnce"),
        "backtrace kept before the error: {}",
        d.excerpt
    );
}

#[test]
fn repeated_lines_collapse_with_a_count() {
    let mut text = String::from(
        "FAIL: test_x (m.T.test_x)\n----------------------------------------------------------------------\nTraceback (most recent call last):\n",
    );
    for _ in 0..312 {
        text.push_str("  File \"/w/m.py\", line 3, in f\n");
    }
    text.push_str("RecursionError: maximum recursion depth exceeded\n\nRan 1 test in 0.1s\n");
    let d = distil(&text);
    assert!(
        d.excerpt
            .contains("  File \"/w/m.py\", line 3, in f (x312)"),
        "{}",
        d.excerpt
    );
    assert_eq!(
        d.failures[0].message.as_deref(),
        Some("RecursionError: maximum recursion depth exceeded")
    );
    let i = d
        .excerpt
        .lines()
        .position(|l| l.ends_with("(x312)"))
        .unwrap();
    assert_eq!(d.source_lines[i], 4);
    assert_eq!(d.source_lines[i + 1], 316);
}

#[test]
fn junit_input_is_read_directly() {
    let xml = "<?xml version=\"1.0\"?>\n<testsuite name=\"go\" tests=\"2\" failures=\"1\">\n  <testcase classname=\"calc\" name=\"TestAdd\" time=\"0.00\">\n    <failure message=\"Failed\" type=\"\">calc_test.go:9: Add(1,2) = 4, want 3</failure>\n  </testcase>\n  <testcase classname=\"calc\" name=\"TestSub\" time=\"0.00\"/>\n</testsuite>\n";
    let d = distil(xml);
    assert_eq!(
        rows(&d),
        vec![row("calc.TestAdd", None, None, Some("Failed"))]
    );
    assert_eq!(d.failures[0].kind.as_deref(), Some("junit"));
    assert!(d.excerpt.contains("calc_test.go:9: Add(1,2) = 4, want 3"));
    assert_eq!(d.source_lines, vec![3, 4]);
}

#[test]
fn a_truncated_junit_report_is_a_located_error() {
    let xml = "<?xml version=\"1.0\"?>\n<testsuite name=\"go\">\n  <testcase classname=\"calc\" name=\"TestAdd\">\n    <failure message=\"Failed\">";
    let err = distil_bytes(xml.as_bytes(), &Default::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("JUnit XML report is not well-formed"), "{err}");
    assert!(err.contains("(inline)"), "{err}");
}

#[test]
fn adversarial_inputs_give_a_result_or_a_clear_error() {
    let empty = distil_bytes(b"", &DistilOptions::default()).unwrap();
    assert!(empty.failures.is_empty() && empty.excerpt.is_empty() && empty.signature.is_none());
    let err = distil_bytes(
        b"\x7fELF\x02\x01\x01\0\0\0binary",
        &DistilOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("looks binary"), "{err}");
    // Invalid UTF-8 inside a failure: replaced, not fatal.
    let d = distil_bytes(
        b"FAILED tests/t.py::test_x - assert b'\xff\xfe' == 1\n",
        &DistilOptions::default(),
    )
    .unwrap();
    assert_eq!(d.failures[0].test, "tests/t.py::test_x");
    assert!(
        d.failures[0]
            .message
            .as_deref()
            .unwrap()
            .contains('\u{fffd}')
    );
    // Only carriage returns, lone escapes, giant numbers.
    for junk in [
        &b"\r\r\r\r"[..],
        b"\x1b",
        b"\x1b[",
        b"\x1b]",
        b"\n\n\n",
        b"---- x stdout ----",
        b"1) A::b\n",
    ] {
        distil_bytes(junk, &DistilOptions::default()).unwrap();
    }
    let d = distil_bytes(
        b"test t ... FAILED\nthread 't' panicked at a.rs:99999999999999:1:\nboom\n",
        &DistilOptions::default(),
    )
    .unwrap();
    assert_eq!(
        d.failures[0].line, None,
        "an out-of-range line number is dropped"
    );
}

#[test]
fn ids_compatible_handles_separators_and_edges() {
    assert!(ids_compatible("a.py::T::test_x", "T.test_x"));
    assert!(ids_compatible("a::b", "a.b"));
    assert!(ids_compatible("x", "x"));
    assert!(!ids_compatible("a.py::test_x", "test_xx"));
    assert!(!ids_compatible("ab", "b"));
    assert!(!ids_compatible("", "a"));
}

#[test]
fn thousands_of_failures_stay_bounded() {
    let mut log = String::new();
    for i in 0..12_000 {
        log.push_str(&format!(
            "FAILED tests/test_{}.py::test_{i} - assert {i} == 0\n",
            i % 7
        ));
    }
    let d = distil(&log);
    assert_eq!(d.failures.len(), 10_000, "candidates are capped");
    assert!(d.excerpt.len() <= DistilOptions::default().budget_bytes);
}

#[test]
fn real_errors_outrank_debug_output_and_exit_status_echoes() {
    let text = "Error: 0\nError: 12\nsubprocess returning nonzero exit status 1\n\
npm error code ERESOLVE\nnpm error ERESOLVE unable to resolve dependency tree\n\
##[error]Process completed with exit code 1.\n";
    let d = distil(text);
    assert!(d.failures.is_empty());
    let n = d.no_test_failure.expect("a no-test failure");
    assert_eq!(n.error_line, "npm error code ERESOLVE");
    // Only echoes: the exit status is the reason, never a number-only `Error: 0`.
    let d =
        distil("Error: 0\nmake: *** [all] Error 2\n##[error]Process completed with exit code 2.\n");
    let n = d.no_test_failure.expect("a no-test failure");
    assert_eq!(n.error_line, "##[error]Process completed with exit code 2.");
    // A job that says it succeeded has no reason to fail.
    let d = distil("Error: retrying fetch\nJob succeeded\n");
    assert_eq!(d.no_test_failure, None);
    assert!(d.failures.is_empty());
}

#[test]
fn oom_kill_and_timeout_outrank_the_exit_code() {
    let d = distil(
        "step 1\n##[error]The runner has received a shutdown signal.\nKilled process 4242 (java) total-vm:1GB, out of memory\n##[error]Process completed with exit code 137.\n",
    );
    let n = d.no_test_failure.expect("a no-test failure");
    assert!(n.error_line.contains("out of memory"), "{}", n.error_line);
    let d = distil(
        "##[error]The job running on runner x has exceeded the maximum execution time of 360 minutes.\n##[error]Process completed with exit code 1.\n",
    );
    let n = d.no_test_failure.expect("a no-test failure");
    assert!(n.error_line.contains("exceeded the maximum execution time"));
}

#[test]
fn utf16_logs_with_and_without_bom_are_decoded() {
    let text = "Run tests\r\nFAILED tests/test_a.py::test_x - assert 1 == 2\r\n";
    let le: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let mut bom = vec![0xFF, 0xFE];
    bom.extend_from_slice(&le);
    let be: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
    for bytes in [bom, le, be] {
        let d = distil_bytes(&bytes, &DistilOptions::default()).expect("distils");
        assert_eq!(
            rows(&d),
            vec![row(
                "tests/test_a.py::test_x",
                Some("tests/test_a.py"),
                None,
                Some("assert 1 == 2")
            )]
        );
    }
}

#[test]
fn zero_width_characters_and_crlf_are_normalised() {
    let d = distil("FAILED tests/test_\u{200b}a.py::test_x\u{feff} - boom\u{200d}\r\n");
    assert_eq!(d.failures[0].test, "tests/test_a.py::test_x");
    assert_eq!(d.failures[0].message.as_deref(), Some("boom"));
}

#[test]
fn pytest_names_with_durations_workers_and_spaces_in_parameters() {
    let d = distil(
        "FAILED [0.3790s] tests/test_a.py::test_x - assert 0\n\
[gw0] [ 50%] FAILED tests/test_b.py::test_y[a b-[1]] \n\
FAILED tests/test_c.py::test_z[with space] - ValueError: bad\n",
    );
    let tests: Vec<&str> = d.failures.iter().map(|f| f.test.as_str()).collect();
    assert_eq!(
        tests,
        vec![
            "tests/test_a.py::test_x",
            "tests/test_b.py::test_y[a b-[1]]",
            "tests/test_c.py::test_z[with space]"
        ]
    );
}

#[test]
fn rust_compiletest_and_bare_panics() {
    let d = distil(
        "---- [ui] tests/ui/unicode.rs stdout ----\nerror: test compilation failed although it shouldn't!\n\n\
failures:\n\n    [ui] tests/ui/unicode.rs\n\ntest result: FAILED. 1 passed; 1 failed\n",
    );
    assert_eq!(d.failures[0].test, "[ui] tests/ui/unicode.rs");
    let d = distil(
        "running 1 test\nthread 'tests::it_works' panicked at src/lib.rs:9:9:\nassertion failed: 1 == 2\n",
    );
    assert_eq!(
        rows(&d),
        vec![row(
            "tests::it_works",
            Some("src/lib.rs"),
            Some(9),
            Some("assertion failed: 1 == 2")
        )]
    );
    // A panic on the main thread is a crashed program, not a test.
    let d = distil("thread 'main' panicked at src/main.rs:3:5:\nboom\n");
    assert!(d.failures.is_empty());
}

#[test]
fn gtest_templated_names() {
    let d = distil(
        "[ RUN      ] Foo<std::vector<int, A>>.Bar\nx.cc:3: Failure\nExpected equality\n\
[  FAILED  ] Foo<std::vector<int, A>>.Bar (0 ms)\n[  FAILED  ] TypedTest/0.Works, where TypeParam = int\n",
    );
    let tests: Vec<&str> = d.failures.iter().map(|f| f.test.as_str()).collect();
    assert_eq!(
        tests,
        vec!["Foo<std::vector<int, A>>.Bar", "TypedTest/0.Works"]
    );
    assert_eq!(d.failures[0].message.as_deref(), Some("Expected equality"));
}

#[test]
fn gitlab_sections_name_the_step() {
    let d = distil(
        "\x1b[0Ksection_start:1522927103:step_script\r\x1b[0KRunning tests\n\
FAILED tests/test_a.py::test_x - assert 0\nsection_end:1522927104:step_script\r\x1b[0K\n",
    );
    assert_eq!(d.failures[0].step.as_deref(), Some("step_script"));
}

/// One line per pack, in each runner's documented console format (sources in the packs' headers).
/// `(log, test, file, line, message part)`.
type PackCase<'a> = (&'a str, &'a str, Option<&'a str>, Option<u32>, &'a str);

#[test]
fn new_runner_packs_name_test_file_line_and_message() {
    let cases: &[PackCase] = &[
        (
            "Running com.example.CalcTest\nTests run: 2, Failures: 1, Errors: 0, Skipped: 0, Time elapsed: 0.05 sec <<< FAILURE!\ntestAdd(com.example.CalcTest)  Time elapsed: 0.01 sec  <<< FAILURE!\njava.lang.AssertionError: expected:<3> but was:<4>\n\tat org.junit.Assert.fail(Assert.java:88)\n\nResults :\n",
            "com.example.CalcTest.testAdd",
            None,
            None,
            "java.lang.AssertionError: expected:<3> but was:<4>",
        ),
        (
            "> Task :app:test\n\nCalcTest > addsNumbers() FAILED\n    org.opentest4j.AssertionFailedError at CalcTest.java:12\n\n3 tests completed, 1 failed\n",
            "CalcTest > addsNumbers()",
            Some("CalcTest.java"),
            Some(12),
            "org.opentest4j.AssertionFailedError at CalcTest.java:12",
        ),
        (
            "  Failed Calc.Tests.CalcTests.Add_ReturnsSum [12 ms]\n  Error Message:\n   Assert.Equal() Failure: Values differ\n  Stack Trace:\n     at Calc.Tests.CalcTests.Add_ReturnsSum() in /src/Calc.Tests/CalcTests.cs:line 12\n\nFailed!  - Failed:     1, Passed:     2, Skipped:     0, Total:     3, Duration: 5 ms - Calc.Tests.dll (net8.0)\n",
            "Calc.Tests.CalcTests.Add_ReturnsSum",
            Some("/src/Calc.Tests/CalcTests.cs"),
            Some(12),
            "Assert.Equal() Failure: Values differ",
        ),
        (
            "//pkg/calc:calc_test                                                     FAILED in 0.4s\n  /root/.cache/bazel/testlogs/pkg/calc/calc_test/test.log\n\nExecuted 1 out of 1 test: 1 fails locally.\n",
            "//pkg/calc:calc_test",
            None,
            None,
            "",
        ),
        (
            "  2 passing (8ms)\n  1 failing\n\n  1) Array\n       #indexOf()\n         should return -1 when the value is not present:\n     AssertionError [ERR_ASSERTION]: 4 == -1\n      at Context.<anonymous> (test/array.spec.js:5:14)\n\n",
            "Array #indexOf() should return -1 when the value is not present",
            Some("test/array.spec.js"),
            Some(5),
            "AssertionError [ERR_ASSERTION]: 4 == -1",
        ),
        (
            "Failing Scenarios:\ncucumber features/login.feature:12 # Scenario: Wrong password\n\n3 scenarios (1 failed, 2 passed)\n",
            "Wrong password",
            Some("features/login.feature"),
            Some(12),
            "",
        ),
        (
            "/src/Tests/CalcTests/CalcTests.swift:9: error: CalcTests.testAdd : XCTAssertEqual failed: (\"3\") is not equal to (\"4\")\nTest Case 'CalcTests.testAdd' failed (0.001 seconds)\n",
            "CalcTests.testAdd",
            Some("/src/Tests/CalcTests/CalcTests.swift"),
            Some(9),
            "XCTAssertEqual failed",
        ),
    ];
    for (log, test, file, line, msg) in cases {
        let d = distil(log);
        let f = d
            .failures
            .iter()
            .find(|f| f.test == *test)
            .unwrap_or_else(|| panic!("{test} not in {:?}", d.failures));
        assert_eq!(d.failures.len(), 1, "{:?}", d.failures);
        assert_eq!((f.file.as_deref(), f.line), (*file, *line), "{test}");
        assert!(
            f.message.as_deref().unwrap_or("").contains(msg),
            "{test}: {:?}",
            f.message
        );
    }
}

#[test]
fn a_malformed_junit_report_is_an_error_naming_the_position() {
    let err = distil_bytes(
        b"<?xml version=\"1.0\"?><testsuite><testcase name=\"a\"><failure></testsuite>",
        &DistilOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("not well-formed"), "{err}");
}

/// The `… N lines omitted …` markers of an excerpt: `(index, N)`; each counts the log lines
/// between its neighbours.
fn markers(d: &Distilled) -> Vec<(usize, u64)> {
    let lines: Vec<&str> = d.excerpt.lines().collect();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if let Some(n) = l
            .strip_prefix("… ")
            .and_then(|r| r.strip_suffix(" lines omitted …"))
        {
            let n: u64 = n.replace(',', "").parse().expect("a count");
            assert_eq!(d.source_lines[i], 0, "a marker has no log line");
            assert!(
                i > 0 && i + 1 < lines.len(),
                "a marker stands between lines"
            );
            assert_eq!(
                n,
                d.source_lines[i + 1] - d.source_lines[i - 1] - 1,
                "marker {l:?} miscounts"
            );
            out.push((i, n));
        }
    }
    out
}

/// Real `cargo test` output (tests/data/logs/README.md): a test prints a 2,000-line hexdump, then
/// panics. The panic, its message and the end of the run survive every budget; the hexdump is
/// cut in its middle.
#[test]
fn a_long_hexdump_before_the_panic_is_cut_in_its_middle() {
    let text = sample!("cargo-hexdump.txt");
    let test = "tests::reads_the_class_of_a_64_bit_image";
    for budget in [600, 2_000, 16 * 1024] {
        let d = distil_bytes(
            text.as_bytes(),
            &DistilOptions {
                budget_bytes: budget,
            },
        )
        .unwrap();
        assert_eq!(
            rows(&d),
            vec![row(
                test,
                Some("src/lib.rs"),
                Some(23),
                Some("assertion `left == right` failed: ELF class of the test image")
            )]
        );
        assert!(d.excerpt.len() <= budget, "{budget}: {}", d.excerpt.len());
        assert_eq!(d.excerpt.lines().count(), d.source_lines.len());
        for want in [
            "---- tests::reads_the_class_of_a_64_bit_image stdout ----",
            "panicked at src/lib.rs:23:9:",
            "assertion `left == right` failed: ELF class of the test image",
        ] {
            assert!(
                d.excerpt.contains(want),
                "{budget}: {want} missing: {}",
                d.excerpt
            );
        }
        let m = markers(&d);
        assert!(!m.is_empty(), "{budget}: no marker: {}", d.excerpt);
        assert!(m.iter().map(|(_, n)| n).sum::<u64>() > 1_000);
    }
    let d = distil(text);
    for want in [
        "  left: 28",
        " right: 2",
        "00000000  00 07 0e",
        "00000010  ",
    ] {
        assert!(d.excerpt.contains(want), "{want} missing: {}", d.excerpt);
    }
}

/// Real `pytest -vv` output (tests/data/logs/README.md): an assertion on two 2,500-line strings
/// prints a 5,000-line diff (in the `E` lines and again in the summary). The excerpt keeps the
/// assertion, the changed lines of the diff and the location at the end of the traceback.
#[test]
fn a_long_diff_is_cut_in_its_middle_keeping_what_failed() {
    let d = distil(sample!("pytest-long-diff.txt"));
    assert_eq!(d.failures.len(), 1, "{:?}", d.failures);
    let f = &d.failures[0];
    assert_eq!(
        (f.test.as_str(), f.file.as_deref(), f.line),
        (
            "tests/test_render.py::test_render",
            Some("tests/test_render.py"),
            Some(8)
        )
    );
    assert!(
        f.message
            .as_deref()
            .unwrap()
            .starts_with("AssertionError: assert 'row 0: value-0\\nrow 1:"),
        "{:?}",
        f.message
    );
    assert!(d.excerpt.len() <= DistilOptions::default().budget_bytes);
    for want in [
        "_ test_render _",
        ">       assert render(rows) == expected",
        "E       AssertionError: assert 'row 0: value-0",
        "E         - row 2321: value-x",
        "E         + row 2321: value-2321",
        "tests/test_render.py:8: AssertionError",
        "FAILED tests/test_render.py::test_render - AssertionError",
    ] {
        assert!(d.excerpt.contains(want), "{want} missing: {}", d.excerpt);
    }
    assert!(markers(&d).len() >= 2, "{}", d.excerpt);
}

/// Several failures with bulk output share the budget: each keeps its header and its message.
#[test]
fn failures_share_the_excerpt_budget() {
    let mut text = String::from("running 3 tests\n");
    for t in ["a", "b", "c"] {
        text.push_str(&format!("test tests::{t} ... FAILED\n"));
    }
    text.push_str("\nfailures:\n\n");
    for t in ["a", "b", "c"] {
        text.push_str(&format!("---- tests::{t} stdout ----\n"));
        for i in 0..3_000 {
            text.push_str(&format!(
                "{:08x}  {t}{t} 00 11 22 33 44 55 66 77  |........|\n",
                i * 16
            ));
        }
        text.push_str(&format!(
            "\nthread 'tests::{t}' panicked at src/lib.rs:{}:5:\nvalue of {t} is wrong\n",
            10
        ));
    }
    text.push_str("\nfailures:\n    tests::a\n    tests::b\n    tests::c\n\ntest result: FAILED. 0 passed; 3 failed\n");
    let d = distil(&text);
    assert_eq!(d.failures.len(), 3);
    for t in ["a", "b", "c"] {
        let f = d
            .failures
            .iter()
            .find(|f| f.test == format!("tests::{t}"))
            .unwrap();
        assert_eq!(
            f.message.as_deref(),
            Some(format!("value of {t} is wrong").as_str())
        );
        assert!(
            d.excerpt.contains(&format!("---- tests::{t} stdout ----")),
            "{}",
            d.excerpt
        );
        assert!(
            d.excerpt.contains(&format!("value of {t} is wrong")),
            "{}",
            d.excerpt
        );
    }
    assert!(d.excerpt.len() <= DistilOptions::default().budget_bytes);
    assert!(markers(&d).len() >= 3, "{}", d.excerpt);
}

/// A failure no rule gives a message takes the first assertion or exception line of its block.
#[test]
fn a_failure_without_a_message_rule_takes_its_first_assertion_line() {
    let text = "---- tests::x stdout ----\nsetting up 3 fixtures\n0\nError: connection refused (os error 111)\nsecond error\n\nfailures:\n    tests::x\n\ntest result: FAILED. 0 passed; 1 failed\n";
    let d = distil(text);
    assert_eq!(
        d.failures[0].message.as_deref(),
        Some("Error: connection refused (os error 111)")
    );
}

/// Real output of the node runners (tests/data/logs/README.md gives each command and version):
/// every failing test named, with its file, line and the assertion's first line.
#[test]
fn node_runner_packs_on_real_output() {
    type Want = (&'static str, &'static str, u32, &'static str);
    let cases: &[(&str, &str, &[Want])] = &[
        (
            "mocha",
            sample!("mocha.txt"),
            &[
                (
                    "Array throws a TypeError",
                    "test/array.spec.js",
                    18,
                    "TypeError: Cannot read properties of null (reading 'length')",
                ),
                (
                    "Array #indexOf() should return -1 when the value is not present",
                    "test/array.spec.js",
                    6,
                    "AssertionError [ERR_ASSERTION]: Expected values to be strictly equal:",
                ),
                (
                    "Array #join() joins with a comma",
                    "test/array.spec.js",
                    14,
                    "AssertionError [ERR_ASSERTION]: Expected values to be strictly deep-equal:",
                ),
            ],
        ),
        (
            "cucumber",
            sample!("cucumber.txt"),
            &[
                (
                    "Wrong password",
                    "features/login.feature",
                    8,
                    "AssertionError [ERR_ASSERTION]: Expected values to be strictly equal:",
                ),
                (
                    "Locked account",
                    "features/login.feature",
                    13,
                    "Undefined. Implement with the following snippet:",
                ),
            ],
        ),
        (
            "playwright",
            sample!("playwright.txt"),
            &[
                (
                    "cart › sums the prices",
                    "pw/cart.spec.ts",
                    8,
                    "Error: expect(received).toBe(expected) // Object.is equality",
                ),
                (
                    "cart › is empty at first",
                    "pw/cart.spec.ts",
                    11,
                    "Error: expect(received).toBe(expected) // Object.is equality",
                ),
            ],
        ),
        (
            "vitest",
            sample!("vitest-4.txt"),
            &[
                (
                    "add > adds large numbers",
                    "vt/math.test.js",
                    10,
                    "AssertionError: expected 31 to be 30 // Object.is equality",
                ),
                (
                    "add > add(6, 1) = 7",
                    "vt/math.test.js",
                    13,
                    "AssertionError: expected 8 to be 7 // Object.is equality",
                ),
                (
                    "add > add(7, 1) = 8",
                    "vt/math.test.js",
                    13,
                    "AssertionError: expected 9 to be 8 // Object.is equality",
                ),
            ],
        ),
    ];
    for (runner, text, want) in cases {
        let d = distil(text);
        let got: Vec<Row> = rows(&d);
        let want: Vec<Row> = want
            .iter()
            .map(|(t, f, l, m)| row(t, Some(f), Some(*l), Some(m)))
            .collect();
        assert_eq!(got, want, "{runner}");
        assert!(d.no_test_failure.is_none(), "{runner}");
    }
}

/// `(test, file, line, message)` expected of one failure.
type Want = (
    &'static str,
    Option<&'static str>,
    Option<u32>,
    &'static str,
);

/// Real output of cargo-nextest, go test, ctest, Gradle, Maven Surefire, dotnet test (xUnit, NUnit,
/// MSTest), XCTest / Swift Testing and Bazel (tests/data/logs/README.md names, for each file, the
/// tool version and command that produced it here, or the public issue it was copied from): every
/// failing test named, each with a message that says something, the same plain and wrapped as a
/// GitHub Actions log, and the prefilter missing no line.
#[test]
fn runner_packs_on_real_output() {
    let cases: &[(&str, &str, &[Want])] = &[
        (
            "nextest-0.9.143-ci-retries.txt",
            sample!("nextest-0.9.143-ci-retries.txt"),
            &[
                (
                    "calc tests::adds_large",
                    Some("src/lib.rs"),
                    Some(16),
                    "assertion `left == right` failed: add(7, 1)",
                ),
                (
                    "calc tests::nested::divides",
                    Some("src/lib.rs"),
                    Some(30),
                    "10 / 1 is not 5",
                ),
                (
                    "calc tests::parses_number",
                    Some("src/lib.rs"),
                    Some(21),
                    "called `Result::unwrap()` on an `Err` value: ParseIntError { kind: InvalidDigit }",
                ),
                ("calc tests::hangs", None, None, "test timed out"),
            ],
        ),
        (
            "nextest-0.9.143.txt",
            sample!("nextest-0.9.143.txt"),
            &[
                (
                    "calc tests::adds_large",
                    Some("src/lib.rs"),
                    Some(16),
                    "assertion `left == right` failed: add(7, 1)",
                ),
                (
                    "calc tests::nested::divides",
                    Some("src/lib.rs"),
                    Some(30),
                    "10 / 1 is not 5",
                ),
                (
                    "calc tests::parses_number",
                    Some("src/lib.rs"),
                    Some(21),
                    "called `Result::unwrap()` on an `Err` value: ParseIntError { kind: InvalidDigit }",
                ),
                ("calc tests::hangs", None, None, "test timed out"),
            ],
        ),
        (
            "go-1.19-timeout.txt",
            sample!("go-1.19-timeout.txt"),
            &[
                (
                    "TestAddLarge",
                    Some("calc_test.go"),
                    Some(16),
                    "Add(7, 1) = 9, want 8",
                ),
                ("TestSlow", None, None, "test timed out after 2s"),
            ],
        ),
        (
            "go-1.19-v.txt",
            sample!("go-1.19-v.txt"),
            &[
                (
                    "TestAddLarge",
                    Some("calc_test.go"),
                    Some(16),
                    "Add(7, 1) = 9, want 8",
                ),
                (
                    "TestTable/9+0",
                    Some("calc_test.go"),
                    Some(26),
                    "Add(9, 0) = 10, want 9",
                ),
                (
                    "TestTable/6+1",
                    Some("calc_test.go"),
                    Some(26),
                    "Add(6, 1) = 8, want 7",
                ),
                (
                    "TestNested/outer/inner_case",
                    Some("calc_test.go"),
                    Some(36),
                    "inner case is wrong",
                ),
                (
                    "TestIndex",
                    Some("/home/runner/work/gocalc/sub/sub_test.go"),
                    Some(10),
                    "runtime error: index out of range [3] with length 0",
                ),
            ],
        ),
        (
            "go-1.19.txt",
            sample!("go-1.19.txt"),
            &[
                (
                    "TestAddLarge",
                    Some("calc_test.go"),
                    Some(16),
                    "Add(7, 1) = 9, want 8",
                ),
                (
                    "TestTable/9+0",
                    Some("calc_test.go"),
                    Some(26),
                    "Add(9, 0) = 10, want 9",
                ),
                (
                    "TestTable/6+1",
                    Some("calc_test.go"),
                    Some(26),
                    "Add(6, 1) = 8, want 7",
                ),
                (
                    "TestNested/outer/inner_case",
                    Some("calc_test.go"),
                    Some(35),
                    "checking the inner case",
                ),
                (
                    "TestIndex",
                    Some("/home/runner/work/gocalc/sub/sub_test.go"),
                    Some(10),
                    "runtime error: index out of range [3] with length 0",
                ),
            ],
        ),
        (
            "ctest-3.25-output-on-failure.txt",
            sample!("ctest-3.25-output-on-failure.txt"),
            &[
                (
                    "adds_large",
                    None,
                    None,
                    "calc_test.cpp:11: add(7, 1) = 9, want 8",
                ),
                (
                    "crashes",
                    None,
                    None,
                    "calc_test: /home/runner/work/ctestp/calc_test.cpp:14: int main(int, char**): Assertion `add(6, 0) == 6' failed.",
                ),
                (
                    "parse.number/3",
                    None,
                    None,
                    "calc_test.cpp:11: add(7, 1) = 9, want 8",
                ),
                ("adds", None, None, "Not Run"),
                ("missing_tool", None, None, "Not Run"),
                ("hangs", None, None, "Timeout"),
            ],
        ),
        (
            "ctest-3.25.txt",
            sample!("ctest-3.25.txt"),
            &[
                ("adds_large", None, None, "Failed"),
                ("crashes", None, None, "Subprocess aborted"),
                ("hangs", None, None, "Timeout"),
                ("parse.number/3", None, None, "Failed"),
                ("adds", None, None, "Not Run"),
                ("missing_tool", None, None, "Not Run"),
            ],
        ),
        (
            "gradle-4.4-full.txt",
            sample!("gradle-4.4-full.txt"),
            &[
                (
                    "com.example.CalcTest$PairsTest > adds[1: add(6, 1) = 7]",
                    Some("CalcTest.java"),
                    Some(33),
                    "java.lang.AssertionError: expected:<7> but was:<8>",
                ),
                (
                    "com.example.CalcTest > finishesQuickly",
                    Some("CalcTest.java"),
                    Some(22),
                    "org.junit.runners.model.TestTimedOutException: test timed out after 100 milliseconds",
                ),
                (
                    "com.example.CalcTest > addsLarge",
                    Some("CalcTest.java"),
                    Some(16),
                    "java.lang.AssertionError: add(7, 1) expected:<8> but was:<9>",
                ),
                (
                    "com.example.CalcTest > parsesNumber",
                    Some("CalcTest.java"),
                    Some(19),
                    "java.lang.NumberFormatException: For input string: \"x12\"",
                ),
            ],
        ),
        (
            "gradle-4.4-short.txt",
            sample!("gradle-4.4-short.txt"),
            &[
                (
                    "com.example.CalcTest$PairsTest > adds[1: add(6, 1) = 7]",
                    Some("CalcTest.java"),
                    Some(33),
                    "java.lang.AssertionError at CalcTest.java:33",
                ),
                (
                    "com.example.CalcTest > finishesQuickly",
                    Some("CalcTest.java"),
                    Some(22),
                    "org.junit.runners.model.TestTimedOutException at CalcTest.java:22",
                ),
                (
                    "com.example.CalcTest > addsLarge",
                    Some("CalcTest.java"),
                    Some(16),
                    "java.lang.AssertionError at CalcTest.java:16",
                ),
                (
                    "com.example.CalcTest > parsesNumber",
                    Some("CalcTest.java"),
                    Some(19),
                    "java.lang.NumberFormatException at CalcTest.java:19",
                ),
            ],
        ),
        (
            "maven-surefire2-hamcrest.txt",
            sample!("maven-surefire2-hamcrest.txt"),
            &[(
                "org.datadog.jmxfetch.TestApp.testTelemetryTags",
                Some("TestCommon.java"),
                Some(261),
                "java.lang.AssertionError: Expected: a collection containing \"instance:jmx_telemetry_instance\"",
            )],
        ),
        (
            "maven-surefire2-tests-in-error.txt",
            sample!("maven-surefire2-tests-in-error.txt"),
            &[(
                "org.datadog.jmxfetch.TestApp.testTelemetryTags",
                None,
                None,
                "Tests in error",
            )],
        ),
        (
            "maven-surefire3-m6.txt",
            sample!("maven-surefire3-m6.txt"),
            &[
                (
                    "org.sample.module.My1Test.fails",
                    Some("My1Test.java"),
                    Some(34),
                    "java.lang.AssertionError: Always fails",
                ),
                (
                    "org.sample.module.My2Test.fails",
                    None,
                    None,
                    "java.lang.AssertionError: Always fails",
                ),
            ],
        ),
        (
            "maven-surefire3-recap.txt",
            sample!("maven-surefire3-recap.txt"),
            &[(
                "CpdViolationCheckMojoTest.testException",
                None,
                None,
                "MojoFailureException should be thrown.",
            )],
        ),
        (
            "dotnet-mtp-mstest.txt",
            sample!("dotnet-mtp-mstest.txt"),
            &[(
                "Invalid_TestingProfile_Name_Should_Fail (\"net9.0;net8.0;net7.0;net6.0;net462\",Debug)",
                Some("/_/test/IntegrationTests/MSTest.Acceptance.IntegrationTests/SdkTests.cs"),
                Some(280),
                "Assert.AreEqual failed. Expected:<1>. Actual:<-532462766>.",
            )],
        ),
        (
            "dotnet-mtp-nunit.txt",
            sample!("dotnet-mtp-nunit.txt"),
            &[(
                "Failing2",
                Some("UnitTest1.cs"),
                Some(35),
                "This is a failure",
            )],
        ),
        (
            "dotnet-xunit-kestrel.txt",
            sample!("dotnet-xunit-kestrel.txt"),
            &[(
                "EmptyRequestLoggedAsInformation",
                Some(
                    "C:\\projects\\kestrelhttpserver\\test\\Microsoft.AspNetCore.Server.Kestrel.FunctionalTests\\HttpsTests.cs",
                ),
                Some(55),
                "Assert.Equal() Failure",
            )],
        ),
        (
            "dotnet-xunit-sdk.txt",
            sample!("dotnet-xunit-sdk.txt"),
            &[(
                "Microsoft.DotNet.Cli.Test.Tests.GivenDotnetTestBuildsAndRunsTestsWithArtifacts.RunTestProjectWithCodeCoverage_ShouldReturnExitCodeGenericFailure(configuration: \"Release\")",
                None,
                None,
                "Expected value to be 2, but found 134 (difference of 132).",
            )],
        ),
        (
            "swift-testing-linux-parameterized.txt",
            sample!("swift-testing-linux-parameterized.txt"),
            &[(
                "parameterizedTest(_:)",
                Some("PackageTests.swift"),
                Some(61),
                "Expectation failed: (arg → 2) != 2",
            )],
        ),
        (
            "swift-testing-xcodebuild.txt",
            sample!("swift-testing-xcodebuild.txt"),
            &[(
                "Domain stays free of UI and persistence framework imports",
                Some("DomainArchitectureTests.swift"),
                Some(16),
                "Expectation failed: !((forbiddenImports → [\"SwiftUI\", \"UIKit\", \"SwiftData\", \"CoreData\"]).contains(`import`.name → \"SwiftData\") → true)",
            )],
        ),
        (
            "swift-xctest-linux-files.txt",
            sample!("swift-xctest-linux-files.txt"),
            &[
                (
                    "FilesTests.testCreatingAndDeletingFile",
                    Some("/home/travis/build/JohnSundell/Files/Tests/FilesTests/FilesTests.swift"),
                    Some(667),
                    "XCTAssertEqual failed: (\"Failed to read file. Error: The operation could not be completed.\") is not equal to (\"Failed to read file. Error: The operation could not be completed.\") -",
                ),
                (
                    "FilesTests.testCreatingAndDeletingFolder",
                    Some("/home/travis/build/JohnSundell/Files/Tests/FilesTests/FilesTests.swift"),
                    Some(667),
                    "XCTAssertEqual failed: (\"Failed to read file. Error: The operation could not be completed.\") is not equal to (\"Failed to read file. Error: The operation could not be completed.\") -",
                ),
            ],
        ),
        (
            "swift-xctest-macos-muter.txt",
            sample!("swift-xctest-macos-muter.txt"),
            &[(
                "-[fooTests.fooTests test_colorCycle]",
                Some(
                    "/private/var/folders/xy/2gwd4xw17_x3r_x80n1djh340000gp/T/TemporaryItems/(A Document Being Saved By muter)/foo/Tests/fooTests.swift",
                ),
                Some(44),
                "XCTAssertEqual failed: (\"red\") is not equal to (\"green\")",
            )],
        ),
        (
            "bazel-detailed-summary.txt",
            sample!("bazel-detailed-summary.txt"),
            &[(
                "//src/test/java/com/google/devtools/build/lib:runtime-tests",
                None,
                None,
                "(see /usr/local/google/home/nelsonli/.cache/bazel/_bazel_nelsonli/71aeaef0e77795df4c8339df20bc2a13/execroot/io_bazel/bazel-out/k8-fastbuild/testlogs/src/test/java/com/google/devtools/build/lib/runtime-tests/test.log)",
            )],
        ),
        (
            "bazel-flaky-attempts.txt",
            sample!("bazel-flaky-attempts.txt"),
            &[(
                "//src/test/shell/bazel:empty_package_test",
                None,
                None,
                "FAILED in 3 out of 3 in 0.6s",
            )],
        ),
        (
            "bazel-graphd.txt",
            sample!("bazel-graphd.txt"),
            &[(
                "//test/unit:value",
                None,
                None,
                "(see /usr/local/google/home/rtp/.cache/bazel/_bazel_rtp/46d938b2ea1222dbadb6d3433c0c4d9a/execroot/__main__/bazel-out/k8-fastbuild/testlogs/test/unit/value/test.log)",
            )],
        ),
        (
            "bazel-shard.txt",
            sample!("bazel-shard.txt"),
            &[(
                "//pkg/kv/kvserver:kvserver_test",
                None,
                None,
                "(see /home/roach/.cache/bazel/_bazel_roach/cc377fc379544923cc7508dd261e4a48/execroot/cockroach/bazel-out/k8-fastbuild/testlogs/pkg/kv/kvserver/kvserver_test/shard_1_of_16/test.log)",
            )],
        ),
        (
            "go-timeout-running-tests.txt",
            sample!("go-timeout-running-tests.txt"),
            &[(
                "TestGatewayTar/GET_TAR_has_expected_root_directory",
                None,
                None,
                "test timed out after 10m0s",
            )],
        ),
    ];
    for (name, text, want) in cases {
        let d = distil(text);
        let want: Vec<Row> = want
            .iter()
            .map(|(t, f, l, m)| row(t, *f, *l, Some(m)))
            .collect();
        assert_eq!(rows(&d), want, "{name}");
        for f in &d.failures {
            let m = f.message.as_deref().unwrap_or("");
            assert!(m.chars().any(char::is_alphabetic), "{name}: {f:?}");
            assert_ne!(f.test, "log", "{name}");
        }
        assert!(d.no_test_failure.is_none(), "{name}");
        check_stable(text);
    }
}

/// Real `mvn -B test` output with no network (tests/data/logs/README.md): no test ran, and the
/// reason is the plugin that could not be resolved.
#[test]
fn maven_without_its_plugins_is_a_no_test_failure() {
    let d = distil(sample!("maven-offline.txt"));
    assert!(d.failures.is_empty(), "{:?}", d.failures);
    let n = d.no_test_failure.expect("a no-test failure");
    assert!(
        n.error_line
            .starts_with("[ERROR] Plugin org.apache.maven.plugins:maven-resources-plugin:2.6 or one of its dependencies could not be resolved"),
        "{n:?}"
    );
}

/// Lines of other tools that look like the new packs' headers are not failing tests.
#[test]
fn look_alike_lines_are_not_tests() {
    for line in [
        "failed to connect to host (5s)",
        "    Checking links [FAIL]",
        "  FAIL [ slow network ]",
        "running tests:",
        "\tTestdata (2s)",
    ] {
        let d = distil(&format!("{line}\n"));
        assert!(d.failures.is_empty(), "{line}: {:?}", d.failures);
    }
}

/// Lines in the runners' documented formats that no real sample here holds reach their rules
/// through the prefilter's short covering triggers: read alone (outside any block), each yields
/// the same result with the prefilter as when every line is read, and that result is not empty.
#[test]
fn covering_triggers_reach_documented_lines() {
    for line in [
        // bazel `--test_summary` status of a target that never reported
        "//src/test:unit_test                                          NO STATUS",
        // ctest right-aligns test numbers when there are 10 or more tests
        " 3/12 Test  #3: crashes ..........................Subprocess aborted***Exception:   0.02 sec",
        "17/120 Test   #9: slow ...............................***Timeout   1.50 sec",
        // nextest status words (right-aligned to 12 columns), coloured and not
        "     SIGTRAP [   0.006s] mycrate tests::traps",
        "   TRY 2 TMT [  60.001s] mycrate tests::slow",
        "\x1b[35;1m         TMT\x1b[0m [  60.001s] mycrate tests::slow",
        // VSTest and Microsoft.Testing.Platform
        "  Failed Ns.CalcTests.Adds [12 ms]",
        "failed Adds (12ms)",
        // Python's and the kernel's out-of-memory messages, Go module errors, exit codes
        "MemoryError",
        "bash: fork: Cannot allocate memory",
        "go: example.com/m@v1.2.3: unknown revision v1.2.3",
        "go: example.com/m/pkg: missing go.sum entry for module providing package example.com/x",
        "Command exited with code 2",
        "The operation was canceled.",
    ] {
        let (f, s) = fast_and_exhaustive(&format!("{line}\n"));
        assert!(
            !s.failures.is_empty() || !s.generic.is_empty(),
            "{line:?}: no rule matches"
        );
        assert_eq!(
            format!("{f:?}"),
            format!("{s:?}"),
            "{line:?}: the prefilter missed it"
        );
    }
}

/// A test that crashes the XCTest process prints no `passed`/`failed` line: the crash lines
/// (`fatal error:`, `Restarting after unexpected exit ...`) name the test that had started.
#[test]
fn xctest_crash_names_the_test_that_had_started() {
    // Xcode 8 (xcpretty/xcpretty#291): the restart line names the test in another spelling.
    let text = sample!("xctest-crash-restart.txt");
    check_stable(text);
    assert_eq!(
        rows(&distil(text)),
        vec![row(
            "-[xcprettyFatalErrorTests.xcprettyFatalErrorTests testFatalError]",
            None,
            None,
            Some("unexpectedly found nil while unwrapping an Optional value"),
        )]
    );
    // Xcode 13+ names no test on the restart line (cpisciotta/xcbeautify#63); Swift 5.3+ puts
    // the file and line before `Fatal error`.
    let modern = "Test Case '-[Demo.CalcTests testAdd]' started.\n\
        Test Case '-[Demo.CalcTests testAdd]' passed (0.001 seconds).\n\
        Test Case '-[Demo.CalcTests testMultiply]' started.\n\
        Demo/CalcTests.swift:28: Fatal error: boom\n\
        \n\
        Restarting after unexpected exit, crash, or test timeout; summary will include totals from previous launches.\n\
        \n\
        Test Suite 'Selected tests' started at 2000-01-01 12:00:00.000\n\
        Test Case '-[Demo.CalcTests testDivide]' started.\n\
        Test Case '-[Demo.CalcTests testDivide]' passed (0.001 seconds).\n";
    check_stable(modern);
    assert_eq!(
        rows(&distil(modern)),
        vec![row(
            "-[Demo.CalcTests testMultiply]",
            Some("Demo/CalcTests.swift"),
            Some(28),
            Some("boom"),
        )]
    );
    // A crash with no line of its own (a signal, a timeout): the restart line is the failure.
    let linux_restart = "Test Case 'CalcTests.testHang' started at 2000-01-01 12:00:00.000\n\
        Restarting after unexpected exit, crash, or test timeout; summary will include totals from previous launches.\n";
    let d = distil(linux_restart);
    assert_eq!(d.failures.len(), 1, "{:?}", rows(&d));
    assert_eq!(d.failures[0].test, "CalcTests.testHang");
    assert!(
        d.failures[0]
            .message
            .as_deref()
            .is_some_and(|m| m.contains("unexpected exit")),
        "{:?}",
        d.failures[0].message
    );
    // After a test passed, or with no test running, a fatal error names no test.
    let after = "Test Case 'CalcTests.testAdd' started at 2000-01-01 12:00:00.000\n\
        Test Case 'CalcTests.testAdd' passed (0.001 seconds)\n\
        Fatal error: Index out of range\n";
    assert!(distil(after).failures.is_empty());
    assert!(
        distil("fatal error: unexpectedly found nil\n")
            .failures
            .is_empty()
    );
}
