//! What `--model local:...` names: a known model, any GGUF file, and
//! optionally a LoRA adapter on it, resolved to files with their hashes
//! (the hashes are the model's identity, so the cache never replays one
//! model's answers for another).
//!
//! - `local:qwen2.5-coder-0.5b`: a model of `models list` (installed on
//!   first use);
//! - `local:PATH.gguf`: any GGUF file (its sha256 is computed);
//! - `local:BASE+lora:NAME`: an adapter that `finetune train` registered
//!   under NAME, on BASE (either form above);
//! - `local:BASE+lora:PATH.gguf`: an adapter file in llama.cpp's GGUF LoRA
//!   format.

use super::adapters::{Adapter, find_adapter};
use super::{ModelSpec, ensure, sha256_of, spec};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

/// The base model of a local model name.
#[derive(Clone)]
pub enum LocalBase {
    Known(&'static ModelSpec),
    File(PathBuf),
}

impl std::fmt::Debug for LocalBase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LocalBase::Known(spec) => write!(f, "Known({})", spec.name),
            LocalBase::File(path) => write!(f, "File({})", path.display()),
        }
    }
}

/// A parsed `local:...` name, before anything is installed or hashed.
#[derive(Clone, Debug)]
pub struct LocalRef {
    pub base: LocalBase,
    /// The adapter as written after `+lora:` (a registered name or a path).
    pub adapter: Option<String>,
}

/// A local model with its identity: the hashes of its files, known
/// without installing anything (a replay from the cache needs no weights).
#[derive(Clone, Debug)]
pub struct ResolvedLocal {
    /// How reports and cache keys name it: the known model's name or the
    /// file's name, then `+lora:ADAPTER` where there is one.
    pub display: String,
    pub base: LocalBase,
    pub sha256: String,
    pub adapter: Option<ResolvedAdapter>,
}

impl ResolvedLocal {
    /// The base GGUF file, installing a known model where it is missing.
    pub fn install(&self) -> Result<PathBuf> {
        match &self.base {
            LocalBase::Known(spec) => Ok(ensure(spec.name)?.join(spec.gguf().expect("checked at parse").name)),
            LocalBase::File(path) => Ok(path.clone()),
        }
    }
}

#[derive(Clone, Debug)]
pub struct ResolvedAdapter {
    pub path: PathBuf,
    pub sha256: String,
    /// What `finetune train` recorded of it, for a registered adapter.
    pub registered: Option<Adapter>,
}

/// Whether a model name is a GGUF file rather than a known model's name.
fn is_path(name: &str) -> bool {
    name.ends_with(".gguf") || name.contains('/')
}

/// What separates a local model's base from its adapter: `BASE+lora:ADAPTER`.
const ADAPTER_SEPARATOR: &str = "+lora:";

/// The base part of a local model's name (`name` itself when it has no adapter).
pub fn base_name(name: &str) -> &str {
    name.split_once(ADAPTER_SEPARATOR).map_or(name, |(base, _)| base)
}

impl LocalRef {
    /// `name` without its `local:` prefix.
    pub fn parse(name: &str) -> Result<LocalRef> {
        let (base, adapter) = match name.split_once(ADAPTER_SEPARATOR) {
            Some((b, a)) if !a.trim().is_empty() => (b, Some(a.trim().to_string())),
            Some(_) => bail!("local:{name}: nothing after +lora: (name a registered adapter or an adapter file)"),
            None => (name, None),
        };
        let base = if is_path(base) {
            LocalBase::File(PathBuf::from(base))
        } else {
            let spec = spec(base).with_context(|| format!("local:{name}"))?;
            if spec.gguf().is_none() {
                bail!("{base} is not a generation model (see `spider-bench models list`)");
            }
            LocalBase::Known(spec)
        };
        Ok(LocalRef { base, adapter })
    }

    /// The base's display name.
    fn base_display(&self) -> String {
        match &self.base {
            LocalBase::Known(spec) => spec.name.to_string(),
            LocalBase::File(p) => p
                .file_name()
                .map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into()),
        }
    }

    /// Its identity: the base's and the adapter's hashes. A registered
    /// adapter made on another base is refused.
    pub fn resolve(&self) -> Result<ResolvedLocal> {
        let sha256 = match &self.base {
            LocalBase::Known(spec) => spec.gguf().expect("checked at parse").sha256.to_string(),
            LocalBase::File(path) => sha256_of(path).with_context(|| {
                format!(
                    "cannot read the GGUF file {} (give an existing .gguf file after local:)",
                    path.display()
                )
            })?,
        };
        let adapter = match &self.adapter {
            None => None,
            Some(a) => Some(resolve_adapter(a, &sha256, &self.base_display())?),
        };
        let mut display = self.base_display();
        if let Some(a) = &self.adapter {
            display.push_str(&format!("+lora:{a}"));
        }
        Ok(ResolvedLocal {
            display,
            base: self.base.clone(),
            sha256,
            adapter,
        })
    }
}

fn resolve_adapter(name: &str, base_sha256: &str, base: &str) -> Result<ResolvedAdapter> {
    if is_path(name) {
        let path = Path::new(name);
        let sha256 = sha256_of(path)
            .with_context(|| format!("cannot read the adapter file {} (a GGUF LoRA adapter)", path.display()))?;
        return Ok(ResolvedAdapter {
            path: path.to_path_buf(),
            sha256,
            registered: None,
        });
    }
    let adapter = find_adapter(name)?;
    if adapter.base_sha256 != base_sha256 {
        bail!(
            "adapter {name} was trained on {} (gguf sha256 {}), not on {base} (sha256 {base_sha256}): \
             run it on its own base, local:{}+lora:{name}",
            adapter.base_model,
            adapter.base_sha256,
            adapter.base_model
        );
    }
    let path = adapter.gguf_path();
    let sha256 =
        sha256_of(&path).with_context(|| format!("adapter {name}: cannot read {} (train it again)", path.display()))?;
    if sha256 != adapter.adapter_sha256 {
        bail!(
            "adapter {name}: {} does not have the sha256 its registration recorded ({}): the file was changed \
             or damaged; train it again",
            path.display(),
            adapter.adapter_sha256
        );
    }
    Ok(ResolvedAdapter {
        path,
        sha256,
        registered: Some(adapter),
    })
}
