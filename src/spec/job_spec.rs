//! The typed job spec, deserialized after the JSON Schema has accepted the document.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A job spec: one CI failure to reproduce and fix. Keys are kebab-case in files
/// (`raw-logs`, `existing-test-path`, ...); see `schemas/job.schema.json` for each key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct JobSpec {
    /// true when the failure happens on every run; false for a flaky failure. Required unless
    /// the spec has a `gate` (then it defaults to true).
    #[serde(default = "yes")]
    pub deterministic: bool,
    /// The task, in the user's words.
    pub prompt: String,
    /// A GitHub Actions run URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Inline log text, or a path to a log file / run-logs ZIP (relative to the spec's folder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_logs: Option<String>,
    /// The local gate: shell commands run in order at the base commit (their failing output is
    /// the CI log) and on the fix commit (every one must pass). A string is one command.
    #[serde(
        default,
        deserialize_with = "crate::spec::gate::one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub gate: Vec<String>,
    /// An existing failing test, relative to the repository root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub existing_test_path: Option<String>,
    /// Target repository: local path, git URL or `.bundle` file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    /// Branch the fix is cut from.
    #[serde(default = "default_base")]
    pub base: String,
    /// Commit the reproduction starts from (default: `base`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Pipeline name or file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<String>,
    /// The coding agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentSpec>,
    /// Model name passed to the agent preset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Stage id (or `total`) -> duration text such as `"5m"`; and the run's spend limits
    /// `cost-usd` and `tokens`.
    #[serde(default, skip_serializing_if = "Budgets::is_empty")]
    pub budgets: Budgets,
    /// Fix attempts before escalation (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Verification runs for a deterministic failure (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_runs: Option<u32>,
    /// Keep the reproduction test in the fix commit.
    #[serde(default)]
    pub keep_test: bool,
    /// A GitHub issue `O/R#N` as the task (context of a fix; without a failure input, the
    /// feature to build).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issue: Option<String>,
    /// A Markdown file (relative to the spec's folder) holding the issue text, instead of
    /// `issue`: its first `# ` heading is the title, the rest the body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issue_file: Option<String>,
    /// Pull-request options.
    #[serde(default)]
    pub pr: PrSpec,
    /// Shell command that runs the test; `{test_file}` is replaced by the test path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_command: Option<String>,
    /// The command that runs the test suite for the regression check (e.g. `python -m pytest
    /// -q`); without it, fixci runs the test files of the CI failure and of the reproduction's
    /// folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suite_command: Option<String>,
    /// Extra environment variables removed from the agent's and tests' environment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_env: Vec<String>,
    /// What to do with commits an agent makes by itself during its run (aider does unless told
    /// not to): fold them into fixci's single fix commit (default), or reject the stage.
    #[serde(default, skip_serializing_if = "AgentCommits::is_fold")]
    pub agent_commits: AgentCommits,
    /// Where agents run: `auto` (bubblewrap when usable, else none with a warning), `bwrap`
    /// (refuse to run without it), `none` (see `crate::process::sandbox`).
    #[serde(default, skip_serializing_if = "is_auto")]
    pub sandbox: crate::process::sandbox::SandboxMode,
    /// Accept fixes that add or change test infrastructure (conftest.py, runner configs, test
    /// sections of shared configs, start-up hooks, shadowing modules, ignore files, CI
    /// workflows); the report's summary then says so. Default false: such fixes are refused.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_test_infra_changes: bool,
    /// Keep the run's private clone (`RUN/worktree`) when the run ends, for debugging; by
    /// default it is removed (see `crate::run_dir::cleanup`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep_worktree: bool,
    /// Flaky verification: the factor k by which a fix must at least divide the failure rate.
    /// Verification makes N = ceil(ln(alpha) / ln(1 - p0/k)) runs, so a change that leaves
    /// the rate above p0/k fails it with probability at least 1 - alpha (default 4; > 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_improvement: Option<f64>,
}

/// The `budgets` table: durations per stage id (or `total`), and what the run may spend on
/// agents, summed over what the agent CLIs report (`crate::agent::spend`).
///
/// Read by hand (not `#[serde(flatten)]`), so a bad duration's error keeps its key in the JSON
/// pointer (`/budgets/reproduce`).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Budgets {
    /// US dollars the agent invocations of the run may cost in total (as the CLIs state it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// Tokens (input, output and cache reads and writes) the agent invocations may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
    /// Stage id (or `total`) -> budget, written as humantime text such as `"5m"` and parsed at
    /// load ([`super::duration`]); zero is refused.
    #[serde(flatten, with = "super::duration::positive_map")]
    pub stages: BTreeMap<String, std::time::Duration>,
}

impl<'de> Deserialize<'de> for Budgets {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Positive(#[serde(with = "super::duration::positive")] std::time::Duration);
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Budgets;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a table of stage ids (or `total`) to durations, `cost-usd` and `tokens`")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Budgets, A::Error> {
                let mut b = Budgets::default();
                while let Some(k) = m.next_key::<String>()? {
                    match k.as_str() {
                        "cost-usd" => b.cost_usd = Some(m.next_value()?),
                        "tokens" => b.tokens = Some(m.next_value()?),
                        _ => {
                            let Positive(d) = m.next_value()?;
                            b.stages.insert(k, d);
                        }
                    }
                }
                Ok(b)
            }
        }
        d.deserialize_map(V)
    }
}

impl Budgets {
    fn is_empty(&self) -> bool {
        self.cost_usd.is_none() && self.tokens.is_none() && self.stages.is_empty()
    }
}

fn is_auto(m: &crate::process::sandbox::SandboxMode) -> bool {
    *m == crate::process::sandbox::SandboxMode::Auto
}

/// The `agent-commits` policy. Files the agent staged are unstaged either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AgentCommits {
    /// Undo the commits (soft reset to the branch tip before the agent ran), keep their
    /// changes as worktree changes: fixci's fix commit holds them.
    #[default]
    Fold,
    /// Undo the commits the same way and fail the stage: the agent broke the contract.
    Reject,
}

impl AgentCommits {
    fn is_fold(&self) -> bool {
        *self == AgentCommits::Fold
    }
}

fn default_base() -> String {
    "main".into()
}

/// The `agent` key: a preset name, or a table. Deserialized by hand from either form so that
/// errors stay precise (no `untagged`).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct AgentSpec {
    /// Preset name (`claude`, `codex`, `gemini`, `aider`, `opencode`, `copilot`, `qwen`,
    /// `command`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    /// Explicit argv.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Extra arguments appended to the command line.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Extra environment variables for the agent.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// `prompt` to feed the rendered prompt on stdin, `none` for /dev/null.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdin: Option<String>,
    /// Which parser reads the agent's stdout (`claude-json`, ..., `none`), overriding the
    /// preset's: for a spec's own command line that prints one of the known formats.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<crate::spec::ResultFormat>,
}

impl<'de> Deserialize<'de> for AgentSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "kebab-case", deny_unknown_fields)]
        struct Table {
            preset: Option<String>,
            command: Option<Vec<String>>,
            #[serde(default)]
            args: Vec<String>,
            #[serde(default)]
            env: BTreeMap<String, String>,
            stdin: Option<String>,
            result: Option<crate::spec::ResultFormat>,
        }
        let v = serde_json::Value::deserialize(d)?;
        match v {
            serde_json::Value::String(s) => Ok(AgentSpec {
                preset: Some(s),
                ..Default::default()
            }),
            other => {
                let t: Table = serde_json::from_value(other).map_err(serde::de::Error::custom)?;
                Ok(AgentSpec {
                    preset: t.preset,
                    command: t.command,
                    args: t.args,
                    env: t.env,
                    stdin: t.stdin,
                    result: t.result,
                })
            }
        }
    }
}

/// The `pr` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PrSpec {
    /// Open the PR as a draft (default true).
    #[serde(default = "yes")]
    pub draft: bool,
    /// Labels to add.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Reviewers to request.
    #[serde(default)]
    pub reviewers: Vec<String>,
    /// Remote to push to (default `origin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
    /// PR title (default: derived from the failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Open (or comment on) an escalation issue when every attempt failed.
    #[serde(default)]
    pub escalate: bool,
    /// `fixci run --event`: when CI passes on the fix branch, mark the draft PR ready for
    /// review (default false: a comment says CI is green).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ready_on_green: bool,
}

fn yes() -> bool {
    true
}

impl PrSpec {
    /// The remote to push to: `remote`, else `origin`.
    pub fn remote_name(&self) -> String {
        self.remote.clone().unwrap_or_else(|| "origin".into())
    }
}

impl Default for PrSpec {
    fn default() -> Self {
        Self {
            draft: true,
            labels: Vec::new(),
            reviewers: Vec::new(),
            remote: None,
            title: None,
            escalate: false,
            ready_on_green: false,
        }
    }
}
