//! `fixci replay emit` (being written).

use clap::Args;

use crate::error::{Error, Result};

/// Arguments of `fixci replay emit`.
#[derive(Debug, Args)]
pub struct EmitArgs {}

/// Runs `fixci replay emit`.
pub fn execute(_args: EmitArgs) -> Result<u8> {
    Err(Error::usage("`fixci replay emit` is not built yet"))
}
