//! `fixci replay run` and `fixci replay merge`: arguments and rendering; the rules live in
//! `replay::run` and `replay::merge`.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::error::{Error, Result};
use crate::exit_codes;
use crate::replay::plan::Shard;
use crate::replay::record::{self, Verdict};
use crate::replay::variant::{self, Variant};
use crate::replay::{case, merge, run};
use crate::spec;

/// Arguments of `fixci replay run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// A corpus folder (one sub-folder per case, each with `case.toml`), a case folder, or a
    /// `case.toml` file.
    pub cases: PathBuf,
    /// A variant: a folder (its `variant.toml`, `pipelines/` and prompt templates) or a TOML
    /// file. Repeat for several variants.
    #[arg(long = "variant", value_name = "DIR_OR_TOML", num_args = 1..)]
    pub variants: Vec<PathBuf>,
    /// Output folder: `plan.json`, `records/`, `work/`.
    #[arg(long)]
    pub out: PathBuf,
    /// Repetitions of each (case, variant), for pass@k.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub epochs: u32,
    /// Items run at once.
    #[arg(short = 'j', long = "jobs", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs: u32,
    /// Run one shard of the plan: `i/n` (0-based i), or `auto/n` to read the index from
    /// `JOB_COMPLETION_INDEX`, `AWS_BATCH_JOB_ARRAY_INDEX` or `SLURM_ARRAY_TASK_ID`.
    #[arg(long)]
    pub shard: Option<String>,
    /// Skip items whose record already exists in `--out`.
    #[arg(long)]
    pub resume: bool,
    /// Agent for every variant (`gold` applies each case's gold patch: the corpus check).
    #[arg(long)]
    pub agent: Option<String>,
    /// Retries of an item after an infrastructure failure (not after an agent failure).
    #[arg(long, default_value_t = 2)]
    pub retries: u32,
    /// Keep each item's repository clone and worktree (by default only the run directory's
    /// reports and logs are kept).
    #[arg(long)]
    pub keep_work: bool,
}

/// Arguments of `fixci replay merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Replay output folders (shards) to merge.
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// The merged output folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Fail (exit 1) unless every item of the plan has a record.
    #[arg(long)]
    pub require_complete: bool,
}

fn progress_bar(len: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(len);
    b.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} items [{elapsed}, eta {eta}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    b
}

/// Runs `fixci replay run`: exit 0 when every item of the shard has a record, 3 when some
/// ended as infrastructure errors (a later `--resume` retries them), 130 when interrupted.
pub fn execute(args: RunArgs) -> Result<u8> {
    let cases = case::load_corpus(&args.cases)?;
    let gold = args.agent.as_deref() == Some("gold");
    let variants: Vec<Variant> = if gold {
        if let Some(v) = args.variants.first() {
            return Err(Error::usage(format!(
                "`--variant {}` cannot be used with `--agent gold`",
                v.display()
            ))
            .hint("the gold check applies each case's gold patch with no agent, prompt or pipeline: drop `--variant`"));
        }
        vec![Variant::gold()]
    } else {
        if args.variants.is_empty() {
            return Err(Error::usage(
                "`fixci replay run` needs at least one `--variant DIR_OR_TOML`",
            )
            .hint("or check the corpus with `--agent gold`"));
        }
        let v: Vec<Variant> = args
            .variants
            .iter()
            .map(|p| variant::load(p))
            .collect::<Result<_>>()?;
        for (i, a) in v.iter().enumerate() {
            if let Some(b) = v[i + 1..].iter().find(|b| b.name == a.name) {
                return Err(Error::usage(format!("two variants are named `{}`", a.name))
                    .detail(a.source.display().to_string())
                    .detail(b.source.display().to_string())
                    .hint("give them different `name` keys"));
            }
        }
        v
    };
    let shard = match &args.shard {
        Some(s) => run::parse_shard(s, &|k| std::env::var(k).ok())?,
        None => Shard::ALL,
    };
    let (plan, items) = run::plan(&cases, &variants, args.epochs, args.agent.as_deref())?;
    let out = spec::absolute(&args.out);
    let _lock = merge::lock_out(&out)?;
    let (todo, skipped) = merge::pending(&out, items, shard, args.resume)?;
    plan.save(&out)?;
    errln!(
        "replay: {} cases x {} variant{} x {} epoch{} = {} items; shard {}/{}: {} to run{}",
        cases.len(),
        variants.len(),
        if variants.len() == 1 { "" } else { "s" },
        args.epochs,
        if args.epochs == 1 { "" } else { "s" },
        plan.items.len(),
        shard.index,
        shard.count,
        todo.len(),
        if skipped > 0 {
            format!(", {skipped} already recorded")
        } else {
            String::new()
        }
    );
    super::super::run::install_signal_handlers();
    let cancel = super::super::run::cancel_flag();
    let bar = progress_bar(todo.len() as u64);
    let opts = run::Options {
        cases: &cases,
        variants: &variants,
        out: out.clone(),
        jobs: args.jobs,
        retries: args.retries,
        keep_work: args.keep_work,
        cancel,
    };
    let tty = std::io::stderr().is_terminal();
    let summary = run::execute(&opts, &todo, &|done, total, r| {
        bar.set_position(done as u64);
        let line = format!(
            "[{done}/{total}] {} {} epoch {}: {} ({:.1}s)",
            r.case,
            r.variant,
            r.epoch,
            r.verdict.as_str(),
            r.wall_s
        );
        if tty {
            bar.set_message(line);
        } else {
            errln!("{line}");
        }
    });
    bar.finish_and_clear();
    // Drop the scratch folder when every item cleaned up after itself.
    let _ = std::fs::remove_dir(out.join("work"));
    let summary = summary?;
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &summary.written {
        *counts.entry(r.verdict.as_str()).or_default() += 1;
    }
    let counts: Vec<String> = Verdict::ALL
        .iter()
        .filter_map(|v| {
            counts
                .get(v.as_str())
                .map(|n| format!("{n} {}", v.as_str()))
        })
        .collect();
    outln!(
        "{} records written to {} ({}){}",
        summary.written.len(),
        record::records_dir(&out).display(),
        if counts.is_empty() {
            "none".to_string()
        } else {
            counts.join(", ")
        },
        if skipped > 0 {
            format!("; {skipped} skipped (already recorded)")
        } else {
            String::new()
        }
    );
    if summary.interrupted || cancel.load(std::sync::atomic::Ordering::SeqCst) {
        errln!(
            "replay interrupted; finished items are recorded. Continue with the same command and `--resume`."
        );
        return Ok(exit_codes::INTERRUPTED);
    }
    if summary
        .written
        .iter()
        .any(|r| r.verdict == Verdict::InfraError)
    {
        errln!("some items ended with infrastructure errors; `--resume` retries them");
        return Ok(exit_codes::INFRA);
    }
    Ok(exit_codes::SUCCESS)
}

/// Runs `fixci replay merge`: exit 0; 1 with `--require-complete` when items of the plan have
/// no record; 2 for conflicting verdicts, differing plans or a folder that is not a replay
/// output.
pub fn merge(args: MergeArgs) -> Result<u8> {
    let out = spec::absolute(&args.out);
    let m = merge::merge(&args.dirs, &out, args.require_complete)?;
    outln!(
        "merged {} records from {} folder{} into {}{}",
        m.records,
        args.dirs.len(),
        if args.dirs.len() == 1 { "" } else { "s" },
        out.display(),
        if m.duplicates > 0 {
            format!(" ({} duplicates dropped)", m.duplicates)
        } else {
            String::new()
        }
    );
    if args.require_complete && !m.missing.is_empty() {
        errln!(
            "incomplete: {} of {} planned items have no record",
            m.missing.len(),
            m.planned.unwrap_or_default()
        );
        for i in m.missing.iter().take(10) {
            errln!(
                "  missing: case `{}`, variant `{}`, epoch {}",
                i.case,
                i.variant,
                i.epoch
            );
        }
        return Ok(exit_codes::NO_FIX);
    }
    Ok(exit_codes::SUCCESS)
}
