//! [`RetryPolicy`]: when a GitHub answer is worth another try, and how long to wait first.
//!
//! GitHub's guidance (<https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api#exceeding-the-rate-limit>
//! and <https://docs.github.com/en/rest/using-the-rest-api/best-practices-for-using-the-rest-api#handle-rate-limit-errors-appropriately>):
//! on 403/429 with `retry-after`, wait that many seconds; with `x-ratelimit-remaining: 0`, wait
//! until the epoch second in `x-ratelimit-reset`; on a secondary limit without either, wait at
//! least a minute, growing exponentially. Server errors (5xx) and lost connections are retried
//! with exponential backoff and jitter.

use std::time::Duration;

use http::HeaderMap;

/// How often and how long [`GitHub`](super::GitHub) retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first try (so `max_retries + 1` requests at most).
    pub max_retries: u32,
    /// Backoff before retry `n` (0-based) is `base_delay * 2^n`, capped at `max_delay`, of which
    /// a random half is kept (equal jitter).
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// The longest single wait fixci accepts for a rate limit; a longer one is an error.
    pub max_wait: Duration,
    /// The wait on a secondary rate limit that gave neither `retry-after` nor a reset time.
    pub secondary_min: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 4,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(32),
            max_wait: Duration::from_secs(180),
            secondary_min: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// A policy for tests: the same rules with millisecond backoff (a `retry-after` is still
    /// honoured as sent).
    pub fn fast() -> RetryPolicy {
        RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(50),
            max_wait: Duration::from_secs(5),
            secondary_min: Duration::from_millis(50),
        }
    }

    /// Exponential backoff with equal jitter; `jitter` is uniform in `[0, 1)`.
    pub(crate) fn backoff(&self, retry: u32, jitter: f64) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(retry.min(20)))
            .min(self.max_delay);
        exp / 2 + exp.mul_f64(jitter.clamp(0.0, 1.0) / 2.0)
    }
}

/// What to do with one answer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Use the answer as it is (success, redirect, or an error retrying cannot fix).
    Accept,
    /// Wait, then send the same request again.
    RetryAfter(Duration),
    /// A rate limit that wants a wait longer than `max_wait` (seconds).
    TooLong(u64),
}

/// Decides about an answer with `status` and `headers` to the `retry`-th retry (0 = first try).
/// `body_says_rate_limit` is true when GitHub's message mentions a rate limit; `now` is the
/// current Unix time in seconds.
pub(crate) fn classify(
    policy: &RetryPolicy,
    status: u16,
    headers: &HeaderMap,
    body_says_rate_limit: bool,
    retry: u32,
    now: u64,
    jitter: f64,
) -> Verdict {
    let retry_after = header_u64(headers, "retry-after").map(Duration::from_secs);
    let wait = if (500..600).contains(&status) {
        retry_after.unwrap_or_else(|| policy.backoff(retry, jitter))
    } else if status == 403 || status == 429 {
        let remaining = header_u64(headers, "x-ratelimit-remaining");
        let reset = header_u64(headers, "x-ratelimit-reset");
        let limited =
            retry_after.is_some() || remaining == Some(0) || body_says_rate_limit || status == 429;
        if !limited {
            return Verdict::Accept;
        }
        match (retry_after, remaining, reset) {
            (Some(d), _, _) => d,
            (None, Some(0), Some(reset)) => Duration::from_secs(reset.saturating_sub(now) + 1),
            _ => policy.secondary_min.max(policy.backoff(retry, jitter)),
        }
    } else {
        return Verdict::Accept;
    };
    if retry >= policy.max_retries {
        return Verdict::Accept;
    }
    if wait > policy.max_wait {
        return Verdict::TooLong(wait.as_secs());
    }
    Verdict::RetryAfter(wait)
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// A number in `[0, 1)` from the standard library's randomly keyed hasher (no extra crate for
/// jitter).
pub(crate) fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x9e37_79b9_7f4a_7c15);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn backoff_doubles_is_capped_and_jittered_within_half() {
        let p = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
            ..RetryPolicy::default()
        };
        assert_eq!(p.backoff(0, 0.0), Duration::from_millis(50));
        assert_eq!(p.backoff(0, 1.0), Duration::from_millis(100));
        assert_eq!(p.backoff(2, 0.0), Duration::from_millis(200));
        assert_eq!(p.backoff(10, 0.0), Duration::from_millis(500));
        assert_eq!(p.backoff(u32::MAX, 1.0), Duration::from_millis(1000));
        let j = jitter();
        assert!((0.0..1.0).contains(&j));
    }

    #[test]
    fn verdicts() {
        let p = RetryPolicy::default();
        let none = headers(&[]);
        assert_eq!(classify(&p, 200, &none, false, 0, 0, 0.0), Verdict::Accept);
        assert_eq!(classify(&p, 302, &none, false, 0, 0, 0.0), Verdict::Accept);
        assert_eq!(classify(&p, 404, &none, false, 0, 0, 0.0), Verdict::Accept);
        assert_eq!(classify(&p, 401, &none, false, 0, 0, 0.0), Verdict::Accept);
        // a plain 403 is a permission problem, not a rate limit
        assert_eq!(classify(&p, 403, &none, false, 0, 0, 0.0), Verdict::Accept);
        assert_eq!(
            classify(&p, 500, &none, false, 0, 0, 0.0),
            Verdict::RetryAfter(Duration::from_millis(500))
        );
        assert_eq!(
            classify(&p, 502, &none, false, p.max_retries, 0, 0.0),
            Verdict::Accept
        );
        let ra = headers(&[("retry-after", "7")]);
        assert_eq!(
            classify(&p, 403, &ra, false, 0, 0, 0.0),
            Verdict::RetryAfter(Duration::from_secs(7))
        );
        assert_eq!(
            classify(&p, 503, &ra, false, 0, 0, 0.0),
            Verdict::RetryAfter(Duration::from_secs(7))
        );
        let reset = headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1010"),
        ]);
        assert_eq!(
            classify(&p, 403, &reset, false, 0, 1000, 0.0),
            Verdict::RetryAfter(Duration::from_secs(11))
        );
        assert_eq!(
            classify(&p, 429, &reset, false, 0, 100, 0.0),
            Verdict::TooLong(911)
        );
        assert_eq!(
            classify(&p, 403, &none, true, 0, 0, 0.0),
            Verdict::RetryAfter(Duration::from_secs(60))
        );
    }
}
