//! Strategies as data: a name, a description and a list of steps. The
//! built-in rungs are in `rungs.toml` (beside this file); strategy files in
//! `strategies/` start from rungs (`extends`), list steps (`steps = [...]`),
//! and change parameters in tables named after a step (`[examples]`).

use super::step::{Params, StepSpec, check_order, compose, kind};
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A strategy before it is built: what `strategies` lists and config.json
/// records.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StrategySpec {
    pub name: String,
    pub description: String,
    pub steps: Vec<StepSpec>,
    /// The model the strategy runs on (TOML `model = "..."`, e.g. a
    /// fine-tuned `local:qwen2.5-coder-0.5b+lora:NAME`), whatever `run
    /// --model` says; `None` runs on the run's model. This is how one run
    /// puts base and fine-tuned rungs in one table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

impl StrategySpec {
    /// The steps as one line: `schema -> prompt(template="cot") -> ...`.
    pub fn steps_line(&self) -> String {
        self.steps
            .iter()
            .map(StepSpec::display)
            .collect::<Vec<_>>()
            .join(" -> ")
    }

    /// The parameters given to steps of kind `step`, merged.
    pub fn params_of(&self, step: &str) -> Option<&Params> {
        self.steps.iter().find(|s| s.step == step).map(|s| &s.params)
    }

    /// Whether building it needs the train examples.
    pub fn needs_examples(&self) -> bool {
        self.params_of("examples")
            .is_some_and(|p| p.get("selector").and_then(|v| v.as_str()).is_some_and(|s| s != "none"))
    }
}

#[derive(Deserialize)]
struct RungFile {
    rung: Vec<StrategySpec>,
}

/// The built-in rungs, in ladder order.
pub fn rungs() -> &'static [StrategySpec] {
    static RUNGS: OnceLock<Vec<StrategySpec>> = OnceLock::new();
    RUNGS.get_or_init(|| {
        let file: RungFile = toml::from_str(include_str!("rungs.toml")).expect("rungs.toml is valid");
        for r in &file.rung {
            check_order(&r.steps).unwrap_or_else(|e| panic!("rungs.toml: {}: {e:#}", r.name));
        }
        file.rung
    })
}

/// Where names are looked up: the built-in rungs, the Rust strategies and
/// the TOML files of `dir`.
#[derive(Clone, Debug)]
pub struct Catalog {
    pub dir: PathBuf,
}

/// How deep `extends` may chain (a cycle of files stops here).
const MAX_DEPTH: usize = 16;

impl Catalog {
    pub fn new(dir: &Path) -> Catalog {
        Catalog { dir: dir.to_path_buf() }
    }

    /// A strategy by name: one name (a rung, a Rust strategy, a TOML file
    /// by name or path) or names joined with `+`, composed left to right.
    pub fn resolve(&self, name: &str) -> Result<StrategySpec> {
        self.resolve_at(name, 0)
    }

    fn resolve_at(&self, name: &str, depth: usize) -> Result<StrategySpec> {
        if depth > MAX_DEPTH {
            bail!("strategy {name:?}: `extends` goes {MAX_DEPTH} levels deep (do two files extend each other?)");
        }
        let parts: Vec<&str> = name.split('+').map(str::trim).collect();
        let mut steps: Vec<StepSpec> = Vec::new();
        let mut descriptions = Vec::new();
        let mut model: Option<String> = None;
        for part in &parts {
            let one = self.one(part, depth)?;
            steps = compose(&steps, &one.steps).with_context(|| format!("composing {name}"))?;
            descriptions.push(one.description);
            model = bind_model(model, one.model, part).with_context(|| format!("composing {name}"))?;
        }
        check_order(&steps).with_context(|| format!("strategy {name}"))?;
        Ok(StrategySpec {
            name: name.to_string(),
            description: descriptions.join("; "),
            steps,
            model,
        })
    }

    fn one(&self, name: &str, depth: usize) -> Result<StrategySpec> {
        if let Some(r) = rungs().iter().find(|r| r.name == name) {
            return Ok(r.clone());
        }
        if let Some(r) = super::registry::RUST_STRATEGIES
            .iter()
            .map(|spec| spec())
            .find(|r| r.name == name)
        {
            return Ok(r);
        }
        if let Some(file) = self.file_named(name) {
            return self.read_file_at(&file, depth);
        }
        bail!(
            "no strategy named {name:?}: not a rung ({}), a Rust strategy, or a TOML file in {} (see `spider-bench strategies`)",
            rungs().iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", "),
            self.dir.display()
        )
    }

    /// A TOML file given by path, or in the folder by file name or `name`.
    fn file_named(&self, name: &str) -> Option<PathBuf> {
        let as_path = Path::new(name);
        if as_path.extension().is_some_and(|e| e == "toml") && as_path.is_file() {
            return Some(as_path.to_path_buf());
        }
        let files = super::registry::toml_files(&self.dir);
        if let Some(f) = files.iter().find(|f| f.file_stem().is_some_and(|s| s == name)) {
            return Some(f.clone());
        }
        files.into_iter().find(|f| declared_name(f).as_deref() == Some(name))
    }

    /// A strategy file.
    pub fn read_file(&self, path: &Path) -> Result<StrategySpec> {
        self.read_file_at(path, 0)
    }

    fn read_file_at(&self, path: &Path, depth: usize) -> Result<StrategySpec> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read strategy {}", path.display()))?;
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("strategy");
        self.parse_toml_at(&text, stem, depth)
            .with_context(|| format!("strategy file {}", path.display()))
    }

    /// A strategy from TOML text (`default_name` when it names none).
    pub fn parse_toml(&self, text: &str, default_name: &str) -> Result<StrategySpec> {
        self.parse_toml_at(text, default_name, 0)
    }

    fn parse_toml_at(&self, text: &str, default_name: &str, depth: usize) -> Result<StrategySpec> {
        let mut table: toml::Table = toml::from_str(text)?;
        let take_str = |table: &mut toml::Table, key: &str| -> Result<Option<String>> {
            match table.remove(key) {
                None => Ok(None),
                Some(toml::Value::String(s)) => Ok(Some(s)),
                Some(other) => bail!("`{key}` must be a string, not {other}"),
            }
        };
        let name = take_str(&mut table, "name")?.unwrap_or_else(|| default_name.to_string());
        let description = take_str(&mut table, "description")?;
        let extends = take_str(&mut table, "extends")?;
        let model = take_str(&mut table, "model")?;
        let listed: Option<Vec<StepSpec>> = match table.remove("steps") {
            Some(v) => Some(v.try_into().context("`steps` must be a list of step names or tables")?),
            None => None,
        };
        let base = match (&extends, &listed) {
            (None, Some(_)) => None,
            (e, _) => Some(self.resolve_at(e.as_deref().unwrap_or("zero-shot"), depth + 1)?),
        };
        let mut steps = base.as_ref().map(|b| b.steps.clone()).unwrap_or_default();
        if let Some(listed) = listed {
            steps = compose(&steps, &listed)?;
        }
        // Tables named after a step change its parameters (`[generation]`
        // is the older name of `[generate]`).
        for (key, value) in table {
            let step = if key == "generation" { "generate" } else { key.as_str() };
            let toml::Value::Table(params) = value else {
                bail!(
                    "unknown key `{key}`: a strategy file has name, description, extends, model, steps, and tables named after steps"
                );
            };
            kind(step).with_context(|| format!("table [{key}]"))?;
            let params: Params = serde_json::to_value(params)?
                .as_object()
                .cloned()
                .expect("a table is an object");
            steps = compose(
                &steps,
                &[StepSpec {
                    step: step.to_string(),
                    params,
                }],
            )?;
        }
        check_order(&steps)?;
        // A file's own `model` wins over the one it extends.
        let base_model = base.as_ref().and_then(|b| b.model.clone());
        Ok(StrategySpec {
            name,
            description: description.or_else(|| base.map(|b| b.description)).unwrap_or_default(),
            steps,
            model: model.or(base_model),
        })
    }
}

/// The model of a composition so far, with `part`'s: parts that name
/// models must name the same one (a strategy runs on one model).
fn bind_model(so_far: Option<String>, part_model: Option<String>, part: &str) -> Result<Option<String>> {
    match (so_far, part_model) {
        (Some(a), Some(b)) if a != b => {
            bail!("{part} runs on {b} but an earlier part runs on {a}: a strategy runs on one model")
        }
        (a, b) => Ok(a.or(b)),
    }
}

/// The `name` a strategy file declares, if any.
fn declared_name(path: &Path) -> Option<String> {
    let table: toml::Table = toml::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    table.get("name")?.as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        Catalog::new(Path::new("/nonexistent"))
    }

    #[test]
    fn rungs_compose_by_the_written_rules() {
        let c = catalog().resolve("cot+self-consistency").unwrap();
        let generate = c.params_of("generate").unwrap();
        assert_eq!(
            (generate["samples"].as_u64(), generate["max_tokens"].as_u64()),
            (Some(5), Some(1024))
        );
        assert_eq!(c.params_of("prompt").unwrap()["template"], "cot");
        assert_eq!(c.params_of("repair").unwrap()["rounds"], 3);
        let e = catalog().resolve("cot+telepathy").unwrap_err();
        assert!(format!("{e:#}").contains("telepathy"), "{e:#}");
    }

    #[test]
    fn toml_files_extend_list_steps_and_override() {
        let c = catalog()
            .parse_toml(
                "extends = \"few-shot+exec-retry\"\ndescription = \"mine\"\n[examples]\nk = 5\nwith_schema = true\n",
                "mine",
            )
            .unwrap();
        let examples = c.params_of("examples").unwrap();
        assert_eq!((c.name.as_str(), examples["k"].as_u64()), ("mine", Some(5)));
        assert_eq!(examples["with_schema"], true);
        assert_eq!(c.params_of("repair").unwrap()["rounds"], 3);
        // `steps` alone is the whole list.
        let s = catalog()
            .parse_toml(
                "steps = [\"schema\", \"prompt\", \"generate\", \"extract\", \"vote\"]",
                "bare",
            )
            .unwrap();
        assert_eq!(s.steps.len(), 5);
        // Older files: [generation] and [prompt] style.
        let old = catalog()
            .parse_toml("[generation]\nsamples = 3\n[prompt]\nstyle = \"cot\"\n", "old")
            .unwrap();
        assert_eq!(old.params_of("generate").unwrap()["samples"], 3);
        assert!(catalog().parse_toml("[telepathy]\nx = 1\n", "typo").is_err());
        assert!(catalog().parse_toml("colour = 1\n", "typo").is_err());
        assert!(catalog().parse_toml("steps = [\"generate\"]\n", "bad").is_err());
    }
}
