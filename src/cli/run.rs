//! `fixci run`: load the job spec, pick the pipeline and agent, then run it (or print the plan
//! with `--dry-run`).

use std::io::IsTerminal;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use clap::Args;

use crate::engine::{self, RunRequest};
use crate::error::{Error, Result};
use crate::run_dir::{AttemptOutcome, Event, Listener, RunDir, RunState};
use crate::spec::{self, LoadedSpec};
use crate::{agent, exit_codes, pipeline};

/// Run a pipeline on a job spec: reproduce the CI failure, let the agent fix it, verify the fix,
/// and propose it (branch, PR proposal or draft PR, report under `outputs/`).
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("prompt_input").args(["url", "gate", "event"]).multiple(false)))]
pub struct RunArgs {
    /// Job spec (JSON, or TOML by extension). Default: `./info.json`
    pub spec: Option<PathBuf>,
    /// Target repository: a path, git URL or `.bundle` (default: the spec's `repo`, else the git
    /// repository around the current directory)
    #[arg(long, value_name = "PATH|URL")]
    pub repo: Option<String>,
    /// Pipeline name or TOML file, overriding the one the spec selects
    #[arg(long, value_name = "NAME|FILE")]
    pub pipeline: Option<String>,
    /// Agent preset (claude, codex, gemini, aider) for every stage, overriding the spec's
    /// `agent` and switching the pipeline's attempt ladder off
    #[arg(long, value_name = "NAME")]
    pub agent: Option<String>,
    /// Model passed to the agent, overriding the spec's `model` and the attempt ladder's
    #[arg(long)]
    pub model: Option<String>,
    /// Resolve everything, render the prompts, print the plan; create nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Stop at a PR proposal (branch, `pr.md`, the commands to publish it)
    #[arg(long)]
    pub no_pr: bool,
    /// Print the outcome (status, reason, branch, report, pr) as one JSON object on stdout
    #[arg(long)]
    pub json: bool,
    /// Keep the run's private clone when the run ends (the spec's `keep-worktree`)
    #[arg(long)]
    pub keep_worktree: bool,
    /// Folder for run directories (default: `./outputs`)
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// A GitHub Actions run URL, instead of a spec file
    #[arg(long, conflicts_with = "spec")]
    pub url: Option<String>,
    /// A command of the local gate that fails, instead of a spec file (repeatable: every
    /// command must pass on the fix); the repository is `--repo`, else the git repository
    /// around the current directory
    #[arg(long, value_name = "CMD", conflicts_with = "spec")]
    pub gate: Vec<String>,
    /// The task text, with `--url`, `--gate` or `--event` (with `--event`, replacing the spec's
    /// `prompt`)
    #[arg(long, requires = "prompt_input")]
    pub prompt: Option<String>,
    /// With `--url` or `--gate`: the failure is deterministic (the default)
    #[arg(long, requires = "prompt_input", conflicts_with = "flaky")]
    pub deterministic: bool,
    /// With `--url` or `--gate`: the failure is flaky (non-deterministic)
    #[arg(long, requires = "prompt_input")]
    pub flaky: bool,
    /// A GitHub issue (`OWNER/REPO#N`) whose title and body are the task
    #[arg(long, value_name = "OWNER/REPO#N")]
    pub issue: Option<String>,
    /// Inside CI: a GitHub event payload (`$GITHUB_EVENT_PATH`: `workflow_run`,
    /// `issue_comment`, `pull_request_review`) decides what to do; SPEC (else `fixci.json` /
    /// `fixci.toml` at the repository root, else defaults) gives agent, budgets and prompt
    #[arg(long, value_name = "FILE", conflicts_with_all = ["url", "issue"])]
    pub event: Option<PathBuf>,
    /// With `--event`: attempts per fix branch across CI runs (the spec's `max-attempts`)
    #[arg(long, requires = "event", value_name = "N", value_parser = clap::value_parser!(u32).range(1..=50))]
    pub max_attempts: Option<u32>,
    /// With `--event`: US dollars the agents of this run may cost (the spec's
    /// `budgets.cost-usd`)
    #[arg(long, requires = "event", value_name = "USD")]
    pub cost_limit_usd: Option<f64>,
    /// GitHub API root (default: `GITHUB_API_URL`, else https://api.github.com)
    #[arg(long, value_name = "URL")]
    pub api_url: Option<String>,
}

static CANCEL: AtomicBool = AtomicBool::new(false);

/// The flag the signal handlers set.
pub fn cancel_flag() -> &'static AtomicBool {
    &CANCEL
}
static SIGNALS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_signal(_: libc::c_int) {
    // First signal: ask the engine to stop children and save state. Second: leave now.
    if SIGNALS.fetch_add(1, Ordering::SeqCst) >= 1 {
        // Kill every child group first, so none is orphaned.
        crate::process::kill_all_groups();
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(130) };
    }
    CANCEL.store(true, Ordering::SeqCst);
}

/// Installs the SIGINT/SIGTERM handlers: the first signal stops children and saves state, the
/// second exits at once (130).
pub fn install_signal_handlers() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only touches atomics and calls _exit, both async-signal-safe.
        unsafe {
            libc::signal(sig, on_signal as *const () as libc::sighandler_t);
        }
    }
}

/// Loads the spec named on the command line, or builds one from `--url` or `--gate`.
fn load_spec(args: &RunArgs) -> Result<LoadedSpec> {
    if !args.gate.is_empty() {
        let v = serde_json::json!({
            "deterministic": !args.flaky,
            "prompt": args.prompt.clone().unwrap_or_else(|| "Make the gate pass".into()),
            "gate": args.gate,
        });
        let cwd = std::env::current_dir().unwrap_or_default();
        return spec::from_value(v, Path::new("<command line>"), &cwd);
    }
    if let Some(url) = &args.url {
        let v = serde_json::json!({
            "deterministic": !args.flaky,
            "prompt": args.prompt.clone().unwrap_or_else(|| "Fix the failure of this CI run".into()),
            "url": url,
        });
        let cwd = std::env::current_dir().unwrap_or_default();
        return spec::from_value(v, Path::new("<command line>"), &cwd);
    }
    let path = args
        .spec
        .clone()
        .unwrap_or_else(|| PathBuf::from("info.json"));
    if !path.exists() {
        return Err(Error::usage(format!("job spec `{}` does not exist", path.display()))
            .hint("pass a spec (`fixci run path/to/info.json`), put `info.json` in the current directory, or use `--url`"));
    }
    spec::load(&path)
}

/// The run request for `loaded`: its pipeline (`pipeline_flag`, else chosen by the spec;
/// searched next to the spec and in its repository), its agent (`agent_flag`, the spec's, the
/// pipeline's default), `repo_flag`, run directories under `out_dir`. Shared by `fixci run` and
/// `fixci validate`.
///
/// Errors (exit 2): an unknown pipeline or agent.
pub fn request(
    loaded: LoadedSpec,
    pipeline_flag: Option<&str>,
    agent_flag: Option<&str>,
    repo_flag: Option<&str>,
    out_dir: PathBuf,
) -> Result<RunRequest> {
    let mut dirs = vec![loaded.dir.clone()];
    if let Some(r) = repo_flag.or(loaded.spec.repo.as_deref()) {
        if !spec::is_remote_url(r) && !r.ends_with(".bundle") {
            dirs.push(loaded.dir.join(r));
        }
    }
    let pipeline = pipeline::select(&loaded, pipeline_flag, &dirs)?;
    for n in pipeline.pipeline.notes() {
        errln!("note: pipeline `{}`: {n}", pipeline.pipeline.name);
    }
    let agent = agent::resolve(
        agent_flag,
        loaded.spec.agent.as_ref(),
        pipeline.pipeline.defaults.agent.as_deref(),
        loaded.spec.model.as_deref(),
        &loaded.dir,
    )?;
    Ok(RunRequest {
        spec: loaded,
        pipeline,
        agent,
        repo_flag: repo_flag.map(str::to_string),
        agent_flag: agent_flag.map(str::to_string),
        api_url: None,
        out_dir,
        no_pr: false,
        cancel: &CANCEL,
        template_roots: Vec::new(),
        env: Vec::new(),
    })
}

/// Runs `fixci run`; returns the exit code.
pub fn execute(args: RunArgs) -> Result<u8> {
    // From here on a signal is noted, not fatal: the engine stops cleanly (exit 130) whether
    // the run directory exists yet or not.
    if let Some(event) = &args.event {
        return super::ci::execute(&args, event);
    }
    if !args.dry_run {
        install_signal_handlers();
    }
    let mut loaded = load_spec(&args)?;
    if let Some(m) = &args.model {
        loaded.spec.model = Some(m.clone());
        loaded.model_flag = Some(m.clone());
    }
    if let Some(i) = &args.issue {
        loaded.spec.issue = Some(i.clone());
        loaded.spec.issue_file = None;
    }
    if args.keep_worktree {
        loaded.spec.keep_worktree = true;
    }
    let out_dir = args.out.clone().unwrap_or_else(|| PathBuf::from("outputs"));
    let mut req = request(
        loaded,
        args.pipeline.as_deref(),
        args.agent.as_deref(),
        args.repo.as_deref(),
        spec::absolute(&out_dir),
    )?;
    req.api_url = args.api_url.clone();
    req.no_pr = args.no_pr;
    if args.dry_run {
        out!("{}", engine::dry_run::plan(req)?);
        return Ok(exit_codes::SUCCESS);
    }
    let mut progress = Progress::new();
    let outcome = engine::run(req, &mut progress);
    progress.finish();
    let outcome = outcome?;
    print_outcome(&outcome, args.json);
    Ok(super::resume::exit_code(outcome.status))
}

/// Prints how a run ended. The outcome goes to standard output, one `key: value` line each
/// (`status`, `reason` when there is one, `branch` when a fix was committed, `report`, `pr` when
/// a draft PR was opened), or one JSON object with `json` (the same keys; absent values are
/// `null`); how to publish a fix without a PR goes to standard error, with the progress.
pub fn print_outcome(outcome: &engine::Outcome, json: bool) {
    let dir = RunDir::new(&outcome.run_dir);
    let state = dir.load_state().ok();
    let (branch, pr_url) = published(state.as_ref());
    let report = dir.report_file();
    if json {
        let v = serde_json::json!({
            "status": outcome.status.as_str(),
            "reason": outcome.reason,
            "branch": branch,
            "repository": state.as_ref().map(|st| st.repo.root.display().to_string()),
            "report": report.display().to_string(),
            "run_dir": outcome.run_dir.display().to_string(),
            "pr": pr_url,
        });
        outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        errln!();
        outln!("status: {}", outcome.status.as_str());
        if let Some(r) = &outcome.reason {
            outln!("reason: {r}");
        }
        if let (Some(b), Some(st)) = (&branch, &state) {
            outln!("branch: {b} (in {})", st.repo.root.display());
        }
        outln!("report: {}", report.display());
        if let Some(u) = &pr_url {
            outln!("pr: {u}");
        }
    }
    if let Some(pr) = state.as_ref().and_then(|st| st.pr.as_ref()) {
        if pr.url.is_none() && !pr.commands.is_empty() {
            errln!("to publish:");
            for c in &pr.commands {
                errln!("  {c}");
            }
        }
    }
}

/// The fix branch (when a fix was committed) and the opened PR's page of a run's state.
pub fn published(state: Option<&RunState>) -> (Option<String>, Option<String>) {
    let branch = state.and_then(|st| st.branch.clone().filter(|_| st.branch_created));
    let pr_url = state
        .and_then(|st| st.pr.as_ref())
        .and_then(|pr| pr.url.clone());
    (branch, pr_url)
}

/// Stage progress on stderr: a spinner per stage on a terminal (indicatif), plain lines
/// otherwise. Respects `NO_COLOR`.
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    tty: bool,
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress {
    /// A progress display on stderr.
    pub fn new() -> Self {
        Self {
            bar: None,
            tty: std::io::stderr().is_terminal(),
        }
    }

    /// Clears the spinner.
    pub fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

impl Listener for Progress {
    fn event(&mut self, e: &Event, _st: &RunState) {
        match e {
            Event::RunStarted {
                run_id,
                pipeline,
                run_dir,
            } => {
                let _ = writeln!(
                    std::io::stderr(),
                    "fixci: run {run_id} (pipeline `{pipeline}`) in {run_dir}"
                );
            }
            Event::StageStarted {
                stage,
                attempt,
                budget_s,
                ..
            } if self.tty => {
                let b = indicatif::ProgressBar::new_spinner();
                b.set_style(
                    indicatif::ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
                );
                b.enable_steady_tick(std::time::Duration::from_millis(120));
                let a = attempt
                    .map(|a| format!(" (attempt {a})"))
                    .unwrap_or_default();
                b.set_message(format!(
                    "{stage}{a}: running, budget {}",
                    humantime::format_duration(std::time::Duration::from_secs(*budget_s as u64))
                ));
                self.bar = Some(b);
            }
            Event::TestRun {
                stage,
                run,
                of,
                passed,
                ..
            } => {
                if let Some(b) = &self.bar {
                    b.set_message(format!(
                        "{stage}: run {run}/{of} {}",
                        if *passed { "passed" } else { "failed" }
                    ));
                }
            }
            Event::StageFinished {
                stage,
                attempt,
                status,
                summary,
                duration_s,
                ..
            } => {
                self.finish();
                let status = status.as_str();
                let a = attempt
                    .map(|a| format!(" (attempt {a})"))
                    .unwrap_or_default();
                let _ = writeln!(
                    std::io::stderr(),
                    "  {stage}{a}: {status} in {duration_s:.1}s: {summary}"
                );
            }
            Event::AttemptStarted {
                attempt,
                max,
                agent,
                model,
            } => {
                let _ = writeln!(
                    std::io::stderr(),
                    "  attempt {attempt}/{max}: agent `{agent}`{}",
                    model
                        .as_ref()
                        .map(|m| format!(", model `{m}`"))
                        .unwrap_or_default()
                );
            }
            Event::AttemptFinished {
                attempt,
                outcome,
                reason: Some(reason),
            } if *outcome != AttemptOutcome::Passed => {
                let _ = writeln!(std::io::stderr(), "  attempt {attempt} failed: {reason}");
            }
            _ => {}
        }
    }
}
