//! Strategy configurations: built-in rungs, their compositions
//! (`cot+self-consistency`) and TOML files that start from rungs and
//! override parameters.

use super::prompt::PromptStyle;
use crate::retrieval::select::Method;
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
#[derive(Default)]
pub struct SchemaConfig {
    /// Sample rows shown under each CREATE TABLE.
    pub sample_rows: usize,
}

/// How a strategy chooses its examples: none, a fixed set, or one of the
/// retrieval methods (written as their names: `hyde`, `dail`...).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum SelectorKind {
    Basic(BasicSelector),
    Retrieve(crate::retrieval::select::Method),
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum BasicSelector {
    None,
    /// The same k train examples for every question.
    Fixed,
}

impl SelectorKind {
    pub const NONE: SelectorKind = SelectorKind::Basic(BasicSelector::None);
    pub const FIXED: SelectorKind = SelectorKind::Basic(BasicSelector::Fixed);

    /// The retrieval method, for the selectors that retrieve.
    pub fn method(self) -> Option<crate::retrieval::select::Method> {
        match self {
            SelectorKind::Retrieve(m) => Some(m),
            SelectorKind::Basic(_) => None,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ExamplesConfig {
    pub selector: SelectorKind,
    pub k: usize,
    /// Show each example's own schema.
    pub with_schema: bool,
    pub seed: u64,
    /// The strategy that writes the hypothetical answer for hyde,
    /// difficulty-matched and dail (rungs joined with '+').
    pub preliminary: String,
    /// Question similarity: "bm25" (no model), "local:all-minilm-l6-v2",
    /// or "openai:MODEL" (the embeddings API of the run's endpoint).
    pub similarity: String,
    /// How hyde compares the hypothetical answer with pool SQL.
    pub hyde_by: crate::retrieval::select::HydeBy,
    /// Keep identifiers in skeletons (DAIL-SQL masks them).
    pub keep_identifiers: bool,
}

impl Default for ExamplesConfig {
    fn default() -> Self {
        ExamplesConfig {
            selector: SelectorKind::NONE,
            k: 0,
            with_schema: false,
            seed: 0,
            preliminary: "zero-shot".into(),
            similarity: "bm25".into(),
            hyde_by: Default::default(),
            keep_identifiers: false,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PromptConfig {
    pub style: PromptStyle,
}

impl Default for PromptConfig {
    fn default() -> Self {
        PromptConfig {
            style: PromptStyle::Plain,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GenerationConfig {
    /// Samples per question; more than one means a majority vote.
    pub samples: u32,
    pub temperature: f64,
    pub max_tokens: u32,
    pub seed: Option<u64>,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        GenerationConfig {
            samples: 1,
            temperature: 0.0,
            max_tokens: 512,
            seed: None,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
#[derive(Default)]
pub struct RepairConfig {
    /// Times an answer that fails to run is sent back with the error.
    pub rounds: u32,
    /// Also send back answers whose result is empty.
    pub on_empty: bool,
}

/// Everything that defines a pipeline strategy.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct StrategyConfig {
    pub name: String,
    pub description: String,
    pub schema: SchemaConfig,
    pub examples: ExamplesConfig,
    pub prompt: PromptConfig,
    pub generation: GenerationConfig,
    pub repair: RepairConfig,
}

/// The built-in rungs: name, description, and what each changes.
pub const RUNGS: &[(&str, &str)] = &[
    (
        "zero-shot",
        "instructions + CREATE TABLE schema (keys included) + question -> SQL",
    ),
    (
        "few-shot",
        "zero-shot plus 3 fixed train examples (question + gold SQL)",
    ),
    (
        "cot",
        "chain of thought: relevant columns, then tables and joins, then the query",
    ),
    (
        "exec-retry",
        "run the SQL; on an error send it back and ask again, up to 3 times",
    ),
    (
        "self-consistency",
        "5 samples at temperature 0.8, each repaired as exec-retry, majority vote by execution result",
    ),
    (
        "rag-random",
        "3 train examples at random per question (the retrieval baseline)",
    ),
    (
        "rag-question",
        "3 train examples with the most similar questions (BM25)",
    ),
    (
        "rag-masked-question",
        "3 train examples with the most similar questions once schema words and values are masked",
    ),
    (
        "rag-hyde",
        "3 train examples whose SQL skeleton is closest to a zero-shot hypothetical answer (HyDE)",
    ),
    (
        "rag-difficulty",
        "3 most similar train questions of the hardness predicted from a zero-shot answer",
    ),
    (
        "rag-hyde-difficulty",
        "HyDE among train examples of the predicted hardness",
    ),
    (
        "rag-dail",
        "DAIL-SQL: masked-question neighbours re-ranked by skeleton similarity to a zero-shot answer",
    ),
];

fn apply_rung(c: &mut StrategyConfig, rung: &str) -> Result<()> {
    match rung {
        "zero-shot" => {}
        "few-shot" => {
            c.examples.selector = SelectorKind::FIXED;
            if c.examples.k == 0 {
                c.examples.k = 3;
            }
        }
        "cot" => {
            c.prompt.style = PromptStyle::Cot;
            c.generation.max_tokens = c.generation.max_tokens.max(1024);
        }
        "exec-retry" => c.repair.rounds = c.repair.rounds.max(3),
        rag if rag.starts_with("rag-") => {
            c.examples.selector = match rag {
                "rag-random" => SelectorKind::Retrieve(Method::Random),
                "rag-question" => SelectorKind::Retrieve(Method::QuestionSimilarity),
                "rag-masked-question" => SelectorKind::Retrieve(Method::MaskedQuestionSimilarity),
                "rag-hyde" => SelectorKind::Retrieve(Method::Hyde),
                "rag-difficulty" => SelectorKind::Retrieve(Method::DifficultyMatched),
                "rag-hyde-difficulty" => SelectorKind::Retrieve(Method::HydeDifficulty),
                "rag-dail" => SelectorKind::Retrieve(Method::Dail),
                other => bail!("unknown retrieval rung {other:?}"),
            };
            if c.examples.k == 0 {
                c.examples.k = 3;
            }
        }
        "self-consistency" => {
            c.generation.samples = c.generation.samples.max(5);
            if c.generation.temperature == 0.0 {
                c.generation.temperature = 0.8;
            }
            c.repair.rounds = c.repair.rounds.max(3);
        }
        other => bail!(
            "unknown strategy part {other:?}; built-in rungs are {}",
            RUNGS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
        ),
    }
    Ok(())
}

/// A composition of rungs, e.g. `cot+self-consistency`.
pub fn from_rungs(name: &str) -> Result<StrategyConfig> {
    let mut c = StrategyConfig {
        name: name.to_string(),
        ..StrategyConfig::default()
    };
    let mut descriptions = Vec::new();
    for part in name.split('+').map(str::trim) {
        apply_rung(&mut c, part)?;
        descriptions.push(RUNGS.iter().find(|(n, _)| *n == part).map(|(_, d)| *d).unwrap_or(""));
    }
    c.description = descriptions.join("; ");
    Ok(c)
}

/// A strategy file: `extends = "rung+rung"` (default zero-shot) plus any of
/// the configuration tables to override.
pub fn from_toml_file(path: &Path) -> Result<StrategyConfig> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read strategy {}", path.display()))?;
    from_toml(&text, path.file_stem().and_then(|s| s.to_str()).unwrap_or("strategy"))
        .with_context(|| format!("strategy file {}", path.display()))
}

pub fn from_toml(text: &str, default_name: &str) -> Result<StrategyConfig> {
    let mut table: toml::Table = toml::from_str(text)?;
    let extends = match table.remove("extends") {
        Some(toml::Value::String(s)) => s,
        Some(other) => {
            bail!("`extends` must be a string like \"cot+self-consistency\", not {other}")
        }
        None => "zero-shot".to_string(),
    };
    let base = from_rungs(&extends)?;
    let mut merged = toml::Table::try_from(&base)?;
    merge(&mut merged, table);
    let mut config: StrategyConfig = toml::Value::Table(merged).try_into()?;
    if config.name == extends {
        config.name = default_name.to_string();
    }
    Ok(config)
}

fn merge(into: &mut toml::Table, from: toml::Table) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge(a, b),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rungs_compose() {
        let c = from_rungs("cot+self-consistency").unwrap();
        assert_eq!(c.prompt.style, PromptStyle::Cot);
        assert_eq!((c.generation.samples, c.repair.rounds), (5, 3));
        assert!(c.generation.temperature > 0.0);
        assert!(
            from_rungs("cot+telepathy")
                .unwrap_err()
                .to_string()
                .contains("telepathy")
        );
    }

    #[test]
    fn selectors_are_named_in_toml() {
        let c = from_toml("[examples]\nselector = \"dail\"\nk = 4\n", "x").unwrap();
        assert_eq!(c.examples.selector.method(), Some(Method::Dail));
        assert_eq!(
            from_toml("[examples]\nselector = \"fixed\"\n", "x")
                .unwrap()
                .examples
                .selector,
            SelectorKind::FIXED
        );
        assert!(from_toml("[examples]\nselector = \"psychic\"\n", "x").is_err());
        assert_eq!(
            toml::Value::try_from(SelectorKind::Retrieve(Method::Hyde))
                .unwrap()
                .as_str(),
            Some("hyde")
        );
    }

    #[test]
    fn toml_files_extend_and_override() {
        let c = from_toml(
            "extends = \"few-shot+exec-retry\"\ndescription = \"mine\"\n[examples]\nk = 5\nwith_schema = true\n",
            "mine",
        )
        .unwrap();
        assert_eq!(
            (c.name.as_str(), c.examples.k, c.examples.with_schema, c.repair.rounds),
            ("mine", 5, true, 3)
        );
        assert!(from_toml("[generation]\nsampels = 3\n", "typo").is_err());
    }
}
