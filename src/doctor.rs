//! `fixci doctor`'s checks: git (found, version, identity), the agent CLIs fixci would start
//! (found, version, and every flag fixci passes still mentioned in the CLI's help), the test
//! runners, and forge credentials (present or not; a value is never read into the report).
//!
//! Every probe (`--version`, `--help`, `git config`, `gh auth token`) runs through
//! [`crate::process::run`]: in its own process group, with `/dev/null` as stdin, output to a
//! temporary file, stopped with its whole group at the probe timeout. Nothing is printed here;
//! the CLI renders the [`Check`]s.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::agent::{self, Agent};
pub use crate::engine::needs::{
    AgentTarget, Need, Plan, Runner, plan_for_spec, plan_without_spec, runner_of, which,
};
use crate::process::{self, CommandSpec, Limits, OutputTo, Termination};

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Ready.
    Ok,
    /// A problem with something the checked setup does not need.
    Warn,
    /// A problem with something it needs: `fixci doctor` exits 1.
    Fail,
}

impl Status {
    /// `ok`, `warn` or `FAIL`, as the text output shows it.
    pub fn label(&self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        }
    }
}

/// The result of one check: one line of output, plus a hint when there is a problem.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked, e.g. `git`, `codex flags`, `runner pytest`, `GitHub token`.
    pub check: String,
    /// The outcome.
    pub status: Status,
    /// Whether the setup needs it (a problem is then `fail`, else `warn`).
    pub needed: bool,
    /// What was found, in one line.
    pub detail: String,
    /// What to do about a problem.
    pub hint: Option<String>,
}










/// Runs every check of `plan`; each probe is stopped at `timeout`.
pub fn run(plan: &Plan, timeout: Duration) -> Vec<Check> {
    let mut checks = git_checks(timeout);
    let mut seen: Vec<(String, Vec<String>)> = Vec::new();
    for t in &plan.agents {
        let key = (t.agent.name.clone(), t.agent.argv.clone());
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        checks.extend(agent_checks(t, timeout));
    }
    let mut runners_seen = BTreeSet::new();
    for r in &plan.runners {
        if runners_seen.insert(r.program.clone()) {
            checks.push(runner_check(r));
        }
    }
    if plan.check_token {
        checks.push(token_check(plan.token_needed.as_deref(), timeout));
    }
    checks.push(sandbox_check(plan.sandbox));
    checks
}

/// The `sandbox` line: whether bubblewrap can sandbox agents here, and why not.
fn sandbox_check(mode: crate::process::sandbox::SandboxMode) -> Check {
    use crate::process::sandbox::{SandboxMode, probe};
    let need = if mode == SandboxMode::Bwrap { Need::Yes } else { Need::No };
    match (mode, probe()) {
        (SandboxMode::None, r) => check(
            "sandbox",
            true,
            Need::No,
            format!(
                "off (`sandbox = \"none\"`); bubblewrap {}",
                match r {
                    Ok(b) => format!("usable at {}", b.display()),
                    Err(why) => format!("not usable: {why}"),
                }
            ),
            None,
        ),
        (_, Ok(b)) => check(
            "sandbox",
            true,
            need,
            format!(
                "bubblewrap usable ({}): agents run in their own PID namespace, read-only filesystem; {}",
                b.display(),
                match crate::process::sandbox::probe_overlay(&b) {
                    Ok(_) => "writes to your repository, the run directory and HOME are discarded and named".to_string(),
                    Err(why) => format!("writes outside the worktree fail unnamed ({why})"),
                }
            ),
            None,
        ),
        (_, Err(why)) => check(
            "sandbox",
            false,
            need,
            format!("bubblewrap not usable: {why}"),
            Some(if mode == SandboxMode::Bwrap {
                "the spec asks for `sandbox = \"bwrap\"`: install bubblewrap (`apt-get install bubblewrap`) or allow user namespaces".into()
            } else {
                "agents would run without a sandbox (`sandbox = \"auto\"`); install bubblewrap (`apt-get install bubblewrap`)".into()
            }),
        ),
    }
}

/// True when no needed check failed.
pub fn all_needed_ok(checks: &[Check]) -> bool {
    !checks.iter().any(|c| c.status == Status::Fail)
}

fn check(name: &str, ok: bool, need: Need, detail: String, hint: Option<String>) -> Check {
    let status = match (ok, need) {
        (true, _) => Status::Ok,
        (false, Need::Yes | Need::IfInstalled) => Status::Fail,
        (false, Need::No) => Status::Warn,
    };
    Check {
        check: name.to_string(),
        status,
        needed: need != Need::No,
        detail,
        hint: if ok { None } else { hint },
    }
}


/// How a probe ended and what it printed (stdout and stderr together, ANSI colours removed).
struct Probed {
    termination: Termination,
    output: String,
}

/// Runs `program args` as a probe: own process group, stdin `/dev/null`, forge tokens removed
/// unless `keep_tokens`, `NO_COLOR=1`, stopped at `timeout`. `None` when it cannot start.
fn probe(program: &Path, args: &[String], timeout: Duration, keep_tokens: bool) -> Option<Probed> {
    let dir = tempfile::tempdir().ok()?;
    let out = dir.path().join("output");
    let spec = CommandSpec {
        program: program.display().to_string(),
        args: args.to_vec(),
        cwd: dir.path().to_path_buf(),
        env: vec![
            ("NO_COLOR".into(), "1".into()),
            ("TERM".into(), "dumb".into()),
        ],
        env_remove: if keep_tokens {
            Vec::new()
        } else {
            agent::scrubbed_env(&[])
        },
        stdin: None,
    };
    let finished = process::run(
        &spec,
        &OutputTo::Combined(out.clone()),
        Limits {
            budget: timeout,
            grace: Duration::from_secs(1),
        },
        Some(&crate::engine::needs::NEVER_CANCELLED),
        &mut |_| {},
    )
    .ok()?;
    let bytes = std::fs::read(&out).unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(1 << 20)]).into_owned();
    Some(Probed {
        termination: finished.termination,
        output: strip_ansi(&text),
    })
}

fn strip_ansi(s: &str) -> String {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| regex::Regex::new(r"\x1b\[[0-9;?]*[A-Za-z]").expect("valid regex"))
        .replace_all(s, "")
        .into_owned()
}

fn first_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .chars()
        .take(120)
        .collect()
}

/// The first line of a `--version` output that names a version (`1.2`, `v0.61.0`), else its
/// first line: copilot prints `Package extraction took 5338ms` first on its first start.
fn version_line(s: &str) -> String {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| regex::Regex::new(r"\d+\.\d+").expect("valid regex"));
    s.lines()
        .find(|l| re.is_match(l))
        .map(first_line)
        .unwrap_or_else(|| first_line(s))
}

fn shown(program: &str, args: &[String]) -> String {
    std::iter::once(program.to_string())
        .chain(args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn git_checks(timeout: Duration) -> Vec<Check> {
    let Some(git) = which("git") else {
        return vec![check(
            "git",
            false,
            Need::Yes,
            "`git` not found on PATH".into(),
            Some("install git: fixci clones repositories and bundles with the git CLI".into()),
        )];
    };
    let version = probe(&git, &["--version".into()], timeout, false);
    let (ok, detail) = match &version {
        Some(p) if p.termination.success() => (
            true,
            format!("{} ({})", first_line(&p.output), git.display()),
        ),
        Some(p) => (
            false,
            format!(
                "`git --version` ended with {}: {}",
                p.termination.describe(),
                first_line(&p.output)
            ),
        ),
        None => (false, format!("`{}` cannot be started", git.display())),
    };
    let mut out = vec![check(
        "git",
        ok,
        Need::Yes,
        detail,
        Some("reinstall git".into()),
    )];
    let get = |key: &str| {
        probe(
            &git,
            &["config".into(), "--get".into(), key.into()],
            timeout,
            false,
        )
        .filter(|p| p.termination.success())
        .map(|p| first_line(&p.output))
        .filter(|s| !s.is_empty())
    };
    let (name, email) = (get("user.name"), get("user.email"));
    let missing: Vec<&str> = [("user.name", &name), ("user.email", &email)]
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(k, _)| *k)
        .collect();
    out.push(check(
        "git identity",
        missing.is_empty(),
        Need::No,
        if missing.is_empty() {
            format!(
                "{} <{}>",
                name.unwrap_or_default(),
                email.unwrap_or_default()
            )
        } else {
            format!("`{}` not set", missing.join("` and `"))
        },
        Some("fixci commits as `fixci`, so runs work without it; for your own commits (e.g. after `fixci apply`): `git config --global user.name NAME` and `git config --global user.email EMAIL`".into()),
    ));
    out
}

/// The flags fixci passes on `argv` (arguments starting with `-`, without `=value` and
/// without placeholders), minus `hidden`, in order, without repeats.
pub fn flags_of(argv: &[String], hidden: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for a in argv.iter().skip(1) {
        if !a.starts_with('-') || a == "-" || a == "--" || a.contains('{') {
            continue;
        }
        let flag = a.split('=').next().unwrap_or(a).to_string();
        if !hidden.contains(&flag) && !out.contains(&flag) {
            out.push(flag);
        }
    }
    out
}

/// True when `help` mentions `flag` as a flag: preceded by the line start, a space, `,`, `[`,
/// `(`, `|` or `/`, and not followed by a letter, digit, `-` or `_` (so `--json` does not match
/// `--json-schema`).
pub fn help_mentions(help: &str, flag: &str) -> bool {
    let re = format!(
        r"(?m)(^|[\s,\[(|/]){}([^A-Za-z0-9_-]|$)",
        regex::escape(flag)
    );
    regex::Regex::new(&re).is_ok_and(|r| r.is_match(help))
}

fn agent_checks(t: &AgentTarget, timeout: Duration) -> Vec<Check> {
    let a = &t.agent;
    let program = a.argv.first().cloned().unwrap_or_default();
    let label = if a.name == "command" {
        format!("agent command `{program}`")
    } else {
        a.name.clone()
    };
    let meta = agent::probe(&a.name);
    let install = meta.as_ref().and_then(|m| m.install.clone());
    let Some(path) = which(&program) else {
        let need = if t.need == Need::IfInstalled {
            Need::No
        } else {
            t.need
        };
        return vec![check(
            &label,
            false,
            need,
            if t.need == Need::IfInstalled {
                format!("`{program}` not found on PATH (needed only to use this preset)")
            } else {
                format!("`{program}` not found on PATH (needed for {})", t.why)
            },
            Some(match &install {
                Some(i) => format!(
                    "install it: `{i}`; or choose another agent (`--agent NAME` or the spec's `agent`)"
                ),
                None => "install it, or fix the command line in the spec's `agent`".into(),
            }),
        )];
    };
    let need = if t.need == Need::IfInstalled {
        Need::Yes
    } else {
        t.need
    };
    if a.name == "command" {
        // Any other CLI: fixci knows nothing of its flags.
        return vec![check(
            &label,
            true,
            need,
            format!("{} (for {})", path.display(), t.why),
            None,
        )];
    }
    let meta = meta.unwrap_or(agent::Probe {
        help_args: vec![vec!["--help".into()]],
        version_args: vec!["--version".into()],
        hidden_flags: Vec::new(),
        install: None,
        probe_leaves: Vec::new(),
    });
    let before = leftovers(&meta.probe_leaves);
    let out = probe_agent(a, &label, &program, &path, need, &meta, timeout);
    for f in leftovers(&meta.probe_leaves).difference(&before) {
        let _ = std::fs::remove_file(f);
    }
    out
}

/// The files matching `patterns` (`~/PATH` or `$VAR/PATH`, `*` in the last component only);
/// a pattern whose variable is unset matches nothing.
pub fn leftovers(patterns: &[String]) -> BTreeSet<PathBuf> {
    let mut found = BTreeSet::new();
    for p in patterns {
        let expanded = if let Some(rest) = p.strip_prefix("~/") {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(rest))
        } else if let Some(rest) = p.strip_prefix('$') {
            let (var, rest) = rest.split_once('/').unwrap_or((rest, ""));
            std::env::var_os(var)
                .filter(|v| !v.is_empty())
                .map(|v| PathBuf::from(v).join(rest))
        } else {
            Some(PathBuf::from(p))
        };
        let Some(path) = expanded else { continue };
        let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str()))
        else {
            continue;
        };
        let re = format!(
            "^{}$",
            name.split('*')
                .map(regex::escape)
                .collect::<Vec<_>>()
                .join(".*")
        );
        let Ok(re) = regex::Regex::new(&re) else {
            continue;
        };
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.file_name().to_str().is_some_and(|n| re.is_match(n))
                && e.file_type().is_ok_and(|t| t.is_file())
            {
                found.insert(e.path());
            }
        }
    }
    found
}

/// The version and flag checks of an installed preset CLI at `path`.
fn probe_agent(
    a: &Agent,
    label: &str,
    program: &str,
    path: &Path,
    need: Need,
    meta: &agent::Probe,
    timeout: Duration,
) -> Vec<Check> {
    let mut out = Vec::new();
    let version = probe(path, &meta.version_args, timeout, false);
    let shown_version = shown(program, &meta.version_args);
    out.push(match version {
        Some(p) if p.termination.success() => check(
            label,
            true,
            need,
            format!("{} ({})", version_line(&p.output), path.display()),
            None,
        ),
        Some(p) => check(
            label,
            false,
            need,
            format!(
                "`{shown_version}` ended with {}: {}",
                p.termination.describe(),
                first_line(&p.output)
            ),
            Some(format!(
                "run `{shown_version}` yourself; reinstall the CLI if it is broken"
            )),
        ),
        None => check(
            label,
            false,
            need,
            format!("`{}` cannot be started", path.display()),
            Some("check its permissions and interpreter line".into()),
        ),
    });
    let flags = flags_of(&a.argv, &meta.hidden_flags);
    let mut help = String::new();
    let mut problems = Vec::new();
    for args in &meta.help_args {
        let cmd = shown(program, args);
        match probe(path, args, timeout, false) {
            Some(p) if matches!(p.termination, Termination::TimedOut { .. }) => {
                problems.push(format!(
                    "`{cmd}` did not finish within {}",
                    humantime::format_duration(timeout)
                ))
            }
            Some(p) if !p.termination.success() && p.output.trim().is_empty() => {
                problems.push(format!(
                    "`{cmd}` ended with {} and printed nothing",
                    p.termination.describe()
                ))
            }
            Some(p) => help.push_str(&p.output),
            None => problems.push(format!("`{cmd}` cannot be started")),
        }
    }
    let helps = meta
        .help_args
        .iter()
        .map(|args| format!("`{}`", shown(program, args)))
        .collect::<Vec<_>>()
        .join(", ");
    let missing: Vec<&String> = flags.iter().filter(|f| !help_mentions(&help, f)).collect();
    if problems.is_empty() && !missing.is_empty() {
        problems.push(format!(
            "{} not in the output of {helps}",
            missing
                .iter()
                .map(|f| format!("`{f}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let ok = problems.is_empty();
    out.push(check(
        &format!("{label} flags"),
        ok,
        need,
        if ok {
            format!(
                "{} found in {helps}",
                flags
                    .iter()
                    .map(|f| format!("`{f}`"))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        } else {
            problems.join("; ")
        },
        Some(format!(
            "the installed `{program}` may have renamed or removed a flag fixci passes (`{}`): compare with its help, install a version that has it, or update the preset in src/agent/presets.toml (a flag the CLI accepts but hides from its help goes in `hidden-flags`)",
            a.argv.join(" ")
        )),
    ));
    out
}


fn runner_check(r: &Runner) -> Check {
    match which(&r.program) {
        Some(p) => check(
            &format!("runner {}", r.program),
            true,
            r.need,
            format!("{} (for {})", p.display(), r.why),
            None,
        ),
        None => check(
            &format!("runner {}", r.program),
            false,
            r.need,
            format!("`{}` not found on PATH (needed by {})", r.program, r.why),
            Some(format!(
                "install `{}`, or change the command that starts it",
                r.program
            )),
        ),
    }
}

/// Checks for a GitHub token without showing it: `GITHUB_TOKEN` / `GH_TOKEN` set and
/// non-empty, else `gh auth token` exiting 0 with output (which is read only to test that it is
/// non-empty, then dropped).
fn token_check(needed: Option<&str>, timeout: Duration) -> Check {
    let need = if needed.is_some() {
        Need::Yes
    } else {
        Need::No
    };
    for name in ["GITHUB_TOKEN", "GH_TOKEN"] {
        if crate::forge::env_token(name).is_some_and(|v| !v.trim().is_empty()) {
            return check(
                "GitHub token",
                true,
                need,
                format!("`{name}` is set (value not shown)"),
                None,
            );
        }
    }
    let gh = which("gh");
    if let Some(gh) = &gh {
        let args = ["auth".to_string(), "token".to_string()];
        if let Some(p) = probe(gh, &args, timeout, true) {
            if p.termination.success() && !p.output.trim().is_empty() {
                return check(
                    "GitHub token",
                    true,
                    need,
                    "`gh auth token` gives one (value not shown)".into(),
                    None,
                );
            }
        }
    }
    let why = match needed {
        Some(w) => format!("needed: {w}"),
        None => "without one, `open-pr` writes an offline PR proposal".into(),
    };
    check(
        "GitHub token",
        false,
        need,
        format!(
            "none: `GITHUB_TOKEN` and `GH_TOKEN` are unset{}; {why}",
            if gh.is_some() {
                ", `gh auth token` gives none"
            } else {
                ", `gh` not found"
            }
        ),
        Some("export GITHUB_TOKEN (a token with contents, pull-requests and actions read/write), or log in with `gh auth login`".into()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn flags_come_from_the_command_line_minus_hidden_ones() {
        let argv = v(&[
            "claude",
            "-p",
            "--permission-mode",
            "acceptEdits",
            "--max-turns",
            "20",
            "--output-format=json",
            "-",
            "{prompt_file}",
            "-p",
        ]);
        assert_eq!(
            flags_of(&argv, &v(&["--max-turns"])),
            ["-p", "--permission-mode", "--output-format"]
        );
        // The presets' own command lines are where the flags come from.
        let codex = agent::resolve(Some("codex"), None, None, Some("o3"), Path::new("/")).unwrap();
        assert_eq!(
            flags_of(&codex.argv, &[]),
            ["-a", "-s", "--json", "--add-dir", "-m"]
        );
    }

    #[test]
    fn the_version_line_skips_start_up_chatter() {
        assert_eq!(
            version_line(
                "Package extraction took 5338ms\nGitHub Copilot CLI 1.0.102.\nRun 'copilot update' to check for updates.\n"
            ),
            "GitHub Copilot CLI 1.0.102."
        );
        assert_eq!(version_line("\n0.24.4\n"), "0.24.4");
        assert_eq!(version_line("dev build\n"), "dev build");
    }

    #[test]
    fn leftovers_match_the_last_component_under_home_or_a_variable() {
        let dir = tempfile::tempdir().unwrap();
        let g = dir.path().join(".gemini");
        std::fs::create_dir_all(g.join("projects.json.d.tmp")).unwrap();
        for f in ["projects.json.a1.tmp", "projects.json", "other.tmp"] {
            std::fs::write(g.join(f), "").unwrap();
        }
        let pattern = format!("{}/.gemini/projects.json.*.tmp", dir.path().display());
        assert_eq!(
            leftovers(&[pattern, "$FIXCI_SURELY_UNSET_VAR/x.*".into()]),
            BTreeSet::from([g.join("projects.json.a1.tmp")])
        );
    }

    #[test]
    fn help_mentions_whole_flags_only() {
        let help = "Usage: codex exec [OPTIONS]\n  -m, --model <MODEL>\n      --json-schema <FILE>\n  [-s|--sandbox]\n";
        assert!(help_mentions(help, "-m") && help_mentions(help, "--model"));
        assert!(help_mentions(help, "-s") && help_mentions(help, "--sandbox"));
        assert!(!help_mentions(help, "--json"));
        assert!(!help_mentions(help, "-a"));
        assert!(help_mentions("--json  Print events", "--json"));
    }

    #[test]
    fn runners_are_the_first_program_of_a_command() {
        assert_eq!(
            runner_of("pytest -q {test_file}").as_deref(),
            Some("pytest")
        );
        assert_eq!(runner_of("CI=1 FOO=bar npm test").as_deref(), Some("npm"));
        assert_eq!(runner_of("env A=1 cargo test").as_deref(), Some("cargo"));
        assert_eq!(
            runner_of(&crate::runners::test_command(None, "tests/test_x.py")).as_deref(),
            Some("python3")
        );
        assert_eq!(
            runner_of(&crate::runners::test_command(None, "pkg/x_test.go")).as_deref(),
            Some("go")
        );
        assert_eq!(runner_of("cd sub && make test"), None);
        assert_eq!(runner_of("  "), None);
    }

    #[test]
    fn a_problem_fails_only_what_is_needed() {
        let c = check("x", false, Need::No, "d".into(), Some("h".into()));
        assert_eq!((c.status, c.needed), (Status::Warn, false));
        let c = check("x", false, Need::Yes, "d".into(), Some("h".into()));
        assert_eq!(c.status, Status::Fail);
        assert!(!all_needed_ok(&[c]));
        let c = check("x", true, Need::Yes, "d".into(), Some("h".into()));
        assert_eq!((c.status, c.hint), (Status::Ok, None));
    }
}
