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
    let title = format!("Fix from fixci run {}", st.run_id);
    let (name, commit) =
        vcs::branch_from_patch(&repo, base, &patch, slug, &title).map_err(|e| match e {
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
    outln!(
        "next steps:\n  git switch {name}\n  git push -u origin {name}\n  gh pr create --draft --base {} --head {name}",
        st.repo.base
    );
    Ok(0)
}
