//! The tree being verified stays the commit's. Test runs execute the agent's code inside the
//! sealed tree, which they may write (build output, caches): code that rewrites a test file of
//! the commit, or drops a `conftest.py`, a `.pth` or bytecode for a later run to load, would make
//! the next check pass without the commit fixing anything. [`Guard`] remembers every file of the
//! commit (its blob id and its `lstat` stamp) and, after each test run, finds:
//! - a file of the commit that was changed (stamp and content both differ from the blob; a
//!   rewrite with the same bytes is not a change), deleted, or replaced;
//! - a new file that the test-infrastructure rules refuse in a fix
//!   ([`crate::runners::test_infra::judge_test_infra`]: `conftest.py`, runner configs, `*.pth`,
//!   `*customize.py`, shadowing modules, ...), or Python bytecode for a module of the commit
//!   (fixci runs Python with `PYTHONDONTWRITEBYTECODE=1`, so only planted bytecode is there).
//!
//! Build output and other new files are left alone. The `ctime` in the stamp cannot be set from
//! user space, so a change cannot hide behind restored timestamps.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use git2::{ObjectType, Oid, Repository, TreeWalkMode, TreeWalkResult};

use crate::runners::test_infra::{Change, ChangedFile, judge_test_infra};

/// Most findings named in one description.
const MAX_NAMED: usize = 8;

/// New files whose text the test-infrastructure rules read (shared configs with test sections)
/// are read up to this size, in bytes.
const MAX_CONFIG_BYTES: u64 = 256 * 1024;

/// What `lstat` says of a file: device, inode, size, mode, and modification and change times
/// (seconds, nanoseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mode: u32,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(p: &Path) -> Option<Stamp> {
        let m = std::fs::symlink_metadata(p).ok()?;
        Some(Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mode: m.mode(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        })
    }
}

/// One file of the commit: its blob id (the bytes fixci wrote, for the reproduction test) and
/// its stamp when the guard last saw it unchanged.
#[derive(Debug, Clone)]
struct Entry {
    oid: Oid,
    stamp: Option<Stamp>,
}

/// The files of a commit checked out at `root`, to compare the tree with after each test run.
#[derive(Debug)]
pub struct Guard {
    root: PathBuf,
    files: HashMap<String, Entry>,
    dirs: HashSet<String>,
}

impl Guard {
    /// Remembers the files of `commit` (blobs and symbolic links of its tree; submodules have
    /// no files) as they are now under `root`, which holds its checkout.
    ///
    /// Errors: the commit or its tree cannot be read.
    pub fn new(repo: &Repository, commit: Oid, root: &Path) -> Result<Guard, git2::Error> {
        let tree = repo.find_commit(commit)?.tree()?;
        let mut files = HashMap::new();
        tree.walk(TreeWalkMode::PreOrder, |dir, e| {
            if e.kind() == Some(ObjectType::Blob) {
                if let Ok(name) = e.name() {
                    files.insert(format!("{dir}{name}"), e.id());
                }
            }
            TreeWalkResult::Ok
        })?;
        let mut g = Guard { root: root.to_path_buf(), files: HashMap::new(), dirs: HashSet::new() };
        for (path, oid) in files {
            g.expect_oid(&path, Some(oid));
        }
        Ok(g)
    }

    /// fixci itself wrote `bytes` at `rel` (relative to the root), or removed it (`None`): the
    /// guard expects that from now on.
    pub fn expect(&mut self, rel: &str, bytes: Option<&[u8]>) {
        let oid = bytes.map(|b| Oid::hash_object(ObjectType::Blob, b).unwrap_or(Oid::ZERO_SHA1));
        self.expect_oid(rel, oid);
    }

    fn expect_oid(&mut self, rel: &str, oid: Option<Oid>) {
        match oid {
            Some(oid) => {
                let stamp = Stamp::of(&self.root.join(rel));
                self.files.insert(rel.to_string(), Entry { oid, stamp });
                let mut d = rel;
                while let Some((parent, _)) = d.rsplit_once('/') {
                    if !self.dirs.insert(parent.to_string()) {
                        break;
                    }
                    d = parent;
                }
            }
            None => {
                self.files.remove(rel);
            }
        }
    }

    /// [`Guard::findings`] with every file's content compared with its blob, whatever its
    /// stamp says: for a tree that something else could write while it was being checked out
    /// (a checkout made beside running tests), where the first stamps prove nothing.
    pub fn findings_by_content(&mut self) -> Vec<String> {
        for e in self.files.values_mut() {
            e.stamp = None;
        }
        self.findings()
    }

    /// What test runs did to the tree since the guard last looked: one line per finding
    /// (`` `tests/test_ops.py`, a file of the commit, was changed ``), empty when nothing.
    /// Unchanged rewrites are accepted (their new stamp is kept).
    pub fn findings(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        let mut paths: Vec<&String> = self.files.keys().collect();
        paths.sort();
        let mut restamp = Vec::new();
        for rel in paths {
            let e = &self.files[rel];
            let p = self.root.join(rel);
            let now = Stamp::of(&p);
            if now.is_some() && now == e.stamp {
                continue;
            }
            let Some(now) = now else {
                out.push(format!("`{rel}`, a file of the commit, was deleted"));
                continue;
            };
            let bytes = if now.mode & libc::S_IFMT == libc::S_IFLNK {
                std::fs::read_link(&p).ok().map(|t| t.into_os_string().into_encoded_bytes())
            } else if now.mode & libc::S_IFMT == libc::S_IFREG {
                std::fs::read(&p).ok()
            } else {
                None
            };
            match bytes.and_then(|b| Oid::hash_object(ObjectType::Blob, &b).ok()) {
                Some(oid) if oid == e.oid => restamp.push((rel.clone(), now)),
                Some(_) => out.push(format!("`{rel}`, a file of the commit, was changed")),
                None => out.push(format!("`{rel}`, a file of the commit, was replaced")),
            }
        }
        for (rel, s) in restamp {
            if let Some(e) = self.files.get_mut(&rel) {
                e.stamp = Some(s);
            }
        }
        let mut all = Vec::new();
        crate::vcs::fingerprint::walk(&self.root, &mut all);
        let mut added: Vec<String> = all
            .iter()
            .filter_map(|p| p.strip_prefix(&self.root).ok())
            .map(|p| p.to_string_lossy().into_owned())
            .filter(|p| !self.files.contains_key(p))
            .collect();
        added.sort();
        let changes: Vec<ChangedFile> = added
            .iter()
            .map(|rel| ChangedFile {
                path: rel.clone(),
                change: Change::Added,
                old: None,
                new: read_config(&self.root.join(rel)),
            })
            .collect();
        let has = |p: &str| self.files.contains_key(p) || self.dirs.contains(p);
        for f in judge_test_infra(&changes, &has) {
            out.push(format!("`{}` was created: {}", f.path, f.rule));
        }
        for rel in &added {
            if let Some(module) = bytecode_source(rel).filter(|m| self.files.contains_key(m)) {
                out.push(format!(
                    "`{rel}` was created: Python bytecode for `{module}`, which Python would load \
                     instead of the commit's source"
                ));
            }
        }
        out
    }

    /// `None` when the tree is as the guard expects, else a sentence naming what changed (at
    /// most [`MAX_NAMED`] findings, then how many more).
    pub fn tampering(&mut self) -> Option<String> {
        let f = self.findings();
        if f.is_empty() {
            return None;
        }
        let mut s = format!(
            "the test run changed the tree being verified (the commit's files are fixci's): {}",
            f.iter().take(MAX_NAMED).cloned().collect::<Vec<_>>().join("; ")
        );
        if f.len() > MAX_NAMED {
            s.push_str(&format!("; and {} more", f.len() - MAX_NAMED));
        }
        Some(s)
    }
}

/// The text of a new file the test-infrastructure rules may read (shared configuration files,
/// at most [`MAX_CONFIG_BYTES`]); `None` for other files.
fn read_config(p: &Path) -> Option<String> {
    let name = p.file_name()?.to_string_lossy().to_ascii_lowercase();
    let config = matches!(
        name.as_str(),
        "setup.cfg" | "pyproject.toml" | "cargo.toml" | "package.json" | "pom.xml"
    ) || name.starts_with("build.gradle")
        || name.starts_with("vite.config.");
    let m = std::fs::symlink_metadata(p).ok()?;
    if !config || !m.is_file() || m.len() > MAX_CONFIG_BYTES {
        return None;
    }
    std::fs::read(p).ok().map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// The module a bytecode file is compiled from: `pkg/__pycache__/ops.cpython-311.pyc` (PEP 3147)
/// → `pkg/ops.py`; a legacy `pkg/ops.pyc` beside its source → `pkg/ops.py`.
fn bytecode_source(rel: &str) -> Option<String> {
    let stem = rel.strip_suffix(".pyc")?;
    let (dir, file) = stem.rsplit_once('/').map_or(("", stem), |(d, f)| (d, f));
    match dir.strip_suffix("__pycache__") {
        Some(parent) => {
            let module = file.split('.').next()?;
            Some(format!("{parent}{module}.py"))
        }
        None if dir.is_empty() => Some(format!("{file}.py")),
        None => Some(format!("{dir}/{file}.py")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(files: &[(&str, &str)]) -> (tempfile::TempDir, Repository, Oid) {
        let d = tempfile::tempdir().unwrap();
        let repo = Repository::init(d.path().join("repo")).unwrap();
        let mut idx = repo.index().unwrap();
        for (p, text) in files {
            let oid = repo.blob(text.as_bytes()).unwrap();
            let mut e = git2::IndexEntry {
                ctime: git2::IndexTime::new(0, 0),
                mtime: git2::IndexTime::new(0, 0),
                dev: 0,
                ino: 0,
                mode: 0o100644,
                uid: 0,
                gid: 0,
                file_size: text.len() as u32,
                id: oid,
                flags: 0,
                flags_extended: 0,
                path: p.as_bytes().to_vec(),
            };
            e.flags = (p.len() as u16) & 0xfff;
            idx.add(&e).unwrap();
        }
        let tree = repo.find_tree(idx.write_tree().unwrap()).unwrap();
        let sig = git2::Signature::now("t", "t@example.com").unwrap();
        let c = repo.commit(None, &sig, &sig, "c", &tree, &[]).unwrap();
        drop(tree);
        (d, repo, c)
    }

    fn checkout(root: &Path, files: &[(&str, &str)]) {
        for (p, text) in files {
            let f = root.join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, text).unwrap();
        }
    }

    const FILES: &[(&str, &str)] = &[
        ("calc/ops.py", "def total(xs):\n    return sum(xs)\n"),
        ("calc/__init__.py", ""),
        ("tests/test_ops.py", "from calc.ops import total\n\ndef test_total():\n    assert total([1]) == 1\n"),
    ];

    /// A checkout of [`FILES`] at `DIR/tree` and its guard (the folder lives as long as `DIR`).
    fn guarded() -> (tempfile::TempDir, PathBuf, Guard) {
        let (d, repo, c) = commit(FILES);
        let root = d.path().join("tree");
        checkout(&root, FILES);
        let g = Guard::new(&repo, c, &root).unwrap();
        (d, root, g)
    }

    #[test]
    fn an_untouched_tree_and_build_output_are_no_finding() {
        let (_d, root, mut g) = guarded();
        assert_eq!(g.findings(), Vec::<String>::new());
        checkout(&root, &[("target/debug/app", "bin"), ("build/out.txt", "x"), (".coverage", "")]);
        // Rewritten with the same bytes (a formatter, a generator): not a change.
        std::thread::sleep(std::time::Duration::from_millis(20));
        checkout(&root, &[FILES[0]]);
        assert_eq!(g.tampering(), None);
    }

    #[test]
    fn a_changed_deleted_or_replaced_file_of_the_commit_is_named() {
        let (_d, root, mut g) = guarded();
        // Same size, timestamps put back: the change time still gives it away.
        let t = root.join("tests/test_ops.py");
        let before = std::fs::metadata(&t).unwrap();
        std::fs::write(&t, FILES[2].1.replace("== 1", "!= 1")).unwrap();
        let times = std::fs::FileTimes::new()
            .set_modified(before.modified().unwrap())
            .set_accessed(before.accessed().unwrap());
        std::fs::File::options().write(true).open(&t).unwrap().set_times(times).unwrap();
        std::fs::remove_file(root.join("calc/__init__.py")).unwrap();
        std::fs::remove_file(root.join("calc/ops.py")).unwrap();
        std::os::unix::fs::symlink("/elsewhere/ops.py", root.join("calc/ops.py")).unwrap();
        let f = g.findings();
        assert_eq!(
            f,
            [
                "`calc/__init__.py`, a file of the commit, was deleted",
                "`calc/ops.py`, a file of the commit, was changed",
                "`tests/test_ops.py`, a file of the commit, was changed",
            ]
        );
        assert!(g.tampering().unwrap().starts_with("the test run changed the tree being verified"));
    }

    #[test]
    fn planted_runner_hooks_start_up_files_and_bytecode_are_named() {
        let (_d, root, mut g) = guarded();
        checkout(
            &root,
            &[
                ("tests/conftest.py", "import pytest\n"),
                ("zz.pth", "import os\n"),
                ("calc/__pycache__/ops.cpython-311.pyc", "\0"),
                ("other/__pycache__/x.cpython-311.pyc", "\0"),
                ("pyproject.toml", "[tool.pytest.ini_options]\naddopts = \"-p no:x\"\n"),
            ],
        );
        let f = g.findings();
        assert!(f.iter().any(|l| l.starts_with("`tests/conftest.py` was created: pytest conftest.py")), "{f:?}");
        assert!(f.iter().any(|l| l.starts_with("`zz.pth` was created")), "{f:?}");
        assert!(f.iter().any(|l| l.starts_with("`pyproject.toml` was created")), "{f:?}");
        assert!(
            f.contains(&"`calc/__pycache__/ops.cpython-311.pyc` was created: Python bytecode for `calc/ops.py`, which Python would load instead of the commit's source".to_string()),
            "{f:?}"
        );
        // Bytecode of no module of the commit is someone's build output.
        assert!(!f.iter().any(|l| l.contains("other/")), "{f:?}");
    }

    #[test]
    fn files_fixci_writes_or_removes_are_expected() {
        let (_d, root, mut g) = guarded();
        checkout(&root, &[("tests/test_repro.py", "def test_r():\n    pass\n")]);
        g.expect("tests/test_repro.py", Some(b"def test_r():\n    pass\n"));
        std::fs::remove_file(root.join("tests/test_ops.py")).unwrap();
        g.expect("tests/test_ops.py", None);
        assert_eq!(g.findings(), Vec::<String>::new());
        std::fs::write(root.join("tests/test_repro.py"), "def test_r():\n    assert 0\n").unwrap();
        assert_eq!(g.findings(), ["`tests/test_repro.py`, a file of the commit, was changed"]);
    }

    #[test]
    fn a_change_made_before_the_guard_looked_is_found_by_content() {
        let (d, repo, c) = commit(FILES);
        let root = d.path().join("tree");
        checkout(&root, FILES);
        std::fs::write(root.join("tests/test_ops.py"), "def test_total():\n    pass\n").unwrap();
        let mut g = Guard::new(&repo, c, &root).unwrap();
        assert_eq!(g.findings(), Vec::<String>::new(), "the first stamps are taken as they are");
        assert_eq!(g.findings_by_content(), ["`tests/test_ops.py`, a file of the commit, was changed"]);
    }

    #[test]
    fn bytecode_names_map_to_their_source() {
        assert_eq!(bytecode_source("a/__pycache__/m.cpython-311.pyc").as_deref(), Some("a/m.py"));
        assert_eq!(bytecode_source("__pycache__/m.cpython-311.opt-1.pyc").as_deref(), Some("m.py"));
        assert_eq!(bytecode_source("a/m.pyc").as_deref(), Some("a/m.py"));
        assert_eq!(bytecode_source("m.pyc").as_deref(), Some("m.py"));
        assert_eq!(bytecode_source("a/m.py"), None);
    }
}
