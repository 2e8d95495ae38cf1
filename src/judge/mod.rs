//! The rules fixci judges an agent's work by, beyond running its tests: why a reproduction
//! failed ([`failure_kind`]), which changes are test set-up rather than a fix ([`test_infra`])
//! and which test edits only hide a failure ([`test_edits`]). Every function here is pure (text or paths in, findings out) so that the
//! stages stay thin and other commands (replay) can apply the same rules.

pub mod failure_kind;
pub mod test_edits;
pub mod test_infra;

pub use failure_kind::{FailureKind, classify};
pub use test_edits::{judge_test_edits, looks_like_test};

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
