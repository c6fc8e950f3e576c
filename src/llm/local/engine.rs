//! The decoding loop of the local model: continuous batching over one
//! llama.cpp context.
//!
//! Requests (the unanswered samples of one conversation) arrive on a
//! queue from any number of tasks: the samples of one request, and the
//! requests of questions in flight at the same time (`--concurrency`),
//! share one context of up to [`LocalConfig::sequences`] sequences. Every
//! step is one `decode` call: either prompt tokens of the requests being
//! admitted (packed into one batch), or one token of every answer being
//! written. A request is admitted as soon as a sequence is free and the KV
//! cache has room for its prompt and answer, so a question whose answer is
//! short never waits for a long one.
//!
//! A sequence keeps its cells after its answer (prompt and answer), and a
//! new prompt starts from the longest prefix any sequence holds (copied
//! into its own sequence: cells are shared, not duplicated, in the unified
//! KV cache): the system message and schema of a database are evaluated
//! once for all its questions, and a repair round only evaluates the error
//! message. The samples of one request are all started from its prompt's
//! last logits, each sampled by its own seeded sampler.
//!
//! Rounding: an answer is a function of its prompt and of the schedule.
//! llama.cpp's CPU attention sums a one-token batch in per-thread chunks
//! over the KV cells (ggml-cpu ops.cpp, `use_split_kv_path`, from 512
//! cells) and a batch of several tokens cell by cell, and it spans every
//! cell up to the highest one in use, masked, whichever sequence holds it;
//! so how a prompt was split into batches (what the cache held), which
//! answers share a batch and what other sequences keep all change the sums
//! by rounding, and a greedy near-tie can flip (llama.cpp's server documents
//! the same of `cache_prompt`: logits are not bit-for-bit identical across
//! batch sizes). The same requests in the same order on a fresh engine give
//! the same answers; a request alone on a fresh engine gets the one-sequence
//! answer; the greedy samples of one request are one answer decoded once.
//! `--concurrency 1` makes a run's schedule its order of questions; the
//! README gives the measured share of answers that differ at 8, and a rerun
//! reads every answer from the cache.

use super::LocalStats;
use super::llama::LocalConfig;
use crate::llm::{GenParams, LlmError, RawCompletion, repetition};
use anyhow::{Context, Result, anyhow};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// A request from [`super::LocalModel::generate`]: the samples `slots` of
/// `prompt`, answered on `reply`.
pub(super) struct Job {
    pub prompt: String,
    pub params: GenParams,
    pub slots: Vec<u32>,
    pub reply: tokio::sync::oneshot::Sender<Result<Vec<RawCompletion>, LlmError>>,
}

/// KV cells the context holds per sequence, at least: with 8 sequences,
/// 32,768 cells (about 400 MB for the 0.5B model, 940 MB for the 1.5B).
/// Cells are only reserved, not computed over: attention spans the cells
/// up to the highest in use.
const CELLS_PER_SEQUENCE: u32 = 4096;

/// The most cells, whatever the number of sequences (65,536: about 800 MB
/// for the 0.5B model, 1.9 GB for the 1.5B); more sequences share them, and
/// a request waits for room (`make_room`).
const MOST_CELLS: u32 = 65_536;

/// Prompt tokens per `decode` call.
const BATCH: usize = 512;

/// Prompt tokens that a request waits to copy from a sequence still
/// evaluating them, rather than evaluate them itself.
const WORTH_WAITING_FOR: usize = 32;

/// A request being answered.
struct Request {
    tokens: Vec<LlamaToken>,
    params: GenParams,
    slots: Vec<u32>,
    /// Slots `slots[..admitted]` have a sequence (or are answered).
    admitted: usize,
    answers: Vec<Option<RawCompletion>>,
    started: Instant,
    reply: tokio::sync::oneshot::Sender<Result<Vec<RawCompletion>, LlmError>>,
    /// Answer tokens each sample may write: the request's max_tokens,
    /// within the window a prompt and its answer may fill.
    budget: usize,
    /// Greedy samples asked for: all the same answer, so one is decoded
    /// and copied (exactly the one-sample answer, at the cost of one).
    greedy_copies: usize,
}

impl Request {
    /// The cells one of its samples may fill: the prompt and a whole answer.
    fn need(&self) -> usize {
        self.tokens.len() + self.budget
    }
}

/// What a sequence is doing.
enum Work {
    Idle,
    /// Evaluating request `request`'s prompt from the cells it holds.
    Prefill {
        request: usize,
        slot: usize,
        followers: Vec<(usize, usize)>,
    },
    /// Waiting for another sequence's prompt (same request), to be copied.
    Follow,
    /// Writing the answer of `slot` (an index into the request's slots).
    Decode {
        request: usize,
        slot: usize,
        answer: Box<Answer>,
    },
}

struct Sequence {
    /// The tokens in this sequence's cells, position by position.
    cells: Vec<LlamaToken>,
    work: Work,
}

impl Sequence {
    fn is_idle(&self) -> bool {
        matches!(self.work, Work::Idle)
    }
}

/// The sequences that would start a request's next slots.
struct Plan {
    leader: usize,
    /// The sequence holding the longest prefix of the prompt.
    source: usize,
    followers: Vec<usize>,
    /// Cells each may fill: the prompt and a whole answer.
    need: usize,
}

/// How many of `prompt`'s tokens `cells` holds, up to all but its last
/// (whose logits are needed).
fn shared_prefix(cells: &[LlamaToken], prompt: &[LlamaToken]) -> usize {
    cells
        .iter()
        .zip(prompt)
        .take_while(|(a, b)| a == b)
        .count()
        .min(prompt.len() - 1)
}

/// One llama.cpp context and its sequences.
pub(super) struct Engine<'m> {
    model: &'m LlamaModel,
    ctx: LlamaContext<'m>,
    batch: LlamaBatch<'static>,
    sequences: Vec<Sequence>,
    /// The most cells one prompt and its answer may fill.
    window: usize,
    requests: Vec<Option<Request>>,
    /// Requests with slots not yet admitted, oldest first.
    waiting: VecDeque<usize>,
    stats: &'m LocalStats,
}

impl<'m> Engine<'m> {
    pub fn new(model: &'m LlamaModel, config: &LocalConfig, stats: &'m LocalStats) -> Result<Self> {
        let threads = config.threads.max(1) as i32;
        let sequences = config.sequences.max(1);
        let cells = config.context.max((CELLS_PER_SEQUENCE * sequences).min(MOST_CELLS));
        // One KV buffer for all sequences (unified): a prompt's cells are
        // shared by the sequences that start from it.
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(cells))
            .with_n_batch(BATCH as u32)
            .with_n_ubatch(BATCH as u32)
            .with_n_threads(threads)
            .with_n_threads_batch(threads)
            .with_n_seq_max(sequences)
            .with_kv_unified(true);
        let ctx = model
            .new_context(super::backend()?, params)
            .context("llama.cpp cannot create a context")?;
        Ok(Engine {
            model,
            ctx,
            batch: LlamaBatch::new(BATCH.max(sequences as usize), sequences as i32),
            sequences: (0..sequences)
                .map(|_| Sequence {
                    cells: Vec::new(),
                    work: Work::Idle,
                })
                .collect(),
            window: config.context as usize,
            requests: Vec::new(),
            waiting: VecDeque::new(),
            stats,
        })
    }

    /// Applies a LoRA adapter to every answer of this context (scale 1).
    pub fn apply_adapter(&mut self, adapter: &mut llama_cpp_2::model::LlamaLoraAdapter) -> Result<()> {
        self.ctx
            .lora_adapter_set(adapter, 1.0)
            .map_err(|e| anyhow::anyhow!("llama.cpp cannot apply the LoRA adapter: {e}"))
    }

    /// Nothing to do until the next request.
    pub fn is_idle(&self) -> bool {
        self.requests.iter().all(Option::is_none)
    }

    /// Takes a request; a prompt that cannot fit is refused at once.
    pub fn accept(&mut self, job: Job) {
        let tokens = self.model.vocab().tokenize(job.prompt.as_bytes(), false, true);
        if tokens.is_empty() || tokens.len() >= self.window {
            let _ = job.reply.send(Err(LlmError::Request(format!(
                "the prompt has {} tokens; the local model's context holds {}",
                tokens.len(),
                self.window
            ))));
            return;
        }
        if job.slots.is_empty() {
            let _ = job.reply.send(Ok(Vec::new()));
            return;
        }
        let budget = (job.params.max_tokens as usize).min(self.window - tokens.len());
        let mut slots = job.slots;
        let greedy_copies = if job.params.temperature <= 0.0 { slots.len() } else { 1 };
        if greedy_copies > 1 {
            slots.truncate(1);
        }
        let request = Request {
            answers: vec![None; slots.len()],
            tokens,
            params: job.params,
            slots,
            greedy_copies,
            admitted: 0,
            started: Instant::now(),
            reply: job.reply,
            budget,
        };
        let id = match self.requests.iter().position(Option::is_none) {
            Some(free) => {
                self.requests[free] = Some(request);
                free
            }
            None => {
                self.requests.push(Some(request));
                self.requests.len() - 1
            }
        };
        self.waiting.push_back(id);
    }

    /// One decode call: admits what fits, then evaluates prompt tokens if
    /// any are waiting, else one token of every answer being written.
    /// llama.cpp failing fails every request in progress (and the cache
    /// starts afresh); a request's own failure (its grammar refused, a
    /// sampler's error) fails that request alone.
    pub fn step(&mut self) {
        let result = self.admit().and_then(|()| {
            if self.sequences.iter().any(|s| matches!(s.work, Work::Prefill { .. })) {
                self.prefill_step()
            } else {
                self.decode_step()
            }
        });
        if let Err(e) = result {
            self.fail_all(&format!("local generation failed: {e:#}"));
        }
    }

    fn request(&self, id: usize) -> &Request {
        self.requests[id].as_ref().expect("a live request")
    }

    /// Cells in use or promised: every busy sequence may fill its window
    /// (its prompt and a whole answer); an idle one holds what it keeps.
    fn cells_promised(&self) -> usize {
        self.sequences
            .iter()
            .map(|s| match &s.work {
                Work::Idle => s.cells.len(),
                // The leader and the sequences that will copy its prompt.
                Work::Prefill { request, followers, .. } => (1 + followers.len()) * self.request(*request).need(),
                Work::Decode { request, .. } => self.request(*request).need(),
                // Counted with the sequence it follows.
                Work::Follow => 0,
            })
            .sum()
    }

    /// Gives free sequences to waiting requests, oldest first, as long as
    /// the KV cache has room for their prompt and answers.
    fn admit(&mut self) -> Result<()> {
        while let Some(&id) = self.waiting.front() {
            let Some(mut plan) = self.plan(id) else {
                return Ok(());
            };
            if !self.make_room(&mut plan)? {
                return Ok(());
            }
            self.start(id, &plan)?;
        }
        Ok(())
    }

    /// Which idle sequences would take request `id`'s next slots, and
    /// where its prompt's longest cached prefix is; None if none is idle
    /// or a longer prefix is being evaluated.
    fn plan(&self, id: usize) -> Option<Plan> {
        let r = self.request(id);
        let idle: Vec<usize> = (0..self.sequences.len())
            .filter(|&s| self.sequences[s].is_idle())
            .collect();
        let prefix = |s: usize| shared_prefix(&self.sequences[s].cells, &r.tokens);
        let source = (0..self.sequences.len()).max_by_key(|&s| (prefix(s), self.sequences[s].is_idle()))?;
        // A longer prefix that a sequence is evaluating now (another
        // question on the same database, arrived just before): wait for it
        // rather than evaluate it twice. Prompts come before answers, so the
        // wait is a few prompt batches.
        let pending = self
            .sequences
            .iter()
            .filter_map(|s| match &s.work {
                Work::Prefill { request, .. } => Some(shared_prefix(&self.request(*request).tokens, &r.tokens)),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        if pending >= prefix(source) + WORTH_WAITING_FOR {
            return None;
        }
        // The leader evaluates the prompt: the source itself when idle,
        // else the idle sequence with the longest prefix of its own.
        let leader = if self.sequences[source].is_idle() {
            source
        } else {
            *idle.iter().max_by_key(|&&s| prefix(s))?
        };
        // Followers take the idle sequences that keep the least.
        let mut followers: Vec<usize> = idle.into_iter().filter(|&s| s != leader).collect();
        followers.sort_by_key(|&s| self.sequences[s].cells.len());
        followers.truncate(r.slots.len() - r.admitted - 1);
        Some(Plan {
            leader,
            source,
            followers,
            need: r.need(),
        })
    }

    /// Whether the plan fits the KV cache, after forgetting what idle
    /// sequences keep (the largest first, never the source) and, if that
    /// is not enough, starting fewer slots. False: wait for a sequence to
    /// finish.
    fn make_room(&mut self, plan: &mut Plan) -> Result<bool> {
        let cells = self.ctx.n_ctx() as usize;
        loop {
            let chosen: Vec<usize> = std::iter::once(plan.leader)
                .chain(plan.followers.iter().copied())
                .collect();
            let kept: usize = chosen.iter().map(|&s| self.sequences[s].cells.len()).sum();
            if self.cells_promised() - kept + chosen.len() * plan.need <= cells {
                return Ok(true);
            }
            let evictable = (0..self.sequences.len())
                .filter(|&s| self.sequences[s].is_idle() && !chosen.contains(&s) && s != plan.source)
                .filter(|&s| !self.sequences[s].cells.is_empty())
                .max_by_key(|&s| self.sequences[s].cells.len());
            if let Some(s) = evictable {
                self.forget(s)?;
            } else if plan.followers.pop().is_none() {
                // A request alone always fits its window; with other work
                // in progress, wait for it.
                return Ok(false);
            }
        }
    }

    /// Starts the planned slots of request `id`: the leader evaluates the
    /// prompt from the longest prefix in the source; the followers copy it.
    fn start(&mut self, id: usize, plan: &Plan) -> Result<()> {
        let (leader, source, followers) = (plan.leader, plan.source, &plan.followers);
        let r = self.requests[id].as_mut().expect("a live request");
        let first = r.admitted;
        r.admitted += 1 + followers.len();
        if r.admitted == r.slots.len() {
            self.waiting.pop_front();
        }
        let tokens = r.tokens.clone();
        let own = shared_prefix(&self.sequences[leader].cells, &tokens);
        let theirs = shared_prefix(&self.sequences[source].cells, &tokens);
        let shared = if theirs > own {
            self.forget(leader)?;
            self.ctx
                .copy_kv_cache_seq(source as i32, leader as i32, None, Some(theirs as u32))?;
            self.sequences[leader].cells = tokens[..theirs].to_vec();
            theirs
        } else if self
            .ctx
            .clear_kv_cache_seq(Some(leader as u32), Some(own as u32), None)?
        {
            self.sequences[leader].cells.truncate(own);
            own
        } else {
            self.forget(leader)?;
            0
        };
        self.stats.prompt_reused.fetch_add(shared as u64, Ordering::Relaxed);
        for &f in followers.iter() {
            self.forget(f)?;
            self.sequences[f].work = Work::Follow;
        }
        self.sequences[leader].work = Work::Prefill {
            request: id,
            slot: first,
            followers: followers.iter().enumerate().map(|(i, &f)| (f, first + 1 + i)).collect(),
        };
        Ok(())
    }

    /// Clears a sequence's cells.
    fn forget(&mut self, s: usize) -> Result<()> {
        self.ctx.clear_kv_cache_seq(Some(s as u32), None, None)?;
        self.sequences[s].cells.clear();
        Ok(())
    }

    /// Evaluates up to one batch of prompt tokens, of the sequences that
    /// are evaluating a prompt, in order; a prompt whose last token is in
    /// the batch starts its answers.
    fn prefill_step(&mut self) -> Result<()> {
        let started = Instant::now();
        self.batch.clear();
        // (sequence, row of its last prompt token when in this batch)
        let mut finishing: Vec<(usize, i32)> = Vec::new();
        let mut evaluated = 0;
        for s in 0..self.sequences.len() {
            let Work::Prefill { request, .. } = &self.sequences[s].work else {
                continue;
            };
            let tokens = &self.requests[*request].as_ref().expect("a live request").tokens;
            let from = self.sequences[s].cells.len();
            let room = BATCH - evaluated;
            if room == 0 {
                break;
            }
            let to = tokens.len().min(from + room);
            for (pos, &token) in tokens.iter().enumerate().take(to).skip(from) {
                let last = pos + 1 == tokens.len();
                self.batch.add(token, pos as i32, &[s as i32], last)?;
                if last {
                    finishing.push((s, evaluated as i32));
                }
                evaluated += 1;
            }
            self.sequences[s].cells.extend_from_slice(&tokens[from..to]);
        }
        self.ctx.decode(&mut self.batch)?;
        self.stats
            .prompt_evaluated
            .fetch_add(evaluated as u64, Ordering::Relaxed);
        self.stats
            .prompt_us
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        for (s, row) in finishing {
            let Work::Prefill {
                request,
                slot,
                followers,
            } = std::mem::replace(&mut self.sequences[s].work, Work::Idle)
            else {
                unreachable!("a prefilling sequence");
            };
            let len = self.sequences[s].cells.len();
            for &(f, _) in &followers {
                self.ctx.copy_kv_cache_seq(s as i32, f as i32, None, Some(len as u32))?;
                self.sequences[f].cells = self.sequences[s].cells.clone();
            }
            let starts: Vec<(usize, usize)> = std::iter::once((s, slot)).chain(followers).collect();
            for (i, &(seq, slot)) in starts.iter().enumerate() {
                if let Err(e) = self.begin_answer(seq, request, slot, row) {
                    // The sequences not started yet hold the prompt, nothing else.
                    for &(later, _) in &starts[i..] {
                        self.sequences[later].work = Work::Idle;
                    }
                    self.fail_request(request, &e);
                    break;
                }
            }
        }
        Ok(())
    }

    /// Starts the answer of `slot` in sequence `s` with its first token,
    /// sampled from row `row` of the last batch.
    fn begin_answer(&mut self, s: usize, request: usize, slot: usize, row: i32) -> Result<()> {
        let r = self.request(request);
        let mut answer = Box::new(Answer::new(Picker::new(self.model, &r.params, r.slots[slot])?));
        answer.step(&self.ctx, self.model, row, r.budget)?;
        let done = answer.done;
        self.sequences[s].work = Work::Decode { request, slot, answer };
        if done {
            self.finish(s);
        }
        Ok(())
    }

    /// Decodes the last token of every answer being written, and samples
    /// each one's next.
    fn decode_step(&mut self) -> Result<()> {
        let started = Instant::now();
        self.batch.clear();
        let mut rows = Vec::new();
        for (s, seq) in self.sequences.iter_mut().enumerate() {
            let Work::Decode { answer, .. } = &seq.work else {
                continue;
            };
            let token = *answer.tokens.last().expect("a sampled token");
            self.batch.add(token, seq.cells.len() as i32, &[s as i32], true)?;
            seq.cells.push(token);
            rows.push(s);
        }
        if rows.is_empty() {
            return Ok(());
        }
        self.ctx.decode(&mut self.batch)?;
        self.stats.answer_steps.fetch_add(1, Ordering::Relaxed);
        self.stats
            .answer_tokens_decoded
            .fetch_add(rows.len() as u64, Ordering::Relaxed);
        let mut failed = Vec::new();
        for (row, s) in rows.into_iter().enumerate() {
            let Work::Decode { request, answer, .. } = &mut self.sequences[s].work else {
                unreachable!("a decoding sequence");
            };
            let budget = self.requests[*request].as_ref().expect("a live request").budget;
            match answer.step(&self.ctx, self.model, row as i32, budget) {
                Ok(()) if answer.done => self.finish(s),
                Ok(()) => {}
                Err(e) => failed.push((*request, e)),
            }
        }
        for (request, e) in failed {
            self.fail_request(request, &e);
        }
        self.stats
            .generation_us
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Records the finished answer of sequence `s`; the request is
    /// answered once all its samples are.
    fn finish(&mut self, s: usize) {
        let Work::Decode { request, slot, answer } = std::mem::replace(&mut self.sequences[s].work, Work::Idle) else {
            unreachable!("a decoding sequence");
        };
        self.stats.generations.fetch_add(1, Ordering::Relaxed);
        self.stats
            .generated
            .fetch_add(answer.tokens.len() as u64, Ordering::Relaxed);
        if answer.cut.is_some() {
            self.stats.loops_cut.fetch_add(1, Ordering::Relaxed);
        }
        let r = self.requests[request].as_mut().expect("a live request");
        r.answers[slot] = Some(RawCompletion {
            text: answer.text,
            // Usage is per call, as an HTTP server reports it for n samples.
            prompt_tokens: if slot == 0 { r.tokens.len() as u64 } else { 0 },
            completion_tokens: answer.tokens.len() as u64,
            latency_ms: 0.0,
            cut: answer.cut,
        });
        if r.answers.iter().all(Option::is_some) {
            let r = self.requests[request].take().expect("a live request");
            let latency_ms = r.started.elapsed().as_secs_f64() * 1000.0;
            let mut answers: Vec<RawCompletion> = r
                .answers
                .into_iter()
                .map(|a| RawCompletion {
                    latency_ms,
                    ..a.expect("answered")
                })
                .collect();
            if r.greedy_copies > 1 {
                let copy = RawCompletion {
                    prompt_tokens: 0,
                    ..answers[0].clone()
                };
                answers.resize(r.greedy_copies, copy);
            }
            let _ = r.reply.send(Ok(answers));
        }
    }

    /// Fails request `id` alone (its grammar refused, or a sampler failed):
    /// its sequences go idle, keeping the cells they hold.
    fn fail_request(&mut self, id: usize, why: &anyhow::Error) {
        for s in 0..self.sequences.len() {
            let followers = match &self.sequences[s].work {
                Work::Prefill { request, followers, .. } if *request == id => followers.clone(),
                Work::Decode { request, .. } if *request == id => Vec::new(),
                _ => continue,
            };
            self.sequences[s].work = Work::Idle;
            for (f, _) in followers {
                self.sequences[f].work = Work::Idle;
            }
        }
        self.waiting.retain(|&w| w != id);
        if let Some(r) = self.requests[id].take() {
            let _ = r
                .reply
                .send(Err(LlmError::Request(format!("local generation failed: {why:#}"))));
        }
    }

    /// Fails every request in progress or waiting, and clears the cache.
    fn fail_all(&mut self, why: &str) {
        for r in self.requests.iter_mut().filter_map(Option::take) {
            let _ = r.reply.send(Err(LlmError::Request(why.to_string())));
        }
        self.waiting.clear();
        for s in &mut self.sequences {
            s.work = Work::Idle;
            s.cells.clear();
        }
        self.ctx.clear_kv_cache();
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
    fn step(&mut self, ctx: &LlamaContext, model: &LlamaModel, row: i32, budget: usize) -> Result<()> {
        if budget == 0 {
            self.finish();
            return Ok(());
        }
        let vocab = model.vocab();
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
        } else if let Some((period, copies)) = repetition::degenerate_text(&self.bytes) {
            self.cut = Some(repetition::describe_text(period, copies));
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

/// How the next token is chosen: the request's sampler, under its grammar
/// when it has one. Under a grammar the unconstrained choice is tried first
/// and the vocabulary masked (llama.cpp's grammar sampler over all 151,936
/// tokens, about 30 to 40 ms: benches/grammar.rs) only when the grammar
/// refuses it.
enum Picker {
    /// Greedy or temperature sampling, unconstrained.
    Free(LlamaSampler),
    /// Greedy under a grammar: the best token if the grammar allows it,
    /// else the best the grammar allows; the same token as masking first.
    Greedy(LlamaSampler),
    /// Sampling under a grammar: a draw from the whole distribution, kept
    /// if the grammar allows it, else a fresh draw from the masked one. The
    /// same distribution as masking first: a token t the grammar allows,
    /// of probability p(t) with Z the allowed tokens' total, comes out with
    /// probability p(t) + (1 - Z) p(t) / Z = p(t) / Z.
    Sampled { grammar: LlamaSampler, pick: LlamaSampler },
}

impl Picker {
    fn new(model: &LlamaModel, params: &GenParams, sample: u32) -> Result<Picker> {
        let grammar = match &params.grammar {
            None => None,
            Some(g) => Some(super::recognize::grammar_sampler(model, g, "root")?),
        };
        if params.temperature <= 0.0 {
            return Ok(grammar.map_or_else(|| Picker::Free(LlamaSampler::greedy()), Picker::Greedy));
        }
        let seed = params.seed.unwrap_or(0).wrapping_add(u64::from(sample)) as u32;
        let pick =
            LlamaSampler::chain_simple([LlamaSampler::temp(params.temperature as f32), LlamaSampler::dist(seed)]);
        Ok(match grammar {
            None => Picker::Free(pick),
            Some(grammar) => Picker::Sampled { grammar, pick },
        })
    }

    /// The next token, from row `row` of the last batch's logits.
    fn next(&mut self, ctx: &LlamaContext, model: &LlamaModel, row: i32) -> Result<LlamaToken> {
        match self {
            Picker::Free(sampler) => Ok(sampler.sample(ctx, row)),
            Picker::Greedy(grammar) => {
                let best = ctx
                    .get_logits_ith(row)
                    .iter()
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(b.1))
                    .map(|(i, _)| LlamaToken(i as i32))
                    .context("no logits")?;
                under_grammar(grammar, best, ctx, model, row, |all| {
                    all.data
                        .iter()
                        .filter(|t| t.logit().is_finite())
                        .max_by(|a, b| a.logit().total_cmp(&b.logit()))
                        .map(|t| t.id())
                })
            }
            Picker::Sampled { grammar, pick } => {
                let drawn = pick.sample(ctx, row);
                under_grammar(grammar, drawn, ctx, model, row, |all| {
                    pick.apply(all);
                    all.selected_token()
                })
            }
        }
    }
}

/// `first` if the grammar allows it, else what `choose` picks from the
/// masked vocabulary; the grammar then accepts it.
fn under_grammar(
    grammar: &mut LlamaSampler,
    first: LlamaToken,
    ctx: &LlamaContext,
    model: &LlamaModel,
    row: i32,
    choose: impl FnOnce(&mut llama_cpp_2::token::data_array::LlamaTokenDataArray) -> Option<LlamaToken>,
) -> Result<LlamaToken> {
    let token = if super::recognize::allows(grammar, first) {
        first
    } else {
        let mut all = ctx.token_data_array_ith(row);
        grammar.apply(&mut all);
        choose(&mut all).context("the grammar allows no token here")?
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
