//! LoRA adapters that `finetune train` made: each in its own folder under
//! `adapters/` of the models folder, the adapter in llama.cpp's GGUF LoRA
//! format (`adapter.gguf`) beside what made it (`adapter.json`: base model
//! and its hash, training data hash, hyperparameters, losses). `models
//! list` shows them; `--model local:BASE+lora:NAME` runs one.

use crate::paths::models_dir;
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The registration of an adapter (`adapter.json`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Adapter {
    pub name: String,
    /// The base model as `local:` names it, and its GGUF's sha256.
    pub base_model: String,
    pub base_sha256: String,
    pub adapter_sha256: String,
    /// The training file's sha256, and the export's manifest when found.
    pub train_sha256: String,
    #[serde(default)]
    pub val_sha256: Option<String>,
    #[serde(default)]
    pub export_manifest: Option<serde_json::Value>,
    /// The trainer's configuration (rank, alpha, learning rate, ...).
    pub hyperparameters: serde_json::Value,
    /// The trainer's closing figures (losses, tokens, tokens/s, time).
    pub outcome: serde_json::Value,
    /// The exact command that trained it.
    pub command: String,
    pub created: String,
    /// The folder it was read from (not stored).
    #[serde(skip)]
    pub dir: PathBuf,
}

impl Adapter {
    pub fn gguf_path(&self) -> PathBuf {
        self.dir.join(ADAPTER_FILE)
    }
}

pub const ADAPTER_FILE: &str = "adapter.gguf";
pub const REGISTRATION_FILE: &str = "adapter.json";

/// `adapters/` in the models folder.
pub fn adapters_dir() -> PathBuf {
    models_dir().join("adapters")
}

/// An adapter name must make a plain folder name.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && !name.starts_with('.');
    if !ok {
        bail!("adapter name {name:?}: use letters, digits, '-', '_' and '.' (e.g. sql-0.5b-plain)");
    }
    Ok(())
}

fn read(dir: &Path) -> Result<Adapter> {
    let path = dir.join(REGISTRATION_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut adapter: Adapter =
        serde_json::from_str(&text).with_context(|| format!("{} is not an adapter registration", path.display()))?;
    adapter.dir = dir.to_path_buf();
    Ok(adapter)
}

/// The registered adapter `name`.
pub fn find_adapter(name: &str) -> Result<Adapter> {
    check_name(name)?;
    let dir = adapters_dir().join(name);
    if !dir.join(REGISTRATION_FILE).is_file() {
        let known: Vec<String> = list_adapters().into_iter().map(|a| a.name).collect();
        bail!(
            "no adapter named {name} in {} (registered: {}); train one with `spider-bench finetune train --name {name}`, \
             or give an adapter file: +lora:PATH.gguf",
            adapters_dir().display(),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        );
    }
    read(&dir)
}

/// Every registered adapter, by name; unreadable folders are skipped.
pub fn list_adapters() -> Vec<Adapter> {
    let mut out: Vec<Adapter> = std::fs::read_dir(adapters_dir())
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| read(&e.path()).ok())
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Registers `adapter` with its GGUF file `gguf` (moved into its folder,
/// replacing an earlier adapter of that name).
pub fn register(mut adapter: Adapter, gguf: &Path) -> Result<Adapter> {
    check_name(&adapter.name)?;
    let dir = adapters_dir().join(&adapter.name);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let target = dir.join(ADAPTER_FILE);
    if std::fs::rename(gguf, &target).is_err() {
        std::fs::copy(gguf, &target)
            .with_context(|| format!("cannot copy {} to {}", gguf.display(), target.display()))?;
    }
    adapter.dir = dir.clone();
    crate::paths::write_atomically(
        &dir.join(REGISTRATION_FILE),
        (serde_json::to_string_pretty(&adapter)? + "\n").as_bytes(),
    )
    .with_context(|| format!("cannot write {}", dir.join(REGISTRATION_FILE).display()))?;
    Ok(adapter)
}
