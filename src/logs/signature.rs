//! Failure signatures: `<test id>: <normalised error line>`, with numbers and hex ids masked so
//! that two runs of the same failure (other timings, addresses, object ids) give the same string.

use std::sync::OnceLock;

use regex::Regex;

/// Masks the volatile parts of an error line: `0x...` and long hex ids (6+ hex digits, with both
/// digits and letters) become `H`, other digit runs `N`; whitespace runs become one space.
///
/// `Expected 3 at 0x7f44e0106780 (id 139933788682048)` becomes `Expected N at H (id N)`.
pub fn mask(line: &str) -> String {
    static HEX: OnceLock<Regex> = OnceLock::new();
    static NUM: OnceLock<Regex> = OnceLock::new();
    static WS: OnceLock<Regex> = OnceLock::new();
    let hex = HEX.get_or_init(|| {
        Regex::new(r"\b0[xX][0-9a-fA-F]+\b|\b[0-9a-fA-F]{6,}\b").expect("constant pattern compiles")
    });
    let num = NUM.get_or_init(|| Regex::new(r"\d+").expect("constant pattern compiles"));
    let ws = WS.get_or_init(|| Regex::new(r"\s+").expect("constant pattern compiles"));
    let s = hex.replace_all(line, |c: &regex::Captures<'_>| {
        let m = &c[0];
        if m.starts_with("0x")
            || m.starts_with("0X")
            || (m.bytes().any(|b| b.is_ascii_digit()) && m.bytes().any(|b| b.is_ascii_alphabetic()))
        {
            "H".to_string()
        } else {
            m.to_string()
        }
    });
    let s = num.replace_all(&s, "N");
    ws.replace_all(s.trim(), " ").into_owned()
}

/// The signature of one failure: `test` alone when there is no message.
pub fn signature(test: &str, message: Option<&str>) -> String {
    match message.map(mask).filter(|m| !m.is_empty()) {
        Some(m) => format!("{test}: {m}"),
        None => test.to_string(),
    }
}

/// Splits a signature into `(test id, masked message)`.
pub fn split(sig: &str) -> (&str, &str) {
    sig.split_once(": ").unwrap_or((sig, ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_numbers_addresses_and_ids() {
        assert_eq!(
            mask("self = <X object at 0x7f44e0106780>  id='139933788682048' took 0.25s"),
            "self = <X object at H> id='N' took N.Ns"
        );
        assert_eq!(mask("commit deadbeef12 vs cafe"), "commit H vs cafe");
        assert_eq!(mask("AssertionError: 1 != 2"), "AssertionError: N != N");
        assert_eq!(mask("accessed"), "accessed");
    }

    #[test]
    fn signature_joins_id_and_masked_message() {
        assert_eq!(
            signature("t::x", Some("assert 3 == 4")),
            "t::x: assert N == N"
        );
        assert_eq!(signature("t::x", None), "t::x");
        assert_eq!(
            split("a.b: AssertionError: N != N"),
            ("a.b", "AssertionError: N != N")
        );
    }
}
