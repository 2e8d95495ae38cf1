//! `fixci replay emit`: the manifests that run a sharded replay on a cluster scheduler: a
//! Kubernetes Indexed Job (plus a suspended merge Job) or a GitHub Actions matrix workflow
//! (plus a merge job). Pure: returns text; the CLI prints or writes it.
//!
//! Both are YAML, built as `serde_json` values and written by [`to_yaml`], a small block-style
//! emitter in which every string is a double-quoted scalar with JSON escapes. A JSON string
//! literal is a valid YAML double-quoted scalar (YAML 1.2 §7.3.1 is a superset of JSON's
//! escapes), so no value can change type (`on`, `no`, `1.10`, `*x`) or break the structure,
//! whatever it contains. YAML rather than plain JSON because the header comment carries the
//! follow-up commands, and GitHub workflows are read by people. No YAML crate is needed
//! (`serde_yaml` is unmaintained).
//!
//! What cannot be quoted away is refused (exit 2): newlines and NUL in a value, and `${{` in
//! a GitHub value (Actions would evaluate it as an expression before the shell runs). In
//! Kubernetes `args`, `$(` is escaped as `$$(` so a path is never expanded as a variable.

use serde_json::{Map, Value, json};

use crate::error::Error;

/// What a replay emits manifests for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmitOptions {
    /// Number of shards (>= 1).
    pub shards: u32,
    /// Case corpus path, as seen by the runner (inside the container, or in the checkout).
    pub cases: String,
    /// Variant paths, as seen by the runner.
    pub variants: Vec<String>,
    /// Output root: Kubernetes: the shared volume's mount path (default `/replay`); GitHub:
    /// the folder in the workspace (default `replay-out`).
    pub out: Option<String>,
    /// Container image with fixci, git and the agents' CLIs (Kubernetes default
    /// `fixci:latest`; GitHub: jobs run in it when given).
    pub image: Option<String>,
    /// `--epochs` passed to `fixci replay run`.
    pub epochs: Option<u32>,
    /// `-j` passed to `fixci replay run`.
    pub jobs: Option<u32>,
    /// `--agent` passed to `fixci replay run`.
    pub agent: Option<String>,
    /// Name of the Jobs / workflow (a DNS-1123 label, at most 50 characters).
    pub name: String,
    /// Environment variables the agents need (API keys): from the Kubernetes Secret
    /// `<name>-secrets`, or from GitHub repository secrets of the same name.
    pub secrets: Vec<String>,
    /// Kubernetes: an existing PersistentVolumeClaim to use instead of emitting `<name>-data`.
    pub pvc: Option<String>,
    /// Kubernetes: size requested by the emitted claim (default `10Gi`).
    pub storage: String,
    /// GitHub without `image`: the shell command that installs fixci on the runner.
    pub install: String,
}

impl Default for EmitOptions {
    fn default() -> Self {
        Self {
            shards: 1,
            cases: "cases".into(),
            variants: Vec::new(),
            out: None,
            image: None,
            epochs: None,
            jobs: None,
            agent: None,
            name: "fixci-replay".into(),
            secrets: Vec::new(),
            pvc: None,
            storage: "10Gi".into(),
            install: "cargo install --locked fixci".into(),
        }
    }
}

/// The Kubernetes manifests as one multi-document YAML stream: the PersistentVolumeClaim
/// `<name>-data` (unless `pvc` is given), the Indexed Job `<name>-shards`
/// (`completionMode: Indexed`, `completions` = `parallelism` = shards) whose pod `i` runs
/// `fixci replay run ... --shard auto/N --resume --out <out>/shard-i` (the index comes from
/// `JOB_COMPLETION_INDEX`, which the Job controller sets; `--resume` makes a retried pod skip
/// finished items), and the Job `<name>-merge`, created suspended, whose init container runs
/// `fixci replay merge ... --require-complete` and whose container runs `fixci replay report`.
/// Kubernetes has no dependency between Jobs: the header comment gives the `kubectl wait` and
/// `kubectl patch` commands that start the merge after the shards complete.
/// Reference: "Indexed Job for Parallel Processing with Static Work Assignment", kubernetes.io
/// docs (batch/v1 Job, `completionMode`, `backoffLimitPerIndex`, `suspend`).
///
/// Errors (exit 2): an invalid name, secret name or value (see the module documentation).
pub fn k8s(o: &EmitOptions) -> Result<String, Error> {
    check_common(o, false)?;
    let out = o.out.clone().unwrap_or_else(|| "/replay".into());
    check_value("--out", &out, false)?;
    let out = out.trim_end_matches('/').to_owned();
    let out = if out.is_empty() { "/".to_owned() } else { out };
    let kq = |s: &str| s.replace("$(", "$$(");
    let image = o.image.clone().unwrap_or_else(|| "fixci:latest".into());
    let name = &o.name;
    let claim = o.pvc.clone().unwrap_or_else(|| format!("{name}-data"));
    let secret = format!("{name}-secrets");
    let n = o.shards;

    let mut run_args = vec!["replay".to_owned(), "run".to_owned(), kq(&o.cases)];
    for v in &o.variants {
        run_args.push("--variant".into());
        run_args.push(kq(v));
    }
    push_run_options(o, &mut run_args, kq);
    run_args.extend([
        "--shard".into(),
        format!("auto/{n}"),
        "--resume".into(),
        "--out".into(),
        format!("{}/shard-$(JOB_COMPLETION_INDEX)", kq(&out)),
    ]);
    let env: Vec<Value> = o
        .secrets
        .iter()
        .map(|s| json!({"name": s, "valueFrom": {"secretKeyRef": {"name": secret, "key": s}}}))
        .collect();
    let labels = |component: &str| {
        json!({
            "app.kubernetes.io/name": "fixci-replay",
            "app.kubernetes.io/instance": name,
            "app.kubernetes.io/component": component,
        })
    };
    let mount = json!([{"name": "data", "mountPath": out}]);
    let volumes = json!([{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]);
    let mut shard_container = json!({
        "name": "shard",
        "image": image,
        "command": ["fixci"],
        "args": run_args,
        "volumeMounts": mount,
    });
    if !env.is_empty() {
        shard_container["env"] = Value::Array(env.clone());
    }
    let shards_job = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": format!("{name}-shards"), "labels": labels("shard")},
        "spec": {
            "completionMode": "Indexed",
            "completions": n,
            "parallelism": n,
            "backoffLimitPerIndex": 2,
            "template": {
                "metadata": {"labels": labels("shard")},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [shard_container],
                    "volumes": volumes,
                },
            },
        },
    });
    let mut merge_args = vec!["replay".to_owned(), "merge".to_owned()];
    merge_args.extend((0..n).map(|i| format!("{}/shard-{i}", kq(&out))));
    merge_args.extend([
        "--out".into(),
        format!("{}/merged", kq(&out)),
        "--require-complete".into(),
    ]);
    let merge_job = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": format!("{name}-merge"), "labels": labels("merge")},
        "spec": {
            "suspend": true,
            "backoffLimit": 1,
            "template": {
                "metadata": {"labels": labels("merge")},
                "spec": {
                    "restartPolicy": "Never",
                    "initContainers": [{
                        "name": "merge",
                        "image": image,
                        "command": ["fixci"],
                        "args": merge_args,
                        "volumeMounts": mount,
                    }],
                    "containers": [{
                        "name": "report",
                        "image": image,
                        "command": ["fixci"],
                        "args": ["replay", "report", format!("{}/merged", kq(&out))],
                        "volumeMounts": mount,
                    }],
                    "volumes": volumes,
                },
            },
        },
    });

    let mut text = format!(
        "# fixci replay on Kubernetes: {n} shard(s) in the Indexed Job `{name}-shards`, then the\n\
         # suspended Job `{name}-merge` (merge --require-complete, then report). Generated by\n\
         # `fixci replay emit k8s`. Run it with:\n\
         #   kubectl apply -f THIS_FILE\n\
         #   kubectl wait --for=condition=complete --timeout=24h job/{name}-shards\n\
         #   kubectl patch job {name}-merge --type=merge -p '{{\"spec\":{{\"suspend\":false}}}}'\n\
         #   kubectl wait --for=condition=complete --timeout=1h job/{name}-merge\n\
         #   kubectl logs job/{name}-merge -c report   # the Markdown report\n\
         # The claim `{claim}` (ReadWriteMany) is mounted at its output root and holds shard-0 ..\n\
         # shard-{last}, merged/ and the report files. The cases and variants are paths inside\n\
         # the container: bake them into the image or put them on the volume.\n",
        last = n - 1,
    );
    if !o.secrets.is_empty() {
        text.push_str(&format!(
            "# Agent secrets come from the Secret `{secret}`:\n#   kubectl create secret generic {secret} {}\n",
            o.secrets
                .iter()
                .map(|s| format!("--from-literal={s}=..."))
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    if o.pvc.is_none() {
        let pvc = json!({
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": claim, "labels": labels("data")},
            "spec": {
                "accessModes": ["ReadWriteMany"],
                "resources": {"requests": {"storage": o.storage}},
            },
        });
        text.push_str("---\n");
        text.push_str(&to_yaml(&pvc));
    }
    text.push_str("---\n");
    text.push_str(&to_yaml(&shards_job));
    text.push_str("---\n");
    text.push_str(&to_yaml(&merge_job));
    Ok(text)
}

/// The GitHub Actions workflow (`workflow_dispatch`): a job `shard` with a matrix over shard
/// indices `0..N-1`, each running `fixci replay run ... --shard i/N --out <out>/shard-i` and
/// uploading that folder as the artifact `<name>-shard-i` (actions/upload-artifact), and a job
/// `merge` that `needs` the matrix, downloads the artifacts (actions/download-artifact with a
/// name pattern), runs `fixci replay merge ... --require-complete` and `fixci replay report`
/// (Markdown into the job summary) and uploads the merged folder with the report files.
/// Jobs run in `image` when given, else on `ubuntu-latest` after the `install` command.
/// Reference: GitHub Actions workflow syntax (`jobs.<id>.strategy.matrix`, `needs`,
/// `container`) and the artifact actions' READMEs (one artifact per name; several matched by a pattern are downloaded
/// into `<path>/<name>/` when several match).
///
/// Errors (exit 2): an invalid name, secret name or value (see the module documentation).
pub fn gha(o: &EmitOptions) -> Result<String, Error> {
    check_common(o, true)?;
    check_value("--install", &o.install, true)?;
    let out = o.out.clone().unwrap_or_else(|| "replay-out".into());
    check_value("--out", &out, true)?;
    let out = out.trim_end_matches('/').to_owned();
    let name = &o.name;
    let n = o.shards;

    let mut run = vec![
        "fixci".to_owned(),
        "replay".into(),
        "run".into(),
        shell_quote(&o.cases),
    ];
    for v in &o.variants {
        run.push("--variant".into());
        run.push(shell_quote(v));
    }
    push_run_options(o, &mut run, shell_quote);
    let out_q = shell_quote(&out);
    run.extend([
        "--shard".into(),
        format!("\"$SHARD/{n}\""),
        "--out".into(),
        format!("{out_q}/\"shard-$SHARD\""),
    ]);

    let mut env = Map::new();
    for s in &o.secrets {
        env.insert(s.clone(), Value::String(format!("${{{{ secrets.{s} }}}}")));
    }
    let setup = |steps: &mut Vec<Value>| {
        steps.push(json!({"uses": "actions/checkout@v5"}));
        if o.image.is_none() {
            steps.push(json!({"name": "Install fixci", "run": o.install}));
        }
    };
    let mut shard_steps = Vec::new();
    setup(&mut shard_steps);
    let mut run_step = json!({
        "name": "Replay one shard",
        "env": {"SHARD": "${{ matrix.shard }}"},
        "run": run.join(" "),
    });
    for (k, v) in &env {
        run_step["env"][k] = v.clone();
    }
    shard_steps.push(run_step);
    shard_steps.push(json!({
        "name": "Upload the shard's records",
        "if": "${{ !cancelled() }}",
        "uses": "actions/upload-artifact@v6",
        "with": {
            "name": format!("{name}-shard-${{{{ matrix.shard }}}}"),
            "path": format!("{out}/shard-${{{{ matrix.shard }}}}"),
            "if-no-files-found": "error",
        },
    }));
    let mut shard_job = json!({
        "name": format!("shard ${{{{ matrix.shard }}}} of {n}"),
        "runs-on": "ubuntu-latest",
        "strategy": {"fail-fast": false, "matrix": {"shard": (0..n).collect::<Vec<_>>()}},
        "steps": shard_steps,
    });

    let mut merge_steps = Vec::new();
    setup(&mut merge_steps);
    let dl = format!("{out}/shards");
    merge_steps.push(json!({
        "name": "Download the shards",
        "uses": "actions/download-artifact@v7",
        "with": {"pattern": format!("{name}-shard-*"), "path": dl},
    }));
    let shard_dirs: Vec<String> = (0..n)
        .map(|i| shell_quote(&format!("{dl}/{name}-shard-{i}")))
        .collect();
    let merged = shell_quote(&format!("{out}/merged"));
    merge_steps.push(json!({
        "name": "Merge",
        "run": format!("fixci replay merge {} --out {merged} --require-complete", shard_dirs.join(" ")),
    }));
    merge_steps.push(json!({
        "name": "Report",
        "run": format!("fixci replay report {merged} --format md >> \"$GITHUB_STEP_SUMMARY\""),
    }));
    merge_steps.push(json!({
        "name": "Upload the merged records and the report",
        "uses": "actions/upload-artifact@v6",
        "with": {"name": format!("{name}-report"), "path": format!("{out}/merged")},
    }));
    let mut merge_job = json!({
        "needs": "shard",
        "runs-on": "ubuntu-latest",
        "steps": merge_steps,
    });
    if let Some(img) = &o.image {
        shard_job["container"] = json!({"image": img});
        merge_job["container"] = json!({"image": img});
    }
    let workflow = json!({
        "name": name,
        "on": {"workflow_dispatch": {}},
        "permissions": {"contents": "read"},
        "jobs": {"shard": shard_job, "merge": merge_job},
    });
    Ok(format!(
        "# fixci replay on GitHub Actions: {n} shard(s) in a matrix, then a merge job.\n\
         # Generated by `fixci replay emit gha`; save as .github/workflows/{name}.yml and start it\n\
         # from the Actions tab (workflow_dispatch). Paths are relative to the checkout.\n{}",
        to_yaml(&workflow)
    ))
}

fn push_run_options(o: &EmitOptions, args: &mut Vec<String>, q: impl Fn(&str) -> String) {
    if let Some(e) = o.epochs {
        args.extend(["--epochs".into(), e.to_string()]);
    }
    if let Some(j) = o.jobs {
        args.extend(["-j".into(), j.to_string()]);
    }
    if let Some(a) = &o.agent {
        args.extend(["--agent".into(), q(a)]);
    }
}

fn check_common(o: &EmitOptions, gha: bool) -> Result<(), Error> {
    if o.shards == 0 {
        return Err(Error::usage("`--shards` must be at least 1"));
    }
    let label = regex::Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$").expect("valid regex");
    if o.name.len() > 50 || !label.is_match(&o.name) {
        return Err(Error::usage(format!("invalid `--name` `{}`", o.name)).detail(
            "a name is lowercase letters, digits and `-`, starts and ends with a letter or digit, at most 50 characters (a Kubernetes DNS-1123 label with room for `-shards`)",
        ));
    }
    let env_name = regex::Regex::new(r"^[A-Za-z_][A-Za-z0-9_]*$").expect("valid regex");
    for s in &o.secrets {
        if !env_name.is_match(s) || s.to_ascii_uppercase().starts_with("GITHUB_") {
            return Err(Error::usage(format!("invalid `--secret` `{s}`"))
                .detail("a secret is an environment variable name (letters, digits, `_`; not starting with a digit or `GITHUB_`)"));
        }
    }
    check_value("--cases", &o.cases, gha)?;
    for v in &o.variants {
        check_value("--variant", v, gha)?;
    }
    for (flag, v) in [
        ("--image", &o.image),
        ("--agent", &o.agent),
        ("--pvc", &o.pvc),
    ] {
        if let Some(v) = v {
            check_value(flag, v, gha)?;
        }
    }
    check_value("--storage", &o.storage, gha)?;
    Ok(())
}

fn check_value(flag: &str, v: &str, gha: bool) -> Result<(), Error> {
    if v.is_empty() {
        return Err(Error::usage(format!("`{flag}` is empty")));
    }
    if v.contains(['\n', '\r', '\0']) {
        return Err(Error::usage(format!(
            "`{flag}` {v:?} contains a line break or NUL"
        )));
    }
    if gha && v.contains("${{") {
        return Err(Error::usage(format!("`{flag}` `{v}` contains `${{{{`"))
            .detail("GitHub Actions would evaluate it as an expression before the shell runs"));
    }
    Ok(())
}

/// Quotes `s` for a POSIX shell: unchanged when it has only `[A-Za-z0-9_./:=@%+,-]`, else
/// single-quoted with each `'` written as `'\''`.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./:=@%+,-".contains(c))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Renders a JSON value as block-style YAML: mappings and sequences indented by two spaces,
/// every string a double-quoted scalar with JSON escapes (valid YAML 1.1 and 1.2), numbers,
/// booleans and null plain, empty collections as `{}` / `[]`. Keys are plain when they are
/// identifiers (letters, digits, `_ . - /`) other than YAML 1.1's boolean and null words,
/// else quoted. Ends with a newline; the top level must be an object or an array.
pub fn to_yaml(v: &Value) -> String {
    let mut o = String::new();
    block(v, 0, &mut o);
    o
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::Null => Some("null".into()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(Value::String(s.clone()).to_string()),
        Value::Array(a) if a.is_empty() => Some("[]".into()),
        Value::Object(m) if m.is_empty() => Some("{}".into()),
        _ => None,
    }
}

fn key(k: &str) -> String {
    const RESERVED: &[&str] = &[
        "y", "n", "yes", "no", "on", "off", "true", "false", "null", "~",
    ];
    let plain = k
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c))
        && !RESERVED.contains(&k.to_ascii_lowercase().as_str());
    if plain {
        k.to_owned()
    } else {
        Value::String(k.to_owned()).to_string()
    }
}

fn block(v: &Value, indent: usize, o: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, val) in m {
                o.push_str(&pad);
                o.push_str(&key(k));
                o.push(':');
                match scalar(val) {
                    Some(s) => {
                        o.push(' ');
                        o.push_str(&s);
                        o.push('\n');
                    }
                    None => {
                        o.push('\n');
                        block(val, indent + 2, o);
                    }
                }
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for item in a {
                match scalar(item) {
                    Some(s) => {
                        o.push_str(&pad);
                        o.push_str("- ");
                        o.push_str(&s);
                        o.push('\n');
                    }
                    None => {
                        // Render the item two columns deeper, then put the dash in the first
                        // line's indentation.
                        let mut inner = String::new();
                        block(item, indent + 2, &mut inner);
                        o.push_str(&pad);
                        o.push_str("- ");
                        o.push_str(&inner[indent + 2..]);
                    }
                }
            }
        }
        other => {
            o.push_str(&pad);
            o.push_str(&scalar(other).unwrap_or_default());
            o.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_quotes_every_string_and_nests_blocks() {
        let v = json!({
            "on": {"workflow_dispatch": {}},
            "name": "no",
            "n": 3,
            "list": ["a: b", "#x", 1, true, null],
            "objs": [{"k": "v", "nested": [{"x": "y"}]}, []],
            "app.kubernetes.io/name": "1.10",
        });
        let y = to_yaml(&v);
        assert_eq!(
            y,
            "\"on\":\n  workflow_dispatch: {}\nname: \"no\"\n\"n\": 3\nlist:\n  - \"a: b\"\n  - \"#x\"\n  - 1\n  - true\n  - null\nobjs:\n  - k: \"v\"\n    nested:\n      - x: \"y\"\n  - []\napp.kubernetes.io/name: \"1.10\"\n"
        );
    }

    #[test]
    fn yaml_escapes_control_characters_and_quotes() {
        let y = to_yaml(&json!({"s": "a\"b\\c\td"}));
        assert_eq!(y, "s: \"a\\\"b\\\\c\\td\"\n");
    }

    #[test]
    fn shell_quote_leaves_plain_words_and_quotes_the_rest() {
        assert_eq!(shell_quote("cases/v1.toml"), "cases/v1.toml");
        assert_eq!(shell_quote("my cases"), "'my cases'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote("$HOME"), "'$HOME'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn k8s_escapes_variable_references_in_user_paths() {
        let o = EmitOptions {
            shards: 2,
            cases: "/data/$(HOME)/cases".into(),
            variants: vec!["v1".into()],
            ..Default::default()
        };
        let y = k8s(&o).unwrap();
        assert!(y.contains("\"/data/$$(HOME)/cases\""), "{y}");
        assert!(
            y.contains("\"/replay/shard-$(JOB_COMPLETION_INDEX)\""),
            "{y}"
        );
        assert!(y.contains("\"/replay/shard-0\"") && y.contains("\"/replay/shard-1\""));
        assert!(y.contains("completionMode: \"Indexed\"") && y.contains("completions: 2"));
    }

    #[test]
    fn gha_refuses_expressions_and_bad_names() {
        let o = EmitOptions {
            shards: 2,
            cases: "${{ secrets.X }}".into(),
            ..Default::default()
        };
        let e = gha(&o).unwrap_err();
        assert!(e.message.contains("--cases"), "{}", e.message);
        // The same value is harmless in Kubernetes args.
        assert!(k8s(&o).is_ok());
        let o = EmitOptions {
            name: "Fixci_Replay".into(),
            ..Default::default()
        };
        assert!(k8s(&o).unwrap_err().message.contains("invalid `--name`"));
        let o = EmitOptions {
            secrets: vec!["GITHUB_TOKEN".into()],
            ..Default::default()
        };
        assert!(gha(&o).unwrap_err().message.contains("invalid `--secret`"));
        let o = EmitOptions {
            variants: vec!["a\nb".into()],
            ..Default::default()
        };
        assert!(k8s(&o).unwrap_err().message.contains("line break"));
    }

    #[test]
    fn gha_shards_and_merge_agree_on_artifact_names() {
        let o = EmitOptions {
            shards: 3,
            variants: vec!["variants/a b".into()],
            secrets: vec!["ANTHROPIC_API_KEY".into()],
            ..Default::default()
        };
        let y = gha(&o).unwrap();
        assert!(
            y.contains("shard:\n          - 0\n          - 1\n          - 2\n"),
            "{y}"
        );
        assert!(
            y.contains("name: \"fixci-replay-shard-${{ matrix.shard }}\""),
            "{y}"
        );
        assert!(y.contains("pattern: \"fixci-replay-shard-*\""), "{y}");
        assert!(
            y.contains(
                "replay-out/shards/fixci-replay-shard-2 --out replay-out/merged --require-complete"
            ),
            "{y}"
        );
        assert!(y.contains("--variant 'variants/a b'"), "{y}");
        assert!(
            y.contains("ANTHROPIC_API_KEY: \"${{ secrets.ANTHROPIC_API_KEY }}\""),
            "{y}"
        );
    }
}
