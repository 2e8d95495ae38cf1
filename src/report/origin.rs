//! The report's lines on where a run started from: the spec's gate (each command's outcome at
//! the base commit) and, for `fixci retry`, the earlier run, the steer and what was reused.

use std::fmt::Write;

use super::{cell, fence};
use crate::run_dir::RunState;

/// The reproduction section of a gate run (no reproduction test).
pub const GATE_IS_REPRO: &str = "The failing gate is the reproduction: fixci ran every gate command at the base commit in a checkout of its own and saw the ones marked failed above fail; no reproduction test was written.\n";

/// The verification counts of a gate run.
pub const GATE_VERIFIED: &str = "- Every gate command passed on the fix commit, in a checkout fixci made from the git objects (exit codes: a gate is defined by them); the CI log's failing tests and the regression check are in the rows above.\n";

/// Rows for the input-configuration table (`| key | value |`), possibly none.
pub fn input_rows(st: &RunState, gate: &[String]) -> String {
    let mut m = String::new();
    if !gate.is_empty() {
        let cmds: Vec<String> = gate.iter().map(|c| format!("`{}`", cell(c))).collect();
        let _ = writeln!(m, "| gate | {} |", cmds.join("; "));
    }
    if let Some(r) = &st.retry_of {
        let _ = writeln!(
            m,
            "| retry of | run `{}` (ended `{}`{}), `{}` |",
            r.run_id,
            r.status.as_str(),
            r.reason
                .as_deref()
                .map(|w| format!(": {}", cell(w)))
                .unwrap_or_default(),
            r.run_dir.display()
        );
        let reused = if r.reused.is_empty() {
            "nothing (the earlier run had no confirmed reproduction)".to_string()
        } else {
            r.reused.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
        };
        let _ = writeln!(m, "| reused stages | {reused} |");
    }
    m
}

/// The steer of a retry and the gate's outcomes at the base, as Markdown (possibly empty).
pub fn sections(st: &RunState) -> String {
    let mut m = String::new();
    if let Some(steer) = st.retry_of.as_ref().and_then(|r| r.steer.as_ref()) {
        let _ = writeln!(m, "Steer for this retry:\n\n{}\n", fence(steer.clone()));
    }
    if let Some(g) = &st.gate {
        let _ = writeln!(m, "### The gate at the base commit\n");
        let _ = writeln!(m, "| command | outcome |\n|---|---|");
        for o in &g.outcomes {
            let _ = writeln!(
                m,
                "| `{}` | {} |",
                cell(&o.command),
                if o.passed { "passed".to_string() } else { format!("failed ({})", o.ended) }
            );
        }
        m.push('\n');
    }
    m
}
