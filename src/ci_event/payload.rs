//! The GitHub event payloads `fixci run --event` reads: serde structs for just the fields fixci
//! uses (everything else in the payload is ignored). Shapes:
//! <https://docs.github.com/en/webhooks/webhook-events-and-payloads> (`workflow_run`,
//! `issue_comment`, `pull_request_review`); real examples in `tests/data/events/`.

use std::path::Path;

use serde::Deserialize;

use crate::error::Error;

/// The repository an event happened in.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Repository {
    /// `owner/name`.
    pub full_name: String,
    /// The default branch (`main`).
    #[serde(default)]
    pub default_branch: Option<String>,
    /// The repository's web page (`https://github.com/owner/name`).
    #[serde(default)]
    pub html_url: Option<String>,
}

impl Repository {
    /// `(owner, name)` from `full_name`.
    pub fn owner_name(&self) -> (String, String) {
        match self.full_name.split_once('/') {
            Some((o, n)) => (o.to_string(), n.to_string()),
            None => (String::new(), self.full_name.clone()),
        }
    }
}

/// A user (`login`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Default)]
pub struct User {
    pub login: String,
}

/// `workflow_run` ([docs](https://docs.github.com/en/webhooks/webhook-events-and-payloads#workflow_run)).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct WorkflowRunEvent {
    /// `requested`, `in_progress` or `completed`.
    pub action: String,
    pub workflow_run: WorkflowRun,
    pub repository: Repository,
}

/// The run inside a `workflow_run` event.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct WorkflowRun {
    pub id: u64,
    /// The run's page: `https://github.com/O/R/actions/runs/ID`.
    pub html_url: String,
    /// The branch the run ran on (`None` for a tag or a deleted branch).
    pub head_branch: Option<String>,
    /// The commit the run ran on.
    pub head_sha: String,
    /// `success`, `failure`, `cancelled`, `timed_out`, `skipped`, `neutral`,
    /// `action_required`, `startup_failure`, `stale`; `None` until completed.
    pub conclusion: Option<String>,
    /// The workflow's name.
    #[serde(default)]
    pub name: Option<String>,
    /// Where the head commit lives: another `full_name` for a fork's pull request.
    #[serde(default)]
    pub head_repository: Option<Repository>,
}

/// `issue_comment` ([docs](https://docs.github.com/en/webhooks/webhook-events-and-payloads#issue_comment)).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct IssueCommentEvent {
    /// `created`, `edited` or `deleted`.
    pub action: String,
    pub issue: Issue,
    pub comment: Comment,
    pub repository: Repository,
}

/// The issue (or pull request: issues and pull requests share numbers) commented on.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Issue {
    pub number: u64,
    pub title: String,
    #[serde(default)]
    pub body: Option<String>,
    pub html_url: String,
    /// Present when the issue is a pull request.
    #[serde(default)]
    pub pull_request: Option<serde_json::Value>,
}

/// A comment, with its author's relation to the repository.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Comment {
    #[serde(default)]
    pub body: Option<String>,
    /// `OWNER`, `MEMBER`, `COLLABORATOR`, `CONTRIBUTOR`, `FIRST_TIMER`,
    /// `FIRST_TIME_CONTRIBUTOR`, `MANNEQUIN` or `NONE`.
    pub author_association: String,
    #[serde(default)]
    pub user: User,
    #[serde(default)]
    pub html_url: Option<String>,
}

/// `pull_request_review` ([docs](https://docs.github.com/en/webhooks/webhook-events-and-payloads#pull_request_review)).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct ReviewEvent {
    /// `submitted`, `edited` or `dismissed`.
    pub action: String,
    pub review: Review,
    pub pull_request: PullRequest,
    pub repository: Repository,
}

/// A review.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Review {
    pub id: u64,
    #[serde(default)]
    pub body: Option<String>,
    /// `approved`, `changes_requested`, `commented`, `dismissed` (lower case in webhooks;
    /// compared case-insensitively).
    pub state: String,
    pub author_association: String,
    #[serde(default)]
    pub user: User,
    #[serde(default)]
    pub html_url: Option<String>,
}

/// A pull request as events carry it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct PullRequest {
    pub number: u64,
    pub html_url: String,
    #[serde(default)]
    pub body: Option<String>,
    pub head: GitRef,
    pub base: GitRef,
}

/// A pull request's `head` or `base`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct GitRef {
    /// The branch name.
    #[serde(rename = "ref")]
    pub branch: String,
    pub sha: String,
}

/// One event fixci reacts to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    WorkflowRun(WorkflowRunEvent),
    IssueComment(IssueCommentEvent),
    Review(ReviewEvent),
}

impl Event {
    /// The event's repository.
    pub fn repository(&self) -> &Repository {
        match self {
            Event::WorkflowRun(e) => &e.repository,
            Event::IssueComment(e) => &e.repository,
            Event::Review(e) => &e.repository,
        }
    }

    /// The event's name as GitHub spells it (`GITHUB_EVENT_NAME`).
    pub fn name(&self) -> &'static str {
        match self {
            Event::WorkflowRun(_) => "workflow_run",
            Event::IssueComment(_) => "issue_comment",
            Event::Review(_) => "pull_request_review",
        }
    }
}

/// Reads the payload at `path`. The kind is `event_name` when given (`GITHUB_EVENT_NAME`),
/// else recognised by its top-level keys (`workflow_run`; `review`; `comment` with `issue`).
///
/// Errors (exit 2) name the file and, for a payload of a known kind missing a field fixci
/// needs, the JSON path: unreadable file, not JSON, an event kind fixci does not handle.
pub fn read(path: &Path, event_name: Option<&str>) -> Result<Event, Error> {
    let bad = || Error::usage(format!("invalid event payload `{}`", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::usage(format!("cannot read event payload `{}`", path.display())).source(e)
    })?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        bad().detail(format!(
            "line {}, column {}: {}",
            e.line(),
            e.column(),
            e.to_string().split(" at line").next().unwrap_or_default()
        ))
    })?;
    let kind = match event_name.filter(|n| !n.is_empty()) {
        Some(n) => n.to_string(),
        None if value.get("workflow_run").is_some() => "workflow_run".into(),
        None if value.get("review").is_some() => "pull_request_review".into(),
        None if value.get("comment").is_some() && value.get("issue").is_some() => {
            "issue_comment".into()
        }
        None => {
            return Err(bad()
                .detail("/: expected a `workflow_run`, `issue_comment` or `pull_request_review` payload (none of `workflow_run`, `review`, `comment` + `issue` is present)"));
        }
    };
    fn typed<T: serde::de::DeserializeOwned>(
        v: serde_json::Value,
        bad: impl Fn() -> Error,
    ) -> Result<T, Error> {
        serde_path_to_error::deserialize(v).map_err(|e| {
            let p = e.path().to_string().replace('.', "/");
            bad().detail(format!("/{}: {}", p.trim_start_matches('/'), e.inner()))
        })
    }
    Ok(match kind.as_str() {
        "workflow_run" => Event::WorkflowRun(typed(value, bad)?),
        "issue_comment" => Event::IssueComment(typed(value, bad)?),
        "pull_request_review" => Event::Review(typed(value, bad)?),
        other => {
            return Err(bad().detail(format!(
                "event `{other}` is not one fixci handles: expected `workflow_run`, `issue_comment` or `pull_request_review`"
            )));
        }
    })
}
