//! The streaming normaliser: reads a log in fixed-size chunks and turns raw lines into what the
//! rules see: no GitHub Actions timestamp prefix, no ANSI escapes, no byte-order mark, no
//! overwritten progress (text before the last `\r`), lines capped at [`LINE_CAP`] bytes.
//!
//! [`Normaliser`] also folds `##[group]`/`##[endgroup]` markers into a step name and collapses runs
//! of identical lines into one with a repeat count, keeping each line's 1-based number in the
//! original log. It never holds more than one chunk ([`CHUNK`] bytes) of input in memory.

use std::borrow::Cow;
use std::io::{self, Read};

/// Bytes read at a time.
pub const CHUNK: usize = 2 << 20;

/// Longest line kept, in bytes; the rest of a longer line is dropped.
pub const LINE_CAP: usize = 64 << 10;

/// Reads whole lines in chunks of at most [`CHUNK`] bytes.
pub struct ChunkReader<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    /// Discarding the rest of a line longer than the buffer.
    skipping: bool,
}

impl<R: Read> ChunkReader<R> {
    /// Wraps a reader.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            buf: vec![0; CHUNK],
            start: 0,
            end: 0,
            eof: false,
            skipping: false,
        }
    }

    /// The next run of whole lines: each ends in `\n` except the last of the input and a line
    /// longer than [`CHUNK`], which comes truncated to [`LINE_CAP`] bytes (its rest is skipped).
    /// `Ok(None)` at the end of the input.
    ///
    /// # Errors
    /// The underlying reader's errors (interrupted reads are retried).
    pub fn next_region(&mut self) -> io::Result<Option<&[u8]>> {
        loop {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if !self.eof && self.end < self.buf.len() {
                match self.inner.read(&mut self.buf[self.end..]) {
                    Ok(0) => self.eof = true,
                    Ok(n) => self.end += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            }
            if self.skipping {
                match memchr::memchr(b'\n', &self.buf[self.start..self.end]) {
                    Some(i) => {
                        self.start += i + 1;
                        self.skipping = false;
                    }
                    None => {
                        self.start = self.end;
                        if self.eof {
                            return Ok(None);
                        }
                        continue;
                    }
                }
            }
            let avail = &self.buf[self.start..self.end];
            if avail.is_empty() {
                if self.eof {
                    return Ok(None);
                }
                continue;
            }
            let s = self.start;
            if self.eof {
                self.start = self.end;
                return Ok(Some(&self.buf[s..self.end]));
            }
            if let Some(i) = memchr::memrchr(b'\n', avail) {
                self.start = s + i + 1;
                return Ok(Some(&self.buf[s..s + i + 1]));
            }
            if self.end == self.buf.len() {
                // One line fills the whole buffer: hand out its head and drop the rest.
                self.skipping = true;
                self.start = self.end;
                return Ok(Some(&self.buf[s..s + LINE_CAP]));
            }
        }
    }
}

/// Length of a GitHub Actions timestamp prefix (`2026-02-11T00:08:26.4935586Z `) at the start of
/// `line`, or 0.
pub fn timestamp_len(line: &[u8]) -> usize {
    let d = |i: usize| line.get(i).is_some_and(u8::is_ascii_digit);
    let c = |i: usize, b: u8| line.get(i) == Some(&b);
    let date_time = (0..4).all(d)
        && c(4, b'-')
        && d(5)
        && d(6)
        && c(7, b'-')
        && d(8)
        && d(9)
        && c(10, b'T')
        && d(11)
        && d(12)
        && c(13, b':')
        && d(14)
        && d(15)
        && c(16, b':')
        && d(17)
        && d(18);
    if !date_time {
        return 0;
    }
    let mut i = 19;
    if c(i, b'.') {
        i += 1;
        while d(i) {
            i += 1;
        }
    }
    if c(i, b'Z') {
        i += 1;
    }
    if c(i, b' ') { i + 1 } else { 0 }
}

/// Removes ANSI escape sequences (CSI `ESC [ ... final`, OSC `ESC ] ... BEL|ESC \`, and
/// two-byte escapes). ECMA-48 section 5.4 gives the CSI byte ranges.
pub fn strip_ansi(line: &[u8]) -> Cow<'_, [u8]> {
    if memchr::memchr(0x1b, line).is_none() {
        return Cow::Borrowed(line);
    }
    let mut out = Vec::with_capacity(line.len());
    let mut i = 0;
    while i < line.len() {
        let b = line[i];
        if b != 0x1b {
            out.push(b);
            i += 1;
            continue;
        }
        match line.get(i + 1) {
            Some(b'[') => {
                i += 2;
                while i < line.len() && !(0x40..=0x7e).contains(&line[i]) {
                    i += 1;
                }
                i += 1;
            }
            Some(b']') => {
                i += 2;
                while i < line.len() {
                    if line[i] == 0x07 {
                        i += 1;
                        break;
                    }
                    if line[i] == 0x1b && line.get(i + 1) == Some(&b'\\') {
                        i += 2;
                        break;
                    }
                    i += 1;
                }
            }
            Some(_) => i += 2,
            None => i += 1,
        }
    }
    Cow::Owned(out)
}

/// Normalises one raw line (without its `\n`): drops a trailing `\r`, a byte-order mark, the
/// timestamp prefix, text overwritten by `\r` (progress bars) and ANSI escapes; caps the length at
/// [`LINE_CAP`].
pub fn normalise_line(raw: &[u8]) -> Cow<'_, [u8]> {
    let mut l = &raw[..raw.len().min(LINE_CAP)];
    if let Some(rest) = l.strip_suffix(b"\r") {
        l = rest;
    }
    if let Some(rest) = l.strip_prefix("\u{feff}".as_bytes()) {
        l = rest;
    }
    l = &l[timestamp_len(l)..];
    if let Some(i) = memchr::memrchr(b'\r', l) {
        l = &l[i + 1..];
    }
    let mut out = strip_ansi(l);
    if let Some((_, _, len)) = gitlab_section(&out) {
        out = Cow::Owned(out[len..].to_vec());
    }
    if let Some(text) = go_json_output(&out) {
        out = Cow::Owned(text);
    }
    if has_zero_width(&out) {
        out = Cow::Owned(remove_zero_width(&out));
    }
    out
}

/// Zero-width characters dropped from lines: U+200B..U+200D (zero-width space, non-joiner,
/// joiner), U+2060 (word joiner) and U+FEFF (byte-order mark / zero-width no-break space).
const ZERO_WIDTH: [&[u8]; 5] = [
    "\u{200b}".as_bytes(),
    "\u{200c}".as_bytes(),
    "\u{200d}".as_bytes(),
    "\u{2060}".as_bytes(),
    "\u{feff}".as_bytes(),
];

fn has_zero_width(line: &[u8]) -> bool {
    memchr::memchr2(0xE2, 0xEF, line).is_some() && ZERO_WIDTH.iter().any(|z| memchr::memmem::find(line, z).is_some())
}

fn remove_zero_width(line: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len());
    let mut i = 0;
    while i < line.len() {
        if let Some(z) = ZERO_WIDTH.iter().find(|z| line[i..].starts_with(z)) {
            i += z.len();
        } else {
            out.push(line[i]);
            i += 1;
        }
    }
    out
}

/// A GitLab CI trace section marker at the start of `line`
/// (`section_start:<unix time>:<name>[<options>]` or `section_end:<unix time>:<name>`, see
/// <https://docs.gitlab.com/ci/jobs/job_logs/#custom-collapsible-sections>; the runner follows it
/// with `\r` and `ESC[0K`): `(is_start, name, marker length)`. Leading ANSI escapes and `\r` are
/// skipped.
pub fn gitlab_section(line: &[u8]) -> Option<(bool, &[u8], usize)> {
    let mut at = 0;
    while line.get(at) == Some(&0x1b) || line.get(at) == Some(&b'\r') {
        if line[at] == b'\r' {
            at += 1;
            continue;
        }
        at += 2;
        while at < line.len() && !(0x40..=0x7e).contains(&line[at]) {
            at += 1;
        }
        at += 1;
    }
    let rest = line.get(at..)?;
    let (start, rest, skip) = if let Some(r) = rest.strip_prefix(b"section_start:") {
        (true, r, 14)
    } else if let Some(r) = rest.strip_prefix(b"section_end:") {
        (false, r, 12)
    } else {
        return None;
    };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || rest.get(digits) != Some(&b':') {
        return None;
    }
    let name_from = digits + 1;
    let name_len = rest[name_from..]
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        .count();
    if name_len == 0 {
        return None;
    }
    let mut end = name_from + name_len;
    if rest.get(end) == Some(&b'[') {
        if let Some(j) = memchr::memchr(b']', &rest[end..]) {
            end += j + 1;
        }
    }
    Some((start, &rest[name_from..name_from + name_len], at + skip + end))
}

/// The `Output` text of a `go test -json` output event (`{"Action":"output",...,"Output":"..."}`,
/// see `go doc test2json`), without its trailing newline; `None` for any other line.
pub fn go_json_output(line: &[u8]) -> Option<Vec<u8>> {
    if !line.starts_with(b"{\"") || memchr::memmem::find(line, b"\"Action\":\"output\"").is_none() {
        return None;
    }
    #[derive(serde::Deserialize)]
    struct Event {
        #[serde(rename = "Output")]
        output: Option<String>,
    }
    let e: Event = serde_json::from_slice(line).ok()?;
    let mut text = e.output?.into_bytes();
    while text.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        text.pop();
    }
    Some(strip_ansi(&text).into_owned())
}

/// A GitHub Actions group marker: `Some(Some(name))` for `##[group]name`, `Some(None)` for
/// `##[endgroup]`, `None` otherwise. `line` is normalised.
pub fn group_marker(line: &[u8]) -> Option<Option<&[u8]>> {
    if let Some(name) = line.strip_prefix(b"##[group]") {
        Some(Some(name))
    } else if line.starts_with(b"##[endgroup]") {
        Some(None)
    } else {
        None
    }
}

/// One normalised line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormLine {
    /// The text (invalid UTF-8 replaced by U+FFFD).
    pub text: String,
    /// 1-based number of its first occurrence in the original log.
    pub line: u64,
    /// How many consecutive identical lines it stands for (at least 1).
    pub repeat: u64,
    /// The `##[group]` (step) it belongs to, if any.
    pub group: Option<String>,
}

/// Streams a log as normalised lines: group markers folded into [`NormLine::group`], runs of
/// identical lines collapsed. Memory: one chunk plus the current line.
pub struct Normaliser<R> {
    reader: ChunkReader<R>,
    pending: std::collections::VecDeque<(u64, Vec<u8>)>,
    line_no: u64,
    group: Option<String>,
    held: Option<NormLine>,
    done: bool,
}

impl<R: Read> Normaliser<R> {
    /// Wraps a reader of raw log bytes.
    pub fn new(inner: R) -> Self {
        Self {
            reader: ChunkReader::new(inner),
            pending: Default::default(),
            line_no: 0,
            group: None,
            held: None,
            done: false,
        }
    }

    fn next_raw(&mut self) -> io::Result<Option<(u64, Vec<u8>)>> {
        loop {
            if let Some(l) = self.pending.pop_front() {
                return Ok(Some(l));
            }
            let Some(region) = self.reader.next_region()? else {
                return Ok(None);
            };
            // Queue at most one region's lines (each capped), then hand them out.
            for l in region
                .strip_suffix(b"\n")
                .unwrap_or(region)
                .split(|&b| b == b'\n')
            {
                self.line_no += 1;
                self.pending
                    .push_back((self.line_no, normalise_line(l).into_owned()));
            }
        }
    }

    /// The next normalised line, `Ok(None)` at the end.
    ///
    /// # Errors
    /// The underlying reader's errors.
    pub fn next_line(&mut self) -> io::Result<Option<NormLine>> {
        while !self.done {
            let Some((no, bytes)) = self.next_raw()? else {
                self.done = true;
                break;
            };
            match group_marker(&bytes) {
                Some(Some(name)) => {
                    self.group = Some(String::from_utf8_lossy(name).into_owned());
                    continue;
                }
                Some(None) => {
                    self.group = None;
                    continue;
                }
                None => {}
            }
            let text = String::from_utf8_lossy(&bytes).into_owned();
            match &mut self.held {
                Some(h) if h.text == text && h.group == self.group => h.repeat += 1,
                _ => {
                    let next = NormLine {
                        text,
                        line: no,
                        repeat: 1,
                        group: self.group.clone(),
                    };
                    if let Some(prev) = self.held.replace(next) {
                        return Ok(Some(prev));
                    }
                }
            }
        }
        Ok(self.held.take())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_timestamps_ansi_bom_and_progress() {
        assert_eq!(
            &*normalise_line(b"2026-02-11T00:08:26.4935586Z \x1b[31mFAILED\x1b[0m x\r"),
            b"FAILED x"
        );
        assert_eq!(
            &*normalise_line("\u{feff}2026-02-11T00:08:26Z hi".as_bytes()),
            b"hi"
        );
        assert_eq!(&*normalise_line(b"10%\r50%\r100% done"), b"100% done");
        assert_eq!(
            &*normalise_line(b"2026-02-11 not a stamp"),
            b"2026-02-11 not a stamp"
        );
        assert_eq!(&*normalise_line(b"\x1b]0;title\x07text\x1b[1;2"), b"text");
    }

    #[test]
    fn folds_groups_and_collapses_repeats_keeping_line_numbers() {
        let log = "a\n##[group]Run tests\nx\nx\nx\n##[endgroup]\nb\nb";
        let mut n = Normaliser::new(log.as_bytes());
        let mut got = Vec::new();
        while let Some(l) = n.next_line().unwrap() {
            got.push((l.text, l.line, l.repeat, l.group));
        }
        assert_eq!(
            got,
            vec![
                ("a".to_string(), 1, 1, None),
                ("x".to_string(), 3, 3, Some("Run tests".to_string())),
                ("b".to_string(), 7, 2, None),
            ]
        );
    }

    #[test]
    fn a_line_longer_than_the_chunk_is_truncated_not_buffered() {
        let mut log = vec![b'a'; CHUNK * 2 + 5];
        log.extend_from_slice(b"\nnext\n");
        let mut r = ChunkReader::new(&log[..]);
        let first = r.next_region().unwrap().unwrap().to_vec();
        assert_eq!(first.len(), LINE_CAP);
        assert_eq!(r.next_region().unwrap().unwrap(), b"next\n");
        assert!(r.next_region().unwrap().is_none());
    }
}
