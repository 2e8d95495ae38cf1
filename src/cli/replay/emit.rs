//! `fixci replay emit`: print the manifests that run a sharded replay on Kubernetes or GitHub
//! Actions.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::error::{Result, io_error};
use crate::replay::emit::{self, EmitOptions};

/// The schedulers `fixci replay emit` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// A Kubernetes Indexed Job over the shards and a suspended merge Job (YAML).
    K8s,
    /// A GitHub Actions workflow: a matrix over the shards and a merge job (YAML).
    Gha,
}

/// Print a Kubernetes Indexed Job manifest or a GitHub Actions matrix workflow that runs a
/// replay in N shards (`fixci replay run --shard`), then merges them (`fixci replay merge
/// --require-complete`) and writes the report. Every value is quoted; values that cannot be
/// quoted safely (line breaks, `${{` in a workflow) are refused.
#[derive(Debug, Args)]
pub struct EmitArgs {
    /// Which scheduler.
    #[arg(value_enum)]
    pub target: Target,
    /// Number of shards.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub shards: u32,
    /// Case corpus path as the runner sees it (inside the image or the checkout).
    #[arg(long, default_value = "cases")]
    pub cases: String,
    /// A variant path as the runner sees it; repeat for several.
    #[arg(long = "variant", value_name = "DIR_OR_TOML")]
    pub variants: Vec<String>,
    /// Output root: the volume's mount path (k8s, default `/replay`) or the workspace folder
    /// (gha, default `replay-out`).
    #[arg(long, value_name = "DIR")]
    pub out: Option<String>,
    /// Container image with fixci, git and the agents (k8s default `fixci:latest`; gha: run
    /// the jobs in this container instead of installing fixci).
    #[arg(long, value_name = "IMG")]
    pub image: Option<String>,
    /// Epochs per (case, variant), passed to `replay run`.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub epochs: Option<u32>,
    /// Items each shard runs at once, passed to `replay run`.
    #[arg(short = 'j', long = "jobs", value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs: Option<u32>,
    /// Agent for every variant, passed to `replay run`.
    #[arg(long)]
    pub agent: Option<String>,
    /// Name of the Jobs or the workflow.
    #[arg(long, default_value = "fixci-replay")]
    pub name: String,
    /// An environment variable the agents need (an API key), from the Secret `<name>-secrets`
    /// (k8s) or the repository secret of the same name (gha); repeat for several.
    #[arg(long = "secret", value_name = "NAME")]
    pub secrets: Vec<String>,
    /// k8s: use this existing PersistentVolumeClaim instead of emitting `<name>-data`.
    #[arg(long, value_name = "CLAIM")]
    pub pvc: Option<String>,
    /// k8s: storage requested by the emitted claim.
    #[arg(long, default_value = "10Gi")]
    pub storage: String,
    /// gha without `--image`: the command that installs fixci on the runner.
    #[arg(
        long,
        value_name = "CMD",
        default_value = "cargo install --locked fixci"
    )]
    pub install: String,
    /// Write to this file instead of printing.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Runs `fixci replay emit`. Exit 0 with the manifest printed or written; exit 2 for an
/// invalid name, secret or value; exit 3 when the output file cannot be written.
pub fn execute(args: EmitArgs) -> Result<u8> {
    let o = EmitOptions {
        shards: args.shards,
        cases: args.cases,
        variants: args.variants,
        out: args.out,
        image: args.image,
        epochs: args.epochs,
        jobs: args.jobs,
        agent: args.agent,
        name: args.name,
        secrets: args.secrets,
        pvc: args.pvc,
        storage: args.storage,
        install: args.install,
    };
    let text = match args.target {
        Target::K8s => emit::k8s(&o)?,
        Target::Gha => emit::gha(&o)?,
    };
    match &args.output {
        Some(f) => std::fs::write(f, text).map_err(|e| io_error("write", f, e))?,
        None => out!("{text}"),
    }
    Ok(crate::exit_codes::SUCCESS)
}
