//! The gate at the base commit, for a spec with `gate` (the `fetch-logs` stage delegates here):
//! fixci checks the start commit out into a sealed tree it owns (never the user's working
//! tree), runs every gate command there in its own process group under the stage's budget, and
//! records each outcome. A gate that passes ends the run `nothing-to-fix`. A failing gate's
//! output is the run's CI log, distilled like any other (failing tests, or the error line of a
//! failure that names no test). In the `gate` pipeline the failing gate is the reproduction:
//! fixci ran it itself and saw it fail, so no reproduce stage runs and verification runs the
//! whole gate on the fix commit.

use super::{StageCtx, StageResult, worktree};
use crate::error::{Error, io_error};
use crate::logs::{self, DistilOptions};
use crate::run_dir::{Event, LogsState, Status};
use crate::vcs;
use crate::verify::{self, gate};

/// Runs the gate at the start commit; see the module documentation.
pub(super) fn run_at_base(cx: &mut StageCtx<'_>) -> Result<StageResult, Error> {
    let commands = cx.env.spec().spec.gate.clone();
    let wt = worktree(cx.st())?;
    let repo = vcs::open(&wt).map_err(|e| Error::infra("cannot open the worktree").source(e))?;
    let start = cx.st().repo.start_commit.clone();
    let oid = git2::Oid::from_str(&start)
        .map_err(|e| Error::infra("bad start commit in state").source(e))?;
    let tree = match verify::seal_or_refuse(&repo, oid)? {
        Ok(t) => t,
        Err(why) => return Ok(StageResult::failed(why)),
    };
    let id = cx.id.to_string();
    let of = commands.len() as u64;
    let mut events = Vec::new();
    let mut on_run = |label: &str, k: u64, passed: bool, how: String| {
        events.push(Event::TestRun {
            stage: id.clone(),
            run: k,
            of,
            passed,
            how: format!("{label}: {how}"),
        });
    };
    let mut lim = super::sealed_run::limits(cx, &mut on_run);
    let outcomes = gate::run(&commands, &tree.root(), "gate-base", &mut lim)?;
    drop(lim);
    // Paths in the output name the repository, not fixci's temporary checkout.
    let tree_prefix = format!("{}/", tree.root().display());
    drop(tree);
    for e in events {
        cx.emit(e);
    }
    let state = gate::GateState {
        commit: start.clone(),
        outcomes,
    };
    cx.emit(Event::GateRan {
        gate: state.clone(),
    });
    if cx.env.cancelled() {
        return Ok(StageResult::failed("interrupted"));
    }
    let short = &start[..start.len().min(10)];
    if !state.failed() {
        let why = format!(
            "nothing to fix: every gate command passed at {short} ({})",
            state
                .outcomes
                .iter()
                .map(|o| format!("`{}`", o.command))
                .collect::<Vec<_>>()
                .join(", ")
        );
        cx.emit(Event::RunStopping {
            status: Status::NothingToFix,
            reason: why.clone(),
        });
        return Ok(StageResult::passed(why));
    }
    let text = gate::failing_output(&state.outcomes, 256 * 1024).replace(&tree_prefix, "");
    let path = cx.dir.join("gate.log");
    std::fs::write(&path, &text).map_err(|e| io_error("write", &path, e))?;
    let mut distilled = logs::distil_bytes(text.as_bytes(), &DistilOptions::default())
        .map_err(|e| Error::infra("cannot distil the gate's output").source(e))?;
    super::fetch_logs::redact_distilled(&mut distilled);
    let p = cx.dir.join("distilled.json");
    std::fs::write(
        &p,
        serde_json::to_string_pretty(&distilled).unwrap_or_default(),
    )
    .map_err(|e| io_error("write", &p, e))?;
    let failing: Vec<String> = state
        .outcomes
        .iter()
        .filter(|o| !o.passed)
        .map(|o| format!("`{}` ({})", o.command, o.ended))
        .collect();
    let tests = distilled.failures.len();
    cx.emit(Event::LogsDistilled {
        logs: LogsState {
            path: Some(path),
            distilled,
        },
    });
    Ok(StageResult::passed(format!(
        "the gate fails at {short}: {}; {tests} failing test{} recognised",
        failing.join(", "),
        if tests == 1 { "" } else { "s" }
    )))
}
