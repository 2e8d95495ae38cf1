//! `--dry-run`: prints the plan a run executes ([`super::plan`]: stages, budgets, each attempt's
//! agent and model) with what else a run would use (repository, branch name, agent command
//! line), and renders the prompts with placeholders for what only the run learns (commits, the
//! reproduction), without creating a branch, a worktree or a run directory, and without cloning
//! or fetching anything.

use std::fmt::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::plan::{self, PlannedStage};
use super::{RunEnv, RunRequest};
use crate::defaults;
use crate::error::Error;
use crate::pipeline::{self, StageKind, Templates, render_prompt};
use crate::run_dir::{Attempt, LogsState, RepoState, Repro, RunDir, RunState, workspace};
use crate::spec::LogsInput;

/// The plan as text: pipeline, stages with budgets, agent, repository, and every rendered
/// prompt. Errors (exit 2) are the ones a real run would hit first: bad templates, unknown
/// variables, unreadable logs, a ladder or `max` that fails.
pub fn plan(req: RunRequest) -> Result<String, Error> {
    plan_with(req, &[])
}

/// As [`plan`], with `notes` (lines such as which event case applies) printed after the header,
/// before the stages.
pub fn plan_with(req: RunRequest, notes: &[String]) -> Result<String, Error> {
    let run_plan = plan::build(&req)?;
    let spec = &req.spec;
    let source = workspace::resolve_repo(spec, req.repo_flag.as_deref(), false)?;
    let findings = super::preflight::without_writing(&req, true)?;
    let logs = match &spec.logs {
        LogsInput::Inline(t) => Some(LogsState {
            path: Some(PathBuf::from("<run dir>/stages/fetch-logs/ci.log")),
            distilled: crate::logs::distil_bytes(t.as_bytes(), &Default::default())
                .map_err(|e| Error::usage("cannot read the inline `raw-logs`").source(e))?,
        }),
        LogsInput::File(p) => Some(LogsState {
            path: Some(p.clone()),
            distilled: crate::logs::distil_path(p, &Default::default()).map_err(|e| {
                Error::usage(format!("cannot read the CI log `{}`", p.display())).source(e)
            })?,
        }),
        LogsInput::Url(_) | LogsInput::None => None,
    };
    let slug = workspace::run_slug(
        spec,
        logs.as_ref()
            .and_then(|l| l.distilled.failures.first())
            .map(|f| f.test.as_str()),
    );
    let mut out = String::new();
    let p = &req.pipeline;
    let origin = match &p.origin {
        pipeline::Origin::Builtin => "built-in".to_string(),
        pipeline::Origin::File(f) => f.display().to_string(),
    };
    let total = run_plan.total;
    let _ = writeln!(out, "dry run: nothing is created, cloned or changed\n");
    for e in &findings.missing {
        let _ = writeln!(out, "pre-flight: FAIL {} (`fixci run` would stop here, exit 3)", e.message);
    }
    for c in &findings.not_checked {
        let _ = writeln!(out, "pre-flight: not checked: {c}");
    }
    if !findings.missing.is_empty() || !findings.not_checked.is_empty() {
        out.push('\n');
    }
    let _ = writeln!(out, "job spec:   {}", spec.path.display());
    let _ = writeln!(
        out,
        "pipeline:   {} ({origin}): {}",
        p.pipeline.name, p.pipeline.description
    );
    let _ = writeln!(
        out,
        "repository: {}{}",
        source.source,
        if source.cloned {
            format!(" (would be cloned into {})", source.root.display())
        } else {
            String::new()
        }
    );
    let _ = writeln!(out, "base:       {}", spec.spec.base);
    let _ = writeln!(
        out,
        "branch:     fixci/{slug} (would be created in a private clone; in your repository only with a fix)"
    );
    let _ = writeln!(
        out,
        "agent:      {} `{}`{}",
        req.agent.name,
        req.agent.argv.join(" "),
        if req.agent.prompt_on_stdin {
            " (prompt on stdin)"
        } else {
            ""
        }
    );
    let _ = writeln!(out, "sandbox:    {}", crate::contain::dry_run_line(spec.spec.sandbox));
    let _ = writeln!(out, "budget:     {} in total", fmt(total));
    match &spec.logs {
        LogsInput::Url(u) => {
            let _ = writeln!(out, "CI log:     {u} (fetched at run time)");
        }
        LogsInput::None => {
            let _ = writeln!(
                out,
                "CI log:     none (existing test `{}`)",
                spec.spec.existing_test_path.as_deref().unwrap_or("")
            );
        }
        _ => {
            let d = &logs.as_ref().expect("local logs distilled").distilled;
            let _ = writeln!(
                out,
                "CI log:     {} failing test(s){}",
                d.failures.len(),
                d.failures
                    .first()
                    .map(|f| format!(", first `{}`", f.test))
                    .unwrap_or_default()
            );
        }
    }
    for n in notes {
        let _ = writeln!(out, "{n}");
    }
    let _ = writeln!(out, "\nstages:");
    let env = RunEnv {
        run_dir: RunDir::new("<run dir>"),
        template_roots: {
            let mut r = req.template_roots.clone();
            r.extend(p.template_roots());
            r.push(spec.dir.clone());
            r
        },
        grace: defaults::GRACE,
        deadline: Instant::now() + total,
        started: Instant::now(),
        resumed: false,
        prefetched: None,
        user_repo: Default::default(),
        req,
    };
    // (stage, its first attempt when inside the attempt loop)
    let mut prompts: Vec<(&PlannedStage, Option<&super::ladder::Attempt>)> = Vec::new();
    for (n, ps) in run_plan.stages.iter().enumerate() {
        let n = n + 1;
        line(&env, &mut out, &format!("{n}."), ps)?;
        if ps.def.kind == StageKind::Attempts {
            ladder_lines(&env, &mut out, ps);
            for (i, s) in ps.stages.iter().enumerate() {
                line(&env, &mut out, &format!("  {n}.{}.", i + 1), s)?;
                if s.def.kind == StageKind::Agent {
                    prompts.push((s, ps.attempts.first()));
                }
            }
        } else if ps.def.kind == StageKind::Agent {
            prompts.push((ps, None));
        }
    }
    let placeholder = |s: &str| format!("<{s}>");
    let mut st = RunState::new(
        "<run id>".into(),
        env.spec().path.clone(),
        env.req.pipeline.pipeline.name.clone(),
        env.req.agent.name.clone(),
        RepoState {
            root: source.root.clone(),
            source: source.source.clone(),
            base: env.spec().spec.base.clone(),
            base_commit: placeholder("base commit"),
            start_commit: env
                .spec()
                .spec
                .commit
                .clone()
                .unwrap_or_else(|| placeholder("base commit")),
        },
        env.run_dir.worktree(),
        format!("fixci/{slug}"),
    );
    st.logs = logs;
    for (ps, first) in prompts {
        let def = &ps.def;
        let attempt = first.map(|a| a.number);
        if attempt.is_some() && st.repro.is_none() {
            st.repro = Some(match &env.spec().spec.existing_test_path {
                Some(t) => Repro {
                    test_file: t.clone(),
                    command: crate::runners::test_command(
                        env.spec().spec.test_command.as_deref(),
                        t,
                    ),
                    origin: "existing".into(),
                    copy: None,
                    confirmed: true,
                    failure_output: String::new(),
                    sealed: None,
                },
                None => Repro {
                    test_file: placeholder("test file from the reproduce stage"),
                    command: placeholder("command from the reproduce stage"),
                    origin: "agent".into(),
                    copy: None,
                    confirmed: true,
                    failure_output: placeholder("output of the failing confirmation run"),
                    sealed: None,
                },
            });
            st.attempts.push(Attempt {
                number: 1,
                outcome: crate::run_dir::AttemptOutcome::Running,
                ..Default::default()
            });
        }
        let rel = def.prompt.as_deref().unwrap_or_default();
        let (name, text) = Templates::find(rel, &env.template_roots)?;
        let budget = ps.budget;
        let dir = env.run_dir.stage_dir(&def.id, attempt);
        let ctx = crate::stages::prompt_context(
            &env,
            &st,
            &def.id,
            &dir,
            attempt,
            match first {
                Some(a) => a.model.as_deref(),
                None => env.spec().spec.model.as_deref(),
            },
            budget,
        );
        let rendered = crate::redact::redact(&render_prompt(&name, &text, &ctx)?);
        let _ = writeln!(
            out,
            "\n===== prompt of stage `{}`{} ({name}) =====\n{rendered}",
            def.id,
            attempt
                .map(|a| format!(", attempt {a}"))
                .unwrap_or_default()
        );
    }
    Ok(out)
}

fn line(env: &RunEnv, out: &mut String, num: &str, ps: &PlannedStage) -> Result<(), Error> {
    let def = &ps.def;
    let mut extra = Vec::new();
    if def.kind == StageKind::Attempts {
        extra.push(format!("max {} attempts", ps.max()));
    } else {
        extra.push(format!("budget {}", fmt(ps.budget)));
    }
    if let Some(e) = def.expect {
        let stress = def.mode == Some(pipeline::RunMode::Stress);
        match (stress, e) {
            (true, pipeline::Expect::Fail) => {
                let runs = env.count(def.runs.as_ref(), defaults::STRESS_RUNS, "`runs`")?;
                extra.push(format!(
                    "stress: up to {runs} parallel runs, at least one must fail; measures p0"
                ));
            }
            (true, pipeline::Expect::Pass) => {
                extra.push(format!(
                    "stress: ceil(ln({}) / ln(1 - p0/{})) runs (k = `min-improvement`), every run must pass",
                    def.alpha.unwrap_or(defaults::ALPHA),
                    defaults::min_improvement(env.spec().spec.min_improvement)
                ));
            }
            (false, _) => {
                let default = if e == pipeline::Expect::Fail {
                    defaults::CONFIRM_RUNS
                } else {
                    u64::from(defaults::verify_runs(env.spec().spec.verify_runs))
                };
                let runs = env.count(def.runs.as_ref(), default, "`runs`")?;
                extra.push(format!(
                    "{runs} runs, every run must {}",
                    if e == pipeline::Expect::Fail {
                        "fail"
                    } else {
                        "pass"
                    }
                ));
            }
        }
    }
    if let Some(p) = &def.prompt {
        extra.push(format!("prompt {p}"));
    }
    if let Some(c) = &def.condition {
        extra.push(format!("if {c}"));
    }
    if def.always {
        extra.push("always".into());
    }
    let kind = serde_json::to_value(def.kind)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "  {num:<6} {:<12} {:<11} {}",
        def.id,
        kind,
        extra.join(", ")
    );
    Ok(())
}

/// The attempt ladder, one line per attempt, when the stage has one: the agent, the model and
/// the command line each attempt runs (from the plan).
fn ladder_lines(env: &RunEnv, out: &mut String, ps: &PlannedStage) {
    if ps.def.agent.is_none() && ps.def.model.is_none() {
        return;
    }
    let why = if env.req.agent_flag.is_some() {
        " (`--agent` on the command line: the ladder is off)"
    } else if env.req.spec.model_flag.is_some() {
        " (`--model` on the command line: the ladder's model is off)"
    } else {
        ""
    };
    let _ = writeln!(out, "         attempt ladder{why}:");
    for a in &ps.attempts {
        let _ = writeln!(
            out,
            "           attempt {}: {}{} `{}`",
            a.number,
            a.agent.name,
            a.model
                .as_ref()
                .map(|m| format!(", model {m}"))
                .unwrap_or_default(),
            a.agent.argv.join(" ")
        );
    }
}

fn fmt(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}
