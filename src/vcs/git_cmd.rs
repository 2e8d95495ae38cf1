//! [`git`]: the one way fixci spawns the `git` CLI. Every command runs with hooks disabled
//! (`core.hooksPath=/dev/null`: git looks for `/dev/null/<hook>`, which can never exist), with
//! no system config (`GIT_CONFIG_NOSYSTEM`), with no prompt for credentials or ssh passwords
//! (`GIT_TERMINAL_PROMPT=0`, `GIT_ASKPASS`/`SSH_ASKPASS` cleared, ssh in batch mode), with stdin
//! closed, and without any inherited `GIT_*` variable that could redirect it (`GIT_DIR`,
//! `GIT_WORK_TREE`, `GIT_CONFIG_*`, `GIT_SSH_COMMAND`, `GIT_EXEC_PATH`, ...). Config-driven
//! commands a planted config could run during a clone or fetch (`core.fsmonitor`,
//! `core.sshCommand`, `protocol.ext`) are switched off on the command line, which wins over
//! every config file.
//!
//! See <https://git-scm.com/docs/githooks> (`core.hooksPath`) and
//! <https://git-scm.com/docs/git#_environment_variables>.

use std::process::{Command, Stdio};

/// Variables removed from every git child besides the `GIT_*` family.
const SCRUBBED: &[&str] = &["SSH_ASKPASS", "SSH_AUTH_SOCK_OVERRIDE", "PAGER", "EDITOR"];

/// A `git` command with hooks off, a scrubbed environment and no prompts; add arguments and
/// run it. Output is not captured by default (call `.output()`).
pub fn git() -> Command {
    let mut cmd = Command::new("git");
    for (k, _) in std::env::vars_os() {
        let name = k.to_string_lossy();
        if name.starts_with("GIT_") || SCRUBBED.contains(&name.as_ref()) {
            cmd.env_remove(&k);
        }
    }
    cmd.env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "")
        .env("SSH_ASKPASS", "")
        .env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
        .stdin(Stdio::null())
        .args([
            "-c",
            "core.hooksPath=/dev/null",
            "-c",
            "core.fsmonitor=false",
            "-c",
            "core.sshCommand=ssh -o BatchMode=yes",
            "-c",
            "protocol.ext.allow=never",
            "-c",
            "credential.interactive=false",
            "-c",
            "core.gitProxy=none",
        ]);
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hook_never_runs_and_redirecting_variables_are_dropped() {
        let d = tempfile::tempdir().unwrap();
        let repo = d.path().join("r");
        let ok = git()
            .args(["init", "-q", "-b", "main"])
            .arg(&repo)
            .status()
            .unwrap();
        assert!(ok.success());
        let marker = d.path().join("hook-ran");
        let hook = repo.join(".git/hooks/pre-commit");
        std::fs::write(&hook, format!("#!/bin/sh\ntouch '{}'\n", marker.display())).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
        let ok = git()
            .current_dir(&repo)
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(["commit", "-q", "--allow-empty", "-m", "x"])
            .status()
            .unwrap();
        assert!(ok.success(), "the commit itself works");
        assert!(!marker.exists(), "the pre-commit hook ran");
        let envs: Vec<_> = git()
            .get_envs()
            .map(|(k, v)| (k.to_string_lossy().into_owned(), v.is_some()))
            .collect();
        assert!(envs.contains(&("GIT_TERMINAL_PROMPT".into(), true)));
        assert!(envs.contains(&("GIT_CONFIG_NOSYSTEM".into(), true)));
    }
}
