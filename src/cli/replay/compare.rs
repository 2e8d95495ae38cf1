//! `fixci replay compare`: paired comparison of two variants on their common (case, epoch)
//! items.

use std::path::PathBuf;

use clap::Args;

use crate::error::Result;
use crate::replay::{compare, record};

/// Compare two variants on the (case, epoch) items both ran: the paired table (both, only A,
/// only B, neither), the exact McNemar test, the difference in success rate with Newcombe's
/// 95% interval, and the cases that flipped. A and B are replay output folders; they may be
/// the same folder holding both variants.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Replay output folder of variant A.
    pub a: PathBuf,
    /// Replay output folder of variant B (may be the same folder as A).
    pub b: PathBuf,
    /// The variant of A to compare (required when A holds several).
    #[arg(long, value_name = "NAME")]
    pub variant_a: Option<String>,
    /// The variant of B to compare (required when B holds several).
    #[arg(long, value_name = "NAME")]
    pub variant_b: Option<String>,
    /// Print JSON instead of Markdown.
    #[arg(long)]
    pub json: bool,
}

/// Runs `fixci replay compare`. Exit 0 whatever the result; exit 2 when a folder is not a
/// replay output, a record does not parse, a variant is unknown or ambiguous, or the sides
/// share no item.
pub fn execute(args: CompareArgs) -> Result<u8> {
    let ra = record::load_all(&args.a)?;
    let rb = if args.b == args.a {
        ra.clone()
    } else {
        record::load_all(&args.b)?
    };
    let va = compare::select_variant(&args.a, &ra, args.variant_a.as_deref(), "--variant-a")?;
    let vb = compare::select_variant(&args.b, &rb, args.variant_b.as_deref(), "--variant-b")?;
    let c = compare::compare(&args.a, &ra, &va, &args.b, &rb, &vb)?;
    if args.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&c).expect("comparisons serialize")
        );
    } else {
        out!("{}", compare::markdown(&c));
    }
    Ok(crate::exit_codes::SUCCESS)
}
