//! The one top-level error type: it decides the exit code and carries the located details and a
//! hint. Library modules keep their own `thiserror` enums and convert into this at the boundary.
//!
//! A stage that fails (a test that does not reproduce, a fix that does not pass) is *not* an
//! error: it is a result recorded in the report. An [`Error`] means fixci could not do its job.

use std::fmt;

use crate::exit_codes;

/// Which class of failure an [`Error`] is; each maps to one exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad arguments, job spec, pipeline or template (exit 2). Nothing was written.
    Usage,
    /// git, forge, network, disk, a child that could not be started (exit 3).
    Infra,
    /// SIGINT/SIGTERM: state saved, the run can be resumed (exit 130).
    Interrupted,
}

/// A located, user-facing error: `message`, then one line per detail (e.g. `/budgets/fix: ...`),
/// the cause chain, and an optional hint.
#[derive(Debug)]
pub struct Error {
    /// Exit-code class.
    pub kind: ErrorKind,
    /// One-line summary, lowercase, no trailing period; names the file or value concerned.
    pub message: String,
    /// Located details, each printed on its own indented line.
    pub details: Vec<String>,
    /// What to do about it.
    pub hint: Option<String>,
    /// The underlying error, printed as `caused by:` lines.
    pub source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    /// A usage / spec / pipeline error (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Usage, message)
    }

    /// An infrastructure error (exit 3).
    pub fn infra(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Infra, message)
    }

    /// An interruption (exit 130).
    pub fn interrupted(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Interrupted, message)
    }

    fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            details: Vec::new(),
            hint: None,
            source: None,
        }
    }

    /// Adds a located detail line.
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.details.push(detail.into());
        self
    }

    /// Adds several located detail lines.
    pub fn details(mut self, details: impl IntoIterator<Item = String>) -> Self {
        self.details.extend(details);
        self
    }

    /// Sets the hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Sets the cause.
    pub fn source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self.kind {
            ErrorKind::Usage => exit_codes::USAGE,
            ErrorKind::Infra => exit_codes::INFRA,
            ErrorKind::Interrupted => exit_codes::INTERRUPTED,
        }
    }

    /// Renders the error as the CLI prints it (`error: ...`, details, `caused by:`, `hint:`).
    pub fn render(&self) -> String {
        let mut out = format!("error: {}\n", self.message);
        for d in &self.details {
            for (i, line) in d.lines().enumerate() {
                out.push_str(if i == 0 { "  " } else { "    " });
                out.push_str(line);
                out.push('\n');
            }
        }
        let mut cause: Option<&(dyn std::error::Error + 'static)> = self
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static));
        while let Some(c) = cause {
            out.push_str(&format!("  caused by: {c}\n"));
            cause = c.source();
        }
        if let Some(h) = &self.hint {
            out.push_str(&format!("hint: {h}\n"));
        }
        out
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// `Result` with the top-level [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Shorthand for an infrastructure error about an I/O operation on a path.
pub fn io_error(what: &str, path: &std::path::Path, err: std::io::Error) -> Error {
    Error::infra(format!("cannot {what} `{}`", path.display())).source(err)
}
