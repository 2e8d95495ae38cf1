//! `fixci kill`: stop a run started from another terminal.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::run_dir::{self, Killed};
use crate::error::{Error, Result};

/// Stop a running run: SIGTERM to its fixci process (which stops its children and saves state),
/// then SIGKILL to both if it has not exited within the grace period.
#[derive(Debug, Args)]
pub struct KillArgs {
    /// Run id, unique prefix, or `last`
    pub run: String,
    /// Seconds to wait after SIGTERM before SIGKILL
    #[arg(long, default_value_t = 10)]
    pub grace: u64,
    /// Folder holding run directories (default: `./outputs`)
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Runs `fixci kill`; returns the exit code.
pub fn execute(args: KillArgs) -> Result<u8> {
    let out = super::resume::out_dir(&args.out);
    let (dir, st) = run_dir::find(&out, &args.run)?;
    let Some(pid) = dir.live_pid() else {
        let note = if dir.pid_file().exists() {
            dir.release();
            " (its pid file was stale and has been removed)"
        } else {
            ""
        };
        return Err(
            Error::usage(format!("run `{}` is not running{note}", st.run_id)).hint(format!(
                "`fixci resume {}` continues it; `fixci clean {}` removes it",
                st.run_id, st.run_id
            )),
        );
    };
    match dir.kill(pid, Duration::from_secs(args.grace), "killed with `fixci kill`") {
        Killed::ForceKilled => {
            let _ = writeln!(
                std::io::stderr(),
                "killed run {} (pid {pid}) with SIGKILL",
                st.run_id
            );
        }
        Killed::Terminated => {
            let _ = writeln!(
                std::io::stderr(),
                "stopped run {} (pid {pid}); resume it with `fixci resume {}`",
                st.run_id,
                st.run_id
            );
        }
    }
    Ok(0)
}
