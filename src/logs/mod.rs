//! Normalises CI logs and extracts the failure: failing tests, a failure signature and an
//! excerpt that fits a byte budget. (Interface fixed here; implementation in progress.)

use std::path::Path;

use serde::{Deserialize, Serialize};

/// One failing test (or failing step, for generic errors).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// Test id as the runner prints it, e.g. `tests/test_x.py::TestX::test_y`.
    pub test: String,
    /// Source file of the test, when known.
    pub file: Option<String>,
    /// 1-based line in `file`, when known.
    pub line: Option<u32>,
    /// The error message (one line), when known.
    pub message: Option<String>,
}

/// The distilled failure of a CI log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Distilled {
    /// Failing tests, most specific rule pack first, in log order.
    pub failures: Vec<Failure>,
    /// Failure signature: test id + normalised error line (numbers and hex ids masked).
    pub signature: Option<String>,
    /// The lines that matter, within the byte budget, as text.
    pub excerpt: String,
    /// 1-based line numbers in the original log of the excerpt's lines.
    pub source_lines: Vec<u64>,
}

/// Options for [`distil_path`] and [`distil_bytes`].
#[derive(Debug, Clone)]
pub struct DistilOptions {
    /// Maximum size of the excerpt in bytes.
    pub budget_bytes: usize,
}

impl Default for DistilOptions {
    fn default() -> Self {
        Self {
            budget_bytes: 16 * 1024,
        }
    }
}

/// Errors reading a log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The file could not be read.
    #[error("cannot read log `{path}`")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The input is not a log fixci can read (e.g. a broken or oversized archive).
    #[error("{0}")]
    Invalid(String),
}

/// Distils a log file: plain text, a GitHub run-logs ZIP, or JUnit XML.
pub fn distil_path(path: &Path, opts: &DistilOptions) -> Result<Distilled, LogError> {
    let bytes = std::fs::read(path).map_err(|source| LogError::Io {
        path: path.display().to_string(),
        source,
    })?;
    distil_bytes(&bytes, opts)
}

/// Distils log text held in memory (inline `raw-logs`).
pub fn distil_bytes(bytes: &[u8], opts: &DistilOptions) -> Result<Distilled, LogError> {
    let text = String::from_utf8_lossy(bytes);
    let mut excerpt = String::new();
    for line in text
        .lines()
        .rev()
        .take(60)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
    {
        if excerpt.len() + line.len() + 1 > opts.budget_bytes {
            break;
        }
        excerpt.push_str(line);
        excerpt.push('\n');
    }
    Ok(Distilled {
        excerpt,
        ..Default::default()
    })
}

/// The failure signature of one test run's output (same normalisation as
/// [`Distilled::signature`]), or `None` when the output shows no recognisable failure.
pub fn output_signature(output: &[u8]) -> Option<String> {
    distil_bytes(output, &DistilOptions::default())
        .ok()
        .and_then(|d| d.signature)
}

/// True when `output` (a test run's stdout+stderr) shows the failure described by `signature`.
pub fn signature_matches(signature: &str, output: &[u8]) -> bool {
    output_signature(output).as_deref() == Some(signature)
}
