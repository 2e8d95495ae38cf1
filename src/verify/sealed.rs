//! A sealed tree: one commit checked out from the git objects alone into a fresh directory fixci
//! owns. Nothing the agent left on disk reaches it: no untracked or ignored files, no
//! `__pycache__`, no files hidden by `.git/info/exclude`. A symlink whose target leaves the
//! repository is refused before anything is written.
//!
//! The tree is written by walking the commit's git tree and copying each blob's bytes: folders,
//! files (mode 0666 or, for git mode `100755`, 0777, both less the umask, as `git checkout`
//! does), symlinks (created last, after every file, so no write goes through one), and
//! submodules (gitlinks) as empty folders. Every name is checked before anything is written: an
//! empty name, `.`, `..`, `.git` (any case) or a name holding `/` or NUL refuses the whole tree.
//! No filter, smudge or `textconv` command runs and no conversion applies: neither the clone's
//! configuration (which the agent can edit: `core.autocrlf`, `filter.*`) nor any
//! `.gitattributes` (the clone's or the commit's) is read, so the bytes on disk are the blobs'
//! bytes. (The libgit2 `checkout_tree` used before took line-ending attributes from the clone's
//! working tree and configuration, not from the commit.)
//!
//! Blobs are read and written on up to [`WRITERS`] threads; each helper thread opens the
//! repository itself, as a `git2::Repository` may not be shared between threads.

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, mpsc};

use git2::{ObjectType, Oid, Repository};

/// Most threads that read and write blobs at once (the calling thread included).
pub const WRITERS: usize = 4;

/// Fewest files per writing thread: below this a helper thread costs more than it saves.
const FILES_PER_WRITER: usize = 256;

/// Why a commit cannot be sealed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// Symlinks whose targets leave the repository: `(path, target)`.
    #[error("symlinks leave the repository: {}", .0.iter().map(|(p, t)| format!("`{p}` -> `{t}`")).collect::<Vec<_>>().join(", "))]
    Escapes(Vec<(String, String)>),
    /// git or disk failure, or a path in the tree that may not be written (`..`, `.git`).
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
///
/// Dropping it does not delete the tree in the caller's thread: the private folder is renamed
/// (`.tmpXXXXXX` to `.tmpXXXXXX.removing`, same parent) and removed by a background thread
/// (see [`remove_later`]); [`wait_for_removals`] waits until every such removal is done.
pub struct Sealed {
    /// The private folder (mode 0700) holding `repo` and `scratch`.
    dir: PathBuf,
    /// The commit checked out.
    pub commit: Oid,
}

impl Drop for Sealed {
    fn drop(&mut self) {
        remove_later(std::mem::take(&mut self.dir));
    }
}

impl Sealed {
    /// The tree's root.
    pub fn root(&self) -> PathBuf {
        self.dir.join("repo")
    }

    /// A folder fixci owns outside the tree (reports, the Python helper).
    pub fn scratch(&self) -> PathBuf {
        self.dir.join("scratch")
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

/// One entry of a commit's tree, in pre-order (a folder before what it holds).
enum Item {
    /// A folder; a gitlink (submodule) is an empty one.
    Dir(PathBuf),
    /// A regular file: path, blob, executable (git mode `100755`).
    File(PathBuf, Oid, bool),
    /// A symlink: path, target bytes.
    Link(PathBuf, Vec<u8>),
}

/// The commit's tree, read from the object database and checked, nothing written yet.
struct Plan {
    items: Vec<Item>,
    /// Symlinks whose targets leave the repository, `(path, target)`.
    escapes: Vec<(String, String)>,
}

/// Why a name in a tree may not be written: empty, `.`, `..`, `.git` in any case, or holding
/// `/` or NUL (git refuses these at checkout too).
fn bad_name(name: &[u8]) -> bool {
    matches!(name, b"" | b"." | b"..")
        || name.eq_ignore_ascii_case(b".git")
        || name.iter().any(|&b| b == b'/' || b == 0)
}

/// Walks `commit`'s tree without writing anything.
fn plan(repo: &Repository, commit: Oid) -> Result<Plan, String> {
    let tree = repo
        .find_commit(commit)
        .and_then(|c| c.tree())
        .map_err(|e| e.to_string())?;
    let mut out = Plan {
        items: Vec::new(),
        escapes: Vec::new(),
    };
    let mut bad = Vec::new();
    // Every symlink by its path (`/`-separated bytes), for the resolution through other links.
    let mut links = std::collections::HashMap::new();
    // (folder path, its tree), depth first; a stack rather than recursion, as trees can nest deep.
    let mut stack = vec![(PathBuf::new(), tree)];
    while let Some((dir, tree)) = stack.pop() {
        let mut subtrees = Vec::new();
        for entry in tree.iter() {
            let name = entry.name_bytes();
            let path = dir.join(OsStr::from_bytes(name));
            if bad_name(name) {
                bad.push(path.to_string_lossy().into_owned());
                continue;
            }
            let mode = entry.filemode_raw();
            match mode & 0o170000 {
                0o040000 => {
                    let sub = repo.find_tree(entry.id()).map_err(|e| e.to_string())?;
                    subtrees.push((path, sub));
                }
                0o100000 => out
                    .items
                    .push(Item::File(path, entry.id(), mode & 0o100 != 0)),
                0o120000 => {
                    let blob = repo.find_blob(entry.id()).map_err(|e| e.to_string())?;
                    let target = blob.content().to_vec();
                    let (p, t) = (path.to_string_lossy(), String::from_utf8_lossy(&target));
                    if target.is_empty() || target.contains(&0) || !link_stays_inside(&p, &t) {
                        out.escapes.push((p.into_owned(), t.into_owned()));
                    }
                    links.insert(path.as_os_str().as_bytes().to_vec(), target.clone());
                    out.items.push(Item::Link(path, target));
                }
                0o160000 => out.items.push(Item::Dir(path)),
                _ => {
                    return Err(format!(
                        "`{}` has an unknown git mode {mode:o}",
                        path.display()
                    ));
                }
            }
        }
        // A folder's item comes before its contents, which are planned when it is popped.
        for (path, sub) in subtrees.into_iter().rev() {
            out.items.push(Item::Dir(path.clone()));
            stack.push((path, sub));
        }
    }
    if !bad.is_empty() {
        return Err(format!(
            "the tree holds paths that may not be written: {}",
            bad.iter()
                .map(|p| format!("`{p}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if out.escapes.is_empty() {
        for (path, target) in &links {
            if !resolves_inside(&links, path, target) {
                let (p, t) = (
                    String::from_utf8_lossy(path),
                    String::from_utf8_lossy(target),
                );
                out.escapes.push((p.into_owned(), t.into_owned()));
            }
        }
        out.escapes.sort();
    }
    Ok(out)
}

/// Most symlinks followed while resolving one (Linux's `MAXSYMLINKS`); more is a loop.
const MAX_HOPS: usize = 40;

/// True when the symlink at `path` (`/`-separated, relative to the root) with `target`
/// resolves inside the tree, following the tree's other symlinks (`links`, by path) the way
/// the kernel would once the tree is written: a target that is lexically inside can still
/// climb out through another link (`d/l -> ..`, `d/x -> l/..`). A chain longer than
/// [`MAX_HOPS`], or an absolute target met on the way, counts as leaving.
fn resolves_inside(
    links: &std::collections::HashMap<Vec<u8>, Vec<u8>>,
    path: &[u8],
    target: &[u8],
) -> bool {
    let split = |b: &[u8]| -> Vec<Vec<u8>> {
        b.split(|&c| c == b'/')
            .filter(|c| !c.is_empty())
            .map(<[u8]>::to_vec)
            .collect()
    };
    // The folder holding the link, then the target's parts still to walk (last part on top).
    let mut at = split(path);
    at.pop();
    let mut todo: Vec<Vec<u8>> = split(target).into_iter().rev().collect();
    let mut hops = 0;
    while let Some(part) = todo.pop() {
        match part.as_slice() {
            b"." => {}
            b".." => {
                if at.pop().is_none() {
                    return false;
                }
            }
            _ => {
                at.push(part);
                if let Some(next) = links.get(&at.join(&b'/')) {
                    hops += 1;
                    if hops > MAX_HOPS || next.first() == Some(&b'/') {
                        return false;
                    }
                    at.pop();
                    todo.extend(split(next).into_iter().rev());
                }
            }
        }
    }
    true
}

/// Symlinks in `commit`'s tree whose targets leave the repository, as `(path, target)`
/// (paths and targets decoded lossily when not UTF-8). An empty target, or one holding NUL, is
/// counted as leaving.
///
/// # Errors
/// The commit or one of its trees or symlink blobs cannot be read, or a name in the tree may not
/// be written (see [`seal`]).
pub fn escaping_symlinks(
    repo: &Repository,
    commit: Oid,
) -> Result<Vec<(String, String)>, git2::Error> {
    plan(repo, commit)
        .map(|p| p.escapes)
        .map_err(|m| git2::Error::from_str(&m))
}

/// Writes the files of `items` under `root`, taking the next file from `next` until none is
/// left or `stop` is set; blobs are read from `repo`'s object database.
fn write_files(
    repo: &Repository,
    root: &Path,
    files: &[(&Path, Oid, bool)],
    next: &AtomicUsize,
) -> Result<(), String> {
    let odb = repo.odb().map_err(|e| e.to_string())?;
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(&(path, oid, exec)) = files.get(i) else {
            return Ok(());
        };
        let fail = |m: String| {
            // Stops the other writers: nothing is taken after an error.
            next.store(usize::MAX / 2, Ordering::Relaxed);
            format!("`{}`: {m}", path.display())
        };
        let obj = odb.read(oid).map_err(|e| fail(e.to_string()))?;
        if obj.kind() != ObjectType::Blob {
            return Err(fail(format!("{oid} is a {}, not a blob", obj.kind())));
        }
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(if exec { 0o777 } else { 0o666 })
            .open(root.join(path))
            .and_then(|mut f| f.write_all(obj.data()))
            .map_err(|e| fail(e.to_string()))?;
    }
}

/// Writes the planned tree under `root` (an empty folder): folders, then files (on up to
/// [`WRITERS`] threads), then symlinks.
fn write_tree(repo: &Repository, root: &Path, items: &[Item]) -> Result<(), String> {
    let mut files = Vec::new();
    for item in items {
        match item {
            Item::Dir(p) => {
                std::fs::create_dir(root.join(p)).map_err(|e| format!("`{}`: {e}", p.display()))?
            }
            Item::File(p, oid, exec) => files.push((p.as_path(), *oid, *exec)),
            Item::Link(..) => {}
        }
    }
    let next = AtomicUsize::new(0);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let helpers = (files.len() / FILES_PER_WRITER)
        .min(cores)
        .min(WRITERS)
        .saturating_sub(1);
    let gitdir = repo.path();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..helpers)
            .map(|_| {
                s.spawn(|| {
                    let own = Repository::open(gitdir).map_err(|e| e.to_string())?;
                    write_files(&own, root, &files, &next)
                })
            })
            .collect();
        let mut result = write_files(repo, root, &files, &next);
        for h in handles {
            let r = h
                .join()
                .unwrap_or_else(|_| Err("a writer thread panicked".into()));
            result = result.and(r);
        }
        result
    })?;
    for item in items {
        if let Item::Link(p, target) = item {
            std::os::unix::fs::symlink(OsStr::from_bytes(target), root.join(p))
                .map_err(|e| format!("`{}`: {e}", p.display()))?;
        }
    }
    Ok(())
}

/// Checks `commit` out of `repo`'s object database into a new temporary directory (under
/// `parent`, or the system's temporary folder), as the module documentation describes. The
/// repository's index, HEAD and worktree are not touched.
///
/// # Errors
/// [`SealError::Escapes`] when a symlink leaves the repository (nothing is written);
/// [`SealError::Checkout`] on git or disk failures, or when a name in the tree may not be
/// written (nothing is written).
pub fn seal(repo: &Repository, commit: Oid, parent: Option<&Path>) -> Result<Sealed, SealError> {
    let fail = |dir: &Path, message: String| SealError::Checkout {
        commit: commit.to_string(),
        dir: dir.display().to_string(),
        message,
    };
    let plan = plan(repo, commit).map_err(|m| fail(Path::new("?"), m))?;
    if !plan.escapes.is_empty() {
        return Err(SealError::Escapes(plan.escapes));
    }
    let mut b = tempfile::Builder::new();
    // Private: code under test run by another user cannot read or change the tree.
    b.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700));
    let dir = match parent {
        Some(p) => b.tempdir_in(p),
        None => b.tempdir(),
    }
    .map_err(|e| fail(Path::new("(temp)"), e.to_string()))?;
    let root = dir.path().join("repo");
    std::fs::create_dir_all(dir.path().join("scratch"))
        .and_then(|_| std::fs::create_dir_all(&root))
        .map_err(|e| fail(&root, e.to_string()))?;
    // On failure the partial tree is removed here, before the error returns.
    write_tree(repo, &root, &plan.items).map_err(|m| fail(&root, m))?;
    Ok(Sealed {
        dir: dir.keep(),
        commit,
    })
}

/// A [`seal`] running on its own thread, so that the checkout's cost hides behind other work
/// (the reproduction and CI-test runs hide the base commit's checkout in
/// [`crate::verify::verify_candidate`]). The thread opens the repository itself from
/// [`Repository::path`] (a `Repository` may not be shared between threads).
///
/// It is never left running: [`BackgroundSeal::join`] waits for it, and dropping it unjoined
/// (verification stopped early) waits for it too and then drops its tree, which is removed as
/// any dropped [`Sealed`] is.
pub struct BackgroundSeal {
    /// The thread, or why it could not start (the seal then runs in [`BackgroundSeal::join`]).
    handle: Result<std::thread::JoinHandle<Result<Sealed, SealError>>, String>,
    commit: Oid,
    parent: Option<PathBuf>,
}

impl BackgroundSeal {
    /// Starts sealing `commit` of `repo` into a new temporary directory under `parent`, or the
    /// system's temporary folder (as [`seal`]).
    pub fn start(repo: &Repository, commit: Oid, parent: Option<&Path>) -> BackgroundSeal {
        let gitdir = repo.path().to_path_buf();
        let parent = parent.map(Path::to_path_buf);
        let parent_copy = parent.clone();
        let handle = std::thread::Builder::new()
            .name("fixci-seal".into())
            .spawn(move || {
                let repo = Repository::open(&gitdir).map_err(|e| SealError::Checkout {
                    commit: commit.to_string(),
                    dir: "?".into(),
                    message: format!("cannot open `{}`: {e}", gitdir.display()),
                })?;
                seal(&repo, commit, parent.as_deref())
            })
            .map_err(|e| e.to_string());
        BackgroundSeal {
            handle,
            commit,
            parent: parent_copy,
        }
    }

    /// The commit being sealed.
    pub fn commit(&self) -> Oid {
        self.commit
    }

    /// Waits for the seal and returns what [`seal`] returned. When the thread could not be
    /// started, seals here, from `repo`, instead.
    ///
    /// # Errors
    /// As [`seal`]; a panic of the thread is a [`SealError::Checkout`].
    pub fn join(mut self, repo: &Repository) -> Result<Sealed, SealError> {
        match std::mem::replace(&mut self.handle, Err(String::new())) {
            Ok(h) => h.join().unwrap_or_else(|_| {
                Err(SealError::Checkout {
                    commit: self.commit.to_string(),
                    dir: "?".into(),
                    message: "the checkout thread panicked".into(),
                })
            }),
            Err(_) => seal(repo, self.commit, self.parent.as_deref()),
        }
    }
}

impl Drop for BackgroundSeal {
    fn drop(&mut self) {
        if let Ok(h) = std::mem::replace(&mut self.handle, Err(String::new())) {
            // The tree, if any, is dropped here: removed in the background.
            let _ = h.join();
        }
    }
}

/// Removals handed to the background thread and not finished yet.
static PENDING: Mutex<usize> = Mutex::new(0);
/// Signalled when [`PENDING`] falls to zero.
static IDLE: Condvar = Condvar::new();
/// The background remover's queue, once started.
static QUEUE: Mutex<Option<mpsc::Sender<PathBuf>>> = Mutex::new(None);

/// Removes the folder `dir` (a sealed tree's private folder) off the calling thread, so that
/// deleting thousands of files is not in the critical path: the folder is first renamed to
/// `<name>.removing` in the same parent (one `rename`, so its old name is free at once and a
/// process still writing by path cannot add to it), then removed by one background thread,
/// one folder after another. Count it as pending until [`wait_for_removals`] sees it done.
/// When no thread can be started the folder is removed here. An empty path is ignored.
pub fn remove_later(dir: PathBuf) {
    if dir.as_os_str().is_empty() {
        return;
    }
    let mut trash = dir.clone().into_os_string();
    trash.push(".removing");
    let trash = PathBuf::from(trash);
    let target = if std::fs::rename(&dir, &trash).is_ok() {
        trash
    } else {
        dir
    };
    *lock(&PENDING) += 1;
    let mut queue = lock(&QUEUE);
    if queue.is_none() {
        let (tx, rx) = mpsc::channel::<PathBuf>();
        let started = std::thread::Builder::new()
            .name("fixci-remover".into())
            .spawn(move || {
                for p in rx {
                    let _ = std::fs::remove_dir_all(&p);
                    done_one();
                }
            });
        if started.is_ok() {
            *queue = Some(tx);
            // Library users (tests, examples) that never call `wait_for_removals` still leave
            // nothing behind when they exit normally.
            // SAFETY: `at_exit` is an `extern "C" fn()` that does not unwind.
            unsafe { libc::atexit(at_exit) };
        }
    }
    let sent = match queue.as_ref() {
        Some(tx) => tx.send(target).map_err(|e| e.0),
        None => Err(target),
    };
    drop(queue);
    if let Err(target) = sent {
        let _ = std::fs::remove_dir_all(&target);
        done_one();
    }
}

/// Blocks until every removal started by [`remove_later`] (every dropped [`Sealed`]) is done.
/// fixci calls it before it exits (`crate::cli::main`, which every command, interrupted or
/// not, returns through); it is also registered with `atexit` for other users of the library.
/// A second SIGINT/SIGTERM exits at once (`_exit`) and skips it.
pub fn wait_for_removals() {
    let mut n = lock(&PENDING);
    while *n > 0 {
        n = IDLE.wait(n).unwrap_or_else(std::sync::PoisonError::into_inner);
    }
}

extern "C" fn at_exit() {
    // A panic may not cross into C: nothing here panics (poisoned locks are taken as they are).
    wait_for_removals();
}

fn done_one() {
    let mut n = lock(&PENDING);
    *n = n.saturating_sub(1);
    if *n == 0 {
        IDLE.notify_all();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn lexical_symlink_check() {
        assert!(link_stays_inside("a/b/link", "../c.py"));
        assert!(link_stays_inside("link", "pkg/x.py"));
        assert!(!link_stays_inside("link", "../outside.py"));
        assert!(!link_stays_inside("a/link", "../../x"));
        assert!(!link_stays_inside("a/link", "/etc/passwd"));
        assert!(!link_stays_inside("a/link", "b/../../../x"));
    }

    /// One entry of a test tree: a file (bytes, executable), a symlink, a gitlink or a folder.
    enum E<'a> {
        F(&'a [u8], bool),
        L(&'a str),
        Git,
        D(Vec<(&'a [u8], E<'a>)>),
    }

    /// Writes `entries` as a tree with git2's tree builder.
    fn tree(repo: &Repository, entries: &[(&[u8], E)]) -> Oid {
        let mut b = repo.treebuilder(None).unwrap();
        for (name, e) in entries {
            let (oid, mode) = match e {
                E::F(bytes, exec) => (
                    repo.blob(bytes).unwrap(),
                    if *exec { 0o100755 } else { 0o100644 },
                ),
                E::L(t) => (repo.blob(t.as_bytes()).unwrap(), 0o120000),
                E::Git => (
                    Oid::from_str("1111111111111111111111111111111111111111").unwrap(),
                    0o160000,
                ),
                E::D(sub) => (tree(repo, sub), 0o040000),
            };
            b.insert(*name, oid, mode).unwrap();
        }
        b.write().unwrap()
    }

    /// A tree written byte by byte (git's format, entries as given), for trees git2's tree
    /// builder refuses to make.
    fn raw_tree(repo: &Repository, entries: &[(&str, &[u8], Oid)]) -> Oid {
        let mut bytes = Vec::new();
        for (mode, name, oid) in entries {
            bytes.extend_from_slice(format!("{mode} ").as_bytes());
            bytes.extend_from_slice(name);
            bytes.push(0);
            bytes.extend_from_slice(oid.as_bytes());
        }
        repo.odb().unwrap().write(ObjectType::Tree, &bytes).unwrap()
    }

    fn commit(repo: &Repository, tree: Oid) -> Oid {
        let sig = git2::Signature::now("t", "t@example.com").unwrap();
        let tree = repo.find_tree(tree).unwrap();
        repo.commit(None, &sig, &sig, "c", &tree, &[]).unwrap()
    }

    /// Every path under `root` but `.git`: file (bytes, executable), symlink (target) or folder.
    fn snapshot(root: &Path) -> BTreeMap<Vec<u8>, String> {
        let mut out = BTreeMap::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                let rel = p
                    .strip_prefix(root)
                    .unwrap()
                    .as_os_str()
                    .as_bytes()
                    .to_vec();
                if rel == b".git" {
                    continue;
                }
                let m = std::fs::symlink_metadata(&p).unwrap();
                let what = if m.file_type().is_symlink() {
                    format!("link {:?}", std::fs::read_link(&p).unwrap())
                } else if m.is_dir() {
                    stack.push(p);
                    "dir".to_string()
                } else {
                    let exec = m.permissions().mode() & 0o100 != 0;
                    format!("file exec={exec} {:?}", std::fs::read(&p).unwrap())
                };
                out.insert(rel, what);
            }
        }
        out
    }

    fn git(dir: &Path, args: &[&str]) {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .expect("git");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn the_sealed_tree_equals_git_worktree_add_of_the_commit() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path().join("r")).unwrap();
        // Enough files that the helper writer threads take part.
        let many: Vec<(Vec<u8>, Vec<u8>)> = (0..700)
            .map(|i| {
                (
                    format!("m{i:03}.py").into_bytes(),
                    format!("x = {i}\n").repeat(i % 7).into_bytes(),
                )
            })
            .collect();
        let many: Vec<(&[u8], E)> = many
            .iter()
            .map(|(n, b)| (n.as_slice(), E::F(b.as_slice(), i_exec(n))))
            .collect();
        let t = tree(
            &repo,
            &[
                (b"a.py", E::F(b"print('a')\n", false)),
                (b"empty.txt", E::F(b"", false)),
                (b"caf\xe9 \xff.txt", E::F(b"not UTF-8 name\n", false)),
                (b"crlf.txt", E::F(b"a\r\nb\n", false)),
                (
                    b"bin",
                    E::D(vec![(b"run.sh", E::F(b"#!/bin/sh\necho hi\n", true))]),
                ),
                (
                    b"pkg",
                    E::D(vec![
                        (b"sub", E::D(vec![(b"deep.py", E::F(b"DEEP = 1\n", false))])),
                        (b"up", E::L("../a.py")),
                        (b"dangling", E::L("sub/missing.py")),
                    ]),
                ),
                (b"link", E::L("pkg/sub/deep.py")),
                (b"vendor", E::D(vec![(b"lib", E::Git)])),
                (b"many", E::D(many)),
            ],
        );
        let c = commit(&repo, t);
        let parent = tempfile::tempdir().unwrap();
        let sealed = seal(&repo, c, Some(parent.path())).unwrap();
        let wt = dir.path().join("wt");
        git(
            &dir.path().join("r"),
            &[
                "worktree",
                "add",
                "-q",
                "--detach",
                wt.to_str().unwrap(),
                &c.to_string(),
            ],
        );
        let (got, want) = (snapshot(&sealed.root()), snapshot(&wt));
        assert_eq!(
            got.len(),
            715,
            "{:?}",
            got.keys().take(20).collect::<Vec<_>>()
        );
        assert_eq!(got, want);
        assert_eq!(got[b"vendor/lib".as_slice()], "dir");
        assert!(got[b"bin/run.sh".as_slice()].starts_with("file exec=true"));
        assert!(got[b"a.py".as_slice()].starts_with("file exec=false"));
        assert_eq!(got[b"link".as_slice()], "link \"pkg/sub/deep.py\"");
        assert_eq!(
            std::fs::read(sealed.root().join("pkg/up")).unwrap(),
            b"print('a')\n"
        );
        let private = std::fs::metadata(sealed.root().parent().unwrap()).unwrap();
        assert_eq!(private.permissions().mode() & 0o777, 0o700);
        assert!(sealed.scratch().is_dir());
    }

    fn i_exec(name: &[u8]) -> bool {
        name.ends_with(b"3.py")
    }

    /// `parent` holds nothing (what a refused seal must leave behind).
    fn assert_empty(parent: &Path) {
        let left: Vec<_> = std::fs::read_dir(parent)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    /// A repository with a commit of `n` small files in two folders and a symlink.
    fn many_files(dir: &Path, n: usize) -> (Repository, Oid) {
        let repo = Repository::init(dir).unwrap();
        let files: Vec<(Vec<u8>, Vec<u8>)> = (0..n)
            .map(|i| (format!("m{i}.py").into_bytes(), format!("X = {i}\n").into_bytes()))
            .collect();
        let half: Vec<(&[u8], E)> = files
            .iter()
            .map(|(n, b)| (n.as_slice(), E::F(b.as_slice(), false)))
            .collect();
        let (a, b) = half.split_at(n / 2);
        let mut a: Vec<(&[u8], E)> = a.iter().map(|(n, e)| (*n, copy(e))).collect();
        a.push((b"up", E::L("../a/m0.py")));
        let b = b.iter().map(|(n, e)| (*n, copy(e))).collect();
        let t = tree(&repo, &[(b"a", E::D(a)), (b"b", E::D(b))]);
        let c = commit(&repo, t);
        (repo, c)
    }

    fn copy<'a>(e: &E<'a>) -> E<'a> {
        match e {
            E::F(b, x) => E::F(b, *x),
            E::L(t) => E::L(t),
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_dropped_tree_is_renamed_at_once_and_gone_after_waiting_for_removals() {
        let dir = tempfile::tempdir().unwrap();
        let (repo, c) = many_files(dir.path(), 600);
        let parent = tempfile::tempdir().unwrap();
        let sealed = seal(&repo, c, Some(parent.path())).unwrap();
        let private = sealed.root().parent().unwrap().to_path_buf();
        assert!(sealed.root().join("a/up").is_file());
        drop(sealed);
        // The tree's name is free as soon as it is dropped; the files go in the background.
        assert!(!private.exists());
        wait_for_removals();
        assert_empty(parent.path());
        // Waiting with nothing pending returns at once.
        wait_for_removals();
    }

    #[test]
    fn a_background_seal_joins_to_the_tree_a_seal_writes() {
        let dir = tempfile::tempdir().unwrap();
        let (repo, c) = many_files(dir.path(), 600);
        let (p1, p2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let bg = BackgroundSeal::start(&repo, c, Some(p1.path()));
        assert_eq!(bg.commit(), c);
        let here = seal(&repo, c, Some(p2.path())).unwrap();
        let there = bg.join(&repo).unwrap();
        assert!(there.root().starts_with(p1.path()));
        assert_eq!(there.commit, c);
        assert_eq!(snapshot(&there.root()), snapshot(&here.root()));
        assert_eq!(snapshot(&there.root()).len(), 603);
        // A refusal comes back through the thread as it would from `seal`, nothing written.
        let t = tree(&repo, &[(b"out", E::L("../../etc/passwd"))]);
        let bad = commit(&repo, t);
        let p3 = tempfile::tempdir().unwrap();
        match BackgroundSeal::start(&repo, bad, Some(p3.path())).join(&repo) {
            Err(SealError::Escapes(e)) => {
                assert_eq!(e, vec![("out".to_string(), "../../etc/passwd".to_string())])
            }
            other => panic!("{:?}", other.map(|s| s.root())),
        }
        assert_empty(p3.path());
    }

    #[test]
    fn a_background_seal_that_is_never_joined_is_waited_for_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (repo, c) = many_files(dir.path(), 2000);
        let parent = tempfile::tempdir().unwrap();
        drop(BackgroundSeal::start(&repo, c, Some(parent.path())));
        // Dropping it waited for the thread: nothing is still being written, and the tree it
        // wrote is removed like a dropped one.
        wait_for_removals();
        assert_empty(parent.path());
    }

    #[test]
    fn an_escaping_symlink_is_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        for (name, target) in [
            ("out", "../../etc/passwd"),
            ("abs", "/etc/passwd"),
            ("empty", ""),
        ] {
            let t = tree(
                &repo,
                &[
                    (b"a.py", E::F(b"A = 1\n", false)),
                    (b"d", E::D(vec![(name.as_bytes(), E::L(target))])),
                ],
            );
            let c = commit(&repo, t);
            let parent = tempfile::tempdir().unwrap();
            match seal(&repo, c, Some(parent.path())) {
                Err(SealError::Escapes(e)) => {
                    assert_eq!(e, vec![(format!("d/{name}"), target.to_string())])
                }
                other => panic!("{name}: {:?}", other.map(|s| s.root())),
            }
            assert_empty(parent.path());
            assert_eq!(escaping_symlinks(&repo, c).unwrap().len(), 1);
        }
    }

    #[test]
    fn a_symlink_climbing_out_through_another_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        // Each `x` is inside by its own text; `l` makes it leave (or loop).
        for (l, x, leaves) in [
            ("..", "l/..", true),
            ("../d/..", "l/../a.py", true),
            ("y", "l", true),
            ("..", "l/d/l/a.py", false),
            ("../a.py", "l", false),
        ] {
            let mut entries = vec![(b"l".as_slice(), E::L(l)), (b"x", E::L(x))];
            if x == "l" && l == "y" {
                entries.push((b"y", E::L("x")));
            }
            let t = tree(
                &repo,
                &[(b"a.py", E::F(b"A = 1\n", false)), (b"d", E::D(entries))],
            );
            let c = commit(&repo, t);
            let parent = tempfile::tempdir().unwrap();
            let got = seal(&repo, c, Some(parent.path()));
            if leaves {
                match got {
                    Err(SealError::Escapes(e)) => assert!(
                        e.contains(&("d/x".to_string(), x.to_string())),
                        "{l} {x}: {e:?}"
                    ),
                    other => panic!("{l} {x}: {:?}", other.map(|s| s.root())),
                }
                assert_empty(parent.path());
            } else {
                let s = got.unwrap();
                assert_eq!(std::fs::read(s.root().join("d/x")).unwrap(), b"A = 1\n");
            }
        }
    }

    #[test]
    fn names_git_refuses_are_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let blob = repo
            .blob(b"[core]\n\tfsmonitor = touch /tmp/owned\n")
            .unwrap();
        for name in [b"..".as_slice(), b".git", b".GIT", b"."] {
            let sub = raw_tree(&repo, &[("100644", b"config", blob)]);
            let t = raw_tree(&repo, &[("100644", b"a.py", blob), ("40000", name, sub)]);
            let c = commit(&repo, t);
            let parent = tempfile::tempdir().unwrap();
            let err = seal(&repo, c, Some(parent.path())).err().expect("refused");
            let shown = String::from_utf8_lossy(name).into_owned();
            assert!(
                matches!(&err, SealError::Checkout { message, .. } if message.contains(&format!("`{shown}`"))),
                "{err}"
            );
            assert_empty(parent.path());
        }
    }

    #[test]
    fn a_malformed_tree_is_an_error_that_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let blob = repo.blob(b"x\n").unwrap();
        // Two entries of one name: the second write would replace the first.
        let dup = raw_tree(&repo, &[("100644", b"a", blob), ("100644", b"a", blob)]);
        // A tree entry pointing at a blob.
        let not_tree = raw_tree(&repo, &[("40000", b"d", blob)]);
        // A file entry pointing at a tree.
        let inner = raw_tree(&repo, &[("100644", b"x", blob)]);
        let not_blob = raw_tree(&repo, &[("100644", b"f", inner)]);
        for (what, t) in [
            ("duplicate", dup),
            ("tree is a blob", not_tree),
            ("blob is a tree", not_blob),
        ] {
            let c = commit(&repo, t);
            let parent = tempfile::tempdir().unwrap();
            let err = seal(&repo, c, Some(parent.path())).err();
            assert!(
                matches!(err, Some(SealError::Checkout { .. })),
                "{what}: {err:?}"
            );
            assert_empty(parent.path());
        }
    }

    #[test]
    fn the_clones_config_and_filters_do_not_change_the_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let marker = dir.path().join("smudged");
        let mut cfg = repo.config().unwrap();
        cfg.set_bool("core.autocrlf", true).unwrap();
        cfg.set_str(
            "filter.evil.smudge",
            &format!("touch {}; cat", marker.display()),
        )
        .unwrap();
        std::fs::write(dir.path().join(".gitattributes"), "* text eol=crlf\n").unwrap();
        let t = tree(
            &repo,
            &[
                (
                    b".gitattributes",
                    E::F(b"* filter=evil text eol=crlf ident\n", false),
                ),
                (b"a.txt", E::F(b"one\ntwo $Id$\n", false)),
            ],
        );
        let c = commit(&repo, t);
        let sealed = seal(&repo, c, None).unwrap();
        // The blob's bytes: no line-ending conversion, no `ident` expansion, no smudge command.
        assert_eq!(
            std::fs::read(sealed.root().join("a.txt")).unwrap(),
            b"one\ntwo $Id$\n"
        );
        assert!(!marker.exists());
    }
}
