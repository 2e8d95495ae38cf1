//! The checks `fixci validate` makes on a replay case beyond its schema, against its
//! repository: the commit exists, the job spec's `existing-test-path` exists at that commit, and
//! the gold patch holds a change and applies there.

use super::case::Case;
use super::run::{clone_case, git, patch_is_empty};
use crate::error::{Error, io_error};

/// Checks `case` against its repository, in a scratch clone that is removed afterwards.
///
/// Errors (exit 2): every problem found, each a detail line `/key: what is wrong`, under
/// "invalid case `<case.toml>`"; exit 3 when no scratch folder can be made.
pub fn check_against_repository(case: &Case) -> Result<(), Error> {
    let bad = || Error::usage(format!("invalid case `{}`", case.file.display()));
    let tmp = tempfile::Builder::new()
        .prefix("fixci-validate-")
        .tempdir()
        .map_err(|e| io_error("create", &std::env::temp_dir(), e))?;
    let repo = tmp.path().join("repo");
    let cloned = match clone_case(case, &repo) {
        Ok(c) => c,
        Err(e) => {
            let key = if e.message.contains("is not in") {
                "/commit"
            } else {
                "/repo"
            };
            return Err(bad()
                .detail(format!("{key}: {}", e.message))
                .details(e.details));
        }
    };
    let short = &cloned.commit[..cloned.commit.len().min(10)];
    let mut problems = Vec::new();
    if let Some(t) = &case.spec.spec.existing_test_path {
        let at = format!("{}:{}", cloned.commit, t.trim_start_matches("./"));
        if git(&repo, &["cat-file", "-e", &at]).is_err() {
            problems.push(format!(
                "/info/existing-test-path: `{t}` does not exist at commit {short}"
            ));
        }
    }
    if let (Some(text), Some(file)) = (&case.gold_patch, &case.gold_patch_file) {
        let name = file
            .strip_prefix(&case.dir)
            .unwrap_or(file)
            .display()
            .to_string();
        if patch_is_empty(text) {
            problems.push(format!(
                "/gold-patch: `{name}` holds no diff (no `diff --git` header or hunk)"
            ));
        } else {
            git(&repo, &["checkout", "-q", "--detach", "-f", &cloned.commit])?;
            if let Err(e) = git(&repo, &["apply", "--check", &file.display().to_string()]) {
                problems.push(format!(
                    "/gold-patch: `{name}` does not apply at commit {short}: {}",
                    e.details.join(" | ")
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(bad().details(problems))
    }
}
