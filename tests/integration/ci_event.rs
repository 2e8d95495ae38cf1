//! `fixci run --event` end to end: the real payloads of `tests/data/events/` (fields edited per
//! test, as their README says), a local GitHub API (wiremock), and real git repositories: the
//! CI's checkout `work` whose `origin` is a local bare repository that fixci fetches from and
//! pushes to.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, Request, ResponseTemplate};

use crate::common::{CI_LOG, git};

const SECRET: &str = "ghp_fixciEVENTsecret0123456789abcdef";
const RUN_ID: u64 = 289782451;
const NEXT_RUN: u64 = 289782999;
const BRANCH: &str = "fixci/mean";

use crate::forge::Server;

/// What `Server` received, by request.
trait Received {
    fn sent(&self, verb: &str, p: &str) -> Vec<Value>;
    fn writes(&self) -> Vec<String>;
}

impl Received for Server {
    /// The bodies of the requests `verb path`.
    fn sent(&self, verb: &str, p: &str) -> Vec<Value> {
        self.requests()
            .iter()
            .filter(|r| r.method.as_str() == verb && r.url.path() == p)
            .map(|r| serde_json::from_slice(&r.body).unwrap_or(Value::Null))
            .collect()
    }

    fn writes(&self) -> Vec<String> {
        self.requests()
            .iter()
            .filter(|r| r.method.as_str() != "GET")
            .map(|r| format!("{} {}", r.method, r.url.path()))
            .collect()
    }
}

/// A failed run `id` whose one failed job's log is the buggy repository's unittest failure.
fn mount_failed_run(s: &Server, id: u64, sha: &str) {
    mount_failed_run_with(s, id, sha, CI_LOG);
}

/// A failed run `id` whose one failed job's log is `log`.
fn mount_failed_run_with(s: &Server, id: u64, sha: &str, log: &str) {
    s.mount(
        Mock::given(method("GET"))
            .and(path(format!("/repos/o/r/actions/runs/{id}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "id": id, "status": "completed", "conclusion": "failure", "head_sha": sha,
                "head_branch": "main", "html_url": format!("https://github.com/o/r/actions/runs/{id}")
            }))),
    );
    let job = id + 1;
    s.mount(
        Mock::given(method("GET"))
            .and(path(format!("/repos/o/r/actions/runs/{id}/jobs")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "total_count": 1,
                "jobs": [{"id": job, "name": "test", "conclusion": "failure",
                          "steps": [{"name": "Run python -m unittest", "conclusion": "failure"}]}]
            }))),
    );
    let signed = format!("{}/signed/job-{job}.txt?sig=x", s.mock.uri());
    s.mount(
        Mock::given(method("GET"))
            .and(path(format!("/repos/o/r/actions/jobs/{job}/logs")))
            .respond_with(ResponseTemplate::new(302).insert_header("Location", signed.as_str())),
    );
    s.mount(
        Mock::given(method("GET"))
            .and(path(format!("/signed/job-{job}.txt")))
            .respond_with(ResponseTemplate::new(200).set_body_string(log.to_string())),
    );
}

/// The PR of the fix branch, as GitHub lists and serves it.
fn pr_json(draft: bool) -> Value {
    json!({
        "number": 7, "html_url": "https://github.com/o/r/pull/7", "node_id": "PR_kwDOfixci7",
        "draft": draft, "state": "open", "body": "## Summary\n",
        "head": {"ref": BRANCH, "sha": "0"}, "base": {"ref": "main", "sha": "0"}
    })
}

fn mount_writes(s: &Server, pr_open: bool) {
    let list = if pr_open {
        json!([pr_json(true)])
    } else {
        json!([])
    };
    s.mount(
        Mock::given(method("GET"))
            .and(path("/repos/o/r/pulls"))
            .respond_with(ResponseTemplate::new(200).set_body_json(list)),
    );
    s.mount(
        Mock::given(method("GET"))
            .and(path("/repos/o/r/pulls/7"))
            .respond_with(ResponseTemplate::new(200).set_body_json(pr_json(true))),
    );
    s.mount(
        Mock::given(method("POST"))
            .and(path("/repos/o/r/pulls"))
            .respond_with(
                ResponseTemplate::new(201).set_body_json(
                    json!({"number": 7, "html_url": "https://github.com/o/r/pull/7"}),
                ),
            ),
    );
    for n in [1, 7] {
        s.mount(
            Mock::given(method("POST"))
                .and(path(format!("/repos/o/r/issues/{n}/comments")))
                .respond_with(ResponseTemplate::new(201).set_body_json(
                    json!({"html_url": format!("https://github.com/o/r/issues/{n}#issuecomment-1")}),
                )),
        );
    }
    s.mount(
        Mock::given(method("POST"))
            .and(path("/graphql"))
            .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"data": {"markPullRequestReadyForReview": {"pullRequest": {"isDraft": false}}}}),
        )),
    );
}

/// The CI's checkout of `o/r` (the buggy repository) with `origin` a local bare repository.
struct Repos {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    work: PathBuf,
    bare: PathBuf,
}

fn repos() -> Repos {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let work = root.join("work");
    std::fs::create_dir_all(&work).unwrap();
    crate::common::buggy_repo(&work);
    let bare = root.join("origin.git");
    git(&root, &["init", "-q", "--bare", bare.to_str().unwrap()]);
    git(&work, &["remote", "add", "origin", bare.to_str().unwrap()]);
    git(&work, &["push", "-q", "origin", "main"]);
    std::fs::write(root.join("agent.py"), crate::common::AGENT_PY).unwrap();
    Repos {
        _tmp: tmp,
        root,
        work,
        bare,
    }
}

impl Repos {
    /// A job spec beside the checkout whose agent is the scripted one in `mode`.
    fn spec(&self, mode: &str, extra: Value) -> PathBuf {
        let mut v = json!({
            "agent": {"command": ["python3", self.root.join("agent.py").to_str().unwrap(), mode]},
            "budgets": {"reproduce": "60s", "fix": "60s"},
            "sandbox": "none",
        });
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        let p = self.root.join("fixci-spec.json");
        std::fs::write(&p, v.to_string()).unwrap();
        p
    }

    /// Pushes `BRANCH` to origin: from main, one commit per entry, `(author, attempt)`; an
    /// author of `fixci` commits as fixci with the trailers. Each commit edits the docstring,
    /// so the bug stays. Returns the tip.
    fn fix_branch(&self, commits: &[(&str, Option<u32>)]) -> String {
        git(&self.work, &["checkout", "-q", "-b", BRANCH]);
        for (i, (who, attempt)) in commits.iter().enumerate() {
            let f = self.work.join("mathlib/stats.py");
            let src = std::fs::read_to_string(&f).unwrap();
            std::fs::write(&f, format!("{src}# work {i}\n")).unwrap();
            let mut msg = format!("attempt work {i}\n");
            if let Some(a) = attempt {
                msg.push_str(&format!(
                    "\nFixci-Attempt: {a}\nFixci-Run: https://github.com/o/r/actions/runs/{RUN_ID}\n"
                ));
            }
            let (name, email) = if *who == "fixci" {
                ("fixci", "fixci@users.noreply.github.com")
            } else {
                ("Jane Doe", "jane@example.com")
            };
            git(
                &self.work,
                &[
                    "-c",
                    &format!("user.name={name}"),
                    "-c",
                    &format!("user.email={email}"),
                    "commit",
                    "-qam",
                    &msg,
                    "--author",
                    &format!("{name} <{email}>"),
                ],
            );
        }
        git(&self.work, &["push", "-q", "origin", BRANCH]);
        let tip = git(&self.work, &["rev-parse", "HEAD"]).trim().to_string();
        git(&self.work, &["checkout", "-q", "main"]);
        git(&self.work, &["branch", "-q", "-D", BRANCH]);
        tip
    }

    fn remote_tip(&self, branch: &str) -> Option<String> {
        let out = std::process::Command::new("git")
            .args([
                "rev-parse",
                "--verify",
                "-q",
                &format!("refs/heads/{branch}"),
            ])
            .current_dir(&self.bare)
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

const RUN_EVENT: &str = include_str!("../data/events/workflow_run.completed.json");
const COMMENT_EVENT: &str = include_str!("../data/events/issue_comment.created.json");
const REVIEW_EVENT: &str = include_str!("../data/events/pull_request_review.submitted.json");

/// A payload of `text` moved to repository `o/r`, edited by `edit`, written beside the repos.
fn event(r: &Repos, text: &str, edit: impl FnOnce(&mut Value)) -> PathBuf {
    let mut v: Value = serde_json::from_str(text).unwrap();
    v["repository"]["full_name"] = json!("o/r");
    v["repository"]["html_url"] = json!("https://github.com/o/r");
    v["repository"]["default_branch"] = json!("main");
    if v.get("workflow_run").is_some() {
        v["workflow_run"]["head_repository"]["full_name"] = json!("o/r");
    }
    edit(&mut v);
    let p = r.root.join("event.json");
    std::fs::write(&p, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    p
}

/// A completed `workflow_run` on `branch` at `sha` with `conclusion`, run `id`.
fn run_event(r: &Repos, conclusion: &str, branch: &str, sha: &str, id: u64) -> PathBuf {
    event(r, RUN_EVENT, |v| {
        let w = &mut v["workflow_run"];
        w["conclusion"] = json!(conclusion);
        w["head_branch"] = json!(branch);
        w["head_sha"] = json!(sha);
        w["id"] = json!(id);
        w["html_url"] = json!(format!("https://github.com/o/r/actions/runs/{id}"));
    })
}

struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
    output: String,
    summary: String,
}

fn fixci_event(r: &Repos, s: &Server, spec: Option<&Path>, event: &Path, extra: &[&str]) -> Ran {
    let output = r.root.join("github_output");
    let summary = r.root.join("step_summary");
    let _ = std::fs::remove_file(&output);
    let _ = std::fs::remove_file(&summary);
    let mut cmd = crate::common::fixci();
    cmd.current_dir(&r.work)
        .env("GITHUB_API_URL", s.mock.uri())
        .env("GITHUB_TOKEN", SECRET)
        .env("GITHUB_OUTPUT", &output)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env_remove("GITHUB_EVENT_NAME")
        .env("FIXCI_CACHE_DIR", r.root.join("cache"))
        .arg("run");
    if let Some(p) = spec {
        cmd.arg(p);
    }
    cmd.arg("--event")
        .arg(event)
        .arg("--out")
        .arg(r.root.join("out"))
        .args(extra);
    let out = cmd.output().unwrap();
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        output: std::fs::read_to_string(&output).unwrap_or_default(),
        summary: std::fs::read_to_string(&summary).unwrap_or_default(),
    }
}

fn message(repo: &Path, rev: &str) -> String {
    git(repo, &["log", "-1", "--format=%B", rev])
}

#[test]
fn case_1_a_failure_on_main_opens_a_fix_branch_with_attempt_1_and_a_draft_pr() {
    let r = repos();
    let s = Server::start();
    let head = git(&r.work, &["rev-parse", "HEAD"]).trim().to_string();
    mount_failed_run(&s, RUN_ID, &head);
    mount_writes(&s, false);
    let spec = r.spec("good", json!({}));
    let ev = run_event(&r, "failure", "main", &head, RUN_ID);
    let ran = fixci_event(&r, &s, Some(&spec), &ev, &[]);
    assert_eq!(ran.code, 0, "{}\n{}", ran.stdout, ran.stderr);
    assert!(ran.stdout.contains("case 1"), "{}", ran.stdout);
    let branch = ran
        .output
        .lines()
        .find_map(|l| l.strip_prefix("branch="))
        .unwrap()
        .to_string();
    assert!(branch.starts_with("fixci/"), "{}", ran.output);
    assert!(ran.output.contains("status=success"), "{}", ran.output);
    assert!(
        ran.output.contains("pr-url=https://github.com/o/r/pull/7"),
        "{}",
        ran.output
    );
    assert!(ran.summary.contains("case 1"), "{}", ran.summary);
    // The fix reached the remote with its trailers, on top of main.
    let tip = r.remote_tip(&branch).expect("the fix branch was pushed");
    let msg = message(&r.bare, &tip);
    assert!(msg.contains("Fixci-Attempt: 1"), "{msg}");
    assert!(
        msg.contains(&format!(
            "Fixci-Run: https://github.com/o/r/actions/runs/{RUN_ID}"
        )),
        "{msg}"
    );
    assert_eq!(
        git(&r.bare, &["rev-parse", &format!("{tip}^")]).trim(),
        head
    );
    let prs = s.sent("POST", "/repos/o/r/pulls");
    assert_eq!(prs.len(), 1);
    assert_eq!(prs[0]["draft"], true);
    let body = prs[0]["body"].as_str().unwrap();
    let block = fixci::ci_event::PrBlock::find(body).expect("the hidden block");
    assert_eq!(block.branch, branch);
    assert_eq!(block.max_attempts, 3);
    assert!(block.original_run.unwrap().ends_with(&RUN_ID.to_string()));
}

#[test]
fn case_2_a_failure_on_the_fix_branch_makes_the_next_attempt_on_top_of_it() {
    let r = repos();
    let s = Server::start();
    let tip = r.fix_branch(&[("fixci", Some(1))]);
    mount_failed_run(&s, NEXT_RUN, &tip);
    mount_writes(&s, true);
    let spec = r.spec("good", json!({}));
    let ev = run_event(&r, "failure", BRANCH, &tip, NEXT_RUN);
    let ran = fixci_event(&r, &s, Some(&spec), &ev, &[]);
    assert_eq!(ran.code, 0, "{}\n{}", ran.stdout, ran.stderr);
    assert!(ran.stdout.contains("attempt 2 of 3"), "{}", ran.stdout);
    let new_tip = r.remote_tip(BRANCH).unwrap();
    assert_ne!(new_tip, tip);
    assert_eq!(
        git(&r.bare, &["rev-parse", &format!("{new_tip}^")]).trim(),
        tip
    );
    let msg = message(&r.bare, &new_tip);
    assert!(msg.contains("Fixci-Attempt: 2"), "{msg}");
    assert!(msg.contains(&format!("runs/{NEXT_RUN}")), "{msg}");
    // No second PR: the existing one is told.
    assert!(s.sent("POST", "/repos/o/r/pulls").is_empty());
    let notes = s.sent("POST", "/repos/o/r/issues/7/comments");
    assert_eq!(notes.len(), 1, "{:?}", s.writes());
    assert!(notes[0]["body"].as_str().unwrap().contains("attempt 2"));
    assert!(
        ran.output.contains(&format!("branch={BRANCH}")),
        "{}",
        ran.output
    );
}

#[test]
fn case_2_stops_when_a_person_committed_on_the_fix_branch() {
    let r = repos();
    let s = Server::start();
    let tip = r.fix_branch(&[("fixci", Some(1)), ("jane", None)]);
    mount_writes(&s, true);
    let spec = r.spec("good", json!({}));
    let ev = run_event(&r, "failure", BRANCH, &tip, NEXT_RUN);
    let ran = fixci_event(&r, &s, Some(&spec), &ev, &[]);
    assert_eq!(ran.code, 0, "{}\n{}", ran.stdout, ran.stderr);
    assert!(ran.output.contains("status=stopped"), "{}", ran.output);
    let notes = s.sent("POST", "/repos/o/r/issues/7/comments");
    assert_eq!(notes.len(), 1);
    assert!(
        notes[0]["body"].as_str().unwrap().contains("Jane Doe"),
        "{}",
        notes[0]
    );
    assert_eq!(r.remote_tip(BRANCH).unwrap(), tip, "nothing was pushed");
    assert!(!r.root.join("out").exists(), "no run was started");
}

#[test]
fn case_3_a_green_fix_branch_gets_a_comment_or_is_marked_ready_when_the_spec_says() {
    let r = repos();
    let s = Server::start();
    let tip = r.fix_branch(&[("fixci", Some(1))]);
    mount_writes(&s, true);
    let ev = run_event(&r, "success", BRANCH, &tip, NEXT_RUN);
    let ran = fixci_event(&r, &s, None, &ev, &[]);
    assert_eq!(ran.code, 0, "{}\n{}", ran.stdout, ran.stderr);
    assert!(ran.stdout.contains("case 3"), "{}", ran.stdout);
    assert!(s.sent("POST", "/graphql").is_empty());
    let notes = s.sent("POST", "/repos/o/r/issues/7/comments");
    assert!(notes[0]["body"].as_str().unwrap().contains("CI is green"));
    assert!(ran.output.contains("status=finished"), "{}", ran.output);
    // `fixci.toml` at the repository root asks for ready-on-green.
    std::fs::write(r.work.join("fixci.toml"), "[pr]\nready-on-green = true\n").unwrap();
    let ran = fixci_event(&r, &s, None, &ev, &[]);
    assert_eq!(ran.code, 0, "{}\n{}", ran.stdout, ran.stderr);
    let ready = s.sent("POST", "/graphql");
    assert_eq!(ready.len(), 1);
    assert_eq!(ready[0]["variables"]["id"], "PR_kwDOfixci7");
}

#[test]
fn case_4_a_green_normal_branch_does_nothing_and_calls_nothing() {
    let r = repos();
    let s = Server::start();
    let head = git(&r.work, &["rev-parse", "HEAD"]).trim().to_string();
    let ev = run_event(&r, "success", "main", &head, RUN_ID);
    let ran = fixci_event(&r, &s, None, &ev, &[]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(ran.stdout.contains("case 4"), "{}", ran.stdout);
    assert!(ran.output.contains("status=ignored"), "{}", ran.output);
    assert!(s.requests().is_empty());
}

/// The open issues labelled `fixci-escalation`, starting with `seed`, as GitHub keeps them: a
/// created issue (numbered 9 and up, in the shape of the comment payload's `issue`, a real
/// one) is listed from then on.
fn mount_escalations(s: &Server, seed: Vec<Value>) {
    let filed = std::sync::Arc::new(std::sync::Mutex::new(seed));
    let listed = filed.clone();
    s.mount(
        Mock::given(method("GET"))
            .and(path("/repos/o/r/issues"))
            .and(query_param("labels", "fixci-escalation"))
            .respond_with(move |_: &Request| {
                ResponseTemplate::new(200)
                    .set_body_json(Value::Array(listed.lock().unwrap().clone()))
            }),
    );
    s.mount(
        Mock::given(method("POST"))
            .and(path("/repos/o/r/issues"))
            .respond_with(move |q: &Request| {
                let b: Value = serde_json::from_slice(&q.body).unwrap();
                let ev: Value = serde_json::from_str(COMMENT_EVENT).unwrap();
                let mut issue = ev["issue"].clone();
                issue.as_object_mut().unwrap().remove("pull_request");
                let n = 9 + filed.lock().unwrap().len();
                issue["number"] = json!(n);
                issue["title"] = b["title"].clone();
                issue["body"] = b["body"].clone();
                issue["labels"] = json!([{"name": "fixci-escalation"}]);
                issue["html_url"] = json!(format!("https://github.com/o/r/issues/{n}"));
                filed.lock().unwrap().push(issue.clone());
                ResponseTemplate::new(201).set_body_json(issue)
            }),
    );
}

#[test]
fn case_5_the_last_attempt_failing_opens_one_escalation_issue_never_a_second() {
    let r = repos();
    let s = Server::start();
    let tip = r.fix_branch(&[("fixci", Some(1)), ("fixci", Some(2)), ("fixci", Some(3))]);
    mount_writes(&s, true);
    mount_escalations(&s, Vec::new());
    let ev = run_event(&r, "failure", BRANCH, &tip, NEXT_RUN);
    let ran = fixci_event(&r, &s, None, &ev, &[]);
    assert_eq!(ran.code, 1, "{}\n{}", ran.stdout, ran.stderr);
    assert!(ran.stdout.contains("case 5"), "{}", ran.stdout);
    let issues = s.sent("POST", "/repos/o/r/issues");
    assert_eq!(issues.len(), 1);
    assert_eq!(issues[0]["labels"], json!(["fixci-escalation"]));
    assert!(
        issues[0]["body"]
            .as_str()
            .unwrap()
            .contains(&format!("runs/{NEXT_RUN}"))
    );
    // The same branch failing again: no second issue, no comment on it.
    let ran = fixci_event(&r, &s, None, &ev, &[]);
    assert_eq!(ran.code, 1, "{}\n{}", ran.stdout, ran.stderr);
    assert!(ran.stdout.contains("already escalated"), "{}", ran.stdout);
    assert_eq!(s.sent("POST", "/repos/o/r/issues").len(), 1);
    assert!(s.sent("POST", "/repos/o/r/issues/9/comments").is_empty());
    assert!(!r.root.join("out").exists(), "no run was started");
}

#[test]
fn a_fixci_comment_from_someone_without_write_access_gets_a_polite_refusal() {
    let r = repos();
    let s = Server::start();
    mount_writes(&s, false);
    let ev = event(&r, COMMENT_EVENT, |v| {
        v["comment"]["body"] = json!("/fixci please fix the build");
        v["comment"]["author_association"] = json!("CONTRIBUTOR");
    });
    let ran = fixci_event(&r, &s, None, &ev, &[]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(ran.output.contains("status=refused"), "{}", ran.output);
    let notes = s.sent("POST", "/repos/o/r/issues/1/comments");
    assert_eq!(notes.len(), 1);
    assert!(notes[0]["body"].as_str().unwrap().contains("write access"));
    assert_eq!(s.writes().len(), 1, "{:?}", s.writes());
    assert!(!r.root.join("out").exists());
}

#[test]
fn a_review_asking_for_changes_becomes_the_next_attempt_with_its_comments_as_feedback() {
    let r = repos();
    let s = Server::start();
    let tip = r.fix_branch(&[("fixci", Some(1))]);
    mount_failed_run(&s, RUN_ID, &tip);
    mount_writes(&s, true);
    s.mount(
        Mock::given(method("GET"))
            .and(path("/repos/o/r/pulls/7/reviews/237895671/comments"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([
                {"path": "mathlib/stats.py", "line": 3, "body": "Divide by len(xs), not len - 1."}
            ]))),
    );
    let spec = r.spec("good", json!({}));
    let ev = event(&r, REVIEW_EVENT, |v| {
        v["review"]["state"] = json!("changes_requested");
        v["review"]["body"] = json!("Please keep the public signature of mean.");
        v["pull_request"]["number"] = json!(7);
        v["pull_request"]["head"]["ref"] = json!(BRANCH);
    });
    let ran = fixci_event(&r, &s, Some(&spec), &ev, &[]);
    assert_eq!(ran.code, 0, "{}\n{}", ran.stdout, ran.stderr);
    assert!(
        ran.stdout.contains("review by @Codertocat"),
        "{}",
        ran.stdout
    );
    let new_tip = r.remote_tip(BRANCH).unwrap();
    assert_eq!(
        git(&r.bare, &["rev-parse", &format!("{new_tip}^")]).trim(),
        tip
    );
    assert!(message(&r.bare, &new_tip).contains("Fixci-Attempt: 2"));
    // The fix agent saw the review and its line comment.
    let run = crate::common::run_dir(&r.root.join("out"));
    let prompt = std::fs::read_to_string(run.join("stages/fix/attempt-1/prompt.md"))
        .or_else(|_| std::fs::read_to_string(run.join("stages/reproduce/prompt.md")))
        .unwrap();
    assert!(
        prompt.contains("Please keep the public signature of mean."),
        "{prompt}"
    );
    assert!(
        prompt.contains("mathlib/stats.py:3: Divide by len(xs)"),
        "{prompt}"
    );
}

#[test]
fn a_dry_run_prints_the_case_and_the_plan_and_writes_nothing() {
    let r = repos();
    let s = Server::start();
    let tip = r.fix_branch(&[("fixci", Some(1))]);
    mount_writes(&s, true);
    let ev = run_event(&r, "failure", BRANCH, &tip, NEXT_RUN);
    let ran = fixci_event(&r, &s, None, &ev, &["--dry-run"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(ran.stdout.contains("case 2"), "{}", ran.stdout);
    assert!(
        ran.stdout.contains("attempt 2 of 3 on `fixci/mean`"),
        "{}",
        ran.stdout
    );
    assert!(s.writes().is_empty(), "{:?}", s.writes());
    assert!(ran.output.is_empty() && ran.summary.is_empty());
    assert!(!r.root.join("out").exists());
}

#[test]
fn a_bad_payload_or_configuration_exits_2_naming_the_file() {
    let r = repos();
    let s = Server::start();
    let ev = r.root.join("event.json");
    std::fs::write(&ev, "{\"workflow_run\": {\"id\": 1}}").unwrap();
    let ran = fixci_event(&r, &s, None, &ev, &[]);
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    assert!(
        ran.stderr.contains("event.json") && ran.stderr.contains("/workflow_run"),
        "{}",
        ran.stderr
    );
    let head = git(&r.work, &["rev-parse", "HEAD"]).trim().to_string();
    let ev = run_event(&r, "success", "main", &head, RUN_ID);
    std::fs::write(r.work.join("fixci.json"), "{\"max-attempts\": 0}").unwrap();
    let ran = fixci_event(&r, &s, None, &ev, &[]);
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    assert!(
        ran.stderr.contains("fixci.json") && ran.stderr.contains("/max-attempts"),
        "{}",
        ran.stderr
    );
    assert!(s.requests().is_empty() && ran.output.is_empty());
}

/// The scripted agent of `mode` that then reports, as claude's JSON result does, a cost of
/// $0.45 and 120 tokens per invocation.
const COSTLY_PY: &str = r#"
import json, os, runpy, sys
script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "agent.py")
sys.argv = [script, sys.argv[1]]
runpy.run_path(script, run_name="__main__")
print(json.dumps({"type": "result", "subtype": "success", "is_error": False, "result": "done",
                  "total_cost_usd": 0.45, "usage": {"input_tokens": 100, "output_tokens": 20}}))
"#;

#[test]
fn the_cost_budget_stops_the_attempt_ladder_before_an_invocation_and_passes_the_rest_on() {
    let env = crate::common::test_env();
    let spec = crate::common::scripted_job(&env.root, &env.repo, "never", json!({}));
    std::fs::write(env.root.join("costly.py"), COSTLY_PY).unwrap();
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&spec).unwrap()).unwrap();
    v["agent"] = json!({"command": ["python3", "costly.py", "never"], "result": "claude-json"});
    v["max-attempts"] = json!(3);
    v["budgets"]["cost-usd"] = json!(1.0);
    std::fs::write(&spec, v.to_string()).unwrap();
    let out = crate::common::fixci()
        .current_dir(&env.root)
        .args([
            "run",
            spec.to_str().unwrap(),
            "--out",
            env.out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = crate::common::run_dir(&env.out);
    let r = crate::common::result(&run);
    assert_eq!(r["status"], "failed", "{r}");
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .starts_with("cost budget spent"),
        "{r}"
    );
    // reproduce ($0.45) and attempt 1 ($0.90) ran; attempt 2 got the $0.10 left; attempt 3
    // never started an agent.
    let seen = |dir: &str| -> Option<Value> {
        std::fs::read_to_string(run.join(dir).join("seen-env.json"))
            .ok()
            .map(|t| serde_json::from_str(&t).unwrap())
    };
    assert_eq!(
        seen("stages/reproduce").unwrap()["FIXCI_BUDGET_USD"],
        "1.0000"
    );
    assert_eq!(
        seen("stages/fix/attempt-1").unwrap()["FIXCI_BUDGET_USD"],
        "0.5500"
    );
    assert_eq!(
        seen("stages/fix/attempt-2").unwrap()["FIXCI_BUDGET_USD"],
        "0.1000"
    );
    assert!(seen("stages/fix/attempt-3").is_none());
}

/// The YAML blocks of `docs/github-actions.md` that are workflows.
fn example_workflows() -> Vec<String> {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/github-actions.md"),
    )
    .unwrap();
    doc.split("```yaml\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .filter(|b| b.starts_with("name:"))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_action_and_every_example_workflow_pass_actionlint() {
    let workflows = example_workflows();
    assert_eq!(workflows.len(), 3, "heal, comments, reviews");
    for w in &workflows {
        assert!(
            w.contains("concurrency:") && w.contains("actions: read"),
            "{w}"
        );
        assert!(w.contains("uses: your-org/fixci@main"), "{w}");
    }
    let Some(al) = crate::common::validator("actionlint") else {
        return;
    };
    // A repository whose own action is ours: `uses: ./` makes actionlint read `action.yml` and
    // check every input the examples give against it.
    let tmp = tempfile::tempdir().unwrap();
    let wf = tmp.path().join(".github/workflows");
    std::fs::create_dir_all(&wf).unwrap();
    git(tmp.path(), &["init", "-q"]);
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("action.yml"),
        tmp.path().join("action.yml"),
    )
    .unwrap();
    let lint = || {
        std::process::Command::new(&al)
            .arg("-no-color")
            .current_dir(tmp.path())
            .output()
            .unwrap()
    };
    for (i, w) in workflows.iter().enumerate() {
        std::fs::write(
            wf.join(format!("example-{i}.yml")),
            w.replace("your-org/fixci@main", "./"),
        )
        .unwrap();
    }
    let out = lint();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // It does check the inputs against action.yml: a misspelt one is refused.
    std::fs::write(
        wf.join("example-0.yml"),
        workflows[0]
            .replace("your-org/fixci@main", "./")
            .replace("max-attempts:", "max-attempt:"),
    )
    .unwrap();
    let out = lint();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("max-attempt"));
}

#[test]
fn action_inputs_reach_fixci_as_flags() {
    // The action passes `max-attempts` and `cost-limit-usd` as flags that beat the spec file.
    let r = repos();
    let s = Server::start();
    let tip = r.fix_branch(&[("fixci", Some(1)), ("fixci", Some(2))]);
    mount_writes(&s, true);
    let ev = run_event(&r, "failure", BRANCH, &tip, NEXT_RUN);
    let ran = fixci_event(&r, &s, None, &ev, &["--dry-run", "--max-attempts", "5"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(ran.stdout.contains("attempt 3 of 5"), "{}", ran.stdout);
    s.mount(
        Mock::given(method("GET"))
            .and(path("/repos/o/r/issues"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([]))),
    );
    let ran = fixci_event(&r, &s, None, &ev, &["--dry-run", "--max-attempts", "2"]);
    assert!(
        ran.stdout.contains("case 5"),
        "{}{}",
        ran.stdout,
        ran.stderr
    );
    assert!(s.writes().is_empty(), "{:?}", s.writes());
    let ran = fixci_event(&r, &s, None, &ev, &["--dry-run", "--cost-limit-usd=0"]);
    assert_eq!(ran.code, 2, "{}", ran.stdout);
    assert!(ran.stderr.contains("/budgets/cost-usd"), "{}", ran.stderr);
}

/// An owner's `/fixci add a median function` on issue #7 ("Add median"), which GitHub serves.
fn median_comment(r: &Repos, s: &Server) -> PathBuf {
    mount_median_issue(s);
    event(r, COMMENT_EVENT, |v| {
        v["comment"]["body"] = json!("/fixci add a median function");
        v["comment"]["author_association"] = json!("OWNER");
        v["issue"].as_object_mut().unwrap().remove("pull_request");
        v["issue"]["number"] = json!(7);
        v["issue"]["title"] = json!("Add median");
        v["issue"]["body"] = json!("calc needs a median(xs) function.");
    })
}

/// Issue #7, "Add median", as GitHub serves it.
fn mount_median_issue(s: &Server) {
    s.mount(
        Mock::given(method("GET"))
            .and(path("/repos/o/r/issues/7"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "number": 7, "title": "Add median", "body": "calc needs a median(xs) function.",
                "state": "open", "html_url": "https://github.com/o/r/issues/7",
                "user": {"login": "dev"}, "labels": []
            }))),
    );
}

#[test]
fn a_fixci_comment_on_an_issue_plans_a_feature_run_from_the_issue_text() {
    let r = repos();
    let s = Server::start();
    let ev = median_comment(&r, &s);
    let ran = fixci_event(&r, &s, None, &ev, &["--dry-run"]);
    assert_eq!(ran.code, 0, "{}\n{}", ran.stdout, ran.stderr);
    assert!(
        ran.stdout.contains("issue #7 as the task"),
        "{}",
        ran.stdout
    );
    assert!(s.writes().is_empty(), "{:?}", s.writes());
    assert!(!r.root.join("out").exists());
    // The run itself: the issue alone selects the feature pipeline (an agent that writes no
    // acceptance test ends it without a fix, not with a spec error).
    mount_writes(&s, false);
    let spec = r.spec(
        "no-repro",
        json!({"budgets": {"tests": "60s", "implement": "60s"}}),
    );
    let ran = fixci_event(&r, &s, Some(&spec), &ev, &[]);
    assert_ne!(ran.code, 2, "{}\n{}", ran.stdout, ran.stderr);
    let run = std::fs::read_dir(r.root.join("out"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let result: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("result.json")).unwrap()).unwrap();
    assert_eq!(result["pipeline"], "feature", "{result}");
}

/// Pull requests and comments kept as GitHub keeps them: a created PR is listed by
/// `GET /pulls` (in the shape of the review payload's `pull_request`, a real one), a created
/// comment by `GET /issues/N/comments` (in the shape of the comment payload's `comment`).
struct Kept {
    prs: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
    comments: std::sync::Arc<std::sync::Mutex<Vec<(u64, Value)>>>,
}

fn mount_kept(s: &Server) -> Kept {
    let prs = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Value>::new()));
    let comments = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(u64, Value)>::new()));
    let (list, keep) = (prs.clone(), prs.clone());
    s.mount(
        Mock::given(method("GET"))
            .and(path("/repos/o/r/pulls"))
            .respond_with(move |_: &Request| {
                ResponseTemplate::new(200).set_body_json(Value::Array(list.lock().unwrap().clone()))
            }),
    );
    s.mount(
        Mock::given(method("POST"))
            .and(path("/repos/o/r/pulls"))
            .respond_with(move |q: &Request| {
                let b: Value = serde_json::from_slice(&q.body).unwrap();
                let review: Value = serde_json::from_str(REVIEW_EVENT).unwrap();
                let mut pr = review["pull_request"].clone();
                let n = 7 + keep.lock().unwrap().len() as u64;
                pr["number"] = json!(n);
                pr["html_url"] = json!(format!("https://github.com/o/r/pull/{n}"));
                pr["title"] = b["title"].clone();
                pr["body"] = b["body"].clone();
                pr["draft"] = json!(true);
                pr["state"] = json!("open");
                pr["head"]["ref"] = b["head"].clone();
                pr["head"]["repo"]["full_name"] = json!("o/r");
                pr["base"]["ref"] = b["base"].clone();
                keep.lock().unwrap().push(pr.clone());
                ResponseTemplate::new(201).set_body_json(pr)
            }),
    );
    for n in [7u64, 8, 9] {
        let (list, keep) = (comments.clone(), comments.clone());
        s.mount(
            Mock::given(method("GET"))
                .and(path(format!("/repos/o/r/issues/{n}/comments")))
                .respond_with(move |_: &Request| {
                    let on: Vec<Value> = list
                        .lock()
                        .unwrap()
                        .iter()
                        .filter(|(i, _)| *i == n)
                        .map(|(_, c)| c.clone())
                        .collect();
                    ResponseTemplate::new(200).set_body_json(Value::Array(on))
                }),
        );
        s.mount(
            Mock::given(method("POST"))
                .and(path(format!("/repos/o/r/issues/{n}/comments")))
                .respond_with(move |q: &Request| {
                    let b: Value = serde_json::from_slice(&q.body).unwrap();
                    let ev: Value = serde_json::from_str(COMMENT_EVENT).unwrap();
                    let mut c = ev["comment"].clone();
                    let k = keep.lock().unwrap().len();
                    c["body"] = b["body"].clone();
                    c["html_url"] = json!(format!(
                        "https://github.com/o/r/issues/{n}#issuecomment-{k}"
                    ));
                    keep.lock().unwrap().push((n, c.clone()));
                    ResponseTemplate::new(201).set_body_json(c)
                }),
        );
    }
    Kept { prs, comments }
}

impl Kept {
    fn comments_on(&self, n: u64) -> Vec<String> {
        self.comments
            .lock()
            .unwrap()
            .iter()
            .filter(|(i, _)| *i == n)
            .map(|(_, c)| c["body"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

fn output_value(ran: &Ran, key: &str) -> String {
    ran.output
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_default()
        .to_string()
}

/// The remote's fix branches.
fn remote_fix_branches(r: &Repos) -> Vec<String> {
    git(
        &r.bare,
        &[
            "for-each-ref",
            "--format=%(refname:short)",
            "refs/heads/fixci/",
        ],
    )
    .lines()
    .map(str::to_string)
    .collect()
}

#[test]
fn case_1_the_same_failure_again_comments_once_on_its_open_pr_and_opens_no_second_branch() {
    let r = repos();
    let s = Server::start();
    let head = git(&r.work, &["rev-parse", "HEAD"]).trim().to_string();
    mount_failed_run(&s, RUN_ID, &head);
    mount_failed_run(&s, NEXT_RUN, &head);
    let kept = mount_kept(&s);
    let spec = r.spec("good", json!({}));
    let first = run_event(&r, "failure", "main", &head, RUN_ID);
    let ran = fixci_event(&r, &s, Some(&spec), &first, &[]);
    assert_eq!(ran.code, 0, "{}\n{}", ran.stdout, ran.stderr);
    let branch = output_value(&ran, "branch");
    // The PR's hidden block carries the failure signature; the branch is named after it.
    let body = kept.prs.lock().unwrap()[0]["body"]
        .as_str()
        .unwrap()
        .to_string();
    let block = fixci::ci_event::PrBlock::find(&body).expect("the hidden block");
    let sig = block.signature.expect("the signature is in the block");
    assert!(
        sig.contains("test_mean") && sig.contains("AssertionError"),
        "{sig}"
    );
    assert_eq!(branch, fixci::cli::ci::fix_branch_name(&sig));
    assert_eq!(block.branch, branch);

    // The same failure on main again: a comment on PR #7, no second branch, PR or run.
    let again = run_event(&r, "failure", "main", &head, NEXT_RUN);
    let ran = fixci_event(&r, &s, Some(&spec), &again, &[]);
    assert_eq!(ran.code, 0, "{}\n{}", ran.stdout, ran.stderr);
    assert!(
        ran.stdout.contains("same failure already has a fix branch"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.summary
            .contains("same failure already has a fix branch"),
        "{}",
        ran.summary
    );
    assert_eq!(output_value(&ran, "status"), "duplicate", "{}", ran.output);
    assert_eq!(
        output_value(&ran, "pr-url"),
        "https://github.com/o/r/pull/7"
    );
    assert_eq!(output_value(&ran, "branch"), branch);
    assert_eq!(kept.prs.lock().unwrap().len(), 1);
    let notes = kept.comments_on(7);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].contains(&format!("runs/{NEXT_RUN}")),
        "{}",
        notes[0]
    );
    assert_eq!(remote_fix_branches(&r), vec![branch.clone()]);
    assert_eq!(
        std::fs::read_dir(r.root.join("out")).unwrap().count(),
        1,
        "no second run"
    );

    // The same event delivered twice, or the PR's own run again: still one comment.
    for ev in [&again, &first] {
        let ran = fixci_event(&r, &s, Some(&spec), ev, &[]);
        assert_eq!(ran.code, 0, "{}\n{}", ran.stdout, ran.stderr);
        assert_eq!(output_value(&ran, "status"), "duplicate", "{}", ran.output);
        assert!(ran.stdout.contains("nothing to add"), "{}", ran.stdout);
    }
    assert_eq!(kept.comments_on(7).len(), 1);

    // Another failure signature on main gets its own branch.
    let other = CI_LOG.replace(
        "AssertionError: 3.0 != 2",
        "ZeroDivisionError: division by zero",
    );
    mount_failed_run_with(&s, NEXT_RUN + 1, &head, &other);
    let ev = run_event(&r, "failure", "main", &head, NEXT_RUN + 1);
    let ran = fixci_event(&r, &s, Some(&spec), &ev, &["--dry-run"]);
    assert_eq!(ran.code, 0, "{}\n{}", ran.stdout, ran.stderr);
    assert!(
        ran.stdout.contains("case 1: failure on a normal branch"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains("on a new `fixci/test-mean-"),
        "{}",
        ran.stdout
    );
    assert!(!ran.stdout.contains(&branch), "{}", ran.stdout);
    assert_eq!(kept.comments_on(7).len(), 1);
}

/// Pushes `branch` to the bare remote from a clone of its own, as another fixci run would:
/// one commit on main with the trailers of run `run`.
fn push_as_another_run(bare: &Path, scratch: &Path, branch: &str, run: u64) {
    let clone = scratch.join(format!("other-{run}"));
    git(
        scratch,
        &[
            "clone",
            "-q",
            bare.to_str().unwrap(),
            clone.to_str().unwrap(),
        ],
    );
    git(&clone, &["checkout", "-q", "-b", branch]);
    git(
        &clone,
        &[
            "-c",
            "user.name=fixci",
            "-c",
            "user.email=fixci@users.noreply.github.com",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            &format!(
                "another run's fix\n\nFixci-Attempt: 1\nFixci-Run: https://github.com/o/r/actions/runs/{run}\n"
            ),
        ],
    );
    git(&clone, &["push", "-q", "origin", branch]);
}

#[test]
fn case_1_when_the_failures_branch_is_already_on_the_remote_it_is_that_case_not_an_error() {
    let r = repos();
    let s = Server::start();
    let head = git(&r.work, &["rev-parse", "HEAD"]).trim().to_string();
    mount_failed_run(&s, RUN_ID, &head);
    let kept = mount_kept(&s);
    let spec = r.spec("good", json!({}));
    let sig = fixci::logs::distil_bytes(CI_LOG.as_bytes(), &Default::default())
        .unwrap()
        .signature
        .unwrap();
    let name = fixci::cli::ci::fix_branch_name(&sig);
    // Another run's branch is there before this run starts (its PR not yet opened).
    push_as_another_run(&r.bare, &r.root, &name, 1);
    let theirs = r.remote_tip(&name).unwrap();
    let ev = run_event(&r, "failure", "main", &head, RUN_ID);
    let ran = fixci_event(&r, &s, Some(&spec), &ev, &[]);
    assert_eq!(ran.code, 0, "{}\n{}", ran.stdout, ran.stderr);
    assert_eq!(output_value(&ran, "status"), "duplicate", "{}", ran.output);
    assert!(
        ran.stdout.contains("already on the remote"),
        "{}",
        ran.stdout
    );
    assert!(!r.root.join("out").exists(), "no run was started");
    assert_eq!(r.remote_tip(&name).unwrap(), theirs);

    // The race: the other run pushes while this one is fixing (when this run fetches the
    // log the second time, inside the engine); this run's push is refused, and that is the
    // same case: one comment on the other run's PR, exit 0.
    git(&r.bare, &["branch", "-q", "-D", &name]);
    let (bare, scratch, branch) = (r.bare.clone(), r.root.clone(), name.clone());
    let fetched = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let prs = kept.prs.clone();
    s.mount(
        Mock::given(method("GET"))
            .and(path(format!("/signed/job-{}.txt", RUN_ID + 1)))
            .respond_with(move |_: &Request| {
                if fetched.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 1 {
                    push_as_another_run(&bare, &scratch, &branch, 2);
                    let review: Value = serde_json::from_str(REVIEW_EVENT).unwrap();
                    let mut pr = review["pull_request"].clone();
                    pr["number"] = json!(8);
                    pr["html_url"] = json!("https://github.com/o/r/pull/8");
                    pr["body"] = json!("## Summary\n");
                    pr["head"]["ref"] = json!(branch.clone());
                    pr["head"]["repo"]["full_name"] = json!("o/r");
                    prs.lock().unwrap().push(pr);
                }
                ResponseTemplate::new(200).set_body_string(CI_LOG)
            })
            .with_priority(1),
    );
    let ran = fixci_event(&r, &s, Some(&spec), &ev, &[]);
    assert_eq!(ran.code, 0, "{}\n{}", ran.stdout, ran.stderr);
    assert_eq!(output_value(&ran, "status"), "duplicate", "{}", ran.output);
    assert_eq!(
        output_value(&ran, "pr-url"),
        "https://github.com/o/r/pull/8"
    );
    let notes = kept.comments_on(8);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].contains(&format!("runs/{RUN_ID}")), "{}", notes[0]);
    assert!(
        message(&r.bare, &name).contains("runs/2"),
        "the other run's push stands"
    );
    assert!(s.sent("POST", "/repos/o/r/pulls").is_empty());
}

#[test]
fn case_5_a_second_exhaustion_of_the_same_failure_comments_on_its_escalation_issue() {
    let r = repos();
    let s = Server::start();
    let tip = r.fix_branch(&[("fixci", Some(1)), ("fixci", Some(2)), ("fixci", Some(3))]);
    let kept = mount_kept(&s);
    let sig = "tests.test_stats.StatsTest.test_mean: AssertionError: N.N != N";
    let pr_with = |signature: &str| {
        let review: Value = serde_json::from_str(REVIEW_EVENT).unwrap();
        let mut pr = review["pull_request"].clone();
        let block = fixci::ci_event::PrBlock {
            branch: BRANCH.into(),
            base: "main".into(),
            original_run: Some(format!("https://github.com/o/r/actions/runs/{RUN_ID}")),
            signature: Some(signature.into()),
            max_attempts: 3,
        };
        pr["number"] = json!(7);
        pr["html_url"] = json!("https://github.com/o/r/pull/7");
        pr["body"] = json!(format!("## Summary\n\n{}\n", block.render()));
        pr["head"]["ref"] = json!(BRANCH);
        pr["head"]["sha"] = json!(tip);
        pr["head"]["repo"]["full_name"] = json!("o/r");
        pr["base"]["ref"] = json!("main");
        pr
    };
    kept.prs.lock().unwrap().push(pr_with(sig));
    // An open escalation issue of the same failure, filed for an earlier fix branch.
    let ev: Value = serde_json::from_str(COMMENT_EVENT).unwrap();
    let mut older = ev["issue"].clone();
    older.as_object_mut().unwrap().remove("pull_request");
    older["number"] = json!(9);
    older["html_url"] = json!("https://github.com/o/r/issues/9");
    older["body"] = json!(format!(
        "fixci made 3 attempt(s) on `fixci/older`.\n\n<!-- fixci-branch: fixci/older -->\n\n<!-- fixci-signature: {sig} -->\n"
    ));
    mount_escalations(&s, vec![older]);
    let run = run_event(&r, "failure", BRANCH, &tip, NEXT_RUN);
    let ran = fixci_event(&r, &s, None, &run, &[]);
    assert_eq!(ran.code, 1, "{}\n{}", ran.stdout, ran.stderr);
    assert!(ran.stdout.contains("case 5"), "{}", ran.stdout);
    assert!(
        s.sent("POST", "/repos/o/r/issues").is_empty(),
        "no second issue"
    );
    let notes = kept.comments_on(9);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].contains("fixci/mean") && notes[0].contains(&format!("runs/{NEXT_RUN}")));
    assert!(
        ran.stdout
            .contains("escalation issue of the same failure commented"),
        "{}",
        ran.stdout
    );
    // The same branch failing again: nothing more on the issue.
    let ran = fixci_event(&r, &s, None, &run, &[]);
    assert_eq!(ran.code, 1, "{}\n{}", ran.stdout, ran.stderr);
    assert!(ran.stdout.contains("already escalated"), "{}", ran.stdout);
    assert_eq!(kept.comments_on(9).len(), 1);
    assert!(s.sent("POST", "/repos/o/r/issues").is_empty());
    // Another failure signature is another issue, carrying its signature's hidden marker.
    let other = "tests.test_stats.StatsTest.test_mean: ZeroDivisionError: division by zero";
    kept.prs.lock().unwrap()[0] = pr_with(other);
    let ran = fixci_event(&r, &s, None, &run, &[]);
    assert_eq!(ran.code, 1, "{}\n{}", ran.stdout, ran.stderr);
    let opened = s.sent("POST", "/repos/o/r/issues");
    assert_eq!(opened.len(), 1);
    assert_eq!(opened[0]["labels"], json!(["fixci-escalation"]));
    let body = opened[0]["body"].as_str().unwrap();
    assert!(
        body.contains(&format!("<!-- fixci-signature: {other} -->")),
        "{body}"
    );
    assert_eq!(kept.comments_on(9).len(), 1);
}

#[test]
fn a_repository_config_may_budget_stages_of_every_pipeline_its_events_select() {
    let r = repos();
    let s = Server::start();
    let ev = median_comment(&r, &s);
    mount_writes(&s, false);
    let agent =
        json!({"command": ["python3", r.root.join("agent.py").to_str().unwrap(), "no-repro"]});
    let config = |budgets: Value| {
        let v = json!({"agent": agent, "sandbox": "none", "budgets": budgets});
        std::fs::write(r.work.join("fixci.json"), v.to_string()).unwrap();
        git(&r.work, &["add", "fixci.json"]);
        git(
            &r.work,
            &[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@x",
                "commit",
                "-qm",
                "fixci.json",
            ],
        );
        git(&r.work, &["push", "-q", "origin", "main"]);
    };
    // `reproduce` and `fix` are stages of the bug pipelines, not of `feature` (which an issue
    // selects): ignored for this run, with a note.
    config(json!({"reproduce": "60s", "fix": "60s", "tests": "60s", "implement": "60s"}));
    let ran = fixci_event(&r, &s, None, &ev, &[]);
    assert_ne!(ran.code, 2, "{}\n{}", ran.stdout, ran.stderr);
    for k in ["/budgets/reproduce", "/budgets/fix"] {
        assert!(
            ran.stderr.contains(&format!(
                "note: `{}`: {k} names a stage of another pipeline",
                r.work.join("fixci.json").display()
            )),
            "{}",
            ran.stderr
        );
    }
    assert!(!ran.stderr.contains("/budgets/tests"), "{}", ran.stderr);
    let run = crate::common::run_dir(&r.root.join("out"));
    let result = crate::common::result(&run);
    assert_eq!(result["pipeline"], "feature", "{result}");

    // A stage no pipeline has is a typo: exit 2 naming the file and the key, whatever the event.
    config(json!({"reproduec": "60s"}));
    let before = s.requests().len();
    let ran = fixci_event(&r, &s, None, &ev, &["--dry-run"]);
    assert_eq!(ran.code, 2, "{}\n{}", ran.stdout, ran.stderr);
    assert!(
        ran.stderr.contains("fixci.json")
            && ran
                .stderr
                .contains("/budgets/reproduec: no stage `reproduec` in any pipeline"),
        "{}",
        ran.stderr
    );
    assert_eq!(s.requests().len(), before);

    // A job spec named on the command line stays strict: its budgets are for the selected
    // pipeline only.
    let spec = r.spec("no-repro", json!({}));
    let ran = fixci_event(&r, &s, Some(&spec), &ev, &[]);
    assert_eq!(ran.code, 2, "{}\n{}", ran.stdout, ran.stderr);
    assert!(
        ran.stderr.contains("fixci-spec.json")
            && ran
                .stderr
                .contains("/budgets/reproduce: no stage `reproduce` in pipeline `feature`"),
        "{}",
        ran.stderr
    );
}
