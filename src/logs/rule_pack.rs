//! Rule packs: one TOML file per test runner under `src/logs/rules/`, embedded in the binary.
//!
//! A pack lists literal `triggers` (the raw-scan prefilter: a line is looked at only when it holds
//! one of them, or when a section or block of some pack is open) and prioritised `[[rule]]`s, each a
//! regex with named capture groups (`test`, `name`, `file`, `line`, `message`) and a `role`.
//! This module parses and compiles packs; it does not apply them (see `extractor.rs`).

use regex::{Regex, RegexSet, RegexSetBuilder};
use serde::Deserialize;

/// The embedded packs, most specific first: `(file name, TOML text)`.
pub const EMBEDDED: &[(&str, &str)] = &[
    ("pytest.toml", include_str!("rules/pytest.toml")),
    ("cargo.toml", include_str!("rules/cargo.toml")),
    ("unittest.toml", include_str!("rules/unittest.toml")),
    ("go.toml", include_str!("rules/go.toml")),
    ("jest.toml", include_str!("rules/jest.toml")),
    ("phpunit.toml", include_str!("rules/phpunit.toml")),
    ("gtest.toml", include_str!("rules/gtest.toml")),
    ("rspec.toml", include_str!("rules/rspec.toml")),
    ("cucumber.toml", include_str!("rules/cucumber.toml")),
    ("maven.toml", include_str!("rules/maven.toml")),
    ("gradle.toml", include_str!("rules/gradle.toml")),
    ("xctest.toml", include_str!("rules/xctest.toml")),
    ("dotnet.toml", include_str!("rules/dotnet.toml")),
    ("playwright.toml", include_str!("rules/playwright.toml")),
    ("mocha.toml", include_str!("rules/mocha.toml")),
    ("ctest.toml", include_str!("rules/ctest.toml")),
    ("bazel.toml", include_str!("rules/bazel.toml")),
    ("generic.toml", include_str!("rules/generic.toml")),
];

/// Capacity in bytes of the lazy DFA's transition cache for [`RuleBook::set`] (regex's
/// `dfa_size_limit`; its default is 2 MiB).
///
/// The set holds about 150 patterns with Unicode classes, whose lazy DFA needs more states than
/// 2 MiB hold: the cache is cleared over and over, the lazy DFA gives up, and `is_match` and
/// `matches` fall back to the PikeVM (26% of `fixci logs` on the bench log; the set alone over
/// that log's 96,000 prefilter hits took 67 s with 2 MiB and 0.15-0.21 s with 4 to 32 MiB; see
/// BENCHMARKS.md). The cache grows only as states are built, so this is a bound, not an
/// allocation.
pub const SET_DFA_CACHE: usize = 8 << 20;

/// What a matching line does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Suppresses the line everywhere (known-harmless output).
    Noise,
    /// Opens a section of the pack (e.g. pytest `= FAILURES =`); `in-section` rules need it.
    SectionStart,
    /// Closes the pack's open section and block.
    SectionEnd,
    /// Opens a failure block (a traceback); captures `test`, maybe `message`, `file`, `line`.
    BlockStart,
    /// Closes the pack's open block.
    BlockEnd,
    /// Sets the open block's error message (`message`, maybe `file`/`line`).
    Message,
    /// Adds a `file`/`line` location to the open block.
    Location,
    /// A line naming a failing test on its own (`FAILED path::test - msg`).
    Failure,
    /// A run summary (`test result: FAILED`), kept in the excerpt.
    Summary,
    /// A generic error line; reported only when no pack found a failing test.
    Error,
    /// The job (or step) succeeded (`Job succeeded`, `Finished: SUCCESS`): error lines before it
    /// are not reported as the reason the job failed.
    JobPassed,
    /// Continues a test title over lines (mocha prints one suite level per line): while the open
    /// block's title is open (`title-next`), a match appends its `test` capture; an `end`
    /// capture (the title's closing `:`) or a line that does not match closes the title.
    TitlePart,
    /// Names the test now running (`=== RUN   TestX`); messages seen outside a block are kept
    /// for the block of that test (go test -v prints them before `--- FAIL`). A match with no
    /// `test` capture (`Test Case '...' passed`) means no test is running any more.
    Context,
}

/// Which of several matches within a block wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Keep {
    /// The first match in the block; among locations, the first in a test file when there is one
    /// (inner-to-outer stack traces: JavaScript, Java, .NET).
    #[default]
    First,
    /// The last match in the block.
    Last,
    /// The first match in a test file (outer-to-inner tracebacks such as Python's, where it is
    /// the test method's frame), else the last match.
    FirstTest,
}

/// One `[[rule]]` as written in a pack file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RuleSpec {
    /// What a match does.
    pub role: Role,
    /// Regex over one normalised line (no timestamp, no ANSI, no trailing newline).
    pub pattern: String,
    /// For `message`/`location`: which match in a block wins.
    #[serde(default)]
    pub keep: Keep,
    /// The next non-blank line is the block's message.
    #[serde(default)]
    pub message_next: bool,
    /// For `block-start`: only inside a section of the same pack.
    #[serde(default)]
    pub in_section: bool,
    /// For `block-start`: a regex that also ends this kind of block.
    #[serde(default)]
    pub end: Option<String>,
    /// For `block-start`: the block counts only when a `failure` line names the same test.
    #[serde(default)]
    pub confirm: bool,
    /// For `message`: also kept when seen outside a block, for the next block of the same test
    /// (go test -v prints messages before `--- FAIL`). Such a pattern must hold a trigger.
    #[serde(default)]
    pub before_block: bool,
    /// For `error` (and `no-test` blocks): higher ranks are reported first.
    #[serde(default)]
    pub rank: i32,
    /// For `block-start`: the block is an error that stopped the job before or outside the tests
    /// (a compile error), not a failing test; it competes with `error` lines by `rank` for
    /// [`crate::logs::NoTestFailure`].
    #[serde(default)]
    pub no_test: bool,
    /// For `block-start`: the title may go on over the next lines (`title-part` rules), unless
    /// the header has an `end` capture.
    #[serde(default)]
    pub title_next: bool,
    /// For `block-start`: only when no block is open (a bare Rust panic starts a failure of its
    /// own, but inside a test's block it is that test's location).
    #[serde(default)]
    pub standalone: bool,
    /// For `block-start` and `failure`: captured test ids that are not tests (a panic on the
    /// `main` thread is a crashed program).
    #[serde(default)]
    pub not_tests: Vec<String>,
    /// For `failure`: when a failure of the same pack already names a test that starts with this
    /// one (the runner cut the id, as RSpec's `rspec ./x_spec.rb:75 # description`), only its
    /// `file`/`line` are set from this line.
    #[serde(default)]
    pub attach: bool,
    /// For `failure`: a line that names no test is the failure of the test a `context` rule of
    /// the pack last named, and of nothing when no test is running (XCTest prints
    /// `Test Case '-[M.C testX]' started.`, then only `Fatal error: ...` and `Restarting after
    /// unexpected exit, crash, or test timeout; ...` when the test crashes its process).
    #[serde(default)]
    pub of_running: bool,
}

/// One pack file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PackSpec {
    /// Pack name, e.g. `pytest`.
    pub name: String,
    /// Higher is more specific; failures of higher packs are listed first.
    pub priority: i32,
    /// Literal substrings, one of which every line matched outside sections and blocks holds
    /// (checked on every real log by `the_prefilter_misses_no_line_of_any_real_log`).
    ///
    /// The prefilter scans for all packs' triggers at once, so keep them few (one short literal
    /// for a family: `ailed` for `Failed`/`failed`, ` SIG` for nextest's `SIGSEGV`/`SIG 11`),
    /// at least 4 bytes (aho-corasick's Teddy fingerprints the first `min(4, shortest)` bytes, so a
    /// 3-byte literal makes every group slower) and rare in passing output. Triggers of
    /// `in-section` and block-only rules (`block-end`, `message`, `location`) are not needed.
    pub triggers: Vec<String>,
    /// The rules, in priority order within the pack.
    #[serde(default, rename = "rule")]
    pub rules: Vec<RuleSpec>,
}

/// A compiled rule.
#[derive(Debug)]
pub struct Rule {
    /// Index of the pack in [`RuleBook::packs`].
    pub pack: usize,
    /// The rule as written.
    pub spec: RuleSpec,
    /// Its compiled pattern.
    pub re: Regex,
    /// Its compiled `end` pattern.
    pub end: Option<Regex>,
}

/// All packs compiled together.
#[derive(Debug)]
pub struct RuleBook {
    /// The packs, in [`EMBEDDED`] order.
    pub packs: Vec<PackSpec>,
    /// Every rule of every pack; rules of one pack are contiguous and in file order.
    pub rules: Vec<Rule>,
    /// Non-noise rules matched together: indices into `set_rules`.
    pub set: RegexSet,
    /// `set` index -> `rules` index.
    pub set_rules: Vec<usize>,
    /// All noise patterns.
    pub noise: RegexSet,
    /// Prefilter over raw bytes: every pack's triggers plus the GitHub group markers.
    pub prefilter: Prefilter,
    /// The prefilter as a POSIX ERE (for `grep -E`, the benchmark's raw-scan floor).
    pub prefilter_ere: String,
}

/// The raw-scan prefilter: finds the next occurrence of any trigger literal.
///
/// `AhoCorasick` uses its SIMD packed searcher (Teddy) only for at most 64 patterns; past that it
/// steps its automaton over every byte, several times slower than `grep -E` (and Teddy itself,
/// with its heuristic limit lifted, slows down with >64 patterns: its 16 buckets hold too many
/// patterns each and every candidate position needs long verification). So the literals are
/// split into groups of at most [`Prefilter::GROUP`], one packed searcher each, and the caller
/// keeps each group's next match ([`Prefilter::find`]'s `next`) so no byte is scanned twice by
/// one group. Without SIMD (no SSSE3/AVX2 or NEON) one `AhoCorasick` automaton is used.
#[derive(Debug, Clone)]
pub struct Prefilter {
    packed: Vec<aho_corasick::packed::Searcher>,
    ac: Option<aho_corasick::AhoCorasick>,
}

impl Prefilter {
    /// Most literals in one packed searcher (aho-corasick's own limit for Teddy).
    pub const GROUP: usize = 64;

    /// A prefilter over `lits`.
    ///
    /// Errors: [`PackError::Prefilter`] when the automaton cannot be built.
    pub fn new(lits: &[String]) -> Result<Self, PackError> {
        let groups = lits.len().div_ceil(Self::GROUP).max(1);
        let size = lits.len().div_ceil(groups).max(1);
        let packed: Option<Vec<_>> = lits
            .chunks(size)
            .map(|chunk| {
                aho_corasick::packed::Config::new()
                    .match_kind(aho_corasick::packed::MatchKind::LeftmostFirst)
                    .builder()
                    .extend(chunk)
                    .build()
            })
            .collect();
        match packed {
            Some(packed) if !packed.is_empty() => Ok(Self { packed, ac: None }),
            _ => {
                let ac = aho_corasick::AhoCorasick::builder()
                    .match_kind(aho_corasick::MatchKind::LeftmostFirst)
                    .build(lits)
                    .map_err(|source| PackError::Prefilter { source })?;
                Ok(Self {
                    packed: Vec::new(),
                    ac: Some(ac),
                })
            }
        }
    }

    /// A fresh cache for [`Prefilter::find`] over one haystack.
    pub fn cache(&self) -> Vec<Option<Option<usize>>> {
        vec![None; self.packed.len()]
    }

    /// The start offset (in `haystack`) of the first trigger occurring in `haystack[span]`.
    ///
    /// `next` comes from [`Prefilter::cache`] and must be used with one `haystack` only, with
    /// spans that all end at the same offset and whose starts never decrease (it holds each
    /// group's next match at or after the previous start, or that it has none before the end).
    pub fn find(
        &self,
        haystack: &[u8],
        span: std::ops::Range<usize>,
        next: &mut [Option<Option<usize>>],
    ) -> Option<usize> {
        if let Some(ac) = &self.ac {
            return ac
                .find(aho_corasick::Input::new(haystack).span(span))
                .map(|m| m.start());
        }
        let mut best: Option<usize> = None;
        for (p, slot) in self.packed.iter().zip(next.iter_mut()) {
            let hit = match *slot {
                Some(None) => None,
                Some(Some(s)) if s >= span.start => Some(s),
                _ => {
                    let found = p.find_in(haystack, span.clone().into()).map(|m| m.start());
                    *slot = Some(found);
                    found
                }
            };
            if let Some(h) = hit {
                best = Some(best.map_or(h, |b| b.min(h)));
            }
        }
        best
    }
}

/// Errors in a rule pack (a bug in fixci's embedded data; a unit test checks every pack).
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// The TOML did not parse or had unknown keys.
    #[error("rule pack `{file}` is invalid")]
    Toml {
        /// The pack's file name.
        file: String,
        /// The parse error.
        #[source]
        source: toml::de::Error,
    },
    /// The triggers did not make a searcher.
    #[error("rule pack triggers do not build a prefilter")]
    Prefilter {
        /// The builder's error.
        #[source]
        source: aho_corasick::BuildError,
    },
    /// A pattern did not compile.
    #[error("rule pack `{file}`: pattern `{pattern}` does not compile")]
    Regex {
        /// The pack's file name.
        file: String,
        /// The pattern as written.
        pattern: String,
        /// The compile error.
        #[source]
        source: regex::Error,
    },
}

/// Parses and compiles the given packs.
pub fn compile(files: &[(&str, &str)]) -> Result<RuleBook, PackError> {
    let mut packs = Vec::new();
    let mut rules = Vec::new();
    let mut noise = Vec::new();
    for (i, (file, text)) in files.iter().enumerate() {
        let spec: PackSpec = toml::from_str(text).map_err(|source| PackError::Toml {
            file: file.to_string(),
            source,
        })?;
        let re_err = |pattern: &str, source| PackError::Regex {
            file: file.to_string(),
            pattern: pattern.to_string(),
            source,
        };
        for r in &spec.rules {
            let re = Regex::new(&r.pattern).map_err(|e| re_err(&r.pattern, e))?;
            let end = match &r.end {
                Some(p) => Some(Regex::new(p).map_err(|e| re_err(p, e))?),
                None => None,
            };
            if r.role == Role::Noise {
                noise.push(r.pattern.clone());
            }
            rules.push(Rule {
                pack: i,
                spec: r.clone(),
                re,
                end,
            });
        }
        packs.push(spec);
    }
    let set_rules: Vec<usize> = (0..rules.len())
        .filter(|&i| rules[i].spec.role != Role::Noise)
        .collect();
    let set = RegexSetBuilder::new(set_rules.iter().map(|&i| rules[i].spec.pattern.as_str()))
        .dfa_size_limit(SET_DFA_CACHE)
        .build()
        .map_err(|e| PackError::Regex {
            file: "(all)".into(),
            pattern: "(set)".into(),
            source: e,
        })?;
    let noise = RegexSet::new(&noise).map_err(|e| PackError::Regex {
        file: "(all)".into(),
        pattern: "(noise)".into(),
        source: e,
    })?;
    let mut lits: Vec<String> = packs
        .iter()
        .flat_map(|p| p.triggers.iter().cloned())
        .collect();
    // `##[group]`/`##[endgroup]` and `section_start:`/`section_end:`, one literal per pair.
    lits.push("group]".into());
    lits.push("section_".into());
    lits.sort();
    lits.dedup();
    let lits = without_subsumed(lits);
    let prefilter = Prefilter::new(&lits)?;
    let prefilter_ere = lits
        .iter()
        .map(|l| ere_escape(l))
        .collect::<Vec<_>>()
        .join("|");
    Ok(RuleBook {
        packs,
        rules,
        set,
        set_rules,
        noise,
        prefilter,
        prefilter_ere,
    })
}

/// The literals that contain no other literal of the set: a line holding `FAIL [` also holds
/// `FAIL`, so the longer one adds nothing to the prefilter. Keeping the set small keeps the scan on
/// [`Prefilter`]'s groups few and each on aho-corasick's packed (Teddy) searcher, which slows as
/// its patterns grow.
fn without_subsumed(lits: Vec<String>) -> Vec<String> {
    lits.iter()
        .filter(|l| !lits.iter().any(|o| o != *l && l.contains(o.as_str())))
        .cloned()
        .collect()
}

/// Escapes a literal for a POSIX extended regular expression.
fn ere_escape(lit: &str) -> String {
    let mut out = String::with_capacity(lit.len());
    for c in lit.chars() {
        match c {
            '\t' => out.push('\t'),
            '.' | '[' | ']' | '(' | ')' | '*' | '+' | '?' | '{' | '}' | '|' | '^' | '$' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// The embedded packs, compiled once.
///
/// # Errors
/// Only if an embedded pack is broken (a unit test compiles them all).
pub fn embedded() -> Result<&'static RuleBook, &'static PackError> {
    static BOOK: std::sync::OnceLock<Result<RuleBook, PackError>> = std::sync::OnceLock::new();
    BOOK.get_or_init(|| compile(EMBEDDED)).as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_pack_parses_and_every_regex_compiles() {
        let book = compile(EMBEDDED).expect("embedded packs compile");
        assert_eq!(book.packs.len(), EMBEDDED.len());
        for p in &book.packs {
            assert!(!p.triggers.is_empty(), "pack `{}` has no triggers", p.name);
            assert!(!p.rules.is_empty(), "pack `{}` has no rules", p.name);
        }
        let names: Vec<&str> = book.packs.iter().map(|p| p.name.as_str()).collect();
        for want in [
            "pytest",
            "unittest",
            "cargo",
            "go",
            "jest",
            "phpunit",
            "gtest",
            "rspec",
            "cucumber",
            "maven",
            "gradle",
            "xctest",
            "dotnet",
            "playwright",
            "mocha",
            "ctest",
            "bazel",
            "generic",
        ] {
            assert!(names.contains(&want), "missing pack `{want}`");
        }
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let bad = "name = \"x\"\npriority = 1\ntriggers = [\"a\"]\n[[rule]]\nrole = \"failure\"\npattern = \"a\"\nkepe = \"first\"\n";
        let err = compile(&[("bad.toml", bad)]).unwrap_err();
        assert!(err.to_string().contains("bad.toml"), "{err}");
    }

    #[test]
    fn a_bad_regex_names_the_pack_and_pattern() {
        let bad = "name = \"x\"\npriority = 1\ntriggers = [\"a\"]\n[[rule]]\nrole = \"failure\"\npattern = \"(a\"\n";
        let err = compile(&[("bad.toml", bad)]).unwrap_err();
        assert!(err.to_string().contains("`(a`"), "{err}");
    }
}
