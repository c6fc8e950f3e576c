//! The on-disk completion cache (SQLite). Each sample of a request is stored
//! under a SHA-256 key of the endpoint, model, messages, sampling parameters
//! and sample index, so a re-run with the same inputs makes no HTTP call and
//! gets the same answers. The API key is never part of what is stored.

use super::{ChatModel, ChatRequest, Completion, Generator, LlmError, Message, ModelIdentity};
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// How the cache is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CacheMode {
    /// Read hits, store misses.
    ReadWrite,
    /// Replay only: a miss is an error (published runs).
    CacheOnly,
    /// Bypass the cache entirely.
    Off,
}

/// The cache flags of a command that calls a model (flattened into its
/// arguments).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CacheArgs {
    /// LLM cache file (default: ~/.cache/spider-bench/llm-cache.sqlite).
    #[arg(long = "cache", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Replay from the cache only; a miss stops the run.
    #[arg(long, conflicts_with = "no_cache")]
    pub cache_only: bool,
    /// Neither read nor write the cache.
    #[arg(long)]
    pub no_cache: bool,
}

impl CacheArgs {
    pub fn mode(&self) -> CacheMode {
        if self.no_cache {
            CacheMode::Off
        } else if self.cache_only {
            CacheMode::CacheOnly
        } else {
            CacheMode::ReadWrite
        }
    }

    /// `--cache`, else the default cache file.
    pub fn path(&self) -> PathBuf {
        self.file.clone().unwrap_or_else(crate::paths::llm_cache_file)
    }

    /// The cache, opened; `None` with `--no-cache`.
    pub fn open(&self) -> anyhow::Result<Option<Cache>> {
        if self.mode() == CacheMode::Off {
            return Ok(None);
        }
        let path = self.path();
        let cache =
            Cache::open(&path).map_err(|e| e.context(format!("cannot open the LLM cache {}", path.display())))?;
        Ok(Some(cache))
    }
}

pub struct Cache {
    conn: Mutex<Connection>,
    path: PathBuf,
}

/// The cache file's format, kept in SQLite's `user_version`. Version 1 is
/// the `completions` table keyed by [`cache_key`] ("v": 1 descriptions);
/// files made before the version was recorded (0) hold the same and are
/// marked 1 when opened.
pub const CACHE_FORMAT: i64 = 1;

impl Cache {
    pub fn open(path: &Path) -> anyhow::Result<Cache> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // Safe against a killed process; only a power cut can lose the last
        // few entries (which are then simply asked for again).
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS completions (
                key TEXT PRIMARY KEY,
                endpoint TEXT NOT NULL,
                model TEXT NOT NULL,
                request TEXT NOT NULL,
                completion TEXT NOT NULL,
                created_at INTEGER NOT NULL
            )",
        )?;
        let format: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if format > CACHE_FORMAT {
            anyhow::bail!(
                "{} was written by a newer spider-bench (cache format {format}; this one reads up to {CACHE_FORMAT}): \
                 use that version, or another --cache",
                path.display()
            );
        }
        if format < CACHE_FORMAT {
            conn.pragma_update(None, "user_version", CACHE_FORMAT)?;
        }
        Ok(Cache {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Any stored value (embeddings use this with their own keys).
    pub fn get_value<T: serde::de::DeserializeOwned>(&self, key: &str) -> Option<T> {
        let conn = self.conn.lock().expect("cache lock");
        let text: Option<String> = conn
            .query_row("SELECT completion FROM completions WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .ok()
            .flatten();
        text.and_then(|t| serde_json::from_str(&t).ok())
    }

    fn get(&self, key: &str) -> Option<Completion> {
        self.get_value(key)
    }

    fn put(&self, key: &str, id: &ModelIdentity, request: &serde_json::Value, c: &Completion) -> rusqlite::Result<()> {
        self.put_value(key, id, request, c)
    }

    /// Stores any value under `key`, with the request that produced it.
    pub fn put_value<T: serde::Serialize>(
        &self,
        key: &str,
        id: &ModelIdentity,
        request: &serde_json::Value,
        c: &T,
    ) -> rusqlite::Result<()> {
        let conn = self.conn.lock().expect("cache lock");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        conn.execute(
            "INSERT OR REPLACE INTO completions (key, endpoint, model, request, completion, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![key, id.endpoint, id.model, request.to_string(), serde_json::to_string(c).expect("serializes"), now as i64],
        )?;
        Ok(())
    }
}

/// The canonical description of one sample request: what the key hashes.
pub fn request_description(
    id: &ModelIdentity,
    messages: &[Message],
    req: &ChatRequest,
    sample: u32,
) -> serde_json::Value {
    let mut description = serde_json::json!({
        "v": 1,
        "endpoint": id.endpoint,
        "model": id.model,
        "messages": messages,
        "temperature": req.params.temperature,
        "max_tokens": req.params.max_tokens,
        "seed": req.params.seed,
        "sample": sample,
    });
    // Only a constrained request has the field: every other key is the
    // same as before grammars existed. (The hash, not the grammar's text:
    // the description is stored with each entry.)
    if let Some(grammar) = &req.params.grammar {
        description["grammar_sha256"] = hex::encode(Sha256::digest(grammar.as_bytes())).into();
    }
    description
}

pub fn cache_key(description: &serde_json::Value) -> String {
    hex::encode(Sha256::digest(description.to_string().as_bytes()))
}

/// Cache counters for the run summary.
#[derive(Debug, Default)]
pub struct CacheStats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
}

/// A backend behind the cache.
pub struct CachedModel {
    backend: Arc<dyn Generator>,
    cache: Option<Cache>,
    mode: CacheMode,
    pub stats: CacheStats,
}

impl CachedModel {
    pub fn new(backend: Arc<dyn Generator>, cache: Option<Cache>, mode: CacheMode) -> Self {
        CachedModel {
            backend,
            cache,
            mode,
            stats: CacheStats::default(),
        }
    }

    /// Calls that reached the backend (0 when everything came from the cache).
    pub fn backend_calls(&self) -> u64 {
        self.backend.calls()
    }
}

#[async_trait::async_trait]
impl ChatModel for CachedModel {
    async fn complete(&self, req: &ChatRequest) -> Result<Vec<Completion>, LlmError> {
        let id = self.backend.identity();
        let descriptions: Vec<serde_json::Value> = (0..req.n)
            .map(|i| request_description(&id, &req.messages, req, i))
            .collect();
        let keys: Vec<String> = descriptions.iter().map(cache_key).collect();
        let mut slots: Vec<Option<Completion>> = match (&self.cache, self.mode) {
            (Some(cache), CacheMode::ReadWrite | CacheMode::CacheOnly) => keys.iter().map(|k| cache.get(k)).collect(),
            _ => vec![None; req.n as usize],
        };
        for slot in slots.iter_mut().flatten() {
            slot.from_cache = true;
        }
        let missing: Vec<u32> = (0..req.n).filter(|&i| slots[i as usize].is_none()).collect();
        self.stats
            .hits
            .fetch_add((slots.len() - missing.len()) as u64, Ordering::Relaxed);
        self.stats.misses.fetch_add(missing.len() as u64, Ordering::Relaxed);
        if !missing.is_empty() {
            if self.mode == CacheMode::CacheOnly {
                return Err(LlmError::Fatal(format!(
                    "cache miss in --cache-only mode (key {}); the cache at {} does not hold this run",
                    keys[missing[0] as usize],
                    self.cache
                        .as_ref()
                        .map(|c| c.path().display().to_string())
                        .unwrap_or_default()
                )));
            }
            let fresh = self.backend.generate(&req.messages, &req.params, &missing).await?;
            for (&slot, raw) in missing.iter().zip(fresh) {
                let i = slot as usize;
                let c = Completion {
                    text: raw.text,
                    prompt_tokens: raw.prompt_tokens,
                    completion_tokens: raw.completion_tokens,
                    latency_ms: raw.latency_ms,
                    cache_key: keys[i].clone(),
                    from_cache: false,
                    cut: raw.cut,
                };
                if let (Some(cache), CacheMode::ReadWrite) = (&self.cache, self.mode) {
                    cache
                        .put(&keys[i], &id, &descriptions[i], &c)
                        .map_err(|e| LlmError::Fatal(format!("cannot write the cache: {e}")))?;
                }
                slots[i] = Some(c);
            }
        }
        Ok(slots.into_iter().map(|s| s.expect("every slot filled")).collect())
    }

    fn identity(&self) -> ModelIdentity {
        self.backend.identity()
    }
}
