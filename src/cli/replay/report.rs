//! `fixci replay report` (being written).

use clap::Args;

use crate::error::{Error, Result};

/// Arguments of `fixci replay report`.
#[derive(Debug, Args)]
pub struct ReportArgs {}

/// Runs `fixci replay report`.
pub fn execute(_args: ReportArgs) -> Result<u8> {
    Err(Error::usage("`fixci replay report` is not built yet"))
}
