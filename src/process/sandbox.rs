//! The agent's sandbox: every agent invocation runs under bubblewrap (`bwrap`, Debian package
//! `bubblewrap`; the mechanism Claude Code's own sandbox uses on Linux) when it is usable here.
//!
//! What the agent gets (see [`Jail::wrap`]):
//! - its own PID namespace with its own `/proc`: it sees no fixci process and no other process
//!   of the machine, so it cannot read fixci's environment through `/proc/PID/environ`;
//! - `--die-with-parent`: when the outer `bwrap` dies (fixci stops it at the budget, or fixci
//!   dies), the namespace's init dies and the kernel kills every process in the namespace;
//! - no controlling terminal (fixci starts every child in a new session), so no `TIOCSTI`
//!   keystroke injection; bwrap's `--new-session` is not used because it would move the agent
//!   out of the process group that receives fixci's SIGTERM at the budget;
//! - SIGTERM at the budget reaches the agent, which may save its output in the grace period:
//!   the outer `bwrap` and the supervisor ignore it (a dying outer `bwrap` would take the whole
//!   namespace with it at once), the agent gets it with its default action restored
//!   (`env --default-signal=TERM`, where `env` supports it); SIGKILL after the grace period
//!   kills the outer `bwrap` and, through `--die-with-parent`, everything inside;
//! - a new user namespace where the kernel allows one (`--unshare-user-try`) and every
//!   capability dropped (`--cap-drop ALL`): checked here, as root without them the agent could
//!   `mount -o remount,rw /` and write the whole machine;
//! - the whole filesystem read-only except: its worktree, the per-worktree git directory that
//!   the worktree's `.git` file names (never the repository's shared `.git`), its stage
//!   directory, and a private `HOME` and `TMPDIR` per run (`sandbox/home`, `sandbox/tmp` in the
//!   run directory; the run directory itself, other stages and fixci's cache stay read-only);
//!   the agent CLI's own configuration is copied into the private `HOME` as its preset declares
//!   (`writable` in `presets.toml`);
//! - the network of the machine (the agent needs its model service).
//!
//! Inside, a small `sh` supervisor runs the agent; when the agent's main process exits, it names
//! every process still alive in the namespace on its standard error (a file fixci reads and the
//! agent cannot reach through its own descriptors), kills them, and exits with the agent's code.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::reaper::Survivor;
use super::{CommandSpec, OutputTo, SpawnError};

/// The spec's `sandbox` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SandboxMode {
    /// bubblewrap when usable, else no sandbox with a warning at the top of the report.
    #[default]
    Auto,
    /// bubblewrap, or refuse to run (exit 3) before anything is written.
    Bwrap,
    /// No sandbox: the reaper and the run-directory checks still apply.
    None,
}

impl SandboxMode {
    /// The spec spelling (`auto`, `bwrap`, `none`).
    pub fn as_str(&self) -> &'static str {
        match self {
            SandboxMode::Auto => "auto",
            SandboxMode::Bwrap => "bwrap",
            SandboxMode::None => "none",
        }
    }
}

/// What a run uses, decided once before anything is written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// `bwrap` or `none`.
    pub mode: String,
    /// The `bwrap` binary, when `mode` is `bwrap`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bwrap: Option<PathBuf>,
    /// Why the agent runs without a sandbox under `auto` (shown at the top of the report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

impl Decision {
    /// True when agents run under bubblewrap.
    pub fn sandboxed(&self) -> bool {
        self.bwrap.is_some()
    }
}

/// Namespace and privilege flags shared by the probe and every sandbox.
const BASE_ARGS: &[&str] = &[
    "--unshare-user-try",
    "--unshare-pid",
    "--unshare-ipc",
    "--unshare-uts",
    "--die-with-parent",
    "--cap-drop",
    "ALL",
];

/// Whether bubblewrap works here: `Ok(path of bwrap)`, or why not (not on `PATH`, or the
/// kernel refused its namespaces, with bwrap's own message). Probed once per process by
/// running `true` in the same kind of sandbox the agent gets.
pub fn probe() -> Result<PathBuf, String> {
    static PROBE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PROBE.get_or_init(probe_now).clone()
}

fn probe_now() -> Result<PathBuf, String> {
    let Some(bwrap) = find_program("bwrap", Path::new("/")) else {
        return Err("`bwrap` is not on PATH (install the `bubblewrap` package)".into());
    };
    let out = Command::new(&bwrap)
        .args(BASE_ARGS)
        .args(["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "true"])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot start `{}`: {e}", bwrap.display()))?;
    if out.status.success() {
        Ok(bwrap)
    } else {
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        Err(format!(
            "`{}` cannot create its namespaces here ({}): {}",
            bwrap.display(),
            match out.status.code() {
                Some(c) => format!("exit {c}"),
                None => "killed".into(),
            },
            if err.is_empty() { "no message" } else { &err }
        ))
    }
}

/// Decides the run's sandbox from the spec's `mode`, before anything is written.
///
/// Errors (exit 3): `bwrap` asked for but not usable here (the message says why).
pub fn decide(mode: SandboxMode) -> Result<Decision, crate::error::Error> {
    match mode {
        SandboxMode::None => Ok(Decision { mode: "none".into(), bwrap: None, warning: None }),
        SandboxMode::Bwrap => match probe() {
            Ok(b) => Ok(Decision { mode: "bwrap".into(), bwrap: Some(b), warning: None }),
            Err(why) => Err(crate::error::Error::infra(format!(
                "`sandbox = \"bwrap\"` but bubblewrap is not usable here: {why}"
            ))
            .hint("install bubblewrap (`apt-get install bubblewrap`), or set `sandbox` to `auto` or `none` in the spec")),
        },
        SandboxMode::Auto => match probe() {
            Ok(b) => Ok(Decision { mode: "bwrap".into(), bwrap: Some(b), warning: None }),
            Err(why) => Ok(Decision {
                mode: "none".into(),
                bwrap: None,
                warning: Some(format!(
                    "the agent ran without a sandbox: bubblewrap is not usable here ({why}). It could read and write whatever fixci's user can; fixci killed the processes it left behind and checked its run directory, nothing more. Install bubblewrap, or set `sandbox = \"bwrap\"` to refuse such runs."
                )),
            }),
        },
    }
}

/// `program` as fixci would start it from `cwd`: a path containing `/` (relative to `cwd`),
/// else the first executable file of that name on `PATH`.
pub fn find_program(program: &str, cwd: &Path) -> Option<PathBuf> {
    if program.contains('/') {
        crate::doctor::which(&cwd.join(program).display().to_string())
    } else {
        crate::doctor::which(program)
    }
}

/// One sandboxed agent invocation's places.
#[derive(Debug, Clone)]
pub struct Jail {
    /// The `bwrap` binary.
    pub bwrap: PathBuf,
    /// The agent's working tree (writable).
    pub worktree: PathBuf,
    /// The stage directory (writable).
    pub stage_dir: PathBuf,
    /// The run's private home (writable), `RUN/sandbox/home`.
    pub home: PathBuf,
    /// The run's private temporary directory (writable), `RUN/sandbox/tmp`.
    pub tmp: PathBuf,
    /// Where the supervisor's standard error goes (bwrap's messages and the survivors it
    /// named): outside every writable place.
    pub log: PathBuf,
}

/// git's global configuration, copied into every private home.
const GIT_CONFIG: &[&str] = &["~/.gitconfig", "~/.config/git"];

/// The line prefix with which the supervisor names a process left alive in the sandbox.
const SURVIVOR_PREFIX: &str = "fixci-sandbox: survivor ";

/// The supervisor: runs the agent (`$2...`) with its standard error in `$1`, then names and
/// kills what is left in the PID namespace (pid 1 is bwrap's init, `$$` the supervisor; zombies
/// are already dead).
const SUPERVISOR: &str = r#"err=$1; shift
if env --default-signal=TERM true 2>/dev/null; then set -- env --default-signal=TERM "$@"; fi
"$@" 2>"$err"
rc=$?
for d in /proc/[0-9]*; do
  p=${d#/proc/}
  [ "$p" = 1 ] && continue
  [ "$p" = "$$" ] && continue
  s=$(cat "$d/stat" 2>/dev/null) || continue
  s=${s##*) }
  case "$s" in Z*|X*) continue;; esac
  c=$(tr '\0' ' ' < "$d/cmdline" 2>/dev/null)
  [ -n "$c" ] || c="[$(cat "$d/comm" 2>/dev/null)]"
  echo "fixci-sandbox: survivor $p $c" >&2
  kill -9 "$p" 2>/dev/null
done
exit $rc
"#;

impl Jail {
    /// The places of an agent invocation in run directory `run_dir`; creates the private home
    /// and temporary directory.
    ///
    /// Errors: the directories cannot be created.
    pub fn new(
        bwrap: &Path,
        run_dir: &Path,
        worktree: &Path,
        stage_dir: &Path,
    ) -> io::Result<Jail> {
        let home = run_dir.join("sandbox/home");
        let tmp = run_dir.join("sandbox/tmp");
        std::fs::create_dir_all(&home)?;
        std::fs::create_dir_all(&tmp)?;
        let name = stage_dir
            .strip_prefix(run_dir.join("stages"))
            .map(|p| p.display().to_string().replace('/', "."))
            .unwrap_or_else(|_| "agent".into());
        Ok(Jail {
            bwrap: bwrap.to_path_buf(),
            worktree: worktree.to_path_buf(),
            stage_dir: stage_dir.to_path_buf(),
            home,
            tmp,
            log: run_dir.join("sandbox").join(format!("{name}.log")),
        })
    }

    /// Wraps `cmd` (the agent's command, environment already scrubbed) into the sandbox, and
    /// redirects its output: the agent's standard output stays `out`'s, its standard error goes
    /// to `out`'s stderr file through the supervisor, and bwrap's own standard error to
    /// [`Jail::log`]. `writable` lists the agent CLI's configuration (`~/PATH`, `~/PREFIX*`,
    /// `$VAR`, from its preset): each is copied into the private home, and a `$VAR` naming a
    /// directory is pointed at its copy.
    ///
    /// Errors: the program is not found (a [`SpawnError::Spawn`], as an unsandboxed start
    /// would give), or the configuration cannot be copied ([`SpawnError::File`]).
    pub fn wrap(
        &self,
        mut cmd: CommandSpec,
        out: &OutputTo,
        writable: &[String],
    ) -> Result<(CommandSpec, OutputTo), SpawnError> {
        let program = find_program(&cmd.program, &cmd.cwd).ok_or_else(|| SpawnError::Spawn {
            program: cmd.program.clone(),
            source: io::Error::new(io::ErrorKind::NotFound, "not found on PATH"),
        })?;
        let (stdout, agent_stderr) = match out {
            OutputTo::Combined(p) => (p.clone(), p.clone()),
            OutputTo::Separate { stdout, stderr } => (stdout.clone(), stderr.clone()),
        };
        // git inside reads its global configuration (the user's identity) from the private
        // home too; without it a CLI that finds no `user.name` writes the repository's config.
        let writable: Vec<String> =
            GIT_CONFIG.iter().map(|s| s.to_string()).chain(writable.iter().cloned()).collect();
        let overrides = self
            .copy_config(&writable, &cmd.env)
            .map_err(|(path, source)| SpawnError::File { path, source })?;
        let s = |p: &Path| p.display().to_string();
        // The outer shell ignores SIGTERM and execs bwrap, which keeps ignoring it.
        let mut args: Vec<String> = vec![
            "-c".into(),
            "trap '' TERM; exec \"$@\"".into(),
            "fixci-sandbox-outer".into(),
            s(&self.bwrap),
        ];
        args.extend(BASE_ARGS.iter().map(|s| s.to_string()));
        args.extend(["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"].map(String::from));
        args.extend(["--tmpfs".into(), "/dev/shm".into()]);
        let mut rw = vec![self.worktree.clone()];
        let admin = worktree_admin_dir(&self.worktree);
        rw.extend(admin.clone());
        rw.extend([self.stage_dir.clone(), self.home.clone(), self.tmp.clone()]);
        for p in &rw {
            args.extend(["--bind".into(), s(p), s(p)]);
        }
        // The files that tie the worktree to its repository stay read-only: rewritten, they
        // would point fixci's own git at a repository (and configuration) of the agent's.
        for f in admin.iter().flat_map(|a| [a.join("commondir"), a.join("gitdir")]) {
            if f.is_file() {
                args.extend(["--ro-bind".into(), s(&f), s(&f)]);
            }
        }
        args.extend(["--chdir".into(), s(&cmd.cwd), "--".into()]);
        args.extend(["/bin/sh".into(), "-c".into(), SUPERVISOR.into(), "fixci-sandbox".into()]);
        args.push(s(&agent_stderr));
        args.push(s(&program));
        args.append(&mut cmd.args);
        let home = s(&self.home);
        let tmp = s(&self.tmp);
        let mut env: BTreeMap<String, String> = cmd.env.drain(..).collect();
        for (k, v) in [
            ("HOME", home.clone()),
            ("TMPDIR", tmp.clone()),
            ("TMP", tmp.clone()),
            ("TEMP", tmp),
            ("XDG_CONFIG_HOME", format!("{home}/.config")),
            ("XDG_CACHE_HOME", format!("{home}/.cache")),
            ("XDG_DATA_HOME", format!("{home}/.local/share")),
            ("XDG_STATE_HOME", format!("{home}/.local/state")),
        ] {
            env.insert(k.into(), v);
        }
        env.extend(overrides);
        let wrapped = CommandSpec {
            program: "/bin/sh".into(),
            args,
            cwd: cmd.cwd,
            env: env.into_iter().collect(),
            env_remove: cmd.env_remove,
            stdin: cmd.stdin,
        };
        if let Some(d) = self.log.parent() {
            std::fs::create_dir_all(d).map_err(|source| SpawnError::File {
                path: d.to_path_buf(),
                source,
            })?;
        }
        // The supervisor truncates the agent's stderr file; it must exist for a Combined log.
        Ok((wrapped, OutputTo::Separate { stdout, stderr: self.log.clone() }))
    }

    /// Copies the CLI's configuration into the private home (once per run: what is already
    /// there is kept, so a later attempt sees what an earlier one wrote). Returns environment
    /// overrides for `$VAR` entries.
    fn copy_config(
        &self,
        writable: &[String],
        agent_env: &[(String, String)],
    ) -> Result<Vec<(String, String)>, (PathBuf, io::Error)> {
        let real_home = std::env::var_os("HOME").map(PathBuf::from);
        let mut overrides = Vec::new();
        for entry in writable {
            if let Some(var) = entry.strip_prefix('$') {
                let value = agent_env
                    .iter()
                    .rev()
                    .find(|(k, _)| k == var)
                    .map(|(_, v)| v.clone())
                    .or_else(|| std::env::var(var).ok());
                let Some(value) = value.filter(|v| !v.is_empty()) else { continue };
                let dest = self.home.join(".fixci-env").join(var);
                if !dest.exists() {
                    let src = PathBuf::from(&value);
                    if src.exists() {
                        copy_tree(&src, &dest)?;
                    } else {
                        std::fs::create_dir_all(&dest).map_err(|e| (dest.clone(), e))?;
                    }
                }
                overrides.push((var.to_string(), dest.display().to_string()));
                continue;
            }
            let (Some(rel), Some(real)) = (entry.strip_prefix("~/"), &real_home) else {
                continue;
            };
            for src in expand(real, rel) {
                let Ok(tail) = src.strip_prefix(real) else { continue };
                let dest = self.home.join(tail);
                if !dest.exists() && std::fs::symlink_metadata(&src).is_ok() {
                    copy_tree(&src, &dest)?;
                }
            }
        }
        Ok(overrides)
    }

    /// Reads what the supervisor and bwrap wrote: the processes the supervisor found alive
    /// after the agent's main process ended (pids of the sandbox's namespace), and bwrap's
    /// other messages (e.g. why the sandbox could not be set up).
    pub fn read_log(&self) -> (Vec<Survivor>, String) {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut survivors = Vec::new();
        let mut other = String::new();
        for line in text.lines() {
            match line.strip_prefix(SURVIVOR_PREFIX).and_then(|r| r.split_once(' ')) {
                Some((pid, cmd)) if pid.parse::<u32>().is_ok() => survivors.push(Survivor {
                    pid: pid.parse().unwrap_or(0),
                    cmdline: cmd.trim().chars().take(200).collect(),
                }),
                _ => {
                    other.push_str(line);
                    other.push('\n');
                }
            }
        }
        (survivors, other)
    }
}

/// The per-worktree git directory a linked worktree's `.git` file names (`gitdir: PATH`), which
/// git writes for the worktree's own index and HEAD; `None` for a repository with its own `.git`
/// directory (that one lies inside the worktree anyway).
fn worktree_admin_dir(worktree: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(worktree.join(".git")).ok()?;
    let dir = text.trim().strip_prefix("gitdir:")?.trim();
    let p = worktree.join(dir);
    p.is_dir().then_some(p)
}

/// `home/rel`, where the last component of `rel` may end in `*` (a prefix match).
fn expand(home: &Path, rel: &str) -> Vec<PathBuf> {
    let path = home.join(rel);
    let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Vec::new();
    };
    let Some(prefix) = name.strip_suffix('*') else {
        return vec![path];
    };
    let parent = path.parent().unwrap_or(home);
    let mut found: Vec<PathBuf> = std::fs::read_dir(parent)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.path())
        .collect();
    found.sort();
    found
}

/// Copies a file, a symlink (as a symlink) or a directory tree; sockets and FIFOs are skipped.
fn copy_tree(src: &Path, dest: &Path) -> Result<(), (PathBuf, io::Error)> {
    let meta = std::fs::symlink_metadata(src).map_err(|e| (src.to_path_buf(), e))?;
    if let Some(d) = dest.parent() {
        std::fs::create_dir_all(d).map_err(|e| (d.to_path_buf(), e))?;
    }
    let ft = meta.file_type();
    if ft.is_symlink() {
        let target = std::fs::read_link(src).map_err(|e| (src.to_path_buf(), e))?;
        std::os::unix::fs::symlink(target, dest).map_err(|e| (dest.to_path_buf(), e))?;
    } else if ft.is_dir() {
        std::fs::create_dir_all(dest).map_err(|e| (dest.to_path_buf(), e))?;
        for e in std::fs::read_dir(src).map_err(|e| (src.to_path_buf(), e))?.flatten() {
            copy_tree(&e.path(), &dest.join(e.file_name()))?;
        }
    } else if ft.is_file() {
        std::fs::copy(src, dest).map_err(|e| (src.to_path_buf(), e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_print() {
        for m in [SandboxMode::Auto, SandboxMode::Bwrap, SandboxMode::None] {
            let v: SandboxMode = serde_json::from_str(&format!("\"{}\"", m.as_str())).unwrap();
            assert_eq!(v, m);
        }
        assert!(serde_json::from_str::<SandboxMode>("\"docker\"").is_err());
    }

    #[test]
    fn none_needs_no_probe_and_has_no_warning() {
        let d = decide(SandboxMode::None).unwrap();
        assert_eq!((d.mode.as_str(), d.sandboxed(), d.warning), ("none", false, None));
    }

    #[test]
    fn config_is_copied_once_into_the_private_home_and_vars_point_at_the_copy() {
        let t = tempfile::tempdir().unwrap();
        let run = t.path().join("run");
        let wt = run.join("worktree");
        let stage = run.join("stages/fix/attempt-1");
        std::fs::create_dir_all(&wt).unwrap();
        std::fs::create_dir_all(&stage).unwrap();
        let cfg = t.path().join("cfg");
        std::fs::create_dir_all(cfg.join("sub")).unwrap();
        std::fs::write(cfg.join("sub/settings.json"), "{}").unwrap();
        let jail = Jail::new(Path::new("/usr/bin/bwrap"), &run, &wt, &stage).unwrap();
        assert!(jail.log.ends_with("sandbox/fix.attempt-1.log"));
        let env = vec![("MY_CLI_HOME".to_string(), cfg.display().to_string())];
        let o = jail.copy_config(&["$MY_CLI_HOME".into(), "$UNSET_FIXCI_VAR".into()], &env).unwrap();
        let copy = run.join("sandbox/home/.fixci-env/MY_CLI_HOME");
        assert_eq!(o, vec![("MY_CLI_HOME".into(), copy.display().to_string())]);
        assert_eq!(std::fs::read_to_string(copy.join("sub/settings.json")).unwrap(), "{}");
        std::fs::write(copy.join("sub/settings.json"), "changed").unwrap();
        jail.copy_config(&["$MY_CLI_HOME".into()], &env).unwrap();
        assert_eq!(std::fs::read_to_string(copy.join("sub/settings.json")).unwrap(), "changed");
    }

    #[test]
    fn prefix_globs_expand_in_the_last_component() {
        let t = tempfile::tempdir().unwrap();
        for n in [".aider.conf.yml", ".aider", ".bashrc"] {
            std::fs::write(t.path().join(n), "").unwrap();
        }
        let names: Vec<String> = expand(t.path(), ".aider*")
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec![".aider", ".aider.conf.yml"]);
        assert_eq!(expand(t.path(), ".claude.json"), vec![t.path().join(".claude.json")]);
    }

    #[test]
    fn the_supervisor_log_names_survivors_and_keeps_other_messages() {
        let t = tempfile::tempdir().unwrap();
        let run = t.path().join("run");
        std::fs::create_dir_all(run.join("stages/fix")).unwrap();
        let jail = Jail::new(Path::new("/bin/true"), &run, &run, &run.join("stages/fix")).unwrap();
        std::fs::write(
            &jail.log,
            "bwrap: oops\nfixci-sandbox: survivor 7 python3 daemon.py --forever\n",
        )
        .unwrap();
        let (s, other) = jail.read_log();
        assert_eq!(s, vec![Survivor { pid: 7, cmdline: "python3 daemon.py --forever".into() }]);
        assert_eq!(other, "bwrap: oops\n");
    }
}
