//! `report`: writes `report.md`, `result.json` and `fix.diff` into the run directory. Runs even
//! after a failure (`always = true`), so every run ends with a report.

use super::{Stage, StageCtx, StageResult};
use crate::engine::state::Status;
use crate::error::{Error, io_error};

/// The `report` stage.
pub struct Report;

impl Stage for Report {
    fn run(&self, cx: &mut StageCtx<'_>) -> Result<StageResult, Error> {
        if cx.st.status == Status::Running && !cx.env.cancelled() {
            // A fix whose evidence falls short of the required confidence is `partial`.
            match cx.st.partial_reason.clone() {
                Some(why) => {
                    cx.st.status = Status::Partial;
                    cx.st.reason = Some(why);
                }
                None => cx.st.status = Status::Success,
            }
        }
        let run_dir = &cx.env.run_dir;
        let fix_diff = run_dir.join("fix.diff");
        if !fix_diff.exists() {
            let last = cx
                .st
                .attempts
                .last()
                .map(|a| a.diff.clone())
                .unwrap_or_default();
            std::fs::write(&fix_diff, last).map_err(|e| io_error("write", &fix_diff, e))?;
        }
        let diff = std::fs::read_to_string(&fix_diff).unwrap_or_default();
        let devs = crate::vcs::open(&cx.st.repo.root)
            .ok()
            .zip(git2::Oid::from_str(&cx.st.repo.base_commit).ok())
            .map(|(repo, base)| crate::vcs::blame_patch(&repo, base, &diff))
            .unwrap_or_default();
        let md = crate::redact::redact(&crate::report::markdown(cx.st, cx.env.spec(), &devs));
        let p = run_dir.join("report.md");
        std::fs::write(&p, md).map_err(|e| io_error("write", &p, e))?;
        let json = crate::report::result_json(cx.st);
        let p = run_dir.join("result.json");
        std::fs::write(
            &p,
            crate::redact::redact(&serde_json::to_string_pretty(&json).unwrap_or_default()),
        )
        .map_err(|e| io_error("write", &p, e))?;
        Ok(StageResult::passed(format!(
            "report written: {}",
            run_dir.join("report.md").display()
        )))
    }
}
