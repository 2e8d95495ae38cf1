//! The parallel runner behind [`run`].

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use super::amplify::CpuStressors;
use super::config::StressConfig;
use super::error::StressError;
use super::report::{Progress, RepetitionEstimate, RunRecord, StopReason, StressReport};
use crate::process::{self, Limits, OutputTo, Termination};

/// At most this much of a failing run's output (its end) is read for signature matching.
const MAX_SIGNATURE_BYTES: u64 = 8 * 1024 * 1024;

/// How often the progress callback may be called, at most.
const PROGRESS_EVERY: Duration = Duration::from_millis(50);

/// Runs `config.command` repeatedly, `config.jobs` at a time, until `config.runs` runs have
/// completed, `config.duration` has passed, `config.until_failures` counted failures were seen,
/// or `cancel` is raised (polled every 50 ms; the report then says
/// [`StopReason::Interrupted`]). Each run is its own process group, stopped with the whole group
/// after `config.per_run_timeout`. Runs still going when the stress run stops are killed and not
/// counted.
///
/// `progress` is called from the calling thread, at most every 50 ms and once at the end.
/// Outputs go to `config.keep_dir/runs/run-NNNNNN.log` (failing runs, and the first
/// `config.keep_passing` passing runs; the other passing outputs are deleted) and the report to
/// `config.keep_dir/stress.json`.
///
/// Errors: [`StressError::Config`] / [`StressError::NotFound`] from
/// [`StressConfig::validate`], or `Config` when `keep_dir/runs` is not empty;
/// [`StressError::Io`] when `keep_dir` cannot be written; [`StressError::Spawn`] when a run
/// cannot be started (everything started is stopped first).
pub fn run(
    config: &StressConfig,
    cancel: Option<&AtomicBool>,
    progress: &mut dyn FnMut(&Progress),
) -> Result<StressReport, StressError> {
    config.validate()?;
    let runs_dir = config.keep_dir.join("runs");
    std::fs::create_dir_all(&runs_dir).map_err(|source| StressError::Io {
        path: runs_dir.clone(),
        source,
    })?;
    // Old outputs would mix with this run's and could be mistaken for its failures; fixci does
    // not delete what it did not write in this run, so it refuses instead.
    let occupied = std::fs::read_dir(&runs_dir)
        .map_err(|source| StressError::Io {
            path: runs_dir.clone(),
            source,
        })?
        .next()
        .is_some();
    if occupied {
        return Err(StressError::Config(format!(
            "`{}` already holds the outputs of an earlier stress run; choose another keep directory",
            runs_dir.display()
        )));
    }
    let stressors = CpuStressors::start(config.cpu_stressors, &config.cwd)?;

    let shared = Shared {
        config,
        runs_dir: &runs_dir,
        start: Instant::now(),
        stop: AtomicBool::new(false),
        reason: OnceLock::new(),
        next: AtomicU64::new(0),
        in_flight: AtomicU64::new(0),
        tally: Mutex::new(Tally::default()),
        spawn_error: Mutex::new(None),
    };
    let (tx, rx) = mpsc::channel::<()>();
    std::thread::scope(|s| {
        for _ in 0..config.jobs {
            let tx = tx.clone();
            let shared = &shared;
            s.spawn(move || shared.worker(&tx));
        }
        drop(tx);
        shared.monitor(&rx, cancel, progress);
    });
    drop(stressors);

    let wall = shared.start.elapsed();
    if let Some(e) = shared
        .spawn_error
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
    {
        return Err(StressError::Spawn(e));
    }
    let tally = shared.tally.into_inner().unwrap_or_else(|p| p.into_inner());
    let reason = shared.reason.get().copied().unwrap_or(StopReason::Runs);
    let report = tally.into_report(config, wall, reason);
    let path = config.keep_dir.join("stress.json");
    let json = serde_json::to_vec_pretty(&report).expect("report serialises");
    std::fs::write(&path, json).map_err(|source| StressError::Io { path, source })?;
    Ok(report)
}

/// State shared by the workers and the monitor.
struct Shared<'a> {
    config: &'a StressConfig,
    runs_dir: &'a Path,
    start: Instant,
    /// Raised to stop: no new runs start and running ones are killed.
    stop: AtomicBool,
    reason: OnceLock<StopReason>,
    next: AtomicU64,
    in_flight: AtomicU64,
    tally: Mutex<Tally>,
    spawn_error: Mutex<Option<process::SpawnError>>,
}

#[derive(Default)]
struct Tally {
    runs: u64,
    failures: u64,
    unmatched: u64,
    timeouts: u64,
    signatures: BTreeMap<String, u64>,
    first_failure: Option<Duration>,
    failing: Vec<RunRecord>,
    passing_samples: Vec<PathBuf>,
}

impl Shared<'_> {
    fn halt(&self, reason: StopReason) {
        let _ = self.reason.set(reason);
        self.stop.store(true, Ordering::SeqCst);
    }

    fn worker(&self, done: &mpsc::Sender<()>) {
        let c = self.config;
        let limits = Limits {
            budget: c.per_run_timeout,
            grace: c.grace,
        };
        while !self.stop.load(Ordering::SeqCst) {
            let index = self.next.fetch_add(1, Ordering::SeqCst);
            if c.runs.is_some_and(|n| index >= n) {
                break;
            }
            let out = self.runs_dir.join(format!("run-{index:06}.log"));
            let scratch = c
                .scratch
                .clone()
                .unwrap_or_else(|| c.keep_dir.join("reports"));
            let run = match c
                .command
                .for_run(&c.cwd, &scratch, c.shuffle, c.repeat, index)
            {
                Ok(r) => r,
                Err(source) => {
                    let mut slot = self.spawn_error.lock().unwrap_or_else(|p| p.into_inner());
                    slot.get_or_insert(process::SpawnError::File {
                        path: scratch,
                        source,
                    });
                    drop(slot);
                    self.halt(StopReason::Interrupted);
                    break;
                }
            };
            let (mut spec, seed) = (run.spec, run.seed);
            // The run's own settings (a runner's report options) come after the caller's.
            let own = std::mem::take(&mut spec.env);
            spec.env.extend(c.env.iter().cloned());
            spec.env.extend(own);
            spec.env_remove.extend(c.env_remove.iter().cloned());
            let spec = match &c.jail {
                Some(j) => j.wrap(spec, &[c.cwd.as_path(), scratch.as_path()]),
                None => Ok(spec),
            };
            self.in_flight.fetch_add(1, Ordering::SeqCst);
            let listener = match run.report.as_ref().map(crate::verify::listen) {
                Some(Ok(l)) => l,
                _ => None,
            };
            let result = spec.and_then(|spec| {
                process::run(
                    &spec,
                    &OutputTo::Combined(out.clone()),
                    limits,
                    Some(&self.stop),
                    &mut |_| {},
                )
            });
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            let events = listener.map(crate::runners::events::Listener::finish);
            match result {
                Err(e) => {
                    let mut slot = self.spawn_error.lock().unwrap_or_else(|p| p.into_inner());
                    slot.get_or_insert(e);
                    drop(slot);
                    self.halt(StopReason::Interrupted);
                    break;
                }
                Ok(f) if f.termination == Termination::Cancelled => {
                    // Stopped because the stress run ended: not a complete run.
                    let _ = std::fs::remove_file(&out);
                    break;
                }
                Ok(f) => self.record(index, f, out, seed, run.report.as_ref(), events.as_deref()),
            }
            let _ = done.send(());
        }
    }

    fn record(
        &self,
        index: u64,
        f: process::Finished,
        out: PathBuf,
        seed: Option<u64>,
        report: Option<&crate::runners::command::ReportAt>,
        events: Option<&[u8]>,
    ) {
        let c = self.config;
        // A runner's run is judged by its report: the wanted tests present and passed.
        let judged = report.map(|r| {
            let o = crate::verify::outcome_of(r, f.termination, &out, events);
            let verdict = crate::verify::passes(&o, &c.wanted);
            // A failure counts only when the report shows a failed test (or a hang): a missing
            // report or "no tests ran" is no reproduction.
            let failed = crate::verify::failing_ids(&o);
            let shows = failed.is_ok();
            (verdict, failed.unwrap_or_default(), shows)
        });
        let passed = match &judged {
            Some((v, _, _)) => v.is_ok(),
            None => f.termination.success(),
        };
        if passed {
            let mut t = self.tally.lock().unwrap_or_else(|p| p.into_inner());
            t.runs += 1;
            if (t.passing_samples.len() as u64) < c.keep_passing {
                t.passing_samples.push(out);
            } else {
                drop(t);
                let _ = std::fs::remove_file(&out);
            }
            return;
        }
        // Signature and match are computed outside the lock: they read and scan the output.
        let bytes = read_tail(&out, MAX_SIGNATURE_BYTES);
        let timed_out = matches!(f.termination, Termination::TimedOut { .. });
        let signature = if timed_out {
            "(timeout)".to_string()
        } else {
            crate::logs::output_signature(&bytes)
                .unwrap_or_else(|| format!("(no signature: {})", f.termination.describe()))
        };
        let shows_failure = judged.as_ref().is_none_or(|(_, _, shows)| *shows);
        let counted = c
            .failure_match
            .as_ref()
            .is_none_or(|m| m.matches(&bytes) && shows_failure);
        let (why, failed_tests) = match judged {
            Some((v, failed, _)) => (v.err(), failed),
            None => (None, Vec::new()),
        };
        let record = RunRecord {
            index,
            termination: f.termination,
            duration_s: f.duration.as_secs_f64(),
            output: out,
            signature: signature.clone(),
            counted,
            seed,
            failed_tests,
            why,
        };
        let mut t = self.tally.lock().unwrap_or_else(|p| p.into_inner());
        t.runs += 1;
        t.timeouts += u64::from(timed_out);
        *t.signatures.entry(signature).or_insert(0) += 1;
        t.failing.push(record);
        if counted {
            t.failures += 1;
            t.first_failure.get_or_insert_with(|| self.start.elapsed());
            if c.until_failures.is_some_and(|k| t.failures >= k) {
                drop(t);
                self.halt(StopReason::UntilFailures);
            }
        } else {
            t.unmatched += 1;
        }
    }

    fn monitor(
        &self,
        done: &mpsc::Receiver<()>,
        cancel: Option<&AtomicBool>,
        progress: &mut dyn FnMut(&Progress),
    ) {
        let deadline = self.config.duration.map(|d| self.start + d);
        let mut last = Instant::now()
            .checked_sub(PROGRESS_EVERY)
            .unwrap_or_else(Instant::now);
        loop {
            let mut wait = PROGRESS_EVERY;
            if let Some(d) = deadline {
                wait = wait.min(d.saturating_duration_since(Instant::now()));
            }
            let finished = matches!(
                done.recv_timeout(wait),
                Err(mpsc::RecvTimeoutError::Disconnected)
            );
            if cancel.is_some_and(|c| c.load(Ordering::SeqCst)) {
                self.halt(StopReason::Interrupted);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                self.halt(StopReason::Duration);
            }
            if finished || last.elapsed() >= PROGRESS_EVERY {
                progress(&self.snapshot());
                last = Instant::now();
            }
            if finished {
                break;
            }
        }
    }

    fn snapshot(&self) -> Progress {
        let t = self.tally.lock().unwrap_or_else(|p| p.into_inner());
        Progress {
            runs: t.runs,
            failures: t.failures,
            unmatched_failures: t.unmatched,
            in_flight: self.in_flight.load(Ordering::SeqCst),
            elapsed_s: self.start.elapsed().as_secs_f64(),
        }
    }
}

impl Tally {
    fn into_report(
        self,
        c: &StressConfig,
        wall: Duration,
        stop_reason: StopReason,
    ) -> StressReport {
        let wall_s = wall.as_secs_f64();
        let rate = if self.runs == 0 {
            0.0
        } else {
            self.failures as f64 / self.runs as f64
        };
        let interval = crate::stats::clopper_pearson(self.failures, self.runs, c.confidence);
        StressReport {
            command: c.command.display(),
            runs: self.runs,
            failures: self.failures,
            unmatched_failures: self.unmatched,
            failure_rate: rate,
            interval,
            confidence: c.confidence,
            signatures: self.signatures,
            timeouts: self.timeouts,
            wall_s,
            runs_per_s: if wall_s > 0.0 {
                self.runs as f64 / wall_s
            } else {
                0.0
            },
            time_to_first_failure_s: self.first_failure.map(|d| d.as_secs_f64()),
            runs_to_verify: (self.failures > 0)
                .then(|| crate::stats::runs_needed(rate, 1.0 - c.confidence)),
            five_runs_pass_probability: crate::stats::pass_probability(rate, 5),
            repetitions_per_run: c.repeat.unwrap_or(1),
            per_repetition: c.repeat.filter(|&k| k > 1).map(|k| {
                let (lo, hi) = interval;
                let per = |p: f64| crate::stats::per_attempt_rate(p, k);
                RepetitionEstimate {
                    failure_rate: per(rate),
                    interval: (per(lo), per(hi)),
                }
            }),
            stop_reason,
            jobs: c.jobs,
            cpu_stressors: c.cpu_stressors,
            keep_dir: c.keep_dir.clone(),
            failing_runs: self.failing,
            passing_samples: self.passing_samples,
        }
    }
}

/// The last `max` bytes of a file (empty when it cannot be read).
fn read_tail(path: &Path, max: u64) -> Vec<u8> {
    let Ok(mut f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if len > max && f.seek(SeekFrom::Start(len - max)).is_err() {
        return Vec::new();
    }
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stress::{FailureMatch, ShufflePlugin, StressCommand};

    fn config(dir: &Path, script: &str) -> StressConfig {
        let mut c = StressConfig::new(
            StressCommand::Shell(script.into()),
            dir.to_path_buf(),
            dir.join("keep"),
        );
        c.jobs = 2;
        c.runs = Some(10);
        c
    }

    #[test]
    fn progress_is_reported_and_ends_with_the_final_counts() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path(), "exit 0");
        let mut seen = Vec::new();
        let r = run(&c, None, &mut |p| seen.push(*p)).unwrap();
        assert_eq!(
            (r.runs, r.failures, r.stop_reason),
            (10, 0, StopReason::Runs)
        );
        let last = seen.last().expect("at least the final progress call");
        assert_eq!((last.runs, last.in_flight), (10, 0));
        assert!(seen.windows(2).all(|w| w[0].runs <= w[1].runs));
        assert_eq!(r.passing_samples.len(), 3);
        assert!(r.passing_samples.iter().all(|p| p.is_file()));
    }

    #[test]
    fn cancel_stops_running_children_and_counts_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path(), "sleep 1000");
        let cancel = AtomicBool::new(false);
        let mut calls = 0;
        let r = run(&c, Some(&cancel), &mut |p| {
            calls += 1;
            if p.in_flight == 2 {
                cancel.store(true, Ordering::SeqCst);
            }
        })
        .unwrap();
        assert!(calls > 0);
        assert_eq!((r.runs, r.stop_reason), (0, StopReason::Interrupted));
        // The cancelled runs' outputs are not kept as results.
        assert_eq!(
            std::fs::read_dir(dir.path().join("keep/runs"))
                .unwrap()
                .count(),
            0
        );
    }

    #[test]
    fn env_is_passed_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(dir.path(), r#"test "$FIXCI_A" = 1 && test -z "$HOME""#);
        c.env = vec![("FIXCI_A".into(), "1".into())];
        c.env_remove = vec!["HOME".into()];
        let r = run(&c, None, &mut |_| {}).unwrap();
        assert_eq!(r.failures, 0, "{:?}", r.failing_runs);
    }

    #[test]
    fn shuffle_seed_is_appended_per_run_and_logged() {
        let dir = tempfile::tempdir().unwrap();
        // The plugin's arguments are appended to a shell command: `f` prints them and fails.
        let mut c = config(dir.path(), r#"f() { echo "$@"; exit 1; }; f"#);
        c.shuffle = Some((ShufflePlugin::Randomly, 1000));
        c.runs = Some(4);
        let r = run(&c, None, &mut |_| {}).unwrap();
        assert_eq!(r.failures, 4);
        for f in &r.failing_runs {
            let seed = f.seed.unwrap();
            assert_eq!(seed, 1000 + f.index);
            let out = std::fs::read_to_string(&f.output).unwrap();
            assert!(out.contains(&format!("--randomly-seed={seed}")), "{out}");
        }
    }

    #[test]
    fn unmatched_failures_do_not_count_towards_until_failures() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(dir.path(), "echo other; exit 1");
        c.failure_match = Some(FailureMatch::Text("wanted".into()));
        c.until_failures = Some(1);
        let r = run(&c, None, &mut |_| {}).unwrap();
        assert_eq!((r.runs, r.failures, r.unmatched_failures), (10, 0, 10));
        assert_eq!(r.stop_reason, StopReason::Runs);
        assert_eq!(r.runs_to_verify, None);
        assert!(r.failing_outputs().is_empty());
    }

    #[test]
    fn cpu_stressors_run_during_the_runs_and_are_gone_after() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(dir.path(), "pgrep -f '^sh -c while :; do :; done$'");
        c.cpu_stressors = 2;
        c.runs = Some(1);
        c.keep_passing = 1;
        let r = run(&c, None, &mut |_| {}).unwrap();
        let out = std::fs::read_to_string(&r.passing_samples[0]).unwrap();
        let pids: Vec<&str> = out.lines().collect();
        assert!(pids.len() >= 2, "{out}");
        for pid in pids {
            assert!(
                !Path::new(&format!("/proc/{pid}")).exists(),
                "stressor {pid} survived"
            );
        }
    }
}
