//! The layered extractor: applies the rule packs to a stream of lines and collects failing tests,
//! their blocks (tracebacks), summaries and generic error lines.
//!
//! Outside sections and blocks it does not look at every line: a prefilter (the packs' literal
//! triggers, one regex over the raw chunk) jumps to candidate lines, and only those are normalised
//! and matched. Inside an open section or block every line is processed. It keeps bounded state
//! whatever the input size: blocks, lines and candidates are capped.

use std::collections::VecDeque;

use regex::Captures;

use super::normaliser::{self, gitlab_section, group_marker};
use super::rule_pack::{Keep, Role, RuleBook};

/// Longest excerpt line kept, in bytes.
const EXCERPT_LINE_CAP: usize = 2048;
/// Lines kept from the start of a block.
const BLOCK_HEAD: usize = 200;
/// Lines kept from the end of a block (the ones before its end: a panic after a hexdump, the
/// location after a long diff).
const BLOCK_TAIL: usize = 150;
/// Rule-matched lines kept from the middle of a block whose middle is dropped.
const BLOCK_MIDDLE_KEYS: usize = 50;
/// A block or section longer than this (in lines) is closed.
const BLOCK_MAX: u64 = 50_000;
const SECTION_MAX: u64 = 50_000;
/// Bytes of excerpt text held across all blocks.
const STORED_BYTES: usize = 8 << 20;
const MAX_CANDIDATES: usize = 10_000;
const MAX_GENERIC: usize = 100;
const MAX_SUMMARIES: usize = 100;

/// A line kept for the excerpt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExLine {
    /// 1-based line number in the original log (or archive entry).
    pub no: u64,
    /// Normalised text, capped at 2 KiB.
    pub text: String,
    /// Consecutive identical lines it stands for.
    pub repeat: u64,
    /// A rule matched it (header, message, location): kept first when a block is cut.
    pub key: bool,
    /// Lines of its block right before it were dropped while the block was read (only its
    /// first 200 lines, its last 150 and up to 50 rule-matched lines between are kept).
    pub cut_before: bool,
}

/// A failing test as one pack saw it (a block, a failure line, or both merged).
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Index of the pack in the rule book.
    pub pack: usize,
    /// The pack's priority (higher is listed first).
    pub priority: i32,
    /// 1-based line where it was first seen.
    pub first_line: u64,
    /// Test id.
    pub test: String,
    /// Test file, when a rule captured it.
    pub file: Option<String>,
    /// 1-based line in `file`.
    pub line: Option<u32>,
    /// Error message (one line).
    pub message: Option<String>,
    /// Locations seen in its block, in order.
    pub locations: Vec<(String, u32)>,
    /// Which location wins when the test's own file is not among them.
    pub location_keep: Keep,
    /// The block's lines, or the failure line.
    pub lines: Vec<ExLine>,
    /// It came from a block (a traceback), not only from a one-line failure.
    pub from_block: bool,
    /// The block counts only if a failure line confirms it (googletest `[ RUN ]`).
    pub confirm: bool,
    /// The `##[group]` (step) it was printed in.
    pub group: Option<String>,
    /// The runner's verdict for the test when it printed no message (a `status` capture such as
    /// ctest's `Timeout`, or the message of the section that lists it, as go's `test timed out
    /// after 10m0s`): the message when neither a rule nor the block gives one.
    pub status: Option<String>,
}

/// A generic error line (or a `no-test` block such as a compile error).
#[derive(Debug, Clone)]
pub struct GenericError {
    /// Index of the pack in the rule book.
    pub pack: usize,
    /// The rule's rank (exit-code lines rank lowest).
    pub rank: i32,
    /// The captured message.
    pub message: String,
    /// The line itself.
    pub line: ExLine,
    /// The `##[group]` (step) it was printed in.
    pub group: Option<String>,
    /// Source file the error names, when a rule captured it.
    pub file: Option<String>,
    /// 1-based line in `file`.
    pub src_line: Option<u32>,
    /// The block's lines (for `no-test` blocks), else empty.
    pub lines: Vec<ExLine>,
}

/// What one log (or archive entry) yielded.
#[derive(Debug, Default)]
pub struct Extracted {
    /// Failing tests of the test-runner packs, merged, in log order.
    pub failures: Vec<Candidate>,
    /// Summary lines.
    pub summaries: Vec<ExLine>,
    /// The last generic error lines.
    pub generic: Vec<GenericError>,
    /// Lines read.
    pub lines: u64,
    /// A `job-passed` line came after the last generic error: the job succeeded.
    pub passed: bool,
}

#[derive(Debug)]
struct Block {
    cand: Candidate,
    /// The block's latest lines once `cand.lines` holds [`BLOCK_HEAD`] of them, each with
    /// whether it is worth keeping from the middle (see [`Block::push`]).
    tail: VecDeque<(ExLine, bool)>,
    /// The last line pushed was rule-matched.
    prev_key: bool,
    /// A line was dropped since the last one moved from `tail` to `cand.lines`.
    dropped: bool,
    rule: usize,
    message_next: bool,
    header_line: u64,
    n_lines: u64,
    message_set_by_next: bool,
    /// The message taken from the next line is only an exception class (`java.lang.AssertionError:`):
    /// the next non-blank line (`Expected: ...`) is appended to it.
    message_append: bool,
    title_open: bool,
}

#[derive(Debug)]
struct Section {
    pack: usize,
    n_lines: u64,
    /// The section header's `message` capture: the status of the failures it lists.
    message: Option<String>,
}

/// The extractor's state over one log.
pub struct Extractor<'b> {
    book: &'b RuleBook,
    line_no: u64,
    group: Option<String>,
    section: Option<Section>,
    block: Option<Block>,
    candidates: Vec<Candidate>,
    provisional: VecDeque<Candidate>,
    /// Per pack: messages seen outside a block, with the test running then (newest last).
    pending: Vec<VecDeque<(Option<String>, Candidate)>>,
    /// Per pack: the test a `context` rule last named.
    context: Vec<Option<String>>,
    summaries: Vec<ExLine>,
    generic: VecDeque<GenericError>,
    /// Error blocks (`no-test`), first ones kept.
    no_test: Vec<GenericError>,
    /// Headers of blocks with no line of their own, waiting for the next block's message
    /// (vitest lists several `FAIL` headers above one shared error).
    waiting: Vec<Candidate>,
    passed_at: Option<u64>,
    stored: usize,
    /// Process every line, not only prefilter hits (for tests of the prefilter's soundness).
    pub exhaustive: bool,
}

impl<'b> Extractor<'b> {
    /// A fresh extractor over `book`.
    pub fn new(book: &'b RuleBook) -> Self {
        Self {
            book,
            line_no: 0,
            group: None,
            section: None,
            block: None,
            candidates: Vec::new(),
            provisional: VecDeque::new(),
            pending: vec![VecDeque::new(); book.packs.len()],
            context: vec![None; book.packs.len()],
            summaries: Vec::new(),
            generic: VecDeque::new(),
            no_test: Vec::new(),
            waiting: Vec::new(),
            passed_at: None,
            stored: 0,
            exhaustive: false,
        }
    }

    fn slow(&self) -> bool {
        self.exhaustive || self.section.is_some() || self.block.is_some()
    }

    /// Feeds a run of whole lines (as [`normaliser::ChunkReader::next_region`] returns them).
    pub fn feed(&mut self, region: &[u8]) {
        let mut pos = 0;
        let n = region.len();
        let mut next = self.book.prefilter.cache();
        while pos < n {
            if self.slow() {
                let e = memchr::memchr(b'\n', &region[pos..]).map_or(n, |i| pos + i);
                self.line_no += 1;
                self.handle(&region[pos..e]);
                pos = e + 1;
                continue;
            }
            match self.book.prefilter.find(region, pos..n, &mut next) {
                None => {
                    let rest = &region[pos..];
                    self.line_no += memchr::memchr_iter(b'\n', rest).count() as u64;
                    if rest.last() != Some(&b'\n') {
                        self.line_no += 1;
                    }
                    return;
                }
                Some(start) => {
                    let ls = memchr::memrchr(b'\n', &region[pos..start]).map_or(pos, |i| pos + i + 1);
                    self.line_no += memchr::memchr_iter(b'\n', &region[pos..ls]).count() as u64;
                    let e = memchr::memchr(b'\n', &region[start..]).map_or(n, |i| start + i);
                    self.line_no += 1;
                    self.handle(&region[ls..e]);
                    pos = e + 1;
                }
            }
        }
    }

    fn handle(&mut self, raw: &[u8]) {
        let line_raw = &raw[..raw.len().min(normaliser::LINE_CAP)];
        let unstamped = &line_raw[normaliser::timestamp_len(line_raw)..];
        if let Some((start, name, _)) = gitlab_section(unstamped) {
            self.group = start.then(|| String::from_utf8_lossy(name).into_owned());
        }
        let norm = normaliser::normalise_line(raw);
        match group_marker(&norm) {
            Some(Some(name)) => {
                self.group = Some(String::from_utf8_lossy(name).trim().to_string());
                return;
            }
            Some(None) => return,
            None => {}
        }
        let text = String::from_utf8_lossy(&norm);
        let text: &str = &text;
        let book = self.book;
        if book.noise.is_match(text) {
            return;
        }
        let no = self.line_no;
        let mut key = false;
        // The message of a block whose header says it comes on the next non-blank line.
        if let Some(b) = &mut self.block {
            if b.message_append && !text.trim().is_empty() {
                key = true;
                b.message_append = false;
                if let Some(m) = &mut b.cand.message {
                    m.push(' ');
                    m.push_str(text.trim());
                }
            } else if b.message_next && b.header_line != no && !text.trim().is_empty() {
                key = true;
                let m = text.trim();
                b.message_append = is_bare_exception(m);
                b.cand.message = Some(m.to_string());
                b.message_next = false;
                b.message_set_by_next = true;
            }
        }
        // `is_match` stops at the first rule that matches; `matches` (every rule that matches)
        // runs the whole set over the line, so it only runs on the few lines some rule matches.
        // Both stay on the lazy DFA only while its cache is big enough (`SET_DFA_CACHE`).
        let mut hits: Vec<usize> = if book.set.is_match(text) {
            book.set.matches(text).iter().map(|i| book.set_rules[i]).collect()
        } else {
            Vec::new()
        };
        hits.sort_unstable();

        // The title of a block going on over this line (mocha).
        if let Some(b) = &mut self.block {
            if b.title_open && b.header_line != no {
                let part = hits.iter().find_map(|&r| {
                    let rr = &book.rules[r];
                    (rr.pack == b.cand.pack && rr.spec.role == Role::TitlePart)
                        .then(|| rr.re.captures(text))
                        .flatten()
                });
                match part {
                    Some(caps) => {
                        let t = caps.name("test").map_or("", |m| m.as_str()).trim();
                        b.cand.test.push(' ');
                        b.cand.test.push_str(t);
                        b.title_open = caps.name("end").is_none();
                        b.n_lines += 1;
                        b.push(&mut self.stored, no, text, true);
                        return;
                    }
                    None if !text.trim().is_empty() => b.title_open = false,
                    None => {}
                }
            }
        }

        // Ends first: the block's own end pattern, then block-end / section-end rules.
        if let Some(b) = &self.block {
            let rule = &book.rules[b.rule];
            let own_end = rule.end.as_ref().is_some_and(|e| e.is_match(text));
            // A header of the same kind is not an end: opening it closes this block, and a
            // header-only block then shares the next one's message.
            let same_header = hits
                .iter()
                .any(|&r| r == b.rule && book.rules[r].re.is_match(text));
            // A section end closes a block only inside that section (ctest's recap ends at any
            // unindented line, which is also what a test prints under `--output-on-failure`).
            let in_own_section = self.section.as_ref().map(|s| s.pack) == Some(b.cand.pack);
            let pack_end = !same_header
                && hits.iter().any(|&r| {
                    let rr = &book.rules[r];
                    rr.pack == b.cand.pack
                        && (rr.spec.role == Role::BlockEnd
                            || (rr.spec.role == Role::SectionEnd && in_own_section))
                });
            if own_end || pack_end || b.n_lines >= BLOCK_MAX {
                self.close_block();
            }
        }
        if let Some(s) = &self.section {
            let end = hits.iter().any(|&r| {
                let rr = &book.rules[r];
                rr.pack == s.pack && rr.spec.role == Role::SectionEnd
            });
            if end || s.n_lines >= SECTION_MAX {
                self.section = None;
            }
        }
        if let Some(s) = &mut self.section {
            s.n_lines += 1;
        }

        // Structural rules: the first applicable one per pack.
        let mut structural_packs: Vec<usize> = Vec::new();
        for &r in &hits {
            let rule = &book.rules[r];
            if structural_packs.contains(&rule.pack) {
                continue;
            }
            let applied = match rule.spec.role {
                Role::SectionStart => {
                    self.close_block();
                    let message = rule
                        .re
                        .captures(text)
                        .and_then(|c| {
                            c.name("message")
                                .or_else(|| c.name("status"))
                                .map(|m| m.as_str().trim().to_string())
                        })
                        .filter(|m| !m.is_empty());
                    self.section = Some(Section {
                        pack: rule.pack,
                        n_lines: 0,
                        message,
                    });
                    true
                }
                Role::BlockStart => {
                    if (rule.spec.in_section
                        && self.section.as_ref().map(|s| s.pack) != Some(rule.pack))
                        || (rule.spec.standalone && self.block.is_some())
                    {
                        false
                    } else if let Some(caps) = rule
                        .re
                        .captures(text)
                        .filter(|c| !rule.spec.not_tests.contains(&test_id(c)))
                    {
                        self.open_block(r, &caps, no);
                        true
                    } else {
                        false
                    }
                }
                Role::Failure => {
                    if rule.spec.in_section
                        && self.section.as_ref().map(|s| s.pack) != Some(rule.pack)
                    {
                        false
                    } else {
                        if let Some(caps) = rule
                            .re
                            .captures(text)
                            .filter(|c| !rule.spec.not_tests.contains(&test_id(c)))
                        {
                            self.failure_line(r, &caps, no, text);
                        }
                        true
                    }
                }
                Role::JobPassed => {
                    self.passed_at = Some(no);
                    true
                }
                Role::Summary => {
                    if self.summaries.len() < MAX_SUMMARIES {
                        self.summaries.push(ex_line(no, text));
                    }
                    true
                }
                Role::Context => {
                    if let Some(caps) = rule.re.captures(text) {
                        let test = test_id(&caps);
                        self.context[rule.pack] = (!test.is_empty()).then_some(test);
                    }
                    true
                }
                Role::Error => {
                    if let Some(caps) = rule.re.captures(text) {
                        let message = caps
                            .name("message")
                            .map_or(text, |m| m.as_str())
                            .trim()
                            .to_string();
                        // A message that is only a number (`Error: 0`) says nothing.
                        let says_something = message.chars().any(char::is_alphabetic);
                        if says_something {
                            if self.generic.len() == MAX_GENERIC {
                                self.generic.pop_front();
                            }
                            self.generic.push_back(GenericError {
                                pack: rule.pack,
                                rank: rule.spec.rank,
                                message,
                                line: ex_line(no, text),
                                group: self.group.clone(),
                                file: caps.name("file").map(|f| f.as_str().to_string()),
                                src_line: caps.name("line").and_then(|l| l.as_str().parse().ok()),
                                lines: Vec::new(),
                            });
                        }
                    }
                    true
                }
                _ => false,
            };
            if applied {
                key = true;
                structural_packs.push(rule.pack);
            }
        }

        // Messages and locations: into the open block of the same pack, else pending.
        let block_pack = self.block.as_ref().map(|b| b.cand.pack);
        for &r in &hits {
            let rule = &book.rules[r];
            if !matches!(rule.spec.role, Role::Message | Role::Location) {
                continue;
            }
            if structural_packs.contains(&rule.pack) && block_pack != Some(rule.pack) {
                continue;
            }
            let Some(caps) = rule.re.captures(text) else {
                continue;
            };
            key = true;
            if block_pack == Some(rule.pack) {
                if let Some(b) = &mut self.block {
                    apply_detail(
                        &mut b.cand,
                        rule.spec.role,
                        rule.spec.keep,
                        &caps,
                        b.message_set_by_next,
                    );
                    if rule.spec.message_next {
                        b.message_next = true;
                        b.header_line = no;
                    }
                }
            } else if rule.spec.role == Role::Message && rule.spec.before_block {
                let mut c = empty_candidate(rule.pack, book.packs[rule.pack].priority, no);
                apply_detail(&mut c, Role::Message, Keep::First, &caps, false);
                c.lines.push(ex_line(no, text));
                let q = &mut self.pending[rule.pack];
                if q.len() == 16 {
                    q.pop_front();
                }
                q.push_back((self.context[rule.pack].clone(), c));
            }
        }

        if let Some(b) = &mut self.block {
            b.n_lines += 1;
            b.push(&mut self.stored, no, text, key);
        }
    }

    fn open_block(&mut self, r: usize, caps: &Captures<'_>, no: u64) {
        let rule = &self.book.rules[r];
        // The open block is only a header of the same kind: it shares this block's message.
        if let Some(b) = &self.block {
            if b.rule == r && b.n_lines <= 1 && b.cand.message.is_none() && !rule.spec.no_test {
                if let Some(b) = self.block.take() {
                    if self.waiting.len() < 64 {
                        self.waiting.push(b.into_candidate());
                    }
                }
            }
        }
        self.close_block();
        let mut cand = empty_candidate(rule.pack, self.book.packs[rule.pack].priority, no);
        cand.test = test_id(caps);
        cand.status = status_of(caps);
        cand.from_block = true;
        cand.confirm = rule.spec.confirm;
        cand.group = self.group.clone();
        apply_detail(&mut cand, Role::Message, Keep::First, caps, false);
        apply_detail(&mut cand, Role::Location, Keep::First, caps, false);
        if caps.name("line").is_none() {
            cand.file = caps.name("file").map(|f| f.as_str().to_string());
        }
        // A message line seen before the header (go test -v prints it first): the one printed
        // while this test ran, else the latest one printed while no test was named.
        let q = &mut self.pending[rule.pack];
        let pick = q
            .iter()
            .rposition(|(ctx, _)| ctx.as_deref() == Some(cand.test.as_str()))
            .or_else(|| q.iter().rposition(|(ctx, _)| ctx.is_none()));
        if let Some((_, p)) = pick.and_then(|i| q.remove(i)) {
            if cand.message.is_none() && no.saturating_sub(p.first_line) <= 10_000 {
                cand.message = p.message;
                cand.locations.splice(0..0, p.locations);
                cand.lines.splice(0..0, p.lines);
            }
        }
        self.block = Some(Block {
            cand,
            tail: VecDeque::new(),
            prev_key: false,
            dropped: false,
            rule: r,
            message_next: rule.spec.message_next,
            header_line: no,
            n_lines: 0,
            message_set_by_next: false,
            message_append: false,
            title_open: rule.spec.title_next && caps.name("end").is_none(),
        });
    }

    fn close_block(&mut self) {
        let Some(b) = self.block.take() else {
            return;
        };
        let rule = b.rule;
        let c = b.into_candidate();
        if self.book.rules[rule].spec.no_test {
            if self.no_test.len() < MAX_GENERIC {
                let (file, src_line) = c.locations.first().cloned().unzip();
                let header = c
                    .lines
                    .first()
                    .cloned()
                    .unwrap_or_else(|| ex_line(no_of(&c), &c.test));
                self.no_test.push(GenericError {
                    pack: c.pack,
                    rank: self.book.rules[rule].spec.rank,
                    message: header.text.clone(),
                    line: header,
                    group: c.group.clone(),
                    file,
                    src_line,
                    lines: c.lines,
                });
            }
            return;
        }
        self.flush_waiting(Some(&c));
        if c.confirm {
            if self.provisional.len() == 8 {
                self.provisional.pop_front();
            }
            self.provisional.push_back(c);
        } else if self.candidates.len() < MAX_CANDIDATES {
            self.candidates.push(c);
        }
    }

    /// Ends the run of waiting headers: each takes `from`'s message (and shares its lines in the
    /// excerpt), or stays without one.
    fn flush_waiting(&mut self, from: Option<&Candidate>) {
        for mut w in std::mem::take(&mut self.waiting) {
            if let Some(f) = from {
                w.message = f.message.clone();
                w.lines.extend(f.lines.iter().skip(1).take(40).cloned());
            }
            if self.candidates.len() < MAX_CANDIDATES {
                self.candidates.push(w);
            }
        }
    }

    fn failure_line(&mut self, r: usize, caps: &Captures<'_>, no: u64, text: &str) {
        let rule = &self.book.rules[r];
        let mut c = empty_candidate(rule.pack, self.book.packs[rule.pack].priority, no);
        c.test = test_id(caps);
        if c.test.is_empty() && rule.spec.of_running {
            let Some(running) = self.context[rule.pack].clone() else {
                return;
            };
            c.test = running;
        }
        c.group = self.group.clone();
        c.status = status_of(caps).or_else(|| {
            rule.spec
                .in_section
                .then(|| self.section.as_ref().and_then(|s| s.message.clone()))
                .flatten()
        });
        apply_detail(&mut c, Role::Message, Keep::First, caps, false);
        if let Some(f) = caps.name("file") {
            c.file = Some(f.as_str().to_string());
        }
        if let Some(l) = caps.name("line") {
            c.line = l.as_str().parse().ok();
        }
        c.lines.push(ex_line(no, text));
        if rule.spec.attach {
            if let Some(t) = self
                .candidates
                .iter_mut()
                .rev()
                .find(|t| t.pack == c.pack && t.test.starts_with(c.test.as_str()))
            {
                if c.file.is_some() {
                    t.file = c.file;
                    t.line = c.line;
                }
                return;
            }
        }
        // Confirms a provisional block (googletest's `[ RUN ]` ... `[  FAILED  ]`).
        if let Some(i) = self
            .provisional
            .iter()
            .position(|p| p.pack == c.pack && ids_compatible(&p.test, &c.test))
        {
            if let Some(p) = self.provisional.remove(i) {
                if self.candidates.len() < MAX_CANDIDATES {
                    self.candidates.push(p);
                }
            }
        }
        if self.candidates.len() < MAX_CANDIDATES {
            self.candidates.push(c);
        }
    }

    /// Ends the log: closes what is open, merges candidates naming the same test.
    pub fn finish(mut self) -> Extracted {
        self.close_block();
        self.flush_waiting(None);
        // Compatible ids end with the same segment, so only those are compared.
        let mut merged: Vec<Candidate> = Vec::new();
        let mut by_tail: std::collections::HashMap<(usize, String), Vec<usize>> =
            Default::default();
        for c in std::mem::take(&mut self.candidates) {
            if c.test.is_empty() {
                continue;
            }
            let key = (c.pack, last_segment(&c.test).to_string());
            let bucket = by_tail.entry(key).or_default();
            if let Some(&i) = bucket.iter().find(|&&i| same_failure(&merged[i], &c)) {
                merge(&mut merged[i], c);
            } else {
                bucket.push(merged.len());
                merged.push(c);
            }
        }
        // A parent whose subtests failed (go `TestA` over `TestA/sub`) adds nothing.
        let mut parents: std::collections::HashSet<(usize, &str)> = Default::default();
        for m in &merged {
            for (i, _) in m.test.match_indices('/') {
                parents.insert((m.pack, &m.test[..i]));
            }
        }
        let parents: std::collections::HashSet<(usize, String)> = parents
            .into_iter()
            .map(|(p, t)| (p, t.to_string()))
            .collect();
        merged.retain(|m| !parents.contains(&(m.pack, m.test.clone())));
        for m in &mut merged {
            pick_location(m);
            if m.message.is_none() {
                m.message = block_message(m).or_else(|| m.status.clone());
            }
        }
        let last_error = self
            .generic
            .iter()
            .chain(&self.no_test)
            .map(|g| g.line.no)
            .max();
        let passed = match (self.passed_at, last_error) {
            (Some(p), Some(e)) => p > e,
            (Some(_), None) => true,
            _ => false,
        };
        let mut generic: Vec<GenericError> = self.no_test;
        generic.extend(self.generic);
        Extracted {
            failures: merged,
            summaries: self.summaries,
            generic,
            lines: self.line_no,
            passed,
        }
    }
}

/// The first assertion or exception line of a failure's block that is not the line naming the
/// test, for a failure no rule gave a message: `AssertionError: ...`, `expected 3 but was 4`,
/// `Error: ...`, a panic. `None` when the block has none.
fn block_message(c: &Candidate) -> Option<String> {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        regex::Regex::new(
            r"(?x)
            \b[A-Z]\w*(?:Error|Exception|Failure|Failed)\b    # AssertionError, AssertionFailedError
            | \b(?:[Aa]ssert\w*|[Ee]xpected|[Ee]xpect\(|panicked\ at|[Ff]ailed\ to|[Ff]ailure:)
            | (?:^|\s)(?:[Ee]rror|FATAL|Fatal|FAIL(?:ED)?)(?:\b|:)
            | \b(?:[Nn]ot\ equal|[Dd]iffer|[Mm]ismatch|want\b|got\b|but\ was\b)",
        )
        .expect("the message pattern compiles")
    });
    c.lines
        .iter()
        .map(|l| l.text.trim())
        .filter(|t| !t.is_empty() && !t.contains(c.test.as_str()))
        .find(|t| re.is_match(t) && t.chars().any(char::is_alphabetic))
        .map(str::to_string)
}

fn no_of(c: &Candidate) -> u64 {
    c.first_line
}

fn empty_candidate(pack: usize, priority: i32, no: u64) -> Candidate {
    Candidate {
        pack,
        priority,
        first_line: no,
        test: String::new(),
        file: None,
        line: None,
        message: None,
        locations: Vec::new(),
        location_keep: Keep::First,
        lines: Vec::new(),
        from_block: false,
        confirm: false,
        group: None,
        status: None,
    }
}

/// The `status` capture of a header or failure line (ctest's `Timeout`), when not empty.
fn status_of(caps: &Captures<'_>) -> Option<String> {
    caps.name("status")
        .map(|m| m.as_str().trim().to_string())
        .filter(|m| !m.is_empty())
}

/// True for a message that only names an exception class and ends with `:`, its text on the next
/// line (Surefire and JUnit print `java.lang.AssertionError:` then `Expected: ...`).
fn is_bare_exception(m: &str) -> bool {
    m.strip_suffix(':').is_some_and(|c| {
        !c.is_empty()
            && c.chars()
                .all(|ch| ch.is_alphanumeric() || matches!(ch, '.' | '$' | '_'))
            && (c.contains('.') || c.ends_with("Error") || c.ends_with("Exception"))
    })
}

/// The test id from a match: `test`, joined with `name` when `test` does not already end in it
/// (unittest before Python 3.11 prints `test_x (mod.Class)`).
fn test_id(caps: &Captures<'_>) -> String {
    let test = caps.name("test").map_or("", |m| m.as_str()).trim();
    match caps.name("name").map(|m| m.as_str().trim()) {
        Some(name) if test.is_empty() => name.to_string(),
        Some(name) if !test.ends_with(&format!(".{name}")) && test != name => {
            format!("{test}.{name}")
        }
        _ => test.to_string(),
    }
}

fn apply_detail(
    c: &mut Candidate,
    role: Role,
    keep: Keep,
    caps: &Captures<'_>,
    message_locked: bool,
) {
    if let (Some(m), false) = (caps.name("message"), message_locked) {
        let m = m.as_str().trim();
        if !m.is_empty() && (c.message.is_none() || keep == Keep::Last) {
            c.message = Some(m.to_string());
        }
    }
    if let (Some(f), Some(l)) = (caps.name("file"), caps.name("line")) {
        if let Ok(l) = l.as_str().parse::<u32>() {
            if c.locations.len() < 64 {
                c.locations.push((f.as_str().to_string(), l));
            }
            if role == Role::Location {
                c.location_keep = keep;
            }
        }
    }
}

/// True for a changed line of a diff (`- x`, `+ x`, `? ^`, also after pytest's `E` prefix), as
/// opposed to its context lines (`  x`).
pub(crate) fn is_diff_change(text: &str) -> bool {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| regex::Regex::new(r"^(?:E\s+)?[-+?] ").expect("the diff pattern compiles"))
        .is_match(text)
}

impl Block {
    /// Keeps line `no` of the block: the first [`BLOCK_HEAD`] lines, then a ring of the last
    /// [`BLOCK_TAIL`]; a line leaving the ring is kept (up to [`BLOCK_MIDDLE_KEYS`]) when it
    /// starts a run of rule-matched lines or is a changed line of a diff, others are dropped and
    /// the next kept line is marked `cut_before`. Consecutive identical lines become one with a
    /// count.
    fn push(&mut self, stored: &mut usize, no: u64, text: &str, key: bool) {
        let last = self
            .tail
            .back_mut()
            .map(|(l, _)| l)
            .or(self.cand.lines.last_mut());
        if let Some(last) = last {
            if last.text == cap(text) {
                last.repeat += 1;
                return;
            }
        }
        if *stored >= STORED_BYTES {
            return;
        }
        let mut l = ex_line(no, text);
        l.key = key;
        let salient = (key && !self.prev_key) || is_diff_change(text);
        self.prev_key = key;
        *stored += l.text.len();
        if self.cand.lines.len() < BLOCK_HEAD && self.tail.is_empty() {
            self.cand.lines.push(l);
            return;
        }
        self.tail.push_back((l, salient));
        if self.tail.len() > BLOCK_TAIL {
            if let Some((mut old, salient)) = self.tail.pop_front() {
                if salient && self.cand.lines.len() < BLOCK_HEAD + BLOCK_MIDDLE_KEYS {
                    old.cut_before |= std::mem::take(&mut self.dropped);
                    self.cand.lines.push(old);
                } else {
                    *stored -= old.text.len();
                    self.dropped = true;
                }
            }
        }
    }

    /// The candidate with the block's kept lines in log order.
    fn into_candidate(mut self) -> Candidate {
        if let Some((first, _)) = self.tail.front_mut() {
            first.cut_before |= self.dropped;
        }
        self.cand
            .lines
            .extend(self.tail.into_iter().map(|(l, _)| l));
        self.cand
    }
}

fn cap(text: &str) -> &str {
    if text.len() <= EXCERPT_LINE_CAP {
        return text;
    }
    let mut i = EXCERPT_LINE_CAP;
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    &text[..i]
}

fn ex_line(no: u64, text: &str) -> ExLine {
    ExLine {
        no,
        text: cap(text).to_string(),
        repeat: 1,
        key: true,
        cut_before: false,
    }
}

/// The last `.`/`:`/`/`-separated segment of a test id (equal for compatible ids).
fn last_segment(id: &str) -> &str {
    id.rsplit(['.', ':', '/']).next().unwrap_or(id)
}

/// `a` and `b` name the same test: equal, or one ends with the other at a `.`/`::`/`/`/space
/// boundary (pytest prints `Class.test` in a block header and `path.py::Class::test` in its
/// summary; nextest prefixes the binary, `crate tests::x`).
pub fn ids_compatible(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    let a = a.replace("::", ".");
    let b = b.replace("::", ".");
    let (long, short) = if a.len() >= b.len() {
        (&a, &b)
    } else {
        (&b, &a)
    };
    if long == short {
        return true;
    }
    !short.is_empty()
        && long.ends_with(short.as_str())
        && matches!(
            long.as_bytes()[long.len() - short.len() - 1],
            b'.' | b'/' | b' '
        )
}

fn same_failure(a: &Candidate, b: &Candidate) -> bool {
    if !ids_compatible(&a.test, &b.test) {
        return false;
    }
    // Two compile errors with the same code at different places are two failures.
    if a.from_block && b.from_block {
        if let (Some(x), Some(y)) = (a.locations.first(), b.locations.first()) {
            return x == y;
        }
    }
    true
}

fn merge(into: &mut Candidate, c: Candidate) {
    if c.test.len() > into.test.len() {
        into.test = c.test;
    }
    // A block's message (the `E` line, the exception line) wins over a summary line's.
    if into.message.is_none() || (c.from_block && !into.from_block && c.message.is_some()) {
        into.message = c.message.or(into.message.take());
    }
    if !into.from_block {
        into.file = c.file.or(into.file.take());
        if into.line.is_none() {
            into.line = c.line;
        }
    } else if into.file.is_none() {
        into.file = c.file;
    }
    if c.from_block && !into.from_block {
        into.location_keep = c.location_keep;
    }
    into.locations.extend(c.locations);
    into.from_block |= c.from_block;
    into.first_line = into.first_line.min(c.first_line);
    into.lines.extend(c.lines);
    into.lines.sort_by_key(|l| l.no);
    into.lines.dedup_by_key(|l| l.no);
    if into.group.is_none() {
        into.group = c.group;
    }
    if into.status.is_none() {
        into.status = c.status;
    }
}

/// Chooses `file`/`line`: a location in the test's own file when the id names one, else the rule's
/// `keep` choice.
fn pick_location(c: &mut Candidate) {
    if c.line.is_some() && c.file.is_some() {
        return;
    }
    if c.locations.is_empty() {
        return;
    }
    let own = c.file.clone();
    let chosen = own
        .as_ref()
        .and_then(|f| {
            c.locations
                .iter()
                .rev()
                .find(|(lf, _)| lf.ends_with(f.as_str()) || f.ends_with(lf.as_str()))
        })
        .or(match c.location_keep {
            Keep::First => c
                .locations
                .iter()
                .find(|(f, _)| is_test_file(f))
                .or(c.locations.first()),
            Keep::FirstTest => c
                .locations
                .iter()
                .find(|(f, _)| is_test_file(f))
                .or(c.locations.last()),
            Keep::Last => c.locations.last(),
        })
        .cloned();
    if let Some((f, l)) = chosen {
        if c.file.is_none() {
            c.file = Some(f);
        }
        c.line = Some(l);
    }
}

/// True when `path` names a test source by the common conventions: a `test`/`tests`/`spec`/
/// `__tests__` folder, or a name like `test_x.py`, `x_test.go`, `x.test.ts`, `x.spec.js`,
/// `x_spec.rb`, `XTest.java`, `XTests.cs`.
pub fn is_test_file(path: &str) -> bool {
    let lower = path.replace('\\', "/").to_ascii_lowercase();
    let name = lower.rsplit('/').next().unwrap_or(&lower);
    let stem = name.split('.').next().unwrap_or(name);
    lower
        .split('/')
        .any(|d| matches!(d, "test" | "tests" | "spec" | "specs" | "__tests__"))
        || stem.starts_with("test_")
        || stem.ends_with("_test")
        || stem.ends_with("_spec")
        || stem.ends_with("test")
        || stem.ends_with("tests")
        || name.contains(".test.")
        || name.contains(".spec.")
}
