//! Every strategy by name: built-in rungs and their `+` compositions,
//! strategies written in Rust, and TOML files in `strategies/`.

use super::Strategy;
use super::config::{RUNGS, SelectorKind, StrategyConfig, from_rungs, from_toml_file};
use super::pipeline::{Pipeline, Resources};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A strategy implemented in Rust. To add one: write a module implementing
/// [`Strategy`], then add one line to [`RUST_STRATEGIES`].
pub struct RustStrategy {
    pub name: &'static str,
    pub description: &'static str,
    /// Needs [`Resources::pool`].
    pub needs_examples: bool,
    pub build: fn(&Resources) -> Result<Arc<dyn Strategy>>,
}

pub const RUST_STRATEGIES: &[RustStrategy] = &[RustStrategy {
    name: "schema-link",
    description: "two steps: the model names the tables it needs, then writes the query seeing only them",
    needs_examples: false,
    build: |_| Ok(Arc::new(super::custom::schema_link::SchemaLink::default())),
}];

/// One listed strategy.
pub struct Listing {
    pub name: String,
    pub description: String,
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

/// Replaces the name of a list file (e.g. `ladder`) by the strategies it lists.
pub fn expand(names: &[String], strategies_dir: &Path) -> Vec<String> {
    names
        .iter()
        .flat_map(|n| strategy_list(&strategies_dir.join(format!("{n}.toml"))).unwrap_or_else(|| vec![n.clone()]))
        .collect()
}

/// The TOML strategy files of a folder (sorted), skipping list files such
/// as the ladder (`rungs = [...]`).
pub fn toml_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return vec![];
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml") && strategy_list(p).is_none())
        .collect();
    files.sort();
    files
}

/// The list files of a folder (`ladder.toml`...): name and strategies.
fn list_files(dir: &Path) -> Vec<(String, Vec<String>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return vec![];
    };
    let mut out: Vec<(String, Vec<String>)> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .filter_map(|p| Some((p.file_stem()?.to_string_lossy().to_string(), strategy_list(&p)?)))
        .collect();
    out.sort();
    out
}

/// Every strategy known here.
pub fn list(strategies_dir: &Path) -> Vec<Listing> {
    let mut out: Vec<Listing> = RUNGS
        .iter()
        .map(|(n, d)| Listing {
            name: n.to_string(),
            description: d.to_string(),
            source: "built-in rung".into(),
        })
        .collect();
    out.extend(RUST_STRATEGIES.iter().map(|s| Listing {
        name: s.name.into(),
        description: s.description.into(),
        source: "built-in (Rust)".into(),
    }));
    out.extend(list_files(strategies_dir).into_iter().map(|(name, rungs)| Listing {
        description: rungs.join(", "),
        source: format!("{name}.toml (a list)"),
        name,
    }));
    for f in toml_files(strategies_dir) {
        match from_toml_file(&f) {
            Ok(c) => out.push(Listing {
                name: c.name,
                description: c.description,
                source: f.display().to_string(),
            }),
            Err(e) => out.push(Listing {
                name: f.display().to_string(),
                description: format!("INVALID: {e:#}"),
                source: f.display().to_string(),
            }),
        }
    }
    out
}

/// A strategy found by name, not built yet.
pub enum Found {
    Rust(&'static RustStrategy),
    Config(StrategyConfig),
}

impl Found {
    /// Whether building it needs the train examples.
    pub fn needs_examples(&self) -> bool {
        match self {
            Found::Rust(s) => s.needs_examples,
            Found::Config(c) => c.examples.selector != SelectorKind::NONE,
        }
    }

    pub fn build(self, resources: &Resources) -> Result<Arc<dyn Strategy>> {
        match self {
            Found::Rust(s) => (s.build)(resources),
            Found::Config(c) => Ok(Arc::new(Pipeline::new(c, resources)?)),
        }
    }
}

/// Finds a strategy: a Rust strategy name, the name (or path) of a TOML
/// file, or rungs joined with `+`.
pub fn find(name: &str, strategies_dir: &Path) -> Result<Found> {
    if let Some(s) = RUST_STRATEGIES.iter().find(|s| s.name == name) {
        return Ok(Found::Rust(s));
    }
    let as_path = Path::new(name);
    let file = if as_path.extension().is_some_and(|e| e == "toml") && as_path.is_file() {
        Some(as_path.to_path_buf())
    } else {
        toml_files(strategies_dir)
            .into_iter()
            .find(|f| from_toml_file(f).map(|c| c.name == name).unwrap_or(false))
    };
    Ok(Found::Config(match file {
        Some(f) => from_toml_file(&f)?,
        None => {
            from_rungs(name).with_context(|| format!("no strategy named {name:?} (see `spider-bench strategies`)"))?
        }
    }))
}
