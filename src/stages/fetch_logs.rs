//! `fetch-logs`: reads the CI log (inline text, a file, a run-logs ZIP; a run URL through the
//! forge) and distils the failure into the run state.

use super::{Stage, StageCtx, StageResult};
use crate::error::{Error, io_error};
use crate::logs::{self, DistilOptions};
use crate::run_dir::{Event, LogsState, StageStatus};
use crate::spec::LogsInput;

/// The `fetch-logs` stage.
pub struct FetchLogs;

impl Stage for FetchLogs {
    fn run(&self, cx: &mut StageCtx<'_>) -> Result<StageResult, Error> {
        if !cx.env.spec().spec.gate.is_empty() {
            return super::gate::run_at_base(cx);
        }
        let opts = DistilOptions::default();
        let (path, distilled) = match &cx.env.spec().logs {
            LogsInput::None => {
                return Ok(StageResult::new(
                    StageStatus::Skipped,
                    "no CI log in the spec",
                ));
            }
            LogsInput::Inline(text) => {
                // Tokens in a CI log are redacted before anything is written or rendered.
                let text = crate::redact::redact(text);
                let p = cx.dir.join("ci.log");
                std::fs::write(&p, &text).map_err(|e| io_error("write", &p, e))?;
                (p, logs::distil_bytes(text.as_bytes(), &opts))
            }
            LogsInput::File(p) => (p.clone(), logs::distil_path(p, &opts)),
            LogsInput::Url(url) => {
                let refetched;
                let fetched = match &cx.env.prefetched {
                    Some(p) => p,
                    None => {
                        refetched =
                            super::forge_inputs::prefetch(url, cx.env.req.api_url.as_deref())?;
                        &refetched
                    }
                };
                let (p, d) =
                    super::forge_inputs::distil_fetched(&fetched.run.log_files, &cx.dir, &opts)?;
                let meta = serde_json::json!({
                    "url": url, "head_sha": fetched.run.head_sha, "head_branch": fetched.run.head_branch,
                    "status": fetched.run.status, "conclusion": fetched.run.conclusion,
                    "failed_jobs": fetched.run.failed_jobs.iter().map(|j| serde_json::json!({"id": j.id, "name": j.name, "failed_steps": j.failed_steps})).collect::<Vec<_>>(),
                });
                std::fs::write(
                    cx.dir.join("run.json"),
                    serde_json::to_string_pretty(&meta).unwrap_or_default(),
                )
                .map_err(|e| io_error("write", &cx.dir.join("run.json"), e))?;
                (p, Ok(d))
            }
        };
        let mut distilled = distilled.map_err(|e| {
            Error::usage(format!("cannot read the CI log `{}`", path.display())).source(e)
        })?;
        redact_distilled(&mut distilled);
        std::fs::write(
            cx.dir.join("distilled.json"),
            serde_json::to_string_pretty(&distilled).unwrap_or_default(),
        )
        .map_err(|e| io_error("write", &cx.dir.join("distilled.json"), e))?;
        let n = distilled.failures.len();
        let summary = match n {
            0 => match &distilled.no_test_failure {
                Some(e) => format!(
                    "no failing test: the job failed at line {} of the log",
                    e.log_line
                ),
                None => "no failing test recognised; the prompt carries the log excerpt".to_string(),
            },
            _ => format!(
                "{n} failing test{}: {}",
                if n == 1 { "" } else { "s" },
                distilled
                    .failures
                    .iter()
                    .take(3)
                    .map(|f| format!("`{}`", f.test))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        cx.emit(Event::LogsDistilled {
            logs: LogsState {
                path: Some(path),
                distilled,
            },
        });
        Ok(StageResult::passed(summary))
    }
}

/// Redacts secrets in everything the distilled log carries into prompts, state and reports.
pub(super) fn redact_distilled(d: &mut logs::Distilled) {
    use crate::redact::redact;
    d.excerpt = redact(&d.excerpt);
    d.signature = d.signature.as_deref().map(redact);
    for f in &mut d.failures {
        f.test = redact(&f.test);
        f.message = f.message.as_deref().map(redact);
    }
    if let Some(n) = &mut d.no_test_failure {
        n.error_line = redact(&n.error_line);
    }
}
