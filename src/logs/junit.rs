//! JUnit XML reports (`<testsuite>`/`<testcase>` with `<failure>` or `<error>` children), as
//! pytest `--junitxml`, nextest, go-junit-report, jest-junit and PHPUnit `--log-junit` write them.
//! Format: <https://github.com/testmoapp/junitxml>. A small scanner over the elements fixci needs,
//! not a general XML parser: no DTDs, no namespaces.

use super::extractor::{Candidate, ExLine, Extracted};
use super::rule_pack::Keep;

/// True when `head` (the start of a file) looks like a JUnit report.
pub fn looks_like_junit(head: &[u8]) -> bool {
    let s = String::from_utf8_lossy(&head[..head.len().min(4096)]);
    let s = s.trim_start_matches('\u{feff}').trim_start();
    (s.starts_with("<?xml") || s.starts_with("<testsuite"))
        && (s.contains("<testsuite") || s.contains("<testcase"))
}

/// Extracts failing and erroring test cases.
pub fn extract(xml: &str) -> Extracted {
    let mut out = Extracted::default();
    let line_of = |pos: usize| {
        1 + xml.as_bytes()[..pos]
            .iter()
            .filter(|&&b| b == b'\n')
            .count() as u64
    };
    let mut pos = 0;
    while let Some(i) = xml[pos..].find("<testcase") {
        let start = pos + i;
        let Some(tag_end) = xml[start..].find('>').map(|j| start + j) else {
            break;
        };
        let tag = &xml[start..tag_end];
        let self_closing = tag.ends_with('/');
        let body_end = if self_closing {
            tag_end
        } else {
            xml[tag_end..]
                .find("</testcase>")
                .map_or(xml.len(), |j| tag_end + j)
        };
        let body = &xml[tag_end.min(body_end)..body_end];
        pos = body_end.max(tag_end + 1);
        let Some(kind_at) = ["<failure", "<error"]
            .iter()
            .filter_map(|k| body.find(k))
            .min()
        else {
            continue;
        };
        let name = attr(tag, "name").unwrap_or_default();
        let classname = attr(tag, "classname").unwrap_or_default();
        let test = match (classname.is_empty(), name.is_empty()) {
            (false, false) => format!("{classname}.{name}"),
            (true, _) => name,
            (false, true) => classname,
        };
        let ftag_end = body[kind_at..]
            .find('>')
            .map_or(body.len(), |j| kind_at + j);
        let ftag = &body[kind_at..ftag_end];
        let ftext = if ftag.ends_with('/') {
            String::new()
        } else {
            let close = body[ftag_end..]
                .find("</")
                .map_or(body.len(), |j| ftag_end + j);
            unescape(
                body.get(ftag_end + 1..close)
                    .unwrap_or("")
                    .trim_start_matches("<![CDATA[")
                    .trim_end_matches("]]>"),
            )
        };
        let message = attr(ftag, "message")
            .filter(|m| !m.trim().is_empty())
            .or_else(|| {
                ftext
                    .lines()
                    .find(|l| !l.trim().is_empty())
                    .map(str::to_string)
            })
            .map(|m| m.lines().next().unwrap_or("").trim().to_string());
        let first_line = line_of(start);
        let body_line = line_of(tag_end.min(body_end) + kind_at);
        let mut lines = vec![ExLine {
            no: first_line,
            text: format!("FAILED {test}"),
            repeat: 1,
            key: true,
        }];
        for (k, l) in ftext.lines().take(200).enumerate() {
            lines.push(ExLine {
                no: body_line + k as u64,
                text: l.to_string(),
                repeat: 1,
                key: k == 0,
            });
        }
        out.failures.push(Candidate {
            pack: 0,
            priority: 100,
            first_line,
            test,
            file: attr(tag, "file"),
            line: attr(tag, "line").and_then(|l| l.parse().ok()),
            message,
            locations: Vec::new(),
            location_keep: Keep::First,
            lines,
            from_block: true,
            confirm: false,
            group: None,
        });
    }
    out.lines = line_of(xml.len());
    out
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let mut from = 0;
    while let Some(i) = tag[from..].find(name) {
        let at = from + i;
        from = at + name.len();
        let before_ok = at == 0 || tag.as_bytes()[at - 1].is_ascii_whitespace();
        let rest = tag[from..].trim_start();
        if !before_ok || !rest.starts_with('=') {
            continue;
        }
        let rest = rest[1..].trim_start();
        let q = rest.chars().next()?;
        if q != '"' && q != '\'' {
            return None;
        }
        let end = rest[1..].find(q)?;
        return Some(unescape(&rest[1..1 + end]));
    }
    None
}

fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(semi) = rest.find(';').filter(|&j| j <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let ent = &rest[1..semi];
        let c = match ent {
            "lt" => Some('<'),
            "gt" => Some('>'),
            "amp" => Some('&'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ if ent.starts_with("#x") => u32::from_str_radix(&ent[2..], 16)
                .ok()
                .and_then(char::from_u32),
            _ if ent.starts_with('#') => ent[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match c {
            Some(c) => out.push(c),
            None => out.push_str(&rest[..=semi]),
        }
        rest = &rest[semi + 1..];
    }
    out.push_str(rest);
    out
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
