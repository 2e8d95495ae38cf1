//! A sealed tree: one commit checked out from the git objects alone into a fresh directory fixci
//! owns. Nothing the agent left on disk reaches it: no untracked or ignored files, no
//! `__pycache__`, no files hidden by `.git/info/exclude`. A symlink whose target leaves the
//! repository is refused before anything is written.

use std::path::{Component, Path, PathBuf};

use git2::{Oid, Repository};

/// Why a commit cannot be sealed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// Symlinks whose targets leave the repository: `(path, target)`.
    #[error("symlinks leave the repository: {}", .0.iter().map(|(p, t)| format!("`{p}` -> `{t}`")).collect::<Vec<_>>().join(", "))]
    Escapes(Vec<(String, String)>),
    /// git or disk failure.
    #[error("cannot check out {commit} into `{dir}`: {message}")]
    Checkout {
        /// The commit.
        commit: String,
        /// The destination.
        dir: String,
        /// What failed.
        message: String,
    },
}

/// A checked-out commit in a private temporary directory (mode 0700, removed on drop): the tree
/// at [`Sealed::root`], and a scratch folder beside it for reports and helpers. Nothing in the
/// paths names fixci (`$TMPDIR/.tmpXXXXXX/repo`), so code under test cannot tell verification
/// from CI by its working directory; and nothing above the tree but the private folder and the
/// system's temporary folder, which pytest is kept from reading (`--confcutdir`, `-c`).
pub struct Sealed {
    dir: tempfile::TempDir,
    /// The commit checked out.
    pub commit: Oid,
}

impl Sealed {
    /// The tree's root.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    /// A folder fixci owns outside the tree (reports, the Python helper).
    pub fn scratch(&self) -> PathBuf {
        self.dir.path().join("scratch")
    }

    /// Writes `bytes` at `rel` inside the tree (folders created), replacing what is there.
    pub fn write(&self, rel: &str, bytes: &[u8]) -> std::io::Result<()> {
        let p = self.root().join(rel);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d)?;
        }
        let _ = std::fs::remove_file(&p);
        std::fs::write(p, bytes)
    }

    /// Removes `rel` from the tree, if present.
    pub fn remove(&self, rel: &str) -> std::io::Result<()> {
        match std::fs::remove_file(self.root().join(rel)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// True when `target` (a symlink's contents), resolved from the folder of `path` (relative to
/// the repository root), stays inside the repository. Lexical: `..` may not climb above the
/// root; absolute targets always leave.
pub fn link_stays_inside(path: &str, target: &str) -> bool {
    let t = Path::new(target);
    if t.is_absolute() {
        return false;
    }
    let mut depth: i64 = Path::new(path).components().count() as i64 - 1;
    for c in t.components() {
        match c {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            _ => return false,
        }
        if depth < 0 {
            return false;
        }
    }
    true
}

/// Symlinks in `commit`'s tree whose targets leave the repository, as `(path, target)`.
pub fn escaping_symlinks(
    repo: &Repository,
    commit: Oid,
) -> Result<Vec<(String, String)>, git2::Error> {
    let tree = repo.find_commit(commit)?.tree()?;
    let mut out = Vec::new();
    tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
        if entry.filemode() == 0o120000 {
            let path = format!("{dir}{}", entry.name().unwrap_or(""));
            if let Ok(blob) = repo.find_blob(entry.id()) {
                let target = String::from_utf8_lossy(blob.content()).into_owned();
                if !link_stays_inside(&path, &target) {
                    out.push((path, target));
                }
            }
        }
        git2::TreeWalkResult::Ok
    })?;
    Ok(out)
}

/// Checks `commit` out of `repo`'s object database into a new temporary directory (under
/// `parent`, or the system's temporary folder). The repository's index, HEAD and worktree are
/// not touched.
///
/// # Errors
/// [`SealError::Escapes`] when a symlink leaves the repository; [`SealError::Checkout`] on git
/// or disk failures.
pub fn seal(repo: &Repository, commit: Oid, parent: Option<&Path>) -> Result<Sealed, SealError> {
    let fail = |dir: &Path, message: String| SealError::Checkout {
        commit: commit.to_string(),
        dir: dir.display().to_string(),
        message,
    };
    let escapes =
        escaping_symlinks(repo, commit).map_err(|e| fail(Path::new("?"), e.to_string()))?;
    if !escapes.is_empty() {
        return Err(SealError::Escapes(escapes));
    }
    let b = tempfile::Builder::new();
    let dir = match parent {
        Some(p) => b.tempdir_in(p),
        None => b.tempdir(),
    }
    .map_err(|e| fail(Path::new("(temp)"), e.to_string()))?;
    let root = dir.path().join("repo");
    std::fs::create_dir_all(dir.path().join("scratch"))
        .and_then(|_| std::fs::create_dir_all(&root))
        .map_err(|e| fail(&root, e.to_string()))?;
    let tree = repo
        .find_commit(commit)
        .and_then(|c| c.tree())
        .map_err(|e| fail(&root, e.to_string()))?;
    let mut co = git2::build::CheckoutBuilder::new();
    co.target_dir(&root)
        .force()
        .recreate_missing(true)
        .update_index(false);
    repo.checkout_tree(tree.as_object(), Some(&mut co))
        .map_err(|e| fail(&root, e.to_string()))?;
    Ok(Sealed { dir, commit })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_symlink_check() {
        assert!(link_stays_inside("a/b/link", "../c.py"));
        assert!(link_stays_inside("link", "pkg/x.py"));
        assert!(!link_stays_inside("link", "../outside.py"));
        assert!(!link_stays_inside("a/link", "../../x"));
        assert!(!link_stays_inside("a/link", "/etc/passwd"));
        assert!(!link_stays_inside("a/link", "b/../../../x"));
    }
}
