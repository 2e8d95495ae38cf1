//! `fixci stress`: run a command many times in parallel and estimate its failure rate.
//! A thin layer over [`crate::stress`]: arguments, progress bar, Ctrl-C, rendering.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::error::{Error, Result};
use crate::exit_codes;
use crate::stress::{
    self, ExploreReport, FailureMatch, Progress, StopReason, StressCommand, StressConfig,
    StressReport,
};

/// Run a command repeatedly in parallel; report the failure rate with its interval.
///
/// Each run is its own process group with a per-run timeout. Stops at `--runs` runs,
/// `--duration` elapsed, or `--until-failures` failures, whichever comes first (100 runs when
/// neither `--runs` nor `--duration` is given). The output of every failing run and of a few
/// passing runs is kept under `--keep-dir`. A single command argument containing spaces is run
/// with `sh -c`.
///
/// Exit code: 0 when no run failed, 1 when at least one (matching) run failed, 2 for bad
/// arguments or a command that does not exist, 3 when runs cannot be started, 130 when
/// interrupted (the report so far is still printed).
#[derive(Debug, clap::Args)]
pub struct StressArgs {
    /// Stop after this many runs [default: 100 unless `--duration` is given].
    #[arg(long, short = 'n', value_name = "N")]
    pub runs: Option<u64>,
    /// Runs at a time [default: the number of CPUs].
    #[arg(long, short = 'j', value_name = "J")]
    pub jobs: Option<usize>,
    /// Stop after this much wall time, e.g. `90s`, `5m`.
    #[arg(long, value_name = "D", value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Stop once this many (matching) failures were seen.
    #[arg(long, value_name = "K")]
    pub until_failures: Option<u64>,
    /// Per-run timeout; a run that outlives it is killed and counts as a failure.
    #[arg(long, value_name = "T", default_value = "10m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Count a failure only when its output has this failure signature (as printed by
    /// `fixci logs` for the CI failure, or under `signatures` here).
    #[arg(long, value_name = "SIG", conflicts_with = "match_text")]
    pub match_signature: Option<String>,
    /// Count a failure only when its output contains this text.
    #[arg(long, value_name = "TEXT")]
    pub match_text: Option<String>,
    /// Confidence level of the interval.
    #[arg(long, default_value_t = 0.95)]
    pub confidence: f64,
    /// Where to keep outputs [default: `outputs/<date>_<time>_stress` under the current
    /// directory].
    #[arg(long, value_name = "DIR")]
    pub keep_dir: Option<PathBuf>,
    /// How many passing runs' outputs to keep.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub keep_passing: u64,
    /// Run this many CPU stressor processes alongside (amplification).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub cpu_stressors: usize,
    /// Shuffle test order with a logged seed per run (pytest with pytest-randomly or
    /// pytest-random-order installed).
    #[arg(long)]
    pub shuffle: bool,
    /// Repeat the test K times inside each run and stop at its first failure (pytest with
    /// pytest-repeat installed: appends `--count=K -x`); the report adds the rate of one
    /// repetition.
    #[arg(long, value_name = "K")]
    pub repeat: Option<u32>,
    /// Measure each amplification (parallel copies, CPU stressors, in-process repetition,
    /// shuffled order) on a slice of the budget, then spend the rest on the best one.
    #[arg(long, conflicts_with_all = ["shuffle", "cpu_stressors", "repeat"])]
    pub explore: bool,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// The command to run, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Runs `fixci stress`; returns the exit code (see [`StressArgs`]).
pub fn execute(args: StressArgs) -> Result<u8> {
    let cwd = std::env::current_dir()
        .map_err(|e| Error::infra("cannot read the current directory").source(e))?;
    let command = parse_command(&args.command, &cwd);
    let mut config = StressConfig::new(command, cwd.clone(), PathBuf::new());
    if let Some(j) = args.jobs {
        config.jobs = j;
    }
    config.runs = match (args.runs, args.duration) {
        (None, None) => Some(100),
        (r, _) => r,
    };
    config.duration = args.duration;
    config.until_failures = args.until_failures;
    config.per_run_timeout = args.timeout;
    config.confidence = args.confidence;
    config.keep_passing = args.keep_passing;
    config.cpu_stressors = args.cpu_stressors;
    config.failure_match = match (args.match_signature, args.match_text) {
        (Some(s), _) => Some(FailureMatch::Signature(s)),
        (None, Some(t)) => Some(FailureMatch::Text(t)),
        (None, None) => None,
    };
    // Validate before creating any directory, so a usage error writes nothing.
    config.repeat = args.repeat;
    config.validate()?;
    if args.shuffle || args.repeat.is_some() {
        let plugins = stress::detect_pytest_plugins(&config.command, &cwd);
        if args.shuffle {
            let plugin = plugins.shuffle.ok_or_else(|| {
                Error::usage(
                    "`--shuffle` needs a pytest command with pytest-randomly or \
                     pytest-random-order installed",
                )
                .hint("`pip install pytest-randomly`, or drop `--shuffle`")
            })?;
            config.shuffle = Some((plugin, seed_from_clock()));
        }
        if args.repeat.is_some() && !plugins.repeat {
            return Err(Error::usage(
                "`--repeat` needs a pytest command with pytest-repeat installed",
            )
            .hint("`pip install pytest-repeat`, or drop `--repeat`"));
        }
    }
    config.keep_dir = match args.keep_dir {
        Some(d) => d,
        None => default_keep_dir(&cwd)?,
    };

    install_signal_handlers();
    // With --explore the phases have different run counts: a spinner, not one bar.
    let bar = progress_bar(if args.explore { None } else { config.runs });
    let result = if args.explore {
        let mut cb = |phase: &str, p: &Progress| update(&bar, Some(phase), p);
        stress::explore(&config, Some(&INTERRUPTED), &mut cb).map(Outcome::Explore)
    } else {
        let mut cb = |p: &Progress| update(&bar, None, p);
        stress::run(&config, Some(&INTERRUPTED), &mut cb).map(Outcome::Plain)
    };
    bar.finish_and_clear();
    let outcome = result?;
    let main = outcome.main();
    if args.json {
        let mut v = serde_json::to_value(main).expect("report serialises");
        if let Outcome::Explore(e) = &outcome {
            v["explore"] = explore_json(e);
        }
        outln!("{}", serde_json::to_string_pretty(&v).expect("json"));
    } else {
        if let Outcome::Explore(e) = &outcome {
            out!("{}", render_explore(e));
        }
        out!("{}", render(main));
    }
    Ok(if main.stop_reason == StopReason::Interrupted {
        exit_codes::INTERRUPTED
    } else if main.failures > 0 {
        exit_codes::NO_FIX
    } else {
        exit_codes::SUCCESS
    })
}

enum Outcome {
    Plain(StressReport),
    Explore(ExploreReport),
}

impl Outcome {
    fn main(&self) -> &StressReport {
        match self {
            Outcome::Plain(r) => r,
            Outcome::Explore(e) => &e.main,
        }
    }
}

/// One argument with whitespace that is not a file is a shell script; otherwise argv.
fn parse_command(words: &[String], cwd: &Path) -> StressCommand {
    match words {
        [one] if one.contains(char::is_whitespace) && !cwd.join(one).exists() => {
            StressCommand::Shell(one.clone())
        }
        _ => StressCommand::Argv(words.to_vec()),
    }
}

fn seed_from_clock() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() % 1_000_000)
        .unwrap_or(0)
}

/// `outputs/<YYYY-MM-DD_HH-MM-SS>_stress` (with `-2`, `-3`... when taken), as DESIGN.md's run
/// directories.
fn default_keep_dir(cwd: &Path) -> Result<PathBuf> {
    let outputs = cwd.join("outputs");
    std::fs::create_dir_all(&outputs).map_err(|e| crate::error::io_error("create", &outputs, e))?;
    let stamp = chrono::Local::now().format("%Y-%m-%d_%H-%M-%S");
    for i in 1u32.. {
        let name = if i == 1 {
            format!("{stamp}_stress")
        } else {
            format!("{stamp}_stress-{i}")
        };
        let dir = outputs.join(name);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(crate::error::io_error("create", &dir, e)),
        }
    }
    unreachable!("u32 range exhausted")
}

fn install_signal_handlers() {
    INTERRUPTED.store(false, Ordering::SeqCst);
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

/// A bar on stderr when it is a terminal; hidden otherwise.
fn progress_bar(runs: Option<u64>) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match runs {
        Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr()).with_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} [{elapsed}]")
                .expect("template")
                .progress_chars("=> "),
        ),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(
            ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").expect("template"),
        ),
    };
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn update(bar: &ProgressBar, phase: Option<&str>, p: &Progress) {
    bar.set_position(p.runs);
    let mut msg = format!(
        "{} runs, {} failures ({:.1}%)",
        p.runs,
        p.failures,
        pct(p.failures, p.runs)
    );
    if p.unmatched_failures > 0 {
        msg.push_str(&format!(", {} not matching", p.unmatched_failures));
    }
    if let Some(phase) = phase {
        msg = format!("{phase}: {msg}");
    }
    bar.set_message(msg);
}

fn pct(k: u64, n: u64) -> f64 {
    if n == 0 {
        0.0
    } else {
        100.0 * k as f64 / n as f64
    }
}

fn explore_json(e: &ExploreReport) -> serde_json::Value {
    serde_json::json!({
        "chosen": e.chosen_name,
        "chosen_amplification": e.chosen,
        "chosen_trial_rate": e.chosen_trial_rate,
        "ranked_by": e.ranked_by,
        "trials": e.trials.iter().map(|t| serde_json::json!({
            "name": t.name,
            "amplification": t.amplification,
            "runs": t.report.runs,
            "failures": t.report.failures,
            "failure_rate": t.report.failure_rate,
            "interval": t.report.interval,
            "runs_per_s": t.report.runs_per_s,
        })).collect::<Vec<_>>(),
    })
}

fn render_explore(e: &ExploreReport) -> String {
    let mut s = String::from("explore:\n");
    for t in &e.trials {
        let r = &t.report;
        s.push_str(&format!(
            "  {:<24} {:>6} runs {:>5} failures ({:.1}%)  {:.1} runs/s\n",
            t.name,
            r.runs,
            r.failures,
            100.0 * r.failure_rate,
            r.runs_per_s
        ));
    }
    s.push_str(&format!(
        "chosen: {} ({:.1}% of runs failed in its slice; ranked by {})\n\n",
        e.chosen_name,
        100.0 * e.chosen_trial_rate,
        e.ranked_by
    ));
    s
}

fn render(r: &StressReport) -> String {
    let stop = match r.stop_reason {
        StopReason::Runs => "runs",
        StopReason::Duration => "duration",
        StopReason::UntilFailures => "until-failures",
        StopReason::Interrupted => "interrupted",
    };
    let conf = 100.0 * r.confidence;
    let mut s = format!("runs:          {} (stopped: {stop})\n", r.runs);
    s.push_str(&format!(
        "failures:      {} ({:.2}%)",
        r.failures,
        100.0 * r.failure_rate
    ));
    if r.unmatched_failures > 0 {
        s.push_str(&format!(", plus {} not matching", r.unmatched_failures));
    }
    s.push('\n');
    s.push_str(&format!(
        "{conf}% interval: [{:.2}%, {:.2}%] (Clopper-Pearson)\n",
        100.0 * r.interval.0,
        100.0 * r.interval.1
    ));
    if r.failures == 0 && r.runs > 0 {
        let ub = crate::stats::upper_bound_after_zero_failures(r.runs, r.confidence);
        s.push_str(&format!(
            "no failure:    rate < {:.2}% at {conf}% confidence (one-sided)\n",
            100.0 * ub
        ));
    }
    if let Some(rep) = &r.per_repetition {
        s.push_str(&format!(
            "per repetition: {:.2}% [{:.2}%, {:.2}%] ({} repetitions per run)\n",
            100.0 * rep.failure_rate,
            100.0 * rep.interval.0,
            100.0 * rep.interval.1,
            r.repetitions_per_run
        ));
    }
    if let Some(n) = r.runs_to_verify {
        let each = if r.repetitions_per_run > 1 {
            format!(" of {} repetitions", r.repetitions_per_run)
        } else {
            String::new()
        };
        s.push_str(&format!(
            "to verify a fix: {n} clean runs{each} (a non-fix at this rate passes 5 runs with \
             probability {:.0}%)\n",
            100.0 * r.five_runs_pass_probability
        ));
    }
    if let Some(t) = r.time_to_first_failure_s {
        s.push_str(&format!("first failure: {t:.2} s\n"));
    }
    s.push_str(&format!(
        "throughput:    {:.1} runs/s over {:.1} s, {} jobs\n",
        r.runs_per_s, r.wall_s, r.jobs
    ));
    if !r.signatures.is_empty() {
        s.push_str("signatures:\n");
        let mut sigs: Vec<_> = r.signatures.iter().collect();
        sigs.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (sig, n) in sigs {
            s.push_str(&format!("  {n:>7}  {sig}\n"));
        }
    }
    let seeds: Vec<String> = r
        .failing_runs
        .iter()
        .filter(|f| f.counted)
        .filter_map(|f| f.seed)
        .take(5)
        .map(|x| x.to_string())
        .collect();
    if !seeds.is_empty() {
        s.push_str(&format!("failing seeds: {}\n", seeds.join(", ")));
    }
    s.push_str(&format!(
        "outputs:       {} ({} failing, {} passing samples)\n",
        r.keep_dir.join("runs").display(),
        r.failing_runs.len(),
        r.passing_samples.len()
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stress::ShufflePlugin;

    #[test]
    fn one_word_with_spaces_is_a_shell_script() {
        let d = std::env::temp_dir();
        assert_eq!(
            parse_command(&["exit 1".into()], &d),
            StressCommand::Shell("exit 1".into())
        );
        assert_eq!(
            parse_command(&["sh".into(), "-c".into(), "exit 1".into()], &d),
            StressCommand::Argv(vec!["sh".into(), "-c".into(), "exit 1".into()])
        );
    }

    #[test]
    fn shuffle_plugin_args_carry_the_seed() {
        assert!(
            ShufflePlugin::Randomly
                .args(42)
                .contains(&"--randomly-seed=42".to_string())
        );
        assert!(
            ShufflePlugin::RandomOrder
                .args(7)
                .contains(&"--random-order-seed=7".to_string())
        );
    }
}
