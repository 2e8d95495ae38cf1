//! `git-branch`: puts the fix branch at `base` in fixci's worktree, with only the confirmed
//! reproduction test carried over (anything else the reproduce agent touched is discarded).
//! The branch was created with the worktree; it is fixci's own, so moving it is safe.

use super::RunEnv;
use super::{Stage, StageCtx, StageResult, worktree};
use crate::error::Error;
use crate::run_dir::RunState;
use crate::vcs;

/// The `git-branch` stage.
pub struct GitBranch;

impl Stage for GitBranch {
    fn run(&self, cx: &mut StageCtx<'_>) -> Result<StageResult, Error> {
        reset_for_attempt(cx.env, cx.st())?;
        Ok(StageResult::passed(format!(
            "branch `{}` at `{}` ({}) in `{}`",
            cx.st().branch.as_deref().unwrap_or("?"),
            cx.st().repo.base,
            &cx.st().repo.base_commit[..10.min(cx.st().repo.base_commit.len())],
            worktree(cx.st())?.display()
        )))
    }
}

/// Makes the worktree exactly `base` plus fixci's copy of the reproduction test (if the agent
/// wrote it): the starting point of every fix attempt.
pub fn reset_for_attempt(_env: &RunEnv, st: &RunState) -> Result<(), Error> {
    let wt_path = worktree(st)?;
    let wt = vcs::open(&wt_path).map_err(|e| Error::infra("cannot open the worktree").source(e))?;
    let base = git2::Oid::from_str(&st.repo.base_commit)
        .map_err(|e| Error::infra("bad base commit in state").source(e))?;
    vcs::reset_worktree_to(&wt, base)
        .map_err(|e| Error::infra("cannot reset the worktree to base").source(e))?;
    if let Some(r) = st.repro.as_ref().filter(|r| r.origin == "agent" || r.origin == crate::feature::ORIGIN) {
        super::restore_repro_test(&wt_path, r)?;
    }
    Ok(())
}
