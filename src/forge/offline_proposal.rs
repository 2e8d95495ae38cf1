//! [`OfflineProposal`]: the pull request fixci would open, written as files and a command, for
//! `--no-pr`, a missing token or an unreachable GitHub.

use std::path::{Path, PathBuf};

use super::pulls::pr_body;
use super::{ForgeError, PrRequest};

/// A pull request left for a person to open: `pr.md` holds the body, `command` pushes the
/// branch and opens the draft with the GitHub CLI
/// (<https://cli.github.com/manual/gh_pr_create>).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineProposal {
    /// `<dir>/pr.md`: the body exactly as it would be sent.
    pub pr_md: PathBuf,
    /// One shell line: `git push <remote> <branch> && gh pr create --draft ...`.
    pub command: String,
}

/// Writes `dir/pr.md` and returns it with the command that would open the same draft pull
/// request in `owner/repo` from the branch on `remote`.
pub fn write_offline_proposal(
    dir: &Path,
    remote: &str,
    owner: &str,
    repo: &str,
    req: &PrRequest,
) -> Result<OfflineProposal, ForgeError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ForgeError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let pr_md = dir.join("pr.md");
    let mut body = pr_body(owner, repo, req);
    body.push('\n');
    std::fs::write(&pr_md, body).map_err(io(&pr_md))?;

    let branch = req.head.rsplit(':').next().unwrap_or(&req.head);
    let mut cmd = vec![
        "gh".to_string(),
        "pr".into(),
        "create".into(),
        "--draft".into(),
        "--repo".into(),
        quote(&format!("{owner}/{repo}")),
        "--base".into(),
        quote(&req.base),
        "--head".into(),
        quote(&req.head),
        "--title".into(),
        quote(&req.title),
        "--body-file".into(),
        quote(&pr_md.display().to_string()),
    ];
    for l in &req.labels {
        cmd.push("--label".into());
        cmd.push(quote(l));
    }
    for r in &req.reviewers {
        cmd.push("--reviewer".into());
        cmd.push(quote(r));
    }
    let command = format!(
        "git push {} {} && {}",
        quote(remote),
        quote(branch),
        cmd.join(" ")
    );
    Ok(OfflineProposal { pr_md, command })
}

/// POSIX shell single-quoting, left bare when nothing needs quoting.
fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@=+,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_body_and_a_quoted_command() {
        let dir = tempfile::tempdir().unwrap();
        let req = PrRequest {
            title: "fix: don't flake".into(),
            body: "Report".into(),
            head: "me:fixci/fix-1".into(),
            base: "main".into(),
            labels: vec!["fixci".into()],
            reviewers: vec!["octo-org/core".into()],
            linked_issue: Some(crate::forge::IssueRef::parse("o/r#3").unwrap()),
        };
        let p = write_offline_proposal(dir.path(), "fork", "o", "r", &req).unwrap();
        assert_eq!(
            std::fs::read_to_string(&p.pr_md).unwrap(),
            "Report\n\nCloses #3\n"
        );
        assert!(p.command.starts_with("git push fork fixci/fix-1 && gh pr create --draft --repo o/r --base main --head me:fixci/fix-1 --title 'fix: don'\\''t flake'"), "{}", p.command);
        assert!(
            p.command
                .ends_with("--label fixci --reviewer octo-org/core"),
            "{}",
            p.command
        );
    }
}
