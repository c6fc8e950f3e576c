//! The OpenAI-compatible chat completions client (OpenAI, vLLM, llama.cpp
//! server, Ollama...): bounded concurrency, optional request and token rate
//! limits, per-request timeout, retries with exponential backoff and jitter on
//! 429/5xx/timeouts that honour `Retry-After`, and `n` samples sent natively
//! or as separate requests where the server ignores `n`.

use super::cache::CacheMode;
use super::{GenParams, Generator, LlmError, Message, ModelIdentity, RawCompletion};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rand::RngExt;
use serde::Deserialize;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// OpenAI's API, the default endpoint.
pub const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";

#[derive(Clone)]
pub struct ClientConfig {
    pub base_url: String,
    pub model: String,
    /// Sent as a bearer token; never logged, cached or written anywhere.
    pub api_key: Option<String>,
    /// Requests in flight at once.
    pub concurrency: usize,
    pub requests_per_minute: Option<u32>,
    pub tokens_per_minute: Option<u32>,
    pub request_timeout: Duration,
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// First backoff delay; doubled on every retry up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// The request field that carries a grammar, where the server takes one
    /// (`grammar` for llama.cpp's server, `guided_grammar` for vLLM); `None`:
    /// a constrained request is refused.
    pub grammar_field: Option<String>,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

impl ClientConfig {
    pub fn new(base_url: &str, model: &str, api_key: Option<String>) -> Self {
        ClientConfig {
            base_url: base_url.trim_end_matches('/').to_string(),
            model: model.to_string(),
            api_key,
            concurrency: 8,
            requests_per_minute: None,
            tokens_per_minute: None,
            request_timeout: Duration::from_secs(120),
            max_retries: 6,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            grammar_field: None,
        }
    }
}

/// The endpoint settings of a command that calls an OpenAI-compatible
/// server (flattened into its arguments).
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// OpenAI-compatible endpoint (vLLM, llama.cpp server, Ollama:
    /// http://host:port/v1). Default: OpenAI's API.
    #[arg(long)]
    pub base_url: Option<String>,
    /// Environment variable holding the API key.
    #[arg(long, default_value = "OPENAI_API_KEY")]
    pub api_key_env: String,
    /// Requests (and questions) in flight at once. With a local model, also
    /// the most answers decoded together (one llama.cpp sequence each; 1
    /// decodes one answer after another).
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Requests per minute, at most.
    #[arg(long)]
    pub rpm: Option<u32>,
    /// Tokens per minute, at most (estimated before each request).
    #[arg(long)]
    pub tpm: Option<u32>,
    #[arg(long, default_value_t = 120.0)]
    pub request_timeout_secs: f64,
    /// Retries of a request on 429, 5xx and timeouts.
    #[arg(long, default_value_t = 6)]
    pub max_retries: u32,
    /// First retry delay (doubled each time, with jitter) unless the server says Retry-After.
    #[arg(long, default_value_t = 1000)]
    pub retry_base_ms: u64,
    /// The endpoint takes a GBNF grammar in this request field (`grammar`:
    /// llama.cpp's server; `guided_grammar`: vLLM), so the `constrained`
    /// step can be used with it. Without it a constrained request is refused.
    #[arg(long, value_name = "FIELD")]
    pub grammar_field: Option<String>,
}

impl Default for ClientArgs {
    fn default() -> Self {
        crate::cli::defaults()
    }
}

impl ClientArgs {
    /// `--base-url`, else OpenAI's API.
    pub fn base_url(&self) -> &str {
        self.base_url.as_deref().unwrap_or(OPENAI_BASE_URL)
    }

    /// The client configuration for `model`, the key read from its
    /// variable. OpenAI's API without a key is refused, unless the cache
    /// answers everything (`CacheMode::CacheOnly`).
    pub fn config(&self, model: &str, cache_mode: CacheMode) -> anyhow::Result<ClientConfig> {
        let api_key = std::env::var(&self.api_key_env).ok().filter(|k| !k.trim().is_empty());
        if api_key.is_none()
            && self.base_url().trim_end_matches('/') == OPENAI_BASE_URL
            && cache_mode != CacheMode::CacheOnly
        {
            anyhow::bail!(
                "${} is not set: set it to your OpenAI key, name another variable with --api-key-env, \
                 or point --base-url at an OpenAI-compatible server (vLLM, llama.cpp, Ollama...)",
                self.api_key_env
            );
        }
        let mut config = ClientConfig::new(self.base_url(), model, api_key);
        config.concurrency = self.concurrency.max(1);
        config.requests_per_minute = self.rpm;
        config.tokens_per_minute = self.tpm;
        config.request_timeout = Duration::from_secs_f64(self.request_timeout_secs);
        config.max_retries = self.max_retries;
        config.initial_backoff = Duration::from_millis(self.retry_base_ms);
        config.grammar_field = self.grammar_field.clone();
        Ok(config)
    }
}

/// Counters for the run summary.
#[derive(Debug, Default)]
pub struct ClientStats {
    pub http_calls: AtomicU64,
    pub retries: AtomicU64,
}

pub struct OpenAiClient {
    config: ClientConfig,
    http: reqwest::Client,
    in_flight: Semaphore,
    requests: Option<DefaultDirectRateLimiter>,
    tokens: Option<DefaultDirectRateLimiter>,
    /// Set once the server answered fewer choices than `n` asked for.
    ignores_n: AtomicBool,
    pub stats: ClientStats,
}

#[derive(Deserialize)]
struct ApiResponse {
    choices: Vec<ApiChoice>,
    #[serde(default)]
    usage: Option<ApiUsage>,
}

#[derive(Deserialize)]
struct ApiChoice {
    message: ApiMessage,
}

#[derive(Deserialize)]
struct ApiMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
}

#[derive(Deserialize, Default)]
struct ApiUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

/// What one attempt gave.
enum Attempt {
    /// A 2xx answer's body.
    Done(String),
    /// Worth retrying, after at least this long (from Retry-After) if given.
    Retry(String, Option<Duration>),
    Fail(LlmError),
}

impl OpenAiClient {
    pub fn new(config: ClientConfig) -> Result<Self, LlmError> {
        crate::net::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .build()
            .map_err(|e| LlmError::Fatal(format!("cannot build the HTTP client: {e}")))?;
        // Requests are spaced evenly (no burst); tokens may burst up to the
        // whole minute's budget, since one request can need many.
        let requests = config
            .requests_per_minute
            .and_then(NonZeroU32::new)
            .map(|n| RateLimiter::direct(Quota::per_minute(n).allow_burst(NonZeroU32::MIN)));
        let tokens = config
            .tokens_per_minute
            .and_then(NonZeroU32::new)
            .map(|n| RateLimiter::direct(Quota::per_minute(n)));
        Ok(OpenAiClient {
            in_flight: Semaphore::new(config.concurrency.max(1)),
            requests,
            tokens,
            http,
            config,
            ignores_n: AtomicBool::new(false),
            stats: ClientStats::default(),
        })
    }

    pub fn identity(&self) -> ModelIdentity {
        ModelIdentity {
            endpoint: self.config.base_url.clone(),
            model: self.config.model.clone(),
        }
    }

    /// Where a grammar goes in the request; an error that stops the run
    /// when the endpoint is not declared to take one (an OpenAI-compatible
    /// server would ignore an unknown field and answer unconstrained).
    fn grammar_field(&self) -> Result<&str, LlmError> {
        self.config.grammar_field.as_deref().ok_or_else(|| {
            LlmError::Fatal(format!(
                "{}: this strategy constrains answers with a grammar (the `constrained` step), but the endpoint is \
                 not declared to take one: pass --grammar-field grammar (llama.cpp's server) or \
                 --grammar-field guided_grammar (vLLM), or run without the `constrained` step",
                self.config.base_url
            ))
        })
    }

    /// One logical request (with retries) for `n` choices.
    async fn call(&self, messages: &[Message], params: &GenParams, n: u32) -> Result<Vec<RawCompletion>, LlmError> {
        let mut body = serde_json::json!({
            "model": self.config.model,
            "messages": messages,
            "temperature": params.temperature,
            "max_tokens": params.max_tokens,
        });
        if n > 1 {
            body["n"] = n.into();
        }
        if let Some(seed) = params.seed {
            body["seed"] = seed.into();
        }
        if let Some(grammar) = &params.grammar {
            body[self.grammar_field()?] = grammar.as_ref().into();
        }
        let estimated_tokens = messages.iter().map(|m| m.content.len() as u32 / 4 + 4).sum::<u32>() + params.max_tokens;
        let ((texts, usage), latency_ms) = self
            .post("/chat/completions", &body, estimated_tokens, parse_chat)
            .await?;
        Ok(texts
            .into_iter()
            .enumerate()
            .map(|(i, text)| RawCompletion {
                text,
                // Usage is per call: put it on the first sample.
                prompt_tokens: if i == 0 { usage.prompt_tokens } else { 0 },
                completion_tokens: if i == 0 { usage.completion_tokens } else { 0 },
                latency_ms,
                cut: None,
            })
            .collect())
    }

    /// Embeddings of `inputs` from `/embeddings` (the client's model is the
    /// embedding model); returns the vectors, prompt tokens and latency.
    pub async fn embed(&self, inputs: &[String]) -> Result<(Vec<Vec<f32>>, u64, f64), LlmError> {
        let body = serde_json::json!({"model": self.config.model, "input": inputs});
        let estimated = inputs.iter().map(|t| t.len() as u32 / 4 + 1).sum();
        let ((vectors, tokens), latency) = self
            .post("/embeddings", &body, estimated, |t| parse_embeddings(t, inputs.len()))
            .await?;
        Ok((vectors, tokens, latency))
    }

    /// POSTs `body` with rate limits, the concurrency bound and retries, and
    /// parses the successful answer.
    async fn post<T>(
        &self,
        path: &str,
        body: &serde_json::Value,
        estimated_tokens: u32,
        parse: impl Fn(&str) -> Result<T, LlmError>,
    ) -> Result<(T, f64), LlmError> {
        let mut attempt = 0;
        loop {
            self.wait_for_rate_limits(estimated_tokens).await;
            let permit = self.in_flight.acquire().await.expect("semaphore is never closed");
            let start = Instant::now();
            self.stats.http_calls.fetch_add(1, Ordering::Relaxed);
            let outcome = self.attempt(path, body).await;
            let latency_ms = start.elapsed().as_secs_f64() * 1000.0;
            drop(permit);
            let (reason, retry_after) = match outcome {
                Attempt::Done(text) => return parse(&text).map(|v| (v, latency_ms)),
                Attempt::Fail(e) => return Err(e),
                Attempt::Retry(reason, after) => (reason, after),
            };
            if attempt >= self.config.max_retries {
                return Err(LlmError::Unavailable(format!(
                    "gave up after {} attempts: {reason}",
                    attempt + 1
                )));
            }
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(retry_after.unwrap_or_else(|| self.backoff(attempt))).await;
            attempt += 1;
        }
    }

    async fn wait_for_rate_limits(&self, tokens: u32) {
        if let Some(r) = &self.requests {
            r.until_ready().await;
        }
        if let Some(t) = &self.tokens {
            // A request larger than the whole per-minute budget waits for a
            // full budget instead of forever.
            let n = NonZeroU32::new(tokens.max(1)).expect("nonzero");
            if t.until_n_ready(n).await.is_err() {
                t.until_ready().await;
            }
        }
    }

    /// Exponential backoff with jitter: base * 2^attempt, capped, times a
    /// random factor in [0.5, 1.5).
    fn backoff(&self, attempt: u32) -> Duration {
        let base = self.config.initial_backoff.saturating_mul(1u32 << attempt.min(20));
        let capped = base.min(self.config.max_backoff);
        capped.mul_f64(rand::rng().random_range(0.5..1.5))
    }

    async fn attempt(&self, path: &str, body: &serde_json::Value) -> Attempt {
        let url = format!("{}{path}", self.config.base_url);
        let mut request = self.http.post(&url).json(body);
        if let Some(key) = &self.config.api_key {
            request = request.bearer_auth(key);
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => return Attempt::Retry("request timed out".into(), None),
            Err(e) if e.is_connect() || e.is_request() => {
                return Attempt::Retry(format!("cannot reach {url}: {}", error_chain(&e)), None);
            }
            Err(e) => {
                return Attempt::Fail(LlmError::Unavailable(format!(
                    "request to {url} failed: {}",
                    error_chain(&e)
                )));
            }
        };
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let text = match response.text().await {
            Ok(t) => t,
            Err(e) if e.is_timeout() => return Attempt::Retry("response timed out".into(), None),
            Err(e) => {
                return Attempt::Retry(format!("response broke off: {}", error_chain(&e)), None);
            }
        };
        if status.as_u16() == 429 || status.as_u16() == 408 || status.is_server_error() {
            return Attempt::Retry(format!("HTTP {status}: {}", excerpt(&text)), retry_after);
        }
        match status.as_u16() {
            401 | 403 => {
                return Attempt::Fail(LlmError::Fatal(format!(
                    "{url} refused the credentials (HTTP {status}); check the key in the variable named by --api-key-env"
                )));
            }
            404 => {
                return Attempt::Fail(LlmError::Fatal(format!(
                    "{url} answered 404 for model {:?}; check --base-url and --model: {}",
                    self.config.model,
                    excerpt(&text)
                )));
            }
            _ if !status.is_success() => {
                return Attempt::Fail(LlmError::Request(format!("HTTP {status}: {}", excerpt(&text))));
            }
            _ => {}
        }
        Attempt::Done(text)
    }
}

#[async_trait::async_trait]
impl Generator for OpenAiClient {
    /// The samples `slots`: one request with `n` = all of them when they are
    /// a request's first samples (0, 1, ...) and the server honours `n`;
    /// otherwise one request per slot, seeded with the request's seed plus
    /// the slot, so that servers which honour seeds give each slot its own
    /// sample, whatever was cached.
    async fn generate(
        &self,
        messages: &[Message],
        params: &GenParams,
        slots: &[u32],
    ) -> Result<Vec<RawCompletion>, LlmError> {
        let k = slots.len();
        let mut out = Vec::with_capacity(k);
        let from_zero = slots.iter().enumerate().all(|(i, &s)| s as usize == i);
        if k > 1 && from_zero && !self.ignores_n.load(Ordering::Relaxed) {
            out = self.call(messages, params, k as u32).await?;
            if out.len() < k {
                self.ignores_n.store(true, Ordering::Relaxed);
            }
            out.truncate(k);
        }
        for &slot in &slots[out.len()..] {
            let p = GenParams {
                seed: params.seed.map(|s| s + u64::from(slot)),
                ..params.clone()
            };
            let mut one = self.call(messages, &p, 1).await?;
            out.append(&mut one);
        }
        Ok(out)
    }

    fn identity(&self) -> ModelIdentity {
        OpenAiClient::identity(self)
    }

    fn calls(&self) -> u64 {
        self.stats.http_calls.load(Ordering::Relaxed)
    }
}

/// The answers and usage of a chat completion response.
fn parse_chat(text: &str) -> Result<(Vec<String>, ApiUsage), LlmError> {
    let parsed: ApiResponse = serde_json::from_str(text)
        .map_err(|e| LlmError::Unavailable(format!("malformed response ({e}): {}", excerpt(text))))?;
    if parsed.choices.is_empty() {
        return Err(LlmError::Unavailable(format!(
            "response without choices: {}",
            excerpt(text)
        )));
    }
    let mut texts = Vec::with_capacity(parsed.choices.len());
    for c in parsed.choices {
        match (c.message.content, c.message.refusal) {
            (_, Some(refusal)) if !refusal.is_empty() => {
                return Err(LlmError::Request(format!("the model refused: {}", excerpt(&refusal))));
            }
            (content, _) => texts.push(content.unwrap_or_default()),
        }
    }
    Ok((texts, parsed.usage.unwrap_or_default()))
}

#[derive(Deserialize)]
struct EmbeddingResponse {
    data: Vec<EmbeddingItem>,
    #[serde(default)]
    usage: Option<ApiUsage>,
}

#[derive(Deserialize)]
struct EmbeddingItem {
    #[serde(default)]
    index: Option<usize>,
    embedding: Vec<f32>,
}

/// The vectors (in input order) and prompt tokens of an embeddings response.
fn parse_embeddings(text: &str, expected: usize) -> Result<(Vec<Vec<f32>>, u64), LlmError> {
    let parsed: EmbeddingResponse = serde_json::from_str(text)
        .map_err(|e| LlmError::Unavailable(format!("malformed embeddings response ({e}): {}", excerpt(text))))?;
    if parsed.data.len() != expected {
        return Err(LlmError::Unavailable(format!(
            "asked for {expected} embeddings, got {}",
            parsed.data.len()
        )));
    }
    let mut items = parsed.data;
    items.sort_by_key(|d| d.index.unwrap_or(0));
    Ok((
        items.into_iter().map(|d| d.embedding).collect(),
        parsed.usage.unwrap_or_default().prompt_tokens,
    ))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

fn excerpt(text: &str) -> String {
    let t: String = text.chars().take(300).collect();
    if t.len() < text.len() { format!("{t}...") } else { t }
}

/// `Retry-After` (seconds or an HTTP date) or OpenAI's `retry-after-ms`.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    if let Some(ms) = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
    {
        return Some(Duration::from_secs_f64(ms.max(0.0) / 1000.0));
    }
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return Some(Duration::from_secs_f64(secs.clamp(0.0, 3600.0)));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(std::time::SystemTime::now()).unwrap_or_default())
}
