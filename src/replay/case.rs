//! Case corpora: a folder per case with `case.toml`, validated by `schemas/case.schema.json`,
//! resolved into the job spec fixci runs for it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::env::{EnvKeys, Environment};
use crate::error::{Error, io_error};
use crate::spec::{self, LoadedSpec};

/// The case schema (JSON Schema draft 2020-12), from `schemas/case.schema.json`.
pub const CASE_SCHEMA: &str = include_str!("../../schemas/case.schema.json");

/// Default budget of one run of a check command: 5 minutes.
pub const DEFAULT_CHECK_BUDGET: Duration = Duration::from_secs(300);

// Unknown keys are rejected by the schema before this is read (`flatten` rules out
// `deny_unknown_fields`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct CaseFile {
    id: String,
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    repo: String,
    commit: String,
    info: Value,
    #[serde(default)]
    gold_patch: Option<String>,
    fail_to_pass: Vec<String>,
    #[serde(default)]
    pass_to_pass: Vec<String>,
    #[serde(default)]
    check_runs: Option<u32>,
    #[serde(default, with = "spec::duration::option_positive")]
    check_budget: Option<Duration>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    qualify_runs: Option<u32>,
    #[serde(default)]
    qualify_failures: Option<u32>,
    #[serde(flatten)]
    environment: EnvKeys,
}

/// Default `qualify-runs` of a deterministic case: runs of each command before and after the
/// gold patch.
pub const DEFAULT_QUALIFY_RUNS: u32 = 10;

/// Default `qualify-runs` of a flaky case: the cap on fail-to-pass runs before the gold patch.
pub const DEFAULT_QUALIFY_RUNS_FLAKY: u32 = 100;

/// One validated case.
#[derive(Debug, Clone)]
pub struct Case {
    /// Case id.
    pub id: String,
    /// The case folder (absolute).
    pub dir: PathBuf,
    /// `case.toml` (absolute).
    pub file: PathBuf,
    /// The repository's name as written: a URL, else the resolved path's last component
    /// without `.git` / `.bundle`. Records use the repository's root commit as their cluster
    /// key instead, and this only when the repository could not be read.
    pub repo: String,
    /// The repository resolved: an absolute path or bundle, or the URL as written.
    pub repo_source: String,
    /// The failing commit (SHA or ref).
    pub commit: String,
    /// The job spec, validated, with `repo`, `commit` and `base` removed (the case sets them).
    pub spec: LoadedSpec,
    /// The gold patch text, when the case has one.
    pub gold_patch: Option<String>,
    /// The gold patch file (absolute), when the case has one.
    pub gold_patch_file: Option<PathBuf>,
    /// Commands that must go from failing to passing.
    pub fail_to_pass: Vec<String>,
    /// Commands that must keep passing.
    pub pass_to_pass: Vec<String>,
    /// Runs of each check command when judging a fix.
    pub check_runs: u32,
    /// Budget of one check run.
    pub check_budget: Duration,
    /// Tags.
    pub tags: Vec<String>,
    /// `--agent gold`: runs of each command before and after the gold patch (deterministic
    /// case), or the cap on fail-to-pass runs before it (flaky case).
    pub qualify_runs: u32,
    /// `--agent gold`, flaky case: failures of each fail-to-pass command needed before the
    /// gold patch.
    pub qualify_failures: u32,
    /// The case's environment (`env`, `path`, `setup`).
    pub environment: Environment,
    /// Hex SHA-256 of everything that defines the case: `case.toml`, the spec file, the gold
    /// patch.
    pub hash: String,
}

/// Hex SHA-256 of `parts`, each length-prefixed so that concatenations cannot collide.
pub fn content_hash<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Loads the cases under `path`: a `case.toml` file, a case folder (holding `case.toml`), or a
/// corpus folder whose sub-folders (searched recursively, hidden folders skipped) hold them.
/// Sorted by id.
///
/// Errors (exit 2): no case found; any invalid case (file and JSON pointer named, every
/// problem of every case listed); two cases with the same id.
pub fn load_corpus(path: &Path) -> Result<Vec<Case>, Error> {
    let path = spec::absolute(path);
    let mut files = Vec::new();
    if path.is_file() {
        files.push(path.clone());
    } else if path.join("case.toml").is_file() {
        files.push(path.join("case.toml"));
    } else if path.is_dir() {
        find_cases(&path, &mut files, 0);
    } else {
        return Err(Error::usage(format!("`{}` does not exist", path.display()))
            .hint("give a corpus folder, a case folder or a `case.toml` file"));
    }
    if files.is_empty() {
        return Err(
            Error::usage(format!("no `case.toml` under `{}`", path.display())).hint(
                "a corpus is a folder with one sub-folder per case, each holding `case.toml`",
            ),
        );
    }
    files.sort();
    let mut cases = Vec::new();
    let mut errors: Vec<Error> = Vec::new();
    for f in &files {
        match load_case(f) {
            Ok(c) => cases.push(c),
            Err(e) => errors.push(e),
        }
    }
    match errors.len() {
        0 => {}
        1 => return Err(errors.remove(0)),
        n => {
            let mut details = Vec::new();
            for e in errors {
                details.push(e.message.clone());
                details.extend(e.details.iter().map(|d| format!("  {d}")));
            }
            return Err(
                Error::usage(format!("{n} invalid cases under `{}`", path.display()))
                    .details(details),
            );
        }
    }
    cases.sort_by(|a, b| a.id.cmp(&b.id));
    for w in cases.windows(2) {
        if w[0].id == w[1].id {
            return Err(Error::usage(format!("two cases have the id `{}`", w[0].id))
                .detail(format!("{}", w[0].file.display()))
                .detail(format!("{}", w[1].file.display())));
        }
    }
    Ok(cases)
}

fn find_cases(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) {
    if depth > 6 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let hidden = p
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if hidden || !p.is_dir() {
            continue;
        }
        if p.join("case.toml").is_file() {
            out.push(p.join("case.toml"));
        } else {
            find_cases(&p, out, depth + 1);
        }
    }
}

/// Loads one `case.toml`.
///
/// Errors (exit 2): TOML syntax (with line), schema violations, a missing `info` file or gold
/// patch, an invalid job spec, a `check-budget` that is not a duration.
pub fn load_case(file: &Path) -> Result<Case, Error> {
    let file = spec::absolute(file);
    let dir = file.parent().unwrap_or(Path::new("/")).to_path_buf();
    let text = std::fs::read_to_string(&file).map_err(|e| {
        Error::usage(format!("cannot read case `{}`", file.display())).detail(e.to_string())
    })?;
    let value = spec::parse_document(&text, spec::Format::Toml, &file, "case")?;
    spec::check_schema(&value, CASE_SCHEMA, &file, "case")?;
    let c: CaseFile = spec::deserialize_typed(&value, &file, "case")?;
    let bad = |msg: String| Error::usage(format!("invalid case `{}`", file.display())).detail(msg);
    let mut hashed: Vec<Vec<u8>> = vec![text.clone().into_bytes()];
    // The job spec: a file (relative to the case folder) or the keys inline.
    let (mut info, info_path, info_dir) = match &c.info {
        Value::String(p) => {
            let p = dir.join(p);
            if !p.is_file() {
                return Err(bad(format!("/info: `{}` does not exist", p.display())));
            }
            let bytes = std::fs::read(&p).map_err(|e| io_error("read", &p, e))?;
            hashed.push(bytes);
            let v = spec::read_document(&p, "job spec")?;
            let d = p.parent().unwrap_or(Path::new("/")).to_path_buf();
            (v, p, d)
        }
        v => (v.clone(), file.clone(), dir.clone()),
    };
    if let Value::Object(m) = &mut info {
        // The case decides where the code is and where the run starts.
        for k in ["repo", "commit", "base"] {
            m.remove(k);
        }
    }
    let loaded = spec::from_value(info, &info_path, &info_dir).map_err(|e| {
        e.hint(format!(
            "the job spec of case `{}` ({})",
            c.id,
            file.display()
        ))
    })?;
    let gold_patch_file = c.gold_patch.as_ref().map(|p| dir.join(p));
    let gold_patch = match &c.gold_patch {
        Some(p) => {
            let full = dir.join(p);
            let t = std::fs::read_to_string(&full).map_err(|e| {
                bad(format!(
                    "/gold-patch: cannot read `{}`: {e}",
                    full.display()
                ))
            })?;
            hashed.push(t.clone().into_bytes());
            Some(t)
        }
        None => None,
    };
    let check_budget = c.check_budget.unwrap_or(DEFAULT_CHECK_BUDGET);
    let repo_source = if spec::is_remote_url(&c.repo) {
        c.repo.clone()
    } else {
        let p = dir.join(&c.repo);
        if !p.exists() {
            return Err(bad(format!("/repo: `{}` does not exist", p.display())));
        }
        spec::absolute(&p).display().to_string()
    };
    let check_runs = c
        .check_runs
        .unwrap_or(if loaded.spec.deterministic { 1 } else { 20 });
    let environment = Environment::resolve(&c.environment, &dir, &file, "case")?;
    let qualify_runs = c.qualify_runs.unwrap_or(if loaded.spec.deterministic {
        DEFAULT_QUALIFY_RUNS
    } else {
        DEFAULT_QUALIFY_RUNS_FLAKY
    });
    Ok(Case {
        qualify_runs,
        qualify_failures: c.qualify_failures.unwrap_or(1),
        environment,
        hash: content_hash(hashed.iter().map(|v| v.as_slice())),
        id: c.id,
        dir,
        file,
        repo: if spec::is_remote_url(&c.repo) {
            c.repo.clone()
        } else {
            Path::new(&repo_source)
                .file_name()
                .map(|n| {
                    n.to_string_lossy()
                        .trim_end_matches(".bundle")
                        .trim_end_matches(".git")
                        .to_string()
                })
                .unwrap_or_else(|| c.repo.clone())
        },
        repo_source,
        commit: c.commit,
        spec: loaded,
        gold_patch,
        gold_patch_file,
        fail_to_pass: c.fail_to_pass,
        pass_to_pass: c.pass_to_pass,
        check_runs,
        check_budget,
        tags: c.tags,
    })
}
