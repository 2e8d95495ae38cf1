//! End to end with the real agent CLIs: `claude`, `codex`, `gemini`, `aider`, `opencode`,
//! `copilot` and `qwen` each run the quickstart (`reproduce-deterministic/examples/shipping`)
//! through fixci's preset for them, against `tests/agents/model_server.py`, a scripted model
//! service on 127.0.0.1 that speaks the provider's HTTP API and answers with the tool calls (or
//! aider's edit blocks) that write the reproduction test and the fix. The CLIs really run: they
//! read the prompt, call the service, execute their tools and edit the worktree; fixci confirms,
//! verifies and commits as always. Each runs with a private `HOME` (and its own configuration
//! inside it), so no test reads or writes the user's own `~/.aider`, `~/.claude`, ...
//!
//! With the service down (a closed port, or for copilot and qwen, which give up by themselves
//! on a refused connection after 24 s and a few seconds, a port that never answers) no CLI
//! finishes by itself within its budget: each must be stopped at its stage budget, recorded as
//! `timeout` with its last output, and leave no process behind. The budgets leave a loaded
//! machine time to start the CLI and let it print something.
//!
//! The CLIs are found in `$FIXCI_AGENTS_DIR/bin`, `~/.cache/fixci-agents/bin` (where
//! `.ci/install-agents.sh` puts them) or on PATH. A test whose CLI is missing skips with a
//! message (a user's fresh clone has none of them), unless the CLIs are required: then it fails.
//! They are required when `FIXCI_REQUIRE_AGENTS=1` (`.ci/run` sets it) or `CI=true` (unless
//! `FIXCI_REQUIRE_AGENTS=0`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

use crate::common::*;

/// Whether a missing agent CLI fails the test instead of skipping it (see the module doc).
pub fn agents_required() -> bool {
    match std::env::var("FIXCI_REQUIRE_AGENTS").as_deref() {
        Ok("1") => true,
        Ok("0") => false,
        _ => std::env::var("CI").is_ok_and(|v| v == "true"),
    }
}

/// The directory holding the agent CLI `name`, searched as the module doc says; `None` with a
/// message when it is missing, or a panic when the CLIs are required.
pub fn cli_dir(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(d) = std::env::var_os("FIXCI_AGENTS_DIR") {
        dirs.push(PathBuf::from(d).join("bin"));
    }
    if let Some(h) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(h).join(".cache/fixci-agents/bin"));
    }
    if let Some(p) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&p));
    }
    let found = dirs.into_iter().find(|d| d.join(name).is_file());
    if found.is_none() {
        let why = format!(
            "`{name}` is not installed (run `.ci/install-agents.sh`, or set FIXCI_AGENTS_DIR)"
        );
        assert!(
            !agents_required(),
            "{why}; the agent CLIs are required here (FIXCI_REQUIRE_AGENTS=1 or CI=true)"
        );
        eprintln!("skipping: {why}");
    }
    found
}

/// The scripted model service, stopped when dropped.
struct ModelServer {
    child: Child,
    port: u16,
}

impl ModelServer {
    fn start() -> ModelServer {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/agents/model_server.py");
        let mut child = Command::new("python3")
            .arg(script)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 starts the model server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .strip_prefix("PORT ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("model server printed {line:?}"));
        ModelServer { child, port }
    }
}

impl Drop for ModelServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The model service "down", as a CLI sees it.
enum Down {
    /// A port on 127.0.0.1 that nothing listens on: connections are refused.
    Refused,
    /// A port that accepts connections (into the listen backlog) and never answers.
    Silent,
}

/// A port for `down`, and the listener to keep alive while it is used.
fn down_port(down: Down) -> (u16, Option<std::net::TcpListener>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    match down {
        Down::Refused => (port, None),
        Down::Silent => (port, Some(l)),
    }
}

/// The spec's `agent` table (and `model`) that points `cli` at the service on `port`, with
/// the CLI's state kept inside `home` (never the user's own configuration).
fn agent_for(cli: &str, port: u16, home: &Path) -> (Value, Option<&'static str>) {
    let url = format!("http://127.0.0.1:{port}");
    match cli {
        "claude" => (
            json!({"preset": "claude", "env": {
                "ANTHROPIC_BASE_URL": url,
                "ANTHROPIC_API_KEY": "sk-fixci-test",
                "CLAUDE_CONFIG_DIR": home.join("claude").display().to_string(),
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            }}),
            None,
        ),
        "codex" => {
            let codex_home = home.join("codex");
            std::fs::create_dir_all(&codex_home).unwrap();
            (
                json!({"preset": "codex",
                "env": {"CODEX_HOME": codex_home.display().to_string(), "CODEX_API_KEY": "sk-fixci-test"},
                "args": [
                    "-c", format!("model_providers.fixci={{name=\"fixci\",base_url=\"{url}/v1\",env_key=\"CODEX_API_KEY\",wire_api=\"responses\",supports_websockets=false}}"),
                    "-c", "model_provider=fixci",
                ]}),
                // An unknown model gets codex's plain function tools (`exec_command`).
                Some("fixci-scripted"),
            )
        }
        "gemini" => {
            let gemini_home = home.join("gemini");
            std::fs::create_dir_all(gemini_home.join(".gemini")).unwrap();
            std::fs::write(
                gemini_home.join(".gemini/settings.json"),
                r#"{"security":{"auth":{"selectedType":"gemini-api-key"}}}"#,
            )
            .unwrap();
            (
                json!({"preset": "gemini", "env": {
                    "GEMINI_CLI_HOME": gemini_home.display().to_string(),
                    "GEMINI_API_KEY": "sk-fixci-test",
                    "GOOGLE_GEMINI_BASE_URL": url,
                }}),
                None,
            )
        }
        "aider" => (
            // `--auto-commits` overrides the preset's `--no-auto-commits`: aider commits by
            // itself, and fixci must fold those commits into its own.
            json!({"preset": "aider", "args": [
                "--openai-api-base", format!("{url}/v1"), "--openai-api-key", "sk-fixci-test",
                "--no-show-model-warnings", "--auto-commits",
            ]}),
            Some("openai/fixci-scripted"),
        ),
        "opencode" => {
            std::fs::create_dir_all(home).unwrap();
            let config = home.join("opencode.json");
            std::fs::write(
                &config,
                json!({"provider": {"fixci": {
                    "npm": "@ai-sdk/openai-compatible",
                    "name": "fixci",
                    "options": {"baseURL": format!("{url}/v1"), "apiKey": "sk-fixci-test"},
                    "models": {"scripted": {}},
                }}})
                .to_string(),
            )
            .unwrap();
            (
                json!({"preset": "opencode", "env": {
                    "OPENCODE_CONFIG": config.display().to_string(),
                    "OPENCODE_DISABLE_AUTOUPDATE": "true",
                    "OPENCODE_DISABLE_MODELS_FETCH": "true",
                }}),
                Some("fixci/scripted"),
            )
        }
        "copilot" => (
            json!({"preset": "copilot", "env": {
                "COPILOT_PROVIDER_BASE_URL": format!("{url}/v1"),
                "COPILOT_PROVIDER_TYPE": "openai",
                "COPILOT_PROVIDER_API_KEY": "sk-fixci-test",
                "COPILOT_OFFLINE": "true",
                // Its runtime, unpacked once per version by `.ci/install-agents.sh`.
                "COPILOT_PKG_CACHE_HOME": copilot_cache().display().to_string(),
            }}),
            Some("fixci-scripted"),
        ),
        "qwen" => (
            json!({"preset": "qwen", "args": [
                "--auth-type", "openai", "--openai-base-url", format!("{url}/v1"),
                "--openai-api-key", "sk-fixci-test",
            ]}),
            Some("fixci-scripted"),
        ),
        other => panic!("no agent setup for {other}"),
    }
}

/// Where `copilot` unpacks its runtime (235 MB per version; `COPILOT_PKG_CACHE_HOME`, default
/// `$XDG_CACHE_HOME/copilot`): `copilot-pkg/` in the folder the CLIs are installed in
/// (`$FIXCI_AGENTS_DIR`, else `~/.cache/fixci-agents`), unpacked there once (by
/// `.ci/install-agents.sh`, or here before the first copilot test) rather than into every
/// test's private HOME.
pub fn copilot_cache() -> PathBuf {
    static ONCE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        let bin = cli_dir("copilot").expect("copilot is installed");
        let dir = std::env::var_os("FIXCI_AGENTS_DIR")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/fixci-agents"))
            })
            .expect("FIXCI_AGENTS_DIR or HOME");
        let cache = dir.join("copilot-pkg");
        let out = Command::new(bin.join("copilot"))
            .arg("--version")
            .env("COPILOT_PKG_CACHE_HOME", &cache)
            .env("COPILOT_AUTO_UPDATE", "false")
            .output()
            .unwrap();
        assert!(out.status.success(), "copilot --version: {out:?}");
        cache
    })
    .clone()
}

/// A scratch copy of the quickstart whose agent is `cli` on `port`.
struct Quickstart {
    tmp: tempfile::TempDir,
    spec: PathBuf,
    out: PathBuf,
}

fn quickstart(cli: &str, port: u16, budgets: Value) -> Quickstart {
    // Not under /tmp: codex refuses to create its sandbox helper's PATH aliases in a CODEX_HOME
    // under the temporary directory, and its commands then fail inside bubblewrap.
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let example =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("reproduce-deterministic/examples/shipping");
    for f in ["ci-log.txt", "shipping.bundle"] {
        std::fs::copy(example.join(f), tmp.path().join(f)).unwrap();
    }
    let mut spec: Value =
        serde_json::from_str(&std::fs::read_to_string(example.join("info.json")).unwrap()).unwrap();
    let (agent, model) = agent_for(cli, port, &tmp.path().join("home"));
    spec["agent"] = agent;
    if let Some(m) = model {
        spec["model"] = json!(m);
    }
    spec["budgets"] = budgets;
    // The private clone stays after the run: the budget tests look for processes working in it.
    spec["keep-worktree"] = json!(true);
    let path = tmp.path().join("info.json");
    std::fs::write(&path, serde_json::to_string_pretty(&spec).unwrap()).unwrap();
    Quickstart {
        out: tmp.path().join("out"),
        spec: path,
        tmp,
    }
}

/// `fixci` with `home` as HOME and no XDG base directories set (so they default inside it).
pub fn fixci_in_home(home: &Path) -> assert_cmd::Command {
    let mut cmd = fixci();
    for var in [
        "XDG_CONFIG_HOME",
        "XDG_DATA_HOME",
        "XDG_STATE_HOME",
        "XDG_CACHE_HOME",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("HOME", home);
    cmd
}

/// `PATH` with `bin` first.
pub fn path_with(bin: &Path) -> std::ffi::OsString {
    std::env::join_paths(
        std::iter::once(bin.to_path_buf()).chain(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        )),
    )
    .unwrap()
}

/// Runs `fixci run` on the quickstart with `bin` first on PATH and a private HOME (with only a
/// git identity in it); returns the exit code.
fn run(q: &Quickstart, bin: &Path) -> i32 {
    let path = path_with(bin);
    let home = q.tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        home.join(".gitconfig"),
        "[user]\n\tname = fixci test\n\temail = test@fixci.invalid\n",
    )
    .unwrap();
    let mut cmd = fixci_in_home(&home);
    let out = cmd
        .current_dir(q.tmp.path())
        .env("PATH", path)
        .env("FIXCI_CACHE_DIR", q.tmp.path().join("cache"))
        .env_remove("GITHUB_TOKEN")
        .env_remove("GH_TOKEN")
        .args([
            "run",
            q.spec.to_str().unwrap(),
            "--out",
            q.out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let code = out.status.code().unwrap_or(-1);
    if code != 0 {
        eprintln!(
            "fixci exited {code}\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    code
}

/// Prints the end of every agent log under `run_dir` (for a failing test's output).
fn print_agent_logs(run_dir: &Path) {
    let mut logs: Vec<PathBuf> = Vec::new();
    let mut dirs = vec![run_dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() && !p.ends_with("worktree") {
                dirs.push(p);
            } else if p
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("agent.") && n.ends_with(".log"))
            {
                logs.push(p);
            }
        }
    }
    logs.sort();
    for p in logs {
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        let tail: String = text
            .chars()
            .rev()
            .take(3000)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        eprintln!("--- {} (last 3000 characters)\n{tail}", p.display());
    }
}

fn stage<'a>(r: &'a Value, id: &str) -> &'a Value {
    r["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no stage `{id}` in {r}"))
}

/// The whole quickstart with `cli`: exit 0, a verified fix alone on the branch, and the CLI's
/// own report (tokens, and cost where it states one) in `result.json`, the report and events.
fn fixes_the_quickstart(cli: &str) -> Option<Value> {
    let bin = cli_dir(cli)?;
    let server = ModelServer::start();
    let q = quickstart(
        cli,
        server.port,
        json!({"reproduce": "3m", "fix": "3m", "verify": "2m"}),
    );
    let code = run(&q, &bin);
    let run_dir = run_dir(&q.out);
    let r = result(&run_dir);
    if code != 0 {
        print_agent_logs(&run_dir);
    }
    assert_eq!(code, 0, "{cli}: {r:#}");
    assert_eq!(r["status"], "success", "{cli}");
    assert_eq!(r["verification"]["runs"], 5, "{cli}");
    assert_eq!(r["verification"]["passed"], 5, "{cli}");
    let diff = std::fs::read_to_string(run_dir.join("fix.diff")).unwrap();
    assert!(
        diff.contains("+    return weight_kg >= LIGHT_LIMIT_KG"),
        "{cli}: {diff}"
    );

    // The branch holds fixci's single commit with only the fix: no agent commit, no
    // reproduction test, no `.aider*` or `.fixci/` dropping.
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("state.json")).unwrap())
            .unwrap();
    let clone = PathBuf::from(state["repo"]["root"].as_str().unwrap());
    let branch = r["branch"].as_str().unwrap();
    let log = git(&clone, &["log", "--format=%an", &format!("main..{branch}")]);
    assert_eq!(log.trim(), "fixci", "{cli}: commits on the branch: {log}");
    let changed = git(
        &clone,
        &["diff", "--name-only", &format!("main...{branch}")],
    );
    assert_eq!(changed.trim(), "shipping/rates.py", "{cli}");
    let files = git(&clone, &["ls-tree", "-r", "--name-only", branch]);
    assert!(
        !files.contains(".aider") && !files.contains(".fixci"),
        "{cli}: {files}"
    );

    // What the CLI reported, parsed.
    let agent = &r["agent"];
    assert_eq!(agent["error"], false, "{cli}: {agent:#}");
    let inv = agent["invocations"].as_array().unwrap();
    assert_eq!(inv.len(), 2, "{cli}: reproduce and one fix attempt");
    assert!(
        inv.iter()
            .all(|i| i["is_error"] == false && i["exit"] == "exit 0"),
        "{cli}: {inv:?}"
    );
    assert!(
        agent["tokens"]["input"].as_u64().unwrap() > 0,
        "{cli}: {agent:#}"
    );
    assert!(
        agent["tokens"]["output"].as_u64().unwrap() > 0,
        "{cli}: {agent:#}"
    );
    assert_eq!(
        r["attempts"][0]["agent_report"],
        inv[1]
            .as_object()
            .map(|o| {
                let mut o = o.clone();
                o.remove("stage");
                o.remove("attempt");
                Value::Object(o)
            })
            .unwrap(),
        "{cli}: the attempt carries the fix invocation's report"
    );
    let report = std::fs::read_to_string(run_dir.join("report.md")).unwrap();
    assert!(
        report.contains("## Agent\n") && report.contains("| **total** |"),
        "{cli}"
    );
    let events = std::fs::read_to_string(run_dir.join("events.jsonl")).unwrap();
    assert_eq!(
        events.matches(r#""event":"agent_finished""#).count(),
        2,
        "{cli}"
    );
    Some(r)
}

/// With the model service down, the CLI is stopped at the reproduce stage's budget: the stage
/// is a timeout with the CLI's last output, the run an agent error, and no process of the
/// agent's survives (neither in its process group nor anywhere in the worktree).
fn stopped_at_its_budget_when_the_service_is_down(
    cli: &str,
    down: Down,
    budget: &str,
    shows: Option<&str>,
) -> Option<Value> {
    let bin = cli_dir(cli)?;
    let (port, _listener) = down_port(down);
    let q = quickstart(cli, port, json!({"reproduce": budget}));
    let code = run(&q, &bin);
    let run_dir = run_dir(&q.out);
    let r = result(&run_dir);
    assert_eq!(code, 1, "{cli}: {r:#}");
    assert_eq!(r["status"], "failed", "{cli}");
    let s = stage(&r, "reproduce");
    assert_eq!(s["status"], "timeout", "{cli}: {s:#}");
    let summary = s["summary"].as_str().unwrap();
    assert!(
        summary.contains("its last output: ") && !summary.ends_with("(none)"),
        "{cli}: {summary}"
    );
    if let Some(text) = shows {
        assert!(summary.contains(text), "{cli}: no `{text}` in {summary}");
    }
    assert_eq!(r["agent"]["error"], true, "{cli}");
    assert_eq!(r["agent"]["invocations"][0]["timed_out"], true, "{cli}");

    let events = std::fs::read_to_string(run_dir.join("events.jsonl")).unwrap();
    let pgid: u32 = events
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e["event"] == "child_started" && e["stage"] == "reproduce")
        .and_then(|e| e["pid"].as_u64())
        .expect("the agent's pid in events.jsonl") as u32;
    let worktree = std::fs::canonicalize(run_dir.join("worktree")).unwrap();
    let left = survivors(pgid, &worktree);
    assert!(left.is_empty(), "{cli}: processes left: {left:?}");
    // The check itself sees a process working in the worktree.
    let mut probe = Command::new("sleep")
        .arg("30")
        .current_dir(&worktree)
        .spawn()
        .unwrap();
    let seen = survivors(pgid, &worktree);
    let _ = probe.kill();
    let _ = probe.wait();
    assert!(
        seen.iter()
            .any(|p| p.starts_with(&format!("{} ", probe.id()))),
        "{seen:?}"
    );
    Some(r)
}

/// Live processes in process group `pgid` or working in `dir`: `pid command`.
fn survivors(pgid: u32, dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, r)| r.split_whitespace().collect())
            .unwrap_or_default();
        // state ppid pgrp ...
        if fields.first().is_some_and(|s| *s == "Z" || *s == "X") {
            continue;
        }
        let in_group = fields.get(2).and_then(|g| g.parse::<u32>().ok()) == Some(pgid);
        let in_dir =
            std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.starts_with(dir));
        if in_group || in_dir {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            out.push(format!(
                "{pid} {}",
                String::from_utf8_lossy(&cmd).replace('\0', " ")
            ));
        }
    }
    out
}

#[test]
fn claude_fixes_the_quickstart_and_reports_tokens_and_cost() {
    let Some(r) = fixes_the_quickstart("claude") else {
        return;
    };
    // The service reports 1000/50/200/100 tokens per answer; the reproduce stage takes 3
    // answers (two Write calls, a final message), the fix 4 (Read, Edit, Write, final).
    let t = &r["agent"]["tokens"];
    assert_eq!(
        (
            t["input"].as_u64(),
            t["output"].as_u64(),
            t["cache_read"].as_u64(),
            t["cache_write"].as_u64()
        ),
        (Some(7000), Some(350), Some(1400), Some(700)),
        "{t}"
    );
    assert!(
        r["agent"]["cost_usd"].as_f64().unwrap() > 0.0,
        "claude states its cost"
    );
    assert_eq!(r["agent"]["invocations"][1]["turns"], 4);
}

#[test]
fn codex_fixes_the_quickstart_and_reports_tokens() {
    let Some(r) = fixes_the_quickstart("codex") else {
        return;
    };
    // 7 answers of 1000 input tokens (200 of them cached) and 50 output tokens.
    let t = &r["agent"]["tokens"];
    assert_eq!(
        (
            t["input"].as_u64(),
            t["output"].as_u64(),
            t["cache_read"].as_u64()
        ),
        (Some(5600), Some(350), Some(1400)),
        "{t}"
    );
    assert!(r["agent"]["cost_usd"].is_null(), "codex states no cost");
}

#[test]
fn gemini_fixes_the_quickstart_and_reports_tokens() {
    let Some(r) = fixes_the_quickstart("gemini") else {
        return;
    };
    // Each answer has 800 uncached input tokens and 200 cached; gemini also asks its router.
    let t = &r["agent"]["tokens"];
    let input = t["input"].as_u64().unwrap();
    assert!(input >= 7 * 800 && input % 800 == 0, "{t}");
    assert_eq!(t["cache_read"].as_u64().unwrap() * 4, input, "{t}");
    assert!(r["agent"]["cost_usd"].is_null(), "gemini states no cost");
}

#[test]
fn aider_fixes_the_quickstart_and_its_own_commits_and_droppings_stay_off_the_fix_branch() {
    let Some(r) = fixes_the_quickstart("aider") else {
        return;
    };
    // aider committed in both stages (`--auto-commits`); fixci folded those commits.
    for id in ["reproduce", "fix"] {
        let summary = stage(&r, id)["summary"].as_str().unwrap();
        assert!(
            summary.contains("the agent's own commit (")
                && summary.contains("folded into fixci's commit"),
            "{id}: {summary}"
        );
    }
    assert!(r["agent"]["invocations"][0]["turns"].as_u64().unwrap() >= 1);
}

#[test]
fn claude_is_stopped_at_its_budget_when_the_service_is_down() {
    // stream-json shows the retries as they happen.
    stopped_at_its_budget_when_the_service_is_down(
        "claude",
        Down::Refused,
        "15s",
        Some("api_retry"),
    );
}

#[test]
fn codex_is_stopped_at_its_budget_when_the_service_is_down() {
    if let Some(r) = stopped_at_its_budget_when_the_service_is_down(
        "codex",
        Down::Refused,
        "15s",
        Some("Reconnecting"),
    ) {
        assert!(
            r["agent"]["invocations"][0]["error"]
                .as_str()
                .unwrap()
                .contains("budget")
        );
    }
}

#[test]
fn gemini_is_stopped_at_its_budget_when_the_service_is_down() {
    // gemini prints nothing until its model router has failed, which takes a few seconds of
    // node start-up, or more than 15 s on a loaded 2-core machine; it never gives up by itself.
    stopped_at_its_budget_when_the_service_is_down("gemini", Down::Refused, "40s", None);
}

#[test]
fn aider_is_stopped_at_its_budget_when_the_service_is_down() {
    // aider gives up by itself only after ~80 s (and then exits 0); it starts slowly.
    stopped_at_its_budget_when_the_service_is_down("aider", Down::Refused, "40s", None);
}

/// Token counts as `(input, output, cache_read)`.
fn tokens(r: &Value) -> (u64, u64, u64) {
    let t = &r["agent"]["tokens"];
    let n = |k: &str| {
        t[k].as_u64()
            .unwrap_or_else(|| panic!("no tokens.{k}: {t}"))
    };
    (n("input"), n("output"), n("cache_read"))
}

#[test]
fn opencode_fixes_the_quickstart_and_reports_tokens() {
    let Some(r) = fixes_the_quickstart("opencode") else {
        return;
    };
    // 7 steps (3 to reproduce, 4 to fix), each 1000 prompt tokens of which 200 cached, and 50
    // output tokens; the session title request is no step.
    assert_eq!(tokens(&r), (5600, 350, 1400), "{:#}", r["agent"]);
    assert_eq!(r["agent"]["invocations"][1]["turns"], 4);
    assert!(
        r["agent"]["cost_usd"].is_null(),
        "opencode has no price for the scripted model (it says 0)"
    );
}

#[test]
fn copilot_fixes_the_quickstart_and_reports_tokens_from_its_usage_file() {
    let Some(r) = fixes_the_quickstart("copilot") else {
        return;
    };
    assert_eq!(tokens(&r), (5600, 350, 1400), "{:#}", r["agent"]);
    assert_eq!(r["agent"]["invocations"][1]["turns"], 4);
    assert!(r["agent"]["cost_usd"].is_null(), "copilot states no cost");
}

#[test]
fn qwen_fixes_the_quickstart_and_reports_tokens() {
    let Some(r) = fixes_the_quickstart("qwen") else {
        return;
    };
    // Besides the 7 main-loop requests, qwen may ask its memory-extraction side agent.
    let (input, output, cache_read) = tokens(&r);
    assert!(input >= 5600 && input % 800 == 0, "{:#}", r["agent"]);
    assert_eq!(
        (cache_read * 4, output * 16),
        (input, input),
        "{:#}",
        r["agent"]
    );
    assert!(r["agent"]["cost_usd"].is_null(), "qwen states no cost");
}

#[test]
fn opencode_is_stopped_at_its_budget_when_the_service_is_down() {
    // opencode retries for about 72 s; its progress is only in the logs `--print-logs` shows.
    stopped_at_its_budget_when_the_service_is_down(
        "opencode",
        Down::Refused,
        "40s",
        Some("level=INFO"),
    );
}

#[test]
fn copilot_is_stopped_at_its_budget_when_the_service_does_not_answer() {
    // A refused connection ends copilot by itself after about 24 s of retries (exit 1,
    // `session.error`); a silent service does not, for minutes.
    stopped_at_its_budget_when_the_service_is_down("copilot", Down::Silent, "40s", None);
}

#[test]
fn qwen_is_stopped_at_its_budget_when_the_service_does_not_answer() {
    // A refused connection ends qwen by itself within seconds; a silent service does not.
    stopped_at_its_budget_when_the_service_is_down("qwen", Down::Silent, "40s", None);
}

/// A spec's own agent that prints Codex's JSON Lines events (a final `agent_message`, one
/// completed turn) and writes no `root-cause.md`.
const CODEX_LIKE_AGENT: &str = r#"
import json, os, pathlib
stage = os.environ["FIXCI_STAGE"]
out = pathlib.Path(os.environ["FIXCI_STAGE_DIR"])
def say(text):
    print(json.dumps({"type": "item.completed", "item": {"type": "agent_message", "text": text}}))
    print(json.dumps({"type": "turn.completed", "usage": {"input_tokens": 900, "cached_input_tokens": 100, "output_tokens": 40}}))
if stage == "reproduce":
    pathlib.Path("tests/test_repro.py").write_text("import unittest\nfrom mathlib.stats import mean\n\n\nclass Repro(unittest.TestCase):\n    def test_mean(self):\n        self.assertEqual(mean([1, 2, 3]), 2)\n")
    (out / "repro.json").write_text(json.dumps({"test_file": "tests/test_repro.py", "command": "python3 -m unittest tests.test_repro"}))
    say("Wrote tests/test_repro.py.")
else:
    p = pathlib.Path("mathlib/stats.py")
    p.write_text(p.read_text().replace("(len(xs) - 1)", "len(xs)"))
    say("Root cause: `mean` divided by `len(xs) - 1`; it now divides by `len(xs)`.")
"#;

/// Runs the mathlib job with `CODEX_LIKE_AGENT` as the spec's `agent` table `agent` (its
/// command filled in); returns the exit code, `result.json`, `state.json` and the run directory.
fn run_codex_like(agent: Value) -> (Option<i32>, Value, Value, PathBuf, TestEnv) {
    let e = test_env();
    let mut agent = agent;
    agent["command"] = json!(["python3", "codex_like.py"]);
    let spec = scripted_job(&e.root, &e.repo, "unused", json!({ "agent": agent }));
    std::fs::write(e.root.join("codex_like.py"), CODEX_LIKE_AGENT).unwrap();
    let out = fixci()
        .current_dir(&e.root)
        .env("FIXCI_CACHE_DIR", e.root.join("cache"))
        .env_remove("GITHUB_TOKEN")
        .env_remove("GH_TOKEN")
        .args([
            "run",
            spec.to_str().unwrap(),
            "--out",
            e.out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let dir = run_dir(&e.out);
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("state.json")).unwrap()).unwrap();
    (out.status.code(), result(&dir), state, dir, e)
}

#[test]
fn a_spec_command_agent_names_its_parser_and_its_final_message_is_the_root_cause() {
    let (code, r, state, dir, _e) = run_codex_like(json!({"result": "codex-jsonl"}));
    assert_eq!(code, Some(0), "{r:#}");
    let inv = &r["agent"]["invocations"];
    assert_eq!(inv[1]["format"], "codex-jsonl", "{r:#}");
    assert_eq!(inv[1]["agent"], "command");
    assert_eq!(
        (
            &r["agent"]["tokens"]["input"],
            &r["agent"]["tokens"]["cache_read"]
        ),
        (&json!(1600), &json!(200))
    );
    let why = "Root cause: `mean` divided by `len(xs) - 1`; it now divides by `len(xs)`.";
    assert_eq!(state["attempts"][0]["root_cause"], why, "{state:#}");
    let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(report.contains(why), "{report}");
    let clone = PathBuf::from(state["repo"]["root"].as_str().unwrap());
    let msg = git(
        &clone,
        &["log", "-1", "--format=%B", r["branch"].as_str().unwrap()],
    );
    assert!(msg.contains(why), "the fix commit's message: {msg}");

    // Without `result`, a spec's command is read by no parser: no tokens, no root cause.
    let (code, r, state, _, _e) = run_codex_like(json!({}));
    assert_eq!(code, Some(0), "{r:#}");
    assert_eq!(r["agent"]["invocations"][1]["format"], "none");
    assert_eq!(r["agent"]["tokens"]["input"], 0);
    assert!(state["attempts"][0]["root_cause"].is_null(), "{state:#}");
}
