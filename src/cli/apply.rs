//! `fixci apply`: put a run's fix on a new branch in any checkout, from its `fix.diff`, without
//! touching that checkout's files, index or current branch.

use std::path::PathBuf;

use clap::Args;

use crate::run_dir;
use crate::error::{Error, Result};
use crate::vcs;

/// Create branch `fixci/<slug>` in a checkout from a run's `fix.diff` (applied onto `base`) and
/// print the next steps. The checkout's working tree and index are not touched.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Run id, unique prefix, or `last`
    pub run: String,
    /// The checkout to create the branch in (default: the repository around the current directory)
    #[arg(long, value_name = "PATH")]
    pub repo: Option<PathBuf>,
    /// Folder holding run directories (default: `./outputs`)
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Runs `fixci apply`; returns the exit code.
pub fn execute(args: ApplyArgs) -> Result<u8> {
    let out = super::resume::out_dir(&args.out);
    let (dir, st) = run_dir::find(&out, &args.run)?;
    let patch = std::fs::read(dir.fix_diff_file()).unwrap_or_default();
    if patch.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(Error::usage(format!(
            "run `{}` has no fix to apply (status `{}`)",
            st.run_id,
            st.status.as_str()
        )));
    }
    let at = args
        .repo
        .clone()
        .unwrap_or_else(|| std::env::current_dir().unwrap_or_default());
    let repo = vcs::discover(&at).map_err(|e| {
        Error::usage(format!("`{}` is not inside a git repository", at.display())).source(e)
    })?;
    let base = vcs::resolve_commit(&repo, &st.repo.base).map_err(|e| {
        Error::usage(format!(
            "base `{}` not found in `{}`",
            st.repo.base,
            at.display()
        ))
        .source(e)
    })?;
    let slug = st
        .branch
        .as_deref()
        .and_then(|b| b.strip_prefix("fixci/"))
        .unwrap_or("fix");
    let message = run_commit_message(&st)
        .unwrap_or_else(|| format!("Fix from fixci run {}", st.run_id));
    let (name, commit) =
        vcs::branch_from_patch(&repo, base, &patch, slug, &message).map_err(|e| match e {
            vcs::PatchError::Invalid(g) => Error::usage(format!(
                "`{}` is not a valid patch",
                dir.fix_diff_file().display()
            ))
            .source(g),
            vcs::PatchError::DoesNotApply(g) => Error::usage(format!(
                "the fix of run `{}` does not apply to `{}` in `{}`",
                st.run_id,
                st.repo.base,
                at.display()
            ))
            .source(g),
            vcs::PatchError::Git(g) => Error::infra("cannot create the fix branch").source(g),
        })?;
    outln!(
        "created branch `{name}` at {} (base `{}` + fix.diff) in {}",
        &commit.to_string()[..10],
        st.repo.base,
        at.display()
    );
    let title = message.lines().next().unwrap_or_default();
    let q = crate::process::shell_quote;
    let body = dir.pr_body_file();
    let remote = first_remote(&repo);
    let mut steps = vec![format!("git switch {}", q(&name))];
    match &remote {
        Some(r) => steps.push(format!("git push -u {} {}", q(r), q(&name))),
        None => {
            steps.push("git remote add origin YOUR-REMOTE-URL".into());
            steps.push(format!("git push -u origin {}", q(&name)));
        }
    }
    steps.push(format!(
        "gh pr create --draft --base {} --head {} --title {}{}",
        q(&st.repo.base),
        q(&name),
        q(title),
        if body.is_file() {
            format!(" --body-file {}", q(&body.display().to_string()))
        } else {
            format!(" --body {}", q(&message))
        }
    ));
    outln!("next steps:");
    for s in steps {
        outln!("  {s}");
    }
    Ok(0)
}

/// The message of the run's own fix commit (title, root cause, evidence), read from the
/// repository the run committed in; `None` when that commit is not reachable any more.
fn run_commit_message(st: &crate::run_dir::RunState) -> Option<String> {
    let repo = vcs::open(&st.repo.root).ok()?;
    let id = git2::Oid::from_str(st.commit.as_deref()?).ok()?;
    let c = repo.find_commit(id).ok()?;
    c.message().ok().map(str::to_string)
}

/// The remote to push to: `origin` when the repository has it, else its first remote.
fn first_remote(repo: &git2::Repository) -> Option<String> {
    let names = repo.remotes().ok()?;
    let names: Vec<String> = names.iter().flatten().flatten().map(str::to_string).collect();
    names
        .iter()
        .find(|n| *n == "origin")
        .or_else(|| names.first())
        .cloned()
}
