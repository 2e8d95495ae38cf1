//! Test runners: how fixci runs one test file. The reproduction and verification commands are
//! built here from the runner and the test file, never taken from an agent as they are.

use std::path::Path;

/// The command that runs one test file: the spec's `test-command` with `{test_file}`
/// substituted, else a default by file type (pytest / unittest for Python, `cargo test`, `go
/// test`, `npx jest`, `bash`).
pub fn test_command(template: Option<&str>, test_file: &str) -> String {
    let q = crate::process::shell_quote(test_file);
    if let Some(t) = template {
        return t.replace("{test_file}", &q);
    }
    let p = Path::new(test_file);
    let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
    match ext {
        "py" => format!(
            "if python3 -c 'import pytest' 2>/dev/null; then python3 -m pytest -q -p no:cacheprovider {q}; else python3 -m unittest {}; fi",
            crate::process::shell_quote(&test_file.trim_end_matches(".py").replace('/', "."))
        ),
        "rs" => {
            let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            if test_file.starts_with("tests/") {
                format!("cargo test --test {}", crate::process::shell_quote(stem))
            } else {
                "cargo test".into()
            }
        }
        "go" => format!(
            "go test ./{}",
            crate::process::shell_quote(
                &p.parent()
                    .map(|d| d.display().to_string())
                    .unwrap_or_default()
            )
        ),
        "js" | "ts" | "mjs" | "cjs" | "jsx" | "tsx" => format!("npx --no-install jest {q}"),
        "sh" => format!("bash {q}"),
        _ => format!("sh {q}"),
    }
}

/// True for paths that hold tests or test configuration.
pub fn looks_like_test(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    let name = lower.rsplit('/').next().unwrap_or(&lower);
    lower
        .split('/')
        .any(|c| c == "tests" || c == "test" || c == "__tests__" || c == "spec")
        || name.starts_with("test_")
        || name.ends_with("_test.py")
        || name.ends_with("_test.go")
        || name.contains(".test.")
        || name.contains(".spec.")
        || name.ends_with("test.php")
        || name.ends_with("test.java")
        || name == "conftest.py"
}
