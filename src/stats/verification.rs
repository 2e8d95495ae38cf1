//! How many clean runs make a fix believable, and what a clean run of tests proves.

/// The number of runs `N` such that a test that is still broken, failing independently with
/// rate `p0`, fails at least once among `N` runs with probability at least `1 - alpha`:
/// `N = ceil(ln(alpha) / ln(1 - p0))`, i.e. the smallest `N` with `(1 - p0)^N <= alpha`.
/// Equivalently, the smallest `N` whose zero-failure upper bound at confidence `1 - alpha`
/// ([`upper_bound_after_zero_failures`]) is at most `p0`; the zero-numerator reasoning is that
/// of J. A. Hanley and A. Lippman-Hand (JAMA 249(13):1743-1745, 1983), and the rule is the one
/// stated in DESIGN.md section 4.
///
/// Edge cases, chosen so that the caller can always cap the result with its own budget:
/// - `p0 >= 1` (a deterministic failure): 1 run.
/// - `p0 <= 0` or NaN (no evidence the test ever fails): `u64::MAX`, since no number of
///   clean runs can distinguish "fixed" from "never failed"; the caller must decide.
/// - `alpha >= 1`: 0 runs (no confidence asked for); `alpha <= 0` or NaN: `u64::MAX`.
/// - tiny `p0` (e.g. 1e-12): `ln(1 - p0)` is computed with `ln_1p`, so the result stays exact
///   (about `ln(1/alpha) / p0`) instead of dividing by a rounded zero; it saturates at
///   `u64::MAX`.
pub fn runs_needed(p0: f64, alpha: f64) -> u64 {
    if alpha.is_nan() || p0.is_nan() || p0 <= 0.0 || alpha <= 0.0 {
        return u64::MAX;
    }
    if alpha >= 1.0 {
        return 0;
    }
    if p0 >= 1.0 {
        return 1;
    }
    let n = alpha.ln() / (-p0).ln_1p();
    if !n.is_finite() || n >= u64::MAX as f64 {
        return u64::MAX;
    }
    // Floating-point noise must not add a run when the ratio is an exact integer
    // (p0 = 0.5, alpha = 0.25 gives 2.0000000000000004): round down first when
    // (1 - p0)^floor(n) already satisfies the bound.
    let floor = n.floor().max(1.0);
    if pass_probability(p0, floor as u64) <= alpha * (1.0 + 1e-12) {
        floor as u64
    } else {
        n.ceil() as u64
    }
}

/// The number of clean runs that shows a fix divided a failure rate `p0` by at least `k`:
/// `N = ceil(ln(alpha) / ln(1 - p0/k))` ([`runs_needed`] at rate `p0/k`). A change that leaves
/// the rate above `p0/k` (a retry that turns 30% into 9% when k = 4) fails at least one of the
/// N runs with probability at least `1 - alpha`. Rule stated in DESIGN.md section 4.
///
/// `k` below 1 or NaN is treated as 1 (plain [`runs_needed`]); other edge cases are those of
/// [`runs_needed`]. Hand-computed: p0 = 0.3, k = 4, alpha = 0.05 gives
/// ln(0.05)/ln(0.925) = 38.4 -> 39 runs, and a 9% rate then passes all 39 with probability
/// 0.91^39 = 0.025.
pub fn runs_to_catch(p0: f64, k: f64, alpha: f64) -> u64 {
    let k = if k.is_nan() || k < 1.0 { 1.0 } else { k };
    runs_needed(p0 / k, alpha)
}

/// The probability that `runs` independent runs of a test failing with rate `p` all pass:
/// `(1 - p)^runs`. With `p` the failure rate of a *non-fix*, this is the chance that a
/// verification of `runs` runs wrongly accepts it (0.59 for `p = 0.1` and 5 runs).
/// `p` is clamped to `[0, 1]`.
pub fn pass_probability(p: f64, runs: u64) -> f64 {
    let p = p.clamp(0.0, 1.0);
    if runs == 0 {
        return 1.0;
    }
    if p >= 1.0 {
        return 0.0;
    }
    // exp(n * ln(1 - p)) keeps precision for tiny p and large n.
    (runs as f64 * (-p).ln_1p()).exp()
}

/// The failure rate of one attempt, when a batch of `k` independent attempts fails as soon as
/// one does and batches fail at rate `batch_rate`: `1 - (1 - batch_rate)^(1/k)` (the inverse
/// of `1 - (1 - p)^k`). Monotone, so it maps the ends of an interval for the batch rate to an
/// interval for one attempt with the same confidence (the interval for a monotone function of
/// a parameter). `k = 0` is treated as 1; `batch_rate` is clamped to `[0, 1]`.
pub fn per_attempt_rate(batch_rate: f64, k: u32) -> f64 {
    let b = batch_rate.clamp(0.0, 1.0);
    if b >= 1.0 {
        return 1.0;
    }
    // -expm1(ln(1 - b) / k), precise for small rates.
    -((-b).ln_1p() / f64::from(k.max(1))).exp_m1()
}

/// The one-sided upper bound on the failure rate after `runs` runs with no failure, at
/// `confidence` (e.g. 0.95): `1 - (1 - confidence)^(1/runs)`, the exact binomial bound, so
/// the report can say "failure rate after the fix < x at 95% confidence". For large `runs` it
/// approaches the "rule of three", `3/runs` at 95%: J. A. Hanley and A. Lippman-Hand, "If
/// nothing goes wrong, is everything all right? Interpreting zero numerators", JAMA
/// 249(13):1743-1745, 1983. `runs = 0` gives 1.
///
/// # Panics
/// When `confidence` is not strictly between 0 and 1.
pub fn upper_bound_after_zero_failures(runs: u64, confidence: f64) -> f64 {
    assert!(
        confidence > 0.0 && confidence < 1.0,
        "confidence must be strictly between 0 and 1, got {confidence}"
    );
    if runs == 0 {
        return 1.0;
    }
    // 1 - a^(1/n) = -expm1(ln(a)/n), precise when the bound is tiny.
    -((1.0 - confidence).ln() / runs as f64).exp_m1()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_needed_hand_computed() {
        // ln(0.05)/ln(0.9) = 28.43 -> 29; ln(0.05)/ln(0.99) = 298.07 -> 299;
        // ln(0.05)/ln(0.5) = 4.32 -> 5; ln(0.01)/ln(0.9) = 43.7 -> 44.
        assert_eq!(runs_needed(0.1, 0.05), 29);
        assert_eq!(runs_needed(0.01, 0.05), 299);
        assert_eq!(runs_needed(0.5, 0.05), 5);
        assert_eq!(runs_needed(0.1, 0.01), 44);
        // The defining property, on both sides of the answer.
        for (p0, alpha) in [(0.1, 0.05), (0.03, 0.01), (0.37, 0.2)] {
            let n = runs_needed(p0, alpha);
            assert!(pass_probability(p0, n) <= alpha);
            assert!(pass_probability(p0, n - 1) > alpha);
        }
    }

    #[test]
    fn runs_to_catch_divides_the_rate_by_k() {
        assert_eq!(runs_to_catch(0.3, 4.0, 0.05), 39);
        assert!(pass_probability(0.09, 39) < 0.05);
        assert!(pass_probability(0.075, 39) <= 0.05);
        assert!(pass_probability(0.075, 38) > 0.05);
        assert_eq!(runs_to_catch(0.3, 1.0, 0.05), runs_needed(0.3, 0.05));
        assert_eq!(runs_to_catch(0.3, 0.5, 0.05), runs_needed(0.3, 0.05));
        assert_eq!(runs_to_catch(0.3, f64::NAN, 0.05), runs_needed(0.3, 0.05));
        assert_eq!(runs_to_catch(1.0, 4.0, 0.05), runs_needed(0.25, 0.05));
        assert_eq!(runs_to_catch(0.0, 4.0, 0.05), u64::MAX);
    }

    #[test]
    fn runs_needed_exact_ratio_does_not_add_a_run() {
        // (1 - 0.5)^2 = 0.25 exactly.
        assert_eq!(runs_needed(0.5, 0.25), 2);
    }

    #[test]
    fn runs_needed_edges() {
        assert_eq!(runs_needed(1.0, 0.05), 1);
        assert_eq!(runs_needed(0.0, 0.05), u64::MAX);
        assert_eq!(runs_needed(f64::NAN, 0.05), u64::MAX);
        assert_eq!(runs_needed(0.1, 1.0), 0);
        assert_eq!(runs_needed(0.1, 0.0), u64::MAX);
        // Tiny p0: about ln(20)/p0 = 2.9957e12, not u64::MAX from ln(1 - 1e-12) rounding.
        let n = runs_needed(1e-12, 0.05);
        assert!((2.99e12 as u64..3.0e12 as u64).contains(&n), "{n}");
        assert_eq!(runs_needed(1e-300, 0.05), u64::MAX);
    }

    #[test]
    fn five_runs_pass_a_ten_percent_flake_59_percent_of_the_time() {
        // 0.9^5 = 0.59049 (the figure in issue 6).
        assert!((pass_probability(0.1, 5) - 0.590_49).abs() < 1e-12);
        assert_eq!(pass_probability(1.0, 3), 0.0);
        assert_eq!(pass_probability(0.3, 0), 1.0);
    }

    #[test]
    fn per_attempt_rate_inverts_the_batch_rate() {
        // A batch of 10 attempts at p = 0.1 fails with 1 - 0.9^10 = 0.6513.
        let batch = 1.0 - pass_probability(0.1, 10);
        assert!((batch - 0.651_321_5).abs() < 1e-6);
        assert!((per_attempt_rate(batch, 10) - 0.1).abs() < 1e-12);
        assert_eq!(per_attempt_rate(0.0, 10), 0.0);
        assert_eq!(per_attempt_rate(1.0, 10), 1.0);
        assert_eq!(per_attempt_rate(0.3, 1), 0.3);
        assert!(per_attempt_rate(0.2, 5) < per_attempt_rate(0.3, 5));
    }

    #[test]
    fn upper_bound_after_zero_failures_values() {
        // 1 - 0.05^(1/29) = 0.098145 (hand-computed); rule of three: ~3/n for large n.
        assert!((upper_bound_after_zero_failures(29, 0.95) - 0.098_145).abs() < 1e-5);
        let b = upper_bound_after_zero_failures(10_000, 0.95);
        assert!((b - 3.0 / 10_000.0).abs() < 1e-5, "{b}");
        assert_eq!(upper_bound_after_zero_failures(0, 0.95), 1.0);
        // Consistent with runs_needed: N runs bound the rate below p0.
        let n = runs_needed(0.1, 0.05);
        assert!(upper_bound_after_zero_failures(n, 0.95) <= 0.1);
    }
}
