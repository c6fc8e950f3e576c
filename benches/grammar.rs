//! The schema grammar's cost (the `constrained` rung), in one run:
//!
//! 1. building the GBNF of every database of tables.json, and llama.cpp
//!    parsing one (the sampler's set-up, once per answer);
//! 2. the full-vocabulary mask, llama.cpp's grammar sampler applied to all
//!    151,936 tokens at each position of gold queries (what a sampled
//!    constrained answer pays at every token);
//! 3. generation under the grammar beside the same generation without it,
//!    on dev questions of three databases (greedy: the grammar is only asked
//!    about the best token, and the vocabulary masked when it refuses;
//!    sampled at T = 0.8: masked at every token): milliseconds per generated
//!    token both ways, and their difference, the grammar's cost per token.
//!
//!     cargo bench --bench grammar
//!
//! Needs the Spider data (../shared/spider or $SPIDER_DATA) and the model
//! (`spider-bench models fetch`); says SKIPPED otherwise.

mod common;

use spider_bench::dataset::schema::SchemaSet;
use spider_bench::llm::grammar::sqlite_grammar;
use spider_bench::llm::local::{GrammarChecker, LocalConfig, LocalModel, LocalStats};
use spider_bench::llm::{GenParams, Generator, Message};
use spider_bench::models::DEFAULT_GENERATION_MODEL;
use std::sync::Arc;
use std::time::{Duration, Instant};

const DATABASES: [&str; 3] = ["concert_singer", "car_1", "world_1"];
const QUESTIONS_PER_DATABASE: usize = 4;
const MAX_TOKENS: u32 = 160;

fn main() {
    let Some(data) = common::spider_data("grammar") else {
        return;
    };
    let Some((path, gguf)) = common::default_model("grammar") else {
        return;
    };
    let schemas = SchemaSet::load(&data.join("tables.json")).unwrap();

    // 1. Building every grammar, and llama.cpp's parse of the largest.
    let started = Instant::now();
    let grammars: Vec<(String, String)> = schemas
        .by_id
        .values()
        .map(|s| (s.db_id.clone(), sqlite_grammar(s).unwrap()))
        .collect();
    let built = started.elapsed();
    let (largest_db, largest) = grammars.iter().max_by_key(|g| g.1.len()).unwrap();
    let checker = GrammarChecker::load(&path).unwrap();
    let started = Instant::now();
    drop(checker.sampler(largest, "root").unwrap());
    println!(
        "grammar build: {} databases in {:.1} ms; llama.cpp parses the largest ({largest_db}, {} bytes) in {:.2} ms",
        grammars.len(),
        built.as_secs_f64() * 1e3,
        largest.len(),
        started.elapsed().as_secs_f64() * 1e3
    );

    // 2. The full-vocabulary mask along gold queries.
    let gold = std::fs::read_to_string(data.join("dev_gold.sql")).unwrap();
    for db in DATABASES {
        let gbnf = sqlite_grammar(schemas.get(db).unwrap()).unwrap();
        let mut costs: Vec<Duration> = Vec::new();
        let queries = gold
            .lines()
            .filter_map(|l| l.rsplit_once('\t'))
            .filter(|(_, d)| d.trim() == db);
        for (sql, _) in queries.take(3) {
            costs.extend(checker.full_vocab_costs(&gbnf, "root", sql.trim()).unwrap());
        }
        costs.sort();
        let mean = costs.iter().sum::<Duration>() / costs.len().max(1) as u32;
        println!(
            "{db}: full-vocabulary mask at {} positions of 3 gold queries: mean {:.1} ms, median {:.1} ms, max {:.1} ms",
            costs.len(),
            mean.as_secs_f64() * 1e3,
            costs[costs.len() / 2].as_secs_f64() * 1e3,
            costs.last().unwrap().as_secs_f64() * 1e3
        );
    }
    drop(checker);

    // 3. Generation with and without the grammar.
    let mut config = LocalConfig::new(DEFAULT_GENERATION_MODEL, &path, gguf.sha256);
    config.sequences = 1;
    let model = LocalModel::load(config, Arc::new(LocalStats::default())).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let dev: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(data.join("dev.json")).unwrap()).unwrap();
    println!(
        "decoding | database | tokens free / constrained | ms per token free | constrained | grammar's cost per token"
    );
    for temperature in [0.0, 0.8] {
        let decoding = if temperature > 0.0 { "sampled T=0.8" } else { "greedy" };
        let (mut all_free, mut all_constrained) = ((0u64, 0f64), (0u64, 0f64));
        for db in DATABASES {
            let schema = schemas.get(db).unwrap();
            let gbnf: Arc<str> = sqlite_grammar(schema).unwrap().into();
            let (mut free, mut constrained) = ((0u64, 0f64), (0u64, 0f64));
            for q in dev
                .iter()
                .filter(|e| e["db_id"] == db)
                .step_by(5)
                .take(QUESTIONS_PER_DATABASE)
            {
                let messages = prompt(schema, q["question"].as_str().unwrap());
                for (grammar, total) in [(None, &mut free), (Some(gbnf.clone()), &mut constrained)] {
                    let params = GenParams {
                        temperature,
                        max_tokens: MAX_TOKENS,
                        seed: Some(1),
                        grammar,
                    };
                    // Prompt evaluation once, outside the timing: the
                    // second request reuses it from the KV cache.
                    let warm = GenParams {
                        max_tokens: 1,
                        grammar: None,
                        ..params.clone()
                    };
                    rt.block_on(model.generate(&messages, &warm, &[0])).unwrap();
                    let started = Instant::now();
                    let out = rt.block_on(model.generate(&messages, &params, &[0])).unwrap().remove(0);
                    total.0 += out.completion_tokens;
                    total.1 += started.elapsed().as_secs_f64();
                }
            }
            report(decoding, db, free, constrained);
            all_free = (all_free.0 + free.0, all_free.1 + free.1);
            all_constrained = (all_constrained.0 + constrained.0, all_constrained.1 + constrained.1);
        }
        report(decoding, "all", all_free, all_constrained);
    }
}

/// The rung's kind of prompt: the tables and columns, then the question.
fn prompt(schema: &spider_bench::dataset::schema::DbSchema, question: &str) -> Vec<Message> {
    let tables: Vec<String> = schema
        .tables()
        .iter()
        .map(|t| {
            let columns: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
            format!("{}({})", t.name, columns.join(", "))
        })
        .collect();
    vec![
        Message::system(
            "Write one SQLite query that answers the question. Answer with the query alone in a ```sql code block.",
        ),
        Message::user(format!("Tables: {}\n\nQuestion: {question}", tables.join("; "))),
    ]
}

fn report(decoding: &str, db: &str, free: (u64, f64), constrained: (u64, f64)) {
    let per = |(n, s): (u64, f64)| 1e3 * s / n.max(1) as f64;
    println!(
        "{decoding} | {db} | {} / {} | {:.1} | {:.1} | {:+.1} ms ({:.2}x)",
        free.0,
        constrained.0,
        per(free),
        per(constrained),
        per(constrained) - per(free),
        per(constrained) / per(free)
    );
}
