//! Variants: what a replay compares. A variant names the prompt templates, the pipeline, the
//! agent and the model; it is a TOML file or a folder (its `variant.toml`, a `pipelines/`
//! folder and prompt templates laid out like the project: `reproduce-deterministic/AI_PROMPT.md`
//! ...). Its identity in record keys is the hash of every file it consists of.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::env::{EnvKeys, Environment};
use crate::error::{Error, io_error};
use crate::spec::{self, AgentSpec};

/// The variant schema (JSON Schema draft 2020-12), from `schemas/variant.schema.json`.
pub const VARIANT_SCHEMA: &str = include_str!("../../schemas/variant.schema.json");

// Unknown keys are rejected by the schema before this is read (`flatten` rules out
// `deny_unknown_fields`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct VariantFile {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    #[serde(default)]
    pipeline: Option<String>,
    #[serde(default)]
    prompts: Option<String>,
    #[serde(default)]
    agent: Option<AgentSpec>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default, with = "spec::duration::positive_map")]
    budgets: BTreeMap<String, std::time::Duration>,
    #[serde(default)]
    max_attempts: Option<u32>,
    #[serde(flatten)]
    environment: EnvKeys,
}

/// A loaded variant.
#[derive(Debug, Clone)]
pub struct Variant {
    /// Name (the `name` key, else the file stem or folder name).
    pub name: String,
    /// Where it was read from (absolute).
    pub source: PathBuf,
    /// Folder relative paths resolve against.
    pub dir: PathBuf,
    /// Pipeline name or file (absolute when a file); `None` selects by the spec's `when`.
    pub pipeline: Option<String>,
    /// Folders searched for pipelines by name (the variant's `pipelines/`).
    pub pipeline_dirs: Vec<PathBuf>,
    /// Prompt template folders, searched before the pipeline's.
    pub template_roots: Vec<PathBuf>,
    /// The agent; `None` keeps the job spec's.
    pub agent: Option<AgentSpec>,
    /// The model; `None` keeps the job spec's.
    pub model: Option<String>,
    /// Stage budgets merged over the job spec's (stage id -> duration).
    pub budgets: BTreeMap<String, std::time::Duration>,
    /// Overrides the job spec's `max-attempts`.
    pub max_attempts: Option<u32>,
    /// The variant's environment, layered over each case's.
    pub environment: Environment,
    /// Hex SHA-256 over the variant's files (paths and contents).
    pub hash: String,
}

impl Variant {
    /// The gold agent's pseudo-variant: the case's gold patch, no agent.
    pub fn gold() -> Variant {
        Variant {
            name: "gold".into(),
            source: PathBuf::from("<gold>"),
            dir: PathBuf::from("/"),
            pipeline: None,
            pipeline_dirs: Vec::new(),
            template_roots: Vec::new(),
            agent: Some(AgentSpec {
                preset: Some("gold".into()),
                ..Default::default()
            }),
            model: None,
            budgets: BTreeMap::new(),
            max_attempts: None,
            environment: Environment::default(),
            hash: super::case::content_hash([b"gold".as_slice()]),
        }
    }
}

/// Loads a variant from a TOML file or a folder.
///
/// Errors (exit 2): the path does not exist; TOML syntax (with line) or unknown keys (with the
/// key's path); `pipeline` or `prompts` naming a path that does not exist.
pub fn load(path: &Path) -> Result<Variant, Error> {
    let path = spec::absolute(path);
    let (file, dir) = if path.is_dir() {
        (
            Some(path.join("variant.toml")).filter(|f| f.is_file()),
            path.clone(),
        )
    } else if path.is_file() {
        (
            Some(path.clone()),
            path.parent().unwrap_or(Path::new("/")).to_path_buf(),
        )
    } else {
        return Err(Error::usage(format!("variant `{}` does not exist", path.display()))
            .hint("a variant is a TOML file or a folder with `variant.toml`, `pipelines/` and prompt templates"));
    };
    let vf: VariantFile = match &file {
        None => VariantFile::default(),
        Some(f) => {
            let text = std::fs::read_to_string(f).map_err(|e| io_error("read", f, e))?;
            let value = spec::parse_document(&text, spec::Format::Toml, f, "variant")?;
            spec::check_schema(&value, VARIANT_SCHEMA, f, "variant")
                .map_err(|e| e.hint("`fixci schema variant` prints the variant schema"))?;
            spec::deserialize_typed(&value, f, "variant")?
        }
    };
    let shown = file.clone().unwrap_or_else(|| path.clone());
    let bad = |m: String| Error::usage(format!("invalid variant `{}`", shown.display())).detail(m);
    let name = vf.name.clone().unwrap_or_else(|| {
        let stem = if path.is_dir() {
            path.file_name()
        } else {
            path.file_stem()
        };
        stem.map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "variant".into())
    });
    if name.is_empty() || name.contains(['/', '\n']) {
        return Err(bad(format!("/name: `{name}` cannot name a variant")));
    }
    let mut hashed_files: Vec<PathBuf> = file.iter().cloned().collect();
    let pipeline = match &vf.pipeline {
        Some(p) if p.ends_with(".toml") || p.contains('/') => {
            let full = dir.join(p);
            if !full.is_file() {
                return Err(bad(format!(
                    "/pipeline: `{}` does not exist",
                    full.display()
                )));
            }
            hashed_files.push(full.clone());
            Some(full.display().to_string())
        }
        other => other.clone(),
    };
    let mut template_roots = Vec::new();
    if let Some(p) = &vf.prompts {
        let full = dir.join(p);
        if !full.is_dir() {
            return Err(bad(format!(
                "/prompts: folder `{}` does not exist",
                full.display()
            )));
        }
        collect_files(&full, &mut hashed_files);
        template_roots.push(full);
    }
    let mut pipeline_dirs = Vec::new();
    if path.is_dir() {
        collect_files(&path, &mut hashed_files);
        if vf.prompts.is_none() {
            template_roots.push(path.clone());
        }
        if path.join("pipelines").is_dir() {
            pipeline_dirs.push(path.clone());
        }
    }
    hashed_files.sort();
    hashed_files.dedup();
    let mut parts: Vec<Vec<u8>> = Vec::new();
    for f in &hashed_files {
        let rel = f.strip_prefix(&dir).unwrap_or(f);
        parts.push(rel.display().to_string().into_bytes());
        parts.push(std::fs::read(f).map_err(|e| io_error("read", f, e))?);
    }
    let environment = Environment::resolve(&vf.environment, &dir, &shown, "variant")?;
    Ok(Variant {
        environment,
        name,
        source: shown.clone(),
        dir,
        pipeline,
        pipeline_dirs,
        template_roots,
        agent: vf.agent,
        model: vf.model,
        budgets: vf.budgets,
        max_attempts: vf.max_attempts,
        hash: super::case::content_hash(parts.iter().map(|v| v.as_slice())),
    })
}

/// Every regular file under `dir`, hidden entries skipped.
fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            continue;
        }
        if p.is_dir() {
            collect_files(&p, out);
        } else if p.is_file() {
            out.push(p);
        }
    }
}
