//! Redaction of secrets in text that fixci writes or shows an agent: the values of the forge
//! token variables present in fixci's environment, and anything shaped like a credential
//! (GitHub tokens `ghp_`/`gho_`/`ghs_`/`ghu_`/`ghr_`/`github_pat_`, `Bearer ...` headers, AWS
//! access key ids). Token formats: GitHub docs, "About authentication to GitHub" (token prefixes).

use std::sync::OnceLock;

use regex::Regex;

/// What redacted text shows instead of the secret.
pub const MASK: &str = "[REDACTED]";

fn patterns() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"\b(gh[pousr]_[A-Za-z0-9]{20,255}|github_pat_[A-Za-z0-9_]{20,255}|AKIA[0-9A-Z]{16}|ASIA[0-9A-Z]{16})\b|(?i:bearer)\s+[A-Za-z0-9._~+/=-]{12,}")
            .expect("valid regex")
    })
}

/// Values of secret environment variables (forge tokens) at least 8 bytes long.
fn env_secrets() -> Vec<String> {
    crate::agent::FORGE_SECRETS
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .filter(|v| v.len() >= 8)
        .collect()
}

/// `text` with every secret replaced by [`MASK`].
pub fn redact(text: &str) -> String {
    let mut out = patterns().replace_all(text, MASK).into_owned();
    for s in env_secrets() {
        if out.contains(&s) {
            out = out.replace(&s, MASK);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_shapes_are_masked() {
        let t = "push with ghp_0123456789abcdefghijABCDEFGHIJ0123 and Authorization: Bearer abcdefghijklmnop123 key AKIAABCDEFGHIJKLMNOP";
        let r = redact(t);
        assert!(
            !r.contains("ghp_0123")
                && !r.contains("abcdefghijklmnop123")
                && !r.contains("AKIAABCD"),
            "{r}"
        );
        assert_eq!(redact("nothing secret here"), "nothing secret here");
    }
}
