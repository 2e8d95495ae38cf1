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
//! - the network of the machine (the agent needs its model service), but not the sockets that
//!   hand out the user's credentials or the machine (SSH and GnuPG agents, the keyring and
//!   session bus, Docker/Podman/containerd API sockets: [`credential_sockets`]), which get
//!   `/dev/null` bound over them, and `SSH_AUTH_SOCK`, `GPG_AGENT_INFO`, `DOCKER_HOST` are not
//!   in its environment.
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
    /// The `unshare` binary that lays a throw-away layer over the protected places (see
    /// [`Jail::protected`]), when that works here; `None`: writes there fail (read-only) and
    /// cannot be named (`overlay_why` says why).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlay: Option<PathBuf>,
    /// Why writes outside the writable places are refused unnamed instead of discarded and
    /// named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlay_why: Option<String>,
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
        SandboxMode::None => Ok(Decision::none(None)),
        SandboxMode::Bwrap => match probe() {
            Ok(b) => Ok(Decision::bwrap(b)),
            Err(why) => Err(crate::error::Error::infra(format!(
                "`sandbox = \"bwrap\"` but bubblewrap is not usable here: {why}"
            ))
            .hint("install bubblewrap (`apt-get install bubblewrap`), or set `sandbox` to `auto` or `none` in the spec")),
        },
        SandboxMode::Auto => match probe() {
            Ok(b) => Ok(Decision::bwrap(b)),
            Err(why) => Ok(Decision::none(Some(format!(
                "the agent ran without a sandbox: bubblewrap is not usable here ({why}). It could read and write whatever fixci's user can; fixci killed the processes it left behind and checked its run directory, nothing more. Install bubblewrap, or set `sandbox = \"bwrap\"` to refuse such runs."
            )))),
        },
    }
}

impl Decision {
    /// No sandbox, with the report's warning when `auto` fell back to it.
    pub fn none(warning: Option<String>) -> Decision {
        Decision { mode: "none".into(), bwrap: None, warning, overlay: None, overlay_why: None }
    }

    /// bubblewrap at `bwrap`, with throw-away layers over the protected places when
    /// [`probe_overlay`] says they work here.
    fn bwrap(bwrap: PathBuf) -> Decision {
        let (overlay, overlay_why) = match probe_overlay(&bwrap) {
            Ok(u) => (Some(u), None),
            Err(why) => (None, Some(why)),
        };
        Decision { mode: "bwrap".into(), bwrap: Some(bwrap), warning: None, overlay, overlay_why }
    }
}

/// Whether writes to the protected places can be discarded and named here: `Ok(path of
/// unshare)`, or why not. Probed once per process by running the real wrapper (a user and mount
/// namespace from util-linux `unshare -Urm`, a `tmpfs`, an `overlay` mount with `userxattr`,
/// kernel 5.11 or later) around a bwrap sandbox that overwrites a file of a temporary
/// protected directory, and checking that the file is unchanged and the write is named.
pub fn probe_overlay(bwrap: &Path) -> Result<PathBuf, String> {
    static PROBE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PROBE.get_or_init(|| probe_overlay_now(bwrap)).clone()
}

fn probe_overlay_now(bwrap: &Path) -> Result<PathBuf, String> {
    let unshare = find_program("unshare", Path::new("/"))
        .ok_or("`unshare` (util-linux) is not on PATH")?;
    let t = tempfile::tempdir().map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let (p, stage) = (t.path().join("protected"), t.path().join("overlay"));
    for d in [&p, &stage] {
        std::fs::create_dir_all(d).map_err(|e| format!("cannot create `{}`: {e}", d.display()))?;
    }
    std::fs::write(p.join("f"), "before").map_err(|e| format!("cannot write the probe: {e}"))?;
    let s = |p: &Path| p.display().to_string();
    let mut args = overlay_prefix(&unshare, &stage, std::slice::from_ref(&p), MAX_DISCARDED);
    args.push(s(bwrap));
    args.extend(BASE_ARGS.iter().map(|s| s.to_string()));
    args.extend(uid_args());
    args.extend(["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"].map(String::from));
    args.extend(["--bind".into(), s(&stage.join("0/m")), s(&p)]);
    args.extend(["/bin/sh".into(), "-c".into(), format!("echo after > '{}/f'", s(&p))]);
    let out = Command::new(&args[0])
        .args(&args[1..])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot start `{}`: {e}", unshare.display()))?;
    let err = String::from_utf8_lossy(&out.stderr);
    let named = err.lines().any(|l| l == format!("{DISCARDED_PREFIX}0 f f"));
    let kept = std::fs::read_to_string(p.join("f")).is_ok_and(|t| t == "before");
    if out.status.success() && named && kept {
        Ok(unshare)
    } else {
        Err(format!(
            "a throw-away overlay layer cannot be mounted here ({}): {}",
            match out.status.code() {
                Some(c) => format!("exit {c}"),
                None => "killed".into(),
            },
            err.lines().filter(|l| !l.starts_with(DISCARDED_PREFIX)).collect::<Vec<_>>().join("; ")
        ))
    }
}

/// `--uid`/`--gid` for bwrap inside the overlay wrapper's user namespace (where fixci's user is
/// mapped to root): the agent keeps fixci's own uid and gid, as it would without the wrapper.
fn uid_args() -> Vec<String> {
    // SAFETY: getuid and getgid cannot fail and touch no memory.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    vec!["--uid".into(), uid.to_string(), "--gid".into(), gid.to_string()]
}

/// The line prefix with which the overlay wrapper names an entry of a throw-away layer.
const DISCARDED_PREFIX: &str = "fixci-sandbox: discarded ";

/// Most entries the wrapper names per protected place.
const MAX_DISCARDED: usize = 1000;

/// The overlay wrapper, run by `unshare -Urm` (root of a new user namespace, its own mount
/// namespace): `$1` is a directory to mount a `tmpfs` on, `$2` the number N of protected
/// places, `$3..` those places, then the command (bwrap). For protected place `i` it mounts an
/// overlay at `$1/i/m` whose lower layer is the place and whose upper layer, `$1/i/u`, lives on
/// the tmpfs; bwrap binds `$1/i/m` over the place. After the command it names every entry of
/// each upper layer (`%y` type letter, path relative to the place; newlines in names become
/// `?`, so a name cannot forge a line) on its standard error, up to MAX per place (none when
/// MAX is 0).
/// The tmpfs, with everything written there, goes with the namespace.
const OVERLAY_WRAPPER: &str = r#"# fixci-sandbox-overlay
stage=$1; n=$2; shift 2
mount -t tmpfs -o mode=0700 fixci-discard "$stage" || exit 125
i=0
while [ "$i" -lt "$n" ]; do
  p=$1; shift
  mkdir "$stage/$i" "$stage/$i/u" "$stage/$i/w" "$stage/$i/m" &&
  mount -t overlay fixci-discard -o "lowerdir=$p,upperdir=$stage/$i/u,workdir=$stage/$i/w,userxattr" "$stage/$i/m" || exit 125
  i=$((i+1))
done
"$@"
rc=$?
[ MAX -gt 0 ] || exit $rc
i=0
while [ "$i" -lt "$n" ]; do
  (cd "$stage/$i/u" && find . -mindepth 1 -printf '%y %P\0') | tr '\n\0' '?\n' | head -n MAX | sed "s/^/fixci-sandbox: discarded $i /" >&2
  i=$((i+1))
done
exit $rc
"#;

/// The command line up to bwrap's own: `unshare -Urm /bin/sh -c OVERLAY_WRAPPER ... STAGE N
/// PLACES...`.
fn overlay_prefix(unshare: &Path, stage: &Path, places: &[PathBuf], max: usize) -> Vec<String> {
    let mut v = vec![
        unshare.display().to_string(),
        "-Urm".into(),
        "/bin/sh".into(),
        "-c".into(),
        OVERLAY_WRAPPER.replace("MAX", &max.to_string()),
        "fixci-sandbox-overlay".into(),
        stage.display().to_string(),
        places.len().to_string(),
    ];
    v.extend(places.iter().map(|p| p.display().to_string()));
    v
}

/// The places a [`TestJail`] throws writes away from, found once per process: every directory
/// directly under `/` (not a symbolic link) but `/proc`, `/sys`, `/dev`, `/run` and `/tmp`, and
/// the user's `HOME` when it lies in none of them; left out are places fixci cannot read and
/// search, and paths an overlay mount option cannot carry (`,`, `:`, `\`, control characters).
/// File systems mounted inside a place are bound back over its layer as they are
/// ([`mounts_inside`]: a container's `/etc/hosts`, a volume under `/home`). The list is then
/// checked by mounting it through the real wrapper with `unshare`; a place that fails there
/// alone is left out too. Sorted, none inside another.
pub fn discard_places(unshare: &Path) -> Vec<PathBuf> {
    static PLACES: OnceLock<Vec<PathBuf>> = OnceLock::new();
    PLACES
        .get_or_init(|| {
            let all = discard_candidates();
            if mounts_here(unshare, &all) {
                return all;
            }
            all.into_iter().filter(|p| mounts_here(unshare, std::slice::from_ref(p))).collect()
        })
        .clone()
}

/// [`discard_places`] before the mount check.
fn discard_candidates() -> Vec<PathBuf> {
    let usable = |p: &Path| {
        let t = p.to_string_lossy();
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).ok();
        !t.contains([',', ':', '\\'])
            && !t.chars().any(char::is_control)
            // SAFETY: `c` is a NUL-terminated path; access(2) only reads it.
            && c.is_some_and(|c| unsafe { libc::access(c.as_ptr(), libc::R_OK | libc::X_OK) } == 0)
    };
    const SHARED: &[&str] = &["proc", "sys", "dev", "run", "tmp"];
    let mut places: Vec<PathBuf> = std::fs::read_dir("/")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| !SHARED.iter().any(|s| e.file_name() == *s))
        .map(|e| e.path())
        .filter(|p| usable(p))
        .collect();
    let home = std::env::var_os("HOME").and_then(|h| std::fs::canonicalize(h).ok());
    if let Some(h) = home.filter(|h| h.parent().is_some() && h.is_dir()) {
        if !places.iter().any(|p| h.starts_with(p)) && usable(&h) {
            places.push(h);
        }
    }
    places.sort();
    places
}

/// The mount points of this process strictly inside one of `places` (from
/// `/proc/self/mountinfo`), without duplicates, shallowest first.
fn mounts_inside(places: &[PathBuf]) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(unescape_mountinfo(m)))
        .filter(|m| places.iter().any(|p| m != p && m.starts_with(p)))
        .collect();
    v.sort_by_key(|m| (m.components().count(), m.clone()));
    v.dedup();
    v
}

/// A mount point as `/proc/self/mountinfo` writes it (octal escapes `\040` for space, `\011`,
/// `\012`, `\134`), unescaped.
fn unescape_mountinfo(m: &str) -> String {
    let b = m.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b.get(i + 1..i + 4).filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match oct.and_then(|d| u8::from_str_radix(std::str::from_utf8(d).ok()?, 8).ok()) {
            Some(c) => {
                out.push(c);
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether the overlay wrapper mounts a layer over every one of `places` here (and runs `true`).
fn mounts_here(unshare: &Path, places: &[PathBuf]) -> bool {
    let Ok(stage) = tempfile::tempdir() else { return false };
    let args = overlay_prefix(unshare, stage.path(), places, 0);
    Command::new(&args[0])
        .args(&args[1..])
        .arg("true")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Sockets that hand out the user's credentials or the machine: the SSH agent
/// (`$SSH_AUTH_SOCK`), GnuPG's agent, the desktop keyring and session bus, and container
/// engines' API sockets (`$DOCKER_HOST` when it is `unix://`, Docker's, Podman's, containerd's,
/// rootless ones under `$XDG_RUNTIME_DIR` or `/run/user/UID`), whichever exist here as sockets.
/// A read-only file system does not stop `connect(2)` on a socket, so the sandboxes bind
/// `/dev/null` over each ([`hide_sockets_args`]): a container engine's socket alone would let
/// the agent start a privileged container and leave every namespace, an SSH agent would let it
/// push with the user's key.
pub fn credential_sockets() -> Vec<PathBuf> {
    credential_sockets_in(&|v| std::env::var_os(v))
}

/// [`credential_sockets`] with the environment read through `var`.
fn credential_sockets_in(var: &dyn Fn(&str) -> Option<std::ffi::OsString>) -> Vec<PathBuf> {
    // SAFETY: getuid cannot fail and touches no memory.
    let uid = unsafe { libc::getuid() };
    let mut runtime: Vec<PathBuf> = vec![PathBuf::from(format!("/run/user/{uid}"))];
    if let Some(x) = var("XDG_RUNTIME_DIR").filter(|x| !x.is_empty()) {
        runtime.insert(0, PathBuf::from(x));
    }
    let mut c: Vec<PathBuf> = Vec::new();
    for name in ["SSH_AUTH_SOCK", "DOCKER_HOST"] {
        if let Some(v) = var(name) {
            let v = v.to_string_lossy().into_owned();
            c.push(PathBuf::from(v.strip_prefix("unix://").unwrap_or(&v)));
        }
    }
    for p in [
        "/var/run/docker.sock",
        "/run/docker.sock",
        "/run/podman/podman.sock",
        "/run/containerd/containerd.sock",
        "/var/run/containerd/containerd.sock",
        "/run/buildkit/buildkitd.sock",
    ] {
        c.push(PathBuf::from(p));
    }
    for r in &runtime {
        for rel in [
            "docker.sock",
            "podman/podman.sock",
            "containerd/containerd.sock",
            "bus",
            "keyring/ssh",
            "keyring/control",
            "gcr/ssh",
            "gnupg/S.gpg-agent",
            "gnupg/S.gpg-agent.ssh",
            "gnupg/S.gpg-agent.extra",
            "gnupg/S.gpg-agent.browser",
            "ssh-agent.socket",
            "openssh_agent",
        ] {
            c.push(r.join(rel));
        }
    }
    let mut out: Vec<PathBuf> = c
        .into_iter()
        .filter_map(|p| std::fs::canonicalize(&p).ok())
        .filter(|p| {
            use std::os::unix::fs::FileTypeExt;
            std::fs::metadata(p).is_ok_and(|m| m.file_type().is_socket())
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// bwrap arguments that put `/dev/null` over every [`credential_sockets`] entry.
fn hide_sockets_args() -> Vec<String> {
    hide_args(&credential_sockets())
}

/// bwrap arguments that put `/dev/null` over each of `sockets`.
fn hide_args(sockets: &[PathBuf]) -> Vec<String> {
    sockets
        .iter()
        .flat_map(|p| ["--ro-bind".into(), "/dev/null".into(), p.display().to_string()])
        .collect()
}

/// `program` as fixci would start it from `cwd`: a path containing `/` (relative to `cwd`),
/// else the first executable file of that name on `PATH`.
pub fn find_program(program: &str, cwd: &Path) -> Option<PathBuf> {
    if program.contains('/') {
        super::which(&cwd.join(program).display().to_string())
    } else {
        super::which(program)
    }
}

/// The sandbox of test commands (reproduction, verification, stress, gate and command stages)
/// when the run has bubblewrap. Those commands run code the agent wrote, so they get what keeps
/// the agent from the token and from the user's files, without the agent's private home:
/// - their own PID namespace and `/proc` (`--unshare-pid`, `--proc /proc`): no process outside
///   is visible, so no forge token can be read from `/proc/PID/environ` of fixci or of the
///   shell that started it;
/// - the places fixci promises not to change read-only (`--ro-bind`): the user's repository and
///   its git folder, the run directory, fixci's cache, the spec's folder; the command's own
///   folders (`writable`) stay writable even inside them;
/// - with [`TestJail::discarding`], a throw-away layer (overlayfs on a `tmpfs`, as the agent's
///   protected places get) over the user's `HOME` and every top-level directory of `/` but
///   `/proc`, `/sys`, `/dev`, `/run` and `/tmp` ([`discard_places`]): a test can write there
///   (caches, `~/.local`, `/usr/local` as root) and sees its writes while it runs, but they are
///   gone when it ends, so no test run can leave a `.pth`, a `~/.gitconfig` or a `~/.bashrc`
///   behind for a later run, for fixci's own git or for the user;
/// - the rest of the filesystem as it is (`--dev-bind / /`): `/tmp` and `/run` are shared, and
///   without a throw-away layer test suites keep their caches (`~/.cache/pip`, `GOCACHE`,
///   `~/.cargo`) and write them for good;
/// - every capability dropped, `--die-with-parent`; the process group fixci signals at the
///   budget reaches the processes inside (a PID namespace keeps process groups);
/// - the [`credential_sockets`] hidden, as for the agent.
///
/// bwrap ends with the test's exit code, or 128 + the signal number when the test was killed
/// by one. See <https://github.com/containers/bubblewrap> (`bwrap(1)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestJail {
    bwrap: PathBuf,
    read_only: Vec<PathBuf>,
    discard: Option<Discard>,
}

/// The throw-away layers of a [`TestJail`].
#[derive(Debug, Clone, PartialEq, Eq)]
struct Discard {
    /// util-linux `unshare`, which runs the overlay wrapper.
    unshare: PathBuf,
    /// The directory each test run's mount namespace mounts its `tmpfs` on.
    stage: PathBuf,
    /// The places whose writes are discarded, outermost first, none inside another.
    places: Vec<PathBuf>,
    /// Mount points inside those places (an overlay shows only its lower file system): bound
    /// back over the layers as they are, shallowest first.
    rebind: Vec<PathBuf>,
}

impl TestJail {
    /// A jail run by `bwrap` in which `read_only` (existing directories; others are ignored)
    /// cannot be written. A place that is `/`, the user's `HOME` or a parent of it is left
    /// writable: test suites need their caches there.
    pub fn new(bwrap: &Path, read_only: &[PathBuf]) -> TestJail {
        let home = std::env::var_os("HOME").and_then(|h| std::fs::canonicalize(h).ok());
        let mut ro: Vec<PathBuf> = read_only
            .iter()
            .filter_map(|p| std::fs::canonicalize(p).ok().filter(|c| c.is_dir()))
            .filter(|p| p.parent().is_some())
            .filter(|p| !home.as_ref().is_some_and(|h| h.starts_with(p)))
            .collect();
        ro.sort();
        ro.dedup();
        TestJail { bwrap: bwrap.to_path_buf(), read_only: ro, discard: None }
    }

    /// This jail with writes to [`discard_places`] thrown away when each test run ends: the
    /// overlay wrapper (run by `unshare`, as [`probe_overlay`] found it) mounts a `tmpfs` on
    /// `stage` (an existing directory; the mount lives in the run's own mount namespace, so
    /// concurrent runs may share it) and an overlay per place. The read-only places and the
    /// command's own folders are mounted over the layers, so they stay read-only and writable.
    /// Unchanged when no place can take a layer here.
    pub fn discarding(mut self, unshare: &Path, stage: &Path) -> TestJail {
        let places = discard_places(unshare);
        if !places.is_empty() {
            let rebind = mounts_inside(&places);
            self.discard = Some(Discard {
                unshare: unshare.to_path_buf(),
                stage: stage.to_path_buf(),
                places,
                rebind,
            });
        }
        self
    }

    /// The places whose writes each test run's layers discard (empty without them).
    pub fn discarded(&self) -> &[PathBuf] {
        self.discard.as_ref().map_or(&[], |d| &d.places)
    }

    /// The read-only places, canonical.
    pub fn read_only(&self) -> &[PathBuf] {
        &self.read_only
    }

    /// `cmd` wrapped into the jail, with `writable` (folders the command must write, e.g. a
    /// sealed tree and its scratch folder) writable even where they lie inside a read-only
    /// place. The environment, working directory and standard input stay `cmd`'s.
    ///
    /// Errors: the program is not found on `PATH` ([`SpawnError::Spawn`], as an unwrapped
    /// start would give).
    pub fn wrap(&self, cmd: CommandSpec, writable: &[&Path]) -> Result<CommandSpec, SpawnError> {
        // Looked up as the command would be: with its own `PATH` when it sets one.
        let path_var = cmd.env.iter().rev().find(|(k, _)| k == "PATH").map(|(_, v)| v);
        let program = match path_var {
            Some(path) if !cmd.program.contains('/') => std::env::split_paths(path)
                .find_map(|d| find_program(&d.join(&cmd.program).display().to_string(), &cmd.cwd)),
            _ => find_program(&cmd.program, &cmd.cwd),
        }
        .ok_or_else(|| SpawnError::Spawn {
            program: cmd.program.clone(),
            source: io::Error::new(io::ErrorKind::NotFound, "not found on PATH"),
        })?;
        let s = |p: &Path| p.display().to_string();
        // Deeper mounts go last, so a writable folder inside a read-only place wins and a
        // read-only place inside a writable folder stays read-only.
        let mut mounts: Vec<(bool, PathBuf)> =
            self.read_only.iter().map(|p| (false, p.clone())).collect();
        let layered = self.discarded();
        mounts.extend(
            writable
                .iter()
                .filter_map(|p| std::fs::canonicalize(p).ok().filter(|c| c.is_dir()))
                .filter(|w| self.read_only.iter().chain(layered).any(|r| w.starts_with(r)))
                .map(|w| (true, w)),
        );
        mounts.sort_by_key(|(rw, p)| (p.components().count(), *rw));
        let mut args: Vec<String> = Vec::new();
        if let Some(d) = &self.discard {
            // Nothing is listed afterwards: the test's output is the test's.
            args.extend(overlay_prefix(&d.unshare, &d.stage, &d.places, 0));
            args.push(s(&self.bwrap));
        }
        args.extend(BASE_ARGS.iter().map(|s| s.to_string()));
        if self.discard.is_some() {
            args.extend(uid_args());
        }
        args.extend(["--dev-bind", "/", "/", "--proc", "/proc"].map(String::from));
        // The layers first (outermost first, none inside another), then the places over them.
        if let Some(d) = &self.discard {
            for (i, p) in d.places.iter().enumerate() {
                args.extend(["--bind".into(), s(&d.stage.join(format!("{i}/m"))), s(p)]);
            }
            for m in &d.rebind {
                args.extend(["--dev-bind".into(), s(m), s(m)]);
            }
        }
        for (rw, p) in &mounts {
            let flag = if *rw { "--bind" } else { "--ro-bind" };
            args.extend([flag.into(), s(p), s(p)]);
        }
        args.extend(hide_sockets_args());
        args.extend(["--chdir".into(), s(&cmd.cwd), "--".into(), s(&program)]);
        args.extend(cmd.args);
        let program = match &self.discard {
            Some(_) => args.remove(0),
            None => s(&self.bwrap),
        };
        Ok(CommandSpec { program, args, ..cmd })
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
    /// The `unshare` binary of the overlay wrapper, when writes to [`Jail::protected`] are
    /// discarded and named (see [`Jail::protect`]).
    pub overlay: Option<PathBuf>,
    /// The places the agent sees writable but whose writes land in a throw-away layer, named
    /// after the invocation: absolute, canonical, none inside another or inside a writable
    /// place.
    pub protected: Vec<PathBuf>,
    /// The directory the wrapper mounts its `tmpfs` on (`RUN/sandbox/overlay`).
    pub overlay_dir: PathBuf,
}

/// A write of the agent to a protected place, discarded with the invocation's throw-away layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discarded {
    /// The path the agent wrote (absolute, as the agent named it under its protected place).
    pub path: PathBuf,
    /// `created`, `written` (an existing file opened for writing, changed or not), `deleted`.
    pub kind: &'static str,
}

impl std::fmt::Display for Discarded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.path.display(), self.kind)
    }
}

/// What the supervisor and the overlay wrapper reported after an invocation.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SandboxLog {
    /// Processes the supervisor found alive after the agent's main process ended (pids of the
    /// sandbox's namespace), which it killed.
    pub survivors: Vec<Survivor>,
    /// Writes to protected places, discarded.
    pub discarded: Vec<Discarded>,
    /// bwrap's (and the wrapper's) other messages, e.g. why the sandbox could not be set up.
    pub other: String,
}

/// The places whose writes a sandboxed agent must not get done, as [`Jail::protect`] takes
/// them: `candidates` (the user's repository and its git folder, fixci's run directory and
/// cache, the spec's folder) plus the user's `HOME` and fixci's working directory. Each must be
/// an existing directory; `/`, paths with `,`, `:` or a backslash (which overlay mount options cannot
/// carry) or control characters are left out (they stay read-only), as are places inside
/// another one or inside (or equal to) a `writable` place.
pub fn protected_places(candidates: &[PathBuf], writable: &[PathBuf]) -> Vec<PathBuf> {
    let canon = |p: &Path| std::fs::canonicalize(p).ok().filter(|c| c.is_dir());
    let writable: Vec<PathBuf> = writable.iter().filter_map(|p| canon(p)).collect();
    let mut all: Vec<PathBuf> = candidates
        .iter()
        .cloned()
        .chain(std::env::var_os("HOME").map(PathBuf::from))
        .chain(std::env::current_dir().ok())
        .filter_map(|p| canon(&p))
        .filter(|p| p.parent().is_some())
        .filter(|p| {
            let t = p.to_string_lossy();
            !t.contains([',', ':', '\\']) && !t.chars().any(char::is_control)
        })
        .filter(|p| !writable.iter().any(|w| p.starts_with(w)))
        .collect();
    all.sort_by_key(|p| p.components().count());
    let mut out: Vec<PathBuf> = Vec::new();
    for p in all {
        if !out.iter().any(|o| p.starts_with(o)) {
            out.push(p);
        }
    }
    out
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
            overlay: None,
            protected: Vec::new(),
            overlay_dir: run_dir.join("sandbox/overlay"),
        })
    }

    /// The places the agent can write: its worktree, the worktree's own git directory, its
    /// stage directory, the private home and temporary directory.
    pub fn writable(&self) -> Vec<PathBuf> {
        let mut rw = vec![self.worktree.clone()];
        rw.extend(worktree_admin_dir(&self.worktree));
        rw.extend([self.stage_dir.clone(), self.home.clone(), self.tmp.clone()]);
        rw
    }

    /// Lays a throw-away layer (overlayfs, through `unshare` at `unshare`) over `candidates`
    /// (filtered by [`protected_places`]): the agent's writes there seem to succeed, reach
    /// nothing on disk, and are named after the invocation ([`Jail::read_log`]).
    ///
    /// Errors: the wrapper's mount point cannot be created.
    pub fn protect(&mut self, unshare: &Path, candidates: &[PathBuf]) -> io::Result<()> {
        self.protected = protected_places(candidates, &self.writable());
        if !self.protected.is_empty() {
            std::fs::create_dir_all(&self.overlay_dir)?;
            self.overlay = Some(unshare.to_path_buf());
        }
        Ok(())
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
        ];
        if let Some(unshare) = &self.overlay {
            args.extend(overlay_prefix(unshare, &self.overlay_dir, &self.protected, MAX_DISCARDED));
        }
        args.push(s(&self.bwrap));
        args.extend(BASE_ARGS.iter().map(|s| s.to_string()));
        if self.overlay.is_some() {
            args.extend(uid_args());
        }
        args.extend(["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"].map(String::from));
        args.extend(["--tmpfs".into(), "/dev/shm".into()]);
        if self.overlay.is_some() {
            // Outer places first (the list has no nesting), then the writable places over them.
            for (i, p) in self.protected.iter().enumerate() {
                args.extend(["--bind".into(), s(&self.overlay_dir.join(format!("{i}/m"))), s(p)]);
            }
        }
        let admin = worktree_admin_dir(&self.worktree);
        for p in &self.writable() {
            args.extend(["--bind".into(), s(p), s(p)]);
        }
        // The files that tie the worktree to its repository stay read-only: rewritten, they
        // would point fixci's own git at a repository (and configuration) of the agent's.
        for f in admin.iter().flat_map(|a| [a.join("commondir"), a.join("gitdir")]) {
            if f.is_file() {
                args.extend(["--ro-bind".into(), s(&f), s(&f)]);
            }
        }
        args.extend(hide_sockets_args());
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

    /// Reads what the supervisor, the overlay wrapper and bwrap wrote (see [`SandboxLog`]).
    /// A discarded entry is `created` when nothing is at its path on disk, `written` when
    /// something is, `deleted` for the layer's whiteouts; directories that exist on disk are
    /// left out (the layer copies the parents of every written file).
    pub fn read_log(&self) -> SandboxLog {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut log = SandboxLog::default();
        for line in text.lines() {
            let survivor = line
                .strip_prefix(SURVIVOR_PREFIX)
                .and_then(|r| r.split_once(' '))
                .and_then(|(pid, cmd)| Some((pid.parse::<u32>().ok()?, cmd)));
            if let Some((pid, cmd)) = survivor {
                log.survivors.push(Survivor { pid, cmdline: cmd.trim().chars().take(200).collect() });
                continue;
            }
            if let Some(d) = line.strip_prefix(DISCARDED_PREFIX).and_then(|r| self.discarded(r)) {
                log.discarded.extend(d);
                continue;
            }
            log.other.push_str(line);
            log.other.push('\n');
        }
        log
    }

    /// One wrapper line after its prefix, `I Y REL`: `Some(None)` for a directory that exists.
    fn discarded(&self, rest: &str) -> Option<Option<Discarded>> {
        let mut it = rest.splitn(3, ' ');
        let place = self.protected.get(it.next()?.parse::<usize>().ok()?)?;
        let (kind, rel) = (it.next()?, it.next()?);
        let path = place.join(rel);
        let exists = std::fs::symlink_metadata(&path);
        let kind = match kind {
            "c" => "deleted",
            "d" if exists.as_ref().is_ok_and(|m| m.is_dir()) => return Some(None),
            _ if exists.is_ok() => "written",
            _ => "created",
        };
        Some(Some(Discarded { path, kind }))
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
        let log = jail.read_log();
        assert_eq!(
            log.survivors,
            vec![Survivor { pid: 7, cmdline: "python3 daemon.py --forever".into() }]
        );
        assert_eq!(log.other, "bwrap: oops\n");
        assert!(log.discarded.is_empty());
    }

    #[test]
    fn protected_places_are_outermost_existing_folders_outside_the_writable_ones() {
        let t = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(t.path()).unwrap();
        for d in ["repo/.git", "out/run/worktree", "odd,name", "solo"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        let got = protected_places(
            &[
                root.join("repo"),
                root.join("repo/.git"),
                root.join("out/run"),
                root.join("out/run/worktree"),
                root.join("odd,name"),
                root.join("missing"),
                PathBuf::from("/"),
            ],
            &[root.join("out/run/worktree")],
        );
        let ours: Vec<&PathBuf> = got.iter().filter(|p| p.starts_with(&root)).collect();
        assert_eq!(ours, [&root.join("repo"), &root.join("out/run")], "{got:?}");
        assert!(!got.contains(&PathBuf::from("/")));
        for (i, a) in got.iter().enumerate() {
            assert!(got.iter().enumerate().all(|(j, b)| i == j || !a.starts_with(b)), "{got:?}");
        }
    }

    #[test]
    fn the_wrapper_lines_name_created_written_and_deleted_paths() {
        let t = tempfile::tempdir().unwrap();
        let run = t.path().join("run");
        let place = t.path().join("repo");
        std::fs::create_dir_all(run.join("stages/fix")).unwrap();
        std::fs::create_dir_all(place.join("src")).unwrap();
        std::fs::write(place.join("src/a.py"), "x").unwrap();
        let mut jail = Jail::new(Path::new("/bin/true"), &run, &run.join("wt"), &run.join("stages/fix")).unwrap();
        jail.protected = vec![place.clone()];
        std::fs::write(
            &jail.log,
            "fixci-sandbox: discarded 0 d src\nfixci-sandbox: discarded 0 f src/a.py\nfixci-sandbox: discarded 0 f new?fixci-sandbox: survivor 1 x\nfixci-sandbox: discarded 0 c README.md\nfixci-sandbox: discarded 0 d made\nfixci-sandbox: discarded 7 f elsewhere\n",
        )
        .unwrap();
        let log = jail.read_log();
        let named: Vec<String> = log.discarded.iter().map(ToString::to_string).collect();
        let p = |r: &str| place.join(r).display().to_string();
        assert_eq!(
            named,
            [
                format!("{} (written)", p("src/a.py")),
                format!("{} (created)", p("new?fixci-sandbox: survivor 1 x")),
                format!("{} (deleted)", p("README.md")),
                format!("{} (created)", p("made")),
            ]
        );
        assert!(log.survivors.is_empty());
        // A line for a place the jail does not have is not trusted as a write.
        assert_eq!(log.other, "fixci-sandbox: discarded 7 f elsewhere\n");
    }

    #[test]
    fn a_test_jail_keeps_protected_places_read_only_but_the_test_s_own_folders_writable() {
        let Ok(bwrap) = probe() else {
            assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "bubblewrap not usable under CI=true");
            return;
        };
        let d = tempfile::tempdir().unwrap();
        let (ro, work) = (d.path().join("repo"), d.path().join("repo/tree"));
        std::fs::create_dir_all(&work).unwrap();
        let jail = TestJail::new(&bwrap, &[ro.clone(), d.path().join("missing")]);
        assert_eq!(jail.read_only(), [std::fs::canonicalize(&ro).unwrap()]);
        let script = "echo x > ../planted; echo ro=$?; echo y > made; ls /proc | grep -c '^[0-9]'; exit 3";
        let cmd = jail.wrap(CommandSpec::shell(script, &work), &[work.as_path()]).unwrap();
        let out = Command::new(&cmd.program)
            .args(&cmd.args)
            .current_dir(&cmd.cwd)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(3), "the test's exit code: {text}");
        assert!(text.contains("ro=1") || text.contains("ro=2"), "{text}");
        assert!(!ro.join("planted").exists() && work.join("made").exists());
        let pids: u32 = text.lines().last().unwrap().trim().parse().unwrap();
        assert!(pids < 5, "the test saw {pids} processes");
    }

    #[test]
    fn a_test_jail_with_throw_away_layers_discards_writes_outside_the_test_s_own_folders() {
        let Ok(bwrap) = probe() else {
            assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "bubblewrap not usable under CI=true");
            return;
        };
        let unshare = match probe_overlay(&bwrap) {
            Ok(u) => u,
            Err(why) => {
                assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "overlay not usable under CI=true: {why}");
                return;
            }
        };
        let places = discard_places(&unshare);
        assert!(places.iter().any(|p| p == Path::new("/var")), "{places:?}");
        assert!(!places.iter().any(|p| p == Path::new("/tmp") || p == Path::new("/proc")));
        // The test's own folder lies inside a layered place (`/var/tmp`): it stays writable.
        let own = tempfile::tempdir_in("/var/tmp").unwrap();
        let stage = tempfile::tempdir().unwrap();
        let jail = TestJail::new(&bwrap, &[]).discarding(&unshare, stage.path());
        assert_eq!(jail.discarded(), places.as_slice());
        let tag = format!("fixci-layer-probe-{}", std::process::id());
        let home = std::fs::canonicalize(std::env::var("HOME").unwrap()).unwrap();
        let script = format!(
            "echo a > $HOME/.{tag} && cat $HOME/.{tag} && echo b > /var/tmp/{tag} && cat /var/tmp/{tag} && echo kept > made; exit 4"
        );
        let cmd = jail.wrap(CommandSpec::shell(&script, own.path()), &[own.path()]).unwrap();
        assert!(cmd.program.ends_with("unshare"), "{cmd:?}");
        let out = Command::new(&cmd.program).args(&cmd.args).current_dir(&cmd.cwd).output().unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let leaked = [home.join(format!(".{tag}")), PathBuf::from(format!("/var/tmp/{tag}"))];
        let left: Vec<&PathBuf> = leaked.iter().filter(|p| p.exists()).collect();
        for p in &left {
            let _ = std::fs::remove_file(p);
        }
        assert_eq!(out.status.code(), Some(4), "the test's exit code: {stdout} {stderr}");
        assert_eq!(stdout, "a\nb\n", "the test sees its own writes while it runs; {stderr}");
        assert_eq!(stderr, "", "nothing is listed after a test");
        assert!(left.is_empty(), "writes kept after the test: {left:?}");
        assert_eq!(std::fs::read_to_string(own.path().join("made")).unwrap(), "kept\n");
        // File systems mounted inside a layered place are seen as they are (on this machine or
        // in a container: `/etc/hosts`, volumes).
        for m in mounts_inside(&places).iter().filter(|m| m.is_dir()).take(5) {
            let list = format!("ls -a '{}'", m.display());
            let cmd = jail.wrap(CommandSpec::shell(&list, own.path()), &[own.path()]).unwrap();
            let inside = Command::new(&cmd.program).args(&cmd.args).current_dir(&cmd.cwd).output().unwrap();
            let outside = Command::new("sh").args(["-c", &list]).output().unwrap();
            assert_eq!(String::from_utf8_lossy(&inside.stdout), String::from_utf8_lossy(&outside.stdout), "{}", m.display());
        }
    }

    #[test]
    fn credential_sockets_are_found_and_cannot_be_reached_in_a_sandbox() {
        let d = tempfile::tempdir().unwrap();
        let sock = d.path().join("agent.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        std::fs::write(d.path().join("plain"), "").unwrap();
        let env = |v: &str| match v {
            "SSH_AUTH_SOCK" => Some(sock.clone().into_os_string()),
            // Not a socket: left alone.
            "DOCKER_HOST" => Some(format!("unix://{}", d.path().join("plain").display()).into()),
            "XDG_RUNTIME_DIR" => Some(d.path().into()),
            _ => None,
        };
        let found = credential_sockets_in(&env);
        assert!(found.contains(&std::fs::canonicalize(&sock).unwrap()), "{found:?}");
        assert!(!found.iter().any(|p| p.ends_with("plain")), "{found:?}");
        let Ok(bwrap) = probe() else {
            assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "bubblewrap not usable under CI=true");
            return;
        };
        let connect = format!(
            "import socket; s = socket.socket(socket.AF_UNIX); s.connect({:?}); print('connected')",
            sock.display().to_string()
        );
        let run = |hide: &[PathBuf]| {
            Command::new(&bwrap)
                .args(BASE_ARGS)
                .args(["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"])
                .args(hide_args(hide))
                .args(["python3", "-c", &connect])
                .output()
                .unwrap()
        };
        // Read-only alone does not stop a connection; the bind over it does.
        assert_eq!(String::from_utf8_lossy(&run(&[]).stdout), "connected\n");
        let hidden = run(&found);
        assert!(!hidden.status.success(), "{}", String::from_utf8_lossy(&hidden.stdout));
    }

    #[test]
    fn mount_points_in_mountinfo_are_unescaped() {
        assert_eq!(unescape_mountinfo("/mnt/a\\040b\\134c"), "/mnt/a b\\c");
        assert_eq!(unescape_mountinfo("/x\\9"), "/x\\9");
    }

    #[test]
    fn a_test_jail_finds_the_program_on_the_command_s_own_path_or_fails_to_start() {
        let d = tempfile::tempdir().unwrap();
        let jail = TestJail::new(Path::new("/usr/bin/bwrap"), &[]);
        let mut cmd = CommandSpec::shell("true", d.path());
        cmd.program = "only-here".into();
        assert!(matches!(jail.wrap(cmd.clone(), &[]), Err(SpawnError::Spawn { .. })));
        let tool = d.path().join("only-here");
        std::fs::write(&tool, "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        cmd.env.push(("PATH".into(), d.path().display().to_string()));
        let w = jail.wrap(cmd, &[]).unwrap();
        assert_eq!(w.program, "/usr/bin/bwrap");
        let at = w.args.iter().position(|a| a == "--").unwrap();
        assert_eq!(w.args[at + 1], tool.display().to_string());
        assert_eq!(w.env, vec![("PATH".to_string(), d.path().display().to_string())]);
    }

    #[test]
    fn the_throw_away_layer_works_where_bubblewrap_does() {
        let Ok(bwrap) = probe() else {
            assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "bubblewrap not usable under CI=true");
            return;
        };
        if let Err(why) = probe_overlay(&bwrap) {
            assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "overlay not usable under CI=true: {why}");
        }
    }
}
