//! `fixci logs`: distil a CI log into the failing tests, a signature and an excerpt.

use std::fmt::Write as _;
use std::path::Path;

use crate::error::Error;
use crate::logs::{DistilOptions, Distilled, LogError};

/// Distil a CI log (file, run-logs ZIP or URL) into the failing tests, a signature and an excerpt.
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// A log file, a GitHub run-logs ZIP, JUnit XML, or a GitHub Actions run URL.
    pub source: String,
    /// Print JSON instead of Markdown.
    #[arg(long)]
    pub json: bool,
    /// Maximum excerpt size in bytes.
    #[arg(long, default_value_t = 16 * 1024)]
    pub budget: usize,
    /// GitHub API root for a run URL (default: `GITHUB_API_URL`, else https://api.github.com)
    #[arg(long, value_name = "URL")]
    pub api_url: Option<String>,
}

/// Runs `fixci logs`; returns the exit code (0 when the log was read, whether or not it shows a
/// failure). Exit 2 for a run that has not completed, a missing file or input that is not a log;
/// exit 3 when reading fails midway.
pub fn execute(args: LogsArgs) -> crate::error::Result<u8> {
    let opts = DistilOptions {
        budget_bytes: args.budget,
    };
    let d = if args.source.starts_with("http://") || args.source.starts_with("https://") {
        // A run URL: fetch the failed jobs' logs (or the run archive) through the forge.
        let fetched = crate::stages::forge_inputs::prefetch(&args.source, args.api_url.as_deref())?;
        let keep = tempfile::tempdir()
            .map_err(|e| Error::infra("cannot create a temporary folder").source(e))?;
        let (_, mut d) = crate::stages::forge_inputs::distil_fetched(
            &fetched.run.log_files,
            keep.path(),
            &opts,
        )?;
        d.excerpt = crate::redact::redact(&d.excerpt);
        d
    } else {
        crate::logs::distil_path(Path::new(&args.source), &opts)
            .map_err(|e| to_error(&args.source, e))?
    };
    if args.json {
        let json = serde_json::to_string_pretty(&d)
            .map_err(|e| Error::infra("cannot serialise the distilled log").source(e))?;
        outln!("{json}");
    } else {
        out!("{}", markdown(&d));
    }
    Ok(crate::exit_codes::SUCCESS)
}

fn to_error(source: &str, e: LogError) -> Error {
    let usage = match &e {
        LogError::Io { source, .. } => matches!(
            source.kind(),
            std::io::ErrorKind::NotFound
                | std::io::ErrorKind::PermissionDenied
                | std::io::ErrorKind::IsADirectory
        ),
        LogError::Invalid(_) => true,
    };
    let msg = format!("cannot distil `{source}`");
    if usage {
        Error::usage(msg).source(e)
    } else {
        Error::infra(msg).source(e)
    }
}

/// Renders the distilled log as Markdown: failures, signature, excerpt with original line numbers.
pub fn markdown(d: &Distilled) -> String {
    let mut out = String::new();
    if let Some(n) = &d.no_test_failure {
        let _ = write!(out, "No failing test: the job failed at line {}", n.log_line);
        if let Some(step) = &n.step {
            let _ = write!(out, " (step `{step}`)");
        }
        match (&n.file, n.line) {
            (Some(file), Some(line)) => {
                let _ = write!(out, ", {file}:{line}");
            }
            (Some(file), None) => {
                let _ = write!(out, ", {file}");
            }
            _ => {}
        }
        let _ = writeln!(out, ":\n\n    {}", n.error_line);
    } else if d.failures.is_empty() {
        out.push_str("No failure found.\n");
    } else {
        out.push_str("## Failures\n\n");
        for f in &d.failures {
            let _ = write!(out, "- `{}`", f.test);
            match (&f.file, f.line) {
                (Some(file), Some(line)) => {
                    let _ = write!(out, " ({file}:{line})");
                }
                (Some(file), None) => {
                    let _ = write!(out, " ({file})");
                }
                _ => {}
            }
            if let Some(m) = &f.message {
                let _ = write!(out, ": {m}");
            }
            out.push('\n');
        }
    }
    if let Some(s) = &d.signature {
        let _ = write!(out, "\n**Signature:** `{s}`\n");
    }
    if !d.excerpt.is_empty() {
        let width = d
            .source_lines
            .iter()
            .max()
            .map_or(1, |n| n.to_string().len());
        out.push_str("\n## Excerpt\n\n```text\n");
        for (line, no) in d
            .excerpt
            .lines()
            .zip(d.source_lines.iter().chain(std::iter::repeat(&0)))
        {
            if *no == 0 {
                let _ = writeln!(out, "{line}");
            } else {
                let _ = writeln!(out, "{no:>width$} | {line}");
            }
        }
        out.push_str("```\n");
    }
    out
}
