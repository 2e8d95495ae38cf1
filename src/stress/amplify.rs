//! Amplification: conditions that make an intermittent failure happen more often, measured
//! rather than assumed. [`explore`] tries each for a slice of the budget and spends the rest on
//! the one with the highest observed failure rate.
//!
//! The rate measured under amplification is the rate *under that condition*; it is what makes a
//! reproduction fast, not an estimate of the rate in CI.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::config::{StressCommand, StressConfig, find_program};
use super::error::StressError;
use super::report::{Progress, StressReport};

/// A pytest plugin that shuffles test order with a seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ShufflePlugin {
    /// pytest-randomly: `-p randomly --randomly-seed=N`.
    Randomly,
    /// pytest-random-order: `--random-order-bucket=global --random-order-seed=N`.
    RandomOrder,
}

impl ShufflePlugin {
    /// The arguments that make pytest shuffle with `seed`.
    pub fn args(self, seed: u64) -> Vec<String> {
        match self {
            ShufflePlugin::Randomly => {
                vec![
                    "-p".into(),
                    "randomly".into(),
                    format!("--randomly-seed={seed}"),
                ]
            }
            ShufflePlugin::RandomOrder => {
                vec![
                    "--random-order-bucket=global".into(),
                    format!("--random-order-seed={seed}"),
                ]
            }
        }
    }

    /// The name used in reports: `randomly` or `random-order`.
    pub fn name(self) -> &'static str {
        match self {
            ShufflePlugin::Randomly => "randomly",
            ShufflePlugin::RandomOrder => "random-order",
        }
    }
}

/// The pytest plugins usable with a command, as found by [`detect_pytest_plugins`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PytestPlugins {
    /// A test-order shuffling plugin (pytest-randomly preferred over pytest-random-order).
    pub shuffle: Option<ShufflePlugin>,
    /// pytest-repeat (`--count K`), for in-process repetition.
    pub repeat: bool,
}

/// Finds the pytest plugins usable with `command`: the command must run pytest (`pytest ...`,
/// `py.test ...`, `python -m pytest ...`, or a shell string mentioning pytest), and the Python
/// that runs it (the interpreter named in the command, or the `#!` line of the `pytest` script,
/// else `python3`) must find `pytest_randomly` / `random_order` / `pytest_repeat`. Runs that
/// Python once (a few hundred ms); anything that goes wrong means "no plugin".
pub fn detect_pytest_plugins(command: &StressCommand, cwd: &Path) -> PytestPlugins {
    let Some(python) = pytest_python(command, cwd) else {
        return PytestPlugins::default();
    };
    let script = "import importlib.util as u\n\
                  for m in ('pytest_randomly', 'random_order', 'pytest_repeat'):\n    \
                  print(m if u.find_spec(m) else '')";
    let found = Command::new(&python)
        .args(["-c", script])
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let has = |m: &str| found.lines().any(|l| l.trim() == m);
    PytestPlugins {
        shuffle: if has("pytest_randomly") {
            Some(ShufflePlugin::Randomly)
        } else if has("random_order") {
            Some(ShufflePlugin::RandomOrder)
        } else {
            None
        },
        repeat: has("pytest_repeat"),
    }
}

/// The Python interpreter that runs pytest in `command`, or `None` when it does not run pytest.
fn pytest_python(command: &StressCommand, cwd: &Path) -> Option<String> {
    match command {
        StressCommand::Argv(v) => {
            let first = v.first()?.rsplit('/').next()?;
            if first == "pytest" || first == "py.test" {
                let shebang = find_program(&v[0], cwd)
                    .and_then(|p| std::fs::read_to_string(p).ok())
                    .and_then(|s| {
                        let line = s.lines().next()?.strip_prefix("#!")?.trim().to_string();
                        // `#!/usr/bin/env python3` or `#!/path/to/python`
                        let mut words = line.split_whitespace();
                        let w = words.next()?;
                        Some(if w.ends_with("/env") {
                            words.next()?.to_string()
                        } else {
                            w.to_string()
                        })
                    });
                Some(shebang.unwrap_or_else(|| "python3".into()))
            } else if first.starts_with("python")
                && v.windows(2).any(|w| w[0] == "-m" && w[1] == "pytest")
            {
                Some(v[0].clone())
            } else {
                None
            }
        }
        StressCommand::Shell(s) => {
            (s.contains("pytest") || s.contains("py.test")).then(|| "python3".to_string())
        }
        StressCommand::Runner(r) => (r.runner == crate::runners::command::Runner::Pytest)
            .then(|| {
            r.program
                .first()
                .filter(|p| p.rsplit('/').next().is_some_and(|n| n.starts_with("python")))
                .cloned()
                .unwrap_or_else(|| "python3".into())
        }),
    }
}

/// CPU stressor processes (busy shell loops, each its own process group), killed on drop.
pub(crate) struct CpuStressors(Vec<Child>);

impl CpuStressors {
    pub(crate) fn start(n: usize, cwd: &Path) -> Result<Self, StressError> {
        let mut me = Self(Vec::with_capacity(n));
        for _ in 0..n {
            let child = Command::new("sh")
                .args(["-c", "while :; do :; done"])
                .current_dir(cwd)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .map_err(|source| {
                    StressError::Spawn(crate::process::SpawnError::Spawn {
                        program: "sh".into(),
                        source,
                    })
                })?;
            me.0.push(child);
        }
        Ok(me)
    }
}

impl Drop for CpuStressors {
    fn drop(&mut self) {
        for c in &mut self.0 {
            crate::process::kill_group(c.id(), libc::SIGKILL);
            let _ = c.wait();
        }
    }
}

/// One amplification condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Amplification {
    /// The configuration as given.
    Plain,
    /// More parallel copies of the command than CPUs.
    Parallel {
        /// Runs at a time.
        jobs: usize,
    },
    /// Busy-loop processes competing for the CPUs.
    CpuStress {
        /// Stressor processes.
        processes: usize,
    },
    /// Each run repeats the test `count` times in-process (pytest-repeat `--count`) and stops
    /// at the first failure (`-x`).
    Repeat {
        /// Repetitions per run.
        count: u32,
    },
    /// Shuffled test order, seed `base_seed + run index` (logged per failing run).
    Shuffle {
        /// The plugin used.
        plugin: ShufflePlugin,
        /// Seed of run 0.
        base_seed: u64,
    },
}

impl Amplification {
    /// A short name: `plain`, `parallel-x8`, `cpu-stress-x2`, `shuffle-randomly`.
    pub fn name(&self) -> String {
        match self {
            Amplification::Plain => "plain".into(),
            Amplification::Parallel { jobs } => format!("parallel-x{jobs}"),
            Amplification::CpuStress { processes } => format!("cpu-stress-x{processes}"),
            Amplification::Repeat { count } => format!("repeat-x{count}"),
            Amplification::Shuffle { plugin, .. } => format!("shuffle-{}", plugin.name()),
        }
    }

    /// `base` with this amplification applied.
    pub fn apply(&self, base: &StressConfig) -> StressConfig {
        let mut c = base.clone();
        match *self {
            Amplification::Plain => {}
            Amplification::Parallel { jobs } => c.jobs = jobs,
            Amplification::CpuStress { processes } => c.cpu_stressors = processes,
            Amplification::Repeat { count } => c.repeat = Some(count),
            Amplification::Shuffle { plugin, base_seed } => c.shuffle = Some((plugin, base_seed)),
        }
        c
    }
}

/// One measured amplification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExploreTrial {
    /// The condition.
    pub amplification: Amplification,
    /// Its short name.
    pub name: String,
    /// What the slice found.
    pub report: StressReport,
}

/// The result of [`explore`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExploreReport {
    /// The measured slices, in the order tried.
    pub trials: Vec<ExploreTrial>,
    /// The condition chosen for the rest of the budget.
    pub chosen: Amplification,
    /// Its short name.
    pub chosen_name: String,
    /// Its failure rate (per run) in its trial slice.
    pub chosen_trial_rate: f64,
    /// What "best" meant: `failures-per-run` or `failures-per-second`.
    pub ranked_by: String,
    /// The run on the chosen condition, with the rest of the budget.
    pub main: StressReport,
}

/// Repetitions per run of the in-process repeat candidate.
const EXPLORE_REPEAT: u32 = 10;

/// Share of the budget spent measuring the candidates (split equally among them).
const EXPLORE_SHARE: f64 = 0.4;

/// Tries each amplification candidate for an equal slice of 40% of the budget, then runs the
/// best for the rest. The budget is `base.duration` and/or `base.runs`; each slice gets its
/// share of both. "Best" is the highest failure rate per run when the budget is a run count,
/// and the most failures per second when it includes a duration (so that a candidate whose
/// runs are longer does not win by taking longer); ties go to the earlier candidate, so plain
/// wins when nothing fails. `base.until_failures` applies to the final phase only.
/// Candidates, in order: plain; twice as many parallel copies as `base.jobs`; one CPU stressor
/// per CPU; in-process repetition (10 per run) when pytest-repeat is installed; shuffled order
/// when a shuffle plugin is ([`detect_pytest_plugins`]; seed from the clock, logged per failing
/// run). Slices keep their outputs under `base.keep_dir/explore/<name>/`.
///
/// `progress` receives the phase name (`explore:<name>` or `main:<name>`) with the counts.
/// Errors: as [`super::run`]; a cancel during a slice skips to the end (the main phase then
/// reports [`super::StopReason::Interrupted`] with no runs).
pub fn explore(
    base: &StressConfig,
    cancel: Option<&AtomicBool>,
    progress: &mut dyn FnMut(&str, &Progress),
) -> Result<ExploreReport, StressError> {
    base.validate()?;
    let start = Instant::now();
    let mut candidates = vec![
        Amplification::Plain,
        Amplification::Parallel {
            jobs: base.jobs.saturating_mul(2).max(2),
        },
        Amplification::CpuStress {
            processes: super::config::default_jobs(),
        },
    ];
    let plugins = detect_pytest_plugins(&base.command, &base.cwd);
    if plugins.repeat && base.repeat.is_none() {
        candidates.push(Amplification::Repeat {
            count: EXPLORE_REPEAT,
        });
    }
    if let Some(plugin) = plugins.shuffle {
        let base_seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() % 1_000_000)
            .unwrap_or(0);
        candidates.push(Amplification::Shuffle { plugin, base_seed });
    }
    let k = candidates.len() as f64;
    let slice_runs = base
        .runs
        .map(|n| ((n as f64 * EXPLORE_SHARE / k).floor() as u64).max(1));
    let slice_duration = base.duration.map(|d| d.mul_f64(EXPLORE_SHARE / k));

    let mut trials = Vec::new();
    for amp in candidates {
        let name = amp.name();
        let mut c = amp.apply(base);
        c.runs = slice_runs;
        c.duration = slice_duration;
        c.until_failures = None;
        c.keep_dir = base.keep_dir.join("explore").join(&name);
        let label = format!("explore:{name}");
        let report = super::run(&c, cancel, &mut |p| progress(&label, p))?;
        trials.push(ExploreTrial {
            amplification: amp,
            name,
            report,
        });
    }
    // With a run budget, the rest is spent in runs: the best has the highest failures per run.
    // With a duration, it is spent in seconds: the best has the most failures per second.
    let per_second = base.duration.is_some();
    let score = |r: &StressReport| {
        if per_second {
            if r.wall_s > 0.0 {
                r.failures as f64 / r.wall_s
            } else {
                0.0
            }
        } else {
            r.failure_rate
        }
    };
    let best = trials
        .iter()
        .enumerate()
        .max_by(|(i, a), (j, b)| score(&a.report).total_cmp(&score(&b.report)).then(j.cmp(i)))
        .map(|(i, _)| i)
        .unwrap_or(0);
    let chosen = trials[best].amplification;
    let mut c = chosen.apply(base);
    let used_runs: u64 = trials.iter().map(|t| t.report.runs).sum();
    c.runs = base.runs.map(|n| n.saturating_sub(used_runs).max(1));
    c.duration = base.duration.map(|d| {
        d.saturating_sub(start.elapsed())
            .max(Duration::from_millis(1))
    });
    let label = format!("main:{}", chosen.name());
    let main = super::run(&c, cancel, &mut |p| progress(&label, p))?;
    Ok(ExploreReport {
        chosen_name: chosen.name(),
        chosen_trial_rate: trials[best].report.failure_rate,
        ranked_by: if per_second {
            "failures-per-second"
        } else {
            "failures-per-run"
        }
        .into(),
        chosen,
        trials,
        main,
    })
}
