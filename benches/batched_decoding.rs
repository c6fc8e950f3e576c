//! Samples decoded together: aggregate generation speed with 1, 4 and 8
//! sequences, for spider-bench's local engine (`LocalModel::generate` with
//! that many slots) and for llama.cpp's own batched decoding called directly
//! through llama-cpp-2 (the `batched` example's loop: the prompt once in
//! sequence 0, copied to the others, one decode per step for all of them),
//! on the same GGUF, prompt, threads, temperature and seeds, in one run.
//!
//!     cargo bench --bench batched_decoding
//!
//! Both stop a sequence at its end-of-generation token or at MAX_TOKENS;
//! the figure is generated tokens over the time of the generation loop
//! (prompt evaluation excluded). Needs the model (`spider-bench models
//! fetch`); says SKIPPED otherwise.

mod common;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::sampling::LlamaSampler;
use spider_bench::llm::local::{LocalConfig, LocalModel, LocalStats, backend};
use spider_bench::llm::{GenParams, Generator, Message};
use spider_bench::models::DEFAULT_GENERATION_MODEL;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

const MAX_TOKENS: usize = 96;
const SEQUENCES: [usize; 3] = [1, 4, 8];
const ROUNDS: u64 = 2;

fn messages() -> Vec<Message> {
    vec![
        Message::system("You write SQLite queries. Answer with the query only."),
        Message::user(
            "CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, country TEXT, age INTEGER);\n\
             CREATE TABLE concert (concert_id INTEGER PRIMARY KEY, concert_name TEXT, year INTEGER, stadium_id INTEGER);\n\
             CREATE TABLE singer_in_concert (concert_id INTEGER, singer_id INTEGER);\n\
             Question: For each country, how many singers older than 30 sang in a concert after 2014? \
             Explain your reasoning step by step, then give the query.",
        ),
    ]
}

fn params(seed: u64) -> GenParams {
    GenParams {
        temperature: 0.8,
        max_tokens: MAX_TOKENS as u32,
        seed: Some(seed),
        grammar: None,
    }
}

/// spider-bench: generated tokens and generation seconds for `k` slots.
fn ours(model: &LocalModel, stats: &LocalStats, k: usize, seed: u64) -> (u64, f64) {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let (t0, us0) = (
        stats.generated.load(Ordering::Relaxed),
        stats.generation_us.load(Ordering::Relaxed),
    );
    let slots: Vec<u32> = (0..k as u32).collect();
    rt.block_on(model.generate(&messages(), &params(seed), &slots)).unwrap();
    let tokens = stats.generated.load(Ordering::Relaxed) - t0;
    let secs = (stats.generation_us.load(Ordering::Relaxed) - us0) as f64 / 1e6;
    (tokens, secs)
}

/// llama.cpp's batched decoding, directly: generated tokens and seconds.
fn reference(model: &LlamaModel, prompt: &str, k: usize, threads: i32, seed: u64) -> (u64, f64) {
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(8192))
        .with_n_batch(512)
        .with_n_ubatch(512)
        .with_n_threads(threads)
        .with_n_threads_batch(threads)
        .with_n_seq_max(8)
        .with_kv_unified(true);
    let mut ctx = model.new_context(backend().unwrap(), params).unwrap();
    let tokens = model.vocab().tokenize(prompt.as_bytes(), false, true);
    let mut batch = LlamaBatch::new(512, 8);
    for (i, &t) in tokens.iter().enumerate() {
        batch.add(t, i as i32, &[0], i + 1 == tokens.len()).unwrap();
    }
    ctx.decode(&mut batch).unwrap();
    for s in 1..k as i32 {
        ctx.copy_kv_cache_seq(0, s, None, None).unwrap();
    }
    let mut samplers: Vec<LlamaSampler> = (0..k as u64)
        .map(|slot| LlamaSampler::chain_simple([LlamaSampler::temp(0.8), LlamaSampler::dist((seed + slot) as u32)]))
        .collect();
    let vocab = model.vocab();
    let started = Instant::now();
    let mut rows = vec![-1i32; k];
    let mut lengths = vec![0usize; k];
    let mut done = vec![false; k];
    let mut generated = 0u64;
    loop {
        batch.clear();
        let mut row = 0;
        for s in 0..k {
            if done[s] {
                continue;
            }
            let token = samplers[s].sample(&ctx, rows[s]);
            if vocab.is_eog(token) || lengths[s] == MAX_TOKENS {
                done[s] = true;
                continue;
            }
            lengths[s] += 1;
            generated += 1;
            batch
                .add(token, (tokens.len() + lengths[s] - 1) as i32, &[s as i32], true)
                .unwrap();
            rows[s] = row;
            row += 1;
        }
        if row == 0 {
            break;
        }
        ctx.decode(&mut batch).unwrap();
    }
    (generated, started.elapsed().as_secs_f64())
}

fn main() {
    let Some((path, gguf)) = common::default_model("batched_decoding") else {
        return;
    };
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let stats = Arc::new(LocalStats::default());
    let mut config = LocalConfig::new(DEFAULT_GENERATION_MODEL, &path, gguf.sha256);
    config.threads = threads;
    let local = LocalModel::load(config, stats.clone()).unwrap();
    let prompt = local.render(&messages()).unwrap();
    let direct =
        LlamaModel::load_from_file(backend().unwrap(), Path::new(&path), &LlamaModelParams::default()).unwrap();
    println!(
        "{DEFAULT_GENERATION_MODEL}, {threads} threads, T = 0.8, up to {MAX_TOKENS} tokens per sequence, {ROUNDS} rounds"
    );
    println!("sequences | spider-bench tok/s | llama.cpp (llama-cpp-2 direct) tok/s | ratio");
    for k in SEQUENCES {
        let (mut ot, mut os, mut rt, mut rs) = (0u64, 0f64, 0u64, 0f64);
        for round in 0..ROUNDS {
            let seed = 100 * round + k as u64;
            let (t, s) = ours(&local, &stats, k, seed);
            ot += t;
            os += s;
            let (t, s) = reference(&direct, &prompt, k, threads as i32, seed);
            rt += t;
            rs += s;
        }
        let (a, b) = (ot as f64 / os, rt as f64 / rs);
        println!(
            "{k} | {a:.1} ({ot} tokens) | {b:.1} ({rt} tokens) | {:.0}%",
            100.0 * a / b
        );
    }
}
