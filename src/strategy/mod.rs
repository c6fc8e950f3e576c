//! Strategies: how a question becomes a SQL prediction.
//!
//! A strategy is a pipeline of small stages: schema rendering
//! ([`schema::SchemaRenderer`]) -> example selection
//! ([`examples::ExampleSelector`]) -> prompt building ([`prompt`]) ->
//! generation (a [`crate::llm::ChatModel`]) -> SQL extraction ([`extract`])
//! -> execution-guided repair -> final selection (majority vote by execution
//! result). [`pipeline::Pipeline`] composes them from a
//! [`config::StrategyConfig`], which comes from a built-in rung name
//! (`zero-shot`, `cot+self-consistency`...) or a TOML file in `strategies/`.
//! A strategy written in Rust implements [`Strategy`] and is added to
//! [`registry::RUST_STRATEGIES`].

pub mod config;
pub mod custom;
pub mod examples;
pub mod extract;
pub mod pipeline;
pub mod prompt;
pub mod registry;
pub mod schema;
pub mod vote;

use crate::dataset::Example;
use crate::dataset::schema::DbSchema;
use crate::exec::sandbox::{Limits, Outcome, off_async, with_sandbox};
use crate::llm::{ChatModel, Completion, LlmError};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;

/// A database as strategies see it.
#[derive(Debug, Clone)]
pub struct DbInfo {
    pub db_id: String,
    pub schema: DbSchema,
    /// The SQLite file, when present (needed to execute candidates).
    pub sqlite: Option<PathBuf>,
}

/// The question being answered.
pub struct Question<'a> {
    pub example: &'a Example,
    pub db: &'a DbInfo,
}

/// What strategies share during a run.
pub struct Env {
    pub model: Arc<dyn ChatModel>,
    /// Limits for executing candidate queries (repair and voting).
    pub limits: Limits,
}

/// One candidate query (one sample, after its repairs).
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Candidate {
    pub sql: Option<String>,
    pub repairs: u32,
    /// "N rows", or why it did not run.
    pub outcome: String,
}

/// What a strategy produced for one question.
#[derive(Debug, Clone, Default)]
pub struct Prediction {
    pub sql: Option<String>,
    /// Why there is no SQL (the model failed, or its answer held none).
    pub failure: Option<String>,
    /// Every completion used, in order (tokens, latency, cache keys).
    pub completions: Vec<Completion>,
    /// The samples behind a vote, or the single repaired answer.
    pub candidates: Vec<Candidate>,
}

/// A way to answer questions. `Err` only for errors that must stop the run.
#[async_trait::async_trait]
pub trait Strategy: Send + Sync {
    fn name(&self) -> &str;
    fn description(&self) -> &str;
    /// The resolved parameters, recorded in the run's configuration.
    fn parameters(&self) -> serde_json::Value;
    async fn predict(&self, question: &Question<'_>, env: &Env) -> Result<Prediction, LlmError>;
}

/// Runs a candidate on the question's database in the sandbox (blocking
/// work, off the async threads). `None` when the database is missing.
pub async fn execute_candidate(db: &DbInfo, sql: &str, limits: &Limits) -> Option<Outcome> {
    let path = db.sqlite.clone()?;
    let (sql, limits) = (sql.to_string(), limits.clone());
    Some(off_async(move || with_sandbox(|s| s.execute(&path, &sql, &limits))).await)
}
