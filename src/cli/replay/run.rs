//! `fixci replay run` and `fixci replay merge`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::error::{Error, Result, io_error};
use crate::exit_codes;
use crate::replay::plan::{Plan, PlanItem, Shard};
use crate::replay::record::{self, Record, Verdict};
use crate::replay::variant::{self, Variant};
use crate::replay::{case, run};
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

/// Holds an exclusive `flock` on `OUT/.replay.lock` for the life of the process, so two
/// replays never write the same output folder.
struct OutLock(#[allow(dead_code)] std::fs::File);

fn lock_out(out: &Path) -> Result<OutLock> {
    use std::os::fd::AsRawFd;
    std::fs::create_dir_all(out).map_err(|e| io_error("create", out, e))?;
    let path = out.join(".replay.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| io_error("open", &path, e))?;
    // SAFETY: flock on a descriptor this function owns.
    let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r != 0 {
        return Err(Error::usage(format!(
            "another `fixci replay run` is writing to `{}`",
            out.display()
        ))
        .hint("wait for it, or choose another `--out`"));
    }
    Ok(OutLock(f))
}

/// Keys of the records in `out` and whether each is an infrastructure error.
fn existing_records(out: &Path) -> Result<BTreeMap<String, Verdict>> {
    if !record::records_dir(out).is_dir() {
        return Ok(BTreeMap::new());
    }
    Ok(record::load_all(out)?
        .into_iter()
        .map(|(_, r)| (r.key, r.verdict))
        .collect())
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
    let _lock = lock_out(&out)?;
    let existing = existing_records(&out)?;
    if !existing.is_empty() && !args.resume {
        return Err(Error::usage(format!(
            "`{}` already holds {} replay records",
            out.display(),
            existing.len()
        ))
        .hint(
            "pass `--resume` to run only the items without a record, or choose another `--out`",
        ));
    }
    plan.save(&out)?;
    let mut skipped = 0;
    let todo: Vec<run::Item> = items
        .into_iter()
        .enumerate()
        .filter(|(i, _)| shard.contains(*i))
        .map(|(_, it)| it)
        .filter(|it| match existing.get(&it.key) {
            Some(v) if *v != Verdict::InfraError => {
                skipped += 1;
                false
            }
            _ => true,
        })
        .collect();
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
    let mut plan: Option<(PathBuf, Plan)> = None;
    let mut merged: BTreeMap<String, (PathBuf, Record)> = BTreeMap::new();
    let mut duplicates = 0;
    for dir in &args.dirs {
        let dir = spec::absolute(dir);
        let records = record::load_all(&dir)?;
        if let Some(p) = Plan::load(&dir)? {
            match &plan {
                None => plan = Some((dir.join("plan.json"), p)),
                Some((first, q)) => {
                    let keys = |p: &Plan| {
                        p.items
                            .iter()
                            .map(|i| i.key.clone())
                            .collect::<BTreeSet<_>>()
                    };
                    if keys(q) != keys(&p) {
                        return Err(Error::usage("the folders were planned differently")
                            .detail(format!("{}: {} items", first.display(), q.items.len()))
                            .detail(format!("{}: {} items", dir.join("plan.json").display(), p.items.len()))
                            .hint("merge only shards of one replay (same cases, variants, epochs and fixci version)"));
                    }
                }
            }
        }
        for (path, r) in records {
            match merged.get(&r.key) {
                None => {
                    merged.insert(r.key.clone(), (path, r));
                }
                Some((other_path, other)) => {
                    duplicates += 1;
                    if other.verdict == r.verdict {
                        continue;
                    }
                    // An infrastructure error is no verdict on the agent: a real outcome wins.
                    if other.verdict == Verdict::InfraError {
                        merged.insert(r.key.clone(), (path, r));
                    } else if r.verdict != Verdict::InfraError {
                        return Err(Error::usage(format!(
                            "conflicting verdicts for case `{}`, variant `{}`, epoch {}",
                            r.case, r.variant, r.epoch
                        ))
                        .detail(format!("{}: {}", other_path.display(), other.verdict.as_str()))
                        .detail(format!("{}: {}", path.display(), r.verdict.as_str()))
                        .hint("the same key must give one verdict; remove the record you do not trust and merge again"));
                    }
                }
            }
        }
    }
    let dest = record::records_dir(&out);
    std::fs::create_dir_all(&dest).map_err(|e| io_error("create", &dest, e))?;
    if let Some((_, p)) = &plan {
        p.save(&out)?;
    }
    for (key, (path, _)) in &merged {
        let target = dest.join(format!("{key}.json"));
        if spec::absolute(path) == target {
            continue;
        }
        let bytes = std::fs::read(path).map_err(|e| io_error("read", path, e))?;
        crate::run_dir::write_atomic(&target, &bytes)
            .map_err(|e| io_error("write", &target, e))?;
    }
    outln!(
        "merged {} records from {} folder{} into {}{}",
        merged.len(),
        args.dirs.len(),
        if args.dirs.len() == 1 { "" } else { "s" },
        out.display(),
        if duplicates > 0 {
            format!(" ({duplicates} duplicates dropped)")
        } else {
            String::new()
        }
    );
    if args.require_complete {
        let Some((_, p)) = &plan else {
            return Err(Error::usage(
                "`--require-complete` needs a `plan.json` in the merged folders",
            )
            .hint("merge the `--out` folders of `fixci replay run`, which write their plan"));
        };
        let missing: Vec<&PlanItem> = p
            .items
            .iter()
            .filter(|i| !merged.contains_key(&i.key))
            .collect();
        if !missing.is_empty() {
            errln!(
                "incomplete: {} of {} planned items have no record",
                missing.len(),
                p.items.len()
            );
            for i in missing.iter().take(10) {
                errln!(
                    "  missing: case `{}`, variant `{}`, epoch {}",
                    i.case,
                    i.variant,
                    i.epoch
                );
            }
            return Ok(exit_codes::NO_FIX);
        }
    }
    Ok(exit_codes::SUCCESS)
}
