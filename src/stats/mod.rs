//! Statistics for intermittent failures: binomial intervals for a failure rate, the number of
//! verification runs a fix needs, the bound on the failure rate left after a clean run of tests,
//! and a sequential probability ratio test.
//!
//! Pure functions over counts; no I/O, no clocks, no randomness. Every formula cites its source
//! in the doc comment of the function that implements it.

mod interval;
mod sprt;
mod verification;

pub use interval::{clopper_pearson, wilson, wilson_z, z_for_confidence};
pub use sprt::{Sprt, SprtDecision};
pub use verification::{
    pass_probability, per_attempt_rate, runs_needed, upper_bound_after_zero_failures,
};
