//! `fixci replay report`: per-variant success rates of a replay output folder, written as
//! `report.md`, `report.json` and `report.html` into the folder and printed.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::error::{Result, io_error};
use crate::replay::{Plan, record, report};

/// Output formats of `fixci replay report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Markdown tables.
    Md,
    /// `report.json` (field names documented in `fixci::replay::report::Report`).
    Json,
    /// A self-contained HTML page with a per-case table.
    Html,
}

/// Report the success rate of each variant of a replay: counts per verdict, rate with a Wilson
/// 95% interval, repo-clustered standard error, pass@k and pass^k, funnel, time and cost, gold
/// check flags and plan completeness. Writes `report.md`, `report.json` and `report.html` into
/// DIR and prints the chosen format.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A replay output folder (`records/`, optionally `plan.json`).
    pub dir: PathBuf,
    /// What to print.
    #[arg(long, value_enum, default_value_t = Format::Md)]
    pub format: Format,
    /// Write the chosen format to this file instead of printing it.
    #[arg(long, value_name = "FILE")]
    pub out_file: Option<PathBuf>,
}

/// Runs `fixci replay report`. Exit 0 when the report was written; exit 2 when DIR is not a
/// replay folder, a record or the plan does not parse, or two records claim the same item;
/// exit 3 when the report files cannot be written.
pub fn execute(args: ReportArgs) -> Result<u8> {
    let records = record::load_all(&args.dir)?;
    let plan = Plan::load(&args.dir)?;
    let r = report::build(&records, plan.as_ref())?;
    let md = report::markdown(&r);
    let json = serde_json::to_string_pretty(&r).expect("reports serialize") + "\n";
    let html = report::html(&r);
    for (name, text) in [
        ("report.md", &md),
        ("report.json", &json),
        ("report.html", &html),
    ] {
        let path = args.dir.join(name);
        crate::run_dir::write_atomic(&path, text.as_bytes())
            .map_err(|e| io_error("write", &path, e))?;
    }
    let chosen = match args.format {
        Format::Md => md,
        Format::Json => json,
        Format::Html => html,
    };
    match &args.out_file {
        Some(f) => std::fs::write(f, chosen).map_err(|e| io_error("write", f, e))?,
        None => out!("{chosen}"),
    }
    Ok(crate::exit_codes::SUCCESS)
}
