//! Paired comparison of two variants run on the same cases (e.g. two prompts replayed over one
//! corpus of CI failures): did one solve significantly more cases than the other?

use statrs::distribution::{Binomial, DiscreteCDF};

/// The exact (binomial) McNemar test on the discordant pairs of a paired comparison: `b` cases
/// that only variant A solved, `c` cases that only variant B solved (cases both or neither
/// solved carry no information about the difference). Returns the two-sided p-value
/// `min(1, 2 * P[X <= min(b, c)])` with `X ~ Binomial(b + c, 1/2)`; 1 when `b + c = 0`.
/// Source: Q. McNemar, "Note on the sampling error of the difference between correlated
/// proportions or percentages", Psychometrika 12(2):153-157, 1947; the exact form is the sign
/// test discussed by M. W. Fagerland, S. Lydersen and P. Laake, "The McNemar test for binary
/// matched-pairs data: mid-p and asymptotic are better than exact conditional", BMC Medical
/// Research Methodology 13:91, 2013. The binomial CDF comes from `statrs`.
pub fn mcnemar_exact(b: u64, c: u64) -> f64 {
    let n = b + c;
    if n == 0 {
        return 1.0;
    }
    let binom = Binomial::new(0.5, n).expect("p = 1/2 is a valid probability");
    (2.0 * binom.cdf(b.min(c))).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_p_values() {
        // b = 0, c = 5: 2 * 0.5^5 = 0.0625.
        assert!((mcnemar_exact(0, 5) - 0.0625).abs() < 1e-12);
        // b = 1, c = 9: 2 * (1 + 10) / 1024 = 0.021484375.
        assert!((mcnemar_exact(1, 9) - 0.021_484_375).abs() < 1e-12);
        // Symmetric, and no discordance means no evidence.
        assert_eq!(mcnemar_exact(9, 1), mcnemar_exact(1, 9));
        assert_eq!(mcnemar_exact(4, 4), 1.0);
        assert_eq!(mcnemar_exact(0, 0), 1.0);
    }
}
