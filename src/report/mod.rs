//! Reports built from the run state: `report.md` (the sections of `outputs/TEMPLATE_report.md`),
//! `result.json`, the PR title and body. Runs no stage and prints nothing; [`ReportWriter`]
//! listens to a run's events and writes the report when the run ends.

mod origin;
mod feature;
mod writer;

pub use writer::ReportWriter;

use std::fmt::Write;

use crate::agent::AgentTotals;
use crate::pipeline::fence;
use crate::run_dir::{RunState, Status};
use crate::runners::looks_like_test;
use crate::spec::LoadedSpec;

/// Largest diff quoted in full in the report (bytes); longer ones are cut with a note.
pub const MAX_DIFF_IN_REPORT: usize = 24 * 1024;

pub use crate::markdown::cell;

/// The attempts table (attempt, agent, model, outcome, reason) as Markdown, one row per
/// attempt; shared by the report and the escalation issue. `-` marks an unknown value (a state
/// written before attempts recorded their agent, or no model).
pub fn attempts_table(st: &RunState) -> String {
    let mut t =
        String::from("| attempt | agent | model | outcome | reason |\n|---|---|---|---|---|\n");
    for a in &st.attempts {
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} |",
            a.number,
            cell(a.agent.as_deref().unwrap_or("-")),
            cell(a.model.as_deref().unwrap_or("-")),
            cell(a.outcome.as_str()),
            cell(a.reason.as_deref().unwrap_or("-"))
        );
    }
    t
}

/// The PR / commit title: the spec's `pr.title`, else `Fix <first failing test>`, else the
/// prompt's first line (72 characters at most).
pub fn title(st: &RunState, spec: &LoadedSpec) -> String {
    if let Some(t) = &spec.spec.pr.title {
        return t.clone();
    }
    if crate::feature::is_feature(st) {
        return cut(&crate::feature::title(st, spec), 72);
    }
    // Only a test fixci itself ran and saw pass is named.
    if let Some(t) = st
        .attempts
        .iter()
        .rev()
        .find_map(|a| a.checks.as_ref())
        .and_then(|v| v.ci_tests_passed().into_iter().next())
    {
        return cut(&format!("Fix failing test {t}"), 72);
    }
    if let Some(r) = &st.repro {
        if r.origin == "existing" {
            return cut(&format!("Fix failing test {}", r.test_file), 72);
        }
    }
    cut(
        &format!(
            "Fix: {}",
            spec.spec.prompt.lines().next().unwrap_or("CI failure")
        ),
        72,
    )
}

fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

/// The one-paragraph summary that leads the report and the PR body.
pub fn summary(st: &RunState) -> String {
    let v = st.verification.as_ref();
    // While the publishing stages run, the status is still `running`; a verified fix is
    // described by what it will end as.
    let partial = st.partial();
    let status = match (st.status, v, &partial) {
        (Status::Running, Some(_), Some(_)) => Status::Partial,
        (Status::Running, Some(_), None) => Status::Success,
        (s, _, _) => s,
    };
    if crate::feature::is_feature(st) {
        if let Some(s) = feature::summary(st, status, partial.as_deref()) {
            return s;
        }
    }
    match status {
        Status::Success if st.repro.is_none() && st.gate.is_some() => format!(
            "The gate failed at the base commit, and a fix passed verification: every gate command passed on the fix commit `{}` in fixci's own checkout.",
            st.attempts.iter().rev().find_map(|a| a.checks.as_ref()).map_or("?", |c| c.commit.get(..10).unwrap_or(&c.commit))
        ),
        Status::Success => format!(
            "fixci reproduced the failure, and a fix passed verification: {} of {} runs passed with fixci's own copy of the reproduction test.",
            v.map_or(0, |v| v.passed),
            v.map_or(0, |v| v.runs)
        ),
        Status::Partial => format!(
            "A fix passed every verification run, but it is not a verified success: {}.",
            partial.as_deref().unwrap_or("see Verification")
        ),
        Status::Escalated => format!(
            "No fix passed verification after {} attempt(s); a human has to take over.",
            st.attempts.len()
        ),
        Status::Failed => format!(
            "The run ended without a fix: {}.",
            st.reason.as_deref().unwrap_or("see the stages below")
        ),
        Status::Interrupted => format!(
            "The run was {}; it can be resumed from there.",
            st.reason.as_deref().unwrap_or("interrupted")
        ),
        Status::Running => "The run has not finished.".into(),
        Status::NothingToFix => {
            "Nothing to fix: every command of the gate passed at the base commit, so fixci wrote no branch and ran no agent.".into()
        }
    }
}

/// The PR body: summary, reproduction, root cause, verification.
pub fn pr_body(st: &RunState, spec: &LoadedSpec) -> String {
    let mut b = String::new();
    if crate::feature::is_feature(st) {
        b = feature::pr_body(st, spec, &summary(st));
    } else {
        let _ = writeln!(b, "## Summary\n\n{}\n", summary(st));
    }
    if let Some(l) = &st.logs {
        if !l.distilled.failures.is_empty() {
            let _ = writeln!(b, "Failing in CI:\n");
            for f in &l.distilled.failures {
                let _ = writeln!(b, "- `{}`", f.test);
            }
            b.push('\n');
        }
    }
    if let Some(rc) = st
        .attempts
        .iter()
        .rev()
        .find_map(|a| a.root_cause.as_ref())
        .filter(|_| !crate::feature::is_feature(st))
    {
        let _ = writeln!(b, "## Root cause (as the agent reported it)\n\n{rc}\n");
    }
    if let Some(r) = st.repro.as_ref().filter(|_| !crate::feature::is_feature(st)) {
        let _ = writeln!(
            b,
            "## Reproduction\n\n`{}` (run with `{}`) failed every confirmation run before the fix.\n",
            r.test_file, r.command
        );
    }
    if let Some(v) = st.verification.as_ref().filter(|_| !crate::feature::is_feature(st)) {
        let _ = writeln!(
            b,
            "## Verification\n\n{} of {} runs passed after the fix.\n",
            v.passed, v.runs
        );
    }
    let _ = writeln!(
        b,
        "---\nOpened by fixci from `{}`; task: {}",
        spec_name(st, spec),
        spec.spec.prompt.lines().next().unwrap_or("")
    );
    b
}

/// How PR text names the job spec: its path relative to the repository when it lies inside it,
/// else its file name. Local absolute paths (home folders, CI work dirs) never reach a PR.
pub fn spec_name(st: &RunState, spec: &LoadedSpec) -> String {
    let root = std::fs::canonicalize(&st.repo.root).unwrap_or_else(|_| st.repo.root.clone());
    let path = std::fs::canonicalize(&spec.path).unwrap_or_else(|_| spec.path.clone());
    match path.strip_prefix(&root) {
        Ok(rel) => rel.display().to_string(),
        Err(_) => path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "job spec".into()),
    }
}

/// The Markdown report (`report.md`). `devs` are the authors of the changed lines, with counts.
pub fn markdown(st: &RunState, spec: &LoadedSpec, devs: &[(String, usize)]) -> String {
    let mut m = String::new();
    let _ = writeln!(m, "# fixci report: {}\n", title(st, spec));
    if let Some(w) = crate::contain::warning(&st.containment) {
        let _ = writeln!(m, "> **Warning:** {w}\n");
    }
    let _ = writeln!(m, "## Summary\n");
    let _ = writeln!(m, "- **Status:** {}", st.status.as_str());
    if let Some(r) = &st.reason {
        let _ = writeln!(m, "- **Reason:** {r}");
    }
    match (&st.branch, st.branch_created) {
        (Some(b), true) => {
            let _ = writeln!(m, "- **Branch:** `{b}`");
        }
        _ => {
            let _ = writeln!(m, "- **Branch:** none in your repository");
        }
    }
    if let Some(c) = &st.commit {
        let _ = writeln!(m, "- **Fix commit:** `{c}`");
    }
    if let Some(c) = &st.cleanup {
        m.push_str(&crate::run_dir::cleanup::markdown(c));
    }
    if let Some(a) = st
        .attempts
        .last()
        .filter(|a| !a.test_infra_allowed.is_empty())
    {
        let _ = writeln!(
            m,
            "- **Test infrastructure changed** (accepted because the spec sets `allow-test-infra-changes`): {}",
            a.test_infra_allowed.join("; ")
        );
    }
    let _ = writeln!(m, "\n{}\n", summary(st));

    let _ = writeln!(m, "## Input configuration\n");
    let _ = writeln!(m, "| key | value |\n|---|---|");
    let _ = writeln!(m, "| job spec | `{}` |", st.spec_file.display());
    let _ = writeln!(m, "| pipeline | `{}` |", st.pipeline);
    let _ = writeln!(m, "| agent | `{}` |", cell(&st.agent));
    let _ = writeln!(m, "| repository | `{}` |", st.repo.source);
    let _ = writeln!(
        m,
        "| base | `{}` ({}) |",
        st.repo.base,
        short(&st.repo.base_commit)
    );
    let _ = writeln!(
        m,
        "| reproduction starts at | {} |",
        short(&st.repo.start_commit)
    );
    let _ = writeln!(m, "| deterministic | {} |", spec.spec.deterministic);
    let input = if spec.spec.url.is_some() {
        "url"
    } else if spec.spec.raw_logs.is_some() {
        "raw-logs"
    } else if !spec.spec.gate.is_empty() {
        "gate"
    } else if spec.spec.existing_test_path.is_some() {
        "existing-test-path"
    } else if spec.spec.issue.is_some() {
        "issue"
    } else {
        "issue-file"
    };
    let _ = writeln!(m, "| input | `{input}` |");
    m.push_str(&origin::input_rows(st, &spec.spec.gate));
    let _ = writeln!(m, "\nTask:\n\n{}\n", fence(spec.spec.prompt.clone()));
    m.push_str(&origin::sections(st));

    if let Some(l) = &st.logs {
        let _ = writeln!(m, "### The CI failure\n");
        if l.distilled.failures.is_empty() {
            let _ = writeln!(m, "No failing test was recognised in the log.\n");
        }
        for f in &l.distilled.failures {
            let loc = match (&f.file, f.line) {
                (Some(file), Some(line)) => format!(" ({file}:{line})"),
                (Some(file), None) => format!(" ({file})"),
                _ => String::new(),
            };
            let _ = writeln!(
                m,
                "- `{}`{loc}{}",
                f.test,
                f.message
                    .as_ref()
                    .map(|s| format!(": {s}"))
                    .unwrap_or_default()
            );
        }
        if let Some(s) = &l.distilled.signature {
            let _ = writeln!(m, "\nFailure signature: `{s}`");
        }
        m.push('\n');
    }

    let is_feature = crate::feature::is_feature(st);
    if is_feature {
        m.push_str(&feature::asked(st, spec, true));
        m.push_str(&feature::tests(st));
    } else {
        let _ = writeln!(m, "## Reproduction\n");
    }
    match st.repro.as_ref().filter(|_| !is_feature) {
        Some(r) => {
            let _ = writeln!(
                m,
                "- Test: `{}` ({})",
                r.test_file,
                if r.origin == "agent" {
                    "written by the agent"
                } else {
                    "already in the repository"
                }
            );
            let _ = writeln!(m, "- Command: `{}`", r.command);
            let confirm = st
                .stages
                .iter()
                .find(|s| s.kind == crate::pipeline::StageKind::RunTest && s.attempt.is_none());
            let _ = writeln!(
                m,
                "- Confirmed by fixci: {}{}",
                if r.confirmed { "yes" } else { "no" },
                confirm
                    .map(|c| format!(" ({})", c.summary))
                    .unwrap_or_default()
            );
            if !r.failure_output.is_empty() {
                let _ = writeln!(
                    m,
                    "\nOutput of a failing run:\n\n{}\n",
                    fence(r.failure_output.clone())
                );
            }
            if let Some(rec) = &r.sealed {
                let src = rec
                    .bytes
                    .clone()
                    .or_else(|| r.copy.as_ref().and_then(|c| std::fs::read(c).ok()));
                let _ = writeln!(
                    m,
                    "{}",
                    crate::verify::report::repro_markdown(&r.test_file, rec, src.as_deref())
                );
            }
        }
        None if st.gate.as_ref().is_some_and(|g| g.failed()) => {
            let _ = writeln!(m, "{}", origin::GATE_IS_REPRO);
        }
        None if is_feature => {}
        None => {
            let _ = writeln!(m, "No reproduction.\n");
        }
    }

    let _ = writeln!(
        m,
        "{}\n",
        if is_feature {
            "## What was built"
        } else {
            "## Root cause"
        }
    );
    match st.attempts.iter().rev().find_map(|a| a.root_cause.as_ref()) {
        Some(rc) => {
            let _ = writeln!(
                m,
                "As the agent reported it (fixci checks the fix, not this explanation):\n\n{rc}\n"
            );
        }
        None => {
            let _ = writeln!(m, "The agent gave no explanation.\n");
        }
    }

    let _ = writeln!(m, "## Fix\n");
    let tampering: Vec<String> = st
        .attempts
        .iter()
        .flat_map(|a| {
            a.tampering
                .iter()
                .map(move |t| format!("attempt {}: {t}", a.number))
        })
        .collect();
    if !tampering.is_empty() {
        let _ = writeln!(
            m,
            "**Test tampering detected** (fixci restored its own copy of the reproduction test and refused marker, assertion, timeout and test-infrastructure changes):\n"
        );
        for t in &tampering {
            let _ = writeln!(m, "- {t}");
        }
        m.push('\n');
    }
    let diff = if st.commit.is_some() {
        std::fs::read_to_string(
            st.worktree
                .as_ref()
                .and_then(|w| w.parent())
                .map(|d| d.join("fix.diff"))
                .unwrap_or_default(),
        )
        .unwrap_or_default()
    } else {
        st.attempts
            .last()
            .map(|a| a.diff.clone())
            .unwrap_or_default()
    };
    let (tests, code) = split_diff(&diff);
    if !tests.is_empty() {
        let _ = writeln!(
            m,
            "Changes to tests (shown first; judged by fixci):\n\n{}\n",
            fence_diff(&tests)
        );
    }
    if code.trim().is_empty() && tests.is_empty() {
        let _ = writeln!(m, "No fix.\n");
    } else if !code.trim().is_empty() {
        let _ = writeln!(
            m,
            "{}:\n\n{}\n",
            if st.commit.is_some() && is_feature {
                "The change (`fix.diff`)"
            } else if st.commit.is_some() {
                "The fix (`fix.diff`)"
            } else {
                "The last attempt's diff (not committed)"
            },
            fence_diff(&code)
        );
    }
    if !st.attempts.is_empty() {
        let _ = writeln!(m, "### Attempts\n\n{}", attempts_table(st));
        for a in st.attempts.iter().filter(|a| {
            a.outcome != crate::run_dir::AttemptOutcome::Passed && !a.failure_output.is_empty()
        }) {
            let _ = writeln!(
                m,
                "Attempt {} verification output:\n\n{}\n",
                a.number,
                fence(a.failure_output.clone())
            );
        }
    }

    let _ = writeln!(m, "## Verification\n");
    if let Some(f) = &st.flaky {
        let _ = writeln!(
            m,
            "Before the fix (flaky reproduction under stress, {} parallel jobs): {} of {} runs failed, p0 = {:.3} ({:.0}% Clopper-Pearson interval [{:.3}, {:.3}]); failures counted: {}{}.\n",
            f.jobs,
            f.failures,
            f.runs,
            f.failure_rate,
            f.confidence * 100.0,
            f.interval.0,
            f.interval.1,
            f.matched_by,
            if f.unmatched_failures > 0 {
                format!(
                    "; {} failures of another signature or kind (import, collection or environment errors, or not the CI's kind) were not counted",
                    f.unmatched_failures
                )
            } else {
                String::new()
            }
        );
    }
    // The checks of the verified attempt, else of the last one.
    if let Some(v) = st
        .attempts
        .iter()
        .rev()
        .find(|a| a.outcome == crate::run_dir::AttemptOutcome::Passed)
        .or(st.attempts.last())
        .and_then(|a| a.checks.as_ref())
    {
        let _ = writeln!(m, "{}", crate::verify::report::checks_markdown(v));
    }
    match (
        &st.verification,
        st.attempts.last().and_then(|a| a.verification.as_ref()),
    ) {
        // A gate run has no reproduction test to count runs of: the gate rows above are the
        // evidence.
        (Some(_), _) if st.repro.is_none() && st.gate.is_some() => {
            let _ = writeln!(m, "{}", origin::GATE_VERIFIED);
        }
        (Some(v), _) => {
            let _ = writeln!(
                m,
                "- Runs: {} (planned {})\n- Passed: {}\n- Failed: {}",
                v.runs, v.planned, v.passed, v.failed
            );
            match &st.flaky {
                Some(f) if v.failed == 0 => {
                    let bound = crate::stats::upper_bound_after_zero_failures(v.runs, 0.95);
                    let caught = 1.0 - (1.0 - f.failure_rate).powf(v.runs as f64);
                    let _ = writeln!(
                        m,
                        "- Bound: **failure rate after fix < {bound:.4} at 95% confidence** ({} runs, no failure; exact binomial bound 1 - 0.05^(1/n)).",
                        v.runs
                    );
                    let k = crate::defaults::min_improvement(spec.spec.min_improvement);
                    let _ = writeln!(
                        m,
                        "- Improvement: k = {k} (`min-improvement`): a change that left the failure rate above p0/k = {:.4} would have failed at least one of these {} runs with probability >= {:.3} (N = ceil(ln(alpha) / ln(1 - p0/k))).",
                        f.failure_rate / k,
                        v.runs,
                        1.0 - crate::stats::pass_probability(f.failure_rate / k, v.runs)
                    );
                    let _ = writeln!(
                        m,
                        "- Power: had the fix changed nothing (rate p0 = {:.3}), at least one of these runs would have failed with probability {:.3}; five runs would have caught it with probability {:.3}.",
                        f.failure_rate,
                        caught,
                        1.0 - (1.0 - f.failure_rate).powi(5)
                    );
                    if let Some(p) = &st.partial_reason {
                        let _ = writeln!(
                            m,
                            "- **Partial:** {p}; the bound above is what the runs made support."
                        );
                    }
                    m.push('\n');
                }
                _ => {
                    let _ = writeln!(
                        m,
                        "- Confidence: the failure was deterministic (it failed every confirmation run), and the fixed test passed all {} runs, each run by fixci with its own copy of the test.\n",
                        v.runs
                    );
                }
            }
        }
        (None, Some(v)) => {
            let _ = writeln!(
                m,
                "- Last attempt: {} runs, {} passed, {} failed (of {} planned)\n",
                v.runs, v.passed, v.failed, v.planned
            );
        }
        (None, None) => {
            let _ = writeln!(m, "Not verified.\n");
        }
    }

    let _ = writeln!(m, "## Pull request\n");
    match &st.pr {
        Some(p) if p.mode == "opened" => {
            let _ = writeln!(m, "Draft PR: {}\n", p.url.as_deref().unwrap_or("-"));
        }
        Some(p) => {
            let _ = writeln!(
                m,
                "Not opened (proposal). Title and body are in `{}`. To publish:\n\n```sh\n{}\n```\n",
                p.body_file.display(),
                p.commands.join("\n")
            );
        }
        None => {
            let _ = writeln!(m, "None.\n");
        }
    }

    agent_section(&mut m, st);
    m.push_str(&crate::contain::markdown(&st.containment));

    let _ = writeln!(
        m,
        "## Stages\n\n| stage | attempt | status | time | budget | summary |\n|---|---|---|---|---|---|"
    );
    for s in &st.stages {
        let _ = writeln!(
            m,
            "| {} | {} | {} | {:.1}s | {:.0}s | {} |",
            s.id,
            s.attempt
                .map(|a| a.to_string())
                .unwrap_or_else(|| "-".into()),
            s.status.as_str(),
            s.duration_s,
            s.budget_s,
            cell(&s.summary)
        );
    }
    m.push('\n');

    let _ = writeln!(m, "## Next steps\n");
    let next = match st.status {
        Status::Success => "Review the fix diff, then publish the branch (see Pull request).".to_string(),
        Status::Escalated => "Read the attempts' diffs and verification output above; fix by hand or re-run with a different prompt or agent.".into(),
        Status::Failed => failed_next_step(st),
        _ => format!("Resume with `fixci resume {}`.", st.run_id),
    };
    let _ = writeln!(m, "{next}\n");

    let _ = writeln!(m, "## Relevant developers\n");
    if devs.is_empty() {
        let _ = writeln!(
            m,
            "No changed lines had prior authors (`git blame` found none).\n"
        );
    } else {
        let _ = writeln!(m, "Authors of the changed lines (`git blame` at base):\n");
        for (who, n) in devs {
            let _ = writeln!(m, "- {who}: {n} line{}", if *n == 1 { "" } else { "s" });
        }
        m.push('\n');
    }
    m
}

/// What to do after a run that ended without a fix: a longer budget only when a stage ran out
/// of its budget; when fixci itself could not do a stage's job (a stage `error`: a missing
/// program, git or disk), fix that first; otherwise, help the reproduction.
fn failed_next_step(st: &RunState) -> String {
    use crate::run_dir::StageStatus;
    let last = st.stages.iter().rev().find(|s| {
        !matches!(s.status, StageStatus::Passed | StageStatus::Skipped)
    });
    match last {
        Some(s) if s.status == StageStatus::Error => format!(
            "fixci could not run stage `{}` ({}); fix that, then start the run again.",
            s.id, s.summary
        ),
        Some(s) if s.status == StageStatus::Timeout => format!(
            "Stage `{}` ran out of its budget: give it a longer one (`budgets` in the spec), or a more specific prompt.",
            s.id
        ),
        _ => "Check the reproduction: give a more specific prompt or an `existing-test-path`.".into(),
    }
}

fn short(c: &str) -> String {
    format!("`{}`", &c[..10.min(c.len())])
}

/// Splits a diff into (test-file parts, other parts).
fn split_diff(diff: &str) -> (String, String) {
    let (mut tests, mut code) = (String::new(), String::new());
    let mut to_tests = false;
    for line in diff.split_inclusive('\n') {
        if let Some(rest) = line.strip_prefix("diff --git a/") {
            to_tests = looks_like_test(rest.split(" b/").next().unwrap_or(rest));
        }
        if to_tests {
            tests.push_str(line)
        } else {
            code.push_str(line)
        }
    }
    (tests, code)
}

fn fence_diff(d: &str) -> String {
    let body = if d.len() > MAX_DIFF_IN_REPORT {
        let mut cut = MAX_DIFF_IN_REPORT;
        while !d.is_char_boundary(cut) {
            cut -= 1;
        }
        format!(
            "{}\n[... {} more bytes: see fix.diff]",
            &d[..cut],
            d.len() - cut
        )
    } else {
        d.to_string()
    };
    fence(body).replacen("text\n", "diff\n", 1)
}

/// The `## Agent` section: one row per agent invocation (the reproduce stage, each fix
/// attempt) with what the CLI reported, and a total row. Omitted when no agent ran.
fn agent_section(m: &mut String, st: &RunState) {
    let runs: Vec<_> = st
        .stages
        .iter()
        .filter_map(|s| s.agent_report.as_ref().map(|a| (s, a)))
        .collect();
    if runs.is_empty() {
        return;
    }
    let n = |v: Option<u64>| v.map(|x| x.to_string()).unwrap_or_else(|| "-".into());
    let cost = |c: Option<f64>| c.map(|c| format!("${c:.4}")).unwrap_or_else(|| "-".into());
    let _ = writeln!(
        m,
        "## Agent\n\nWhat the agent CLI reported about its own runs (its word: tokens and cost are \
         for accounting; fixci judged the outcome itself).\n\n\
         | stage | attempt | agent | turns | input tokens | output tokens | cache read | cache write | cost | error |\n\
         |---|---|---|---|---|---|---|---|---|---|"
    );
    for (s, a) in &runs {
        let _ = writeln!(
            m,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            s.id,
            s.attempt
                .map(|x| x.to_string())
                .unwrap_or_else(|| "-".into()),
            cell(&a.agent),
            n(a.turns),
            n(a.input_tokens),
            n(a.output_tokens),
            n(a.cache_read_tokens),
            n(a.cache_write_tokens),
            cost(a.cost_usd),
            if a.is_error {
                cell(&cut(a.error.as_deref().unwrap_or("error"), 200))
            } else {
                "-".into()
            }
        );
    }
    let t = AgentTotals::of(runs.iter().map(|(_, a)| *a));
    let _ = writeln!(
        m,
        "| **total** | | | | {} | {} | {} | {} | {} | {} of {} |\n",
        t.input,
        t.output,
        t.cache_read,
        t.cache_write,
        cost(t.cost_usd),
        t.errors,
        t.invocations
    );
}
