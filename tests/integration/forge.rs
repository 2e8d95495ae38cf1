//! The forge layer against a real HTTP server on 127.0.0.1 (wiremock) serving GitHub's recorded
//! answers from `../shared/fixtures/github/`, and real git repositories in temp dirs.
//!
//! Tests that need the recorded answers skip (with a message) when the fixtures are absent; the
//! error-path tests build minimal bodies inline and always run.

use std::path::{Path, PathBuf};

use fixci::forge::{ForgeError, GitHub, RetryPolicy, RunRef, Token};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::common::fixtures;

/// A token that must never show up in a file, an error or a Debug output.
const SECRET: &str = "ghp_fixciTESTsecret0123456789abcdef";
const OWNER: &str = "PyGithub";
const REPO: &str = "PyGithub";
const RUN_ID: u64 = 3881497935;

/// A wiremock server with its own runtime, so the blocking [`GitHub`] client can be called from
/// the test thread.
pub struct Server {
    rt: tokio::runtime::Runtime,
    pub mock: MockServer,
}

impl Server {
    pub fn start() -> Server {
        // wiremock serves from its own thread; this runtime only drives its setup calls.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mock = rt.block_on(MockServer::start());
        Server { rt, mock }
    }

    pub fn uri(&self) -> String {
        self.mock.uri()
    }

    pub fn mount(&self, m: Mock) {
        self.rt.block_on(m.mount(&self.mock));
    }

    pub fn requests(&self) -> Vec<Request> {
        self.rt
            .block_on(self.mock.received_requests())
            .unwrap_or_default()
    }

    fn github(&self) -> GitHub {
        GitHub::new(&self.uri(), Some(Token::new(SECRET)))
            .unwrap()
            .with_retry_policy(RetryPolicy::fast())
    }
}

/// The recorded exchange of `file` whose method and path are these.
fn exchange(fixtures: &Path, file: &str, method: &str, path: &str) -> Value {
    let text = std::fs::read_to_string(fixtures.join("github").join(file)).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["exchanges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["method"] == method && e["path"] == path)
        .unwrap_or_else(|| panic!("{file} has no {method} {path}"))
        .clone()
}

fn run_path() -> String {
    format!("/repos/{OWNER}/{REPO}/actions/runs/{RUN_ID}")
}

fn run_ref() -> RunRef {
    RunRef::parse(&format!(
        "https://github.com/{OWNER}/{REPO}/actions/runs/{RUN_ID}"
    ))
    .unwrap()
}

/// Serves a recorded exchange's status, body and kept headers at its own path.
fn recorded(ex: &Value) -> Mock {
    let mut t = ResponseTemplate::new(ex["status"].as_u64().unwrap() as u16);
    if !ex["body"].is_null() {
        t = t.set_body_json(ex["body"].clone());
    }
    Mock::given(method(ex["method"].as_str().unwrap()))
        .and(path(ex["path"].as_str().unwrap()))
        .respond_with(t)
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn assert_no_secret_on_disk(dir: &Path) {
    for f in files_under(dir) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
            "the token was written to {}",
            f.display()
        );
    }
}

fn assert_secret_hidden(err: &ForgeError) {
    for shown in [err.to_string(), format!("{err:?}")] {
        assert!(!shown.contains(SECRET), "the token leaked: {shown}");
    }
}

fn auth_of(r: &Request) -> Option<String> {
    r.headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_string())
}

#[test]
fn fetches_failed_job_logs_through_the_recorded_302() {
    let Some(fx) = fixtures() else { return };
    let server = Server::start();
    let run = exchange(&fx, "workflow-run-failed.json", "GET", &run_path());
    server.mount(recorded(&run));

    // The recorded jobs all succeeded: mark one failed, with its failing step, as a red run has.
    let mut jobs = exchange(
        &fx,
        "workflow-run-jobs.json",
        "GET",
        &format!("{}/jobs", run_path()),
    );
    let job = &mut jobs["body"]["jobs"][1];
    job["conclusion"] = json!("failure");
    job["steps"][3]["conclusion"] = json!("failure");
    let job_id = job["id"].as_u64().unwrap();
    let job_name = job["name"].as_str().unwrap().to_string();
    let step_name = job["steps"][3]["name"].as_str().unwrap().to_string();
    server.mount(recorded(&jobs));

    // The recorded 302 of the job-logs endpoint, its Location moved onto the local server.
    let redirect = exchange(
        &fx,
        "job-logs-redirect.json",
        "GET",
        "/repos/PyGithub/PyGithub/actions/jobs/11421878319/logs",
    );
    assert_eq!(redirect["status"], 302);
    let location = redirect["headers"]["Location"].as_str().unwrap();
    let signed_path = location
        .split_once(".com")
        .unwrap()
        .1
        .split('?')
        .next()
        .unwrap()
        .to_string();
    let local_location = format!("{}{}", server.uri(), location.split_once(".com").unwrap().1);
    server.mount(
        Mock::given(method("GET"))
            .and(path(format!(
                "/repos/{OWNER}/{REPO}/actions/jobs/{job_id}/logs"
            )))
            .respond_with(
                ResponseTemplate::new(302).insert_header("Location", local_location.as_str()),
            ),
    );
    let log = std::fs::read(fx.join("logs/pytest-step-gitauto.txt")).unwrap();
    server.mount(
        Mock::given(method("GET"))
            .and(path(signed_path.as_str()))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(log.clone())),
    );

    let dest = tempfile::tempdir().unwrap();
    let fetched = server
        .github()
        .fetch_run_logs(&run_ref(), dest.path())
        .unwrap();

    assert_eq!(fetched.head_sha, run["body"]["head_sha"].as_str().unwrap());
    assert_eq!(fetched.head_branch.as_deref(), Some("main"));
    assert_eq!(fetched.status, "completed");
    assert_eq!(fetched.conclusion.as_deref(), Some("failure"));
    assert_eq!(fetched.html_url, run["body"]["html_url"].as_str().unwrap());
    assert_eq!(fetched.failed_jobs.len(), 1);
    assert_eq!(fetched.failed_jobs[0].id, job_id);
    assert_eq!(fetched.failed_jobs[0].name, job_name);
    assert_eq!(fetched.failed_jobs[0].failed_steps, vec![step_name]);
    assert_eq!(
        fetched.log_files,
        vec![dest.path().join(format!("job-{job_id}.txt"))]
    );
    assert_eq!(std::fs::read(&fetched.log_files[0]).unwrap(), log);

    // The API calls carried the token; the signed download did not.
    let reqs = server.requests();
    for r in &reqs {
        if r.url.path() == signed_path {
            assert_eq!(auth_of(r), None, "the token was sent to the signed log URL");
        } else {
            assert_eq!(auth_of(r), Some(format!("Bearer {SECRET}")), "{}", r.url);
        }
    }
    assert!(reqs.iter().any(|r| r.url.path() == signed_path));
    assert_no_secret_on_disk(dest.path());
}

#[test]
fn fetches_the_run_zip_when_no_job_is_marked_failed() {
    let Some(fx) = fixtures() else { return };
    let server = Server::start();
    server.mount(recorded(&exchange(
        &fx,
        "workflow-run-failed.json",
        "GET",
        &run_path(),
    )));
    server.mount(recorded(&exchange(
        &fx,
        "workflow-run-jobs.json",
        "GET",
        &format!("{}/jobs", run_path()),
    )));
    let zip = std::fs::read(fx.join("logs/run-logs-archive-phpunit.zip")).unwrap();
    let location = format!("{}/blob/logs_{RUN_ID}.zip?sig=abc&se=2026", server.uri());
    server.mount(
        Mock::given(method("GET"))
            .and(path(format!("{}/logs", run_path())))
            .respond_with(ResponseTemplate::new(302).insert_header("Location", location.as_str())),
    );
    server.mount(
        Mock::given(method("GET"))
            .and(path(format!("/blob/logs_{RUN_ID}.zip")))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(zip.clone())),
    );

    let dest = tempfile::tempdir().unwrap();
    let fetched = server
        .github()
        .fetch_run_logs(&run_ref(), dest.path())
        .unwrap();
    assert!(fetched.failed_jobs.is_empty());
    assert_eq!(
        fetched.log_files,
        vec![dest.path().join(format!("run-{RUN_ID}-logs.zip"))]
    );
    assert_eq!(std::fs::read(&fetched.log_files[0]).unwrap(), zip);
    let archive =
        zip::ZipArchive::new(std::fs::File::open(&fetched.log_files[0]).unwrap()).unwrap();
    assert!(
        archive
            .file_names()
            .any(|n| n.is_ok_and(|n| n == "0_php-unit.txt"))
    );
    // the jobs were listed as `filter=latest`
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.url.path().ends_with("/jobs")
                && r.url.query().is_some_and(|q| q.contains("filter=latest")))
    );
    assert_no_secret_on_disk(dest.path());
}

#[test]
fn an_in_progress_run_is_refused_with_its_status() {
    let Some(fx) = fixtures() else { return };
    let server = Server::start();
    let mut run = exchange(&fx, "workflow-run-failed.json", "GET", &run_path());
    run["body"]["status"] = json!("in_progress");
    run["body"]["conclusion"] = Value::Null;
    server.mount(recorded(&run));

    let dest = tempfile::tempdir().unwrap();
    let err = server
        .github()
        .fetch_run_logs(&run_ref(), dest.path())
        .unwrap_err();
    assert!(
        matches!(&err, ForgeError::RunNotCompleted { status } if status == "in_progress"),
        "{err:?}"
    );
    assert!(err.is_usage());
    assert!(err.to_string().contains("`in_progress`"), "{err}");
    // nothing else was asked, nothing written
    assert_eq!(server.requests().len(), 1);
    assert!(files_under(dest.path()).is_empty());
}

#[test]
fn an_attempt_and_a_job_url_fetch_only_what_they_name() {
    let Some(fx) = fixtures() else { return };
    let server = Server::start();
    let run = exchange(&fx, "workflow-run-failed.json", "GET", &run_path());
    server.mount(recorded(&run));
    let mut attempt = run.clone();
    attempt["path"] = json!(format!("{}/attempts/2", run_path()));
    server.mount(recorded(&attempt));
    let mut jobs = exchange(
        &fx,
        "workflow-run-jobs.json",
        "GET",
        &format!("{}/jobs", run_path()),
    );
    jobs["path"] = json!(format!("{}/attempts/2/jobs", run_path()));
    jobs["body"]["jobs"][0]["conclusion"] = json!("timed_out");
    let attempt_job = jobs["body"]["jobs"][0]["id"].as_u64().unwrap();
    server.mount(recorded(&jobs));
    let job = exchange(
        &fx,
        "workflow-job.json",
        "GET",
        "/repos/PyGithub/PyGithub/actions/jobs/54251022208",
    );
    server.mount(recorded(&job));
    for id in [attempt_job, 54251022208] {
        server.mount(
            Mock::given(method("GET"))
                .and(path(format!(
                    "/repos/PyGithub/PyGithub/actions/jobs/{id}/logs"
                )))
                .respond_with(ResponseTemplate::new(302).insert_header(
                    "Location",
                    format!("{}/signed/{id}.txt?sig=1", server.uri()).as_str(),
                )),
        );
        server.mount(
            Mock::given(method("GET"))
                .and(path(format!("/signed/{id}.txt")))
                .respond_with(
                    ResponseTemplate::new(200).set_body_string(format!("log of job {id}\n")),
                ),
        );
    }
    let gh = server.github();
    let dest = tempfile::tempdir().unwrap();

    let url = format!("https://github.com/{OWNER}/{REPO}/actions/runs/{RUN_ID}/attempts/2");
    let fetched = gh
        .fetch_run_logs(&RunRef::parse(&url).unwrap(), dest.path())
        .unwrap();
    assert_eq!(
        fetched.failed_jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![attempt_job]
    );
    assert_eq!(
        std::fs::read_to_string(&fetched.log_files[0]).unwrap(),
        format!("log of job {attempt_job}\n")
    );
    let reqs = server.requests();
    assert!(
        reqs.iter()
            .any(|r| r.url.path() == format!("{}/attempts/2/jobs", run_path()))
    );
    assert!(
        !reqs
            .iter()
            .any(|r| r.url.path() == format!("{}/jobs", run_path()))
    );

    let url = format!("https://github.com/{OWNER}/{REPO}/actions/runs/{RUN_ID}/job/54251022208");
    let fetched = gh
        .fetch_run_logs(&RunRef::parse(&url).unwrap(), dest.path())
        .unwrap();
    assert_eq!(fetched.failed_jobs.len(), 1);
    assert_eq!(fetched.failed_jobs[0].id, 54251022208);
    assert_eq!(
        fetched.failed_jobs[0].name,
        job["body"]["name"].as_str().unwrap()
    );
    assert_eq!(
        std::fs::read_to_string(&fetched.log_files[0]).unwrap(),
        "log of job 54251022208\n"
    );
}

// ---- error paths: minimal inline bodies, no fixtures needed ----

fn minimal_run(status: &str) -> Value {
    json!({"id": RUN_ID, "status": status, "conclusion": "failure", "head_sha": "abc123",
           "head_branch": "main", "html_url": "https://github.com/o/r/actions/runs/1"})
}

fn mount_run_ok(server: &Server) {
    server.mount(
        Mock::given(method("GET"))
            .and(path(run_path()))
            .respond_with(ResponseTemplate::new(200).set_body_json(minimal_run("completed")))
            .with_priority(5),
    );
    server.mount(
        Mock::given(method("GET"))
            .and(path(format!("{}/jobs", run_path())))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({"total_count": 0, "jobs": []})),
            ),
    );
}

fn mount_zip(server: &Server, bytes: Vec<u8>) {
    let location = format!("{}/blob/run.zip?sig=s3", server.uri());
    server.mount(
        Mock::given(method("GET"))
            .and(path(format!("{}/logs", run_path())))
            .respond_with(ResponseTemplate::new(302).insert_header("Location", location.as_str())),
    );
    server.mount(
        Mock::given(method("GET"))
            .and(path("/blob/run.zip"))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(bytes)),
    );
}

/// A small valid ZIP built at run time.
fn small_zip() -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut w = zip::ZipWriter::new(&mut buf);
        w.start_file("0_test.txt", zip::write::SimpleFileOptions::default())
            .unwrap();
        std::io::Write::write_all(&mut w, b"FAILED test_x\n").unwrap();
        w.finish().unwrap();
    }
    buf.into_inner()
}

fn run_requests(server: &Server) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.url.path() == run_path())
        .count()
}

#[test]
fn a_500_is_retried_then_the_200_is_used() {
    let server = Server::start();
    server.mount(
        Mock::given(method("GET"))
            .and(path(run_path()))
            .respond_with(
                ResponseTemplate::new(500).set_body_json(json!({"message": "Server Error"})),
            )
            .up_to_n_times(1)
            .with_priority(1),
    );
    mount_run_ok(&server);
    mount_zip(&server, small_zip());
    let dest = tempfile::tempdir().unwrap();
    let fetched = server
        .github()
        .fetch_run_logs(&run_ref(), dest.path())
        .unwrap();
    assert_eq!(fetched.head_sha, "abc123");
    assert_eq!(run_requests(&server), 2);
}

#[test]
fn a_500_that_persists_ends_in_a_clear_error_after_the_retries() {
    let server = Server::start();
    server.mount(
        Mock::given(method("GET"))
            .and(path(run_path()))
            .respond_with(ResponseTemplate::new(502)),
    );
    let dest = tempfile::tempdir().unwrap();
    let err = server
        .github()
        .fetch_run_logs(&run_ref(), dest.path())
        .unwrap_err();
    assert_eq!(err.http_status(), Some(502), "{err}");
    assert_eq!(
        run_requests(&server),
        1 + RetryPolicy::fast().max_retries as usize
    );
    assert!(
        err.to_string()
            .contains(&format!("{}{}", server.uri(), run_path())),
        "{err}"
    );
    assert!(!err.is_usage());
}

#[test]
fn a_403_with_retry_after_waits_then_retries() {
    let server = Server::start();
    server.mount(
        Mock::given(method("GET"))
            .and(path(run_path()))
            .respond_with(
                ResponseTemplate::new(403)
                    .insert_header("Retry-After", "1")
                    .set_body_json(json!({"message": "You have exceeded a secondary rate limit."})),
            )
            .up_to_n_times(1)
            .with_priority(1),
    );
    mount_run_ok(&server);
    mount_zip(&server, small_zip());
    let dest = tempfile::tempdir().unwrap();
    let fetched = server
        .github()
        .fetch_run_logs(&run_ref(), dest.path())
        .unwrap();
    assert_eq!(fetched.head_sha, "abc123");
    assert_eq!(run_requests(&server), 2);
}

#[test]
fn a_rate_limit_reset_beyond_the_longest_wait_is_an_error_not_a_hang() {
    let server = Server::start();
    let reset = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    server.mount(
        Mock::given(method("GET"))
            .and(path(run_path()))
            .respond_with(
                ResponseTemplate::new(403)
                    .insert_header("x-ratelimit-remaining", "0")
                    .insert_header("x-ratelimit-reset", reset.to_string().as_str())
                    .set_body_json(json!({"message": "API rate limit exceeded"})),
            ),
    );
    let err = server
        .github()
        .fetch_run_logs(&run_ref(), tempfile::tempdir().unwrap().path())
        .unwrap_err();
    assert!(matches!(err, ForgeError::RateLimited { .. }), "{err:?}");
    assert!(err.to_string().contains("rate limit"), "{err}");
    assert_eq!(run_requests(&server), 1);
}

#[test]
fn a_401_says_the_token_was_rejected_and_is_not_retried() {
    let server = Server::start();
    server.mount(
        Mock::given(method("GET"))
            .and(path(run_path()))
            .respond_with(
                ResponseTemplate::new(401).set_body_json(json!({"message": "Bad credentials"})),
            ),
    );
    let err = server
        .github()
        .fetch_run_logs(&run_ref(), tempfile::tempdir().unwrap().path())
        .unwrap_err();
    let shown = err.to_string();
    assert_eq!(err.http_status(), Some(401));
    assert!(
        shown.contains("401") && shown.contains(&run_path()),
        "{shown}"
    );
    assert!(
        shown.contains("Bad credentials") && shown.contains("token was rejected"),
        "{shown}"
    );
    assert_eq!(run_requests(&server), 1);
    assert_secret_hidden(&err);
}

#[test]
fn a_403_on_the_logs_names_the_missing_actions_read_permission() {
    let server = Server::start();
    mount_run_ok(&server);
    server.mount(
        Mock::given(method("GET"))
            .and(path(format!("{}/logs", run_path())))
            .respond_with(
                ResponseTemplate::new(403)
                    .set_body_json(json!({"message": "Must have admin rights to Repository."})),
            ),
    );
    let err = server
        .github()
        .fetch_run_logs(&run_ref(), tempfile::tempdir().unwrap().path())
        .unwrap_err();
    let shown = err.to_string();
    assert_eq!(err.http_status(), Some(403));
    assert!(shown.contains("`actions: read`"), "{shown}");
    assert!(shown.contains(&format!("{}/logs", run_path())), "{shown}");
    assert_secret_hidden(&err);
}

#[test]
fn a_404_says_which_resource_is_missing() {
    let server = Server::start();
    server.mount(
        Mock::given(method("GET"))
            .and(path(run_path()))
            .respond_with(
                ResponseTemplate::new(404).set_body_json(json!({"message": "Not Found"})),
            ),
    );
    let err = server
        .github()
        .fetch_run_logs(&run_ref(), tempfile::tempdir().unwrap().path())
        .unwrap_err();
    let shown = err.to_string();
    assert_eq!(err.http_status(), Some(404));
    assert!(
        shown.contains("the workflow run does not exist") && shown.contains(&run_path()),
        "{shown}"
    );
    assert_eq!(run_requests(&server), 1);
}

#[test]
fn a_truncated_zip_is_an_error_naming_the_url_and_leaves_no_file() {
    let server = Server::start();
    mount_run_ok(&server);
    let zip = small_zip();
    mount_zip(&server, zip[..zip.len() / 2].to_vec());
    let dest = tempfile::tempdir().unwrap();
    let err = server
        .github()
        .fetch_run_logs(&run_ref(), dest.path())
        .unwrap_err();
    assert!(matches!(err, ForgeError::Archive { .. }), "{err:?}");
    let shown = err.to_string();
    assert!(
        shown.contains(&format!("{}/blob/run.zip", server.uri())),
        "{shown}"
    );
    assert!(
        !shown.contains("sig=s3"),
        "the signed query leaked into the message: {shown}"
    );
    assert!(files_under(dest.path()).is_empty());
}

#[test]
fn a_dead_server_is_a_network_error_after_retries() {
    // Bind then drop a listener: the port is closed when the client connects.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gh = GitHub::new(
        &format!("http://127.0.0.1:{port}"),
        Some(Token::new(SECRET)),
    )
    .unwrap()
    .with_retry_policy(RetryPolicy::fast());
    let err = gh
        .fetch_run_logs(&run_ref(), tempfile::tempdir().unwrap().path())
        .unwrap_err();
    assert!(
        matches!(err, ForgeError::Network { attempts: 4, .. }),
        "{err:?}"
    );
    assert_secret_hidden(&err);
    assert!(!format!("{gh:?}").contains(SECRET));
}

// ---- publishing: a real bare repository as the remote ----

use fixci::forge::{ESCALATION_LABEL, IssueRef, PrRequest, push_branch, signature_marker};
use git2::{Repository, Signature};
use wiremock::Respond;
use wiremock::matchers::query_param;

const BRANCH: &str = "fixci/fix-1";

/// A working repository with `main` pushed to a bare `remote.git`, and a fix branch on top.
struct Repos {
    dir: tempfile::TempDir,
    work: PathBuf,
    bare: PathBuf,
}

fn commit(repo: &Repository, file: &str, text: &str, parents: &[&git2::Commit]) -> git2::Oid {
    let workdir = repo.workdir().unwrap();
    std::fs::write(workdir.join(file), text).unwrap();
    let mut index = repo.index().unwrap();
    index.add_path(Path::new(file)).unwrap();
    index.write().unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let sig = Signature::now("fixci test", "test@fixci.invalid").unwrap();
    repo.commit(None, &sig, &sig, text, &tree, parents).unwrap()
}

fn repos() -> Repos {
    let dir = tempfile::tempdir().unwrap();
    let bare = dir.path().join("remote.git");
    Repository::init_bare(&bare).unwrap();
    let work = dir.path().join("work");
    let repo = Repository::init(&work).unwrap();
    let base = commit(&repo, "a.txt", "one\n", &[]);
    let base = repo.find_commit(base).unwrap();
    repo.branch("main", &base, true).unwrap();
    repo.set_head("refs/heads/main").unwrap();
    repo.remote("origin", bare.to_str().unwrap()).unwrap();
    push_branch(&work, "origin", "main", None).unwrap();
    let fix = commit(&repo, "a.txt", "one, fixed\n", &[&base]);
    repo.branch(BRANCH, &repo.find_commit(fix).unwrap(), false)
        .unwrap();
    Repos { dir, work, bare }
}

fn remote_tip(bare: &Path, branch: &str) -> Option<git2::Oid> {
    let r = Repository::open_bare(bare).unwrap();
    r.find_reference(&format!("refs/heads/{branch}"))
        .ok()
        .and_then(|r| r.target())
}

/// Answers the create-pull request with the recorded 201, but only if the branch is already in
/// the bare remote at that moment; otherwise 422 as GitHub would.
struct CreatedIfPushed {
    bare: PathBuf,
    created: Value,
}

impl Respond for CreatedIfPushed {
    fn respond(&self, _request: &Request) -> ResponseTemplate {
        match remote_tip(&self.bare, BRANCH) {
            Some(_) => ResponseTemplate::new(201).set_body_json(self.created.clone()),
            None => ResponseTemplate::new(422).set_body_json(json!({"message": "Validation Failed", "errors": [{"field": "head", "code": "invalid"}]})),
        }
    }
}

fn pr_request() -> PrRequest {
    PrRequest {
        title: "fix: flaky test_should_test_file".into(),
        body: "## Summary\nThe fix, verified 20 times.\n".into(),
        head: BRANCH.into(),
        base: "main".into(),
        labels: vec!["fixci".into()],
        reviewers: vec!["octocat".into(), "PyGithub/core".into()],
        linked_issue: Some(IssueRef::parse("PyGithub/PyGithub#28").unwrap()),
    }
}

fn body_json(r: &Request) -> Value {
    serde_json::from_slice(&r.body).unwrap()
}

#[test]
fn the_draft_pr_is_requested_after_the_push_reached_the_remote() {
    let Some(fx) = fixtures() else { return };
    let server = Server::start();
    let repos = repos();
    let created = exchange(
        &fx,
        "create-pull.json",
        "POST",
        "/repos/PyGithub/PyGithub/pulls",
    );
    assert_eq!(created["status"], 201);
    server.mount(
        Mock::given(method("POST"))
            .and(path("/repos/PyGithub/PyGithub/pulls"))
            .respond_with(CreatedIfPushed {
                bare: repos.bare.clone(),
                created: created["body"].clone(),
            }),
    );
    let number = created["body"]["number"].as_u64().unwrap();
    server.mount(
        Mock::given(method("POST"))
            .and(path(format!(
                "/repos/PyGithub/PyGithub/issues/{number}/labels"
            )))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([{"name": "fixci"}]))),
    );
    server.mount(
        Mock::given(method("POST"))
            .and(path(format!(
                "/repos/PyGithub/PyGithub/pulls/{number}/requested_reviewers"
            )))
            .respond_with(ResponseTemplate::new(201).set_body_json(created["body"].clone())),
    );

    let gh = server.github();
    let pr = gh
        .push_and_open_draft_pr(&repos.work, "origin", OWNER, REPO, &pr_request())
        .unwrap();
    assert_eq!(pr.number, number);
    assert_eq!(pr.html_url, created["body"]["html_url"].as_str().unwrap());
    assert!(pr.warnings.is_empty(), "{:?}", pr.warnings);

    let local = Repository::open(&repos.work).unwrap();
    let local_tip = local
        .find_branch(BRANCH, git2::BranchType::Local)
        .unwrap()
        .get()
        .target();
    assert_eq!(remote_tip(&repos.bare, BRANCH), local_tip);

    let reqs = server.requests();
    let create: Vec<&Request> = reqs
        .iter()
        .filter(|r| r.url.path() == "/repos/PyGithub/PyGithub/pulls")
        .collect();
    assert_eq!(create.len(), 1);
    let sent = body_json(create[0]);
    assert_eq!(sent["draft"], json!(true));
    assert_eq!(sent["head"], json!(BRANCH));
    assert_eq!(sent["base"], json!("main"));
    assert_eq!(sent["title"], json!("fix: flaky test_should_test_file"));
    assert_eq!(
        sent["body"],
        json!("## Summary\nThe fix, verified 20 times.\n\nCloses #28")
    );
    assert_eq!(auth_of(create[0]), Some(format!("Bearer {SECRET}")));
    let labels = reqs
        .iter()
        .find(|r| r.url.path().ends_with("/labels"))
        .unwrap();
    assert_eq!(body_json(labels), json!({"labels": ["fixci"]}));
    let reviewers = reqs
        .iter()
        .find(|r| r.url.path().ends_with("/requested_reviewers"))
        .unwrap();
    assert_eq!(
        body_json(reviewers),
        json!({"reviewers": ["octocat"], "team_reviewers": ["core"]})
    );

    assert_no_secret_on_disk(repos.dir.path());
}

#[test]
fn a_rejected_push_is_an_error_and_opens_no_pull_request() {
    let server = Server::start();
    let repos = repos();
    push_branch(&repos.work, "origin", BRANCH, None).unwrap();
    // Rewrite the local fix branch: the remote's tip is no longer its ancestor.
    let repo = Repository::open(&repos.work).unwrap();
    let main = repo
        .find_branch("main", git2::BranchType::Local)
        .unwrap()
        .get()
        .peel_to_commit()
        .unwrap();
    let other = commit(&repo, "a.txt", "one, fixed differently\n", &[&main]);
    repo.branch(BRANCH, &repo.find_commit(other).unwrap(), true)
        .unwrap();
    let before = remote_tip(&repos.bare, BRANCH);

    let err = server
        .github()
        .push_and_open_draft_pr(&repos.work, "origin", OWNER, REPO, &pr_request())
        .unwrap_err();
    assert!(matches!(err, ForgeError::Push { .. }), "{err:?}");
    assert!(err.to_string().contains("non-fast-forward"), "{err}");
    assert_eq!(
        remote_tip(&repos.bare, BRANCH),
        before,
        "the remote branch moved"
    );
    assert!(
        server.requests().is_empty(),
        "a request reached GitHub after a failed push"
    );
    assert_secret_hidden(&err);
}

#[test]
fn pushing_needs_an_existing_branch_and_remote() {
    let repos = repos();
    let err = push_branch(&repos.work, "origin", "no-such-branch", None).unwrap_err();
    assert!(
        err.to_string().contains("no local branch `no-such-branch`"),
        "{err}"
    );
    let err = push_branch(&repos.work, "fork", BRANCH, None).unwrap_err();
    assert!(err.to_string().contains("no remote named `fork`"), "{err}");
    // a fork remote is any other remote name
    Repository::open(&repos.work)
        .unwrap()
        .remote("fork", repos.bare.to_str().unwrap())
        .unwrap();
    push_branch(&repos.work, "fork", BRANCH, None).unwrap();
    assert!(remote_tip(&repos.bare, BRANCH).is_some());
    // an ssh remote without a token is refused before any network use, saying why
    Repository::open(&repos.work)
        .unwrap()
        .remote("ssh", "git@github.invalid:o/r.git")
        .unwrap();
    let err = push_branch(&repos.work, "ssh", BRANCH, None).unwrap_err();
    assert!(
        err.to_string().contains("ssh URL") && err.to_string().contains("GITHUB_TOKEN"),
        "{err}"
    );
}

#[test]
fn an_already_open_pull_request_is_returned_and_label_failures_are_warnings() {
    let server = Server::start();
    server.mount(
        Mock::given(method("POST")).and(path("/repos/o/r/pulls")).respond_with(
            ResponseTemplate::new(422).set_body_json(json!({"message": "Validation Failed",
                "errors": [{"resource": "PullRequest", "code": "custom", "message": "A pull request already exists for o:fixci/fix-1."}]})),
        ),
    );
    server.mount(
        Mock::given(method("GET"))
            .and(path("/repos/o/r/pulls"))
            .and(query_param("head", "o:fixci/fix-1"))
            .and(query_param("state", "open"))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                json!([{"number": 7, "html_url": "https://github.com/o/r/pull/7"}]),
            )),
    );
    server.mount(
        Mock::given(method("POST"))
            .and(path("/repos/o/r/issues/7/labels"))
            .respond_with(
                ResponseTemplate::new(403)
                    .set_body_json(json!({"message": "Resource not accessible by integration"})),
            ),
    );
    let req = PrRequest {
        title: "t".into(),
        body: "b".into(),
        head: BRANCH.into(),
        base: "main".into(),
        labels: vec!["fixci".into()],
        ..PrRequest::default()
    };
    let pr = server.github().create_draft_pr("o", "r", &req).unwrap();
    assert_eq!(
        (pr.number, pr.html_url.as_str()),
        (7, "https://github.com/o/r/pull/7")
    );
    assert_eq!(pr.warnings.len(), 2, "{:?}", pr.warnings);
    assert!(pr.warnings[0].contains("already open"));
    assert!(
        pr.warnings[1].contains("`issues: write`"),
        "{}",
        pr.warnings[1]
    );
}

#[test]
fn creating_a_pr_without_a_token_says_how_to_get_one() {
    let server = Server::start();
    server.mount(
        Mock::given(method("POST"))
            .and(path("/repos/o/r/pulls"))
            .respond_with(
                ResponseTemplate::new(401)
                    .set_body_json(json!({"message": "Requires authentication"})),
            ),
    );
    let gh = GitHub::new(&server.uri(), None)
        .unwrap()
        .with_retry_policy(RetryPolicy::fast());
    let req = PrRequest {
        title: "t".into(),
        head: BRANCH.into(),
        base: "main".into(),
        ..PrRequest::default()
    };
    let err = gh.create_draft_pr("o", "r", &req).unwrap_err();
    assert_eq!(err.http_status(), Some(401));
    assert!(err.to_string().contains("no token was found"), "{err}");
    assert_eq!(auth_of(&server.requests()[0]), None);
}

// ---- issues ----

#[test]
fn fetches_an_issue_as_task_text() {
    let Some(fx) = fixtures() else { return };
    let server = Server::start();
    let issue = exchange(
        &fx,
        "issue.json",
        "GET",
        "/repos/PyGithub/PyGithub/issues/28",
    );
    server.mount(recorded(&issue));
    let text = server
        .github()
        .fetch_issue(&IssueRef::parse("PyGithub/PyGithub#28").unwrap())
        .unwrap();
    assert_eq!(text.title, issue["body"]["title"].as_str().unwrap());
    assert_eq!(
        text.body,
        issue["body"]["body"].as_str().unwrap_or_default()
    );
    assert_eq!(
        text.html_url,
        "https://github.com/PyGithub/PyGithub/issues/28"
    );
}

#[test]
fn escalation_comments_on_the_open_issue_with_the_same_signature() {
    let Some(fx) = fixtures() else { return };
    let server = Server::start();
    let signature = "AssertionError in test_should_test_file_with_boolean_return_values";
    let mut same = exchange(
        &fx,
        "issue.json",
        "GET",
        "/repos/PyGithub/PyGithub/issues/28",
    )["body"]
        .clone();
    same["body"] = json!(format!(
        "Earlier attempts.\n\n{}\n",
        signature_marker(signature)
    ));
    let mut other = same.clone();
    other["number"] = json!(29);
    other["body"] = json!(signature_marker("another failure"));
    let mut pull = same.clone();
    pull["number"] = json!(30);
    pull["pull_request"] =
        json!({"url": "https://api.github.com/repos/PyGithub/PyGithub/pulls/30"});
    server.mount(
        Mock::given(method("GET"))
            .and(path("/repos/PyGithub/PyGithub/issues"))
            .and(query_param("labels", ESCALATION_LABEL))
            .and(query_param("state", "open"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([pull, other, same]))),
    );
    server.mount(
        Mock::given(method("POST"))
            .and(path("/repos/PyGithub/PyGithub/issues/28/comments"))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 1, "html_url": "https://github.com/PyGithub/PyGithub/issues/28#issuecomment-1"}))),
    );
    let e = server
        .github()
        .escalate(
            OWNER,
            REPO,
            "fixci: could not fix",
            "Attempt 3 failed: ...",
            signature,
        )
        .unwrap();
    assert!(e.commented_existing);
    assert_eq!(e.issue_number, 28);
    assert!(e.html_url.ends_with("#issuecomment-1"));
    let reqs = server.requests();
    assert!(
        !reqs
            .iter()
            .any(|r| r.method.as_str() == "POST"
                && r.url.path() == "/repos/PyGithub/PyGithub/issues")
    );
    let comment = reqs.iter().find(|r| r.method.as_str() == "POST").unwrap();
    assert_eq!(body_json(comment), json!({"body": "Attempt 3 failed: ..."}));
}

#[test]
fn escalation_opens_a_labelled_issue_when_none_matches() {
    let Some(fx) = fixtures() else { return };
    let server = Server::start();
    server.mount(
        Mock::given(method("GET"))
            .and(path("/repos/PyGithub/PyGithub/issues"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([]))),
    );
    let created = exchange(
        &fx,
        "issue.json",
        "GET",
        "/repos/PyGithub/PyGithub/issues/28",
    )["body"]
        .clone();
    server.mount(
        Mock::given(method("POST"))
            .and(path("/repos/PyGithub/PyGithub/issues"))
            .respond_with(ResponseTemplate::new(201).set_body_json(created)),
    );
    let e = server
        .github()
        .escalate(
            OWNER,
            REPO,
            "fixci: could not fix test_x",
            "History",
            "sig-1",
        )
        .unwrap();
    assert!(!e.commented_existing);
    assert_eq!(e.issue_number, 28);
    let reqs = server.requests();
    let post = reqs.iter().find(|r| r.method.as_str() == "POST").unwrap();
    let sent = body_json(post);
    assert_eq!(sent["labels"], json!([ESCALATION_LABEL]));
    assert_eq!(sent["title"], json!("fixci: could not fix test_x"));
    assert!(
        sent["body"]
            .as_str()
            .unwrap()
            .contains(&signature_marker("sig-1"))
    );
}

#[test]
fn the_token_is_never_offered_to_a_plain_http_remote() {
    let server = Server::start();
    server.mount(
        Mock::given(method("GET"))
            .and(path("/o/r.git/info/refs"))
            .respond_with(
                ResponseTemplate::new(401)
                    .insert_header("WWW-Authenticate", "Basic realm=\"GitHub\""),
            ),
    );
    let repos = repos();
    let url = format!("{}/o/r.git", server.uri());
    Repository::open(&repos.work)
        .unwrap()
        .remote("plain", &url)
        .unwrap();
    let err = push_branch(&repos.work, "plain", BRANCH, Some(&Token::new(SECRET))).unwrap_err();
    assert!(err.to_string().contains("plain `http`"), "{err}");
    assert_secret_hidden(&err);
    let reqs = server.requests();
    assert!(!reqs.is_empty(), "git never reached the server");
    for r in reqs {
        assert_eq!(auth_of(&r), None, "credentials were sent over http");
    }
    assert_no_secret_on_disk(repos.dir.path());
}

#[test]
fn an_expired_signed_log_url_gets_one_fresh_redirect() {
    let server = Server::start();
    mount_run_ok(&server);
    let location = format!("{}/blob/run.zip?sig=old", server.uri());
    server.mount(
        Mock::given(method("GET"))
            .and(path(format!("{}/logs", run_path())))
            .respond_with(ResponseTemplate::new(302).insert_header("Location", location.as_str())),
    );
    server.mount(
        Mock::given(method("GET"))
            .and(path("/blob/run.zip"))
            .respond_with(
                ResponseTemplate::new(403).set_body_string("<Error>AuthenticationFailed</Error>"),
            )
            .up_to_n_times(1)
            .with_priority(1),
    );
    server.mount(
        Mock::given(method("GET"))
            .and(path("/blob/run.zip"))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(small_zip())),
    );
    let dest = tempfile::tempdir().unwrap();
    let fetched = server
        .github()
        .fetch_run_logs(&run_ref(), dest.path())
        .unwrap();
    assert_eq!(fetched.log_files.len(), 1);
    let redirects = server
        .requests()
        .iter()
        .filter(|r| r.url.path() == format!("{}/logs", run_path()))
        .count();
    assert_eq!(redirects, 2);
}

#[test]
fn a_signed_log_url_refused_twice_is_an_error_that_says_so() {
    let server = Server::start();
    mount_run_ok(&server);
    let location = format!("{}/blob/run.zip?sig=old", server.uri());
    server.mount(
        Mock::given(method("GET"))
            .and(path(format!("{}/logs", run_path())))
            .respond_with(ResponseTemplate::new(302).insert_header("Location", location.as_str())),
    );
    server.mount(
        Mock::given(method("GET"))
            .and(path("/blob/run.zip"))
            .respond_with(ResponseTemplate::new(403)),
    );
    let err = server
        .github()
        .fetch_run_logs(&run_ref(), tempfile::tempdir().unwrap().path())
        .unwrap_err();
    let shown = err.to_string();
    assert!(
        shown.contains("expires") && shown.contains("/blob/run.zip") && !shown.contains("sig=old"),
        "{shown}"
    );
}

#[test]
fn an_enterprise_api_root_with_a_path_and_paginated_jobs() {
    let server = Server::start();
    let api = format!("{}/api/v3", server.uri());
    let run = format!("/api/v3{}", run_path());
    server.mount(
        Mock::given(method("GET"))
            .and(path(run.as_str()))
            .respond_with(ResponseTemplate::new(200).set_body_json(minimal_run("completed"))),
    );
    let job = |id: u64, conclusion: &str| {
        json!({"id": id, "name": format!("job {id}"), "status": "completed", "conclusion": conclusion,
               "steps": [{"name": "Run tests", "number": 1, "status": "completed", "conclusion": conclusion}]})
    };
    // page 1 links to page 2 with an absolute URL under the API root, as GitHub does
    let next = format!(
        "<{api}{}/jobs?filter=latest&per_page=100&page=2>; rel=\"next\"",
        run_path()
    );
    server.mount(
        Mock::given(method("GET"))
            .and(path(format!("{run}/jobs")))
            .and(query_param("page", "2"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"total_count": 2, "jobs": [job(2, "failure")]})),
            )
            .with_priority(1),
    );
    server.mount(
        Mock::given(method("GET"))
            .and(path(format!("{run}/jobs")))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("Link", next.as_str())
                    .set_body_json(json!({"total_count": 2, "jobs": [job(1, "success")]})),
            ),
    );
    server.mount(
        Mock::given(method("GET"))
            .and(path(format!(
                "/api/v3/repos/{OWNER}/{REPO}/actions/jobs/2/logs"
            )))
            .respond_with(ResponseTemplate::new(302).insert_header(
                "Location",
                format!("{}/_services/logs/2?sig=x", server.uri()).as_str(),
            )),
    );
    server.mount(
        Mock::given(method("GET"))
            .and(path("/_services/logs/2"))
            .respond_with(
                ResponseTemplate::new(200).set_body_string("FAILED tests/test_a.py::test_b\n"),
            ),
    );
    let run_ref = RunRef::parse(&format!(
        "https://ghe.invalid/{OWNER}/{REPO}/actions/runs/{RUN_ID}"
    ))
    .unwrap();
    assert_eq!(fixci::forge::api_base(Some(&api), &run_ref.web_host), api);
    let gh = GitHub::new(&api, Some(Token::new(SECRET)))
        .unwrap()
        .with_retry_policy(RetryPolicy::fast());
    let dest = tempfile::tempdir().unwrap();
    let fetched = gh.fetch_run_logs(&run_ref, dest.path()).unwrap();
    assert_eq!(fetched.failed_jobs.len(), 1);
    assert_eq!(fetched.failed_jobs[0].name, "job 2");
    assert_eq!(
        fetched.failed_jobs[0].failed_steps,
        vec!["Run tests".to_string()]
    );
    assert_eq!(
        std::fs::read_to_string(&fetched.log_files[0]).unwrap(),
        "FAILED tests/test_a.py::test_b\n"
    );
    for r in server.requests() {
        let expected = if r.url.path().starts_with("/api/v3/") {
            Some(format!("Bearer {SECRET}"))
        } else {
            None
        };
        assert_eq!(auth_of(&r), expected, "{}", r.url);
    }
}

// ---- `fixci run` end to end against the local GitHub server ----

/// Mounts a failed run whose one failed job's log (via the recorded 302) is the real pytest log.
fn mount_failed_run_with_pytest_log(server: &Server, fx: &Path) {
    server.mount(recorded(&exchange(
        fx,
        "workflow-run-failed.json",
        "GET",
        &run_path(),
    )));
    let mut jobs = exchange(
        fx,
        "workflow-run-jobs.json",
        "GET",
        &format!("{}/jobs", run_path()),
    );
    let job = &mut jobs["body"]["jobs"][1];
    job["conclusion"] = json!("failure");
    let job_id = job["id"].as_u64().unwrap();
    server.mount(recorded(&jobs));
    let signed = format!("{}/signed/job-{job_id}.txt?sig=x", server.uri());
    server.mount(
        Mock::given(method("GET"))
            .and(path(format!(
                "/repos/{OWNER}/{REPO}/actions/jobs/{job_id}/logs"
            )))
            .respond_with(ResponseTemplate::new(302).insert_header("Location", signed.as_str())),
    );
    server.mount(
        Mock::given(method("GET"))
            .and(path(format!("/signed/job-{job_id}.txt")))
            .respond_with(
                ResponseTemplate::new(200).set_body_bytes(
                    std::fs::read(fx.join("logs/pytest-step-gitauto.txt")).unwrap(),
                ),
            ),
    );
}

/// A job spec whose input is the local server's run URL.
fn url_job(root: &Path, repo: &Path, server: &Server, mode: &str) -> PathBuf {
    let spec = crate::common::scripted_job(root, repo, mode, json!({}));
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&spec).unwrap()).unwrap();
    v.as_object_mut().unwrap().remove("raw-logs");
    v["url"] = json!(format!(
        "{}/{OWNER}/{REPO}/actions/runs/{RUN_ID}",
        server.uri()
    ));
    std::fs::write(&spec, v.to_string()).unwrap();
    spec
}

fn run_fixci(root: &Path, spec: &Path, server: &Server) -> assert_cmd::assert::Assert {
    crate::common::fixci()
        .current_dir(root)
        .env("GITHUB_API_URL", server.uri())
        .env("GITHUB_TOKEN", SECRET)
        .env("FIXCI_CACHE_DIR", root.join("cache"))
        .args([
            "run",
            spec.to_str().unwrap(),
            "--out",
            root.join("out").to_str().unwrap(),
        ])
        .assert()
}

#[test]
fn fixci_run_with_a_run_url_puts_the_real_failing_test_in_the_prompt() {
    let Some(fx) = fixtures() else { return };
    let server = Server::start();
    mount_failed_run_with_pytest_log(&server, &fx);
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    crate::common::buggy_repo(&repo);
    let spec = url_job(tmp.path(), &repo, &server, "no-repro");
    run_fixci(tmp.path(), &spec, &server).code(1);
    let run = crate::common::run_dir(&tmp.path().join("out"));
    let prompt = std::fs::read_to_string(run.join("stages/reproduce/prompt.md")).unwrap();
    assert!(prompt.contains("utils/files/test_should_test_file.py::TestShouldTestFile::test_should_test_file_with_boolean_return_values"), "{prompt}");
    let seen = std::fs::read_to_string(run.join("stages/reproduce/seen-env.json")).unwrap();
    assert!(!seen.contains("GITHUB_TOKEN") && !seen.contains(SECRET));
    assert_no_secret_on_disk(&run);
}

#[test]
fn fixci_run_with_an_in_progress_run_exits_2_naming_the_status_and_writes_nothing() {
    let Some(fx) = fixtures() else { return };
    let server = Server::start();
    let mut run = exchange(&fx, "workflow-run-failed.json", "GET", &run_path());
    run["body"]["status"] = json!("in_progress");
    run["body"]["conclusion"] = Value::Null;
    server.mount(recorded(&run));
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    crate::common::buggy_repo(&repo);
    let spec = url_job(tmp.path(), &repo, &server, "good");
    let out = run_fixci(tmp.path(), &spec, &server)
        .code(2)
        .get_output()
        .stderr
        .clone();
    let err = String::from_utf8_lossy(&out);
    assert!(err.contains("in_progress"), "{err}");
    assert!(!tmp.path().join("out").exists());
}

/// A local GitHub with a failed run and a PR endpoint, the buggy repository whose `origin` is
/// a bare repository: (server, scratch folder, repository, bare remote). `None` without the
/// fixtures.
fn pr_setup() -> Option<(Server, tempfile::TempDir, PathBuf, PathBuf)> {
    let fx = fixtures()?;
    let server = Server::start();
    mount_failed_run_with_pytest_log(&server, &fx);
    let created = exchange(
        &fx,
        "create-pull.json",
        "POST",
        &format!("/repos/{OWNER}/{REPO}/pulls"),
    );
    server.mount(
        Mock::given(method("POST"))
            .and(path(format!("/repos/{OWNER}/{REPO}/pulls")))
            .respond_with(ResponseTemplate::new(201).set_body_json(created["body"].clone())),
    );
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    crate::common::buggy_repo(&repo);
    let bare = tmp.path().join("remote.git");
    crate::common::git(
        tmp.path(),
        &["init", "-q", "--bare", bare.to_str().unwrap()],
    );
    crate::common::git(&repo, &["remote", "add", "origin", bare.to_str().unwrap()]);
    Some((server, tmp, repo, bare))
}

#[test]
fn fixci_run_pushes_the_fix_then_opens_a_draft_pr_with_the_report_summary() {
    let Some((server, tmp, repo, bare)) = pr_setup() else {
        return;
    };
    let spec = url_job(tmp.path(), &repo, &server, "good");
    run_fixci(tmp.path(), &spec, &server).code(0);
    let run = crate::common::run_dir(&tmp.path().join("out"));
    let r = crate::common::result(&run);
    let branch = r["branch"].as_str().unwrap().to_string();
    assert_eq!(r["pr"]["mode"], "opened", "{r}");
    // The push reached the remote before the PR request.
    let remote_tip = crate::common::git(&bare, &["rev-parse", &format!("refs/heads/{branch}")]);
    assert_eq!(remote_tip.trim(), r["commit"].as_str().unwrap());
    let reqs = server.requests();
    let pr = reqs
        .iter()
        .find(|q| q.method.as_str() == "POST" && q.url.path().ends_with("/pulls"))
        .expect("a PR request");
    let body: Value = serde_json::from_slice(&pr.body).unwrap();
    assert_eq!(body["draft"], true);
    assert_eq!(body["head"], branch.as_str());
    assert_eq!(body["base"], "main");
    assert!(
        body["body"].as_str().unwrap().contains("## Summary"),
        "{body}"
    );
    assert_eq!(auth_of(pr), Some(format!("Bearer {SECRET}")));
    assert_no_secret_on_disk(&run);
}

#[test]
fn fixci_logs_with_a_run_url_prints_the_real_failing_test() {
    let Some(fx) = fixtures() else { return };
    let server = Server::start();
    mount_failed_run_with_pytest_log(&server, &fx);
    let out = crate::common::fixci()
        .env("GITHUB_TOKEN", SECRET)
        .args([
            "logs",
            "--json",
            "--api-url",
            &server.uri(),
            &format!("https://github.com/{OWNER}/{REPO}/actions/runs/{RUN_ID}"),
        ])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        v["failures"][0]["test"],
        "utils/files/test_should_test_file.py::TestShouldTestFile::test_should_test_file_with_boolean_return_values"
    );
    assert!(!String::from_utf8_lossy(&out).contains(SECRET));
}

#[test]
fn exhausted_attempts_open_an_escalation_issue_with_the_history_when_asked() {
    let Some(fx) = fixtures() else { return };
    let server = Server::start();
    mount_failed_run_with_pytest_log(&server, &fx);
    server.mount(
        Mock::given(method("GET"))
            .and(path(format!("/repos/{OWNER}/{REPO}/issues")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([]))),
    );
    server.mount(
        Mock::given(method("POST"))
            .and(path(format!("/repos/{OWNER}/{REPO}/issues")))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({"number": 77, "title": "t", "body": "b", "html_url": "https://github.com/PyGithub/PyGithub/issues/77"}))),
    );
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    crate::common::buggy_repo(&repo);
    let spec = url_job(tmp.path(), &repo, &server, "never");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&spec).unwrap()).unwrap();
    v["max-attempts"] = json!(2);
    v["pr"] = json!({"escalate": true});
    std::fs::write(&spec, v.to_string()).unwrap();
    run_fixci(tmp.path(), &spec, &server).code(1);
    let run = crate::common::run_dir(&tmp.path().join("out"));
    assert_eq!(crate::common::result(&run)["status"], "escalated");
    let reqs = server.requests();
    let post = reqs
        .iter()
        .find(|q| q.method.as_str() == "POST" && q.url.path().ends_with("/issues"))
        .expect("an escalation issue");
    let body: Value = serde_json::from_slice(&post.body).unwrap();
    assert_eq!(body["labels"], json!(["fixci-escalation"]));
    let text = body["body"].as_str().unwrap();
    assert!(
        text.contains("| 1 | command | - | failed |")
            && text.contains("| 2 | command | - | failed |"),
        "{text}"
    );
    assert!(
        !reqs.iter().any(|q| q.url.path().ends_with("/pulls")),
        "no PR for an escalated run"
    );
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(report.contains("opened escalation issue #77"), "{report}");
}

/// A plain HTTP listener standing in for another host: counts connections and keeps what they
/// sent.
fn other_host() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::Read;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let mut conn = conn;
            conn.set_read_timeout(Some(std::time::Duration::from_secs(2)))
                .ok();
            let mut buf = vec![0u8; 8192];
            let n = conn.read(&mut buf).unwrap_or(0);
            log.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            // No answer: the connection is dropped.
        }
    });
    (format!("http://127.0.0.1:{port}/{OWNER}/{REPO}.git"), seen)
}

#[test]
fn a_pushurl_the_agent_sets_does_not_move_the_push_and_the_token_never_leaves_for_it() {
    let Some((server, tmp, repo, bare)) = pr_setup() else {
        return;
    };
    let (other, seen) = other_host();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let global = home.join(".gitconfig");
    let spec = url_job(tmp.path(), &repo, &server, "good");
    crate::private_clone::point_at_attack(
        &spec,
        tmp.path(),
        "pushurl",
        &[&other, global.to_str().unwrap()],
    );
    crate::common::fixci()
        .current_dir(tmp.path())
        .env("GITHUB_API_URL", server.uri())
        .env("GITHUB_TOKEN", SECRET)
        .env("FIXCI_CACHE_DIR", tmp.path().join("cache"))
        .env("HOME", &home)
        .env_remove("XDG_CONFIG_HOME")
        .args([
            "run",
            spec.to_str().unwrap(),
            "--out",
            tmp.path().join("out").to_str().unwrap(),
        ])
        .assert()
        .code(0);
    let run = crate::common::run_dir(&tmp.path().join("out"));
    let rec = crate::private_clone::attack_record(&run);
    assert_eq!(rec["clone-config"], "done", "{rec}");
    let r = crate::common::result(&run);
    assert_eq!(r["pr"]["mode"], "opened", "{r}");
    // The push went to the URL recorded before the agent ran.
    let branch = r["branch"].as_str().unwrap();
    let tip = crate::common::git(&bare, &["rev-parse", &format!("refs/heads/{branch}")]);
    assert_eq!(tip.trim(), r["commit"].as_str().unwrap());
    // The other host never heard from fixci, let alone its token.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let seen = seen.lock().unwrap();
    assert!(seen.is_empty(), "requests reached the other host: {seen:?}");
    assert_no_secret_on_disk(&run);
}

#[test]
fn a_push_url_rewritten_by_git_config_after_the_agent_is_refused() {
    let repos = repos();
    let (other, seen) = other_host();
    let url = repos.bare.to_str().unwrap().to_string();
    // What an agent could add to a config fixci's libgit2 reads: the recorded URL rewritten.
    let repo = Repository::open(&repos.work).unwrap();
    repo.config()
        .unwrap()
        .set_str(&format!("url.{}.pushInsteadOf", other), &url)
        .unwrap();
    let err = fixci::forge::push_to_url(&repos.work, &url, BRANCH, Some(&Token::new(SECRET)))
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("rewrites the recorded push URL"), "{msg}");
    assert!(!msg.contains(SECRET));
    assert!(remote_tip(&repos.bare, BRANCH).is_none());
    assert!(seen.lock().unwrap().is_empty());
    // Without the rewrite the same call pushes.
    repo.config()
        .unwrap()
        .remove(&format!("url.{}.pushInsteadOf", other))
        .unwrap();
    fixci::forge::push_to_url(&repos.work, &url, BRANCH, Some(&Token::new(SECRET))).unwrap();
    assert!(remote_tip(&repos.bare, BRANCH).is_some());
}
