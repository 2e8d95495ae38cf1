//! The kind of a failing check run, judged from how the command ended and its output, so that a
//! replay tells a test that failed the way the bug makes it fail from one that never ran: a
//! missing interpreter or test runner (an infra error, never a reproduction), an import or
//! collection error, no test collected, a timeout, an assertion, another exception.
//!
//! Recognised output: POSIX `sh` (exit 127 "not found", 126 "cannot execute"), CPython
//! (`python: No module named X` for `-m X`, `can't open file`), pytest (`ERROR collecting`,
//! `errors during collection`, `ImportError while importing test module`, `no tests ran`,
//! exit 5, `E   assert`) and unittest (`Failed to import test module`, `Ran 0 tests`,
//! `NO TESTS RAN`); any runner's final `SomeError: message` / `SomeException: message` line.

use std::sync::LazyLock;

use regex::Regex;

use crate::process::Termination;

/// What kind of failure one run was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureKind {
    /// The interpreter, the test runner or the test file is missing: nothing was tested.
    /// Holds the line that says so.
    MissingRunner(String),
    /// The tests could not be imported or collected (import error, syntax error, collection
    /// error). Holds the error line.
    Collection(String),
    /// The runner collected no test.
    NoTestsRan,
    /// The run outlived its budget.
    Timeout,
    /// A test assertion failed.
    Assertion,
    /// A test raised this exception type (e.g. `TypeError`).
    Exception(String),
    /// A non-zero exit with none of the above recognised.
    Other,
}

impl FailureKind {
    /// A short stable label: `missing-runner`, `collection-error`, `no-tests-ran`, `timeout`,
    /// `assertion`, `exception:<Type>`, `failed`.
    pub fn label(&self) -> String {
        match self {
            FailureKind::MissingRunner(_) => "missing-runner".into(),
            FailureKind::Collection(_) => "collection-error".into(),
            FailureKind::NoTestsRan => "no-tests-ran".into(),
            FailureKind::Timeout => "timeout".into(),
            FailureKind::Assertion => "assertion".into(),
            FailureKind::Exception(t) => format!("exception:{t}"),
            FailureKind::Other => "failed".into(),
        }
    }

    /// True when the tests did not run at all for a reason other than the code under test
    /// failing them: an import or collection error, or no test collected.
    pub fn is_other_reason(&self) -> bool {
        matches!(self, FailureKind::Collection(_) | FailureKind::NoTestsRan)
    }
}

static NO_MODULE_RUNNER: LazyLock<Regex> = LazyLock::new(|| {
    // `python -m pytest` without pytest: "/venv/bin/python: No module named pytest" (no
    // quotes, unlike the ModuleNotFoundError a test's own import raises).
    Regex::new(r"(?m)^\S*: No module named [A-Za-z_][\w.]*\s*$").expect("valid regex")
});
static CANT_OPEN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?m)^\S*python\S*: can't open file .*$").expect("valid regex"));
static NOT_FOUND: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?m)^.*(?:not found|No such file or directory|command not found|Permission denied|cannot execute).*$")
        .expect("valid regex")
});
static COLLECTION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?m)^.*(?:ERROR collecting|errors? during collection|ImportError while importing test module|Failed to import test module|unittest\.loader\._FailedTest).*$",
    )
    .expect("valid regex")
});
static IMPORT_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?m)^(?:E\s+)?((?:ModuleNotFoundError|ImportError|SyntaxError|IndentationError): .*)$",
    )
    .expect("valid regex")
});
static RAN_TESTS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?m)\b\d+ (?:passed|failed)\b|^Ran [1-9]\d* tests?\b|^(?:FAIL|ERROR): \w")
        .expect("valid regex")
});
static NO_TESTS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?m)(?:^|\s)no tests ran\b|^Ran 0 tests\b|^NO TESTS RAN").expect("valid regex")
});
static ASSERTION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?m)^(?:E\s+)?(?:AssertionError\b|assert\s)|\bAssertionError:|^FAIL: ")
        .expect("valid regex")
});
static EXCEPTION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?m)^(?:E\s+)?(?:[a-z_][\w]*\.)*([A-Z]\w*(?:Error|Exception|Failure|Exit|Interrupt|Warning))\b(?::|$)")
        .expect("valid regex")
});

/// Judges one failing run of `command` (which ended with `termination`) from its `output`
/// (the tail of its combined stdout and stderr is enough). A passing run is not a failure:
/// call this only for runs that did not exit 0.
pub fn classify(termination: &Termination, output: &str) -> FailureKind {
    if matches!(termination, Termination::TimedOut { .. }) {
        return FailureKind::Timeout;
    }
    let first_match = |re: &Regex| re.find(output).map(|m| m.as_str().trim().to_string());
    if let Termination::Exited { code: 126 | 127 } = termination {
        return FailureKind::MissingRunner(
            first_match(&NOT_FOUND).unwrap_or_else(|| termination.describe()),
        );
    }
    if let Some(l) = first_match(&NO_MODULE_RUNNER).or_else(|| first_match(&CANT_OPEN)) {
        return FailureKind::MissingRunner(l);
    }
    if COLLECTION.is_match(output) {
        // The last import-time error is the cause (unittest prints its own ImportError first).
        let line = IMPORT_LINE
            .captures_iter(output)
            .last()
            .map(|c| c[1].trim().to_string())
            .or_else(|| first_match(&COLLECTION))
            .unwrap_or_default();
        return FailureKind::Collection(line);
    }
    // No runner summary and an import-time error: the test module never loaded.
    if !RAN_TESTS.is_match(output) {
        if let Some(c) = IMPORT_LINE.captures_iter(output).last() {
            return FailureKind::Collection(c[1].trim().to_string());
        }
    }
    if NO_TESTS.is_match(output)
        || matches!(termination, Termination::Exited { code: 5 }) && output.contains("pytest")
    {
        return FailureKind::NoTestsRan;
    }
    if ASSERTION.is_match(output) {
        return FailureKind::Assertion;
    }
    match EXCEPTION.captures_iter(output).last() {
        Some(c) => FailureKind::Exception(c[1].to_string()),
        None => FailureKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exit(code: i32) -> Termination {
        Termination::Exited { code }
    }

    #[test]
    fn kinds_of_real_runner_output() {
        let k = classify(&exit(1), "/tmp/v/bin/python: No module named pytest\n");
        assert_eq!(
            k,
            FailureKind::MissingRunner("/tmp/v/bin/python: No module named pytest".into())
        );
        let k = classify(&exit(127), "sh: 1: python: not found\n");
        assert_eq!(
            k,
            FailureKind::MissingRunner("sh: 1: python: not found".into())
        );
        let k = classify(
            &exit(2),
            "python: can't open file '/r/test.py': [Errno 2] No such file or directory\n",
        );
        assert_eq!(k.label(), "missing-runner");
        // pytest collection error: the project's own import fails.
        let k = classify(
            &exit(2),
            "==== ERRORS ====\n___ ERROR collecting tests/test_x.py ___\nImportError while importing test module '/r/tests/test_x.py'.\nE   ModuleNotFoundError: No module named 'six'\n!!!! Interrupted: 1 error during collection !!!!\n",
        );
        assert_eq!(
            k,
            FailureKind::Collection("ModuleNotFoundError: No module named 'six'".into())
        );
        assert!(k.is_other_reason());
        // unittest: the module does not import.
        let k = classify(
            &exit(1),
            "E\n======\nERROR: test_x (unittest.loader._FailedTest.test_x)\nImportError: Failed to import test module: test_x\nTraceback ...\nModuleNotFoundError: No module named 'yaml'\n\nRan 1 test in 0.000s\n\nFAILED (errors=1)\n",
        );
        assert_eq!(
            k,
            FailureKind::Collection("ModuleNotFoundError: No module named 'yaml'".into())
        );
        let k = classify(&exit(5), "\nno tests ran in 0.01s\n");
        assert_eq!(k, FailureKind::NoTestsRan);
        let k = classify(&exit(5), "\n----\nRan 0 tests in 0.000s\n\nNO TESTS RAN\n");
        assert_eq!(k, FailureKind::NoTestsRan);
        let k = classify(
            &exit(1),
            "F\n======\nFAIL: test_add (tests.test_add.TestAdd.test_add)\nTraceback:\nAssertionError: -1 != 5\n\nRan 1 test in 0.001s\n\nFAILED (failures=1)\n",
        );
        assert_eq!(k, FailureKind::Assertion);
        let k = classify(
            &exit(1),
            "    def test_custom_repr_single():\n>       x = f()\nE       TypeError: cannot unpack non-iterable type object\n\npysnooper/utils.py:28: TypeError\n1 failed in 0.05s\n",
        );
        assert_eq!(k, FailureKind::Exception("TypeError".into()));
        // A test that imports a missing name at run time, after the runner started tests.
        let k = classify(
            &exit(1),
            "E\n======\nERROR: test_y (t.T.test_y)\nTraceback:\nImportError: cannot import name 'z'\n\nRan 1 test in 0.001s\n\nFAILED (errors=1)\n",
        );
        assert_eq!(k, FailureKind::Exception("ImportError".into()));
        assert_eq!(
            classify(&Termination::TimedOut { killed: false }, ""),
            FailureKind::Timeout
        );
        assert_eq!(
            classify(&exit(1), "FAIL test_pick: expected a\n"),
            FailureKind::Other
        );
    }
}
