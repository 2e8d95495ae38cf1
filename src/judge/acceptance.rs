//! Does a failing run of new acceptance tests show that the requested feature is missing at the
//! base commit? The `feature` pipeline's confirmation applies this to every run (see
//! `pipelines/feature.toml`).
//!
//! The rule, stricter than "any failure" and looser than a reproduction's
//! ([`super::reproduction`], which refuses every import error):
//!
//! - accepted: an assertion failure; an exception raised while the test ran (`AttributeError`
//!   for a method or attribute that does not exist yet, `TypeError` for an argument the code
//!   does not take yet, `NotImplementedError`, ...); an `ImportError`/`ModuleNotFoundError` or
//!   an `AttributeError` at import time that names a symbol or submodule of a **project** module
//!   (`cannot import name 'slugify' from 'shipping.text'`, `No module named 'shipping.export'`,
//!   `module 'shipping' has no attribute 'slugify'`): a test of a new function fails that way;
//!   a failure whose output names no reason (a bare non-zero exit of another language's runner);
//! - refused: a syntax or indentation error (the test itself is broken), an import error naming
//!   a module that is not the project's (a missing third-party dependency), any other collection
//!   or environment error, "no tests ran", a `NameError` (the test uses a name it never
//!   defined or imported: a new function is imported from its module, where its absence is an
//!   `ImportError`), and a timeout (a missing feature fails fast).

use std::collections::BTreeSet;
use std::sync::OnceLock;

use regex::Regex;

use super::failure_kind::{FailureKind, classify_exit};
use crate::process::Termination;

/// Top-level importable names of a project tree: `x` for `x.py`, `x/`, `src/x.py`, `src/x/`,
/// `lib/x.py` and `lib/x/` of the commit's tree (`paths` are its entries, relative to the root).
pub fn project_modules<'a>(paths: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for p in paths {
        let rest = p
            .strip_prefix("src/")
            .or_else(|| p.strip_prefix("lib/"))
            .unwrap_or(p);
        let first = rest.split('/').next().unwrap_or("");
        let name = first.strip_suffix(".py").unwrap_or(first);
        let is_dir = rest.contains('/');
        if (is_dir || first.ends_with(".py")) && is_identifier(name) {
            out.insert(name.to_string());
        }
    }
    out
}

fn is_identifier(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f == '_' || f.is_ascii_alphabetic())
        && c.all(|x| x == '_' || x.is_ascii_alphanumeric())
}

/// The verdict on one failing run of acceptance tests at the base commit: `Ok(why)` (a short
/// phrase naming what is missing or what failed) when it shows the behaviour missing, else
/// `Err(feedback)`, a sentence for the stage summary and the report saying what the run failed
/// with and what was needed. `project` holds the project's top-level module names
/// ([`project_modules`]).
pub fn judge_acceptance_run(
    output: &str,
    termination: &Termination,
    project: &BTreeSet<String>,
) -> Result<String, String> {
    let kind = match termination {
        Termination::TimedOut { .. } => {
            return Err(
                "the acceptance tests timed out at the base commit: a missing feature must make them fail fast".into(),
            );
        }
        Termination::Exited { code } => classify_exit(output, Some(*code)),
        _ => classify_exit(output, None),
    };
    let broken = |what: String| {
        format!(
            "the acceptance tests failed with {what} at the base commit, which says nothing about the missing feature: the test file must import and run (no syntax errors, no missing third-party modules, no collection errors) and fail on the absent behaviour (an assertion, or an ImportError/AttributeError naming the new symbol in a project module)"
        )
    };
    if let Some(l) = output.lines().find(|l| syntax_re().is_match(l)) {
        return Err(broken(format!("a syntax error (`{}`)", l.trim())));
    }
    match kind {
        FailureKind::NoTestsRan => Err(broken("no test run".into())),
        FailureKind::Exception { type_name } if type_name == "NameError" => Err(
            "the acceptance tests failed with a NameError at the base commit: the test uses a name it never defined; import the new function or class from its project module, so that its absence fails as an ImportError or AttributeError".to_string(),
        ),
        FailureKind::MissingRunner { why } => Err(format!(
            "cannot run the test command: {why} (a missing interpreter or test runner says nothing about the missing feature: the environment must provide it)"
        )),
        FailureKind::ImportOrCollection { why } => match missing_project_name(output, project) {
            Some(what) => Ok(what),
            None => Err(broken(format!("an import or collection error (`{why}`)"))),
        },
        // An import in a test's body: judged as one at import time.
        k @ FailureKind::Exception { .. } if k.is_import_error() => {
            match missing_project_name(output, project) {
                Some(what) => Ok(what),
                None => Err(broken(format!("an import error ({k} in the test's body)"))),
            }
        }
        FailureKind::Exception { type_name } => Ok(format!("a {type_name} while the test ran")),
        FailureKind::Assertion => Ok("an assertion failure".into()),
        FailureKind::Timeout => Err(
            "the acceptance tests timed out at the base commit: a missing feature must make them fail fast".into(),
        ),
        FailureKind::Unknown => Ok("a failure (the output names no reason)".into()),
    }
}

fn syntax_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"\b(SyntaxError|IndentationError|TabError)\b").expect("constant pattern")
    })
}

/// What an import-time error says is missing from the project, when it names a project module:
/// `ImportError: cannot import name 'X' from 'M'`, `No module named 'M.sub'` (a new submodule of
/// a project package), `module 'M' has no attribute 'X'`.
fn missing_project_name(output: &str, project: &BTreeSet<String>) -> Option<String> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(concat!(
            r"cannot import name '(?P<name>[\w]+)' from '(?P<module>[\w.]+)'",
            r"|No module named '(?P<submodule>[\w]+\.[\w.]+)'",
            r"|module '(?P<amodule>[\w.]+)' has no attribute '(?P<aname>[\w]+)'",
        ))
        .expect("constant pattern")
    });
    let top = |m: &str| project.contains(m.split('.').next().unwrap_or(m));
    output.lines().find_map(|l| {
        let c = re.captures(l)?;
        if let (Some(n), Some(m)) = (c.name("name"), c.name("module")) {
            return top(m.as_str()).then(|| {
                format!(
                    "`{}` is not in project module `{}` yet",
                    n.as_str(),
                    m.as_str()
                )
            });
        }
        if let Some(m) = c.name("submodule") {
            return top(m.as_str())
                .then(|| format!("project module `{}` does not exist yet", m.as_str()));
        }
        let (m, n) = (c.name("amodule")?, c.name("aname")?);
        top(m.as_str()).then(|| {
            format!(
                "`{}` is not in project module `{}` yet",
                n.as_str(),
                m.as_str()
            )
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project() -> BTreeSet<String> {
        project_modules([
            "shipping/__init__.py",
            "shipping/text.py",
            "src/pkg/a.py",
            "setup.py",
            "README.md",
            "tests/test_x.py",
        ])
    }

    fn exit1() -> Termination {
        Termination::Exited { code: 1 }
    }

    #[test]
    fn project_modules_from_paths() {
        let p = project();
        for m in ["shipping", "pkg", "setup", "tests"] {
            assert!(p.contains(m), "{m} in {p:?}");
        }
        assert!(!p.contains("README"));
    }

    #[test]
    fn an_import_error_naming_a_project_symbol_is_missing_behaviour() {
        let out = "ImportError: Failed to import test module: test_slug\nTraceback (most recent call last):\nImportError: cannot import name 'slugify' from 'shipping.text' (/tmp/x/shipping/text.py)\n\nFAILED (errors=1)\n";
        let why = judge_acceptance_run(out, &exit1(), &project()).unwrap();
        assert!(
            why.contains("slugify") && why.contains("shipping.text"),
            "{why}"
        );
        let out = "E   AttributeError: module 'shipping' has no attribute 'slugify'\nERROR collecting tests/test_slug.py\n";
        assert!(judge_acceptance_run(out, &exit1(), &project()).is_ok());
        let out = "ModuleNotFoundError: No module named 'shipping.export'\n";
        assert!(judge_acceptance_run(out, &exit1(), &project()).is_ok());
    }

    #[test]
    fn broken_tests_are_refused() {
        for out in [
            "  File \"tests/test_slug.py\", line 3\n    def test(:\nSyntaxError: invalid syntax\n",
            "ModuleNotFoundError: No module named 'requests'\n",
            "ImportError: cannot import name 'thing' from 'requests' (/usr/lib/requests/__init__.py)\n",
            "\nRan 0 tests in 0.000s\n\nNO TESTS RAN\n",
            "ERROR: file or directory not found: tests/test_nope.py\n",
        ] {
            let e = judge_acceptance_run(out, &exit1(), &project()).unwrap_err();
            assert!(e.contains("must import and run"), "{out}: {e}");
        }
        let e = judge_acceptance_run(
            "NameError: name 'slugify' is not defined\n",
            &exit1(),
            &project(),
        )
        .unwrap_err();
        assert!(e.contains("NameError"), "{e}");
        assert!(
            judge_acceptance_run("", &Termination::TimedOut { killed: true }, &project()).is_err()
        );
    }

    #[test]
    fn assertions_and_runtime_exceptions_show_missing_behaviour() {
        let out = "FAIL: test_slug (tests.test_slug.T.test_slug)\nAssertionError: 'A B' != 'a-b'\n";
        assert_eq!(
            judge_acceptance_run(out, &exit1(), &project()).unwrap(),
            "an assertion failure"
        );
        let out = "TypeError: fmt() got an unexpected keyword argument 'sep'\n";
        assert!(
            judge_acceptance_run(out, &exit1(), &project())
                .unwrap()
                .contains("TypeError")
        );
    }
}
