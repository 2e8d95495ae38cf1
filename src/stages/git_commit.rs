//! `git-commit`: commits the worktree's changes as fixci's single fix commit on the fix branch
//! (agent droppings and ignored files left out) and writes `fix.diff` (`base..commit`). When
//! the attempt was verified as a candidate commit, the branch is moved to exactly that commit.

use super::{Stage, StageCtx, StageResult, worktree};
use crate::error::{Error, io_error};
use crate::run_dir::Event;
use crate::vcs;

/// The `git-commit` stage.
pub struct GitCommit;

impl Stage for GitCommit {
    fn run(&self, cx: &mut StageCtx<'_>) -> Result<StageResult, Error> {
        let wt = vcs::open(&worktree(cx.st())?)
            .map_err(|e| Error::infra("cannot open the worktree").source(e))?;
        let title = crate::report::title(cx.st(), cx.env.spec());
        let mut msg = format!("{title}\n\n");
        if let Some(rc) = cx
            .st()
            .attempts
            .iter()
            .rev()
            .find_map(|a| a.root_cause.clone())
        {
            msg.push_str(&format!("{rc}\n\n"));
        }
        if let Some(v) = &cx.st().verification {
            msg.push_str(&format!(
                "Verified by fixci: the reproduction passed {} of {} runs.\n",
                v.passed, v.runs
            ));
        }
        // The commit fixci verified is the one proposed: the branch moves to it as it is.
        let verified = cx
            .st()
            .attempts
            .iter()
            .rev()
            .find(|a| a.outcome == crate::run_dir::AttemptOutcome::Passed)
            .and_then(|a| a.checks.as_ref())
            .and_then(|v| git2::Oid::from_str(&v.commit).ok());
        let committed = match verified {
            Some(oid) => vcs::reset_worktree_to(&wt, oid)
                .map(|()| Some(oid))
                .map_err(|e| {
                    Error::infra("cannot put the verified commit on the fix branch").source(e)
                })?,
            None => vcs::commit_all(&wt, &msg)
                .map_err(|e| Error::infra("cannot commit the fix").source(e))?,
        };
        let Some(oid) = committed else {
            return Ok(StageResult::failed(
                "nothing to commit: the worktree has no change against base",
            ));
        };
        let base = git2::Oid::from_str(&cx.st().repo.base_commit)
            .map_err(|e| Error::infra("bad base commit in state").source(e))?;
        let diff = vcs::diff_commits(&wt, base, oid)
            .map_err(|e| Error::infra("cannot diff the fix commit").source(e))?;
        let p = cx.env.run_dir.fix_diff_file();
        std::fs::write(&p, &diff).map_err(|e| io_error("write", &p, e))?;
        cx.emit(Event::CommitMade {
            commit: oid.to_string(),
        });
        Ok(StageResult::passed(format!(
            "commit {} on `{}`",
            &oid.to_string()[..10],
            cx.st().branch.as_deref().unwrap_or("?")
        )))
    }
}
