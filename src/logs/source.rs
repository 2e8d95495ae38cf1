//! Opens the input: sniffs ZIP, JUnit XML or text from the first bytes, streams text through the
//! extractor, and reads the useful entries of a run-logs ZIP with a cap on the bytes inflated.

use std::fs::File;
use std::io::{self, Read, Seek};
use std::path::Path;

use crate::runners::outcome::ReportError;
use super::extractor::Extractor;
use super::normaliser::ChunkReader;
use super::rule_pack::{self, RuleBook};
use super::{LogError, Part, junit};

/// Bytes looked at to tell the kind of input.
const SNIFF: usize = 8192;
/// Largest JUnit report read (it is parsed in memory).
const MAX_JUNIT: u64 = 32 << 20;

enum Kind {
    Zip,
    Junit,
    Text,
}

/// The UTF-16 variant of a text whose first bytes are `head`: a byte-order mark (`FF FE` little
/// endian, `FE FF` big endian), else the NUL pattern of mostly-ASCII UTF-16 (at least 3 in 4
/// code units of the sample have a zero high byte, and no low byte is zero). `None` for anything
/// else (UTF-8, binary).
pub(crate) fn utf16_encoding(head: &[u8]) -> Option<&'static encoding_rs::Encoding> {
    if head.starts_with(&[0xFF, 0xFE]) {
        return Some(encoding_rs::UTF_16LE);
    }
    if head.starts_with(&[0xFE, 0xFF]) {
        return Some(encoding_rs::UTF_16BE);
    }
    let units = head.len() / 2;
    if units < 2 {
        return None;
    }
    let (mut even0, mut odd0) = (0usize, 0usize);
    for pair in head.chunks_exact(2) {
        even0 += usize::from(pair[0] == 0);
        odd0 += usize::from(pair[1] == 0);
    }
    if odd0 * 4 >= units * 3 && even0 == 0 {
        Some(encoding_rs::UTF_16LE)
    } else if even0 * 4 >= units * 3 && odd0 == 0 {
        Some(encoding_rs::UTF_16BE)
    } else {
        None
    }
}

/// Decodes a UTF-16 stream to UTF-8 as it is read (encoding_rs's streaming decoder; the BOM is
/// removed, unpaired surrogates become U+FFFD). Memory: two fixed buffers.
struct Utf16Reader<R> {
    inner: R,
    decoder: encoding_rs::Decoder,
    raw: Vec<u8>,
    raw_len: usize,
    out: Vec<u8>,
    out_start: usize,
    out_end: usize,
    eof: bool,
}

impl<R: Read> Utf16Reader<R> {
    fn new(inner: R, enc: &'static encoding_rs::Encoding) -> Self {
        Self {
            inner,
            decoder: enc.new_decoder_with_bom_removal(),
            raw: vec![0; 64 << 10],
            raw_len: 0,
            out: vec![0; 3 * (64 << 10) + 16],
            out_start: 0,
            out_end: 0,
            eof: false,
        }
    }
}

impl<R: Read> Read for Utf16Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.out_start == self.out_end {
            if self.eof && self.raw_len == 0 {
                return Ok(0);
            }
            if !self.eof {
                match self.inner.read(&mut self.raw[self.raw_len..]) {
                    Ok(0) => self.eof = true,
                    Ok(n) => self.raw_len += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            }
            let (_, read, written, _) = self.decoder.decode_to_utf8(
                &self.raw[..self.raw_len],
                &mut self.out,
                self.eof,
            );
            self.raw.copy_within(read..self.raw_len, 0);
            self.raw_len -= read;
            self.out_start = 0;
            self.out_end = written;
            if self.eof && read == 0 && written == 0 {
                self.raw_len = 0;
            }
        }
        let n = buf.len().min(self.out_end - self.out_start);
        buf[..n].copy_from_slice(&self.out[self.out_start..self.out_start + n]);
        self.out_start += n;
        Ok(n)
    }
}

fn sniff(head: &[u8], name: &str) -> Result<Kind, LogError> {
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        return Ok(Kind::Zip);
    }
    if junit::looks_like_junit(head) {
        return Ok(Kind::Junit);
    }
    if utf16_encoding(head).is_some() {
        return Ok(Kind::Text);
    }
    if let Some(at) = memchr::memchr(0, head) {
        return Err(LogError::Invalid(format!(
            "`{name}` looks binary (NUL byte at offset {at}), not a text log"
        )));
    }
    Ok(Kind::Text)
}

fn book() -> Result<&'static RuleBook, LogError> {
    rule_pack::embedded().map_err(|e| LogError::Invalid(format!("internal error: {e}")))
}

fn kind_names(book: &RuleBook) -> Vec<String> {
    book.packs.iter().map(|p| p.name.clone()).collect()
}

/// Streams text through a fresh extractor; UTF-16 text (see [`utf16_encoding`]) is decoded to
/// UTF-8 on the way.
fn extract_text<R: Read>(
    mut reader: R,
    entry: Option<String>,
    name: &str,
) -> Result<Part, LogError> {
    let book = book()?;
    let mut ex = Extractor::new(book);
    let mut head = Vec::with_capacity(512);
    (&mut reader)
        .take(512)
        .read_to_end(&mut head)
        .map_err(|source| LogError::Io {
            path: name.to_string(),
            source,
        })?;
    let joined = io::Cursor::new(head.clone()).chain(reader);
    let decoded: Box<dyn Read + '_> = match utf16_encoding(&head) {
        Some(enc) => Box::new(Utf16Reader::new(joined, enc)),
        None => Box::new(joined),
    };
    let mut chunks = ChunkReader::new(decoded);
    loop {
        match chunks.next_region() {
            Ok(Some(region)) => ex.feed(region),
            Ok(None) => break,
            Err(source) => {
                return Err(LogError::Io {
                    path: name.to_string(),
                    source,
                });
            }
        }
    }
    Ok(Part {
        entry,
        kind_names: kind_names(book),
        extracted: ex.finish(),
    })
}

fn junit_part(text: &str, name: &str) -> Result<Part, LogError> {
    let extracted = junit::try_extract(text).map_err(|e| match e {
        ReportError::Xml(x) => {
            LogError::Invalid(format!("`{name}`: JUnit XML report is not well-formed: {x}"))
        }
        other => LogError::Invalid(format!("`{name}`: {other}")),
    })?;
    Ok(Part {
        entry: None,
        kind_names: vec!["junit".to_string()],
        extracted,
    })
}

/// Distils a file on disk.
pub(crate) fn extract_path(path: &Path, limit: u64) -> Result<Vec<Part>, LogError> {
    let name = path.display().to_string();
    let io_err = |source| LogError::Io {
        path: name.clone(),
        source,
    };
    let mut f = File::open(path).map_err(io_err)?;
    let meta = f.metadata().map_err(io_err)?;
    if meta.is_dir() {
        return Err(LogError::Invalid(format!(
            "`{name}` is a directory, not a log file"
        )));
    }
    let mut head = Vec::with_capacity(SNIFF);
    (&mut f)
        .take(SNIFF as u64)
        .read_to_end(&mut head)
        .map_err(io_err)?;
    f.rewind().map_err(io_err)?;
    match sniff(&head, &name)? {
        Kind::Zip => extract_zip(f, &name, limit),
        Kind::Junit => {
            if meta.len() > MAX_JUNIT {
                return Err(LogError::Invalid(format!(
                    "`{name}`: JUnit report of {} bytes is over the limit of {MAX_JUNIT}",
                    meta.len()
                )));
            }
            let mut bytes = Vec::new();
            f.read_to_end(&mut bytes).map_err(io_err)?;
            Ok(vec![junit_part(&String::from_utf8_lossy(&bytes), &name)?])
        }
        Kind::Text => Ok(vec![extract_text(f, None, &name)?]),
    }
}

/// Distils bytes in memory.
pub(crate) fn extract_bytes(bytes: &[u8], limit: u64) -> Result<Vec<Part>, LogError> {
    let name = "(inline)";
    match sniff(&bytes[..bytes.len().min(SNIFF)], name)? {
        Kind::Zip => extract_zip(io::Cursor::new(bytes), name, limit),
        Kind::Junit => Ok(vec![junit_part(&String::from_utf8_lossy(bytes), name)?]),
        Kind::Text => Ok(vec![extract_text(bytes, None, name)?]),
    }
}

/// Counts bytes read across entries and fails past the limit.
struct Capped<'a, R> {
    inner: R,
    used: &'a std::cell::Cell<u64>,
    limit: u64,
}

impl<R: Read> Read for Capped<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.used.set(self.used.get() + n as u64);
        if self.used.get() > self.limit {
            return Err(io::Error::other(format!(
                "archive inflates past the size limit of {} bytes (ZIP bomb?)",
                self.limit
            )));
        }
        Ok(n)
    }
}

/// Which entries of a run-logs archive to read, in order: each job's step files
/// (`<job>/<n>_<step>.txt`, better line numbers) when it has any besides `system.txt`, else its
/// job log `<n>_<job>.txt`.
fn select_entries(names: &[String]) -> Vec<usize> {
    let is_txt = |n: &str| n.ends_with(".txt");
    let job_of_top = |n: &str| -> Option<String> {
        let stem = n.strip_suffix(".txt")?;
        let (num, job) = stem.split_once('_')?;
        num.chars()
            .all(|c| c.is_ascii_digit())
            .then(|| job.to_string())
    };
    let step_job = |n: &str| -> Option<String> {
        let (dir, file) = n.split_once('/')?;
        (is_txt(file) && !file.contains('/') && file != "system.txt").then(|| dir.to_string())
    };
    let jobs_with_steps: std::collections::HashSet<String> =
        names.iter().filter_map(|n| step_job(n)).collect();
    let mut picked: Vec<usize> = Vec::new();
    for (i, n) in names.iter().enumerate() {
        if n.contains('/') {
            if step_job(n).is_some() {
                picked.push(i);
            }
        } else if is_txt(n) {
            match job_of_top(n) {
                Some(job) if jobs_with_steps.contains(&job) => {}
                _ => picked.push(i),
            }
        }
    }
    let key = |n: &str| -> (String, u64, String) {
        let (dir, file) = n.rsplit_once('/').unwrap_or(("", n));
        let num = file
            .split('_')
            .next()
            .and_then(|d| d.parse().ok())
            .unwrap_or(u64::MAX);
        (dir.to_string(), num, file.to_string())
    };
    picked.sort_by_key(|&i| key(&names[i]));
    picked
}

fn extract_zip<R: Read + Seek>(reader: R, name: &str, limit: u64) -> Result<Vec<Part>, LogError> {
    let invalid = |what: String| LogError::Invalid(format!("`{name}`: {what}"));
    let mut zip = zip::ZipArchive::new(reader)
        .map_err(|e| invalid(format!("not a readable ZIP archive ({e})")))?;
    if zip.len() > 100_000 {
        return Err(invalid(format!(
            "archive has {} entries, too many for a run-logs archive",
            zip.len()
        )));
    }
    let mut names = Vec::with_capacity(zip.len());
    for i in 0..zip.len() {
        let f = zip
            .by_index_raw(i)
            .map_err(|e| invalid(format!("broken entry {i} ({e})")))?;
        names.push(f.name().map(|n| n.to_string()).unwrap_or_default());
    }
    let picked = select_entries(&names);
    if picked.is_empty() {
        return Err(invalid("archive holds no `.txt` log".to_string()));
    }
    let mut declared = 0u64;
    for &i in &picked {
        let f = zip
            .by_index_raw(i)
            .map_err(|e| invalid(format!("broken entry `{}` ({e})", names[i])))?;
        declared = declared.saturating_add(f.size());
    }
    if declared > limit {
        return Err(invalid(format!(
            "archive would inflate to {declared} bytes, over the limit of {} (ZIP bomb?)",
            limit
        )));
    }
    let used = std::cell::Cell::new(0u64);
    let mut parts = Vec::new();
    for i in picked {
        let entry = zip
            .by_index(i)
            .map_err(|e| invalid(format!("cannot read entry `{}` ({e})", names[i])))?;
        let capped = Capped {
            inner: entry,
            used: &used,
            limit,
        };
        let part = extract_text(
            capped,
            Some(names[i].clone()),
            &format!("{name}:{}", names[i]),
        )
        .map_err(|e| match e {
            LogError::Io { source, .. } if used.get() > limit => {
                invalid(format!("entry `{}`: {source}", names[i]))
            }
            e => e,
        })?;
        parts.push(part);
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefers_step_files_over_the_job_log() {
        let names: Vec<String> = [
            "1_build.txt",
            "build/1_Set up job.txt",
            "build/3_Run tests.txt",
            "build/system.txt",
            "0_lint.txt",
            "lint/system.txt",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let got: Vec<&str> = select_entries(&names)
            .into_iter()
            .map(|i| names[i].as_str())
            .collect();
        assert_eq!(
            got,
            vec![
                "0_lint.txt",
                "build/1_Set up job.txt",
                "build/3_Run tests.txt"
            ]
        );
    }
}
