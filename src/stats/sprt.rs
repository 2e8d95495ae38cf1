//! Wald's sequential probability ratio test for a failure rate: stop verifying as soon as the
//! evidence is enough either way, instead of always running a fixed number of times.

/// The state of a [`Sprt`] after the observations so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SprtDecision {
    /// Keep running.
    Continue,
    /// Accept H1: the failure rate is at most `p1` (the fix works).
    Fixed,
    /// Accept H0: the failure rate is still about `p0` (not fixed).
    StillBroken,
}

/// A sequential probability ratio test of H0: failure rate `p0` (still broken) against H1:
/// failure rate `p1 < p0` (fixed). After each run, the log-likelihood ratio
/// `L = sum ln(f1/f0)` grows by `ln((1-p1)/(1-p0))` for a pass and by `ln(p1/p0)` for a
/// failure; the test declares [`SprtDecision::Fixed`] when `L >= ln((1-beta)/alpha)` and
/// [`SprtDecision::StillBroken`] when `L <= ln(beta/(1-alpha))`, so that
/// P(declare fixed | still broken) <= ~alpha and P(declare broken | fixed) <= ~beta.
/// Source: A. Wald, "Sequential Tests of Statistical Hypotheses", Annals of Mathematical
/// Statistics 16(2):117-186, 1945 (the test for a binomial proportion).
///
/// With `p1 = 0` one failure decides "still broken" and the number of passes needed for
/// "fixed" equals [`super::runs_needed`]`(p0, alpha)` when `beta = 0`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Sprt {
    pass_step: f64,
    fail_step: f64,
    upper: f64,
    lower: f64,
    llr: f64,
    runs: u64,
    failures: u64,
}

impl Sprt {
    /// A test with the given rates and error probabilities.
    ///
    /// # Panics
    /// Unless `0 <= p1 < p0 < 1` and `alpha`, `beta` are in `(0, 1)` with `alpha + beta < 1`
    /// (`beta = 0` is allowed: never declare a fix broken by mistake, i.e. never stop early
    /// on "still broken" without a failure).
    pub fn new(p0: f64, p1: f64, alpha: f64, beta: f64) -> Self {
        assert!(
            (0.0..1.0).contains(&p1) && p1 < p0 && p0 < 1.0,
            "need 0 <= p1 < p0 < 1"
        );
        assert!(alpha > 0.0 && alpha < 1.0, "alpha must be in (0, 1)");
        assert!(
            (0.0..1.0).contains(&beta) && alpha + beta < 1.0,
            "beta must be in [0, 1 - alpha)"
        );
        Self {
            pass_step: (-p1).ln_1p() - (-p0).ln_1p(),
            fail_step: (p1 / p0).ln(),
            upper: ((1.0 - beta) / alpha).ln(),
            lower: (beta / (1.0 - alpha)).ln(),
            llr: 0.0,
            runs: 0,
            failures: 0,
        }
    }

    /// Records one run and returns the decision so far. Observations after a decision keep
    /// updating the ratio (the decision may be read again with [`Sprt::decision`]).
    pub fn observe(&mut self, failed: bool) -> SprtDecision {
        self.runs += 1;
        if failed {
            self.failures += 1;
            self.llr += self.fail_step;
        } else {
            self.llr += self.pass_step;
        }
        self.decision()
    }

    /// The decision for the observations so far.
    pub fn decision(&self) -> SprtDecision {
        if self.llr >= self.upper {
            SprtDecision::Fixed
        } else if self.llr <= self.lower {
            SprtDecision::StillBroken
        } else {
            SprtDecision::Continue
        }
    }

    /// Runs observed so far.
    pub fn runs(&self) -> u64 {
        self.runs
    }

    /// Failures observed so far.
    pub fn failures(&self) -> u64 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_p1_zero_it_agrees_with_runs_needed() {
        let mut t = Sprt::new(0.1, 0.0, 0.05, 0.0);
        let n = crate::stats::runs_needed(0.1, 0.05);
        for i in 1..n {
            assert_eq!(t.observe(false), SprtDecision::Continue, "run {i}");
        }
        assert_eq!(t.observe(false), SprtDecision::Fixed);
        let mut t = Sprt::new(0.1, 0.0, 0.05, 0.0);
        t.observe(false);
        assert_eq!(t.observe(true), SprtDecision::StillBroken);
    }

    #[test]
    fn hand_computed_thresholds() {
        // p0 = 0.2, p1 = 0.02, alpha = beta = 0.05: upper = ln(19) = 2.944,
        // pass step = ln(0.98/0.8) = 0.2029 -> 15 passes; fail step = ln(0.1) = -2.303,
        // lower = ln(0.05/0.95) = -2.944 -> 2 failures from the start.
        let mut t = Sprt::new(0.2, 0.02, 0.05, 0.05);
        for _ in 0..14 {
            assert_eq!(t.observe(false), SprtDecision::Continue);
        }
        assert_eq!(t.observe(false), SprtDecision::Fixed);
        let mut t = Sprt::new(0.2, 0.02, 0.05, 0.05);
        assert_eq!(t.observe(true), SprtDecision::Continue);
        assert_eq!(t.observe(true), SprtDecision::StillBroken);
        assert_eq!((t.runs(), t.failures()), (2, 2));
    }
}
