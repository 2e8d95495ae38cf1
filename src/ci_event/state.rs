//! Where a fix branch's history lives, with no state store: `Fixci-Attempt: N` and
//! `Fixci-Run: <url>` trailers on fixci's commits (git's trailer format,
//! <https://git-scm.com/docs/git-interpret-trailers>), and a hidden block in the pull request's
//! body (an HTML comment, invisible when rendered) naming the original failure.

use serde::{Deserialize, Serialize};

/// The trailer key of the attempt number.
pub const ATTEMPT_TRAILER: &str = "Fixci-Attempt";
/// The trailer key of the CI run (or review) the attempt answered.
pub const RUN_TRAILER: &str = "Fixci-Run";

/// The trailer lines to end a commit message with: `\nFixci-Attempt: N\nFixci-Run: URL\n`
/// (the run line only when `run` is non-empty; newlines in it are dropped).
pub fn trailer_lines(attempt: u32, run: &str) -> String {
    let mut s = format!("\n{ATTEMPT_TRAILER}: {attempt}\n");
    let run: String = run.chars().filter(|c| !c.is_control()).collect();
    if !run.trim().is_empty() {
        s.push_str(&format!("{RUN_TRAILER}: {}\n", run.trim()));
    }
    s
}

/// The attempt number and run of a commit message's trailers, read with git's own trailer
/// parser (libgit2 `git_message_trailers`): `None` without a valid `Fixci-Attempt`.
pub fn parse_trailers(message: &str) -> Option<(u32, Option<String>)> {
    let t = git2::message_trailers_strs(message).ok()?;
    let mut attempt = None;
    let mut run = None;
    for (k, v) in t.iter() {
        if k.eq_ignore_ascii_case(ATTEMPT_TRAILER) {
            attempt = v.trim().parse::<u32>().ok().or(attempt);
        } else if k.eq_ignore_ascii_case(RUN_TRAILER) {
            run = Some(v.trim().to_string());
        }
    }
    attempt.map(|a| (a, run))
}

/// One commit of a fix branch, newest first in [`BranchHistory::commits`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchCommit {
    /// Full id.
    pub id: String,
    /// `Name <email>` of the author.
    pub author: String,
    /// True when the author is fixci's identity (see `vcs::fixci_signature`).
    pub by_fixci: bool,
    /// The trailers' attempt and run, when present.
    pub attempt: Option<(u32, Option<String>)>,
}

/// What git says about a fix branch: its commits since the base, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BranchHistory {
    /// The branch tip.
    pub tip: String,
    /// Commits on the branch and not on the base, newest first.
    pub commits: Vec<BranchCommit>,
}

impl BranchHistory {
    /// The highest `Fixci-Attempt` on fixci's commits (0 when none).
    pub fn attempts_used(&self) -> u32 {
        self.commits
            .iter()
            .filter(|c| c.by_fixci)
            .filter_map(|c| c.attempt.as_ref().map(|a| a.0))
            .max()
            .unwrap_or(0)
    }

    /// The first commit whose author is not fixci: `(id, author)`.
    pub fn human_commit(&self) -> Option<(&str, &str)> {
        self.commits
            .iter()
            .find(|c| !c.by_fixci)
            .map(|c| (c.id.as_str(), c.author.as_str()))
    }

    /// The run of attempt 1 (the original failure), from its trailer.
    pub fn original_run(&self) -> Option<String> {
        self.commits
            .iter()
            .filter(|c| c.by_fixci)
            .filter_map(|c| c.attempt.clone())
            .min_by_key(|a| a.0)
            .and_then(|a| a.1)
    }
}

/// The hidden block of a fixci pull request's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub struct PrBlock {
    /// The fix branch.
    pub branch: String,
    /// The branch the fix goes into.
    pub base: String,
    /// The CI run whose failure started the branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_run: Option<String>,
    /// The failure signature the branch addresses (`crate::logs::signature`: `<test id>:
    /// <masked error line>`): a later failure with the same signature is noted on this PR
    /// instead of opening another, and the escalation issue is de-duplicated by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// The attempt budget when the branch was opened.
    pub max_attempts: u32,
}

const BLOCK_OPEN: &str = "<!-- fixci-state ";
const BLOCK_CLOSE: &str = " -->";

impl PrBlock {
    /// The block as one HTML comment line: `<!-- fixci-state {json} -->`. `<`, `>` and `&`
    /// are written as JSON `\u` escapes, so the JSON can never close the comment.
    pub fn render(&self) -> String {
        let json = serde_json::to_string(self).unwrap_or_default();
        let json = json
            .replace('<', "\\u003c")
            .replace('>', "\\u003e")
            .replace('&', "\\u0026");
        format!("{BLOCK_OPEN}{json}{BLOCK_CLOSE}")
    }

    /// The block in a pull request body, if any (the last one wins: a person may quote one).
    pub fn find(body: &str) -> Option<PrBlock> {
        body.lines().rev().find_map(|l| {
            let inner = l
                .trim()
                .strip_prefix(BLOCK_OPEN)?
                .strip_suffix(BLOCK_CLOSE)?;
            serde_json::from_str(inner).ok()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailers_round_trip_through_gits_parser() {
        let msg = format!(
            "Fix mean\n\nBody text.\n{}",
            trailer_lines(2, "https://github.com/o/r/actions/runs/9")
        );
        assert_eq!(
            parse_trailers(&msg),
            Some((2, Some("https://github.com/o/r/actions/runs/9".into())))
        );
        assert_eq!(parse_trailers("Fix mean\n\nFixci-Attempt: two\n"), None);
        assert_eq!(parse_trailers("Fix mean\n"), None);
        // A trailer-looking line in the middle of the body is not a trailer.
        assert_eq!(
            parse_trailers("Fix\n\nFixci-Attempt: 3\n\nmore prose here.\n"),
            None
        );
        assert!(!trailer_lines(1, "a\nFixci-Attempt: 9").contains("\nFixci-Attempt: 9"));
    }

    fn c(id: &str, fixci: bool, attempt: Option<u32>) -> BranchCommit {
        BranchCommit {
            id: id.into(),
            author: if fixci { "fixci" } else { "Jane <j@x>" }.into(),
            by_fixci: fixci,
            attempt: attempt.map(|a| (a, Some(format!("run{a}")))),
        }
    }

    #[test]
    fn history_counts_attempts_and_finds_humans() {
        let h = BranchHistory {
            tip: "b".into(),
            commits: vec![c("b", true, Some(2)), c("a", true, Some(1))],
        };
        assert_eq!(h.attempts_used(), 2);
        assert_eq!(h.human_commit(), None);
        assert_eq!(h.original_run().as_deref(), Some("run1"));
        let h = BranchHistory {
            tip: "c".into(),
            commits: vec![c("c", false, Some(7)), c("a", true, Some(1))],
        };
        // A human's commit that copies the trailer does not count as an attempt.
        assert_eq!(h.attempts_used(), 1);
        assert_eq!(h.human_commit(), Some(("c", "Jane <j@x>")));
    }

    #[test]
    fn the_block_is_hidden_and_cannot_be_closed_early() {
        let b = PrBlock {
            branch: "fixci/x".into(),
            base: "main".into(),
            original_run: Some("https://e/x?a=1&b=-->".into()),
            signature: Some("t::x: assert <N> == N --> & done".into()),
            max_attempts: 3,
        };
        let r = b.render();
        assert_eq!(r.matches("-->").count(), 1, "{r}");
        let body = format!("## Summary\n\ntext\n\n{r}\n");
        assert_eq!(PrBlock::find(&body), Some(b));
        assert_eq!(PrBlock::find("no block"), None);
        assert_eq!(PrBlock::find("<!-- fixci-state {broken -->"), None);
    }
}
