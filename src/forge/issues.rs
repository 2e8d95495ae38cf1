//! Issues: the task text of `--issue O/R#N` ([`GitHub::fetch_issue`]) and the escalation issue
//! when every attempt failed ([`GitHub::escalate`]).

use http::Method;
use serde::Deserialize;
use serde_json::json;

use super::github::Purpose;
use super::{ForgeError, GitHub, IssueRef};

/// The label of escalation issues; an open issue with it and the same failure signature is
/// commented on instead of opening another.
pub const ESCALATION_LABEL: &str = "fixci-escalation";

/// An issue's text: untrusted input, to be fenced when put into a prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueText {
    pub title: String,
    /// Empty when the issue has no body.
    pub body: String,
    pub html_url: String,
}

/// Where an escalation went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escalation {
    pub issue_number: u64,
    /// The new issue, or the comment on the existing one.
    pub html_url: String,
    /// True when an open issue with the same signature got a comment instead of a new issue.
    pub commented_existing: bool,
}

#[derive(Debug, Deserialize)]
struct IssueJson {
    number: u64,
    title: String,
    body: Option<String>,
    html_url: String,
    /// Present when the "issue" is a pull request (the issues API lists both).
    pull_request: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct CommentJson {
    html_url: String,
}

impl GitHub {
    /// The issue's title, body and page
    /// (<https://docs.github.com/en/rest/issues/issues#get-an-issue>). Needs `issues: read` on
    /// private repositories.
    pub fn fetch_issue(&self, issue: &IssueRef) -> Result<IssueText, ForgeError> {
        let path = format!(
            "/repos/{}/{}/issues/{}",
            issue.owner, issue.repo, issue.number
        );
        let (i, _) =
            self.block_on(self.json::<IssueJson>(Method::GET, &path, None, Purpose::Issue))?;
        Ok(IssueText {
            title: i.title,
            body: i.body.unwrap_or_default(),
            html_url: i.html_url,
        })
    }

    /// Reports attempts that did not fix the failure. Lists the open issues labelled
    /// [`ESCALATION_LABEL`] (<https://docs.github.com/en/rest/issues/issues#list-repository-issues>);
    /// one whose body carries the marker of `signature` gets `body` as a comment
    /// (<https://docs.github.com/en/rest/issues/comments#create-an-issue-comment>); otherwise a
    /// new issue is opened with the label and the marker
    /// (<https://docs.github.com/en/rest/issues/issues#create-an-issue>). Needs `issues: write`.
    pub fn escalate(
        &self,
        owner: &str,
        repo: &str,
        title: &str,
        body: &str,
        signature: &str,
    ) -> Result<Escalation, ForgeError> {
        self.block_on(async {
            let marker = signature_marker(signature);
            if let Some(issue) = self.escalation_with(owner, repo, &marker).await? {
                let path = format!("/repos/{owner}/{repo}/issues/{}/comments", issue.number);
                let payload = json!({ "body": body });
                let (c, _) = self
                    .json::<CommentJson>(Method::POST, &path, Some(&payload), Purpose::WriteIssue)
                    .await?;
                return Ok(Escalation {
                    issue_number: issue.number,
                    html_url: c.html_url,
                    commented_existing: true,
                });
            }
            let payload = json!({
                "title": title,
                "body": format!("{}\n\n{marker}\n", body.trim_end()),
                "labels": [ESCALATION_LABEL],
            });
            let path = format!("/repos/{owner}/{repo}/issues");
            let (i, _) = self
                .json::<IssueJson>(Method::POST, &path, Some(&payload), Purpose::WriteIssue)
                .await?;
            Ok(Escalation {
                issue_number: i.number,
                html_url: i.html_url,
                commented_existing: false,
            })
        })
    }
}

impl GitHub {
    /// The open issue labelled [`ESCALATION_LABEL`] whose body contains `marker` (a hidden
    /// line such as [`signature_marker`]'s): `(number, page)`.
    pub fn find_escalation(
        &self,
        owner: &str,
        repo: &str,
        marker: &str,
    ) -> Result<Option<(u64, String)>, ForgeError> {
        self.block_on(async {
            Ok(self
                .escalation_with(owner, repo, marker)
                .await?
                .map(|i| (i.number, i.html_url)))
        })
    }

    async fn escalation_with(
        &self,
        owner: &str,
        repo: &str,
        marker: &str,
    ) -> Result<Option<IssueJson>, ForgeError> {
        let first = format!(
            "/repos/{owner}/{repo}/issues?state=open&labels={ESCALATION_LABEL}&per_page=100"
        );
        let pages = self
            .paginate::<Vec<IssueJson>>(&first, Purpose::WriteIssue, 10)
            .await?;
        Ok(pages.into_iter().flatten().find(|i| {
            i.pull_request.is_none() && i.body.as_deref().is_some_and(|b| b.contains(marker))
        }))
    }
}

/// The hidden line that marks the escalation issue of fix branch `branch`.
pub fn branch_marker(branch: &str) -> String {
    format!("<!-- fixci-branch: {} -->", branch.replace("--", "- -").replace('>', "&gt;"))
}

/// The hidden line that identifies an escalation issue's failure: an HTML comment, invisible
/// when rendered. The signature is put on one line and cannot close the comment.
pub fn signature_marker(signature: &str) -> String {
    let clean: String = signature
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace("--", "- -")
        .replace('>', "&gt;")
        .chars()
        .take(300)
        .collect();
    format!("<!-- fixci-signature: {clean} -->")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_one_line_and_cannot_close_early() {
        assert_eq!(
            signature_marker("AssertionError  at\ntest_x"),
            "<!-- fixci-signature: AssertionError at test_x -->"
        );
        let m = signature_marker("a --> b");
        assert_eq!(m.matches("-->").count(), 1, "{m}");
    }
}
