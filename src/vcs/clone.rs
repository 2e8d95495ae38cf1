//! fixci's private clone: where agents work, never a worktree of the user's repository.
//!
//! [`private_clone`] makes a repository with its own `.git` (its own config, hooks, index, refs
//! and HEAD) whose object store borrows the user's through `objects/info/alternates` (as
//! `git clone --shared` does, see <https://git-scm.com/docs/git-clone#Documentation/git-clone.txt---shared>
//! and <https://git-scm.com/docs/gitrepository-layout> for `objects/info/alternates`): nothing
//! is copied, and every object fixci or the agent writes lands in the clone's own store. git
//! never writes into an alternate object store; the user's objects are read-only to the agent
//! only where the sandbox binds them read-only (without a sandbox, the user-repository
//! fingerprint catches changes to the user's refs and files, not to its object files).
//!
//! [`export_fix_branch`] brings the fix commit back: the objects reachable from it that the
//! user's repository lacks are copied object by object with libgit2 (no transport, no hook, no
//! config-driven command) and the branch is created there. A run without a fix never calls it,
//! so it leaves no branch and no worktree in the user's repository.

use std::path::{Path, PathBuf};

use git2::{BranchType, ObjectType, Oid, Repository, RepositoryInitOptions};

use super::{Ctx, VcsError};

/// Creates the private clone at `dest` (which must not exist or be empty): alternates to the
/// object store of `user`, branch `branch` at `commit`, HEAD on it and its files checked out.
/// A shallow user repository's `shallow` file is copied so history walks stop where its do.
///
/// Errors: `dest` cannot be created, `commit` is not in `user`, or the checkout fails.
pub fn private_clone(
    user: &Repository,
    dest: &Path,
    branch: &str,
    commit: Oid,
) -> Result<Repository, VcsError> {
    let objects = std::fs::canonicalize(user.commondir().join("objects")).map_err(|e| {
        io(
            format!("find the object store of `{}`", user.path().display()),
            e,
        )
    })?;
    let mut opts = RepositoryInitOptions::new();
    opts.no_reinit(true)
        .external_template(false)
        .initial_head(&format!("refs/heads/{branch}"));
    let repo = Repository::init_opts(dest, &opts)
        .ctx(|| format!("create the private clone `{}`", dest.display()))?;
    let git_dir = repo.path().to_path_buf();
    drop(repo);
    let info = git_dir.join("objects/info");
    std::fs::create_dir_all(&info).map_err(|e| io(format!("create `{}`", info.display()), e))?;
    std::fs::write(info.join("alternates"), format!("{}\n", objects.display()))
        .map_err(|e| io(format!("write `{}`", info.join("alternates").display()), e))?;
    let shallow = user.commondir().join("shallow");
    if shallow.is_file() {
        std::fs::copy(&shallow, git_dir.join("shallow"))
            .map_err(|e| io(format!("copy `{}`", shallow.display()), e))?;
    }
    let repo = Repository::open(dest).ctx(|| format!("open `{}`", dest.display()))?;
    {
        let c = repo
            .find_commit(commit)
            .ctx(|| format!("find commit {commit} through the shared object store"))?;
        repo.branch(branch, &c, false)
            .ctx(|| format!("create branch `{branch}` in the private clone"))?;
        let mut co = git2::build::CheckoutBuilder::new();
        co.force();
        repo.checkout_head(Some(&mut co))
            .ctx(|| format!("check out `{branch}` in the private clone"))?;
    }
    Ok(repo)
}

/// Copies the fix commit `commit` of the private clone at `clone` into the user's repository
/// at `user_root` and creates a branch for it there: `wanted` when no branch of that name
/// exists (or it already points at `commit`, as after a resume), else the first free
/// `wanted-2`, `wanted-3`, .... Returns the branch's name. The user's HEAD, index, files and
/// other refs are not touched; no hook runs.
///
/// Errors: either repository cannot be opened, an object is missing from the clone, or the
/// branch cannot be created.
pub fn export_fix_branch(
    user_root: &Path,
    clone: &Path,
    commit: Oid,
    wanted: &str,
) -> Result<String, VcsError> {
    let user = Repository::open(user_root).ctx(|| format!("open `{}`", user_root.display()))?;
    let src = Repository::open(clone).ctx(|| format!("open `{}`", clone.display()))?;
    copy_objects(&src, &user, commit)?;
    let slug = wanted.strip_prefix("fixci/").unwrap_or(wanted);
    let mut name = match user.find_branch(wanted, BranchType::Local) {
        Ok(b) if b.get().target() == Some(commit) => return Ok(wanted.to_string()),
        Ok(_) => super::free_branch_name(&user, slug),
        Err(_) => wanted.to_string(),
    };
    let c = user
        .find_commit(commit)
        .ctx(|| format!("find the copied commit {commit}"))?;
    // Another run may take the name between the look-up and the creation: take the next one.
    // While another run creates it, its reference is locked: look again after a moment.
    let mut locked = 0;
    loop {
        match user.branch(&name, &c, false) {
            Ok(_) => return Ok(name),
            Err(e) if e.code() == git2::ErrorCode::Exists => {
                name = super::free_branch_name(&user, slug);
            }
            Err(e) if e.code() == git2::ErrorCode::Locked && locked < 50 => {
                locked += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
                if user.find_branch(&name, BranchType::Local).is_ok() {
                    name = super::free_branch_name(&user, slug);
                }
            }
            Err(e) => {
                return Err(e).ctx(|| format!("create branch `{name}`"));
            }
        }
    }
}

/// Like [`export_fix_branch`], for an attempt that continues the existing fix branch `branch`
/// (`fixci run --event`): the branch moves forward to `commit` when its tip is an ancestor of
/// it (or is created when absent). Never rewinds or rewrites a branch.
///
/// Errors: as [`export_fix_branch`]; the branch has commits that `commit` does not contain.
pub fn advance_fix_branch(
    user_root: &Path,
    clone: &Path,
    commit: Oid,
    branch: &str,
) -> Result<String, VcsError> {
    let user = Repository::open(user_root).ctx(|| format!("open `{}`", user_root.display()))?;
    let src = Repository::open(clone).ctx(|| format!("open `{}`", clone.display()))?;
    copy_objects(&src, &user, commit)?;
    let c = user
        .find_commit(commit)
        .ctx(|| format!("find the copied commit {commit}"))?;
    if let Ok(mut b) = user.find_branch(branch, BranchType::Local) {
        let tip = b.get().target();
        let ahead = tip.is_some_and(|t| {
            t == commit || user.graph_descendant_of(commit, t).unwrap_or(false)
        });
        if !ahead {
            return Err(git2::Error::from_str(&format!(
                "branch `{branch}` moved while fixci worked: it is not an ancestor of the fix commit"
            )))
            .ctx(|| format!("advance branch `{branch}`"));
        }
        b.get_mut()
            .set_target(commit, "fixci: next attempt")
            .ctx(|| format!("advance branch `{branch}`"))?;
    } else {
        user.branch(branch, &c, false)
            .ctx(|| format!("create branch `{branch}`"))?;
    }
    Ok(branch.to_string())
}

/// Copies every object reachable from `commit` in `src` that `dst` lacks: commits back to the
/// first parent `dst` has, their trees and blobs (a tree already in `dst` is skipped whole).
fn copy_objects(src: &Repository, dst: &Repository, commit: Oid) -> Result<(), VcsError> {
    let sodb = src.odb().ctx(|| "open the clone's object store".into())?;
    let dodb = dst
        .odb()
        .ctx(|| "open the repository's object store".into())?;
    let mut stack = vec![commit];
    while let Some(oid) = stack.pop() {
        if dodb.exists(oid) {
            continue;
        }
        let obj = sodb.read(oid).ctx(|| format!("read object {oid}"))?;
        match obj.kind() {
            ObjectType::Commit => {
                let c = src.find_commit(oid).ctx(|| format!("read commit {oid}"))?;
                stack.push(c.tree_id());
                stack.extend(c.parent_ids());
            }
            ObjectType::Tree => {
                let t = src.find_tree(oid).ctx(|| format!("read tree {oid}"))?;
                // Submodule entries (commits) live in other repositories.
                stack.extend(
                    t.iter()
                        .filter(|e| e.kind() != Some(ObjectType::Commit))
                        .map(|e| e.id()),
                );
            }
            _ => {}
        }
        // A concurrent run copying the same object holds its lock file for a moment.
        let mut tries = 0;
        let written = loop {
            match dodb.write(obj.kind(), obj.data()) {
                Ok(w) => break w,
                Err(_) if dodb.exists(oid) => break oid,
                Err(_) if tries < 50 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => return Err(e).ctx(|| format!("write object {oid}")),
            }
        };
        if written != oid {
            return Err(VcsError::Cli {
                what: format!("copy object {oid}"),
                stderr: format!("it hashed to {written}"),
            });
        }
    }
    Ok(())
}

/// Puts fixci's cache clone at `dest` back into a state only fixci chose: its config holds
/// `core` basics and `remote.origin` (url `source`) and nothing else, its hooks folder is
/// emptied. Whatever a process planted there earlier (a hook, `core.fsmonitor`,
/// `remote.origin.uploadpack`, `url.*.insteadOf`) is gone before git runs in it.
///
/// Errors: the config or hooks cannot be written.
pub fn sanitize_cache_clone(dest: &Path, source: &str) -> std::io::Result<()> {
    let git_dir = dest.join(".git");
    let quoted = source.replace('\\', "\\\\").replace('"', "\\\"");
    let config = format!(
        "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n\tlogallrefupdates = true\n[remote \"origin\"]\n\turl = \"{quoted}\"\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n"
    );
    std::fs::write(git_dir.join("config"), config)?;
    let hooks = git_dir.join("hooks");
    if hooks.is_dir() || hooks.is_symlink() {
        remove_any(&hooks)?;
    }
    std::fs::create_dir_all(&hooks)?;
    for name in ["config.worktree", "info/attributes"] {
        let p = git_dir.join(name);
        if p.exists() || p.is_symlink() {
            remove_any(&p)?;
        }
    }
    Ok(())
}

fn remove_any(p: &Path) -> std::io::Result<()> {
    if p.is_dir() && !p.is_symlink() {
        std::fs::remove_dir_all(p)
    } else {
        std::fs::remove_file(p)
    }
}

fn io(what: String, e: std::io::Error) -> VcsError {
    VcsError::Cli {
        what,
        stderr: e.to_string(),
    }
}

/// True when `path` holds a private clone made by [`private_clone`] (a `.git` folder, not a
/// `.git` file pointing into another repository's `worktrees/`).
pub fn is_private_clone(path: &Path) -> bool {
    path.join(".git").is_dir()
}

/// The object store a private clone borrows from (the first line of its alternates file).
pub fn borrowed_store(path: &Path) -> Option<PathBuf> {
    std::fs::read_to_string(path.join(".git/objects/info/alternates"))
        .ok()?
        .lines()
        .next()
        .map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn git(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(["-c", "user.name=U", "-c", "user.email=u@example.com"])
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn the_clone_has_its_own_git_dir_and_the_fix_comes_back_as_one_branch() {
        let d = tempfile::tempdir().unwrap();
        let user_root = d.path().join("user");
        std::fs::create_dir_all(&user_root).unwrap();
        git(&user_root, &["init", "-q", "-b", "main"]);
        std::fs::create_dir_all(user_root.join("src")).unwrap();
        std::fs::write(user_root.join("src/a.py"), "x = 1\n").unwrap();
        git(&user_root, &["add", "-A"]);
        git(&user_root, &["commit", "-qm", "base"]);
        let user = Repository::open(&user_root).unwrap();
        let base = user.head().unwrap().target().unwrap();
        let refs_before = git(&user_root, &["for-each-ref"]);

        let wt = d.path().join("run/worktree");
        let clone = private_clone(&user, &wt, "fixci/x", base).unwrap();
        assert!(is_private_clone(&wt));
        assert_eq!(
            borrowed_store(&wt).unwrap(),
            std::fs::canonicalize(user_root.join(".git/objects")).unwrap()
        );
        assert_eq!(
            std::fs::read_to_string(wt.join("src/a.py")).unwrap(),
            "x = 1\n"
        );
        // Writes through the clone's git stay in the clone.
        git(
            &wt,
            &["config", "remote.origin.pushurl", "http://127.0.0.1:1/x"],
        );
        std::fs::write(wt.join("src/a.py"), "x = 2\n").unwrap();
        let fix = super::super::commit_all(&clone, "fixci: fix")
            .unwrap()
            .unwrap();
        assert_eq!(refs_before, git(&user_root, &["for-each-ref"]));
        assert!(
            user.find_commit(fix).is_err(),
            "the fix is not in the user's store yet"
        );
        assert!(!git(&user_root, &["config", "--list"]).contains("pushurl"));

        let name = export_fix_branch(&user_root, &wt, fix, "fixci/x").unwrap();
        assert_eq!(name, "fixci/x");
        assert_eq!(
            git(&user_root, &["rev-parse", "fixci/x"]).trim(),
            fix.to_string()
        );
        assert_eq!(git(&user_root, &["show", "fixci/x:src/a.py"]), "x = 2\n");
        git(&user_root, &["fsck", "--no-dangling"]);
        // Again (a resume): the same branch, no `-2`.
        assert_eq!(
            export_fix_branch(&user_root, &wt, fix, "fixci/x").unwrap(),
            "fixci/x"
        );
        // A branch of that name pointing elsewhere gets a suffix.
        git(&user_root, &["branch", "-f", "fixci/y", "main"]);
        assert_eq!(
            export_fix_branch(&user_root, &wt, fix, "fixci/y").unwrap(),
            "fixci/y-2"
        );
        assert!(git(&user_root, &["worktree", "list"]).lines().count() == 1);
    }

    #[test]
    fn a_planted_hook_and_config_in_the_cache_clone_are_gone_before_a_fetch() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        git(&src, &["init", "-q", "-b", "main"]);
        git(&src, &["commit", "-q", "--allow-empty", "-m", "one"]);
        let cache = d.path().join("cache/r");
        let s = src.to_str().unwrap();
        super::super::clone_or_fetch(s, &cache).unwrap();
        let marker = d.path().join("planted-ran");
        let hook = format!("#!/bin/sh\ntouch '{}'\n", marker.display());
        std::fs::create_dir_all(cache.join(".git/hooks")).unwrap();
        for h in [
            "reference-transaction",
            "post-merge",
            "pre-auto-gc",
            "post-checkout",
        ] {
            let p = cache.join(".git/hooks").join(h);
            std::fs::write(&p, &hook).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        git(
            &cache,
            &[
                "config",
                "remote.origin.uploadpack",
                &format!("touch '{}'; git-upload-pack", marker.display()),
            ],
        );
        git(&src, &["commit", "-q", "--allow-empty", "-m", "two"]);
        super::super::clone_or_fetch(s, &cache).unwrap();
        assert!(!marker.exists(), "a planted hook or command ran");
        assert_eq!(
            git(&cache, &["rev-parse", "refs/remotes/origin/main"]),
            git(&src, &["rev-parse", "main"])
        );
        assert!(!git(&cache, &["config", "--list", "--local"]).contains("uploadpack"));
    }
}
