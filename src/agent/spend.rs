//! The run's spend limits (`budgets.cost-usd`, `budgets.tokens` in the job spec): what the
//! agent invocations of a run have cost so far, summed over the reports the agent CLIs gave
//! ([`super::AgentTotals`]; a CLI that states no cost adds nothing to the dollars), and whether
//! another invocation may start.

use super::{AgentReport, AgentTotals};
use crate::spec::Budgets;

/// What is left of the run's spend limits before an invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Allowance {
    /// The invocation may start; `usd` is the dollars left when there is a dollar limit (for
    /// CLIs that take one, e.g. claude `--max-budget-usd`).
    Go { usd: Option<f64> },
    /// A limit is reached: the reason, starting with "cost budget spent".
    Spent(String),
}

/// The allowance under `budgets` after the invocations `reports` made.
pub fn allowance<'a>(
    budgets: &Budgets,
    reports: impl IntoIterator<Item = &'a AgentReport>,
) -> Allowance {
    let t = AgentTotals::of(reports);
    let spent_usd = t.cost_usd.unwrap_or(0.0);
    if let Some(limit) = budgets.cost_usd {
        if spent_usd >= limit {
            return Allowance::Spent(format!(
                "cost budget spent: the agents reported ${spent_usd:.4} of the ${limit:.4} allowed (`budgets.cost-usd`)"
            ));
        }
    }
    if let Some(limit) = budgets.tokens {
        let used = t.input + t.output + t.cache_read + t.cache_write;
        if used >= limit {
            return Allowance::Spent(format!(
                "cost budget spent: the agents reported {used} tokens of the {limit} allowed (`budgets.tokens`)"
            ));
        }
    }
    Allowance::Go {
        usd: budgets.cost_usd.map(|l| l - spent_usd),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(cost: Option<f64>, tokens: u64) -> AgentReport {
        AgentReport {
            cost_usd: cost,
            input_tokens: Some(tokens),
            ..AgentReport::default()
        }
    }

    #[test]
    fn limits_are_checked_against_the_reported_totals() {
        let b = Budgets {
            cost_usd: Some(1.0),
            tokens: Some(1000),
            ..Budgets::default()
        };
        assert_eq!(allowance(&b, []), Allowance::Go { usd: Some(1.0) });
        let a = report(Some(0.25), 100);
        assert_eq!(allowance(&b, [&a]), Allowance::Go { usd: Some(0.75) });
        let big = report(Some(0.80), 100);
        match allowance(&b, [&a, &big]) {
            Allowance::Spent(why) => assert!(
                why.starts_with("cost budget spent") && why.contains("cost-usd"),
                "{why}"
            ),
            x => panic!("{x:?}"),
        }
        // A CLI that states no cost spends tokens only.
        let quiet = report(None, 950);
        match allowance(&b, [&quiet, &a]) {
            Allowance::Spent(why) => assert!(why.contains("1050 tokens"), "{why}"),
            x => panic!("{x:?}"),
        }
        assert_eq!(
            allowance(&Budgets::default(), [&big]),
            Allowance::Go { usd: None }
        );
    }
}
