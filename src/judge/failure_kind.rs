//! Why a test run failed, read from its report and its output: an assertion, an exception of
//! some type, an import or collection error, a missing interpreter or test runner, no tests at
//! all, a timeout. This is fixci's one failure classifier: the engine's reproduction verdict
//! ([`super::reproduction`], [`super::acceptance`]), the stress runner's failure matching and
//! replay's `--agent gold` qualification all judge runs with it.
//!
//! A reproduction counts only when it fails for a reason a code fix can address and, with a CI
//! log, for the CI's reason (DESIGN.md section 4): a test that fails on `ModuleNotFoundError` is
//! "fixed" by adding the module, and `No module named pytest` or `command not found` prove
//! nothing about the code.
//!
//! ```
//! use fixci::judge::failure_kind::{classify, FailureKind};
//! let ci = classify("FAILED tests/test_a.py::test_x - AssertionError: 3 != 4");
//! let repro = classify("E       KeyError: 'total'\nFAILED tests/test_r.py::test_r - KeyError: 'total'");
//! assert_eq!(ci, FailureKind::Assertion);
//! assert!(repro.confirms_reproduction());
//! assert!(!repro.same_kind_as(&ci));
//! assert!(!classify("ModuleNotFoundError: No module named 'calc'").confirms_reproduction());
//! assert!(matches!(classify("/venv/bin/python: No module named pytest"), FailureKind::MissingRunner { .. }));
//! ```
//!
//! **When did it fail?** An import error is a collection error when the test module never
//! loaded, and the test failing when it was raised inside a test's body. Evidence, strongest
//! first:
//! 1. how the process ended: fixci's timeout, exit 127/126 from a shell (command not found, not
//!    executable);
//! 2. the JUnit report ([`classify_run`] with the report's cases, as
//!    [`crate::runners::outcome::parse_junit`] reads them): pytest writes a collection error as
//!    an `<error message="collection failure">` of a test case named after the module (empty
//!    `classname`), a fixture error as `<error message="failed on setup with ...">`, and an
//!    exception in a test body as a `<failure>` of that test whose message names the type;
//!    unittest's loader (fixci's helper writes its JUnit) reports an unimportable module as a
//!    test of class `unittest.loader._FailedTest` and a `setUpClass`/`setUpModule` error as an
//!    `<error>` of `setUpClass (module.Class)`; an empty report means no test ran;
//! 3. the output alone ([`classify`]): `ERROR collecting`, `ImportError while importing test
//!    module`, `errors during collection`, `INTERNALERROR`, `ERROR at setup of`, `fixture '...'
//!    not found`, unittest's `Failed to import test module`/`_FailedTest` and `ERROR:
//!    setUpClass (...)` are collection or fixture errors; an `ImportError`,
//!    `ModuleNotFoundError` or `SyntaxError` in a test's failure block (pytest's `FAILED
//!    path::test - ...` and `N failed`, unittest's `ERROR: test_x (module.Class.test_x)` with
//!    `Ran N tests`, N > 0) is that test failing with that exception; one with no sign that a
//!    test ran (a bare traceback) is a collection error.
//!
//! Missing runner (its own kind, never a reproduction; replay calls it an `infra-error`):
//! `python: No module named pytest` (the interpreter's own message for `-m`, unquoted, unlike a
//! test's `No module named 'x'`), fixci's Python helper's `pytest is not installed for ...`,
//! `can't open file` for a script that is not a test file, shells' `command not found`,
//! `sh: 1: x: not found`, `env: 'x': No such file or directory`, `Permission denied`, pytest's
//! `error: unrecognized arguments` (a plugin the command needs is not installed), cargo's
//! `no such command`, Maven's `No plugin found for prefix`.
//!
//! Other runners, from their output: Rust (`cargo test`: `panicked at`, `assertion ... failed`,
//! `could not compile`), Go (`--- FAIL`, `panic:`, `[build failed]`, `[setup failed]`, `no test
//! files`, `no tests to run`, `test timed out after`), JavaScript (jest, vitest, mocha:
//! `expect(received)`, chai's and node's `AssertionError`, `Test suite failed to run`, `Cannot
//! find module`, `No tests found`, `No test files found`, `Exceeded timeout`), PHPUnit (`Failed
//! asserting that`, `No tests executed!`, `PHP Parse error`), RSpec (`expected: ... got:`, `An
//! error occurred while loading`, `0 examples`), Maven/JUnit (`AssertionFailedError`,
//! `expected: <..> but was: <..>`, `COMPILATION ERROR`, `No tests were executed`).

use std::fmt;
use std::sync::OnceLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::process::Termination;
use crate::runners::outcome::{Case, CaseOutcome};

/// Why one test run failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum FailureKind {
    /// An assertion failed: Python's `AssertionError` or pytest's `assert` rewriting,
    /// unittest's `assertEqual`, Rust's `assert!`/`assert_eq!`, Go's `t.Error`/`t.Fatal`
    /// (a `--- FAIL` without a panic), jest/vitest `expect`, chai/node `AssertionError`,
    /// PHPUnit `Failed asserting`, RSpec expectations, JUnit `AssertionFailedError`.
    Assertion,
    /// An exception (or panic) other than an assertion raised while a test ran, by its type's
    /// short name, e.g. `KeyError`, `TypeError`, `ImportError` (an import in the test's body),
    /// `NullPointerException`, `NoMethodError`, or `panic` for a Rust or Go panic that is not
    /// an assertion.
    Exception {
        /// The type's last path segment (`java.lang.NullPointerException` gives
        /// `NullPointerException`).
        type_name: String,
    },
    /// The test never ran its body: an import, load, compile or collection error of the test
    /// module, a syntax error in it, a fixture (set-up) error, a missing test file.
    ImportOrCollection {
        /// The line of output that shows it (trimmed, at most 200 characters): the cause when
        /// the output names one (`ModuleNotFoundError: No module named 'six'`), else the
        /// runner's collection line.
        why: String,
    },
    /// The test command cannot run at all: the interpreter, the test runner, a runner plugin
    /// or the runner script is missing or not executable (exit 127/126, `No module named
    /// pytest`, `command not found`).
    MissingRunner {
        /// The line of output that says so (trimmed, at most 200 characters), or the exit
        /// code's meaning.
        why: String,
    },
    /// The runner found or selected no test.
    NoTestsRan,
    /// The test ran out of time (the runner's own timeout, or fixci's).
    Timeout,
    /// A failure whose reason the output does not show (e.g. a bare `exit 1`).
    Unknown,
}

/// Python's import-time exception types: raised at collection they mean the test module never
/// loaded; raised in a test's body they are that test failing, but a missing module or name is
/// "fixed" by adding it, so they never confirm a reproduction either way.
const IMPORT_TYPES: [&str; 5] = [
    "ModuleNotFoundError",
    "ImportError",
    "SyntaxError",
    "IndentationError",
    "TabError",
];

impl FailureKind {
    /// True when a failure of this kind may confirm a reproduction: an assertion, a timeout,
    /// an unrecognised failure, or an exception that is not an import-time type (see
    /// [`FailureKind::is_import_error`]). Never an import or collection error, a missing
    /// runner or "no tests ran", which say nothing about the code under test.
    pub fn confirms_reproduction(&self) -> bool {
        self.ran_the_test() && !self.is_import_error()
    }

    /// True when the test ran and failed (whatever the exception): every kind but
    /// [`FailureKind::ImportOrCollection`], [`FailureKind::MissingRunner`] and
    /// [`FailureKind::NoTestsRan`]. Replay counts such a run as the fail-to-pass test failing
    /// (an upstream test may import a name its fix adds, inside its body).
    pub fn ran_the_test(&self) -> bool {
        !matches!(
            self,
            FailureKind::ImportOrCollection { .. }
                | FailureKind::MissingRunner { .. }
                | FailureKind::NoTestsRan
        )
    }

    /// True for an [`FailureKind::Exception`] of an import-time type (`ImportError`,
    /// `ModuleNotFoundError`, `SyntaxError`, `IndentationError`, `TabError`) raised in a
    /// test's body.
    pub fn is_import_error(&self) -> bool {
        matches!(self, FailureKind::Exception { type_name } if IMPORT_TYPES.contains(&type_name.as_str()))
    }

    /// A short stable label, as replay records count failures by it: `assertion`,
    /// `exception:<Type>`, `collection-error`, `missing-runner`, `no-tests-ran`, `timeout`,
    /// `failed` (unrecognised).
    pub fn label(&self) -> String {
        match self {
            FailureKind::Assertion => "assertion".into(),
            FailureKind::Exception { type_name } => format!("exception:{type_name}"),
            FailureKind::ImportOrCollection { .. } => "collection-error".into(),
            FailureKind::MissingRunner { .. } => "missing-runner".into(),
            FailureKind::NoTestsRan => "no-tests-ran".into(),
            FailureKind::Timeout => "timeout".into(),
            FailureKind::Unknown => "failed".into(),
        }
    }

    /// True when a reproduction failing with `self` fails for the same reason as the CI
    /// failure `ci`: both assertions, both timeouts, or exceptions of the same type name
    /// (compared without case). When either side is [`FailureKind::Unknown`] there is nothing
    /// to compare and the answer is true; a kind that cannot confirm a reproduction never
    /// matches.
    pub fn same_kind_as(&self, ci: &FailureKind) -> bool {
        if !self.confirms_reproduction() {
            return false;
        }
        match (self, ci) {
            (FailureKind::Unknown, _) | (_, FailureKind::Unknown) => true,
            (FailureKind::Assertion, FailureKind::Assertion) => true,
            (FailureKind::Timeout, FailureKind::Timeout) => true,
            (FailureKind::Exception { type_name: a }, FailureKind::Exception { type_name: b }) => {
                a.eq_ignore_ascii_case(b)
            }
            // A CI failure that itself never ran a test tells nothing about the kind.
            (
                _,
                FailureKind::ImportOrCollection { .. }
                | FailureKind::MissingRunner { .. }
                | FailureKind::NoTestsRan,
            ) => true,
            _ => false,
        }
    }
}

impl fmt::Display for FailureKind {
    /// `an assertion failure`, `a KeyError`, `an import or collection error (<why>)`, `a
    /// missing interpreter or test runner (<why>)`, `no test ran`, `a timeout`, `an
    /// unrecognised failure`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureKind::Assertion => write!(f, "an assertion failure"),
            FailureKind::Exception { type_name } => {
                let article = if type_name
                    .chars()
                    .next()
                    .is_some_and(|c| "AEIOUaeiou".contains(c))
                {
                    "an"
                } else {
                    "a"
                };
                write!(f, "{article} {type_name}")
            }
            FailureKind::ImportOrCollection { why } => {
                write!(f, "an import or collection error (`{why}`)")
            }
            FailureKind::MissingRunner { why } => {
                write!(f, "a missing interpreter or test runner (`{why}`)")
            }
            FailureKind::NoTestsRan => write!(f, "no test ran"),
            FailureKind::Timeout => write!(f, "a timeout"),
            FailureKind::Unknown => write!(f, "an unrecognised failure"),
        }
    }
}

/// Classifies one failing run from everything fixci has: how it ended, its report's test
/// cases when the runner wrote a readable one (`cases`, see
/// [`crate::runners::outcome::parse_junit`]) and its combined output. Precedence: fixci's
/// timeout; exit 127/126 ([`FailureKind::MissingRunner`]); the report when it decides (a
/// collection or fixture error, a failing test, or no test at all); else [`classify`] of the
/// output.
pub fn classify_run(
    output: &str,
    termination: &Termination,
    cases: Option<&[Case]>,
) -> FailureKind {
    match termination {
        Termination::TimedOut { .. } => return FailureKind::Timeout,
        Termination::Exited { code: 126 | 127 } => return exit_code_kind(output, termination),
        _ => {}
    }
    if let Some(k) = cases.and_then(|c| classify_cases(c, output)) {
        return k;
    }
    classify(output)
}

/// Exit 127 (command not found) and 126 (not executable) from a shell: the line saying so.
fn exit_code_kind(output: &str, termination: &Termination) -> FailureKind {
    if let Some((why, true)) = output.lines().find_map(missing) {
        return FailureKind::ImportOrCollection { why };
    }
    let why = output
        .lines()
        .find_map(missing_runner)
        .unwrap_or_else(|| match termination {
            Termination::Exited { code: 126 } => {
                "exit 126: the command is not executable".to_string()
            }
            _ => "exit 127: the command or interpreter was not found".to_string(),
        });
    FailureKind::MissingRunner { why }
}

/// The kind a JUnit report shows, when it decides: `None` when every case passed or was
/// skipped (the run failed for a reason the report does not show).
fn classify_cases(cases: &[Case], output: &str) -> Option<FailureKind> {
    if cases.is_empty() {
        return Some(FailureKind::NoTestsRan);
    }
    let failing = || {
        cases
            .iter()
            .filter(|c| matches!(c.outcome, CaseOutcome::Failed | CaseOutcome::Error))
    };
    if let Some(c) = failing().find(|c| is_collection_case(c)) {
        let why = cause(&c.text).or_else(|| cause(output)).unwrap_or_else(|| {
            let msg = c.message.as_deref().unwrap_or("collection failure");
            short(&format!("{msg} ({})", c.id()))
        });
        return Some(FailureKind::ImportOrCollection { why });
    }
    let c = failing().next()?;
    let from_message = c.message.as_deref().map(call_message_kind);
    let kind = match from_message {
        Some(k) if k != FailureKind::Unknown => k,
        _ => last_line_kind(&c.text.lines().collect::<Vec<_>>()),
    };
    Some(kind)
}

/// A report case that stands for a module that did not load or a set-up that failed.
fn is_collection_case(c: &Case) -> bool {
    let msg = c.message.as_deref().unwrap_or("");
    c.outcome == CaseOutcome::Error
        && (msg == "collection failure"
            || msg.starts_with("failed on setup with")
            || msg.starts_with("failed on teardown with")
            || c.classname.starts_with("unittest.loader._FailedTest")
            || c.classname
                .starts_with("unittest.loader.ModuleImportFailure")
            || [
                "setUpClass (",
                "setUpModule (",
                "tearDownClass (",
                "tearDownModule (",
            ]
            .iter()
            .any(|h| c.id().contains(h)))
}

/// Classifies a failing run's combined output. Precedence, strongest first: a missing
/// interpreter or test runner, then import or collection errors (a run that could not load its
/// test proves nothing, whatever else it printed; an import-time exception counts as one when
/// no test is shown to have run), then "no tests ran", then a timeout, then the failure itself
/// (the runner's summary line when it has one, else the last exception or assertion line),
/// else [`FailureKind::Unknown`].
pub fn classify(output: &str) -> FailureKind {
    let lines: Vec<&str> = output.lines().collect();
    if let Some(why) = lines.iter().find_map(|l| missing_runner(l)) {
        return FailureKind::MissingRunner { why };
    }
    if let Some(why) = lines.iter().find_map(|l| collection_error(l)) {
        return FailureKind::ImportOrCollection {
            why: cause(output).unwrap_or(why),
        };
    }
    if !a_test_ran(&lines) {
        if let Some(why) = import_cause(output) {
            return FailureKind::ImportOrCollection { why };
        }
    }
    if no_tests_ran(&lines) {
        return FailureKind::NoTestsRan;
    }
    if lines.iter().any(|l| timeout_re().is_match(l)) {
        return FailureKind::Timeout;
    }
    // A runner's one-line summary of the failure names its reason best.
    for l in &lines {
        if let Some(c) = summary_re().captures(l) {
            let k = call_message_kind(c.name("msg").map_or("", |m| m.as_str()));
            if k != FailureKind::Unknown {
                return k;
            }
        }
    }
    last_line_kind(&lines)
}

/// The last failure line's kind: in a chained traceback the last exception is the one raised.
fn last_line_kind(lines: &[&str]) -> FailureKind {
    lines
        .iter()
        .rev()
        .map(|l| classify_line(l))
        .find(|k| *k != FailureKind::Unknown)
        .unwrap_or(FailureKind::Unknown)
}

/// Classifies a run from its output and exit code: exit 127 (command not found) and 126 (not
/// executable) from a shell are [`FailureKind::MissingRunner`] whatever the output says;
/// else [`classify`].
pub fn classify_exit(output: &str, exit_code: Option<i32>) -> FailureKind {
    match exit_code {
        Some(code) => classify_run(output, &Termination::Exited { code }, None),
        None => classify(output),
    }
}

/// Classifies one failure message, such as the message part of a CI failure signature
/// (`AssertionError: N != N`, `KeyError: 'x'`, `assert N == N`,
/// `expect(received).toBe(expected)`). A message alone does not say when it was raised, so an
/// import-time exception is an [`FailureKind::ImportOrCollection`].
pub fn classify_message(message: &str) -> FailureKind {
    let m = message.trim();
    if let Some(why) = missing_runner(m) {
        return FailureKind::MissingRunner { why };
    }
    if let Some(why) = collection_error(m).or_else(|| import_cause(m)) {
        return FailureKind::ImportOrCollection { why };
    }
    call_message_kind(m)
}

/// The line of `output` that names a failing run's failure of kind `kind` (as
/// [`classify_run`] judged it), for records and reports, at most 200 characters: the `why` of
/// an import or collection error or of a missing runner; for an assertion, an exception or a
/// timeout, the runner's short summary message of that kind (`KeyError: 'b'`), else the last
/// line of that kind (`AssertionError: 2 != 3`); `None` when no line shows it (no test ran, an
/// unrecognised failure, fixci's own timeout).
pub fn failure_line(output: &str, kind: &FailureKind) -> Option<String> {
    match kind {
        FailureKind::ImportOrCollection { why } | FailureKind::MissingRunner { why } => {
            return Some(why.clone());
        }
        FailureKind::NoTestsRan | FailureKind::Unknown => return None,
        FailureKind::Assertion | FailureKind::Exception { .. } | FailureKind::Timeout => {}
    }
    let lines: Vec<&str> = output.lines().collect();
    let summary = lines.iter().find_map(|l| {
        let msg = summary_re().captures(l)?.name("msg")?.as_str();
        (call_message_kind(msg) == *kind).then(|| short(msg))
    });
    summary.or_else(|| {
        lines
            .iter()
            .rev()
            .find(|l| {
                classify_line(l) == *kind
                    || (*kind == FailureKind::Timeout && timeout_re().is_match(l))
            })
            .map(|l| {
                let t = l.trim();
                short(t.strip_prefix("E ").map_or(t, str::trim_start))
            })
    })
}

/// A message of a failure raised while a test ran: an assertion, an exception (import-time
/// types included), a panic, a timeout; `Unknown` else.
fn call_message_kind(message: &str) -> FailureKind {
    let m = message.trim();
    if m.is_empty() {
        return FailureKind::Unknown;
    }
    if timeout_re().is_match(m) {
        return FailureKind::Timeout;
    }
    if m.starts_with("assert ") || m == "assert" || assertion_re().is_match(m) {
        return FailureKind::Assertion;
    }
    if let Some(c) = exception_re().captures(m) {
        return exception_kind(&c["name"]);
    }
    if panic_re().is_match(m) {
        return FailureKind::Exception {
            type_name: "panic".into(),
        };
    }
    FailureKind::Unknown
}

/// One line of a run's output, as a failure line; `Unknown` when it is none.
fn classify_line(line: &str) -> FailureKind {
    let l = line.trim_end();
    // pytest's `E   ` lines carry the exception or the rewritten assert.
    let body = l
        .trim_start()
        .strip_prefix("E ")
        .map(str::trim_start)
        .unwrap_or(l.trim_start());
    if body.starts_with("assert ") && l.trim_start().starts_with("E ") {
        return FailureKind::Assertion;
    }
    if assertion_re().is_match(l) {
        return FailureKind::Assertion;
    }
    if let Some(c) = exception_line_re().captures(body) {
        return exception_kind(&c["name"]);
    }
    if panic_re().is_match(l) {
        return FailureKind::Exception {
            type_name: "panic".into(),
        };
    }
    if go_fail_re().is_match(l) {
        return FailureKind::Assertion;
    }
    FailureKind::Unknown
}

/// An exception type name raised while a test ran, as a kind: assertion types are
/// [`FailureKind::Assertion`], JVM class-loading errors [`FailureKind::ImportOrCollection`],
/// timeouts [`FailureKind::Timeout`], the rest (Python's import-time types included)
/// [`FailureKind::Exception`].
fn exception_kind(name: &str) -> FailureKind {
    let short = name
        .rsplit(['.', ':', '\\'])
        .find(|s| !s.is_empty())
        .unwrap_or(name);
    let lower = short.to_ascii_lowercase();
    if lower.contains("assert") || lower == "expectationnotmeterror" || lower == "comparisonfailure"
    {
        return FailureKind::Assertion;
    }
    if matches!(
        short,
        "LoadError" | "NoClassDefFoundError" | "ClassNotFoundException"
    ) {
        return FailureKind::ImportOrCollection {
            why: format!("{short} raised"),
        };
    }
    if lower.contains("timeout") || lower.contains("timedout") {
        return FailureKind::Timeout;
    }
    FailureKind::Exception {
        type_name: short.to_string(),
    }
}

fn short(s: &str) -> String {
    s.trim().chars().take(200).collect()
}

/// The cause of a collection or set-up error in `text`: [`import_cause`], else pytest's
/// `fixture 'x' not found` line.
fn cause(text: &str) -> Option<String> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(r"(?m)^\s*(?:E\s+)?(fixture '[^']*' not found.*)$")
            .expect("constant pattern compiles")
    });
    import_cause(text).or_else(|| re.captures(text).map(|c| short(&c[1])))
}

/// The last Python import-time exception line of `text` (`E   ` prefix removed), shortened:
/// the cause of a collection error (unittest prints its own `ImportError: Failed to import
/// test module` before the real one).
fn import_cause(text: &str) -> Option<String> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(
            r"(?m)^\s*(?:E\s+)?((?:ModuleNotFoundError|ImportError|SyntaxError|IndentationError|TabError)(?::\s.*|:?\s*$)|No module named '.*)",
        )
        .expect("constant pattern compiles")
    });
    re.captures_iter(text).last().map(|c| short(&c[1]))
}

/// True when the output shows a test that ran (pytest's `FAILED path::test` and `N failed`,
/// unittest's `FAIL:`/`ERROR:` of a test method with `Ran N tests`, N > 0, cargo's and go's
/// failing tests).
fn a_test_ran(lines: &[&str]) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(concat!(
            r"^(?:FAILED|PASSED) \S+::\S+|\b[1-9]\d* (?:failed|passed)\b",
            r"|^Ran [1-9]\d* tests? in\b|^(?:FAIL|ERROR): test\w* \(",
            r"|^\s*--- FAIL: |^test \S+ \.\.\. FAILED$",
        ))
        .expect("constant pattern compiles")
    });
    lines.iter().any(|l| re.is_match(l.trim_end()))
}

/// The line, shortened, when it shows that the test command could not run at all: the
/// interpreter, the runner, a runner plugin or the runner script is missing.
fn missing_runner(line: &str) -> Option<String> {
    missing(line).filter(|(_, test)| !test).map(|(l, _)| l)
}

/// A line saying that something the command runs is missing, shortened, and whether that
/// thing is a test file or test module (then the test is missing, not the runner: a
/// collection error).
fn missing(line: &str) -> Option<(String, bool)> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(concat!(
            // `python -m X` without X: the interpreter's message, the name unquoted.
            r"^(?:\S*: )?No module named (?P<module>[A-Za-z_][\w.]*)\s*$",
            // fixci's Python helper without pytest.
            r"|^pytest is not installed for\b",
            r"|^\S*: can't open file '(?P<script>[^']*)'",
            // Shells: a missing or non-executable interpreter, runner or script.
            r"|^(?:\S*/)?(?:ba|da|z|k)?sh: (?:\d+: |line \d+: )?(?:cannot open )?(?P<opened>[^:]+): (?:not found|No such file|Permission denied)",
            r"|: command not found\b|\bcommand not found:|^env: .*: No such file or directory$",
            // A runner plugin or subcommand that is not installed.
            r"|\berror: unrecognized arguments:|\berror: no such command\b|\bNo plugin found for prefix\b",
        ))
        .expect("constant pattern compiles")
    });
    let t = line.trim();
    let c = re.captures(t)?;
    // Python 2's `ImportError: No module named x` is unquoted too: an exception, not the
    // interpreter's message.
    let prefix = t.split_once(": ").map_or("", |(p, _)| p);
    if c.name("module").is_some() && (prefix.ends_with("Error") || prefix.ends_with("Exception"))
    {
        return None;
    }
    let target = c
        .name("script")
        .or_else(|| c.name("opened"))
        .map(|s| s.as_str().trim().to_string())
        .or_else(|| {
            c.name("module")
                .map(|m| m.as_str().replace('.', "/") + ".py")
        });
    let test = target.is_some_and(|p| crate::runners::looks_like_test(&p));
    Some((short(t), test))
}

/// The line, shortened, when it shows that the test could not be loaded or set up: a
/// collection, load, compile or fixture error (Python's import-time exceptions alone are
/// judged by [`a_test_ran`] in [`classify`]).
fn collection_error(line: &str) -> Option<String> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(concat!(
            // pytest collection and fixtures, unittest's loader and class/module fixtures.
            r"\bERROR collecting\b|errors? during collection|\bImportError while importing test module\b",
            r"|\bERROR at (setup|teardown) of\b|\bfixture '[^']*' not found\b",
            r"|\bERROR: (file or directory not found|not found):",
            r"|\bFailed to import test module\b|\bunittest\.loader\.(_FailedTest|ModuleImportFailure)\b",
            r"|^ERROR: (setUpClass|setUpModule|tearDownClass|tearDownModule) \(",
            r"|\bINTERNALERROR>",
            // Rust and Go builds.
            r"|\berror: could not compile\b|^error\[E\d+\]",
            r"|\[build failed\]|\[setup failed\]|\bcannot find package\b|\bno required module provides package\b",
            r"|^\S+\.go:\d+:\d+: (undefined|cannot use|syntax error)",
            // JavaScript.
            r"|Test suite failed to run|\bCannot find module\b|\bERR_MODULE_NOT_FOUND\b",
            r"|\bFailed to (load url|resolve import)\b|\bError: No test suite found in file\b",
            // PHP, Ruby, Java.
            r"|\bPHP (Parse|Fatal) error\b|\bClass \S+ (could not be found|not found)\b|\bCannot open file\b",
            r"|\bAn error occurred while loading\b|\bLoadError\b|\bcannot load such file\b",
            r"|\bCOMPILATION ERROR\b|\bCompilation failure\b|\bNoClassDefFoundError\b|\bClassNotFoundException\b",
        ))
        .expect("constant pattern compiles")
    });
    let t = line.trim();
    if re.is_match(t) {
        return Some(short(t));
    }
    // A missing test file or test module (the runner itself is there).
    missing(t).filter(|(_, test)| *test).map(|(l, _)| l)
}

/// True when a run's output says that no test ran (pytest's `no tests ran`, unittest's
/// `Ran 0 tests`, go's `no tests to run`, jest's `No tests found`, ...), and does not also show
/// a test that ran and failed. Python 3.11's unittest exits 0 after `Ran 0 tests`, so a passing
/// run must be checked too.
pub fn says_no_tests_ran(output: &str) -> bool {
    no_tests_ran(&output.lines().collect::<Vec<_>>())
}

fn no_tests_ran(lines: &[&str]) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(concat!(
            r"(?i)\bno tests ran\b|^collected 0 items\b|^Ran 0 tests\b",
            r"|no tests to run|\[no test files\]|\bno test files\b",
            r"|No tests found, exiting with code|No test files found|No tests found related to",
            r"|Your test suite must contain at least one test|\bError: No test files found\b",
            r"|No tests executed!|^No examples found\.|^0 examples, 0 failures",
            r"|No tests were executed!|No tests to run\.|^\s*0 passing\b",
        ))
        .expect("constant pattern compiles")
    });
    let said = lines.iter().any(|l| re.is_match(l.trim()));
    if !said {
        return false;
    }
    // cargo prints `running 0 tests` for other test binaries next to a failing one; pytest
    // and unittest print one summary. A real failure next to the words wins.
    !lines.iter().any(|l| {
        let t = l.trim();
        t.starts_with("FAILED ")
            || t.starts_with("--- FAIL")
            || t.starts_with("test result: FAILED")
            || t.contains("panicked at")
            || (t.ends_with(" failing") && !t.starts_with("0 "))
    })
}

fn timeout_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(concat!(
            r"\bFailed: Timeout >|\+{5,} Timeout \+{5,}|\bpanic: test timed out after\b",
            r"|\bExceeded timeout of \d+ ?ms\b|\bTest timed out in \d+ ?ms\b|\bTimeout of \d+ms exceeded\b",
            r"|\bhas been running for over \d+ seconds\b.*\bTIMEOUT\b|^\s*TIMEOUT \[",
            r"|\bTestTimedOutException\b|\bexecution timed out\b",
        ))
        .expect("constant pattern compiles")
    })
}

/// Runner summary lines whose message part names the reason: pytest's short summary.
fn summary_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^(?:FAILED|ERROR) \S+ - (?P<msg>.+)$").expect("constant pattern compiles")
    })
}

/// Assertion messages as the runners print them.
fn assertion_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(concat!(
            r"\bAssertionError\b|\bAssertionFailedError\b|\bComparisonFailure\b|\bExpectationNotMetError\b",
            r"|\bassertion (`[^`]*` )?failed\b|\bassertion failed:|\bassertion `left (==|!=) right` failed",
            r"|\bexpect\(received\)|\bexpect\(jest\.fn\(\)\)|^\s*Expected( value)?:\s|^\s*Received( value)?:\s",
            r"|\bFailed asserting that\b|^\s*expected: .*\n?|^\s*got: |\bexpected .* to (eq|be|include|equal|match|have|raise)\b",
            r"|\bexpected: <.*> but was: <.*>|\bexpected:<.*> but was:<.*>|\bDID NOT RAISE\b",
        ))
        .expect("constant pattern compiles")
    })
}

/// An exception type at the start of a message: `KeyError: 'x'`, `java.lang.IllegalStateException`,
/// `TypeError [ERR_X]: ...`.
fn exception_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^(?:Uncaught |thrown: )?(?P<name>(?:[A-Za-z_][\w$]*(?:\.|::|\\))*[A-Z][\w$]*(?:Error|Exception|Exit|Interrupt|Failure|Fault|Panic))\b(?:\s*\[[^\]]*\])?(?::|$|\s)")
            .expect("constant pattern compiles")
    })
}

/// A line that states an exception: the type at the start of the line, followed by `:` or the
/// end of the line (Python tracebacks, jest, RSpec's indented type lines, JUnit's `Caused by:`).
fn exception_line_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^(?:Caused by: |Uncaught |PHP Fatal error:\s+Uncaught )?(?P<name>(?:[A-Za-z_][\w$]*(?:\.|::|\\))*[A-Z][\w$]*(?:Error|Exception|Exit|Interrupt|Failure|Fault))(?:\s*\[[^\]]*\])?(?::\s|:$|$)")
            .expect("constant pattern compiles")
    })
}

/// A Rust or Go panic.
fn panic_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"\bpanicked at\b|^panic: ").expect("constant pattern compiles"))
}

/// Go's failing-test line without a panic: the test called `t.Error`/`t.Fatal`.
fn go_fail_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^\s*--- FAIL: ").expect("constant pattern compiles"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exc(t: &str) -> FailureKind {
        FailureKind::Exception {
            type_name: t.into(),
        }
    }

    #[test]
    fn python_pytest_and_unittest_failures() {
        let pytest_assert = "\
    def test_total():
>       assert total([1, 2]) == 4
E       assert 3 == 4
E        +  where 3 = total([1, 2])

tests/test_calc.py:5: AssertionError
=========================== short test summary info ============================
FAILED tests/test_calc.py::test_total - assert 3 == 4
============================== 1 failed in 0.02s ===============================";
        assert_eq!(classify(pytest_assert), FailureKind::Assertion);
        let pytest_key = "\
    def test_lookup():
>       assert lookup('a') == 1
E       KeyError: 'a'

calc.py:3: KeyError
FAILED tests/test_calc.py::test_lookup - KeyError: 'a'";
        assert_eq!(classify(pytest_key), exc("KeyError"));
        let unittest_assert = "\
F
======================================================================
FAIL: test_total (test_calc.T.test_total)
----------------------------------------------------------------------
Traceback (most recent call last):
  File \"/r/test_calc.py\", line 6, in test_total
    self.assertEqual(total([1, 2]), 4)
AssertionError: 3 != 4

----------------------------------------------------------------------
Ran 1 test in 0.000s

FAILED (failures=1)";
        assert_eq!(classify(unittest_assert), FailureKind::Assertion);
        let chained = "\
Traceback (most recent call last):
  File \"x.py\", line 2, in f
KeyError: 'a'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File \"x.py\", line 4, in g
ValueError: bad input
Ran 1 test in 0.001s
FAILED (errors=1)";
        assert_eq!(classify(chained), exc("ValueError"));
    }

    #[test]
    fn python_collection_errors_never_confirm() {
        for out in [
            "ImportError while importing test module '/r/tests/test_x.py'.\nE   ModuleNotFoundError: No module named 'calc.extra'\n!!!!!!!!!!!!!!!!!!!! Interrupted: 1 error during collection !!!!!!!!!!!!!!!!!!!!",
            "E\n======================================================================\nERROR: test_x (unittest.loader._FailedTest.test_x)\nImportError: Failed to import test module: test_x\nRan 1 test in 0.000s\nFAILED (errors=1)",
            "  File \"/r/tests/test_x.py\", line 3\n    def f(:\n          ^\nSyntaxError: invalid syntax",
            "E       fixture 'client' not found\n>       available fixtures: cache, capfd",
            "==================================== ERRORS ====================================\n__________________________ ERROR at setup of test_db ___________________________",
            "python3: can't open file '/r/tests/test_missing.py': [Errno 2] No such file or directory",
            "ERROR: file or directory not found: tests/test_gone.py\n\nno tests ran in 0.01s",
        ] {
            let k = classify(out);
            assert!(
                matches!(k, FailureKind::ImportOrCollection { .. }),
                "{out:?} gave {k:?}"
            );
            assert!(!k.confirms_reproduction());
        }
        // A ModuleNotFoundError raised in the test body is that test failing, but a missing
        // module still never confirms a reproduction.
        let body = "    def test_x():\n>       import calc.extra\nE       ModuleNotFoundError: No module named 'calc.extra'\nFAILED tests/test_x.py::test_x - ModuleNotFoundError: No module named 'calc.extra'";
        assert_eq!(classify(body), exc("ModuleNotFoundError"));
        assert!(classify(body).ran_the_test());
        assert!(!classify(body).confirms_reproduction());
        // Missing interpreters and runners are their own kind, which never confirms either.
        for out in [
            "/usr/bin/python3: No module named pytest",
            "sh: 1: pytest: not found",
            "bash: line 1: pytest: command not found",
        ] {
            let k = classify(out);
            assert!(
                matches!(k, FailureKind::MissingRunner { .. }),
                "{out:?} gave {k:?}"
            );
            assert!(!k.confirms_reproduction() && !k.ran_the_test());
        }
    }

    #[test]
    fn no_tests_ran_in_every_runner() {
        for out in [
            "collected 0 items\n\n============================ no tests ran in 0.01s =============================",
            "\n----------------------------------------------------------------------\nRan 0 tests in 0.000s\n\nNO TESTS RAN",
            "ok  \texample.com/m\t0.002s [no tests to run]\ntesting: warning: no tests to run",
            "?   \texample.com/m\t[no test files]",
            "No tests found, exiting with code 1\nRun with `--passWithNoTests` to exit with code 0",
            "No test files found, exiting with code 1",
            "No tests executed!",
            "No examples found.\n\nFinished in 0.0002 seconds\n0 examples, 0 failures",
            "[ERROR] Failed to execute goal org.apache.maven.plugins:maven-surefire-plugin:3.2.5:test: No tests were executed!",
        ] {
            assert_eq!(classify(out), FailureKind::NoTestsRan, "{out:?}");
        }
        // cargo's other test binaries print `running 0 tests` beside the failing one.
        let cargo = "running 0 tests\n\ntest result: ok. 0 passed\n\nrunning 1 test\ntest t ... FAILED\n\nthread 't' panicked at src/lib.rs:9:5:\nassertion `left == right` failed\n  left: 3\n right: 4\ntest result: FAILED. 0 passed; 1 failed";
        assert_eq!(classify(cargo), FailureKind::Assertion);
    }

    #[test]
    fn rust_go_js_php_ruby_java_failures() {
        assert_eq!(
            classify(
                "thread 'tests::t' panicked at src/lib.rs:9:5:\ncalled `Option::unwrap()` on a `None` value\ntest result: FAILED."
            ),
            exc("panic")
        );
        assert!(matches!(
            classify(
                "error[E0425]: cannot find function `total` in this scope\nerror: could not compile `calc` (lib test) due to 1 previous error"
            ),
            FailureKind::ImportOrCollection { .. }
        ));
        assert_eq!(
            classify(
                "=== RUN   TestTotal\n    calc_test.go:9: total = 3, want 4\n--- FAIL: TestTotal (0.00s)\nFAIL\nFAIL\texample.com/calc\t0.002s"
            ),
            FailureKind::Assertion
        );
        assert_eq!(
            classify(
                "--- FAIL: TestMap (0.00s)\npanic: assignment to entry in nil map [recovered]\n\tpanic: assignment to entry in nil map"
            ),
            exc("panic")
        );
        assert!(matches!(
            classify(
                "# example.com/calc [example.com/calc.test]\n./calc_test.go:9:9: undefined: Total\nFAIL\texample.com/calc [build failed]"
            ),
            FailureKind::ImportOrCollection { .. }
        ));
        assert_eq!(
            classify("panic: test timed out after 30s\nrunning tests:\n\tTestHang (30s)"),
            FailureKind::Timeout
        );
        assert_eq!(
            classify(
                "  ● total › adds\n\n    expect(received).toBe(expected) // Object.is equality\n\n    Expected: 4\n    Received: 3\n\n      3 | test('adds', () => {\n    > 4 |   expect(total([1, 2])).toBe(4);"
            ),
            FailureKind::Assertion
        );
        assert_eq!(
            classify(
                "  ● total › adds\n\n    TypeError: Cannot read properties of undefined (reading 'x')\n\n      at Object.<anonymous> (src/calc.test.js:4:10)"
            ),
            exc("TypeError")
        );
        assert!(matches!(
            classify(
                " FAIL  src/calc.test.js\n  ● Test suite failed to run\n\n    Cannot find module './calc' from 'src/calc.test.js'"
            ),
            FailureKind::ImportOrCollection { .. }
        ));
        assert_eq!(
            classify(
                " FAIL  src/calc.test.ts > adds\nAssertionError: expected 3 to be 4 // Object.is equality\n ❯ src/calc.test.ts:4:25"
            ),
            FailureKind::Assertion
        );
        assert_eq!(
            classify(
                "  1) total\n       adds:\n\n      AssertionError [ERR_ASSERTION]: 3 == 4\n      + expected - actual"
            ),
            FailureKind::Assertion
        );
        assert_eq!(
            classify(
                "  Error: Timeout of 2000ms exceeded. For async tests and hooks, ensure \"done()\" is called"
            ),
            FailureKind::Timeout
        );
        assert_eq!(
            classify(
                "There was 1 failure:\n\n1) CalcTest::testTotal\nFailed asserting that 3 matches expected 4.\n\n/r/tests/CalcTest.php:9\n\nFAILURES!"
            ),
            FailureKind::Assertion
        );
        assert_eq!(
            classify(
                "There was 1 error:\n\n1) CalcTest::testTotal\nTypeError: total(): Argument #1 ($xs) must be of type array, null given\n\nERRORS!"
            ),
            exc("TypeError")
        );
        assert_eq!(
            classify(
                "  1) Calc adds\n     Failure/Error: expect(total([1, 2])).to eq(4)\n\n       expected: 4\n            got: 3\n\n       (compared using ==)"
            ),
            FailureKind::Assertion
        );
        assert_eq!(
            classify(
                "  1) Calc adds\n     Failure/Error: total(nil)\n\n     NoMethodError:\n       undefined method `sum' for nil"
            ),
            exc("NoMethodError")
        );
        assert!(matches!(
            classify(
                "An error occurred while loading ./spec/calc_spec.rb.\nFailure/Error: require_relative '../lib/calc'\n\nLoadError:\n  cannot load such file -- /r/lib/calc"
            ),
            FailureKind::ImportOrCollection { .. }
        ));
        assert_eq!(
            classify(
                "[ERROR] CalcTest.total:12 expected: <4> but was: <3>\n[ERROR] Tests run: 1, Failures: 1, Errors: 0, Skipped: 0"
            ),
            FailureKind::Assertion
        );
        assert_eq!(
            classify(
                "[ERROR] CalcTest.total:12 » NullPointer\njava.lang.NullPointerException: Cannot invoke \"java.util.List.size()\"\n\tat Calc.total(Calc.java:5)"
            ),
            exc("NullPointerException")
        );
        assert!(matches!(
            classify(
                "[ERROR] COMPILATION ERROR : \n[ERROR] /r/src/test/java/CalcTest.java:[9,9] cannot find symbol"
            ),
            FailureKind::ImportOrCollection { .. }
        ));
        assert_eq!(classify("something went wrong"), FailureKind::Unknown);
        assert_eq!(classify(""), FailureKind::Unknown);
    }

    #[test]
    fn exit_codes_127_and_126_are_environment_errors() {
        assert!(matches!(
            classify_exit("", Some(127)),
            FailureKind::MissingRunner { .. }
        ));
        assert!(matches!(
            classify_exit("whatever", Some(126)),
            FailureKind::MissingRunner { .. }
        ));
        assert_eq!(
            classify_exit("AssertionError: x", Some(1)),
            FailureKind::Assertion
        );
    }

    #[test]
    fn messages_from_ci_signatures() {
        // Signature messages are masked (`N` for numbers) but keep their type names.
        assert_eq!(
            classify_message("AssertionError: N != N"),
            FailureKind::Assertion
        );
        assert_eq!(classify_message("assert N == N"), FailureKind::Assertion);
        assert_eq!(classify_message("KeyError: 'total'"), exc("KeyError"));
        assert_eq!(
            classify_message("java.lang.IllegalStateException: Failed to load ApplicationContext"),
            exc("IllegalStateException")
        );
        assert_eq!(classify_message("Octokit::Forbidden"), FailureKind::Unknown);
        assert_eq!(classify_message(""), FailureKind::Unknown);
        assert_eq!(
            classify_message("expect(received).toBe(expected) // Object.is equality"),
            FailureKind::Assertion
        );
    }

    #[test]
    fn kinds_compare_as_the_ci_reason() {
        let a = FailureKind::Assertion;
        assert!(a.same_kind_as(&FailureKind::Assertion));
        assert!(!exc("KeyError").same_kind_as(&a));
        assert!(!a.same_kind_as(&exc("KeyError")));
        assert!(exc("KeyError").same_kind_as(&exc("keyerror")));
        assert!(!exc("KeyError").same_kind_as(&exc("TypeError")));
        assert!(FailureKind::Unknown.same_kind_as(&a));
        assert!(exc("KeyError").same_kind_as(&FailureKind::Unknown));
        assert!(!FailureKind::NoTestsRan.same_kind_as(&FailureKind::Unknown));
        assert!(!FailureKind::Timeout.same_kind_as(&a));
        assert_eq!(exc("KeyError").to_string(), "a KeyError");
        assert_eq!(exc("IndexError").to_string(), "an IndexError");
    }

    /// The real outputs and reports of `tests/data/failure_kinds/` (see its README: Python
    /// 3.11.7, pytest 9.2.0): file stem, exit code, label, whether the test ran, whether the
    /// failure confirms a reproduction, and text the kind's line must hold.
    #[test]
    fn real_runs_by_kind() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/failure_kinds/");
        let table: &[(&str, i32, &str, bool, bool, &str)] = &[
            ("pytest_assert", 1, "assertion", true, true, ""),
            ("pytest_exc", 1, "exception:KeyError", true, true, ""),
            (
                "pytest_body_import",
                1,
                "exception:ImportError",
                true,
                false,
                "",
            ),
            (
                "pytest_module_import",
                2,
                "collection-error",
                false,
                false,
                "No module named 'no_such_module_xyz'",
            ),
            (
                "pytest_syntax",
                2,
                "collection-error",
                false,
                false,
                "SyntaxError: invalid syntax",
            ),
            (
                "pytest_fixture",
                1,
                "collection-error",
                false,
                false,
                "fixture 'client' not found",
            ),
            ("pytest_none", 5, "no-tests-ran", false, false, ""),
            ("unittest_assert", 1, "assertion", true, true, ""),
            ("unittest_exc", 1, "exception:KeyError", true, true, ""),
            (
                "unittest_body_import",
                1,
                "exception:ImportError",
                true,
                false,
                "",
            ),
            (
                "unittest_module_import",
                1,
                "collection-error",
                false,
                false,
                "No module named 'no_such_module_xyz'",
            ),
            (
                "unittest_syntax",
                1,
                "collection-error",
                false,
                false,
                "SyntaxError: '(' was never closed",
            ),
            (
                "unittest_setupclass",
                1,
                "collection-error",
                false,
                false,
                "setUpClass (test_setupclass.T)",
            ),
            ("unittest_none", 1, "no-tests-ran", false, false, ""),
            ("unittest_plain_assert", 1, "assertion", true, true, ""),
            (
                "unittest_plain_exc",
                1,
                "exception:KeyError",
                true,
                true,
                "",
            ),
            (
                "unittest_plain_body_import",
                1,
                "exception:ImportError",
                true,
                false,
                "",
            ),
            (
                "unittest_plain_module_import",
                1,
                "collection-error",
                false,
                false,
                "No module named 'no_such_module_xyz'",
            ),
            (
                "unittest_plain_syntax",
                1,
                "collection-error",
                false,
                false,
                "SyntaxError",
            ),
            (
                "unittest_plain_setupclass",
                1,
                "collection-error",
                false,
                false,
                "setUpClass",
            ),
            (
                "missing_pytest",
                1,
                "missing-runner",
                false,
                false,
                "No module named pytest",
            ),
            (
                "missing_pytest_helper",
                3,
                "missing-runner",
                false,
                false,
                "pytest is not installed",
            ),
            (
                "command_not_found_sh",
                127,
                "missing-runner",
                false,
                false,
                "pytestx: not found",
            ),
            (
                "command_not_found_bash",
                127,
                "missing-runner",
                false,
                false,
                "pytestx: command not found",
            ),
            (
                "missing_plugin",
                4,
                "missing-runner",
                false,
                false,
                "unrecognized arguments: --cov",
            ),
            (
                "missing_runner_script",
                2,
                "missing-runner",
                false,
                false,
                "run_tests.py",
            ),
            (
                "missing_test_file_bash",
                127,
                "collection-error",
                false,
                false,
                "tests/test_nope.sh",
            ),
        ];
        for &(stem, code, label, ran, confirms, why) in table {
            let out = std::fs::read_to_string(format!("{dir}{stem}.out")).unwrap();
            let report = std::fs::read_to_string(format!("{dir}{stem}.xml"))
                .ok()
                .map(|x| crate::runners::outcome::parse_junit(&x).unwrap());
            let exit = Termination::Exited { code };
            let mut kinds = vec![("text and exit code", classify_run(&out, &exit, None))];
            if let Some(cases) = &report {
                kinds.push(("report", classify_run(&out, &exit, Some(cases))));
                // The report decides on its own: the output adds nothing.
                kinds.push(("report alone", classify_run("", &exit, Some(cases))));
            }
            if code != 127 {
                kinds.push(("text alone", classify(&out)));
            }
            for (how, k) in kinds {
                assert_eq!(k.label(), label, "{stem} by {how}: {k:?}");
                assert_eq!(k.ran_the_test(), ran, "{stem} by {how}");
                assert_eq!(k.confirms_reproduction(), confirms, "{stem} by {how}");
                match &k {
                    FailureKind::ImportOrCollection { why: w }
                    | FailureKind::MissingRunner { why: w }
                        if how != "report alone" || !why.contains(' ') =>
                    {
                        assert!(w.contains(why), "{stem} by {how}: `{w}` lacks `{why}`")
                    }
                    _ => {}
                }
            }
        }
        // Python 3.11's unittest exits 0 when it ran no test.
        let none = std::fs::read_to_string(format!("{dir}unittest_plain_none.out")).unwrap();
        assert!(says_no_tests_ran(&none));
        assert_eq!(classify(&none), FailureKind::NoTestsRan);
        // The line that names each failure, as replay records it.
        for (stem, line) in [
            ("pytest_assert", "assert 2 == 3"),
            ("pytest_exc", "KeyError: 'b'"),
            ("unittest_assert", "AssertionError: 2 != 3"),
            (
                "unittest_body_import",
                "ImportError: cannot import name 'no_such_name' from 'json'",
            ),
            (
                "pytest_module_import",
                "ModuleNotFoundError: No module named 'no_such_module_xyz'",
            ),
            ("missing_pytest", "No module named pytest"),
        ] {
            let out = std::fs::read_to_string(format!("{dir}{stem}.out")).unwrap();
            let l = failure_line(&out, &classify(&out)).unwrap_or_default();
            assert!(l.contains(line), "{stem}: `{l}`");
        }
    }

    #[test]
    fn the_report_tells_when_an_import_failed() {
        // A body import in the report is that test failing, whatever the output says.
        let body = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/failure_kinds/pytest_body_import.xml"
        ))
        .unwrap();
        let cases = crate::runners::outcome::parse_junit(&body).unwrap();
        let exit1 = Termination::Exited { code: 1 };
        let bare = "E   ImportError: cannot import name 'no_such_name' from 'json'\n";
        assert_eq!(classify(bare).label(), "collection-error");
        assert_eq!(classify_run(bare, &exit1, Some(&cases)), exc("ImportError"));
        // A report whose every case passed does not decide: the output does.
        let passed = crate::runners::outcome::parse_junit(
            "<testsuite><testcase classname=\"t\" name=\"test_a\"/></testsuite>",
        )
        .unwrap();
        assert_eq!(
            classify_run("AssertionError: x", &exit1, Some(&passed)),
            FailureKind::Assertion
        );
        // fixci's timeout wins over the report.
        assert_eq!(
            classify_run("", &Termination::TimedOut { killed: true }, Some(&cases)),
            FailureKind::Timeout
        );
    }

    /// The cases replay's own classifier had (its meaning kept).
    #[test]
    fn replay_kinds_of_runner_output() {
        let exit = |code| Termination::Exited { code };
        let k = classify_run(
            "/tmp/v/bin/python: No module named pytest\n",
            &exit(1),
            None,
        );
        assert_eq!(
            k,
            FailureKind::MissingRunner {
                why: "/tmp/v/bin/python: No module named pytest".into()
            }
        );
        let k = classify_run("sh: 1: python: not found\n", &exit(127), None);
        assert_eq!(
            k,
            FailureKind::MissingRunner {
                why: "sh: 1: python: not found".into()
            }
        );
        let k = classify_run(
            "python: can't open file '/r/test.py': [Errno 2] No such file or directory\n",
            &exit(2),
            None,
        );
        assert_eq!(k.label(), "missing-runner");
        let k = classify_run(
            "==== ERRORS ====\n___ ERROR collecting tests/test_x.py ___\nImportError while importing test module '/r/tests/test_x.py'.\nE   ModuleNotFoundError: No module named 'six'\n!!!! Interrupted: 1 error during collection !!!!\n",
            &exit(2),
            None,
        );
        assert_eq!(
            k,
            FailureKind::ImportOrCollection {
                why: "ModuleNotFoundError: No module named 'six'".into()
            }
        );
        let k = classify_run(
            "E\n======\nERROR: test_x (unittest.loader._FailedTest.test_x)\nImportError: Failed to import test module: test_x\nTraceback ...\nModuleNotFoundError: No module named 'yaml'\n\nRan 1 test in 0.000s\n\nFAILED (errors=1)\n",
            &exit(1),
            None,
        );
        assert_eq!(
            k,
            FailureKind::ImportOrCollection {
                why: "ModuleNotFoundError: No module named 'yaml'".into()
            }
        );
        assert_eq!(
            classify_run("\nno tests ran in 0.01s\n", &exit(5), None),
            FailureKind::NoTestsRan
        );
        assert_eq!(
            classify_run(
                "    def test_custom_repr_single():\n>       x = f()\nE       TypeError: cannot unpack non-iterable type object\n\npysnooper/utils.py:28: TypeError\n1 failed in 0.05s\n",
                &exit(1),
                None
            ),
            exc("TypeError")
        );
        // A test that imports a missing name at run time, after the runner started tests.
        assert_eq!(
            classify_run(
                "E\n======\nERROR: test_y (t.T.test_y)\nTraceback:\nImportError: cannot import name 'z'\n\nRan 1 test in 0.001s\n\nFAILED (errors=1)\n",
                &exit(1),
                None
            ),
            exc("ImportError")
        );
        assert_eq!(
            classify_run("FAIL test_pick: expected a\n", &exit(1), None),
            FailureKind::Unknown
        );
    }

    #[test]
    fn failure_lines_follow_the_kind() {
        // A warning about an optional module in the captured output does not name the failure.
        let out = "----- Captured stderr call -----\nModuleNotFoundError: No module named 'ujson'\nE       assert 2 == 3\nFAILED tests/test_a.py::test_a - assert 2 == 3\n1 failed in 0.01s";
        let k = classify(out);
        assert_eq!(k, FailureKind::Assertion);
        assert_eq!(failure_line(out, &k).as_deref(), Some("assert 2 == 3"));
        let chained = "Traceback (most recent call last):\nKeyError: 'a'\n\nDuring handling of the above exception, another exception occurred:\n\nValueError: bad input\nRan 1 test in 0.001s\nFAILED (errors=1)";
        assert_eq!(
            failure_line(chained, &classify(chained)).as_deref(),
            Some("ValueError: bad input")
        );
        assert_eq!(failure_line("", &FailureKind::Timeout), None);
        assert_eq!(failure_line("exit 1", &FailureKind::Unknown), None);
        // Python 2 spells a test's own missing module without quotes, as an exception.
        let py2 = "Traceback (most recent call last):\n  File \"tests/test_a.py\", line 1, in <module>\n    import yaml\nImportError: No module named yaml";
        assert_eq!(classify(py2).label(), "collection-error");
    }
}
