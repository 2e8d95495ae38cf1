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
    resolve_token_from(web_host, env_token, gh_auth_token)
}

/// The environment variables a forge token is read from, in order (the enterprise pair only
/// for a GitHub Enterprise Server host).
pub const TOKEN_VARS: &[&str] = &[
    "GITHUB_TOKEN",
    "GH_TOKEN",
    "GH_ENTERPRISE_TOKEN",
    "GITHUB_ENTERPRISE_TOKEN",
];

/// The token variables captured by [`seal_process`] at start-up; unset when it never ran (the
/// library used on its own), then the environment is read.
static CAPTURED: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();

/// The variable which hands the captured tokens over to the re-executed fixci: the number of
/// an inherited pipe's read end.
const HANDOFF_FD: &str = "FIXCI_TOKEN_FD";

/// The value of token variable `name` as fixci saw it at start-up (see [`seal_process`]).
pub fn env_token(name: &str) -> Option<String> {
    match CAPTURED.get() {
        Some(v) => v.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()),
        None => std::env::var(name).ok(),
    }
}

/// Keeps the forge token out of every process environment, fixci's own included, and makes
/// fixci non-dumpable. Call it first in `main`, before any thread starts.
///
/// `/proc/PID/environ` shows a process's environment as it was at `execve`: removing a variable
/// later does not change it. So when a token variable ([`TOKEN_VARS`]) is set, fixci writes the
/// values into a pipe, and executes itself again (same pid, same arguments) without them, the
/// pipe's read end inherited and named by `FIXCI_TOKEN_FD`; the new image reads the values into
/// memory and closes the pipe. Should the re-execution fail, the variables are removed from the
/// running environment instead (children then never see them; `/proc/PID/environ` still does,
/// to processes allowed to read it). `gh auth token` is only ever asked when a stage needs a
/// token, and its answer stays in memory.
///
/// Finally `prctl(PR_SET_DUMPABLE, 0)`: other processes of the same user can no longer ptrace
/// fixci or read its `/proc/PID/{mem,environ,fd}`; no core dump is written. See prctl(2) and
/// proc(5). Root (or a process with `CAP_SYS_PTRACE`) can still read fixci's memory, and
/// whoever can read the user's `gh` config can read the token stored there.
pub fn seal_process() {
    if let Some(fd) = std::env::var(HANDOFF_FD)
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
    {
        let captured = read_handoff(fd);
        // SAFETY: called first in `main`, before any other thread exists.
        unsafe { std::env::remove_var(HANDOFF_FD) };
        let _ = CAPTURED.set(captured);
    } else {
        let captured: Vec<(String, String)> = TOKEN_VARS
            .iter()
            .filter_map(|n| std::env::var(n).ok().map(|v| (n.to_string(), v)))
            .collect();
        if !captured.is_empty() {
            reexec_without(&captured);
            // Only reached when the re-execution failed.
            for (n, _) in &captured {
                // SAFETY: called first in `main`, before any other thread exists.
                unsafe { std::env::remove_var(n) };
            }
        }
        let _ = CAPTURED.set(captured);
    }
    // SAFETY: prctl with PR_SET_DUMPABLE takes plain integers and touches no memory of ours.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
}

/// Reads `NAME=value` records separated by NUL from pipe `fd`, then closes it.
fn read_handoff(fd: i32) -> Vec<(String, String)> {
    use std::io::Read;
    use std::os::fd::FromRawFd;
    // SAFETY: the fd was created for us by the previous image and is used nowhere else; a
    // wrong number (a variable set by someone else) at worst reads an unrelated descriptor.
    let mut f = unsafe { std::fs::File::from_raw_fd(fd) };
    let mut buf = String::new();
    let _ = f.read_to_string(&mut buf);
    buf.split('\0')
        .filter_map(|r| r.split_once('='))
        .filter(|(k, _)| TOKEN_VARS.contains(k))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Executes the running binary again with the token variables removed and their values in a
/// pipe. Returns only on failure.
fn reexec_without(captured: &[(String, String)]) {
    use std::io::Write;
    use std::os::fd::FromRawFd;
    use std::os::unix::process::CommandExt;
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 writes two descriptors into the array we own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return;
    }
    let [read_end, write_end] = fds;
    let payload: String = captured.iter().map(|(k, v)| format!("{k}={v}\0")).collect();
    {
        // SAFETY: write_end is ours; the File closes it when dropped.
        let mut w = unsafe { std::fs::File::from_raw_fd(write_end) };
        if payload.len() > 60_000 || w.write_all(payload.as_bytes()).is_err() {
            // SAFETY: read_end is ours.
            unsafe { libc::close(read_end) };
            return;
        }
    }
    // The read end must survive the exec: clear its close-on-exec flag.
    // SAFETY: fcntl on a descriptor we own.
    unsafe { libc::fcntl(read_end, libc::F_SETFD, 0) };
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_else(|| exe.clone().into_os_string());
    let mut cmd = std::process::Command::new(&exe);
    cmd.arg0(argv0)
        .args(args)
        .env(HANDOFF_FD, read_end.to_string());
    for (n, _) in captured {
        cmd.env_remove(n);
    }
    let _err = cmd.exec();
    // SAFETY: the exec failed; read_end is still ours.
    unsafe { libc::close(read_end) };
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
