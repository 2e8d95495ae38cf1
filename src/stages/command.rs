//! `command`: an escape hatch for the user's own steps: a shell command run in the worktree
//! under the stage budget; it passes when it exits 0.

use super::{Stage, StageCtx, StageResult, test_env_remove, worktree};
use crate::error::Error;
use crate::process::{self, CommandSpec, Limits, OutputTo, Termination};
use crate::run_dir::StageStatus;

/// The `command` stage.
pub struct CommandStage {
    /// Shell command.
    pub command: String,
}

impl Stage for CommandStage {
    fn run(&self, cx: &mut StageCtx<'_>) -> Result<StageResult, Error> {
        let wt = worktree(cx.st())?;
        let mut cmd = CommandSpec::shell(&self.command, &wt);
        cmd.env_remove = test_env_remove(cx.env);
        cmd.env = super::test_env(cx.env);
        if let Some(j) = super::test_jail(cx) {
            cmd = j
                .wrap(cmd, &[wt.as_path()])
                .map_err(|e| Error::infra("cannot start `sh`").source(e))?;
        }
        let log = cx.dir.join("output.log");
        let f = process::run(
            &cmd,
            &OutputTo::Combined(log.clone()),
            Limits {
                budget: cx.budget,
                grace: cx.env.grace,
            },
            Some(cx.env.req.cancel),
            &mut |pid| {
                cx.env.run_dir.record_child(pid);
            },
        )
        .map_err(|e| Error::infra("cannot start `sh`").source(e))?;
        cx.env.run_dir.clear_child();
        Ok(match f.termination {
            t if t.success() => StageResult::passed(format!("`{}` exited 0", self.command)),
            Termination::TimedOut { .. } => StageResult::new(
                StageStatus::Timeout,
                format!("`{}` did not finish within its budget", self.command),
            ),
            t => StageResult::failed(format!(
                "`{}`: {}; output: {}",
                self.command,
                t.describe(),
                crate::redact::redact(process::tail(&log, 400).trim())
            )),
        })
    }
}
