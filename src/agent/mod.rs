//! Agent adapters: build the command line for a preset (`claude`, `codex`, `gemini`, `aider`,
//! `opencode`, `copilot`, `qwen`) or a spec's own command, and the environment it runs in (fixci's `FIXCI_*` variables; forge
//! tokens and the spec's `secret-env` removed), and reading what the CLI reports about its own run
//! ([`result`]). Judging what the agent did is not done here: the engine measures that itself.

pub mod result;
pub mod spend;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::Error;
use crate::process::CommandSpec;
use crate::spec::AgentSpec;
pub use result::{AgentReport, AgentTotals, ResultFormat};

/// The presets, from `src/agent/presets.toml`.
pub const PRESETS: &str = include_str!("presets.toml");

/// The file in the stage directory where a CLI writes its own usage report when its preset asks
/// for one (placeholder `{usage_file}`; copilot's `--usage-output-file`), read by the parser.
pub const USAGE_FILE: &str = "agent.usage.json";

/// Environment variables that never reach an agent or a test: forge credentials.
pub const FORGE_SECRETS: &[&str] = &[
    "GITHUB_TOKEN",
    "GH_TOKEN",
    "GITHUB_PAT",
    "GH_ENTERPRISE_TOKEN",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct Preset {
    command: Vec<String>,
    #[serde(default)]
    model_args: Vec<String>,
    /// Added when the run has a dollar limit (`budgets.cost-usd`): `{budget_usd}` is what is
    /// left of it.
    #[serde(default)]
    budget_args: Vec<String>,
    #[serde(default)]
    stdin: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    tail: Vec<String>,
    result: ResultFormat,
    /// `fixci doctor`: argument lists whose outputs together must mention every flag.
    #[serde(default = "default_help_args")]
    help_args: Vec<Vec<String>>,
    /// `fixci doctor`: arguments that print the version.
    #[serde(default = "default_version_args")]
    version_args: Vec<String>,
    /// `fixci doctor`: flags the CLI accepts but leaves out of its help.
    #[serde(default)]
    hidden_flags: Vec<String>,
    /// `fixci doctor`: how to install the CLI (a hint).
    #[serde(default)]
    install: Option<String>,
    /// Configuration the CLI must write, copied into the sandbox's private home.
    #[serde(default)]
    writable: Vec<String>,
    /// The arguments that turn on the CLI's own sandbox, and what replaces them inside fixci's.
    #[serde(default)]
    own_sandbox: Vec<String>,
    #[serde(default)]
    own_sandbox_off: Vec<String>,
    /// `fixci doctor`: files the CLI's probes leave behind, removed after probing.
    #[serde(default)]
    probe_leaves: Vec<String>,
}

fn default_help_args() -> Vec<Vec<String>> {
    vec![vec!["--help".into()]]
}

fn default_version_args() -> Vec<String> {
    vec!["--version".into()]
}

/// How `fixci doctor` checks a preset's CLI, from the preset's table in `presets.toml`.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// Each entry is one invocation (e.g. `["exec", "--help"]`); together their outputs must
    /// mention every flag fixci passes, except `hidden_flags`. Default `[["--help"]]`.
    pub help_args: Vec<Vec<String>>,
    /// Arguments that print the version. Default `["--version"]`.
    pub version_args: Vec<String>,
    /// Flags the CLI accepts without listing them in its help (e.g. claude's `--max-turns`).
    pub hidden_flags: Vec<String>,
    /// An install command, shown as a hint when the CLI is missing (with the version fixci's
    /// preset was checked against).
    pub install: Option<String>,
    /// Files the CLI leaves behind even for `--version` / `--help` (e.g. gemini's
    /// `~/.gemini/projects.json.<uuid>.tmp`): `~/PATH` or `$VAR/PATH`, `*` allowed in the last
    /// component. The doctor removes the ones that appeared while it probed.
    pub probe_leaves: Vec<String>,
}

/// The doctor metadata of preset `name`; `None` for an unknown preset.
pub fn probe(name: &str) -> Option<Probe> {
    presets().remove(name).map(|p| Probe {
        help_args: p.help_args,
        version_args: p.version_args,
        hidden_flags: p.hidden_flags,
        install: p.install,
        probe_leaves: p.probe_leaves,
    })
}

fn presets() -> BTreeMap<String, Preset> {
    toml::from_str(PRESETS).expect("embedded presets parse")
}

/// Names of the presets.
pub fn preset_names() -> Vec<String> {
    presets().into_keys().collect()
}

/// A resolved agent: argv template (placeholders still in), environment, stdin mode.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Agent {
    /// Preset name, or `command`.
    pub name: String,
    /// argv with `{placeholders}`.
    pub argv: Vec<String>,
    /// Extra environment.
    pub env: BTreeMap<String, String>,
    /// Feed the prompt on stdin.
    pub prompt_on_stdin: bool,
    /// Which parser reads the CLI's stdout: the spec's `agent.result`, else the preset's (a
    /// spec's own command line under a named preset keeps that preset's parser; without one it
    /// is `none`).
    pub result: ResultFormat,
    /// The preset's `writable`: configuration the CLI writes (`~/PATH`, `~/PREFIX*`, `$VAR`
    /// naming a directory), copied into the sandbox's private home
    /// ([`crate::process::sandbox::Jail::wrap`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub writable: Vec<String>,
    /// The preset's `own-sandbox` and `own-sandbox-off`: inside fixci's sandbox the first
    /// argument sequence is replaced by the second (a CLI whose own sandbox cannot nest in
    /// bubblewrap's, such as codex's, runs without it there).
    #[serde(skip)]
    pub own_sandbox: (Vec<String>, Vec<String>),
    /// The preset's `budget-args` and where in `argv` they go (before the `tail`): added when
    /// an invocation has a dollar allowance ([`Invocation::budget_usd`]).
    #[serde(skip)]
    pub budget_args: (usize, Vec<String>),
}

/// Resolves the agent from the CLI flag (`--agent NAME`), the spec's `agent`, or the pipeline
/// default (in that order); `spec_dir` resolves relative paths in a spec's command.
///
/// Errors (exit 2): unknown preset (the presets are listed), `command` preset without a command.
pub fn resolve(
    flag: Option<&str>,
    spec: Option<&AgentSpec>,
    default: Option<&str>,
    model: Option<&str>,
    spec_dir: &Path,
) -> Result<Agent, Error> {
    let from_flag = flag.map(|f| AgentSpec {
        preset: Some(f.to_string()),
        ..Default::default()
    });
    let chosen = from_flag
        .or_else(|| spec.cloned())
        .unwrap_or_else(|| AgentSpec {
            preset: Some(default.unwrap_or("claude").to_string()),
            ..Default::default()
        });
    let all = presets();
    let name = chosen.preset.clone().unwrap_or_else(|| {
        if chosen.command.is_some() {
            "command".into()
        } else {
            "claude".into()
        }
    });
    let preset = all.get(&name).ok_or_else(|| {
        Error::usage(format!("unknown agent preset `{name}`"))
            .detail(format!("presets: {}", all.keys().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")))
            .hint("or give a command line: \"agent\": {\"command\": [\"my-agent\", \"{prompt_file}\"]}")
    })?;
    let mut argv = match &chosen.command {
        Some(c) => c.iter().map(|a| resolve_relative(a, spec_dir)).collect(),
        None => preset.command.clone(),
    };
    if argv.is_empty() {
        return Err(Error::usage("agent preset `command` needs a command line")
            .detail("/agent/command: expected a non-empty array such as [\"python3\", \"agent.py\", \"{prompt_file}\"]"));
    }
    if let Some(m) = model {
        if chosen.command.is_none() {
            argv.extend(preset.model_args.iter().map(|a| a.replace("{model}", m)));
        }
    }
    argv.extend(chosen.args.iter().cloned());
    let budget_args = match chosen.command {
        None => (argv.len(), preset.budget_args.clone()),
        Some(_) => (argv.len(), Vec::new()),
    };
    if chosen.command.is_none() {
        argv.extend(preset.tail.iter().cloned());
    }
    let mut env = preset.env.clone();
    env.extend(chosen.env.clone());
    let stdin = chosen
        .stdin
        .clone()
        .or(preset.stdin.clone())
        .unwrap_or_else(|| "none".into());
    Ok(Agent {
        name,
        argv,
        env,
        prompt_on_stdin: stdin == "prompt",
        result: chosen.result.unwrap_or(preset.result),
        writable: preset.writable.clone(),
        own_sandbox: (preset.own_sandbox.clone(), preset.own_sandbox_off.clone()),
        budget_args,
    })
}

/// Makes a spec command's argument absolute when it names a file in the spec's folder, so
/// `["python3", "agent.py"]` works although the agent runs in the worktree.
fn resolve_relative(arg: &str, spec_dir: &Path) -> String {
    if arg.starts_with('-') || arg.contains('{') || Path::new(arg).is_absolute() {
        return arg.to_string();
    }
    let candidate = spec_dir.join(arg);
    if candidate.is_file() {
        candidate.display().to_string()
    } else {
        arg.to_string()
    }
}

/// Everything an agent invocation needs besides the resolved [`Agent`].
#[derive(Debug, Clone)]
pub struct Invocation {
    /// Stage id (`FIXCI_STAGE`).
    pub stage: String,
    /// 1-based attempt (`FIXCI_ATTEMPT`).
    pub attempt: u32,
    /// The rendered prompt file (`FIXCI_PROMPT_FILE`).
    pub prompt_file: PathBuf,
    /// The stage directory (`FIXCI_STAGE_DIR`).
    pub stage_dir: PathBuf,
    /// The run directory (`FIXCI_RUN_DIR`).
    pub run_dir: PathBuf,
    /// The worktree: the agent's working directory.
    pub worktree: PathBuf,
    /// Model name, for the `{model}` placeholder.
    pub model: Option<String>,
    /// Extra variables to remove (the spec's `secret-env`).
    pub secret_env: Vec<String>,
    /// US dollars left of the run's `budgets.cost-usd`, if it has one: the preset's
    /// `budget-args` and `FIXCI_BUDGET_USD` carry it.
    pub budget_usd: Option<f64>,
}

impl Agent {
    /// The concrete command for one invocation: placeholders substituted, `FIXCI_*` set,
    /// secrets removed, the worktree as working directory.
    pub fn command(&self, inv: &Invocation) -> CommandSpec {
        let subst = |a: &str| {
            a.replace("{prompt_file}", &inv.prompt_file.display().to_string())
                .replace("{stage_dir}", &inv.stage_dir.display().to_string())
                .replace("{run_dir}", &inv.run_dir.display().to_string())
                .replace("{worktree}", &inv.worktree.display().to_string())
                .replace(
                    "{usage_file}",
                    &inv.stage_dir.join(USAGE_FILE).display().to_string(),
                )
                .replace("{model}", inv.model.as_deref().unwrap_or(""))
        };
        let mut argv: Vec<String> = self.argv.iter().map(|a| subst(a)).collect();
        let usd = inv.budget_usd.map(|u| format!("{:.4}", u.max(0.0)));
        if let Some(u) = &usd {
            let (at, extra) = &self.budget_args;
            let at = (*at).min(argv.len());
            let extra = extra.iter().map(|a| a.replace("{budget_usd}", u));
            argv.splice(at..at, extra);
        }
        let mut env: Vec<(String, String)> = self
            .env
            .iter()
            .map(|(k, v)| (k.clone(), subst(v)))
            .collect();
        env.extend([
            ("FIXCI_STAGE".to_string(), inv.stage.clone()),
            ("FIXCI_ATTEMPT".to_string(), inv.attempt.to_string()),
            (
                "FIXCI_BUDGET_USD".to_string(),
                usd.clone().unwrap_or_default(),
            ),
            (
                "FIXCI_PROMPT_FILE".to_string(),
                inv.prompt_file.display().to_string(),
            ),
            (
                "FIXCI_STAGE_DIR".to_string(),
                inv.stage_dir.display().to_string(),
            ),
            (
                "FIXCI_RUN_DIR".to_string(),
                inv.run_dir.display().to_string(),
            ),
        ]);
        CommandSpec {
            program: argv[0].clone(),
            args: argv[1..].to_vec(),
            cwd: inv.worktree.clone(),
            env,
            env_remove: scrubbed_env(&inv.secret_env),
            stdin: self.prompt_on_stdin.then(|| inv.prompt_file.clone()),
        }
    }
}

impl Agent {
    /// `args` for a run inside fixci's sandbox: the first occurrence of the preset's
    /// `own-sandbox` sequence replaced by `own-sandbox-off`; unchanged without one.
    pub fn without_own_sandbox(&self, args: &[String]) -> Vec<String> {
        let (on, off) = &self.own_sandbox;
        if on.is_empty() {
            return args.to_vec();
        }
        match args.windows(on.len()).position(|w| w == on.as_slice()) {
            Some(i) => [&args[..i], off.as_slice(), &args[i + on.len()..]].concat(),
            None => args.to_vec(),
        }
    }
}

/// Variables that point agents and tests at the user's credentials or the machine's container
/// engine: removed too (the sandboxes also hide the sockets themselves,
/// [`crate::process::sandbox::credential_sockets`]).
pub const CREDENTIAL_POINTERS: &[&str] = &["SSH_AUTH_SOCK", "GPG_AGENT_INFO", "DOCKER_HOST"];

/// Variables removed from agents' and tests' environments: forge tokens, credential sockets'
/// pointers and `extra`.
pub fn scrubbed_env(extra: &[String]) -> Vec<String> {
    FORGE_SECRETS
        .iter()
        .chain(CREDENTIAL_POINTERS)
        .map(|s| s.to_string())
        .chain(extra.iter().cloned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv() -> Invocation {
        Invocation {
            stage: "fix".into(),
            attempt: 2,
            prompt_file: "/run/stages/fix/prompt.md".into(),
            stage_dir: "/run/stages/fix".into(),
            run_dir: "/run".into(),
            worktree: "/wt".into(),
            model: Some("m1".into()),
            secret_env: vec!["MY_SECRET".into()],
            budget_usd: None,
        }
    }

    #[test]
    fn a_dollar_allowance_reaches_the_clis_that_take_one() {
        let dir = Path::new("/");
        let claude = resolve(Some("claude"), None, None, None, dir).unwrap();
        let mut i = inv();
        assert!(!claude.command(&i).args.contains(&"--max-budget-usd".to_string()));
        i.budget_usd = Some(0.5);
        let c = claude.command(&i);
        let at = c.args.iter().position(|a| a == "--max-budget-usd").unwrap();
        assert_eq!(c.args[at + 1], "0.5000");
        assert!(c.env.iter().any(|(k, v)| k == "FIXCI_BUDGET_USD" && v == "0.5000"));
        // codex takes no dollar limit: the variable only.
        let codex = resolve(Some("codex"), None, None, None, dir).unwrap().command(&i);
        assert!(!codex.args.iter().any(|a| a.contains("budget")));
    }

    #[test]
    fn presets_build_checked_command_lines() {
        let dir = Path::new("/");
        let c = resolve(Some("claude"), None, None, Some("opus"), dir)
            .unwrap()
            .command(&inv());
        assert_eq!(c.program, "claude");
        assert!(
            c.args.contains(&"-p".to_string())
                && c.args.ends_with(&["--model".into(), "opus".into()])
        );
        assert_eq!(
            c.stdin.as_deref(),
            Some(Path::new("/run/stages/fix/prompt.md"))
        );
        let c = resolve(Some("codex"), None, None, None, dir)
            .unwrap()
            .command(&inv());
        assert_eq!(&c.args[..3], &["-a", "never", "exec"]);
        assert!(!c.args.iter().any(|a| a == "--full-auto"));
        let c = resolve(Some("aider"), None, None, None, dir)
            .unwrap()
            .command(&inv());
        assert!(c.args.contains(&"--no-auto-commits".to_string()));
        assert!(c.args.contains(&"/run/stages/fix/prompt.md".to_string()));
        assert!(
            c.env_remove.contains(&"GITHUB_TOKEN".to_string())
                && c.env_remove.contains(&"MY_SECRET".to_string())
        );
        assert!(c.env.iter().any(|(k, v)| k == "FIXCI_ATTEMPT" && v == "2"));
    }

    #[test]
    fn spec_args_go_before_a_preset_tail_and_presets_name_their_parser() {
        let spec = AgentSpec {
            preset: Some("codex".into()),
            args: vec!["-c".into(), "model_provider=local".into()],
            ..Default::default()
        };
        let a = resolve(None, Some(&spec), None, Some("m1"), Path::new("/")).unwrap();
        let c = a.command(&inv());
        assert_eq!(c.args.last().map(String::as_str), Some("-"));
        let pos = |x: &str| c.args.iter().position(|a| a == x).unwrap();
        assert!(pos("-m") < pos("-c") && pos("-c") < c.args.len() - 1);
        assert!(
            c.args.contains(&"/run/stages/fix".to_string()),
            "--add-dir {{stage_dir}}"
        );
        assert_eq!(a.result, ResultFormat::CodexJsonl);
        for (name, format) in [
            ("claude", ResultFormat::ClaudeJson),
            ("gemini", ResultFormat::GeminiJson),
            ("aider", ResultFormat::AiderText),
            ("opencode", ResultFormat::OpencodeJsonl),
            ("copilot", ResultFormat::CopilotJsonl),
            ("qwen", ResultFormat::QwenJson),
        ] {
            let a = resolve(Some(name), None, None, None, Path::new("/")).unwrap();
            assert_eq!(a.result, format, "{name}");
        }
        let own = AgentSpec {
            command: Some(vec!["my-agent".into()]),
            ..Default::default()
        };
        let a = resolve(None, Some(&own), None, None, Path::new("/")).unwrap();
        assert_eq!((a.name.as_str(), a.result), ("command", ResultFormat::None));
        // A spec's own command names the parser for what it prints.
        let own = AgentSpec {
            result: Some(ResultFormat::ClaudeJson),
            ..own
        };
        let a = resolve(None, Some(&own), None, None, Path::new("/")).unwrap();
        assert_eq!(
            (a.name.as_str(), a.result),
            ("command", ResultFormat::ClaudeJson)
        );
    }

    #[test]
    fn the_new_presets_take_the_prompt_on_stdin_and_open_the_stage_directory() {
        let dir = Path::new("/");
        let c = resolve(Some("opencode"), None, None, Some("fixci/m"), dir)
            .unwrap()
            .command(&inv());
        assert_eq!(&c.args[..2], &["run", "--pure"]);
        assert!(c.args.contains(&"--auto".to_string()));
        assert!(c.args.ends_with(&["-m".into(), "fixci/m".into()]));
        assert!(c.stdin.is_some());
        let c = resolve(Some("copilot"), None, None, Some("gpt-5"), dir)
            .unwrap()
            .command(&inv());
        let after = |flag: &str| {
            let i = c.args.iter().position(|a| a == flag).unwrap();
            c.args[i + 1].clone()
        };
        assert_eq!(after("--add-dir"), "/run/stages/fix");
        assert_eq!(
            after("--usage-output-file"),
            "/run/stages/fix/agent.usage.json"
        );
        assert_eq!(after("--model"), "gpt-5");
        assert!(c.stdin.is_some());
        let c = resolve(Some("qwen"), None, None, None, dir)
            .unwrap()
            .command(&inv());
        let i = c.args.iter().position(|a| a == "--approval-mode").unwrap();
        assert_eq!(c.args[i + 1], "auto-edit", "qwen spells it with a hyphen");
        let i = c
            .args
            .iter()
            .position(|a| a == "--include-directories")
            .unwrap();
        assert_eq!(c.args[i + 1], "/run/stages/fix");
        assert!(
            !c.args.contains(&"-m".to_string()),
            "no model, no model flag"
        );
    }

    #[test]
    fn inside_fixci_s_sandbox_codex_runs_without_its_own() {
        let a = resolve(Some("codex"), None, None, None, Path::new("/")).unwrap();
        let c = a.command(&inv());
        let inside = a.without_own_sandbox(&c.args);
        let at = inside.iter().position(|x| x == "-s").unwrap();
        assert_eq!(inside[at + 1], "danger-full-access");
        assert_eq!(inside.len(), c.args.len());
        let claude = resolve(Some("claude"), None, None, None, Path::new("/")).unwrap();
        let c = claude.command(&inv());
        assert_eq!(claude.without_own_sandbox(&c.args), c.args);
    }

    #[test]
    fn unknown_preset_lists_the_presets() {
        let e = resolve(Some("clod"), None, None, None, Path::new("/"))
            .unwrap_err()
            .render();
        assert!(e.contains("`clod`") && e.contains("`claude`"), "{e}");
    }

    #[test]
    fn spec_command_paths_resolve_against_the_spec_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("agent.py"), "").unwrap();
        let spec = AgentSpec {
            command: Some(vec![
                "python3".into(),
                "agent.py".into(),
                "{prompt_file}".into(),
            ]),
            ..Default::default()
        };
        let a = resolve(None, Some(&spec), None, None, dir.path()).unwrap();
        assert_eq!(a.argv[1], dir.path().join("agent.py").display().to_string());
        assert_eq!(a.argv[0], "python3");
        assert_eq!(a.command(&inv()).args[1], "/run/stages/fix/prompt.md");
    }
}
