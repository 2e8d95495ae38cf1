//! The rules fixci judges an agent's work by, beyond running its tests: why a reproduction
//! failed ([`failure_kind`]) and which test edits only hide a failure ([`test_edits`]). Every function here is pure (text or paths in, findings out) so that the
//! stages stay thin and other commands (replay) can apply the same rules.

pub mod failure_kind;
pub mod test_edits;

pub use failure_kind::{FailureKind, classify};
pub use test_edits::{judge_test_edits, looks_like_test};
