//! Success-rate statistics for replays of a case corpus: pass@k and pass^k over repeated
//! epochs, the standard error of a mean when items come in clusters (cases of one repository),
//! and the interval for the difference of two paired success rates.

use std::collections::BTreeMap;

use super::interval::wilson_z;
use super::z_for_confidence;

/// The unbiased estimator of pass@k for one case: the probability that at least one of `k`
/// attempts drawn without replacement from `n` observed attempts, `c` of them successful,
/// succeeds: `1 - C(n-c, k) / C(n, k)`.
///
/// Computed in the numerically stable product form `1 - prod_{i=n-c+1}^{n} (1 - k/i)` given by
/// M. Chen et al., "Evaluating Large Language Models Trained on Code", arXiv:2107.03374 (2021),
/// figure 3; it is exactly 1 when `n - c < k` (every draw of `k` contains a success). The
/// corpus-level pass@k is the mean of this value over cases.
///
/// # Panics
/// When `c > n`, `k = 0` or `k > n`.
pub fn pass_at_k(n: u64, c: u64, k: u64) -> f64 {
    check(n, c, k);
    if n - c < k {
        return 1.0;
    }
    let prod: f64 = ((n - c + 1)..=n)
        .map(|i| 1.0 - k as f64 / i as f64)
        .product();
    1.0 - prod
}

/// The unbiased estimator of pass^k ("pass hat k") for one case: the probability that all `k`
/// attempts drawn without replacement from `n` observed attempts, `c` of them successful,
/// succeed: `C(c, k) / C(n, k) = prod_{i=0}^{k-1} (c - i) / (n - i)` (the product form avoids
/// large binomial coefficients). A measure of consistency rather than of reach: S. Yao et al.,
/// "tau-bench: A Benchmark for Tool-Agent-User Interaction in Real-World Domains",
/// arXiv:2406.12045 (2024), section 4. It is 0 when `c < k`; pass^1 = pass@1 = `c/n`.
///
/// # Panics
/// When `c > n`, `k = 0` or `k > n`.
pub fn pass_hat_k(n: u64, c: u64, k: u64) -> f64 {
    check(n, c, k);
    if c < k {
        return 0.0;
    }
    (0..k).map(|i| (c - i) as f64 / (n - i) as f64).product()
}

fn check(n: u64, c: u64, k: u64) {
    assert!(c <= n, "successes ({c}) > attempts ({n})");
    assert!(k >= 1 && k <= n, "k ({k}) must be in 1..={n}");
}

/// The cluster-robust standard error of the mean of `obs` (pairs of cluster key and value, e.g.
/// a case's repository and 1.0/0.0 for resolved/not), when values within a cluster may be
/// correlated but clusters are independent.
///
/// With `n` observations, mean `m`, `G` clusters and `S_g` the sum of residuals `y_i - m` in
/// cluster `g`, this is the Liang-Zeger "sandwich" variance of a mean with the usual
/// small-sample factor `G/(G-1)` (CR1, as Stata's `vce(cluster)` computes it):
/// `SE² = G/(G-1) · Σ_g S_g² / n²`.
/// Sources: K.-Y. Liang and S. L. Zeger, "Longitudinal data analysis using generalized linear
/// models", Biometrika 73(1):13-22, 1986; A. C. Cameron and D. L. Miller, "A Practitioner's
/// Guide to Cluster-Robust Inference", Journal of Human Resources 50(2):317-372, 2015, eq. (11)
/// with one regressor (the constant); applied to evaluations by E. Miller, "Adding Error Bars to
/// Evals: A Statistical Approach to Language Model Evaluations", arXiv:2411.00640 (2024),
/// section 2.2. When every cluster holds one observation it equals the ordinary standard error
/// of the mean `s/√n` (sample variance with `n-1`); positive within-cluster correlation makes
/// it larger.
///
/// Returns `None` with fewer than two clusters (the variance between clusters is then not
/// estimable).
pub fn clustered_standard_error<K: Ord>(obs: &[(K, f64)]) -> Option<f64> {
    let n = obs.len() as f64;
    let mean = obs.iter().map(|(_, y)| y).sum::<f64>() / n;
    let mut sums: BTreeMap<&K, f64> = BTreeMap::new();
    for (k, y) in obs {
        *sums.entry(k).or_default() += y - mean;
    }
    let g = sums.len() as f64;
    if sums.len() < 2 {
        return None;
    }
    let ss: f64 = sums.values().map(|s| s * s).sum();
    Some((g / (g - 1.0) * ss / (n * n)).sqrt())
}

/// A paired 2×2 table of two variants run on the same items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct PairedCounts {
    /// Items both variants resolved.
    pub both: u64,
    /// Items only variant A resolved.
    pub only_a: u64,
    /// Items only variant B resolved.
    pub only_b: u64,
    /// Items neither resolved.
    pub neither: u64,
}

impl PairedCounts {
    /// Number of pairs.
    pub fn n(&self) -> u64 {
        self.both + self.only_a + self.only_b + self.neither
    }

    /// The difference of success rates, A minus B: `(only_a - only_b) / n` (0 when `n = 0`).
    pub fn difference(&self) -> f64 {
        if self.n() == 0 {
            return 0.0;
        }
        (self.only_a as f64 - self.only_b as f64) / self.n() as f64
    }
}

/// The confidence interval for the difference of two paired proportions, A minus B (`p1 - p2`
/// with `p1 = (both + only_a)/n`, `p2 = (both + only_b)/n`), at `confidence` (e.g. 0.95), as
/// `(lo, hi)`: R. G. Newcombe's square-and-add score interval, method 10 of "Improved
/// confidence intervals for the difference between binomial proportions based on paired
/// data", Statistics in Medicine 17(22):2635-2650, 1998, as given by M. W. Fagerland,
/// S. Lydersen and P. Laake, "Statistical Analysis of Contingency Tables" (2017), section 8.5.
///
/// With Wilson intervals `(l1, u1)` for `p1` and `(l2, u2)` for `p2`, `θ = p1 - p2`:
/// `lo = θ - sqrt((p1-l1)² - 2φ(p1-l1)(u2-p2) + (u2-p2)²)`,
/// `hi = θ + sqrt((u1-p1)² - 2φ(u1-p1)(p2-l2) + (p2-l2)²)`,
/// where `φ` estimates the correlation of the paired outcomes: with `a, b, c, d` = both, only
/// A, only B, neither, `D = ad - bc` and `P = (a+b)(c+d)(a+c)(b+d)`: `φ = (D - n/2)/√P` when
/// `D > n/2`, `0` when `0 <= D <= n/2`, `D/√P` when `D < 0`, and `0` when `P = 0`.
/// Unlike the Wald interval it stays inside [-1, 1] and behaves for small `n` and for rates
/// near 0 or 1. `n = 0` gives `(-1, 1)`.
///
/// # Panics
/// When `confidence` is not strictly between 0 and 1.
pub fn paired_difference_interval(t: PairedCounts, confidence: f64) -> (f64, f64) {
    let z = z_for_confidence(confidence);
    let n = t.n();
    if n == 0 {
        return (-1.0, 1.0);
    }
    let nf = n as f64;
    let (a, b, c, d) = (
        t.both as f64,
        t.only_a as f64,
        t.only_b as f64,
        t.neither as f64,
    );
    let p1 = (a + b) / nf;
    let p2 = (a + c) / nf;
    let (l1, u1) = wilson_z(t.both + t.only_a, n, z);
    let (l2, u2) = wilson_z(t.both + t.only_b, n, z);
    let prod = (a + b) * (c + d) * (a + c) * (b + d);
    let phi = if prod == 0.0 {
        0.0
    } else {
        let det = a * d - b * c;
        if det > nf / 2.0 {
            (det - nf / 2.0) / prod.sqrt()
        } else if det >= 0.0 {
            0.0
        } else {
            det / prod.sqrt()
        }
    };
    let theta = p1 - p2;
    let lo =
        theta - ((p1 - l1).powi(2) - 2.0 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2).powi(2)).sqrt();
    let hi =
        theta + ((u1 - p1).powi(2) - 2.0 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2).powi(2)).sqrt();
    (lo.max(-1.0), hi.min(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) {
        assert!((a - b).abs() < tol, "{a} != {b} (tolerance {tol})");
    }

    #[test]
    fn pass_at_k_for_five_attempts_two_successes() {
        // 1 - C(3,k)/C(5,k): C(5,k) = 5, 10, 10, 5, 1; C(3,k) = 3, 3, 1, 0, 0.
        close(pass_at_k(5, 2, 1), 1.0 - 3.0 / 5.0, 1e-12);
        close(pass_at_k(5, 2, 2), 1.0 - 3.0 / 10.0, 1e-12);
        close(pass_at_k(5, 2, 3), 1.0 - 1.0 / 10.0, 1e-12);
        close(pass_at_k(5, 2, 4), 1.0, 1e-12);
        close(pass_at_k(5, 2, 5), 1.0, 1e-12);
    }

    #[test]
    fn pass_at_k_edges() {
        assert_eq!(pass_at_k(5, 0, 3), 0.0);
        assert_eq!(pass_at_k(5, 5, 1), 1.0);
        // A large n stays finite and exact enough: 1 - C(190,10)/C(200,10).
        let exact = 1.0
            - (0..10)
                .map(|i| (190.0 - i as f64) / (200.0 - i as f64))
                .product::<f64>();
        close(pass_at_k(200, 10, 10), exact, 1e-12);
    }

    #[test]
    fn pass_hat_k_for_five_attempts_two_successes() {
        // C(2,k)/C(5,k): k=1: 2/5; k=2: 1/10; k>=3: 0.
        close(pass_hat_k(5, 2, 1), 0.4, 1e-12);
        close(pass_hat_k(5, 2, 2), 0.1, 1e-12);
        assert_eq!(pass_hat_k(5, 2, 3), 0.0);
        // C(4,3)/C(5,3) = 4/10.
        close(pass_hat_k(5, 4, 3), 0.4, 1e-12);
        assert_eq!(pass_hat_k(3, 3, 3), 1.0);
    }

    #[test]
    #[should_panic(expected = "k (6) must be in 1..=5")]
    fn k_above_n_is_a_bug() {
        pass_at_k(5, 2, 6);
    }

    #[test]
    fn clustered_se_hand_example() {
        // Clusters a: [1, 1, 0], b: [0, 0], c: [1]; n = 6, mean 0.5.
        // Residual sums: a: 0.5, b: -1, c: 0.5; Σ S² = 1.5; SE² = 3/2 · 1.5/36 = 0.0625.
        let obs = [
            ("a", 1.0),
            ("a", 1.0),
            ("a", 0.0),
            ("b", 0.0),
            ("b", 0.0),
            ("c", 1.0),
        ];
        close(clustered_standard_error(&obs).unwrap(), 0.25, 1e-12);
    }

    #[test]
    fn clustered_se_with_singleton_clusters_is_the_plain_standard_error() {
        // 1, 1, 0, 0, 0: mean 0.4, sample variance (2·0.36 + 3·0.16)/4 = 0.3; SE = sqrt(0.3/5).
        let obs = [("a", 1.0), ("b", 1.0), ("c", 0.0), ("d", 0.0), ("e", 0.0)];
        close(
            clustered_standard_error(&obs).unwrap(),
            (0.3f64 / 5.0).sqrt(),
            1e-12,
        );
        assert_eq!(clustered_standard_error(&[("a", 1.0), ("a", 0.0)]), None);
    }

    #[test]
    fn clustering_widens_the_error_when_clusters_agree() {
        // Same 6 values, grouped so each cluster is all-success or all-failure.
        let plain = [
            ("a", 1.0),
            ("b", 1.0),
            ("c", 1.0),
            ("d", 0.0),
            ("e", 0.0),
            ("f", 0.0),
        ];
        let grouped = [
            ("a", 1.0),
            ("a", 1.0),
            ("a", 1.0),
            ("b", 0.0),
            ("b", 0.0),
            ("b", 0.0),
        ];
        let (p, g) = (
            clustered_standard_error(&plain).unwrap(),
            clustered_standard_error(&grouped).unwrap(),
        );
        // grouped: S = ±1.5, SE² = 2 · 4.5/36 = 0.25.
        close(g, 0.5, 1e-12);
        assert!(g > p, "{g} <= {p}");
    }

    #[test]
    fn newcombe_paired_interval_hand_computed() {
        // a=10, b=5, c=2, d=3 (n=20): p1 = 0.75, p2 = 0.6, θ = 0.15.
        // Wilson 95%: p1 -> (0.531299, 0.888138), p2 -> (0.386582, 0.781193).
        // D = 10·3 - 5·2 = 20 > n/2 = 10, P = 15·5·12·8 = 7200, φ = 10/√7200 = 0.117851.
        // lo = 0.15 - sqrt(0.218701² - 2φ·0.218701·0.181193 + 0.181193²) = -0.117060
        // hi = 0.15 + sqrt(0.138138² - 2φ·0.138138·0.213418 + 0.213418²) =  0.390168
        let t = PairedCounts {
            both: 10,
            only_a: 5,
            only_b: 2,
            neither: 3,
        };
        let (lo, hi) = paired_difference_interval(t, 0.95);
        close(t.difference(), 0.15, 1e-12);
        close(lo, -0.117_060, 1e-5);
        close(hi, 0.390_168, 1e-5);
    }

    #[test]
    fn newcombe_negative_correlation_and_zero_margins() {
        // Bentur et al. (2009) table of Fagerland et al. ch. 8: a=1, b=1, c=7, d=12 (n=21):
        // D = 12 - 7 = 5 <= n/2, so φ = 0; θ = 2/21 - 8/21 = -0.285714;
        // Wilson: 2/21 -> (0.026519, 0.289141), 8/21 -> (0.207510, 0.591213);
        // lo = θ - sqrt(0.068719² + 0.210261²) = -0.506920, hi = θ + sqrt(0.193903² + 0.173442²) = -0.025559.
        let (lo, hi) = paired_difference_interval(
            PairedCounts {
                both: 1,
                only_a: 1,
                only_b: 7,
                neither: 12,
            },
            0.95,
        );
        close(lo, -0.506_920, 1e-5);
        close(hi, -0.025_559, 1e-5);
        // Everything resolved by both: θ = 0 and the interval still has width.
        let (lo, hi) = paired_difference_interval(
            PairedCounts {
                both: 10,
                ..Default::default()
            },
            0.95,
        );
        assert!(lo < 0.0 && hi > 0.0 && lo >= -1.0 && hi <= 1.0, "{lo} {hi}");
        assert_eq!(
            paired_difference_interval(PairedCounts::default(), 0.95),
            (-1.0, 1.0)
        );
    }
}
