//! Statistics for intermittent failures: binomial intervals for a failure rate (or a success
//! rate), the number of verification runs a fix needs, the bound on the failure rate left after
//! a clean run of tests, a sequential probability ratio test, a paired comparison of two
//! variants over the same cases, and the success-rate statistics of a replay (pass@k, pass^k,
//! repo-clustered standard error, paired difference interval).
//!
//! Pure functions over counts; no I/O, no clocks, no randomness. Every formula cites its source
//! in the doc comment of the function that implements it.

mod interval;
mod paired;
mod sprt;
mod success;
mod verification;

pub use interval::{clopper_pearson, wilson, wilson_z, z_for_confidence};
pub use paired::mcnemar_exact;
pub use sprt::{Sprt, SprtDecision};
pub use success::{
    PairedCounts, clustered_standard_error, paired_difference_interval, pass_at_k, pass_hat_k,
};
pub use verification::{
    pass_probability, per_attempt_rate, runs_needed, runs_to_catch, upper_bound_after_zero_failures,
};
