//! `fixci run [SPEC] --event FILE`: inside CI. Reads the event payload, gathers what git and
//! the forge say about it, asks `ci_event::decide` what to do, and does it: runs the ordinary
//! engine (a new fix branch, or the next attempt on an existing one), comments, marks a PR
//! ready, or escalates. Every decision is printed, appended to `$GITHUB_STEP_SUMMARY`, and
//! written to `$GITHUB_OUTPUT` as `status`, `pr-url` and `branch`.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::run::{Progress, RunArgs};
use crate::ci_event::{
    self, CiRun, Config, Decision, Event, ExistingFix, Facts, Feedback, PrBlock,
};
use crate::error::{Error, Result};
use crate::forge::{self, GitHub};
use crate::run_dir::{RunDir, Status};
use crate::{engine, exit_codes, spec, vcs};

/// The fix branch of a failure signature: `fixci/<test name>-<8 hex digits>`, the digits the
/// start of the signature's SHA-256 (FIPS 180-4). The same failure always gets the same name,
/// so two CI runs for it meet on one branch (the second push is refused) instead of opening
/// two.
pub fn fix_branch_name(signature: &str) -> String {
    use sha2::Digest as _;
    let (test, _) = crate::logs::signature::split(signature);
    let digest = sha2::Sha256::digest(signature.as_bytes());
    let hex: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}{}-{hex}",
        ci_event::BRANCH_PREFIX,
        crate::run_dir::workspace::test_slug(test)
    )
}

/// The failure signature of a failed run's logs, computed as the `fetch-logs` stage does
/// (`stages::forge_inputs::distil_fetched`); `None` when the logs show no recognisable failure.
fn run_signature(run_url: &str, api_url: Option<&str>) -> Result<Option<String>> {
    let fetched = crate::stages::forge_inputs::prefetch(run_url, api_url)?;
    let scratch = tempfile::tempdir()
        .map_err(|e| Error::infra("cannot create a temporary folder").source(e))?;
    let (_, d) = crate::stages::forge_inputs::distil_fetched(
        &fetched.run.log_files,
        scratch.path(),
        &crate::logs::DistilOptions::default(),
    )?;
    Ok(d.signature)
}

/// The hidden line that marks a PR comment about failed run `run_url` (so a redelivered
/// event comments once).
fn run_marker(run_url: &str) -> String {
    format!(
        "<!-- fixci-run: {} -->",
        run_url
            .split_whitespace()
            .collect::<String>()
            .replace("--", "- -")
            .replace('>', "&gt;")
    )
}

/// The job spec files looked for at the repository root when no SPEC is given.
pub const CONFIG_FILES: &[&str] = &["fixci.json", "fixci.toml"];

/// The job spec an event run starts from: SPEC, else `fixci.json` / `fixci.toml` at the
/// repository root, else `{}` (fixci's defaults). Returns `(document, path, folder)`.
fn config_document(args: &RunArgs, root: &Path) -> Result<(Value, PathBuf, PathBuf)> {
    let path = match &args.spec {
        Some(p) => Some(p.clone()),
        None => CONFIG_FILES
            .iter()
            .map(|f| root.join(f))
            .find(|p| p.is_file()),
    };
    match path {
        Some(p) => {
            let v = spec::read_document(&p, "job spec")?;
            if !v.is_object() {
                return Err(Error::usage(format!("invalid job spec `{}`", p.display()))
                    .detail("(root): expected a table of job spec keys"));
            }
            let abs = spec::absolute(&p);
            let dir = abs.parent().map(Path::to_path_buf).unwrap_or_default();
            Ok((v, abs, dir))
        }
        None => Ok((json!({}), root.join("<defaults>"), root.to_path_buf())),
    }
}

/// The job spec of one event run: the configured document with the event's input (a run URL or
/// an issue) in place of any input it names, `deterministic` and `prompt` defaulted, `base` set,
/// one engine attempt (each CI run is one attempt on the branch), and the feedback appended to
/// the prompt, fenced.
fn spec_value(config: &Value, base: &str, input: Input<'_>, feedback: Option<&Feedback>) -> Value {
    let mut v = with_input(config, input);
    let o = v.as_object_mut().expect("checked: an object");
    o.insert("base".into(), json!(base));
    o.insert("max-attempts".into(), json!(1));
    if let Some(f) = feedback.filter(|f| !f.text.trim().is_empty()) {
        let prompt = o["prompt"].as_str().unwrap_or_default().to_string();
        let fence = "`".repeat(longest_backtick_run(&f.text).max(2) + 1);
        o.insert(
            "prompt".into(),
            json!(format!(
                "{prompt}\n\nFeedback from a maintainer ({}{}), to take into account:\n\n{fence}text\n{}\n{fence}\n",
                f.source,
                f.url.as_deref().map(|u| format!(", {u}")).unwrap_or_default(),
                f.text.trim()
            )),
        );
    }
    v
}

/// The configured document with the event's input in place of any input it names, and
/// `deterministic` and `prompt` defaulted.
fn with_input(config: &Value, input: Input<'_>) -> Value {
    let mut v = config.clone();
    let o = v.as_object_mut().expect("checked: an object");
    for k in ["url", "raw-logs", "existing-test-path", "issue"] {
        o.remove(k);
    }
    match input {
        Input::Run(u) => {
            o.insert("url".into(), json!(u));
        }
        Input::Issue(i) => {
            o.insert("issue".into(), json!(i));
        }
    }
    o.entry("deterministic").or_insert(json!(true));
    o.entry("prompt")
        .or_insert(json!("Fix the failure of this CI run."));
    v
}

/// The longest run of backticks in `s` (so a fence around it cannot be closed from inside).
fn longest_backtick_run(s: &str) -> usize {
    s.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

enum Input<'a> {
    Run(&'a str),
    Issue(&'a str),
}

/// The `Config` the decision needs, from the document (`max-attempts`, `pr.ready-on-green`).
fn config_of(v: &Value) -> Config {
    Config {
        max_attempts: v
            .get("max-attempts")
            .and_then(Value::as_u64)
            .map_or(crate::defaults::MAX_ATTEMPTS as u32, |n| n as u32),
        ready_on_green: v
            .pointer("/pr/ready-on-green")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    }
}

/// The remote fixci fetches from and pushes to: `pr.remote`, else `origin`.
fn remote_of(doc: &Value) -> String {
    doc.pointer("/pr/remote")
        .and_then(Value::as_str)
        .unwrap_or("origin")
        .to_string()
}

/// Where the event's repository lives and how to reach it.
struct Forge {
    gh: GitHub,
    owner: String,
    repo: String,
}

impl Forge {
    fn new(event: &Event, api_url: Option<&str>) -> Result<Forge> {
        let r = event.repository();
        let (owner, repo) = r.owner_name();
        let host = r
            .html_url
            .as_deref()
            .and_then(forge::url_host)
            .unwrap_or_else(|| "github.com".into());
        let api = forge::api_base(api_url, &host);
        let gh = GitHub::new(&api, forge::resolve_token_for(&host)).map_err(Error::from)?;
        Ok(Forge { gh, owner, repo })
    }
}

/// Runs `fixci run --event FILE`; returns the exit code.
pub fn execute(args: &RunArgs, event_file: &Path) -> Result<u8> {
    let event = ci_event::payload::read(
        event_file,
        std::env::var("GITHUB_EVENT_NAME").ok().as_deref(),
    )?;
    let cwd = std::env::current_dir().unwrap_or_default();
    let start = args.repo.as_deref().map_or(cwd.clone(), |r| cwd.join(r));
    let root = vcs::discover(&start)
        .map(|r| vcs::workdir(&r))
        .map_err(|e| {
            Error::usage(format!(
                "`{}` is not in a git repository: `--event` runs in the repository's checkout",
                start.display()
            ))
            .source(e)
        })?;
    let (mut doc, doc_path, doc_dir) = config_document(args, &root)?;
    // The action's inputs (command-line flags) beat the file's keys.
    if let Some(n) = args.max_attempts {
        doc["max-attempts"] = json!(n);
    }
    if let Some(usd) = args.cost_limit_usd {
        if !doc["budgets"].is_object() {
            doc["budgets"] = json!({});
        }
        doc["budgets"]["cost-usd"] = json!(usd);
    }
    if let Some(p) = &args.prompt {
        doc["prompt"] = json!(p);
    }
    // A bad configuration is an error whatever the event: checked with a placeholder input.
    let probe = with_input(&doc, Input::Run("https://github.com/o/r/actions/runs/1"));
    let probe = spec::from_value(probe, &doc_path, &doc_dir)?;
    if args.spec.is_none() {
        budgets_in_some_pipeline(&probe, &root)?;
    }
    let config = config_of(&doc);
    let remote = remote_of(&doc);

    let mut facts = Facts::default();
    let mut extra = String::new();
    let lookup = ci_event::triage(&event);
    let forge = match &lookup {
        Ok(_) => Some(Forge::new(&event, args.api_url.as_deref())?),
        Err(d) if matches!(**d, Decision::Refuse { .. }) && !args.dry_run => {
            Some(Forge::new(&event, args.api_url.as_deref())?)
        }
        Err(_) => None,
    };
    if let (Ok(l), Some(f)) = (&lookup, &forge) {
        gather(
            l,
            &event,
            f,
            args.api_url.as_deref(),
            &root,
            &remote,
            &config,
            &mut facts,
            &mut extra,
        )?;
    }
    let decision = ci_event::decide(&event, &facts, config, &extra);
    outln!("fixci: event `{}`: {}", event.name(), decision.case());
    outln!("plan: {}", decision.plan());
    if args.dry_run {
        return Ok(exit_codes::SUCCESS);
    }
    let report = act(
        args,
        &event,
        &decision,
        forge.as_ref(),
        &doc,
        &doc_path,
        &doc_dir,
        &root,
    )?;
    report.publish(&event, &decision);
    Ok(report.code)
}

/// Looks up what `lookup` asks for.
#[allow(clippy::too_many_arguments)]
fn gather(
    lookup: &ci_event::Lookup,
    event: &Event,
    f: &Forge,
    api_url: Option<&str>,
    root: &Path,
    remote: &str,
    config: &Config,
    facts: &mut Facts,
    extra: &mut String,
) -> Result<()> {
    let forge_err = |e: forge::ForgeError| Error::from(e);
    if let Some(run_url) = &lookup.signature_of_run {
        if let Some(sig) = run_signature(run_url, api_url)? {
            let name = fix_branch_name(&sig);
            facts.existing_fix = existing_fix(f, root, remote, &sig, &name)?;
            facts.failure = Some((sig, name));
        }
    }
    if let Some(n) = lookup.pr_number {
        facts.pr = Some(f.gh.pull(&f.owner, &f.repo, n).map_err(forge_err)?);
    } else if let Some(b) = &lookup.pr_for_branch {
        facts.pr =
            f.gh.open_pull_for_branch(&f.owner, &f.repo, b)
                .map_err(forge_err)?;
    }
    let branch = lookup.branch.clone().or_else(|| {
        facts
            .pr
            .as_ref()
            .filter(|_| lookup.branch_of_pr)
            .map(|p| p.head_branch.clone())
            .filter(|b| b.starts_with(ci_event::BRANCH_PREFIX))
    });
    if lookup.failing_run_of_pr {
        if let Some(pr) = &facts.pr {
            facts.failing_run =
                f.gh.failed_run_for(&f.owner, &f.repo, &pr.head_sha)
                    .map_err(forge_err)?;
        }
    }
    if let (Event::Review(e), Some(pr)) = (event, &facts.pr) {
        *extra =
            f.gh.review_comments(&f.owner, &f.repo, pr.number, e.review.id)
                .map_err(forge_err)?;
    }
    let Some(branch) = branch else {
        return Ok(());
    };
    let git_err = |e: vcs::VcsError| Error::infra("cannot read the fix branch").source(e);
    let base = facts
        .pr
        .as_ref()
        .map(|p| p.base_branch.clone())
        .or_else(|| event.repository().default_branch.clone())
        .unwrap_or_else(|| "main".into());
    let base_ref = match vcs::fix_branch::fetch_branch(root, remote, &base).map_err(git_err)? {
        Some(oid) => oid.to_string(),
        None => base.clone(),
    };
    if let Some(tip) = vcs::fix_branch::fetch_branch(root, remote, &branch).map_err(git_err)? {
        facts.branch = Some(vcs::fix_branch::history(root, tip, &base_ref).map_err(git_err)?);
    }
    let used = facts.branch.as_ref().map_or(0, |h| h.attempts_used());
    if used >= config.max_attempts {
        let signature = facts
            .pr
            .as_ref()
            .and_then(|p| PrBlock::find(&p.body))
            .and_then(|b| b.signature);
        facts.escalation = escalated(f, &branch, signature.as_deref())?;
    }
    Ok(())
}

/// The escalation issue that already names fix branch `branch`: an open issue with the
/// branch's marker in its body, or the open issue of the failure `signature` with the marker
/// in its body or one of its comments (a later exhaustion of the same failure commented there).
fn escalated(f: &Forge, branch: &str, signature: Option<&str>) -> Result<Option<String>> {
    let marker = forge::branch_marker(branch);
    if let Some((_, url)) = f.gh.find_escalation(&f.owner, &f.repo, &marker)? {
        return Ok(Some(url));
    }
    let Some(sig) = signature else {
        return Ok(None);
    };
    let Some((n, url)) =
        f.gh.find_escalation(&f.owner, &f.repo, &forge::signature_marker(sig))?
    else {
        return Ok(None);
    };
    let comments = f.gh.comment_bodies(&f.owner, &f.repo, n)?;
    Ok(comments.iter().any(|c| c.contains(&marker)).then_some(url))
}

/// The fix branch that already addresses failure `signature`: an open fixci PR whose hidden
/// block names the signature or whose head is `name` (the branch named after it), else `name`
/// on the remote.
fn existing_fix(
    f: &Forge,
    root: &Path,
    remote: &str,
    signature: &str,
    name: &str,
) -> Result<Option<ExistingFix>> {
    let prs =
        f.gh.open_pulls_with_head_prefix(&f.owner, &f.repo, ci_event::BRANCH_PREFIX)?;
    if let Some(pr) = prs.into_iter().find(|p| {
        p.head_branch == name
            || PrBlock::find(&p.body).is_some_and(|b| b.signature.as_deref() == Some(signature))
    }) {
        return Ok(Some(ExistingFix {
            branch: pr.head_branch.clone(),
            pr: Some(pr),
        }));
    }
    let tip = vcs::fix_branch::fetch_tracking(root, remote, name)
        .map_err(|e| Error::infra(format!("cannot fetch `{name}`")).source(e))?;
    Ok(tip.map(|_| ExistingFix {
        branch: name.to_string(),
        pr: None,
    }))
}

/// A repository's configuration serves every pipeline its events can select: a `budgets` key
/// must name `total` or a stage of some available pipeline (a typo is exit 2 naming the file
/// and key); keys for another pipeline's stages are dropped per run ([`only_selected_budgets`]).
fn budgets_in_some_pipeline(spec: &spec::LoadedSpec, root: &Path) -> Result<()> {
    let all = crate::pipeline::available(&[spec.dir.clone(), root.to_path_buf()])?;
    let mut ids: Vec<String> = all
        .iter()
        .flat_map(|l| l.all_stages().into_iter().map(|s| s.id.clone()))
        .collect();
    ids.sort();
    ids.dedup();
    let unknown: Vec<String> = spec
        .spec
        .budgets
        .stages
        .keys()
        .filter(|k| *k != "total" && !ids.contains(k))
        .map(|k| {
            format!(
                "{}: no stage `{k}` in any pipeline (stages: {}, or `total`)",
                spec::pointer(&["budgets", k]),
                ids.join(", ")
            )
        })
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    Err(Error::usage(format!("invalid job spec `{}`", spec.path.display())).details(unknown))
}

/// What an event run ended with.
struct Report {
    status: String,
    detail: String,
    pr_url: Option<String>,
    branch: Option<String>,
    code: u8,
}

impl Report {
    fn new(status: &str, detail: String) -> Report {
        Report {
            status: status.into(),
            detail,
            pr_url: None,
            branch: None,
            code: exit_codes::SUCCESS,
        }
    }

    /// Prints the outcome and writes `$GITHUB_STEP_SUMMARY` and `$GITHUB_OUTPUT` when set.
    fn publish(&self, event: &Event, decision: &Decision) {
        outln!("status: {}", self.status);
        outln!("{}", self.detail);
        if let Some(u) = &self.pr_url {
            outln!("pr: {u}");
        }
        if let Some(b) = &self.branch {
            outln!("branch: {b}");
        }
        let one_line = |s: &str| s.replace(['\r', '\n'], " ");
        if let Some(p) = std::env::var_os("GITHUB_STEP_SUMMARY") {
            let mut md = format!(
                "## fixci: {}\n\n- event: `{}`\n- decision: {}\n- plan: {}\n- status: `{}`\n- {}\n",
                decision.case(),
                event.name(),
                decision.case(),
                one_line(&decision.plan()),
                self.status,
                one_line(&self.detail)
            );
            if let Some(u) = &self.pr_url {
                md.push_str(&format!("- PR: {u}\n"));
            }
            if let Some(b) = &self.branch {
                md.push_str(&format!("- branch: `{b}`\n"));
            }
            append(Path::new(&p), &format!("{md}\n"));
        }
        if let Some(p) = std::env::var_os("GITHUB_OUTPUT") {
            let text = format!(
                "status={}\npr-url={}\nbranch={}\n",
                one_line(&self.status),
                one_line(self.pr_url.as_deref().unwrap_or_default()),
                one_line(self.branch.as_deref().unwrap_or_default())
            );
            append(Path::new(&p), &text);
        }
    }
}

fn append(path: &Path, text: &str) {
    let r = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()));
    if let Err(e) = r {
        errln!("warning: cannot write `{}`: {e}", path.display());
    }
}

/// Does what `decision` says.
#[allow(clippy::too_many_arguments)]
fn act(
    args: &RunArgs,
    event: &Event,
    decision: &Decision,
    forge: Option<&Forge>,
    doc: &Value,
    doc_path: &Path,
    doc_dir: &Path,
    root: &Path,
) -> Result<Report> {
    let status = decision.status();
    let f = || forge.ok_or_else(|| Error::infra("no forge client for this event"));
    let comment = |number: u64, body: &str| -> Result<String> {
        let f = f()?;
        f.gh.comment(&f.owner, &f.repo, number, body)
            .map_err(Error::from)
    };
    Ok(match decision {
        Decision::Ignore { reason } => Report::new(status, format!("nothing to do: {reason}")),
        Decision::Refuse {
            login,
            association,
            number,
        } => {
            let url = comment(
                *number,
                &format!(
                    "Thanks @{login}! fixci only takes `/fixci` commands and change requests from people with write access to this repository (owners, members and collaborators; you are `{}`), so it will not act on this one. A maintainer can ask for it instead.",
                    association.to_ascii_lowercase()
                ),
            )?;
            Report::new(status, format!("refused @{login} ({association}): {url}"))
        }
        Decision::HumanCommitted {
            branch,
            commit,
            author,
            pr,
        } => {
            let text = format!(
                "fixci stops here: commit {} on `{branch}` is by {author}, not fixci, so fixci makes no further automatic attempt on this branch. It is yours now.",
                &commit[..commit.len().min(10)]
            );
            let mut r = Report::new(status, text.clone());
            if let Some(pr) = pr {
                comment(pr.number, &text)?;
                r.pr_url = Some(pr.html_url.clone());
            }
            r.branch = Some(branch.clone());
            r
        }
        Decision::FinishPr {
            branch,
            pr,
            ready,
            attempts,
        } => {
            let f = f()?;
            let text = if *ready {
                f.gh.mark_ready_for_review(&pr.node_id)
                    .map_err(Error::from)?;
                format!(
                    "CI is green on `{branch}` after {attempts} fixci attempt(s): marked ready for review."
                )
            } else {
                format!(
                    "CI is green on `{branch}` after {attempts} fixci attempt(s). The PR stays a draft (`pr.ready-on-green` is off): review it and mark it ready when it suits you."
                )
            };
            comment(pr.number, &text)?;
            let mut r = Report::new(status, text);
            r.pr_url = Some(pr.html_url.clone());
            r.branch = Some(branch.clone());
            r
        }
        Decision::Escalate {
            branch,
            attempts,
            original_run,
            signature,
            last_run,
            pr,
        } => {
            let f = f()?;
            let mut body = format!(
                "fixci made {attempts} attempt(s) on `{branch}` and CI still fails; a person has to take over.\n\n- original failure: {}\n- last failed run: {last_run}\n",
                original_run.as_deref().unwrap_or("unknown")
            );
            if let Some(pr) = pr {
                body.push_str(&format!("- pull request: {}\n", pr.html_url));
            }
            if let Some(sig) = signature {
                body.push_str(&format!(
                    "- failure signature: `{}`\n",
                    sig.replace('`', "'")
                ));
            }
            body.push_str(&format!("\n{}\n", forge::branch_marker(branch)));
            // De-duplicated by failure signature: an open issue with it gets this as a comment.
            let signature = signature
                .clone()
                .or_else(|| original_run.clone())
                .unwrap_or_else(|| branch.clone());
            let e =
                f.gh.escalate(
                    &f.owner,
                    &f.repo,
                    &format!("fixci could not fix `{branch}` in {attempts} attempt(s)"),
                    &body,
                    &signature,
                )
                .map_err(Error::from)?;
            if let Some(pr) = pr {
                comment(
                    pr.number,
                    &format!(
                        "fixci used its {attempts} attempt(s); escalated in {}",
                        e.html_url
                    ),
                )?;
            }
            let what = if e.commented_existing {
                "escalation issue of the same failure commented"
            } else {
                "escalation issue opened"
            };
            let mut r = Report::new(status, format!("{what}: {}", e.html_url));
            r.pr_url = pr.as_ref().map(|p| p.html_url.clone());
            r.branch = Some(branch.clone());
            r.code = exit_codes::NO_FIX;
            r
        }
        Decision::SameFailure {
            run_url,
            signature,
            existing,
        } => same_failure(f()?, run_url, signature, existing)?,
        Decision::AlreadyEscalated { branch, issue_url } => {
            let mut r = Report::new(status, format!("already escalated: {issue_url}"));
            r.branch = Some(branch.clone());
            r.code = exit_codes::NO_FIX;
            r
        }
        Decision::NoAttemptsLeft {
            branch,
            attempts,
            pr,
        } => {
            let text = format!(
                "fixci used all {attempts} attempt(s) on `{branch}` and makes no more; take it from here."
            );
            let mut r = Report::new(status, text.clone());
            if let Some(pr) = pr {
                comment(pr.number, &text)?;
                r.pr_url = Some(pr.html_url.clone());
            }
            r.branch = Some(branch.clone());
            r
        }
        Decision::OpenFix {
            base,
            run_url,
            feedback,
            reply_to,
            failure,
        } => {
            // The base branch as the remote has it (a non-default branch may not be local).
            vcs::fix_branch::fetch_branch(root, &remote_of(doc), base)
                .map_err(|e| Error::infra(format!("cannot fetch `{base}`")).source(e))?;
            let v = spec_value(doc, base, Input::Run(run_url), feedback.as_ref());
            let max = config_of(doc).max_attempts;
            let failure_ref = failure.as_ref().map(|(s, b)| (s.as_str(), b.as_str()));
            let ci = CiRun::first(run_url, base, Some(run_url), max, failure_ref);
            let ran = run_engine(args, v, doc_path, doc_dir, root, ci, 1, max);
            // Another run for the same failure may have pushed the branch first: its push won,
            // ours was refused; that is case 1's "already addressed", not an error.
            let r = match (ran, failure, forge) {
                (Ok(r), _, _) if r.pr_url.is_some() => r,
                (ran, Some((sig, name)), Some(f)) => {
                    match lost_race(f, root, &remote_of(doc), run_url, sig, name)? {
                        Some(existing) => same_failure(f, run_url, sig, &existing)?,
                        None => ran?,
                    }
                }
                (ran, _, _) => ran?,
            };
            if let (Some(n), Some(f)) = (reply_to, forge) {
                let _ = f.gh.comment(
                    &f.owner,
                    &f.repo,
                    *n,
                    &format!(
                        "fixci: {} ({})",
                        r.detail,
                        r.pr_url.as_deref().unwrap_or("no PR")
                    ),
                );
            }
            r
        }
        Decision::NextAttempt {
            branch,
            base,
            attempt,
            max,
            run_url,
            feedback,
            pr,
        } => {
            // The attempt starts from the fix branch's tip: it is the attempt's `base`.
            let v = spec_value(doc, branch, Input::Run(run_url), feedback.as_ref());
            let ci = CiRun {
                attempt: *attempt,
                run_url: feedback
                    .as_ref()
                    .and_then(|f| f.url.clone())
                    .unwrap_or_else(|| run_url.clone()),
                continue_branch: Some(branch.clone()),
                pr: pr.as_ref().map(|p| (p.number, p.html_url.clone())),
                block: PrBlock {
                    branch: branch.clone(),
                    base: base.clone(),
                    original_run: None,
                    signature: None,
                    max_attempts: *max,
                },
            };
            run_engine(args, v, doc_path, doc_dir, root, ci, *attempt, *max)?
        }
        Decision::Task { issue, feedback } => {
            let r = event.repository();
            let v = spec_value(
                doc,
                r.default_branch.as_deref().unwrap_or("main"),
                Input::Issue(&format!("{}#{issue}", r.full_name)),
                feedback.as_ref(),
            );
            let max = config_of(doc).max_attempts;
            let page = format!("{}/issues/{issue}", r.html_url.clone().unwrap_or_default());
            let base = r.default_branch.clone().unwrap_or_else(|| "main".into());
            let ci = CiRun::first(&page, &base, None, max, None);
            run_engine(args, v, doc_path, doc_dir, root, ci, 1, max)?
        }
    })
}

/// Case 1 for a failure a fix branch already addresses: one comment on its open PR naming the
/// new failed run (none when the run is the PR's own origin or a comment already names it, so
/// a redelivered event changes nothing); exit 0.
fn same_failure(
    f: &Forge,
    run_url: &str,
    signature: &str,
    existing: &ExistingFix,
) -> Result<Report> {
    let branch = &existing.branch;
    let Some(pr) = &existing.pr else {
        let mut r = Report::new(
            "duplicate",
            format!(
                "`{branch}` (the fix branch of this failure) is already on the remote with no open PR: another run is working on it, or its PR was closed; no second branch. Delete the branch to let fixci try again."
            ),
        );
        r.branch = Some(branch.clone());
        return Ok(r);
    };
    let marker = run_marker(run_url);
    let origin = PrBlock::find(&pr.body).and_then(|b| b.original_run);
    let detail = if origin.as_deref() == Some(run_url) {
        format!(
            "{run_url} is the run PR #{} was opened for; nothing to add",
            pr.number
        )
    } else if f
        .gh
        .comment_bodies(&f.owner, &f.repo, pr.number)?
        .iter()
        .any(|c| c.contains(&marker))
    {
        format!("PR #{} already names {run_url}; nothing to add", pr.number)
    } else {
        let body = format!(
            "CI failed again with the same failure in {run_url} (failure signature `{}`). fixci keeps working on this PR rather than opening another branch.\n\n{marker}\n",
            signature.replace('`', "'")
        );
        let url = f.gh.comment(&f.owner, &f.repo, pr.number, &body)?;
        format!(
            "the same failure is addressed by PR #{}: commented {url}",
            pr.number
        )
    };
    let mut r = Report::new("duplicate", detail);
    r.pr_url = Some(pr.html_url.clone());
    r.branch = Some(branch.clone());
    Ok(r)
}

/// After a case-1 run that published no PR: the fix branch `name` of failure `signature` as
/// another run left it, when the remote has it and its tip is not this run's (its
/// `Fixci-Run` trailer names another run); `None` when this run's own result stands.
fn lost_race(
    f: &Forge,
    root: &Path,
    remote: &str,
    run_url: &str,
    signature: &str,
    name: &str,
) -> Result<Option<ExistingFix>> {
    let git_err = |e: vcs::VcsError| Error::infra(format!("cannot read `{name}`")).source(e);
    let Some(tip) = vcs::fix_branch::fetch_tracking(root, remote, name).map_err(git_err)? else {
        return Ok(None);
    };
    let repo = vcs::open(root).map_err(|e| Error::infra("cannot open the repository").source(e))?;
    let message = repo
        .find_commit(tip)
        .map(|c| c.message().unwrap_or_default().to_string())
        .unwrap_or_default();
    let theirs = ci_event::state::parse_trailers(&message).and_then(|t| t.1);
    if theirs.as_deref() == Some(run_url) {
        return Ok(None);
    }
    Ok(
        existing_fix(f, root, remote, signature, name)?.or(Some(ExistingFix {
            branch: name.to_string(),
            pr: None,
        })),
    )
}

/// Drops the `budgets` keys of a repository configuration that name no stage of the pipeline
/// this run selects (they are for another pipeline the repository's events can select; typos
/// were refused by [`budgets_in_some_pipeline`]), with a note on stderr each.
fn only_selected_budgets(loaded: &mut spec::LoadedSpec, args: &RunArgs, root: &Path) -> Result<()> {
    let mut bare = loaded.clone();
    bare.spec.budgets.stages.retain(|k, _| k == "total");
    let root_s = root.display().to_string();
    let probe = super::run::request(
        bare,
        args.pipeline.as_deref(),
        args.agent.as_deref(),
        Some(&root_s),
        PathBuf::new(),
    )?;
    let ids: Vec<String> = probe
        .pipeline
        .all_stages()
        .iter()
        .map(|s| s.id.clone())
        .collect();
    let name = probe.pipeline.pipeline.name.clone();
    let file = loaded.path.display().to_string();
    loaded.spec.budgets.stages.retain(|k, _| {
        let keep = k == "total" || ids.contains(k);
        if !keep {
            errln!(
                "note: `{file}`: {} names a stage of another pipeline, not of `{name}` (this run's); ignored for this run",
                spec::pointer(&["budgets", k])
            );
        }
        keep
    });
    Ok(())
}

/// Runs the ordinary engine on the spec `v` as attempt `attempt` of `max` on its fix branch:
/// the attempts ladder of the pipeline picks this attempt's agent and model (fixed for the
/// run's one engine attempt).
#[allow(clippy::too_many_arguments)]
fn run_engine(
    args: &RunArgs,
    v: Value,
    doc_path: &Path,
    doc_dir: &Path,
    root: &Path,
    ci: CiRun,
    attempt: u32,
    max: u32,
) -> Result<Report> {
    super::run::install_signal_handlers();
    let mut loaded = spec::from_value(v, doc_path, doc_dir)?;
    if args.spec.is_none() {
        only_selected_budgets(&mut loaded, args, root)?;
    }
    if let Some(m) = &args.model {
        loaded.spec.model = Some(m.clone());
        loaded.model_flag = Some(m.clone());
    }
    let out_dir = spec::absolute(&args.out.clone().unwrap_or_else(|| PathBuf::from("outputs")));
    let root_s = root.display().to_string();
    let probe = super::run::request(
        loaded.clone(),
        args.pipeline.as_deref(),
        args.agent.as_deref(),
        Some(&root_s),
        out_dir.clone(),
    )?;
    // The model by attempt: the pipeline's ladder for the branch's attempt number.
    let chosen = probe
        .pipeline
        .pipeline
        .stages
        .iter()
        .find(|d| d.kind == crate::pipeline::StageKind::Attempts)
        .map(|d| engine::ladder::choose(&probe, d, attempt, max))
        .transpose()?
        .filter(|c| c.from_ladder);
    drop(probe);
    if let Some(c) = &chosen {
        if let Some(m) = &c.model {
            loaded.spec.model = Some(m.clone());
            loaded.model_flag = Some(m.clone());
        }
    }
    loaded.ci = Some(ci);
    let mut req = super::run::request(
        loaded,
        args.pipeline.as_deref(),
        args.agent.as_deref(),
        Some(&root_s),
        out_dir,
    )?;
    if let Some(c) = chosen {
        req.agent = c.agent;
        req.agent_flag = Some(req.agent.name.clone());
    }
    req.api_url = args.api_url.clone();
    req.no_pr = args.no_pr;
    let mut progress = Progress::new();
    let outcome = engine::run(req, &mut progress);
    progress.finish();
    let outcome = outcome?;
    let st = RunDir::new(&outcome.run_dir).load_state().ok();
    let (branch, pr_url) = super::run::published(st.as_ref());
    let mut r = Report::new(
        outcome.status.as_str(),
        format!(
            "attempt {attempt} of {max}: {}{}; report: {}",
            outcome.status.as_str(),
            outcome
                .reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default(),
            RunDir::new(&outcome.run_dir).report_file().display()
        ),
    );
    r.branch = branch;
    r.pr_url = pr_url;
    r.code = match outcome.status {
        Status::Success => exit_codes::SUCCESS,
        Status::Interrupted => exit_codes::INTERRUPTED,
        _ => exit_codes::NO_FIX,
    };
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fix_branch_is_named_after_the_failure_signature() {
        let a = "mathlib.tests.test_stats.TestMean.test_mean: AssertionError: N != N";
        let name = fix_branch_name(a);
        assert_eq!(name, fix_branch_name(a), "stable");
        assert!(name.starts_with("fixci/test-mean-"), "{name}");
        assert_eq!(name.len(), "fixci/test-mean-".len() + 8, "{name}");
        // Another failure of the same test is another branch.
        assert_ne!(
            name,
            fix_branch_name("mathlib.tests.test_stats.TestMean.test_mean: KeyError: 'x'")
        );
    }

    #[test]
    fn run_markers_are_one_hidden_line() {
        let m = run_marker("https://e/x?a=1 -->\nb");
        assert_eq!(m.matches("-->").count(), 1, "{m}");
        assert!(!m.contains('\n'));
    }
}
