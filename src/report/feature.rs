//! Report and PR text worded for a feature run (the `feature` pipeline, see [`crate::feature`]):
//! what was asked (the issue), what was built (the agent's description and the change), the
//! tests that prove it (the acceptance tests, failing before, passing after, kept in the PR).

use std::fmt::Write;

use crate::pipeline::fence;
use crate::run_dir::{RunState, Status};
use crate::spec::LoadedSpec;

/// The one-paragraph summary of a feature run, for `status` (what it ends as).
pub fn summary(st: &RunState, status: Status, partial: Option<&str>) -> Option<String> {
    let v = st.verification.as_ref();
    let test = st
        .repro
        .as_ref()
        .map(|r| r.test_file.as_str())
        .unwrap_or("-");
    Some(match status {
        Status::Success => format!(
            "fixci confirmed that the acceptance tests `{test}` fail without the feature, and an implementation passed verification: {} of {} runs passed with fixci's own copy of the tests, which are part of the change.",
            v.map_or(0, |v| v.passed),
            v.map_or(0, |v| v.runs)
        ),
        Status::Partial => format!(
            "An implementation passed every verification run, but it is not a verified success: {}.",
            partial.unwrap_or("see Verification")
        ),
        Status::Escalated => format!(
            "No implementation passed verification after {} attempt(s); a human has to take over.",
            st.attempts.len()
        ),
        Status::Failed => format!(
            "The run ended without the feature: {}.",
            st.reason.as_deref().unwrap_or("see the stages below")
        ),
        _ => return None,
    })
}

/// "What was asked": the issue's reference, link and title, with its body fenced (untrusted).
pub fn asked(st: &RunState, spec: &LoadedSpec, with_body: bool) -> String {
    let mut m = String::from("## What was asked\n\n");
    match &st.issue {
        Some(i) => {
            let link = if i.url.is_empty() {
                format!("`{}`", i.reference)
            } else {
                format!("[{}]({})", i.reference, i.url)
            };
            let _ = writeln!(m, "Issue {link}: **{}**\n", i.title.replace('\n', " "));
            if with_body && !i.body.trim().is_empty() {
                let _ = writeln!(m, "{}\n", fence(i.body.clone()));
            }
        }
        None => {
            let _ = writeln!(m, "{}\n", fence(spec.spec.prompt.clone()));
        }
    }
    m
}

/// "The tests that prove it": the acceptance tests, how they failed at the base, how they
/// passed after the change.
pub fn tests(st: &RunState) -> String {
    let mut m = String::from("## The tests that prove it\n\n");
    let Some(r) = &st.repro else {
        m.push_str("No acceptance tests were written.\n");
        return m;
    };
    let _ = writeln!(
        m,
        "`{}` (written first, run with `{}`, included in this change){}.",
        r.test_file,
        r.command,
        if r.confirmed {
            ": it failed every confirmation run at the base commit, where the feature is missing"
        } else {
            ": not confirmed failing at the base commit"
        }
    );
    if let Some(c) = st
        .stages
        .iter()
        .find(|s| s.kind == crate::pipeline::StageKind::RunTest && s.attempt.is_none())
    {
        let _ = writeln!(m, "Confirmation at the base commit: {}.", c.summary);
    }
    if let Some(v) = &st.verification {
        let _ = writeln!(
            m,
            "After the change, fixci's own copy of it passed {} of {} runs.",
            v.passed, v.runs
        );
    }
    m.push('\n');
    m
}

/// The PR body of a feature: summary, what was asked, what was built, the tests.
pub fn pr_body(st: &RunState, spec: &LoadedSpec, summary: &str) -> String {
    let mut b = format!("## Summary\n\n{summary}\n\n");
    b.push_str(&asked(st, spec, false));
    if let Some(rc) = st.attempts.iter().rev().find_map(|a| a.root_cause.as_ref()) {
        let _ = writeln!(b, "## What was built (as the agent described it)\n\n{rc}\n");
    }
    b.push_str(&tests(st));
    b
}
