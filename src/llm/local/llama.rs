//! The llama.cpp engine behind [`super`] (built with the `local-models`
//! feature).

use super::LocalStats;
use super::engine::{Engine, Job};
use crate::llm::{GenParams, Generator, LlmError, Message, ModelIdentity, RawCompletion};
use anyhow::{Context, Result, anyhow, bail};
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaLoraAdapter, LlamaModel};
use llama_cpp_2::token::LlamaToken;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock, mpsc};

/// Where the backend and its context are set up.
#[derive(Clone, Debug)]
pub struct LocalConfig {
    /// The model's name (`local:NAME`), shown in reports and cache keys.
    pub name: String,
    pub gguf: PathBuf,
    /// Its sha256, part of the identity so a different file never replays
    /// another file's answers.
    pub sha256: String,
    /// The most tokens one prompt and its answer may fill (the KV cache
    /// holds at least this, and 4,096 cells per sequence).
    pub context: u32,
    /// CPU threads for llama.cpp (default: every core).
    pub threads: usize,
    /// Sequences decoded together: the samples of one request, and the
    /// requests in flight at once (`run --concurrency`), advance in one
    /// decode call per token (src/llm/local/engine.rs). 1 is one sample
    /// after another.
    pub sequences: u32,
    /// A LoRA adapter applied to the model (GGUF LoRA format, scale 1).
    pub adapter: Option<Adapter>,
}

/// A LoRA adapter file and its hash (part of the model's identity).
#[derive(Clone, Debug)]
pub struct Adapter {
    pub path: PathBuf,
    pub sha256: String,
}

/// The default of [`LocalConfig::sequences`]: llama.cpp's CPU throughput
/// grows up to about 8 sequences on 2 cores (issue 12's measurements: 1.9x
/// one sequence at 8, 2.1x at 16; benches/batched_decoding.rs: 2.8x at 8),
/// self-consistency asks for 5, and `run --concurrency` defaults to 8.
pub const DEFAULT_SEQUENCES: u32 = 8;

impl LocalConfig {
    pub fn new(name: &str, gguf: &Path, sha256: &str) -> Self {
        LocalConfig {
            name: name.to_string(),
            gguf: gguf.to_path_buf(),
            sha256: sha256.to_string(),
            context: 8192,
            threads: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
            sequences: DEFAULT_SEQUENCES,
            adapter: None,
        }
    }
}

pub struct LocalModel {
    config: LocalConfig,
    template: minijinja::Environment<'static>,
    jobs: mpsc::Sender<Job>,
    pub stats: Arc<LocalStats>,
}

/// llama.cpp's process-wide state, set up once (llama.cpp allows one per
/// process: benchmarks that call llama.cpp directly take it from here).
pub fn backend() -> Result<&'static LlamaBackend> {
    static BACKEND: OnceLock<std::result::Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            let mut b = LlamaBackend::init().map_err(|e| e.to_string())?;
            // llama.cpp logs every tensor it loads; keep the terminal for
            // the progress bar.
            b.void_logs();
            Ok(b)
        })
        .as_ref()
        .map_err(|e| anyhow!("cannot start llama.cpp: {e}"))
}

impl LocalModel {
    /// Loads the model on its worker thread and returns once it is ready.
    pub fn load(config: LocalConfig, stats: Arc<LocalStats>) -> Result<LocalModel> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let (ready, is_ready) = mpsc::channel::<Result<String>>();
        let worker_config = config.clone();
        let worker_stats = stats.clone();
        std::thread::Builder::new()
            .name("llama.cpp".into())
            .spawn(move || worker(&worker_config, &worker_stats, queue, ready))
            .context("cannot start the local model's thread")?;
        let template = is_ready
            .recv()
            .map_err(|_| anyhow!("the local model's thread stopped while loading"))??;
        Ok(LocalModel {
            template: template_env(template, &config.gguf)?,
            config,
            jobs,
            stats,
        })
    }

    /// The prompt text for `messages`: the model's chat template with the
    /// assistant's turn opened.
    pub fn render(&self, messages: &[Message]) -> Result<String, LlmError> {
        render_prompt(&self.template, messages)
    }
}

/// A GGUF's chat template, ready to render (as the Hugging Face tools
/// render it).
fn template_env(template: String, gguf: &Path) -> Result<minijinja::Environment<'static>> {
    let mut env = minijinja::Environment::new();
    // Hugging Face renders chat templates with these Jinja settings.
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .expect("valid syntax"),
    );
    env.add_function("raise_exception", |msg: String| -> Result<String, minijinja::Error> {
        Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, msg))
    });
    env.add_template_owned("chat", template)
        .with_context(|| format!("the chat template in {} does not parse", gguf.display()))?;
    Ok(env)
}

/// `messages` through the chat template, the assistant's turn opened.
fn render_prompt(env: &minijinja::Environment<'static>, messages: &[Message]) -> Result<String, LlmError> {
    let template = env.get_template("chat").expect("added at load");
    template
        .render(minijinja::context! { messages => minijinja::value::Serde(messages), add_generation_prompt => true })
        .map_err(|e| LlmError::Request(format!("cannot apply the chat template: {e}")))
}

#[async_trait::async_trait]
impl Generator for LocalModel {
    async fn generate(
        &self,
        messages: &[Message],
        params: &GenParams,
        slots: &[u32],
    ) -> Result<Vec<RawCompletion>, LlmError> {
        let prompt = self.render(messages)?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = Job {
            prompt,
            params: params.clone(),
            slots: slots.to_vec(),
            reply,
        };
        self.jobs
            .send(job)
            .map_err(|_| LlmError::Fatal("the local model's thread has stopped".into()))?;
        answer
            .await
            .map_err(|_| LlmError::Fatal("the local model's thread stopped during a request".into()))?
    }

    fn identity(&self) -> ModelIdentity {
        let adapter = self.config.adapter.as_ref().map(|a| a.sha256.as_str());
        identity(&self.config.name, &self.config.sha256, adapter)
    }

    fn calls(&self) -> u64 {
        self.stats.generations.load(Ordering::Relaxed)
    }
}

/// The model in cache keys and config.json: the GGUF's hash, and the
/// adapter's where there is one (a model without an adapter keeps the
/// identity it had before adapters existed, so its cache still answers).
fn identity(name: &str, sha256: &str, adapter_sha256: Option<&str>) -> ModelIdentity {
    let adapter = adapter_sha256
        .map(|a| format!(" + lora (sha256 {a})"))
        .unwrap_or_default();
    ModelIdentity {
        endpoint: "local (llama.cpp)".into(),
        model: format!("local:{name} (gguf sha256 {sha256}){adapter}"),
    }
}

fn worker(config: &LocalConfig, stats: &LocalStats, queue: mpsc::Receiver<Job>, ready: mpsc::Sender<Result<String>>) {
    let loaded = (|| -> Result<(LlamaModel, String, Option<LlamaLoraAdapter>)> {
        let mut model = LlamaModel::load_from_file(backend()?, &config.gguf, &LlamaModelParams::default())
            .with_context(|| format!("cannot load {} with llama.cpp", config.gguf.display()))?;
        let template = model
            .meta_val_str("tokenizer.chat_template")
            .with_context(|| format!("{} has no chat template", config.gguf.display()))?;
        let adapter = match &config.adapter {
            Some(a) => Some(model.lora_adapter_init(&a.path).map_err(|e| {
                anyhow!(
                    "llama.cpp cannot load the LoRA adapter {} on {} ({e}): is it a GGUF LoRA adapter made for this base model?",
                    a.path.display(),
                    config.gguf.display()
                )
            })?),
            None => None,
        };
        Ok((model, template, adapter))
    })();
    let (model, template, mut adapter) = match loaded {
        Ok(x) => x,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let engine = Engine::new(&model, config, stats).and_then(|mut engine| {
        if let Some(adapter) = adapter.as_mut() {
            engine.apply_adapter(adapter)?;
        }
        Ok(engine)
    });
    let mut engine = match engine {
        Ok(engine) => engine,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    if ready.send(Ok(template)).is_err() {
        return;
    }
    // Continuous batching: wait for work when there is none, take every
    // request that has arrived before each step.
    loop {
        if engine.is_idle() {
            match queue.recv() {
                Ok(job) => engine.accept(job),
                Err(_) => return,
            }
        }
        while let Ok(job) = queue.try_recv() {
            engine.accept(job);
        }
        engine.step();
    }
}

/// A GGUF's own tokenizer: its vocabulary alone, loaded without the
/// weights, so token counts are the model's.
pub struct GgufTokenizer {
    model: LlamaModel,
}

impl GgufTokenizer {
    pub fn load(gguf: &Path) -> Result<GgufTokenizer> {
        let params = LlamaModelParams::default().with_vocab_only(true);
        let model = LlamaModel::load_from_file(backend()?, gguf, &params)
            .with_context(|| format!("cannot read the vocabulary of {} with llama.cpp", gguf.display()))?;
        Ok(GgufTokenizer { model })
    }

    /// The tokens of plain text (no special tokens added or parsed).
    pub fn tokenize(&self, text: &str) -> Vec<i32> {
        self.tokens(text).into_iter().map(|t| t.0).collect()
    }

    /// [`GgufTokenizer::tokenize`], as llama.cpp's tokens.
    pub(super) fn tokens(&self, text: &str) -> Vec<LlamaToken> {
        self.model.vocab().tokenize(text.as_bytes(), false, false)
    }

    pub(super) fn model(&self) -> &LlamaModel {
        &self.model
    }
}

/// Token counts of conversations as the local model sees them: the prompt
/// through the GGUF's chat template (special tokens parsed), the answer as
/// the text the model writes plus its end-of-turn token. This is what
/// inference evaluates and what fine-tuning trains on.
pub struct ChatTokenizer {
    tokenizer: GgufTokenizer,
    template: minijinja::Environment<'static>,
}

impl ChatTokenizer {
    pub fn load(gguf: &Path) -> Result<ChatTokenizer> {
        let tokenizer = GgufTokenizer::load(gguf)?;
        let template = tokenizer
            .model
            .meta_val_str("tokenizer.chat_template")
            .with_context(|| format!("{} has no chat template", gguf.display()))?;
        Ok(ChatTokenizer {
            template: template_env(template, gguf)?,
            tokenizer,
        })
    }

    /// Tokens of the prompt that `messages` make, the assistant's turn opened.
    pub fn prompt_tokens(&self, messages: &[Message]) -> Result<usize> {
        let text = render_prompt(&self.template, messages).map_err(|e| anyhow!("{e}"))?;
        Ok(self
            .tokenizer
            .model
            .vocab()
            .tokenize(text.as_bytes(), false, true)
            .len())
    }

    /// Tokens of an answer, with the end-of-turn token that closes it.
    pub fn answer_tokens(&self, answer: &str) -> usize {
        self.tokenizer.tokenize(answer).len() + 1
    }
}

/// The local model a `--model` value names ("local:qwen2.5-coder-0.5b",
/// "local:PATH.gguf", either with "+lora:ADAPTER"), loaded (and installed,
/// where it is missing) on the first request that the cache cannot answer:
/// a replay from the cache needs no weights.
pub struct LazyLocal {
    resolved: crate::models::local_ref::ResolvedLocal,
    sequences: u32,
    model: tokio::sync::OnceCell<LocalModel>,
    pub stats: Arc<LocalStats>,
}

impl LazyLocal {
    /// The model `model` names, decoding up to `sequences` answers together.
    pub fn new(model: &str, sequences: u32) -> Result<LazyLocal> {
        let Some(name) = model.strip_prefix("local:") else {
            bail!("{model:?} is not a local model (they are named local:NAME)");
        };
        let resolved = crate::models::local_ref::LocalRef::parse(name)?.resolve()?;
        Ok(LazyLocal {
            resolved,
            sequences,
            model: tokio::sync::OnceCell::new(),
            stats: Arc::default(),
        })
    }

    async fn model(&self) -> Result<&LocalModel, LlmError> {
        self.model
            .get_or_try_init(|| async {
                let (resolved, stats) = (self.resolved.clone(), self.stats.clone());
                let sequences = self.sequences;
                tokio::task::spawn_blocking(move || load_installed(&resolved, sequences, stats))
                    .await
                    .map_err(|e| LlmError::Fatal(format!("loading the local model failed: {e}")))?
                    .map_err(|e| LlmError::Fatal(format!("{e:#}")))
            })
            .await
    }
}

fn load_installed(
    resolved: &crate::models::local_ref::ResolvedLocal,
    sequences: u32,
    stats: Arc<LocalStats>,
) -> Result<LocalModel> {
    let mut config = LocalConfig::new(&resolved.display, &resolved.install()?, &resolved.sha256);
    config.sequences = sequences;
    config.adapter = resolved.adapter.as_ref().map(|a| Adapter {
        path: a.path.clone(),
        sha256: a.sha256.clone(),
    });
    LocalModel::load(config, stats)
}

#[async_trait::async_trait]
impl Generator for LazyLocal {
    async fn generate(
        &self,
        messages: &[Message],
        params: &GenParams,
        slots: &[u32],
    ) -> Result<Vec<RawCompletion>, LlmError> {
        self.model().await?.generate(messages, params, slots).await
    }

    fn identity(&self) -> ModelIdentity {
        identity(
            &self.resolved.display,
            &self.resolved.sha256,
            self.resolved.adapter.as_ref().map(|a| a.sha256.as_str()),
        )
    }

    fn calls(&self) -> u64 {
        self.stats.generations.load(Ordering::Relaxed)
    }
}
