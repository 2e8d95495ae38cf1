//! `strip-test`: removes the agent's reproduction test from the worktree before the commit, so
//! the fix branch holds only the fix (unless the spec sets `keep-test`). A test that already
//! existed in the repository is never removed.

use super::{Stage, StageCtx, StageResult, worktree};
use crate::error::{Error, io_error};
use crate::run_dir::StageStatus;

/// The `strip-test` stage.
pub struct StripTest;

impl Stage for StripTest {
    fn run(&self, cx: &mut StageCtx<'_>) -> Result<StageResult, Error> {
        let Some(r) = cx.st().repro.clone() else {
            return Ok(StageResult::new(
                StageStatus::Skipped,
                "no reproduction test",
            ));
        };
        if r.origin == crate::feature::ORIGIN {
            return Ok(StageResult::new(
                StageStatus::Skipped,
                format!("`{}` holds the feature's acceptance tests: they stay", r.test_file),
            ));
        }
        if r.origin != "agent" {
            return Ok(StageResult::new(
                StageStatus::Skipped,
                format!("`{}` already existed in the repository", r.test_file),
            ));
        }
        if cx.env.spec().spec.keep_test {
            return Ok(StageResult::new(
                StageStatus::Skipped,
                "`keep-test` is set: the reproduction test stays in the fix",
            ));
        }
        let wt = worktree(cx.st())?;
        let path = wt.join(&r.test_file);
        if path.exists() {
            std::fs::remove_file(&path).map_err(|e| io_error("remove", &path, e))?;
        }
        // Remove folders the test alone created.
        let mut dir = path.parent().map(|p| p.to_path_buf());
        while let Some(d) = dir {
            if d == wt || std::fs::remove_dir(&d).is_err() {
                break;
            }
            dir = d.parent().map(|p| p.to_path_buf());
        }
        Ok(StageResult::passed(format!(
            "removed the reproduction test `{}`",
            r.test_file
        )))
    }
}
