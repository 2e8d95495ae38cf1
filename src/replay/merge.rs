//! Output folders of a replay: the exclusive lock a writer holds on one, which items of a plan
//! still need a run there, and merging the folders of several shards into one (deduplicating by
//! key, with the conflict rules below).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::plan::{Plan, PlanItem, Shard};
use super::record::{self, Record, Verdict};
use super::run::Item;
use crate::error::{Error, io_error};
use crate::spec;

/// An exclusive `flock` on `OUT/.replay.lock`, held while the value lives, so two replays never
/// write the same output folder.
pub struct OutLock(#[allow(dead_code)] std::fs::File);

/// Creates `out` if needed and locks it.
///
/// Errors: exit 2 when another process holds the lock (another `fixci replay run` writes
/// there); exit 3 when the folder or the lock file cannot be created.
pub fn lock_out(out: &Path) -> Result<OutLock, Error> {
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

/// The items of `shard` (of the plan's `items`, in order) that still need a run in the locked
/// output folder `out`, and how many were skipped because a record with a real verdict exists
/// (an infrastructure error is run again).
///
/// Errors (exit 2): `out` already holds records and `resume` is false; a record that does not
/// parse.
pub fn pending(
    out: &Path,
    items: Vec<Item>,
    shard: Shard,
    resume: bool,
) -> Result<(Vec<Item>, usize), Error> {
    let existing: BTreeMap<String, Verdict> = if record::records_dir(out).is_dir() {
        record::load_all(out)?
            .into_iter()
            .map(|(_, r)| (r.key, r.verdict))
            .collect()
    } else {
        BTreeMap::new()
    };
    if !existing.is_empty() && !resume {
        return Err(Error::usage(format!(
            "`{}` already holds {} replay records",
            out.display(),
            existing.len()
        ))
        .hint(
            "pass `--resume` to run only the items without a record, or choose another `--out`",
        ));
    }
    let mut skipped = 0;
    let todo = items
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
    Ok((todo, skipped))
}

/// What [`merge`] did.
#[derive(Debug, Default)]
pub struct Merged {
    /// Records in the merged folder.
    pub records: usize,
    /// Records dropped because another folder had the same key.
    pub duplicates: usize,
    /// The plan's item count, when a folder had `plan.json`.
    pub planned: Option<usize>,
    /// Items of the plan with no record (empty without a plan).
    pub missing: Vec<PlanItem>,
}

/// Merges the replay output folders `dirs` into `out`: records are deduplicated by key (the
/// same verdict twice keeps the first; a real verdict beats an infrastructure error), the plan
/// is copied, and the items of the plan without a record are listed.
///
/// Errors (exit 2): a folder that is not a replay output or whose records do not parse; two
/// folders planned differently (different item keys); two real verdicts for one key;
/// `require_plan` without any `plan.json`. Exit 3: `out` cannot be written.
pub fn merge(dirs: &[PathBuf], out: &Path, require_plan: bool) -> Result<Merged, Error> {
    let out = spec::absolute(out);
    let mut plan: Option<(PathBuf, Plan)> = None;
    let mut merged: BTreeMap<String, (PathBuf, Record)> = BTreeMap::new();
    let mut duplicates = 0;
    for dir in dirs {
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
    if require_plan && plan.is_none() {
        return Err(Error::usage(
            "`--require-complete` needs a `plan.json` in the merged folders",
        )
        .hint("merge the `--out` folders of `fixci replay run`, which write their plan"));
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
        crate::run_dir::write_atomic(&target, &bytes).map_err(|e| io_error("write", &target, e))?;
    }
    let missing = plan
        .as_ref()
        .map(|(_, p)| {
            p.items
                .iter()
                .filter(|i| !merged.contains_key(&i.key))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    Ok(Merged {
        records: merged.len(),
        duplicates,
        planned: plan.map(|(_, p)| p.items.len()),
        missing,
    })
}
