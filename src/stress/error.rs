//! Errors of the stress runner.

use std::path::PathBuf;

/// Why [`super::run`] could not do its job. A command that fails is a result, not an error.
#[derive(Debug, thiserror::Error)]
pub enum StressError {
    /// The configuration is unusable (e.g. `jobs = 0`, no stop condition, empty command).
    #[error("{0}")]
    Config(String),
    /// The program is not on `PATH` or not executable.
    #[error("command `{program}` not found")]
    NotFound {
        /// The program as given.
        program: String,
    },
    /// The output directory could not be prepared or written.
    #[error("cannot write `{path}`")]
    Io {
        /// The path concerned.
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A run could not be started (after the first runs succeeded in starting, e.g. out of
    /// processes or file descriptors).
    #[error("cannot start a run")]
    Spawn(#[source] crate::process::SpawnError),
}

impl From<StressError> for crate::error::Error {
    fn from(e: StressError) -> Self {
        use crate::error::Error;
        match e {
            StressError::Config(msg) => Error::usage(msg),
            StressError::NotFound { program } => {
                Error::usage(format!("command `{program}` not found"))
                    .hint("check the command after `--`; use a path or a program on `PATH`")
            }
            e @ StressError::Io { .. } => Error::infra("stress run failed").source(e),
            e @ StressError::Spawn(_) => Error::infra("stress run failed").source(e),
        }
    }
}
