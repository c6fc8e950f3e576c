//! The embedded local model (llama.cpp, Qwen2.5-Coder-0.5B-Instruct GGUF),
//! for real: its chat template, greedy and seeded sampling, the KV prefix
//! cache, and an end-to-end run of a handful of dev questions. Skipped
//! (SKIPPED in the output; a failure under CI, which installs both: see
//! `common::skip`) where the model is not installed (`spider-bench models
//! fetch`) or the Spider data is absent.

#[path = "common/mod.rs"]
mod common;

use spider_bench::llm::local::{LocalConfig, LocalModel, LocalStats};
use spider_bench::llm::{GenParams, Generator, Message};
use spider_bench::models::{DEFAULT_GENERATION_MODEL, is_installed, spec};
use spider_bench::paths::models_dir;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

/// The installed default model, loaded anew (tests run in parallel: a test
/// that looks at the KV cache needs a model of its own).
fn load_model() -> Option<LocalModel> {
    let spec = spec(DEFAULT_GENERATION_MODEL).unwrap();
    if !is_installed(spec, &models_dir()) {
        return None;
    }
    let gguf = spec.gguf().unwrap();
    let path = models_dir().join(spec.name).join(gguf.name);
    let config = LocalConfig::new(DEFAULT_GENERATION_MODEL, &path, gguf.sha256);
    Some(LocalModel::load(config, Arc::new(LocalStats::default())).unwrap())
}

/// The installed default model, loaded once per test process.
fn model(test: &str) -> Option<&'static LocalModel> {
    static MODEL: OnceLock<Option<LocalModel>> = OnceLock::new();
    let model = MODEL.get_or_init(load_model);
    if model.is_none() {
        common::skip(
            test,
            &format!(
                "{DEFAULT_GENERATION_MODEL} is not installed in {} (run `spider-bench models fetch`)",
                models_dir().display()
            ),
        );
    }
    model.as_ref()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn greedy(max_tokens: u32) -> GenParams {
    GenParams {
        temperature: 0.0,
        max_tokens,
        seed: None,
        grammar: None,
    }
}

#[test]
fn the_chat_template_is_the_models_own() {
    let Some(model) = model("the_chat_template_is_the_models_own") else {
        return;
    };
    let with_system = model
        .render(&[Message::system("Be brief."), Message::user("Count the singers.")])
        .unwrap();
    assert_eq!(
        with_system,
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nCount the singers.<|im_end|>\n<|im_start|>assistant\n"
    );
    // Without a system message, Qwen's template adds its default one.
    let without = model.render(&[Message::user("Hi")]).unwrap();
    assert_eq!(
        without,
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n\
         <|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
    // A repair turn: the assistant's answer, then the user's follow-up.
    let repair = model
        .render(&[
            Message::system("S"),
            Message::user("Q"),
            Message::assistant("SELECT 1"),
            Message::user("fix it"),
        ])
        .unwrap();
    assert!(repair.ends_with(
        "<|im_start|>assistant\nSELECT 1<|im_end|>\n<|im_start|>user\nfix it<|im_end|>\n<|im_start|>assistant\n"
    ));
}

#[test]
fn greedy_is_deterministic_and_sampling_follows_the_seed() {
    let Some(model) = model("greedy_is_deterministic_and_sampling_follows_the_seed") else {
        return;
    };
    let rt = runtime();
    let messages = [
        Message::system("You write SQLite queries. Answer with the query only."),
        Message::user("Table singer(name, age). How many singers are older than 30?"),
    ];
    let a = rt.block_on(model.generate(&messages, &greedy(48), &[0])).unwrap();
    let b = rt.block_on(model.generate(&messages, &greedy(48), &[0])).unwrap();
    assert_eq!(a[0].text, b[0].text);
    assert!(a[0].text.to_lowercase().contains("select"), "{:?}", a[0].text);
    assert!(a[0].prompt_tokens > 20 && a[0].completion_tokens > 3);

    let hot = GenParams {
        temperature: 1.2,
        max_tokens: 48,
        seed: Some(7),
        grammar: None,
    };
    let first = rt.block_on(model.generate(&messages, &hot, &[0, 1, 2, 3])).unwrap();
    let again = rt.block_on(model.generate(&messages, &hot, &[0, 1, 2, 3])).unwrap();
    let texts = |v: &[spider_bench::llm::RawCompletion]| v.iter().map(|c| c.text.clone()).collect::<Vec<_>>();
    assert_eq!(texts(&first), texts(&again), "same seed, same samples");
    // A sample's seed is its slot: asking for slots 2 and 3 alone (what the
    // cache does when slots 0 and 1 are cached) gives the same samples.
    let tail = rt.block_on(model.generate(&messages, &hot, &[2, 3])).unwrap();
    assert_eq!(texts(&tail), texts(&first)[2..].to_vec(), "slots 2 and 3 asked alone");
    let distinct: std::collections::BTreeSet<_> = texts(&first).into_iter().collect();
    assert!(
        distinct.len() > 1,
        "4 samples at temperature 1.2 were all equal: {distinct:?}"
    );
    // Usage is per call: the prompt is counted on the first sample only.
    assert!(first[0].prompt_tokens > 0 && first[1..].iter().all(|c| c.prompt_tokens == 0));
}

#[test]
fn a_shared_prefix_is_reused_and_gives_the_same_answer() {
    if model("a_shared_prefix_is_reused_and_gives_the_same_answer").is_none() {
        return;
    }
    let model = &load_model().unwrap();
    let rt = runtime();
    let schema = "CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, country TEXT, age INTEGER);\n\
                  CREATE TABLE concert (concert_id INTEGER PRIMARY KEY, singer_id INTEGER REFERENCES singer, year INTEGER);";
    let ask = |q: &str| {
        [
            Message::system("You write SQLite queries. Answer with the query only."),
            Message::user(format!("Database schema:\n{schema}\n\nQuestion: {q}")),
        ]
    };
    let unrelated = [Message::user("Write a haiku about databases.")];
    let question = ask("How many concerts were there in 2014?");
    // Cold: the context last held an unrelated prompt.
    rt.block_on(model.generate(&unrelated, &greedy(8), &[0])).unwrap();
    let cold = rt.block_on(model.generate(&question, &greedy(40), &[0])).unwrap();
    // Warm: the context holds the same schema, asked another question.
    rt.block_on(model.generate(&ask("List the names of all singers."), &greedy(40), &[0]))
        .unwrap();
    let reused_before = model.stats.prompt_reused.load(Ordering::Relaxed);
    let warm = rt.block_on(model.generate(&question, &greedy(40), &[0])).unwrap();
    let reused = model.stats.prompt_reused.load(Ordering::Relaxed) - reused_before;
    assert!(
        reused as f64 > 0.7 * warm[0].prompt_tokens as f64,
        "only {reused} of {} prompt tokens came from the KV cache",
        warm[0].prompt_tokens
    );
    assert_eq!(cold[0].text, warm[0].text);
    assert_eq!(
        cold[0].prompt_tokens, warm[0].prompt_tokens,
        "usage counts the whole prompt either way"
    );
}

#[test]
fn a_prompt_longer_than_the_context_is_that_examples_failure() {
    let Some(model) = model("a_prompt_longer_than_the_context_is_that_examples_failure") else {
        return;
    };
    let rt = runtime();
    let huge = Message::user("SELECT name FROM singer; ".repeat(3000));
    let err = rt.block_on(model.generate(&[huge], &greedy(8), &[0])).unwrap_err();
    assert!(
        matches!(&err, spider_bench::llm::LlmError::Request(m) if m.contains("context")),
        "{err:?}"
    );
    // The model still answers afterwards.
    let ok = rt
        .block_on(model.generate(&[Message::user("Say OK.")], &greedy(4), &[0]))
        .unwrap();
    assert!(!ok[0].text.is_empty());
}

/// The end-to-end check CI runs: a handful of real dev questions through
/// zero-shot with the local model; every answer parses as SQL, at least one
/// is correct, and a replay from the cache makes no generation and gives
/// the same records.
#[test]
fn zero_shot_on_a_handful_of_dev_questions() {
    let test = "zero_shot_on_a_handful_of_dev_questions";
    let Some(data) = common::real_spider(test) else {
        return;
    };
    if model(test).is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let run = |out: &str, extra: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_spider-bench"))
            .args(["run", "--strategy", "zero-shot", "--model", "local:qwen2.5-coder-0.5b"])
            .arg("--data")
            .arg(&data)
            .args(["--db", "concert_singer", "--limit", "6", "--quiet", "--format", "json"])
            .arg("--cache")
            .arg(dir.path().join("cache.sqlite"))
            .arg("--out")
            .arg(dir.path().join(out))
            .args(extra)
            .env_remove("OPENAI_API_KEY")
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        (
            std::fs::read_to_string(dir.path().join(out).join("predictions.jsonl")).unwrap(),
            String::from_utf8_lossy(&output.stderr).to_string(),
        )
    };
    let (records, log) = run("first", &[]);
    let records: Vec<serde_json::Value> = records.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records.len(), 6);
    let dialect = sqlparser::dialect::SQLiteDialect {};
    for r in &records {
        let sql = r["pred"].as_str().unwrap_or_else(|| panic!("no SQL extracted: {r}"));
        sqlparser::parser::Parser::parse_sql(&dialect, sql).unwrap_or_else(|e| panic!("{sql:?} does not parse: {e}"));
        assert!(r["tokens_in"].as_u64().unwrap() > 100, "{r}");
    }
    let correct = records.iter().filter(|r| r["exec"] == true).count();
    assert!(correct >= 1, "no answer of 6 was correct: {records:#?}");
    assert!(log.contains("6 local generations"), "{log}");

    let (replayed, log) = run("replay", &["--cache-only"]);
    let first = std::fs::read_to_string(dir.path().join("first/predictions.jsonl")).unwrap();
    assert_eq!(first, replayed, "a replay from the cache gives the same records");
    assert!(
        log.contains("0 local generations, 6 completions from the cache"),
        "{log}"
    );
}
