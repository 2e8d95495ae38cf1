//! The exit codes of `fixci`, in one place (documented in README.md, "Exit codes").

/// A fix was proposed and verified, or the command succeeded.
pub const SUCCESS: u8 = 0;
/// The pipeline ended without a verified fix: could not reproduce, or attempts exhausted
/// (escalated), or verification could not reach its confidence. Also `fixci stress` (a counted
/// run failed) and `fixci doctor` (a needed check failed).
pub const NO_FIX: u8 = 1;
/// Usage error, invalid job spec, invalid pipeline or template. Nothing was written.
pub const USAGE: u8 = 2;
/// Infrastructure error: git, forge, network, disk, a command that could not be started.
pub const INFRA: u8 = 3;
/// Interrupted by SIGINT or SIGTERM; state was saved and the run can be resumed.
pub const INTERRUPTED: u8 = 130;
