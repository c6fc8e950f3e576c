//! The embedded local model: a GGUF chat model run in this process by
//! llama.cpp (through the llama-cpp-2 crate), behind the same [`Generator`]
//! trait as the HTTP client, so the cache and the accounting are the same.
//!
//! - The prompt is the model's own chat template (the Jinja template stored
//!   in the GGUF, rendered with minijinja as the Hugging Face tools render
//!   it, default system message included), tokenized with special tokens.
//! - Greedy decoding at temperature 0; otherwise temperature sampling with a
//!   seed (the request's seed, else 0, plus the sample index), so samples
//!   are reproducible: exactly with one sequence at a time, up to rounding
//!   when answers are decoded together (see `engine.rs`); a rerun reads
//!   them from the cache either way.
//! - One llama.cpp context on a worker thread serves every request, up to
//!   [`LocalConfig::sequences`] answers decoded together (continuous
//!   batching: the samples of a request, and the requests of the questions
//!   in flight, `run --concurrency`). Its KV cache keeps earlier prompts:
//!   a request that shares a prefix with one (the system message and
//!   schema of the same database, the prompt of another sample, the
//!   conversation a repair round continues) only evaluates the rest.
//!
//! The engine (llama.cpp, through the llama-cpp-2 crate) is built with the
//! `local-models` feature, a default one; without it, asking for a local
//! model is an error that says so.

#[cfg(feature = "local-models")]
mod engine;
#[cfg(feature = "local-models")]
mod llama;
#[cfg(feature = "local-models")]
pub use llama::{
    Adapter, ChatTokenizer, DEFAULT_SEQUENCES, GgufTokenizer, LazyLocal, LocalConfig, LocalModel, backend,
};
#[cfg(feature = "local-models")]
mod recognize;
#[cfg(feature = "local-models")]
pub use recognize::{GrammarChecker, Verdict};

use super::Generator;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of the work done, for tokens/s figures.
#[derive(Debug, Default)]
pub struct LocalStats {
    pub generations: AtomicU64,
    /// Prompt tokens evaluated, and those taken from the KV cache instead.
    pub prompt_evaluated: AtomicU64,
    pub prompt_reused: AtomicU64,
    pub prompt_us: AtomicU64,
    pub generated: AtomicU64,
    pub generation_us: AtomicU64,
    /// Decode calls that advanced answers (each by one token), and the
    /// answer tokens they decoded: their ratio is how many answers were
    /// decoded together.
    pub answer_steps: AtomicU64,
    pub answer_tokens_decoded: AtomicU64,
    /// Generations stopped by the repetition rule.
    pub loops_cut: AtomicU64,
}

impl LocalStats {
    /// "prompt N tok/s (R% of prompt tokens reused), generation M tok/s".
    pub fn describe(&self) -> String {
        let rate = |tokens: &AtomicU64, us: &AtomicU64| {
            let us = us.load(Ordering::Relaxed).max(1) as f64;
            tokens.load(Ordering::Relaxed) as f64 / (us / 1e6)
        };
        let evaluated = self.prompt_evaluated.load(Ordering::Relaxed);
        let reused = self.prompt_reused.load(Ordering::Relaxed);
        format!(
            "{} generations ({} stopped early as loops); prompt {:.0} tok/s ({:.0}% of prompt tokens reused from the KV cache); generation {:.1} tok/s, {:.1} answers at a time",
            self.generations.load(Ordering::Relaxed),
            self.loops_cut.load(Ordering::Relaxed),
            rate(&self.prompt_evaluated, &self.prompt_us),
            100.0 * reused as f64 / (evaluated + reused).max(1) as f64,
            rate(&self.generated, &self.generation_us),
            self.answers_together(),
        )
    }

    /// Answers decoded together, on average over the decode calls.
    pub fn answers_together(&self) -> f64 {
        let steps = self.answer_steps.load(Ordering::Relaxed).max(1);
        self.answer_tokens_decoded.load(Ordering::Relaxed) as f64 / steps as f64
    }
}

/// The generator a `--model local:NAME` names, decoding up to `sequences`
/// answers together, loaded on the first request
/// the cache cannot answer (see [`LazyLocal`]), and its speed counters.
#[cfg(feature = "local-models")]
pub fn generator(model: &str, sequences: u32) -> anyhow::Result<(Arc<dyn Generator>, Arc<LocalStats>)> {
    let backend = Arc::new(LazyLocal::new(model, sequences)?);
    let stats = backend.stats.clone();
    Ok((backend, stats))
}

/// Without the `local-models` feature there is no local generator.
#[cfg(not(feature = "local-models"))]
pub fn generator(model: &str, _sequences: u32) -> anyhow::Result<(Arc<dyn Generator>, Arc<LocalStats>)> {
    anyhow::bail!("--model {model}: {}", crate::models::WITHOUT_LOCAL_MODELS)
}
