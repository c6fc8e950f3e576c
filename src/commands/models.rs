//! `spider-bench models fetch|list`.

use crate::models::{ModelSource, fetch_all, list};
use anyhow::Result;
use std::path::PathBuf;

#[derive(Debug, Clone, clap::Args)]
pub struct FetchArgs {
    /// Model names (see `models list`); default: the local generation
    /// model and the embedding model.
    pub names: Vec<String>,
    /// Models folder (default: $SPIDER_BENCH_MODELS, else ~/.cache/spider-bench/models).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Where from.
    #[arg(long, value_enum, default_value = "auto")]
    pub source: ModelSource,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ListArgs {
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// Installs the named models (see [`fetch_all`]).
pub fn fetch(args: &FetchArgs) -> Result<()> {
    fetch_all(&args.names, args.dir.as_deref(), args.source)
}

/// Prints every known model and whether it is installed.
pub fn print_list(args: &ListArgs) -> Result<()> {
    for (name, description, installed, path) in list(args.dir.as_deref()) {
        let state = if installed { "installed" } else { "not installed" };
        println!("{name:<20} {state:<14} {}  ({description})", path.display());
    }
    Ok(())
}
