//! The rules fixci judges an agent's work by, beyond running its tests: why a reproduction
//! failed ([`failure_kind`], [`reproduction`]), which changes are test set-up rather than a fix
//! ([`test_infra`]), which test edits only hide a failure ([`test_edits`]) and when a fix edits
//! the CI's own failing test ([`failing_test`]). [`judge_fix`] applies the fix rules together. Every function here is pure (text or paths in, findings out) so that the
//! stages stay thin and other commands (replay) can apply the same rules.

pub mod acceptance;
pub mod failing_test;
pub mod failure_kind;
pub mod reproduction;
pub mod test_edits;
pub use crate::runners::test_infra;

pub use failure_kind::{FailureKind, classify};
pub use test_edits::judge_test_edits;

/// What a fix is judged against, besides its files.
#[derive(Debug, Clone, Copy)]
pub struct FixRules<'a> {
    /// The whole change against the base commit (unified diff, reproduction test included).
    pub full_diff: &'a str,
    /// The CI's failing test files (distilled log, `existing-test-path`).
    pub failing_tests: &'a [String],
    /// The spec's `deterministic`: edits to a failing test then make the run `partial`.
    pub deterministic: bool,
    /// The spec's `allow-test-infra-changes`.
    pub allow_test_infra_changes: bool,
    /// The spec's `test-command` and `suite-command` (what they run is test infrastructure:
    /// [`test_infra::judge_test_commands`]).
    pub test_commands: &'a [String],
    /// Test files exempt from the command rule (the failing tests, the reproduction).
    pub test_files: &'a [String],
}

/// What fixci concludes about a fix before verifying it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FixFindings {
    /// Why the fix is refused, one sentence each naming the path (and the rule): test edits
    /// that hide a failure, test-infrastructure changes. Non-empty fails the attempt.
    pub refused: Vec<String>,
    /// Test-infrastructure changes accepted under `allow-test-infra-changes`, same form.
    pub allowed_infra: Vec<String>,
    /// Why the run can end at best `partial`: a deterministic fix edits the failing test.
    pub partial: Option<String>,
}

/// Judges the fix in the worktree of `repo` against commit `base`: [`judge_test_edits`] on the
/// diff, [`test_infra::judge_test_infra`] on the changed files and git's ignore settings, and
/// [`failing_test::failing_test_edit`] for a deterministic failure.
///
/// # Errors
/// When git cannot read the base tree or diff the worktree.
pub fn judge_fix(
    repo: &git2::Repository,
    base: git2::Oid,
    rules: &FixRules<'_>,
) -> Result<FixFindings, git2::Error> {
    let mut f = FixFindings {
        refused: judge_test_edits(rules.full_diff),
        ..Default::default()
    };
    let changes = test_infra::worktree_changes(repo, base)?;
    let mut infra =
        test_infra::judge_test_infra(&changes, &|p| test_infra::tree_has(repo, base, p));
    infra.extend(test_infra::judge_test_commands(
        &changes,
        rules.test_commands,
        rules.test_files,
    ));
    infra.extend(test_infra::git_ignore_settings(repo));
    let infra: Vec<String> = infra.iter().map(ToString::to_string).collect();
    if rules.allow_test_infra_changes {
        f.allowed_infra = infra;
    } else {
        f.refused.extend(infra);
    }
    if rules.deterministic {
        f.partial = failing_test::failing_test_edit(rules.full_diff, rules.failing_tests);
    }
    Ok(f)
}
