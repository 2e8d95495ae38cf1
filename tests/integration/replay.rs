//! `fixci replay run` / `merge` end to end on a corpus that `tests/replay/make_corpus.py` builds:
//! three real git repositories, six real bugs (four deterministic, two flaky), two variants
//! whose scripted agent resolves a known subset, and the gold patches.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::fixci;

/// Builds the corpus in `dir/corpus`; returns its root.
fn corpus(dir: &Path) -> PathBuf {
    let root = dir.join("corpus");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/replay/make_corpus.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(&root)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "make_corpus.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    root
}

/// (variant, case, epoch) -> verdict, from an output folder's records.
fn verdicts(out: &Path) -> BTreeMap<(String, String, u64), String> {
    records(out)
        .into_iter()
        .map(|r| {
            (
                (
                    r["variant"].as_str().unwrap().to_string(),
                    r["case"].as_str().unwrap().to_string(),
                    r["epoch"].as_u64().unwrap(),
                ),
                r["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Every record of an output folder, sorted by key.
pub(crate) fn records(out: &Path) -> Vec<Value> {
    let mut v: Vec<Value> = std::fs::read_dir(out.join("records"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .map(|e| serde_json::from_str(&std::fs::read_to_string(e.path()).unwrap()).unwrap())
        .collect();
    v.sort_by_key(|r| r["key"].as_str().unwrap().to_string());
    v
}

/// The verdicts `expected.json` promises for a variant.
fn expected(corpus: &Path, variant: &str) -> BTreeMap<String, String> {
    let e: Value =
        serde_json::from_str(&std::fs::read_to_string(corpus.join("expected.json")).unwrap())
            .unwrap();
    let mut m = BTreeMap::new();
    for (verdict, cases) in e[variant].as_object().unwrap() {
        for c in cases.as_array().unwrap() {
            m.insert(c.as_str().unwrap().to_string(), verdict.clone());
        }
    }
    m
}

#[test]
fn gold_agent_resolves_every_qualified_case_and_flags_a_broken_one() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = corpus(tmp.path());
    // A seventh case whose "gold patch" does not fix the bug must be flagged.
    let bad = corpus.join("cases/calc-add-badgold");
    std::fs::create_dir_all(&bad).unwrap();
    let toml = std::fs::read_to_string(corpus.join("cases/calc-add/case.toml"))
        .unwrap()
        .replace("id = \"calc-add\"", "id = \"calc-add-badgold\"");
    std::fs::write(bad.join("case.toml"), toml).unwrap();
    std::fs::write(
        bad.join("gold.patch"),
        std::fs::read_to_string(corpus.join("cases/calc-mul/gold.patch")).unwrap(),
    )
    .unwrap();
    let out = tmp.path().join("gold");
    let a = fixci()
        .args(["replay", "run"])
        .arg(corpus.join("cases"))
        .args(["--agent", "gold", "-j", "2", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(
        a.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&a.stderr)
    );
    let recs = records(&out);
    assert_eq!(recs.len(), 7);
    for r in &recs {
        let case = r["case"].as_str().unwrap();
        if case == "calc-add-badgold" {
            // calc-mul's patch does not apply on calc-add's commit (different bug line).
            assert_eq!(r["verdict"], "unresolved", "{r}");
            let flags = r["flags"].as_array().unwrap();
            assert!(
                flags
                    .iter()
                    .any(|f| f.as_str().unwrap().starts_with("gold-patch-does-not")),
                "{r}"
            );
        } else {
            assert_eq!(r["verdict"], "resolved", "{case}: {r}");
            // `flags` is always present, empty for a qualified case; the before-fix counts too.
            assert_eq!(r["flags"], serde_json::json!([]), "{case}: {r}");
            let before = &r["fail_to_pass_before"][0];
            assert!(before["runs"].as_u64().unwrap() >= 1, "{r}");
            assert!(before["passed"].as_u64() < before["runs"].as_u64(), "{r}");
            assert!(r["pass_to_pass_before"].is_array(), "{r}");
            assert!(r["funnel"]["reproduced"].as_bool().unwrap());
            // Flaky cases: the fail-to-pass command was seen failing before the patch and
            // passing every one of its runs after it.
            let f2p = &r["fail_to_pass"][0];
            assert_eq!(f2p["runs"], f2p["passed"], "{r}");
        }
    }
    // Work folders are cleaned up; the records stay.
    assert!(!out.join("work").exists());
}

#[test]
fn variants_resolve_the_known_subset_and_shards_merge_to_the_same_results() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = corpus(tmp.path());
    let whole = tmp.path().join("whole");
    let run = |out: &Path, extra: &[&str]| {
        let mut c = Command::new(assert_cmd::cargo::cargo_bin("fixci"));
        c.args(["replay", "run"])
            .arg(corpus.join("cases"))
            .arg("--variant")
            .arg(corpus.join("variants/a"))
            .arg("--variant")
            .arg(corpus.join("variants/b"))
            .arg("--out")
            .arg(out)
            .args(extra);
        c
    };
    let o = run(&whole, &["-j", "2"]).output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = verdicts(&whole);
    assert_eq!(v.len(), 12);
    for variant in ["a", "b"] {
        for (case, verdict) in expected(&corpus, variant) {
            assert_eq!(
                v[&(variant.to_string(), case.clone(), 0)],
                verdict,
                "variant {variant}, case {case}"
            );
        }
    }
    // The unresolved text-clean of variant a passed fixci's own verification but broke a
    // pass-to-pass command: the record says which.
    let rec = records(&whole)
        .into_iter()
        .find(|r| r["variant"] == "a" && r["case"] == "text-clean")
        .unwrap();
    assert_eq!(rec["funnel"]["verified"], true);
    assert!(
        rec["reason"].as_str().unwrap().contains("pass-to-pass"),
        "{rec}"
    );
    assert_eq!(rec["pass_to_pass"][0]["passed"], 0);

    // The report on the real replay: the counts, rate and Wilson interval are the hand-computed
    // ones. Variant a: 4 of 6; Wilson 95% (z = 1.959964): centre (p + z²/2n) / (1 + z²/n) =
    // 0.601611, half-width z·sqrt(p(1-p)/n + z²/4n²) / (1 + z²/n) = 0.301618, so [0.299993,
    // 0.903229]. Variant b: 5 of 6, [0.436497, 0.969947]. Repo-clustered SE (CR1, 3 repos of
    // 2 cases): both 1/6.
    let o = fixci()
        .args(["replay", "report"])
        .arg(&whole)
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rep: Value = serde_json::from_slice(&o.stdout).unwrap();
    for (i, (name, resolved, lo, hi)) in
        [("a", 4, 0.299993, 0.903229), ("b", 5, 0.436497, 0.969947)]
            .into_iter()
            .enumerate()
    {
        let v = &rep["variants"][i];
        assert_eq!(v["variant"], name);
        assert_eq!(
            (v["scored"].as_u64(), v["resolved"].as_u64()),
            (Some(6), Some(resolved))
        );
        assert!((v["rate"].as_f64().unwrap() - resolved as f64 / 6.0).abs() < 1e-12);
        assert!(
            (v["wilson"]["lo"].as_f64().unwrap() - lo).abs() < 1e-5,
            "{v}"
        );
        assert!(
            (v["wilson"]["hi"].as_f64().unwrap() - hi).abs() < 1e-5,
            "{v}"
        );
        assert!(
            (v["clustered_se"].as_f64().unwrap() - 1.0 / 6.0).abs() < 1e-9,
            "{v}"
        );
    }
    // compare a b: only a resolved calc-mul (b = 1), only b resolved queue-first and text-clean
    // (c = 2); exact McNemar p = min(1, 2·P[X <= 1]), X ~ Bin(3, 1/2) = 2·(1 + 3)/8 = 1.
    let o = fixci()
        .args(["replay", "compare"])
        .arg(&whole)
        .arg(&whole)
        .args(["--variant-a", "a", "--variant-b", "b", "--json"])
        .output()
        .unwrap();
    let cmp: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(cmp["counts"]["only_a"], 1);
    assert_eq!(cmp["counts"]["only_b"], 2);
    assert_eq!(cmp["p_value"], 1.0);
    // A closed standard output (`... | head`) does not crash the command.
    let (read_end, write_end) = {
        let mut fds = [0; 2];
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        (fds[0], fds[1])
    };
    unsafe { libc::close(read_end) };
    let stdout = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(write_end) };
    let o = Command::new(assert_cmd::cargo::cargo_bin("fixci"))
        .args(["replay", "report"])
        .arg(&whole)
        .stdout(stdout)
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("panicked"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // Two shards as two concurrent processes, then merge: the same verdicts and keys.
    let s0 = tmp.path().join("shard-0");
    let s1 = tmp.path().join("shard-1");
    let mut p0 = run(&s0, &["--shard", "0/2"]).spawn().unwrap();
    let mut p1 = run(&s1, &["--shard", "auto/2"])
        .env("JOB_COMPLETION_INDEX", "1")
        .spawn()
        .unwrap();
    assert!(p0.wait().unwrap().success());
    assert!(p1.wait().unwrap().success());
    let n0 = records(&s0).len();
    let n1 = records(&s1).len();
    assert_eq!((n0, n1), (6, 6));
    let merged = tmp.path().join("merged");
    let m = fixci()
        .args(["replay", "merge"])
        .arg(&s0)
        .arg(&s1)
        .arg("--out")
        .arg(&merged)
        .arg("--require-complete")
        .output()
        .unwrap();
    assert_eq!(
        m.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&m.stderr)
    );
    assert_eq!(verdicts(&merged), v);
    let keys = |d: &Path| {
        records(d)
            .iter()
            .map(|r| r["key"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(&merged), keys(&whole));

    // One shard alone is incomplete against the plan: exit 1 naming the missing items.
    let m = fixci()
        .args(["replay", "merge"])
        .arg(&s0)
        .arg("--out")
        .arg(tmp.path().join("half"))
        .arg("--require-complete")
        .output()
        .unwrap();
    assert_eq!(m.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&m.stderr).contains("6 of 12 planned items have no record"));

    // A conflicting verdict for the same key is refused (exit 2, both files named).
    let conflict = tmp.path().join("conflict");
    std::fs::create_dir_all(conflict.join("records")).unwrap();
    let mut r = records(&s0)[0].clone();
    let key = r["key"].as_str().unwrap().to_string();
    r["verdict"] = Value::from(if r["verdict"] == "resolved" {
        "unresolved"
    } else {
        "resolved"
    });
    std::fs::write(
        conflict.join("records").join(format!("{key}.json")),
        serde_json::to_string(&r).unwrap(),
    )
    .unwrap();
    let m = fixci()
        .args(["replay", "merge"])
        .arg(&s0)
        .arg(&conflict)
        .arg("--out")
        .arg(tmp.path().join("never"))
        .output()
        .unwrap();
    assert_eq!(m.status.code(), Some(2));
    let err = String::from_utf8_lossy(&m.stderr);
    assert!(
        err.contains("conflicting verdicts") && err.contains(&key),
        "{err}"
    );
    assert!(
        !tmp.path().join("never").exists(),
        "nothing is written on a conflict"
    );
}

#[test]
fn killed_replay_resumes_without_redoing_finished_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = corpus(tmp.path());
    let out = tmp.path().join("out");
    let args = |resume: bool| {
        let mut c = Command::new(assert_cmd::cargo::cargo_bin("fixci"));
        c.args(["replay", "run"])
            .arg(corpus.join("cases"))
            .arg("--variant")
            .arg(corpus.join("variants/b"))
            .arg("--out")
            .arg(&out)
            .args(["-j", "1"]);
        if resume {
            c.arg("--resume");
        }
        c
    };
    let mut child = args(false).spawn().unwrap();
    // Kill it outright once two items are recorded.
    let deadline = Instant::now() + Duration::from_secs(120);
    let finished = || {
        out.join("records").read_dir().map_or(0, |d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                .count()
        })
    };
    while finished() < 2 {
        assert!(Instant::now() < deadline, "no records appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before: BTreeMap<String, (String, std::time::SystemTime)> =
        std::fs::read_dir(out.join("records"))
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    (
                        std::fs::read_to_string(e.path()).unwrap(),
                        e.metadata().unwrap().modified().unwrap(),
                    ),
                )
            })
            .collect();
    assert!(before.len() >= 2 && before.len() < 6, "{}", before.len());

    // Without --resume the folder is refused: nothing is overwritten.
    let o = args(false).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--resume"));

    let o = args(true).output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains(&format!("{} already recorded", before.len())),
        "{stderr}"
    );
    // Every earlier record is byte-identical and untouched, and its key has exactly one engine
    // run (it was not run again).
    for (name, (text, mtime)) in &before {
        let p = out.join("records").join(name);
        assert_eq!(&std::fs::read_to_string(&p).unwrap(), text);
        assert_eq!(&p.metadata().unwrap().modified().unwrap(), mtime);
        let key = name.trim_end_matches(".json");
        assert_eq!(
            std::fs::read_dir(out.join("runs").join(key))
                .unwrap()
                .count(),
            1,
            "key {key} ran once"
        );
    }
    let v = verdicts(&out);
    assert_eq!(v.len(), 6);
    for (case, verdict) in expected(&corpus, "b") {
        assert_eq!(v[&("b".to_string(), case.clone(), 0)], verdict, "{case}");
    }
}

#[test]
fn a_commit_missing_from_the_repository_is_an_infra_error_retried_then_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = corpus(tmp.path());
    let case = corpus.join("cases/calc-add/case.toml");
    let text = std::fs::read_to_string(&case).unwrap();
    let start = text.find("commit = \"").unwrap() + 10;
    let bad = format!(
        "{}{}{}",
        &text[..start],
        "0".repeat(40),
        &text[start + 40..]
    );
    std::fs::write(&case, bad).unwrap();
    let out = tmp.path().join("out");
    let o = fixci()
        .args(["replay", "run"])
        .arg(&case)
        .args(["--agent", "gold", "--retries", "1", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let r = &records(&out)[0];
    assert_eq!(r["verdict"], "infra-error");
    assert_eq!(r["retries"], 1);
    assert!(r["reason"].as_str().unwrap().contains("is not in"), "{r}");
}

#[test]
fn bad_replay_inputs_exit_2_naming_the_file_and_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = corpus(tmp.path());
    let out = tmp.path().join("out");
    let cases = corpus.join("cases");
    let variant = corpus.join("variants/a");
    let check = |args: Vec<String>, needles: &[&str]| {
        let o = fixci().arg("replay").args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        for n in needles {
            assert!(err.contains(n), "{args:?}: `{n}` not in {err}");
        }
        assert!(!out.exists(), "{args:?} wrote {}", out.display());
    };
    let run = |extra: &[&str]| {
        let mut v = vec!["run".to_string(), cases.display().to_string()];
        v.extend(extra.iter().map(|s| s.to_string()));
        v.extend(["--out".to_string(), out.display().to_string()]);
        v
    };
    check(run(&[]), &["--variant"]);
    let v = variant.display().to_string();
    check(
        run(&["--variant", &v, "--shard", "2/2"]),
        &["--shard 2/2", "0-based"],
    );
    check(
        run(&["--variant", &v, "--shard", "auto/2"]),
        &["JOB_COMPLETION_INDEX"],
    );

    // A variant with an unknown key.
    let bad_variant = tmp.path().join("bad.toml");
    std::fs::write(&bad_variant, "name = \"x\"\nmodle = \"opus\"\n").unwrap();
    let bv = bad_variant.display().to_string();
    check(run(&["--variant", &bv]), &["bad.toml", "modle"]);

    // A case with an unknown key, and one with a wrong type: both named with their pointers.
    let c1 = corpus.join("cases/calc-add/case.toml");
    let t = std::fs::read_to_string(&c1).unwrap();
    std::fs::write(&c1, format!("colour = \"red\"\n{t}")).unwrap();
    let c2 = corpus.join("cases/text-shout/case.toml");
    let t2 = std::fs::read_to_string(&c2).unwrap();
    std::fs::write(
        &c2,
        t2.replace("tags = [", "check-runs = \"many\"\ntags = ["),
    )
    .unwrap();
    check(
        run(&["--variant", &v]),
        &[
            "2 invalid cases",
            "calc-add/case.toml",
            "colour",
            "text-shout/case.toml",
            "/check-runs",
        ],
    );
    std::fs::write(&c1, &t).unwrap();
    std::fs::write(&c2, &t2).unwrap();

    // A gold check on a case without a gold patch.
    let c3 = corpus.join("cases/calc-mul/case.toml");
    let t3 = std::fs::read_to_string(&c3).unwrap();
    std::fs::write(&c3, t3.replace("gold-patch = \"gold.patch\"\n", "")).unwrap();
    check(run(&["--agent", "gold"]), &["calc-mul", "gold-patch"]);
    std::fs::write(&c3, &t3).unwrap();

    // Two cases with one id.
    let dup = corpus.join("cases/dup");
    std::fs::create_dir_all(&dup).unwrap();
    std::fs::write(dup.join("case.toml"), &t).unwrap();
    std::fs::copy(
        corpus.join("cases/calc-add/gold.patch"),
        dup.join("gold.patch"),
    )
    .unwrap();
    check(
        run(&["--variant", &v]),
        &["two cases have the id `calc-add`"],
    );
    std::fs::remove_dir_all(&dup).unwrap();

    // Merging a folder that is not a replay output.
    check(
        vec![
            "merge".into(),
            corpus.display().to_string(),
            "--out".into(),
            out.display().to_string(),
        ],
        &["not a replay output folder"],
    );

    // `fixci validate` checks a case too, and `fixci schema case` prints its schema.
    fixci().arg("validate").arg(&c1).assert().success();
    let s = fixci().args(["schema", "case"]).output().unwrap();
    let schema: Value = serde_json::from_slice(&s.stdout).unwrap();
    assert_eq!(schema["properties"]["fail-to-pass"]["type"], "array");
}

#[test]
fn a_variant_brings_its_own_prompt_and_budgets_and_a_slow_agent_is_a_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = corpus(tmp.path());
    let v = tmp.path().join("slow");
    std::fs::create_dir_all(v.join("implementing-features")).unwrap();
    std::fs::write(
        v.join("implementing-features/AI_PROMPT.md"),
        "VARIANT-PROMPT-MARKER: {{ spec.prompt }}\n",
    )
    .unwrap();
    std::fs::write(
        v.join("variant.toml"),
        "agent = { command = [\"sh\", \"-c\", \"echo thinking; sleep 30\"] }\nbudgets = { fix = \"1s\" }\n",
    )
    .unwrap();
    let out = tmp.path().join("out");
    let o = fixci()
        .args(["replay", "run"])
        .arg(corpus.join("cases/calc-add"))
        .arg("--variant")
        .arg(&v)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let r = &records(&out)[0];
    assert_eq!(r["verdict"], "timeout", "{r}");
    assert_eq!(r["variant"], "slow");
    let fix = r["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "agent")
        .unwrap();
    assert_eq!(fix["status"], "timeout");
    // The variant's template rendered the prompt the agent got.
    let run_dir = out.join(r["run_dir"].as_str().unwrap());
    let prompt = run_dir.join("stages/fix/attempt-1/prompt.md");
    let text = std::fs::read_to_string(prompt).unwrap();
    assert!(
        text.starts_with("VARIANT-PROMPT-MARKER: Fix the failing test"),
        "{text}"
    );
}
