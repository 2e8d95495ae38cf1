//! The report writer: a listener of the run's events that writes `report.md`, `result.json` and
//! `fix.diff` when the run ends (on `run_finished`, so the status and `finished_at` are final),
//! again after every `resume`.

use crate::error::{Error, io_error};
use crate::run_dir::{Event, Listener, ResultJson, RunDir, RunState};
use crate::spec::LoadedSpec;

/// Writes the report of the run in `dir` when it ends.
pub struct ReportWriter {
    dir: RunDir,
    spec: LoadedSpec,
    error: Option<Error>,
}

impl ReportWriter {
    /// A writer for the run in `dir` whose job spec is `spec`.
    pub fn new(dir: RunDir, spec: LoadedSpec) -> Self {
        ReportWriter {
            dir,
            spec,
            error: None,
        }
    }

    /// The error of the last write, if it failed (exit 3).
    pub fn take_error(&mut self) -> Option<Error> {
        self.error.take()
    }

    /// Writes `fix.diff` (the last attempt's diff, unless the fix commit already wrote it),
    /// `report.md` and `result.json` (both redacted).
    ///
    /// Errors (exit 3): a file cannot be written.
    pub fn write(&self, st: &RunState) -> Result<(), Error> {
        let fix_diff = self.dir.fix_diff_file();
        if !fix_diff.exists() {
            let last = st
                .attempts
                .last()
                .map(|a| a.diff.clone())
                .unwrap_or_default();
            std::fs::write(&fix_diff, last).map_err(|e| io_error("write", &fix_diff, e))?;
        }
        let diff = std::fs::read_to_string(&fix_diff).unwrap_or_default();
        let devs = crate::vcs::open(&st.repo.root)
            .ok()
            .zip(git2::Oid::from_str(&st.repo.base_commit).ok())
            .map(|(repo, base)| crate::vcs::blame_patch(&repo, base, &diff))
            .unwrap_or_default();
        let md = crate::redact::redact(&super::markdown(st, &self.spec, &devs));
        let p = self.dir.report_file();
        std::fs::write(&p, md).map_err(|e| io_error("write", &p, e))?;
        let json = serde_json::to_string_pretty(&ResultJson::of(st))
            .map_err(|e| Error::infra("cannot serialise result.json").source(e))?;
        let p = self.dir.result_file();
        std::fs::write(&p, crate::redact::redact(&json)).map_err(|e| io_error("write", &p, e))
    }
}

impl Listener for ReportWriter {
    fn event(&mut self, e: &Event, st: &RunState) {
        if let Event::RunFinished { .. } = e {
            self.error = self.write(st).err();
        }
    }
}
