//! `result.json`: the machine-readable summary of a run, written with `report.md` when the run
//! ends (and again after `resume`). `status` leads it; the keys and their meanings are those of
//! `outputs/TEMPLATE_report.md` and the README. [`ResultJson::VERSION`] changes when a key
//! changes meaning or goes away (adding keys does not).

use serde::{Deserialize, Serialize};

use super::state::{AttemptOutcome, Counts, FlakyStats, PrState, RunState, StageRecord, Status};
use crate::agent::{AgentReport, AgentTotals};
use crate::logs::Failure;

/// The contents of `result.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultJson {
    /// Final status of the run.
    pub status: Status,
    /// Why the run ended as it did.
    pub reason: Option<String>,
    /// Version of this format ([`ResultJson::VERSION`]); absent (0) in files of older fixci.
    #[serde(default)]
    pub version: u32,
    /// Run id.
    pub run_id: String,
    /// Pipeline name.
    pub pipeline: String,
    /// The agent and what its invocations reported.
    pub agent: AgentSummary,
    /// The fix branch, while it exists in the user's repository (`null` for a run that never
    /// created one or removed it at its end).
    pub branch: Option<String>,
    /// Branch the fix is cut from.
    pub base: String,
    /// `base` resolved when the run started.
    pub base_commit: String,
    /// The fix commit, once made.
    pub commit: Option<String>,
    /// The reproduction.
    pub reproduction: Option<ReproSummary>,
    /// The CI log's failing tests.
    #[serde(default)]
    pub failures: Vec<Failure>,
    /// The CI failure signature.
    pub signature: Option<String>,
    /// Every finished stage, in order.
    #[serde(default)]
    pub stages: Vec<StageRecord>,
    /// Fix attempts, in order.
    #[serde(default)]
    pub attempts: Vec<AttemptSummary>,
    /// Counts of the passing verification.
    pub verification: Option<Counts>,
    /// Failure-rate statistics of a flaky reproduction.
    pub flaky: Option<FlakyStats>,
    /// For a flaky failure verified with no failure: the 95% upper bound of the failure rate
    /// after the fix (rule of three family, `stats::upper_bound_after_zero_failures`).
    pub bound_95: Option<f64>,
    /// PR or offline proposal.
    pub pr: Option<PrState>,
    /// The agents' sandbox, the processes fixci killed, run-directory changes.
    #[serde(default)]
    pub containment: super::Containment,
    /// RFC 3339 start time.
    pub started_at: String,
    /// RFC 3339 end time.
    pub finished_at: Option<String>,
    /// The spec's gate at the base commit, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<crate::verify::gate::GateState>,
    /// The earlier run this one retries: `{run_id, run_dir, status}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_of: Option<serde_json::Value>,
}

/// `result.json`'s `agent`: the command line and totals over every invocation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentSummary {
    /// Agent name and command line.
    pub command: String,
    /// True when the last invocation was an agent error.
    pub error: bool,
    /// Invocations that were agent errors.
    pub errors: u64,
    /// Token totals.
    pub tokens: TokenTotals,
    /// Sum of stated costs in US dollars; `None` when no invocation stated one.
    pub cost_usd: Option<f64>,
    /// Each invocation: its stage and attempt, then what the CLI reported.
    #[serde(default)]
    pub invocations: Vec<InvocationSummary>,
}

/// Token totals (see [`AgentReport`] for their meaning).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenTotals {
    /// Input tokens not read from a cache.
    pub input: u64,
    /// Output tokens.
    pub output: u64,
    /// Input tokens read from a cache.
    pub cache_read: u64,
    /// Input tokens written to a cache.
    pub cache_write: u64,
}

/// One agent invocation in `result.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvocationSummary {
    /// Stage id.
    pub stage: String,
    /// Attempt number, inside the attempt loop.
    pub attempt: Option<u32>,
    /// What the CLI reported.
    #[serde(flatten)]
    pub report: AgentReport,
}

/// `result.json`'s `reproduction`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReproSummary {
    /// Test file, relative to the repository root.
    pub test_file: String,
    /// The command that runs it.
    pub command: String,
    /// `agent` or `existing`.
    pub origin: String,
    /// True once fixci saw it fail as a reproduction must.
    pub confirmed: bool,
}

/// One attempt in `result.json` (its diff and output are in `report.md` and `state.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptSummary {
    /// 1-based number.
    pub number: u32,
    /// Agent preset.
    pub agent: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// Why it did not pass.
    pub reason: Option<String>,
    /// Refused or restored changes to tests.
    #[serde(default)]
    pub tampering: Vec<String>,
    /// Verification counts.
    pub verification: Option<Counts>,
    /// What the fix agent's CLI reported.
    pub agent_report: Option<AgentReport>,
}

impl ResultJson {
    /// The format version this fixci writes.
    pub const VERSION: u32 = 1;

    /// The summary of `st`.
    pub fn of(st: &RunState) -> ResultJson {
        let runs: Vec<(&StageRecord, &AgentReport)> = st
            .stages
            .iter()
            .filter_map(|s| s.agent_report.as_ref().map(|a| (s, a)))
            .collect();
        let t = AgentTotals::of(runs.iter().map(|(_, a)| *a));
        ResultJson {
            status: st.status,
            reason: st.reason.clone(),
            version: Self::VERSION,
            run_id: st.run_id.clone(),
            pipeline: st.pipeline.clone(),
            agent: AgentSummary {
                command: st.agent.clone(),
                error: runs.last().is_some_and(|(_, a)| a.is_error),
                errors: t.errors,
                tokens: TokenTotals {
                    input: t.input,
                    output: t.output,
                    cache_read: t.cache_read,
                    cache_write: t.cache_write,
                },
                cost_usd: t.cost_usd,
                invocations: runs
                    .iter()
                    .map(|(s, a)| InvocationSummary {
                        stage: s.id.clone(),
                        attempt: s.attempt,
                        report: (*a).clone(),
                    })
                    .collect(),
            },
            branch: st.branch.clone().filter(|_| st.branch_created),
            base: st.repo.base.clone(),
            base_commit: st.repo.base_commit.clone(),
            commit: st.commit.clone(),
            reproduction: st.repro.as_ref().map(|r| ReproSummary {
                test_file: r.test_file.clone(),
                command: r.command.clone(),
                origin: r.origin.clone(),
                confirmed: r.confirmed,
            }),
            failures: st
                .logs
                .as_ref()
                .map(|l| l.distilled.failures.clone())
                .unwrap_or_default(),
            signature: st.logs.as_ref().and_then(|l| l.distilled.signature.clone()),
            stages: st.stages.clone(),
            attempts: st
                .attempts
                .iter()
                .map(|a| AttemptSummary {
                    number: a.number,
                    agent: a.agent.clone(),
                    model: a.model.clone(),
                    outcome: a.outcome,
                    reason: a.reason.clone(),
                    tampering: a.tampering.clone(),
                    verification: a.verification.clone(),
                    agent_report: a.agent_report.clone(),
                })
                .collect(),
            verification: st.verification.clone(),
            flaky: st.flaky.clone(),
            bound_95: st
                .verification
                .as_ref()
                .filter(|v| st.flaky.is_some() && v.failed == 0)
                .map(|v| crate::stats::upper_bound_after_zero_failures(v.runs, 0.95)),
            pr: st.pr.clone(),
            containment: st.containment.clone(),
            started_at: st.started_at.clone(),
            finished_at: st.finished_at.clone(),
            gate: st.gate.clone(),
            retry_of: st.retry_of.as_ref().map(|r| {
                serde_json::json!({"run_id": r.run_id, "run_dir": r.run_dir, "status": r.status, "steer": r.steer, "reused": r.reused})
            }),
        }
    }
}
