//! `fixci replay compare`: a paired comparison of two variants on the items they share.
//!
//! Pairing: an item of A and an item of B pair when they have the same case and the same
//! epoch. Epoch `i` of one side meets epoch `i` of the other because the epochs of one
//! (case, variant) are exchangeable repetitions; when the sides ran different numbers of epochs
//! the surplus epochs stay unpaired (counted, not used). A pair where either side is
//! `infra-error` is left out: it compares fixci's infrastructure, not the variants. With
//! several epochs per case, pairs of one case are not independent, so the McNemar p-value and
//! the interval are then somewhat optimistic; with one epoch they are exact as cited.
//!
//! Pure: the CLI reads the folders and prints.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::record::{Record, Verdict};
use super::report::Interval;
use crate::error::Error;
use crate::markdown::cell;
use crate::stats::{self, PairedCounts};

/// Version of the comparison JSON; bumped when a field changes meaning.
pub const COMPARE_FORMAT: u32 = 1;

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Side {
    /// The replay output folder, as given.
    pub dir: String,
    /// The variant compared.
    pub variant: String,
    /// Records of that variant in the folder.
    pub items: u64,
    /// Resolved items among the pairs.
    pub resolved: u64,
    /// Success rate over the pairs (resolved / pairs).
    pub rate: f64,
}

/// A case where one side resolved epochs the other did not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flip {
    /// Case id.
    pub case: String,
    /// The epochs (0-based) in which only this side resolved the case.
    pub epochs: Vec<u32>,
}

/// The result of `fixci replay compare A B` (the `--json` output).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// [`COMPARE_FORMAT`].
    pub format: u32,
    /// Side A.
    pub a: Side,
    /// Side B.
    pub b: Side,
    /// Paired items used.
    pub pairs: u64,
    /// The paired 2×2 table: `both`, `only_a`, `only_b`, `neither`.
    pub counts: PairedCounts,
    /// Items of A with no counterpart in B (another case or epoch).
    pub unpaired_a: u64,
    /// Items of B with no counterpart in A.
    pub unpaired_b: u64,
    /// Pairs left out because either side is `infra-error`.
    pub excluded_infra_error: u64,
    /// Rate of A minus rate of B over the pairs: `(only_a - only_b) / pairs`.
    pub difference: f64,
    /// Confidence level of `interval` (0.95).
    pub confidence: f64,
    /// Newcombe's score interval for `difference` (see [`stats::paired_difference_interval`]).
    pub interval: Interval,
    /// Two-sided exact McNemar p-value on `only_a` and `only_b` (see [`stats::mcnemar_exact`]).
    pub p_value: f64,
    /// Cases where only A resolved some epochs, sorted by case.
    pub only_a_cases: Vec<Flip>,
    /// Cases where only B resolved some epochs, sorted by case.
    pub only_b_cases: Vec<Flip>,
}

/// The variants present in `records`, sorted.
pub fn variants(records: &[(PathBuf, Record)]) -> Vec<String> {
    records
        .iter()
        .map(|(_, r)| r.variant.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Chooses the variant of one side: `choice` when given (it must exist in the folder), else
/// the folder's only variant. `flag` names the option (`--variant-a`) in messages.
///
/// Errors (exit 2): the folder has no record; `choice` is not one of its variants; no choice
/// and several variants. The message names the folder and lists its variants.
pub fn select_variant(
    dir: &Path,
    records: &[(PathBuf, Record)],
    choice: Option<&str>,
    flag: &str,
) -> Result<String, Error> {
    let vs = variants(records);
    let list = || {
        vs.iter()
            .map(|v| format!("`{v}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if vs.is_empty() {
        return Err(Error::usage(format!(
            "`{}` has no replay records",
            dir.display()
        )));
    }
    match choice {
        Some(c) if vs.iter().any(|v| v == c) => Ok(c.to_owned()),
        Some(c) => Err(
            Error::usage(format!("unknown variant `{c}` in `{}`", dir.display()))
                .detail(format!("variants there: {}", list())),
        ),
        None if vs.len() == 1 => Ok(vs[0].clone()),
        None => Err(Error::usage(format!(
            "`{}` holds several variants: {}",
            dir.display(),
            list()
        ))
        .hint(format!("choose one with `{flag} NAME`"))),
    }
}

/// Compares the records of variant `va` of folder `dir_a` with those of `vb` of `dir_b`,
/// paired on (case, epoch) as the module documentation says.
///
/// Errors (exit 2): no (case, epoch) item is common to both sides (after leaving out
/// `infra-error` pairs).
pub fn compare(
    dir_a: &Path,
    a: &[(PathBuf, Record)],
    va: &str,
    dir_b: &Path,
    b: &[(PathBuf, Record)],
    vb: &str,
) -> Result<Comparison, Error> {
    let index = |rs: &'_ [(PathBuf, Record)], v: &str| -> BTreeMap<(String, u32), Verdict> {
        rs.iter()
            .filter(|(_, r)| r.variant == v)
            .map(|(_, r)| ((r.case.clone(), r.epoch), r.verdict))
            .collect()
    };
    let ia = index(a, va);
    let ib = index(b, vb);
    let mut counts = PairedCounts::default();
    let mut excluded = 0u64;
    let mut only_a: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    let mut only_b: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for ((case, epoch), &x) in &ia {
        let Some(&y) = ib.get(&(case.clone(), *epoch)) else {
            continue;
        };
        if x == Verdict::InfraError || y == Verdict::InfraError {
            excluded += 1;
            continue;
        }
        match (x == Verdict::Resolved, y == Verdict::Resolved) {
            (true, true) => counts.both += 1,
            (true, false) => {
                counts.only_a += 1;
                only_a.entry(case.clone()).or_default().push(*epoch);
            }
            (false, true) => {
                counts.only_b += 1;
                only_b.entry(case.clone()).or_default().push(*epoch);
            }
            (false, false) => counts.neither += 1,
        }
    }
    let common = ia.keys().filter(|k| ib.contains_key(*k)).count() as u64;
    let pairs = counts.n();
    if pairs == 0 {
        return Err(Error::usage(format!(
            "variant `{va}` of `{}` and variant `{vb}` of `{}` share no (case, epoch) item{}",
            dir_a.display(),
            dir_b.display(),
            if excluded > 0 {
                format!(" that is not `infra-error` ({excluded} left out)")
            } else {
                String::new()
            }
        ))
        .hint("compare replays of the same cases"));
    }
    let (lo, hi) = stats::paired_difference_interval(counts, super::report::CONFIDENCE);
    let flips = |m: BTreeMap<String, Vec<u32>>| {
        m.into_iter()
            .map(|(case, epochs)| Flip { case, epochs })
            .collect()
    };
    let side = |dir: &Path, v: &str, items: usize, resolved: u64| Side {
        dir: dir.display().to_string(),
        variant: v.to_owned(),
        items: items as u64,
        resolved,
        rate: resolved as f64 / pairs as f64,
    };
    Ok(Comparison {
        format: COMPARE_FORMAT,
        a: side(dir_a, va, ia.len(), counts.both + counts.only_a),
        b: side(dir_b, vb, ib.len(), counts.both + counts.only_b),
        pairs,
        counts,
        unpaired_a: ia.len() as u64 - common,
        unpaired_b: ib.len() as u64 - common,
        excluded_infra_error: excluded,
        difference: counts.difference(),
        confidence: super::report::CONFIDENCE,
        interval: Interval { lo, hi },
        p_value: stats::mcnemar_exact(counts.only_a, counts.only_b),
        only_a_cases: flips(only_a),
        only_b_cases: flips(only_b),
    })
}

/// Renders a comparison as Markdown: the sides, the flip table, the test, the difference with
/// its interval, and the flipped cases.
pub fn markdown(c: &Comparison) -> String {
    let mut o = String::from("# Replay comparison\n\n");
    let _ = writeln!(
        o,
        "A: `{}` in `{}` ({} items); B: `{}` in `{}` ({} items).\n",
        c.a.variant, c.a.dir, c.a.items, c.b.variant, c.b.dir, c.b.items
    );
    let _ = writeln!(
        o,
        "{} paired (case, epoch) items; unpaired: {} of A, {} of B; left out (infra-error): {}.\n",
        c.pairs, c.unpaired_a, c.unpaired_b, c.excluded_infra_error
    );
    let t = &c.counts;
    let _ = writeln!(
        o,
        "| | B resolved | B not resolved |\n|---|---|---|\n| **A resolved** | {} (both) | {} (only A) |\n| **A not resolved** | {} (only B) | {} (neither) |\n",
        t.both, t.only_a, t.only_b, t.neither
    );
    let _ = writeln!(
        o,
        "- Success rate over the pairs: A {:.1}%, B {:.1}%",
        c.a.rate * 100.0,
        c.b.rate * 100.0
    );
    let _ = writeln!(
        o,
        "- Difference A - B: {:+.1} points, {:.0}% interval {:+.1} to {:+.1} (Newcombe's paired score interval)",
        c.difference * 100.0,
        c.confidence * 100.0,
        c.interval.lo * 100.0,
        c.interval.hi * 100.0
    );
    let _ = writeln!(
        o,
        "- Exact McNemar test on the {} discordant pairs: p = {}",
        t.only_a + t.only_b,
        format_p(c.p_value)
    );
    for (title, list) in [
        ("Resolved only by A", &c.only_a_cases),
        ("Resolved only by B", &c.only_b_cases),
    ] {
        let _ = writeln!(o, "\n## {title} ({} cases)\n", list.len());
        if list.is_empty() {
            o.push_str("None.\n");
            continue;
        }
        o.push_str("| case | epochs |\n|---|---|\n");
        for f in list {
            let epochs: Vec<String> = f.epochs.iter().map(u32::to_string).collect();
            let _ = writeln!(o, "| {} | {} |", cell(&f.case), epochs.join(", "));
        }
    }
    o
}

/// A p-value with four significant digits (`0.02148`), or `< 1e-6` when smaller.
fn format_p(p: f64) -> String {
    if p < 1e-6 {
        "< 1e-6".to_owned()
    } else {
        let s = format!("{p:.3e}");
        let v: f64 = s.parse().unwrap_or(p);
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::report::tests::rec;

    fn paths(rs: Vec<Record>) -> Vec<(PathBuf, Record)> {
        rs.into_iter().map(|r| (PathBuf::from(&r.key), r)).collect()
    }

    #[test]
    fn flip_table_and_exact_p_value() {
        use Verdict::*;
        // 10 cases: 1 both, 6 only A, 1 only B (case c8, epoch 0), 2 neither.
        let verdicts_a = [
            Resolved, Resolved, Resolved, Resolved, Resolved, Resolved, Resolved, Unresolved,
            Unresolved, Timeout,
        ];
        let verdicts_b = [
            Resolved, Unresolved, Unresolved, Unresolved, Unresolved, Unresolved, Unresolved,
            Resolved, Unresolved, Unresolved,
        ];
        let mut rs = Vec::new();
        for i in 0..10 {
            rs.push(rec(&format!("c{i}"), "r", "a", 0, verdicts_a[i]));
            rs.push(rec(&format!("c{i}"), "r", "b", 0, verdicts_b[i]));
        }
        let rs = paths(rs);
        let d = Path::new("out");
        let c = compare(d, &rs, "a", d, &rs, "b").unwrap();
        assert_eq!(
            c.counts,
            PairedCounts {
                both: 1,
                only_a: 6,
                only_b: 1,
                neither: 2
            }
        );
        // Binomial(7, 1/2): 2 · (C(7,0) + C(7,1)) / 2^7 = 2 · 8 / 128 = 0.125.
        assert!((c.p_value - 0.125).abs() < 1e-12);
        assert!((c.difference - 0.5).abs() < 1e-12);
        assert_eq!(
            c.only_b_cases,
            vec![Flip {
                case: "c7".into(),
                epochs: vec![0]
            }]
        );
        assert_eq!(c.only_a_cases.len(), 6);
        assert!(c.interval.lo < 0.5 && c.interval.hi > 0.5);
        assert!(markdown(&c).contains("p = 0.125"), "{}", markdown(&c));
    }

    #[test]
    fn unpaired_epochs_and_infra_errors_are_left_out() {
        use Verdict::*;
        let rs = paths(vec![
            rec("x", "r", "a", 0, Resolved),
            rec("x", "r", "a", 1, Resolved),
            rec("x", "r", "b", 0, Unresolved),
            rec("y", "r", "a", 0, InfraError),
            rec("y", "r", "b", 0, Resolved),
        ]);
        let d = Path::new("out");
        let c = compare(d, &rs, "a", d, &rs, "b").unwrap();
        assert_eq!(
            (c.pairs, c.unpaired_a, c.unpaired_b, c.excluded_infra_error),
            (1, 1, 0, 1)
        );
        let only_infra = paths(vec![
            rec("y", "r", "a", 0, InfraError),
            rec("y", "r", "b", 0, Resolved),
        ]);
        let err = compare(d, &only_infra, "a", d, &only_infra, "b").unwrap_err();
        assert!(
            err.message.contains("share no (case, epoch) item"),
            "{}",
            err.message
        );
    }

    #[test]
    fn variant_selection_errors_list_the_variants() {
        let rs = paths(vec![
            rec("x", "r", "a", 0, Verdict::Resolved),
            rec("x", "r", "b", 0, Verdict::Resolved),
        ]);
        let d = Path::new("out");
        let e = select_variant(d, &rs, None, "--variant-a").unwrap_err();
        assert!(e.message.contains("`a`, `b`"), "{}", e.message);
        let e = select_variant(d, &rs, Some("zz"), "--variant-a").unwrap_err();
        assert!(e.render().contains("unknown variant `zz`") && e.render().contains("`a`, `b`"));
        assert_eq!(
            select_variant(d, &rs, Some("b"), "--variant-b").unwrap(),
            "b"
        );
        assert!(select_variant(d, &[], None, "--variant-a").is_err());
    }

    #[test]
    fn p_values_are_printed_with_four_significant_digits() {
        assert_eq!(format_p(0.021_484_375), "0.02148");
        assert_eq!(format_p(1.0), "1");
        assert_eq!(format_p(1e-9), "< 1e-6");
    }
}
