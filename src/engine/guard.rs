//! What the engine fixes before the first agent runs: the forge target ([`ForgeTarget`],
//! recorded once, used by `open-pr`); and which stages are followed by the check of the user's
//! repository ([`vcs::UserRepoGuard`]).

use git2::Repository;

use crate::forge::{self, ForgeTarget, RunRef};
use crate::pipeline::StageKind;

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
