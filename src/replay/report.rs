//! `fixci replay report`: the success rate of each variant of a replay, from its records (and
//! its plan when present), rendered as Markdown, JSON and a self-contained HTML page.
//!
//! Pure: [`build`] turns records into a [`Report`]; [`markdown`], [`html`] and
//! `serde_json` render it. Reading the folder and writing the files is the CLI's job.
//!
//! Counting rules, stated once:
//! - an *item* is one record (case, variant, epoch);
//! - an item is *scored* unless its verdict is `infra-error`: such an item failed for reasons
//!   that say nothing about the variant (fixci could not clone, write, ...), so it is shown in
//!   the verdict counts but left out of the rate, the intervals and pass@k;
//! - the *rate* is resolved / scored items; its Wilson interval treats items as independent,
//!   the repo-clustered standard error does not (cases of one repository, and the epochs of
//!   one case, are correlated).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use super::plan::{Plan, PlanItem};
use super::record::{Record, Verdict};
use crate::error::Error;
use crate::markdown::cell;
use crate::stats;

/// Version of the `report.json` format; bumped when a field changes meaning.
pub const REPORT_FORMAT: u32 = 1;

/// Confidence level of every interval in the report.
pub const CONFIDENCE: f64 = 0.95;

/// The whole report (`report.json`). Field names are stable within a [`REPORT_FORMAT`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// [`REPORT_FORMAT`].
    pub format: u32,
    /// Confidence level of the intervals (0.95).
    pub confidence: f64,
    /// Number of records read.
    pub records: u64,
    /// Epochs per (case, variant): the plan's, else the largest epoch seen plus one.
    pub epochs: u32,
    /// One summary per variant, in the plan's order (then by name).
    pub variants: Vec<VariantSummary>,
    /// Gold-check findings: records of the `gold` agent with flags (the case is not qualified).
    pub gold_flags: Vec<GoldFlag>,
    /// Gold qualification per case (`--agent gold` records only), disqualified cases first,
    /// then by case id. Empty without gold records.
    pub qualification: Vec<CaseQualification>,
    /// Completeness against `plan.json`; `null` when the folder has no plan.
    pub plan: Option<PlanStatus>,
    /// Per case: its verdict for each variant and epoch (the HTML page's table).
    pub cases: Vec<CaseRow>,
}

/// Counts of items per verdict (keys are the verdicts' kebab-case names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct VerdictCounts {
    /// `resolved` items.
    pub resolved: u64,
    /// `unresolved` items.
    pub unresolved: u64,
    /// `could-not-reproduce` items.
    pub could_not_reproduce: u64,
    /// `timeout` items.
    pub timeout: u64,
    /// `agent-error` items.
    pub agent_error: u64,
    /// `infra-error` items (not scored).
    pub infra_error: u64,
}

impl VerdictCounts {
    fn add(&mut self, v: Verdict) {
        *self.get_mut(v) += 1;
    }

    fn get_mut(&mut self, v: Verdict) -> &mut u64 {
        match v {
            Verdict::Resolved => &mut self.resolved,
            Verdict::Unresolved => &mut self.unresolved,
            Verdict::CouldNotReproduce => &mut self.could_not_reproduce,
            Verdict::Timeout => &mut self.timeout,
            Verdict::AgentError => &mut self.agent_error,
            Verdict::InfraError => &mut self.infra_error,
        }
    }

    /// The count of one verdict.
    pub fn get(&self, v: Verdict) -> u64 {
        let mut c = *self;
        *c.get_mut(v)
    }
}

/// A two-sided interval `[lo, hi]` on a proportion.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    /// Lower bound.
    pub lo: f64,
    /// Upper bound.
    pub hi: f64,
}

/// pass@k or pass^k at one `k`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct KValue {
    /// Attempts per case drawn (1-based).
    pub k: u32,
    /// Mean over cases of the per-case unbiased estimate, in [0, 1].
    pub value: f64,
    /// Cases that entered the mean: those with at least `k` scored epochs.
    pub cases: u64,
}

/// How far the items got (per-stage funnel), as item counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FunnelCounts {
    /// All items.
    pub items: u64,
    /// Items whose failure fixci reproduced.
    pub reproduced: u64,
    /// Items where an attempt produced a change.
    pub fixed: u64,
    /// Items whose change passed fixci's verification.
    pub verified: u64,
    /// Items whose case commands then passed (verdict `resolved`).
    pub resolved: u64,
}

/// Token totals over the items whose agent reported tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TokenTotals {
    /// Input tokens.
    pub input: u64,
    /// Output tokens.
    pub output: u64,
    /// Prompt-cache reads.
    pub cache_read: u64,
    /// Prompt-cache writes.
    pub cache_write: u64,
    /// Items that reported tokens.
    pub items: u64,
}

/// The summary of one variant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VariantSummary {
    /// Variant name.
    pub variant: String,
    /// Items (records) of this variant.
    pub items: u64,
    /// Items per verdict.
    pub verdicts: VerdictCounts,
    /// Items scored: all but `infra-error`.
    pub scored: u64,
    /// Resolved items.
    pub resolved: u64,
    /// resolved / scored; `null` when nothing was scored.
    pub rate: Option<f64>,
    /// Wilson score interval of the rate at [`CONFIDENCE`] (see [`stats::wilson`]); `[0, 1]`
    /// when nothing was scored.
    pub wilson: Interval,
    /// Repo-clustered standard error of the rate (cluster = the record's `repo`; see
    /// [`stats::clustered_standard_error`]); `null` with fewer than two repositories.
    pub clustered_se: Option<f64>,
    /// Distinct repositories among the scored items (the clusters).
    pub repos: u64,
    /// Distinct cases among the items.
    pub cases: u64,
    /// pass@k for k = 1..=epochs (see [`stats::pass_at_k`]).
    pub pass_at_k: Vec<KValue>,
    /// pass^k for k = 1..=epochs (see [`stats::pass_hat_k`]); empty when epochs = 1.
    pub pass_hat_k: Vec<KValue>,
    /// Per-stage funnel.
    pub funnel: FunnelCounts,
    /// Mean wall time per item, seconds; `null` without items.
    pub mean_wall_s: Option<f64>,
    /// Mean fixci overhead per item (wall time minus agent and test time), seconds.
    pub mean_overhead_s: Option<f64>,
    /// Token totals.
    pub tokens: TokenTotals,
    /// Total cost in US dollars over the items that reported one; `null` when none did.
    pub cost_usd: Option<f64>,
    /// Items that reported a cost.
    pub cost_items: u64,
    /// `cost_usd / resolved` (US dollars per resolved item); `null` without cost or
    /// resolution.
    pub cost_per_resolved_usd: Option<f64>,
}

/// A gold-agent record with findings: its case is not qualified for the corpus.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GoldFlag {
    /// Case id.
    pub case: String,
    /// Variant of the gold record.
    pub variant: String,
    /// Epoch of the gold record.
    pub epoch: u32,
    /// The findings (e.g. `gold-patch-does-not-resolve`).
    pub flags: Vec<String>,
}

/// Whether the gold check qualifies one case: only when every one of its epochs does.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseQualification {
    /// Case id.
    pub case: String,
    /// The case's repository (its root commit).
    pub repo: String,
    /// True when the case is declared deterministic.
    pub deterministic: bool,
    /// Gold records (epochs) of the case.
    pub epochs: u64,
    /// Epochs that qualified: verdict `resolved` with no flag.
    pub qualified_epochs: u64,
    /// True when every epoch qualified.
    pub qualified: bool,
    /// Distinct flag names over the epochs, sorted (e.g. `fail-to-pass-flaky`), plus the
    /// verdict of an epoch that is neither resolved nor flagged (e.g. `infra-error`).
    pub flags: Vec<String>,
    /// Fail-to-pass runs at the failing commit, summed over commands and epochs.
    pub fail_to_pass_before_runs: u64,
    /// How many of those failed.
    pub fail_to_pass_before_failed: u64,
}

/// Completeness of the records against `plan.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanStatus {
    /// Items in the plan.
    pub items: u64,
    /// Plan items that have a record.
    pub recorded: u64,
    /// Plan items without a record.
    pub missing: u64,
    /// The missing items, in plan order.
    pub missing_items: Vec<PlanItem>,
    /// Records whose key is not in the plan (e.g. from another plan merged in).
    pub unplanned: u64,
}

/// One case's verdicts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseRow {
    /// Case id.
    pub case: String,
    /// The case's repository (empty when only the plan names the case).
    pub repo: String,
    /// One entry per variant, in the report's variant order.
    pub results: Vec<CaseResult>,
}

/// One case's verdicts for one variant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseResult {
    /// Variant name.
    pub variant: String,
    /// Verdict per epoch (index = epoch); `null` where no record exists.
    pub verdicts: Vec<Option<Verdict>>,
}

/// Builds the report from `(path, record)` pairs (as [`super::record::load_all`] returns them)
/// and the plan, if any.
///
/// Errors (exit 2): two records for the same (case, variant, epoch) with different keys (a
/// folder that was copied together instead of merged); the error names both files.
pub fn build(records: &[(PathBuf, Record)], plan: Option<&Plan>) -> Result<Report, Error> {
    let mut seen: BTreeMap<(&str, &str, u32), &PathBuf> = BTreeMap::new();
    for (path, r) in records {
        if let Some(first) = seen.insert((&r.variant, &r.case, r.epoch), path) {
            return Err(Error::usage(format!(
                "two records for case `{}`, variant `{}`, epoch {}",
                r.case, r.variant, r.epoch
            ))
            .detail(format!("`{}`", first.display()))
            .detail(format!("`{}`", path.display()))
            .hint("combine shard folders with `fixci replay merge`, which deduplicates by key"));
        }
    }
    let recs: Vec<&Record> = records.iter().map(|(_, r)| r).collect();

    let mut variants: Vec<String> = plan.map(|p| p.variants.clone()).unwrap_or_default();
    let extra: BTreeSet<&str> = recs
        .iter()
        .map(|r| r.variant.as_str())
        .filter(|v| !variants.iter().any(|p| p == v))
        .collect();
    variants.extend(extra.into_iter().map(str::to_owned));

    let max_epoch = recs.iter().map(|r| r.epoch + 1).max().unwrap_or(1);
    let epochs = plan.map_or(max_epoch, |p| p.epochs.max(max_epoch)).max(1);

    let summaries = variants
        .iter()
        .map(|v| {
            let rs: Vec<&Record> = recs.iter().copied().filter(|r| &r.variant == v).collect();
            summarise(v, &rs, epochs)
        })
        .collect();

    let gold_flags = recs
        .iter()
        .filter(|r| r.agent == "gold" && !r.flags.is_empty())
        .map(|r| GoldFlag {
            case: r.case.clone(),
            variant: r.variant.clone(),
            epoch: r.epoch,
            flags: r.flags.clone(),
        })
        .collect();

    let qualification = qualify(&recs);

    let plan_status = plan.map(|p| {
        let keys: BTreeSet<&str> = recs.iter().map(|r| r.key.as_str()).collect();
        let planned: BTreeSet<&str> = p.items.iter().map(|i| i.key.as_str()).collect();
        let missing_items: Vec<PlanItem> = p
            .items
            .iter()
            .filter(|i| !keys.contains(i.key.as_str()))
            .cloned()
            .collect();
        PlanStatus {
            items: p.items.len() as u64,
            recorded: (p.items.len() - missing_items.len()) as u64,
            missing: missing_items.len() as u64,
            missing_items,
            unplanned: keys.iter().filter(|k| !planned.contains(*k)).count() as u64,
        }
    });

    let mut case_ids: BTreeMap<String, String> = BTreeMap::new();
    if let Some(p) = plan {
        for c in &p.cases {
            case_ids.entry(c.clone()).or_default();
        }
    }
    for r in &recs {
        let repo = case_ids.entry(r.case.clone()).or_default();
        if repo.is_empty() {
            repo.clone_from(&r.repo);
        }
    }
    let cases = case_ids
        .into_iter()
        .map(|(case, repo)| {
            let results = variants
                .iter()
                .map(|v| {
                    let mut verdicts = vec![None; epochs as usize];
                    for r in recs.iter().filter(|r| r.case == case && &r.variant == v) {
                        if let Some(slot) = verdicts.get_mut(r.epoch as usize) {
                            *slot = Some(r.verdict);
                        }
                    }
                    CaseResult {
                        variant: v.clone(),
                        verdicts,
                    }
                })
                .collect();
            CaseRow {
                case,
                repo,
                results,
            }
        })
        .collect();

    Ok(Report {
        format: REPORT_FORMAT,
        confidence: CONFIDENCE,
        records: recs.len() as u64,
        epochs,
        variants: summaries,
        gold_flags,
        qualification,
        plan: plan_status,
        cases,
    })
}

/// The gold qualification of each case with gold records, disqualified cases first.
fn qualify(recs: &[&Record]) -> Vec<CaseQualification> {
    let mut by_case: BTreeMap<&str, CaseQualification> = BTreeMap::new();
    for r in recs.iter().filter(|r| r.agent == "gold") {
        let q = by_case
            .entry(r.case.as_str())
            .or_insert_with(|| CaseQualification {
                case: r.case.clone(),
                repo: r.repo.clone(),
                deterministic: r.deterministic,
                epochs: 0,
                qualified_epochs: 0,
                qualified: false,
                flags: Vec::new(),
                fail_to_pass_before_runs: 0,
                fail_to_pass_before_failed: 0,
            });
        q.epochs += 1;
        let ok = r.resolved() && r.flags.is_empty();
        q.qualified_epochs += u64::from(ok);
        for n in r.flag_names() {
            q.flags.push(n.to_string());
        }
        if !ok && r.flags.is_empty() {
            q.flags.push(r.verdict.as_str().to_string());
        }
        for c in &r.fail_to_pass_before {
            q.fail_to_pass_before_runs += c.runs;
            q.fail_to_pass_before_failed += c.failed();
        }
    }
    let mut out: Vec<CaseQualification> = by_case
        .into_values()
        .map(|mut q| {
            q.qualified = q.epochs > 0 && q.qualified_epochs == q.epochs;
            q.flags.sort();
            q.flags.dedup();
            q
        })
        .collect();
    out.sort_by(|a, b| (a.qualified, &a.case).cmp(&(b.qualified, &b.case)));
    out
}

fn summarise(variant: &str, rs: &[&Record], epochs: u32) -> VariantSummary {
    let mut verdicts = VerdictCounts::default();
    let mut funnel = FunnelCounts::default();
    let mut tokens = TokenTotals::default();
    let (mut cost, mut cost_items) = (0.0, 0u64);
    for r in rs {
        verdicts.add(r.verdict);
        funnel.items += 1;
        funnel.reproduced += u64::from(r.funnel.reproduced);
        funnel.fixed += u64::from(r.funnel.fixed);
        funnel.verified += u64::from(r.funnel.verified);
        funnel.resolved += u64::from(r.resolved());
        if let Some(t) = r.tokens {
            tokens.input += t.input;
            tokens.output += t.output;
            tokens.cache_read += t.cache_read;
            tokens.cache_write += t.cache_write;
            tokens.items += 1;
        }
        if let Some(c) = r.cost_usd {
            cost += c;
            cost_items += 1;
        }
    }
    let scored_recs: Vec<&&Record> = rs
        .iter()
        .filter(|r| r.verdict != Verdict::InfraError)
        .collect();
    let scored = scored_recs.len() as u64;
    let resolved = verdicts.resolved;
    let (lo, hi) = stats::wilson(resolved, scored, CONFIDENCE);
    let obs: Vec<(&str, f64)> = scored_recs
        .iter()
        .map(|r| (r.repo.as_str(), if r.resolved() { 1.0 } else { 0.0 }))
        .collect();
    let repos = obs.iter().map(|(k, _)| *k).collect::<BTreeSet<_>>().len() as u64;

    // Per case: scored epochs n and resolved c.
    let mut per_case: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for r in &scored_recs {
        let e = per_case.entry(r.case.as_str()).or_default();
        e.0 += 1;
        e.1 += u64::from(r.resolved());
    }
    let k_values = |f: fn(u64, u64, u64) -> f64| -> Vec<KValue> {
        (1..=epochs)
            .filter_map(|k| {
                let used: Vec<f64> = per_case
                    .values()
                    .filter(|(n, _)| *n >= u64::from(k))
                    .map(|&(n, c)| f(n, c, u64::from(k)))
                    .collect();
                (!used.is_empty()).then(|| KValue {
                    k,
                    value: used.iter().sum::<f64>() / used.len() as f64,
                    cases: used.len() as u64,
                })
            })
            .collect()
    };
    let pass_at_k = k_values(stats::pass_at_k);
    let pass_hat_k = if epochs > 1 {
        k_values(stats::pass_hat_k)
    } else {
        Vec::new()
    };

    let n = rs.len() as f64;
    let mean =
        |f: fn(&Record) -> f64| (!rs.is_empty()).then(|| rs.iter().map(|r| f(r)).sum::<f64>() / n);
    let cost_usd = (cost_items > 0).then_some(cost);
    VariantSummary {
        variant: variant.to_owned(),
        items: rs.len() as u64,
        verdicts,
        scored,
        resolved,
        rate: (scored > 0).then(|| resolved as f64 / scored as f64),
        wilson: Interval { lo, hi },
        clustered_se: if obs.is_empty() {
            None
        } else {
            stats::clustered_standard_error(&obs)
        },
        repos,
        cases: rs
            .iter()
            .map(|r| r.case.as_str())
            .collect::<BTreeSet<_>>()
            .len() as u64,
        pass_at_k,
        pass_hat_k,
        funnel,
        mean_wall_s: mean(|r| r.wall_s),
        mean_overhead_s: mean(Record::overhead_s),
        tokens,
        cost_usd,
        cost_items,
        cost_per_resolved_usd: cost_usd
            .filter(|_| resolved > 0)
            .map(|c| c / resolved as f64),
    }
}

/// A root-commit repository key shortened to 12 hex digits; other keys unchanged.
fn short_repo(repo: &str) -> &str {
    if repo.len() == 40 && repo.bytes().all(|b| b.is_ascii_hexdigit()) {
        &repo[..12]
    } else {
        repo
    }
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// The Wilson interval as `lo – hi` percentages, `-` when nothing was scored.
fn wilson_text(v: &VariantSummary) -> String {
    if v.scored == 0 {
        "-".to_owned()
    } else {
        format!("{} – {}", pct(v.wilson.lo), pct(v.wilson.hi))
    }
}

fn opt(x: Option<f64>, f: impl Fn(f64) -> String) -> String {
    x.map_or_else(|| "-".to_owned(), f)
}

/// Renders the report as Markdown (the sections: success rate, verdicts, pass@k, funnel, time
/// and cost, gold check, plan).
pub fn markdown(r: &Report) -> String {
    let mut o = String::from("# Replay report\n\n");
    let _ = writeln!(
        o,
        "{} records, {} variants, {} epoch{}{}.\n",
        r.records,
        r.variants.len(),
        r.epochs,
        if r.epochs == 1 { "" } else { "s" },
        match &r.plan {
            Some(p) => format!(
                "; plan: {} of {} items recorded ({} missing)",
                p.recorded, p.items, p.missing
            ),
            None => "; no plan.json".to_owned(),
        }
    );
    o.push_str("## Success rate\n\n");
    o.push_str("| variant | items | scored | resolved | rate | 95% Wilson | repo-clustered SE | repos | cases |\n|---|---|---|---|---|---|---|---|---|\n");
    for v in &r.variants {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(&v.variant),
            v.items,
            v.scored,
            v.resolved,
            opt(v.rate, pct),
            wilson_text(v),
            opt(v.clustered_se, pct),
            v.repos,
            v.cases
        );
    }
    o.push_str(
        "\nRate = resolved / scored items (`infra-error` items are not scored). The Wilson \
         interval treats items as independent; the repo-clustered standard error (Liang-Zeger \
         sandwich, CR1) allows cases of one repository, and epochs of one case, to be \
         correlated.\n\n",
    );
    o.push_str("## Verdicts\n\n| variant |");
    for v in Verdict::ALL {
        let _ = write!(o, " {} |", v.as_str());
    }
    o.push_str("\n|---|");
    o.push_str(&"---|".repeat(Verdict::ALL.len()));
    o.push('\n');
    for v in &r.variants {
        let _ = write!(o, "| {} |", cell(&v.variant));
        for verdict in Verdict::ALL {
            let _ = write!(o, " {} |", v.verdicts.get(verdict));
        }
        o.push('\n');
    }
    if r.variants.iter().any(|v| !v.pass_at_k.is_empty()) && r.epochs > 1 {
        o.push_str("\n## pass@k and pass^k\n\n| variant | k | pass@k | pass^k | cases |\n|---|---|---|---|---|\n");
        for v in &r.variants {
            for p in &v.pass_at_k {
                let hat = v.pass_hat_k.iter().find(|h| h.k == p.k).map(|h| h.value);
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} | {} |",
                    cell(&v.variant),
                    p.k,
                    pct(p.value),
                    opt(hat, pct),
                    p.cases
                );
            }
        }
        o.push_str("\nUnbiased estimators over each case's epochs, averaged over cases: pass@k (Chen et al. 2021) is the chance that at least one of k attempts resolves the case, pass^k (Yao et al. 2024) that all k do.\n");
    }
    o.push_str("\n## Funnel\n\n| variant | items | reproduced | fixed | verified | resolved |\n|---|---|---|---|---|---|\n");
    for v in &r.variants {
        let f = &v.funnel;
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} |",
            cell(&v.variant),
            f.items,
            f.reproduced,
            f.fixed,
            f.verified,
            f.resolved
        );
    }
    o.push_str("\n## Time and cost\n\n| variant | mean wall (s) | mean overhead (s) | input tokens | output tokens | cost (USD) | cost per resolved item (USD) |\n|---|---|---|---|---|---|---|\n");
    for v in &r.variants {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} |",
            cell(&v.variant),
            opt(v.mean_wall_s, |x| format!("{x:.2}")),
            opt(v.mean_overhead_s, |x| format!("{x:.3}")),
            v.tokens.input,
            v.tokens.output,
            opt(v.cost_usd, |x| format!("{x:.4}")),
            opt(v.cost_per_resolved_usd, |x| format!("{x:.4}")),
        );
    }
    o.push_str("\n## Gold check\n\n");
    if !r.qualification.is_empty() {
        let bad = r.qualification.iter().filter(|q| !q.qualified).count();
        let _ = writeln!(
            o,
            "{} of {} cases qualified (a case qualifies only when every epoch resolves with no flag); disqualified cases first.\n",
            r.qualification.len() - bad,
            r.qualification.len()
        );
        o.push_str("| case | qualified | epochs qualified | fail-to-pass failed before the fix | flags |\n|---|---|---|---|---|\n");
        for q in &r.qualification {
            let _ = writeln!(
                o,
                "| {} | {} | {}/{} | {}/{} | {} |",
                cell(&q.case),
                if q.qualified { "yes" } else { "**no**" },
                q.qualified_epochs,
                q.epochs,
                q.fail_to_pass_before_failed,
                q.fail_to_pass_before_runs,
                cell(&q.flags.join(", "))
            );
        }
        o.push('\n');
    }
    if r.gold_flags.is_empty() {
        o.push_str("No gold-agent record has flags.\n");
    } else {
        o.push_str("Cases whose gold check failed (not qualified):\n\n| case | variant | epoch | flags |\n|---|---|---|---|\n");
        for g in &r.gold_flags {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} |",
                cell(&g.case),
                cell(&g.variant),
                g.epoch,
                cell(&g.flags.join(", "))
            );
        }
    }
    if !r.cases.is_empty() {
        o.push_str("\n## Cases\n\nVerdict per epoch (`-`: no record).\n\n| case | repo |");
        for v in &r.variants {
            let _ = write!(o, " {} |", cell(&v.variant));
        }
        o.push_str("\n|---|---|");
        o.push_str(&"---|".repeat(r.variants.len()));
        o.push('\n');
        for c in &r.cases {
            let _ = write!(o, "| {} | {} |", cell(&c.case), cell(short_repo(&c.repo)));
            for res in &c.results {
                let v: Vec<&str> = res
                    .verdicts
                    .iter()
                    .map(|v| v.map_or("-", |v| v.as_str()))
                    .collect();
                let _ = write!(o, " {} |", v.join(" "));
            }
            o.push('\n');
        }
    }
    if let Some(p) = &r.plan {
        o.push_str("\n## Plan\n\n");
        let _ = writeln!(
            o,
            "{} of {} planned items have a record; {} missing; {} records not in the plan.",
            p.recorded, p.items, p.missing, p.unplanned
        );
        if !p.missing_items.is_empty() {
            o.push_str("\n| case | variant | epoch | key |\n|---|---|---|---|\n");
            for i in p.missing_items.iter().take(50) {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | `{}` |",
                    cell(&i.case),
                    cell(&i.variant),
                    i.epoch,
                    cell(&i.key)
                );
            }
            if p.missing_items.len() > 50 {
                let _ = writeln!(
                    o,
                    "\n({} more in `report.json`)",
                    p.missing_items.len() - 50
                );
            }
        }
    }
    o
}

/// Escapes text for HTML element content and double-quoted attribute values.
pub fn escape_html(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}\
th{background:#f3f3f3}td.num{text-align:right}.v{font-family:monospace;font-size:90%}\
.resolved{background:#d8f5d0}.unresolved{background:#fbe3c8}.could-not-reproduce{background:#eee}\
.timeout{background:#f8d7da}.agent-error{background:#f5c2c7}.infra-error{background:#d6d8f5}\
.missing{color:#999}";

/// Renders the report as one self-contained HTML page (inline CSS, no script, no external
/// asset): the summary tables and a per-case table (case × variant, one verdict per epoch).
/// Every text from the records is HTML-escaped.
pub fn html(r: &Report) -> String {
    let e = escape_html;
    let mut o = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>fixci replay report</title>\n<style>",
    );
    o.push_str(CSS);
    o.push_str("</style>\n</head>\n<body>\n<h1>Replay report</h1>\n");
    let _ = writeln!(
        o,
        "<p>{} records, {} variants, {} epochs{}.</p>",
        r.records,
        r.variants.len(),
        r.epochs,
        match &r.plan {
            Some(p) => format!(
                "; plan: {} of {} items recorded ({} missing)",
                p.recorded, p.items, p.missing
            ),
            None => String::new(),
        }
    );
    o.push_str("<h2>Success rate</h2>\n<table>\n<tr><th>variant</th><th>items</th><th>scored</th><th>resolved</th><th>rate</th><th>95% Wilson</th><th>repo-clustered SE</th><th>repos</th><th>cases</th><th>mean wall (s)</th><th>mean overhead (s)</th><th>cost (USD)</th><th>cost per resolved (USD)</th></tr>\n");
    for v in &r.variants {
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            e(&v.variant),
            v.items,
            v.scored,
            v.resolved,
            opt(v.rate, pct),
            wilson_text(v),
            opt(v.clustered_se, pct),
            v.repos,
            v.cases,
            opt(v.mean_wall_s, |x| format!("{x:.2}")),
            opt(v.mean_overhead_s, |x| format!("{x:.3}")),
            opt(v.cost_usd, |x| format!("{x:.4}")),
            opt(v.cost_per_resolved_usd, |x| format!("{x:.4}")),
        );
    }
    o.push_str("</table>\n<h2>Verdicts and funnel</h2>\n<table>\n<tr><th>variant</th>");
    for v in Verdict::ALL {
        let _ = write!(o, "<th>{}</th>", v.as_str());
    }
    o.push_str("<th>reproduced</th><th>fixed</th><th>verified</th></tr>\n");
    for v in &r.variants {
        let _ = write!(o, "<tr><td>{}</td>", e(&v.variant));
        for verdict in Verdict::ALL {
            let _ = write!(o, "<td class=\"num\">{}</td>", v.verdicts.get(verdict));
        }
        let _ = writeln!(
            o,
            "<td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            v.funnel.reproduced, v.funnel.fixed, v.funnel.verified
        );
    }
    o.push_str("</table>\n");
    if r.epochs > 1 {
        o.push_str("<h2>pass@k and pass^k</h2>\n<table>\n<tr><th>variant</th><th>k</th><th>pass@k</th><th>pass^k</th><th>cases</th></tr>\n");
        for v in &r.variants {
            for p in &v.pass_at_k {
                let hat = v.pass_hat_k.iter().find(|h| h.k == p.k).map(|h| h.value);
                let _ = writeln!(
                    o,
                    "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                    e(&v.variant),
                    p.k,
                    pct(p.value),
                    opt(hat, pct),
                    p.cases
                );
            }
        }
        o.push_str("</table>\n");
    }
    if !r.gold_flags.is_empty() {
        o.push_str("<h2>Gold check: cases not qualified</h2>\n<table>\n<tr><th>case</th><th>variant</th><th>epoch</th><th>flags</th></tr>\n");
        for g in &r.gold_flags {
            let _ = writeln!(
                o,
                "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
                e(&g.case),
                e(&g.variant),
                g.epoch,
                e(&g.flags.join(", "))
            );
        }
        o.push_str("</table>\n");
    }
    o.push_str("<h2>Cases</h2>\n<table>\n<tr><th>case</th><th>repo</th>");
    for v in &r.variants {
        let _ = write!(o, "<th>{}</th>", e(&v.variant));
    }
    o.push_str("</tr>\n");
    for c in &r.cases {
        let _ = write!(o, "<tr><td>{}</td><td>{}</td>", e(&c.case), e(&c.repo));
        for res in &c.results {
            o.push_str("<td>");
            for (i, v) in res.verdicts.iter().enumerate() {
                if i > 0 {
                    o.push(' ');
                }
                match v {
                    Some(v) => {
                        let _ = write!(
                            o,
                            "<span class=\"v {0}\" title=\"epoch {1}\">{0}</span>",
                            v.as_str(),
                            i
                        );
                    }
                    None => {
                        let _ = write!(
                            o,
                            "<span class=\"v missing\" title=\"epoch {i}: no record\">-</span>"
                        );
                    }
                }
            }
            o.push_str("</td>");
        }
        o.push_str("</tr>\n");
    }
    o.push_str("</table>\n</body>\n</html>\n");
    o
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::replay::record::{Funnel, RECORD_FORMAT};

    pub(crate) fn rec(case: &str, repo: &str, variant: &str, epoch: u32, v: Verdict) -> Record {
        Record {
            format: RECORD_FORMAT,
            key: format!("{variant}-{case}-{epoch}"),
            case: case.into(),
            repo: repo.into(),
            tags: vec![],
            deterministic: true,
            variant: variant.into(),
            agent: "command".into(),
            model: None,
            epoch,
            fixci_version: "0.1.0".into(),
            verdict: v,
            reason: String::new(),
            funnel: Funnel {
                reproduced: v != Verdict::CouldNotReproduce,
                fixed: v == Verdict::Resolved,
                verified: v == Verdict::Resolved,
            },
            setup: vec![],
            fail_to_pass_before: vec![],
            pass_to_pass_before: vec![],
            fail_to_pass: vec![],
            pass_to_pass: vec![],
            flags: vec![],
            wall_s: 2.0,
            agent_and_tests_s: 1.5,
            stages: vec![],
            attempts: 1,
            tokens: None,
            cost_usd: None,
            retries: 0,
            run_dir: None,
            finished_at: "2026-01-01T00:00:00Z".into(),
        }
    }

    fn with_paths(rs: Vec<Record>) -> Vec<(PathBuf, Record)> {
        rs.into_iter()
            .map(|r| (PathBuf::from(format!("records/{}.json", r.key)), r))
            .collect()
    }

    #[test]
    fn counts_rate_and_exclusion_of_infra_errors() {
        use Verdict::*;
        let rs = with_paths(vec![
            rec("a", "r1", "v", 0, Resolved),
            rec("b", "r1", "v", 0, Unresolved),
            rec("c", "r2", "v", 0, Resolved),
            rec("d", "r2", "v", 0, InfraError),
            rec("e", "r3", "v", 0, Timeout),
        ]);
        let r = build(&rs, None).unwrap();
        let v = &r.variants[0];
        assert_eq!((v.items, v.scored, v.resolved), (5, 4, 2));
        assert_eq!(v.rate, Some(0.5));
        assert_eq!(v.verdicts.infra_error, 1);
        assert_eq!(v.verdicts.timeout, 1);
        assert_eq!(v.repos, 3);
        // One epoch: pass@1 is the per-case mean over scored cases (2/4), no pass^k.
        assert_eq!(v.pass_at_k.len(), 1);
        assert!((v.pass_at_k[0].value - 0.5).abs() < 1e-12);
        assert!(v.pass_hat_k.is_empty());
        assert!((v.mean_overhead_s.unwrap() - 0.5).abs() < 1e-12);
        assert_eq!(v.cost_usd, None);
    }

    #[test]
    fn duplicate_items_name_both_files() {
        let mut b = rec("a", "r", "v", 0, Verdict::Resolved);
        b.key = "other".into();
        let rs = with_paths(vec![rec("a", "r", "v", 0, Verdict::Resolved), b]);
        let err = build(&rs, None).unwrap_err();
        let text = err.render();
        assert!(text.contains("records/v-a-0.json"), "{text}");
        assert!(text.contains("records/other.json"), "{text}");
    }

    #[test]
    fn cost_per_resolved_and_tokens() {
        let mut a = rec("a", "r", "v", 0, Verdict::Resolved);
        a.cost_usd = Some(0.30);
        a.tokens = Some(crate::replay::record::Tokens {
            input: 100,
            output: 10,
            cache_read: 0,
            cache_write: 0,
        });
        let mut b = rec("b", "r", "v", 0, Verdict::Unresolved);
        b.cost_usd = Some(0.10);
        let r = build(&with_paths(vec![a, b]), None).unwrap();
        let v = &r.variants[0];
        assert!((v.cost_usd.unwrap() - 0.40).abs() < 1e-12);
        assert!((v.cost_per_resolved_usd.unwrap() - 0.40).abs() < 1e-12);
        assert_eq!((v.tokens.input, v.tokens.items, v.cost_items), (100, 1, 2));
    }

    #[test]
    fn html_escapes_record_text() {
        let rs = with_paths(vec![rec(
            "<script>alert(1)</script>",
            "r&d",
            "v\"x",
            0,
            Verdict::Resolved,
        )]);
        let page = html(&build(&rs, None).unwrap());
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("r&amp;d") && page.contains("v&quot;x"));
    }
}
