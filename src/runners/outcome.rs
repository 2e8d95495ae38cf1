//! Test outcomes from the reports runners write: JUnit XML (pytest `--junitxml`, fixci's own
//! unittest runner, nextest, jest-junit, vitest `--reporter=junit`, PHPUnit `--log-junit`, Maven
//! Surefire `TEST-*.xml`) and `go test -json` event streams. Parsed with `roxmltree` (no DTDs, so
//! no entity expansion) and `serde_json`.
//!
//! Formats: JUnit XML as documented at <https://github.com/testmoapp/junitxml> (`<testsuites>` /
//! `<testsuite>` / `<testcase>` with `<failure>`, `<error>` or `<skipped>` children);
//! `go test -json` as documented by `go doc test2json` (one JSON object a line with `Action`,
//! `Package`, `Test`).

use std::path::Path;

use serde::{Deserialize, Serialize};

/// How one test case ended, by the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CaseOutcome {
    /// Ran and passed.
    Passed,
    /// An assertion failed (`<failure>`).
    Failed,
    /// An error other than an assertion (`<error>`), e.g. an exception or a set-up error.
    Error,
    /// Skipped, deselected or expected to fail (`<skipped>`; pytest writes xfail as skipped).
    Skipped,
}

impl CaseOutcome {
    /// Lowercase name.
    pub fn as_str(&self) -> &'static str {
        match self {
            CaseOutcome::Passed => "passed",
            CaseOutcome::Failed => "failed",
            CaseOutcome::Error => "error",
            CaseOutcome::Skipped => "skipped",
        }
    }
}

/// One `<testcase>` (or one go test).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Case {
    /// `classname` attribute (pytest: dotted module path and class; go: the package).
    pub classname: String,
    /// `name` attribute (the test function or method).
    pub name: String,
    /// `file` attribute, when the runner writes one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// `line` attribute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// Outcome.
    pub outcome: CaseOutcome,
    /// The first non-empty line of the failure's `message` attribute (or of its text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The failure's text (traceback), empty for passed cases.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text: String,
    /// 1-based line of the `<testcase>` element in the report (0 for go JSON).
    #[serde(skip)]
    pub report_line: u64,
    /// 1-based line of the failure element in the report.
    #[serde(skip)]
    pub failure_line: u64,
}

impl Case {
    /// The `(file, line)` of the stack frame of the test's own method in the failure's text
    /// (JVM-style frames, `at <classname>.<name>(File.java:12)`), else of the first frame in its
    /// class; `None` without such a frame. Surefire and Gradle reports carry no `file`/`line`
    /// attributes, so this is where a Java or Kotlin test's location comes from.
    pub fn stack_frame(&self) -> Option<(String, u32)> {
        if self.classname.is_empty() {
            return None;
        }
        let frames: Vec<(&str, &str, u32)> = self
            .text
            .lines()
            .filter_map(|l| {
                let l = l.trim().strip_prefix("at ")?;
                let (method, rest) = l.rsplit_once('(')?;
                let (f, n) = rest.strip_suffix(')')?.rsplit_once(':')?;
                Some((method, f, n.parse().ok()?))
            })
            .collect();
        let own = format!("{}.{}", self.classname, self.name);
        let in_class = format!("{}.", self.classname);
        frames
            .iter()
            .find(|(m, _, _)| *m == own)
            .or_else(|| frames.iter().find(|(m, _, _)| m.starts_with(&in_class)))
            .map(|(_, f, n)| ((*f).to_string(), *n))
    }

    /// The test id: `classname.name`, or whichever of the two is set.
    pub fn id(&self) -> String {
        match (self.classname.is_empty(), self.name.is_empty()) {
            (false, false) => format!("{}.{}", self.classname, self.name),
            (true, _) => self.name.clone(),
            (false, true) => self.classname.clone(),
        }
    }
}

/// A report that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Not well-formed XML.
    #[error("not well-formed JUnit XML: {0}")]
    Xml(#[from] roxmltree::Error),
    /// Well-formed, but no `<testsuite>`/`<testsuites>`/`<testcase>` root.
    #[error("not a JUnit report: the root element is `<{0}>`")]
    NotJunit(String),
    /// The file cannot be read.
    #[error("cannot read `{path}`: {source}")]
    Io {
        /// The report's path.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Every test case of a JUnit XML report, in document order. `<testsuite>` elements may nest;
/// a `<testcase>` with several result children counts its worst (error, failure, skipped).
pub fn parse_junit(xml: &str) -> Result<Vec<Case>, ReportError> {
    let xml = xml.trim_start_matches('\u{feff}');
    let doc = roxmltree::Document::parse(xml)?;
    let root = doc.root_element();
    if !matches!(
        root.tag_name().name(),
        "testsuites" | "testsuite" | "testcase"
    ) {
        return Err(ReportError::NotJunit(root.tag_name().name().to_string()));
    }
    // Line starts once (roxmltree's `text_pos_at` rescans the text on every call).
    let starts: Vec<usize> = std::iter::once(0)
        .chain(xml.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let line = |pos: usize| starts.partition_point(|&s| s <= pos) as u64;
    let mut out = Vec::new();
    for tc in root
        .descendants()
        .filter(|n| n.is_element() && n.has_tag_name("testcase"))
    {
        let mut outcome = CaseOutcome::Passed;
        let mut result_node = None;
        for child in tc.children().filter(|c| c.is_element()) {
            let o = match child.tag_name().name() {
                "error" => CaseOutcome::Error,
                "failure" => CaseOutcome::Failed,
                "skipped" => CaseOutcome::Skipped,
                _ => continue,
            };
            let rank = |o: CaseOutcome| match o {
                CaseOutcome::Passed => 0,
                CaseOutcome::Skipped => 1,
                CaseOutcome::Failed => 2,
                CaseOutcome::Error => 3,
            };
            if rank(o) > rank(outcome) {
                outcome = o;
                result_node = Some(child);
            }
        }
        let text = result_node
            .map(|n| {
                n.descendants()
                    .filter(|d| d.is_text())
                    .filter_map(|d| d.text())
                    .collect::<String>()
            })
            .unwrap_or_default();
        let message = result_node
            .and_then(|n| n.attribute("message"))
            .filter(|m| !m.trim().is_empty())
            .map(str::to_string)
            .or_else(|| {
                text.lines()
                    .find(|l| !l.trim().is_empty())
                    .map(str::to_string)
            })
            // The first non-empty line: Hamcrest messages start with a newline
            // (`message="&#10;Expected: <100.10>&#10;     but: was <100.11>"`).
            .map(|m| {
                m.lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty())
                    .unwrap_or("")
                    .to_string()
            });
        out.push(Case {
            classname: tc.attribute("classname").unwrap_or("").to_string(),
            name: tc.attribute("name").unwrap_or("").to_string(),
            file: tc.attribute("file").map(str::to_string),
            line: tc.attribute("line").and_then(|l| l.parse().ok()),
            outcome,
            message,
            text,
            report_line: line(tc.range().start),
            failure_line: result_node.map_or(0, |n| line(n.range().start)),
        });
    }
    Ok(out)
}

/// Reads and parses the JUnit report at `path`.
pub fn read_junit(path: &Path) -> Result<Vec<Case>, ReportError> {
    let bytes = std::fs::read(path).map_err(|source| ReportError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse_junit(&String::from_utf8_lossy(&bytes))
}

/// Every case of the `*.xml` reports in `dir` (Maven Surefire's `target/surefire-reports`),
/// files in name order.
pub fn read_junit_dir(dir: &Path) -> Result<Vec<Case>, ReportError> {
    let io = |source| ReportError::Io {
        path: dir.display().to_string(),
        source,
    };
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(io)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "xml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        out.extend(read_junit(&f)?);
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GoEvent {
    action: String,
    #[serde(default)]
    package: String,
    #[serde(default)]
    test: Option<String>,
    #[serde(default)]
    output: Option<String>,
}

/// The tests of a `go test -json` stream: the last of `pass`/`fail`/`skip` for each
/// (package, test); lines that are not JSON events (build output) are ignored.
pub fn parse_go_json(text: &str) -> Vec<Case> {
    let mut out: Vec<Case> = Vec::new();
    let mut outputs: std::collections::HashMap<(String, String), String> = Default::default();
    for line in text.lines() {
        let Ok(ev) = serde_json::from_str::<GoEvent>(line) else {
            continue;
        };
        let Some(test) = ev.test else { continue };
        let key = (ev.package.clone(), test.clone());
        let outcome = match ev.action.as_str() {
            "output" => {
                outputs
                    .entry(key)
                    .or_default()
                    .push_str(ev.output.as_deref().unwrap_or(""));
                continue;
            }
            "pass" => CaseOutcome::Passed,
            "fail" => CaseOutcome::Failed,
            "skip" => CaseOutcome::Skipped,
            _ => continue,
        };
        let text = if outcome == CaseOutcome::Passed {
            String::new()
        } else {
            outputs.remove(&key).unwrap_or_default()
        };
        out.retain(|c| !(c.classname == ev.package && c.name == test));
        out.push(Case {
            classname: ev.package,
            name: test,
            file: None,
            line: None,
            outcome,
            message: None,
            text,
            report_line: 0,
            failure_line: 0,
        });
    }
    out
}

/// A test id in comparable form: `::` and `/` become `.`, a `.py` suffix of a path part is
/// dropped (`tests/test_x.py::C::t` and `tests.test_x.C.t` compare equal).
pub fn normalise_id(id: &str) -> String {
    id.replace(".py::", "::")
        .replace("::", ".")
        .replace('/', ".")
        .trim_matches('.')
        .to_string()
}

/// True when the report's case `case_id` is the test `wanted` (as a CI log or a user names it):
/// equal once normalised, or one ends with the other at a `.` boundary (a log may print only
/// `Class.test`, a report the full module path).
pub fn same_test(case_id: &str, wanted: &str) -> bool {
    let a = normalise_id(case_id);
    let b = normalise_id(wanted);
    if a == b {
        return true;
    }
    let (long, short) = if a.len() >= b.len() {
        (&a, &b)
    } else {
        (&b, &a)
    };
    // A bare function name alone is too weak to identify a test.
    short.contains('.')
        && long.ends_with(short.as_str())
        && long.as_bytes()[long.len() - short.len() - 1] == b'.'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pytest_outcomes_including_skips_and_xfail() {
        let xml = r#"<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" tests="4">
<testcase classname="tests.test_calc" name="test_ok" time="0.001" />
<testcase classname="tests.test_calc" name="test_add" file="tests/test_calc.py" line="4"><failure message="assert 3 == 4">E assert 3 == 4</failure></testcase>
<testcase classname="tests.test_calc" name="test_later"><skipped type="pytest.skip" message="later">skip</skipped></testcase>
<testcase classname="tests.test_calc" name="test_x"><skipped type="pytest.xfail" message="xfail"/></testcase>
<testcase classname="tests.test_calc" name="test_boom"><error message="fixture &apos;db&apos; not found"/></testcase>
</testsuite></testsuites>"#;
        let cases = parse_junit(xml).unwrap();
        let got: Vec<_> = cases.iter().map(|c| (c.id(), c.outcome)).collect();
        assert_eq!(
            got,
            vec![
                ("tests.test_calc.test_ok".into(), CaseOutcome::Passed),
                ("tests.test_calc.test_add".into(), CaseOutcome::Failed),
                ("tests.test_calc.test_later".into(), CaseOutcome::Skipped),
                ("tests.test_calc.test_x".into(), CaseOutcome::Skipped),
                ("tests.test_calc.test_boom".into(), CaseOutcome::Error),
            ]
        );
        assert_eq!(cases[1].message.as_deref(), Some("assert 3 == 4"));
        assert_eq!(cases[1].line, Some(4));
        assert_eq!(cases[4].message.as_deref(), Some("fixture 'db' not found"));
    }

    #[test]
    fn an_empty_suite_has_no_cases_and_garbage_is_an_error() {
        let xml = r#"<testsuites><testsuite name="pytest" tests="0" errors="0"/></testsuites>"#;
        assert!(parse_junit(xml).unwrap().is_empty());
        assert!(matches!(
            parse_junit("<testsuite><testcase name='a'>"),
            Err(ReportError::Xml(_))
        ));
        assert!(matches!(
            parse_junit("<html/>"),
            Err(ReportError::NotJunit(t)) if t == "html"
        ));
        // Entities from a DTD are refused, not expanded.
        let dtd = r#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><testsuite><testcase name="&a;"/></testsuite>"#;
        assert!(parse_junit(dtd).is_err());
    }

    #[test]
    fn reads_go_test_json() {
        let text = r#"{"Action":"run","Package":"ex/calc","Test":"TestAdd"}
{"Action":"output","Package":"ex/calc","Test":"TestAdd","Output":"    calc_test.go:9: got 3\n"}
{"Action":"fail","Package":"ex/calc","Test":"TestAdd","Elapsed":0}
{"Action":"pass","Package":"ex/calc","Test":"TestSub","Elapsed":0}
{"Action":"skip","Package":"ex/calc","Test":"TestMul","Elapsed":0}
# some build output
{"Action":"fail","Package":"ex/calc","Elapsed":0.1}"#;
        let cases = parse_go_json(text);
        let got: Vec<_> = cases.iter().map(|c| (c.id(), c.outcome)).collect();
        assert_eq!(
            got,
            vec![
                ("ex/calc.TestAdd".into(), CaseOutcome::Failed),
                ("ex/calc.TestSub".into(), CaseOutcome::Passed),
                ("ex/calc.TestMul".into(), CaseOutcome::Skipped),
            ]
        );
        assert!(cases[0].text.contains("got 3"));
    }

    #[test]
    fn ids_compare_across_runner_spellings() {
        assert!(same_test(
            "tests.test_stats.StatsTest.test_mean",
            "tests/test_stats.py::StatsTest::test_mean"
        ));
        assert!(same_test(
            "tests.test_stats.StatsTest.test_mean",
            "StatsTest.test_mean"
        ));
        assert!(!same_test(
            "tests.test_stats.StatsTest.test_mean",
            "test_mean"
        ));
        assert!(!same_test(
            "tests.test_stats.StatsTest.test_mean2",
            "StatsTest.test_mean"
        ));
    }
}
