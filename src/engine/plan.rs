//! The run's plan: every stage in pipeline order with its kind, its planned budget and, for an
//! `attempts` stage, the agent and model of each attempt (the ladder, [`super::ladder`]). Built
//! once from the request before anything is cloned or written; `run` and `resume` execute it
//! and `--dry-run` prints it ([`super::dry_run`]), so what is shown is what runs.

use std::time::Duration;

use super::RunRequest;
use super::ladder::{self, Attempt};
use crate::defaults;
use crate::error::Error;
use crate::pipeline::{self, StageDef, StageKind};

/// The stages a run executes, in order.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Top-level stages.
    pub stages: Vec<PlannedStage>,
    /// The whole run's budget (the spec's `budgets.total`, else the pipeline's `total-budget`,
    /// else the default).
    pub total: Duration,
}

/// One stage of the plan.
#[derive(Debug, Clone)]
pub struct PlannedStage {
    /// The stage as the pipeline defines it.
    pub def: StageDef,
    /// Its budget (the spec's `budgets.<id>`, else the stage's `budget`, else the default); the
    /// run cuts it to the time left of the total budget unless the stage is `always`.
    pub budget: Duration,
    /// An `attempts` stage: each attempt's number, agent and model, 1..=`max`; empty otherwise.
    pub attempts: Vec<Attempt>,
    /// An `attempts` stage: the stages of one attempt; empty otherwise.
    pub stages: Vec<PlannedStage>,
}

impl PlannedStage {
    /// The number of attempts of an `attempts` stage (0 for other kinds).
    pub fn max(&self) -> u32 {
        self.attempts.len() as u32
    }
}

/// Builds the plan of `req`'s pipeline for `req`'s spec.
///
/// Errors (exit 2): a `max` expression that fails, an attempt ladder that fails for some attempt
/// (as [`ladder::choose`]).
pub fn build(req: &RunRequest) -> Result<Plan, Error> {
    fn stage(req: &RunRequest, def: &StageDef) -> Result<PlannedStage, Error> {
        let mut p = PlannedStage {
            def: def.clone(),
            budget: pipeline::stage_budget(&req.spec, def, defaults::STAGE_BUDGET),
            attempts: Vec::new(),
            stages: Vec::new(),
        };
        if def.kind == StageKind::Attempts {
            let max =
                super::eval_count(req, def.max.as_ref(), defaults::MAX_ATTEMPTS, "`max`")? as u32;
            p.attempts = ladder::plan(req, def, max)?;
            for sub in def.stages.as_deref().unwrap_or_default() {
                p.stages.push(stage(req, sub)?);
            }
        }
        Ok(p)
    }
    Ok(Plan {
        stages: req
            .pipeline
            .pipeline
            .stages
            .iter()
            .map(|d| stage(req, d))
            .collect::<Result<_, _>>()?,
        total: pipeline::total_budget(&req.spec, &req.pipeline.pipeline),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PIPELINE: &str = r#"
name = "p"
description = "d"
[[stage]]
id = "reproduce"
kind = "command"
command = "true"
budget = "2m"
[[stage]]
id = "attempts"
kind = "attempts"
max = "spec.max_attempts or 3"
model = "{{ 'big' if attempt.number == attempt.max else '' }}"
  [[stage.stages]]
  id = "fix"
  kind = "command"
  command = "true"
"#;

    fn req(spec: serde_json::Value) -> RunRequest {
        super::super::ladder::tests::req(PIPELINE, spec, None)
    }

    #[test]
    fn the_plan_has_budgets_and_each_attempts_agent_and_model() {
        let r = req(serde_json::json!({
            "deterministic": true, "prompt": "p", "raw-logs": "log", "model": "small",
            "max-attempts": 2, "budgets": {"fix": "7m", "total": "1h"}
        }));
        let plan = build(&r).unwrap();
        assert_eq!(plan.total, Duration::from_secs(3600));
        let [repro, attempts] = &plan.stages[..] else {
            panic!("{plan:?}")
        };
        assert_eq!(repro.budget, Duration::from_secs(120));
        assert!(repro.attempts.is_empty() && repro.stages.is_empty());
        assert_eq!(attempts.max(), 2);
        assert_eq!(attempts.stages[0].def.id, "fix");
        assert_eq!(attempts.stages[0].budget, Duration::from_secs(420));
        let models: Vec<_> = attempts.attempts.iter().map(|a| a.model.as_deref()).collect();
        assert_eq!(models, [Some("small"), Some("big")]);
        assert_eq!(
            attempts.attempts.iter().map(|a| a.number).collect::<Vec<_>>(),
            [1, 2]
        );
    }

    #[test]
    fn a_max_that_fails_is_an_error_before_anything_runs() {
        let mut r = req(serde_json::json!({"deterministic": true, "prompt": "p", "raw-logs": "l"}));
        r.pipeline.pipeline.stages[1].max = Some(pipeline::Count::Expr("0".into()));
        let e = build(&r).unwrap_err().render();
        assert!(e.contains("`max`") && e.contains("positive integer"), "{e}");
    }
}
