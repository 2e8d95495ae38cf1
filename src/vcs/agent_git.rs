//! Undoing what an agent did to git during its own invocation: commits it made on the fix branch
//! (aider commits by itself), a branch it switched to, and files it staged. The files stay as
//! the agent left them; only git's record is put back, so fixci's own single fix commit is the
//! only commit on the branch. Commits that appear while no agent runs are not touched here:
//! they are a human's, and stop the attempts (see [`super::foreign_commits`]).

use git2::{Oid, Repository, ResetType};

use super::{Ctx, VcsError};

/// What an agent had done to git, found (and undone) after it ran.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentGitChanges {
    /// Commits the agent made on the fix branch, oldest first: (short id, first line).
    pub commits: Vec<(String, String)>,
    /// True when HEAD had left the fix branch (another branch, or detached).
    pub left_branch: bool,
    /// Paths the agent had staged (in the index but not in the branch's tip).
    pub staged: Vec<String>,
}

impl AgentGitChanges {
    /// True when the agent touched git at all.
    pub fn any(&self) -> bool {
        !self.commits.is_empty() || self.left_branch || !self.staged.is_empty()
    }

    /// One line for a stage summary, e.g. `the agent's 1 commit (fd67f81a "Add test") was
    /// folded into the worktree; 2 staged files unstaged`.
    pub fn describe(&self, verb: &str) -> String {
        let mut parts = Vec::new();
        if !self.commits.is_empty() {
            let list = self
                .commits
                .iter()
                .map(|(id, s)| {
                    let short: String = s.chars().take(60).collect();
                    let more = if short.len() < s.len() { "..." } else { "" };
                    format!("{id} \"{short}{more}\"")
                })
                .collect::<Vec<_>>()
                .join(", ");
            parts.push(format!(
                "the agent's own commit{} ({list}) {verb}",
                if self.commits.len() == 1 { "" } else { "s" }
            ));
        }
        if self.left_branch {
            parts.push("HEAD, which the agent had moved off the fix branch, was put back".into());
        }
        if !self.staged.is_empty() {
            parts.push(format!(
                "{} file{} the agent staged unstaged",
                self.staged.len(),
                if self.staged.len() == 1 { "" } else { "s" }
            ));
        }
        parts.join("; ")
    }
}

/// The fix branch's tip before an agent runs: pass it to [`undo_agent_git`] afterwards.
pub fn branch_tip(wt: &Repository, branch: &str) -> Result<Oid, VcsError> {
    wt.find_reference(&format!("refs/heads/{branch}"))
        .and_then(|r| r.peel_to_commit())
        .map(|c| c.id())
        .ctx(|| format!("read branch `{branch}`"))
}

/// Puts git back where it was before the agent ran, keeping the agent's files: HEAD on
/// `branch`, the branch at `before` (a soft reset: the commits' changes stay in the worktree),
/// and an index equal to `before`'s tree (staged files become plain changes again). Returns
/// what was undone.
pub fn undo_agent_git(
    wt: &Repository,
    branch: &str,
    before: Oid,
) -> Result<AgentGitChanges, VcsError> {
    let refname = format!("refs/heads/{branch}");
    let mut out = AgentGitChanges::default();
    let on_branch = wt
        .find_reference("HEAD")
        .ok()
        .and_then(|h| h.symbolic_target().ok().flatten().map(|t| t == refname))
        .unwrap_or(false);
    // Where the agent left HEAD: its commits are reachable from there (on the fix branch, or on
    // a branch or detached HEAD of its own).
    let agent_head = wt
        .head()
        .ok()
        .and_then(|h| h.peel_to_commit().ok())
        .map(|c| c.id());
    if !on_branch {
        // The worktree's files are left as they are; only HEAD is re-pointed.
        wt.set_head(&refname)
            .ctx(|| format!("put HEAD back on `{branch}`"))?;
        out.left_branch = true;
    }
    let tip = branch_tip(wt, branch)?;
    let newest = if on_branch { Some(tip) } else { agent_head };
    if let Some(newest) = newest.filter(|n| *n != before) {
        let mut walk = wt.revwalk().ctx(|| "walk the agent's commits".into())?;
        walk.push(newest)
            .ctx(|| "walk the agent's commits".into())?;
        let _ = walk.hide(before);
        walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::REVERSE)
            .ctx(|| "walk the agent's commits".into())?;
        for oid in walk.flatten() {
            if let Ok(c) = wt.find_commit(oid) {
                out.commits.push((
                    oid.to_string()[..8].to_string(),
                    c.summary().ok().flatten().unwrap_or("").to_string(),
                ));
            }
        }
    }
    if tip != before {
        let obj = wt
            .find_object(before, None)
            .ctx(|| format!("find commit {before}"))?;
        wt.reset(&obj, ResetType::Soft, None)
            .ctx(|| format!("move `{branch}` back to {before}"))?;
    }
    // Whatever is staged now (the agent's `git add`, or its commits' changes after the soft
    // reset) is unstaged: the index matches the branch tip again.
    let head = wt
        .find_commit(before)
        .ctx(|| format!("find commit {before}"))?;
    let tree = head.tree().ctx(|| "read the tip's tree".into())?;
    let index = wt.index().ctx(|| "open the worktree index".into())?;
    let diff = wt
        .diff_tree_to_index(Some(&tree), Some(&index), None)
        .ctx(|| "diff the index".into())?;
    let staged: Vec<String> = super::diff_paths(&diff);
    if !staged.is_empty() {
        wt.reset_default(Some(head.as_object()), staged.iter())
            .ctx(|| "unstage the agent's files".into())?;
    }
    if out.commits.is_empty() {
        out.staged = staged;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::process::Command;

    fn git(dir: &Path, args: &[&str]) {
        let ok = Command::new("git")
            .args([
                "-c",
                "user.name=Agent",
                "-c",
                "user.email=agent@example.com",
            ])
            .args(args)
            .current_dir(dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "git {args:?}");
    }

    fn repo() -> (tempfile::TempDir, Repository, Oid) {
        let d = tempfile::tempdir().unwrap();
        git(d.path(), &["init", "-q", "-b", "fix"]);
        std::fs::write(d.path().join("a.py"), "x = 1\n").unwrap();
        git(d.path(), &["add", "-A"]);
        git(d.path(), &["commit", "-qm", "base"]);
        let r = Repository::open(d.path()).unwrap();
        let tip = branch_tip(&r, "fix").unwrap();
        (d, r, tip)
    }

    fn status(dir: &Path) -> String {
        String::from_utf8(
            Command::new("git")
                .args(["status", "--porcelain"])
                .current_dir(dir)
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap()
    }

    #[test]
    fn agent_commits_are_folded_into_worktree_changes() {
        let (d, r, before) = repo();
        std::fs::write(d.path().join("a.py"), "x = 2\n").unwrap();
        std::fs::write(d.path().join("new.py"), "y = 1\n").unwrap();
        git(d.path(), &["add", "-A"]);
        git(d.path(), &["commit", "-qm", "agent: fix x"]);
        std::fs::write(d.path().join("b.py"), "z = 1\n").unwrap();
        git(d.path(), &["add", "b.py"]);
        git(d.path(), &["commit", "-qm", "agent: add b"]);
        let c = undo_agent_git(&r, "fix", before).unwrap();
        assert_eq!(
            c.commits.iter().map(|x| x.1.as_str()).collect::<Vec<_>>(),
            ["agent: fix x", "agent: add b"]
        );
        assert_eq!(branch_tip(&r, "fix").unwrap(), before);
        assert_eq!(
            std::fs::read_to_string(d.path().join("a.py")).unwrap(),
            "x = 2\n"
        );
        // Nothing staged: modified and untracked files, as if the agent had never committed.
        let s = status(d.path());
        assert!(
            s.contains(" M a.py") && s.contains("?? b.py") && s.contains("?? new.py"),
            "{s}"
        );
        assert!(
            c.describe("folded")
                .starts_with("the agent's own commits ("),
            "{}",
            c.describe("folded")
        );
    }

    #[test]
    fn staged_files_are_unstaged_and_kept() {
        let (d, r, before) = repo();
        std::fs::write(d.path().join("new.py"), "y = 1\n").unwrap();
        git(d.path(), &["add", "new.py"]);
        let c = undo_agent_git(&r, "fix", before).unwrap();
        assert!(c.commits.is_empty() && !c.left_branch);
        assert_eq!(c.staged, ["new.py"]);
        assert_eq!(status(d.path()), "?? new.py\n");
    }

    #[test]
    fn head_moved_to_another_branch_comes_back() {
        let (d, r, before) = repo();
        git(d.path(), &["checkout", "-qb", "elsewhere"]);
        std::fs::write(d.path().join("a.py"), "x = 3\n").unwrap();
        git(d.path(), &["commit", "-qam", "on another branch"]);
        let c = undo_agent_git(&r, "fix", before).unwrap();
        assert!(c.left_branch);
        assert_eq!(c.commits.len(), 1, "{c:?}");
        assert_eq!(branch_tip(&r, "fix").unwrap(), before);
        assert_eq!(
            r.head().unwrap().name(),
            Ok("refs/heads/fix"),
            "HEAD is on the fix branch again"
        );
        assert_eq!(
            std::fs::read_to_string(d.path().join("a.py")).unwrap(),
            "x = 3\n"
        );
        assert_eq!(status(d.path()), " M a.py\n");
    }

    #[test]
    fn nothing_done_is_nothing_undone() {
        let (d, r, before) = repo();
        std::fs::write(d.path().join("a.py"), "x = 5\n").unwrap();
        let c = undo_agent_git(&r, "fix", before).unwrap();
        assert!(!c.any());
        assert_eq!(status(d.path()), " M a.py\n");
    }
}
