//! Chat models behind one trait. Two backends generate fresh samples (the
//! [`Generator`] trait): the OpenAI-compatible HTTP client
//! ([`client::OpenAiClient`]) and the embedded llama.cpp model
//! ([`local`], with the `local-models` feature); either is wrapped by the on-disk cache
//! ([`cache::CachedModel`]), so caching and accounting are the same for both. Every completion carries its usage, latency and
//! cache key, so a replay from the cache reports exactly what the original
//! run did.

pub mod cache;
pub mod client;
pub mod grammar;
pub mod local;
pub mod pricing;
pub mod repetition;

use serde::{Deserialize, Serialize};

/// One chat message.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn system(content: impl Into<String>) -> Self {
        Message {
            role: "system".into(),
            content: content.into(),
        }
    }
    pub fn user(content: impl Into<String>) -> Self {
        Message {
            role: "user".into(),
            content: content.into(),
        }
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        Message {
            role: "assistant".into(),
            content: content.into(),
        }
    }
}

/// Sampling parameters of a request.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct GenParams {
    pub temperature: f64,
    pub max_tokens: u32,
    /// Passed to the server when set (not every server honours it).
    pub seed: Option<u64>,
    /// A GBNF grammar (root rule `root`) the answer must follow
    /// ([`grammar`], the `constrained` step). Part of the cache key only
    /// when set, so unconstrained requests keep their keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grammar: Option<std::sync::Arc<str>>,
}

impl Default for GenParams {
    fn default() -> Self {
        GenParams {
            temperature: 0.0,
            max_tokens: 1024,
            seed: None,
            grammar: None,
        }
    }
}

/// A request for `n` samples of the same conversation.
#[derive(Clone, Debug)]
pub struct ChatRequest {
    pub messages: Vec<Message>,
    pub params: GenParams,
    pub n: u32,
}

/// One generated answer.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Completion {
    pub text: String,
    /// Prompt tokens of the HTTP call that produced this sample (counted on
    /// the call's first sample only, so sums are right).
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Latency of the HTTP call, as first measured.
    pub latency_ms: f64,
    /// The cache key of this sample.
    pub cache_key: String,
    /// Served from the cache in this run.
    #[serde(default)]
    pub from_cache: bool,
    /// Why the generation was stopped before its end, when it was: a loop
    /// cut by the repetition rule ([`repetition`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut: Option<String>,
}

/// Why a request produced no completion.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LlmError {
    /// The model's side refused this request (a 4xx other than auth, a
    /// refusal, a prompt over the context): a failure of this example,
    /// scored like an answer without SQL.
    #[error("{0}")]
    Request(String),
    /// No answer could be had: the endpoint is unreachable, timed out, or
    /// kept answering 429/5xx past the retries, or sent something that is
    /// not a chat completion. Not the model's answer, so never scored: the
    /// record gets status `error` and `run --resume` asks again.
    #[error("{0}")]
    Unavailable(String),
    /// The run cannot go on (bad key, unknown model, cache miss in
    /// cache-only mode): stop instead of failing every example.
    #[error("{0}")]
    Fatal(String),
}

/// Something that completes chats. Implementations must be cheap to share.
#[async_trait::async_trait]
pub trait ChatModel: Send + Sync {
    /// Returns exactly `req.n` completions, or an error.
    async fn complete(&self, req: &ChatRequest) -> Result<Vec<Completion>, LlmError>;

    /// What identifies the model in cache keys and reports (never secrets).
    fn identity(&self) -> ModelIdentity;
}

/// The endpoint and model name.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ModelIdentity {
    pub endpoint: String,
    pub model: String,
}

/// One fresh sample from a backend, before caching.
#[derive(Clone, Debug)]
pub struct RawCompletion {
    pub text: String,
    /// Usage is per call: a call for several samples puts it on the first.
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub latency_ms: f64,
    /// Why the generation stopped early ([`Completion::cut`]).
    pub cut: Option<String>,
}

/// What the cache wraps: a backend that produces fresh samples of a
/// conversation (an HTTP endpoint or a model in this process).
#[async_trait::async_trait]
pub trait Generator: Send + Sync {
    /// One sample for each of `slots`, in that order: the sample indices
    /// of the request that the cache could not answer. A sample's seed is
    /// the request's seed plus its slot, so it never depends on which other
    /// samples happened to be cached.
    async fn generate(
        &self,
        messages: &[Message],
        params: &GenParams,
        slots: &[u32],
    ) -> Result<Vec<RawCompletion>, LlmError>;

    /// What identifies the model in cache keys and reports (never secrets).
    fn identity(&self) -> ModelIdentity;

    /// Calls made to the backend so far (HTTP requests, or local generations).
    fn calls(&self) -> u64;
}
