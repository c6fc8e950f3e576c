//! Strategies: how a question becomes a SQL prediction.
//!
//! A strategy is an ordered list of small steps ([`step::Step`]) over one
//! question state ([`state::QuestionState`]): render the schema, link
//! tables, classify, choose examples, build the prompt from a template,
//! generate samples, extract the SQL, self-correct, execute, repair, vote.
//! Every step kind is one file in [`steps`] and one line of
//! [`steps::STEPS`]. The built-in rungs are named step lists (`rungs.toml`);
//! `+` composes them by the rules in [`step`]; TOML files in `strategies/`
//! extend, list and re-parameterise steps ([`spec`]); prompts are template
//! files in `prompts/` ([`template`]). A strategy written in Rust is a step
//! list made in code, one file plus one line of
//! [`registry::RUST_STRATEGIES`].

pub mod chain;
pub mod custom;
pub mod extract;
pub mod registry;
pub mod schema;
pub mod spec;
pub mod state;
pub mod step;
pub mod steps;
pub mod template;
pub mod vote;

use crate::dataset::{DbInfo, Example};
use crate::exec::sandbox::Limits;
use crate::llm::{ChatModel, Completion, LlmError};
use std::sync::Arc;

pub use state::{Candidate, TraceEvent};

/// The question being answered.
pub struct Question<'a> {
    pub example: &'a Example,
    pub db: &'a Arc<DbInfo>,
}

/// What strategies share during a run.
pub struct Env {
    pub model: Arc<dyn ChatModel>,
    /// Limits for executing candidate queries (repair and voting).
    pub limits: Limits,
    /// Schemas rendered once per database.
    pub schemas: schema::SchemaCache,
}

/// What a strategy produced for one question.
#[derive(Debug, Clone, Default)]
pub struct Prediction {
    pub sql: Option<String>,
    /// Why there is no SQL (a step failed, or the answers held none).
    pub failure: Option<String>,
    /// Every completion used, in order (tokens, latency, cache keys).
    pub completions: Vec<Completion>,
    /// The samples behind a vote, or the single repaired answer.
    pub candidates: Vec<Candidate>,
    /// What each step did.
    pub trace: Vec<TraceEvent>,
    /// Why no answer could be had from the model (an infrastructure
    /// failure, see [`LlmError::Unavailable`]): the question is not scored
    /// and a resumed run asks again.
    pub unavailable: Option<String>,
}

/// A way to answer questions. `Err` only for errors that must stop the run.
#[async_trait::async_trait]
pub trait Strategy: Send + Sync {
    fn name(&self) -> &str;
    fn description(&self) -> &str;
    /// The resolved steps and parameters, recorded in the run's configuration.
    fn parameters(&self) -> serde_json::Value;
    /// The model it must run on (a strategy file's `model = ...`); `None`
    /// runs on the run's `--model`.
    fn model(&self) -> Option<&str> {
        None
    }
    async fn predict(&self, question: &Question<'_>, env: &Env) -> Result<Prediction, LlmError>;
}
