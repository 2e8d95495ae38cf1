//! What the engine fixes before the first agent runs and checks afterwards: the user's
//! repository ([`vcs::Fingerprint`], compared after every stage that runs agent-written code)
//! and the forge target ([`ForgeTarget`], recorded once, used by `open-pr`).

use git2::Repository;

use crate::error::Error;
use crate::forge::{self, ForgeTarget, RunRef};
use crate::pipeline::StageKind;
use crate::vcs::{self, Fingerprint};

use super::state::RunState;

/// The start of a run's failure reason when the user's repository changed.
pub const CHANGED_REASON: &str = "the agent changed your repository";

/// Most paths listed in the reason; the rest are counted.
const MAX_LISTED: usize = 20;

/// The fingerprint of the user's repository a run compares against, held in memory by the
/// process driving the run (a resume records the repository afresh: what the user did between
/// two processes is theirs).
#[derive(Debug, Default)]
pub struct UserRepoGuard(std::sync::Mutex<Option<Fingerprint>>);

impl UserRepoGuard {
    /// Records the user's repository at `root` (before the first agent, and again after fixci's
    /// own change to it: the exported fix branch).
    ///
    /// Errors (exit 3): the repository cannot be read.
    pub fn record(&self, root: &std::path::Path) -> Result<(), Error> {
        let fp = Fingerprint::record(root)
            .map_err(|e| Error::infra("cannot fingerprint the target repository").source(e))?;
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(fp);
        Ok(())
    }

    /// The failure reason when the user's repository differs from its recorded fingerprint:
    /// `the agent changed your repository: .git/config, README.md`; `None` when it is unchanged
    /// or nothing was recorded. A repository that can no longer be read counts as changed.
    pub fn changed(&self) -> Option<String> {
        let guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let before = guard.as_ref()?;
        let changed = match Fingerprint::record(&before.root) {
            Ok(now) => before.changed(&now),
            Err(e) => vec![format!("(the repository cannot be read: {e})")],
        };
        (!changed.is_empty()).then(|| reason(&changed))
    }
}

/// `the agent changed your repository: a, b, ... and N more`.
fn reason(changed: &[String]) -> String {
    let mut list = changed
        .iter()
        .take(MAX_LISTED)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if changed.len() > MAX_LISTED {
        list.push_str(&format!(" and {} more", changed.len() - MAX_LISTED));
    }
    format!("{CHANGED_REASON}: {list}")
}

/// True for the stage kinds that run code an agent wrote or may have touched: the agent itself,
/// the reproduction command, a user command in the worktree.
pub fn runs_agent_code(kind: StageKind) -> bool {
    matches!(
        kind,
        StageKind::Agent | StageKind::RunTest | StageKind::Command
    )
}

/// Fixes where the run publishes, before any agent runs: the run URL's repository, else the
/// GitHub repository of remote `remote` of `repo`; the API root from `--api-url` /
/// `GITHUB_API_URL` / the host; the remote's effective push URL (`pushurl`, else `url`, after
/// `insteadOf`). `None` when neither names a GitHub repository.
pub fn forge_target(
    repo: &Repository,
    remote: &str,
    run_url: Option<&str>,
    api_url: Option<&str>,
) -> Option<ForgeTarget> {
    let named = repo.find_remote(remote).ok();
    let url = named
        .as_ref()
        .and_then(|r| r.url().ok().map(str::to_string));
    let push_url = named.as_ref().and_then(|r| match r.pushurl() {
        Ok(Some(u)) => Some(u.to_string()),
        _ => r.url().ok().filter(|u| !u.is_empty()).map(str::to_string),
    });
    let (web_host, owner, name) = run_url
        .and_then(|u| RunRef::parse(u).ok())
        .map(|r| (r.web_host, r.owner, r.repo))
        .or_else(|| url.as_deref().and_then(crate::stages::github_slug))?;
    Some(ForgeTarget {
        api_base: forge::api_base(api_url, &web_host),
        web_host,
        owner,
        repo: name,
        push_url,
        remote: remote.to_string(),
    })
}

/// Brings the fix commit of the private clone into the user's repository as the run's branch
/// (see [`vcs::export_fix_branch`]) after checking with `guard` that the repository is
/// unchanged, and records its fingerprint again. Returns the branch created (`Ok(Ok)`), or the
/// reason the repository changed (`Ok(Err)`, nothing created).
///
/// Errors (exit 3): git failed.
pub fn export_fix(
    guard: &UserRepoGuard,
    st: &RunState,
    commit: git2::Oid,
) -> Result<Result<String, String>, Error> {
    if let Some(why) = guard.changed() {
        return Ok(Err(why));
    }
    let wt = st
        .worktree
        .clone()
        .ok_or_else(|| Error::infra("this run has no worktree"))?;
    let wanted = st.branch.clone().unwrap_or_else(|| "fixci/fix".into());
    let name = vcs::export_fix_branch(&st.repo.root, &wt, commit, &wanted).map_err(|e| {
        Error::infra("cannot bring the fix branch into the target repository").source(e)
    })?;
    guard.record(&st.repo.root)?;
    Ok(Ok(name))
}
