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
    load_with_sequences(spider_bench::llm::local::DEFAULT_SEQUENCES)
}

/// The installed default model decoding up to `sequences` samples together
/// (1: one after another).
fn load_with_sequences(sequences: u32) -> Option<LocalModel> {
    let spec = spec(DEFAULT_GENERATION_MODEL).unwrap();
    if !is_installed(spec, &models_dir()) {
        return None;
    }
    let gguf = spec.gguf().unwrap();
    let path = models_dir().join(spec.name).join(gguf.name);
    let mut config = LocalConfig::new(DEFAULT_GENERATION_MODEL, &path, gguf.sha256);
    config.sequences = sequences;
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
    // cache does when slots 0 and 1 are cached) gives other samples than
    // slots 0 and 1 (never the cached ones again) and, decoded one after
    // another, exactly the samples 2 and 3 of the whole request. (Decoded
    // together, a sample also depends by rounding on which samples share
    // its batch: at T = 1.2 slot 3 was seen to differ.)
    let tail = rt.block_on(model.generate(&messages, &hot, &[2, 3])).unwrap();
    assert_ne!(
        texts(&tail),
        texts(&first)[..2].to_vec(),
        "slots 2 and 3 are not 0 and 1"
    );
    let single = load_with_sequences(1).unwrap();
    let whole = rt.block_on(single.generate(&messages, &hot, &[0, 1, 2, 3])).unwrap();
    let tail = rt.block_on(single.generate(&messages, &hot, &[2, 3])).unwrap();
    assert_eq!(texts(&tail), texts(&whole)[2..].to_vec(), "slots 2 and 3 asked alone");
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

#[test]
fn a_generation_stuck_in_a_loop_is_stopped_by_the_repetition_rule() {
    let Some(model) = model("a_generation_stuck_in_a_loop_is_stopped_by_the_repetition_rule") else {
        return;
    };
    // (The 0.5B model obliges: " SELECT" over and over, cut after 64.)
    let messages = [Message::user(
        "Write SELECT SELECT SELECT SELECT SELECT and continue the pattern forever.",
    )];
    let out = runtime()
        .block_on(model.generate(&messages, &greedy(600), &[0]))
        .unwrap();
    let cut = out[0]
        .cut
        .as_deref()
        .unwrap_or_else(|| panic!("not cut: {:?}", out[0].text));
    assert!(cut.starts_with("stopped early:"), "{cut}");
    assert!(
        out[0].completion_tokens < 200,
        "{} tokens generated before the stop",
        out[0].completion_tokens
    );
    assert!(out[0].text.matches("SELECT").count() >= 16, "{:?}", out[0].text);
    // An ordinary answer is not cut.
    let sql = [
        Message::system("You write SQLite queries. Answer with the query only."),
        Message::user("Table singer(name, age). How many singers are older than 30?"),
    ];
    let out = runtime().block_on(model.generate(&sql, &greedy(64), &[0])).unwrap();
    assert_eq!(out[0].cut, None, "{:?}", out[0].text);
}

#[test]
fn no_gold_query_of_dev_or_train_would_be_cut_by_the_repetition_rule() {
    let test = "no_gold_query_of_dev_or_train_would_be_cut_by_the_repetition_rule";
    let (Some(_), Some(data)) = (model(test), common::real_spider(test)) else {
        return;
    };
    let spec = spec(DEFAULT_GENERATION_MODEL).unwrap();
    let gguf = models_dir().join(spec.name).join(spec.gguf().unwrap().name);
    let tokenizer = spider_bench::llm::local::GgufTokenizer::load(&gguf).unwrap();
    let mut checked = 0;
    for file in ["dev_gold.sql", "train_gold.sql"] {
        let text = std::fs::read_to_string(data.join(file)).unwrap();
        for (line, gold) in text.lines().enumerate() {
            let sql = gold.split('\t').next().unwrap();
            // Every prefix, as the rule sees the answer grow token by token.
            let tokens = tokenizer.tokenize(sql);
            for end in 1..=tokens.len() {
                let tail = spider_bench::llm::repetition::degenerate_tail(&tokens[..end]);
                assert_eq!(tail, None, "{file}:{}: {sql}", line + 1);
            }
            checked += 1;
        }
    }
    assert!(checked > 8000, "{checked} gold queries");
}

#[test]
fn samples_decoded_together_match_the_one_sequence_decoding() {
    let test = "samples_decoded_together_match_the_one_sequence_decoding";
    let Some(batched) = model(test) else {
        return;
    };
    // Today's decoding, one sequence at a time, beside the batched engine.
    let single = load_with_sequences(1).unwrap();
    let rt = runtime();
    let texts = |v: Vec<spider_bench::llm::RawCompletion>| v.into_iter().map(|c| c.text).collect::<Vec<_>>();
    for question in [
        "Table singer(name, age, country). How many singers are from France?",
        "Tables concert(concert_id, year), singer_in_concert(concert_id, singer_id). Which year had the most concerts?",
    ] {
        let messages = [
            Message::system("You write SQLite queries. Answer with the query only."),
            Message::user(question),
        ];
        // Greedy: one answer, and three decoded together, equal the
        // one-sequence engine's answer.
        let one = texts(rt.block_on(single.generate(&messages, &greedy(64), &[0])).unwrap());
        let same = texts(rt.block_on(batched.generate(&messages, &greedy(64), &[0])).unwrap());
        assert_eq!(one, same, "greedy, one sequence");
        let three = texts(
            rt.block_on(batched.generate(&messages, &greedy(64), &[0, 1, 2]))
                .unwrap(),
        );
        assert_eq!(three, vec![one[0].clone(); 3], "greedy, three sequences together");
        // Sampled: five samples together, each by its own seeded sampler,
        // are the same on a second request, and not all alike. (They need
        // not equal the samples decoded one after another: the batch changes
        // the logits by rounding, which can flip a draw.)
        let hot = GenParams {
            temperature: 0.8,
            max_tokens: 64,
            seed: Some(3),
            grammar: None,
        };
        let together = texts(
            rt.block_on(batched.generate(&messages, &hot, &[0, 1, 2, 3, 4]))
                .unwrap(),
        );
        let again = texts(
            rt.block_on(batched.generate(&messages, &hot, &[0, 1, 2, 3, 4]))
                .unwrap(),
        );
        assert_eq!(together, again, "five samples at T = 0.8, twice");
        assert_eq!(together.len(), 5);
    }
}
