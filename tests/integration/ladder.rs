//! The attempt ladder: a pipeline's `attempts` stage chooses the agent and model per attempt.
//! Stub `claude` and `codex` executables on `PATH` record how they were started, so the tests
//! check from the agent's side which CLI ran each attempt and with which model.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::common::*;

/// Attempt 1: `claude` with `haiku`; from attempt 2: `codex` with `opus`.
const LADDER_KEYS: &str = "agent = \"{{ 'claude' if attempt.number == 1 else 'codex' }}\"\nmodel = \"{{ 'haiku' if attempt.number == 1 else 'opus' }}\"\n";

/// The built-in deterministic pipeline with `keys` added to its `attempts` stage, written to
/// `dir/pipelines/ladder.toml`.
fn ladder_pipeline(dir: &Path, keys: &str) -> PathBuf {
    let builtin = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/deterministic.toml"),
    )
    .unwrap();
    let marker = "max = \"spec.max_attempts or 3\"\n";
    assert!(builtin.contains(marker));
    let text = builtin
        .replace("name = \"deterministic\"", "name = \"ladder\"")
        .replace(marker, &format!("{marker}{keys}"));
    std::fs::create_dir_all(dir.join("pipelines")).unwrap();
    let p = dir.join("pipelines/ladder.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// Stub CLIs in `dir/bin`: each appends `NAME STAGE ATTEMPT ARGS...` to `call.log` in its stage
/// directory (the one place of the run directory a sandboxed agent may write) and then runs the scripted agent in `mode`: `claude` makes a wrong fix, `codex` a good one.
fn stub_agents(dir: &Path) -> PathBuf {
    std::fs::write(dir.join("agent.py"), AGENT_PY).unwrap();
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for (name, mode) in [("claude", "never"), ("codex", "good")] {
        let p = bin.join(name);
        std::fs::write(
            &p,
            format!(
                "#!/bin/sh\necho \"{name} $FIXCI_STAGE $FIXCI_ATTEMPT $*\" >> \"$FIXCI_STAGE_DIR/call.log\"\nexec python3 {} {mode}\n",
                dir.join("agent.py").display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    bin
}

fn spec(e: &TestEnv, extra: serde_json::Value) -> PathBuf {
    let mut s = json!({
        "deterministic": true,
        "prompt": "test_mean fails in CI. Fix it.",
        "raw-logs": CI_LOG,
        "repo": e.repo.display().to_string(),
        "pipeline": "pipelines/ladder.toml",
        "agent": "claude",
        "max-attempts": 2,
        "budgets": {"reproduce": "30s", "fix": "30s"},
    });
    for (k, v) in extra.as_object().unwrap() {
        s[k] = v.clone();
    }
    let p = e.root.join("info.json");
    std::fs::write(&p, serde_json::to_string_pretty(&s).unwrap()).unwrap();
    p
}

fn fixci_in(e: &TestEnv, bin: &Path) -> assert_cmd::Command {
    let mut cmd = fixci();
    cmd.current_dir(&e.root)
        .env("FIXCI_CACHE_DIR", e.root.join("cache"))
        .env(
            "PATH",
            format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
        )
        .env_remove("GITHUB_TOKEN")
        .env_remove("GH_TOKEN");
    cmd
}

/// The stubs' calls in `run`, in run order: by attempt, the reproduction first.
fn calls(run: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut dirs = vec![run.join("stages")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.path().is_dir() {
                dirs.push(e.path());
            } else if e.file_name() == "call.log" {
                out.extend(std::fs::read_to_string(e.path()).unwrap().lines().map(String::from));
            }
        }
    }
    out.sort_by_key(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        (f[2].parse::<u32>().unwrap_or(0), f[1] != "reproduce")
    });
    out
}

#[test]
fn each_attempt_runs_the_agent_and_model_the_ladder_chose() {
    let e = test_env();
    ladder_pipeline(&e.root, LADDER_KEYS);
    let bin = stub_agents(&e.root);
    let spec = spec(&e, json!({}));
    let out = fixci_in(&e, &bin)
        .args([
            "run",
            spec.to_str().unwrap(),
            "--out",
            e.out.to_str().unwrap(),
        ])
        .assert()
        .code(0)
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("attempt 1/2: agent `claude`, model `haiku`")
            && stderr.contains("attempt 2/2: agent `codex`, model `opus`"),
        "{stderr}"
    );
    let run = run_dir(&e.out);
    // From the agents' side: which CLI ran, in which stage and attempt, with which arguments.
    let calls = calls(&run);
    let calls: Vec<&str> = calls.iter().map(String::as_str).collect();
    assert_eq!(calls.len(), 3, "{calls:?}");
    // The reproduction runs the run's own agent (the spec's `claude`, no model).
    assert!(calls[0].starts_with("claude reproduce 1 -p "), "{calls:?}");
    assert!(!calls[0].contains("--model"), "{calls:?}");
    assert!(
        calls[1].starts_with("claude fix 1 -p ") && calls[1].ends_with("--model haiku"),
        "{calls:?}"
    );
    assert!(
        calls[2].starts_with("codex fix 2 -a never exec ") && calls[2].ends_with("-m opus -"),
        "{calls:?}"
    );
    // The state, result.json and the report record each attempt's agent and model.
    let r = result(&run);
    assert_eq!(r["status"], "success");
    let a = r["attempts"].as_array().unwrap();
    assert_eq!(
        (&a[0]["agent"], &a[0]["model"], &a[0]["outcome"]),
        (&json!("claude"), &json!("haiku"), &json!("failed"))
    );
    assert_eq!(
        (&a[1]["agent"], &a[1]["model"], &a[1]["outcome"]),
        (&json!("codex"), &json!("opus"), &json!("passed"))
    );
    let st: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("state.json")).unwrap()).unwrap();
    assert_eq!(st["attempts"][1]["agent"], "codex");
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(
        report.contains("| 1 | claude | haiku | failed |")
            && report.contains("| 2 | codex | opus | passed |"),
        "{report}"
    );
    let events = std::fs::read_to_string(run.join("events.jsonl")).unwrap();
    assert!(
        events.lines().any(|l| l.contains("\"attempt_started\"")
            && l.contains("\"agent\":\"codex\"")
            && l.contains("\"model\":\"opus\"")),
        "{events}"
    );
}

#[test]
fn agent_on_the_command_line_switches_the_ladder_off() {
    let e = test_env();
    ladder_pipeline(&e.root, LADDER_KEYS);
    let bin = stub_agents(&e.root);
    let spec = spec(&e, json!({}));
    // `--agent codex`: every stage runs codex, and the ladder's models are not passed.
    fixci_in(&e, &bin)
        .args(["run", spec.to_str().unwrap(), "--agent", "codex", "--out"])
        .arg(&e.out)
        .assert()
        .code(0);
    let run = run_dir(&e.out);
    let calls = calls(&run);
    let calls: Vec<&str> = calls.iter().map(String::as_str).collect();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(
        calls
            .iter()
            .all(|c| c.starts_with("codex ") && !c.contains(" -m ")),
        "{calls:?}"
    );
    assert_eq!(result(&run)["attempts"][0]["agent"], "codex");
    assert_eq!(
        result(&run)["attempts"][0]["model"],
        serde_json::Value::Null
    );
}

#[test]
fn dry_run_shows_the_ladder() {
    let e = test_env();
    ladder_pipeline(&e.root, LADDER_KEYS);
    let spec = spec(&e, json!({}));
    let out = fixci()
        .current_dir(&e.root)
        .args(["run", spec.to_str().unwrap(), "--dry-run"])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("attempt ladder:"), "{out}");
    assert!(
        out.contains("attempt 1: claude, model haiku `claude -p ")
            && out.contains("attempt 2: codex, model opus `codex -a never exec "),
        "{out}"
    );
    assert!(!e.out.exists() && !e.root.join("outputs").exists());
}

#[test]
fn a_bad_ladder_is_exit_2_naming_the_file_and_key_at_validation() {
    let e = test_env();
    let p = ladder_pipeline(
        &e.root,
        "agent = \"{{ 'codx' if attempt.number >= 3 else 'claude' }}\"\nmodel = \"{{ attempt.numbr }}\"\n",
    );
    let out = fixci()
        .args(["validate", p.to_str().unwrap()])
        .assert()
        .code(2)
        .get_output()
        .stderr
        .clone();
    let err = String::from_utf8_lossy(&out);
    assert!(
        err.contains(&format!("invalid pipeline `{}`", p.display())),
        "{err}"
    );
    // `max` is an expression here (`spec.max_attempts or 3`): attempts up to 10 are checked.
    assert!(
        err.contains("/stage/4/agent: attempt 3 gives `codx`, which is not an agent preset"),
        "{err}"
    );
    assert!(
        err.contains("/stage/4/model: `{{ attempt.numbr }}` fails for attempt 1"),
        "{err}"
    );
    // On another kind of stage the keys are refused.
    let text = std::fs::read_to_string(&p).unwrap().replace(
        "role = \"reproduce\"\n",
        "role = \"reproduce\"\nmodel = \"haiku\"\n",
    );
    std::fs::write(&p, text).unwrap();
    let out = fixci()
        .args(["validate", p.to_str().unwrap()])
        .assert()
        .code(2);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        err.contains("/stage/1/model: only an `attempts` stage chooses the model per attempt"),
        "{err}"
    );
}

#[test]
fn a_ladder_that_fails_on_the_spec_stops_the_run_before_anything_is_written() {
    let e = test_env();
    // Depends on the spec, so `validate` cannot evaluate it; the run finds it first thing.
    let p = ladder_pipeline(
        &e.root,
        "agent = \"{{ spec.model if attempt.number == attempt.max else 'claude' }}\"\n",
    );
    fixci()
        .args(["validate", p.to_str().unwrap()])
        .assert()
        .code(0);
    let bin = stub_agents(&e.root);
    let spec = spec(&e, json!({"model": "gpt-9"}));
    for extra in [&[][..], &["--dry-run"][..]] {
        let out = fixci_in(&e, &bin)
            .args([
                "run",
                spec.to_str().unwrap(),
                "--out",
                e.out.to_str().unwrap(),
            ])
            .args(extra)
            .assert()
            .code(2)
            .get_output()
            .stderr
            .clone();
        let err = String::from_utf8_lossy(&out);
        assert!(
            err.contains(&format!("invalid pipeline `{}`", p.display()))
                && err.contains(
                    "/stage/4/agent: attempt 2 gives `gpt-9`, which is not an agent preset"
                ),
            "{err}"
        );
        assert!(!e.out.exists(), "a run directory was written");
    }
    let branches = git(&e.repo, &["branch", "--list", "fixci/*"]);
    assert!(branches.trim().is_empty(), "{branches}");
}
