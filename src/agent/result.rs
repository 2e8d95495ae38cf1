//! What an agent CLI says about its own run, read from its standard output: explanation, turns,
//! tokens, cost and whether the CLI reported an error. One [`AgentReport`] shape for every CLI;
//! the preset's `result` key ([`ResultFormat`]) says which parser reads the output.
//!
//! This is the agent's word, recorded for cost accounting and the report. It never decides
//! success: fixci judges a run by what it measures itself (the diff, the reproduction, the
//! verification). Parsers are lenient: output cut short by a budget yields what was there.
//!
//! Formats, as the CLIs print them (checked against the versions in `shared/AGENTS.md`; samples
//! in `tests/data/agents/`):
//! - `claude-json`: `claude -p --output-format json` (one object) or `stream-json --verbose`
//!   (JSON Lines ending in a `{"type": "result"}` object): `result`, `is_error`, `num_turns`,
//!   `total_cost_usd`, `usage{input_tokens, output_tokens, cache_read_input_tokens,
//!   cache_creation_input_tokens}`.
//! - `codex-jsonl`: `codex exec --json` events; `turn.completed.usage{input_tokens,
//!   cached_input_tokens, output_tokens}` summed over turns (input includes cached, as in the
//!   OpenAI API); `item.completed` `agent_message` text; `turn.failed` / `error` events.
//! - `gemini-json`: `gemini -o json`: `{response, stats.models.<model>.tokens{input, candidates,
//!   cached, thoughts}, error?}`.
//! - `aider-text`: aider's plain text, one line per model reply:
//!   `Tokens: 1.7k sent, 340 received. Cost: $0.00046 message, $0.00046 session.`
//!   (optional `N cache write` / `N cache hit` parts; cost only for models aider knows).
//! - `opencode-jsonl`: `opencode run --format json` events; one `step_finish` per model reply
//!   with `part.tokens{input, output, reasoning, cache{read, write}}` (input without the cache,
//!   output without reasoning) and `part.cost` (USD, from opencode's price table: 0 for a model
//!   it has no price for, taken as no stated cost); `text` parts; `error` events.
//! - `copilot-jsonl`: `copilot --output-format json` events (`assistant.message` with
//!   `data.content`, `session.error`, a final `result` with `exitCode`) plus the file named by
//!   `--usage-output-file` ([`crate::agent::USAGE_FILE`]): `modelMetrics.<model>{requests.count,
//!   usage{inputTokens, outputTokens, cacheReadTokens, cacheWriteTokens}}`, where `inputTokens`
//!   includes the cache reads (as OpenAI's `prompt_tokens`). No cost in dollars.
//! - `qwen-json`: `qwen -o json` or `-o stream-json`: the claude shape (a final `result` event
//!   with `result`, `is_error`, `num_turns`, `usage`, and `error.message` on failure), but
//!   `usage.input_tokens` includes `cache_read_input_tokens` (OpenAI's convention), and no cost.

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::spec::ResultFormat;

/// One agent invocation as the CLI reported it, plus fixci's own verdict on whether it was an
/// agent error. Token counts are `None` when the CLI reported none.
///
/// Token semantics are the same for every CLI: `input_tokens` are input tokens *not* read from
/// a prompt cache, `cache_read_tokens` those that were, `cache_write_tokens` those written to
/// it (Anthropic's split; for codex `input_tokens - cached_input_tokens`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentReport {
    /// The agent preset that ran (`claude`, ..., `command`).
    #[serde(default)]
    pub agent: String,
    /// The parser that read the output (`claude-json`, ..., `none`).
    pub format: String,
    /// The agent's final message or explanation, if it gave one (at most 4000 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
    /// Model turns, as the CLI counts them (claude `num_turns`; codex completed turns; gemini
    /// main-loop model requests; aider model replies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turns: Option<u64>,
    /// Input tokens not read from a cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    /// Output tokens (gemini: candidates + thoughts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    /// Input tokens read from a prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_tokens: Option<u64>,
    /// Input tokens written to a prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_tokens: Option<u64>,
    /// Cost in US dollars, only when the CLI states one (claude; aider for models it knows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// True when this invocation was an agent error: the CLI said so (`is_error`, a failed
    /// turn, an error object), it exited non-zero, it was stopped at its budget, or it left
    /// nothing (no `repro.json`, an empty diff).
    pub is_error: bool,
    /// True when fixci stopped it at the stage budget.
    #[serde(default)]
    pub timed_out: bool,
    /// What the error was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How the process ended (`exit 0`, `exit 1`, `killed by signal 9`, `timeout`).
    #[serde(default)]
    pub exit: String,
}

impl AgentReport {
    /// Marks the invocation as an agent error, keeping the first reason given.
    pub fn set_error(&mut self, why: impl Into<String>) {
        self.is_error = true;
        if self.error.is_none() {
            self.error = Some(why.into());
        }
    }
}

/// Token and cost totals over several invocations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentTotals {
    /// Invocations counted.
    pub invocations: u64,
    /// Of those, agent errors.
    pub errors: u64,
    /// Sum of `input_tokens`.
    pub input: u64,
    /// Sum of `output_tokens`.
    pub output: u64,
    /// Sum of `cache_read_tokens`.
    pub cache_read: u64,
    /// Sum of `cache_write_tokens`.
    pub cache_write: u64,
    /// Sum of the stated costs; `None` when no invocation stated one.
    pub cost_usd: Option<f64>,
}

impl AgentTotals {
    /// Totals over `reports`.
    pub fn of<'a>(reports: impl IntoIterator<Item = &'a AgentReport>) -> AgentTotals {
        let mut t = AgentTotals::default();
        for r in reports {
            t.invocations += 1;
            t.errors += u64::from(r.is_error);
            t.input += r.input_tokens.unwrap_or(0);
            t.output += r.output_tokens.unwrap_or(0);
            t.cache_read += r.cache_read_tokens.unwrap_or(0);
            t.cache_write += r.cache_write_tokens.unwrap_or(0);
            if let Some(c) = r.cost_usd {
                t.cost_usd = Some(t.cost_usd.unwrap_or(0.0) + c);
            }
        }
        t
    }
}

/// Longest explanation kept, in characters.
const MAX_EXPLANATION: usize = 4000;

/// Parses `stdout` of an agent CLI with the parser `format`; `usage_file` is the text of the
/// usage report the CLI wrote to [`crate::agent::USAGE_FILE`], if it wrote one (only
/// `copilot-jsonl` reads it). Never fails: unreadable output gives a report with no numbers.
pub fn parse(format: ResultFormat, stdout: &str, usage_file: Option<&str>) -> AgentReport {
    let mut r = match format {
        ResultFormat::ClaudeJson => claude(stdout),
        ResultFormat::CodexJsonl => codex(stdout),
        ResultFormat::GeminiJson => gemini(stdout),
        ResultFormat::AiderText => aider(stdout),
        ResultFormat::OpencodeJsonl => opencode(stdout),
        ResultFormat::CopilotJsonl => copilot(stdout, usage_file),
        ResultFormat::QwenJson => qwen(stdout),
        ResultFormat::None => AgentReport::default(),
    };
    r.format = format.as_str().into();
    r.explanation = r
        .explanation
        .map(|e| e.trim().to_string())
        .filter(|e| !e.is_empty())
        .map(|e| {
            if e.chars().count() > MAX_EXPLANATION {
                e.chars().take(MAX_EXPLANATION).collect::<String>() + " [...]"
            } else {
                e
            }
        });
    r
}

/// JSON objects in `text`: the whole text when it is one value, else one per line.
fn json_values(text: &str) -> Vec<Value> {
    if let Ok(v) = serde_json::from_str::<Value>(text.trim()) {
        return vec![v];
    }
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .filter(Value::is_object)
        .collect()
}

fn u(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_u64)
}

fn claude(stdout: &str) -> AgentReport {
    let values = json_values(stdout);
    let mut r = AgentReport::default();
    if let Some(res) = values
        .iter()
        .rev()
        .find(|v| v.get("type").and_then(Value::as_str) == Some("result"))
    {
        let usage = res.get("usage").cloned().unwrap_or(Value::Null);
        r.explanation = res.get("result").and_then(Value::as_str).map(String::from);
        r.turns = u(res, "num_turns");
        r.input_tokens = u(&usage, "input_tokens");
        r.output_tokens = u(&usage, "output_tokens");
        r.cache_read_tokens = u(&usage, "cache_read_input_tokens");
        r.cache_write_tokens = u(&usage, "cache_creation_input_tokens");
        r.cost_usd = res.get("total_cost_usd").and_then(Value::as_f64);
        // `subtype` can say `success` on an API error; `is_error` is the flag that holds.
        if res.get("is_error").and_then(Value::as_bool) == Some(true) {
            let status = res
                .get("api_error_status")
                .filter(|s| !s.is_null())
                .map(|s| format!(" (API status {s})"))
                .unwrap_or_default();
            let subtype = res.get("subtype").and_then(Value::as_str).unwrap_or("");
            let what = res
                .pointer("/error/message")
                .and_then(Value::as_str)
                .map(String::from)
                .or_else(|| r.explanation.clone())
                .filter(|e| !e.trim().is_empty())
                .unwrap_or_else(|| format!("the agent reported an error ({subtype})"));
            r.set_error(format!("{what}{status}"));
        }
        return r;
    }
    // A stream cut short: count what the assistant messages said so far (each message may be
    // repeated once per content block, with the same id).
    let mut seen = std::collections::BTreeSet::new();
    for v in &values {
        if v.get("type").and_then(Value::as_str) != Some("assistant") {
            continue;
        }
        let Some(msg) = v.get("message") else {
            continue;
        };
        let id = msg.get("id").and_then(Value::as_str).unwrap_or("");
        let usage = msg.get("usage").cloned().unwrap_or(Value::Null);
        // qwen splits one reply into a text and a tool-use message; only one carries tokens.
        let counted = ["input_tokens", "output_tokens"]
            .iter()
            .any(|k| u(&usage, k).is_some_and(|n| n > 0));
        if counted && !seen.insert(id.to_string()) {
            continue;
        }
        add(&mut r.input_tokens, u(&usage, "input_tokens"));
        add(&mut r.output_tokens, u(&usage, "output_tokens"));
        add(
            &mut r.cache_read_tokens,
            u(&usage, "cache_read_input_tokens"),
        );
        add(
            &mut r.cache_write_tokens,
            u(&usage, "cache_creation_input_tokens"),
        );
        if let Some(t) = msg.get("content").and_then(Value::as_array).and_then(|c| {
            c.iter()
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .next_back()
        }) {
            r.explanation = Some(t.to_string());
        }
    }
    if !seen.is_empty() {
        r.turns = Some(seen.len() as u64);
    }
    r
}

fn add(total: &mut Option<u64>, n: Option<u64>) {
    if let Some(n) = n {
        *total = Some(total.unwrap_or(0) + n);
    }
}

fn codex(stdout: &str) -> AgentReport {
    let mut r = AgentReport::default();
    let mut turns = 0u64;
    let mut last_error: Option<String> = None;
    let mut failed: Option<String> = None;
    for v in json_values(stdout) {
        match v.get("type").and_then(Value::as_str).unwrap_or("") {
            "turn.completed" => {
                turns += 1;
                last_error = None;
                let usage = v.get("usage").cloned().unwrap_or(Value::Null);
                let input = u(&usage, "input_tokens");
                let cached = u(&usage, "cached_input_tokens");
                add(
                    &mut r.input_tokens,
                    input.map(|i| i.saturating_sub(cached.unwrap_or(0))),
                );
                add(&mut r.cache_read_tokens, cached);
                add(
                    &mut r.cache_write_tokens,
                    u(&usage, "cache_write_input_tokens"),
                );
                add(&mut r.output_tokens, u(&usage, "output_tokens"));
            }
            "turn.failed" => {
                failed = Some(
                    v.pointer("/error/message")
                        .and_then(Value::as_str)
                        .unwrap_or("codex reported a failed turn")
                        .to_string(),
                );
            }
            "error" => {
                last_error = v.get("message").and_then(Value::as_str).map(String::from);
            }
            "item.completed" => {
                let item = v.get("item").cloned().unwrap_or(Value::Null);
                if item.get("type").and_then(Value::as_str) == Some("agent_message") {
                    r.explanation = item.get("text").and_then(Value::as_str).map(String::from);
                }
            }
            _ => {}
        }
    }
    if turns > 0 {
        r.turns = Some(turns);
    }
    // `error` events also announce retries ("Reconnecting... 2/5"); only one that is not
    // followed by a completed turn, or a failed turn, is the run's error.
    if let Some(e) = failed.or(last_error) {
        r.set_error(e);
    }
    r
}

fn gemini(stdout: &str) -> AgentReport {
    let mut r = AgentReport::default();
    // The object is pretty-printed over many lines; anything printed before it is skipped.
    let v = serde_json::from_str::<Value>(stdout.trim())
        .ok()
        .or_else(|| {
            stdout
                .find("\n{")
                .and_then(|i| serde_json::from_str::<Value>(stdout[i..].trim()).ok())
        })
        .unwrap_or(Value::Null);
    r.explanation = v.get("response").and_then(Value::as_str).map(String::from);
    if let Some(models) = v.pointer("/stats/models").and_then(Value::as_object) {
        let mut turns = None;
        for m in models.values() {
            let t = m.get("tokens").cloned().unwrap_or(Value::Null);
            add(&mut r.input_tokens, u(&t, "input"));
            add(&mut r.cache_read_tokens, u(&t, "cached"));
            add(
                &mut r.output_tokens,
                u(&t, "candidates").map(|c| c + u(&t, "thoughts").unwrap_or(0)),
            );
            let requests = m
                .pointer("/roles/main/totalRequests")
                .and_then(Value::as_u64)
                .or_else(|| m.pointer("/api/totalRequests").and_then(Value::as_u64));
            add(&mut turns, requests);
        }
        r.turns = turns;
    }
    if let Some(e) = v.get("error").filter(|e| !e.is_null()) {
        let msg = e
            .get("message")
            .and_then(Value::as_str)
            .map(String::from)
            .unwrap_or_else(|| e.to_string());
        let code = e
            .get("code")
            .map(|c| format!(" (code {c})"))
            .unwrap_or_default();
        r.set_error(format!("{msg}{code}"));
    }
    r
}

/// aider's abbreviated counts: `340`, `1.7k`, `12k`, `1.2M`.
fn aider_count(s: &str) -> Option<u64> {
    let s = s.trim().trim_end_matches(',');
    let (num, mult) = match s.chars().last()? {
        'k' | 'K' => (&s[..s.len() - 1], 1e3),
        'm' | 'M' => (&s[..s.len() - 1], 1e6),
        _ => (s, 1.0),
    };
    num.replace(',', "")
        .parse::<f64>()
        .ok()
        .map(|n| (n * mult).round() as u64)
}

fn aider(stdout: &str) -> AgentReport {
    // Lines may be wrapped at the terminal width, so whitespace includes newlines.
    let re = regex::Regex::new(
        r"Tokens:\s+(?P<sent>[\d.,]+[kKmM]?)\s+sent,(?:\s+(?P<cw>[\d.,]+[kKmM]?)\s+cache\s+write,)?(?:\s+(?P<ch>[\d.,]+[kKmM]?)\s+cache\s+hit,)?\s+(?P<recv>[\d.,]+[kKmM]?)\s+received\.(?:\s+Cost:\s+\$(?P<msg>[\d.]+)\s+message,\s+\$(?P<session>[\d.]+)\s+session\.)?",
    )
    .expect("valid regex");
    let mut r = AgentReport::default();
    let mut replies = 0;
    for c in re.captures_iter(stdout) {
        replies += 1;
        let n = |k: &str| c.name(k).and_then(|m| aider_count(m.as_str()));
        add(&mut r.input_tokens, n("sent"));
        add(&mut r.output_tokens, n("recv"));
        add(&mut r.cache_write_tokens, n("cw"));
        add(&mut r.cache_read_tokens, n("ch"));
        // The session figure is aider's running total for this process.
        if let Some(s) = c
            .name("session")
            .and_then(|m| m.as_str().parse::<f64>().ok())
        {
            r.cost_usd = Some(s);
        }
    }
    if replies > 0 {
        r.turns = Some(replies);
    }
    // aider exits 0 after an API failure; its litellm errors are the sign.
    let api_error =
        regex::Regex::new(r"(?m)^.*litellm\.\w*(?:Error|Exception)\b.*$").expect("valid regex");
    if replies == 0 {
        if let Some(m) = api_error.find_iter(stdout).last() {
            r.set_error(m.as_str().trim().to_string());
        }
    }
    r
}

fn opencode(stdout: &str) -> AgentReport {
    let mut r = AgentReport::default();
    let mut steps = 0u64;
    let mut cost = 0.0f64;
    // The text parts of the last step that said something: its final message.
    let mut text = String::new();
    let mut step_text = String::new();
    for v in json_values(stdout) {
        let part = v.get("part").cloned().unwrap_or(Value::Null);
        match v.get("type").and_then(Value::as_str).unwrap_or("") {
            "step_start" => step_text.clear(),
            "text" => {
                if let Some(t) = part.get("text").and_then(Value::as_str) {
                    step_text.push_str(t);
                }
            }
            "step_finish" => {
                steps += 1;
                let t = part.get("tokens").cloned().unwrap_or(Value::Null);
                add(&mut r.input_tokens, u(&t, "input"));
                add(
                    &mut r.output_tokens,
                    u(&t, "output").map(|o| o + u(&t, "reasoning").unwrap_or(0)),
                );
                add(
                    &mut r.cache_read_tokens,
                    t.pointer("/cache/read").and_then(Value::as_u64),
                );
                add(
                    &mut r.cache_write_tokens,
                    t.pointer("/cache/write").and_then(Value::as_u64),
                );
                cost += part.get("cost").and_then(Value::as_f64).unwrap_or(0.0);
                if !step_text.trim().is_empty() {
                    text = std::mem::take(&mut step_text);
                }
            }
            "error" => {
                let e = v.get("error").cloned().unwrap_or(Value::Null);
                let msg = e
                    .pointer("/data/message")
                    .or_else(|| e.get("message"))
                    .and_then(Value::as_str)
                    .map(String::from)
                    .or_else(|| e.get("name").and_then(Value::as_str).map(String::from))
                    .unwrap_or_else(|| "opencode reported an error".into());
                r.set_error(msg);
            }
            _ => {}
        }
    }
    if !step_text.trim().is_empty() {
        text = step_text;
    }
    if !text.is_empty() {
        r.explanation = Some(text);
    }
    if steps > 0 {
        r.turns = Some(steps);
    }
    // opencode prices a model only from its table; 0 means it had no price, not free.
    if cost > 0.0 {
        r.cost_usd = Some(cost);
    }
    r
}

fn copilot(stdout: &str, usage_file: Option<&str>) -> AgentReport {
    let mut r = AgentReport::default();
    let mut replies = 0u64;
    for v in json_values(stdout) {
        let data = v.get("data").cloned().unwrap_or(Value::Null);
        match v.get("type").and_then(Value::as_str).unwrap_or("") {
            "assistant.message" => {
                replies += 1;
                if let Some(t) = data
                    .get("content")
                    .and_then(Value::as_str)
                    .filter(|t| !t.trim().is_empty())
                {
                    r.explanation = Some(t.to_string());
                }
            }
            "session.error" => {
                let msg = data
                    .get("message")
                    .and_then(Value::as_str)
                    .map(String::from)
                    .unwrap_or_else(|| "copilot reported a session error".into());
                let kind = data
                    .get("errorType")
                    .and_then(Value::as_str)
                    .map(|k| format!(" ({k})"))
                    .unwrap_or_default();
                r.set_error(format!("{msg}{kind}"));
            }
            "result" => {
                if let Some(code) = v
                    .get("exitCode")
                    .and_then(Value::as_i64)
                    .filter(|c| *c != 0)
                {
                    r.set_error(format!("copilot reported exit code {code}"));
                }
            }
            _ => {}
        }
    }
    if replies > 0 {
        r.turns = Some(replies);
    }
    let usage = usage_file
        .and_then(|t| serde_json::from_str::<Value>(t).ok())
        .unwrap_or(Value::Null);
    if let Some(models) = usage.get("modelMetrics").and_then(Value::as_object) {
        let mut requests = None;
        for m in models.values() {
            let t = m.get("usage").cloned().unwrap_or(Value::Null);
            let cached = u(&t, "cacheReadTokens");
            add(
                &mut r.input_tokens,
                u(&t, "inputTokens").map(|i| i.saturating_sub(cached.unwrap_or(0))),
            );
            add(&mut r.cache_read_tokens, cached);
            add(&mut r.cache_write_tokens, u(&t, "cacheWriteTokens"));
            add(&mut r.output_tokens, u(&t, "outputTokens"));
            add(
                &mut requests,
                m.pointer("/requests/count").and_then(Value::as_u64),
            );
        }
        if requests.is_some() {
            r.turns = requests;
        }
    }
    r
}

fn qwen(stdout: &str) -> AgentReport {
    let mut r = claude(stdout);
    // OpenAI's convention: the prompt count includes the cached part.
    if let (Some(i), Some(c)) = (r.input_tokens, r.cache_read_tokens) {
        r.input_tokens = Some(i.saturating_sub(c));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(input, output, cache_read, cache_write)` tokens.
    fn tokens(r: &AgentReport) -> [Option<u64>; 4] {
        [
            r.input_tokens,
            r.output_tokens,
            r.cache_read_tokens,
            r.cache_write_tokens,
        ]
    }

    fn sample(name: &str) -> String {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/agents")
            .join(name);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    #[test]
    fn claude_json_object() {
        let r = parse(ResultFormat::ClaudeJson, &sample("claude-json.json"), None);
        assert_eq!(r.format, "claude-json");
        assert_eq!(r.turns, Some(4));
        assert_eq!(r.input_tokens, Some(4000));
        assert_eq!(r.output_tokens, Some(200));
        assert_eq!(r.cache_read_tokens, Some(800));
        assert_eq!(r.cache_write_tokens, Some(400));
        assert_eq!(r.cost_usd, Some(0.0279));
        assert!(!r.is_error);
        assert!(r.explanation.unwrap().contains("`>=`"));
    }

    #[test]
    fn claude_stream_json_takes_the_result_event() {
        let r = parse(
            ResultFormat::ClaudeJson,
            &sample("claude-stream-json-denied.jsonl"),
            None,
        );
        assert_eq!(r.turns, Some(3));
        assert_eq!(r.input_tokens, Some(3000));
        assert_eq!(r.cache_write_tokens, Some(300));
        assert!(r.cost_usd.is_some_and(|c| c > 0.0));
        assert!(!r.is_error);
    }

    #[test]
    fn claude_api_error_is_an_error_despite_subtype_success() {
        let text = sample("claude-stream-json-error.jsonl");
        assert!(text.contains(r#""subtype":"success","is_error":true"#));
        let r = parse(ResultFormat::ClaudeJson, &text, None);
        assert!(r.is_error);
        assert!(
            r.error.as_deref().unwrap().contains("Unable to connect"),
            "{r:?}"
        );
        assert_eq!(r.cost_usd, Some(0.0));
    }

    #[test]
    fn claude_stream_cut_short_counts_distinct_messages() {
        let text = sample("claude-stream-json-denied.jsonl");
        let cut: String = text
            .lines()
            .filter(|l| !l.contains(r#""type":"result""#))
            .map(|l| format!("{l}\n"))
            .collect();
        let r = parse(ResultFormat::ClaudeJson, &cut, None);
        assert_eq!(r.turns, Some(3), "{r:?}");
        assert_eq!(r.input_tokens, Some(3000));
        assert_eq!(r.cost_usd, None);
        assert!(r.explanation.unwrap().contains("I wrote"));
    }

    #[test]
    fn codex_sums_completed_turns_and_splits_cached_input() {
        let r = parse(ResultFormat::CodexJsonl, &sample("codex-jsonl.jsonl"), None);
        assert_eq!(r.turns, Some(1));
        assert_eq!(r.input_tokens, Some(3000 - 600));
        assert_eq!(r.cache_read_tokens, Some(600));
        assert_eq!(r.output_tokens, Some(150));
        assert_eq!(r.cost_usd, None);
        assert!(!r.is_error, "{r:?}");
        assert!(r.explanation.unwrap().starts_with("I wrote"));
        let two = format!(
            "{}{}",
            sample("codex-jsonl.jsonl"),
            r#"{"type":"turn.completed","usage":{"input_tokens":10,"cached_input_tokens":0,"output_tokens":5}}"#
        );
        let r = parse(ResultFormat::CodexJsonl, &two, None);
        assert_eq!(
            (r.turns, r.input_tokens, r.output_tokens),
            (Some(2), Some(2410), Some(155))
        );
    }

    #[test]
    fn codex_retry_errors_count_only_when_nothing_followed() {
        let retry = r#"{"type":"error","message":"Reconnecting... 1/5 (stream disconnected)"}"#;
        let ok = format!("{retry}\n{}", sample("codex-jsonl.jsonl"));
        assert!(!parse(ResultFormat::CodexJsonl, &ok, None).is_error);
        let stuck = format!("{{\"type\":\"turn.started\"}}\n{retry}\n");
        let r = parse(ResultFormat::CodexJsonl, &stuck, None);
        assert!(r.is_error && r.error.unwrap().contains("Reconnecting"));
        let failed = r#"{"type":"turn.failed","error":{"message":"unexpected status 401"}}"#;
        let r = parse(ResultFormat::CodexJsonl, failed, None);
        assert_eq!(r.error.as_deref(), Some("unexpected status 401"));
    }

    #[test]
    fn gemini_sums_models_and_counts_main_requests() {
        let r = parse(ResultFormat::GeminiJson, &sample("gemini-json.json"), None);
        assert_eq!(r.input_tokens, Some(3200));
        assert_eq!(r.cache_read_tokens, Some(800));
        assert_eq!(r.output_tokens, Some(200));
        assert_eq!(r.turns, Some(3));
        assert_eq!(r.cost_usd, None);
        assert!(!r.is_error);
        assert!(r.explanation.unwrap().starts_with("I wrote"));
        let err = r#"{"session_id": "x", "error": {"type": "Error", "message": "Invalid auth method selected.", "code": 41}}"#;
        let r = parse(
            ResultFormat::GeminiJson,
            &format!("Security Warning: ...\n{err}"),
            None,
        );
        assert_eq!(
            r.error.as_deref(),
            Some("Invalid auth method selected. (code 41)")
        );
    }

    #[test]
    fn aider_sums_token_lines_and_takes_the_session_cost() {
        let r = parse(
            ResultFormat::AiderText,
            &sample("aider-text-fix-cost.txt"),
            None,
        );
        assert_eq!(r.turns, Some(2));
        assert_eq!(r.input_tokens, Some(1700 + 2300));
        assert_eq!(r.output_tokens, Some(680));
        assert_eq!(r.cost_usd, Some(0.0010));
        assert!(!r.is_error);
        let r = parse(
            ResultFormat::AiderText,
            &sample("aider-text-reproduce.txt"),
            None,
        );
        assert_eq!(
            (r.input_tokens, r.output_tokens, r.cost_usd),
            (Some(1500), Some(165), None)
        );
    }

    #[test]
    fn aider_cache_parts_wrapped_lines_and_api_errors() {
        let wrapped = "Tokens: 12k sent, 1.2k cache write, 3.4k cache hit, 60 received. Cost: $0.01 message,\n$0.02 session.\n";
        let r = parse(ResultFormat::AiderText, wrapped, None);
        assert_eq!(
            (
                r.input_tokens,
                r.cache_write_tokens,
                r.cache_read_tokens,
                r.output_tokens,
                r.cost_usd
            ),
            (Some(12000), Some(1200), Some(3400), Some(60), Some(0.02))
        );
        let failed = "Aider v0.86.2\nlitellm.APIConnectionError: APIConnectionError: OpenAIException - Connection error.\nRetrying in 0.2 seconds...\n";
        let r = parse(ResultFormat::AiderText, failed, None);
        assert!(r.is_error && r.error.unwrap().starts_with("litellm.APIConnectionError"));
    }

    #[test]
    fn opencode_sums_step_finish_tokens_and_a_zero_cost_is_no_cost() {
        let text = sample("opencode-jsonl.jsonl");
        let r = parse(ResultFormat::OpencodeJsonl, &text, None);
        assert_eq!(r.format, "opencode-jsonl");
        assert_eq!(r.turns, Some(3));
        assert_eq!(tokens(&r), [Some(2400), Some(150), Some(600), Some(0)]);
        assert_eq!(
            r.cost_usd, None,
            "opencode says 0 for a model it has no price for"
        );
        assert!(!r.is_error);
        assert!(
            r.explanation.unwrap().starts_with("I wrote"),
            "the last step's text"
        );
        // A priced model: the costs add up; reasoning counts as output.
        let priced = text
            .replace(r#""cost":0"#, r#""cost":0.0125"#)
            .replace(r#""reasoning":0"#, r#""reasoning":7"#);
        let r = parse(ResultFormat::OpencodeJsonl, &priced, None);
        assert!((r.cost_usd.unwrap() - 0.0375).abs() < 1e-12, "{r:?}");
        assert_eq!(r.output_tokens, Some(150 + 21));
    }

    #[test]
    fn copilot_takes_tokens_from_its_usage_file_without_the_cached_part() {
        let text = sample("copilot-jsonl.jsonl");
        let usage = sample("copilot-usage.json");
        let r = parse(ResultFormat::CopilotJsonl, &text, Some(&usage));
        assert_eq!(r.turns, Some(3));
        assert_eq!(
            tokens(&r),
            [Some(3000 - 600), Some(150), Some(600), Some(0)]
        );
        assert_eq!(r.cost_usd, None);
        assert!(!r.is_error);
        assert!(r.explanation.unwrap().starts_with("I wrote"));
        // Stopped before it wrote the file: the replies are counted, no tokens.
        let r = parse(ResultFormat::CopilotJsonl, &text, None);
        assert_eq!((r.turns, r.input_tokens), (Some(3), None));
    }

    #[test]
    fn the_new_clis_errors_with_the_service_down_are_errors() {
        for (format, out, usage, error) in [
            (
                ResultFormat::OpencodeJsonl,
                "opencode-jsonl-network-down.jsonl",
                None,
                "Cannot connect to API: Unable to connect. Is the computer able to access the url?",
            ),
            (
                ResultFormat::CopilotJsonl,
                "copilot-jsonl-network-down.jsonl",
                Some("copilot-usage-network-down.json"),
                "Could not connect to local model provider at http://127.0.0.1:9/v1.\n  Check that the service is running and the port is correct. (query)",
            ),
            (
                ResultFormat::QwenJson,
                "qwen-stream-json-network-down.jsonl",
                None,
                "[API Error: Connection error. (cause: fetch failed)]",
            ),
        ] {
            let usage = usage.map(sample);
            let r = parse(format, &sample(out), usage.as_deref());
            assert!(r.is_error, "{format:?}");
            assert_eq!(r.error.as_deref(), Some(error), "{format:?}");
            assert_eq!(r.input_tokens.unwrap_or(0), 0, "{format:?}");
        }
        let r = parse(
            ResultFormat::CopilotJsonl,
            r#"{"type":"result","exitCode":2}"#,
            None,
        );
        assert_eq!(r.error.as_deref(), Some("copilot reported exit code 2"));
    }

    #[test]
    fn qwen_is_claude_shaped_with_the_cache_inside_the_input() {
        let r = parse(
            ResultFormat::QwenJson,
            &sample("qwen-stream-json.jsonl"),
            None,
        );
        assert_eq!(r.turns, Some(3));
        assert_eq!(
            (r.input_tokens, r.output_tokens, r.cache_read_tokens),
            (Some(3000 - 600), Some(150), Some(600))
        );
        assert_eq!(r.cost_usd, None);
        assert!(!r.is_error);
        assert!(r.explanation.unwrap().starts_with("I wrote"));
        // Cut short: one turn per reply, although qwen splits a reply's text and tool call.
        let cut: String = sample("qwen-stream-json.jsonl")
            .lines()
            .filter(|l| !l.contains(r#""type":"result""#))
            .map(|l| format!("{l}\n"))
            .collect();
        let r = parse(ResultFormat::QwenJson, &cut, None);
        assert_eq!((r.turns, r.input_tokens), (Some(3), Some(2400)), "{r:?}");
    }

    #[test]
    fn unreadable_output_gives_no_numbers() {
        for f in ResultFormat::ALL {
            let r = parse(f, "not json at all\n", Some("not json either"));
            assert_eq!(r.input_tokens, None, "{f:?}");
            assert!(!r.is_error, "{f:?}");
        }
    }

    #[test]
    fn totals_add_only_stated_costs() {
        let a = AgentReport {
            input_tokens: Some(10),
            cost_usd: Some(0.5),
            ..Default::default()
        };
        let b = AgentReport {
            input_tokens: Some(5),
            output_tokens: Some(2),
            is_error: true,
            ..Default::default()
        };
        let t = AgentTotals::of([&a, &b]);
        assert_eq!((t.invocations, t.errors, t.input, t.output), (2, 1, 15, 2));
        assert_eq!(t.cost_usd, Some(0.5));
        assert_eq!(AgentTotals::of([&b]).cost_usd, None);
    }
}
