//! `fixci schema`: print the JSON Schemas fixci validates against.

use clap::{Args, ValueEnum};

use crate::error::Result;

/// Which schema to print.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Which {
    /// The job spec (`info.json`).
    Job,
    /// A pipeline file.
    Pipeline,
    /// A replay case (`case.toml`).
    Case,
    /// A replay variant (`variant.toml`).
    Variant,
}

/// Print a JSON Schema (draft 2020-12).
#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// `job`, `pipeline`, `case` or `variant`
    pub which: Which,
}

/// Runs `fixci schema`; returns the exit code.
pub fn execute(args: SchemaArgs) -> Result<u8> {
    out!(
        "{}",
        match args.which {
            Which::Job => crate::spec::JOB_SCHEMA,
            Which::Pipeline => crate::pipeline::PIPELINE_SCHEMA,
            Which::Case => crate::replay::case::CASE_SCHEMA,
            Which::Variant => crate::replay::variant::VARIANT_SCHEMA,
        }
    );
    Ok(0)
}
