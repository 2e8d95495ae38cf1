//! Case and variant environments: the `env`, `path`, `setup` and `setup-budget` keys of
//! `case.toml` and of a variant, and the setup commands they name.
//!
//! Every command of a replay item (setup, fail-to-pass and pass-to-pass checks, the engine's
//! test runs and agent) gets `env` set and `path` prepended to `PATH`. A variant's environment
//! is layered over the case's: its variables win, its folders come first on `PATH`, its setup
//! commands run after the case's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, io_error};
use crate::process::{self, CommandSpec, Limits, OutputTo};

/// Default budget of one setup command: 10 minutes.
pub const DEFAULT_SETUP_BUDGET: Duration = Duration::from_secs(600);

/// The environment keys as written in `case.toml` or a variant (validated by their schemas).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct EnvKeys {
    /// Variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Folders prepended to `PATH`, relative to the file's folder.
    #[serde(default)]
    pub path: Vec<String>,
    /// Setup commands.
    #[serde(default)]
    pub setup: Vec<String>,
    /// Budget of one setup command (humantime text; these keys are flattened into the case and
    /// variant tables, where serde loses the key's path, so [`Environment::resolve`] parses it
    /// when the file is loaded).
    #[serde(default)]
    pub setup_budget: Option<String>,
}

/// A resolved environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    /// Variables set on every command (a `PATH` here replaces the inherited one before `path`
    /// is prepended).
    pub env: BTreeMap<String, String>,
    /// Absolute folders prepended to `PATH`, in order.
    pub path: Vec<PathBuf>,
    /// Shell commands run once per item in its clone before anything else.
    pub setup: Vec<String>,
    /// Budget of one setup command.
    pub setup_budget: Duration,
}

impl Default for Environment {
    fn default() -> Self {
        Environment {
            env: BTreeMap::new(),
            path: Vec::new(),
            setup: Vec::new(),
            setup_budget: DEFAULT_SETUP_BUDGET,
        }
    }
}

/// A shell command of a replay item, ready to run: where, with which variables set and removed,
/// within which budget (2 s grace between SIGTERM and SIGKILL).
pub(crate) struct ItemCommand<'a> {
    /// Working directory (the item's clone).
    pub cwd: &'a Path,
    /// Variables set ([`Environment::process_vars`]).
    pub env: &'a [(String, String)],
    /// Variables removed (forge tokens, the spec's `secret-env`).
    pub env_remove: &'a [String],
    /// Budget of one run.
    pub budget: Duration,
    /// Set by the signal handler.
    pub cancel: &'static AtomicBool,
}

impl ItemCommand<'_> {
    /// Runs `script` with `sh -c`, its combined output to `log` (truncated first).
    ///
    /// Errors (exit 3): the shell cannot be started; `what` names the command in the message.
    pub(crate) fn run(
        &self,
        script: &str,
        log: &Path,
        what: &str,
    ) -> Result<process::Finished, Error> {
        let mut spec = CommandSpec::shell(script, self.cwd);
        spec.env = self.env.to_vec();
        spec.env_remove = self.env_remove.to_vec();
        process::run(
            &spec,
            &OutputTo::Combined(log.to_path_buf()),
            Limits {
                budget: self.budget,
                grace: Duration::from_secs(2),
            },
            Some(self.cancel),
            &mut |_| {},
        )
        .map_err(|e| Error::infra(format!("cannot run {what}`{script}`")).source(e))
    }
}

/// One setup command as it ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetupRun {
    /// The shell command.
    pub command: String,
    /// How it ended (`exit 0`, `exit 1`, `timeout`, ...).
    pub ended: String,
    /// Wall time in seconds.
    pub seconds: f64,
}

impl Environment {
    /// Resolves `keys` read from `file` (whose folder `dir` relative paths resolve against).
    ///
    /// Errors (exit 2): a `setup-budget` that is not a positive duration (named with its
    /// pointer and `file`).
    pub fn resolve(keys: &EnvKeys, dir: &Path, file: &Path, what: &str) -> Result<Self, Error> {
        let setup_budget = match &keys.setup_budget {
            None => DEFAULT_SETUP_BUDGET,
            Some(t) => crate::spec::duration::parse(t, true).map_err(|e| {
                Error::usage(format!("invalid {what} `{}`", file.display()))
                    .detail(format!("/setup-budget: {e}"))
            })?,
        };
        Ok(Environment {
            env: keys.env.clone(),
            path: keys.path.iter().map(|p| dir.join(p)).collect(),
            setup: keys.setup.clone(),
            setup_budget,
        })
    }

    /// `over` layered on `self`: `over`'s variables win, its folders come first on `PATH`, its
    /// setup commands run after `self`'s, and the longer setup budget applies.
    pub fn layered(&self, over: &Environment) -> Environment {
        let mut env = self.env.clone();
        env.extend(over.env.clone());
        Environment {
            env,
            path: over.path.iter().chain(&self.path).cloned().collect(),
            setup: self.setup.iter().chain(&over.setup).cloned().collect(),
            setup_budget: self.setup_budget.max(over.setup_budget),
        }
    }

    /// The variables to set on a command: `env`, and `PATH` = the `path` folders, then `env`'s
    /// `PATH` or else `inherited_path`.
    pub fn vars(&self, inherited_path: Option<&str>) -> Vec<(String, String)> {
        let mut vars: Vec<(String, String)> = self
            .env
            .iter()
            .filter(|(k, _)| k.as_str() != "PATH")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let base = self
            .env
            .get("PATH")
            .cloned()
            .or_else(|| inherited_path.map(str::to_owned));
        if !self.path.is_empty() || self.env.contains_key("PATH") {
            let mut parts: Vec<String> =
                self.path.iter().map(|p| p.display().to_string()).collect();
            parts.extend(base.filter(|b| !b.is_empty()));
            vars.push(("PATH".into(), parts.join(":")));
        }
        vars
    }

    /// [`Environment::vars`] over this process's `PATH`.
    pub fn process_vars(&self) -> Vec<(String, String)> {
        self.vars(std::env::var("PATH").ok().as_deref())
    }

    /// Runs the setup commands in `cwd`, in order, each within the setup budget, appending
    /// their output to `log` (created; a header line per command).
    ///
    /// Errors: a command that does not exit 0 (exit 3, naming it, how it ended and the tail of
    /// its output); interrupted (exit 130); the log cannot be written (exit 3).
    pub fn run_setup(
        &self,
        cwd: &Path,
        log: &Path,
        env_remove: &[String],
        cancel: &'static AtomicBool,
    ) -> Result<Vec<SetupRun>, Error> {
        use std::io::Write as _;
        let mut runs = Vec::new();
        if self.setup.is_empty() {
            return Ok(runs);
        }
        if let Some(parent) = log.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io_error("create", parent, e))?;
        }
        let mut all = std::fs::File::create(log).map_err(|e| io_error("create", log, e))?;
        let one = log.with_extension("one.log");
        let vars = self.process_vars();
        let runner = ItemCommand {
            cwd,
            env: &vars,
            env_remove,
            budget: self.setup_budget,
            cancel,
        };
        for c in &self.setup {
            let started = Instant::now();
            let f = runner.run(c, &one, "setup command ")?;
            let output = std::fs::read(&one).unwrap_or_default();
            let _ = std::fs::remove_file(&one);
            let ended = f.termination.describe();
            let _ = writeln!(all, "$ {c}");
            let _ = all.write_all(&output);
            let _ = writeln!(all, "[{ended} after {:.1}s]", f.duration.as_secs_f64());
            runs.push(SetupRun {
                command: c.clone(),
                ended: ended.clone(),
                seconds: started.elapsed().as_secs_f64(),
            });
            if matches!(f.termination, process::Termination::Cancelled) {
                return Err(Error::interrupted("replay interrupted"));
            }
            if !f.termination.success() {
                let text = String::from_utf8_lossy(&output);
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                return Err(Error::infra(format!(
                    "setup command `{c}` failed ({ended}; budget {})",
                    humantime::format_duration(self.setup_budget)
                ))
                .details(tail.into_iter().map(crate::redact::redact))
                .hint(format!("its whole output is in `{}`", log.display())));
            }
        }
        Ok(runs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)], path: &[&str], setup: &[&str]) -> Environment {
        Environment {
            env: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            path: path.iter().map(PathBuf::from).collect(),
            setup: setup.iter().map(|s| s.to_string()).collect(),
            setup_budget: DEFAULT_SETUP_BUDGET,
        }
    }

    #[test]
    fn path_folders_come_first_and_variants_layer_over_cases() {
        let case = env(&[("A", "1"), ("B", "case")], &["/case/bin"], &["make"]);
        let variant = env(&[("B", "variant")], &["/variant/bin"], &["pip install x"]);
        let l = case.layered(&variant);
        let vars: BTreeMap<String, String> = l.vars(Some("/usr/bin:/bin")).into_iter().collect();
        assert_eq!(vars["PATH"], "/variant/bin:/case/bin:/usr/bin:/bin");
        assert_eq!(vars["A"], "1");
        assert_eq!(vars["B"], "variant");
        assert_eq!(l.setup, vec!["make", "pip install x"]);
        // An explicit PATH replaces the inherited one; no path and no PATH leave it alone.
        let own = env(&[("PATH", "/only")], &["/x"], &[]);
        let vars: BTreeMap<String, String> = own.vars(Some("/usr/bin")).into_iter().collect();
        assert_eq!(vars["PATH"], "/x:/only");
        assert!(env(&[], &[], &[]).vars(Some("/usr/bin")).is_empty());
    }
}
