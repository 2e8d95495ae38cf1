//! [`RunRef`] and [`IssueRef`]: what a user points fixci at, parsed from text.

use super::ForgeError;

/// A GitHub Actions workflow run, as named by its web URL.
///
/// Accepted shapes (on `github.com` or a GitHub Enterprise Server host, `http` or `https`; a
/// query string, a `#fragment` and a trailing slash are ignored):
/// - `https://HOST/OWNER/REPO/actions/runs/RUN_ID`
/// - `https://HOST/OWNER/REPO/actions/runs/RUN_ID/attempts/ATTEMPT`
/// - `https://HOST/OWNER/REPO/actions/runs/RUN_ID/job/JOB_ID` (also `/jobs/JOB_ID`)
///
/// See <https://docs.github.com/en/rest/actions/workflow-runs#get-a-workflow-run>.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRef {
    /// The web host, with its port when it has one: `github.com`, `ghe.example.com:8443`.
    pub web_host: String,
    pub owner: String,
    pub repo: String,
    pub run_id: u64,
    /// The run attempt (1-based), when the URL names one; otherwise the latest attempt.
    pub attempt: Option<u32>,
    /// The job, when the URL names one; then only that job's log is fetched.
    pub job_id: Option<u64>,
}

impl RunRef {
    /// Parses a run URL; any other text is a [`ForgeError::BadUrl`] saying what was wrong.
    pub fn parse(url: &str) -> Result<RunRef, ForgeError> {
        let bad = |reason: &str| ForgeError::BadUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let trimmed = url.trim();
        let rest = trimmed
            .strip_prefix("https://")
            .or_else(|| trimmed.strip_prefix("http://"))
            .ok_or_else(|| bad("expected an `https://` URL"))?;
        let rest = rest.split(['?', '#']).next().unwrap_or_default();
        let mut parts = rest.split('/').filter(|p| !p.is_empty());
        let web_host = parts.next().ok_or_else(|| bad("no host"))?;
        if web_host.contains('@') {
            return Err(bad("credentials in the URL are not accepted"));
        }
        let segs: Vec<&str> = parts.collect();
        let shape = "expected `/OWNER/REPO/actions/runs/RUN_ID` with an optional `/attempts/N` or `/job/JOB_ID`";
        if segs.len() < 5 || segs[2] != "actions" || segs[3] != "runs" {
            return Err(bad(shape));
        }
        let run_id = parse_id(segs[4]).ok_or_else(|| bad("the run id is not a number"))?;
        let (mut attempt, mut job_id) = (None, None);
        match &segs[5..] {
            [] => {}
            ["attempts", n] => {
                let n: u32 = n
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| bad("the attempt is not a positive number"))?;
                attempt = Some(n);
            }
            ["job" | "jobs", j] => {
                job_id = Some(parse_id(j).ok_or_else(|| bad("the job id is not a number"))?);
            }
            _ => return Err(bad(shape)),
        }
        Ok(RunRef {
            web_host: web_host.to_ascii_lowercase(),
            owner: segs[0].to_string(),
            repo: segs[1].to_string(),
            run_id,
            attempt,
            job_id,
        })
    }

    /// The run's web page, `https://HOST/OWNER/REPO/actions/runs/ID`.
    pub fn web_url(&self) -> String {
        format!(
            "https://{}/{}/{}/actions/runs/{}",
            self.web_host, self.owner, self.repo, self.run_id
        )
    }
}

fn parse_id(s: &str) -> Option<u64> {
    s.parse().ok().filter(|n| *n > 0)
}

/// A GitHub issue used as the task text: `OWNER/REPO#NUMBER`, or an issue URL
/// `https://HOST/OWNER/REPO/issues/NUMBER`.
///
/// See <https://docs.github.com/en/rest/issues/issues#get-an-issue>.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueRef {
    pub owner: String,
    pub repo: String,
    pub number: u64,
}

impl IssueRef {
    /// Parses `OWNER/REPO#NUMBER` or an issue URL; anything else is a
    /// [`ForgeError::BadIssueRef`].
    pub fn parse(input: &str) -> Result<IssueRef, ForgeError> {
        let bad = |reason: &str| ForgeError::BadIssueRef {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        let s = input.trim();
        let (owner, repo, number) = if let Some(rest) = s
            .strip_prefix("https://")
            .or_else(|| s.strip_prefix("http://"))
        {
            let rest = rest.split(['?', '#']).next().unwrap_or_default();
            let segs: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
            match segs.as_slice() {
                [_host, owner, repo, "issues" | "pull", n] => (*owner, *repo, *n),
                _ => return Err(bad("expected `https://HOST/OWNER/REPO/issues/NUMBER`")),
            }
        } else {
            let (path, n) = s.split_once('#').ok_or_else(|| bad("no `#NUMBER`"))?;
            let (owner, repo) = path.split_once('/').ok_or_else(|| bad("no `OWNER/`"))?;
            (owner, repo, n)
        };
        let valid = |p: &str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        if !valid(owner) || !valid(repo) {
            return Err(bad(
                "owner and repository may hold only letters, digits, `-`, `_` and `.`",
            ));
        }
        let number =
            parse_id(number).ok_or_else(|| bad("the issue number is not a positive number"))?;
        Ok(IssueRef {
            owner: owner.to_string(),
            repo: repo.to_string(),
            number,
        })
    }
}

impl std::fmt::Display for IssueRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}#{}", self.owner, self.repo, self.number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_urls_in_every_accepted_shape() {
        /// url, host, run, attempt, job
        type Row = (&'static str, &'static str, u64, Option<u32>, Option<u64>);
        let table: &[Row] = &[
            (
                "https://github.com/o/r/actions/runs/42",
                "github.com",
                42,
                None,
                None,
            ),
            (
                "https://github.com/o/r/actions/runs/42/",
                "github.com",
                42,
                None,
                None,
            ),
            (
                "https://github.com/o/r/actions/runs/42?pr=7",
                "github.com",
                42,
                None,
                None,
            ),
            (
                "https://github.com/o/r/actions/runs/42/attempts/3",
                "github.com",
                42,
                Some(3),
                None,
            ),
            (
                "https://github.com/o/r/actions/runs/42/job/99",
                "github.com",
                42,
                None,
                Some(99),
            ),
            (
                "https://github.com/o/r/actions/runs/42/job/99#step:4:12",
                "github.com",
                42,
                None,
                Some(99),
            ),
            (
                "https://github.com/o/r/actions/runs/42/jobs/99",
                "github.com",
                42,
                None,
                Some(99),
            ),
            (
                "https://GHE.corp.example:8443/o/r/actions/runs/5",
                "ghe.corp.example:8443",
                5,
                None,
                None,
            ),
            (
                "http://ghe.local/o/r/actions/runs/5",
                "ghe.local",
                5,
                None,
                None,
            ),
        ];
        for (url, host, run, attempt, job) in table {
            let r = RunRef::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(
                (r.web_host.as_str(), r.owner.as_str(), r.repo.as_str()),
                (*host, "o", "r"),
                "{url}"
            );
            assert_eq!(
                (r.run_id, r.attempt, r.job_id),
                (*run, *attempt, *job),
                "{url}"
            );
        }
    }

    #[test]
    fn bad_run_urls_say_why() {
        for url in [
            "github.com/o/r/actions/runs/42",
            "https://github.com/o/r/actions/runs/abc",
            "https://github.com/o/r/actions/runs/0",
            "https://github.com/o/r/actions/runs",
            "https://github.com/o/r/pull/3",
            "https://github.com/o/r/actions/runs/42/attempts/0",
            "https://github.com/o/r/actions/runs/42/attempts/x",
            "https://github.com/o/r/actions/runs/42/job/",
            "https://github.com/o/r/actions/runs/42/logs",
            "https://user:secret@github.com/o/r/actions/runs/42",
            "ftp://github.com/o/r/actions/runs/42",
        ] {
            let err = RunRef::parse(url).expect_err(url);
            assert!(err.is_usage(), "{url}");
            assert!(matches!(err, ForgeError::BadUrl { .. }), "{url}");
            assert!(err.to_string().contains(url), "{err}");
        }
    }

    #[test]
    fn issue_refs() {
        let i = IssueRef::parse("PyGithub/PyGithub#28").unwrap();
        assert_eq!(
            (i.owner.as_str(), i.repo.as_str(), i.number),
            ("PyGithub", "PyGithub", 28)
        );
        assert_eq!(i.to_string(), "PyGithub/PyGithub#28");
        let u = IssueRef::parse("https://github.com/o/r.rs/issues/7").unwrap();
        assert_eq!(
            (u.owner.as_str(), u.repo.as_str(), u.number),
            ("o", "r.rs", 7)
        );
        for bad in [
            "o/r",
            "o#3",
            "o/r#",
            "o/r#x",
            "/r#3",
            "o/r#0",
            "o r/x#1",
            "https://github.com/o/r/3",
        ] {
            let err = IssueRef::parse(bad).expect_err(bad);
            assert!(err.is_usage() && err.to_string().contains(bad), "{err}");
        }
    }
}
