//! JUnit XML reports (`<testsuites>`/`<testsuite>`/`<testcase>` with `<failure>` or `<error>`
//! children), as Maven Surefire (`surefire-reports/TEST-*.xml`), Gradle, pytest `--junitxml`,
//! cargo-nextest, go-junit-report, jest-junit and PHPUnit `--log-junit` write them.
//! Format: <https://github.com/testmoapp/junitxml> and Surefire's
//! `surefire-test-report.xsd`. Parsed with `roxmltree` (DTDs allowed, entities expanded).

use super::extractor::{Candidate, ExLine, Extracted};
use super::rule_pack::Keep;

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

/// Extracts failing and erroring test cases: `test` is `classname.name` (or either alone),
/// `file`/`line` from the testcase's attributes, else from the first stack frame of the test's
/// class (`at pkg.Class.method(File.kt:27)`); `message` is the first non-empty line of the
/// `message` attribute, else of the element's text.
///
/// # Errors
/// The XML parser's error (with its line and column) when the report is not well-formed.
pub fn try_extract(xml: &str) -> Result<Extracted, roxmltree::Error> {
    let opts = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(xml, opts)?;
    let mut out = Extracted::default();
    for case in doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
    {
        let Some(fail) = case
            .children()
            .find(|c| c.has_tag_name("failure") || c.has_tag_name("error"))
        else {
            continue;
        };
        let name = case.attribute("name").unwrap_or("").trim();
        let classname = case.attribute("classname").unwrap_or("").trim();
        let test = match (classname.is_empty(), name.is_empty()) {
            (false, false) => format!("{classname}.{name}"),
            (true, _) => name.to_string(),
            (false, true) => classname.to_string(),
        };
        let text: String = fail
            .descendants()
            .filter(|n| n.is_text())
            .filter_map(|n| n.text())
            .collect();
        let first_line = |s: &str| {
            s.lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .map(str::to_string)
        };
        let message = fail
            .attribute("message")
            .and_then(first_line)
            .or_else(|| first_line(&text));
        let mut file = case.attribute("file").map(str::to_string);
        let mut line = case.attribute("line").and_then(|l| l.trim().parse().ok());
        if line.is_none() && !classname.is_empty() {
            if let Some((f, l)) = class_frame(&text, classname, name) {
                file = file.or(Some(f));
                line = Some(l);
            }
        }
        let pos = doc.text_pos_at(case.range().start);
        let body = doc.text_pos_at(fail.range().start);
        let mut lines = vec![ExLine {
            no: u64::from(pos.row),
            text: format!("FAILED {test}"),
            repeat: 1,
            key: true,
            cut_before: false,
        }];
        for (k, l) in text.lines().take(200).enumerate() {
            lines.push(ExLine {
                no: u64::from(body.row) + k as u64,
                text: l.to_string(),
                repeat: 1,
                key: k == 0,
                cut_before: false,
            });
        }
        out.failures.push(Candidate {
            pack: 0,
            priority: 100,
            first_line: u64::from(pos.row),
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
        });
    }
    out.lines = xml.lines().count() as u64;
    Ok(out)
}

/// The `(file, line)` of the stack frame of the test's own method (`at <class>.<name>(File:12)`),
/// else of the first frame in its class.
fn class_frame(text: &str, classname: &str, name: &str) -> Option<(String, u32)> {
    let frames: Vec<(&str, String, u32)> = text
        .lines()
        .filter_map(|l| {
            let l = l.trim().strip_prefix("at ")?;
            let (method, rest) = l.rsplit_once('(')?;
            let (f, n) = rest.strip_suffix(')')?.rsplit_once(':')?;
            Some((method, f.to_string(), n.parse().ok()?))
        })
        .collect();
    let own = format!("{classname}.{name}");
    frames
        .iter()
        .find(|(m, _, _)| *m == own)
        .or_else(|| {
            frames
                .iter()
                .find(|(m, _, _)| m.starts_with(&format!("{classname}.")))
        })
        .map(|(_, f, n)| (f.clone(), *n))
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
