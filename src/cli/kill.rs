//! `fixci kill`: stop a run started from another terminal.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;

use crate::engine::{self, runs};
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
    let (dir, mut st) = runs::find(&out, &args.run)?;
    let Some(pid) = engine::live_pid(&dir) else {
        let stale = dir.join("fixci.pid");
        let note = if stale.exists() {
            let _ = std::fs::remove_file(&stale);
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
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    let until = Instant::now() + Duration::from_secs(args.grace);
    while engine::live_pid(&dir).is_some() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    if engine::live_pid(&dir).is_some() {
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        if let Some(pgid) = std::fs::read_to_string(dir.join("child.pid"))
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
        {
            crate::process::kill_group(pgid, libc::SIGKILL);
        }
        let _ = std::fs::remove_file(dir.join("fixci.pid"));
        if st.status == engine::Status::Running {
            st.status = engine::Status::Interrupted;
            st.reason = Some("killed with `fixci kill`".into());
            let _ = st.save(&dir);
        }
        let _ = writeln!(
            std::io::stderr(),
            "killed run {} (pid {pid}) with SIGKILL",
            st.run_id
        );
    } else {
        let _ = writeln!(
            std::io::stderr(),
            "stopped run {} (pid {pid}); resume it with `fixci resume {}`",
            st.run_id,
            st.run_id
        );
    }
    Ok(0)
}
