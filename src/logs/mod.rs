//! Normalises CI logs and extracts the failure: failing tests, a failure signature and an
//! excerpt that fits a byte budget.
//!
//! Input is plain text (a GitHub Actions job or step log, any test runner's output), a GitHub
//! run-logs ZIP (`<n>_<job>.txt`, `<job>/<step#>_<step>.txt`) or a JUnit XML report. Text is
//! streamed in chunks ([`normaliser`]) and matched against rule packs (`rules/*.toml`, see
//! [`rule_pack`]) by the [`extractor`]; memory stays bounded whatever the log size. This module
//! does no network I/O: a run URL is the forge module's job.

pub mod extractor;
pub mod junit;
pub mod normaliser;
pub mod rule_pack;
pub mod signature;
mod source;

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use extractor::ids_compatible;
pub use signature::mask;

use extractor::{Candidate, ExLine, Extracted};

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
    /// The rule pack that recognised it (`pytest`, `cargo`, `generic`, `junit`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The `##[group]` (step) it was printed in, when the log has groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// The run-logs archive entry it came from, for ZIP input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
}

/// Why the job failed when no failing test was recognised: the first line of the highest-ranked
/// error kind (compile error, dependency resolution, out-of-memory kill, timeout, missing
/// command, a `##[error]` annotation, ... down to exit-status echoes, which rank lowest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoTestFailure {
    /// The line stating the error, normalised (no timestamp, no ANSI codes).
    pub error_line: String,
    /// Source file the error names (a compile error's location), when the log shows it.
    pub file: Option<String>,
    /// 1-based line in `file`.
    pub line: Option<u32>,
    /// 1-based line of `error_line` in the log (or archive entry).
    pub log_line: u64,
    /// The rule pack that recognised it (`cargo`, `dotnet`, `generic`, ...).
    pub kind: String,
    /// The `##[group]` / GitLab section (step) it was printed in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// The run-logs archive entry it came from, for ZIP input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
}

/// The distilled failure of a CI log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Distilled {
    /// Failing tests, most specific rule pack first, in log order; empty when the log names none.
    pub failures: Vec<Failure>,
    /// When `failures` is empty but the job failed: the real error line. `None` when a test
    /// failed, or when the log shows no error (or says the job succeeded).
    #[serde(default)]
    pub no_test_failure: Option<NoTestFailure>,
    /// Failure signature: test id + normalised error line (numbers and hex ids masked).
    pub signature: Option<String>,
    /// The lines that matter, within the byte budget, as text.
    pub excerpt: String,
    /// 1-based line numbers in the original log of the excerpt's lines (0 for the
    /// `==> entry <==` headings that separate archive entries).
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

/// Default cap on the bytes inflated from a run-logs ZIP (1 GiB); past it the archive is refused
/// as a ZIP bomb. GitHub run logs are far smaller.
pub const MAX_UNZIPPED_BYTES: u64 = 1 << 30;

/// Errors reading a log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The file could not be read.
    #[error("cannot read log `{path}`")]
    Io {
        /// The file (or `archive:entry`), as given.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The input is not a log fixci can read (e.g. a broken or oversized archive).
    #[error("{0}")]
    Invalid(String),
}

/// Distils a log file: plain text, a GitHub run-logs ZIP, or JUnit XML.
///
/// Text is streamed (peak memory is a few MiB whatever the size); a ZIP is read entry by entry
/// with its total uncompressed size capped by [`MAX_UNZIPPED_BYTES`].
///
/// # Errors
/// [`LogError::Io`] when the file cannot be opened or read; [`LogError::Invalid`] for binary
/// data, a broken archive or one over the size limit.
pub fn distil_path(path: &Path, opts: &DistilOptions) -> Result<Distilled, LogError> {
    distil_path_with_limit(path, opts, MAX_UNZIPPED_BYTES)
}

/// [`distil_path`] with another cap on the bytes inflated from a ZIP (`max_unzipped_bytes`).
///
/// # Errors
/// As [`distil_path`].
pub fn distil_path_with_limit(
    path: &Path,
    opts: &DistilOptions,
    max_unzipped_bytes: u64,
) -> Result<Distilled, LogError> {
    let parts = source::extract_path(path, max_unzipped_bytes)?;
    Ok(assemble(parts, opts))
}

/// Distils log bytes held in memory (inline `raw-logs`, a test run's output); ZIP and JUnit XML
/// are recognised by their first bytes.
///
/// # Errors
/// As [`distil_path`], naming the input `(inline)`.
pub fn distil_bytes(bytes: &[u8], opts: &DistilOptions) -> Result<Distilled, LogError> {
    let parts = source::extract_bytes(bytes, MAX_UNZIPPED_BYTES)?;
    Ok(assemble(parts, opts))
}

/// The failure signature of one test run's output (same normalisation as
/// [`Distilled::signature`]), or `None` when the output shows no recognisable failure.
pub fn output_signature(output: &[u8]) -> Option<String> {
    distil_bytes(output, &DistilOptions::default())
        .ok()
        .and_then(|d| d.signature)
}

/// True when `output` (a test run's stdout+stderr) shows the failure described by `signature`:
/// one of its failures has the same masked message and a compatible test id (equal, or one ends
/// with the other, as `Class.test` and `path.py::Class::test`).
pub fn signature_matches(signature: &str, output: &[u8]) -> bool {
    let Ok(d) = distil_bytes(output, &DistilOptions::default()) else {
        return false;
    };
    let (want_id, want_msg) = signature::split(signature);
    d.failures.iter().any(|f| {
        let sig = signature::signature(&f.test, f.message.as_deref());
        let (id, msg) = signature::split(&sig);
        msg == want_msg && ids_compatible(id, want_id)
    })
}

/// One source's extraction: the archive entry name (for ZIP input) and what it yielded.
pub(crate) struct Part {
    pub entry: Option<String>,
    pub kind_names: Vec<String>,
    pub extracted: Extracted,
}

/// Builds the result from the parts: test failures (or, failing those, generic errors), the
/// signature of the first, and the excerpt.
fn assemble(parts: Vec<Part>, opts: &DistilOptions) -> Distilled {
    // (part, candidate)
    let mut tests: Vec<(usize, &Candidate)> = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        tests.extend(p.extracted.failures.iter().map(|c| (i, c)));
    }
    tests.sort_by_key(|(i, c)| (std::cmp::Reverse(c.priority), *i, c.first_line));
    let mut failures = Vec::new();
    let mut pieces: Vec<Piece> = Vec::new();
    for (i, c) in &tests {
        let p = &parts[*i];
        failures.push(Failure {
            test: c.test.clone(),
            file: c.file.clone(),
            line: c.line,
            message: c.message.clone(),
            kind: p.kind_names.get(c.pack).cloned(),
            step: c.group.clone(),
            entry: p.entry.clone(),
        });
        pieces.push(Piece {
            part: *i,
            rank: 0,
            lines: c.lines.clone(),
        });
    }
    for (i, p) in parts.iter().enumerate() {
        for s in &p.extracted.summaries {
            pieces.push(Piece {
                part: i,
                rank: 1,
                lines: vec![s.clone()],
            });
        }
    }
    // Generic errors: reported only when no test failed; in the excerpt, the last few anyway.
    let mut generic: Vec<(usize, &extractor::GenericError)> = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        generic.extend(p.extracted.generic.iter().map(|g| (i, g)));
    }
    // No failing test: the highest-ranked error line, first in the log among equals, unless the
    // log says the job passed.
    let mut no_test_failure = None;
    if failures.is_empty() {
        let best = generic
            .iter()
            .filter(|(i, _)| !parts[*i].extracted.passed)
            .min_by_key(|(i, g)| (std::cmp::Reverse(g.rank), *i, g.line.no));
        if let Some((i, g)) = best {
            let p = &parts[*i];
            no_test_failure = Some(NoTestFailure {
                error_line: g.line.text.trim().to_string(),
                file: g.file.clone(),
                line: g.src_line,
                log_line: g.line.no,
                kind: p
                    .kind_names
                    .get(g.pack)
                    .cloned()
                    .unwrap_or_else(|| "generic".to_string()),
                step: g.group.clone(),
                entry: p.entry.clone(),
            });
            if !g.lines.is_empty() {
                pieces.push(Piece {
                    part: *i,
                    rank: 0,
                    lines: g.lines.clone(),
                });
            }
            pieces.push(Piece {
                part: *i,
                rank: 0,
                lines: vec![g.line.clone()],
            });
        }
    }
    let mut by_rank = generic.clone();
    by_rank.sort_by_key(|(i, g)| (std::cmp::Reverse(g.rank), *i, g.line.no));
    for (i, g) in by_rank.iter().take(10) {
        pieces.push(Piece {
            part: *i,
            rank: 2,
            lines: vec![g.line.clone()],
        });
    }
    let signature = failures
        .first()
        .map(|f| signature::signature(&f.test, f.message.as_deref()));
    let entries: Vec<Option<String>> = parts.iter().map(|p| p.entry.clone()).collect();
    let (excerpt, source_lines) = excerpt(pieces, &entries, opts.budget_bytes);
    Distilled {
        failures,
        no_test_failure,
        signature,
        excerpt,
        source_lines,
    }
}

/// A group of lines that should stay together in the excerpt; lower `rank` is kept first.
struct Piece {
    part: usize,
    rank: u8,
    lines: Vec<ExLine>,
}

/// The lines of a piece too big for `room` bytes: rule-matched lines first, then the lines
/// closest after them (a message's continuation, the rest of a traceback), in log order.
fn cut(lines: &[(u64, String, bool)], mut room: usize) -> Vec<(u64, String)> {
    let mut dist = vec![usize::MAX; lines.len()];
    let mut last_key: Option<usize> = None;
    for (i, (_, _, key)) in lines.iter().enumerate() {
        if *key {
            last_key = Some(i);
        }
        dist[i] = last_key.map_or(usize::MAX / 2 + (lines.len() - i), |k| i - k);
    }
    let mut order: Vec<usize> = (0..lines.len()).collect();
    order.sort_by_key(|&i| (dist[i], i));
    let mut picked = Vec::new();
    for i in order {
        let need = lines[i].1.len() + 1;
        if need <= room {
            room -= need;
            picked.push(i);
        }
    }
    picked.sort_unstable();
    picked
        .into_iter()
        .map(|i| (lines[i].0, lines[i].1.clone()))
        .collect()
}

fn render(l: &ExLine) -> String {
    if l.repeat > 1 {
        format!("{} (x{})", l.text, l.repeat)
    } else {
        l.text.clone()
    }
}

/// Fits pieces into `budget` bytes: whole pieces by rank, a piece too big for what is left is cut
/// to its head and tail. Lines come out in log order with their original numbers.
fn excerpt(
    mut pieces: Vec<Piece>,
    entries: &[Option<String>],
    budget: usize,
) -> (String, Vec<u64>) {
    pieces.sort_by_key(|p| p.rank);
    let mut chosen: std::collections::BTreeMap<(usize, u64), String> = Default::default();
    let mut used = 0usize;
    let multi = entries.len() > 1;
    let heading = |e: &Option<String>| format!("==> {} <==\n", e.as_deref().unwrap_or("log"));
    let mut headed = std::collections::HashSet::new();
    for p in pieces {
        let head_cost = if multi && !headed.contains(&p.part) {
            heading(&entries[p.part]).len()
        } else {
            0
        };
        let lines: Vec<(u64, String, bool)> = p
            .lines
            .iter()
            .filter(|l| !chosen.contains_key(&(p.part, l.no)))
            .map(|l| (l.no, render(l), l.key))
            .collect();
        if lines.is_empty() {
            continue;
        }
        let cost: usize = lines.iter().map(|(_, t, _)| t.len() + 1).sum::<usize>() + head_cost;
        let take: Vec<(u64, String)> = if used + cost <= budget {
            lines.into_iter().map(|(n, t, _)| (n, t)).collect()
        } else {
            cut(&lines, budget.saturating_sub(used + head_cost))
        };
        if take.is_empty() {
            continue;
        }
        if head_cost > 0 {
            headed.insert(p.part);
            used += head_cost;
        }
        for (no, t) in take {
            used += t.len() + 1;
            chosen.insert((p.part, no), t);
        }
    }
    let mut text = String::new();
    let mut nums = Vec::new();
    let mut last_part = None;
    for ((part, no), t) in chosen {
        if multi && last_part != Some(part) {
            text.push_str(&heading(&entries[part]));
            nums.push(0);
            last_part = Some(part);
        }
        text.push_str(&t);
        text.push('\n');
        nums.push(no);
    }
    (text, nums)
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod expected_tests;
