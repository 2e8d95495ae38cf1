//! The parallel stress runner: runs one command many times, `jobs` at a time, each run in its
//! own process group under a per-run timeout, until a run count, a duration or a number of
//! failures is reached; counts failures (optionally only those whose output matches a failure
//! signature), keeps the output of every failing run and of a sample of passing ones, and
//! estimates the failure rate with its interval ([`crate::stats`]). [`explore`] measures which
//! amplification (oversubscription, CPU stressors, shuffled test order) makes a flaky failure
//! most frequent, then spends the rest of the budget on it.
//!
//! It prints nothing: progress goes to a callback, results to a [`StressReport`]. The
//! `fixci stress` command and the engine's `run-test` stage are thin layers over [`run`].

mod amplify;
mod config;
mod error;
mod report;
mod runner;

pub use amplify::{
    Amplification, ExploreReport, ExploreTrial, PytestPlugins, ShufflePlugin,
    detect_pytest_plugins, explore,
};
pub use config::{FailureMatch, StressCommand, StressConfig, default_jobs};
pub use error::StressError;
pub use report::{Progress, RepetitionEstimate, RunRecord, StopReason, StressReport};
pub use runner::run;
