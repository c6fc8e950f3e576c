//! The llama.cpp engine behind [`super`] (built with the `local-models`
//! feature).

use super::LocalStats;
use super::engine::{Engine, Job};
use crate::llm::{GenParams, Generator, LlmError, Message, ModelIdentity, RawCompletion};
use anyhow::{Context, Result, anyhow, bail};
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
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
            .with_context(|| format!("the chat template in {} does not parse", config.gguf.display()))?;
        Ok(LocalModel {
            config,
            template: env,
            jobs,
            stats,
        })
    }

    /// The prompt text for `messages`: the model's chat template with the
    /// assistant's turn opened.
    pub fn render(&self, messages: &[Message]) -> Result<String, LlmError> {
        let template = self.template.get_template("chat").expect("added at load");
        template
            .render(
                minijinja::context! { messages => minijinja::value::Serde(messages), add_generation_prompt => true },
            )
            .map_err(|e| LlmError::Request(format!("cannot apply the chat template: {e}")))
    }
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
        identity(&self.config.name, &self.config.sha256)
    }

    fn calls(&self) -> u64 {
        self.stats.generations.load(Ordering::Relaxed)
    }
}

fn identity(name: &str, sha256: &str) -> ModelIdentity {
    ModelIdentity {
        endpoint: "local (llama.cpp)".into(),
        model: format!("local:{name} (gguf sha256 {sha256})"),
    }
}

fn worker(config: &LocalConfig, stats: &LocalStats, queue: mpsc::Receiver<Job>, ready: mpsc::Sender<Result<String>>) {
    let loaded = (|| -> Result<(LlamaModel, String)> {
        let model = LlamaModel::load_from_file(backend()?, &config.gguf, &LlamaModelParams::default())
            .with_context(|| format!("cannot load {} with llama.cpp", config.gguf.display()))?;
        let template = model
            .meta_val_str("tokenizer.chat_template")
            .with_context(|| format!("{} has no chat template", config.gguf.display()))?;
        Ok((model, template))
    })();
    let (model, template) = match loaded {
        Ok(x) => x,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let mut engine = match Engine::new(&model, config, stats) {
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

/// The local model a `--model` value names ("local:qwen2.5-coder-0.5b"),
/// loaded (and installed, where it is missing) on the first request that
/// the cache cannot answer: a replay from the cache needs no weights.
pub struct LazyLocal {
    name: String,
    sequences: u32,
    gguf: &'static crate::models::ModelFile,
    model: tokio::sync::OnceCell<LocalModel>,
    pub stats: Arc<LocalStats>,
}

impl LazyLocal {
    /// The model `model` names, decoding up to `sequences` answers together.
    pub fn new(model: &str, sequences: u32) -> Result<LazyLocal> {
        let Some(name) = model.strip_prefix("local:") else {
            bail!("{model:?} is not a local model (they are named local:NAME)");
        };
        let spec = crate::models::spec(name).with_context(|| format!("--model {model}"))?;
        let Some(gguf) = spec.gguf() else {
            bail!("{name} is not a generation model (see `spider-bench models list`)");
        };
        Ok(LazyLocal {
            name: name.to_string(),
            sequences,
            gguf,
            model: tokio::sync::OnceCell::new(),
            stats: Arc::default(),
        })
    }

    async fn model(&self) -> Result<&LocalModel, LlmError> {
        self.model
            .get_or_try_init(|| async {
                let (name, gguf, stats) = (self.name.clone(), self.gguf, self.stats.clone());
                let sequences = self.sequences;
                tokio::task::spawn_blocking(move || load_installed(&name, gguf, sequences, stats))
                    .await
                    .map_err(|e| LlmError::Fatal(format!("loading the local model failed: {e}")))?
                    .map_err(|e| LlmError::Fatal(format!("{e:#}")))
            })
            .await
    }
}

fn load_installed(
    name: &str,
    gguf: &crate::models::ModelFile,
    sequences: u32,
    stats: Arc<LocalStats>,
) -> Result<LocalModel> {
    let dir = crate::models::ensure(name)?;
    let mut config = LocalConfig::new(name, &dir.join(gguf.name), gguf.sha256);
    config.sequences = sequences;
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
        identity(&self.name, self.gguf.sha256)
    }

    fn calls(&self) -> u64 {
        self.stats.generations.load(Ordering::Relaxed)
    }
}
