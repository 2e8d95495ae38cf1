//! [`ResultFormat`]: which parser reads an agent CLI's standard output, named by a preset's or a
//! job spec's `result` key. The parsers themselves live in `crate::agent::result`; the name is
//! part of the job spec's vocabulary, so it lives here.

use serde::{Deserialize, Serialize};

/// Which parser reads an agent CLI's standard output (a preset's `result` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResultFormat {
    /// Claude Code's `--output-format json` object or `stream-json` lines.
    ClaudeJson,
    /// Codex's `exec --json` JSON Lines events.
    CodexJsonl,
    /// Gemini CLI's `-o json` object.
    GeminiJson,
    /// aider's plain-text `Tokens: ... Cost: ...` lines.
    AiderText,
    /// opencode's `run --format json` JSON Lines events.
    OpencodeJsonl,
    /// GitHub Copilot CLI's `--output-format json` events and its `--usage-output-file`.
    CopilotJsonl,
    /// Qwen Code's `-o json` / `-o stream-json` output (claude's shape).
    QwenJson,
    /// Nothing to read (a scripted or unknown agent).
    #[default]
    None,
}

impl ResultFormat {
    /// The kebab-case name, as in `presets.toml`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ResultFormat::ClaudeJson => "claude-json",
            ResultFormat::CodexJsonl => "codex-jsonl",
            ResultFormat::GeminiJson => "gemini-json",
            ResultFormat::AiderText => "aider-text",
            ResultFormat::OpencodeJsonl => "opencode-jsonl",
            ResultFormat::CopilotJsonl => "copilot-jsonl",
            ResultFormat::QwenJson => "qwen-json",
            ResultFormat::None => "none",
        }
    }

    /// Every parser, in the order the documentation lists them.
    pub const ALL: [ResultFormat; 8] = [
        ResultFormat::ClaudeJson,
        ResultFormat::CodexJsonl,
        ResultFormat::GeminiJson,
        ResultFormat::AiderText,
        ResultFormat::OpencodeJsonl,
        ResultFormat::CopilotJsonl,
        ResultFormat::QwenJson,
        ResultFormat::None,
    ];
}
