//! Helpers shared by the integration tests.

use std::path::PathBuf;

/// The `fixci` binary under test.
pub fn fixci() -> assert_cmd::Command {
    assert_cmd::Command::cargo_bin("fixci").expect("fixci binary")
}

/// `../shared/fixtures` beside the project, or `None` (with a message) when it is absent, as in
/// a user's fresh clone. Under `CI=true` (CI has the folder) its absence fails the test instead:
/// a real-data test must not pass by skipping there.
pub fn fixtures() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures");
    if p.is_dir() {
        Some(p)
    } else if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("../shared/fixtures is absent under CI=true: real-data tests must run in CI");
    } else {
        eprintln!("skipping: ../shared/fixtures is absent (real-data tests need it)");
        None
    }
}

use std::path::Path;
use std::process::Command;

/// A validator CLI installed by `.ci/install-validators.sh` (`actionlint`,
/// `kubernetes-validate`): in `$FIXCI_TOOLS_DIR/venv/bin` (default `~/.cache/fixci-tools`), then
/// on `PATH`. `None` with a message when it is absent; under `CI=true` (which installs it) its
/// absence fails the test instead.
pub fn validator(name: &str) -> Option<PathBuf> {
    let tools = std::env::var_os("FIXCI_TOOLS_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/fixci-tools")));
    if let Some(p) = tools.map(|t| t.join("venv/bin").join(name)) {
        if p.is_file() {
            return Some(p);
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("`{name}` is not installed under CI=true (.ci/install-validators.sh installs it)");
    }
    eprintln!("skipping: `{name}` is not installed (run .ci/install-validators.sh)");
    None
}

/// Runs git in `dir`, panicking with its stderr on failure; returns stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Test Author")
        .env("GIT_AUTHOR_EMAIL", "author@example.com")
        .env("GIT_COMMITTER_NAME", "Test Author")
        .env("GIT_COMMITTER_EMAIL", "author@example.com")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A small Python project with a real bug (`mean` divides by `len - 1`) and a unittest that
/// catches it, committed on `main` in a new git repository at `dir`.
pub fn buggy_repo(dir: &Path) {
    stats_repo(dir, "(len(xs) - 1)");
}

/// The project of [`buggy_repo`] with `mean` dividing by `divisor` (`len(xs)` is correct).
pub fn stats_repo(dir: &Path, divisor: &str) {
    std::fs::create_dir_all(dir.join("mathlib")).unwrap();
    std::fs::create_dir_all(dir.join("tests")).unwrap();
    std::fs::write(dir.join("mathlib/__init__.py"), "").unwrap();
    std::fs::write(
        dir.join("mathlib/stats.py"),
        format!("def mean(xs):\n    \"\"\"Arithmetic mean of a non-empty list.\"\"\"\n    return sum(xs) / {divisor}\n"),
    )
    .unwrap();
    std::fs::write(dir.join("tests/__init__.py"), "").unwrap();
    std::fs::write(
        dir.join("tests/test_stats.py"),
        "import unittest\nfrom mathlib.stats import mean\n\n\nclass StatsTest(unittest.TestCase):\n    def test_mean(self):\n        self.assertEqual(mean([1, 2, 3]), 2)\n",
    )
    .unwrap();
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-qm", "stats module"]);
}

/// A CI log of the buggy repository's failing unittest run, in GitHub Actions' format.
pub const CI_LOG: &str = "2026-11-02T10:00:01.1000000Z ##[group]Run python -m unittest\n2026-11-02T10:00:01.2000000Z ##[endgroup]\n2026-11-02T10:00:02.0000000Z ======================================================================\n2026-11-02T10:00:02.0000000Z FAIL: test_mean (tests.test_stats.StatsTest.test_mean)\n2026-11-02T10:00:02.0000000Z ----------------------------------------------------------------------\n2026-11-02T10:00:02.0000000Z Traceback (most recent call last):\n2026-11-02T10:00:02.0000000Z   File \"/home/runner/work/m/m/tests/test_stats.py\", line 7, in test_mean\n2026-11-02T10:00:02.0000000Z     self.assertEqual(mean([1, 2, 3]), 2)\n2026-11-02T10:00:02.0000000Z AssertionError: 3.0 != 2\n2026-11-02T10:00:02.0000000Z FAILED (failures=1)\n2026-11-02T10:00:02.1000000Z ##[error]Process completed with exit code 1.\n";

/// A scripted agent (Python) whose behaviour is chosen by its first argument:
/// reproduce stage: `repro-passes` writes a test that passes, `sleep` hangs with a grandchild
/// that ignores SIGTERM, `no-repro` leaves no repro.json; otherwise a failing test.
/// fix stage: `good` fixes the bug, `never` makes a wrong change, `tamper-edit` /
/// `tamper-delete` / `tamper-skip` make the reproduction pass by attacking the test,
/// `self-commit` / `self-commit-branch` fix it and commit by themselves, `human` makes a wrong
/// change and has a person commit on the fix branch during the next verification.
pub const AGENT_PY: &str = r#"
import json, os, pathlib, subprocess, sys, time
mode = sys.argv[1]
stage = os.environ["FIXCI_STAGE"]
stage_dir = pathlib.Path(os.environ["FIXCI_STAGE_DIR"])
prompt = pathlib.Path(os.environ["FIXCI_PROMPT_FILE"]).read_text()
(stage_dir / "seen-env.json").write_text(json.dumps(dict(os.environ)))
repro = pathlib.Path("tests/test_repro.py")
# Markers and pids go beside this script, never into fixci's run directory (which fixci checks).
here = pathlib.Path(__file__).resolve().parent
print(f"scripted agent: stage {stage}, mode {mode}", flush=True)
if mode == "sleep":
    child = subprocess.Popen(["sh", "-c", "trap '' TERM; sleep 1000"])
    (here / "pids").write_text(f"{os.getpid()} {child.pid}")
    time.sleep(1000)
if mode == "slow-once" and stage == "fix":
    marker = here / "slept"
    if not marker.exists():
        marker.write_text("1")
        child = subprocess.Popen(["sh", "-c", "trap '' TERM; sleep 1000"])
        (here / "pids").write_text(f"{os.getpid()} {child.pid}")
        time.sleep(1000)
    mode = "good"
if stage == "reproduce" and mode.startswith("escape-"):
    target = {"escape-abs": "/etc/hostname", "escape-dotdot": "../outside_test.py", "escape-symlink": "tests/test_link.py"}[mode]
    if mode == "escape-symlink":
        os.symlink("/etc/hostname", "tests/test_link.py")
    (stage_dir / "repro.json").write_text(json.dumps({"test_file": target, "command": "false"}))
    sys.exit(0)
if stage == "reproduce":
    if mode == "no-repro":
        sys.exit(0)
    body = "self.assertEqual(mean([2, 2]), 4)" if mode == "repro-passes" else "self.assertEqual(mean([1, 2, 3]), 2)"
    prelude = ""
    if mode == "human":
        # A person commits on the fix branch while no agent runs: here, during a verification
        # run after the fix agent of attempt 1 asked for it with a marker file that names the
        # worktree (the test itself runs in fixci's sealed checkout).
        marker = here / "human-commit-now"
        prelude = (f"import pathlib, subprocess\nm = pathlib.Path({str(marker)!r})\nif m.exists():\n    wt = m.read_text()\n    m.unlink()\n"
                   "    subprocess.run(['git', '-c', 'user.name=Jane Doe', '-c', 'user.email=jane@example.com', 'commit', '-qam', 'wip: my own try'], cwd=wt)\n")
    repro.write_text(f"{prelude}import unittest\nfrom mathlib.stats import mean\n\n\nclass Repro(unittest.TestCase):\n    def test_mean(self):\n        {body}\n")
    command = "python3 -m unittest tests.test_repro"
    (stage_dir / "repro.json").write_text(json.dumps({"test_file": str(repro), "command": command}))
elif stage == "fix":
    stats = pathlib.Path("mathlib/stats.py")
    src = stats.read_text()
    if mode == "good" or mode.startswith("self-commit"):
        stats.write_text(src.replace("(len(xs) - 1)", "len(xs)"))
        (stage_dir / "root-cause.md").write_text("mean divided by len - 1 instead of len.")
    else:
        stats.write_text(src.replace("(len(xs) - 1)", "(len(xs) - 1.0)"))
    if mode == "human" and os.environ["FIXCI_ATTEMPT"] == "1":
        (here / "human-commit-now").write_text(os.getcwd())
    if mode.startswith("self-commit"):
        # An agent that commits by itself (as aider does), stages a dropping, and, in
        # `self-commit-branch`, leaves the fix branch for one of its own.
        if mode == "self-commit-branch":
            subprocess.run(["git", "checkout", "-qb", "agent-scratch"], check=True)
        pathlib.Path(".aider.chat.history.md").write_text("aider chat history\n")
        subprocess.run(["git", "add", "-A", "-f", "mathlib", ".aider.chat.history.md"], check=True)
        subprocess.run(["git", "-c", "user.name=Agent Bot", "-c", "user.email=bot@example.com", "commit", "-qm", "agent: fix mean"], check=True)
        pathlib.Path("NOTES.md").write_text("notes the agent staged\n")
        subprocess.run(["git", "add", "NOTES.md"], check=True)
    if mode == "tamper-edit":
        repro.write_text(repro.read_text().replace("self.assertEqual(", "self.assertTrue(True or "))
    elif mode == "tamper-delete":
        repro.unlink()
    elif mode == "tamper-skip":
        repro.write_text(repro.read_text().replace("    def test_mean", "    @unittest.skip('later')\n    def test_mean"))
"#;

/// Modes of [`AGENT_PY`] that run without a sandbox unless the spec says otherwise: they write
/// beside the script (read-only inside bubblewrap) or commit into the user's object store (the
/// agent's worktree shares it, read-only inside bubblewrap).
pub const UNSANDBOXED_MODES: &[&str] =
    &["sleep", "slow-once", "human", "self-commit", "self-commit-branch"];

/// Writes the scripted agent and a job spec into `dir`; returns the spec path.
pub fn scripted_job(dir: &Path, repo: &Path, mode: &str, extra: serde_json::Value) -> PathBuf {
    std::fs::write(dir.join("agent.py"), AGENT_PY).unwrap();
    let mut spec = serde_json::json!({
        "deterministic": true,
        "prompt": "test_mean fails in CI. Fix it.",
        "raw-logs": CI_LOG,
        "repo": repo.display().to_string(),
        "agent": {"command": ["python3", "agent.py", mode]},
        "budgets": {"reproduce": "30s", "fix": "30s"},
    });
    if UNSANDBOXED_MODES.contains(&mode) {
        spec["sandbox"] = "none".into();
    }
    if let (Some(o), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            o.insert(k.clone(), v.clone());
        }
    }
    let p = dir.join("info.json");
    std::fs::write(&p, serde_json::to_string_pretty(&spec).unwrap()).unwrap();
    p
}

/// The single run directory under `out`.
pub fn run_dir(out: &Path) -> PathBuf {
    let dirs: Vec<_> = std::fs::read_dir(out)
        .expect("out dir exists")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(
        dirs.len(),
        1,
        "expected one run directory in {}: {dirs:?}",
        out.display()
    );
    dirs[0].clone()
}

/// `result.json` of a run directory.
pub fn result(run: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("result.json")).expect("result.json"))
        .expect("valid JSON")
}

/// True when process `pid` is running (zombies count as dead).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !matches!(
            s.rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().next()),
            Some("Z") | Some("X")
        ),
        Err(_) => false,
    }
}

/// A scratch folder with the buggy repository at `repo` and run directories going to `out`.
pub struct TestEnv {
    pub _tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub repo: PathBuf,
    pub out: PathBuf,
}

/// A fresh [`TestEnv`].
pub fn test_env() -> TestEnv {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let repo = root.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    buggy_repo(&repo);
    TestEnv {
        out: root.join("out"),
        root,
        repo,
        _tmp: tmp,
    }
}

/// Writes `dir/pipelines/flaky.toml`: the built-in flaky pipeline with `runs` confirmation runs
/// instead of 400 (a pipeline beside the spec overrides the built-in one), for speed.
pub fn flaky_pipeline_with_runs(dir: &Path, runs: u64) {
    std::fs::create_dir_all(dir.join("pipelines")).unwrap();
    let builtin =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/flaky.toml"))
            .unwrap();
    assert!(builtin.contains("runs = 400"), "the built-in flaky pipeline changed");
    std::fs::write(
        dir.join("pipelines/flaky.toml"),
        builtin.replace("runs = 400", &format!("runs = {runs}")),
    )
    .unwrap();
}
