//! The minijinja environment for prompts and pipeline expressions: strict undefined (a missing
//! variable is an error, not an empty string), and a `fence` filter that inserts untrusted text
//! (CI logs, issue bodies) inside a Markdown code fence it cannot break out of. Values are never
//! re-rendered, so template syntax inside a log stays inert.

use std::path::{Component, Path, PathBuf};

use minijinja::{Environment, UndefinedBehavior};
use serde_json::{Value, json};

use crate::error::Error;
use crate::spec::JobSpec;

/// Prompt templates embedded in the binary, by their path in the project layout.
pub const EMBEDDED: &[(&str, &str)] = &[
    (
        "reproduce-deterministic/AI_PROMPT.md",
        include_str!("../../reproduce-deterministic/AI_PROMPT.md"),
    ),
    (
        "implementing-features/AI_PROMPT.md",
        include_str!("../../implementing-features/AI_PROMPT.md"),
    ),
    (
        "implementing-features/TESTS_PROMPT.md",
        include_str!("../../implementing-features/TESTS_PROMPT.md"),
    ),
    (
        "implementing-features/FEATURE_PROMPT.md",
        include_str!("../../implementing-features/FEATURE_PROMPT.md"),
    ),
    (
        "reproduce-nd/AI_PROMPT.md",
        include_str!("../../reproduce-nd/AI_PROMPT.md"),
    ),
];

/// Builds environments and finds template files.
pub struct Templates;

impl Templates {
    /// An environment for `when` / `if` / `runs` / `max` expressions.
    pub fn expression_env() -> Environment<'static> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.add_filter("fence", fence);
        env
    }

    /// Finds a template: the first of `roots` holding `rel`, else the embedded copy. Returns
    /// (where it was found, text). `rel` must be relative and stay inside its root.
    ///
    /// Errors (exit 2): an escaping path, a template found nowhere.
    pub fn find(rel: &str, roots: &[PathBuf]) -> Result<(String, String), Error> {
        let p = Path::new(rel);
        if p.is_absolute() || p.components().any(|c| matches!(c, Component::ParentDir)) {
            return Err(Error::usage(format!(
                "prompt template `{rel}` must be a relative path inside the pipeline folder"
            )));
        }
        for root in roots {
            let full = root.join(p);
            if full.is_file() {
                let canon_root = root.canonicalize().unwrap_or_else(|_| root.clone());
                let canon = full.canonicalize().unwrap_or_else(|_| full.clone());
                if !canon.starts_with(&canon_root) {
                    return Err(Error::usage(format!(
                        "prompt template `{}` resolves outside `{}` (symlink)",
                        full.display(),
                        root.display()
                    )));
                }
                let text = std::fs::read_to_string(&full).map_err(|e| {
                    Error::usage(format!("cannot read prompt template `{}`", full.display()))
                        .source(e)
                })?;
                return Ok((full.display().to_string(), text));
            }
        }
        EMBEDDED
            .iter()
            .find(|(name, _)| *name == rel)
            .map(|(name, text)| (format!("<built-in>/{name}"), text.to_string()))
            .ok_or_else(|| {
                Error::usage(format!("prompt template `{rel}` not found")).detail(format!(
                    "looked in: {}",
                    roots
                        .iter()
                        .map(|r| format!("`{}`", r.display()))
                        .chain(["the built-in templates".to_string()])
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
    }
}

/// Renders template `text` (named `name` in errors) with `ctx`, strict undefined.
///
/// Errors (exit 2): syntax errors and undefined variables, with the template line.
pub fn render_prompt(name: &str, text: &str, ctx: &Value) -> Result<String, Error> {
    let mut env = Templates::expression_env();
    env.add_template(name, text)
        .map_err(|e| template_error(name, e))?;
    let tmpl = env
        .get_template(name)
        .map_err(|e| template_error(name, e))?;
    tmpl.render(minijinja::Value::from(minijinja::value::Serde(ctx)))
        .map_err(|e| template_error(name, e))
}

fn template_error(name: &str, e: minijinja::Error) -> Error {
    let line = e.line().map(|l| format!("line {l}: ")).unwrap_or_default();
    let mut msg = e
        .detail()
        .map(str::to_string)
        .unwrap_or_else(|| e.kind().to_string());
    if msg.is_empty() {
        msg = e.to_string();
    }
    Error::usage(format!("cannot render prompt template `{name}`"))
        .detail(format!("{line}{} ({msg})", e.kind()))
}

/// The `fence` filter: wraps text in a Markdown code fence longer than any backtick run inside
/// it (CommonMark 0.31, "Fenced code blocks"), so untrusted text cannot close the fence.
pub fn fence(text: String) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        if c == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    let f = "`".repeat((longest + 1).max(3));
    let body = text.trim_end_matches('\n');
    format!("{f}text\n{body}\n{f}")
}

/// The spec as templates see it: every key present (absent optional keys are `none`), names in
/// snake_case (`spec.raw_logs`, `spec.existing_test_path`).
pub fn spec_context(s: &JobSpec) -> Value {
    json!({
        "deterministic": s.deterministic,
        "prompt": s.prompt,
        "url": s.url,
        "raw_logs": s.raw_logs,
        "existing_test_path": s.existing_test_path,
        "repo": s.repo,
        "base": s.base,
        "commit": s.commit,
        "pipeline": s.pipeline,
        "agent": s.agent.as_ref().map(|a| serde_json::to_value(a).unwrap_or(Value::Null)),
        "model": s.model,
        "budgets": s.budgets,
        "max_attempts": s.max_attempts,
        "verify_runs": s.verify_runs,
        "keep_test": s.keep_test,
        "issue": s.issue,
        "issue_file": s.issue_file,
        "test_command": s.test_command,
        "gate": s.gate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fence_outgrows_backticks_in_the_text() {
        let f = fence("a ```` b".into());
        assert!(
            f.starts_with("`````text\n") && f.ends_with("\n`````"),
            "{f}"
        );
        assert!(fence("plain".into()).starts_with("```text"));
    }

    #[test]
    fn strict_undefined_is_an_error() {
        let e = render_prompt("t.md", "hello {{ nope.x }}", &json!({}))
            .unwrap_err()
            .render();
        assert!(e.contains("t.md") && e.contains("line 1"), "{e}");
    }

    #[test]
    fn values_are_not_re_rendered() {
        let out = render_prompt("t.md", "{{ x | fence }}", &json!({"x": "{{ 7 * 7 }}"})).unwrap();
        assert!(out.contains("{{ 7 * 7 }}") && !out.contains("49"));
    }

    #[test]
    fn escaping_template_paths_are_refused() {
        assert!(Templates::find("../x.md", &[]).is_err());
        assert!(Templates::find("/etc/passwd", &[]).is_err());
    }
}
