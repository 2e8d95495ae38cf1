//! Does a failing run confirm a reproduction? Only when it fails for a reason a code fix can
//! address (not an import, collection or environment error, not "no tests ran") and, when the
//! CI log shows why CI failed, for that reason ([`FailureKind::same_kind_as`]).

use super::failure_kind::{FailureKind, classify_message, classify_run};
use crate::logs::Distilled;
use crate::process::Termination;
use crate::runners::outcome::Case;

/// Why the CI failed, from the distilled log: the failure signature's message part
/// (`<test id>: <masked message>`, see [`crate::logs::signature`]) classified by
/// [`classify_message`], with the signature itself for the feedback. `None` without a
/// signature, or when its message names no kind (there is then nothing to match).
pub fn ci_kind(distilled: &Distilled) -> Option<(FailureKind, String)> {
    let sig = distilled.signature.as_ref()?;
    let (_, msg) = crate::logs::signature::split(sig);
    let kind = classify_message(msg);
    (kind != FailureKind::Unknown).then(|| (kind, sig.clone()))
}

/// The verdict on one failing run of a reproduction: `Ok(kind)` when it confirms, else
/// `Err(feedback)`, a sentence for the stage summary and the next prompt that says what the
/// run failed with and what was needed. `termination` gives the exit code (127/126 are a
/// missing or non-executable command) and timeouts; `ci` is [`ci_kind`] of the CI log. The
/// output alone decides when an import error was raised; [`judge_failing_report`] also reads
/// the run's report.
pub fn judge_failing_run(
    output: &str,
    termination: &Termination,
    ci: Option<&(FailureKind, String)>,
) -> Result<FailureKind, String> {
    judge_failing_report(output, termination, None, ci)
}

/// [`judge_failing_run`] with the run's report cases when the runner wrote a readable one
/// (`cases`, [`crate::runners::outcome::parse_junit`]): the report tells a collection or
/// fixture error from a failure in a test's body ([`classify_run`]).
pub fn judge_failing_report(
    output: &str,
    termination: &Termination,
    cases: Option<&[Case]>,
    ci: Option<&(FailureKind, String)>,
) -> Result<FailureKind, String> {
    let kind = classify_run(output, termination, cases);
    if let FailureKind::MissingRunner { why } = &kind {
        return Err(format!(
            "cannot run the test command: {why} (a missing interpreter or test runner never confirms a reproduction: the environment must provide it)"
        ));
    }
    if kind.is_import_error() {
        return Err(format!(
            "the reproduction failed with {kind} raised in the test's body: like an import or collection error, an import error never confirms a reproduction (adding the missing module or name would \"fix\" it): the test must import what exists and fail on the bug's behaviour"
        ));
    }
    if !kind.confirms_reproduction() {
        return Err(format!(
            "the reproduction failed with {kind}, which never confirms a reproduction: the test must import and run, and fail on the bug's behaviour"
        ));
    }
    if let Some((ci_kind, sig)) = ci {
        if !kind.same_kind_as(ci_kind) {
            return Err(format!(
                "the reproduction fails with {kind}, but the CI failure is {ci_kind} (signature `{sig}`): the test must fail for the CI's reason"
            ));
        }
    }
    Ok(kind)
}

/// The verdict on one passing verification run: `Err(feedback)` when its output says no test
/// ran (a test renamed away, a class that no longer derives from `TestCase`: Python 3.11's
/// unittest exits 0 after `Ran 0 tests`), which passes nothing.
pub fn judge_passing_run(output: &str) -> Result<(), String> {
    if super::failure_kind::says_no_tests_ran(output) {
        return Err(
            "the run exited 0 but no test ran: a verification run must run the test".to_string(),
        );
    }
    Ok(())
}

/// True when a failing run's output (no exit code known, as in the stress runner) counts as a
/// reproduction of a CI failure of kind `ci` (any kind that can confirm, when `None`).
pub fn counts_as_reproduction(output: &[u8], ci: Option<&FailureKind>) -> bool {
    let kind = super::failure_kind::classify(&String::from_utf8_lossy(output));
    kind.confirms_reproduction() && ci.is_none_or(|c| kind.same_kind_as(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn distilled(sig: Option<&str>) -> Distilled {
        Distilled {
            signature: sig.map(String::from),
            ..Default::default()
        }
    }

    #[test]
    fn ci_kind_from_the_signature() {
        let (k, s) = ci_kind(&distilled(Some(
            "tests/test_a.py::test_x: AssertionError: N != N",
        )))
        .unwrap();
        assert_eq!(k, FailureKind::Assertion);
        assert!(s.starts_with("tests/test_a.py"));
        assert!(ci_kind(&distilled(Some("tests/test_a.py::test_x"))).is_none());
        assert!(ci_kind(&distilled(None)).is_none());
    }

    #[test]
    fn a_failing_run_is_judged_against_the_ci_failure() {
        let exit1 = Termination::Exited { code: 1 };
        let ci = ci_kind(&distilled(Some("t::x: AssertionError: N != N")));
        assert_eq!(
            judge_failing_run("AssertionError: 3 != 4", &exit1, ci.as_ref()),
            Ok(FailureKind::Assertion)
        );
        let e = judge_failing_run("KeyError: 'a'", &exit1, ci.as_ref()).unwrap_err();
        assert!(
            e.contains("a KeyError") && e.contains("an assertion failure"),
            "{e}"
        );
        let e = judge_failing_run("ModuleNotFoundError: No module named 'calc'", &exit1, None)
            .unwrap_err();
        assert!(e.contains("never confirms"), "{e}");
        assert!(judge_failing_run("", &Termination::Exited { code: 127 }, None).is_err());
        // Without a CI log, any code failure confirms; a bare exit 1 too.
        assert!(judge_failing_run("KeyError: 'a'", &exit1, None).is_ok());
        assert!(judge_failing_run("", &exit1, ci.as_ref()).is_ok());
        assert_eq!(
            judge_failing_run("", &Termination::TimedOut { killed: false }, None),
            Ok(FailureKind::Timeout)
        );
    }

    #[test]
    fn a_passing_run_that_ran_no_test_is_refused() {
        assert!(judge_passing_run("Ran 0 tests in 0.000s\n\nOK\n").is_err());
        assert!(judge_passing_run("Ran 1 test in 0.000s\n\nOK\n").is_ok());
        assert!(judge_passing_run("").is_ok());
    }

    #[test]
    fn stress_runs_count_only_genuine_failures() {
        assert!(counts_as_reproduction(
            b"AssertionError: flaky",
            Some(&FailureKind::Assertion)
        ));
        assert!(!counts_as_reproduction(b"No module named pytest", None));
        assert!(!counts_as_reproduction(
            b"IndexError: x",
            Some(&FailureKind::Assertion)
        ));
        assert!(counts_as_reproduction(b"IndexError: x", None));
    }
}
