//! The report's account of verification: per check its command, runs, outcome source (JUnit
//! report or exit code) and result; the verified commit; the reproduction test's source
//! (collapsed, so a reviewer can judge the test).

use std::fmt::Write;

use super::record::{CheckStatus, ReproRecord, Verification};

fn evidence(e: &str) -> &str {
    match e {
        "junit" => "JUnit report",
        "go-json" => "`go test -json`",
        "exit-code" => {
            "exit code only (weaker evidence: the runner wrote no report fixci could read)"
        }
        "" => "-",
        other => other,
    }
}

/// Markdown for the checks of `v` (a table and the verified commit).
pub fn checks_markdown(v: &Verification) -> String {
    let mut m = String::new();
    let _ = writeln!(
        m,
        "Verified commit: `{}` (checked out from git objects into a directory fixci owns).\n",
        v.commit
    );
    let _ = writeln!(
        m,
        "| check | command | runs | passed | outcome from | result |\n|---|---|---|---|---|---|"
    );
    for c in &v.checks {
        let status = match c.status {
            CheckStatus::Passed => "passed",
            CheckStatus::Failed => "**failed**",
            CheckStatus::NotRun => "not run",
        };
        let _ = writeln!(
            m,
            "| {} | {} | {} | {} | {} | {}: {} |",
            c.name,
            if c.command.is_empty() {
                "-".into()
            } else {
                format!("`{}`", crate::markdown::cell(&c.command))
            },
            c.runs,
            c.passed,
            evidence(&c.evidence),
            status,
            crate::markdown::cell(&c.detail)
        );
    }
    m
}

/// The reproduction test's source, collapsed, with its hash and how fixci ran it.
pub fn repro_markdown(test_file: &str, r: &ReproRecord, source: Option<&[u8]>) -> String {
    let mut m = String::new();
    if let Some(run) = &r.runner {
        let _ = writeln!(
            m,
            "fixci ran it with `{}`; outcomes from {}.",
            run.display(),
            evidence(&r.evidence)
        );
    }
    if let Some(n) = &r.command_note {
        let _ = writeln!(m, "\n{n}.");
    }
    if !r.failing_ids.is_empty() {
        let _ = writeln!(
            m,
            "\nFailing before the fix: {}.",
            r.failing_ids
                .iter()
                .map(|i| format!("`{i}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let Some(src) = source {
        let text = String::from_utf8_lossy(src);
        let fence = if text.contains("```") { "~~~~" } else { "```" };
        let _ = writeln!(
            m,
            "\n<details><summary>Reproduction test <code>{test_file}</code> (SHA-256 {})</summary>\n\n{fence}\n{}\n{fence}\n\n</details>",
            &r.sha256,
            crate::redact::redact(text.trim_end())
        );
    }
    m
}
