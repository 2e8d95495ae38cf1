//! A fix branch as `fixci run --event` sees it: fetched from the remote ([`fetch_branch`]), and
//! its history since the base ([`history`]): who committed, and the `Fixci-Attempt` /
//! `Fixci-Run` trailers of fixci's commits.

use std::path::Path;

use git2::{BranchType, Oid, Repository};

use super::{Ctx, VcsError, git_cmd};
use crate::ci_event::{BranchCommit, BranchHistory, state};

/// fixci's commit e-mail (see [`super::fixci_signature`]): commits by anyone else are a
/// person's.
pub const FIXCI_EMAIL: &str = "fixci@users.noreply.github.com";

/// Fetches `branch` from `remote` into `refs/remotes/<remote>/<branch>` with the git CLI (so
/// the credentials `actions/checkout` configured apply; hooks off), then makes the local branch
/// `branch` point at it: created when absent, moved forward when it is an ancestor and not
/// checked out, left alone otherwise (the checked-out branch of the CI's checkout is never
/// moved under its files). Returns the remote tip, or `None` when the remote has no such
/// branch.
///
/// Errors: git cannot run, the fetch fails for another reason than a missing branch, or the
/// local branch has commits the remote lacks.
pub fn fetch_branch(root: &Path, remote: &str, branch: &str) -> Result<Option<Oid>, VcsError> {
    let Some(tip) = fetch_tracking(root, remote, branch)? else {
        return Ok(None);
    };
    let repo = Repository::open(root).ctx(|| format!("open `{}`", root.display()))?;
    let commit = repo.find_commit(tip).ctx(|| format!("find {tip}"))?;
    match repo.find_branch(branch, BranchType::Local) {
        Ok(mut b) => {
            let local = b.get().target();
            if local == Some(tip) || b.is_head() {
            } else if local.is_some_and(|l| repo.graph_descendant_of(tip, l).unwrap_or(false)) {
                b.get_mut()
                    .set_target(tip, "fixci: fetch the fix branch")
                    .ctx(|| format!("move `{branch}` to the remote's tip"))?;
            } else {
                return Err(git2::Error::from_str(&format!(
                    "the local branch `{branch}` has commits that `{remote}` lacks"
                )))
                .ctx(|| format!("update `{branch}`"));
            }
        }
        Err(_) => {
            repo.branch(branch, &commit, false)
                .ctx(|| format!("create `{branch}`"))?;
        }
    }
    Ok(Some(tip))
}

/// Fetches `branch` from `remote` into `refs/remotes/<remote>/<branch>` only (no local branch
/// is touched), with the git CLI as [`fetch_branch`]; returns the remote tip, or `None` when
/// the remote has no such branch.
///
/// Errors: git cannot run, or the fetch fails for another reason than a missing branch.
pub fn fetch_tracking(root: &Path, remote: &str, branch: &str) -> Result<Option<Oid>, VcsError> {
    let tracking = format!("refs/remotes/{remote}/{branch}");
    let out = git_cmd::git()
        .arg("-C")
        .arg(root)
        .args(["fetch", "--quiet", "--no-tags", remote])
        .arg(format!("+refs/heads/{branch}:{tracking}"))
        .output()
        .map_err(|e| VcsError::Cli {
            what: format!("fetch `{branch}` from `{remote}`"),
            stderr: e.to_string(),
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if stderr.contains("couldn't find remote ref") {
            return Ok(None);
        }
        return Err(VcsError::Cli {
            what: format!("fetch `{branch}` from `{remote}`"),
            stderr,
        });
    }
    let repo = Repository::open(root).ctx(|| format!("open `{}`", root.display()))?;
    let tip = repo
        .refname_to_id(&tracking)
        .ctx(|| format!("read `{tracking}`"))?;
    Ok(Some(tip))
}

/// The commits reachable from `tip` and not from `base` (a ref or commit; ignored when it
/// cannot be resolved), newest first, with their authors and fixci trailers.
///
/// Errors: the walk fails.
pub fn history(root: &Path, tip: Oid, base: &str) -> Result<BranchHistory, VcsError> {
    let repo = Repository::open(root).ctx(|| format!("open `{}`", root.display()))?;
    let mut walk = repo.revwalk().ctx(|| "walk the fix branch".into())?;
    walk.push(tip).ctx(|| "walk the fix branch".into())?;
    if let Ok(b) = repo.revparse_single(base).and_then(|o| o.peel_to_commit()) {
        walk.hide(b.id()).ctx(|| "walk the fix branch".into())?;
    }
    let mut commits = Vec::new();
    for id in walk {
        let id = id.ctx(|| "walk the fix branch".into())?;
        let c = repo.find_commit(id).ctx(|| format!("find {id}"))?;
        let a = c.author();
        let email = a.email().unwrap_or_default().to_string();
        commits.push(BranchCommit {
            id: id.to_string(),
            author: format!("{} <{email}>", a.name().unwrap_or_default()),
            by_fixci: email.eq_ignore_ascii_case(FIXCI_EMAIL),
            attempt: state::parse_trailers(c.message().unwrap_or_default()),
        });
    }
    Ok(BranchHistory {
        tip: tip.to_string(),
        commits,
    })
}
