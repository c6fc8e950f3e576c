//! The llama.cpp engine behind [`super`] (built with the `local-models`
//! feature).

use super::LocalStats;
use crate::llm::{GenParams, Generator, LlmError, Message, ModelIdentity, RawCompletion, repetition};
use anyhow::{Context, Result, anyhow, bail};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock, mpsc};
use std::time::Instant;

/// Where the backend and its context are set up.
#[derive(Clone, Debug)]
pub struct LocalConfig {
    /// The model's name (`local:NAME`), shown in reports and cache keys.
    pub name: String,
    pub gguf: PathBuf,
    /// Its sha256, part of the identity so a different file never replays
    /// another file's answers.
    pub sha256: String,
    /// Context length in tokens (prompt and answer together).
    pub context: u32,
    /// CPU threads for llama.cpp (default: every core).
    pub threads: usize,
    /// Sequences decoded together: the samples of one request share the
    /// prompt's KV cells and advance in one decode call per token. 1 is
    /// one sample after another.
    pub sequences: u32,
}

/// The default of [`LocalConfig::sequences`]: llama.cpp's CPU throughput
/// grows up to about 8 sequences on 2 cores (issue 12's measurements: 1.9x
/// one sequence at 8, 2.1x at 16), and self-consistency asks for 5.
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

struct Job {
    prompt: String,
    params: GenParams,
    slots: Vec<u32>,
    reply: tokio::sync::oneshot::Sender<Result<Vec<RawCompletion>, LlmError>>,
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
    for job in queue {
        let result = engine.complete(&job.prompt, &job.params, &job.slots);
        let _ = job.reply.send(result);
    }
}

/// One llama.cpp context and what its KV cache holds.
struct Engine<'m> {
    model: &'m LlamaModel,
    ctx: LlamaContext<'m>,
    /// The tokens whose keys and values are in the KV cache (sequence 0),
    /// position by position.
    cached: Vec<LlamaToken>,
    batch: LlamaBatch<'static>,
    batch_size: usize,
    /// Sequences the context holds ([`LocalConfig::sequences`]).
    sequences: usize,
    stats: &'m LocalStats,
}

impl<'m> Engine<'m> {
    fn new(model: &'m LlamaModel, config: &LocalConfig, stats: &'m LocalStats) -> Result<Self> {
        let batch_size = 512;
        let threads = config.threads.max(1) as i32;
        let sequences = config.sequences.max(1);
        // One KV buffer for all sequences (unified): the samples share the
        // prompt's cells, and the context's length is the whole budget
        // rather than split into one slice per sequence.
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(config.context))
            .with_n_batch(batch_size as u32)
            .with_n_ubatch(batch_size as u32)
            .with_n_threads(threads)
            .with_n_threads_batch(threads)
            .with_n_seq_max(sequences)
            .with_kv_unified(true);
        let ctx = model
            .new_context(backend()?, params)
            .context("llama.cpp cannot create a context")?;
        Ok(Engine {
            model,
            ctx,
            cached: Vec::new(),
            batch: LlamaBatch::new(batch_size, sequences as i32),
            batch_size,
            sequences: sequences as usize,
            stats,
        })
    }

    /// The samples `slots` of the prompt (each seeded by its slot).
    fn complete(&mut self, prompt: &str, params: &GenParams, slots: &[u32]) -> Result<Vec<RawCompletion>, LlmError> {
        let tokens = self.model.vocab().tokenize(prompt.as_bytes(), false, true);
        let limit = self.ctx.n_ctx() as usize;
        if tokens.is_empty() || tokens.len() >= limit {
            return Err(LlmError::Request(format!(
                "the prompt has {} tokens; the local model's context holds {limit}",
                tokens.len()
            )));
        }
        let mut completions = Vec::with_capacity(slots.len());
        for group in slots.chunks(self.sequences) {
            let started = Instant::now();
            let answers = self.sample_group(&tokens, params, group).map_err(|e| {
                // Whatever state the context is in, start afresh next time.
                self.reset();
                LlmError::Request(format!("local generation failed: {e:#}"))
            })?;
            let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
            for answer in answers {
                self.stats.generations.fetch_add(1, Ordering::Relaxed);
                completions.push(RawCompletion {
                    text: answer.text,
                    // Usage is per call, as an HTTP server reports it for n samples.
                    prompt_tokens: if completions.is_empty() { tokens.len() as u64 } else { 0 },
                    completion_tokens: answer.tokens.len() as u64,
                    latency_ms,
                    cut: answer.cut,
                });
            }
        }
        Ok(completions)
    }

    fn reset(&mut self) {
        let _ = self.ctx.clear_kv_cache_seq(Some(0), None, None);
        self.cached.clear();
    }

    /// Evaluates the prompt, reusing the longest prefix already in the KV
    /// cache (all but its last token, whose logits are needed).
    fn prefill(&mut self, tokens: &[LlamaToken]) -> Result<()> {
        let started = Instant::now();
        let shared = self
            .cached
            .iter()
            .zip(tokens)
            .take_while(|(a, b)| a == b)
            .count()
            .min(tokens.len() - 1);
        let shared = if self.ctx.clear_kv_cache_seq(Some(0), Some(shared as u32), None)? {
            shared
        } else {
            self.reset();
            0
        };
        self.cached.truncate(shared);
        let rest = &tokens[shared..];
        for (c, chunk) in rest.chunks(self.batch_size).enumerate() {
            self.batch.clear();
            let last_chunk = (c + 1) * self.batch_size >= rest.len();
            for (i, &token) in chunk.iter().enumerate() {
                let pos = self.cached.len() as i32;
                self.batch.add(token, pos, &[0], last_chunk && i + 1 == chunk.len())?;
                self.cached.push(token);
            }
            self.ctx.decode(&mut self.batch)?;
        }
        self.stats
            .prompt_evaluated
            .fetch_add(rest.len() as u64, Ordering::Relaxed);
        self.stats.prompt_reused.fetch_add(shared as u64, Ordering::Relaxed);
        self.stats
            .prompt_us
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// The answers of `slots` to the prompt, decoded together: the prompt
    /// is evaluated once in sequence 0, its cells are shared with one more
    /// sequence per further slot, and every step decodes one token of each
    /// unfinished answer in a single call, each sampled by its own seeded
    /// sampler. One slot is exactly the one-sequence decoding.
    fn sample_group(&mut self, tokens: &[LlamaToken], params: &GenParams, slots: &[u32]) -> Result<Vec<Answer>> {
        self.prefill(tokens)?;
        let started = Instant::now();
        let prompt_len = tokens.len();
        for seq in 1..slots.len() as i32 {
            self.ctx.clear_kv_cache_seq(Some(seq as u32), None, None)?;
            self.ctx.copy_kv_cache_seq(0, seq, None, Some(prompt_len as u32))?;
        }
        // All sequences share the context; each may take an equal share of
        // what the prompt leaves.
        let room = (self.ctx.n_ctx() as usize).saturating_sub(prompt_len) / slots.len();
        let budget = (params.max_tokens as usize).min(room);
        let mut answers = Vec::with_capacity(slots.len());
        for &slot in slots {
            answers.push(Answer::new(Picker::new(self.model, params, slot)?));
        }
        // The first tokens all come from the prompt's last logits (index -1
        // of the last batch); later ones from each sequence's own row.
        let mut rows: Vec<i32> = vec![-1; slots.len()];
        // Tokens of each answer whose keys and values are in its sequence.
        let mut decoded = vec![0usize; slots.len()];
        loop {
            let vocab = self.model.vocab();
            for (answer, &row) in answers.iter_mut().zip(&rows).filter(|(a, _)| !a.done) {
                answer.step(&self.ctx, self.model, row, &vocab, budget)?;
            }
            let live: Vec<usize> = (0..answers.len()).filter(|&i| !answers[i].done).collect();
            if live.is_empty() {
                break;
            }
            self.batch.clear();
            for (row, &i) in live.iter().enumerate() {
                let answer = &answers[i];
                let pos = (prompt_len + answer.tokens.len() - 1) as i32;
                self.batch
                    .add(*answer.tokens.last().expect("a token"), pos, &[i as i32], true)?;
                rows[i] = row as i32;
                decoded[i] += 1;
            }
            self.ctx.decode(&mut self.batch)?;
        }
        // Sequence 0 keeps the prompt and what was decoded of the first
        // answer, for the next prompt's prefix.
        for seq in 1..slots.len() as u32 {
            self.ctx.clear_kv_cache_seq(Some(seq), None, None)?;
        }
        self.cached.extend_from_slice(&answers[0].tokens[..decoded[0]]);
        let generated: usize = answers.iter().map(|a| a.tokens.len()).sum();
        self.stats.generated.fetch_add(generated as u64, Ordering::Relaxed);
        let cut = answers.iter().filter(|a| a.cut.is_some()).count();
        self.stats.loops_cut.fetch_add(cut as u64, Ordering::Relaxed);
        self.stats
            .generation_us
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        Ok(answers)
    }
}

/// One answer being decoded.
struct Answer {
    picker: Picker,
    tokens: Vec<LlamaToken>,
    bytes: Vec<u8>,
    text: String,
    /// Why it was stopped early (the repetition rule).
    cut: Option<String>,
    done: bool,
}

impl Answer {
    fn new(picker: Picker) -> Answer {
        Answer {
            picker,
            tokens: Vec::new(),
            bytes: Vec::new(),
            text: String::new(),
            cut: None,
            done: false,
        }
    }

    /// Samples the next token from row `row` of the last batch's logits,
    /// and finishes the answer at an end-of-generation token, at the
    /// repetition rule, or at `budget` tokens.
    fn step(
        &mut self,
        ctx: &LlamaContext,
        model: &LlamaModel,
        row: i32,
        vocab: &llama_cpp_2::vocab::LlamaVocab,
        budget: usize,
    ) -> Result<()> {
        let token = self.picker.next(ctx, model, row)?;
        if vocab.is_eog(token) {
            self.finish();
            return Ok(());
        }
        self.tokens.push(token);
        self.bytes.extend(vocab.token_to_piece(token, false, None));
        if let Some((period, copies)) = repetition::degenerate_tail(&self.tokens) {
            self.cut = Some(repetition::describe(period, copies));
            self.finish();
        } else if self.tokens.len() >= budget {
            self.finish();
        }
        Ok(())
    }

    fn finish(&mut self) {
        self.done = true;
        self.text = String::from_utf8_lossy(&self.bytes).into_owned();
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

/// How the next token is chosen: the request's sampler, under its grammar
/// when it has one.
enum Picker {
    /// A sampler (chain) that samples and accepts in one call: unconstrained,
    /// or a grammar chained before temperature sampling (the grammar masks
    /// the whole vocabulary at every step, so the sample follows the masked
    /// distribution exactly).
    Chain(LlamaSampler),
    /// Greedy under a grammar. The unconstrained best token is tried first
    /// and the vocabulary masked only when the grammar refuses it: the same
    /// token either way, without the mask's cost (about 50 ms a token on
    /// two cores, see tests/grammar.rs) at most steps.
    Greedy(LlamaSampler),
}

impl Picker {
    fn new(model: &LlamaModel, params: &GenParams, sample: u32) -> Result<Picker> {
        let grammar = match &params.grammar {
            None => None,
            Some(g) => Some(super::recognize::grammar_sampler(model, g, "root")?),
        };
        if params.temperature <= 0.0 {
            return Ok(grammar.map_or_else(|| Picker::Chain(LlamaSampler::greedy()), Picker::Greedy));
        }
        let seed = params.seed.unwrap_or(0).wrapping_add(u64::from(sample)) as u32;
        let pick = [LlamaSampler::temp(params.temperature as f32), LlamaSampler::dist(seed)];
        Ok(Picker::Chain(LlamaSampler::chain_simple(
            grammar.into_iter().chain(pick),
        )))
    }

    /// The next token, from row `row` of the last batch's logits (-1: its
    /// last row).
    fn next(&mut self, ctx: &LlamaContext, model: &LlamaModel, row: i32) -> Result<LlamaToken> {
        match self {
            Picker::Chain(sampler) => Ok(sampler.sample(ctx, row)),
            Picker::Greedy(grammar) => greedy_under(grammar, ctx, model, row),
        }
    }
}

fn greedy_under(grammar: &mut LlamaSampler, ctx: &LlamaContext, model: &LlamaModel, row: i32) -> Result<LlamaToken> {
    let best = |d: &[llama_cpp_2::token::data::LlamaTokenData]| {
        d.iter()
            .filter(|t| t.logit().is_finite())
            .max_by(|a, b| a.logit().total_cmp(&b.logit()))
            .map(|t| t.id())
    };
    let logits = ctx.get_logits_ith(row);
    let first = logits
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| LlamaToken(i as i32))
        .context("no logits")?;
    let token = if super::recognize::allows(grammar, first) {
        first
    } else {
        let mut all = ctx.token_data_array_ith(row);
        grammar.apply(&mut all);
        best(&all.data).context("the grammar allows no token here")?
    };
    // (The caller stops at an end-of-generation token; the grammar need
    // not see it.)
    if !model.vocab().is_eog(token) {
        grammar
            .try_accept(token)
            .map_err(|e| anyhow!("the grammar sampler failed on a token it allowed: {e}"))?;
    }
    Ok(token)
}

/// The local model a `--model` value names ("local:qwen2.5-coder-0.5b"),
/// loaded (and installed, where it is missing) on the first request that
/// the cache cannot answer: a replay from the cache needs no weights.
pub struct LazyLocal {
    name: String,
    gguf: &'static crate::models::ModelFile,
    model: tokio::sync::OnceCell<LocalModel>,
    pub stats: Arc<LocalStats>,
}

impl LazyLocal {
    pub fn new(model: &str) -> Result<LazyLocal> {
        let Some(name) = model.strip_prefix("local:") else {
            bail!("{model:?} is not a local model (they are named local:NAME)");
        };
        let spec = crate::models::spec(name).with_context(|| format!("--model {model}"))?;
        let Some(gguf) = spec.gguf() else {
            bail!("{name} is not a generation model (see `spider-bench models list`)");
        };
        Ok(LazyLocal {
            name: name.to_string(),
            gguf,
            model: tokio::sync::OnceCell::new(),
            stats: Arc::default(),
        })
    }

    async fn model(&self) -> Result<&LocalModel, LlmError> {
        self.model
            .get_or_try_init(|| async {
                let (name, gguf, stats) = (self.name.clone(), self.gguf, self.stats.clone());
                tokio::task::spawn_blocking(move || load_installed(&name, gguf, stats))
                    .await
                    .map_err(|e| LlmError::Fatal(format!("loading the local model failed: {e}")))?
                    .map_err(|e| LlmError::Fatal(format!("{e:#}")))
            })
            .await
    }
}

fn load_installed(name: &str, gguf: &crate::models::ModelFile, stats: Arc<LocalStats>) -> Result<LocalModel> {
    let dir = crate::models::ensure(name)?;
    LocalModel::load(LocalConfig::new(name, &dir.join(gguf.name), gguf.sha256), stats)
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
