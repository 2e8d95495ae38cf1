//! [`check_fix`]: whether a run's `fix.diff` is what its fix commit says, read from git objects
//! rather than trusted from disk. `fixci apply` refuses a run that fails it; `fixci status`
//! shows the result.

use std::path::Path;

use git2::{Oid, Repository};

/// Checks that `commit` exists in one of `repos` (the private clone, the user's repository),
/// was made by fixci, and that its diff from `base` is byte for byte `fix_diff`. Returns why
/// not.
pub fn check_fix(repos: &[&Path], base: &str, commit: &str, fix_diff: &[u8]) -> Result<(), String> {
    let commit_id = Oid::from_str(commit).map_err(|_| format!("`{commit}` is not a commit id"))?;
    let base_id = Oid::from_str(base).map_err(|_| format!("`{base}` is not a commit id"))?;
    let repo = repos
        .iter()
        .filter_map(|p| Repository::open(p).ok())
        .find(|r| r.find_commit(commit_id).is_ok() && r.find_commit(base_id).is_ok())
        .ok_or_else(|| {
            format!(
                "its fix commit {} is in neither {}",
                &commit[..10.min(commit.len())],
                repos
                    .iter()
                    .map(|p| format!("`{}`", p.display()))
                    .collect::<Vec<_>>()
                    .join(" nor ")
            )
        })?;
    let c = repo
        .find_commit(commit_id)
        .map_err(|e| format!("cannot read the fix commit: {}", e.message()))?;
    let sig = super::fixci_signature();
    if c.author().email_bytes() != sig.email_bytes()
        || c.committer().email_bytes() != sig.email_bytes()
    {
        return Err(format!(
            "its fix commit {} was not made by fixci",
            &commit[..10.min(commit.len())]
        ));
    }
    let expected = super::diff_commits(&repo, base_id, commit_id)
        .map_err(|e| format!("cannot diff the fix commit: {e}"))?;
    if expected.as_bytes() != fix_diff {
        return Err(format!(
            "its fix.diff differs from the diff of its fix commit {}",
            &commit[..10.min(commit.len())]
        ));
    }
    Ok(())
}
