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

/// Finds a token for `github.com`: `GITHUB_TOKEN`, then `GH_TOKEN`, then the output of
/// `gh auth token` when the GitHub CLI is installed and logged in. Empty values are skipped.
/// `None` when there is none: public runs can still be read, but logs need a token (GitHub
/// answers 403 without one).
///
/// See <https://cli.github.com/manual/gh_auth_token> and
/// <https://cli.github.com/manual/gh_help_environment>.
pub fn resolve_token() -> Option<Token> {
    resolve_token_for("github.com")
}

/// [`resolve_token`] for the run's web host: for a GitHub Enterprise Server host,
/// `GH_ENTERPRISE_TOKEN` and `GITHUB_ENTERPRISE_TOKEN` come after `GITHUB_TOKEN` and `GH_TOKEN`
/// (as the GitHub CLI reads them), and `gh auth token --hostname HOST` is asked last.
pub fn resolve_token_for(web_host: &str) -> Option<Token> {
    resolve_token_from(web_host, |name| std::env::var(name).ok(), gh_auth_token)
}

pub(crate) fn resolve_token_from(
    web_host: &str,
    env: impl Fn(&str) -> Option<String>,
    gh: impl FnOnce(&str) -> Option<String>,
) -> Option<Token> {
    let host = web_host.trim().to_ascii_lowercase();
    let dotcom = host.is_empty() || host == "github.com";
    let mut names = vec!["GITHUB_TOKEN", "GH_TOKEN"];
    if !dotcom {
        names.extend(["GH_ENTERPRISE_TOKEN", "GITHUB_ENTERPRISE_TOKEN"]);
    }
    for name in names {
        if let Some(v) = env(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
        {
            return Some(Token::from_source(v, name));
        }
    }
    let host = if dotcom { "github.com" } else { host.as_str() };
    gh(host)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .map(|v| Token::from_source(v, "gh auth token"))
}

/// Runs `gh auth token --hostname HOST`; stderr is discarded (it would say "not logged in"),
/// stdin is closed so `gh` can never prompt.
fn gh_auth_token(host: &str) -> Option<String> {
    let out = Command::new("gh")
        .args(["auth", "token", "--hostname", host])
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

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn token_order_is_github_token_then_gh_token_then_gh() {
        let gh = |v: &'static str| move |host: &str| Some(format!("{v}@{host}"));
        let t = resolve_token_from(
            "github.com",
            env(&[("GITHUB_TOKEN", "a"), ("GH_TOKEN", "b")]),
            gh("c"),
        )
        .unwrap();
        assert_eq!((t.expose(), t.source()), ("a", "GITHUB_TOKEN"));
        let t = resolve_token_from(
            "github.com",
            env(&[("GITHUB_TOKEN", " "), ("GH_TOKEN", "b")]),
            gh("c"),
        )
        .unwrap();
        assert_eq!(t.source(), "GH_TOKEN");
        let t = resolve_token_from("github.com", env(&[("GH_ENTERPRISE_TOKEN", "e")]), gh("c"))
            .unwrap();
        assert_eq!((t.expose(), t.source()), ("c@github.com", "gh auth token"));
        assert!(resolve_token_from("github.com", env(&[]), |_: &str| None).is_none());
        assert!(resolve_token_from("github.com", env(&[]), |_: &str| Some("\n".into())).is_none());
    }

    #[test]
    fn enterprise_hosts_read_the_enterprise_variables_and_ask_gh_for_their_host() {
        let gh = |host: &str| Some(format!("g@{host}"));
        let t = resolve_token_from("ghe.corp", env(&[("GH_ENTERPRISE_TOKEN", "e")]), gh).unwrap();
        assert_eq!((t.expose(), t.source()), ("e", "GH_ENTERPRISE_TOKEN"));
        let t = resolve_token_from("GHE.corp", env(&[]), gh).unwrap();
        assert_eq!(t.expose(), "g@ghe.corp");
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
