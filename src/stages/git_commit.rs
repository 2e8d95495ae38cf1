//! `git-commit`: commits the worktree's changes as fixci's single fix commit on the fix branch
//! (agent droppings and ignored files left out) and writes `fix.diff` (`base..commit`). When
//! the attempt was verified as a candidate commit, the branch is moved to exactly that commit.

use super::{Stage, StageCtx, StageResult, worktree};
use crate::error::{Error, io_error};
use crate::run_dir::{Event, RunState, Status};
use crate::vcs;

/// The `git-commit` stage.
pub struct GitCommit;

impl Stage for GitCommit {
    fn run(&self, cx: &mut StageCtx<'_>) -> Result<StageResult, Error> {
        let wt = vcs::open(&worktree(cx.st())?)
            .map_err(|e| Error::infra("cannot open the worktree").source(e))?;
        let verified_line = cx
            .st()
            .verification
            .as_ref()
            .map(|v| {
                format!(
                    "Verified by fixci: the reproduction passed {} of {} runs.\n",
                    v.passed, v.runs
                )
            })
            .unwrap_or_default();
        let msg = super::commit_message_with(cx.st(), cx.env.spec(), &verified_line);
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
        // The fix reaches the user's repository only now, as one new branch.
        let continues = cx.env.spec().ci.as_ref().and_then(|c| c.continue_branch.as_ref())
            == cx.st().branch.as_ref()
            && cx.st().branch.is_some();
        match export_fix(&cx.env.user_repo, cx.st(), oid, continues)? {
            Ok(branch) => cx.emit(Event::FixBranchCreated { branch }),
            Err(why) => {
                cx.emit(Event::RunStopping {
                    status: Status::Failed,
                    reason: why.clone(),
                });
                return Ok(StageResult::failed(why));
            }
        }
        Ok(StageResult::passed(format!(
            "commit {} on `{}`",
            &oid.to_string()[..10],
            cx.st().branch.as_deref().unwrap_or("?")
        )))
    }
}

/// Brings the fix commit of the private clone into the user's repository as the run's branch
/// (see [`vcs::export_fix_branch`]) after checking with `guard` that the repository is
/// unchanged, and records its fingerprint again. Returns the branch created (`Ok(Ok)`), or the
/// reason the repository changed (`Ok(Err)`, nothing created).
///
/// Errors (exit 3): git failed.
fn export_fix(
    guard: &vcs::UserRepoGuard,
    st: &RunState,
    commit: git2::Oid,
    continues: bool,
) -> Result<Result<String, String>, Error> {
    if let Some(why) = guard.changed() {
        return Ok(Err(why));
    }
    let wt = st
        .worktree
        .clone()
        .ok_or_else(|| Error::infra("this run has no worktree"))?;
    let wanted = st.branch.clone().unwrap_or_else(|| "fixci/fix".into());
    // Noted before the branch appears too, so a concurrent run's check never sees it unnoted.
    vcs::fingerprint::note_export(&st.repo.root, &wanted, &commit.to_string());
    // The fix branch an event's attempt continues moves forward to the new commit.
    let name = match continues {
        true => vcs::clone::advance_fix_branch(&st.repo.root, &wt, commit, &wanted),
        false => vcs::export_fix_branch(&st.repo.root, &wt, commit, &wanted),
    }
    .map_err(|e| {
        Error::infra("cannot bring the fix branch into the target repository").source(e)
    })?;
    if name != wanted {
        vcs::fingerprint::note_export(&st.repo.root, &name, &commit.to_string());
    }
    guard
        .record(&st.repo.root)
        .map_err(|e| Error::infra("cannot fingerprint the target repository").source(e))?;
    Ok(Ok(name))
}
