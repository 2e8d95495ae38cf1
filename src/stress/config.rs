//! What to stress and when to stop.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::amplify::ShufflePlugin;
use super::error::StressError;

/// The command each run executes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StressCommand {
    /// Program and arguments, not shell-interpreted. The program is looked up on `PATH`.
    Argv(Vec<String>),
    /// A script run with `sh -c`.
    Shell(String),
    /// A test runner fixci builds ([`crate::runners::command::RunnerCommand::invocation`]):
    /// each run writes its report into its own folder `run-NNNNNN` under
    /// [`StressConfig::scratch`], and the report (not only the exit code) decides whether the
    /// run passed ([`StressConfig::wanted`]).
    Runner(crate::runners::command::RunnerCommand),
}

/// One run's command, ready to spawn, and where its report is.
pub(crate) struct RunSpec {
    /// The process to start.
    pub spec: crate::process::CommandSpec,
    /// The shuffle seed, when shuffling.
    pub seed: Option<u64>,
    /// The report of a [`StressCommand::Runner`] run.
    pub report: Option<crate::runners::command::ReportAt>,
}

impl StressCommand {
    /// The command as one display string.
    pub fn display(&self) -> String {
        match self {
            StressCommand::Argv(v) => v
                .iter()
                .map(|a| crate::process::shell_quote(a))
                .collect::<Vec<_>>()
                .join(" "),
            StressCommand::Shell(s) => s.clone(),
            StressCommand::Runner(r) => r.display(),
        }
    }

    /// The command of run number `index` (0-based): with `repeat`, pytest-repeat's
    /// `--count=K -x` is appended; with a shuffle plugin, its seed argument
    /// (`base_seed + index`) is appended, and the seed is returned. A runner's report folder is
    /// `scratch/run-NNNNNN` (created).
    ///
    /// Errors: the report folder or the runner's helper cannot be written.
    pub(crate) fn for_run(
        &self,
        cwd: &Path,
        scratch: &Path,
        shuffle: Option<(ShufflePlugin, u64)>,
        repeat: Option<u32>,
        index: u64,
    ) -> std::io::Result<RunSpec> {
        let seed = shuffle.map(|(p, base)| (p, base.wrapping_add(index)));
        let mut extra: Vec<String> = Vec::new();
        if let Some(k) = repeat {
            extra.extend([format!("--count={k}"), "-x".to_string()]);
        }
        extra.extend(seed.map(|(p, s)| p.args(s)).unwrap_or_default());
        let mut report = None;
        let spec = match self {
            StressCommand::Argv(v) => crate::process::CommandSpec {
                program: v[0].clone(),
                args: v[1..].iter().cloned().chain(extra).collect(),
                cwd: cwd.to_path_buf(),
                env: Vec::new(),
                env_remove: Vec::new(),
                stdin: None,
            },
            StressCommand::Shell(s) => {
                let mut script = s.clone();
                for a in &extra {
                    script.push(' ');
                    script.push_str(&crate::process::shell_quote(a));
                }
                crate::process::CommandSpec::shell(&script, cwd)
            }
            StressCommand::Runner(r) => {
                let dir = scratch.join(format!("run-{index:06}"));
                std::fs::create_dir_all(&dir)?;
                let inv = r.invocation(cwd, &dir)?;
                report = Some(inv.report);
                crate::process::CommandSpec {
                    program: inv.argv[0].clone(),
                    args: inv.argv[1..].iter().cloned().chain(extra).collect(),
                    cwd: cwd.to_path_buf(),
                    env: inv.env,
                    env_remove: Vec::new(),
                    stdin: None,
                }
            }
        };
        Ok(RunSpec {
            spec,
            seed: seed.map(|(_, s)| s),
            report,
        })
    }
}

/// Which failing runs count as reproductions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureMatch {
    /// Only failures whose output has this signature
    /// ([`crate::logs::signature_matches`]), e.g. the signature of the CI failure.
    Signature(String),
    /// Only failures whose output contains this literal text.
    Text(String),
    /// Only failures that confirm a reproduction
    /// ([`crate::judge::reproduction::counts_as_reproduction`]): not an import, collection or
    /// environment error, and of the CI failure's kind `ci_kind` when known; with `signature`,
    /// also with that signature.
    Reproduction {
        /// The CI failure signature the output must show, if any.
        signature: Option<String>,
        /// The CI failure's kind, if the log shows one.
        ci_kind: Option<crate::judge::FailureKind>,
    },
}

impl FailureMatch {
    /// True when a failing run's output counts.
    pub fn matches(&self, output: &[u8]) -> bool {
        match self {
            FailureMatch::Signature(sig) => crate::logs::signature_matches(sig, output),
            FailureMatch::Text(t) => memchr::memmem::find(output, t.as_bytes()).is_some(),
            FailureMatch::Reproduction { signature, ci_kind } => {
                signature
                    .as_ref()
                    .is_none_or(|sig| crate::logs::signature_matches(sig, output))
                    && crate::judge::reproduction::counts_as_reproduction(output, ci_kind.as_ref())
            }
        }
    }
}

/// Everything [`super::run`] needs. Durations are wall-clock.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StressConfig {
    /// The command of every run.
    pub command: StressCommand,
    /// Working directory of every run.
    pub cwd: PathBuf,
    /// Environment variables removed for the runs (e.g. forge tokens).
    pub env_remove: Vec<String>,
    /// The sandbox every run starts in (see [`crate::process::sandbox::TestJail`]); `None`: no
    /// sandbox. Not serialized: it is the run's, not the configuration's.
    #[serde(skip)]
    pub jail: Option<crate::process::sandbox::TestJail>,
    /// Variables set for the runs.
    pub env: Vec<(String, String)>,
    /// Runs at a time (>= 1).
    pub jobs: usize,
    /// Stop after this many completed runs.
    pub runs: Option<u64>,
    /// Stop after this much wall time; runs still going then are stopped and not counted.
    pub duration: Option<Duration>,
    /// Stop once this many counted failures were seen; runs still going then are stopped and
    /// not counted (so the report may hold a few more failures if runs end together).
    pub until_failures: Option<u64>,
    /// Budget of one run; a run that outlives it is killed with its process group and counts
    /// as a failure with signature `(timeout)`.
    pub per_run_timeout: Duration,
    /// Grace between SIGTERM and SIGKILL for a run that is stopped.
    pub grace: Duration,
    /// When set, only matching failures count as failures; the others are reported apart.
    /// With a [`StressCommand::Runner`], a failing run whose report shows no failed test (a
    /// missing report, "no tests ran") does not match either.
    pub failure_match: Option<FailureMatch>,
    /// For a [`StressCommand::Runner`]: the test ids that must be in the report and pass for a
    /// run to pass (empty: at least one test ran and every test passed); see
    /// [`crate::verify::passes`]. Ignored for other commands (the exit code decides).
    #[serde(default)]
    pub wanted: Vec<String>,
    /// For a [`StressCommand::Runner`]: the folder that receives each run's report folder
    /// (`None`: `keep_dir/reports`).
    #[serde(default)]
    pub scratch: Option<PathBuf>,
    /// Directory that receives `runs/run-NNNNNN.log` of every failing run and of a sample of
    /// passing runs, and `stress.json`. Created if missing.
    pub keep_dir: PathBuf,
    /// How many passing runs' outputs to keep (the first ones to finish).
    pub keep_passing: u64,
    /// Confidence level of the reported interval, e.g. 0.95.
    pub confidence: f64,
    /// A test-order shuffling plugin and its base seed: run `i` gets seed `base + i`.
    pub shuffle: Option<(ShufflePlugin, u64)>,
    /// Number of CPU stressor processes (busy loops) kept running during the runs.
    pub cpu_stressors: usize,
    /// Repetitions of the test inside each run (pytest-repeat `--count=K -x`): a run fails
    /// when any repetition fails, and the report adds the per-repetition rate.
    pub repeat: Option<u32>,
}

impl StressConfig {
    /// A configuration with defaults: one job per CPU, 100 runs, 10-minute run timeout, 2 s
    /// grace, 3 kept passing outputs, 95% confidence, no amplification.
    pub fn new(command: StressCommand, cwd: PathBuf, keep_dir: PathBuf) -> Self {
        Self {
            command,
            cwd,
            env_remove: Vec::new(),
            jail: None,
            env: Vec::new(),
            jobs: default_jobs(),
            runs: Some(100),
            duration: None,
            until_failures: None,
            per_run_timeout: Duration::from_secs(600),
            grace: Duration::from_secs(2),
            failure_match: None,
            wanted: Vec::new(),
            scratch: None,
            keep_dir,
            keep_passing: 3,
            confidence: 0.95,
            shuffle: None,
            cpu_stressors: 0,
            repeat: None,
        }
    }

    /// Checks the values and that the program exists.
    ///
    /// Errors: [`StressError::Config`] for zero jobs or runs, no stop condition, an empty
    /// command, a confidence outside (0, 1); [`StressError::NotFound`] when an
    /// [`StressCommand::Argv`] program is not on `PATH` (or not executable).
    pub fn validate(&self) -> Result<(), StressError> {
        let bad = |m: &str| Err(StressError::Config(m.to_string()));
        if self.jobs == 0 {
            return bad("`--jobs` must be at least 1");
        }
        if self.runs == Some(0) {
            return bad("`--runs` must be at least 1");
        }
        if self.until_failures == Some(0) {
            return bad("`--until-failures` must be at least 1");
        }
        if self.duration.is_some_and(|d| d.is_zero()) {
            return bad("`--duration` must be more than 0s");
        }
        if self.repeat == Some(0) {
            return bad("`--repeat` must be at least 1");
        }
        if self.per_run_timeout.is_zero() {
            return bad("the per-run timeout must be more than 0s");
        }
        if self.runs.is_none() && self.duration.is_none() {
            return bad("no bound on the number of runs: give `--runs` or `--duration`");
        }
        if !(self.confidence > 0.0 && self.confidence < 1.0) {
            return bad("`--confidence` must be strictly between 0 and 1 (e.g. `0.95`)");
        }
        match &self.command {
            StressCommand::Argv(v) if v.is_empty() || v[0].is_empty() => bad("empty command"),
            StressCommand::Shell(s) if s.trim().is_empty() => bad("empty command"),
            StressCommand::Argv(v) => {
                if find_program(&v[0], &self.cwd).is_none() {
                    return Err(StressError::NotFound {
                        program: v[0].clone(),
                    });
                }
                Ok(())
            }
            StressCommand::Shell(_) | StressCommand::Runner(_) => Ok(()),
        }
    }
}

/// The number of CPUs available to this process (at least 1).
pub fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Resolves `program` as `Command` would: a name with a `/` is a path (relative to `cwd`),
/// otherwise it is looked up on `PATH`. Returns the path of an executable file.
pub(crate) fn find_program(program: &str, cwd: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let p = cwd.join(program);
        return executable(&p).then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| executable(p))
}
