//! `fixci validate`: check job specs and pipeline files without running anything.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::error::Result;
use crate::{exit_codes, pipeline, spec};

/// Validate job specs and pipeline files; exit 2 with located errors if any is invalid.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Files to check: job specs (`.json`, `.toml`), pipelines (`.toml` with `[[stage]]`) and
    /// replay cases (`case.toml`)
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// True when `path` holds a pipeline rather than a job spec: a TOML file with `[[stage]]`.
fn is_pipeline(path: &Path) -> bool {
    spec::Format::of(path) == spec::Format::Toml
        && std::fs::read_to_string(path)
            .ok()
            .and_then(|t| toml::from_str::<toml::Table>(&t).ok())
            .is_some_and(|t| t.contains_key("stage"))
}

/// True when `path` holds a replay case: a TOML file with `fail-to-pass`.
fn is_case(path: &Path) -> bool {
    spec::Format::of(path) == spec::Format::Toml
        && std::fs::read_to_string(path)
            .ok()
            .and_then(|t| toml::from_str::<toml::Table>(&t).ok())
            .is_some_and(|t| t.contains_key("fail-to-pass"))
}

/// Runs `fixci validate`; returns the exit code.
pub fn execute(args: ValidateArgs) -> Result<u8> {
    let mut bad = 0;
    for f in &args.files {
        let (what, r) = if is_case(f) {
            ("replay case", crate::replay::case::load_case(f).map(|_| ()))
        } else if is_pipeline(f) {
            (
                "pipeline",
                pipeline::load_file(f).map(|p| {
                    for n in p.pipeline.notes() {
                        errln!("note: {}: {n}", f.display());
                    }
                }),
            )
        } else {
            ("job spec", spec::load(f).map(|_| ()))
        };
        match r {
            Ok(()) => outln!("ok: {} ({what})", f.display()),
            Err(e) => {
                bad += 1;
                err!("{}", e.render());
            }
        }
    }
    Ok(if bad == 0 {
        exit_codes::SUCCESS
    } else {
        exit_codes::USAGE
    })
}
