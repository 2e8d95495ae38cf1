//! Inputs that come from the forge: a run URL's logs (fetched before the run directory exists,
//! so a run still in progress is refused with nothing written) and an issue's text.

use std::path::Path;

use crate::error::{Error, io_error};
use crate::forge::{self, FetchedRun, GitHub, IssueRef, RunRef};
use crate::logs::{self, DistilOptions, Distilled};
use crate::run_dir::IssueState;
use crate::spec::LoadedSpec;

/// A run URL's logs, downloaded into a temporary folder.
pub struct Prefetched {
    /// The parsed URL.
    pub run_ref: RunRef,
    /// What GitHub said about the run, and the downloaded files.
    pub run: FetchedRun,
    /// Holds the downloaded files until the fetch-logs stage copies them.
    pub dir: tempfile::TempDir,
}

/// A client for the forge host of `web_host`, with `--api-url` / `GITHUB_API_URL` and the token
/// from `GITHUB_TOKEN`, `GH_TOKEN` or `gh auth token`.
pub fn client(web_host: &str, api_url: Option<&str>) -> Result<GitHub, Error> {
    GitHub::new(
        &forge::api_base(api_url, web_host),
        forge::resolve_token_for(web_host),
    )
    .map_err(Error::from)
}

/// Fetches a run's failed-job logs (or its run-logs ZIP). A run that has not completed is a
/// usage error naming its status.
pub fn prefetch(url: &str, api_url: Option<&str>) -> Result<Prefetched, Error> {
    let run_ref = RunRef::parse(url).map_err(Error::from)?;
    let gh = client(&run_ref.web_host, api_url)?;
    let dir = tempfile::tempdir()
        .map_err(|e| Error::infra("cannot create a temporary folder").source(e))?;
    let run = gh
        .fetch_run_logs(&run_ref, dir.path())
        .map_err(Error::from)?;
    Ok(Prefetched { run_ref, run, dir })
}

/// Fetches the issue `O/R#N` (or an issue URL).
pub fn fetch_issue(reference: &str, api_url: Option<&str>) -> Result<IssueState, Error> {
    let r = IssueRef::parse(reference).map_err(Error::from)?;
    let gh = client("github.com", api_url)?;
    let t = gh.fetch_issue(&r).map_err(Error::from)?;
    Ok(IssueState {
        reference: r.to_string(),
        title: crate::redact::redact(&t.title),
        body: crate::redact::redact(&t.body),
        url: t.html_url,
    })
}

/// The issue of a run, before anything is written: `issue` from the forge, else `issue-file`.
pub fn issue_of(spec: &LoadedSpec, api_url: Option<&str>) -> Result<Option<IssueState>, Error> {
    if let Some(i) = &spec.spec.issue {
        return fetch_issue(i, api_url).map(Some);
    }
    crate::feature::issue_file_of(spec)
}

/// Copies the fetched logs into `stage_dir` and distils them together: failures of every job in
/// order, the first signature, and one excerpt per log within the byte budget.
pub fn distil_fetched(
    files: &[std::path::PathBuf],
    stage_dir: &Path,
    opts: &DistilOptions,
) -> Result<(std::path::PathBuf, Distilled), Error> {
    let mut merged = Distilled::default();
    let mut first: Option<std::path::PathBuf> = None;
    let per = opts.budget_bytes / files.len().max(1);
    for f in files {
        let name = f.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        let dest = stage_dir.join(&name);
        std::fs::copy(f, &dest).map_err(|e| io_error("copy", f, e))?;
        first.get_or_insert(dest.clone());
        let d = logs::distil_path(
            &dest,
            &DistilOptions {
                budget_bytes: per.max(1024),
            },
        )
        .map_err(|e| {
            Error::usage(format!("cannot read the CI log `{}`", dest.display())).source(e)
        })?;
        merged.failures.extend(d.failures);
        if merged.signature.is_none() {
            merged.signature = d.signature;
        }
        if files.len() > 1 {
            merged
                .excerpt
                .push_str(&format!("==> {} <==\n", name.to_string_lossy()));
        }
        merged.excerpt.push_str(&d.excerpt);
        merged.source_lines.extend(d.source_lines);
    }
    let path = first.ok_or_else(|| Error::infra("the run has no logs to download"))?;
    Ok((path, merged))
}
