//! [`ForgeTarget`]: where a run publishes, fixed before any agent runs and recorded in
//! `state.json`. After an agent ran, fixci never reads a remote URL from git config again: the
//! push goes to [`ForgeTarget::push_url`] and the token only to its host and to
//! [`ForgeTarget::api_base`].

use serde::{Deserialize, Serialize};

/// The forge repository a run publishes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForgeTarget {
    /// The GitHub web host (`github.com` or an Enterprise Server host), for the token lookup.
    pub web_host: String,
    /// Repository owner.
    pub owner: String,
    /// Repository name.
    pub repo: String,
    /// The REST API root the PR and issue requests go to (see [`super::api_base`]).
    pub api_base: String,
    /// The URL the fix branch is pushed to: the remote's effective push URL (`pushurl`, else
    /// `url`, after `insteadOf` rewriting) as read before any agent ran; `None` when the remote
    /// did not exist then.
    pub push_url: Option<String>,
    /// The remote's name the URL came from (for the report's commands).
    pub remote: String,
}

/// The host of a URL (`https://host[:port]/...`, `git@host:path`, `ssh://user@host/...`),
/// lowercased, without port or user; `None` for a local path.
pub fn url_host(url: &str) -> Option<String> {
    let rest = match url.split_once("://") {
        Some((scheme, rest)) if scheme != "file" => rest,
        Some(_) => return None,
        None => {
            let (user_host, _) = url.split_once(':')?;
            if url.starts_with('/') || url.starts_with('.') || !user_host.contains('@') {
                return None;
            }
            user_host
        }
    };
    let authority = rest.split('/').next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host.starts_with('[') {
        host.split_once(']').map(|(h, _)| format!("{h}]"))?
    } else {
        host.split(':').next()?.to_string()
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_urls() {
        assert_eq!(
            url_host("https://github.com/o/r.git").as_deref(),
            Some("github.com")
        );
        assert_eq!(
            url_host("https://x-access-token:t@GHE.corp:8443/o/r").as_deref(),
            Some("ghe.corp")
        );
        assert_eq!(
            url_host("git@github.com:o/r.git").as_deref(),
            Some("github.com")
        );
        assert_eq!(url_host("ssh://git@h:22/o/r").as_deref(), Some("h"));
        assert_eq!(url_host("/tmp/remote.git"), None);
        assert_eq!(url_host("file:///tmp/remote.git"), None);
        assert_eq!(
            url_host("http://127.0.0.1:9/o/r").as_deref(),
            Some("127.0.0.1")
        );
    }
}
