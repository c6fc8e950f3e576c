//! `spider-bench models fetch|list`.

use crate::models::adapters::list_adapters;
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

/// Prints every known model and whether it is installed, then the
/// registered LoRA adapters (`finetune train`).
pub fn print_list(args: &ListArgs) -> Result<()> {
    for (name, description, installed, path) in list(args.dir.as_deref()) {
        let state = if installed { "installed" } else { "not installed" };
        println!("{name:<20} {state:<14} {}  ({description})", path.display());
    }
    let adapters = list_adapters();
    if !adapters.is_empty() {
        println!("\nLoRA adapters (run one with --model local:BASE+lora:NAME):");
    }
    for a in adapters {
        let figure = |key: &str| a.outcome.get(key).and_then(|v| v.as_f64());
        let losses = match (figure("val_loss_first"), figure("val_loss_last")) {
            (Some(first), Some(last)) => format!("validation loss {first:.3} -> {last:.3}"),
            _ => match figure("train_loss_last") {
                Some(last) => format!("training loss {last:.3}"),
                None => "no losses recorded".to_string(),
            },
        };
        let examples = a.outcome.get("examples").and_then(|v| v.as_u64()).unwrap_or(0);
        println!(
            "{:<20} on {:<20} {}  ({examples} examples, {losses}, train sha256 {:.12}, made {})",
            a.name,
            a.base_model,
            a.gguf_path().display(),
            a.train_sha256,
            a.created
        );
    }
    Ok(())
}
