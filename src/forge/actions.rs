//! Fetching a workflow run, its failed jobs and their logs: [`GitHub::fetch_run_logs`].

use std::path::{Path, PathBuf};

use http::Method;
use serde::Deserialize;

use super::github::{Answer, Purpose};
use super::{ForgeError, GitHub, RunRef};

/// What [`GitHub::fetch_run_logs`] learned and wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedRun {
    /// The commit the run tested: the reproduction starts from it.
    pub head_sha: String,
    pub head_branch: Option<String>,
    /// Always `completed` (other runs are refused).
    pub status: String,
    /// `failure`, `timed_out`, `cancelled`, `success`, ...
    pub conclusion: Option<String>,
    pub html_url: String,
    /// The jobs whose conclusion is `failure` or `timed_out` (or the one job the URL named).
    pub failed_jobs: Vec<FailedJob>,
    /// Files written into `dest_dir`: `job-<id>.txt` per failed job, or `run-<id>-logs.zip`
    /// (the whole run's archive) when no job is marked failed.
    pub log_files: Vec<PathBuf>,
}

/// A failed job and the names of its failed steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedJob {
    pub id: u64,
    pub name: String,
    pub failed_steps: Vec<String>,
}

/// The fields fixci reads of a workflow run
/// (<https://docs.github.com/en/rest/actions/workflow-runs#get-a-workflow-run>).
#[derive(Debug, Deserialize)]
struct RunJson {
    status: Option<String>,
    conclusion: Option<String>,
    head_sha: String,
    head_branch: Option<String>,
    html_url: String,
}

/// A page of <https://docs.github.com/en/rest/actions/workflow-jobs#list-jobs-for-a-workflow-run>.
#[derive(Debug, Deserialize)]
struct JobsPage {
    jobs: Vec<JobJson>,
}

/// A job (<https://docs.github.com/en/rest/actions/workflow-jobs#get-a-job-for-a-workflow-run>).
#[derive(Debug, Deserialize)]
struct JobJson {
    id: u64,
    name: String,
    conclusion: Option<String>,
    #[serde(default)]
    steps: Option<Vec<StepJson>>,
}

#[derive(Debug, Deserialize)]
struct StepJson {
    name: String,
    conclusion: Option<String>,
}

fn is_failed(conclusion: Option<&str>) -> bool {
    matches!(conclusion, Some("failure" | "timed_out"))
}

impl GitHub {
    /// Fetches the run (or the attempt the URL names), refuses it unless its status is
    /// `completed` ([`ForgeError::RunNotCompleted`]), lists its jobs, picks the failed ones and
    /// their failed steps, and downloads logs into `dest_dir` (created if missing):
    /// - per failed job, its plain-text log, `job-<id>.txt`
    ///   (<https://docs.github.com/en/rest/actions/workflow-jobs#download-job-logs-for-a-workflow-run>);
    /// - when no job is marked failed, the run's ZIP archive, `run-<id>-logs.zip`, checked to be
    ///   a readable ZIP ([`ForgeError::Archive`] otherwise)
    ///   (<https://docs.github.com/en/rest/actions/workflow-runs#download-workflow-run-logs>,
    ///   <https://docs.github.com/en/rest/actions/workflow-runs#download-workflow-run-attempt-logs>).
    ///
    /// Both log endpoints answer 302 to a short-lived signed URL, fetched without the token.
    /// Needs `actions: read` on private repositories (and for logs, on any repository).
    pub fn fetch_run_logs(&self, run: &RunRef, dest_dir: &Path) -> Result<FetchedRun, ForgeError> {
        self.block_on(self.fetch_run_logs_async(run, dest_dir))
    }

    /// Downloads only the run's (or attempt's) ZIP archive of all logs into `dest_dir`, as
    /// `run-<id>-logs.zip`, checked to be a readable ZIP.
    pub fn fetch_run_archive(&self, run: &RunRef, dest_dir: &Path) -> Result<PathBuf, ForgeError> {
        self.block_on(async {
            create_dir(dest_dir)?;
            self.download_run_archive(run, dest_dir).await
        })
    }

    async fn fetch_run_logs_async(
        &self,
        run: &RunRef,
        dest_dir: &Path,
    ) -> Result<FetchedRun, ForgeError> {
        let run_path = run_path(run);
        let (info, _) = self
            .json::<RunJson>(Method::GET, &run_path, None, Purpose::Run)
            .await?;
        let status = info.status.clone().unwrap_or_else(|| "unknown".into());
        if status != "completed" {
            return Err(ForgeError::RunNotCompleted { status });
        }

        let jobs: Vec<JobJson> = match run.job_id {
            Some(job_id) => {
                let path = format!("/repos/{}/{}/actions/jobs/{job_id}", run.owner, run.repo);
                vec![
                    self.json::<JobJson>(Method::GET, &path, None, Purpose::Jobs)
                        .await?
                        .0,
                ]
            }
            None => {
                // The attempt's own list, or `filter=latest` (the latest attempt of each job).
                let first = match run.attempt {
                    Some(_) => format!("{run_path}/jobs?per_page=100"),
                    None => format!("{run_path}/jobs?filter=latest&per_page=100"),
                };
                self.paginate::<JobsPage>(&first, Purpose::Jobs, 10)
                    .await?
                    .into_iter()
                    .flat_map(|p| p.jobs)
                    .collect()
            }
        };

        let failed_jobs: Vec<FailedJob> = jobs
            .into_iter()
            .filter(|j| run.job_id.is_some() || is_failed(j.conclusion.as_deref()))
            .map(|j| FailedJob {
                id: j.id,
                name: j.name,
                failed_steps: j
                    .steps
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|s| is_failed(s.conclusion.as_deref()))
                    .map(|s| s.name)
                    .collect(),
            })
            .collect();

        create_dir(dest_dir)?;
        let mut log_files = Vec::new();
        if failed_jobs.is_empty() {
            log_files.push(self.download_run_archive(run, dest_dir).await?);
        } else {
            for job in &failed_jobs {
                let path = format!(
                    "/repos/{}/{}/actions/jobs/{}/logs",
                    run.owner, run.repo, job.id
                );
                let answer = self.follow_log_redirect(&path).await?;
                let file = dest_dir.join(format!("job-{}.txt", job.id));
                write_file(&file, &answer.body)?;
                log_files.push(file);
            }
        }

        Ok(FetchedRun {
            head_sha: info.head_sha,
            head_branch: info.head_branch,
            status,
            conclusion: info.conclusion,
            html_url: info.html_url,
            failed_jobs,
            log_files,
        })
    }

    async fn download_run_archive(
        &self,
        run: &RunRef,
        dest_dir: &Path,
    ) -> Result<PathBuf, ForgeError> {
        let answer = self
            .follow_log_redirect(&format!("{}/logs", run_path(run)))
            .await?;
        if let Err(source) = zip::ZipArchive::new(std::io::Cursor::new(&answer.body)) {
            return Err(ForgeError::Archive {
                url: answer.shown_url,
                source,
            });
        }
        let file = dest_dir.join(format!("run-{}-logs.zip", run.run_id));
        write_file(&file, &answer.body)?;
        Ok(file)
    }

    /// GETs a log endpoint; a 302 is followed to its `Location` without the token, a 200 is
    /// taken as the log itself (some proxies answer directly). The signed URL expires after
    /// about a minute, so a 4xx from it gets one fresh redirect before it is an error.
    async fn follow_log_redirect(&self, path: &str) -> Result<Answer, ForgeError> {
        let mut fresh_redirects = 1;
        loop {
            let answer = self.send(Method::GET, path, None).await?;
            if !matches!(answer.status, 301 | 302 | 303 | 307 | 308) {
                if !(200..300).contains(&answer.status) {
                    return Err(self.status_error(&answer, Purpose::Logs));
                }
                return Ok(answer);
            }
            let location = answer
                .headers
                .get(http::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .map(str::to_string)
                .ok_or_else(|| ForgeError::Protocol {
                    url: answer.shown_url.clone(),
                    reason: format!("a {} without a `Location` header", answer.status),
                })?;
            let location = if location.starts_with('/') {
                format!("{}{}", origin(self.api_base()), location)
            } else {
                location
            };
            let signed = self.fetch_signed(&location).await?;
            match signed.status {
                200..=299 => return Ok(signed),
                400..=499 if fresh_redirects > 0 => fresh_redirects -= 1,
                _ => return Err(self.status_error(&signed, Purpose::SignedLog)),
            }
        }
    }
}

/// `/repos/O/R/actions/runs/ID` or `.../runs/ID/attempts/N`.
fn run_path(run: &RunRef) -> String {
    let mut p = format!(
        "/repos/{}/{}/actions/runs/{}",
        run.owner, run.repo, run.run_id
    );
    if let Some(n) = run.attempt {
        p.push_str(&format!("/attempts/{n}"));
    }
    p
}

/// `scheme://authority` of a URL.
fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map(|i| i + 3).unwrap_or(0);
    match url[after_scheme..].find('/') {
        Some(i) => &url[..after_scheme + i],
        None => url,
    }
}

fn create_dir(dir: &Path) -> Result<(), ForgeError> {
    std::fs::create_dir_all(dir).map_err(|source| ForgeError::Io {
        path: dir.to_path_buf(),
        source,
    })
}

/// Writes through a temporary file in the same directory, so a failure leaves no partial file.
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ForgeError> {
    let io = |source| ForgeError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    std::io::Write::write_all(&mut tmp, bytes).map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_paths_and_origins() {
        let mut r = RunRef::parse("https://github.com/o/r/actions/runs/5").unwrap();
        assert_eq!(run_path(&r), "/repos/o/r/actions/runs/5");
        r.attempt = Some(2);
        assert_eq!(run_path(&r), "/repos/o/r/actions/runs/5/attempts/2");
        assert_eq!(origin("https://ghe.example/api/v3"), "https://ghe.example");
        assert_eq!(origin("http://127.0.0.1:80"), "http://127.0.0.1:80");
    }
}
