//! `git-commit`: commits the worktree's changes as fixci's single fix commit on the fix branch
//! (agent droppings and ignored files left out) and writes `fix.diff` (`base..commit`).

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
        let Some(oid) = vcs::commit_all(&wt, &msg)
            .map_err(|e| Error::infra("cannot commit the fix").source(e))?
        else {
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
