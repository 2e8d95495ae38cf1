//! `fixci validate`: check job specs, pipeline files, replay cases and replay variants without
//! running anything.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use crate::error::Result;
use crate::{exit_codes, pipeline, spec};

/// What a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// A job spec (`info.json` or TOML).
    Job,
    /// A pipeline file.
    Pipeline,
    /// A replay case (`case.toml`).
    Case,
    /// A replay variant (a TOML file, or a folder with `variant.toml`).
    Variant,
}

/// Validate job specs, pipeline files, replay cases and replay variants; exit 2 with located
/// errors if any is invalid. A case is also checked against its repository: its commit exists,
/// `existing-test-path` exists at that commit, and its gold patch holds a change and applies.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Files to check: job specs (`.json`, `.toml`), pipelines (`.toml` with `[[stage]]`),
    /// replay cases (`.toml` with `fail-to-pass`) and replay variants (`variant.toml`,
    /// `*.variant.toml`, a variant folder, or a TOML file holding only variant keys)
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Read every file as this kind instead of telling from its name and keys.
    #[arg(long = "as", value_enum, value_name = "KIND")]
    pub kind: Option<Kind>,
}

/// The top-level keys of a TOML file, when it parses.
fn toml_keys(path: &Path) -> Option<Vec<String>> {
    if spec::Format::of(path) != spec::Format::Toml {
        return None;
    }
    let t = std::fs::read_to_string(path).ok()?;
    let table = toml::from_str::<toml::Table>(&t).ok()?;
    Some(table.keys().cloned().collect())
}

/// Tells what `path` holds: a folder or a file named `variant.toml` / `*.variant.toml` is a
/// variant; a TOML file with `[[stage]]` a pipeline, with `fail-to-pass` a case, with only
/// variant keys (and neither `prompt` nor `deterministic`) a variant; anything else a job spec.
fn kind_of(path: &Path) -> Kind {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if path.is_dir() || name == "variant.toml" || name.ends_with(".variant.toml") {
        return Kind::Variant;
    }
    let Some(keys) = toml_keys(path) else {
        return Kind::Job;
    };
    let has = |k: &str| keys.iter().any(|x| x == k);
    if has("stage") {
        return Kind::Pipeline;
    }
    if has("fail-to-pass") {
        return Kind::Case;
    }
    let schema: serde_json::Value =
        serde_json::from_str(crate::replay::variant::VARIANT_SCHEMA).expect("valid schema");
    let variant_keys = schema["properties"]
        .as_object()
        .expect("schema has properties");
    if !keys.is_empty()
        && !has("prompt")
        && !has("deterministic")
        && keys.iter().all(|k| variant_keys.contains_key(k))
    {
        return Kind::Variant;
    }
    Kind::Job
}

/// Runs `fixci validate`; returns the exit code.
/// The checks `fixci run --dry-run` makes before anything is written (see
/// [`crate::engine::preflight::without_writing`]): the pipeline is known, the ladders resolve,
/// and, when the repository is reachable, base, commit and `existing-test-path`. Missing
/// programs and checks that could not run are printed as notes. Returns the selected pipeline's
/// name.
fn preflight_spec(loaded: crate::spec::LoadedSpec) -> Result<String> {
    let name = loaded.path.display().to_string();
    let req = super::run::request(loaded, None, None, None, std::path::PathBuf::from("outputs"))?;
    let found = crate::engine::preflight::without_writing(&req, false)?;
    for e in &found.missing {
        errln!("note: {name}: {} (`fixci run` would stop here, exit 3)", e.message);
    }
    for c in &found.not_checked {
        errln!("note: {name}: not checked: {c}");
    }
    Ok(req.pipeline.pipeline.name.clone())
}

pub fn execute(args: ValidateArgs) -> Result<u8> {
    let mut bad = 0;
    for f in &args.files {
        let kind = args.kind.unwrap_or_else(|| kind_of(f));
        let (what, r): (&str, Result<()>) = match kind {
            Kind::Case => (
                "replay case",
                crate::replay::case::load_case(f)
                    .and_then(|c| crate::replay::validate::check_against_repository(&c)),
            ),
            Kind::Variant => (
                "replay variant",
                crate::replay::variant::load(f).map(|_| ()),
            ),
            Kind::Pipeline => (
                "pipeline",
                pipeline::load_file(f).map(|p| {
                    for n in p.pipeline.notes() {
                        errln!("note: {}: {n}", f.display());
                    }
                }),
            ),
            Kind::Job => match spec::load(f).and_then(preflight_spec) {
                Ok(p) => {
                    outln!("ok: {} (job spec, pipeline `{p}`)", f.display());
                    continue;
                }
                Err(e) => ("job spec", Err(e)),
            },
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
