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
    /// `==> entry <==` headings that separate archive entries and for the
    /// `… N lines omitted …` markers where a long block was cut in its middle).
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

/// Least share of the excerpt budget a failure's block gets when several compete (bytes).
const SHARE_FLOOR: usize = 1024;

/// Splits `budget` bytes among pieces costing `costs` bytes, in order: each gets at most its
/// cost and at least an equal share of what is left (or [`SHARE_FLOOR`]); what the cheap ones
/// leave goes to the ones cut, first come first served. The shares sum to at most `budget`.
fn allocate(costs: &[usize], budget: usize) -> Vec<usize> {
    let mut rem = budget;
    let n = costs.len();
    let mut shares: Vec<usize> = Vec::with_capacity(n);
    for (i, &c) in costs.iter().enumerate() {
        let share = (rem / (n - i)).max(SHARE_FLOOR).min(rem);
        let s = c.min(share);
        rem -= s;
        shares.push(s);
    }
    for (s, &c) in shares.iter_mut().zip(costs) {
        let extra = (c - *s).min(rem);
        *s += extra;
        rem -= extra;
    }
    shares
}

/// A line of a piece as the excerpt sees it.
struct CutLine {
    no: u64,
    repeat: u64,
    text: String,
    key: bool,
    cut_before: bool,
}

/// Groups digits by thousands: `1234567` -> `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// The marker standing for the lines omitted between kept lines `a` and `b` of a piece, when
/// lines lie between them (piece lines not kept, or lines the extractor dropped).
fn marker(lines: &[CutLine], a: usize, b: usize) -> Option<String> {
    if b == a + 1 && !lines[b].cut_before {
        return None;
    }
    let omitted = lines[b]
        .no
        .saturating_sub(lines[a].no.saturating_add(lines[a].repeat));
    (omitted > 0).then(|| {
        let unit = if omitted == 1 { "line" } else { "lines" };
        format!("… {} {unit} omitted …", thousands(omitted))
    })
}

fn marker_cost(lines: &[CutLine], a: Option<usize>, b: Option<usize>) -> usize {
    match (a, b) {
        (Some(a), Some(b)) => marker(lines, a, b).map_or(0, |m| m.len() + 1),
        _ => 0,
    }
}

/// The lines of a piece to keep within `room` bytes, markers included: all of them when they
/// fit; else first its anchors (the first and last line, and the first and last line of each
/// run of rule-matched lines: the header, the assertion or exception, the location at the end),
/// then the lines nearest an anchor (after it before before it), so bulk output (a hexdump, a
/// long diff) is cut in its middle.
fn select(lines: &[CutLine], room: usize) -> std::collections::BTreeSet<usize> {
    let n = lines.len();
    let all: std::collections::BTreeSet<usize> = (0..n).collect();
    let full: usize = lines.iter().map(|l| l.text.len() + 1).sum::<usize>()
        + (1..n).map(|i| marker_cost(lines, Some(i - 1), Some(i))).sum::<usize>();
    if full <= room {
        return all;
    }
    let change: Vec<bool> = lines
        .iter()
        .map(|l| extractor::is_diff_change(&l.text))
        .collect();
    let edge = |f: &dyn Fn(usize) -> bool, i: usize| f(i) && (!f(i - 1) || !f(i + 1));
    let anchor = |i: usize| {
        i == 0
            || i == n - 1
            || edge(&|j| lines[j].key, i)
            || edge(&|j| change[j], i)
    };
    // Distance to the nearest anchor: 2d after one, 2d + 1 before one.
    let mut prio = vec![usize::MAX; n];
    let mut last = None;
    for (i, p) in prio.iter_mut().enumerate() {
        if anchor(i) {
            last = Some(i);
        }
        if let Some(a) = last {
            *p = 2 * (i - a);
        }
    }
    let mut next = None;
    for i in (0..n).rev() {
        if anchor(i) {
            next = Some(i);
        }
        if let Some(a) = next {
            prio[i] = prio[i].min(2 * (a - i) + 1);
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| (prio[i], i));
    let mut picked = std::collections::BTreeSet::new();
    let mut used = 0usize;
    for i in order {
        let p = picked.range(..i).next_back().copied();
        let q = picked.range(i + 1..).next().copied();
        let cost = lines[i].text.len() + 1 + marker_cost(lines, p, Some(i))
            + marker_cost(lines, Some(i), q);
        let freed = marker_cost(lines, p, q);
        if used + cost <= room + freed {
            used = used + cost - freed;
            picked.insert(i);
        } else if prio[i] > 0 {
            break;
        }
    }
    picked
}

fn render(l: &ExLine) -> String {
    if l.repeat > 1 {
        format!("{} (x{})", l.text, l.repeat)
    } else {
        l.text.clone()
    }
}

/// Fits pieces into `budget` bytes: failures' blocks share the budget ([`allocate`]), then
/// summaries and error lines take what is left; a piece too big for its share is cut in its
/// middle ([`select`]) with a marker line `… N lines omitted …`. Lines come out in log order
/// with their original numbers; a marker's number is 0.
fn excerpt(
    mut pieces: Vec<Piece>,
    entries: &[Option<String>],
    budget: usize,
) -> (String, Vec<u64>) {
    pieces.sort_by_key(|p| p.rank);
    // (part, line, 0 for a marker before the line / 1 for the line) -> text
    let mut chosen: std::collections::BTreeMap<(usize, u64, u8), String> = Default::default();
    let mut used = 0usize;
    let multi = entries.len() > 1;
    let heading = |e: &Option<String>| format!("==> {} <==\n", e.as_deref().unwrap_or("log"));
    let costs: Vec<usize> = pieces
        .iter()
        .take_while(|p| p.rank == 0)
        .map(|p| {
            p.lines.iter().map(|l| render(l).len() + 1).sum::<usize>()
                + if multi { heading(&entries[p.part]).len() } else { 0 }
        })
        .collect();
    let shares = allocate(&costs, budget);
    let mut headed = std::collections::HashSet::new();
    for (k, p) in pieces.into_iter().enumerate() {
        let limit = shares
            .get(k)
            .copied()
            .unwrap_or(usize::MAX)
            .min(budget.saturating_sub(used));
        let head_cost = if multi && !headed.contains(&p.part) {
            heading(&entries[p.part]).len()
        } else {
            0
        };
        let lines: Vec<CutLine> = p
            .lines
            .iter()
            .filter(|l| !chosen.contains_key(&(p.part, l.no, 1)))
            .map(|l| CutLine {
                no: l.no,
                repeat: l.repeat,
                text: render(l),
                key: l.key,
                cut_before: l.cut_before,
            })
            .collect();
        if lines.is_empty() || limit <= head_cost {
            continue;
        }
        let take = select(&lines, limit - head_cost);
        if take.is_empty() {
            continue;
        }
        if head_cost > 0 {
            headed.insert(p.part);
            used += head_cost;
        }
        let mut prev: Option<usize> = None;
        for i in take {
            if let Some(m) = prev.and_then(|a| marker(&lines, a, i)) {
                used += m.len() + 1;
                chosen.insert((p.part, lines[i].no, 0), m);
            }
            used += lines[i].text.len() + 1;
            chosen.insert((p.part, lines[i].no, 1), lines[i].text.clone());
            prev = Some(i);
        }
    }
    let mut text = String::new();
    let mut nums = Vec::new();
    let mut last_part = None;
    for ((part, no, sub), t) in chosen {
        if multi && last_part != Some(part) {
            text.push_str(&heading(&entries[part]));
            nums.push(0);
            last_part = Some(part);
        }
        text.push_str(&t);
        text.push('\n');
        nums.push(if sub == 0 { 0 } else { no });
    }
    (text, nums)
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod expected_tests;
