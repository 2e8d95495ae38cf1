//! `fixci run --event`: what to do about one GitHub event, decided purely from the payload and
//! what git and the forge say (no I/O here; `cli::ci` gathers the facts and acts).
//!
//! The five self-healing cases of a completed `workflow_run`:
//! 1. a failure on a normal branch opens a fix branch named after its failure signature with
//!    attempt 1; when a fix branch (and its open PR) already addresses the same signature, the
//!    PR gets one comment naming the new run instead ([`Decision::SameFailure`]);
//! 2. a failure on a fix branch makes the next attempt on the same branch, with the new failure
//!    as feedback; it stops when a person committed on the branch (the PR gets a comment);
//! 3. a success on a fix branch finishes the PR (ready for review with `pr.ready-on-green`,
//!    else a comment that CI is green);
//! 4. a success on a normal branch does nothing;
//! 5. a failure after the last attempt opens one escalation issue per failure signature (a
//!    later branch of the same failure comments on it), never a second.
//!
//! `issue_comment` `/fixci [text]` (from `OWNER`, `MEMBER` or `COLLABORATOR` only) and a
//! `pull_request_review` asking for changes on a fixci PR are steers: the next attempt, or a
//! new fix for a PR's failing checks or an issue's task.
//!
//! Loop guard: attempts are counted from the branch's `Fixci-Attempt` trailers, so no more than
//! `max-attempts` are ever made on one branch, whichever CI runs trigger them; a run for a
//! commit that is no longer the branch tip is ignored.

pub mod payload;
pub mod state;

pub use payload::Event;
pub use state::{BranchCommit, BranchHistory, PrBlock};

/// What an engine run started by an event carries (`LoadedSpec::ci`): read by the commit
/// stages (trailers), the `open-pr` stage (hidden block; an existing PR gets a comment instead
/// of a new one) and the engine (the branch it continues).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CiRun {
    /// The attempt number on the fix branch (1 for a new branch).
    pub attempt: u32,
    /// The failed run (or review) this attempt answers: the `Fixci-Run` trailer.
    pub run_url: String,
    /// The existing fix branch the commit goes on top of (attempts after the first).
    pub continue_branch: Option<String>,
    /// The fix branch's open PR: `(number, page)`.
    pub pr: Option<(u64, String)>,
    /// The hidden block of a new PR's body.
    pub block: PrBlock,
}

impl CiRun {
    /// Attempt 1 on a new fix branch from `base`, answering `run_url` (a run, or an issue's
    /// page); `original_run` goes into the PR's hidden block. `failure` is the failure's
    /// `(signature, branch)` when known: the branch is named after the signature (see
    /// `cli::ci::fix_branch_name`), and the signature goes into the hidden block.
    pub fn first(
        run_url: &str,
        base: &str,
        original_run: Option<&str>,
        max_attempts: u32,
        failure: Option<(&str, &str)>,
    ) -> CiRun {
        CiRun {
            attempt: 1,
            run_url: run_url.to_string(),
            continue_branch: None,
            pr: None,
            block: PrBlock {
                branch: failure.map(|f| f.1.to_string()).unwrap_or_default(),
                base: base.to_string(),
                original_run: original_run.map(str::to_string),
                signature: failure.map(|f| f.0.to_string()),
                max_attempts,
            },
        }
    }

    /// The name of the new fix branch when it is fixed in advance (named after the failure
    /// signature, so two runs for one failure meet on one branch); `None` for the engine's own
    /// choice, or for a run that continues a branch.
    pub fn new_branch(&self) -> Option<&str> {
        (self.continue_branch.is_none() && !self.block.branch.is_empty())
            .then_some(self.block.branch.as_str())
    }

    /// The trailer lines of this attempt's commit (see [`state::trailer_lines`]).
    pub fn trailers(&self) -> String {
        state::trailer_lines(self.attempt, &self.run_url)
    }
}

/// The prefix of every fix branch.
pub const BRANCH_PREFIX: &str = "fixci/";

/// The `author_association` values that may steer fixci (write access).
pub const WRITERS: &[&str] = &["OWNER", "MEMBER", "COLLABORATOR"];

/// What the spec says that the decision needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// `max-attempts` (default 3): attempts per fix branch across CI runs.
    pub max_attempts: u32,
    /// `pr.ready-on-green`: mark the draft PR ready for review when CI passes.
    pub ready_on_green: bool,
}

/// A pull request as the forge reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PrFacts {
    pub number: u64,
    pub html_url: String,
    /// GraphQL node id (to mark it ready for review).
    pub node_id: String,
    pub draft: bool,
    pub head_branch: String,
    pub head_sha: String,
    pub base_branch: String,
    pub body: String,
    /// `open` or `closed`.
    pub state: String,
}

/// What `cli::ci` must look up before [`decide`] can run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Lookup {
    /// A pull request by number (comments, reviews).
    pub pr_number: Option<u64>,
    /// The open pull request whose head is this fix branch (workflow runs).
    pub pr_for_branch: Option<String>,
    /// The fix branch whose history (commits, trailers, authors) is needed; for a comment on
    /// a PR, the PR's head once known (see [`Lookup::branch_of_pr`]).
    pub branch: Option<String>,
    /// Take the fix branch from the PR's head when it is one.
    pub branch_of_pr: bool,
    /// Look for a failing run of the PR's head commit (a `/fixci` comment on a PR).
    pub failing_run_of_pr: bool,
    /// The failed run (on a normal branch) whose failure signature is needed, to find a fix
    /// branch that already addresses it (case 1).
    pub signature_of_run: Option<String>,
}

/// A fix branch that already addresses a failure (same failure signature), found by
/// `cli::ci`: an open fixci PR whose hidden block has the signature (or whose head is the
/// branch named after it), else that branch on the remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingFix {
    pub branch: String,
    /// Its open PR; `None` when only the branch exists (another run is working on it, or its
    /// PR was closed).
    pub pr: Option<PrFacts>,
}

/// What the forge and git said.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Facts {
    pub pr: Option<PrFacts>,
    pub branch: Option<BranchHistory>,
    /// The escalation issue that already names this fix branch (in its body, or in a comment
    /// a later exhaustion of the same failure signature added).
    pub escalation: Option<String>,
    /// The latest failed run of a PR's head commit.
    pub failing_run: Option<String>,
    /// The failed run's failure signature and the fix branch named after it (case 1; see
    /// [`Lookup::signature_of_run`]).
    pub failure: Option<(String, String)>,
    /// A fix branch that already addresses the same failure (case 1).
    pub existing_fix: Option<ExistingFix>,
}

/// Text a person gave fixci for the next attempt (untrusted: fenced when put into a prompt).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feedback {
    /// `review by @login` or `comment by @login`.
    pub source: String,
    pub url: Option<String>,
    pub text: String,
}

/// What fixci does about an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to do (case 4, or an event that is not for fixci).
    Ignore { reason: String },
    /// A `/fixci` comment or review from someone without write access: a polite refusal.
    Refuse {
        login: String,
        association: String,
        number: u64,
    },
    /// Case 1 (or `/fixci` on a PR that is not fixci's): a new fix branch from `base`, attempt
    /// 1, whose input is the failed run.
    OpenFix {
        base: String,
        run_url: String,
        feedback: Option<Feedback>,
        /// The issue or PR to answer with a comment.
        reply_to: Option<u64>,
        /// The failure's `(signature, fix branch named after it)`, when known.
        failure: Option<(String, String)>,
    },
    /// Case 1 when a fix branch (and usually its open draft PR) already addresses the same
    /// failure signature: the PR gets one comment with the new run's link; no second branch.
    SameFailure {
        run_url: String,
        signature: String,
        existing: ExistingFix,
    },
    /// Case 2, a review asking for changes, or `/fixci` on a fixci PR: attempt `attempt` on the
    /// existing fix branch.
    NextAttempt {
        branch: String,
        base: String,
        attempt: u32,
        max: u32,
        /// The failure to reproduce: the new failed run, else the original one.
        run_url: String,
        feedback: Option<Feedback>,
        pr: Option<PrFacts>,
    },
    /// Case 2 stopped: a person committed on the fix branch.
    HumanCommitted {
        branch: String,
        commit: String,
        author: String,
        pr: Option<PrFacts>,
    },
    /// Case 3: CI passed on the fix branch.
    FinishPr {
        branch: String,
        pr: PrFacts,
        ready: bool,
        attempts: u32,
    },
    /// Case 5: the last attempt failed in CI.
    Escalate {
        branch: String,
        attempts: u32,
        original_run: Option<String>,
        /// The failure signature of the PR's hidden block: an open escalation issue with it
        /// gets a comment instead of a second issue.
        signature: Option<String>,
        last_run: String,
        pr: Option<PrFacts>,
    },
    /// Case 5 again: the branch is already escalated; never a second issue.
    AlreadyEscalated { branch: String, issue_url: String },
    /// A steer after the last attempt: a comment says so, nothing runs.
    NoAttemptsLeft {
        branch: String,
        attempts: u32,
        pr: Option<PrFacts>,
    },
    /// `/fixci` on an issue: the issue is the task.
    Task {
        issue: u64,
        feedback: Option<Feedback>,
    },
}

impl Decision {
    /// The case, as the summary names it.
    pub fn case(&self) -> &'static str {
        match self {
            Decision::Ignore { .. } => "case 4: nothing to do",
            Decision::Refuse { .. } => "refused: no write access",
            Decision::OpenFix { .. } => "case 1: failure on a normal branch",
            Decision::SameFailure { .. } => "case 1: the same failure already has a fix branch",
            Decision::NextAttempt { .. } => "case 2: next attempt on the fix branch",
            Decision::HumanCommitted { .. } => {
                "case 2 stopped: a person committed on the fix branch"
            }
            Decision::FinishPr { .. } => "case 3: success on the fix branch",
            Decision::Escalate { .. } => "case 5: attempts exhausted, escalation",
            Decision::AlreadyEscalated { .. } => "case 5: already escalated",
            Decision::NoAttemptsLeft { .. } => "no attempts left",
            Decision::Task { .. } => "issue task",
        }
    }

    /// The `status` output of a decision that runs nothing (a run's own status otherwise).
    pub fn status(&self) -> &'static str {
        match self {
            Decision::Ignore { .. } => "ignored",
            Decision::Refuse { .. } => "refused",
            Decision::HumanCommitted { .. } => "stopped",
            Decision::FinishPr { .. } => "finished",
            Decision::Escalate { .. } | Decision::AlreadyEscalated { .. } => "escalated",
            Decision::NoAttemptsLeft { .. } => "stopped",
            Decision::SameFailure { .. } => "duplicate",
            Decision::OpenFix { .. } | Decision::NextAttempt { .. } | Decision::Task { .. } => {
                "running"
            }
        }
    }

    /// What fixci does, in one sentence.
    pub fn plan(&self) -> String {
        match self {
            Decision::Ignore { reason } => format!("nothing: {reason}"),
            Decision::Refuse {
                login,
                association,
                number,
            } => format!(
                "reply on #{number} that @{login} ({association}) cannot steer fixci (write access is needed); run nothing"
            ),
            Decision::OpenFix {
                base,
                run_url,
                failure,
                ..
            } => format!(
                "reproduce and fix the failure of {run_url} from `{base}`: attempt 1 on a new `{}` branch, draft PR",
                failure.as_ref().map_or("fixci/<slug>", |f| f.1.as_str())
            ),
            Decision::SameFailure {
                run_url, existing, ..
            } => match &existing.pr {
                Some(pr) => format!(
                    "the same failure signature is addressed by PR #{} (`{}`): comment {run_url} there once; open no second branch",
                    pr.number, existing.branch
                ),
                None => format!(
                    "nothing: `{}` for the same failure signature is already on the remote with no open PR (another run is working on it, or its PR was closed: delete the branch to let fixci try again)",
                    existing.branch
                ),
            },
            Decision::NextAttempt {
                branch,
                attempt,
                max,
                run_url,
                feedback,
                ..
            } => format!(
                "attempt {attempt} of {max} on `{branch}` for {run_url}{}: the commit goes on top of the branch",
                feedback
                    .as_ref()
                    .map(|f| format!(" with the {} as feedback", f.source))
                    .unwrap_or_default()
            ),
            Decision::HumanCommitted {
                branch,
                commit,
                author,
                ..
            } => format!(
                "stop: commit {} on `{branch}` is by {author}, not fixci; comment on the PR and make no further attempt",
                &commit[..commit.len().min(10)]
            ),
            Decision::FinishPr {
                branch, pr, ready, ..
            } => {
                if *ready {
                    format!(
                        "CI is green on `{branch}`: mark PR #{} ready for review",
                        pr.number
                    )
                } else {
                    format!(
                        "CI is green on `{branch}`: comment on PR #{} (`pr.ready-on-green` is off)",
                        pr.number
                    )
                }
            }
            Decision::Escalate {
                branch, attempts, ..
            } => format!(
                "`{branch}` failed CI after its last attempt ({attempts}): open one escalation issue"
            ),
            Decision::AlreadyEscalated { branch, issue_url } => {
                format!("nothing: `{branch}` is already escalated in {issue_url}")
            }
            Decision::NoAttemptsLeft {
                branch, attempts, ..
            } => format!("comment that `{branch}` used all its {attempts} attempts; run nothing"),
            Decision::Task { issue, .. } => {
                format!("take issue #{issue} as the task: a new fix branch, draft PR")
            }
        }
    }
}

fn is_fix_branch(b: &str) -> bool {
    b.starts_with(BRANCH_PREFIX) && b.len() > BRANCH_PREFIX.len()
}

fn writer(association: &str) -> bool {
    WRITERS
        .iter()
        .any(|w| w.eq_ignore_ascii_case(association.trim()))
}

/// The text after `/fixci` when `body`'s first non-empty line is the command (`/fixci` alone,
/// or followed by whitespace and text; the rest of the comment joins the text). `None` when the
/// comment is not a command (`/fixcix`, a quote, a mention mid-line).
pub fn command_text(body: &str) -> Option<String> {
    let t = body.trim_start();
    let rest = t.strip_prefix("/fixci")?;
    if !(rest.is_empty() || rest.starts_with(char::is_whitespace)) {
        return None;
    }
    Some(rest.trim().to_string())
}

/// Failure-like conclusions: the run did not pass because of its code or tests.
fn failed(conclusion: &str) -> bool {
    matches!(conclusion, "failure" | "timed_out" | "startup_failure")
}

/// What must be looked up for `event`, or the decision when nothing is needed.
pub fn triage(event: &Event) -> Result<Lookup, Box<Decision>> {
    let ignore = |r: String| Err(Box::new(Decision::Ignore { reason: r }));
    match event {
        Event::WorkflowRun(e) => {
            let run = &e.workflow_run;
            if e.action != "completed" {
                return ignore(format!("the run is `{}`, not completed", e.action));
            }
            let conclusion = run.conclusion.clone().unwrap_or_default();
            if conclusion != "success" && !failed(&conclusion) {
                return ignore(format!("the run's conclusion is `{conclusion}`"));
            }
            if let Some(h) = &run.head_repository {
                if !h.full_name.eq_ignore_ascii_case(&e.repository.full_name) {
                    return ignore(format!(
                        "the run is on a fork's branch ({}); fixci pushes only to its own repository",
                        h.full_name
                    ));
                }
            }
            let Some(branch) = run.head_branch.clone().filter(|b| !b.is_empty()) else {
                return ignore("the run has no branch".into());
            };
            if !is_fix_branch(&branch) {
                return if conclusion == "success" {
                    ignore(format!("CI passed on `{branch}`"))
                } else {
                    Ok(Lookup {
                        signature_of_run: Some(run.html_url.clone()),
                        ..Lookup::default()
                    })
                };
            }
            Ok(Lookup {
                pr_for_branch: Some(branch.clone()),
                branch: Some(branch),
                ..Lookup::default()
            })
        }
        Event::IssueComment(e) => {
            if e.action != "created" {
                return ignore(format!("the comment was {}", e.action));
            }
            let Some(_) = command_text(e.comment.body.as_deref().unwrap_or_default()) else {
                return ignore("the comment is not a `/fixci` command".into());
            };
            if !writer(&e.comment.author_association) {
                return Err(Box::new(Decision::Refuse {
                    login: e.comment.user.login.clone(),
                    association: e.comment.author_association.clone(),
                    number: e.issue.number,
                }));
            }
            if e.issue.pull_request.is_none() {
                return Ok(Lookup::default());
            }
            Ok(Lookup {
                pr_number: Some(e.issue.number),
                branch_of_pr: true,
                failing_run_of_pr: true,
                ..Lookup::default()
            })
        }
        Event::Review(e) => {
            if e.action != "submitted" {
                return ignore(format!("the review was {}", e.action));
            }
            if !e.review.state.eq_ignore_ascii_case("changes_requested") {
                return ignore(format!(
                    "the review's state is `{}`, not `changes_requested`",
                    e.review.state
                ));
            }
            let head = &e.pull_request.head.branch;
            if !is_fix_branch(head) {
                return ignore(format!("`{head}` is not a fixci branch"));
            }
            if !writer(&e.review.author_association) {
                return Err(Box::new(Decision::Refuse {
                    login: e.review.user.login.clone(),
                    association: e.review.author_association.clone(),
                    number: e.pull_request.number,
                }));
            }
            Ok(Lookup {
                pr_number: Some(e.pull_request.number),
                branch: Some(head.clone()),
                ..Lookup::default()
            })
        }
    }
}

/// The decision for `event` given what was looked up (see [`triage`]). `extra_feedback` is the
/// review's line comments, joined (reviews only).
pub fn decide(event: &Event, facts: &Facts, config: Config, extra_feedback: &str) -> Decision {
    let lookup = match triage(event) {
        Ok(l) => l,
        Err(d) => return *d,
    };
    let max = config.max_attempts.max(1);
    let default_base = event
        .repository()
        .default_branch
        .clone()
        .unwrap_or_else(|| "main".into());
    let base_of = |branch: &str| {
        facts
            .pr
            .as_ref()
            .map(|p| p.base_branch.clone())
            .or_else(|| {
                facts
                    .pr
                    .as_ref()
                    .and_then(|p| PrBlock::find(&p.body))
                    .map(|b| b.base)
            })
            .unwrap_or_else(|| {
                let _ = branch;
                default_base.clone()
            })
    };
    // A steer or failure on a fix branch: the branch's own history decides.
    let on_branch = |branch: &str, run_url: Option<String>, feedback: Option<Feedback>| {
        let Some(h) = facts.branch.as_ref() else {
            return Decision::Ignore {
                reason: format!("the fix branch `{branch}` is not on the remote"),
            };
        };
        if facts.pr.as_ref().is_none_or(|p| p.state != "open") {
            return Decision::Ignore {
                reason: format!(
                    "`{branch}` has no open PR (closed by a person?): fixci leaves it alone"
                ),
            };
        }
        let used = h.attempts_used();
        if used == 0 {
            return Decision::Ignore {
                reason: format!("`{branch}` has no `Fixci-Attempt` commit: it is not fixci's"),
            };
        }
        if let Some((commit, author)) = h.human_commit() {
            return Decision::HumanCommitted {
                branch: branch.into(),
                commit: commit.into(),
                author: author.into(),
                pr: facts.pr.clone(),
            };
        }
        let max = facts
            .pr
            .as_ref()
            .and_then(|p| PrBlock::find(&p.body))
            .map(|b| b.max_attempts.min(max))
            .unwrap_or(max);
        if used >= max {
            return Decision::NoAttemptsLeft {
                branch: branch.into(),
                attempts: used,
                pr: facts.pr.clone(),
            };
        }
        let original = facts
            .pr
            .as_ref()
            .and_then(|p| PrBlock::find(&p.body))
            .and_then(|b| b.original_run)
            .or_else(|| h.original_run());
        let Some(run_url) = run_url.or(original) else {
            return Decision::Ignore {
                reason: format!("no failed run is known for `{branch}`"),
            };
        };
        Decision::NextAttempt {
            branch: branch.into(),
            base: base_of(branch),
            attempt: used + 1,
            max,
            run_url,
            feedback,
            pr: facts.pr.clone(),
        }
    };
    match event {
        Event::WorkflowRun(e) => {
            let run = &e.workflow_run;
            let branch = run.head_branch.clone().unwrap_or_default();
            let success = run.conclusion.as_deref() == Some("success");
            if lookup.branch.is_none() {
                if let (Some(existing), Some((signature, _))) =
                    (&facts.existing_fix, &facts.failure)
                {
                    return Decision::SameFailure {
                        run_url: run.html_url.clone(),
                        signature: signature.clone(),
                        existing: existing.clone(),
                    };
                }
                return Decision::OpenFix {
                    base: branch,
                    run_url: run.html_url.clone(),
                    feedback: None,
                    reply_to: None,
                    failure: facts.failure.clone(),
                };
            }
            if let Some(h) = &facts.branch {
                if !h.tip.is_empty() && h.tip != run.head_sha {
                    return Decision::Ignore {
                        reason: format!(
                            "the run is for {}, no longer the tip of `{branch}` ({})",
                            &run.head_sha[..run.head_sha.len().min(10)],
                            &h.tip[..h.tip.len().min(10)]
                        ),
                    };
                }
            }
            if success {
                let used = facts.branch.as_ref().map_or(0, |h| h.attempts_used());
                return match &facts.pr {
                    Some(pr) if used > 0 && pr.state == "open" => Decision::FinishPr {
                        branch,
                        pr: pr.clone(),
                        ready: config.ready_on_green && pr.draft,
                        attempts: used,
                    },
                    Some(_) if used > 0 => Decision::Ignore {
                        reason: format!("the PR of `{branch}` is closed"),
                    },
                    _ if used == 0 => Decision::Ignore {
                        reason: format!(
                            "`{branch}` has no `Fixci-Attempt` commit: it is not fixci's"
                        ),
                    },
                    _ => Decision::Ignore {
                        reason: format!("CI passed on `{branch}`, which has no open PR"),
                    },
                };
            }
            let d = on_branch(&branch, Some(run.html_url.clone()), None);
            match d {
                Decision::NoAttemptsLeft {
                    branch,
                    attempts,
                    pr,
                } => match &facts.escalation {
                    Some(url) => Decision::AlreadyEscalated {
                        branch,
                        issue_url: url.clone(),
                    },
                    None => Decision::Escalate {
                        original_run: facts.branch.as_ref().and_then(|h| h.original_run()),
                        signature: facts
                            .pr
                            .as_ref()
                            .and_then(|p| PrBlock::find(&p.body))
                            .and_then(|b| b.signature),
                        branch,
                        attempts,
                        last_run: run.html_url.clone(),
                        pr,
                    },
                },
                other => other,
            }
        }
        Event::IssueComment(e) => {
            let text =
                command_text(e.comment.body.as_deref().unwrap_or_default()).unwrap_or_default();
            let feedback = (!text.is_empty()).then(|| Feedback {
                source: format!("comment by @{}", e.comment.user.login),
                url: e.comment.html_url.clone(),
                text: text.clone(),
            });
            if !lookup.branch_of_pr {
                return Decision::Task {
                    issue: e.issue.number,
                    feedback,
                };
            }
            let Some(pr) = &facts.pr else {
                return Decision::Ignore {
                    reason: format!("pull request #{} was not found", e.issue.number),
                };
            };
            if is_fix_branch(&pr.head_branch) {
                return on_branch(&pr.head_branch.clone(), facts.failing_run.clone(), feedback);
            }
            match &facts.failing_run {
                Some(url) => Decision::OpenFix {
                    base: pr.head_branch.clone(),
                    run_url: url.clone(),
                    feedback,
                    reply_to: Some(pr.number),
                    failure: None,
                },
                None => Decision::Ignore {
                    reason: format!(
                        "pull request #{} has no failed run for its head commit",
                        pr.number
                    ),
                },
            }
        }
        Event::Review(e) => {
            let mut text = e.review.body.clone().unwrap_or_default().trim().to_string();
            if !extra_feedback.trim().is_empty() {
                if !text.is_empty() {
                    text.push_str("\n\n");
                }
                text.push_str(extra_feedback.trim());
            }
            let feedback = Feedback {
                source: format!("review by @{}", e.review.user.login),
                url: e.review.html_url.clone(),
                text,
            };
            on_branch(&e.pull_request.head.branch, None, Some(feedback))
        }
    }
}

#[cfg(test)]
mod tests;
