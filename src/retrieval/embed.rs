//! Embeddings behind one trait, and dense similarity over a corpus whose
//! vectors are computed once and stored on disk with the model's identity.

use crate::llm::cache::{Cache, CacheArgs, CacheMode, cache_key};
use crate::llm::client::{ClientArgs, OpenAiClient};
use crate::llm::{Completion, LlmError};
use crate::models::DEFAULT_EMBEDDING_MODEL;
use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Vectors for texts, plus what producing them cost.
pub struct Embedded {
    /// L2-normalised, one per input text.
    pub vectors: Vec<Vec<f32>>,
    /// One entry per HTTP call or cache hit (tokens and cache keys), so
    /// embedding calls are accounted like chat calls.
    pub usage: Vec<Completion>,
}

/// Something that turns texts into vectors.
#[async_trait::async_trait]
pub trait Embedder: Send + Sync {
    /// What identifies the model (stored with the vectors).
    fn identity(&self) -> String;
    async fn embed(&self, texts: &[String]) -> Result<Embedded, LlmError>;
}

/// What an embedder needs besides its name: the endpoint of "openai:MODEL"
/// (same settings as chat) and the cache its embeddings go through.
pub struct EmbedderSettings<'a> {
    pub client: &'a ClientArgs,
    pub cache: &'a CacheArgs,
}

/// The embedder a similarity name stands for: "openai:MODEL" (the
/// embeddings API of the endpoint, same key and cache as chat) or
/// "local:all-minilm-l6-v2" (installed by `spider-bench models fetch`).
pub fn embedder_for(name: &str, settings: &EmbedderSettings) -> Result<Arc<dyn Embedder>> {
    if let Some(model) = name.strip_prefix("openai:") {
        let mode = settings.cache.mode();
        let client = Arc::new(OpenAiClient::new(settings.client.config(model, mode)?)?);
        let cache = settings.cache.open()?.map(Arc::new);
        return Ok(Arc::new(OpenAiEmbedder {
            client,
            cache,
            mode,
            batch: 256,
        }));
    }
    if name.starts_with("local:") {
        return local_embedder(name);
    }
    bail!("similarity {name:?} is not known: use \"bm25\", \"local:{DEFAULT_EMBEDDING_MODEL}\" or \"openai:MODEL\"")
}

/// The local all-MiniLM-L6-v2, from the models folder.
#[cfg(feature = "local-models")]
fn local_embedder(name: &str) -> Result<Arc<dyn Embedder>> {
    use super::local::{LocalEmbedder, MINILM_NAME, MiniLm};
    if name.strip_prefix("local:") != Some(MINILM_NAME) {
        bail!("similarity {name:?} is not known: the local embedding model is local:{MINILM_NAME}");
    }
    Ok(Arc::new(LocalEmbedder {
        model: Arc::new(MiniLm::load(&crate::paths::models_dir().join(MINILM_NAME))?),
    }))
}

#[cfg(not(feature = "local-models"))]
fn local_embedder(name: &str) -> Result<Arc<dyn Embedder>> {
    bail!("similarity {name}: {}", crate::models::WITHOUT_LOCAL_MODELS)
}

pub fn normalize(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

/// An embedding as cached: the vector and the usage first recorded for it.
#[derive(serde::Serialize, serde::Deserialize)]
struct CachedEmbedding {
    vector: Vec<f32>,
    prompt_tokens: u64,
    latency_ms: f64,
}

impl CachedEmbedding {
    fn usage(&self, key: &str, from_cache: bool) -> Completion {
        Completion {
            text: String::new(),
            prompt_tokens: self.prompt_tokens,
            completion_tokens: 0,
            latency_ms: self.latency_ms,
            cache_key: key.to_string(),
            from_cache,
            cut: None,
        }
    }
}

/// The `/v1/embeddings` API through the same client (retries, limits) and
/// the same cache as chat, keyed per text.
pub struct OpenAiEmbedder {
    pub client: Arc<OpenAiClient>,
    pub cache: Option<Arc<Cache>>,
    pub mode: CacheMode,
    /// Texts per request.
    pub batch: usize,
}

impl OpenAiEmbedder {
    fn key(&self, text: &str) -> (String, serde_json::Value) {
        let id = self.client.identity();
        let d =
            serde_json::json!({"v": 1, "kind": "embedding", "endpoint": id.endpoint, "model": id.model, "input": text});
        (cache_key(&d), d)
    }
}

#[async_trait::async_trait]
impl Embedder for OpenAiEmbedder {
    fn identity(&self) -> String {
        let id = self.client.identity();
        format!("openai:{}@{}", id.model, id.endpoint)
    }

    async fn embed(&self, texts: &[String]) -> Result<Embedded, LlmError> {
        let keys: Vec<(String, serde_json::Value)> = texts.iter().map(|t| self.key(t)).collect();
        let cached: Vec<Option<CachedEmbedding>> = match (&self.cache, self.mode) {
            (Some(c), CacheMode::ReadWrite | CacheMode::CacheOnly) => {
                keys.iter().map(|(k, _)| c.get_value(k)).collect()
            }
            _ => (0..texts.len()).map(|_| None).collect(),
        };
        // A hit reports the usage first recorded, so replays account alike.
        let mut usage: Vec<Completion> = keys
            .iter()
            .zip(&cached)
            .filter_map(|((k, _), c)| c.as_ref().map(|c| c.usage(k, true)))
            .collect();
        let mut vectors: Vec<Option<Vec<f32>>> = cached.into_iter().map(|c| c.map(|c| c.vector)).collect();
        let missing: Vec<usize> = (0..texts.len()).filter(|&i| vectors[i].is_none()).collect();
        if !missing.is_empty() && self.mode == CacheMode::CacheOnly {
            return Err(LlmError::Fatal(format!(
                "embedding cache miss in --cache-only mode (key {})",
                keys[missing[0]].0
            )));
        }
        for chunk in missing.chunks(self.batch.max(1)) {
            let inputs: Vec<String> = chunk.iter().map(|&i| texts[i].clone()).collect();
            let (got, tokens, latency_ms) = self.client.embed(&inputs).await?;
            for (n, (&i, v)) in chunk.iter().zip(got).enumerate() {
                // Usage is per call: on its first text.
                let entry = CachedEmbedding {
                    vector: normalize(v),
                    prompt_tokens: if n == 0 { tokens } else { 0 },
                    latency_ms: if n == 0 { latency_ms } else { 0.0 },
                };
                if let (Some(c), CacheMode::ReadWrite) = (&self.cache, self.mode) {
                    c.put_value(&keys[i].0, &self.client.identity(), &keys[i].1, &entry)
                        .map_err(|e| LlmError::Fatal(format!("cannot write the cache: {e}")))?;
                }
                usage.push(entry.usage(&keys[i].0, false));
                vectors[i] = Some(entry.vector);
            }
        }
        Ok(Embedded {
            vectors: vectors.into_iter().map(|v| v.expect("filled")).collect(),
            usage,
        })
    }
}

/// Cosine similarity against stored, normalised corpus vectors.
pub struct DenseIndex {
    pub identity: String,
    pub vectors: Vec<Vec<f32>>,
}

impl DenseIndex {
    /// Scores of a query vector against every corpus vector.
    pub fn scores_of(&self, query: &[f32]) -> Vec<f32> {
        self.vectors
            .iter()
            .map(|v| v.iter().zip(query).map(|(a, b)| a * b).sum())
            .collect()
    }

    /// Scores of many query vectors at once: one matrix product (SIMD gemm
    /// through candle) instead of a dot product loop per query; the loop
    /// without the `local-models` feature.
    #[cfg(feature = "local-models")]
    pub fn scores_batch(&self, queries: &[Vec<f32>]) -> Vec<Vec<f32>> {
        let dim = self.vectors.first().map_or(0, Vec::len);
        if queries.is_empty() || dim == 0 {
            return queries.iter().map(|q| self.scores_of(q)).collect();
        }
        let product = || -> candle_core::Result<Vec<Vec<f32>>> {
            let dev = candle_core::Device::Cpu;
            let corpus = candle_core::Tensor::from_vec(self.vectors.concat(), (self.vectors.len(), dim), &dev)?;
            let q = candle_core::Tensor::from_vec(queries.concat(), (queries.len(), dim), &dev)?;
            q.matmul(&corpus.t()?)?.to_vec2::<f32>()
        };
        product().unwrap_or_else(|_| queries.iter().map(|q| self.scores_of(q)).collect())
    }

    #[cfg(not(feature = "local-models"))]
    pub fn scores_batch(&self, queries: &[Vec<f32>]) -> Vec<Vec<f32>> {
        queries.iter().map(|q| self.scores_of(q)).collect()
    }

    /// The corpus vectors from `dir` when stored there for this model and
    /// corpus, else computed (in batches) and stored.
    pub async fn load_or_build(embedder: &dyn Embedder, corpus: &[String], dir: &Path) -> Result<DenseIndex> {
        let identity = embedder.identity();
        let mut h = Sha256::new();
        h.update(identity.as_bytes());
        for t in corpus {
            h.update((t.len() as u64).to_le_bytes());
            h.update(t.as_bytes());
        }
        let path: PathBuf = dir.join(format!("{}.f32", &hex::encode(h.finalize())[..32]));
        if let Some(vectors) = read_vectors(&path, corpus.len()) {
            return Ok(DenseIndex { identity, vectors });
        }
        let embedded = embedder
            .embed(corpus)
            .await
            .map_err(|e| anyhow::anyhow!("embedding the pool: {e}"))?;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        write_vectors(&path, &embedded.vectors).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(DenseIndex {
            identity,
            vectors: embedded.vectors,
        })
    }
}

/// Vectors as `[count u64][dim u64][f32...]`, little-endian.
fn write_vectors(path: &Path, vectors: &[Vec<f32>]) -> std::io::Result<()> {
    let dim = vectors.first().map_or(0, Vec::len);
    let mut bytes = Vec::with_capacity(16 + vectors.len() * dim * 4);
    bytes.extend((vectors.len() as u64).to_le_bytes());
    bytes.extend((dim as u64).to_le_bytes());
    for v in vectors {
        for x in v {
            bytes.extend(x.to_le_bytes());
        }
    }
    crate::paths::write_atomically(path, &bytes)
}

fn read_vectors(path: &Path, expected: usize) -> Option<Vec<Vec<f32>>> {
    let bytes = std::fs::read(path).ok()?;
    let count = u64::from_le_bytes(bytes.get(0..8)?.try_into().ok()?) as usize;
    let dim = u64::from_le_bytes(bytes.get(8..16)?.try_into().ok()?) as usize;
    if count != expected || bytes.len() != 16 + count * dim * 4 {
        return None;
    }
    Some(
        bytes[16..]
            .chunks_exact(dim * 4)
            .map(|row| {
                row.chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
                    .collect()
            })
            .collect(),
    )
}
