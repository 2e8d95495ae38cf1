//! The attempt ladder: an `attempts` stage's `agent` and `model` keys, each a preset name or
//! model written as is (`"claude"`) or a minijinja template over `attempt` (`number`, `max`)
//! and `spec` (`"{{ 'opus' if attempt.number >= 3 else 'haiku' }}"`), rendered once per
//! attempt. An empty result means "no choice for this attempt": the run's own agent or model.
//!
//! This module renders and checks the templates; it resolves no agent and runs nothing (the
//! engine's `ladder` module applies the choice and its precedence).

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::Templates;
use crate::agent::Agent;

/// One attempt of an `attempts` stage as the engine runs it: its number and the agent and model
/// it runs (the ladder's choice, or the run's own). The engine hands it to the attempt's stages
/// (`StageCtx::agent`, `StageCtx::model`); nothing rewrites the run's own agent or model.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// 1-based attempt number.
    pub number: u32,
    /// The resolved agent (its argv has the model arguments of a preset).
    pub agent: Agent,
    /// The model given to the agent (`{model}` placeholder, the preset's `model-args`).
    pub model: Option<String>,
    /// True when the ladder chose the agent or the model of this attempt.
    pub from_ladder: bool,
}

/// Largest attempt number checked when `max` is an expression (its value needs a job spec).
pub const CHECKED_ATTEMPTS_FOR_EXPRESSION_MAX: u32 = 10;

/// Renders the ladder template `text` for attempt `number` (1-based) of `max`, with `spec`
/// (the spec's template context, `pipeline::spec_context`) when one is known.
///
/// Returns the trimmed text, or `None` when it is empty. Errors: the minijinja error as text
/// (syntax, an undefined variable under strict undefined, `spec` used while `spec` is `None`).
pub fn render(
    text: &str,
    number: u32,
    max: u32,
    spec: Option<&Value>,
) -> Result<Option<String>, String> {
    let mut ctx = json!({"attempt": {"number": number, "max": max}});
    if let Some(s) = spec {
        ctx["spec"] = s.clone();
    }
    let out = Templates::expression_env()
        .render_str(text, minijinja::Value::from(minijinja::value::Serde(&ctx)))
        .map_err(|e| describe(&e))?;
    let out = out.trim();
    Ok((!out.is_empty()).then(|| out.to_string()))
}

/// A minijinja error as one line: its detail (or kind), without the template-name noise.
fn describe(e: &minijinja::Error) -> String {
    match e.detail() {
        Some(d) if !d.is_empty() => format!("{} ({d})", e.kind()),
        _ => e.to_string(),
    }
}

/// True when the template reads `spec`, so it can only be evaluated against a job spec.
fn uses_spec(text: &str) -> bool {
    let env = Templates::expression_env();
    env.template_from_str(text)
        .map(|t| t.undeclared_variables(false).contains("spec"))
        .unwrap_or(false)
}

/// Checks a ladder key (`agent` or `model`) of the stage at JSON pointer `ptr` without a job
/// spec: the template must compile, and when it does not read `spec` it is rendered for every
/// attempt 1..=`max` (`None`: `max` is an expression, attempts up to
/// [`CHECKED_ATTEMPTS_FOR_EXPRESSION_MAX`] are checked); for `agent`, every non-empty result
/// must be one of `presets`. Returns one located problem per failure (`/stage/4/agent: ...`).
pub fn check(
    key: &str,
    text: &str,
    max: Option<u32>,
    ptr: &str,
    presets: &BTreeSet<String>,
) -> Vec<String> {
    let env = Templates::expression_env();
    if let Err(e) = env.template_from_str(text) {
        return vec![format!(
            "{ptr}/{key}: `{text}` does not compile: {}",
            describe(&e)
        )];
    }
    if uses_spec(text) {
        return Vec::new();
    }
    let last = max.unwrap_or(CHECKED_ATTEMPTS_FOR_EXPRESSION_MAX);
    for n in 1..=last {
        match render(text, n, last, None) {
            Err(e) => return vec![format!("{ptr}/{key}: `{text}` fails for attempt {n}: {e}")],
            Ok(Some(v)) if key == "agent" && !presets.contains(&v) => {
                return vec![unknown_preset(ptr, n, &v, presets)];
            }
            Ok(_) => {}
        }
    }
    Vec::new()
}

/// The located problem for a ladder that names an unknown preset.
pub fn unknown_preset(ptr: &str, attempt: u32, name: &str, presets: &BTreeSet<String>) -> String {
    format!(
        "{ptr}/agent: attempt {attempt} gives `{name}`, which is not an agent preset (presets: {})",
        presets
            .iter()
            .map(|p| format!("`{p}`"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn presets() -> BTreeSet<String> {
        ["aider", "claude", "codex", "command", "gemini"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn plain_strings_and_templates_render_per_attempt() {
        assert_eq!(
            render("claude", 1, 3, None).unwrap().as_deref(),
            Some("claude")
        );
        let t = "{{ 'opus' if attempt.number >= 3 else 'haiku' }}";
        let got: Vec<_> = (1..=4)
            .map(|n| render(t, n, 4, None).unwrap().unwrap())
            .collect();
        assert_eq!(got, ["haiku", "haiku", "opus", "opus"]);
        // An empty result is "no choice".
        let t = "{% if attempt.number == attempt.max %}codex{% endif %}";
        assert_eq!(render(t, 1, 2, None).unwrap(), None);
        assert_eq!(render(t, 2, 2, None).unwrap().as_deref(), Some("codex"));
        let spec = json!({"model": "sonnet"});
        assert_eq!(
            render("{{ spec.model }}", 1, 1, Some(&spec))
                .unwrap()
                .as_deref(),
            Some("sonnet")
        );
    }

    #[test]
    fn undefined_variables_are_errors() {
        let e = render("{{ attempt.numbr + 1 }}", 1, 3, None).unwrap_err();
        assert!(e.contains("undefined"), "{e}");
        assert!(render("{{ spec.model }}", 1, 3, None).is_err());
    }

    #[test]
    fn check_locates_syntax_errors_and_unknown_presets() {
        let p = check(
            "agent",
            "{{ 'claude' if }}",
            Some(3),
            "/stage/4",
            &presets(),
        );
        assert_eq!(p.len(), 1);
        assert!(
            p[0].starts_with("/stage/4/agent: `{{ 'claude' if }}` does not compile"),
            "{p:?}"
        );
        let p = check(
            "agent",
            "{{ 'codx' if attempt.number >= 3 else 'claude' }}",
            Some(3),
            "/stage/4",
            &presets(),
        );
        assert_eq!(p.len(), 1);
        assert!(
            p[0].contains("/stage/4/agent: attempt 3 gives `codx`") && p[0].contains("`codex`"),
            "{p:?}"
        );
        // With max = 2 the bad branch is never taken.
        assert!(
            check(
                "agent",
                "{{ 'codx' if attempt.number >= 3 else 'claude' }}",
                Some(2),
                "/stage/4",
                &presets()
            )
            .is_empty()
        );
        // An expression `max` checks attempts up to 10.
        let p = check(
            "agent",
            "{{ 'codx' if attempt.number >= 7 else 'claude' }}",
            None,
            "/stage/1",
            &presets(),
        );
        assert!(p[0].contains("attempt 7"), "{p:?}");
        // Models are not checked against a list; a failing render is.
        assert!(check("model", "whatever-model", Some(3), "/stage/1", &presets()).is_empty());
        let p = check("model", "{{ attempt.nr }}", Some(3), "/stage/1", &presets());
        assert!(
            p[0].starts_with("/stage/1/model: ") && p[0].contains("attempt 1"),
            "{p:?}"
        );
        // Templates that read `spec` wait for a job spec.
        assert!(check("agent", "{{ spec.nope }}", Some(3), "/stage/1", &presets()).is_empty());
    }
}
