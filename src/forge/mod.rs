//! GitHub: workflow runs, jobs and their logs, issues, draft pull requests, escalation issues,
//! and pushing the fix branch; plus the offline proposal when there is no token or no network.
//!
//! The API is blocking (each [`GitHub`] owns a current-thread tokio runtime) so the sync engine
//! can call it. The token ([`Token`]) goes only into HTTP `Authorization` headers and git2's
//! credential callback: it is never written to disk, printed, or put into an error.
//! This module does not decide policy (when to open a PR, what its text is): the `open-pr`
//! stage does.

mod actions;
mod ci;
mod forge_error;
mod github;
mod issues;
mod offline_proposal;
mod pulls;
mod push;
mod retry;
mod run_ref;
mod target;
mod token;

pub use actions::{FailedJob, FetchedRun};
pub use forge_error::ForgeError;
pub use github::GitHub;
pub use issues::{ESCALATION_LABEL, Escalation, IssueText, branch_marker, signature_marker};
pub use offline_proposal::{OfflineProposal, write_offline_proposal};
pub use pulls::{PrRequest, PullRequest};
pub use push::{push_branch, push_to_url};
pub use retry::RetryPolicy;
pub use run_ref::{IssueRef, RunRef};
pub use target::{ForgeTarget, url_host};
pub use token::{
    TOKEN_VARS, Token, api_base, env_token, resolve_token, resolve_token_for, seal_process,
};
