//! [`Token`] and where fixci finds it; [`api_base`], where it sends requests.

use std::fmt;
use std::process::{Command, Stdio};

/// A GitHub token. Its `Debug` and `Display` print `***`, never the value; it is handed only
/// to the HTTP client (as `Authorization: Bearer`) and to git2's credential callback, and is
/// never written to disk or put into an agent's environment.
#[derive(Clone)]
pub struct Token {
    value: String,
    source: &'static str,
}

impl Token {
    /// Wraps a token value; `source` is what is shown instead of the value.
    pub fn new(value: impl Into<String>) -> Token {
        Token::from_source(value.into(), "explicit")
    }

    fn from_source(value: String, source: &'static str) -> Token {
        Token { value, source }
    }

    /// Where the token came from: `GITHUB_TOKEN`, `GH_TOKEN`, `gh auth token` or `explicit`.
    pub fn source(&self) -> &'static str {
        self.source
    }

    /// The secret itself, for the HTTP client and git2 only.
    pub(crate) fn expose(&self) -> &str {
        &self.value
    }

    /// Replaces every occurrence of the token in `text` with `***`.
    pub(crate) fn redact(&self, text: &str) -> String {
        if self.value.is_empty() {
            text.to_string()
        } else {
            text.replace(&self.value, "***")
        }
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token(*** from {})", self.source)
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Finds a token: `GITHUB_TOKEN`, then `GH_TOKEN`, then the output of `gh auth token` when the
/// GitHub CLI is installed and logged in. Empty values are skipped. `None` when there is none:
/// public runs can still be read, but logs need a token (GitHub answers 403 without one).
///
/// See <https://cli.github.com/manual/gh_auth_token>.
pub fn resolve_token() -> Option<Token> {
    resolve_token_from(|name| std::env::var(name).ok(), gh_auth_token)
}

pub(crate) fn resolve_token_from(
    env: impl Fn(&str) -> Option<String>,
    gh: impl FnOnce() -> Option<String>,
) -> Option<Token> {
    for (name, source) in [("GITHUB_TOKEN", "GITHUB_TOKEN"), ("GH_TOKEN", "GH_TOKEN")] {
        if let Some(v) = env(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
        {
            return Some(Token::from_source(v, source));
        }
    }
    gh().map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .map(|v| Token::from_source(v, "gh auth token"))
}

/// Runs `gh auth token`; stderr is discarded (it would say "not logged in"), stdin is closed so
/// `gh` can never prompt.
fn gh_auth_token() -> Option<String> {
    let out = Command::new("gh")
        .args(["auth", "token"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8(out.stdout).ok()
}

/// The REST API root, without a trailing slash: `--api-url`, else `GITHUB_API_URL` (which GitHub
/// Actions sets), else `https://api.github.com` for `github.com` and `https://HOST/api/v3` for a
/// GitHub Enterprise Server host.
///
/// See <https://docs.github.com/en/actions/reference/variables-reference#default-environment-variables>
/// and <https://docs.github.com/en/enterprise-server@latest/rest/quickstart>.
pub fn api_base(cli_override: Option<&str>, web_host: &str) -> String {
    api_base_from(
        cli_override,
        std::env::var("GITHUB_API_URL").ok().as_deref(),
        web_host,
    )
}

pub(crate) fn api_base_from(cli: Option<&str>, env: Option<&str>, web_host: &str) -> String {
    let chosen = [cli, env]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|s| !s.is_empty());
    match chosen {
        Some(s) => s.trim_end_matches('/').to_string(),
        None => {
            let host = web_host.trim().to_ascii_lowercase();
            if host.is_empty() || host == "github.com" || host == "www.github.com" {
                "https://api.github.com".to_string()
            } else {
                format!("https://{host}/api/v3")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_order_is_github_token_then_gh_token_then_gh() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let t = resolve_token_from(env(&[("GITHUB_TOKEN", "a"), ("GH_TOKEN", "b")]), || {
            Some("c".into())
        });
        let t = t.unwrap();
        assert_eq!((t.expose(), t.source()), ("a", "GITHUB_TOKEN"));
        let t = resolve_token_from(env(&[("GITHUB_TOKEN", " "), ("GH_TOKEN", "b")]), || {
            Some("c".into())
        });
        assert_eq!(t.unwrap().source(), "GH_TOKEN");
        let t = resolve_token_from(env(&[]), || Some("c\n".into()));
        let t = t.unwrap();
        assert_eq!((t.expose(), t.source()), ("c", "gh auth token"));
        assert!(resolve_token_from(env(&[]), || None).is_none());
        assert!(resolve_token_from(env(&[]), || Some("\n".into())).is_none());
    }

    #[test]
    fn token_never_prints_its_value() {
        let t = Token::new("ghp_s3cr3tvalue");
        for shown in [format!("{t}"), format!("{t:?}"), format!("{:?}", Some(&t))] {
            assert!(!shown.contains("s3cr3t"), "{shown}");
        }
        assert_eq!(t.redact("x ghp_s3cr3tvalue y"), "x *** y");
    }

    #[test]
    fn api_base_precedence() {
        assert_eq!(
            api_base_from(None, None, "github.com"),
            "https://api.github.com"
        );
        assert_eq!(
            api_base_from(None, None, "ghe.corp:8443"),
            "https://ghe.corp:8443/api/v3"
        );
        assert_eq!(
            api_base_from(None, Some("https://env.example/api/"), "github.com"),
            "https://env.example/api"
        );
        assert_eq!(
            api_base_from(Some("http://127.0.0.1:9"), Some("https://env"), "x"),
            "http://127.0.0.1:9"
        );
        assert_eq!(
            api_base_from(Some(""), None, "github.com"),
            "https://api.github.com"
        );
    }
}
