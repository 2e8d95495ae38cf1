//! Durations in job specs, pipelines and replay files: humantime text (`"90s"`, `"5m"`,
//! `"1h 30m"`, grammar of [`humantime::parse_duration`]) parsed once, when the file is loaded,
//! into [`Duration`]; written back as humantime text (`humantime_serde`, e.g. `90s` is written
//! `1m 30s`). A value that does not parse fails deserialization, so the loader reports it with
//! the file and the key's JSON pointer (exit 2); nothing re-parses a duration later.
//!
//! Use with `#[serde(with = "crate::spec::duration::...")]`.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// Parses humantime text (surrounding blanks ignored); `positive` refuses zero. The error names
/// the text and gives examples. For keys serde cannot locate (flattened tables); everything else
/// uses the serde modules below.
pub fn parse(text: &str, positive: bool) -> Result<Duration, String> {
    match humantime::parse_duration(text.trim()) {
        Ok(d) if positive && d.is_zero() => {
            Err(format!("a budget must be longer than zero, found `{text}`"))
        }
        Ok(d) => Ok(d),
        Err(e) => Err(format!(
            "`{text}` is not a duration ({e}); expected e.g. `90s`, `5m`, `1h 30m`"
        )),
    }
}

fn de<'de, D: Deserializer<'de>>(d: D, positive: bool) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse(&text, positive).map_err(serde::de::Error::custom)
}

fn de_option<'de, D: Deserializer<'de>>(
    d: D,
    positive: bool,
) -> Result<Option<Duration>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|t| parse(&t, positive).map_err(serde::de::Error::custom))
        .transpose()
}

/// A budget: a duration longer than zero.
pub mod positive {
    use super::*;

    /// Writes humantime text.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        humantime_serde::serialize(d, s)
    }

    /// Reads humantime text; errors on text that is not a duration, or zero.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        de(d, true)
    }
}

/// An optional budget (longer than zero when present).
pub mod option_positive {
    use super::*;

    /// Writes humantime text (`None` as a unit; pair with `skip_serializing_if`).
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        humantime_serde::option::serialize(d, s)
    }

    /// Reads humantime text; errors on text that is not a duration, or zero.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        de_option(d, true)
    }
}

/// An optional duration that may be zero (a grace period).
pub mod option {
    use super::*;

    /// Writes humantime text (`None` as a unit; pair with `skip_serializing_if`).
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        humantime_serde::option::serialize(d, s)
    }

    /// Reads humantime text; errors on text that is not a duration.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        de_option(d, false)
    }
}

/// A map of budgets (stage id or `total` -> duration longer than zero).
pub mod positive_map {
    use std::collections::BTreeMap;

    use serde::Serialize;

    use super::*;

    #[derive(Serialize, Deserialize)]
    struct W(#[serde(with = "super::positive")] Duration);

    /// Writes each value as humantime text.
    pub fn serialize<S: Serializer>(
        m: &BTreeMap<String, Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let w: BTreeMap<&String, W> = m.iter().map(|(k, v)| (k, W(*v))).collect();
        w.serialize(s)
    }

    /// Reads each value; the first that is not a positive duration is an error at its key.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, Duration>, D::Error> {
        Ok(BTreeMap::<String, W>::deserialize(d)?
            .into_iter()
            .map(|(k, W(v))| (k, v))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct T {
        #[serde(with = "positive_map", default)]
        budgets: BTreeMap<String, Duration>,
        #[serde(with = "option", default, skip_serializing_if = "Option::is_none")]
        grace: Option<Duration>,
    }

    #[test]
    fn parses_once_and_writes_humantime_text() {
        let t: T = serde_json::from_str(r#"{"budgets": {"fix": "90s"}, "grace": "0s"}"#).unwrap();
        assert_eq!(t.budgets["fix"], Duration::from_secs(90));
        assert_eq!(t.grace, Some(Duration::ZERO));
        let back = serde_json::to_string(&t).unwrap();
        assert_eq!(back, r#"{"budgets":{"fix":"1m 30s"},"grace":"0s"}"#);
        assert_eq!(serde_json::from_str::<T>(&back).unwrap(), t);
    }

    #[test]
    fn bad_and_zero_budgets_are_errors_at_their_key() {
        let v: serde_json::Value =
            serde_json::from_str(r#"{"budgets": {"fix": "15 parsecs"}}"#).unwrap();
        let e = serde_path_to_error::deserialize::<_, T>(&v).unwrap_err();
        assert_eq!(e.path().to_string(), "budgets.fix");
        assert!(
            e.inner()
                .to_string()
                .contains("`15 parsecs` is not a duration"),
            "{e}"
        );
        let e = serde_json::from_str::<T>(r#"{"budgets": {"fix": "0s"}}"#).unwrap_err();
        assert!(e.to_string().contains("longer than zero"), "{e}");
    }
}
