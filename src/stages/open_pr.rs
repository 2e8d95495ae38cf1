//! `open-pr`: publishes the fix. Without a forge token, or with `--no-pr`, it writes the
//! offline proposal: `pr.md` (title and body) and the exact `git push` and `gh pr create
//! --draft` commands that publish it.

use super::{Stage, StageCtx, StageResult};
use crate::engine::state::{PrState, StageStatus};
use crate::error::{Error, io_error};
use crate::process::shell_quote;

/// The `open-pr` stage.
pub struct OpenPr;

impl Stage for OpenPr {
    fn run(&self, cx: &mut StageCtx<'_>) -> Result<StageResult, Error> {
        if cx.st.commit.is_none() {
            return Ok(StageResult::new(
                StageStatus::Skipped,
                "no fix commit to propose",
            ));
        }
        let spec = cx.env.spec();
        let branch = cx.st.branch.clone().unwrap_or_default();
        let title = crate::report::title(cx.st, spec);
        let body = crate::redact::redact(&crate::report::pr_body(cx.st, spec));
        let body_file = cx.env.run_dir.join("pr.md");
        std::fs::write(&body_file, format!("# {title}\n\n{body}"))
            .map_err(|e| io_error("write", &body_file, e))?;
        let body_only = cx.dir.join("pr-body.md");
        std::fs::write(&body_only, &body).map_err(|e| io_error("write", &body_only, e))?;
        let remote = spec
            .spec
            .pr
            .remote
            .clone()
            .unwrap_or_else(|| "origin".into());
        let root = cx.st.repo.root.display().to_string();
        let mut gh = format!(
            "gh pr create --draft --base {} --head {} --title {} --body-file {}",
            shell_quote(&cx.st.repo.base),
            shell_quote(&branch),
            shell_quote(&title),
            shell_quote(&body_only.display().to_string())
        );
        if !spec.spec.pr.draft {
            gh = gh.replace(" --draft", "");
        }
        for l in &spec.spec.pr.labels {
            gh.push_str(&format!(" --label {}", shell_quote(l)));
        }
        for r in &spec.spec.pr.reviewers {
            gh.push_str(&format!(" --reviewer {}", shell_quote(r)));
        }
        let commands = vec![
            format!(
                "git -C {} push {} {}",
                shell_quote(&root),
                shell_quote(&remote),
                shell_quote(&branch)
            ),
            format!("cd {} && {gh}", shell_quote(&root)),
        ];
        cx.st.pr = Some(PrState {
            mode: "proposal".into(),
            branch: branch.clone(),
            title,
            body_file,
            commands,
            url: None,
        });
        let why = if cx.env.req.no_pr {
            "`--no-pr`"
        } else {
            "no forge token"
        };
        Ok(StageResult::passed(format!(
            "PR proposal written ({why}): push `{branch}` and open the draft PR with the commands in the report"
        )))
    }
}
