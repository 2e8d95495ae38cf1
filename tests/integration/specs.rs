//! Data-driven job spec tests: every file in `tests/specs/invalid/` fails with exit 2 and a
//! message naming the file and the expected JSON pointer or key (`<name>.expected`); every spec
//! in `tests/specs/valid/` passes.

use std::path::{Path, PathBuf};

use crate::common::fixci;

fn specs(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/specs")
        .join(kind);
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json" || e == "toml"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_invalid_spec_is_exit_2_with_file_and_pointer() {
    let files = specs("invalid");
    assert!(files.len() >= 20, "only {} invalid specs", files.len());
    for f in files {
        let expected = std::fs::read_to_string(f.with_extension("expected"))
            .unwrap_or_else(|_| panic!("{} has no .expected", f.display()));
        let out = fixci()
            .arg("validate")
            .arg(&f)
            .assert()
            .code(2)
            .get_output()
            .clone();
        let err = String::from_utf8_lossy(&out.stderr);
        let name = f.file_name().unwrap().to_string_lossy();
        assert!(
            err.contains(&*name),
            "{name}: message does not name the file: {err}"
        );
        assert!(
            err.contains(expected.trim()),
            "{name}: expected `{}` in: {err}",
            expected.trim()
        );
        // `fixci run` refuses it the same way and writes nothing.
        let tmp = tempfile::tempdir().unwrap();
        let out_dir = tmp.path().join("out");
        fixci()
            .current_dir(tmp.path())
            .arg("run")
            .arg(&f)
            .arg("--out")
            .arg(&out_dir)
            .assert()
            .code(2);
        assert!(!out_dir.exists(), "{name}: run wrote {}", out_dir.display());
    }
}

#[test]
fn every_valid_spec_passes() {
    let files = specs("valid");
    assert!(files.len() >= 5);
    for f in files {
        fixci().arg("validate").arg(&f).assert().code(0);
    }
}

#[test]
fn the_schema_command_prints_the_embedded_schemas() {
    let out = fixci()
        .args(["schema", "job"])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["$schema"], "https://json-schema.org/draft/2020-12/schema");
    assert!(v["properties"]["existing-test-path"].is_object());
    fixci().args(["schema", "pipeline"]).assert().code(0);
}

#[test]
fn built_in_pipeline_files_validate_and_broken_ones_are_located() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    fixci()
        .arg("validate")
        .arg(root.join("pipelines/deterministic.toml"))
        .arg(root.join("pipelines/existing-test.toml"))
        .assert()
        .code(0);
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("broken.toml");
    std::fs::write(&p, "name = \"broken\"\ndescription = \"x\"\n[[stage]]\nid = \"fix\"\nkind = \"agent\"\nrole = \"fix\"\n").unwrap();
    let out = fixci()
        .arg("validate")
        .arg(&p)
        .assert()
        .code(2)
        .get_output()
        .stderr
        .clone();
    let err = String::from_utf8_lossy(&out);
    assert!(
        err.contains("broken.toml") && err.contains("/stage/0") && err.contains("prompt"),
        "{err}"
    );
}

#[test]
fn a_report_stage_still_validates_with_a_deprecation_note_and_built_ins_have_none() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let builtin = fixci()
        .arg("validate")
        .arg(root.join("pipelines/deterministic.toml"))
        .arg(root.join("pipelines/flaky.toml"))
        .arg(root.join("pipelines/existing-test.toml"))
        .assert()
        .code(0)
        .get_output()
        .stderr
        .clone();
    assert!(!String::from_utf8_lossy(&builtin).contains("deprecated"));
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("old.toml");
    let text = std::fs::read_to_string(root.join("pipelines/existing-test.toml")).unwrap()
        + "\n[[stage]]\nid = \"report\"\nkind = \"report\"\nalways = true\nbudget = \"1m\"\n";
    std::fs::write(&p, text).unwrap();
    let out = fixci()
        .arg("validate")
        .arg(&p)
        .assert()
        .code(0)
        .get_output()
        .clone();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("note:") && err.contains("old.toml") && err.contains("deprecated"),
        "{err}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok:"));
}

#[test]
fn a_missing_default_spec_is_exit_2_with_a_hint() {
    let tmp = tempfile::tempdir().unwrap();
    let out = fixci()
        .current_dir(tmp.path())
        .arg("run")
        .assert()
        .code(2)
        .get_output()
        .stderr
        .clone();
    let err = String::from_utf8_lossy(&out);
    assert!(err.contains("info.json") && err.contains("hint:"), "{err}");
}

#[test]
fn a_bad_duration_in_a_pipeline_is_exit_2_naming_the_file_and_key_at_validate_and_run() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let good = std::fs::read_to_string(root.join("pipelines/existing-test.toml")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for (name, text, pointer, says) in [
        (
            "stage-budget.toml",
            good.replacen("\nbudget = \"", "\nbudget = \"5 fortnights", 1),
            "/stage/0/budget",
            "is not a duration",
        ),
        (
            "grace.toml",
            good.replacen("grace = \"5s\"", "grace = \"5 jiffies\"", 1),
            "/defaults/grace",
            "`5 jiffies` is not a duration",
        ),
        (
            "total.toml",
            good.replacen("total-budget = \"23m\"", "total-budget = \"0s\"", 1),
            "/defaults/total-budget",
            "longer than zero",
        ),
    ] {
        assert_ne!(text, good, "{name}: the edit did not apply");
        let p = tmp.path().join(name);
        std::fs::write(&p, &text).unwrap();
        let out = fixci()
            .arg("validate")
            .arg(&p)
            .assert()
            .code(2)
            .get_output()
            .clone();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(name) && err.contains(pointer) && err.contains(says),
            "{name}: {err}"
        );
        // `fixci run` with a spec naming the pipeline refuses it before writing anything.
        let spec = tmp.path().join(format!("{name}.json"));
        std::fs::write(
            &spec,
            serde_json::json!({
                "deterministic": true, "prompt": "x", "existing-test-path": "t.py",
                "pipeline": p.display().to_string(),
            })
            .to_string(),
        )
        .unwrap();
        let out_dir = tmp.path().join("out");
        let out = fixci()
            .current_dir(tmp.path())
            .arg("run")
            .arg(&spec)
            .arg("--out")
            .arg(&out_dir)
            .assert()
            .code(2)
            .get_output()
            .clone();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(name) && err.contains(pointer),
            "{name} (run): {err}"
        );
        assert!(!out_dir.exists(), "{name}: run wrote {}", out_dir.display());
    }
}
