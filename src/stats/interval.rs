//! Confidence intervals for a binomial proportion (a failure rate observed over independent runs).

use statrs::distribution::{Beta, ContinuousCDF, Normal};

/// The exact (Clopper-Pearson) two-sided interval for a failure rate after `failures` failing
/// runs out of `runs`, at `confidence` (e.g. `0.95`). Returns `(lo, hi)` with
/// `0 <= lo <= failures/runs <= hi <= 1`.
///
/// With `alpha = 1 - confidence`, `x = failures`, `n = runs`:
/// `lo = B(alpha/2; x, n-x+1)` (0 when `x = 0`) and `hi = B(1-alpha/2; x+1, n-x)` (1 when
/// `x = n`), where `B(q; a, b)` is the `q` quantile of the Beta(a, b) distribution.
/// Source: C. J. Clopper and E. S. Pearson, "The use of confidence or fiducial limits
/// illustrated in the case of the binomial", Biometrika 26(4):404-413, 1934; the Beta-quantile
/// form is as given by L. D. Brown, T. T. Cai and A. DasGupta, "Interval Estimation for a
/// Binomial Proportion", Statistical Science 16(2):101-133, 2001. The quantiles come from
/// `statrs` (inverse regularized incomplete beta function).
///
/// The interval is conservative: its coverage is at least `confidence` for every true rate.
/// `runs = 0` gives `(0, 1)`.
///
/// # Panics
/// When `failures > runs` or `confidence` is not strictly between 0 and 1.
pub fn clopper_pearson(failures: u64, runs: u64, confidence: f64) -> (f64, f64) {
    check(failures, runs, confidence);
    if runs == 0 {
        return (0.0, 1.0);
    }
    let alpha = 1.0 - confidence;
    let (x, n) = (failures as f64, runs as f64);
    let lo = if failures == 0 {
        0.0
    } else {
        beta_quantile(x, n - x + 1.0, alpha / 2.0)
    };
    let hi = if failures == runs {
        1.0
    } else {
        beta_quantile(x + 1.0, n - x, 1.0 - alpha / 2.0)
    };
    (lo.clamp(0.0, 1.0), hi.clamp(0.0, 1.0))
}

fn beta_quantile(a: f64, b: f64, q: f64) -> f64 {
    // Shapes are >= 1 here (counts), so construction cannot fail.
    Beta::new(a, b)
        .expect("beta shapes are positive")
        .inverse_cdf(q)
}

/// The Wilson score interval for `successes` out of `n` at `confidence` (e.g. `0.95`), as
/// `(lo, hi)`. See [`wilson_z`] for the formula; `z` is the `1 - (1-confidence)/2` normal
/// quantile. `n = 0` gives `(0, 1)`.
///
/// # Panics
/// When `successes > n` or `confidence` is not strictly between 0 and 1.
pub fn wilson(successes: u64, n: u64, confidence: f64) -> (f64, f64) {
    check(successes, n, confidence);
    wilson_z(successes, n, z_for_confidence(confidence))
}

/// The Wilson score interval for `successes` out of `n` with normal quantile `z` (1.96 for
/// 95%), as `(lo, hi)`:
/// `(p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)` with `p = successes/n`.
/// Source: E. B. Wilson, "Probable inference, the law of succession, and statistical
/// inference", JASA 22(158):209-212, 1927; as written in Brown, Cai and DasGupta (2001).
/// Better behaved than the Wald interval for small `n` and rates near 0 or 1, but not
/// guaranteed to cover at the nominal level (use [`clopper_pearson`] for that). `n = 0` gives
/// `(0, 1)`.
///
/// # Panics
/// When `successes > n` or `z` is negative or not finite.
pub fn wilson_z(successes: u64, n: u64, z: f64) -> (f64, f64) {
    assert!(successes <= n, "successes ({successes}) > n ({n})");
    assert!(
        z.is_finite() && z >= 0.0,
        "z must be a finite non-negative number, got {z}"
    );
    if n == 0 {
        return (0.0, 1.0);
    }
    let (s, n) = (successes as f64, n as f64);
    let p = s / n;
    let z2 = z * z;
    let denom = 1.0 + z2 / n;
    let center = (p + z2 / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denom;
    ((center - half).max(0.0), (center + half).min(1.0))
}

/// The two-sided normal quantile for `confidence`: `Φ⁻¹(1 - (1-confidence)/2)`, e.g. 1.959964
/// for 0.95.
///
/// # Panics
/// When `confidence` is not strictly between 0 and 1.
pub fn z_for_confidence(confidence: f64) -> f64 {
    assert!(
        confidence > 0.0 && confidence < 1.0,
        "confidence must be strictly between 0 and 1, got {confidence}"
    );
    Normal::new(0.0, 1.0)
        .expect("standard normal")
        .inverse_cdf(1.0 - (1.0 - confidence) / 2.0)
}

fn check(k: u64, n: u64, confidence: f64) {
    assert!(k <= n, "count ({k}) > runs ({n})");
    assert!(
        confidence > 0.0 && confidence < 1.0,
        "confidence must be strictly between 0 and 1, got {confidence}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: (f64, f64), b: (f64, f64), tol: f64) {
        assert!(
            (a.0 - b.0).abs() < tol && (a.1 - b.1).abs() < tol,
            "{a:?} != {b:?} (tolerance {tol})"
        );
    }

    // Reference values: R `binom.test(x, n)$conf.int` (exact Clopper-Pearson), which are also
    // tabulated in Brown, Cai and DasGupta (2001).
    #[test]
    fn clopper_pearson_matches_published_values() {
        close(
            clopper_pearson(5, 10, 0.95),
            (0.187_086_0, 0.812_914_0),
            1e-6,
        );
        close(
            clopper_pearson(1, 10, 0.95),
            (0.002_528_579, 0.445_016_1),
            1e-6,
        );
        close(
            clopper_pearson(10, 100, 0.95),
            (0.049_004_69, 0.176_222_6),
            1e-6,
        );
    }

    #[test]
    fn clopper_pearson_edges_have_closed_forms() {
        // x = 0: hi = 1 - (alpha/2)^(1/n); x = n: lo = (alpha/2)^(1/n).
        let (lo, hi) = clopper_pearson(0, 10, 0.95);
        assert_eq!(lo, 0.0);
        assert!((hi - (1.0 - 0.025f64.powf(0.1))).abs() < 1e-9, "{hi}");
        let (lo, hi) = clopper_pearson(10, 10, 0.95);
        assert!((lo - 0.025f64.powf(0.1)).abs() < 1e-9, "{lo}");
        assert_eq!(hi, 1.0);
        assert_eq!(clopper_pearson(0, 0, 0.95), (0.0, 1.0));
    }

    #[test]
    fn clopper_pearson_contains_the_point_estimate_and_narrows_with_n() {
        for (x, n) in [(1, 3), (3, 7), (200, 2000), (7, 100_000)] {
            let (lo, hi) = clopper_pearson(x, n, 0.95);
            let p = x as f64 / n as f64;
            assert!(lo < p && p < hi, "{x}/{n}: {lo} {hi}");
        }
        let w = |n: u64| {
            let (lo, hi) = clopper_pearson(n / 10, n, 0.95);
            hi - lo
        };
        assert!(w(100) > w(1000) && w(1000) > w(10_000));
    }

    #[test]
    fn wilson_matches_hand_computed_values() {
        // 5/10 at z = 1.959964: centre 0.5, half-width 0.263407 (hand-computed).
        close(wilson(5, 10, 0.95), (0.236_593, 0.763_407), 1e-5);
        // 0/10: hi = z²/(n + z²) = 3.841459/13.841459.
        close(wilson(0, 10, 0.95), (0.0, 0.277_533), 1e-5);
        close(wilson_z(5, 10, 1.959_964), wilson(5, 10, 0.95), 1e-6);
        assert_eq!(wilson(0, 0, 0.95), (0.0, 1.0));
    }

    #[test]
    fn z_for_common_levels() {
        assert!((z_for_confidence(0.95) - 1.959_964).abs() < 1e-5);
        assert!((z_for_confidence(0.99) - 2.575_829).abs() < 1e-5);
    }

    #[test]
    #[should_panic(expected = "count (3) > runs (2)")]
    fn more_failures_than_runs_is_a_bug() {
        clopper_pearson(3, 2, 0.95);
    }
}
