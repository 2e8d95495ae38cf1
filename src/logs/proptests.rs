//! Property tests over the normaliser and the extractor (proptest; a bounded number of cases so
//! CI time stays fixed): arbitrary bytes and arbitrary mixes of real runner lines never panic,
//! the excerpt fits its budget and maps to real lines, and the prefilter never changes the result.

use proptest::prelude::*;

use super::*;

/// Lines that exercise every role of every pack, to be shuffled with noise.
const FRAGMENTS: &[&str] = &[
    "=================================== FAILURES ===================================",
    "=================================== ERRORS ===================================",
    "_________________________________ test_even[1] _________________________________",
    "E       assert (1 % 2) == 0",
    "tests/test_x.py:16: AssertionError",
    "FAILED tests/test_x.py::test_even[1] - assert (1 % 2) == 0",
    "ERROR tests/test_x.py - ImportError: no module",
    "===================== 2 failed, 2 passed, 1 error in 0.04s =====================",
    "FAIL: test_add_one (tests.test_calc.TestCalc.test_add_one)",
    "ERROR: test_lookup (tests.test_calc.TestCalc)",
    "  File \"/w/tests/test_calc.py\", line 13, in test_add_one",
    "AssertionError: 4 != 3",
    "----------------------------------------------------------------------",
    "======================================================================",
    "Ran 4 tests in 0.001s",
    "FAILED (failures=1, errors=1)",
    "---- tests::adds_one stdout ----",
    "thread 'tests::adds_one' (25797) panicked at src/lib.rs:16:9:",
    "thread 'main' panicked at 'boom', src/main.rs:1:1",
    "test tests::adds_one ... FAILED",
    "failures:",
    "test result: FAILED. 1 passed; 2 failed; 0 ignored",
    "error[E0308]: mismatched types",
    " --> src/lib.rs:2:18",
    "        FAIL [   0.005s] calc tests::adds_one",
    "──── STDOUT:             calc tests::adds_one",
    "--- FAIL: TestAdd (0.00s)",
    "    calc_test.go:13: Add(1, 2) = 4, want 3",
    "=== RUN   TestAdd",
    "panic: runtime error: index out of range [3] with length 0 [recovered]",
    "FAIL\texample.com/calc\t0.003s",
    "  ● sum › adds 1 + 2 to equal 3",
    "    expect(received).toBe(expected) // Object.is equality",
    "      at Object.toBe (src/sum.test.js:10:23)",
    " FAIL  src/sum.test.ts > sum > adds 1 + 2",
    " ❯ src/sum.test.ts:10:23",
    "Tests:       2 failed, 1 passed, 3 total",
    "There were 2 failures:",
    "1) Tests\\Unit\\CalcTest::testAdd with data set #1 (1, 2, 3)",
    "Failed asserting that 4 matches expected 3.",
    "/app/tests/Unit/CalcTest.php:19",
    "--",
    "FAILURES!",
    "Tests: 5, Assertions: 5, Errors: 1, Failures: 1.",
    "Warning: include(/x): failed to open stream: No such file",
    "[ RUN      ] CalcTest.AddsOne",
    "/w/calc_test.cc:12: Failure",
    "[  FAILED  ] CalcTest.AddsOne (0 ms)",
    "[       OK ] CalcTest.AddsTwo (0 ms)",
    "##[group]Run tests",
    "##[endgroup]",
    "##[error]Process completed with exit code 1.",
    "Error: something broke",
    "FATAL: out of memory",
    "",
    "   ",
    "npm WARN deprecated left-pad@1.0.0",
];

fn line_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => prop::sample::select(FRAGMENTS).prop_map(|s| s.as_bytes().to_vec()),
        2 => prop::collection::vec(any::<u8>(), 0..40),
        1 => prop::sample::select(FRAGMENTS).prop_map(|s| format!("2026-02-11T00:08:26.4935586Z \x1b[31m{s}\x1b[0m\r").into_bytes()),
    ]
}

fn log_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(line_strategy(), 0..120).prop_map(|lines| {
        let mut out = Vec::new();
        for l in lines {
            out.extend_from_slice(&l);
            out.push(b'\n');
        }
        out
    })
}

/// 256 cases by default (a few seconds); `PROPTEST_CASES` raises it for a longer local run.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn normaliser_never_panics_and_keeps_line_numbers(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
        let mut n = normaliser::Normaliser::new(&bytes[..]);
        let mut last = 0;
        let mut count = 0;
        while let Some(l) = n.next_line().unwrap() {
            prop_assert!(l.line > last);
            prop_assert!(l.repeat >= 1);
            prop_assert!(!l.text.contains('\x1b') || l.text.len() <= bytes.len());
            last = l.line + l.repeat - 1;
            count += 1;
        }
        let total = bytes.split(|&b| b == b'\n').count() as u64 - u64::from(bytes.last() == Some(&b'\n'));
        prop_assert!(last <= total);
        prop_assert!(count <= bytes.len() + 1);
    }

    #[test]
    fn extractor_is_total_bounded_and_prefilter_sound(log in log_strategy(), budget in 0usize..4000) {
        let book = rule_pack::embedded().unwrap();
        let mut fast = extractor::Extractor::new(book);
        let mut slow = extractor::Extractor::new(book);
        slow.exhaustive = true;
        // Feed in two regions split at a line boundary, as the chunk reader does.
        let cut = log.iter().take(log.len() / 2).rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        for part in [&log[..cut], &log[cut..]] {
            if !part.is_empty() {
                fast.feed(part);
                slow.feed(part);
            }
        }
        let (f, s) = (fast.finish(), slow.finish());
        let key = |e: &Extracted| e.failures.iter().map(|c| (c.test.clone(), c.message.clone(), c.file.clone(), c.line)).collect::<Vec<_>>();
        prop_assert_eq!(key(&f), key(&s));
        prop_assert_eq!(f.lines, s.lines);

        if memchr::memchr(0, &log[..log.len().min(8192)]).is_none() {
            let d = distil_bytes(&log, &DistilOptions { budget_bytes: budget }).unwrap();
            prop_assert!(d.excerpt.len() <= budget);
            prop_assert_eq!(d.excerpt.lines().count(), d.source_lines.len());
            let total = f.lines;
            // Markers (`… N lines omitted …`) have no log line; every other line has one, in order.
            let numbered: Vec<u64> = d
                .excerpt
                .lines()
                .zip(&d.source_lines)
                .filter(|(t, n)| !(**n == 0 && t.starts_with("… ")))
                .map(|(_, &n)| n)
                .collect();
            prop_assert!(numbered.iter().all(|&n| n >= 1 && n <= total));
            prop_assert!(numbered.windows(2).all(|w| w[0] < w[1]));
            prop_assert_eq!(d.signature.is_some(), !d.failures.is_empty());
        }
    }

    #[test]
    fn ids_and_masks_are_total(a in "[a-z:./\\[\\]0-9]{0,12}", b in "[a-z:./0-9]{0,12}", line in ".{0,80}") {
        let _ = ids_compatible(&a, &b);
        prop_assert_eq!(ids_compatible(&a, &b), ids_compatible(&b, &a));
        let m = mask(&line);
        prop_assert_eq!(mask(&m), m.clone(), "masking is idempotent");
    }
}
