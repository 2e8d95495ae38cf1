//! Applies the attempt ladder (an `attempts` stage's `agent` / `model` keys, see
//! `pipeline::ladder`): which agent and model each attempt runs.
//!
//! Precedence, per attempt:
//! 1. `--agent NAME` on the command line fixes the agent for every attempt and switches the
//!    whole ladder off (its models name another CLI's models); `--model M` fixes the model.
//! 2. Otherwise the ladder's non-empty value for the attempt.
//! 3. Otherwise the run's agent (the spec's `agent`, else the pipeline's `[defaults] agent`,
//!    else `claude`) and the spec's `model`.
//!
//! When the ladder names the spec's own agent (its preset, or `command` for a spec's command
//! line), the spec's `command`, `args` and `env` come with it; another preset runs as the preset
//! alone. Runs nothing.

use std::path::PathBuf;

use super::RunRequest;
use crate::agent;
use crate::error::Error;
use crate::pipeline::{self, StageDef, StageKind, ladder};

pub use crate::pipeline::ladder::Attempt;

/// The pipeline file as errors name it: its path, or `<built-in>/pipelines/NAME.toml`.
pub fn pipeline_file(req: &RunRequest) -> PathBuf {
    match &req.pipeline.origin {
        pipeline::Origin::File(f) => f.clone(),
        pipeline::Origin::Builtin => PathBuf::from(format!(
            "<built-in>/pipelines/{}.toml",
            req.pipeline.pipeline.name
        )),
    }
}

/// The JSON pointer of a top-level stage (`/stage/4`), for errors.
fn pointer(req: &RunRequest, def: &StageDef) -> String {
    let i = req
        .pipeline
        .pipeline
        .stages
        .iter()
        .position(|s| s.id == def.id)
        .unwrap_or(0);
    format!("/stage/{i}")
}

/// Chooses the agent and model of attempt `number` of `max` of the attempts stage `def`.
///
/// Errors (exit 2, naming the pipeline file and `/stage/N/agent` or `/stage/N/model`): a
/// template that fails to render, an unknown preset, `command` when the spec has no command
/// line.
pub fn choose(req: &RunRequest, def: &StageDef, number: u32, max: u32) -> Result<Attempt, Error> {
    let spec = &req.spec;
    let ctx = pipeline::spec_context(&spec.spec);
    let invalid = |detail: String| {
        Error::usage(format!(
            "invalid pipeline `{}`",
            pipeline_file(req).display()
        ))
        .detail(detail)
    };
    let ptr = pointer(req, def);
    let eval = |key: &str, text: &Option<String>| -> Result<Option<String>, Error> {
        match text {
            None => Ok(None),
            Some(t) => ladder::render(t, number, max, Some(&ctx)).map_err(|e| {
                invalid(format!(
                    "{ptr}/{key}: `{t}` fails for attempt {number}: {e}"
                ))
            }),
        }
    };
    let fixed_agent = req.agent_flag.is_some();
    let ladder_agent = if fixed_agent {
        None
    } else {
        eval("agent", &def.agent)?
    };
    let ladder_model = if fixed_agent || req.spec.model_flag.is_some() {
        None
    } else {
        eval("model", &def.model)?
    };
    if ladder_agent.is_none() && ladder_model.is_none() {
        return Ok(Attempt {
            number,
            agent: req.agent.clone(),
            model: spec.spec.model.clone(),
            from_ladder: false,
        });
    }
    let model = ladder_model.or_else(|| spec.spec.model.clone());
    let defaults = req.pipeline.pipeline.defaults.agent.as_deref();
    let resolved = match &ladder_agent {
        Some(name) => {
            let presets = agent::preset_names().into_iter().collect();
            if !agent::preset_names().contains(name) {
                return Err(invalid(ladder::unknown_preset(
                    &ptr, number, name, &presets,
                )));
            }
            if spec_agent_name(req).as_deref() == Some(name.as_str()) {
                agent::resolve(
                    None,
                    spec.spec.agent.as_ref(),
                    defaults,
                    model.as_deref(),
                    &spec.dir,
                )
            } else {
                agent::resolve(Some(name), None, None, model.as_deref(), &spec.dir)
            }
            .map_err(|e| {
                invalid(format!(
                    "{ptr}/agent: attempt {number} gives `{name}`: {}",
                    e.message
                ))
                .details(e.details)
            })?
        }
        None => agent::resolve(
            req.agent_flag.as_deref(),
            spec.spec.agent.as_ref(),
            defaults,
            model.as_deref(),
            &spec.dir,
        )?,
    };
    Ok(Attempt {
        number,
        agent: resolved,
        model,
        from_ladder: true,
    })
}

/// The preset the spec names (`command` for a spec's own command line), if any.
fn spec_agent_name(req: &RunRequest) -> Option<String> {
    let a = req.spec.spec.agent.as_ref()?;
    a.preset
        .clone()
        .or_else(|| a.command.as_ref().map(|_| "command".to_string()))
}

/// The attempts of the attempts stage `def` with their agents, 1..=`max`.
///
/// Errors: as [`choose`], for the first attempt that fails.
pub fn plan(req: &RunRequest, def: &StageDef, max: u32) -> Result<Vec<Attempt>, Error> {
    (1..=max).map(|n| choose(req, def, n, max)).collect()
}

/// Checks every attempts stage's ladder for every attempt the run may make, before anything is
/// written or any agent runs.
///
/// Errors: as [`choose`]; a `max` expression that fails (exit 2).
pub fn check(req: &RunRequest) -> Result<(), Error> {
    for def in &req.pipeline.pipeline.stages {
        if def.kind == StageKind::Attempts && (def.agent.is_some() || def.model.is_some()) {
            let max = super::eval_count(
                req,
                def.max.as_ref(),
                crate::defaults::MAX_ATTEMPTS,
                "`max`",
            )? as u32;
            plan(req, def, max)?;
        }
    }
    Ok(())
}

#[cfg(test)]
pub(super) mod tests {
    use std::path::Path;
    use std::sync::atomic::AtomicBool;

    use super::*;

    static CANCEL: AtomicBool = AtomicBool::new(false);

    /// A request for `pipeline_toml` (named `/p/ladder.toml`) and the spec document `spec`.
    pub(in crate::engine) fn req(
        pipeline_toml: &str,
        spec: serde_json::Value,
        agent_flag: Option<&str>,
    ) -> RunRequest {
        let dir = Path::new("/");
        let loaded = crate::spec::from_value(spec, Path::new("/job/info.json"), dir).unwrap();
        let p = pipeline::parse(pipeline_toml, Path::new("/p/ladder.toml"))
            .unwrap_or_else(|e| panic!("{}", e.render()));
        let agent = agent::resolve(
            agent_flag,
            loaded.spec.agent.as_ref(),
            p.defaults.agent.as_deref(),
            loaded.spec.model.as_deref(),
            dir,
        )
        .unwrap();
        RunRequest {
            agent,
            spec: loaded,
            pipeline: pipeline::Loaded {
                pipeline: p,
                origin: pipeline::Origin::File("/p/ladder.toml".into()),
                text: String::new(),
            },
            repo_flag: None,
            agent_flag: agent_flag.map(String::from),
            api_url: None,
            out_dir: "/out".into(),
            no_pr: true,
            cancel: &CANCEL,
            template_roots: Vec::new(),
            env: Vec::new(),
        }
    }

    const LADDER: &str = r#"
name = "ladder"
description = "d"
[[stage]]
id = "report"
kind = "report"
[[stage]]
id = "attempts"
kind = "attempts"
max = 4
agent = "{{ 'codex' if attempt.number == attempt.max else 'claude' }}"
model = "{{ 'haiku' if attempt.number < 3 else 'opus' }}"
  [[stage.stages]]
  id = "verify"
  kind = "run-test"
  expect = "pass"
"#;

    fn spec() -> serde_json::Value {
        serde_json::json!({"deterministic": true, "prompt": "p", "raw-logs": "log", "model": "sonnet"})
    }

    fn attempts(r: &RunRequest) -> Vec<Attempt> {
        let def = &r.pipeline.pipeline.stages[1];
        plan(r, def, 4).unwrap()
    }

    #[test]
    fn the_ladder_picks_agent_and_model_per_attempt() {
        let r = req(LADDER, spec(), None);
        let got: Vec<_> = attempts(&r)
            .iter()
            .map(|a| {
                (
                    a.agent.name.clone(),
                    a.model.clone().unwrap(),
                    a.agent.argv.clone(),
                )
            })
            .collect();
        assert_eq!(got[0].0, "claude");
        assert_eq!(got[0].1, "haiku");
        assert!(
            got[0].2.ends_with(&["--model".into(), "haiku".into()]),
            "{:?}",
            got[0].2
        );
        assert_eq!((got[2].0.as_str(), got[2].1.as_str()), ("claude", "opus"));
        assert_eq!((got[3].0.as_str(), got[3].1.as_str()), ("codex", "opus"));
        // codex's preset ends with `-` (the prompt on stdin), after the model.
        assert!(
            got[3]
                .2
                .ends_with(&["-m".into(), "opus".into(), "-".into()]),
            "{:?}",
            got[3].2
        );
        assert!(attempts(&r).iter().all(|a| a.from_ladder));
    }

    #[test]
    fn agent_flag_switches_the_ladder_off_and_model_flag_fixes_the_model() {
        let r = req(LADDER, spec(), Some("gemini"));
        for a in attempts(&r) {
            assert_eq!(a.agent.name, "gemini");
            assert_eq!(a.model.as_deref(), Some("sonnet"));
            assert!(!a.from_ladder);
        }
        let mut r = req(LADDER, spec(), None);
        r.spec.model_flag = Some("sonnet".into());
        let a = attempts(&r);
        assert_eq!(a[0].agent.name, "claude");
        assert_eq!(a[3].agent.name, "codex");
        assert!(a.iter().all(|a| a.model.as_deref() == Some("sonnet")));
    }

    #[test]
    fn empty_results_keep_the_runs_agent_with_the_specs_command_line() {
        let toml = LADDER
            .replace(
                "'codex' if attempt.number == attempt.max else 'claude'",
                "'command' if attempt.number == 2 else ''",
            )
            .replace(
                "'haiku' if attempt.number < 3 else 'opus'",
                "'big' if attempt.number >= 3 else ''",
            );
        let mut s = spec();
        s["agent"] =
            serde_json::json!({"command": ["my-agent", "--model={model}"], "args": ["-v"]});
        let r = req(&toml, s, None);
        let a = attempts(&r);
        // Attempt 1: nothing chosen: the run's agent and the spec's model.
        assert!(!a[0].from_ladder);
        assert_eq!(a[0].agent, r.agent);
        assert_eq!(a[0].model.as_deref(), Some("sonnet"));
        // Attempt 2: `command` is the spec's own command line, with its args.
        assert_eq!(a[1].agent.argv, ["my-agent", "--model={model}", "-v"]);
        // Attempt 3: only the model changes.
        assert_eq!(a[2].agent.argv, ["my-agent", "--model={model}", "-v"]);
        assert_eq!(a[2].model.as_deref(), Some("big"));
    }

    #[test]
    fn ladder_errors_name_the_file_and_the_key() {
        let toml = LADDER.replace("'codex' if", "spec.agent_name if");
        let r = req(&toml, spec(), None);
        let e = check(&r).unwrap_err().render();
        assert!(
            e.contains("invalid pipeline `/p/ladder.toml`")
                && e.contains("/stage/1/agent: ")
                && e.contains("fails for attempt 4")
                && e.contains("spec.agent_name"),
            "{e}"
        );
        let toml = LADDER.replace("'codex' if", "spec.model ~ 'x' if");
        let e = check(&req(&toml, spec(), None)).unwrap_err().render();
        assert!(
            e.contains("/stage/1/agent: attempt 4 gives `sonnetx`, which is not an agent preset"),
            "{e}"
        );
        // `command` without a command line in the spec.
        let toml = LADDER.replace("'codex' if", "'command' if");
        let e = check(&req(&toml, spec(), None)).unwrap_err().render();
        assert!(e.contains("/stage/1/agent: attempt 4 gives `command`: agent preset `command` needs a command line"), "{e}");
        // A spec-independent ladder passes the check.
        assert!(check(&req(LADDER, spec(), None)).is_ok());
    }
}
