//! JUnit XML reports (`<testsuites>`/`<testsuite>`/`<testcase>` with `<failure>` or `<error>`
//! children), as Maven Surefire (`surefire-reports/TEST-*.xml`), Gradle, pytest `--junitxml`,
//! cargo-nextest, go-junit-report, jest-junit and PHPUnit `--log-junit` write them.
//! Format: <https://github.com/testmoapp/junitxml> and Surefire's
//! `surefire-test-report.xsd`. Read by the runners' JUnit reader
//! ([`crate::runners::outcome::parse_junit`], `roxmltree`), shared with the verdict's report checks.

use super::extractor::{Candidate, ExLine, Extracted};
use super::rule_pack::Keep;
use crate::runners::outcome::{Case, CaseOutcome, ReportError, parse_junit};

/// True when `head` (the start of a file) looks like a JUnit report.
pub fn looks_like_junit(head: &[u8]) -> bool {
    let s = String::from_utf8_lossy(&head[..head.len().min(4096)]);
    let s = s.trim_start_matches('\u{feff}').trim_start();
    (s.starts_with("<?xml") || s.starts_with("<testsuite"))
        && (s.contains("<testsuite") || s.contains("<testcase"))
}

/// Extracts failing and erroring test cases; a report that does not parse gives nothing (see
/// [`try_extract`] for the error).
pub fn extract(xml: &str) -> Extracted {
    try_extract(xml).unwrap_or_default()
}

/// Extracts failing and erroring test cases of a report read by the runners' JUnit reader
/// ([`crate::runners::outcome::parse_junit`]): `test` is `classname.name` (or either alone),
/// `file`/`line` from the testcase's attributes, else from the first stack frame of the test's
/// class ([`Case::stack_frame`]); `message` is the first line of the `message` attribute, else
/// the first non-empty line of the element's text.
///
/// # Errors
/// The reader's error: not well-formed XML (with its line and column), or a root element that
/// is not `<testsuites>`/`<testsuite>`/`<testcase>`.
pub fn try_extract(xml: &str) -> Result<Extracted, ReportError> {
    let mut out = Extracted::default();
    for case in parse_junit(xml)? {
        if !matches!(case.outcome, CaseOutcome::Failed | CaseOutcome::Error) {
            continue;
        }
        out.failures.push(candidate(&case));
    }
    out.lines = xml.lines().count() as u64;
    Ok(out)
}

fn candidate(case: &Case) -> Candidate {
    let test = case.id();
    let (mut file, mut line) = (case.file.clone(), case.line);
    if line.is_none() {
        if let Some((f, l)) = case.stack_frame() {
            file = file.or(Some(f));
            line = Some(l);
        }
    }
    let message = case.message.clone().filter(|m| !m.is_empty()).or_else(|| {
        case.text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(str::to_string)
    });
    let mut lines = vec![ExLine {
        no: case.report_line,
        text: format!("FAILED {test}"),
        repeat: 1,
        key: true,
        cut_before: false,
    }];
    for (k, l) in case.text.lines().take(200).enumerate() {
        lines.push(ExLine {
            no: case.failure_line + k as u64,
            text: l.to_string(),
            repeat: 1,
            key: k == 0,
            cut_before: false,
        });
    }
    Candidate {
        pack: 0,
        priority: 100,
        first_line: case.report_line,
        test,
        file,
        line,
        message,
        locations: Vec::new(),
        location_keep: Keep::First,
        lines,
        from_block: true,
        confirm: false,
        group: None,
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_failures_and_errors_of_a_pytest_report() {
        let xml = r#"<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" errors="0" failures="1" tests="2">
<testcase classname="tests.test_calc" name="test_ok" time="0.001" />
<testcase classname="tests.test_calc" name="test_add" file="tests/test_calc.py" line="4" time="0.002"><failure message="assert 3 == 4&#10; +  where 3 = add(1, 2)">def test_add():
&gt;       assert add(1, 2) == 4
E       assert 3 == 4</failure></testcase>
</testsuite></testsuites>"#;
        assert!(looks_like_junit(xml.as_bytes()));
        let e = extract(xml);
        assert_eq!(e.failures.len(), 1);
        let f = &e.failures[0];
        assert_eq!(f.test, "tests.test_calc.test_add");
        assert_eq!(f.file.as_deref(), Some("tests/test_calc.py"));
        assert_eq!(f.line, Some(4));
        assert_eq!(f.message.as_deref(), Some("assert 3 == 4"));
        assert!(
            f.lines
                .iter()
                .any(|l| l.text == ">       assert add(1, 2) == 4")
        );
    }
}
