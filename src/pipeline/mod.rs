//! Pipelines as data: loading `pipelines/*.toml` (built-in ones are embedded in the binary; a
//! `pipelines/` folder beside the spec or in the repository overrides them by name), validating
//! them against `schemas/pipeline.schema.json`, selecting one for a job spec by its `when`
//! expression, and the minijinja environment that renders prompts. Runs nothing.

pub mod ladder;
mod template;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use template::{Templates, fence, render_prompt, spec_context};

use crate::error::Error;
use crate::spec::{self, LoadedSpec};

/// The pipeline schema (JSON Schema draft 2020-12), from `schemas/pipeline.schema.json`.
pub const PIPELINE_SCHEMA: &str = include_str!("../../schemas/pipeline.schema.json");

/// Built-in pipelines, in selection order: (name, TOML text).
pub const BUILTIN: &[(&str, &str)] = &[
    ("feature", include_str!("../../pipelines/feature.toml")),
    (
        "existing-test",
        include_str!("../../pipelines/existing-test.toml"),
    ),
    ("gate", include_str!("../../pipelines/gate.toml")),
    (
        "deterministic",
        include_str!("../../pipelines/deterministic.toml"),
    ),
    ("flaky", include_str!("../../pipelines/flaky.toml")),
];

/// A pipeline file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Pipeline {
    /// Name, e.g. `deterministic`.
    pub name: String,
    /// One-line description.
    pub description: String,
    /// Selection expression over `spec`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// Pipeline-wide defaults.
    #[serde(default)]
    pub defaults: Defaults,
    /// The stages, in order.
    #[serde(rename = "stage")]
    pub stages: Vec<StageDef>,
}

/// `[defaults]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Defaults {
    /// Budget of the whole run (written e.g. `"23m"`, parsed at load).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "spec::duration::option_positive"
    )]
    pub total_budget: Option<Duration>,
    /// SIGTERM -> SIGKILL grace period (written e.g. `"5s"`, parsed at load; may be zero).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "spec::duration::option"
    )]
    pub grace: Option<Duration>,
    /// Agent preset used when the spec names none.
    pub agent: Option<String>,
}

/// The closed set of stage kinds; each has one implementation in `stages/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StageKind {
    FetchLogs,
    Agent,
    RunTest,
    GitBranch,
    GitCommit,
    StripTest,
    OpenPr,
    Report,
    Command,
    Attempts,
}

impl StageKind {
    /// The kebab-case name, as written in pipeline files.
    pub fn as_str(&self) -> &'static str {
        match self {
            StageKind::FetchLogs => "fetch-logs",
            StageKind::Agent => "agent",
            StageKind::RunTest => "run-test",
            StageKind::GitBranch => "git-branch",
            StageKind::GitCommit => "git-commit",
            StageKind::StripTest => "strip-test",
            StageKind::OpenPr => "open-pr",
            StageKind::Report => "report",
            StageKind::Command => "command",
            StageKind::Attempts => "attempts",
        }
    }
}

/// What an agent stage asks of the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Write a reproduction test and `repro.json`.
    Reproduce,
    /// Write acceptance tests of a requested feature and `repro.json` (the `feature`
    /// pipeline): the tests must fail at the base for the missing behaviour, and stay in the fix.
    Acceptance,
    /// Change the code so the reproduction passes.
    Fix,
}

/// The outcome every run of a `run-test` stage must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Expect {
    Fail,
    Pass,
}

/// How a `run-test` stage runs its command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunMode {
    /// One run after another (default).
    Repeat,
    /// Parallel runs (`fixci stress`); for `expect = "pass"`, as many as the measured failure
    /// rate demands.
    Stress,
}

/// An integer, or a minijinja expression that evaluates to one (`"spec.verify_runs or 5"`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Count {
    Fixed(u64),
    Expr(String),
}

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Number(n) => n
                .as_u64()
                .map(Count::Fixed)
                .ok_or_else(|| serde::de::Error::custom("expected a positive integer")),
            serde_json::Value::String(s) => Ok(Count::Expr(s)),
            other => Err(serde::de::Error::custom(format!(
                "expected an integer or an expression, found {}",
                spec::type_name(&other)
            ))),
        }
    }
}

/// One `[[stage]]` table. Which keys apply depends on `kind` (the schema enforces it).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct StageDef {
    /// Unique id, used in `budgets`, the run directory and the report.
    pub id: String,
    /// Stage kind.
    pub kind: StageKind,
    /// Human description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Budget (written e.g. `"5m"`, parsed at load, longer than zero); the spec's
    /// `budgets.<id>` overrides it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "spec::duration::option_positive"
    )]
    pub budget: Option<Duration>,
    /// Condition (minijinja expression); the stage is skipped when false.
    #[serde(default, rename = "if", skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// Run even when an earlier stage failed.
    #[serde(default)]
    pub always: bool,
    /// The run's `reason` when this stage fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_reason: Option<String>,
    /// agent: role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// agent: prompt template path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// run-test: expected outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Expect>,
    /// run-test: number of runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runs: Option<Count>,
    /// run-test: `repeat` or `stress`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<RunMode>,
    /// run-test, stress, expect pass: probability that an ineffective fix passes (default 0.05).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    /// run-test, stress, expect fail: stop once this many failures were seen (as `fixci stress
    /// --until-failures`); `runs` stays the cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_failures: Option<u64>,
    /// run-test: restore the reproduction test from fixci's copy before each run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_test: Option<bool>,
    /// command: shell command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// attempts: maximum attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<Count>,
    /// attempts: the stages of one attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stages: Option<Vec<StageDef>>,
    /// attempts: the agent preset of each attempt (the attempt ladder): a preset name, or a
    /// minijinja template over `attempt` (`number`, `max`) and `spec` rendered per attempt
    /// (see [`ladder`]); an empty result keeps the run's agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// attempts: the model of each attempt, written as `agent` is; an empty result keeps the
    /// run's model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// Where a pipeline came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "type", content = "path")]
pub enum Origin {
    /// Embedded in the binary.
    Builtin,
    /// Read from this file.
    File(PathBuf),
}

/// A pipeline with its origin.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The parsed pipeline.
    pub pipeline: Pipeline,
    /// Where it came from.
    pub origin: Origin,
    /// The TOML text (written to the run directory as `pipeline.toml`).
    pub text: String,
}

impl Loaded {
    /// Folders that relative template paths resolve against, most specific first: for a file,
    /// its folder's parent (the project layout `pipelines/` beside `reproduce-deterministic/`)
    /// and its folder.
    pub fn template_roots(&self) -> Vec<PathBuf> {
        match &self.origin {
            Origin::Builtin => Vec::new(),
            Origin::File(p) => {
                let dir = p.parent().unwrap_or(Path::new("/")).to_path_buf();
                let mut v = Vec::new();
                if let Some(parent) = dir.parent() {
                    v.push(parent.to_path_buf());
                }
                v.push(dir);
                v
            }
        }
    }

    /// Every stage in order, attempt stages flattened after their loop.
    pub fn all_stages(&self) -> Vec<&StageDef> {
        fn walk<'a>(s: &'a [StageDef], out: &mut Vec<&'a StageDef>) {
            for d in s {
                out.push(d);
                if let Some(sub) = &d.stages {
                    walk(sub, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.pipeline.stages, &mut out);
        out
    }
}

impl Pipeline {
    /// Deprecation notes on a valid pipeline, each `/stage/N: ...`: a `report` stage is accepted
    /// and does nothing (the report is written when the run ends).
    pub fn notes(&self) -> Vec<String> {
        fn walk(stages: &[StageDef], prefix: &str, out: &mut Vec<String>) {
            for (i, s) in stages.iter().enumerate() {
                let ptr = format!("{prefix}/{i}");
                if s.kind == StageKind::Report {
                    out.push(format!(
                        "{ptr}: `kind = \"report\"` is deprecated and does nothing: fixci writes the report when the run ends; remove the stage"
                    ));
                }
                if let Some(sub) = &s.stages {
                    walk(sub, &format!("{ptr}/stages"), out);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.stages, "/stage", &mut out);
        out
    }
}

/// Parses and validates pipeline text; `path` names it in errors.
///
/// Errors (exit 2): TOML syntax (with line), schema violations (`/stage/2/kind: ...`), duplicate
/// stage ids, unparsable budgets, expressions that do not compile.
pub fn parse(text: &str, path: &Path) -> Result<Pipeline, Error> {
    let value = spec::parse_document(text, spec::Format::Toml, path, "pipeline")?;
    spec::check_schema(&value, PIPELINE_SCHEMA, path, "pipeline")?;
    let p: Pipeline = spec::deserialize_typed(&value, path, "pipeline")?;
    let mut problems = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let env = Templates::expression_env();
    let presets: std::collections::BTreeSet<String> =
        crate::agent::preset_names().into_iter().collect();
    fn walk(
        stages: &[StageDef],
        prefix: &str,
        seen: &mut std::collections::BTreeSet<String>,
        env: &minijinja::Environment<'static>,
        presets: &std::collections::BTreeSet<String>,
        problems: &mut Vec<String>,
    ) {
        for (i, s) in stages.iter().enumerate() {
            let ptr = format!("{prefix}/{i}");
            if !seen.insert(s.id.clone()) {
                problems.push(format!("{ptr}/id: stage id `{}` is used twice", s.id));
            }
            for (key, expr) in [
                ("if", s.condition.as_deref()),
                (
                    "runs",
                    if let Some(Count::Expr(e)) = &s.runs {
                        Some(e.as_str())
                    } else {
                        None
                    },
                ),
                (
                    "max",
                    if let Some(Count::Expr(e)) = &s.max {
                        Some(e.as_str())
                    } else {
                        None
                    },
                ),
            ] {
                if let Some(expr) = expr {
                    if let Err(e) = env.compile_expression(expr) {
                        problems.push(format!("{ptr}/{key}: `{expr}` does not compile: {e}"));
                    }
                }
            }
            for (key, text) in [("agent", &s.agent), ("model", &s.model)] {
                let Some(text) = text else { continue };
                if s.kind != StageKind::Attempts {
                    problems.push(format!(
                        "{ptr}/{key}: only an `attempts` stage chooses the {key} per attempt"
                    ));
                    continue;
                }
                let max = match &s.max {
                    None => Some(crate::defaults::MAX_ATTEMPTS as u32),
                    // A very large `max` is checked over its first 100 attempts.
                    Some(Count::Fixed(n)) => Some(u32::try_from(*n).unwrap_or(u32::MAX).min(100)),
                    Some(Count::Expr(_)) => None,
                };
                problems.extend(ladder::check(key, text, max, &ptr, presets));
            }
            if s.kind == StageKind::Attempts {
                if let Some(sub) = &s.stages {
                    if sub.iter().any(|x| x.kind == StageKind::Attempts) {
                        problems.push(format!("{ptr}/stages: attempt loops cannot be nested"));
                    }
                    walk(sub, &format!("{ptr}/stages"), seen, env, presets, problems);
                }
            }
        }
    }
    walk(
        &p.stages,
        "/stage",
        &mut seen,
        &env,
        &presets,
        &mut problems,
    );
    if let Some(w) = &p.when {
        if let Err(e) = env.compile_expression(w) {
            problems.push(format!("/when: `{w}` does not compile: {e}"));
        }
    }
    if !problems.is_empty() {
        return Err(
            Error::usage(format!("invalid pipeline `{}`", path.display())).details(problems),
        );
    }
    Ok(p)
}

impl Pipeline {
    /// True when an agent stage writes acceptance tests (`role = "acceptance"`): the pipeline
    /// builds a feature from an issue (see [`crate::feature`]).
    pub fn builds_feature(&self) -> bool {
        fn any(s: &[StageDef]) -> bool {
            s.iter().any(|d| {
                d.role == Some(Role::Acceptance) || d.stages.as_deref().is_some_and(any)
            })
        }
        any(&self.stages)
    }
}

/// Reads a pipeline file from disk.
pub fn load_file(path: &Path) -> Result<Loaded, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::usage(format!("cannot read pipeline `{}`", path.display())).source(e)
    })?;
    let pipeline = parse(&text, path)?;
    Ok(Loaded {
        pipeline,
        origin: Origin::File(spec::absolute(path)),
        text,
    })
}

/// All pipelines available for a spec: files in `<dir>/pipelines/*.toml` for each of `dirs`
/// (earlier folders win), then the built-ins not overridden by name.
pub fn available(dirs: &[PathBuf]) -> Result<Vec<Loaded>, Error> {
    let mut out: Vec<Loaded> = Vec::new();
    for dir in dirs {
        let folder = dir.join("pipelines");
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        files.sort();
        for f in files {
            let l = load_file(&f)?;
            if !out.iter().any(|o| o.pipeline.name == l.pipeline.name) {
                out.push(l);
            }
        }
    }
    for (name, text) in BUILTIN {
        if !out.iter().any(|o| o.pipeline.name == *name) {
            let pipeline = parse(
                text,
                Path::new(&format!("<built-in>/pipelines/{name}.toml")),
            )?;
            out.push(Loaded {
                pipeline,
                origin: Origin::Builtin,
                text: text.to_string(),
            });
        }
    }
    Ok(out)
}

/// Chooses the pipeline for `spec`: `choice` (the `--pipeline` flag, else the spec's
/// `pipeline` key) names a pipeline or a `.toml` file; otherwise the first available pipeline
/// whose `when` is true.
///
/// Errors (exit 2): unknown name (the available names are listed), a file that does not
/// parse, no pipeline matching the spec, budgets naming stages the pipeline does not have.
pub fn select(spec: &LoadedSpec, choice: Option<&str>, dirs: &[PathBuf]) -> Result<Loaded, Error> {
    let choice = choice
        .map(str::to_string)
        .or_else(|| spec.spec.pipeline.clone());
    let all = available(dirs)?;
    let chosen = if let Some(c) = choice {
        let as_path = if Path::new(&c).is_absolute() {
            PathBuf::from(&c)
        } else {
            spec.dir.join(&c)
        };
        if c.ends_with(".toml") || c.contains('/') {
            let p = if as_path.exists() {
                as_path
            } else {
                PathBuf::from(&c)
            };
            load_file(&p)?
        } else if let Some(l) = all.iter().find(|l| l.pipeline.name == c) {
            l.clone()
        } else {
            let names: Vec<_> = all
                .iter()
                .map(|l| format!("`{}`", l.pipeline.name))
                .collect();
            return Err(Error::usage(format!("unknown pipeline `{c}`"))
                .detail(format!("available: {}", names.join(", "))));
        }
    } else {
        let ctx = template::spec_context(&spec.spec);
        let env = Templates::expression_env();
        let mut found = None;
        for l in &all {
            let Some(w) = &l.pipeline.when else { continue };
            let expr = env.compile_expression(w).map_err(|e| {
                Error::usage(format!("invalid pipeline `{}`", l.pipeline.name))
                    .detail(format!("/when: {e}"))
            })?;
            let v = expr.eval(minijinja::context! { spec => minijinja::Value::from(minijinja::value::Serde(&ctx)) }).map_err(|e| {
                Error::usage(format!("pipeline `{}`: cannot evaluate `when`", l.pipeline.name))
                    .detail(format!("/when: {e}"))
            })?;
            if v.is_true() {
                found = Some(l.clone());
                break;
            }
        }
        found.ok_or_else(|| {
            let names: Vec<_> = all
                .iter()
                .map(|l| format!("`{}`", l.pipeline.name))
                .collect();
            Error::usage(format!(
                "no pipeline matches job spec `{}` (deterministic: {})",
                spec.path.display(),
                spec.spec.deterministic
            ))
            .detail(format!("available: {}", names.join(", ")))
            .hint("name one with `--pipeline NAME|FILE` or the spec's `pipeline` key")
        })?
    };
    check_feature_spec(spec, &chosen)?;
    let ids: Vec<String> = chosen.all_stages().iter().map(|s| s.id.clone()).collect();
    let unknown: Vec<String> = spec
        .spec
        .budgets.stages
        .keys()
        .filter(|k| *k != "total" && !ids.contains(k))
        .map(|k| {
            format!(
                "{}: no stage `{k}` in pipeline `{}` (stages: {}, or `total`)",
                spec::pointer(&["budgets", k]),
                chosen.pipeline.name,
                ids.join(", ")
            )
        })
        .collect();
    if !unknown.is_empty() {
        return Err(
            Error::usage(format!("invalid job spec `{}`", spec.path.display())).details(unknown),
        );
    }
    Ok(chosen)
}

/// Checks that `spec` can run `pipeline` when the pipeline builds a feature
/// ([`Pipeline::builds_feature`]): it needs an issue (`issue` or `issue-file`)
/// and no failure input. A CI log or a failing test beside a feature request is refused rather
/// than ignored: it asks for a fix, which the failure pipelines make (with the issue as
/// context).
///
/// Errors (exit 2) name the key.
fn check_feature_spec(spec: &LoadedSpec, pipeline: &Loaded) -> Result<(), Error> {
    if !pipeline.pipeline.builds_feature() {
        return Ok(());
    }
    let s = &spec.spec;
    let mut problems = Vec::new();
    if s.issue.is_none() && s.issue_file.is_none() {
        problems.push(format!(
            "/issue: pipeline `{}` builds a feature from an issue: give `issue` (OWNER/REPO#N) or `issue-file` (a Markdown file)",
            pipeline.pipeline.name
        ));
    }
    for (key, set) in [
        ("url", s.url.is_some()),
        ("raw-logs", s.raw_logs.is_some()),
        ("existing-test-path", s.existing_test_path.is_some()),
    ] {
        if set {
            problems.push(format!(
                "/{key}: pipeline `{}` builds a feature from an issue and takes no failure input; remove `{key}`, or let a failure pipeline fix it (the issue is then context)",
                pipeline.pipeline.name
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::usage(format!("invalid job spec `{}`", spec.path.display())).details(problems))
    }
}

/// The effective budget of a stage: the spec's `budgets.<id>`, else the stage's `budget`, else
/// `default`.
pub fn stage_budget(spec: &LoadedSpec, stage: &StageDef, default: Duration) -> Duration {
    spec.spec
        .budgets.stages
        .get(&stage.id)
        .copied()
        .or(stage.budget)
        .unwrap_or(default)
}

/// The whole run's budget: the spec's `budgets.total`, else the pipeline's `total-budget`,
/// else 23 minutes (the original plan).
pub fn total_budget(spec: &LoadedSpec, p: &Pipeline) -> Duration {
    spec.spec
        .budgets.stages
        .get("total")
        .copied()
        .or(p.defaults.total_budget)
        .unwrap_or(crate::defaults::TOTAL_BUDGET)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_parse() {
        for (name, text) in BUILTIN {
            let p = parse(text, Path::new(name)).unwrap_or_else(|e| panic!("{}", e.render()));
            assert_eq!(&p.name, name);
        }
    }

    #[test]
    fn duplicate_ids_and_bad_kinds_are_located() {
        let e = parse("name='x'\ndescription='d'\n[[stage]]\nid='a'\nkind='report'\n[[stage]]\nid='a'\nkind='report'\n", Path::new("p.toml"))
            .unwrap_err()
            .render();
        assert!(e.contains("/stage/1/id"), "{e}");
        let e = parse(
            "name='x'\ndescription='d'\n[[stage]]\nid='a'\nkind='nope'\n",
            Path::new("p.toml"),
        )
        .unwrap_err()
        .render();
        assert!(e.contains("/stage/0/kind"), "{e}");
    }
}
