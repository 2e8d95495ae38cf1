//! `fixci logs`: fetch and distil a CI log.

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
}

/// Runs `fixci logs`; returns the exit code.
pub fn execute(args: LogsArgs) -> crate::error::Result<u8> {
    let d = crate::logs::distil_path(
        std::path::Path::new(&args.source),
        &crate::logs::DistilOptions {
            budget_bytes: args.budget,
        },
    )
    .map_err(|e| {
        crate::error::Error::usage(format!("cannot distil `{}`", args.source)).source(e)
    })?;
    println!("{}", serde_json::to_string_pretty(&d).unwrap_or_default());
    Ok(0)
}
