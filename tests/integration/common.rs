//! Helpers shared by the integration tests.

use std::path::PathBuf;

/// The `fixci` binary under test.
pub fn fixci() -> assert_cmd::Command {
    assert_cmd::Command::cargo_bin("fixci").expect("fixci binary")
}

/// `../shared/fixtures` beside the project, or `None` (with a message) when it is absent, as in
/// a user's fresh clone.
pub fn fixtures() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures");
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!("skipping: ../shared/fixtures is absent (real-data tests need it)");
        None
    }
}
