//! Data-driven test over the real logs in `../shared/fixtures/logs/` and their `expected.json`
//! (see that folder's README): every entry must pass. The folder is absent in a user's fresh
//! clone: the test then skips with a message, except under `CI=true`, where it fails.

use std::path::PathBuf;

use serde_json::Value;

use super::*;

fn fixtures_dir() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/logs");
    if p.join("expected.json").is_file() {
        return Some(p);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but {} is absent: the real-log test cannot run",
        p.display()
    );
    eprintln!(
        "skipping: {} is absent (the real-log test needs it)",
        p.display()
    );
    None
}

fn strip_ansi(s: &str) -> String {
    String::from_utf8_lossy(&normaliser::strip_ansi(s.as_bytes())).into_owned()
}

fn strs(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Problems of one reported failure against one expected failure (empty when it matches).
fn check_failure(want: &Value, got: &Failure) -> Vec<String> {
    let mut bad = Vec::new();
    if let Some(file) = want["file"].as_str() {
        match &got.file {
            Some(f) if f.ends_with(file) => {}
            other => bad.push(format!("file {other:?}, want suffix {file:?}")),
        }
    }
    if let Some(line) = want["line"].as_u64() {
        let mut ok_lines = vec![line];
        if let Some(a) = want["line_alternatives"].as_array() {
            ok_lines.extend(a.iter().filter_map(Value::as_u64));
        }
        if !got.line.is_some_and(|l| ok_lines.contains(&u64::from(l))) {
            bad.push(format!("line {:?}, want one of {ok_lines:?}", got.line));
        }
    }
    let msg = strip_ansi(got.message.as_deref().unwrap_or(""));
    let mut prefixes = vec![want["message_prefix"].as_str().unwrap_or("").to_string()];
    prefixes.extend(strs(want, "message_alternatives"));
    if !prefixes.iter().any(|p| msg.contains(p.as_str())) {
        bad.push(format!("message {msg:?}, want one of {prefixes:?}"));
    }
    bad
}

fn names_test(want: &Value, got: &Failure) -> bool {
    let mut names = vec![want["test"].as_str().unwrap_or("").to_string()];
    names.extend(strs(want, "test_alternatives"));
    names.contains(&got.test)
}

/// Every problem of one entry's distilled result.
fn check_entry(entry: &Value, d: &Distilled) -> Vec<String> {
    let mut bad = Vec::new();
    let wanted = entry["failures"].as_array().cloned().unwrap_or_default();
    let optional = strs(entry, "optional_failures");
    for w in &wanted {
        match d.failures.iter().find(|f| names_test(w, f)) {
            None => bad.push(format!("missing failure {}", w["test"])),
            Some(f) => {
                for p in check_failure(w, f) {
                    bad.push(format!("{}: {p}", w["test"]));
                }
            }
        }
    }
    for f in &d.failures {
        if !wanted.iter().any(|w| names_test(w, f)) && !optional.contains(&f.test) {
            bad.push(format!("unexpected failure {:?} ({:?})", f.test, f.message));
        }
        for n in strs(entry, "noise") {
            if f.test.contains(&n) {
                bad.push(format!("failure {:?} holds noise {n:?}", f.test));
            }
        }
        if f.test == "log" {
            bad.push("a failure named `log`".to_string());
        }
        if let Some(m) = &f.message {
            if !m.chars().any(char::is_alphabetic) {
                bad.push(format!("{}: message {m:?} is only a number", f.test));
            }
        }
    }
    let job_passed = entry["job_passed"].as_bool() == Some(true);
    match (&entry["no_test_failure"], &d.no_test_failure) {
        (Value::Null, None) => {}
        (Value::Null, Some(n)) => {
            if job_passed || !wanted.is_empty() {
                bad.push(format!("unexpected no_test_failure {:?}", n.error_line));
            }
        }
        (w, None) => bad.push(format!("no no_test_failure, want {}", w["error_line"])),
        (w, Some(n)) => {
            let line = w["error_line"].as_str().unwrap_or("");
            if !n.error_line.contains(line) {
                bad.push(format!("error_line {:?}, want {line:?}", n.error_line));
            }
            if let Some(file) = w["file"].as_str() {
                if !n.file.as_deref().is_some_and(|f| f.ends_with(file)) {
                    bad.push(format!("no_test_failure file {:?}, want {file:?}", n.file));
                }
            }
            if let Some(l) = w["line"].as_u64() {
                if n.line.map(u64::from) != Some(l) {
                    bad.push(format!("no_test_failure line {:?}, want {l}", n.line));
                }
            }
        }
    }
    bad
}

#[test]
fn every_entry_of_the_real_logs_expected_json_passes() {
    let Some(dir) = fixtures_dir() else { return };
    let text = std::fs::read_to_string(dir.join("expected.json")).expect("expected.json reads");
    let entries: Vec<Value> = serde_json::from_str(&text).expect("expected.json parses");
    assert!(!entries.is_empty());
    let mut report = Vec::new();
    for e in &entries {
        let file = e["file"].as_str().expect("entry names a file");
        let d = distil_path(&dir.join(file), &DistilOptions::default())
            .unwrap_or_else(|err| panic!("{file}: {err}"));
        for p in check_entry(e, &d) {
            report.push(format!("{file}: {p}"));
        }
    }
    assert!(
        report.is_empty(),
        "{} problem(s):\n{}",
        report.len(),
        report.join("\n")
    );
}

/// The other files of the folder (the README's first entries, without an expected.json record)
/// never yield a failure named `log` or a message that is only a number.
#[test]
fn no_real_log_yields_a_failure_named_log_or_a_number_message() {
    let Some(dir) = fixtures_dir() else { return };
    let text = std::fs::read_to_string(dir.join("expected.json")).expect("expected.json reads");
    let entries: Vec<Value> = serde_json::from_str(&text).expect("expected.json parses");
    let passed: Vec<&str> = entries
        .iter()
        .filter(|e| e["job_passed"].as_bool() == Some(true))
        .filter_map(|e| e["file"].as_str())
        .collect();
    for e in std::fs::read_dir(&dir).expect("folder reads") {
        let path = e.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.extension().is_some_and(|x| x == "json") || passed.contains(&name) {
            continue;
        }
        let d = distil_path(&path, &DistilOptions::default()).expect("distils");
        for f in &d.failures {
            assert_ne!(f.test, "log", "{}", path.display());
            if let Some(m) = &f.message {
                assert!(
                    m.chars().any(char::is_alphabetic),
                    "{}: {m:?}",
                    path.display()
                );
            }
        }
        assert!(
            !d.failures.is_empty() || d.no_test_failure.is_some(),
            "{}: neither a failure nor a no-test failure",
            path.display()
        );
    }
}

/// Everything the extractor keeps from `bytes` (UTF-16 decoded first, as `extract_text` does),
/// reading only the prefilter's candidate lines outside sections and blocks, or every line.
fn extract_debug(bytes: &[u8], exhaustive: bool) -> String {
    let text = match source::utf16_encoding(&bytes[..bytes.len().min(512)]) {
        Some(enc) => enc.decode(bytes).0.into_owned().into_bytes(),
        None => bytes.to_vec(),
    };
    let mut ex = extractor::Extractor::new(rule_pack::embedded().expect("packs compile"));
    ex.exhaustive = exhaustive;
    let mut chunks = normaliser::ChunkReader::new(&text[..]);
    while let Some(region) = chunks.next_region().expect("in-memory read") {
        ex.feed(region);
    }
    format!("{:?}", ex.finish())
}

/// The prefilter's literals are sound on every real log: the extractor that reads only the lines
/// holding a trigger (outside sections and blocks) keeps exactly what it keeps when it reads every
/// line — failures, messages, locations, summaries, generic errors and the job verdict. A trigger
/// dropped or shortened in a pack must keep this true.
#[test]
fn the_prefilter_misses_no_line_of_any_real_log() {
    let Some(dir) = fixtures_dir() else { return };
    let samples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/logs");
    let mut checked = 0;
    for folder in [dir, samples] {
        for e in std::fs::read_dir(&folder).expect("folder reads") {
            let path = e.expect("entry").path();
            if path.extension().is_none_or(|x| x != "txt") {
                continue;
            }
            let bytes = std::fs::read(&path).expect("log reads");
            assert_eq!(
                extract_debug(&bytes, false),
                extract_debug(&bytes, true),
                "{}: the prefilter changed the result",
                path.display()
            );
            checked += 1;
        }
    }
    assert!(checked >= 40, "only {checked} logs checked");
}
