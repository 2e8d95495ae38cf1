//! Where a run works: the target repository (a local path used in place, or a URL / bundle
//! cloned into fixci's cache), the run directory, and the slug that names both.

use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::spec::{self, LoadedSpec};
use crate::vcs;

pub use crate::defaults::cache_dir;

/// The repository a run targets.
#[derive(Debug, Clone)]
pub struct RepoSource {
    /// What the user named (path, URL or bundle), for the report.
    pub source: String,
    /// Local repository path (for a URL or bundle, the clone in the cache).
    pub root: PathBuf,
    /// True when `root` is fixci's clone rather than the user's repository.
    pub cloned: bool,
}

/// Decides which repository to use: `--repo`, else the spec's `repo` (relative to the spec's
/// folder), else the repository around the current directory. With `fetch`, a URL or bundle is
/// cloned (or fetched) into the cache; without it (dry runs), only its cache path is computed.
///
/// Errors: no repository found (exit 2); a clone that fails (exit 3).
pub fn resolve_repo(
    spec: &LoadedSpec,
    flag: Option<&str>,
    fetch: bool,
) -> Result<RepoSource, Error> {
    let (named, base_dir) = match (flag, &spec.spec.repo) {
        (Some(f), _) => (
            Some(f.to_string()),
            std::env::current_dir().unwrap_or_default(),
        ),
        (None, Some(r)) => (Some(r.clone()), spec.dir.clone()),
        (None, None) => (None, PathBuf::new()),
    };
    let Some(named) = named else {
        let cwd = std::env::current_dir().unwrap_or_default();
        let repo = vcs::discover(&cwd).map_err(|e| {
            Error::usage(format!(
                "no target repository: `{}` is not inside a git repository",
                cwd.display()
            ))
            .source(e)
            .hint("run fixci inside the repository, pass `--repo PATH`, or set `repo` in the spec")
        })?;
        let root = vcs::workdir(&repo);
        return Ok(RepoSource {
            source: root.display().to_string(),
            root,
            cloned: false,
        });
    };
    let local = base_dir.join(&named);
    let is_bundle = named.ends_with(".bundle");
    if !spec::is_remote_url(&named) && !is_bundle {
        if !local.exists() {
            return Err(Error::usage(format!(
                "repository `{}` does not exist",
                local.display()
            )));
        }
        let repo = vcs::discover(&local).map_err(|e| {
            Error::usage(format!("`{}` is not a git repository", local.display())).source(e)
        })?;
        let root = vcs::workdir(&repo);
        return Ok(RepoSource {
            source: named,
            root,
            cloned: false,
        });
    }
    let source = if is_bundle && !spec::is_remote_url(&named) {
        if !local.is_file() {
            return Err(Error::usage(format!(
                "bundle `{}` does not exist",
                local.display()
            )));
        }
        spec::absolute(&local).display().to_string()
    } else {
        named.clone()
    };
    let root = cache_dir().join("repos").join(cache_key(&source));
    if fetch {
        vcs::clone_or_fetch(&source, &root)
            .map_err(|e| Error::infra(format!("cannot prepare repository `{source}`")).source(e))?;
    }
    Ok(RepoSource {
        source,
        root,
        cloned: true,
    })
}

/// A readable, collision-free folder name for a source: its last path segment + a hash.
fn cache_key(source: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    source.hash(&mut h);
    if let Ok(m) = std::fs::metadata(source) {
        // A bundle that changed on disk gets a fresh clone.
        m.len().hash(&mut h);
        m.modified().ok().hash(&mut h);
    }
    let last = source
        .trim_end_matches('/')
        .rsplit(['/', ':'])
        .next()
        .unwrap_or("repo");
    format!(
        "{}-{:016x}",
        slugify(
            last.trim_end_matches(".git").trim_end_matches(".bundle"),
            30
        ),
        h.finish()
    )
}

/// Lowercase ASCII letters, digits and single dashes, at most `max` characters.
pub fn slugify(text: &str, max: usize) -> String {
    let mut out = String::new();
    for c in text.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
        if out.len() >= max {
            break;
        }
    }
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() { "fix".into() } else { out }
}

/// The slug of a test id: its last name (`tests/test_stats.py::test_mean` -> `test-mean`,
/// `pkg.TestX.test_y (pkg.TestX)` -> `test-y`), at most 40 characters.
pub fn test_slug(test: &str) -> String {
    let name = test
        .rsplit(['.', ':', '/', ' ', '('])
        .find(|s| !s.is_empty() && *s != ")")
        .unwrap_or(test);
    slugify(name.trim_end_matches(')'), 40)
}

/// The run's slug: the failing test's name, else the existing test's file name, else the first
/// words of the prompt.
pub fn run_slug(spec: &LoadedSpec, first_failure: Option<&str>) -> String {
    if let Some(t) = first_failure {
        return test_slug(t);
    }
    if let Some(p) = &spec.spec.existing_test_path {
        let stem = Path::new(p)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        return slugify(&stem, 40);
    }
    let words: Vec<&str> = spec.spec.prompt.split_whitespace().take(6).collect();
    slugify(&words.join(" "), 40)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert_eq!(
            slugify("Fix the Divide-by-zero!", 40),
            "fix-the-divide-by-zero"
        );
        assert_eq!(slugify("***", 40), "fix");
        assert!(slugify(&"a".repeat(100), 40).len() <= 40);
    }
}
