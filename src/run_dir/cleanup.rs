//! Clean-up by outcome, when a run ends (not when it is interrupted: `fixci resume` needs its
//! private clone):
//! - a run with a fix (`success`, `partial`) keeps its branch in the user's repository and
//!   removes its private clone (`RUN/worktree`): the fix commit and everything it needs are in
//!   the user's repository by then, where `fixci apply` and replay read them;
//! - a run without one (`failed`, `escalated`) removes its private clone and, if it had already
//!   brought a branch into the user's repository, that branch (only while it still points at
//!   the run's own fix commit: a branch someone moved is theirs now);
//! - `keep-worktree` (spec) or `--keep-worktree` keeps the private clone; the report says where.
//!
//! The run directory keeps what is needed to read what happened: state, events, the stages'
//! logs and prompts, the reproduction test copy, every attempt's diff and `fix.diff`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{RunState, Status};

/// What the end of a run did with its private clone and branch (`cleanup` in `state.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cleanup {
    /// The private clone, kept (`keep-worktree`) at this path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worktree_kept: Option<PathBuf>,
    /// The private clone was removed.
    #[serde(default)]
    pub worktree_removed: bool,
    /// The fix branch removed from the user's repository (a run without a fix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch_removed: Option<String>,
    /// What could not be cleaned, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// True for the end states that have a fix to keep.
pub fn has_fix(status: Status) -> bool {
    matches!(status, Status::Success | Status::Partial)
}

/// Cleans up after a run of `run_dir` that ends with `status` (never `interrupted` or
/// `running`: the caller does not call it then), keeping the private clone when `keep`.
/// Nothing outside `run_dir` is deleted but the run's own branch (see the module docs).
pub fn after_run(run_dir: &Path, st: &RunState, status: Status, keep: bool) -> Cleanup {
    let mut c = Cleanup::default();
    let created = (&st.branch, &st.commit);
    if let (false, true, (Some(branch), Some(commit))) = (has_fix(status), st.branch_created, created) {
        match remove_branch(&st.repo.root, branch, commit) {
            Ok(true) => c.branch_removed = Some(branch.clone()),
            Ok(false) => {}
            Err(e) => c.problems.push(format!("branch `{branch}` not removed: {e}")),
        }
    }
    let clone = st.worktree.clone().unwrap_or_else(|| run_dir.join("worktree"));
    // Only fixci's own clone inside the run directory is ever deleted.
    if !clone.starts_with(run_dir) || !clone.exists() {
        return c;
    }
    if keep {
        c.worktree_kept = Some(clone);
    } else {
        match std::fs::remove_dir_all(&clone) {
            Ok(()) => c.worktree_removed = true,
            Err(e) => c.problems.push(format!("`{}` not removed: {e}", clone.display())),
        }
    }
    c
}

/// Deletes `refs/heads/BRANCH` from the repository at `root` when it points at `commit`;
/// `Ok(false)` when it is absent or points elsewhere.
fn remove_branch(root: &Path, branch: &str, commit: &str) -> Result<bool, git2::Error> {
    let repo = git2::Repository::open(root)?;
    let mut r = match repo.find_reference(&format!("refs/heads/{branch}")) {
        Ok(r) => r,
        Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if r.target().map(|t| t.to_string()).as_deref() != Some(commit) {
        return Ok(false);
    }
    r.delete()?;
    Ok(true)
}

/// Rebuilds the private clone of a run being resumed whose clone is gone (removed by hand, or
/// by a `fixci clean` of its worktree): a fresh private clone of the run's repository at
/// `run_dir/worktree`, on the run's branch at its fix commit when it has one (the commit is in
/// the repository by then) or else at its start commit, with the base branch under its own
/// name and fixci's copy of the reproduction test put back. An interrupted stage is redone from
/// a clean worktree anyway, so nothing an agent wrote is missed.
///
/// Errors (exit 3): the clone is outside `run_dir`, the repository or a commit is gone, or git
/// fails.
pub fn rebuild_clone(run_dir: &Path, st: &RunState) -> Result<(), crate::error::Error> {
    use crate::error::Error;
    let wt = st.worktree.clone().unwrap_or_else(|| run_dir.join("worktree"));
    if !wt.starts_with(run_dir) {
        return Err(Error::infra(format!("the run's worktree `{}` is gone", wt.display())));
    }
    let repo = crate::vcs::open(&st.repo.root)
        .map_err(|e| Error::infra("cannot open the run's repository to rebuild its clone").source(e))?;
    let at = st.commit.as_deref().unwrap_or(&st.repo.start_commit);
    let oid = git2::Oid::from_str(at)
        .map_err(|e| Error::infra(format!("bad commit `{at}` in state")).source(e))?;
    let _ = std::fs::remove_dir_all(&wt);
    let branch = st.branch.clone().unwrap_or_else(|| "fixci/fix".into());
    let clone = crate::vcs::private_clone(&repo, &wt, &branch, oid)
        .map_err(|e| Error::infra("cannot rebuild the private clone").source(e))?;
    let base = git2::Oid::from_str(&st.repo.base_commit).and_then(|b| clone.find_commit(b));
    if let Ok(c) = base {
        let _ = clone.branch(&st.repo.base, &c, false);
    }
    if let Some(r) = &st.repro {
        r.restore_into(&wt)?;
    }
    Ok(())
}

/// The report's line about the private clone and branch clean-up; `None` before the run ended.
pub fn markdown(c: &Cleanup) -> String {
    let mut m = String::new();
    if let Some(p) = &c.worktree_kept {
        m.push_str(&format!(
            "- **Worktree:** kept at `{}` (`keep-worktree`); remove it with `rm -rf` when done\n",
            p.display()
        ));
    } else if c.worktree_removed {
        m.push_str("- **Worktree:** removed (`--keep-worktree` keeps it)\n");
    }
    if let Some(b) = &c.branch_removed {
        m.push_str(&format!("- **Branch removed:** `{b}` (the run ended without a fix)\n"));
    }
    for p in &c.problems {
        m.push_str(&format!("- **Clean-up problem:** {p}\n"));
    }
    m
}
