//! `fixci replay compare` (being written).

use clap::Args;

use crate::error::{Error, Result};

/// Arguments of `fixci replay compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {}

/// Runs `fixci replay compare`.
pub fn execute(_args: CompareArgs) -> Result<u8> {
    Err(Error::usage("`fixci replay compare` is not built yet"))
}
