//! `fixci replay run --agent gold` on real history: the cases of `../shared/fixtures/realbugs`
//! (five bugs of public Python projects, shipped as git bundles with their upstream fixes), run
//! in place with the venv that `.ci/install-realbugs-venv.sh` builds from their pinned
//! requirements. Every case must qualify; a copy of a case whose environment lacks the test
//! runner must be an infra error, not a failed reproduction.
//!
//! Skips with a message when the corpus or the venv is absent (a fresh clone, no PyPI access);
//! with `CI=true` it fails instead, since CI builds the venv.

use std::path::PathBuf;

use crate::common::{fixci, fixtures};
use crate::replay::records;

/// The venv: `$FIXCI_REALBUGS_VENV`, else `${FIXCI_TOOLS_DIR:-$HOME/.cache/fixci-tools}/
/// realbugs-venv` (where the CI script builds it).
fn venv() -> PathBuf {
    if let Some(v) = std::env::var_os("FIXCI_REALBUGS_VENV") {
        return PathBuf::from(v);
    }
    let tools = std::env::var_os("FIXCI_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/fixci-tools")
        });
    tools.join("realbugs-venv")
}

/// The corpus and the venv, or `None` after saying why (a failure under `CI=true`).
fn corpus_and_venv() -> Option<(PathBuf, PathBuf)> {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let missing = |why: String| {
        assert!(!ci, "CI=true but {why}");
        eprintln!("skipping: {why}");
        None
    };
    let Some(f) = fixtures() else {
        return missing("../shared/fixtures is absent".into());
    };
    let corpus = f.join("realbugs");
    if !corpus.is_dir() {
        return missing(format!("{} is absent", corpus.display()));
    }
    let v = venv();
    if !v.join("bin/python").is_file() || !v.join("bin/pytest").is_file() {
        return missing(format!(
            "no realbugs venv at {} (build it with `bash .ci/install-realbugs-venv.sh`, which needs PyPI)",
            v.display()
        ));
    }
    Some((corpus, v))
}

#[test]
fn gold_qualifies_every_real_bug_and_a_wrong_environment_is_an_infra_error() {
    let Some((corpus, venv)) = corpus_and_venv() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let path = format!(
        "{}:{}",
        venv.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = tmp.path().join("gold");
    let o = fixci()
        .args(["replay", "run"])
        .arg(&corpus)
        .args(["--agent", "gold", "-j", "2", "--out"])
        .arg(&out)
        .env("PATH", &path)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let recs = records(&out);
    let cases = std::fs::read_dir(&corpus)
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("case.toml").is_file())
        .count();
    assert!(cases >= 5, "{cases} cases");
    assert_eq!(recs.len(), cases);
    let mut roots = std::collections::BTreeSet::new();
    for r in &recs {
        assert_eq!(r["verdict"], "resolved", "{r}");
        assert_eq!(r["flags"], serde_json::json!([]), "{r}");
        for c in r["fail_to_pass_before"].as_array().unwrap() {
            assert!(c["passed"].as_u64() < c["runs"].as_u64(), "{r}");
        }
        roots.insert(r["repo"].as_str().unwrap().to_string());
    }
    // Five bundles all named `repo.bundle`, five repositories.
    assert_eq!(roots.len(), cases, "{roots:?}");
    let rep = fixci()
        .args(["replay", "report"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(rep.status.success());
    let md = String::from_utf8_lossy(&rep.stdout);
    assert!(
        md.contains(&format!("{cases} of {cases} cases qualified")),
        "{md}"
    );

    // A copy of a case whose `path` puts a venv without pytest first: infra-error naming the
    // missing runner, never a reproduction.
    let bare = tmp.path().join("bare-venv");
    let st = std::process::Command::new(venv.join("bin/python"))
        .args(["-m", "venv", "--without-pip"])
        .arg(&bare)
        .status()
        .unwrap();
    assert!(st.success());
    let src = corpus.join("pysnooper-custom-repr-single");
    let copy = tmp.path().join("wrong-env/pysnooper-custom-repr-single");
    std::fs::create_dir_all(&copy).unwrap();
    for f in ["repo.bundle", "gold.patch"] {
        std::fs::copy(src.join(f), copy.join(f)).unwrap();
    }
    let toml = std::fs::read_to_string(src.join("case.toml")).unwrap();
    std::fs::write(
        copy.join("case.toml"),
        format!(
            "path = [{:?}]\n{toml}",
            bare.join("bin").display().to_string()
        ),
    )
    .unwrap();
    let out2 = tmp.path().join("wrong");
    let o = fixci()
        .args(["replay", "run"])
        .arg(&copy)
        .args(["--agent", "gold", "--retries", "0", "--out"])
        .arg(&out2)
        .env("PATH", &path)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let r = &records(&out2)[0];
    assert_eq!(r["verdict"], "infra-error", "{r}");
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("No module named pytest"),
        "{r}"
    );
}
