//! `fixci doctor`: check that the tools a run needs are ready, one line per check.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::doctor::{self, Check, Status};
use crate::error::{Error, Result};
use crate::{exit_codes, pipeline, spec};

/// Check the tools fixci drives: git (found, version, identity), the agent CLIs (found, version,
/// and every flag fixci passes still in their `--help`), the test runners, and a GitHub token
/// (present or not; never shown). Exit 0 when everything needed is ready, 1 when a needed check
/// fails.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Job spec: check its agent (and every agent of its pipeline's attempt ladder), its test
    /// runner and, when it reads GitHub, the token. Without one, every preset is checked
    pub spec: Option<PathBuf>,
    /// Pipeline name or TOML file, with a spec (as `fixci run --pipeline`)
    #[arg(long, value_name = "NAME|FILE", requires = "spec")]
    pub pipeline: Option<String>,
    /// Check these agent presets instead (repeatable)
    #[arg(long = "agent", value_name = "NAME")]
    pub agents: Vec<String>,
    /// Time each probe (`--version`, `--help`, ...) may take before its process group is killed
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Print the checks as JSON: `{"ok", "checks": [{"check", "status", "needed", "detail", "hint"}]}`
    #[arg(long)]
    pub json: bool,
}

fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| format!("`{s}` is not a duration ({e})"))
}

/// Runs `fixci doctor`; returns 0 when every needed check passed, 1 otherwise.
pub fn execute(args: DoctorArgs) -> Result<u8> {
    let plan = match &args.spec {
        Some(path) => {
            if !path.exists() {
                return Err(Error::usage(format!(
                    "job spec `{}` does not exist",
                    path.display()
                )));
            }
            let loaded = spec::load(path)?;
            let mut dirs = vec![loaded.dir.clone()];
            if let Some(r) = &loaded.spec.repo {
                if !spec::is_remote_url(r) && !r.ends_with(".bundle") {
                    dirs.push(loaded.dir.join(r));
                }
            }
            let p = pipeline::select(&loaded, args.pipeline.as_deref(), &dirs)?;
            doctor::plan_for_spec(loaded, p, &args.agents)?
        }
        None => doctor::plan_without_spec(&args.agents)?,
    };
    let checks = doctor::run(&plan, args.timeout);
    let ok = doctor::all_needed_ok(&checks);
    let text = if args.json {
        let v = serde_json::json!({"ok": ok, "checks": checks});
        format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default())
    } else {
        render(&checks)
    };
    // A closed stdout (`fixci doctor | head`) is not an error of the checks.
    let _ = std::io::stdout().write_all(text.as_bytes());
    Ok(if ok {
        exit_codes::SUCCESS
    } else {
        exit_codes::NO_FIX
    })
}

/// The text output: `STATUS  check: detail`, a `hint:` line under each problem, and a summary.
pub fn render(checks: &[Check]) -> String {
    let mut out = String::new();
    for c in checks {
        out.push_str(&format!(
            "{:<5} {}: {}\n",
            c.status.label(),
            c.check,
            c.detail
        ));
        if let Some(h) = &c.hint {
            out.push_str(&format!("      hint: {h}\n"));
        }
    }
    let fails = checks.iter().filter(|c| c.status == Status::Fail).count();
    let warns = checks.iter().filter(|c| c.status == Status::Warn).count();
    out.push_str(&match (fails, warns) {
        (0, 0) => "doctor: everything is ready\n".to_string(),
        (0, w) => format!(
            "doctor: ready ({w} warning{})\n",
            if w == 1 { "" } else { "s" }
        ),
        (f, w) => format!(
            "doctor: {f} needed check{} failed, {w} warning{}\n",
            if f == 1 { "" } else { "s" },
            if w == 1 { "" } else { "s" }
        ),
    });
    out
}
