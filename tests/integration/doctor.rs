//! `fixci doctor`: stub agent CLIs on a controlled `PATH` stand in for installed, missing,
//! changed and hanging CLIs.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::common::*;

/// A scratch folder with `bin/` (stubs) and `tools/` (git and python3 only), and a `HOME` with
/// no git identity.
struct Doc {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    bin: PathBuf,
    tools: PathBuf,
}

fn doc() -> Doc {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let (bin, tools) = (root.join("bin"), root.join("tools"));
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&tools).unwrap();
    std::fs::create_dir_all(root.join("home")).unwrap();
    let python = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .unwrap();
    let python = String::from_utf8(python.stdout).unwrap();
    std::os::unix::fs::symlink(python.trim(), tools.join("python3")).unwrap();
    let git = std::process::Command::new("sh")
        .args(["-c", "command -v git"])
        .output()
        .unwrap();
    let git = String::from_utf8(git.stdout).unwrap();
    std::os::unix::fs::symlink(git.trim(), tools.join("git")).unwrap();
    std::os::unix::fs::symlink("/bin/sh", tools.join("sh")).unwrap();
    Doc {
        _tmp: tmp,
        root,
        bin,
        tools,
    }
}

impl Doc {
    fn stub(&self, name: &str, script: &str) {
        let p = self.bin.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{script}")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn cmd(&self) -> assert_cmd::Command {
        let mut c = fixci();
        c.current_dir(&self.root)
            .env(
                "PATH",
                format!("{}:{}", self.bin.display(), self.tools.display()),
            )
            .env("HOME", self.root.join("home"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env_remove("GITHUB_TOKEN")
            .env_remove("GH_TOKEN")
            .arg("doctor");
        c
    }
}

/// `codex` as 0.169.0 answers, with `exec --help` given by `exec_help`.
fn codex_stub(exec_help: &str) -> String {
    format!(
        "case \"$*\" in\n  --version) echo 'codex-cli 0.0.0-test' ;;\n  'exec --help') printf '%s\\n' 'Usage: codex exec [OPTIONS] [PROMPT]' {exec_help} ;;\n  --help) printf '%s\\n' 'Usage: codex [OPTIONS] [PROMPT]' '  -a, --ask-for-approval <POLICY>' '  -m, --model <MODEL>' ;;\n  *) exit 2 ;;\nesac\n"
    )
}

const CODEX_EXEC_HELP: &str = "'  -m, --model <MODEL>' '  -s, --sandbox <MODE>' '      --json  Print events to stdout as JSONL' '      --add-dir <DIR>'";
/// `--json` renamed: only `--json-events` (which must not count as `--json`).
const CODEX_EXEC_HELP_RENAMED: &str = "'  -m, --model <MODEL>' '  -s, --sandbox <MODE>' '      --json-events  Print events as JSON Lines' '      --add-dir <DIR>'";

fn out(a: &assert_cmd::assert::Assert) -> (String, String) {
    let o = a.get_output();
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn line<'a>(stdout: &'a str, prefix: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{stdout}"))
}

/// The hint printed right under the line starting with `prefix`.
fn hint_after<'a>(stdout: &'a str, prefix: &str) -> &'a str {
    let mut lines = stdout.lines();
    lines.find(|l| l.starts_with(prefix)).unwrap();
    let h = lines.next().unwrap_or("");
    assert!(
        h.trim_start().starts_with("hint: "),
        "no hint after {prefix:?}:\n{stdout}"
    );
    h
}

#[test]
fn a_missing_cli_and_a_renamed_flag_fail_with_hints_and_the_token_is_never_shown() {
    let d = doc();
    d.stub("codex", &codex_stub(CODEX_EXEC_HELP_RENAMED));
    let secret = "ghp_doctorSecretValue0123456789";
    let a = d
        .cmd()
        .args(["--agent", "codex", "--agent", "claude"])
        .env("GITHUB_TOKEN", secret)
        .assert()
        .code(1);
    let (stdout, stderr) = out(&a);
    assert!(
        line(&stdout, "ok    codex: ").contains("codex-cli 0.0.0-test"),
        "{stdout}"
    );
    assert_eq!(
        line(&stdout, "FAIL  codex flags: "),
        "FAIL  codex flags: `--json` not in the output of `codex --help`, `codex exec --help`"
    );
    assert!(
        hint_after(&stdout, "FAIL  codex flags: ").contains("renamed or removed"),
        "{stdout}"
    );
    assert!(
        line(&stdout, "FAIL  claude: ").contains("`claude` not found on PATH"),
        "{stdout}"
    );
    assert!(
        hint_after(&stdout, "FAIL  claude: ").contains("npm install -g @anthropic-ai/claude-code"),
        "{stdout}"
    );
    assert!(line(&stdout, "ok    git: ").contains("git version"));
    assert!(line(&stdout, "warn  git identity: ").contains("not set"));
    assert_eq!(
        line(&stdout, "ok    GitHub token: "),
        "ok    GitHub token: `GITHUB_TOKEN` is set (value not shown)"
    );
    assert!(line(&stdout, "doctor: ").contains("2 needed checks failed"));
    assert!(!stdout.contains(secret) && !stderr.contains(secret));

    // The same as JSON.
    let a = d
        .cmd()
        .args(["--agent", "codex", "--agent", "claude", "--json"])
        .env("GITHUB_TOKEN", secret)
        .assert()
        .code(1);
    let (stdout, _) = out(&a);
    assert!(!stdout.contains(secret));
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["ok"], false);
    let by = |name: &str| {
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == name)
            .unwrap_or_else(|| panic!("no check {name}: {v}"))
            .clone()
    };
    assert_eq!(by("codex flags")["status"], "fail");
    assert!(by("codex flags")["hint"].is_string());
    assert_eq!(by("claude")["status"], "fail");
    assert_eq!(by("codex")["status"], "ok");
    assert_eq!(by("GitHub token")["status"], "ok");
}

#[test]
fn a_cli_with_every_flag_passes_and_missing_presets_only_warn_by_default() {
    let d = doc();
    d.stub("codex", &codex_stub(CODEX_EXEC_HELP));
    let a = d.cmd().args(["--agent", "codex"]).assert().code(0);
    let (stdout, _) = out(&a);
    assert_eq!(
        line(&stdout, "ok    codex flags: "),
        "ok    codex flags: `-a` `-s` `--json` `--add-dir` `-m` found in `codex --help`, `codex exec --help`"
    );
    // No spec, no --agent: every preset; the missing ones are warnings, the installed one ok.
    let a = d.cmd().assert().code(0);
    let (stdout, _) = out(&a);
    for p in ["aider", "claude", "gemini"] {
        assert!(
            line(&stdout, &format!("warn  {p}: ")).contains("needed only to use this preset"),
            "{stdout}"
        );
    }
    assert!(line(&stdout, "ok    codex flags: ").contains("`--json`"));
    assert!(line(&stdout, "warn  GitHub token: ").contains("offline PR proposal"));
    // An installed preset whose flag is gone fails even by default.
    d.stub("codex", &codex_stub(CODEX_EXEC_HELP_RENAMED));
    d.cmd().assert().code(1);
}

#[test]
fn a_help_that_hangs_is_stopped_at_the_timeout_with_its_children() {
    let d = doc();
    let pids = d.root.join("pids");
    d.stub(
        "gemini",
        &format!(
            "hang() {{ python3 -c 'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(1000)'; }}\ncase \"$*\" in\n  --version) echo 0.61.0 ;;\n  *) hang & echo \"$$ $!\" > {}; hang ;;\nesac\n",
            pids.display()
        ),
    );
    let a = d
        .cmd()
        .args(["--agent", "gemini", "--timeout", "1s"])
        .assert()
        .code(1);
    let (stdout, _) = out(&a);
    assert_eq!(
        line(&stdout, "FAIL  gemini flags: "),
        "FAIL  gemini flags: `gemini --help` did not finish within 1s"
    );
    let text = std::fs::read_to_string(&pids).unwrap();
    for pid in text.split_whitespace() {
        let pid: u32 = pid.parse().unwrap();
        assert!(!alive(pid), "process {pid} survived the doctor");
    }
}

#[test]
fn with_a_spec_it_checks_the_ladders_agents_the_test_runner_and_the_token_the_spec_needs() {
    let d = doc();
    // claude's help leaves out `--max-turns` (it works, but is hidden): the preset says so.
    d.stub(
        "claude",
        "case \"$1\" in\n  --version) echo '2.1.197 (Claude Code)' ;;\n  --help) printf '%s\\n' '  -p, --print' '  --permission-mode <mode>' '  --output-format <format>' '  --verbose' '  --add-dir <directories...>' '  --model <model>' ;;\nesac\n",
    );
    std::fs::create_dir_all(d.root.join("pipelines")).unwrap();
    let builtin = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/deterministic.toml"),
    )
    .unwrap()
    .replace("name = \"deterministic\"", "name = \"ladder\"")
    .replace(
        "max = \"spec.max_attempts or 3\"\n",
        "max = 2\nagent = \"{{ 'codex' if attempt.number == 2 else '' }}\"\n",
    );
    std::fs::write(d.root.join("pipelines/ladder.toml"), builtin).unwrap();
    let spec = d.root.join("info.json");
    std::fs::write(
        &spec,
        serde_json::to_string(&json!({
            "deterministic": true,
            "prompt": "p",
            "url": "https://github.com/o/r/actions/runs/1",
            "pipeline": "pipelines/ladder.toml",
            "agent": {"preset": "claude", "args": ["--max-turns", "20"]},
            "test-command": "CI=1 pytest -q {test_file}",
        }))
        .unwrap(),
    )
    .unwrap();
    let a = d.cmd().arg(&spec).assert().code(1);
    let (stdout, _) = out(&a);
    assert!(
        line(&stdout, "ok    claude flags: ")
            .contains("`-p` `--permission-mode` `--output-format` `--verbose` `--add-dir` found"),
        "{stdout}"
    );
    assert!(!line(&stdout, "ok    claude flags: ").contains("--max-turns"));
    assert!(
        line(&stdout, "FAIL  codex: ").contains("needed for attempt 2 of `attempts`"),
        "{stdout}"
    );
    assert!(
        line(&stdout, "FAIL  runner pytest: ").contains("the spec's test command"),
        "{stdout}"
    );
    assert!(
        line(&stdout, "FAIL  GitHub token: ")
            .contains("needed: the spec's `url` is read from GitHub"),
        "{stdout}"
    );
    // `gh auth token` counts, and its value is never shown.
    let secret = "gho_doctorGhSecret987654321";
    d.stub(
        "gh",
        &format!("[ \"$*\" = 'auth token' ] && echo {secret}\n"),
    );
    let a = d.cmd().arg(&spec).assert().code(1);
    let (stdout, stderr) = out(&a);
    assert_eq!(
        line(&stdout, "ok    GitHub token: "),
        "ok    GitHub token: `gh auth token` gives one (value not shown)"
    );
    assert!(!stdout.contains(secret) && !stderr.contains(secret));
}

#[test]
fn doctor_input_errors_are_exit_2() {
    let d = doc();
    let a = d.cmd().args(["--agent", "clod"]).assert().code(2);
    let (_, stderr) = out(&a);
    assert!(stderr.contains("unknown agent preset `clod`"), "{stderr}");
    let a = d.cmd().arg("nope.json").assert().code(2);
    assert!(out(&a).1.contains("job spec `nope.json` does not exist"));
    let a = d.cmd().args(["--timeout", "soon"]).assert().code(2);
    assert!(out(&a).1.contains("`soon` is not a duration"));
}

/// With the real agent CLIs installed (`.ci/install-agents.sh` puts them in
/// `~/.cache/fixci-agents/bin`, which `crate::agents::cli_dir` searches), every preset's flags
/// are in their help and `fixci doctor --agent NAME` is ready. A missing CLI skips with a message,
/// or fails when the CLIs are required (`FIXCI_REQUIRE_AGENTS=1`, `CI=true`).
#[test]
fn the_installed_real_clis_have_every_flag_fixci_passes() {
    let mut checked = Vec::new();
    let version = regex::Regex::new(r"\d+\.\d+").unwrap();
    for name in [
        "claude", "codex", "gemini", "aider", "opencode", "copilot", "qwen",
    ] {
        let Some(bin) = crate::agents::cli_dir(name) else {
            continue;
        };
        let path = crate::agents::path_with(&bin);
        // A private HOME, where gemini's probe leftovers are watched (copilot's runtime is
        // unpacked once, beside the installed CLIs).
        let home = tempfile::tempdir().unwrap();
        let mut cmd = crate::agents::fixci_in_home(home.path());
        cmd.env_remove("GEMINI_CLI_HOME");
        if name == "copilot" {
            cmd.env("COPILOT_PKG_CACHE_HOME", crate::agents::copilot_cache());
        }
        let a = cmd
            .env("PATH", path)
            .args(["doctor", "--agent", name, "--timeout", "120s"])
            .assert();
        let (stdout, _) = out(&a);
        assert!(
            line(&stdout, &format!("ok    {name} flags: ")).contains("found"),
            "{stdout}"
        );
        let found = line(&stdout, &format!("ok    {name}: "));
        assert!(
            found.contains(&format!("/bin/{name})")) && version.is_match(found),
            "the version, then the path: {found}"
        );
        let left: Vec<_> = walk(home.path())
            .into_iter()
            .filter(|p| p.to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(left.is_empty(), "{name} probes left {left:?}");
        checked.push(name);
    }
    eprintln!("checked {} real agent CLI(s): {checked:?}", checked.len());
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn a_probe_leftover_is_removed_and_an_older_one_kept() {
    let d = doc();
    // gemini (0.61.0) leaves `~/.gemini/projects.json.<uuid>.tmp` on every start.
    d.stub(
        "gemini",
        "mkdir -p \"$HOME/.gemini\"; : > \"$HOME/.gemini/projects.json.$$.tmp\"\ncase \"$1\" in\n  --version) echo 0.61.0 ;;\n  --help) printf '%s\\n' '  --approval-mode' '  -o, --output-format' '  --include-directories' '  -m, --model' ;;\nesac\n",
    );
    let gemini_dir = d.root.join("home/.gemini");
    std::fs::create_dir_all(&gemini_dir).unwrap();
    std::fs::write(gemini_dir.join("projects.json.mine.tmp"), "").unwrap();
    std::fs::write(gemini_dir.join("projects.json"), "{}").unwrap();
    let a = d.cmd().args(["--agent", "gemini"]).assert().code(0);
    let (stdout, _) = out(&a);
    assert!(
        line(&stdout, "ok    gemini flags: ").contains("found"),
        "{stdout}"
    );
    let mut left: Vec<String> = std::fs::read_dir(&gemini_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["projects.json", "projects.json.mine.tmp"]);
}

#[test]
fn install_hints_carry_the_versions_ci_installs() {
    let script = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/install-agents.sh"),
    )
    .unwrap();
    let version = |var: &str| {
        script
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{var}=")))
            .unwrap_or_else(|| panic!("no {var} in .ci/install-agents.sh"))
            .to_string()
    };
    let d = doc();
    for (preset, hint) in [
        (
            "claude",
            format!(
                "npm install -g @anthropic-ai/claude-code@{}",
                version("CLAUDE_VERSION")
            ),
        ),
        (
            "codex",
            format!("npm install -g @openai/codex@{}", version("CODEX_VERSION")),
        ),
        (
            "gemini",
            format!(
                "npm install -g @google/gemini-cli@{}",
                version("GEMINI_VERSION")
            ),
        ),
        (
            "aider",
            format!(
                "python3 -m pip install aider-chat=={}",
                version("AIDER_VERSION")
            ),
        ),
        (
            "opencode",
            format!("npm install -g opencode-ai@{}", version("OPENCODE_VERSION")),
        ),
        (
            "copilot",
            format!(
                "npm install -g @github/copilot@{}",
                version("COPILOT_VERSION")
            ),
        ),
        (
            "qwen",
            format!(
                "npm install -g @qwen-code/qwen-code@{}",
                version("QWEN_VERSION")
            ),
        ),
    ] {
        let a = d.cmd().args(["--agent", preset]).assert().code(1);
        let (stdout, _) = out(&a);
        assert!(
            hint_after(&stdout, &format!("FAIL  {preset}: ")).contains(&format!("`{hint}`")),
            "{preset}: {stdout}"
        );
    }
}
