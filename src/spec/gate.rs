//! The `gate` key: the local check a self-heal run starts from (`"gate": "make check"` or
//! `"gate": ["ruff check .", "python -m pytest -q"]`). This module reads the key and checks it
//! against the other failure inputs; running it is `crate::verify::gate`'s job.

use serde::Deserialize;

use super::JobSpec;

/// Reads `gate` as one command (a string) or a list of commands. The JSON Schema has already
/// checked the shape; this only turns it into a list.
pub fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Gate {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Gate::deserialize(d)? {
        Gate::One(c) => vec![c],
        Gate::Many(v) => v,
    })
}

/// The gate's part of the input rule: a gate is the failure input itself, so a CI log (`url`,
/// `raw-logs`) beside it is refused; every command must have a non-blank line to run. Each
/// problem is `/json/pointer: message`.
pub fn check(spec: &JobSpec, problems: &mut Vec<String>) {
    if spec.gate.is_empty() {
        return;
    }
    for key in [
        ("url", spec.url.is_some()),
        ("raw-logs", spec.raw_logs.is_some()),
    ]
    .iter()
    .filter(|(_, set)| *set)
    .map(|(k, _)| k)
    {
        problems.push(format!(
            "/{key}: give either `gate` or `{key}`, not both (the gate's failing output is the CI log)"
        ));
    }
    for (i, c) in spec.gate.iter().enumerate() {
        if c.trim().is_empty() {
            problems.push(format!(
                "/gate/{i}: empty command; expected a shell command such as `python -m pytest -q`"
            ));
        }
    }
}
