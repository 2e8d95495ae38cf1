//! What a run needs before it starts, shared by the pre-flight and `fixci doctor`: the agent
//! CLIs the plan will start (every attempt of the ladder), the test runners and command-stage
//! programs, whether a forge token is needed, and the sandbox mode. Here (not in `doctor`) so the
//! engine does not import the doctor command.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use crate::agent::{self, Agent};
use crate::engine::{self, RunRequest};
use crate::error::Error;
use crate::pipeline::{self, StageKind};
use crate::spec::LoadedSpec;

pub use crate::process::which;

/// Whether a checked tool is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Needed: a problem fails the doctor.
    Yes,
    /// Needed once installed (a preset checked by default): missing is a warning, a broken
    /// installed CLI a failure.
    IfInstalled,
    /// Useful but not needed: every problem is a warning.
    No,
}

/// An agent command line to check.
#[derive(Debug, Clone)]
pub struct AgentTarget {
    /// The resolved agent (its argv as fixci would start it, placeholders in).
    pub agent: Agent,
    /// Why it is checked (`the spec's agent`, `attempt 3 of \`attempts\``, `--agent`).
    pub why: String,
    /// Whether it is needed.
    pub need: Need,
}

/// A test runner (or other program) a pipeline starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runner {
    /// Program name or path.
    pub program: String,
    /// Why it is needed.
    pub why: String,
    /// Whether it is needed.
    pub need: Need,
}

/// Everything `fixci doctor` checks.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Agent CLIs.
    pub agents: Vec<AgentTarget>,
    /// Test runners and command-stage programs.
    pub runners: Vec<Runner>,
    /// Why a forge token is needed (the spec has a run URL or an issue); `None`: a token is
    /// optional (without one a run ends with an offline PR proposal).
    pub token_needed: Option<String>,
    /// Check for a token at all: without a spec (any use), or when the spec uses GitHub (a
    /// `url`, an `issue`, or a PR stage for a repository with a GitHub remote).
    pub check_token: bool,
    /// The spec's `sandbox` (`auto` without a spec): with `bwrap`, an unusable bubblewrap fails
    /// the doctor; with `auto` it is a warning; with `none` it is only reported.
    pub sandbox: crate::process::sandbox::SandboxMode,
}

/// A cancel flag nothing ever sets (requests built only to plan, and probes).
pub(crate) static NEVER_CANCELLED: AtomicBool = AtomicBool::new(false);

/// The plan without a job spec: `agents` (from `--agent`, needed), or else every preset
/// (needed once installed, checked with a model so their model flags are checked too);
/// `python3` for the bundled examples.
///
/// Errors (exit 2): an unknown preset name.
pub fn plan_without_spec(agents: &[String]) -> Result<Plan, Error> {
    let mut targets = Vec::new();
    let (names, need, why) = if agents.is_empty() {
        let all: Vec<String> = agent::preset_names()
            .into_iter()
            .filter(|n| n != "command")
            .collect();
        (all, Need::IfInstalled, "a preset")
    } else {
        (agents.to_vec(), Need::Yes, "`--agent`")
    };
    for n in names {
        let a = agent::resolve(Some(&n), None, None, Some("MODEL"), Path::new("/"))?;
        targets.push(AgentTarget {
            agent: a,
            why: why.into(),
            need,
        });
    }
    Ok(Plan {
        agents: targets,
        runners: vec![Runner {
            program: "python3".into(),
            why: "the bundled examples and their scripted agents".into(),
            need: Need::No,
        }],
        token_needed: None,
        check_token: true,
        sandbox: Default::default(),
    })
}

/// The plan for a job spec run with `pipeline`: the agents the run would start (the spec's or
/// `agents` from `--agent`, and every attempt's agent from the attempt ladder), the spec's test
/// runner, the programs of `command` stages, and a token when the spec reads GitHub.
///
/// Errors (exit 2): an unknown preset, a ladder that fails for this spec, a bad `max`.
pub fn plan_for_spec(
    spec: LoadedSpec,
    pipeline: pipeline::Loaded,
    agents: &[String],
) -> Result<Plan, Error> {
    let defaults = pipeline.pipeline.defaults.agent.clone();
    let mut targets = Vec::new();
    if agents.is_empty() {
        let run_agent = agent::resolve(
            None,
            spec.spec.agent.as_ref(),
            defaults.as_deref(),
            spec.spec.model.as_deref(),
            &spec.dir,
        )?;
        targets.push(AgentTarget {
            agent: run_agent.clone(),
            why: "the run's agent".into(),
            need: Need::Yes,
        });
        let req = RunRequest {
            spec: spec.clone(),
            pipeline: pipeline.clone(),
            agent: run_agent,
            repo_flag: None,
            agent_flag: None,
            api_url: None,
            out_dir: PathBuf::new(),
            no_pr: true,
            cancel: &NEVER_CANCELLED,
            template_roots: Vec::new(),
            env: Vec::new(),
        };
        for def in &pipeline.pipeline.stages {
            if def.kind != StageKind::Attempts || (def.agent.is_none() && def.model.is_none()) {
                continue;
            }
            let max = engine::eval_count(
                &req,
                def.max.as_ref(),
                crate::defaults::MAX_ATTEMPTS,
                "`max`",
            )? as u32;
            for a in engine::ladder::plan(&req, def, max)? {
                targets.push(AgentTarget {
                    agent: a.agent,
                    why: format!("attempt {} of `{}`", a.number, def.id),
                    need: Need::Yes,
                });
            }
        }
    } else {
        for n in agents {
            let a = agent::resolve(Some(n), None, None, spec.spec.model.as_deref(), &spec.dir)?;
            targets.push(AgentTarget {
                agent: a,
                why: "`--agent`".into(),
                need: Need::Yes,
            });
        }
    }
    let mut runners = vec![Runner {
        program: "sh".into(),
        why: "fixci runs test commands with `sh -c`".into(),
        need: Need::Yes,
    }];
    let test_cmd = match (&spec.spec.test_command, &spec.spec.existing_test_path) {
        (_, Some(t)) => Some(crate::runners::test_command(
            spec.spec.test_command.as_deref(),
            t,
        )),
        (Some(c), None) => Some(c.clone()),
        (None, None) => None,
    };
    if let Some(p) = test_cmd.as_deref().and_then(runner_of) {
        runners.push(Runner {
            program: p,
            why: "the spec's test command".into(),
            need: Need::Yes,
        });
    }
    for s in pipeline_stages(&pipeline) {
        if let Some(p) = s.command.as_deref().and_then(runner_of) {
            runners.push(Runner {
                program: p,
                why: format!("the `{}` stage", s.id),
                need: Need::Yes,
            });
        }
    }
    let token_needed = if spec.spec.url.is_some() {
        Some("the spec's `url` is read from GitHub".to_string())
    } else if spec.spec.issue.is_some() {
        Some("the spec's `issue` is read from GitHub".to_string())
    } else {
        None
    };
    let check_token = token_needed.is_some() || opens_pr_on_github(&spec, &pipeline);
    Ok(Plan {
        agents: targets,
        runners,
        token_needed,
        check_token,
        sandbox: spec.spec.sandbox,
    })
}

/// True when the pipeline opens a PR and the spec's repository is on GitHub (a GitHub URL, or a
/// local repository with a `github.com` remote).
fn opens_pr_on_github(spec: &LoadedSpec, p: &pipeline::Loaded) -> bool {
    if !p.all_stages().iter().any(|s| s.kind == StageKind::OpenPr) {
        return false;
    }
    let Ok(source) = crate::run_dir::workspace::resolve_repo(spec, None, false) else {
        return false;
    };
    if source.source.contains("github.com") {
        return true;
    }
    let Ok(repo) = git2::Repository::open(&source.root) else {
        return false;
    };
    let Ok(names) = repo.remotes() else {
        return false;
    };
    (0..names.len()).filter_map(|i| names.get(i).ok().flatten()).any(|n| {
        repo.find_remote(n)
            .ok()
            .and_then(|r| r.url().ok().map(|u| u.contains("github.com")))
            .unwrap_or(false)
    })
}

fn pipeline_stages(p: &pipeline::Loaded) -> Vec<pipeline::StageDef> {
    p.all_stages().into_iter().cloned().collect()
}

/// The program a shell command starts first: skips variable assignments (`A=1`), `if`, `!`,
/// `exec`, `env`, `time`, `command`; `None` when it starts with `cd` or is empty.
pub fn runner_of(command: &str) -> Option<String> {
    const SKIP: &[&str] = &[
        "if", "then", "!", "exec", "env", "time", "command", "nice", "while", "until", "do",
    ];
    for w in command.split_whitespace() {
        let w = w.trim_start_matches(['(', '{']);
        if w.is_empty() || SKIP.contains(&w) {
            continue;
        }
        let assignment = w.split_once('=').is_some_and(|(k, _)| {
            !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
        if assignment {
            continue;
        }
        if w == "cd" {
            return None;
        }
        return Some(w.trim_matches(['\'', '"']).to_string());
    }
    None
}
