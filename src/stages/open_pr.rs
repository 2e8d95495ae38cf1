//! `open-pr`: publishes the fix. With a forge token (and no `--no-pr`), it pushes the fix branch
//! with git2 to the spec's remote (default `origin`) and then opens a **draft** PR whose body is
//! the report's summary. Without a token, or with `--no-pr`, it writes the offline proposal:
//! `pr.md` (the body, exactly as it would be sent) and the exact `git push` and `gh pr create --draft` commands. A
//! failed publication still leaves the proposal, and is an infrastructure error (exit 3).

use super::{Stage, StageCtx, StageResult};
use crate::error::{Error, io_error};
use crate::forge::{self, ForgeTarget, IssueRef, PrRequest};
use crate::process::shell_quote;
use crate::run_dir::{Event, PrState, StageStatus};

/// The `open-pr` stage.
pub struct OpenPr;

/// `owner/repo` and web host of a GitHub remote URL (`https://HOST/O/R(.git)`,
/// `git@HOST:O/R(.git)`, `ssh://git@HOST/O/R`).
pub fn github_slug(url: &str) -> Option<(String, String, String)> {
    let re =
        regex::Regex::new(r"^(?:[a-z+]+://)?(?:[^@/]+@)?([^/:]+)[:/]([^/]+)/([^/]+?)(?:\.git)?/?$")
            .expect("valid regex");
    let c = re.captures(url.trim())?;
    Some((c[1].to_string(), c[2].to_string(), c[3].to_string()))
}

impl Stage for OpenPr {
    fn run(&self, cx: &mut StageCtx<'_>) -> Result<StageResult, Error> {
        if cx.env.cancelled() {
            return Ok(StageResult::new(
                StageStatus::Skipped,
                "interrupted: nothing is published",
            ));
        }
        if cx.st().status == crate::run_dir::Status::Escalated {
            return escalate(cx);
        }
        if cx.st().commit.is_none() || cx.st().status != crate::run_dir::Status::Running {
            return Ok(StageResult::new(
                StageStatus::Skipped,
                "no fix commit to propose",
            ));
        }
        let spec = cx.env.spec();
        let branch = cx.st().branch.clone().unwrap_or_default();
        let title = crate::report::title(cx.st(), spec);
        let mut body = crate::redact::redact(&crate::report::pr_body(cx.st(), spec));
        if let Some(ci) = &spec.ci {
            // The PR carries the branch's origin, so no state store is needed (`ci_event`).
            let mut block = ci.block.clone();
            if block.branch.is_empty() {
                block.branch = cx.st().branch.clone().unwrap_or_default();
            }
            body = format!("{}\n\n{}\n", body.trim_end(), block.render());
        }
        // One body file, exactly as it would be sent; the title goes on the command line.
        let body_file = cx.env.run_dir.pr_body_file();
        std::fs::write(&body_file, &body).map_err(|e| io_error("write", &body_file, e))?;
        let remote = spec.spec.pr.remote_name();
        let root = cx.st().repo.root.display().to_string();
        let mut gh = format!(
            "gh pr create --draft --base {} --head {} --title {} --body-file {}",
            shell_quote(&cx.st().repo.base),
            shell_quote(&branch),
            shell_quote(&title),
            shell_quote(&body_file.display().to_string())
        );
        if !spec.spec.pr.draft {
            gh = gh.replace(" --draft", "");
        }
        for l in &spec.spec.pr.labels {
            gh.push_str(&format!(" --label {}", shell_quote(l)));
        }
        for r in &spec.spec.pr.reviewers {
            gh.push_str(&format!(" --reviewer {}", shell_quote(r)));
        }
        let mut commands = publish_push_commands(
            &cx.st().repo.root,
            &cx.st().repo.source,
            &remote,
            &branch,
        );
        commands.push(format!("cd {} && {gh}", shell_quote(&root)));
        let proposal = PrState {
            mode: "proposal".into(),
            branch: branch.clone(),
            title: title.clone(),
            body_file,
            commands,
            url: None,
        };
        cx.emit(Event::PrRecorded {
            pr: proposal.clone(),
        });

        let target = forge_target(cx);
        let token = target
            .as_ref()
            .and_then(|t| forge::resolve_token_for(&t.web_host));
        let skip = if cx.env.req.no_pr {
            Some("`--no-pr`")
        } else if target.is_none() {
            Some(
                if cx
                    .st()
                    .repo
                    .root
                    .starts_with(crate::run_dir::workspace::cache_dir())
                {
                    "the repository was cloned from a bundle or URL with no GitHub remote"
                } else {
                    "the remote is not a GitHub repository"
                },
            )
        } else if token.is_none() {
            Some("no forge token (`GITHUB_TOKEN`, `GH_TOKEN` or `gh auth token`)")
        } else {
            None
        };
        if let Some(why) = skip {
            return Ok(StageResult::passed(format!(
                "PR proposal written ({why}): push `{branch}` and open the draft PR with the commands in the report"
            )));
        }
        let target = target.expect("checked above");
        let client = forge::GitHub::new(&target.api_base, token.clone()).map_err(Error::from)?;
        let req = PrRequest {
            title,
            body,
            head: branch.clone(),
            base: cx.st().repo.base.clone(),
            labels: spec.spec.pr.labels.clone(),
            reviewers: spec.spec.pr.reviewers.clone(),
            linked_issue: spec
                .spec
                .issue
                .as_deref()
                .and_then(|i| IssueRef::parse(i).ok()),
        };
        let offline = |e: forge::ForgeError| {
            Error::from(e).detail(
                "the offline proposal (pr.md and the commands to publish it) is in the report",
            )
        };
        // The push goes to the URL recorded before any agent ran, never to one read now.
        let Some(push_url) = target.push_url.as_deref() else {
            return Err(Error::infra(format!(
                "cannot push `{branch}`: the remote `{}` did not exist when the run started",
                target.remote
            )));
        };
        forge::push_to_url(&cx.st().repo.root, push_url, &branch, token.as_ref())
            .map_err(offline)?;
        // An event's later attempt: its PR exists; it gets a comment, not a second PR.
        if let Some((number, url)) = spec.ci.as_ref().and_then(|c| c.pr.clone()) {
            let attempt = spec.ci.as_ref().map_or(0, |c| c.attempt);
            let note = crate::redact::redact(&format!(
                "fixci pushed attempt {attempt} to `{branch}` (commit {}), verified locally; CI will tell.\n\n{}",
                cx.st().commit.as_deref().map_or("?", |c| &c[..c.len().min(10)]),
                crate::report::summary(cx.st())
            ));
            client
                .comment(&target.owner, &target.repo, number, &note)
                .map_err(offline)?;
            cx.emit(Event::PrRecorded {
                pr: PrState {
                    mode: "opened".into(),
                    url: Some(url.clone()),
                    ..proposal
                },
            });
            return Ok(StageResult::passed(format!(
                "attempt {attempt} pushed to `{branch}`; PR #{number} commented: {url}"
            )));
        }
        let pr = client
            .create_draft_pr(&target.owner, &target.repo, &req)
            .map_err(offline)?;
        cx.emit(Event::PrRecorded {
            pr: PrState {
                mode: "opened".into(),
                url: Some(pr.html_url.clone()),
                ..proposal
            },
        });
        let warnings = if pr.warnings.is_empty() {
            String::new()
        } else {
            format!(" (warnings: {})", pr.warnings.join("; "))
        };
        Ok(StageResult::passed(format!(
            "draft PR #{} opened: {}{warnings}",
            pr.number, pr.html_url
        )))
    }
}

/// The commands that push `branch` from the repository at `root`, matching its remotes: a push
/// to `remote` when the repository has it; otherwise a `git remote add` of it first (with a
/// placeholder URL to fill in); for a repository fixci cloned from a bundle, a push to a
/// placeholder URL (a bundle's clone has no remote to push to).
fn publish_push_commands(
    root: &std::path::Path,
    source: &str,
    remote: &str,
    branch: &str,
) -> Vec<String> {
    let r = shell_quote(&root.display().to_string());
    if source.ends_with(".bundle") {
        return vec![format!(
            "git -C {r} push YOUR-REMOTE-URL {}",
            shell_quote(branch)
        )];
    }
    let has_remote = crate::vcs::open(root)
        .ok()
        .is_some_and(|repo| repo.find_remote(remote).is_ok());
    let mut out = Vec::new();
    if !has_remote {
        out.push(format!(
            "git -C {r} remote add {} YOUR-REMOTE-URL",
            shell_quote(remote)
        ));
    }
    out.push(format!(
        "git -C {r} push {} {}",
        shell_quote(remote),
        shell_quote(branch)
    ));
    out
}

/// Where a PR or issue for this run goes: the target recorded before any agent ran (the run
/// URL's repository, else the remote's GitHub URL as it was then); git config is not read here.
fn forge_target(cx: &StageCtx<'_>) -> Option<ForgeTarget> {
    cx.st().forge.clone()
}

/// After exhausted attempts, with `pr.escalate`: opens an issue labelled `fixci-escalation` with
/// the attempts' history, or comments on the open one with the same failure signature.
fn escalate(cx: &mut StageCtx<'_>) -> Result<StageResult, Error> {
    let spec = cx.env.spec();
    if !spec.spec.pr.escalate {
        return Ok(StageResult::new(
            StageStatus::Skipped,
            "escalated; `pr.escalate` is off, so no escalation issue",
        ));
    }
    let Some(ForgeTarget {
        web_host: host,
        owner,
        repo,
        api_base,
        ..
    }) = forge_target(cx)
    else {
        return Ok(StageResult::new(
            StageStatus::Skipped,
            "escalated; no GitHub repository to open an escalation issue in",
        ));
    };
    let Some(token) = forge::resolve_token_for(&host) else {
        return Ok(StageResult::new(
            StageStatus::Skipped,
            "escalated; no forge token for an escalation issue",
        ));
    };
    let client = forge::GitHub::new(&api_base, Some(token)).map_err(Error::from)?;
    let title = format!(
        "fixci could not fix: {}",
        crate::report::title(cx.st(), spec)
    );
    let mut body = format!(
        "{}\n\n{}",
        crate::report::summary(cx.st()),
        crate::report::attempts_table(cx.st())
    );
    body.push_str(&format!(
        "\nRun `{}`; full report in its `report.md`.\n",
        cx.st().run_id
    ));
    let body = crate::redact::redact(&body);
    let signature = cx
        .st()
        .logs
        .as_ref()
        .and_then(|l| l.distilled.signature.clone())
        .unwrap_or_else(|| crate::report::title(cx.st(), spec));
    let e = client
        .escalate(&owner, &repo, &title, &body, &signature)
        .map_err(Error::from)?;
    let what = if e.commented_existing {
        "commented on escalation issue"
    } else {
        "opened escalation issue"
    };
    Ok(StageResult::passed(format!(
        "{what} #{}: {}",
        e.issue_number, e.html_url
    )))
}

#[cfg(test)]
mod tests {
    use super::github_slug;

    #[test]
    fn remote_urls() {
        let s = |u: &str| github_slug(u).map(|(h, o, r)| format!("{h} {o} {r}"));
        assert_eq!(
            s("https://github.com/acme/api.git").as_deref(),
            Some("github.com acme api")
        );
        assert_eq!(
            s("git@github.com:acme/api.git").as_deref(),
            Some("github.com acme api")
        );
        assert_eq!(
            s("ssh://git@ghe.corp/acme/api").as_deref(),
            Some("ghe.corp acme api")
        );
        assert_eq!(s("/srv/git/api.git"), None);
    }
}
