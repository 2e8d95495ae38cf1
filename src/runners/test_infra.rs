//! Test set-up is not the fix. A change to what the test runner loads, how it collects, what the
//! interpreter imports first, what git sees or what CI runs can make a failing test "pass"
//! without touching the bug (a `conftest.py` that rewrites reports, `addopts = --collect-only`,
//! a root `unittest.py` that `python -m unittest` imports first, a copy of the package under
//! `tests/` that shadows the real one, a `.gitignore` entry that hides a file from the commit).
//! [`judge_test_infra`] finds such changes in the files a fix changed; each finding names the
//! path and the rule. The spec's `allow-test-infra-changes` lets a user accept them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::sync::OnceLock;

use regex::Regex;

/// What happened to a file between the base commit and the fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// New file (untracked files included).
    Added,
    /// Changed content.
    Modified,
    /// Removed.
    Deleted,
}

/// One changed file, with its text before (at the base commit) and after (in the fix), lossily
/// decoded as UTF-8; `None` where the file does not exist on that side.
#[derive(Debug, Clone)]
pub struct ChangedFile {
    /// Path relative to the repository root, `/`-separated.
    pub path: String,
    /// Added, modified or deleted.
    pub change: Change,
    /// Text at the base commit.
    pub old: Option<String>,
    /// Text in the fix.
    pub new: Option<String>,
}

/// A refused change: the path and the rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfraChange {
    /// Path relative to the repository root (or `.git/info/exclude` for git's own files).
    pub path: String,
    /// The rule, as a sentence fragment: `pytest conftest.py (runs inside the test runner)`.
    pub rule: String,
}

impl fmt::Display for InfraChange {
    /// `` `path`: test infrastructure (rule) ``.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: test infrastructure ({})", self.path, self.rule)
    }
}

/// Python's standard-library top-level module names (`sys.stdlib_module_names` of CPython 3.11,
/// private `_` names and the `test` package left out), one per line.
const PYTHON_STDLIB: &str = include_str!("python_stdlib_modules.txt");

/// Test runners and their plugins that `python -m NAME` or `import NAME` would pick up from
/// the repository before the installed one.
const PYTHON_RUNNERS: &[&str] = &[
    "pytest",
    "_pytest",
    "py",
    "pluggy",
    "nose",
    "nose2",
    "unittest2",
    "tox",
    "nox",
    "xdist",
    "pytest_xdist",
    "coverage",
    "hypothesis",
];

/// The findings for `changes` (the fix against the base commit). `base_has(path)` tells whether
/// a file or directory exists at the base commit (for the shadowing package rule). Rules, in
/// order:
/// - pytest `conftest.py` anywhere; `pytest.ini`, `tox.ini`, `noxfile.py`, `.coveragerc`-free
///   runner configs: `jest.config.*`, `vitest.config.*`, `vitest.workspace.*`, `phpunit.xml*`,
///   `.mocharc*`, `karma.conf.*`, `.rspec`, `spec/spec_helper.rb`, `spec/rails_helper.rb`,
///   `.cargo/config*`, `.config/nextest.toml`;
/// - test sections of shared configs: `setup.cfg` `[tool:pytest]`, `pyproject.toml`
///   `[tool.pytest*]` / `[tool.tox]` / `[tool.hatch.envs*]`, any `addopts` line, `Cargo.toml`
///   `[profile.test]`, `package.json` `jest` / `mocha` / `vitest` / `scripts.test*`, `vite.config.*`
///   lines about tests, Maven / Gradle test plug-in settings;
/// - Python start-up hooks: `*customize.py` (sitecustomize, usercustomize), `*.pth`;
/// - shadowing modules: a new module or package named like the standard library at the root,
///   under `src/` or in a test directory, or one named like a test runner anywhere on those
///   paths; a new non-test module under a test directory named like a top-level package of the
///   repository (a copy that shadows the real one);
/// - `.gitignore` files anywhere;
/// - CI configuration: `.github/workflows/`, `.gitlab-ci.yml`, `.circleci/`, `.travis.yml`,
///   `azure-pipelines.yml`, `Jenkinsfile`, `.buildkite/`, `bitbucket-pipelines.yml`,
///   `appveyor.yml`, `.drone.yml`, `.woodpecker*`.
pub fn judge_test_infra(
    changes: &[ChangedFile],
    base_has: &dyn Fn(&str) -> bool,
) -> Vec<InfraChange> {
    let mut out = Vec::new();
    for c in changes {
        if let Some(rule) = rule_for(c, base_has) {
            out.push(InfraChange {
                path: c.path.clone(),
                rule,
            });
        }
    }
    out
}

/// The rule `c` breaks, if any.
fn rule_for(c: &ChangedFile, base_has: &dyn Fn(&str) -> bool) -> Option<String> {
    let path = c.path.as_str();
    let lower = path.to_ascii_lowercase();
    let name = lower.rsplit('/').next().unwrap_or(&lower);
    let dir = lower.rsplit_once('/').map_or("", |(d, _)| d);
    let whole_file: Option<&str> = match name {
        "conftest.py" => Some("pytest conftest.py, which runs inside the test runner"),
        "pytest.ini" | ".pytest.ini" => Some("pytest configuration file"),
        "tox.ini" => Some("tox configuration file"),
        "noxfile.py" => Some("nox configuration file"),
        ".rspec" | "spec_helper.rb" | "rails_helper.rb" => Some("RSpec configuration"),
        ".gitignore" => Some("a git ignore file, which decides what the commit holds"),
        "jenkinsfile"
        | ".gitlab-ci.yml"
        | ".travis.yml"
        | "azure-pipelines.yml"
        | "bitbucket-pipelines.yml"
        | "appveyor.yml"
        | ".appveyor.yml"
        | ".drone.yml" => Some("CI configuration"),
        _ => None,
    };
    if let Some(r) = whole_file {
        return Some(r.to_string());
    }
    let has_prefix = |p: &str| name.starts_with(p);
    if has_prefix("jest.config.")
        || has_prefix("vitest.config.")
        || has_prefix("vitest.workspace.")
        || has_prefix("phpunit.xml")
        || has_prefix(".mocharc")
        || has_prefix("karma.conf.")
        || has_prefix("jest.setup.")
        || has_prefix("vitest.setup.")
    {
        return Some("test runner configuration".into());
    }
    if lower.starts_with(".cargo/config") || lower.contains("/.cargo/config") {
        return Some("Cargo configuration (`.cargo/config`)".into());
    }
    if lower == ".config/nextest.toml" || lower.ends_with("/.config/nextest.toml") {
        return Some("cargo-nextest configuration".into());
    }
    if lower.starts_with(".github/workflows/")
        || lower.starts_with(".circleci/")
        || lower.starts_with(".buildkite/")
        || lower.starts_with(".woodpecker")
        || lower.starts_with(".github/actions/")
    {
        return Some("CI configuration".into());
    }
    if name.ends_with("customize.py") {
        return Some("Python start-up hook (`sitecustomize`/`usercustomize`)".into());
    }
    if name.ends_with(".pth") {
        return Some("Python `.pth` file, which runs at interpreter start-up".into());
    }
    if let Some(r) = section_rule(c, name) {
        return Some(r);
    }
    if c.change == Change::Added {
        if let Some(r) = shadowing_rule(path, base_has) {
            return Some(r);
        }
    }
    if let Some(r) = hook_rule(c, name, dir) {
        return Some(r);
    }
    if let Some(r) = runner_aware_rule(c, path, name) {
        return Some(r);
    }
    if c.change == Change::Modified && name.ends_with(".py") {
        // An existing module named like a runner is edited: it is loaded in the runner's place.
        let stem = name.trim_end_matches(".py");
        if on_import_path(dir) && PYTHON_RUNNERS.contains(&stem) {
            return Some(format!("a module named like the test runner `{stem}`"));
        }
    }
    None
}

/// Code outside the tests that asks whether it runs under a test runner, or reaches into one:
/// a fix can then behave one way under test and another in production, or rewrite the runner's
/// verdict from inside (registering a plugin, patching `TestCase.assertEqual`), and no test run
/// can tell it from a real fix. Found in the lines a fix adds to a non-test Python, JavaScript or
/// TypeScript, or Go file (comment lines left out): Python `pytest`, `_pytest`, `unittest`,
/// `nose`, `doctest`, `PYTEST_*`; JS/TS `jest`, `vitest`, `mocha`, `JEST_WORKER_ID`, `VITEST*`;
/// Go `testing.Testing()` and `flag.Lookup("test.…")`.
fn runner_aware_rule(c: &ChangedFile, path: &str, name: &str) -> Option<String> {
    static PY: OnceLock<Regex> = OnceLock::new();
    static JS: OnceLock<Regex> = OnceLock::new();
    static GO: OnceLock<Regex> = OnceLock::new();
    if crate::runners::looks_like_test(path) {
        return None;
    }
    let (re, comment) = if name.ends_with(".py") {
        let re = PY.get_or_init(|| {
            Regex::new(r"\b(_?pytest|unittest|nose2?|doctest|PYTEST_[A-Z_]+)\b")
                .expect("constant pattern compiles")
        });
        (re, "#")
    } else if [".js", ".mjs", ".cjs", ".ts", ".mts", ".cts", ".jsx", ".tsx"]
        .iter()
        .any(|e| name.ends_with(e))
    {
        let re = JS.get_or_init(|| {
            Regex::new(r"\b(jest|vitest|mocha|JEST_WORKER_ID|VITEST[A-Z_]*)\b")
                .expect("constant pattern compiles")
        });
        (re, "//")
    } else if name.ends_with(".go") {
        let re = GO.get_or_init(|| {
            Regex::new(r#"\btesting\.Testing\s*\(|flag\.Lookup\(\s*"test\."#)
                .expect("constant pattern compiles")
        });
        (re, "//")
    } else {
        return None;
    };
    let new = c.new.as_deref()?;
    let old: BTreeSet<&str> = c.old.as_deref().unwrap_or("").lines().map(str::trim).collect();
    let hit = new
        .lines()
        .map(str::trim)
        .filter(|l| !old.contains(l) && !l.starts_with(comment))
        .find_map(|l| re.find(l).map(|m| (l, m.as_str())))?;
    Some(format!(
        "code outside the tests that refers to the test runner (`{}` in `{}`), so it can behave \
         differently under test",
        hit.1, hit.0
    ))
}

/// Rules for shared configuration files whose test sections (only) are test infrastructure.
fn section_rule(c: &ChangedFile, name: &str) -> Option<String> {
    let old = c.old.as_deref().unwrap_or("");
    let new = c.new.as_deref().unwrap_or("");
    // `addopts` changes what every pytest run does, wherever it is set.
    if (name.ends_with(".cfg") || name.ends_with(".toml") || name.ends_with(".ini"))
        && changed_lines(old, new).any(|l| l.to_ascii_lowercase().contains("addopts"))
    {
        return Some("pytest `addopts`".into());
    }
    match name {
        "setup.cfg" => {
            let (o, n) = (ini_sections(old), ini_sections(new));
            let test = |s: &str| {
                s == "tool:pytest"
                    || s == "pytest"
                    || s.starts_with("testenv")
                    || s == "tox"
                    || s.starts_with("coverage:run")
            };
            differs(&o, &n, test).then(|| {
                format!(
                    "a test section of `setup.cfg` ({})",
                    diff_keys(&o, &n, test)
                )
            })
        }
        "pyproject.toml" => {
            let test = |s: &str| {
                s.starts_with("tool.pytest")
                    || s.starts_with("tool.tox")
                    || s.starts_with("tool.nox")
                    || (s.starts_with("tool.hatch.envs")
                        && (s.contains("test") || s.ends_with("scripts")))
            };
            let (o, n) = (toml_tables(old), toml_tables(new));
            differs(&o, &n, test).then(|| {
                format!(
                    "a test section of `pyproject.toml` ({})",
                    diff_keys(&o, &n, test)
                )
            })
        }
        "cargo.toml" => {
            let test = |s: &str| s.starts_with("profile.test") || s.starts_with("profile.bench");
            let (o, n) = (toml_tables(old), toml_tables(new));
            differs(&o, &n, test).then(|| "Cargo `[profile.test]`".to_string())
        }
        "package.json" => {
            let keys = |text: &str| -> BTreeMap<String, String> {
                let v: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
                let mut m = BTreeMap::new();
                for k in ["jest", "mocha", "vitest", "ava", "c8", "nyc"] {
                    if let Some(x) = v.get(k) {
                        m.insert(k.to_string(), x.to_string());
                    }
                }
                if let Some(s) = v.get("scripts").and_then(|s| s.as_object()) {
                    for (k, x) in s {
                        if k.starts_with("test")
                            || k.starts_with("pretest")
                            || k.starts_with("posttest")
                        {
                            m.insert(format!("scripts.{k}"), x.to_string());
                        }
                    }
                }
                m
            };
            let (o, n) = (keys(old), keys(new));
            (o != n).then(|| {
                format!(
                    "test settings of `package.json` ({})",
                    diff_keys(&o, &n, |_| true)
                )
            })
        }
        _ if name.starts_with("vite.config.") => changed_lines(old, new)
            .any(|l| l.contains("test"))
            .then(|| "the `test` settings of the Vite configuration (vitest reads them)".into()),
        "pom.xml" | "build.gradle" | "build.gradle.kts" => {
            static RE: OnceLock<Regex> = OnceLock::new();
            let re = RE.get_or_init(|| {
                Regex::new(r"(?i)surefire|failsafe|skipTests|testFailureIgnore|ignoreFailures|maven\.test\.skip|<excludes?>|<includes?>|\btest\s*\{|\btests?\s*\.|useJUnitPlatform|filter\s*\{")
                    .expect("constant pattern compiles")
            });
            changed_lines(old, new)
                .any(|l| re.is_match(l))
                .then(|| "test settings of the build file (Surefire, Gradle `test`)".into())
        }
        _ => None,
    }
}

/// Code a runner runs around the tests, added inside an ordinary file: Go's `TestMain`,
/// unittest's `load_tests`, pytest's `pytest_plugins`, and code in a test package's
/// `__init__.py` (imported before every test module of the package, so it can patch the code
/// under test).
fn hook_rule(c: &ChangedFile, name: &str, dir: &str) -> Option<String> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(r"^\s*func\s+TestMain\s*\(|^\s*def\s+load_tests\s*\(|^\s*pytest_plugins\s*=")
            .expect("constant pattern compiles")
    });
    let new = c.new.as_deref()?;
    let old: BTreeSet<&str> = c
        .old
        .as_deref()
        .unwrap_or("")
        .lines()
        .map(str::trim)
        .collect();
    let mut added = new.lines().filter(|l| !old.contains(l.trim()));
    if name == "__init__.py"
        && dir
            .split('/')
            .any(|d| matches!(d, "tests" | "test" | "testing"))
    {
        return added
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .then(|| "code in a test package's `__init__.py`, which runs before its tests".into());
    }
    let hit = added.find(|l| re.is_match(l))?;
    Some(format!(
        "a runner hook (`{}`), which decides what runs or how the run ends",
        hit.trim()
    ))
}

/// A new module or package that Python would import in place of another.
fn shadowing_rule(path: &str, base_has: &dyn Fn(&str) -> bool) -> Option<String> {
    let parts: Vec<&str> = path.split('/').collect();
    let file = *parts.last()?;
    // The importable name this file defines, and the directory it lives in.
    let (module, dir_parts): (&str, &[&str]) = if file == "__init__.py" && parts.len() >= 2 {
        (parts[parts.len() - 2], &parts[..parts.len() - 2])
    } else if let Some(stem) = file.strip_suffix(".py") {
        (stem, &parts[..parts.len() - 1])
    } else {
        return None;
    };
    let dir = dir_parts.join("/");
    if on_import_path(&dir.to_ascii_lowercase()) {
        if PYTHON_RUNNERS.contains(&module) {
            return Some(format!(
                "a module named like the test runner `{module}`, imported in its place"
            ));
        }
        if python_stdlib().contains(module) {
            return Some(format!(
                "a module named like the standard library's `{module}`, imported in its place"
            ));
        }
    }
    // A copy of one of the repository's own packages inside a test directory: with pytest's
    // default import mode the test directory goes first on `sys.path`.
    let in_tests = parts[..parts.len() - 1].iter().any(|p| {
        matches!(
            p.to_ascii_lowercase().as_str(),
            "tests" | "test" | "testing" | "spec"
        )
    });
    if in_tests && !crate::runners::looks_like_test_module(file) {
        for (i, p) in parts[..parts.len() - 1].iter().enumerate().rev() {
            let is_test_dir = matches!(
                p.to_ascii_lowercase().as_str(),
                "tests" | "test" | "testing" | "spec"
            );
            if is_test_dir {
                // The first component below the test directory is what `import` would find.
                let name = if i + 1 < parts.len() - 1 {
                    parts[i + 1]
                } else {
                    module
                };
                if name.is_empty() || !is_identifier(name) {
                    return None;
                }
                let real = [
                    name.to_string(),
                    format!("src/{name}"),
                    format!("{name}.py"),
                    format!("src/{name}.py"),
                ];
                if let Some(r) = real.iter().find(|r| base_has(r)) {
                    return Some(format!(
                        "a copy of the package `{name}` under a test directory, which shadows `{r}`"
                    ));
                }
                return None;
            }
        }
    }
    None
}

/// True for directories whose modules are importable as top-level names when tests run: the
/// repository root, `src/`, and test directories (pytest puts a test file's directory first on
/// `sys.path` in its default import mode).
fn on_import_path(dir: &str) -> bool {
    dir.is_empty()
        || dir == "src"
        || dir
            .split('/')
            .next_back()
            .is_some_and(|d| matches!(d, "tests" | "test" | "testing"))
}

fn is_identifier(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_alphabetic() || f == '_')
        && c.all(|x| x.is_alphanumeric() || x == '_')
}

fn python_stdlib() -> &'static BTreeSet<&'static str> {
    static SET: OnceLock<BTreeSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| {
        PYTHON_STDLIB
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect()
    })
}

/// Changes to what the spec's test commands run (`test-command`, `suite-command`), besides
/// the test files themselves (`exempt`: the CI's failing tests and the reproduction, judged by
/// their own rules):
/// - a file a command names (`sh scripts/test.sh`, `python tools/run_tests.py`);
/// - a Makefile (`Makefile`, `makefile`, `GNUmakefile`, `*.mk`) whose changed lines belong to
///   a target a `make` command runs (its first target when it names none) or a target named
///   like a test (`test*`, `check*`);
/// - a `package.json` script that an `npm`/`yarn`/`pnpm` command runs (`npm test` runs
///   `scripts.test`, `npm run ci` `scripts.ci`).
pub fn judge_test_commands(
    changes: &[ChangedFile],
    commands: &[String],
    exempt: &[String],
) -> Vec<InfraChange> {
    let words: Vec<Vec<String>> = commands
        .iter()
        .map(|c| {
            shlex::split(c).unwrap_or_else(|| c.split_whitespace().map(String::from).collect())
        })
        .collect();
    let mut out = Vec::new();
    for c in changes {
        let path = c.path.as_str();
        if exempt.iter().any(|e| e == path) {
            continue;
        }
        let name = path.rsplit('/').next().unwrap_or(path);
        // A file the command names.
        if let Some(cmd) = commands.iter().zip(&words).find_map(|(cmd, w)| {
            w.iter()
                .any(|x| !x.starts_with('-') && x.trim_start_matches("./") == path)
                .then_some(cmd)
        }) {
            out.push(InfraChange {
                path: path.to_string(),
                rule: format!("a file the test command `{cmd}` runs"),
            });
            continue;
        }
        let lower = name.to_ascii_lowercase();
        if matches!(lower.as_str(), "makefile" | "gnumakefile") || lower.ends_with(".mk") {
            let mut targets: Vec<String> = Vec::new();
            let mut default = false;
            for w in &words {
                if let Some(pos) = w.iter().position(|x| x == "make" || x == "gmake") {
                    let named: Vec<String> = w[pos + 1..]
                        .iter()
                        .take_while(|x| !matches!(x.as_str(), "&&" | "||" | ";" | "|"))
                        .filter(|x| !x.starts_with('-') && !x.contains('='))
                        .cloned()
                        .collect();
                    default |= named.is_empty();
                    targets.extend(named);
                }
            }
            let old = c.old.as_deref().unwrap_or("");
            let new = c.new.as_deref().unwrap_or("");
            let first = |t: &str| make_rules(t).first().map(|(n, _)| n.clone());
            if default {
                targets.extend(first(old).into_iter().chain(first(new)));
            }
            let touched = make_targets_changed(old, new);
            if let Some(t) = touched.iter().find(|t| {
                targets.contains(t) || {
                    let l = t.to_ascii_lowercase();
                    l.starts_with("test") || l.starts_with("check")
                }
            }) {
                out.push(InfraChange {
                    path: path.to_string(),
                    rule: format!("the Makefile target `{t}`, which runs the tests"),
                });
            }
            continue;
        }
        if lower == "package.json" {
            let mut scripts: Vec<String> = Vec::new();
            for w in &words {
                match w.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
                    ["npm" | "pnpm" | "yarn", "run" | "run-script", s, ..] => {
                        scripts.push(s.to_string())
                    }
                    ["npm" | "pnpm" | "yarn", s @ ("test" | "t" | "tst"), ..] => {
                        let _ = s;
                        scripts.push("test".into())
                    }
                    ["yarn" | "pnpm", s, ..] if !s.starts_with('-') => scripts.push(s.to_string()),
                    _ => {}
                }
            }
            let get = |t: Option<&str>, k: &str| -> Option<String> {
                let v: serde_json::Value = serde_json::from_str(t?).ok()?;
                Some(v.get("scripts")?.get(k)?.to_string())
            };
            if let Some(k) = scripts
                .iter()
                .find(|k| get(c.old.as_deref(), k) != get(c.new.as_deref(), k))
            {
                out.push(InfraChange {
                    path: path.to_string(),
                    rule: format!(
                        "the `scripts.{k}` entry of `package.json`, which the test command runs"
                    ),
                });
            }
        }
    }
    out
}

/// The rules of a Makefile: `(target, recipe and prerequisite lines)`, in order; variable
/// assignments and special targets (`.PHONY`) are not rules.
fn make_rules(text: &str) -> Vec<(String, Vec<String>)> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(r"^([A-Za-z0-9_./%-][A-Za-z0-9_./% -]*?)\s*::?(?:[^=]|$)")
            .expect("constant pattern compiles")
    });
    let mut rules: Vec<(String, Vec<String>)> = Vec::new();
    for line in text.lines() {
        if line.starts_with('\t') {
            if let Some((_, body)) = rules.last_mut() {
                body.push(line.trim().to_string());
            }
            continue;
        }
        if let Some(m) = re.captures(line) {
            for t in m[1].split_whitespace().filter(|t| !t.starts_with('.')) {
                rules.push((t.to_string(), vec![line.trim().to_string()]));
            }
        }
    }
    rules
}

/// The targets whose rule (header or recipe) differs between two versions of a Makefile.
fn make_targets_changed(old: &str, new: &str) -> Vec<String> {
    let (o, n) = (make_rules(old), make_rules(new));
    let find = |rules: &[(String, Vec<String>)], t: &str| {
        rules.iter().find(|(n, _)| n == t).map(|(_, b)| b.clone())
    };
    let mut out: Vec<String> = Vec::new();
    for (t, _) in o.iter().chain(&n) {
        if !out.contains(t) && find(&o, t) != find(&n, t) {
            out.push(t.clone());
        }
    }
    out
}

/// Lines present in one text and not the other (a multiset difference is not needed: a line
/// that moved is not a change of meaning here).
fn changed_lines<'a>(old: &'a str, new: &'a str) -> impl Iterator<Item = &'a str> {
    let o: BTreeSet<&str> = old.lines().map(str::trim).collect();
    let n: BTreeSet<&str> = new.lines().map(str::trim).collect();
    let added: Vec<&str> = n.difference(&o).copied().collect();
    let removed: Vec<&str> = o.difference(&n).copied().collect();
    added.into_iter().chain(removed).filter(|l| !l.is_empty())
}

/// INI sections (`[name]`, lower-cased) with their non-blank, non-comment lines.
fn ini_sections(text: &str) -> BTreeMap<String, String> {
    let mut m: BTreeMap<String, String> = BTreeMap::new();
    let mut cur = String::new();
    for l in text.lines() {
        let t = l.trim();
        if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
            continue;
        }
        if t.starts_with('[') && t.ends_with(']') {
            cur = t[1..t.len() - 1].trim().to_ascii_lowercase();
            continue;
        }
        let e = m.entry(cur.clone()).or_default();
        e.push_str(t);
        e.push('\n');
    }
    m
}

/// TOML tables by dotted name (`tool.pytest.ini_options`), each as its canonical TOML text.
/// A file that does not parse gives one entry, `""`, holding the raw text, so a change still
/// shows.
fn toml_tables(text: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    match text.parse::<toml::Table>() {
        Ok(t) => flatten_toml("", &toml::Value::Table(t), &mut m),
        Err(_) => {
            m.insert(String::new(), text.to_string());
        }
    }
    m
}

fn flatten_toml(prefix: &str, v: &toml::Value, out: &mut BTreeMap<String, String>) {
    if let toml::Value::Table(t) = v {
        for (k, x) in t {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match x {
                toml::Value::Table(_) => flatten_toml(&key, x, out),
                other => {
                    out.insert(key, other.to_string());
                }
            }
        }
    }
}

/// True when an entry whose key passes `test` differs between `a` and `b`.
fn differs(
    a: &BTreeMap<String, String>,
    b: &BTreeMap<String, String>,
    test: impl Fn(&str) -> bool,
) -> bool {
    a.keys()
        .chain(b.keys())
        .filter(|k| test(k))
        .any(|k| a.get(k) != b.get(k))
}

/// The keys that pass `test` and differ, joined with `, `.
fn diff_keys(
    a: &BTreeMap<String, String>,
    b: &BTreeMap<String, String>,
    test: impl Fn(&str) -> bool,
) -> String {
    let keys: BTreeSet<&String> = a
        .keys()
        .chain(b.keys())
        .filter(|k| test(k) && a.get(*k) != b.get(*k))
        .collect();
    keys.into_iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The files that differ between commit `base` and the worktree of `repo` (untracked files
/// included, ignored files not: those are caught by the ignore-file rules), with their texts.
///
/// # Errors
/// When git cannot read the base tree or diff the worktree.
pub fn worktree_changes(
    repo: &git2::Repository,
    base: git2::Oid,
) -> Result<Vec<ChangedFile>, git2::Error> {
    let tree = repo.find_commit(base)?.tree()?;
    let mut opts = git2::DiffOptions::new();
    opts.include_untracked(true).recurse_untracked_dirs(true);
    let diff = repo.diff_tree_to_workdir(Some(&tree), Some(&mut opts))?;
    let root = repo
        .workdir()
        .unwrap_or_else(|| Path::new("."))
        .to_path_buf();
    let mut out = Vec::new();
    for d in diff.deltas() {
        let Some(p) = d.new_file().path().or_else(|| d.old_file().path()) else {
            continue;
        };
        let path = p.to_string_lossy().replace('\\', "/");
        let old = tree
            .get_path(p)
            .ok()
            .and_then(|e| repo.find_blob(e.id()).ok())
            .map(|b| String::from_utf8_lossy(b.content()).into_owned());
        let new = std::fs::read(root.join(p))
            .ok()
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        let change = match (&old, &new) {
            (None, _) => Change::Added,
            (Some(_), None) => Change::Deleted,
            _ => Change::Modified,
        };
        out.push(ChangedFile {
            path,
            change,
            old,
            new,
        });
    }
    Ok(out)
}

/// True when `path` (a file or directory) exists in commit `base`'s tree.
pub fn tree_has(repo: &git2::Repository, base: git2::Oid, path: &str) -> bool {
    repo.find_commit(base)
        .and_then(|c| c.tree())
        .and_then(|t| t.get_path(Path::new(path)))
        .is_ok()
}

/// Findings in git's own ignore settings of `repo`, which no diff shows: patterns in
/// `info/exclude` and a repository-level `core.excludesFile`.
pub fn git_ignore_settings(repo: &git2::Repository) -> Vec<InfraChange> {
    let mut out = Vec::new();
    let exclude = repo.commondir().join("info").join("exclude");
    if let Ok(text) = std::fs::read_to_string(&exclude) {
        let patterns: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        if !patterns.is_empty() {
            out.push(InfraChange {
                path: ".git/info/exclude".into(),
                rule: format!(
                    "git exclude patterns ({}), which hide files from the commit",
                    patterns.join(", ")
                ),
            });
        }
    }
    let local = repo
        .config()
        .ok()
        .and_then(|c| c.open_level(git2::ConfigLevel::Local).ok())
        .and_then(|c| c.get_string("core.excludesfile").ok());
    if let Some(f) = local {
        out.push(InfraChange {
            path: ".git/config".into(),
            rule: format!("`core.excludesFile = {f}`, which hides files from the commit"),
        });
    }
    out
}

#[cfg(test)]
mod tests {

    #[test]
    fn what_the_test_commands_run_is_test_infrastructure() {
        let mk_old = "all: build\n\nbuild:\n\tcc -o app app.c\n\nunit:\n\t./run-tests\n";
        let mk_test = mk_old.replace("./run-tests", "true");
        let mk_build = mk_old.replace("cc -o app", "cc -O2 -o app");
        let cmds = vec!["make unit".to_string()];
        let found = judge_test_commands(&[modified("Makefile", mk_old, &mk_test)], &cmds, &[]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].rule.contains("`unit`"), "{}", found[0]);
        // A change to another target (the build) is a fix like any other.
        assert!(
            judge_test_commands(&[modified("Makefile", mk_old, &mk_build)], &cmds, &[]).is_empty()
        );
        // Without a target, make runs the first one.
        let first = mk_old.replace("all: build", "all: build unit");
        assert!(
            !judge_test_commands(
                &[modified("Makefile", mk_old, &first)],
                &["make".into()],
                &[]
            )
            .is_empty()
        );
        // A script the command names, unless it is the failing test itself.
        let sh = modified("scripts/ci-test.sh", "pytest\n", "exit 0\n");
        let cmds = vec!["bash ./scripts/ci-test.sh -v".to_string()];
        assert!(judge_test_commands(std::slice::from_ref(&sh), &cmds, &[]).len() == 1);
        assert!(judge_test_commands(&[sh], &cmds, &["scripts/ci-test.sh".into()]).is_empty());
        // The package.json script `npm run` runs.
        let pj = modified(
            "package.json",
            r#"{"scripts": {"verify": "jest", "build": "tsc"}}"#,
            r#"{"scripts": {"verify": "true", "build": "tsc"}}"#,
        );
        let found = judge_test_commands(std::slice::from_ref(&pj), &["npm run verify".into()], &[]);
        assert!(found[0].rule.contains("scripts.verify"), "{found:?}");
        assert!(judge_test_commands(&[pj], &["npm run build".into()], &[]).is_empty());
    }
    use super::*;

    fn added(path: &str, text: &str) -> ChangedFile {
        ChangedFile {
            path: path.into(),
            change: Change::Added,
            old: None,
            new: Some(text.into()),
        }
    }

    fn modified(path: &str, old: &str, new: &str) -> ChangedFile {
        ChangedFile {
            path: path.into(),
            change: Change::Modified,
            old: Some(old.into()),
            new: Some(new.into()),
        }
    }

    fn judge(c: ChangedFile) -> Vec<InfraChange> {
        judge_test_infra(&[c], &|p| {
            matches!(p, "calc" | "calc/__init__.py" | "src/shop")
        })
    }

    #[test]
    fn code_outside_the_tests_that_asks_for_the_test_runner_is_refused() {
        let old = "def mean(xs):\n    return sum(xs) / (len(xs) - 1)\n";
        for (path, new) in [
            ("calc/ops.py", "import sys\ndef mean(xs):\n    if 'pytest' in sys.modules:\n        return sum(xs) / len(xs)\n    return sum(xs) / (len(xs) - 1)\n"),
            ("calc/ops.py", "import unittest\nunittest.TestCase.assertEqual = lambda *a, **k: None\n"),
            ("calc/ops.py", "import os\nFAST = os.environ.get('PYTEST_CURRENT_TEST')\n"),
            ("web/src/mean.ts", "export const mean = (xs) => process.env.JEST_WORKER_ID ? 2 : 3;\n"),
            ("pkg/mean.go", "func Mean() int {\n\tif testing.Testing() {\n\t\treturn 2\n\t}\n\treturn 3\n}\n"),
        ] {
            let f = judge(modified(path, old, new));
            assert_eq!(f.len(), 1, "{path}: {new}");
            assert!(f[0].rule.starts_with("code outside the tests that refers to the test runner"), "{}", f[0]);
        }
        // Tests may name their runner; comments and lines already there are not the fix's.
        for (path, new) in [
            ("tests/test_ops.py", "import pytest\n"),
            ("calc/ops.py", "# works under pytest too\ndef mean(xs):\n    return sum(xs) / len(xs)\n"),
            ("web/src/mean.test.ts", "import { expect } from 'vitest';\n"),
            ("pkg/mean_test.go", "func TestMain(m *testing.M) {}\n"),
        ] {
            let f = judge(modified(path, old, new));
            assert!(!f.iter().any(|f| f.rule.starts_with("code outside the tests")), "{path}: {f:?}");
        }
        let kept = "import pytest  # a plugin module\n";
        assert!(judge(modified("calc/plugin.py", kept, &format!("{kept}X = 1\n"))).is_empty());
    }

    #[test]
    fn runner_hooks_and_configs_are_refused() {
        for p in [
            "conftest.py",
            "tests/conftest.py",
            "pytest.ini",
            "tox.ini",
            "noxfile.py",
            "sitecustomize.py",
            "lib/usercustomize.py",
            "site-packages/zz.pth",
            "fix.pth",
            "jest.config.js",
            "web/vitest.config.ts",
            "phpunit.xml.dist",
            ".mocharc.yml",
            ".cargo/config.toml",
            ".gitignore",
            "tests/.gitignore",
            ".github/workflows/ci.yml",
            ".gitlab-ci.yml",
            ".circleci/config.yml",
            "Jenkinsfile",
            "spec/spec_helper.rb",
        ] {
            let f = judge(added(p, "x = 1\n"));
            assert_eq!(f.len(), 1, "{p}");
            assert_eq!(f[0].path, p);
            assert!(f[0].to_string().contains("test infrastructure"), "{}", f[0]);
        }
    }

    #[test]
    fn test_sections_of_shared_configs() {
        let f = judge(modified(
            "pyproject.toml",
            "[project]\nname = 'calc'\n",
            "[project]\nname = 'calc'\n[tool.pytest.ini_options]\naddopts = '--collect-only'\n",
        ));
        assert_eq!(f[0].rule, "pytest `addopts`");
        let f = judge(modified(
            "pyproject.toml",
            "[project]\nname = 'calc'\n",
            "[project]\nname = 'calc'\n[tool.pytest.ini_options]\ntestpaths = ['nowhere']\n",
        ));
        assert!(
            f[0].rule.contains("tool.pytest.ini_options.testpaths"),
            "{f:?}"
        );
        // The project's own sections are not test set-up.
        assert!(
            judge(modified(
                "pyproject.toml",
                "[project]\nversion = '1'\n",
                "[project]\nversion = '2'\n"
            ))
            .is_empty()
        );
        let f = judge(modified(
            "setup.cfg",
            "[metadata]\nname = calc\n",
            "[metadata]\nname = calc\n[tool:pytest]\npython_files = nothing_*.py\n",
        ));
        assert!(f[0].rule.contains("tool:pytest"), "{f:?}");
        assert!(
            judge(modified(
                "setup.cfg",
                "[metadata]\nname = a\n",
                "[metadata]\nname = b\n"
            ))
            .is_empty()
        );
        let f = judge(modified(
            "Cargo.toml",
            "[package]\nname = 'c'\n",
            "[package]\nname = 'c'\n[profile.test]\nopt-level = 3\n",
        ));
        assert_eq!(f[0].rule, "Cargo `[profile.test]`");
        assert!(
            judge(modified(
                "Cargo.toml",
                "[dependencies]\n",
                "[dependencies]\nregex = '1'\n"
            ))
            .is_empty()
        );
        let f = judge(modified(
            "package.json",
            r#"{"name": "c", "scripts": {"test": "jest"}}"#,
            r#"{"name": "c", "scripts": {"test": "jest --passWithNoTests || true"}}"#,
        ));
        assert!(f[0].rule.contains("scripts.test"), "{f:?}");
        assert!(
            judge(modified(
                "package.json",
                r#"{"version": "1"}"#,
                r#"{"version": "2"}"#
            ))
            .is_empty()
        );
        let f = judge(modified(
            "pom.xml",
            "<project></project>",
            "<project><skipTests>true</skipTests></project>",
        ));
        assert_eq!(f.len(), 1);
    }

    #[test]
    fn shadowing_modules_are_refused() {
        for p in [
            "unittest.py",
            "pytest.py",
            "os.py",
            "json/__init__.py",
            "src/random.py",
            "tests/random.py",
            "_pytest/__init__.py",
        ] {
            assert_eq!(judge(added(p, "")).len(), 1, "{p}");
        }
        // In a package, a stdlib name is an ordinary submodule.
        assert!(judge(added("calc/json.py", "")).is_empty());
        // An existing stdlib-named module of the project may be edited.
        assert!(judge(modified("types.py", "a = 1\n", "a = 2\n")).is_empty());
        assert_eq!(judge(modified("pytest.py", "a = 1\n", "a = 2\n")).len(), 1);
        // A copy of the package under tests/.
        let f = judge(added("tests/calc/__init__.py", "def total(xs): return 4\n"));
        assert!(f[0].rule.contains("copy of the package `calc`"), "{f:?}");
        assert_eq!(judge(added("tests/calc.py", "")).len(), 1);
        assert_eq!(judge(added("tests/unit/shop/cart.py", "")).len(), 0);
        assert_eq!(judge(added("tests/shop/cart.py", "")).len(), 1);
        // New tests and helpers are not.
        assert!(judge(added("tests/calc/test_ops.py", "")).is_empty());
        assert!(judge(added("tests/helpers.py", "")).is_empty());
        assert!(judge(added("calc/ops.py", "")).is_empty());
    }

    #[test]
    fn runner_hooks_inside_ordinary_files_are_refused() {
        let f = judge(added(
            "calc/main_test.go",
            "package calc\n\nfunc TestMain(m *testing.M) { os.Exit(0) }\n",
        ));
        assert!(f[0].rule.contains("TestMain"), "{f:?}");
        let f = judge(modified(
            "tests/test_x.py",
            "import unittest\n",
            "import unittest\ndef load_tests(loader, tests, pattern):\n    return unittest.TestSuite()\n",
        ));
        assert!(f[0].rule.contains("load_tests"), "{f:?}");
        assert_eq!(
            judge(modified(
                "tests/test_x.py",
                "x = 1\n",
                "x = 1\npytest_plugins = ['evil']\n"
            ))
            .len(),
            1
        );
        let f = judge(modified(
            "tests/__init__.py",
            "",
            "import calc\ncalc.total = lambda xs: 4\n",
        ));
        assert!(f[0].rule.contains("test package"), "{f:?}");
        assert!(judge(added("tests/__init__.py", "# tests\n")).is_empty());
        // An existing hook that stays is not a change.
        assert!(
            judge(modified(
                "calc/main_test.go",
                "func TestMain(m *testing.M) {\n",
                "func TestMain(m *testing.M) {\n// note\n"
            ))
            .is_empty()
        );
    }

    #[test]
    fn ordinary_fixes_pass() {
        assert!(
            judge(modified(
                "calc/__init__.py",
                "def total(xs): return 0\n",
                "def total(xs): return sum(xs)\n"
            ))
            .is_empty()
        );
        assert!(judge(modified("README.md", "a\n", "b\n")).is_empty());
        assert!(judge(added("docs/conf.txt", "addopts = x\n")).is_empty());
    }

    #[test]
    fn git_exclude_patterns_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init(dir.path()).unwrap();
        let info = repo.path().join("info");
        std::fs::create_dir_all(&info).unwrap();
        std::fs::write(
            info.join("exclude"),
            "# git ls-files --others --exclude-from=.git/info/exclude\n",
        )
        .unwrap();
        assert!(git_ignore_settings(&repo).is_empty());
        std::fs::write(info.join("exclude"), "# comment\nfixed_calc/\n").unwrap();
        let f = git_ignore_settings(&repo);
        assert!(f[0].rule.contains("fixed_calc/"), "{f:?}");
        repo.config()
            .unwrap()
            .set_str("core.excludesFile", "/tmp/x")
            .unwrap();
        assert_eq!(git_ignore_settings(&repo).len(), 2);
    }
}
