//! git operations on git2 (libgit2): fixci's private clone (see [`clone`]), diffs that include
//! untracked files, fixci's single fix commit, blame of changed lines, the user-repository
//! fingerprint. The user's own checkout (its HEAD, index and files) is never written: all edits
//! happen in the private clone, and only a fix comes back, as one new branch.
//!
//! Cloning a remote URL or a `.bundle` shells out to the `git` CLI (libgit2 cannot read
//! bundles, and the CLI honours the user's credential helpers and SSH configuration), always
//! through [`git_cmd::git`]: hooks off, scrubbed environment, no prompts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use git2::{BranchType, DiffOptions, IndexAddOption, Oid, Repository, Signature};

mod agent_git;
pub mod clone;
pub mod fingerprint;
pub mod fix_branch;
mod fix_check;
pub mod git_cmd;
pub use agent_git::{AgentGitChanges, branch_tip, undo_agent_git};
pub use clone::{export_fix_branch, private_clone};
pub use fingerprint::{Fingerprint, UserRepoGuard};
pub use fix_check::check_fix;

/// git errors, with what fixci was doing.
#[derive(Debug, thiserror::Error)]
pub enum VcsError {
    /// A libgit2 call failed.
    #[error("git: cannot {what}")]
    Git {
        what: String,
        #[source]
        source: git2::Error,
    },
    /// The `git` CLI failed.
    #[error("git: cannot {what}: {stderr}")]
    Cli { what: String, stderr: String },
    /// A revision does not exist.
    #[error("git: no branch, tag or commit `{rev}` in `{repo}`")]
    NoRevision { rev: String, repo: String },
}

trait Ctx<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, VcsError>;
}

impl<T> Ctx<T> for Result<T, git2::Error> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, VcsError> {
        self.map_err(|source| VcsError::Git {
            what: what(),
            source,
        })
    }
}

/// Paths an agent leaves behind that never belong in a fix commit (tool caches, aider's
/// history), matched as prefixes of a path component or exact file suffixes.
pub const DROPPINGS: &[&str] = &[
    ".aider",
    "__pycache__",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".fixci",
    ".hypothesis",
];

/// True when `path` (relative, `/`-separated) is an agent dropping or a Python bytecode file.
pub fn is_dropping(path: &str) -> bool {
    path.ends_with(".pyc")
        || path
            .split('/')
            .any(|c| DROPPINGS.iter().any(|d| c.starts_with(d)))
}

/// fixci's commit identity.
pub fn fixci_signature() -> Signature<'static> {
    Signature::now("fixci", "fixci@users.noreply.github.com").expect("valid signature")
}

/// Opens the repository at or above `path`.
pub fn discover(path: &Path) -> Result<Repository, VcsError> {
    Repository::discover(path)
        .ctx(|| format!("find a git repository at or above `{}`", path.display()))
}

/// The working directory of `repo` (its git folder for a bare repository).
pub fn workdir(repo: &Repository) -> PathBuf {
    repo.workdir()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| repo.path().to_path_buf())
}

/// Opens the repository whose work tree (or worktree) is exactly `path`.
pub fn open(path: &Path) -> Result<Repository, VcsError> {
    Repository::open(path).ctx(|| format!("open repository `{}`", path.display()))
}

/// Resolves `rev` to a commit: a local branch, then `origin/<rev>`, then any revision syntax.
pub fn resolve_commit(repo: &Repository, rev: &str) -> Result<Oid, VcsError> {
    for name in [
        format!("refs/heads/{rev}"),
        format!("refs/remotes/origin/{rev}"),
    ] {
        if let Ok(r) = repo.find_reference(&name) {
            if let Ok(c) = r.peel_to_commit() {
                return Ok(c.id());
            }
        }
    }
    repo.revparse_single(rev)
        .and_then(|o| o.peel_to_commit())
        .map(|c| c.id())
        .map_err(|_| VcsError::NoRevision {
            rev: rev.into(),
            repo: workdir_of(repo),
        })
}

fn workdir_of(repo: &Repository) -> String {
    repo.workdir().unwrap_or(repo.path()).display().to_string()
}

/// A branch name `fixci/<slug>` that does not exist yet (`-2`, `-3`, ... appended as needed).
pub fn free_branch_name(repo: &Repository, slug: &str) -> String {
    let mut name = format!("fixci/{slug}");
    let mut n = 2;
    while repo.find_branch(&name, BranchType::Local).is_ok() {
        name = format!("fixci/{slug}-{n}");
        n += 1;
    }
    name
}

/// Why [`branch_from_patch`] made no branch.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// The bytes are not a unified diff git can read.
    #[error("not a valid patch")]
    Invalid(#[source] git2::Error),
    /// The patch does not apply to the base tree.
    #[error("the patch does not apply")]
    DoesNotApply(#[source] git2::Error),
    /// Reading or writing objects failed.
    #[error(transparent)]
    Git(#[from] VcsError),
}

/// Applies `patch` (a unified diff) to the tree of `base` and commits the result with
/// `message` on a new branch `fixci/<slug>` (or `fixci/<slug>-2`, ... when taken), without
/// touching the working tree, the index or the current branch. Returns the branch name and
/// the commit.
pub fn branch_from_patch(
    repo: &Repository,
    base: Oid,
    patch: &[u8],
    slug: &str,
    message: &str,
) -> Result<(String, Oid), PatchError> {
    let diff = git2::Diff::from_buffer(patch).map_err(PatchError::Invalid)?;
    let base_commit = repo.find_commit(base).ctx(|| "read base".into())?;
    let tree = base_commit.tree().ctx(|| "read base tree".into())?;
    let mut index = repo
        .apply_to_tree(&tree, &diff, None)
        .map_err(PatchError::DoesNotApply)?;
    let tree_id = index
        .write_tree_to(repo)
        .ctx(|| "write the fix tree".into())?;
    let new_tree = repo.find_tree(tree_id).ctx(|| "read the fix tree".into())?;
    let name = free_branch_name(repo, slug);
    let sig = fixci_signature();
    let commit = repo
        .commit(None, &sig, &sig, message, &new_tree, &[&base_commit])
        .ctx(|| "commit the fix".into())?;
    let c = repo
        .find_commit(commit)
        .ctx(|| "read the fix commit".into())?;
    repo.branch(&name, &c, false)
        .ctx(|| format!("create branch `{name}`"))?;
    Ok((name, commit))
}

/// Removes the worktree registered as `name` (its files and its registration); no-op when
/// there is none.
pub fn prune_worktree(repo: &Repository, name: &str) -> Result<(), VcsError> {
    let Ok(wt) = repo.find_worktree(name) else {
        return Ok(());
    };
    let mut opts = git2::WorktreePruneOptions::new();
    opts.valid(true).working_tree(true).locked(false);
    wt.prune(Some(&mut opts))
        .ctx(|| format!("remove worktree `{name}`"))
}

/// Deletes the local branch `name`; no-op when there is none.
pub fn delete_branch(repo: &Repository, name: &str) -> Result<(), VcsError> {
    let Ok(mut b) = repo.find_branch(name, git2::BranchType::Local) else {
        return Ok(());
    };
    b.delete().ctx(|| format!("delete branch `{name}`"))
}

/// Moves the worktree's branch to `commit` and makes its files match it exactly: tracked
/// changes are discarded and untracked files removed (fixci's own worktree only).
pub fn reset_worktree_to(wt: &Repository, commit: Oid) -> Result<(), VcsError> {
    let obj = wt
        .find_object(commit, None)
        .ctx(|| format!("find commit {commit}"))?;
    wt.reset(&obj, git2::ResetType::Hard, None)
        .ctx(|| format!("reset worktree to {commit}"))?;
    let root = wt.workdir().expect("worktree has a workdir").to_path_buf();
    let statuses = wt
        .statuses(Some(
            git2::StatusOptions::new()
                .include_untracked(true)
                .recurse_untracked_dirs(false),
        ))
        .ctx(|| "read worktree status".into())?;
    for s in statuses.iter() {
        if s.status().contains(git2::Status::WT_NEW) {
            if let Ok(p) = s.path() {
                let full = root.join(p);
                if full.is_dir() {
                    let _ = std::fs::remove_dir_all(&full);
                } else {
                    let _ = std::fs::remove_file(&full);
                }
            }
        }
    }
    Ok(())
}

/// The patch between commit `base` and the worktree's files, untracked files included,
/// agent droppings and `exclude` paths left out. Empty when nothing changed.
pub fn diff_worktree(wt: &Repository, base: Oid, exclude: &[String]) -> Result<String, VcsError> {
    let tree = wt
        .find_commit(base)
        .and_then(|c| c.tree())
        .ctx(|| format!("read tree of {base}"))?;
    let mut opts = DiffOptions::new();
    opts.include_untracked(true)
        .recurse_untracked_dirs(true)
        .show_untracked_content(true);
    let diff = wt
        .diff_tree_to_workdir(Some(&tree), Some(&mut opts))
        .ctx(|| "diff worktree".into())?;
    patch_text(&diff, exclude)
}

/// The patch between two commits.
pub fn diff_commits(repo: &Repository, a: Oid, b: Oid) -> Result<String, VcsError> {
    let ta = repo
        .find_commit(a)
        .and_then(|c| c.tree())
        .ctx(|| format!("read tree of {a}"))?;
    let tb = repo
        .find_commit(b)
        .and_then(|c| c.tree())
        .ctx(|| format!("read tree of {b}"))?;
    let diff = repo
        .diff_tree_to_tree(Some(&ta), Some(&tb), None)
        .ctx(|| "diff commits".into())?;
    patch_text(&diff, &[])
}

fn patch_text(diff: &git2::Diff<'_>, exclude: &[String]) -> Result<String, VcsError> {
    let mut out = String::new();
    let mut skip = false;
    diff.print(git2::DiffFormat::Patch, |delta, _hunk, line| {
        if line.origin() == 'F' {
            let p = delta
                .new_file()
                .path()
                .or_else(|| delta.old_file().path())
                .map(|p| p.to_string_lossy().replace('\\', "/"))
                .unwrap_or_default();
            skip = is_dropping(&p) || exclude.iter().any(|e| e == &p);
        }
        if !skip {
            if matches!(line.origin(), '+' | '-' | ' ') {
                out.push(line.origin());
            }
            out.push_str(&String::from_utf8_lossy(line.content()));
        }
        true
    })
    .ctx(|| "render diff".into())?;
    Ok(out)
}

/// The paths a diff touches (the new path, else the old one), with `/` separators.
pub(crate) fn diff_paths(diff: &git2::Diff<'_>) -> Vec<String> {
    diff.deltas()
        .filter_map(|d| {
            d.new_file()
                .path()
                .or_else(|| d.old_file().path())
                .map(|p| p.to_string_lossy().replace('\\', "/"))
        })
        .collect()
}

/// Paths changed between commit `base` and the worktree (untracked included, droppings not).
pub fn changed_paths(wt: &Repository, base: Oid) -> Result<Vec<String>, VcsError> {
    let tree = wt
        .find_commit(base)
        .and_then(|c| c.tree())
        .ctx(|| format!("read tree of {base}"))?;
    let mut opts = DiffOptions::new();
    opts.include_untracked(true).recurse_untracked_dirs(true);
    let diff = wt
        .diff_tree_to_workdir(Some(&tree), Some(&mut opts))
        .ctx(|| "diff worktree".into())?;
    Ok(diff_paths(&diff)
        .into_iter()
        .filter(|p| !is_dropping(p))
        .collect())
}

/// Stages every change in the worktree (new, modified, deleted; ignored files, droppings and
/// the `exclude` paths left out) and writes the index as a tree. Returns the tree's id.
pub fn stage_tree(wt: &Repository, exclude: &[String]) -> Result<Oid, VcsError> {
    let mut index = wt.index().ctx(|| "open worktree index".into())?;
    let mut cb = |path: &Path, _spec: &[u8]| -> i32 {
        if is_dropping(&path.to_string_lossy()) {
            1
        } else {
            0
        }
    };
    index
        .add_all(
            ["*"],
            IndexAddOption::DEFAULT,
            Some(&mut cb as &mut git2::IndexMatchedPath),
        )
        .ctx(|| "stage changes".into())?;
    index
        .update_all(["*"], None)
        .ctx(|| "stage deletions".into())?;
    // Droppings the agent may have staged itself are removed from the index too.
    let staged_droppings: Vec<PathBuf> = index
        .iter()
        .map(|e| PathBuf::from(String::from_utf8_lossy(&e.path).into_owned()))
        .filter(|p| {
            let p = p.to_string_lossy();
            is_dropping(&p) || exclude.iter().any(|e| *e == p)
        })
        .collect();
    for p in staged_droppings {
        let _ = index.remove_path(&p);
    }
    index.write().ctx(|| "write worktree index".into())?;
    index.write_tree().ctx(|| "write tree".into())
}

/// Stages every change in the worktree (see [`stage_tree`]) and commits it on the worktree's
/// branch as fixci. Returns the new commit, or `None` when there was nothing to commit.
pub fn commit_all(wt: &Repository, message: &str) -> Result<Option<Oid>, VcsError> {
    let tree_id = stage_tree(wt, &[])?;
    let head = wt
        .head()
        .and_then(|h| h.peel_to_commit())
        .ctx(|| "read HEAD".into())?;
    if head.tree_id() == tree_id {
        return Ok(None);
    }
    let tree = wt.find_tree(tree_id).ctx(|| "find tree".into())?;
    let sig = fixci_signature();
    let oid = wt
        .commit(Some("HEAD"), &sig, &sig, message, &tree, &[&head])
        .ctx(|| "commit the fix".into())?;
    Ok(Some(oid))
}

/// Authors of the lines that `patch` removes or changes, as of commit `at`, with line counts:
/// the people who know this code (for the report's "relevant developers"). For a hunk that only
/// adds lines, the line above the insertion point stands for it.
pub fn blame_patch(repo: &Repository, at: Oid, patch: &str) -> Vec<(String, usize)> {
    let hunk_re = regex::Regex::new(r"^@@ -(\d+)(?:,(\d+))? \+").expect("valid regex");
    // (file, old line numbers) to blame.
    let mut targets: Vec<(String, Vec<usize>)> = Vec::new();
    let mut file: Option<String> = None;
    let mut old_line = 0usize;
    let mut hunk_removed = false;
    let mut hunk_anchor = 0usize;
    let finish_hunk = |file: &Option<String>,
                       removed: bool,
                       anchor: usize,
                       targets: &mut Vec<(String, Vec<usize>)>| {
        if let (Some(f), false, true) = (file, removed, anchor > 0) {
            targets.push((f.clone(), vec![anchor]));
        }
    };
    for line in patch.lines() {
        if line.starts_with("diff --git") {
            finish_hunk(&file, hunk_removed, hunk_anchor, &mut targets);
            hunk_removed = true; // nothing pending
            file = None;
        } else if let Some(p) = line.strip_prefix("--- a/") {
            file = Some(p.to_string());
        } else if line.starts_with("--- ") || line.starts_with("+++ ") {
            continue;
        } else if let Some(c) = hunk_re.captures(line) {
            finish_hunk(&file, hunk_removed, hunk_anchor, &mut targets);
            old_line = c[1].parse().unwrap_or(0);
            hunk_removed = false;
            hunk_anchor = 0;
        } else if line.starts_with('-') {
            if let Some(f) = &file {
                targets.push((f.clone(), vec![old_line]));
            }
            hunk_removed = true;
            old_line += 1;
        } else if line.starts_with('+') {
            if !hunk_removed && hunk_anchor == 0 {
                hunk_anchor = old_line.saturating_sub(1);
            }
        } else if line.starts_with(' ') {
            old_line += 1;
        }
    }
    finish_hunk(&file, hunk_removed, hunk_anchor, &mut targets);
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for (f, lines) in targets {
        for l in lines {
            let mut opts = git2::BlameOptions::new();
            opts.newest_commit(at).min_line(l).max_line(l);
            let Ok(blame) = repo.blame_file(Path::new(&f), Some(&mut opts)) else {
                continue;
            };
            for h in blame.iter() {
                let Some(sig) = h.final_signature() else {
                    continue;
                };
                let who = format!(
                    "{} <{}>",
                    String::from_utf8_lossy(sig.name_bytes()),
                    String::from_utf8_lossy(sig.email_bytes())
                );
                *counts.entry(who).or_default() += h.lines_in_hunk();
            }
        }
    }
    let mut v: Vec<_> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}

/// Commits on `branch` after `since` whose author is not fixci: (short id, author), newest
/// first. A human commit on a fix branch stops further automatic attempts.
pub fn foreign_commits(repo: &Repository, branch_tip: Oid, since: Oid) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Ok(mut walk) = repo.revwalk() else {
        return out;
    };
    if walk.push(branch_tip).is_err() || walk.hide(since).is_err() {
        return out;
    }
    for oid in walk.flatten() {
        if let Ok(c) = repo.find_commit(oid) {
            let a = c.author();
            if a.email().ok() != Some("fixci@users.noreply.github.com") {
                out.push((
                    oid.to_string()[..8].to_string(),
                    format!("{} <{}>", a.name().unwrap_or("?"), a.email().unwrap_or("?")),
                ));
            }
        }
    }
    out
}

/// Clones `source` (a git URL or a `.bundle` file) into `dest` with the git CLI, or fetches
/// into an existing clone. This cache clone is fixci's own: before a fetch its config is
/// rewritten to the two keys fixci needs and its hooks folder emptied, so nothing planted there
/// (a hook, an `uploadpack` or `insteadOf` key) survives, and the fetch names `source`
/// explicitly rather than trusting `remote.origin.url`. Every git call goes through
/// [`git_cmd::git`] (hooks off, scrubbed environment, no prompts).
pub fn clone_or_fetch(source: &str, dest: &Path) -> Result<(), VcsError> {
    let run = |args: &[&str], what: &str| -> Result<(), VcsError> {
        let out = git_cmd::git()
            .args(args)
            .output()
            .map_err(|e| VcsError::Cli {
                what: what.into(),
                stderr: e.to_string(),
            })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(VcsError::Cli {
                what: what.into(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })
        }
    };
    if dest.join(".git").exists() {
        clone::sanitize_cache_clone(dest, source).map_err(|e| VcsError::Cli {
            what: format!("reset the cache clone `{}`", dest.display()),
            stderr: e.to_string(),
        })?;
        let d = dest.to_string_lossy();
        run(
            &[
                "-C",
                &d,
                "fetch",
                "--quiet",
                "--prune",
                "--no-write-fetch-head",
                source,
                "+refs/heads/*:refs/remotes/origin/*",
            ],
            &format!("fetch `{source}`"),
        )
    } else {
        if let Some(parent) = dest.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        run(
            &[
                "clone",
                "--quiet",
                "--no-checkout",
                "--template=",
                source,
                &dest.to_string_lossy(),
            ],
            &format!("clone `{source}`"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn droppings() {
        assert!(is_dropping(".aider.chat.history.md"));
        assert!(is_dropping("pkg/__pycache__/x.cpython-311.pyc"));
        assert!(is_dropping(".aider.tags.cache.v4/cache.db"));
        assert!(!is_dropping("src/aider.py"));
        assert!(!is_dropping("calc/ops.py"));
    }
}
