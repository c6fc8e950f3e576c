//! Retrieval speed: embedding the 7000 train questions with the local
//! all-MiniLM-L6-v2, then retrieving k = 5 examples for all 1034 dev
//! questions (question similarity over the stored pool vectors, and the other
//! selectors with the gold as hypothetical answer).
//!
//!     cargo bench --bench retrieval
//!
//! Needs the Spider data ($SPIDER_DATA or ../shared/spider) and the model
//! (`spider-bench models fetch all-minilm-l6-v2`); skipped otherwise.

mod common;

use spider_bench::dataset::{Spider, Split};
use spider_bench::paths::models_dir;
use spider_bench::retrieval::embed::DenseIndex;
use spider_bench::retrieval::local::{MINILM_NAME, MiniLm};
use spider_bench::retrieval::select::{Method, Query, Scores, rank};
use std::time::Instant;

fn main() {
    let Some(data) = common::spider_data("retrieval") else {
        return;
    };
    let model_dir = models_dir().join(MINILM_NAME);
    if !model_dir.join("model.safetensors").is_file() {
        println!("retrieval: SKIPPED, {MINILM_NAME} is not installed (run `spider-bench models fetch {MINILM_NAME}`)");
        return;
    }
    let spider = Spider::open(&data).unwrap();
    let dev = spider.load_split(Split::Dev).unwrap();
    let schemas = spider.load_schemas().unwrap();
    let pool = spider_bench::run::load_pool(&spider).unwrap();
    let model = MiniLm::load(&model_dir).unwrap();

    let questions: Vec<String> = pool.examples.iter().map(|e| e.question.clone()).collect();
    let start = Instant::now();
    let vectors = model.embed_blocking(&questions).unwrap();
    let embed_pool = start.elapsed().as_secs_f64();
    println!(
        "embed {} train questions (local all-MiniLM-L6-v2): {embed_pool:.1} s ({:.1} questions/s)",
        questions.len(),
        questions.len() as f64 / embed_pool
    );

    let dev_texts: Vec<String> = dev.iter().map(|e| e.question.clone()).collect();
    let start = Instant::now();
    let dev_vectors = model.embed_blocking(&dev_texts).unwrap();
    println!(
        "embed {} dev questions: {:.1} s",
        dev_texts.len(),
        start.elapsed().as_secs_f64()
    );

    let index = DenseIndex {
        identity: "local".into(),
        vectors,
    };
    let start = Instant::now();
    let mut retrieved = 0;
    let all_scores = index.scores_batch(&dev_vectors);
    for (e, question) in dev.iter().zip(all_scores) {
        let scores = Scores {
            question,
            masked: vec![],
        };
        let q = Query {
            question: &e.question,
            schema: schemas.get(&e.db_id).unwrap(),
            preliminary: None,
            seed: 0,
            options: Default::default(),
            exclude: &[],
        };
        retrieved += rank(&pool, Method::QuestionSimilarity, &q, 5, &scores).len();
    }
    println!(
        "retrieve k=5 for {} dev questions by embedding similarity: {:.3} s ({retrieved} examples)",
        dev.len(),
        start.elapsed().as_secs_f64()
    );

    for method in [Method::Hyde, Method::DifficultyMatched, Method::Dail] {
        let start = Instant::now();
        for (e, v) in dev.iter().zip(&dev_vectors) {
            let scores = Scores {
                question: index.scores_of(v),
                masked: index.scores_of(v),
            };
            let q = Query {
                question: &e.question,
                schema: schemas.get(&e.db_id).unwrap(),
                preliminary: Some(&e.gold),
                seed: 0,
                options: Default::default(),
                exclude: &[],
            };
            rank(&pool, method, &q, 5, &scores);
        }
        println!(
            "retrieve k=5 for {} dev questions by {} (gold as hypothesis, one thread): {:.3} s",
            dev.len(),
            method.name(),
            start.elapsed().as_secs_f64()
        );
    }
}
