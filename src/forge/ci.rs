//! The forge calls of `fixci run --event` (see `crate::ci_event`): read a pull request, find a
//! fix branch's open pull request, a commit's failed run and a review's line comments; comment
//! on an issue or pull request; mark a draft pull request ready for review.

use http::Method;
use serde::Deserialize;
use serde_json::json;

use super::github::Purpose;
use super::{ForgeError, GitHub};
use crate::ci_event::PrFacts;

#[derive(Debug, Deserialize)]
struct PullJson {
    number: u64,
    html_url: String,
    #[serde(default)]
    node_id: String,
    #[serde(default)]
    draft: bool,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    state: String,
    head: RefJson,
    base: RefJson,
}

#[derive(Debug, Deserialize)]
struct RefJson {
    #[serde(rename = "ref")]
    branch: String,
    sha: String,
    /// The head's repository (`null` when a fork was deleted).
    #[serde(default)]
    repo: Option<RepoJson>,
}

#[derive(Debug, Deserialize)]
struct RepoJson {
    full_name: String,
}

#[derive(Debug, Deserialize)]
struct BodyJson {
    #[serde(default)]
    body: Option<String>,
}

impl From<PullJson> for PrFacts {
    fn from(p: PullJson) -> PrFacts {
        PrFacts {
            number: p.number,
            html_url: p.html_url,
            node_id: p.node_id,
            draft: p.draft,
            head_branch: p.head.branch,
            head_sha: p.head.sha,
            base_branch: p.base.branch,
            body: p.body.unwrap_or_default(),
            state: p.state,
        }
    }
}

#[derive(Debug, Deserialize)]
struct RunsJson {
    workflow_runs: Vec<RunJson>,
}

#[derive(Debug, Deserialize)]
struct RunJson {
    html_url: String,
}

#[derive(Debug, Deserialize)]
struct ReviewCommentJson {
    #[serde(default)]
    path: String,
    #[serde(default)]
    line: Option<u64>,
    #[serde(default)]
    body: String,
}

#[derive(Debug, Deserialize)]
struct CommentJson {
    html_url: String,
}

impl GitHub {
    /// Pull request `number` (<https://docs.github.com/en/rest/pulls/pulls#get-a-pull-request>).
    pub fn pull(&self, owner: &str, repo: &str, number: u64) -> Result<PrFacts, ForgeError> {
        let path = format!("/repos/{owner}/{repo}/pulls/{number}");
        let (p, _) =
            self.block_on(self.json::<PullJson>(Method::GET, &path, None, Purpose::Issue))?;
        Ok(p.into())
    }

    /// The open pull request whose head is `branch` of `owner/repo`, if any
    /// (<https://docs.github.com/en/rest/pulls/pulls#list-pull-requests>, `head=owner:branch`).
    pub fn open_pull_for_branch(
        &self,
        owner: &str,
        repo: &str,
        branch: &str,
    ) -> Result<Option<PrFacts>, ForgeError> {
        let path = format!(
            "/repos/{owner}/{repo}/pulls?state=open&head={}",
            super::pulls::encode_query(&format!("{owner}:{branch}"))
        );
        let (list, _) =
            self.block_on(self.json::<Vec<PullJson>>(Method::GET, &path, None, Purpose::Issue))?;
        Ok(list.into_iter().next().map(PrFacts::from))
    }

    /// The open pull requests of `owner/repo` whose head is a branch of `owner/repo` itself (not
    /// a fork's) starting with `prefix` (`fixci/`), bodies included
    /// (<https://docs.github.com/en/rest/pulls/pulls#list-pull-requests>, `state=open`, every
    /// page up to 1,000 pull requests).
    pub fn open_pulls_with_head_prefix(
        &self,
        owner: &str,
        repo: &str,
        prefix: &str,
    ) -> Result<Vec<PrFacts>, ForgeError> {
        let first = format!("/repos/{owner}/{repo}/pulls?state=open&per_page=100");
        let pages = self.block_on(self.paginate::<Vec<PullJson>>(&first, Purpose::Issue, 10))?;
        let own = format!("{owner}/{repo}");
        Ok(pages
            .into_iter()
            .flatten()
            .filter(|p| p.head.branch.starts_with(prefix))
            .filter(|p| {
                p.head
                    .repo
                    .as_ref()
                    .is_some_and(|r| r.full_name.eq_ignore_ascii_case(&own))
            })
            .map(PrFacts::from)
            .collect())
    }

    /// The bodies of the comments on issue or pull request `number`, oldest first
    /// (<https://docs.github.com/en/rest/issues/comments#list-issue-comments>, every page up to
    /// 1,000 comments).
    pub fn comment_bodies(
        &self,
        owner: &str,
        repo: &str,
        number: u64,
    ) -> Result<Vec<String>, ForgeError> {
        let first = format!("/repos/{owner}/{repo}/issues/{number}/comments?per_page=100");
        let pages = self.block_on(self.paginate::<Vec<BodyJson>>(&first, Purpose::Issue, 10))?;
        Ok(pages.into_iter().flatten().filter_map(|c| c.body).collect())
    }

    /// The page of the latest failed workflow run of commit `sha`
    /// (<https://docs.github.com/en/rest/actions/workflow-runs#list-workflow-runs-for-a-repository>,
    /// `head_sha` and `status=failure`). Needs `actions: read`.
    pub fn failed_run_for(
        &self,
        owner: &str,
        repo: &str,
        sha: &str,
    ) -> Result<Option<String>, ForgeError> {
        let path =
            format!("/repos/{owner}/{repo}/actions/runs?head_sha={sha}&status=failure&per_page=1");
        let (runs, _) =
            self.block_on(self.json::<RunsJson>(Method::GET, &path, None, Purpose::Run))?;
        Ok(runs.workflow_runs.into_iter().next().map(|r| r.html_url))
    }

    /// A review's line comments as `path:line: body` lines
    /// (<https://docs.github.com/en/rest/pulls/reviews#list-comments-for-a-pull-request-review>).
    pub fn review_comments(
        &self,
        owner: &str,
        repo: &str,
        number: u64,
        review: u64,
    ) -> Result<String, ForgeError> {
        let path =
            format!("/repos/{owner}/{repo}/pulls/{number}/reviews/{review}/comments?per_page=100");
        let (list, _) = self.block_on(self.json::<Vec<ReviewCommentJson>>(
            Method::GET,
            &path,
            None,
            Purpose::Issue,
        ))?;
        Ok(list
            .into_iter()
            .map(|c| match c.line {
                Some(l) => format!("{}:{l}: {}", c.path, c.body.trim()),
                None => format!("{}: {}", c.path, c.body.trim()),
            })
            .collect::<Vec<_>>()
            .join("\n"))
    }

    /// Comments `body` on issue or pull request `number`
    /// (<https://docs.github.com/en/rest/issues/comments#create-an-issue-comment>); returns the
    /// comment's page. Needs `issues: write` (or `pull_requests: write` on a pull request).
    pub fn comment(
        &self,
        owner: &str,
        repo: &str,
        number: u64,
        body: &str,
    ) -> Result<String, ForgeError> {
        let path = format!("/repos/{owner}/{repo}/issues/{number}/comments");
        let payload = json!({ "body": body });
        let (c, _) = self.block_on(self.json::<CommentJson>(
            Method::POST,
            &path,
            Some(&payload),
            Purpose::WriteIssue,
        ))?;
        Ok(c.html_url)
    }

    /// Marks a draft pull request ready for review. The REST API cannot; GraphQL's
    /// `markPullRequestReadyForReview` mutation can
    /// (<https://docs.github.com/en/graphql/reference/mutations#markpullrequestreadyforreview>),
    /// at `/graphql` beside the REST root (`/api/graphql` for a GitHub Enterprise `/api/v3`
    /// root). Needs `pull_requests: write`.
    pub fn mark_ready_for_review(&self, node_id: &str) -> Result<(), ForgeError> {
        let base = self.api_base();
        let url = match base.strip_suffix("/api/v3") {
            Some(host) => format!("{host}/api/graphql"),
            None => format!("{base}/graphql"),
        };
        let payload = json!({
            "query": "mutation($id: ID!) { markPullRequestReadyForReview(input: {pullRequestId: $id}) { pullRequest { isDraft } } }",
            "variables": { "id": node_id },
        });
        let (v, _) = self.block_on(self.json::<serde_json::Value>(
            Method::POST,
            &url,
            Some(&payload),
            Purpose::CreatePull,
        ))?;
        if let Some(errors) = v.get("errors").and_then(|e| e.as_array()) {
            let msg: Vec<String> = errors
                .iter()
                .filter_map(|e| {
                    e.get("message")
                        .and_then(|m| m.as_str())
                        .map(str::to_string)
                })
                .collect();
            return Err(ForgeError::Http {
                status: 200,
                url,
                message: msg.join("; "),
                hint: "GitHub refused to mark the pull request ready for review (the token needs `pull_requests: write`)".into(),
            });
        }
        Ok(())
    }
}
