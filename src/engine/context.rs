//! The template context of a stage: `spec`, `logs`, `repro`, `attempt`, `repo`, `stage`,
//! `budget`, `verify_runs`. Every key is always present (absent values are `none`), so strict
//! templates fail only on real typos.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use super::{RunEnv, RunState};
use crate::pipeline;

/// Builds the context for a stage `id` with directory `dir`, in attempt `attempt`.
pub fn prompt_context(
    env: &RunEnv,
    st: &RunState,
    id: &str,
    dir: &Path,
    attempt: Option<u32>,
    budget: Duration,
) -> Value {
    let logs = match &st.logs {
        Some(l) => json!({
            "available": true,
            "failures": l.distilled.failures,
            "no_test_failure": l.distilled.no_test_failure,
            "signature": l.distilled.signature,
            "excerpt": l.distilled.excerpt,
            "path": l.path.as_ref().map(|p| p.display().to_string()),
        }),
        None => {
            json!({"available": false, "failures": [], "no_test_failure": null, "signature": null, "excerpt": "", "path": null})
        }
    };
    let repro = match &st.repro {
        Some(r) => json!({
            "test_file": r.test_file, "command": r.command, "origin": r.origin,
            "failure_output": r.failure_output, "confirmed": r.confirmed,
        }),
        None => {
            json!({"test_file": null, "command": null, "origin": null, "failure_output": "", "confirmed": false})
        }
    };
    let previous: Vec<Value> = st
        .attempts
        .iter()
        .filter(|a| Some(a.number) != attempt && a.outcome != "running")
        .map(|a| {
            json!({
                "number": a.number,
                "reason": a.reason.clone().unwrap_or_default(),
                "diff": a.diff,
                "failure_output": a.failure_output,
            })
        })
        .collect();
    let max_attempts = env
        .req
        .pipeline
        .pipeline
        .stages
        .iter()
        .find(|s| s.kind == pipeline::StageKind::Attempts)
        .and_then(|s| env.count(s.max.as_ref(), 3, "`max`").ok())
        .unwrap_or(3);
    let verify_runs = env.spec().spec.verify_runs.unwrap_or(5);
    json!({
        "spec": pipeline::spec_context(&env.spec().spec),
        "logs": logs,
        "repro": repro,
        "attempt": {"number": attempt.unwrap_or(1), "max": max_attempts, "previous": previous},
        "repo": {
            "root": st.repo.root.display().to_string(),
            "worktree": st.worktree.as_ref().map(|p| p.display().to_string()),
            "base": st.repo.base,
            "commit": st.repo.start_commit,
            "branch": st.branch,
        },
        "stage": {"id": id, "dir": dir.display().to_string()},
        "budget": {"seconds": budget.as_secs(), "human": humantime::format_duration(Duration::from_secs(budget.as_secs())).to_string()},
        "verify_runs": verify_runs,
        "issue": st.issue,
    })
}
