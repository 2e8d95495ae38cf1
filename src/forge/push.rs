//! [`push_branch`]: the one network write to git fixci makes, with git2.

use std::cell::{Cell, RefCell};
use std::path::Path;

use git2::{BranchType, Cred, CredentialType, ErrorCode, PushOptions, RemoteCallbacks, Repository};

use super::{ForgeError, Token};

/// Pushes the local branch `branch` of the repository (or worktree) at `repo_path` to
/// `remote` (a remote's name such as `origin` or a fork's; a URL or path is accepted too), as
/// `refs/heads/<branch>`. Never forces: a push the remote rejects (non-fast-forward, protected
/// branch, hook) is a [`ForgeError::Push`].
///
/// Over `https`, the token (when given) answers git's credential request as
/// `x-access-token:<token>`, held in memory only: nothing is written to the git config. An ssh
/// remote (`git@host:o/r.git`, `ssh://...`) is pushed over the equivalent `https` URL with the
/// token, since fixci is built without ssh support. The token is never offered over plain
/// `http`. See <https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/authenticating-as-a-github-app-installation#about-authentication-as-a-github-app-installation>
/// for the `x-access-token` user name.
pub fn push_branch(
    repo_path: &Path,
    remote: &str,
    branch: &str,
    token: Option<&Token>,
) -> Result<(), ForgeError> {
    let fail = failure(remote.to_string(), branch, token);
    let repo = open_with_branch(repo_path, branch, &fail)?;

    let named = repo.find_remote(remote).ok();
    let url = match &named {
        Some(r) => match r.pushurl() {
            Ok(Some(u)) => Some(u.to_string()),
            _ => r.url().ok().filter(|u| !u.is_empty()).map(str::to_string),
        },
        None if remote.contains("://")
            || remote.starts_with('/')
            || remote.starts_with('.')
            || remote.contains('@') =>
        {
            Some(remote.to_string())
        }
        None => return Err(fail(format!("there is no remote named `{remote}`"))),
    };
    let url = url.ok_or_else(|| fail("the remote has no URL".into()))?;
    let push_url = https_for(&url, token, &fail)?;
    let mut target = if push_url == url && named.is_some() {
        repo.find_remote(remote)
            .map_err(|e| fail(e.message().to_string()))?
    } else {
        repo.remote_anonymous(&push_url)
            .map_err(|e| fail(e.message().to_string()))?
    };

    push_with(&mut target, &push_url, branch, token, None, &fail)
}

/// Pushes local branch `branch` of the repository at `repo_path` to exactly `url`, the push URL
/// recorded before any agent ran (see [`super::ForgeTarget`]); no remote or URL is read from
/// git config. When the repository's config would rewrite `url` (`url.<base>.insteadOf` or
/// `pushInsteadOf`, a `pushurl`), the push is refused. The token answers a credential request
/// only from `url`'s own host over `https`, and no redirect is followed.
///
/// Errors: as [`push_branch`], and [`ForgeError::Push`] when the URL would be rewritten.
pub fn push_to_url(
    repo_path: &Path,
    url: &str,
    branch: &str,
    token: Option<&Token>,
) -> Result<(), ForgeError> {
    let fail = failure(strip_userinfo(url), branch, token);
    let repo = open_with_branch(repo_path, branch, &fail)?;
    let push_url = https_for(url, token, &fail)?;
    let mut target = repo
        .remote_anonymous(&push_url)
        .map_err(|e| fail(e.message().to_string()))?;
    let effective = match target.pushurl() {
        Ok(Some(u)) => u.to_string(),
        _ => target.url().unwrap_or_default().to_string(),
    };
    if effective != push_url {
        return Err(fail(format!(
            "git config now rewrites the recorded push URL `{}` to `{}` (`url.*.insteadOf` or `pushInsteadOf`); fixci pushes only to the URL recorded before the agent ran",
            strip_userinfo(&push_url),
            strip_userinfo(&effective)
        )));
    }
    let host = super::target::url_host(&push_url);
    push_with(&mut target, &push_url, branch, token, Some(host), &fail)
}

/// Pushes `refs/heads/<branch>` through `target`. With `only_host` set, the token answers a
/// credential request only when the asking URL's host is that host, and redirects are off.
fn push_with(
    target: &mut git2::Remote<'_>,
    push_url: &str,
    branch: &str,
    token: Option<&Token>,
    only_host: Option<Option<String>>,
    fail: &dyn Fn(String) -> ForgeError,
) -> Result<(), ForgeError> {
    let rejected: RefCell<Option<String>> = RefCell::new(None);
    let asked = Cell::new(0u32);
    let mut callbacks = RemoteCallbacks::new();
    callbacks.credentials(|url, _user, allowed| {
        asked.set(asked.get() + 1);
        match token {
            Some(t)
                if asked.get() == 1
                    && url.starts_with("https://")
                    && only_host
                        .as_ref()
                        .is_none_or(|h| h.is_some() && *h == super::target::url_host(url))
                    && allowed.contains(CredentialType::USER_PASS_PLAINTEXT) =>
            {
                Cred::userpass_plaintext("x-access-token", t.expose())
            }
            _ => Err(git2::Error::new(
                ErrorCode::Auth,
                git2::ErrorClass::Http,
                "authentication required",
            )),
        }
    });
    callbacks.push_update_reference(|_refname, status| {
        if let Some(msg) = status {
            *rejected.borrow_mut() = Some(msg.to_string());
        }
        Ok(())
    });
    let mut opts = PushOptions::new();
    opts.remote_callbacks(callbacks);
    if only_host.is_some() {
        opts.follow_redirects(git2::RemoteRedirect::None);
    }
    let refspec = format!("refs/heads/{branch}:refs/heads/{branch}");
    let result = target.push(&[refspec.as_str()], Some(&mut opts));
    drop(opts);
    if let Err(e) = result {
        let auth = e.code() == ErrorCode::Auth || e.message().contains("authentication");
        let reason = match e.code() {
            ErrorCode::NotFastForward => non_ff(),
            _ if auth && token.is_some() && push_url.starts_with("http://") => {
                "the remote asks for credentials over plain `http`; fixci offers the token over `https` only".to_string()
            }
            _ if auth && token.is_none() => {
                "authentication required: set `GITHUB_TOKEN` or `GH_TOKEN`, or run `gh auth login`".to_string()
            }
            _ if auth => {
                "the token was refused: it needs `contents: write` on the repository (or push access to the fork)".to_string()
            }
            _ if e.message().contains("non-fast") || e.message().contains("fastforward") => non_ff(),
            _ => format!("{} (`{}`)", e.message(), strip_userinfo(push_url)),
        };
        return Err(fail(reason));
    }
    if let Some(msg) = rejected.into_inner() {
        let reason = if msg.contains("fast") || msg.contains("fetch first") {
            non_ff()
        } else {
            format!("the remote refused it: {msg}")
        };
        return Err(fail(reason));
    }
    Ok(())
}

/// A [`ForgeError::Push`] maker for `remote` and `branch` whose reasons never show the token.
fn failure<'a>(
    remote: String,
    branch: &'a str,
    token: Option<&'a Token>,
) -> impl Fn(String) -> ForgeError + 'a {
    move |reason: String| ForgeError::Push {
        remote: remote.clone(),
        branch: branch.to_string(),
        reason: match token {
            Some(t) => t.redact(&reason),
            None => reason,
        },
    }
}

/// Opens the repository at `repo_path` and checks that it has local branch `branch`.
fn open_with_branch(
    repo_path: &Path,
    branch: &str,
    fail: &dyn Fn(String) -> ForgeError,
) -> Result<Repository, ForgeError> {
    let repo = Repository::open(repo_path).map_err(|e| {
        fail(format!(
            "cannot open the repository at `{}`: {}",
            repo_path.display(),
            e.message()
        ))
    })?;
    repo.find_branch(branch, BranchType::Local)
        .map_err(|_| fail(format!("there is no local branch `{branch}`")))?;
    Ok(repo)
}

/// The URL to push to: an ssh URL becomes its `https` twin when there is a token (fixci is
/// built without ssh), and is refused without one.
fn https_for(
    url: &str,
    token: Option<&Token>,
    fail: &dyn Fn(String) -> ForgeError,
) -> Result<String, ForgeError> {
    match ssh_to_https(url) {
        Some(https) if token.is_some() => Ok(https),
        Some(_) => Err(fail(format!(
            "`{}` is an ssh URL and fixci pushes over https with a token: set `GITHUB_TOKEN` or `GH_TOKEN`, or run `gh auth login`",
            strip_userinfo(url)
        ))),
        None => Ok(url.to_string()),
    }
}

fn non_ff() -> String {
    "the remote branch has commits the local branch lacks (non-fast-forward); fixci never force-pushes".into()
}

/// `git@host:o/r.git` or `ssh://git@host[:port]/o/r.git` -> `https://host/o/r.git`.
fn ssh_to_https(url: &str) -> Option<String> {
    if let Some(rest) = url.strip_prefix("ssh://") {
        let rest = rest.split_once('@').map_or(rest, |(_, r)| r);
        let (host, path) = rest.split_once('/')?;
        let host = host.split(':').next()?;
        return Some(format!("https://{host}/{path}"));
    }
    if url.contains("://") {
        return None;
    }
    let (user_host, path) = url.split_once(':')?;
    let (_, host) = user_host.split_once('@')?;
    Some(format!("https://{host}/{}", path.trim_start_matches('/')))
}

/// A URL without `user:password@`.
fn strip_userinfo(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            if path.is_empty() && !rest.contains('/') {
                format!("{scheme}://{host}")
            } else {
                format!("{scheme}://{host}/{path}")
            }
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git2_is_built_with_https() {
        assert!(
            git2::Version::get().https(),
            "git2 needs its `https` feature to push to GitHub"
        );
    }

    #[test]
    fn ssh_urls_map_to_https() {
        assert_eq!(
            ssh_to_https("git@github.com:o/r.git").as_deref(),
            Some("https://github.com/o/r.git")
        );
        assert_eq!(
            ssh_to_https("ssh://git@ghe.corp:2222/o/r.git").as_deref(),
            Some("https://ghe.corp/o/r.git")
        );
        assert_eq!(ssh_to_https("https://github.com/o/r.git"), None);
        assert_eq!(ssh_to_https("/tmp/bare.git"), None);
        assert_eq!(
            strip_userinfo("https://x-access-token:abc@github.com/o/r.git"),
            "https://github.com/o/r.git"
        );
    }
}
