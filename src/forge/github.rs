//! [`GitHub`]: a blocking client over octocrab, with fixci's retry rules and error hints.
//!
//! octocrab carries the requests (base URI, `Authorization: Bearer`, TLS, timeouts); its own
//! retry and redirect layers are left out so that fixci sees every status and header: it
//! retries by [`RetryPolicy`] and follows log redirects itself, without the token.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, Method};
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;

use super::retry::{Verdict, classify, jitter};
use super::{ForgeError, RetryPolicy, Token};

/// A GitHub REST client for the sync engine: each public method blocks on a private
/// current-thread tokio runtime. Do not call it from inside another tokio runtime.
///
/// Requests carry `X-GitHub-Api-Version: 2022-11-28`
/// (<https://docs.github.com/en/rest/about-the-rest-api/api-versions>).
pub struct GitHub {
    rt: tokio::runtime::Runtime,
    octo: octocrab::Octocrab,
    /// For signed download URLs: no token, and no base path that octocrab would prefix.
    anon: octocrab::Octocrab,
    api_base: String,
    token: Option<Token>,
    retry: RetryPolicy,
}

impl std::fmt::Debug for GitHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHub")
            .field("api_base", &self.api_base)
            .field("token", &self.token)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// What a request is for: it picks the hint of a 401/403/404/422.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    Run,
    Jobs,
    Logs,
    /// The short-lived signed URL a log endpoint redirects to.
    SignedLog,
    Issue,
    WriteIssue,
    CreatePull,
    Labels,
    Reviewers,
}

impl Purpose {
    /// The fine-grained permission the request needs
    /// (<https://docs.github.com/en/rest/authentication/permissions-required-for-fine-grained-personal-access-tokens>).
    fn permission(self) -> &'static str {
        match self {
            Purpose::Run | Purpose::Jobs | Purpose::Logs | Purpose::SignedLog => "actions: read",
            Purpose::Issue => "issues: read",
            Purpose::WriteIssue | Purpose::Labels => "issues: write",
            Purpose::CreatePull | Purpose::Reviewers => "pull_requests: write",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Purpose::Run => "the workflow run",
            Purpose::Jobs => "the run's jobs",
            Purpose::Logs | Purpose::SignedLog => "the logs",
            Purpose::Issue => "the issue",
            Purpose::WriteIssue => "the repository's issues",
            Purpose::CreatePull => "the repository",
            Purpose::Labels => "the pull request",
            Purpose::Reviewers => "the pull request",
        }
    }
}

/// One answer, body read.
pub(crate) struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// The URL shown in errors: no query string.
    pub shown_url: String,
}

impl GitHub {
    /// A client for the REST API at `api_base` (see [`api_base`](super::api_base)), with the
    /// default [`RetryPolicy`]. Without a token only public data can be read.
    pub fn new(api_base: &str, token: Option<Token>) -> Result<GitHub, ForgeError> {
        let api_base = api_base.trim().trim_end_matches('/').to_string();
        let client_err = |reason: String| ForgeError::Client {
            api_base: api_base.clone(),
            reason,
        };
        if !(api_base.starts_with("https://") || api_base.starts_with("http://")) {
            return Err(client_err(
                "the API root must start with `https://` or `http://`".into(),
            ));
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| client_err(e.to_string()))?;
        let octo = {
            let _guard = rt.enter();
            let mut b = octocrab::Octocrab::builder()
                .base_uri(api_base.as_str())
                .map_err(|e| client_err(e.to_string()))?
                .set_connect_timeout(Some(Duration::from_secs(15)))
                .set_read_timeout(Some(Duration::from_secs(120)))
                .add_header(
                    http::header::ACCEPT,
                    "application/vnd.github+json".to_string(),
                );
            if let Some(t) = &token {
                b = b.personal_token(t.expose().to_string());
            }
            b.build()
                .map_err(|e| client_err(redact(&token, &e.to_string())))?
        };
        let anon = {
            let _guard = rt.enter();
            octocrab::Octocrab::builder()
                .set_connect_timeout(Some(Duration::from_secs(15)))
                .set_read_timeout(Some(Duration::from_secs(300)))
                .build()
                .map_err(|e| client_err(e.to_string()))?
        };
        Ok(GitHub {
            rt,
            octo,
            anon,
            api_base,
            token,
            retry: RetryPolicy::default(),
        })
    }

    /// Replaces the retry policy (tests use [`RetryPolicy::fast`]).
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> GitHub {
        self.retry = policy;
        self
    }

    /// The API root requests go to, without a trailing slash.
    pub fn api_base(&self) -> &str {
        &self.api_base
    }

    pub(crate) fn token(&self) -> Option<&Token> {
        self.token.as_ref()
    }

    pub(crate) fn block_on<F: Future>(&self, fut: F) -> F::Output {
        self.rt.block_on(fut)
    }

    /// Turns an API `target` (a path, or an absolute URL under the API root such as a `Link`
    /// header's) into the path octocrab gets, so that the token is attached; and the URL shown
    /// in errors.
    fn route(&self, target: &str) -> (String, String) {
        let rel = target
            .strip_prefix(self.api_base.as_str())
            .filter(|r| r.starts_with('/'));
        let (req, full) = match rel {
            Some(r) => (r.to_string(), target.to_string()),
            None if target.starts_with('/') => {
                (target.to_string(), format!("{}{}", self.api_base, target))
            }
            None => (target.to_string(), target.to_string()),
        };
        (req, shown(&full))
    }

    /// Sends one API request with retries; returns any answer that retrying cannot improve
    /// (including 3xx and 4xx). Transport errors are retried, then a [`ForgeError::Network`].
    pub(crate) async fn send(
        &self,
        method: Method,
        target: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Answer, ForgeError> {
        let (req_uri, shown_url) = self.route(target);
        self.send_via(&self.octo, method, req_uri, shown_url, body)
            .await
    }

    /// GETs an absolute, pre-signed URL (a log download's `Location`) without the token, with
    /// the same retries.
    pub(crate) async fn fetch_signed(&self, url: &str) -> Result<Answer, ForgeError> {
        self.send_via(&self.anon, Method::GET, url.to_string(), shown(url), None)
            .await
    }

    async fn send_via(
        &self,
        octo: &octocrab::Octocrab,
        method: Method,
        req_uri: String,
        shown_url: String,
        body: Option<&serde_json::Value>,
    ) -> Result<Answer, ForgeError> {
        let mut retry = 0u32;
        loop {
            let builder = http::Request::builder()
                .method(method.clone())
                .uri(req_uri.as_str());
            let request = octo
                .build_request(builder, body)
                .map_err(|e| ForgeError::Protocol {
                    url: shown_url.clone(),
                    reason: redact(&self.token, &e.to_string()),
                })?;
            let outcome = match octo.execute(request).await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let headers = resp.headers().clone();
                    match resp.into_body().collect().await {
                        Ok(b) => Ok((status, headers, b.to_bytes().to_vec())),
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            };
            let (status, headers, bytes) = match outcome {
                Ok(v) => v,
                Err(source) => {
                    if retry < self.retry.max_retries {
                        tokio::time::sleep(self.retry.backoff(retry, jitter())).await;
                        retry += 1;
                        continue;
                    }
                    return Err(ForgeError::Network {
                        url: shown_url,
                        attempts: retry + 1,
                        source,
                    });
                }
            };
            let says_rate_limit = (status == 403 || status == 429)
                && github_message(&bytes)
                    .to_ascii_lowercase()
                    .contains("rate limit");
            match classify(
                &self.retry,
                status,
                &headers,
                says_rate_limit,
                retry,
                unix_now(),
                jitter(),
            ) {
                Verdict::Accept => {
                    return Ok(Answer {
                        status,
                        headers,
                        body: bytes,
                        shown_url,
                    });
                }
                Verdict::RetryAfter(wait) => {
                    tokio::time::sleep(wait).await;
                    retry += 1;
                }
                Verdict::TooLong(wait_secs) => {
                    return Err(ForgeError::RateLimited {
                        url: shown_url,
                        wait_secs,
                        max_wait_secs: self.retry.max_wait.as_secs(),
                    });
                }
            }
        }
    }

    /// [`send`](Self::send), then a 2xx body decoded as JSON; any other status is an error with
    /// a hint for `purpose`.
    pub(crate) async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        target: &str,
        body: Option<&serde_json::Value>,
        purpose: Purpose,
    ) -> Result<(T, HeaderMap), ForgeError> {
        let answer = self.send(method, target, body).await?;
        if !(200..300).contains(&answer.status) {
            return Err(self.status_error(&answer, purpose));
        }
        let value = serde_json::from_slice(&answer.body).map_err(|source| ForgeError::Decode {
            url: answer.shown_url.clone(),
            source,
        })?;
        Ok((value, answer.headers))
    }

    /// A GET over every page of a list, following `Link: <...>; rel="next"`
    /// (<https://docs.github.com/en/rest/using-the-rest-api/using-pagination-in-the-rest-api>),
    /// at most `max_pages` pages.
    pub(crate) async fn paginate<T: DeserializeOwned>(
        &self,
        first: &str,
        purpose: Purpose,
        max_pages: usize,
    ) -> Result<Vec<T>, ForgeError> {
        let mut pages = Vec::new();
        let mut next = Some(first.to_string());
        while let Some(target) = next.take() {
            let (page, headers) = self.json::<T>(Method::GET, &target, None, purpose).await?;
            pages.push(page);
            if pages.len() >= max_pages {
                break;
            }
            next = next_link(&headers);
        }
        Ok(pages)
    }

    /// The error for a non-2xx answer: the status, the URL, GitHub's message and what is missing.
    pub(crate) fn status_error(&self, answer: &Answer, purpose: Purpose) -> ForgeError {
        let message = redact(&self.token, &github_message(&answer.body));
        let hint = hint(
            answer.status,
            purpose,
            self.token.is_some(),
            &answer.headers,
        );
        ForgeError::Http {
            status: answer.status,
            url: answer.shown_url.clone(),
            message,
            hint,
        }
    }
}

fn redact(token: &Option<Token>, text: &str) -> String {
    match token {
        Some(t) => t.redact(text),
        None => text.to_string(),
    }
}

/// A URL without its query string: signed log URLs carry their signature there.
fn shown(url: &str) -> String {
    url.split('?').next().unwrap_or_default().to_string()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// GitHub's error body `{"message": ..., "errors": [{"message"|"code": ...}]}`, flattened; an
/// empty string when the body is not such JSON. At most 300 characters.
pub(crate) fn github_message(body: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return String::new();
    };
    let mut parts: Vec<String> = Vec::new();
    if let Some(m) = v.get("message").and_then(|m| m.as_str()) {
        parts.push(m.to_string());
    }
    if let Some(errors) = v.get("errors").and_then(|e| e.as_array()) {
        for e in errors {
            let m = e
                .get("message")
                .or_else(|| e.get("code"))
                .and_then(|m| m.as_str())
                .map(str::to_string)
                .or_else(|| e.as_str().map(str::to_string));
            parts.extend(m);
        }
    }
    let joined = parts.join("; ");
    joined.chars().take(300).collect()
}

/// The `rel="next"` URL of a `Link` header.
pub(crate) fn next_link(headers: &HeaderMap) -> Option<String> {
    let link = headers.get(http::header::LINK)?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| p.trim() == "rel=\"next\"")
            .then(|| {
                url.trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string()
            })
    })
}

/// What to tell the user about a failed request.
fn hint(status: u16, purpose: Purpose, has_token: bool, headers: &HeaderMap) -> String {
    let perm = purpose.permission();
    match status {
        400..=499 if purpose == Purpose::SignedLog => {
            "the signed log URL GitHub redirected to was refused twice (it expires after about a minute): try again".into()
        }
        401 if has_token => "the token was rejected (expired or revoked?): renew `GITHUB_TOKEN` / `GH_TOKEN` or run `gh auth login`".into(),
        401 => "no token was found: set `GITHUB_TOKEN` or `GH_TOKEN`, or run `gh auth login`".into(),
        403 if headers.contains_key("x-github-sso") => {
            "the token must be authorized for the organization's SAML single sign-on (GitHub's `x-github-sso` header has the link)".into()
        }
        403 if !has_token => format!("this needs a token with `{perm}`: set `GITHUB_TOKEN` or `GH_TOKEN`, or run `gh auth login`"),
        403 => format!("the token needs `{perm}` on this repository (a classic token needs the `repo` scope)"),
        404 if purpose == Purpose::Logs => format!(
            "{} are gone (GitHub deletes them after the retention period, 90 days by default) or the token lacks `{perm}`",
            purpose.what()
        ),
        404 => format!(
            "{} does not exist, or the token cannot see it (a private repository needs a token with `{perm}`)",
            purpose.what()
        ),
        410 => format!("{} have expired", purpose.what()),
        422 => match purpose {
            Purpose::CreatePull => "GitHub refused the pull request: check that `head` was pushed, differs from `base`, and has no open pull request yet".into(),
            Purpose::Reviewers => "reviewers must be collaborators of the repository and cannot be the pull request's author".into(),
            _ => "GitHub refused the request as invalid".into(),
        },
        s if s >= 500 => "GitHub kept failing after retries; try again later".into(),
        _ => format!("unexpected answer while reading {}", purpose.what()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_link_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::LINK,
            r#"<https://api.github.com/x?page=1>; rel="prev", <https://api.github.com/x?page=3>; rel="next", <https://api.github.com/x?page=9>; rel="last""#
                .parse()
                .unwrap(),
        );
        assert_eq!(
            next_link(&h).as_deref(),
            Some("https://api.github.com/x?page=3")
        );
        assert_eq!(next_link(&HeaderMap::new()), None);
    }

    #[test]
    fn github_messages_are_flattened() {
        let body = br#"{"message":"Validation Failed","errors":[{"resource":"PullRequest","code":"custom","message":"A pull request already exists for o:b."}]}"#;
        assert_eq!(
            github_message(body),
            "Validation Failed; A pull request already exists for o:b."
        );
        assert_eq!(github_message(b"<html>"), "");
    }

    #[test]
    fn hints_name_the_permission() {
        let h = HeaderMap::new();
        assert!(hint(403, Purpose::Logs, true, &h).contains("`actions: read`"));
        assert!(hint(403, Purpose::CreatePull, true, &h).contains("`pull_requests: write`"));
        assert!(hint(403, Purpose::WriteIssue, false, &h).contains("set `GITHUB_TOKEN`"));
        assert!(hint(401, Purpose::Run, true, &h).contains("rejected"));
        assert!(hint(404, Purpose::Run, true, &h).contains("the workflow run does not exist"));
    }
}
