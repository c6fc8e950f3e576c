//! Checks text against a GBNF grammar with llama.cpp's own grammar sampler,
//! token by token, as constrained decoding would see it: whatever this
//! accepts, the grammar lets a model write (with this tokenizer), and a
//! refusal names the first token the sampler would have masked.
//!
//! llama.cpp aborts the process when its grammar sampler is made to accept
//! an end-of-generation token that the grammar does not allow there, and
//! throws on any other refused token; so a token is only ever accepted
//! after the sampler, applied to it alone, has left its logit finite.

use super::llama::GgufTokenizer;
use anyhow::Result;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use std::path::Path;
use std::time::{Duration, Instant};

/// What the grammar says of a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every token is allowed, and the grammar may end after the last.
    Accepted,
    /// The grammar refuses the text's `token`-th token (0-based), which
    /// starts at byte `offset` and reads `piece`.
    Refused { token: usize, offset: usize, piece: String },
    /// Every token is allowed but the text is not complete: the grammar
    /// does not allow the end of generation after it.
    Unfinished,
}

/// A model's vocabulary (loaded without its weights), for grammar checks.
pub struct GrammarChecker {
    vocab: GgufTokenizer,
}

/// A fresh grammar sampler for `gbnf` from rule `root`. A grammar that does
/// not parse is an error here (llama.cpp returns no sampler and writes the
/// parse error to stderr), never a crash.
pub(super) fn grammar_sampler(model: &LlamaModel, gbnf: &str, root: &str) -> Result<LlamaSampler> {
    LlamaSampler::grammar(model, gbnf, root)
        .map_err(|e| anyhow::anyhow!("llama.cpp refuses the grammar ({e}); its parse error is on stderr"))
}

impl GrammarChecker {
    /// Loads the vocabulary of the GGUF file at `gguf`.
    pub fn load(gguf: &Path) -> Result<GrammarChecker> {
        Ok(GrammarChecker {
            vocab: GgufTokenizer::load(gguf)?,
        })
    }

    /// A fresh grammar sampler for `gbnf` from rule `root` ([`grammar_sampler`]).
    pub fn sampler(&self, gbnf: &str, root: &str) -> Result<LlamaSampler> {
        grammar_sampler(self.vocab.model(), gbnf, root)
    }

    /// The tokens of `text`, as the model would write them (no special tokens).
    pub fn tokenize(&self, text: &str) -> Vec<LlamaToken> {
        self.vocab.tokens(text)
    }

    fn piece(&self, token: LlamaToken) -> Vec<u8> {
        self.vocab.model().vocab().token_to_piece(token, false, None)
    }

    /// Whether `gbnf` (from rule `root`) accepts `text`, tokenized as the
    /// model tokenizes it.
    pub fn check(&self, gbnf: &str, root: &str, text: &str) -> Result<Verdict> {
        let mut sampler = self.sampler(gbnf, root)?;
        let mut offset = 0;
        for (i, token) in self.tokenize(text).into_iter().enumerate() {
            let piece = self.piece(token);
            if !allows(&mut sampler, token) {
                let piece = String::from_utf8_lossy(&piece).into_owned();
                return Ok(Verdict::Refused {
                    token: i,
                    offset,
                    piece,
                });
            }
            sampler
                .try_accept(token)
                .map_err(|e| anyhow::anyhow!("llama.cpp's grammar sampler failed on an allowed token: {e}"))?;
            offset += piece.len();
        }
        Ok(if allows(&mut sampler, self.vocab.model().vocab().eos()) {
            Verdict::Accepted
        } else {
            Verdict::Unfinished
        })
    }

    /// The time the sampler takes to mask the whole vocabulary, at each
    /// step of writing `text` (which the grammar must accept): the cost
    /// constrained decoding adds to every generated token.
    pub fn full_vocab_costs(&self, gbnf: &str, root: &str, text: &str) -> Result<Vec<Duration>> {
        let mut sampler = self.sampler(gbnf, root)?;
        let n = self.vocab.model().vocab().n_tokens();
        let mut costs = Vec::new();
        for token in self.tokenize(text) {
            let mut all =
                LlamaTokenDataArray::from_iter((0..n).map(|t| LlamaTokenData::new(LlamaToken(t), 0.0, 0.0)), false);
            let started = Instant::now();
            sampler.apply(&mut all);
            costs.push(started.elapsed());
            let allowed = all.data.iter().any(|d| d.id() == token && d.logit().is_finite());
            anyhow::ensure!(allowed, "the grammar refuses {text:?} (token {token:?})");
            sampler.try_accept(token).map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        Ok(costs)
    }
}

/// Whether the grammar, in its current state, lets `token` be sampled.
pub(super) fn allows(sampler: &mut LlamaSampler, token: LlamaToken) -> bool {
    let mut one = LlamaTokenDataArray::new(vec![LlamaTokenData::new(token, 0.0, 0.0)], false);
    sampler.apply(&mut one);
    one.data[0].logit().is_finite()
}
