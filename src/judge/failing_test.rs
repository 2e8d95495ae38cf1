//! Edits to the CI's own failing test. For a deterministic failure, a fix that changes what the
//! failing test asserts or expects could make it pass by moving the goalposts: fixci cannot
//! tell a corrected expectation from a weakened one, so the run ends `partial` and a human
//! judges. For a flaky failure the test itself is often the bug (unseeded randomness, shared
//! state, leftover files), so its set-up may change; those edits are judged by
//! [`super::judge_test_edits`] and verified statistically.

use super::test_edits::per_file;

/// The reason a run ends `partial` when `patch` (unified diff of the fix, `git diff` format)
/// edits one of `failing_tests`, the CI's failing test files (from the distilled log's
/// `file` fields or `existing-test-path`; absolute CI paths match by suffix). Edits that
/// change only blank lines, comments or imports do not count. `None` when the fix leaves them
/// alone.
pub fn failing_test_edit(patch: &str, failing_tests: &[String]) -> Option<String> {
    let edited: Vec<String> = per_file(patch)
        .into_iter()
        .filter(|(file, _)| failing_tests.iter().any(|t| same_file(t, file)))
        .filter(|(_, lines)| lines.iter().any(|l| substantive(&l[1..])))
        .map(|(file, _)| format!("`{file}`"))
        .collect();
    (!edited.is_empty()).then(|| {
        format!(
            "{PARTIAL_PREFIX} ({}): a human must judge",
            edited.join(", ")
        )
    })
}

/// The CI's failing test files of a run: the `file` of each failure in the distilled CI log,
/// and the test of `existing-test-path`.
pub fn failing_test_files(st: &crate::run_dir::RunState) -> Vec<String> {
    let mut out: Vec<String> = st
        .logs
        .iter()
        .flat_map(|l| l.distilled.failures.iter().filter_map(|f| f.file.clone()))
        .collect();
    if let Some(r) = st.repro.as_ref().filter(|r| r.origin == "existing") {
        out.push(r.test_file.clone());
    }
    out.sort();
    out.dedup();
    out
}

/// How every [`failing_test_edit`] reason starts.
const PARTIAL_PREFIX: &str = "the fix edits the failing test";

/// True when the CI's test path `ci` (relative, or absolute on the CI machine, perhaps with
/// `\`) names the repository path `file`.
fn same_file(ci: &str, file: &str) -> bool {
    let ci = ci.replace('\\', "/");
    let ci = ci.trim_start_matches("./");
    ci == file || ci.ends_with(&format!("/{file}"))
}

/// A changed line that can change what a test checks: not blank, not only a comment, not an
/// import.
fn substantive(line: &str) -> bool {
    let t = line.trim();
    !(t.is_empty()
        || t.starts_with('#')
        || t.starts_with("//")
        || t.starts_with("/*")
        || t.starts_with('*')
        || t.starts_with("import ")
        || (t.starts_with("from ") && t.contains(" import "))
        || t.starts_with("use ")
        || t.starts_with("require "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diff(file: &str, body: &str) -> String {
        format!("diff --git a/{file} b/{file}\n--- a/{file}\n+++ b/{file}\n@@ -1,3 +1,3 @@\n{body}")
    }

    #[test]
    fn changing_an_expected_value_is_partial() {
        let p = diff(
            "tests/test_calc.py",
            "-    assert total([1, 2]) == 4\n+    assert total([1, 2]) == 3\n",
        );
        let why = failing_test_edit(&p, &["tests/test_calc.py".into()]).unwrap();
        assert!(
            why.contains("`tests/test_calc.py`") && why.contains("a human must judge"),
            "{why}"
        );
        let p = diff(
            "tests/test_calc.py",
            "-    expected = 4\n+    expected = 3\n",
        );
        assert!(
            failing_test_edit(&p, &["/home/runner/work/r/r/tests/test_calc.py".into()]).is_some()
        );
    }

    #[test]
    fn other_files_comments_and_imports_are_not() {
        let p = diff("calc/ops.py", "-    return a - b\n+    return a + b\n");
        assert!(failing_test_edit(&p, &["tests/test_calc.py".into()]).is_none());
        let p = diff(
            "tests/test_calc.py",
            "+# see issue 12\n+import math\n+from calc import ops\n",
        );
        assert!(failing_test_edit(&p, &["tests/test_calc.py".into()]).is_none());
        assert!(failing_test_edit(&p, &[]).is_none());
        // Another test file that merely ends the same way is another file.
        let p = diff("other_test_calc.py", "-    assert 1\n+    assert 2\n");
        assert!(failing_test_edit(&p, &["tests/test_calc.py".into()]).is_none());
    }
}
