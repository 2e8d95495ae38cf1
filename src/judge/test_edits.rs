//! Judges edits to tests. Tests are evidence: a "fix" that deletes assertions, adds skip or
//! xfail markers, or raises timeouts and retry counts makes a test pass without fixing
//! anything. [`judge_test_edits`] finds such changes in a unified diff.

use std::collections::BTreeMap;

use regex::Regex;

/// Problems found in `patch` (unified diff, `git diff` format), one sentence each, naming the
/// file. Empty when the test edits look legitimate.
///
/// Checked: test definitions removed or renamed (Python, Go, JS, PHP, Ruby); added skip / xfail / ignore / focus (`.only`, `fit`) markers in any file (pytest, unittest, Rust, Go, Jest /
/// Mocha, JUnit, PHPUnit, pytest `collect_ignore` / `--deselect`); assertion lines removed from a
/// test file with no assertion added back; timeout, retry and rerun numbers that go up, and
/// retry/flaky markers that are added.
pub fn judge_test_edits(patch: &str) -> Vec<String> {
    let skip = Regex::new(
        r"@pytest\.mark\.(skip|skipif|xfail)\b|\bpytest\.(skip|xfail|importorskip)\(|@unittest\.(skip|skipIf|skipUnless|expectedFailure)\b|\bself\.skipTest\(|\bunittest\.SkipTest\b|#\[ignore\]|\bt\.Skip(Now|f)?\(|\b(it|test|describe)\.(skip|todo|only)\(|\bf(it|describe)\(|\bx(it|describe|test)\(|@Disabled\b|@Ignore\b|markTestSkipped|markTestIncomplete|\bcollect_ignore\b|--deselect\b",
    )
    .expect("valid regex");
    let assert_re =
        Regex::new(r"\bassert|\bexpect\(|\bassert_eq!|\bassert!|\bshould\b|\bt\.(Error|Fatal)")
            .expect("valid regex");
    let retry_marker =
        Regex::new(r"@pytest\.mark\.flaky\b|@flaky\b|--reruns\b|\bretry\(|jest\.retryTimes\(")
            .expect("valid regex");
    // A test definition: Python `def test_x(`, Go `func TestX(`, JS `it('...'` / `test('...'`,
    // PHP `function testX(`, Ruby `it "..."`; the name is group 1.
    let test_def = Regex::new(
        r#"^\s*(?:async\s+)?def\s+(test\w*)\s*\(|^\s*func\s+(Test\w*)\s*\(|^\s*(?:it|test)\s*\(\s*['"`]([^'"`]+)['"`]|function\s+(test\w*)\s*\(|^\s*it\s+['"]([^'"]+)['"]"#,
    )
    .expect("valid regex");
    let knob = Regex::new(r"(?i)\b(timeout|timeout_s|timeout_ms|retries|retry|reruns|max_attempts|attempts|deadline)\b\s*[:=(]?\s*(\d+(?:\.\d+)?)").expect("valid regex");

    let mut out = Vec::new();
    for (file, lines) in per_file(patch) {
        let is_test = crate::runners::looks_like_test(&file);
        let added: Vec<&str> = lines.iter().filter_map(|l| l.strip_prefix('+')).collect();
        let removed: Vec<&str> = lines.iter().filter_map(|l| l.strip_prefix('-')).collect();
        for a in &added {
            if skip.is_match(a) {
                out.push(format!(
                    "`{file}`: adds a skip/xfail marker: `{}`",
                    a.trim()
                ));
            }
            if retry_marker.is_match(a) && !removed.iter().any(|r| retry_marker.is_match(r)) {
                out.push(format!("`{file}`: adds retries: `{}`", a.trim()));
            }
        }
        let defined = |l: &str| {
            test_def.captures(l).and_then(|c| {
                c.iter()
                    .skip(1)
                    .flatten()
                    .next()
                    .map(|m| m.as_str().to_string())
            })
        };
        let kept: Vec<String> = added.iter().filter_map(|l| defined(l)).collect();
        for name in removed.iter().filter_map(|l| defined(l)) {
            if !kept.contains(&name) {
                out.push(format!("`{file}`: removes or renames the test `{name}`"));
            }
        }
        if is_test {
            let removed_asserts = removed.iter().filter(|l| assert_re.is_match(l)).count();
            let added_asserts = added.iter().filter(|l| assert_re.is_match(l)).count();
            if removed_asserts > 0 && added_asserts == 0 {
                out.push(format!(
                    "`{file}`: deletes {removed_asserts} assertion line(s) and adds none"
                ));
            }
        }
        let mut before: BTreeMap<String, f64> = BTreeMap::new();
        for r in &removed {
            for c in knob.captures_iter(r) {
                if let Ok(v) = c[2].parse::<f64>() {
                    before.insert(c[1].to_ascii_lowercase(), v);
                }
            }
        }
        for a in &added {
            for c in knob.captures_iter(a) {
                let key = c[1].to_ascii_lowercase();
                if let (Some(old), Ok(new)) = (before.get(&key), c[2].parse::<f64>()) {
                    if new > *old {
                        out.push(format!("`{file}`: raises `{}` from {old} to {new}", &c[1]));
                    }
                }
            }
        }
    }
    out
}

/// Splits a unified diff into (file, changed lines with their `+`/`-` prefix).
pub(crate) fn per_file(patch: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for line in patch.lines() {
        if let Some(rest) = line.strip_prefix("diff --git a/") {
            let file = rest.split(" b/").last().unwrap_or(rest).to_string();
            out.push((file, Vec::new()));
        } else if line.starts_with("+++") || line.starts_with("---") {
            continue;
        } else if (line.starts_with('+') || line.starts_with('-')) && !out.is_empty() {
            out.last_mut().expect("non-empty").1.push(line.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diff(file: &str, body: &str) -> String {
        format!("diff --git a/{file} b/{file}\n--- a/{file}\n+++ b/{file}\n@@ -1,3 +1,3 @@\n{body}")
    }

    #[test]
    fn skip_markers_are_refused() {
        let p = diff(
            "tests/test_x.py",
            "+@pytest.mark.skip(reason='flaky')\n def test_x():\n",
        );
        assert_eq!(judge_test_edits(&p).len(), 1);
        let p = diff("tests/test_x.py", "+        self.skipTest('later')\n");
        assert!(!judge_test_edits(&p).is_empty());
        let p = diff("a.test.js", "+it.only('adds', () => {\n");
        assert!(!judge_test_edits(&p).is_empty());
        let p = diff("src/lib.rs", "+#[ignore]\n");
        assert!(!judge_test_edits(&p).is_empty());
    }

    #[test]
    fn deleting_assertions_is_refused() {
        let p = diff("tests/test_x.py", "-    assert total == 3\n+    total\n");
        assert!(judge_test_edits(&p)[0].contains("deletes 1 assertion"));
        let p = diff(
            "tests/test_x.py",
            "-    assert total == 3\n+    assert total == 4\n",
        );
        assert!(judge_test_edits(&p).is_empty());
    }

    #[test]
    fn removing_or_renaming_a_test_is_refused() {
        let p = diff(
            "tests/test_x.py",
            "-    def test_total(self):\n+    def _test_total(self):\n",
        );
        assert!(judge_test_edits(&p)[0].contains("removes or renames the test `test_total`"));
        let p = diff("calc_test.go", "-func TestTotal(t *testing.T) {\n");
        assert!(!judge_test_edits(&p).is_empty());
        let p = diff(
            "a.test.js",
            "-it('adds', () => {\n+it.only('other', () => {\n",
        );
        assert!(!judge_test_edits(&p).is_empty());
        // A changed signature keeps the test.
        let p = diff(
            "tests/test_x.py",
            "-    def test_total(self):\n+    def test_total(self, tmp_path):\n",
        );
        assert!(judge_test_edits(&p).is_empty());
    }

    #[test]
    fn raising_timeouts_is_refused() {
        let p = diff(
            "tests/test_x.py",
            "-    client = Client(timeout=5)\n+    client = Client(timeout=60)\n",
        );
        assert!(judge_test_edits(&p)[0].contains("from 5 to 60"));
        let p = diff(
            "tests/test_x.py",
            "-    client = Client(timeout=60)\n+    client = Client(timeout=5)\n",
        );
        assert!(judge_test_edits(&p).is_empty());
    }

    #[test]
    fn real_fixes_pass() {
        let p = diff(
            "calc/ops.py",
            "-    return a / b\n+    if b == 0:\n+        raise ZeroDivisionError('b')\n+    return a / b\n",
        );
        assert!(judge_test_edits(&p).is_empty());
    }
}
