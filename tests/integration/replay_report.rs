//! `fixci replay report`, `compare` and `emit` on synthetic replay folders whose verdicts are
//! known, and the emitted manifests fed to the real validators (`kubernetes-validate`,
//! `actionlint`, installed by `.ci/install-validators.sh`).

use std::path::Path;

use fixci::replay::record::{Funnel, RECORD_FORMAT, Record, Verdict, write};
use fixci::replay::{Plan, PlanItem};
use serde_json::Value;

use crate::common::fixci;

use Verdict::{CouldNotReproduce as N, Resolved as R, Timeout as T, Unresolved as U};

/// Cases, their repositories, and the verdicts per epoch of the two variants.
/// base:   6 of 18 resolved; better: 9 of 18.
const CASES: [(&str, &str, [Verdict; 3], [Verdict; 3]); 6] = [
    ("c1", "r1", [R, R, R], [R, R, R]),
    ("c2", "r1", [R, U, U], [R, R, U]),
    ("c3", "r2", [U, U, U], [R, U, U]),
    ("c4", "r2", [R, R, U], [R, R, R]),
    ("c5", "r3", [N, N, N], [U, U, U]),
    ("c6", "r3", [U, T, U], [U, U, U]),
];

fn record(case: &str, repo: &str, variant: &str, agent: &str, epoch: u32, v: Verdict) -> Record {
    Record {
        format: RECORD_FORMAT,
        key: format!("{variant}-{case}-{epoch}"),
        case: case.into(),
        repo: repo.into(),
        tags: vec![],
        deterministic: true,
        variant: variant.into(),
        agent: agent.into(),
        model: None,
        epoch,
        fixci_version: "0.1.0".into(),
        verdict: v,
        reason: "synthetic".into(),
        funnel: Funnel {
            reproduced: v != N,
            fixed: v == R || v == U,
            verified: v == R,
        },
        setup: vec![],
        fail_to_pass_before: vec![],
        pass_to_pass_before: vec![],
        fail_to_pass: vec![],
        pass_to_pass: vec![],
        flags: vec![],
        wall_s: 3.0,
        agent_and_tests_s: 2.5,
        stages: vec![],
        attempts: 1,
        tokens: None,
        cost_usd: Some(0.25),
        retries: 0,
        run_dir: None,
        finished_at: "2026-01-01T00:00:00Z".into(),
    }
}

/// A replay folder with variants `base` and `better` (3 epochs) and `gold` (1 epoch, case c5
/// flagged), and a plan that also names one item that has no record (case c7).
fn corpus(dir: &Path) {
    let mut items = Vec::new();
    for (case, repo, base, better) in CASES {
        for e in 0..3u32 {
            for (variant, v) in [("base", base[e as usize]), ("better", better[e as usize])] {
                let r = record(case, repo, variant, "command", e, v);
                items.push(PlanItem {
                    key: r.key.clone(),
                    case: case.into(),
                    variant: variant.into(),
                    epoch: e,
                });
                write(dir, &r).unwrap();
            }
        }
        let mut g = record(
            case,
            repo,
            "gold",
            "gold",
            0,
            if case == "c5" { U } else { R },
        );
        if case == "c5" {
            g.flags = vec!["gold-patch-does-not-resolve".into()];
        }
        items.push(PlanItem {
            key: g.key.clone(),
            case: case.into(),
            variant: "gold".into(),
            epoch: 0,
        });
        write(dir, &g).unwrap();
    }
    items.push(PlanItem {
        key: "never-ran".into(),
        case: "c7".into(),
        variant: "better".into(),
        epoch: 0,
    });
    Plan {
        format: 1,
        fixci_version: "0.1.0".into(),
        epochs: 3,
        variants: vec!["base".into(), "better".into(), "gold".into()],
        cases: (1..=7).map(|i| format!("c{i}")).collect(),
        items,
    }
    .save(dir)
    .unwrap();
}

fn close(v: &Value, want: f64, what: &str) {
    let got = v
        .as_f64()
        .unwrap_or_else(|| panic!("{what} is not a number: {v}"));
    assert!((got - want).abs() < 1e-6, "{what}: {got} != {want}");
}

fn variant<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["variants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["variant"] == name)
        .unwrap_or_else(|| panic!("no variant {name} in {report}"))
}

#[test]
fn report_counts_rate_interval_and_pass_at_k_match_hand_computed_values() {
    let tmp = tempfile::tempdir().unwrap();
    corpus(tmp.path());
    let out = fixci()
        .args(["replay", "report"])
        .arg(tmp.path())
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    // The files are written too, and report.json is what was printed.
    let on_disk: Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("report.json")).unwrap())
            .unwrap();
    assert_eq!(on_disk, r);
    assert!(tmp.path().join("report.md").is_file() && tmp.path().join("report.html").is_file());

    assert_eq!(r["records"], 42);
    assert_eq!(r["epochs"], 3);
    let base = variant(&r, "base");
    assert_eq!(base["items"], 18);
    assert_eq!(base["scored"], 18);
    assert_eq!(base["resolved"], 6);
    assert_eq!(base["verdicts"]["unresolved"], 8);
    assert_eq!(base["verdicts"]["could-not-reproduce"], 3);
    assert_eq!(base["verdicts"]["timeout"], 1);
    close(&base["rate"], 6.0 / 18.0, "base rate");
    // Wilson, z = 1.959964, p = 1/3, n = 18:
    // centre = (p + z²/2n)/(1 + z²/n) = 0.362647, half = z·sqrt(p(1-p)/n + z²/4n²)/(1 + z²/n)
    // = 0.199859 -> [0.162788, 0.562505].
    close(&base["wilson"]["lo"], 0.162_788, "wilson lo");
    close(&base["wilson"]["hi"], 0.562_505, "wilson hi");
    // Clustered SE: residual sums per repo r1: 4 - 6/3 = 2, r2: 2 - 2 = 0, r3: 0 - 2 = -2;
    // SE² = 3/2 · 8/18² = 1/27.
    close(
        &base["clustered_se"],
        (1.0f64 / 27.0).sqrt(),
        "base clustered SE",
    );
    assert_eq!(base["repos"], 3);
    // Per-case resolved epochs c = 3, 1, 0, 2, 0, 0 of n = 3:
    // pass@1 = 6/18; pass@2 = mean(1, 2/3, 0, 1, 0, 0) = 4/9; pass@3 = 3/6.
    // pass^2 = mean(1, 0, 0, 1/3, 0, 0) = 2/9; pass^3 = 1/6.
    let pk = base["pass_at_k"].as_array().unwrap();
    close(&pk[0]["value"], 1.0 / 3.0, "pass@1");
    close(&pk[1]["value"], 4.0 / 9.0, "pass@2");
    close(&pk[2]["value"], 0.5, "pass@3");
    assert_eq!(pk[2]["cases"], 6);
    let ph = base["pass_hat_k"].as_array().unwrap();
    close(&ph[1]["value"], 2.0 / 9.0, "pass^2");
    close(&ph[2]["value"], 1.0 / 6.0, "pass^3");
    // Funnel: 3 not reproduced; fixed = resolved + unresolved = 14; verified = resolved.
    assert_eq!(base["funnel"]["reproduced"], 15);
    assert_eq!(base["funnel"]["fixed"], 14);
    assert_eq!(base["funnel"]["verified"], 6);
    // 18 items at $0.25 over 6 resolved; overhead 3.0 - 2.5 s per item.
    close(&base["cost_usd"], 4.5, "cost");
    close(&base["cost_per_resolved_usd"], 0.75, "cost per resolved");
    close(&base["mean_overhead_s"], 0.5, "overhead");

    let better = variant(&r, "better");
    assert_eq!(better["resolved"], 9);
    // Wilson 9/18: centre 0.5, half 0.209690 -> [0.290310, 0.709690].
    close(&better["wilson"]["lo"], 0.290_310, "wilson lo");
    close(&better["wilson"]["hi"], 0.709_690, "wilson hi");

    // The gold variant has one epoch: only pass@1, and c5 is flagged.
    let gold = variant(&r, "gold");
    assert_eq!(gold["pass_at_k"].as_array().unwrap().len(), 1);
    assert_eq!(r["gold_flags"].as_array().unwrap().len(), 1);
    assert_eq!(r["gold_flags"][0]["case"], "c5");
    assert_eq!(
        r["gold_flags"][0]["flags"][0],
        "gold-patch-does-not-resolve"
    );

    // Plan completeness: c7's item never ran.
    assert_eq!(r["plan"]["missing"], 1);
    assert_eq!(r["plan"]["missing_items"][0]["case"], "c7");
    assert_eq!(r["plan"]["unplanned"], 0);

    // The per-case table: c2 under `base` is resolved, unresolved, unresolved.
    let c2 = r["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["case"] == "c2")
        .unwrap();
    assert_eq!(c2["results"][0]["variant"], "base");
    assert_eq!(
        c2["results"][0]["verdicts"],
        serde_json::json!(["resolved", "unresolved", "unresolved"])
    );

    // The Markdown (default format) shows the same numbers.
    let md = fixci()
        .args(["replay", "report"])
        .arg(tmp.path())
        .output()
        .unwrap();
    let md = String::from_utf8(md.stdout).unwrap();
    assert!(
        md.contains("| base | 18 | 18 | 6 | 33.3% | 16.3% – 56.3% |"),
        "{md}"
    );
    assert!(
        md.contains("| c5 | gold | 0 | gold-patch-does-not-resolve |"),
        "{md}"
    );
    assert!(
        md.contains("42 of 43 planned items have a record; 1 missing"),
        "{md}"
    );
}

#[test]
fn report_html_escapes_case_ids_and_fetches_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut r = record("<script>alert(1)</script>", "a&b", "v<1>", "command", 0, R);
    r.key = "k1".into();
    write(tmp.path(), &r).unwrap();
    let out = fixci()
        .args(["replay", "report"])
        .arg(tmp.path())
        .args(["--format", "html"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let page = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        page,
        std::fs::read_to_string(tmp.path().join("report.html")).unwrap()
    );
    assert!(!page.contains("<script"), "{page}");
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{page}"
    );
    assert!(
        page.contains("a&amp;b") && page.contains("v&lt;1&gt;"),
        "{page}"
    );
    // Self-contained: no external stylesheet, script, image or font.
    for needle in ["<link", "src=", "http://", "https://", "@import", "url("] {
        assert!(!page.contains(needle), "{needle} in {page}");
    }
}

#[test]
fn report_writes_the_chosen_format_to_out_file() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), &record("c1", "r", "v", "command", 0, R)).unwrap();
    let f = tmp.path().join("elsewhere.md");
    let out = fixci()
        .args(["replay", "report"])
        .arg(tmp.path())
        .arg("--out-file")
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
    assert!(
        std::fs::read_to_string(&f)
            .unwrap()
            .starts_with("# Replay report")
    );
}

fn stderr_of(args: &[&str], dirs: &[&Path]) -> (Option<i32>, String) {
    let mut cmd = fixci();
    cmd.args(args);
    for d in dirs {
        cmd.arg(d);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn report_bad_inputs_exit_2_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    // Not a replay folder.
    let (code, err) = stderr_of(&["replay", "report"], &[tmp.path()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("is not a replay output folder"), "{err}");
    // A corrupt record.
    write(tmp.path(), &record("c1", "r", "v", "command", 0, R)).unwrap();
    let bad = tmp.path().join("records/broken.json");
    std::fs::write(&bad, "{\"format\": 1, \"key\": ").unwrap();
    let (code, err) = stderr_of(&["replay", "report"], &[tmp.path()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains(&bad.display().to_string()), "{err}");
    std::fs::remove_file(&bad).unwrap();
    // A corrupt plan.
    std::fs::write(tmp.path().join("plan.json"), "[1, 2").unwrap();
    let (code, err) = stderr_of(&["replay", "report"], &[tmp.path()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("plan.json"), "{err}");
    std::fs::remove_file(tmp.path().join("plan.json")).unwrap();
    // Two records for one item (folders copied together instead of merged).
    let mut dup = record("c1", "r", "v", "command", 0, U);
    dup.key = "other-key".into();
    write(tmp.path(), &dup).unwrap();
    let (code, err) = stderr_of(&["replay", "report"], &[tmp.path()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("other-key.json") && err.contains("v-c1-0.json"),
        "{err}"
    );
}

#[test]
fn compare_prints_the_flip_table_and_the_exact_mcnemar_p_value() {
    let tmp = tempfile::tempdir().unwrap();
    corpus(tmp.path());
    let out = fixci()
        .args(["replay", "compare"])
        .arg(tmp.path())
        .arg(tmp.path())
        .args(["--variant-a", "base", "--variant-b", "better", "--json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c: Value = serde_json::from_slice(&out.stdout).unwrap();
    // Pairs on (case, epoch): both 6 (c1 ×3, c2 e0, c4 e0 e1), only base 0, only better 3
    // (c2 e1, c3 e0, c4 e2), neither 9.
    assert_eq!(c["pairs"], 18);
    assert_eq!(
        c["counts"],
        serde_json::json!({"both": 6, "only_a": 0, "only_b": 3, "neither": 9})
    );
    // Exact McNemar: 2 · P[Binomial(3, 1/2) <= 0] = 2 · 1/8 = 0.25.
    close(&c["p_value"], 0.25, "p-value");
    close(&c["difference"], -3.0 / 18.0, "difference");
    let (lo, hi) = (
        c["interval"]["lo"].as_f64().unwrap(),
        c["interval"]["hi"].as_f64().unwrap(),
    );
    assert!(
        lo < -3.0 / 18.0 && -3.0 / 18.0 < hi && hi > 0.0,
        "{lo} {hi}"
    );
    assert_eq!(c["only_a_cases"], serde_json::json!([]));
    assert_eq!(
        c["only_b_cases"],
        serde_json::json!([
            {"case": "c2", "epochs": [1]},
            {"case": "c3", "epochs": [0]},
            {"case": "c4", "epochs": [2]},
        ])
    );

    // The same comparison across two folders, in Markdown.
    let b_dir = tempfile::tempdir().unwrap();
    for (case, repo, _, better) in CASES {
        for e in 0..3u32 {
            write(
                b_dir.path(),
                &record(case, repo, "better", "command", e, better[e as usize]),
            )
            .unwrap();
        }
    }
    let out = fixci()
        .args(["replay", "compare"])
        .arg(tmp.path())
        .arg(b_dir.path())
        .args(["--variant-a", "base"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let md = String::from_utf8(out.stdout).unwrap();
    assert!(
        md.contains("| **A resolved** | 6 (both) | 0 (only A) |"),
        "{md}"
    );
    assert!(
        md.contains("| **A not resolved** | 3 (only B) | 9 (neither) |"),
        "{md}"
    );
    assert!(md.contains("p = 0.25"), "{md}");
    assert!(md.contains("| c3 | 0 |"), "{md}");
}

#[test]
fn compare_bad_inputs_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    corpus(tmp.path());
    let d = tmp.path();
    // Several variants and no choice: the variants are listed.
    let (code, err) = stderr_of(&["replay", "compare"], &[d, d]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("`base`, `better`, `gold`") && err.contains("--variant-a"),
        "{err}"
    );
    // Unknown variant.
    let mut cmd = fixci();
    let out = cmd
        .args(["replay", "compare"])
        .arg(d)
        .arg(d)
        .args(["--variant-a", "base", "--variant-b", "nope"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("unknown variant `nope`"), "{err}");
    // No common item.
    let other = tempfile::tempdir().unwrap();
    write(other.path(), &record("zz", "r", "v", "command", 0, R)).unwrap();
    let out = fixci()
        .args(["replay", "compare"])
        .arg(d)
        .arg(other.path())
        .args(["--variant-a", "base"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("share no (case, epoch) item"), "{err}");
    // Not a replay folder, and a corrupt record, named.
    let empty = tempfile::tempdir().unwrap();
    let (code, err) = stderr_of(&["replay", "compare"], &[d, empty.path()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains(&empty.path().display().to_string()), "{err}");
    let bad = other.path().join("records/bad.json");
    std::fs::write(&bad, "not json").unwrap();
    let (code, err) = stderr_of(&["replay", "compare"], &[other.path(), d]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains(&bad.display().to_string()), "{err}");
}

fn emit(target: &str, extra: &[&str], file: &Path) {
    let out = fixci()
        .args([
            "replay",
            "emit",
            target,
            "--shards",
            "3",
            "--variant",
            "variants/base",
        ])
        .args(extra)
        .arg("-o")
        .arg(file)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn emitted_kubernetes_manifests_pass_kubernetes_validate() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("replay.yaml");
    emit(
        "k8s",
        &[
            "--epochs",
            "3",
            "-j",
            "2",
            "--image",
            "registry.example/fixci:1.0",
            "--secret",
            "ANTHROPIC_API_KEY",
        ],
        &f,
    );
    let text = std::fs::read_to_string(&f).unwrap();
    assert!(text.contains("completionMode: \"Indexed\""), "{text}");
    assert!(
        text.contains("completions: 3\n") && text.contains("parallelism: 3\n"),
        "{text}"
    );
    assert!(
        text.contains("\"/replay/shard-$(JOB_COMPLETION_INDEX)\""),
        "{text}"
    );
    assert!(text.contains("\"auto/3\""), "{text}");
    assert!(text.contains("\"--require-complete\""), "{text}");
    let Some(kv) = crate::common::validator("kubernetes-validate") else {
        return;
    };
    let out = std::process::Command::new(kv)
        .arg("--strict")
        .arg(&f)
        .output()
        .unwrap();
    let report =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{report}\n{text}");
    // All three documents were checked, not skipped.
    for res in [
        "persistentvolumeclaim/fixci-replay-data",
        "job/fixci-replay-shards",
        "job/fixci-replay-merge",
    ] {
        assert!(
            report.contains(&format!("passed for resource {res}")),
            "{report}"
        );
    }
    // The validator does reject a broken manifest (so a pass above means something).
    let broken = tmp.path().join("broken.yaml");
    std::fs::write(
        &broken,
        text.replace("completionMode: \"Indexed\"", "completionMode: 7"),
    )
    .unwrap();
    let kv = crate::common::validator("kubernetes-validate").unwrap();
    assert!(
        !std::process::Command::new(kv)
            .arg("--strict")
            .arg(&broken)
            .status()
            .unwrap()
            .success()
    );
}

#[test]
fn emitted_github_workflow_passes_actionlint() {
    let tmp = tempfile::tempdir().unwrap();
    let plain = tmp.path().join("plain.yml");
    emit("gha", &["--secret", "ANTHROPIC_API_KEY"], &plain);
    let in_image = tmp.path().join("image.yml");
    emit(
        "gha",
        &[
            "--image",
            "ghcr.io/o/fixci:1",
            "--epochs",
            "2",
            "-j",
            "2",
            "--cases",
            "my cases",
        ],
        &in_image,
    );
    let text = std::fs::read_to_string(&plain).unwrap();
    assert!(text.contains("needs: \"shard\""), "{text}");
    assert!(text.contains("--shard \\\"$SHARD/3\\\""), "{text}");
    assert!(text.contains("uses: \"actions/upload-artifact@"), "{text}");
    assert!(
        text.contains("uses: \"actions/download-artifact@"),
        "{text}"
    );
    let Some(al) = crate::common::validator("actionlint") else {
        return;
    };
    for f in [&plain, &in_image] {
        let out = std::process::Command::new(&al)
            .arg("-no-color")
            .arg(f)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(f).unwrap()
        );
    }
    // actionlint does reject a broken workflow (a job that needs a job that does not exist).
    let broken = tmp.path().join("broken.yml");
    std::fs::write(
        &broken,
        text.replace("needs: \"shard\"", "needs: \"shards\""),
    )
    .unwrap();
    assert!(
        !std::process::Command::new(&al)
            .arg(&broken)
            .status()
            .unwrap()
            .success()
    );
}

#[test]
fn emit_refuses_values_it_cannot_quote_safely() {
    let out = fixci()
        .args([
            "replay",
            "emit",
            "gha",
            "--shards",
            "2",
            "--cases",
            "${{ github.event.x }}",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("`--cases`"), "{err}");
    let out = fixci()
        .args(["replay", "emit", "k8s", "--shards", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
