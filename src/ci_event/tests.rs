//! The decision table over the real payloads of `tests/data/events/` (fields edited per test).

use super::*;
use serde_json::{Value, json};

const RUN: &str = include_str!("../../tests/data/events/workflow_run.completed.json");
const COMMENT: &str = include_str!("../../tests/data/events/issue_comment.created.json");
const REVIEW: &str = include_str!("../../tests/data/events/pull_request_review.submitted.json");

const CFG: Config = Config {
    max_attempts: 3,
    ready_on_green: false,
};

fn event(text: &str, edit: impl FnOnce(&mut Value), name: &str) -> Event {
    let mut v: Value = serde_json::from_str(text).unwrap();
    edit(&mut v);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("event.json");
    std::fs::write(&p, v.to_string()).unwrap();
    payload::read(&p, Some(name)).unwrap()
}

fn run(conclusion: &str, branch: &str) -> Event {
    event(
        RUN,
        |v| {
            v["workflow_run"]["conclusion"] = json!(conclusion);
            v["workflow_run"]["head_branch"] = json!(branch);
        },
        "workflow_run",
    )
}

fn history(commits: &[(bool, Option<u32>)]) -> BranchHistory {
    let tip = "3484a3fb816e0859fd6e1cea078d76385ff50625".to_string();
    BranchHistory {
        commits: commits
            .iter()
            .enumerate()
            .map(|(i, (fixci, a))| BranchCommit {
                id: if i == 0 {
                    tip.clone()
                } else {
                    format!("{i:040}")
                },
                author: if *fixci {
                    "fixci <fixci@users.noreply.github.com>"
                } else {
                    "Jane <j@x>"
                }
                .into(),
                by_fixci: *fixci,
                attempt: a.map(|n| (n, Some(format!("https://github.com/o/r/actions/runs/{n}")))),
            })
            .collect(),
        tip,
    }
}

fn pr(branch: &str) -> PrFacts {
    PrFacts {
        number: 7,
        html_url: "https://github.com/o/r/pull/7".into(),
        node_id: "PR_x".into(),
        draft: true,
        head_branch: branch.into(),
        head_sha: "3484a3fb816e0859fd6e1cea078d76385ff50625".into(),
        base_branch: "master".into(),
        body: String::new(),
        state: "open".into(),
    }
}

#[test]
fn the_five_cases_of_a_workflow_run() {
    // 4: success on a normal branch.
    let d = decide(&run("success", "master"), &Facts::default(), CFG, "");
    assert!(matches!(d, Decision::Ignore { .. }), "{d:?}");
    // 1: failure on a normal branch.
    let e = run("failure", "master");
    assert_eq!(
        triage(&e),
        Ok(Lookup {
            signature_of_run: Some(
                "https://github.com/octo-org/octo-repo/actions/runs/289782451".into()
            ),
            ..Lookup::default()
        })
    );
    match decide(&e, &Facts::default(), CFG, "") {
        Decision::OpenFix { base, run_url, .. } => {
            assert_eq!(base, "master");
            assert_eq!(
                run_url,
                "https://github.com/octo-org/octo-repo/actions/runs/289782451"
            );
        }
        d => panic!("{d:?}"),
    }
    // 2: failure on a fix branch with one attempt.
    let e = run("failure", "fixci/mean");
    let facts = Facts {
        pr: Some(pr("fixci/mean")),
        branch: Some(history(&[(true, Some(1))])),
        ..Facts::default()
    };
    match decide(&e, &facts, CFG, "") {
        Decision::NextAttempt {
            attempt,
            max,
            run_url,
            branch,
            base,
            ..
        } => {
            assert_eq!((attempt, max), (2, 3));
            assert_eq!(branch, "fixci/mean");
            assert_eq!(base, "master");
            assert!(run_url.ends_with("/289782451"));
        }
        d => panic!("{d:?}"),
    }
    // 3: success on a fix branch: a comment unless `ready-on-green`.
    let d = decide(&run("success", "fixci/mean"), &facts, CFG, "");
    assert!(
        matches!(d, Decision::FinishPr { ready: false, .. }),
        "{d:?}"
    );
    let ready = Config {
        ready_on_green: true,
        ..CFG
    };
    let d = decide(&run("success", "fixci/mean"), &facts, ready, "");
    assert!(matches!(d, Decision::FinishPr { ready: true, .. }), "{d:?}");
    // 5: failure after the last attempt, then never a second issue.
    let spent = Facts {
        branch: Some(history(&[
            (true, Some(3)),
            (true, Some(2)),
            (true, Some(1)),
        ])),
        ..facts.clone()
    };
    match decide(&e, &spent, CFG, "") {
        Decision::Escalate {
            attempts,
            original_run,
            ..
        } => {
            assert_eq!(attempts, 3);
            assert!(original_run.unwrap().ends_with("/runs/1"));
        }
        d => panic!("{d:?}"),
    }
    let escalated = Facts {
        escalation: Some("https://github.com/o/r/issues/9".into()),
        ..spent
    };
    assert!(matches!(
        decide(&e, &escalated, CFG, ""),
        Decision::AlreadyEscalated { .. }
    ));
}

#[test]
fn a_human_commit_stops_and_stale_or_foreign_runs_are_ignored() {
    let e = run("failure", "fixci/mean");
    let facts = Facts {
        pr: Some(pr("fixci/mean")),
        branch: Some(history(&[(false, None), (true, Some(1))])),
        ..Facts::default()
    };
    assert!(matches!(
        decide(&e, &facts, CFG, ""),
        Decision::HumanCommitted { .. }
    ));
    // A run for an older commit of the branch: fixci's own earlier push, already handled.
    let mut stale = facts.clone();
    stale.branch.as_mut().unwrap().tip = "f".repeat(40);
    assert!(matches!(
        decide(&e, &stale, CFG, ""),
        Decision::Ignore { .. }
    ));
    // A closed PR (or none) means a person ended it: no further attempt.
    let mut closed = facts.clone();
    closed.pr.as_mut().unwrap().state = "closed".into();
    assert!(matches!(
        decide(&e, &closed, CFG, ""),
        Decision::Ignore { .. }
    ));
    let none = Facts {
        pr: None,
        ..facts.clone()
    };
    assert!(matches!(
        decide(&e, &none, CFG, ""),
        Decision::Ignore { .. }
    ));
    // A `fixci/` branch without fixci's trailers is not fixci's.
    let foreign = Facts {
        branch: Some(history(&[(true, None)])),
        ..facts.clone()
    };
    assert!(matches!(
        decide(&e, &foreign, CFG, ""),
        Decision::Ignore { .. }
    ));
    // A fork's run, cancelled runs and runs still going are not for fixci.
    let fork = event(
        RUN,
        |v| {
            v["workflow_run"]["conclusion"] = json!("failure");
            v["workflow_run"]["head_repository"]["full_name"] = json!("evil/octo-repo");
        },
        "workflow_run",
    );
    assert!(matches!(
        decide(&fork, &Facts::default(), CFG, ""),
        Decision::Ignore { .. }
    ));
    assert!(matches!(
        decide(&run("cancelled", "master"), &Facts::default(), CFG, ""),
        Decision::Ignore { .. }
    ));
    // The PR body's budget can only lower the spec's.
    let mut low = facts;
    low.branch = Some(history(&[(true, Some(1))]));
    let pr = low.pr.as_mut().unwrap();
    pr.body = PrBlock {
        branch: "fixci/mean".into(),
        base: "master".into(),
        original_run: None,
        signature: Some("t::x: assert N == N".into()),
        max_attempts: 1,
    }
    .render();
    // The escalation carries the PR's failure signature (issues are de-duplicated by it).
    assert!(matches!(
        decide(&e, &low, CFG, ""),
        Decision::Escalate { signature: Some(ref s), .. } if s == "t::x: assert N == N"
    ));
}

#[test]
fn a_failure_already_addressed_by_a_fix_branch_opens_no_second_one() {
    let e = run("failure", "master");
    let failure = Some((
        "t::x: assert N == N".to_string(),
        "fixci/x-0a1b2c3d".to_string(),
    ));
    // The lookup asks for the run's signature on a normal branch only.
    assert!(triage(&e).unwrap().signature_of_run.is_some());
    assert!(
        triage(&run("failure", "fixci/x"))
            .unwrap()
            .signature_of_run
            .is_none()
    );
    // A new failure: a new branch named after the signature.
    let facts = Facts {
        failure: failure.clone(),
        ..Facts::default()
    };
    match decide(&e, &facts, CFG, "") {
        Decision::OpenFix { failure: f, .. } => assert_eq!(f, failure),
        d => panic!("{d:?}"),
    }
    // The same failure with an open PR: a comment there, status `duplicate`.
    let facts = Facts {
        failure: failure.clone(),
        existing_fix: Some(ExistingFix {
            branch: "fixci/x-0a1b2c3d".into(),
            pr: Some(pr("fixci/x-0a1b2c3d")),
        }),
        ..Facts::default()
    };
    let d = decide(&e, &facts, CFG, "");
    assert!(matches!(d, Decision::SameFailure { .. }), "{d:?}");
    assert_eq!(d.status(), "duplicate");
    assert!(d.plan().contains("PR #7"), "{}", d.plan());
    // Only the branch (another run is on it): nothing, said so.
    let facts = Facts {
        failure,
        existing_fix: Some(ExistingFix {
            branch: "fixci/x-0a1b2c3d".into(),
            pr: None,
        }),
        ..Facts::default()
    };
    let d = decide(&e, &facts, CFG, "");
    assert!(d.plan().contains("already on the remote"), "{}", d.plan());
}

fn comment(body: &str, association: &str, on_pr: bool) -> Event {
    event(
        COMMENT,
        |v| {
            v["comment"]["body"] = json!(body);
            v["comment"]["author_association"] = json!(association);
            if on_pr {
                v["issue"]["pull_request"] =
                    json!({"url": "https://api.github.com/repos/Codertocat/Hello-World/pulls/1"});
            }
        },
        "issue_comment",
    )
}

#[test]
fn comments_need_the_command_and_write_access() {
    assert_eq!(command_text("/fixci"), Some(String::new()));
    assert_eq!(
        command_text("  /fixci  use the cache\nmore").as_deref(),
        Some("use the cache\nmore")
    );
    assert_eq!(command_text("/fixcix"), None);
    assert_eq!(command_text("> /fixci quoted"), None);
    assert!(matches!(
        decide(
            &comment("thanks!", "OWNER", false),
            &Facts::default(),
            CFG,
            ""
        ),
        Decision::Ignore { .. }
    ));
    match decide(
        &comment("/fixci please", "CONTRIBUTOR", true),
        &Facts::default(),
        CFG,
        "",
    ) {
        Decision::Refuse { login, number, .. } => {
            assert_eq!((login.as_str(), number), ("Codertocat", 1))
        }
        d => panic!("{d:?}"),
    }
    match decide(
        &comment("/fixci add a test too", "MEMBER", false),
        &Facts::default(),
        CFG,
        "",
    ) {
        Decision::Task { issue, feedback } => {
            assert_eq!(issue, 1);
            assert_eq!(feedback.unwrap().text, "add a test too");
        }
        d => panic!("{d:?}"),
    }
    // On a PR that is not fixci's: a new fix from the PR's head for its failed run.
    let e = comment("/fixci", "COLLABORATOR", true);
    let facts = Facts {
        pr: Some(pr("feature")),
        failing_run: Some("https://github.com/o/r/actions/runs/5".into()),
        ..Facts::default()
    };
    assert!(
        matches!(decide(&e, &facts, CFG, ""), Decision::OpenFix { ref base, .. } if base == "feature")
    );
    // On a fixci PR: the next attempt with the comment as feedback.
    let facts = Facts {
        pr: Some(pr("fixci/mean")),
        branch: Some(history(&[(true, Some(1))])),
        ..facts
    };
    assert!(matches!(
        decide(&e, &facts, CFG, ""),
        Decision::NextAttempt { attempt: 2, .. }
    ));
}

fn review(state: &str, association: &str, head: &str) -> Event {
    event(
        REVIEW,
        |v| {
            v["review"]["state"] = json!(state);
            v["review"]["author_association"] = json!(association);
            v["review"]["body"] = json!("Please keep the public signature.");
            v["pull_request"]["head"]["ref"] = json!(head);
        },
        "pull_request_review",
    )
}

#[test]
fn a_review_asking_for_changes_is_the_next_attempt() {
    assert!(matches!(
        decide(
            &review("commented", "OWNER", "fixci/mean"),
            &Facts::default(),
            CFG,
            ""
        ),
        Decision::Ignore { .. }
    ));
    assert!(matches!(
        decide(
            &review("changes_requested", "OWNER", "feature"),
            &Facts::default(),
            CFG,
            ""
        ),
        Decision::Ignore { .. }
    ));
    assert!(matches!(
        decide(
            &review("changes_requested", "NONE", "fixci/mean"),
            &Facts::default(),
            CFG,
            ""
        ),
        Decision::Refuse { .. }
    ));
    let facts = Facts {
        pr: Some(pr("fixci/mean")),
        branch: Some(history(&[(true, Some(1))])),
        ..Facts::default()
    };
    match decide(
        &review("changes_requested", "OWNER", "fixci/mean"),
        &facts,
        CFG,
        "src/a.py:3: no",
    ) {
        Decision::NextAttempt {
            attempt,
            feedback: Some(f),
            run_url,
            ..
        } => {
            assert_eq!(attempt, 2);
            assert_eq!(
                f.text,
                "Please keep the public signature.\n\nsrc/a.py:3: no"
            );
            assert!(f.source.contains("@Codertocat"));
            // The failure is the original run's, from the trailer.
            assert!(run_url.ends_with("/runs/1"));
        }
        d => panic!("{d:?}"),
    }
}

#[test]
fn bad_payloads_name_the_file_and_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("e.json");
    std::fs::write(&p, "{\"workflow_run\": {\"id\": \"x\"}}").unwrap();
    let e = payload::read(&p, None).unwrap_err();
    assert!(e.render().contains("e.json"), "{}", e.render());
    std::fs::write(&p, "{\"zen\": 1}").unwrap();
    assert!(
        payload::read(&p, None)
            .unwrap_err()
            .render()
            .contains("workflow_run")
    );
    std::fs::write(&p, "{").unwrap();
    assert!(
        payload::read(&p, None)
            .unwrap_err()
            .render()
            .contains("line 1")
    );
    std::fs::write(&p, RUN).unwrap();
    let e = payload::read(&p, Some("push")).unwrap_err();
    assert!(e.render().contains("`push`"), "{}", e.render());
    std::fs::write(&p, COMMENT).unwrap();
    let mut v: Value = serde_json::from_str(COMMENT).unwrap();
    v["comment"]
        .as_object_mut()
        .unwrap()
        .remove("author_association");
    std::fs::write(&p, v.to_string()).unwrap();
    let r = payload::read(&p, None).unwrap_err().render();
    assert!(
        r.contains("/comment") && r.contains("author_association"),
        "{r}"
    );
}
