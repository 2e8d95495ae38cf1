//! [`Fingerprint`]: what the user's repository looked like before the first agent ran, to be
//! compared after every agent stage.
//!
//! It records, each as a named entry with a SHA-256 of its content:
//! - `HEAD` (its symbolic target or commit) and every ref (`refs/...` name -> target), loose or
//!   packed, of the repository's common git folder, remote-tracking refs and fixci's own
//!   `fixci/...` branches included, and the `packed-refs` file itself;
//! - the index by its entries (path, mode, object id, stage), not its bytes: a `git status` that
//!   only refreshes cached file times does not count as a change;
//! - files of the git folder a process could use to change what the user runs or sees:
//!   `config`, `config.worktree`, `info/*` (`exclude`, `attributes`, `sparse-checkout`),
//!   `objects/info/alternates`, `shallow`, every file under `hooks/`, and the names of linked
//!   worktrees (`worktrees/*`);
//! - the working tree: every path `git status` reports (untracked included) with the hash of its
//!   content, so a further edit to an already modified file shows too;
//! - ignored files and folders by presence, size and modification time, not content (a build
//!   folder can be large): an ignored file is one entry; an ignored folder is one entry
//!   summarising the names, sizes and times of what is under it, walked in name order, with at
//!   most [`MAX_IGNORED`] entries for the whole repository: past that bound an ignored folder is
//!   recorded by its own presence and time only, and changes deeper in it go unnoticed.
//!   Excluded places (fixci's output folder and cache, when they lie inside the repository) are
//!   left out.
//!
//! One change is not the agent's: a new `refs/heads/fixci/...` branch that another fixci run
//! of the same repository exported while this one ran, recognised by name and target in the
//! export register under fixci's cache ([`note_export`]); the run's own branch is in the
//! fingerprint recorded again after its export. Every other new, moved or deleted ref counts.
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
        Fingerprint::record_excluding(root, &[])
    }

    /// [`Fingerprint::record`], leaving out the paths under `exclude` (absolute).
    ///
    /// Errors: as `record`.
    pub fn record_excluding(root: &Path, exclude: &[PathBuf]) -> Result<Fingerprint, VcsError> {
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
        for name in ["config", "shallow", "objects/info/alternates", "packed-refs"] {
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
            let exclude: Vec<PathBuf> = exclude
                .iter()
                .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
                .collect();
            let wc = std::fs::canonicalize(w).unwrap_or_else(|_| w.clone());
            let excluded = |p: &Path| exclude.iter().any(|x| wc.join(p).starts_with(x));
            let mut opts = StatusOptions::new();
            opts.include_untracked(true)
                .recurse_untracked_dirs(true)
                .include_ignored(true)
                .recurse_ignored_dirs(false)
                .exclude_submodules(true);
            let statuses = repo
                .statuses(Some(&mut opts))
                .ctx(|| format!("read the status of `{}`", root.display()))?;
            let mut budget = MAX_IGNORED;
            for s in statuses.iter() {
                let Ok(p) = s.path() else { continue };
                let rel = Path::new(p.trim_end_matches('/'));
                if excluded(rel) {
                    continue;
                }
                if s.status().contains(git2::Status::IGNORED) {
                    let summary = ignored_summary(&wc.join(rel), &exclude, &mut budget);
                    e.insert(format!("worktree:{}", rel.display()), format!("ignored {summary}"));
                    continue;
                }
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

/// Most entries (files and folders) under ignored folders that a fingerprint stats.
pub const MAX_IGNORED: usize = 20_000;

/// An ignored path's presence, size and modification time; for a folder, a SHA-256 over the
/// relative names, sizes and times of what is under it (name order, symlinks not followed,
/// `exclude` left out), taking at most `budget` entries (decremented), after which only the
/// folder's own time counts.
fn ignored_summary(path: &Path, exclude: &[PathBuf], budget: &mut usize) -> String {
    let stamp = |m: &std::fs::Metadata| {
        let t = m
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        format!("{} {}", m.len(), t)
    };
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return "-".into();
    };
    if !meta.is_dir() {
        return stamp(&meta);
    }
    let mut h = Sha256::new();
    h.update(stamp(&meta).as_bytes());
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        let mut names: Vec<PathBuf> = rd.flatten().map(|d| d.path()).collect();
        names.sort();
        for p in names.into_iter().rev() {
            if *budget == 0 {
                return format!("{:x} (bounded)", h.finalize());
            }
            if exclude.iter().any(|x| p.starts_with(x)) {
                continue;
            }
            *budget -= 1;
            let Ok(m) = std::fs::symlink_metadata(&p) else { continue };
            h.update(p.strip_prefix(path).unwrap_or(&p).to_string_lossy().as_bytes());
            h.update(format!(" {}\n", stamp(&m)).as_bytes());
            if m.is_dir() {
                stack.push(p);
            }
        }
    }
    format!("{:x}", h.finalize())
}

/// Every regular file or symlink under `dir` (recursively), symlinks not followed.
pub fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
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
pub struct UserRepoGuard {
    before: std::sync::Mutex<Option<Fingerprint>>,
    exclude: std::sync::Mutex<Vec<PathBuf>>,
}

impl UserRepoGuard {
    /// Leaves `paths` (fixci's output folder, its cache) out of every later fingerprint, for
    /// when they lie inside the repository's working tree.
    pub fn exclude(&self, paths: Vec<PathBuf>) {
        *self.exclude.lock().unwrap_or_else(|p| p.into_inner()) = paths;
    }

    /// Records the user's repository at `root` (before the first agent, and again after fixci's
    /// own change to it: the exported fix branch, or its removal).
    ///
    /// Errors: the repository cannot be read.
    pub fn record(&self, root: &std::path::Path) -> Result<(), VcsError> {
        let fp = Fingerprint::record_excluding(root, &self.excluded())?;
        *self.before.lock().unwrap_or_else(|p| p.into_inner()) = Some(fp);
        Ok(())
    }

    fn excluded(&self) -> Vec<PathBuf> {
        self.exclude.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The failure reason when the user's repository differs from its recorded fingerprint:
    /// `the agent changed your repository: .git/config, README.md`; `None` when it is unchanged
    /// or nothing was recorded. A repository that can no longer be read counts as changed. New
    /// `fixci/...` branches that the export register names (other runs' exports) do not count.
    pub fn changed(&self) -> Option<String> {
        let guard = self.before.lock().unwrap_or_else(|p| p.into_inner());
        let before = guard.as_ref()?;
        let changed = match Fingerprint::record_excluding(&before.root, &self.excluded()) {
            Ok(now) => {
                let exported = exports(&before.root);
                before
                    .changed(&now)
                    .into_iter()
                    .filter(|k| {
                        !(k.starts_with("refs/heads/fixci/")
                            && !before.entries.contains_key(k)
                            && now.entries.get(k).is_some_and(|t| {
                                exported.iter().any(|(r, c)| r == k && c == t)
                            }))
                    })
                    .collect()
            }
            Err(e) => vec![format!("(the repository cannot be read: {e})")],
        };
        (!changed.is_empty()).then(|| reason(&changed))
    }
}

/// The export register: `CACHE/exported-branches.jsonl`, one JSON line per fix branch a fixci
/// run created: `{"repo": common git folder, "ref": "refs/heads/fixci/...", "target": sha}`.
fn register() -> PathBuf {
    crate::defaults::cache_dir().join("exported-branches.jsonl")
}

/// The canonical common git folder of the repository at `root` (the register's key).
fn repo_key(root: &Path) -> Option<String> {
    let r = Repository::open(root).ok()?;
    let c = std::fs::canonicalize(r.commondir()).ok()?;
    Some(c.display().to_string())
}

/// Records in the export register that fixci created branch `branch` (short name) at `target`
/// in the repository at `root`, so that concurrent runs of that repository do not take it for
/// their agent's change. Best effort: a register that cannot be written only makes such a run
/// report the branch.
pub fn note_export(root: &Path, branch: &str, target: &str) {
    use std::io::Write as _;
    let Some(repo) = repo_key(root) else { return };
    let line = serde_json::json!({"repo": repo, "ref": format!("refs/heads/{branch}"), "target": target});
    let path = register();
    if let Some(d) = path.parent() {
        let _ = std::fs::create_dir_all(d);
    }
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(&path) {
        let _ = f.write_all(format!("{line}\n").as_bytes());
    }
}

/// `(ref, target)` pairs of the export register for the repository at `root`.
fn exports(root: &Path) -> Vec<(String, String)> {
    let Some(repo) = repo_key(root) else { return Vec::new() };
    std::fs::read_to_string(register())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["repo"] == repo.as_str())
        .filter_map(|v| Some((v["ref"].as_str()?.to_string(), v["target"].as_str()?.to_string())))
        .collect()
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
                "refs/heads/other",
                "refs/remotes/origin/main"
            ],
            "{changed:?}"
        );
    }

    /// A repository with a commit, an ignored file, an ignored build folder and fixci's output
    /// folder (ignored too) inside it.
    fn repo_with_ignored() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        git(r, &["init", "-q", "-b", "main"]);
        std::fs::write(r.join(".gitignore"), "*.log\nbuild/\noutputs/\n").unwrap();
        std::fs::write(r.join("a.py"), "x = 1\n").unwrap();
        git(r, &["add", "-A"]);
        git(r, &["commit", "-qm", "base"]);
        std::fs::write(r.join("debug.log"), "one\n").unwrap();
        std::fs::create_dir_all(r.join("build/deep")).unwrap();
        std::fs::write(r.join("build/deep/lib.so"), "bin").unwrap();
        std::fs::create_dir_all(r.join("outputs/run-1")).unwrap();
        d
    }

    #[test]
    fn each_kind_of_ref_and_git_file_change_is_named() {
        type Change = fn(&Path);
        let kinds: [(&str, Change, &str); 9] = [
            ("remote-tracking ref", |r| git(r, &["update-ref", "refs/remotes/origin/main", "HEAD"]), "refs/remotes/origin/main"),
            ("a fixci branch", |r| git(r, &["branch", "fixci/evil"]), "refs/heads/fixci/evil"),
            ("a tag", |r| git(r, &["tag", "v9"]), "refs/tags/v9"),
            ("packed-refs", |r| git(r, &["pack-refs", "--all"]), ".git/packed-refs"),
            ("HEAD", |r| git(r, &["symbolic-ref", "HEAD", "refs/heads/other"]), "HEAD"),
            ("info/attributes", |r| std::fs::write(r.join(".git/info/attributes"), "* diff=evil\n").unwrap(), ".git/info/attributes"),
            ("a hook", |r| std::fs::write(r.join(".git/hooks/pre-push"), "#!/bin/sh\n").unwrap(), ".git/hooks/pre-push"),
            ("config", |r| git(r, &["config", "core.fsmonitor", "/tmp/evil"]), ".git/config"),
            ("index", |r| git(r, &["rm", "-q", "--cached", "a.py"]), ".git/index"),
        ];
        for (what, change, named) in kinds {
            let d = repo_with_ignored();
            let before = Fingerprint::record(d.path()).unwrap();
            change(d.path());
            let changed = before.changed(&Fingerprint::record(d.path()).unwrap());
            assert!(changed.iter().any(|c| c == named), "{what}: {changed:?}");
        }
    }

    #[test]
    fn ignored_files_count_by_size_and_time_and_excluded_places_do_not() {
        let d = repo_with_ignored();
        let r = d.path();
        let exclude = vec![r.join("outputs")];
        let before = Fingerprint::record_excluding(r, &exclude).unwrap();
        // fixci's own output folder inside the repository changes freely.
        std::fs::write(r.join("outputs/run-1/state.json"), "{}").unwrap();
        assert!(before.changed(&Fingerprint::record_excluding(r, &exclude).unwrap()).is_empty());
        std::fs::write(r.join("debug.log"), "two, longer\n").unwrap();
        std::fs::write(r.join("build/deep/lib.so"), "other").unwrap();
        std::fs::write(r.join("new.log"), "").unwrap();
        let changed = before.changed(&Fingerprint::record_excluding(r, &exclude).unwrap());
        assert_eq!(changed, ["build", "debug.log", "new.log"], "{changed:?}");
        // Same size, new time.
        let before = Fingerprint::record_excluding(r, &exclude).unwrap();
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(60);
        std::fs::File::options().write(true).open(r.join("debug.log")).unwrap().set_modified(later).unwrap();
        let changed = before.changed(&Fingerprint::record_excluding(r, &exclude).unwrap());
        assert_eq!(changed, ["debug.log"]);
    }

    #[test]
    fn an_ignored_folder_is_walked_only_up_to_the_bound() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("big");
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..5 {
            std::fs::write(dir.join(format!("f{i}")), "x").unwrap();
        }
        let mut budget = 3;
        let s = ignored_summary(&dir, &[], &mut budget);
        assert!(s.ends_with("(bounded)") && budget == 0, "{s}");
        let mut budget = 100;
        let full = ignored_summary(&dir, &[], &mut budget);
        assert_eq!(budget, 95);
        std::fs::write(dir.join("f4"), "longer").unwrap();
        let mut budget = 100;
        assert_ne!(ignored_summary(&dir, &[], &mut budget), full);
    }
}
