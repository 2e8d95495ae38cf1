//! The `feature` pipeline's own rules (`pipelines/feature.toml`): an issue as the input (`issue`
//! fetched from GitHub by the fetch stage's `crate::stages::forge_inputs::issue_of`, or
//! `issue-file`, a Markdown file beside the spec; which specs may run it is checked when the
//! pipeline is selected, `crate::pipeline::select`), the confirmation that new acceptance tests fail at the base for the missing behaviour
//! ([`crate::judge::acceptance`]), and the feature wording of titles. The stages call in here
//! through thin hooks; a run is a feature run when its reproduction has the origin [`ORIGIN`]
//! (`RunState::feature` before that).

use std::path::Path;

use crate::error::Error;
use crate::run_dir::{IssueState, RunState};
use crate::spec::LoadedSpec;
use crate::verify::RunOutcome;

/// `Repro::origin` of acceptance tests written by the agent of a `role = "acceptance"` stage:
/// new tests (left out of the base suite, restored from fixci's copy) that stay in the fix.
pub const ORIGIN: &str = "acceptance";

/// Reads an `issue-file`: the first line starting with `# ` is the title (else the file name),
/// the rest of the file the body. Text is redacted like a fetched issue's.
///
/// Errors (exit 2): unreadable file, a file with no text.
pub fn issue_from_file(path: &Path) -> Result<IssueState, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::usage(format!("/issue-file: cannot read `{}`", path.display())).source(e)
    })?;
    if text.trim().is_empty() {
        return Err(Error::usage(format!(
            "/issue-file: `{}` is empty; expected the feature request in Markdown",
            path.display()
        )));
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "issue".into());
    let (title, body) = match text.lines().position(|l| l.starts_with("# ")) {
        Some(i) => {
            let lines: Vec<&str> = text.lines().collect();
            let body: Vec<&str> = lines[..i].iter().chain(&lines[i + 1..]).copied().collect();
            (
                lines[i].trim_start_matches("# ").trim().to_string(),
                body.join("\n").trim().to_string(),
            )
        }
        None => (name.clone(), text.trim().to_string()),
    };
    Ok(IssueState {
        reference: name,
        title: crate::redact::redact(&title),
        body: crate::redact::redact(&body),
        url: String::new(),
    })
}

/// The issue as `--dry-run` shows it, fetching nothing: `issue-file` read from disk, `issue`
/// with placeholders for the title and body fetched at run time.
pub fn dry_run_issue(spec: &LoadedSpec) -> Result<Option<IssueState>, Error> {
    if let Some(i) = &spec.spec.issue {
        return Ok(Some(IssueState {
            reference: i.clone(),
            title: "<issue title, fetched at run time>".into(),
            body: "<issue body, fetched at run time>".into(),
            url: String::new(),
        }));
    }
    issue_file_of(spec)
}

/// The spec's `issue-file`, read (see [`issue_from_file`]); `None` without one.
///
/// Errors: as [`issue_from_file`].
pub fn issue_file_of(spec: &LoadedSpec) -> Result<Option<IssueState>, Error> {
    match &spec.spec.issue_file {
        Some(f) => issue_from_file(&spec.dir.join(f)).map(Some),
        None => Ok(None),
    }
}

/// True for a feature run: acceptance tests, or a feature pipeline before they exist.
pub fn is_feature(st: &RunState) -> bool {
    st.feature || st.repro.as_ref().is_some_and(|r| r.origin == ORIGIN)
}

/// The confirmation verdict for acceptance tests: `verdict` is [`crate::verify::confirm`]'s
/// (every run failed), `runs` its runs. A run that passed means the tests do not test missing
/// behaviour; every failing run must pass [`crate::judge::acceptance::judge_acceptance_run`]
/// against the project modules of `commit`. `Ok(Ok((verdict, why)))` carries the first run's
/// reason (what is missing).
pub fn confirm_verdict<T>(
    repo: &git2::Repository,
    commit: git2::Oid,
    verdict: Result<T, String>,
    runs: &[RunOutcome],
) -> Result<Result<(T, String), String>, Error> {
    if runs.iter().any(|r| r.termination.success()) {
        return Ok(Err(
            "the acceptance tests already pass at the base commit, so they do not test the requested behaviour: tests of a feature must fail before it is built".into(),
        ));
    }
    let tree = repo
        .find_commit(commit)
        .and_then(|c| c.tree())
        .map_err(|e| Error::infra("cannot read the start commit's tree").source(e))?;
    let mut paths = Vec::new();
    tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
        // Two levels deep is enough to see `x.py`, `x/...`, `src/x/...`.
        if dir.matches('/').count() < 2 {
            paths.push(format!("{dir}{}", entry.name().unwrap_or("")));
        }
        git2::TreeWalkResult::Ok
    })
    .map_err(|e| Error::infra("cannot read the start commit's tree").source(e))?;
    let project = crate::judge::acceptance::project_modules(paths.iter().map(String::as_str));
    let n = runs.len();
    let mut first = None;
    for (k, run) in runs.iter().enumerate() {
        match crate::judge::acceptance::judge_acceptance_run(
            &run.tail(256 * 1024),
            &run.termination,
            &project,
        ) {
            Ok(why) => {
                first.get_or_insert(why);
            }
            Err(why) => return Ok(Err(format!("run {} of {n}: {why}", k + 1))),
        }
    }
    Ok(verdict.map(|v| (v, first.unwrap_or_default())))
}

/// The title of a feature's PR and commit, uncut: `Feature: <issue title>`, else `Feature:
/// <the prompt's first line>`.
pub fn title(st: &RunState, spec: &LoadedSpec) -> String {
    let what = st
        .issue
        .as_ref()
        .map(|i| i.title.clone())
        .filter(|t| !t.trim().is_empty())
        .unwrap_or_else(|| {
            spec.spec
                .prompt
                .lines()
                .next()
                .unwrap_or("feature")
                .to_string()
        });
    format!("Feature: {what}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issue_file_gives_its_heading_as_title_and_the_rest_as_body() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("req.md");
        std::fs::write(
            &p,
            "Intro line\n# Add `median`\n\nReturn the middle value.\n",
        )
        .unwrap();
        let i = issue_from_file(&p).unwrap();
        assert_eq!(i.reference, "req.md");
        assert_eq!(i.title, "Add `median`");
        assert_eq!(i.body, "Intro line\n\nReturn the middle value.");
        assert!(i.url.is_empty());
        std::fs::write(&p, "just text, no heading\n").unwrap();
        let i = issue_from_file(&p).unwrap();
        assert_eq!(
            (i.title.as_str(), i.body.as_str()),
            ("req.md", "just text, no heading")
        );
    }

    #[test]
    fn an_empty_or_missing_issue_file_names_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("empty.md");
        std::fs::write(&p, "  \n").unwrap();
        let e = issue_from_file(&p).unwrap_err().render();
        assert!(e.contains("/issue-file") && e.contains("empty.md"), "{e}");
        let e = issue_from_file(&dir.path().join("gone.md"))
            .unwrap_err()
            .render();
        assert!(e.contains("/issue-file") && e.contains("gone.md"), "{e}");
    }
}
