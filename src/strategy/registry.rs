//! Every strategy by name: built-in rungs and their `+` compositions,
//! strategies written in Rust, and TOML files in `strategies/`.

use super::Strategy;
use super::chain::Chain;
use super::spec::{Catalog, StrategySpec, rungs};
use super::step::{BuildContext, Resources};
use anyhow::Result;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use super::custom::RUST_STRATEGIES;

/// One listed strategy.
pub struct Listing {
    pub name: String,
    pub description: String,
    /// The steps, or the strategies of a list file.
    pub steps: String,
    pub source: String,
}

/// A list of strategies in a TOML file: `rungs = ["zero-shot", ...]`
/// (`strategies/ladder.toml`).
fn strategy_list(path: &Path) -> Option<Vec<String>> {
    let table: toml::Table = toml::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    table
        .get("rungs")?
        .as_array()?
        .iter()
        .map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// Replaces the name of a list file (e.g. `ladder`) by the strategies it
/// lists; a list may name other lists (`ladder` is `ladder-prompting` and
/// the fine-tuned rungs).
pub fn expand(names: &[String], strategies_dir: &Path) -> Vec<String> {
    expand_at(names, strategies_dir, 0)
}

fn expand_at(names: &[String], strategies_dir: &Path, depth: usize) -> Vec<String> {
    names
        .iter()
        .flat_map(|n| match strategy_list(&strategies_dir.join(format!("{n}.toml"))) {
            // A list that names itself (directly or not) stops expanding
            // here; the name is then reported as no strategy.
            Some(listed) if depth < 8 => expand_at(&listed, strategies_dir, depth + 1),
            _ => vec![n.clone()],
        })
        .collect()
}

fn toml_paths(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return vec![];
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

/// The TOML strategy files of a folder (sorted), skipping list files such
/// as the ladder (`rungs = [...]`).
pub fn toml_files(dir: &Path) -> Vec<PathBuf> {
    toml_paths(dir)
        .into_iter()
        .filter(|p| strategy_list(p).is_none())
        .collect()
}

fn listing(spec: &StrategySpec, source: &str) -> Listing {
    let steps = match &spec.model {
        Some(model) => format!("{} (on {model})", spec.steps_line()),
        None => spec.steps_line(),
    };
    Listing {
        name: spec.name.clone(),
        description: spec.description.clone(),
        steps,
        source: source.to_string(),
    }
}

/// Every strategy known here.
pub fn list(strategies_dir: &Path) -> Vec<Listing> {
    let mut out: Vec<Listing> = rungs().iter().map(|r| listing(r, "built-in rung")).collect();
    out.extend(RUST_STRATEGIES.iter().map(|spec| listing(&spec(), "built-in (Rust)")));
    let catalog = Catalog::new(strategies_dir);
    for f in toml_paths(strategies_dir) {
        let name = f
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        if let Some(names) = strategy_list(&f) {
            out.push(Listing {
                name,
                description: String::new(),
                steps: names.join(", "),
                source: format!("{} (a list)", f.display()),
            });
            continue;
        }
        match catalog.read_file(&f) {
            Ok(spec) => out.push(listing(&spec, &f.display().to_string())),
            Err(e) => out.push(Listing {
                name,
                description: format!("INVALID: {e:#}"),
                steps: String::new(),
                source: f.display().to_string(),
            }),
        }
    }
    out
}

/// Finds a strategy: a rung, a Rust strategy, the name (or path) of a TOML
/// file, or any of these joined with `+`.
pub fn find(name: &str, strategies_dir: &Path) -> Result<StrategySpec> {
    Catalog::new(strategies_dir).resolve(name)
}

/// Builds a found strategy.
pub fn build(spec: &StrategySpec, resources: &Resources) -> Result<Arc<dyn Strategy>> {
    Ok(Arc::new(build_chain(spec, resources)?))
}

/// Builds a found strategy as its chain of steps (which a caller can run
/// over a question state of its own, as the fine-tuning export does).
pub fn build_chain(spec: &StrategySpec, resources: &Resources) -> Result<Chain> {
    let catalog = Catalog::new(&resources.strategies_dir);
    let resolve = |name: &str| catalog.resolve(name);
    let ctx = BuildContext {
        resources,
        base_dir: &resources.strategies_dir,
        resolve: &resolve,
    };
    Chain::build(spec, &ctx)
}
