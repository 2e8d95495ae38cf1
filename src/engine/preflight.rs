//! Pre-flight: everything a run can check before it writes anything. `fixci run` calls it
//! before it creates the run directory, `fixci run --dry-run` and `fixci validate` call the same
//! functions, so the three agree.
//!
//! - [`programs`]: every agent CLI the plan starts (the run's agent, and each attempt of every
//!   attempt ladder) and every test runner (the spec's test command, `command` stages), found
//!   as the OS would start them (see [`needs::which`]); nothing is run.
//! - [`repository`]: the base branch, the spec's `commit`, and `existing-test-path` present (and
//!   not through a symlink) at the start commit.

use std::path::Path;

use super::needs::{self, Need};
use crate::error::Error;
use crate::spec::LoadedSpec;
use crate::vcs;

use super::RunRequest;

/// Checks that every program the run will start exists.
///
/// Errors: a missing agent CLI or test runner (exit 3), naming the program, why the plan needs
/// it, and how to install it (the preset's install hint); a bad ladder (exit 2).
pub fn programs(req: &RunRequest) -> Result<(), Error> {
    // Runners as `fixci doctor` finds them; agents from the request itself (the run's agent as
    // resolved, with a replay variant's or `--agent`'s, and each ladder attempt's).
    let mut plan = needs::plan_for_spec(req.spec.clone(), req.pipeline.clone(), &[])?;
    plan.agents = vec![needs::AgentTarget {
        agent: req.agent.clone(),
        why: "the run's agent".into(),
        need: Need::Yes,
    }];
    if req.agent_flag.is_none() {
        for def in &req.pipeline.pipeline.stages {
            if def.kind != crate::pipeline::StageKind::Attempts
                || (def.agent.is_none() && def.model.is_none())
            {
                continue;
            }
            let max = super::eval_count(req, def.max.as_ref(), crate::defaults::MAX_ATTEMPTS, "`max`")? as u32;
            for a in super::ladder::plan(req, def, max)? {
                plan.agents.push(needs::AgentTarget {
                    agent: a.agent,
                    why: format!("attempt {} of `{}`", a.number, def.id),
                    need: Need::Yes,
                });
            }
        }
    }
    for t in plan.agents.iter().filter(|t| t.need == Need::Yes) {
        let program = t.agent.argv.first().cloned().unwrap_or_default();
        if !found(&program, req, &t.agent.env) {
            let install = crate::agent::probe(&t.agent.name).and_then(|p| p.install);
            let label = if t.agent.name == "command" {
                format!("agent command `{program}`")
            } else {
                format!("agent CLI `{program}` ({})", t.agent.name)
            };
            return Err(Error::infra(format!(
                "{label} not found on PATH (needed for {}); nothing was written",
                t.why
            ))
            .hint(match install {
                Some(i) => format!(
                    "install it: `{i}`; or choose another agent (`--agent NAME` or the spec's `agent`)"
                ),
                None => "install it, or fix the command line in the spec's `agent`".into(),
            }));
        }
    }
    for r in plan.runners.iter().filter(|r| r.need == Need::Yes) {
        if !found(&r.program, req, &Default::default()) {
            return Err(Error::infra(format!(
                "test runner `{}` not found on PATH (needed by {}); nothing was written",
                r.program, r.why
            ))
            .hint(format!(
                "install `{}`, or change the command that starts it",
                r.program
            )));
        }
    }
    Ok(())
}

/// True when `program` can be started: a bare name on the `PATH` the child gets (the agent's or
/// the run's `PATH` when they set one, else fixci's), an absolute path that is an executable
/// file. A relative path with a `/` is resolved from the worktree, which does not exist yet:
/// it is taken as found.
fn found(
    program: &str,
    req: &RunRequest,
    agent_env: &std::collections::BTreeMap<String, String>,
) -> bool {
    if program.contains('/') {
        return !Path::new(program).is_absolute() || needs::which(program).is_some();
    }
    let path = agent_env.get("PATH").cloned().or_else(|| {
        req.env
            .iter()
            .rev()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.clone())
    });
    match path {
        Some(p) => std::env::split_paths(&p)
            .any(|d| needs::which(&d.join(program).display().to_string()).is_some()),
        None => needs::which(program).is_some(),
    }
}

/// The commits a run starts from.
#[derive(Debug, Clone, Copy)]
pub struct Commits {
    /// `base` resolved.
    pub base: git2::Oid,
    /// Where the reproduction starts: the spec's `commit`, else `head` (the CI run's head
    /// commit, when the repository has it), else `base`.
    pub start: git2::Oid,
}

/// The repository-aware checks of `spec` against `repo` (at `root`).
///
/// Errors (exit 2, naming the spec and the JSON path): `base` or `commit` not found;
/// `existing-test-path` missing at the start commit or reached through a symlink. Exit 3: the
/// start commit cannot be read.
pub fn repository(
    spec: &LoadedSpec,
    repo: &git2::Repository,
    root: &Path,
    head: Option<git2::Oid>,
) -> Result<Commits, Error> {
    let base = vcs::resolve_commit(repo, &spec.spec.base).map_err(|e| {
        Error::usage(format!(
            "base branch `{}` not found in `{}`",
            spec.spec.base,
            root.display()
        ))
        .source(e)
        .hint("set `base` in the spec to the branch the fix should be cut from")
    })?;
    let start = match &spec.spec.commit {
        Some(c) => vcs::resolve_commit(repo, c)
            .map_err(|e| Error::usage(format!("commit `{c}` not found")).source(e))?,
        None => head.unwrap_or(base),
    };
    if let Some(t) = &spec.spec.existing_test_path {
        let tree = repo
            .find_commit(start)
            .and_then(|c| c.tree())
            .map_err(|e| Error::infra("cannot read the start commit").source(e))?;
        if let Some(link) = super::symlink_in_tree(&tree, t) {
            return Err(Error::usage(format!("invalid job spec `{}`", spec.path.display()))
                .detail(format!("/existing-test-path: `{t}` goes through the symlink `{link}`; give the real path inside the repository")));
        }
        if tree.get_path(Path::new(t)).is_err() {
            return Err(
                Error::usage(format!("invalid job spec `{}`", spec.path.display())).detail(
                    format!(
                        "/existing-test-path: `{t}` does not exist in `{}` at {}",
                        root.display(),
                        &start.to_string()[..10]
                    ),
                ),
            );
        }
    }
    Ok(Commits { base, start })
}

/// What [`without_writing`] found.
#[derive(Debug, Default)]
pub struct Findings {
    /// Programs the run would start that are missing (`fixci run` stops on the first, exit 3).
    pub missing: Vec<Error>,
    /// Checks that could not run, with why (e.g. the repository is not reachable).
    pub not_checked: Vec<String>,
}

/// The pre-flight of `fixci run --dry-run` and `fixci validate`: the attempt ladders, the
/// programs, and the repository-aware checks when the repository is reachable without cloning
/// or fetching (a local path, or a URL already in fixci's cache).
///
/// Errors (exit 2): a bad ladder; a repository check that fails (see [`repository`]).
/// With `repo_from_cwd` false (`fixci validate`), a spec that names no `repo` gets no repository
/// checks (its run uses the repository around the current directory of that time).
pub fn without_writing(req: &RunRequest, repo_from_cwd: bool) -> Result<Findings, Error> {
    super::ladder::check(req)?;
    let mut f = Findings::default();
    if let Err(e) = programs(req) {
        if e.exit_code() == crate::exit_codes::USAGE {
            return Err(e);
        }
        f.missing.push(e);
    }
    const REPO_CHECKS: &str = "repository checks (base branch, commit, existing-test-path)";
    if !repo_from_cwd && req.repo_flag.is_none() && req.spec.spec.repo.is_none() {
        f.not_checked.push(format!(
            "{REPO_CHECKS}: the spec names no `repo` (a run uses the repository around its current directory)"
        ));
        return Ok(f);
    }
    let source = match crate::run_dir::workspace::resolve_repo(&req.spec, req.repo_flag.as_deref(), false) {
        Ok(s) => s,
        Err(e) => {
            f.not_checked.push(format!("{REPO_CHECKS}: {}", e.message));
            return Ok(f);
        }
    };
    let repo = match vcs::open(&source.root).or_else(|_| vcs::discover(&source.root)) {
        Ok(r) => r,
        Err(_) => {
            f.not_checked.push(format!(
                "{REPO_CHECKS}: `{}` is not reachable without {}",
                source.source,
                if source.cloned { "cloning it" } else { "a repository there" }
            ));
            return Ok(f);
        }
    };
    if matches!(req.spec.logs, crate::spec::LogsInput::Url(_))
        && req.spec.spec.commit.is_none()
        && req.spec.spec.existing_test_path.is_some()
    {
        // The start commit is the CI run's head, known only once its URL is fetched.
        f.not_checked.push(
            "existing-test-path at the CI run's head commit (known once the run's URL is fetched)".into(),
        );
        let mut spec = req.spec.clone();
        spec.spec.existing_test_path = None;
        repository(&spec, &repo, &source.root, None)?;
    } else {
        repository(&req.spec, &repo, &source.root, None)?;
    }
    Ok(f)
}
