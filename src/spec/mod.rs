//! Job specs: load JSON or TOML, validate against `schemas/job.schema.json`, run the semantic
//! checks, and produce a typed [`JobSpec`]. Reads the spec file (and checks that the paths it
//! names exist); does no other I/O.

mod document;
pub mod duration;
pub mod gate;
mod job_spec;
mod result_format;

use std::path::{Component, Path, PathBuf};

use serde_json::Value;

pub use document::{
    Format, check_schema, deserialize_typed, parse_document, pointer, read_document, type_name,
};
pub use job_spec::{AgentCommits, AgentSpec, Budgets, JobSpec, PrSpec};
pub use result_format::ResultFormat;

use crate::error::Error;

/// The job spec schema (JSON Schema draft 2020-12), embedded from `schemas/job.schema.json`.
pub const JOB_SCHEMA: &str = include_str!("../../schemas/job.schema.json");

/// Where the CI log comes from, as the semantic checks resolved `url` / `raw-logs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogsInput {
    /// No log (an `existing-test-path` job).
    None,
    /// `raw-logs` held the log text itself.
    Inline(String),
    /// `raw-logs` named a file (absolute path): plain text, run-logs ZIP or JUnit XML.
    File(PathBuf),
    /// `url`: a GitHub Actions run URL.
    Url(String),
}

/// A validated job spec with its location and resolved inputs.
#[derive(Debug, Clone)]
pub struct LoadedSpec {
    /// The typed spec, as written.
    pub spec: JobSpec,
    /// Absolute path of the spec file (or a description such as `<command line>`).
    pub path: PathBuf,
    /// Absolute folder that relative paths in the spec resolve against.
    pub dir: PathBuf,
    /// The resolved log input.
    pub logs: LogsInput,
    /// `--model` from the command line, which also replaced `spec.model`; unlike the spec's own
    /// `model` it beats the pipeline's attempt ladder. `None` when loaded from a file.
    pub model_flag: Option<String>,
    /// Set by `fixci run --event` (see `crate::ci_event`): the attempt this run makes on a fix
    /// branch, for its commit trailers, its PR's hidden block and the branch it continues.
    /// `None` for every other run.
    pub ci: Option<crate::ci_event::CiRun>,
}

/// Loads and validates the job spec at `path` (JSON, or TOML by extension).
///
/// Errors (exit 2) name the file and the JSON pointer: syntax, schema violations (unknown keys
/// included), and semantic checks (input combination, paths, durations).
pub fn load(path: &Path) -> Result<LoadedSpec, Error> {
    let value = read_document(path, "job spec")?;
    let abs = absolute(path);
    let dir = abs
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    from_value(value, &abs, &dir)
}

/// Validates an already-parsed document; `path` names it in errors, `dir` resolves relative
/// paths.
pub fn from_value(value: Value, path: &Path, dir: &Path) -> Result<LoadedSpec, Error> {
    check_schema(&value, JOB_SCHEMA, path, "job spec")?;
    let spec: JobSpec = deserialize_typed(&value, path, "job spec")?;
    let mut problems = Vec::new();
    let logs = check_inputs(&spec, dir, &mut problems);
    gate::check(&spec, &mut problems);
    if let Some(p) = &spec.existing_test_path {
        if let Err(why) = check_relative_inside(p) {
            problems.push(format!("/existing-test-path: `{p}` {why}"));
        }
    }
    check_issue_file(&spec, dir, &mut problems);
    if let Some(repo) = &spec.repo {
        if !is_remote_url(repo) {
            let p = dir.join(repo);
            if !p.exists() {
                problems.push(format!("/repo: `{}` does not exist", p.display()));
            }
        }
    }
    if let Some(agent) = &spec.agent {
        if let Some(stdin) = &agent.stdin {
            if stdin != "prompt" && stdin != "none" {
                problems.push(format!(
                    "/agent/stdin: expected `prompt` or `none`, found `{stdin}`"
                ));
            }
        }
    }
    if !problems.is_empty() {
        return Err(
            Error::usage(format!("invalid job spec `{}`", path.display())).details(problems),
        );
    }
    Ok(LoadedSpec {
        spec,
        path: path.to_path_buf(),
        dir: dir.to_path_buf(),
        logs,
        model_flag: None,
        ci: None,
    })
}

/// The input rule: at least one of `url`, `raw-logs`, `existing-test-path`, `gate`, `issue` or
/// `issue-file` (an issue alone is a feature request), never two of `url`, `raw-logs` and `gate`
/// (see [`gate::check`]), nor `issue` and `issue-file`. A CI log beside an `existing-test-path` is allowed, as the original
/// documentation says ("if `existing-test-path` is provided, logs are not required"): it then
/// feeds the prompt and, for a flaky failure, the failure signature the reproduction must match.
fn check_inputs(spec: &JobSpec, dir: &Path, problems: &mut Vec<String>) -> LogsInput {
    match (&spec.url, &spec.raw_logs) {
        (Some(_), Some(_)) => {
            problems.push("/raw-logs: give either `url` or `raw-logs`, not both".into());
            LogsInput::None
        }
        (None, None) => {
            if spec.existing_test_path.is_none()
                && spec.gate.is_empty()
                && spec.issue.is_none()
                && spec.issue_file.is_none()
            {
                problems.push(
                    "(root): one of `url`, `raw-logs`, `existing-test-path`, `gate`, `issue` or `issue-file` is required".into(),
                );
            }
            LogsInput::None
        }
        (Some(url), None) => {
            if !is_run_url(url) {
                problems.push(format!(
                    "/url: `{url}` is not a GitHub Actions run URL; expected `https://HOST/OWNER/REPO/actions/runs/ID` (optionally `/attempts/N` or `/job/JID`)"
                ));
            }
            LogsInput::Url(url.clone())
        }
        (None, Some(raw)) => resolve_raw_logs(raw, dir, problems),
    }
}

/// `issue-file` names a readable file beside the spec, and never comes with `issue`.
fn check_issue_file(spec: &JobSpec, dir: &Path, problems: &mut Vec<String>) {
    let Some(f) = &spec.issue_file else { return };
    if spec.issue.is_some() {
        problems.push("/issue-file: give either `issue` or `issue-file`, not both".into());
    }
    let p = dir.join(f);
    match std::fs::read_to_string(&p) {
        _ if !p.is_file() => problems.push(format!(
            "/issue-file: `{}` does not exist or is not a file; expected a Markdown file with the issue's text",
            p.display()
        )),
        Ok(t) if t.trim().is_empty() => problems.push(format!(
            "/issue-file: `{}` is empty; expected the feature request in Markdown",
            p.display()
        )),
        Ok(_) => {}
        Err(e) => problems.push(format!("/issue-file: cannot read `{}`: {e}", p.display())),
    }
}

/// `raw-logs` is inline text unless it is a single line naming a file. A single line that looks
/// like a file name (a known log extension, no spaces) but does not exist is an error, so a typo
/// in a path is not silently taken as a one-line log.
fn resolve_raw_logs(raw: &str, dir: &Path, problems: &mut Vec<String>) -> LogsInput {
    let trimmed = raw.trim();
    if trimmed.contains('\n') {
        return LogsInput::Inline(raw.to_string());
    }
    let candidate = dir.join(trimmed);
    if candidate.is_file() {
        return LogsInput::File(candidate);
    }
    if candidate.is_dir() {
        problems.push(format!(
            "/raw-logs: `{}` is a directory, expected a log file",
            candidate.display()
        ));
        return LogsInput::None;
    }
    let looks_like_path = !trimmed.contains(' ')
        && [".log", ".txt", ".zip", ".xml", ".out"]
            .iter()
            .any(|e| trimmed.to_ascii_lowercase().ends_with(e));
    if looks_like_path {
        problems.push(format!(
            "/raw-logs: log file `{}` does not exist",
            candidate.display()
        ));
        return LogsInput::None;
    }
    LogsInput::Inline(raw.to_string())
}

/// True for `https://HOST/OWNER/REPO/actions/runs/ID[/attempts/N|/job/JID][/]`.
pub fn is_run_url(url: &str) -> bool {
    let re = regex::Regex::new(
        r"^https?://[^/\s]+/[^/\s]+/[^/\s]+/actions/runs/\d+(/attempts/\d+|/job/\d+)?/?$",
    )
    .expect("valid regex");
    re.is_match(url)
}

/// True when a `repo` value names a remote (`https://`, `ssh://`, `git@host:path`, `file://`).
pub fn is_remote_url(s: &str) -> bool {
    s.contains("://") || (s.starts_with("git@") && s.contains(':'))
}

/// Checks that `p` is a relative path that stays inside its root: not absolute, no `..` that
/// climbs out. Returns the reason when it does not.
pub fn check_relative_inside(p: &str) -> Result<(), &'static str> {
    let path = Path::new(p);
    if path.is_absolute() {
        return Err("must be relative to the repository root, not absolute");
    }
    let mut depth: i32 = 0;
    for c in path.components() {
        match c {
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return Err("climbs out of the repository with `..`");
                }
            }
            Component::Normal(_) => depth += 1,
            _ => {}
        }
    }
    if depth == 0 {
        return Err("does not name a file inside the repository");
    }
    Ok(())
}

/// `path` made absolute against the current directory (without resolving symlinks).
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(json: &str) -> Result<LoadedSpec, Error> {
        let dir = tempfile::tempdir().unwrap();
        let v: Value = serde_json::from_str(json).unwrap();
        from_value(v, &dir.path().join("info.json"), dir.path())
    }

    #[test]
    fn original_keys_are_accepted() {
        let s =
            check(r#"{"deterministic": true, "prompt": "fix it", "raw-logs": "line 1\nFAILED x"}"#)
                .unwrap();
        assert!(matches!(s.logs, LogsInput::Inline(_)));
        assert_eq!(s.spec.base, "main");
    }

    #[test]
    fn unknown_key_names_the_key() {
        let e = check(r#"{"deterministic": true, "prompt": "x", "raw-logs": "a\nb", "promt": 1}"#)
            .unwrap_err()
            .render();
        assert!(e.contains("promt"), "{e}");
    }

    #[test]
    fn bad_budget_names_the_pointer() {
        let e = check(r#"{"deterministic": true, "prompt": "x", "raw-logs": "a\nb", "budgets": {"fix": "15 parsecs"}}"#)
            .unwrap_err()
            .render();
        assert!(e.contains("/budgets/fix"), "{e}");
    }

    #[test]
    fn escape_paths_are_refused() {
        assert!(check_relative_inside("../x.py").is_err());
        assert!(check_relative_inside("/etc/passwd").is_err());
        assert!(check_relative_inside("a/../../x").is_err());
        assert!(check_relative_inside("a/../x.py").is_ok());
        assert!(check_relative_inside("tests/test_x.py").is_ok());
    }

    #[test]
    fn run_urls() {
        assert!(is_run_url("https://github.com/o/r/actions/runs/123"));
        assert!(is_run_url(
            "https://github.com/o/r/actions/runs/123/attempts/2"
        ));
        assert!(is_run_url("https://ghe.corp/o/r/actions/runs/123/job/456"));
        assert!(!is_run_url("https://github.com/o/r/pull/5"));
    }
}
