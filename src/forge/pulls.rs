//! Draft pull requests: [`GitHub::create_draft_pr`] and [`GitHub::push_and_open_draft_pr`].

use std::path::Path;

use http::Method;
use serde::Deserialize;
use serde_json::json;

use super::github::Purpose;
use super::{ForgeError, GitHub, IssueRef, push_branch};

/// What to open. `head` is the pushed branch (`user:branch` for a fork), `base` the branch the
/// fix was cut from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrRequest {
    pub title: String,
    /// Markdown, usually the report.
    pub body: String,
    pub head: String,
    pub base: String,
    /// Labels to add; GitHub creates those that do not exist yet.
    pub labels: Vec<String>,
    /// Logins, or `org/team` for a team.
    pub reviewers: Vec<String>,
    /// The issue the fix answers: the body gets a `Closes ...` line that links it.
    pub linked_issue: Option<IssueRef>,
}

/// An opened (or already open) pull request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    pub number: u64,
    pub html_url: String,
    /// Steps after the creation that did not work (labels, reviewers) or notes (the pull
    /// request already existed): the pull request stands, the report should say these.
    pub warnings: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct PullJson {
    number: u64,
    html_url: String,
}

impl GitHub {
    /// Opens a **draft** pull request in `owner/repo`
    /// (<https://docs.github.com/en/rest/pulls/pulls#create-a-pull-request>, with
    /// `"draft": true`), then adds the labels
    /// (<https://docs.github.com/en/rest/issues/labels#add-labels-to-an-issue>) and requests the
    /// reviewers (<https://docs.github.com/en/rest/pulls/review-requests#request-reviewers-for-a-pull-request>).
    ///
    /// When GitHub answers 422 because a pull request for `head` already exists (a resumed
    /// run), that open pull request is returned with a warning. Failures to label or to request
    /// reviewers are warnings, not errors. Needs `pull_requests: write` (and `issues: write`
    /// for labels).
    pub fn create_draft_pr(
        &self,
        owner: &str,
        repo: &str,
        req: &PrRequest,
    ) -> Result<PullRequest, ForgeError> {
        self.block_on(self.create_draft_pr_async(owner, repo, req))
    }

    /// Pushes `req.head` (without its `user:` prefix) from `repo_path` to `remote` with
    /// [`push_branch`], and only when that succeeded opens the draft pull request with
    /// [`create_draft_pr`](Self::create_draft_pr).
    pub fn push_and_open_draft_pr(
        &self,
        repo_path: &Path,
        remote: &str,
        owner: &str,
        repo: &str,
        req: &PrRequest,
    ) -> Result<PullRequest, ForgeError> {
        let branch = req.head.rsplit(':').next().unwrap_or(&req.head);
        push_branch(repo_path, remote, branch, self.token())?;
        self.create_draft_pr(owner, repo, req)
    }

    async fn create_draft_pr_async(
        &self,
        owner: &str,
        repo: &str,
        req: &PrRequest,
    ) -> Result<PullRequest, ForgeError> {
        let body = pr_body(owner, repo, req);
        let payload = json!({
            "title": req.title,
            "body": body,
            "head": req.head,
            "base": req.base,
            "draft": true,
        });
        let pulls = format!("/repos/{owner}/{repo}/pulls");
        let answer = self.send(Method::POST, &pulls, Some(&payload)).await?;
        let mut warnings = Vec::new();
        let pr: PullJson = match answer.status {
            200..=299 => {
                serde_json::from_slice(&answer.body).map_err(|source| ForgeError::Decode {
                    url: answer.shown_url.clone(),
                    source,
                })?
            }
            422 if super::github::github_message(&answer.body).contains("already exists") => {
                let head = if req.head.contains(':') {
                    req.head.clone()
                } else {
                    format!("{owner}:{}", req.head)
                };
                let list = format!("{pulls}?state=open&head={}", encode_query(&head));
                let (open, _) = self
                    .json::<Vec<PullJson>>(Method::GET, &list, None, Purpose::CreatePull)
                    .await?;
                let existing = open
                    .into_iter()
                    .next()
                    .ok_or_else(|| self.status_error(&answer, Purpose::CreatePull))?;
                warnings.push(format!(
                    "a pull request for `{}` was already open: #{}",
                    req.head, existing.number
                ));
                existing
            }
            _ => return Err(self.status_error(&answer, Purpose::CreatePull)),
        };

        if !req.labels.is_empty() {
            let path = format!("/repos/{owner}/{repo}/issues/{}/labels", pr.number);
            let payload = json!({ "labels": req.labels });
            if let Err(e) = self
                .json::<serde_json::Value>(Method::POST, &path, Some(&payload), Purpose::Labels)
                .await
            {
                warnings.push(format!("labels were not added: {e}"));
            }
        }
        let (teams, users): (Vec<&String>, Vec<&String>) =
            req.reviewers.iter().partition(|r| r.contains('/'));
        if !req.reviewers.is_empty() {
            let team_slugs: Vec<&str> = teams.iter().filter_map(|t| t.rsplit('/').next()).collect();
            let path = format!(
                "/repos/{owner}/{repo}/pulls/{}/requested_reviewers",
                pr.number
            );
            let users: Vec<&str> = users.iter().map(|u| u.trim_start_matches('@')).collect();
            let payload = json!({ "reviewers": users, "team_reviewers": team_slugs });
            if let Err(e) = self
                .json::<serde_json::Value>(Method::POST, &path, Some(&payload), Purpose::Reviewers)
                .await
            {
                warnings.push(format!("reviewers were not requested: {e}"));
            }
        }
        Ok(PullRequest {
            number: pr.number,
            html_url: pr.html_url,
            warnings,
        })
    }
}

/// The body, with a closing keyword line for the linked issue
/// (<https://docs.github.com/en/issues/tracking-your-work-with-issues/using-issues/linking-a-pull-request-to-an-issue>).
pub(crate) fn pr_body(owner: &str, repo: &str, req: &PrRequest) -> String {
    let mut body = req.body.trim_end().to_string();
    if let Some(issue) = &req.linked_issue {
        let reference =
            if issue.owner.eq_ignore_ascii_case(owner) && issue.repo.eq_ignore_ascii_case(repo) {
                format!("#{}", issue.number)
            } else {
                issue.to_string()
            };
        if !body.is_empty() {
            body.push_str("\n\n");
        }
        body.push_str(&format!("Closes {reference}"));
    }
    body
}

/// Percent-encodes a query value (only what can appear in `owner:branch`).
pub(crate) fn encode_query(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_links_the_issue() {
        let mut req = PrRequest {
            body: "Fix.\n".into(),
            ..PrRequest::default()
        };
        assert_eq!(pr_body("o", "r", &req), "Fix.");
        req.linked_issue = Some(IssueRef::parse("o/r#5").unwrap());
        assert_eq!(pr_body("o", "r", &req), "Fix.\n\nCloses #5");
        req.linked_issue = Some(IssueRef::parse("x/y#5").unwrap());
        assert_eq!(pr_body("o", "r", &req), "Fix.\n\nCloses x/y#5");
        assert_eq!(encode_query("me:fixci/a b"), "me%3Afixci/a%20b");
    }
}
