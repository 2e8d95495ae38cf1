//! [`ForgeError`]: everything that can go wrong while talking to GitHub or pushing a branch.

use std::path::PathBuf;

/// An error of the forge layer. Messages are lowercase and never contain the token.
///
/// [`ForgeError::is_usage`] tells the CLI which variants are the user's input (exit 2) rather
/// than infrastructure (exit 3).
#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    /// The CI run URL is not one of the accepted shapes.
    #[error("`{url}` is not a GitHub Actions run URL: {reason}")]
    BadUrl { url: String, reason: String },

    /// The issue reference is not `OWNER/REPO#NUMBER` (or an issue URL).
    #[error("`{input}` is not an issue reference (expected `OWNER/REPO#NUMBER`): {reason}")]
    BadIssueRef { input: String, reason: String },

    /// The run has not finished yet, so its logs are incomplete.
    #[error("the workflow run is still `{status}`; wait until it has completed")]
    RunNotCompleted { status: String },

    /// GitHub answered with an error status that retrying cannot fix.
    #[error("GitHub answered {status} for {url}{}: {hint}", fmt_message(.message))]
    Http {
        status: u16,
        url: String,
        /// GitHub's own `message` field, when the body had one.
        message: String,
        /// What is missing: a permission, a resource, a token.
        hint: String,
    },

    /// The rate limit (primary or secondary) asks for a longer wait than the policy allows.
    #[error(
        "GitHub rate limit hit for {url}; it resets in {wait_secs}s, longer than fixci waits ({max_wait_secs}s)"
    )]
    RateLimited {
        url: String,
        wait_secs: u64,
        max_wait_secs: u64,
    },

    /// The request did not get an answer (connection refused, timeout, reset), after retries.
    #[error("request to {url} failed after {attempts} attempt(s)")]
    Network {
        url: String,
        attempts: u32,
        #[source]
        source: octocrab::Error,
    },

    /// GitHub answered 2xx but the body does not have the documented shape.
    #[error("unexpected response from {url}")]
    Decode {
        url: String,
        #[source]
        source: serde_json::Error,
    },

    /// A redirect without a usable `Location` header, or an unexpected status for a download.
    #[error("unexpected answer from {url}: {reason}")]
    Protocol { url: String, reason: String },

    /// The downloaded run-logs archive is not a readable ZIP (truncated or corrupt download).
    #[error("the run logs archive downloaded from {url} is not a valid zip (truncated download?)")]
    Archive {
        url: String,
        #[source]
        source: zip::result::ZipError,
    },

    /// Writing a downloaded file or a proposal failed.
    #[error("cannot write `{}`", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The HTTP client or its runtime could not be set up (bad `--api-url`, no TLS roots).
    #[error("cannot set up the GitHub client for `{api_base}`: {reason}")]
    Client { api_base: String, reason: String },

    /// Pushing the fix branch failed or was rejected.
    #[error("cannot push branch `{branch}` to remote `{remote}`: {reason}")]
    Push {
        remote: String,
        branch: String,
        reason: String,
    },
}

fn fmt_message(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(" (`{message}`)")
    }
}

impl ForgeError {
    /// True for errors in what the user gave fixci (a URL, an issue reference, a run that is
    /// not finished): the CLI maps these to exit code 2, the rest to 3.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            ForgeError::BadUrl { .. }
                | ForgeError::BadIssueRef { .. }
                | ForgeError::RunNotCompleted { .. }
        )
    }

    /// The HTTP status GitHub answered, for [`ForgeError::Http`].
    pub fn http_status(&self) -> Option<u16> {
        match self {
            ForgeError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// The CLI boundary: usage errors exit 2, the rest 3; an HTTP error's hint becomes the
/// top-level `hint:` line and a wrapped cause its `caused by:` line.
impl From<ForgeError> for crate::error::Error {
    fn from(e: ForgeError) -> Self {
        use crate::error::Error;
        let usage = e.is_usage();
        let base = |msg: String| {
            if usage {
                Error::usage(msg)
            } else {
                Error::infra(msg)
            }
        };
        match &e {
            ForgeError::Http {
                status,
                url,
                message,
                hint,
            } => base(format!(
                "GitHub answered {status} for {url}{}",
                fmt_message(message)
            ))
            .hint(hint.clone()),
            ForgeError::RunNotCompleted { .. } => base(e.to_string())
                .hint("run fixci again once the run has finished (`gh run watch` waits for it)"),
            ForgeError::RateLimited { .. } => base(e.to_string())
                .hint("try again after the reset time, or use a token with a higher rate limit"),
            _ => {
                let msg = e.to_string();
                match e {
                    ForgeError::Network { source, .. } => base(msg).source(source),
                    ForgeError::Decode { source, .. } => base(msg).source(source),
                    ForgeError::Archive { source, .. } => base(msg).source(source),
                    ForgeError::Io { source, .. } => base(msg).source(source),
                    _ => base(msg),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit_codes;

    #[test]
    fn exit_codes_and_hints_at_the_cli_boundary() {
        let usage: crate::error::Error = ForgeError::RunNotCompleted {
            status: "in_progress".into(),
        }
        .into();
        assert_eq!(usage.exit_code(), exit_codes::USAGE);
        assert!(usage.message.contains("`in_progress`"));
        let http: crate::error::Error = ForgeError::Http {
            status: 403,
            url: "https://api.github.com/repos/o/r/actions/runs/1/logs".into(),
            message: "Must have admin rights to Repository.".into(),
            hint: "the token needs `actions: read` on this repository".into(),
        }
        .into();
        assert_eq!(http.exit_code(), exit_codes::INFRA);
        assert!(
            http.message.contains("403") && !http.message.contains("actions: read"),
            "{}",
            http.message
        );
        assert_eq!(
            http.hint.as_deref(),
            Some("the token needs `actions: read` on this repository")
        );
        let io: crate::error::Error = ForgeError::Io {
            path: "/x".into(),
            source: std::io::Error::other("disk full"),
        }
        .into();
        assert!(io.source.is_some());
    }
}
