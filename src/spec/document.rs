//! Reading JSON or TOML documents and checking them against an embedded JSON Schema, with
//! errors that name the file and the JSON pointer (or the line, for syntax errors).

use std::path::Path;

use serde_json::Value;

use crate::error::Error;

/// The document formats fixci reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON (`.json`).
    Json,
    /// TOML (`.toml`).
    Toml,
}

impl Format {
    /// The format for a file name: `.toml` is TOML, everything else is read as JSON.
    pub fn of(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("toml") => Format::Toml,
            _ => Format::Json,
        }
    }
}

/// Reads `path` and parses it as JSON or TOML (by extension) into a JSON value.
///
/// Errors (exit 2): unreadable file, syntax error (with line and column), a document whose top
/// level is not an object.
pub fn read_document(path: &Path, what: &str) -> Result<Value, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::usage(format!("cannot read {what} `{}`", path.display())).source(e))?;
    parse_document(&text, Format::of(path), path, what)
}

/// Parses document text; `path` and `what` only name it in errors.
pub fn parse_document(text: &str, format: Format, path: &Path, what: &str) -> Result<Value, Error> {
    let value = match format {
        Format::Json => serde_json::from_str::<Value>(text).map_err(|e| {
            Error::usage(format!("invalid {what} `{}`", path.display())).detail(format!(
                "line {}, column {}: {}",
                e.line(),
                e.column(),
                json_syntax_msg(&e)
            ))
        })?,
        Format::Toml => {
            let t = toml::from_str::<toml::Value>(text).map_err(|e| {
                let loc = e
                    .span()
                    .map(|s| {
                        let (l, c) = line_col(text, s.start);
                        format!("line {l}, column {c}: ")
                    })
                    .unwrap_or_default();
                Error::usage(format!("invalid {what} `{}`", path.display()))
                    .detail(format!("{loc}{}", e.message()))
            })?;
            serde_json::to_value(t).map_err(|e| {
                Error::usage(format!("invalid {what} `{}`", path.display())).source(e)
            })?
        }
    };
    if !value.is_object() {
        return Err(
            Error::usage(format!("invalid {what} `{}`", path.display())).detail(format!(
                "(root): expected an object, found {}",
                type_name(&value)
            )),
        );
    }
    Ok(value)
}

fn json_syntax_msg(e: &serde_json::Error) -> String {
    // serde_json appends " at line L column C"; we print the location ourselves.
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    (line, col)
}

/// The JSON type name of a value, as schema messages use it.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Validates `value` against the JSON Schema text `schema`; every violation becomes one detail
/// line `/json/pointer: message`. Errors are exit 2 and name `path`.
pub fn check_schema(value: &Value, schema: &str, path: &Path, what: &str) -> Result<(), Error> {
    let schema: Value = serde_json::from_str(schema).expect("embedded schema is valid JSON");
    let validator = jsonschema::validator_for(&schema).expect("embedded schema compiles");
    let mut details: Vec<String> = validator
        .iter_errors(value)
        .map(|e| {
            let ptr = e.instance_path().to_string();
            let ptr = if ptr.is_empty() {
                "(root)".to_string()
            } else {
                ptr
            };
            format!("{ptr}: {}", e.masked())
        })
        .collect();
    if details.is_empty() {
        return Ok(());
    }
    details.sort();
    details.dedup();
    Err(Error::usage(format!("invalid {what} `{}`", path.display())).details(details))
}

/// Deserializes a document that passed its schema into `T`; an error (exit 2) names `path` and
/// the JSON pointer of the value (`/stage/0/budget: ...`), e.g. a duration that does not parse.
pub fn deserialize_typed<T: serde::de::DeserializeOwned>(
    value: &Value,
    path: &Path,
    what: &str,
) -> Result<T, Error> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        use serde_path_to_error::Segment;
        let ptr: String = e
            .path()
            .iter()
            .filter_map(|s| match s {
                Segment::Seq { index } => Some(index.to_string()),
                Segment::Map { key } => Some(key.replace('~', "~0").replace('/', "~1")),
                Segment::Enum { variant } => Some(variant.clone()),
                Segment::Unknown => None,
            })
            .map(|s| format!("/{s}"))
            .collect();
        let ptr = if ptr.is_empty() {
            "(root)".to_string()
        } else {
            ptr
        };
        Error::usage(format!("invalid {what} `{}`", path.display()))
            .detail(format!("{ptr}: {}", e.inner()))
    })
}

/// Renders a JSON pointer from path segments (`["budgets", "fix"]` -> `/budgets/fix`), escaping
/// `~` and `/` as RFC 6901 says.
pub fn pointer(segments: &[&str]) -> String {
    segments
        .iter()
        .map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_syntax_errors_carry_line_and_column() {
        let err = parse_document(
            "a = 1\nb = = 2\n",
            Format::Toml,
            Path::new("x.toml"),
            "job spec",
        )
        .unwrap_err();
        let r = err.render();
        assert!(r.contains("x.toml") && r.contains("line 2"), "{r}");
    }

    #[test]
    fn json_syntax_errors_carry_line_and_column() {
        let err = parse_document(
            "{\n \"a\": ,\n}",
            Format::Json,
            Path::new("x.json"),
            "job spec",
        )
        .unwrap_err();
        assert!(err.render().contains("line 2, column"), "{}", err.render());
    }

    #[test]
    fn pointer_escapes() {
        assert_eq!(pointer(&["a/b", "c~d"]), "/a~1b/c~0d");
    }
}
