//! `agent`: renders the stage's prompt, runs the coding agent in the worktree under the stage
//! budget, and reads back what it left: `repro.json` for a reproduce stage, the worktree diff
//! (and `root-cause.md`) for a fix stage. Nothing the agent says is taken as proof.
//!
//! Around the invocation it keeps git clean: commits the agent made by itself, a branch switch
//! and files it staged are undone (the files stay) by the `agent-commits` policy, and the
//! agent's fallback outputs in `.fixci/` (for CLIs that cannot write outside the repository)
//! are moved into the stage directory. What the CLI reports about its run (tokens, cost, its
//! own error flag) is parsed into an [`AgentReport`] and recorded on the stage, the attempt and
//! the event stream.

use std::path::Path;

use serde::Deserialize;

use super::prompt_context;
use super::{Stage, StageCtx, StageResult, worktree};
use crate::agent::{AgentReport, Invocation};
use crate::contain::{self, AgentWatch};
use crate::error::{Error, io_error};
use crate::judge;
use crate::pipeline::{Role, Templates, render_prompt};
use crate::process::{self, Limits, OutputTo, Termination};
use crate::run_dir::Event;
use crate::run_dir::{Repro, StageStatus};
use crate::spec::AgentCommits;
use crate::vcs;

/// The `agent` stage.
pub struct AgentStage {
    /// What the agent is asked to do.
    pub role: Role,
    /// Template path.
    pub prompt: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReproJson {
    test_file: String,
    command: String,
}

impl Stage for AgentStage {
    fn run(&self, cx: &mut StageCtx<'_>) -> Result<StageResult, Error> {
        let wt = worktree(cx.st())?;
        let (name, text) = Templates::find(&self.prompt, &cx.env.template_roots)?;
        let ctx = prompt_context(
            cx.env,
            cx.st(),
            cx.id,
            &cx.dir,
            cx.attempt,
            cx.model,
            cx.budget,
        );
        let prompt = crate::redact::redact(&render_prompt(&name, &text, &ctx)?);
        let prompt_file = cx.dir.join("prompt.md");
        std::fs::write(&prompt_file, &prompt).map_err(|e| io_error("write", &prompt_file, e))?;
        // The run's spend limits: no invocation once they are spent; the rest goes to the CLI.
        let budget_usd = match crate::agent::spend::allowance(
            &cx.env.spec().spec.budgets,
            cx.st().stages.iter().filter_map(|s| s.agent_report.as_ref()),
        ) {
            crate::agent::spend::Allowance::Go { usd } => usd,
            crate::agent::spend::Allowance::Spent(why) => {
                cx.emit(Event::RunStopping {
                    status: crate::run_dir::Status::Failed,
                    reason: why.clone(),
                });
                return Ok(StageResult::failed(why));
            }
        };
        let inv = Invocation {
            stage: cx.id.to_string(),
            attempt: cx.attempt.unwrap_or(1),
            prompt_file,
            stage_dir: cx.dir.clone(),
            run_dir: cx.env.run_dir.path().to_path_buf(),
            worktree: wt.clone(),
            model: cx.model.map(str::to_string),
            secret_env: cx.env.spec().spec.secret_env.clone(),
            budget_usd,
        };
        let mut cmd = cx.agent.command(&inv);
        if cx.st().containment.sandbox.as_ref().is_some_and(|d| d.sandboxed()) {
            cmd.args = cx.agent.without_own_sandbox(&cmd.args);
        }
        // A usage report is the CLI's own, of this invocation only.
        let usage_file = cx.dir.join(crate::agent::USAGE_FILE);
        let _ = std::fs::remove_file(&usage_file);
        let wt_repo =
            vcs::open(&wt).map_err(|e| Error::infra("cannot open the worktree").source(e))?;
        let branch = cx.st().branch.clone().unwrap_or_default();
        let before = vcs::branch_tip(&wt_repo, &branch).ok();
        let stdout = cx.dir.join("agent.stdout.log");
        let stderr = cx.dir.join("agent.stderr.log");
        let id = cx.id.to_string();
        let shown = cmd.display();
        let agent_name = cx.agent.name.clone();
        let spawn_error = |e| {
            Error::infra(format!("cannot start agent `{agent_name}`"))
                .source(e)
                .hint("install the agent CLI, or choose another with `--agent NAME` or the spec's `agent`")
        };
        // The sandbox (when the run has one) and the run directory's snapshot.
        let run_path = cx.env.run_dir.path().to_path_buf();
        let watch = AgentWatch::start(
            cx.st().containment.sandbox.as_ref(),
            &run_path,
            &wt,
            &cx.dir,
            &super::protected_places(cx),
        )
            .map_err(|e| io_error("prepare the sandbox in", &run_path, e))?;
        let (cmd, out) = watch
            .wrap(cmd, OutputTo::Separate { stdout: stdout.clone(), stderr: stderr.clone() }, &cx.agent.writable)
            .map_err(spawn_error)?;
        let rec = &mut *cx.rec;
        let finished = process::run(
            &cmd,
            &out,
            Limits { budget: cx.budget, grace: cx.env.grace },
            Some(cx.env.req.cancel),
            &mut |pid| {
                cx.env.run_dir.record_child(pid);
                rec.emit(Event::ChildStarted { stage: id.clone(), pid, command: shown.clone() });
            },
        )
        .map_err(spawn_error)?;
        cx.env.run_dir.clear_child();
        let found = contain::agent_events((cx.id, cx.attempt), watch.finish(&stderr));
        let tampered = contain::tamper_reason(&found);
        for e in found {
            cx.emit(e);
        }
        let git = match before {
            Some(b) => vcs::undo_agent_git(&wt_repo, &branch, b)
                .map_err(|e| Error::infra("cannot undo the agent's own git changes").source(e))?,
            None => Default::default(),
        };
        take_fallback_outputs(&wt, &cx.dir)?;
        let usage = std::fs::read(&usage_file)
            .ok()
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        let mut report = crate::agent::result::parse(
            cx.agent.result,
            &String::from_utf8_lossy(&std::fs::read(&stdout).unwrap_or_default()),
            usage.as_deref(),
        );
        report.exit = finished.termination.describe();
        report.agent = cx.agent.name.clone();
        let policy = cx.env.spec().spec.agent_commits;
        let mut result = self.judge(
            cx,
            &wt,
            &stdout,
            &stderr,
            &finished.termination,
            &mut report,
        )?;
        if !git.commits.is_empty() && policy == AgentCommits::Reject {
            let why = format!(
                "{} (`agent-commits = \"reject\"`)",
                git.describe("rejected")
            );
            report.set_error(why.clone());
            if matches!(result.status, StageStatus::Passed) {
                result = StageResult::failed(why);
            }
        } else if git.any() {
            result
                .summary
                .push_str(&format!("; {}", git.describe("folded into fixci's commit")));
        }
        if let Some(why) = tampered {
            // fixci's own records are not to be trusted any more: the run ends here.
            report.set_error(why.clone());
            result = StageResult::failed(why.clone());
            cx.emit(Event::RunStopping { status: crate::run_dir::Status::Failed, reason: why });
        }
        // Inside an attempt, a fix agent's report is kept on the attempt.
        cx.emit(Event::AgentFinished {
            stage: cx.id.to_string(),
            attempt: cx.attempt.filter(|_| self.role == Role::Fix),
            agent: cx.agent.name.clone(),
            report: report.clone(),
        });
        result.agent_report = Some(report);
        Ok(result)
    }
}

impl AgentStage {
    /// Judges the finished invocation: the timeout, then what the role asks for. Marks the
    /// report as an agent error where the invocation failed by fixci's measure.
    fn judge(
        &self,
        cx: &mut StageCtx<'_>,
        wt: &Path,
        stdout: &Path,
        stderr: &Path,
        termination: &Termination,
        report: &mut AgentReport,
    ) -> Result<StageResult, Error> {
        let last_output = || {
            let out = process::tail(stdout, 600);
            let err = process::tail(stderr, 600);
            let s = format!(
                "{}{}",
                out.trim(),
                if err.trim().is_empty() {
                    String::new()
                } else {
                    format!("\n{}", err.trim())
                }
            );
            crate::redact::redact(s.trim())
        };
        let budget =
            humantime::format_duration(std::time::Duration::from_secs(cx.budget.as_secs()));
        match termination {
            Termination::TimedOut { .. } => {
                report.timed_out = true;
                report.is_error = true;
                // The budget is why it ended; what the CLI itself last complained of follows.
                report.error = Some(match report.error.take() {
                    Some(cli) => {
                        format!("stopped at the stage budget of {budget}; the CLI said: {cli}")
                    }
                    None => format!("stopped at the stage budget of {budget}"),
                });
                let last = last_output();
                return Ok(StageResult::new(
                    StageStatus::Timeout,
                    format!(
                        "the agent did not finish within {budget}; its last output: {}",
                        if last.is_empty() {
                            "(none)".into()
                        } else {
                            last
                        }
                    ),
                ));
            }
            Termination::Cancelled => return Ok(StageResult::failed("interrupted")),
            t if !t.success() => report.set_error(format!("the agent ended with {}", t.describe())),
            _ => {}
        }
        let agent_exit = termination.describe();
        let r = match self.role {
            Role::Reproduce => read_repro(cx, wt, &agent_exit, "agent")?,
            Role::Acceptance => read_repro(cx, wt, &agent_exit, crate::feature::ORIGIN)?,
            Role::Fix => judge_fix(cx, wt, &agent_exit, report.explanation.as_deref())?,
        };
        if r.status != StageStatus::Passed {
            report.set_error(r.summary.clone());
        }
        Ok(r)
    }
}

/// Where a CLI that cannot write outside the repository leaves its stage outputs, relative to
/// the worktree (a dropping: never diffed or committed).
pub const FALLBACK_DIR: &str = ".fixci";

/// Moves `repro.json` and `root-cause.md` from the worktree's `.fixci/` into the stage
/// directory (unless the agent wrote them there too), then removes `.fixci/`.
fn take_fallback_outputs(wt: &Path, stage_dir: &Path) -> Result<(), Error> {
    let dir = wt.join(FALLBACK_DIR);
    if !dir.is_dir() {
        return Ok(());
    }
    for name in ["repro.json", "root-cause.md"] {
        let from = dir.join(name);
        let to = stage_dir.join(name);
        if from.is_file() && !to.exists() {
            std::fs::copy(&from, &to).map_err(|e| io_error("copy", &from, e))?;
        }
    }
    std::fs::remove_dir_all(&dir).map_err(|e| io_error("remove", &dir, e))?;
    Ok(())
}

/// Reads `repro.json`, checks the test file, and keeps fixci's own copy of it.
/// `origin` is the [`Repro::origin`] to record: `agent`, or [`crate::feature::ORIGIN`] for
/// acceptance tests.
fn read_repro(
    cx: &mut StageCtx<'_>,
    wt: &Path,
    agent_exit: &str,
    origin: &str,
) -> Result<StageResult, Error> {
    let path = cx.dir.join("repro.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(StageResult::failed(format!(
            "the agent ({agent_exit}) left no `repro.json` in its stage directory"
        )));
    };
    let r: ReproJson = match serde_json::from_str(&text) {
        Ok(r) => r,
        Err(e) => {
            return Ok(StageResult::failed(format!(
                "`repro.json` is not {{\"test_file\", \"command\"}}: {e}"
            )));
        }
    };
    if let Err(why) = crate::spec::check_relative_inside(&r.test_file) {
        return Err(Error::usage(format!(
            "the agent's `repro.json` names test_file `{}`, which {why}",
            r.test_file
        )));
    }
    let full = wt.join(&r.test_file);
    if !full.is_file() {
        return Ok(StageResult::failed(format!(
            "the reproduction test `{}` does not exist in the worktree",
            r.test_file
        )));
    }
    let inside = full
        .canonicalize()
        .ok()
        .zip(wt.canonicalize().ok())
        .is_some_and(|(f, w)| f.starts_with(w));
    if !inside {
        return Err(Error::usage(format!(
            "the agent's `repro.json` names test_file `{}`, which leaves the repository through a symlink",
            r.test_file
        )));
    }
    if r.command.trim().is_empty() {
        return Ok(StageResult::failed("`repro.json` has an empty command"));
    }
    // fixci keeps the test's bytes (hash in state) and builds the command itself.
    let bytes = std::fs::read(&full).map_err(|e| io_error("read", &full, e))?;
    let (runner, note) = crate::verify::repro_runner(
        &r.test_file,
        Some(&r.command),
        cx.env.spec().spec.test_command.as_deref(),
    );
    let copy = cx.env.run_dir.repro_copy(&r.test_file);
    if let Some(d) = copy.parent() {
        std::fs::create_dir_all(d).map_err(|e| io_error("create", d, e))?;
    }
    std::fs::write(&copy, &bytes).map_err(|e| io_error("write", &copy, e))?;
    let mut summary = format!(
        "{} `{}`, run by fixci with `{}`",
        if origin == crate::feature::ORIGIN {
            "acceptance tests"
        } else {
            "reproduction test"
        },
        r.test_file,
        runner.display()
    );
    if let Some(n) = &note {
        summary.push_str(&format!("; {n}"));
    }
    cx.emit(Event::ReproductionRecorded {
        repro: Repro {
            test_file: r.test_file,
            command: runner.display(),
            origin: origin.into(),
            copy: Some(copy),
            confirmed: false,
            failure_output: String::new(),
            sealed: Some(crate::verify::record::ReproRecord::new(bytes, runner, note)),
        },
    });
    Ok(StageResult::passed(summary))
}

/// Records the attempt's diff, root cause and any tampering with tests. The root cause is the
/// agent's `root-cause.md`, else (when it changed something) `explanation`, its final message
/// as its CLI's parser read it.
fn judge_fix(
    cx: &mut StageCtx<'_>,
    wt: &Path,
    agent_exit: &str,
    explanation: Option<&str>,
) -> Result<StageResult, Error> {
    // A gate run has no reproduction test: its failing gate is the reproduction.
    let repro = match cx.st().repro.clone() {
        Some(r) => r,
        None if !cx.env.spec().spec.gate.is_empty() => crate::run_dir::Repro {
            test_file: String::new(),
            command: cx.env.spec().spec.gate.join(" && "),
            origin: "gate".into(),
            copy: None,
            confirmed: true,
            failure_output: String::new(),
            sealed: None,
        },
        None => return Err(Error::usage("a fix stage needs a reproduction (a reproduce stage, `existing-test-path` or `gate`) before it")),
    };
    let mut tampering = Vec::new();
    let acceptance = repro.origin == crate::feature::ORIGIN;
    let from_agent = repro.origin == "agent" || acceptance;
    if let Some(copy) = &repro.copy {
        let now = std::fs::read(wt.join(&repro.test_file)).ok();
        let ours = std::fs::read(copy).ok();
        match now {
            None if from_agent => tampering.push(format!(
                "the fix agent deleted the reproduction test `{}`; fixci restores its copy",
                repro.test_file
            )),
            Some(n) if from_agent && Some(&n) != ours.as_ref() => tampering.push(format!(
                "the fix agent modified the reproduction test `{}`; fixci restores its copy",
                repro.test_file
            )),
            _ => {}
        }
    }
    let repo = vcs::open(wt).map_err(|e| Error::infra("cannot open the worktree").source(e))?;
    let base = git2::Oid::from_str(&cx.st().repo.base_commit)
        .map_err(|e| Error::infra("bad base commit in state").source(e))?;
    let exclude = if from_agent {
        vec![repro.test_file.clone()]
    } else {
        Vec::new()
    };
    let diff = vcs::diff_worktree(&repo, base, &exclude)
        .map_err(|e| Error::infra("cannot diff the worktree").source(e))?;
    // Test edits are judged over the whole change, the agent's reproduction test included.
    let full_diff = vcs::diff_worktree(&repo, base, &[])
        .map_err(|e| Error::infra("cannot diff the worktree").source(e))?;
    let spec = &cx.env.spec().spec;
    let failing_tests = judge::failing_test::failing_test_files(cx.st());
    let test_commands: Vec<String> = [spec.test_command.clone(), spec.suite_command.clone()]
        .into_iter()
        .flatten()
        .collect();
    let mut test_files = failing_tests.clone();
    test_files.push(repro.test_file.clone());
    let findings = judge::judge_fix(
        &repo,
        base,
        &judge::FixRules {
            full_diff: &full_diff,
            failing_tests: &failing_tests,
            deterministic: spec.deterministic,
            allow_test_infra_changes: spec.allow_test_infra_changes,
            test_commands: &test_commands,
            test_files: &test_files,
        },
    )
    .map_err(|e| Error::infra("cannot judge the fix's changes").source(e))?;
    let mut refused = findings.refused.clone();
    // Acceptance tests are the feature's definition: an implementation that changes them is
    // refused, not only undone.
    if acceptance {
        refused.extend(tampering.iter().map(|t| {
            t.replace("reproduction test", "acceptance tests")
                .replace("; fixci restores its copy", ", which the implementation must not change")
        }));
        tampering.clear();
    }
    tampering.extend(refused.iter().cloned());
    std::fs::write(cx.dir.join("attempt.diff"), &diff)
        .map_err(|e| io_error("write", &cx.dir.join("attempt.diff"), e))?;
    let written = std::fs::read_to_string(cx.dir.join("root-cause.md")).ok();
    let said = explanation.filter(|_| !diff.trim().is_empty());
    let root_cause = [written.as_deref(), said]
        .into_iter()
        .flatten()
        .map(|s| crate::redact::redact(s.trim()))
        .find(|s| !s.is_empty());
    let attempt = cx
        .attempt
        .filter(|n| cx.st().attempts.iter().any(|a| a.number == *n))
        .ok_or_else(|| Error::usage("a fix stage runs inside an `attempts` loop"))?;
    cx.emit(Event::FixProposed {
        attempt,
        diff: diff.clone(),
        tampering: tampering.clone(),
        root_cause,
        test_infra_allowed: findings.allowed_infra.clone(),
        edits_failing_test: findings.partial.clone(),
    });
    if !refused.is_empty() {
        let mut r = StageResult::failed(format!("refused: {}", refused.join("; ")));
        r.refused = true;
        return Ok(r);
    }
    if diff.trim().is_empty() {
        return Ok(StageResult::failed(format!(
            "the agent ({agent_exit}) changed no file besides the reproduction test"
        )));
    }
    let files = diff.lines().filter(|l| l.starts_with("diff --git")).count();
    let mut summary = format!(
        "the agent ({agent_exit}) changed {files} file{}",
        if files == 1 { "" } else { "s" }
    );
    if !tampering.is_empty() {
        summary.push_str(&format!("; {}", tampering.join("; ")));
    }
    Ok(StageResult::passed(summary))
}
