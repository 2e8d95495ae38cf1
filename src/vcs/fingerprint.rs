//! [`Fingerprint`]: what the user's repository looked like before the first agent ran, to be
//! compared after every agent stage.
//!
//! It records, each as a named entry with a SHA-256 of its content:
//! - `HEAD` (its symbolic target or commit) and every ref (`refs/...` name -> target), loose or
//!   packed, of the repository's common git folder, except remote-tracking refs
//!   (`refs/remotes/`), which a background `git fetch` of the user's editor moves;
//! - the index by its entries (path, mode, object id, stage), not its bytes: a `git status` that
//!   only refreshes cached file times does not count as a change;
//! - files of the git folder a process could use to change what the user runs or sees:
//!   `config`, `config.worktree`, `info/*` (`exclude`, `attributes`, `sparse-checkout`),
//!   `objects/info/alternates`, `shallow`, every file under `hooks/`, and the names of linked
//!   worktrees (`worktrees/*`);
//! - the working tree: every path `git status` reports (untracked included, ignored files not)
//!   with the hash of its content, so a further edit to an already modified file shows too.
//!
//! Paths in [`Fingerprint::changed`] are relative to the working tree (`README.md`) or to it
//! through the git folder (`.git/config`, `.git/hooks/post-checkout`); refs are named as refs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use git2::{Repository, StatusOptions};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Ctx, VcsError};

/// Entries of a repository's state: name -> hash (or value for refs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// The repository's working tree (its git folder for a bare repository).
    pub root: PathBuf,
    /// `name -> sha256 hex` (or a ref's target).
    pub entries: BTreeMap<String, String>,
}

impl Fingerprint {
    /// Records the repository whose working tree (or git folder) is `root`.
    ///
    /// Errors: `root` is not a git repository or its status cannot be read.
    pub fn record(root: &Path) -> Result<Fingerprint, VcsError> {
        let repo =
            Repository::open(root).ctx(|| format!("open repository `{}`", root.display()))?;
        let mut e = BTreeMap::new();
        let workdir = repo.workdir().map(Path::to_path_buf);
        let shown = |p: &Path| -> String {
            match &workdir {
                Some(w) => match p.strip_prefix(w) {
                    Ok(rel) => rel.to_string_lossy().into_owned(),
                    Err(_) => p.display().to_string(),
                },
                None => p.display().to_string(),
            }
        };
        let head = match repo.find_reference("HEAD") {
            Ok(h) => h
                .symbolic_target()
                .ok()
                .flatten()
                .map(str::to_string)
                .or_else(|| h.target().map(|t| t.to_string()))
                .unwrap_or_default(),
            Err(_) => String::new(),
        };
        e.insert("HEAD".into(), head);
        if let Ok(refs) = repo.references() {
            for r in refs.flatten() {
                let name = String::from_utf8_lossy(r.name_bytes()).into_owned();
                // Fix branches are fixci's own: other runs of the same repository export theirs
                // while this one runs.
                if name.starts_with("refs/remotes/") || name.starts_with("refs/heads/fixci/") {
                    continue;
                }
                let target = r
                    .target()
                    .map(|t| t.to_string())
                    .or_else(|| {
                        r.symbolic_target()
                            .ok()
                            .flatten()
                            .map(|s| format!("-> {s}"))
                    })
                    .unwrap_or_default();
                e.insert(name, target);
            }
        }
        let git_dir = repo.path().to_path_buf();
        let common = repo.commondir().to_path_buf();
        if let Ok(index) = repo.index() {
            let mut h = Sha256::new();
            for entry in index.iter() {
                h.update(&entry.path);
                h.update(format!(" {:o} {} {}\n", entry.mode, entry.id, entry.flags).as_bytes());
            }
            e.insert(shown(&git_dir.join("index")), format!("{:x}", h.finalize()));
        }
        let mut files: Vec<PathBuf> = vec![git_dir.join("config.worktree")];
        for name in ["config", "shallow", "objects/info/alternates"] {
            files.push(common.join(name));
        }
        for dir in ["info", "hooks"] {
            walk(&common.join(dir), &mut files);
        }
        if let Ok(rd) = std::fs::read_dir(common.join("worktrees")) {
            for d in rd.flatten() {
                e.insert(shown(&d.path()), "worktree".into());
            }
        }
        for f in files {
            if let Some(h) = hash_file(&f) {
                e.insert(shown(&f), h);
            }
        }
        if let Some(w) = &workdir {
            let mut opts = StatusOptions::new();
            opts.include_untracked(true)
                .recurse_untracked_dirs(true)
                .include_ignored(false)
                .exclude_submodules(true);
            let statuses = repo
                .statuses(Some(&mut opts))
                .ctx(|| format!("read the status of `{}`", root.display()))?;
            for s in statuses.iter() {
                let Ok(p) = s.path() else { continue };
                let content = hash_file(&w.join(p)).unwrap_or_else(|| "-".into());
                e.insert(
                    format!("worktree:{p}"),
                    format!("{:?} {content}", s.status()),
                );
            }
        }
        Ok(Fingerprint {
            root: root.to_path_buf(),
            entries: e,
        })
    }

    /// The entries that differ between `self` (before) and `now`, as paths or ref names, sorted:
    /// `README.md`, `.git/config`, `.git/hooks/post-checkout`, `refs/heads/x`, ....
    pub fn changed(&self, now: &Fingerprint) -> Vec<String> {
        let mut out: Vec<String> = self
            .entries
            .iter()
            .filter(|(k, v)| now.entries.get(*k) != Some(v))
            .map(|(k, _)| k.clone())
            .chain(
                now.entries
                    .keys()
                    .filter(|k| !self.entries.contains_key(*k))
                    .cloned(),
            )
            .map(|k| k.strip_prefix("worktree:").map(str::to_string).unwrap_or(k))
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

/// Every regular file or symlink under `dir` (recursively), symlinks not followed.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for d in rd.flatten() {
        let p = d.path();
        match d.file_type() {
            Ok(t) if t.is_dir() => walk(&p, out),
            Ok(_) => out.push(p),
            Err(_) => {}
        }
    }
}

/// The start of a run's failure reason when the user's repository changed.
pub const CHANGED_REASON: &str = "the agent changed your repository";

/// Most paths listed in the reason; the rest are counted.
const MAX_LISTED: usize = 20;

/// The fingerprint of the user's repository a run compares against, held in memory by the
/// process driving the run (a resume records the repository afresh: what the user did between
/// two processes is theirs).
#[derive(Debug, Default)]
pub struct UserRepoGuard(std::sync::Mutex<Option<Fingerprint>>);

impl UserRepoGuard {
    /// Records the user's repository at `root` (before the first agent, and again after fixci's
    /// own change to it: the exported fix branch).
    ///
    /// Errors: the repository cannot be read.
    pub fn record(&self, root: &std::path::Path) -> Result<(), VcsError> {
        let fp = Fingerprint::record(root)?;
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(fp);
        Ok(())
    }

    /// The failure reason when the user's repository differs from its recorded fingerprint:
    /// `the agent changed your repository: .git/config, README.md`; `None` when it is unchanged
    /// or nothing was recorded. A repository that can no longer be read counts as changed.
    pub fn changed(&self) -> Option<String> {
        let guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let before = guard.as_ref()?;
        let changed = match Fingerprint::record(&before.root) {
            Ok(now) => before.changed(&now),
            Err(e) => vec![format!("(the repository cannot be read: {e})")],
        };
        (!changed.is_empty()).then(|| reason(&changed))
    }
}

/// `the agent changed your repository: a, b, ... and N more`.
fn reason(changed: &[String]) -> String {
    let mut list = changed
        .iter()
        .take(MAX_LISTED)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if changed.len() > MAX_LISTED {
        list.push_str(&format!(" and {} more", changed.len() - MAX_LISTED));
    }
    format!("{CHANGED_REASON}: {list}")
}

/// SHA-256 of a file's bytes (a symlink: of its target, marked; executable bit included), or
/// `None` when it does not exist.
fn hash_file(p: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(p).ok()?;
    let mut h = Sha256::new();
    if meta.file_type().is_symlink() {
        h.update(b"symlink:");
        h.update(std::fs::read_link(p).ok()?.to_string_lossy().as_bytes());
    } else if meta.is_dir() {
        h.update(b"dir");
    } else {
        h.update(if meta.permissions().mode() & 0o111 != 0 {
            b"x:"
        } else {
            b"-:"
        });
        h.update(std::fs::read(p).ok()?);
    }
    Some(format!("{:x}", h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn git(dir: &Path, args: &[&str]) {
        let ok = Command::new("git")
            .args(["-c", "user.name=U", "-c", "user.email=u@example.com"])
            .args(args)
            .current_dir(dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "git {args:?}");
    }

    #[test]
    fn every_kind_of_change_is_named() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        git(r, &["init", "-q", "-b", "main"]);
        std::fs::write(r.join("README.md"), "hi\n").unwrap();
        std::fs::write(r.join("dirty.txt"), "one\n").unwrap();
        git(r, &["add", "-A"]);
        git(r, &["commit", "-qm", "base"]);
        std::fs::write(r.join("dirty.txt"), "two\n").unwrap();
        let before = Fingerprint::record(r).unwrap();
        assert!(before.changed(&Fingerprint::record(r).unwrap()).is_empty());
        // A status that refreshes the index's cached file times is not a change.
        let t = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(r.join("README.md"))
            .unwrap()
            .set_modified(t)
            .unwrap();
        git(r, &["status", "--porcelain"]);
        assert!(before.changed(&Fingerprint::record(r).unwrap()).is_empty());
        git(r, &["add", "dirty.txt"]);
        let staged = before.changed(&Fingerprint::record(r).unwrap());
        assert!(staged.contains(&".git/index".to_string()), "{staged:?}");
        git(r, &["reset", "-q", "dirty.txt"]);

        std::fs::write(r.join("README.md"), "owned\n").unwrap();
        std::fs::write(r.join("dirty.txt"), "three\n").unwrap();
        std::fs::write(r.join(".git/hooks/post-checkout"), "#!/bin/sh\n").unwrap();
        std::fs::write(r.join(".git/info/exclude"), "*.secret\n").unwrap();
        git(r, &["config", "remote.origin.pushurl", "http://evil/"]);
        git(r, &["branch", "other"]);
        git(r, &["update-ref", "refs/remotes/origin/main", "HEAD"]);
        let changed = before.changed(&Fingerprint::record(r).unwrap());
        assert_eq!(
            changed,
            [
                ".git/config",
                ".git/hooks/post-checkout",
                ".git/info/exclude",
                "README.md",
                "dirty.txt",
                "refs/heads/other"
            ],
            "{changed:?}"
        );
    }
}
