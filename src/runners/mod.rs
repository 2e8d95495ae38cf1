//! Test runners: how fixci runs a test. The reproduction and verification commands are built
//! here from the runner and the test file ([`command`]), never taken from an agent as they are;
//! outcomes are read from the runners' reports ([`outcome`]).

pub mod command;
pub mod events;
pub mod outcome;
pub mod test_infra;

use command::RunnerCommand;

/// The command that runs one test file, as fixci runs it (report options aside): the spec's
/// `test-command` with `{test_file}` substituted, else the runner detected from the file type
/// (see [`command::detect`]).
pub fn test_command(template: Option<&str>, test_file: &str) -> String {
    runner_for(test_file, template).display()
}

/// True when `python3` can import pytest (probed once per process, outside any repository).
pub fn pytest_available() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| {
        std::process::Command::new("python3")
            .args(["-c", "import pytest"])
            .current_dir(std::env::temp_dir())
            .env("PYTHONSAFEPATH", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// The runner for `test_file`: the spec's `test-command` template with `{test_file}` replaced,
/// else the detected runner.
pub fn runner_for(test_file: &str, template: Option<&str>) -> RunnerCommand {
    match template {
        Some(t) => command::parse_line(&t.replace("{test_file}", &crate::process::shell_quote(test_file))),
        None => command::detect(test_file, pytest_available()),
    }
}

/// True for paths that hold tests or test configuration.
pub fn looks_like_test(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    let name = lower.rsplit('/').next().unwrap_or(&lower);
    lower
        .split('/')
        .any(|c| c == "tests" || c == "test" || c == "__tests__" || c == "spec")
        || looks_like_test_module(name)
        || name == "conftest.py"
}

/// True for a file name (no directory) that a test runner collects as a test module:
/// `test_*.py`, `*_test.py`, `*_test.go`, `*.test.*`, `*.spec.*`, `*Test.php`, `*Test.java`,
/// `*_spec.rb`.
pub fn looks_like_test_module(file_name: &str) -> bool {
    let n = file_name.to_ascii_lowercase();
    n.starts_with("test_")
        || n.ends_with("_test.py")
        || n.ends_with("_test.go")
        || n.contains(".test.")
        || n.contains(".spec.")
        || n.ends_with("test.php")
        || n.ends_with("test.java")
        || n.ends_with("_spec.rb")
}
