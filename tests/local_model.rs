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

/// Whether the default model is installed; says SKIPPED for `test` if not.
/// For tests that load models of their own.
fn installed(test: &str) -> bool {
    let ok = is_installed(spec(DEFAULT_GENERATION_MODEL).unwrap(), &models_dir());
    if !ok {
        common::skip(
            test,
            &format!(
                "{DEFAULT_GENERATION_MODEL} is not installed in {} (run `spider-bench models fetch`)",
                models_dir().display()
            ),
        );
    }
    ok
}

/// The installed default model, loaded once per test process.
fn model(test: &str) -> Option<&'static LocalModel> {
    static MODEL: OnceLock<Option<LocalModel>> = OnceLock::new();
    if !installed(test) {
        return None;
    }
    MODEL.get_or_init(load_model).as_ref()
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

/// Answers are a function of the prompt and of the schedule: llama.cpp's
/// CPU kernels sum by rounding in an order that depends on how a prompt was
/// split into batches (what the KV cache already held) and on which answers
/// share a batch (src/llm/local/engine.rs). So the same requests, in the same
/// order, on a fresh model give the same answers, greedy and sampled, and a
/// sample's seed is its slot.
#[test]
fn greedy_is_deterministic_and_sampling_follows_the_seed() {
    if !installed("greedy_is_deterministic_and_sampling_follows_the_seed") {
        return;
    }
    let rt = runtime();
    let messages = [
        Message::system("You write SQLite queries. Answer with the query only."),
        Message::user("Table singer(name, age). How many singers are older than 30?"),
    ];
    let hot = GenParams {
        temperature: 1.2,
        max_tokens: 48,
        seed: Some(7),
        grammar: None,
    };
    let texts = |v: &[spider_bench::llm::RawCompletion]| v.iter().map(|c| c.text.clone()).collect::<Vec<_>>();
    let session = || {
        let model = load_model().unwrap();
        let greedy = rt.block_on(model.generate(&messages, &greedy(48), &[0])).unwrap();
        let sampled = rt.block_on(model.generate(&messages, &hot, &[0, 1, 2, 3])).unwrap();
        (model, greedy, sampled)
    };
    let (model, a, first) = session();
    let (_, b, again) = session();
    assert_eq!(a[0].text, b[0].text, "greedy, the same schedule twice");
    assert!(a[0].text.to_lowercase().contains("select"), "{:?}", a[0].text);
    assert!(a[0].prompt_tokens > 20 && a[0].completion_tokens > 3);
    assert_eq!(texts(&first), texts(&again), "same seed, same schedule, same samples");
    // A sample's seed is its slot: asking for slots 2 and 3 alone (what the
    // cache does when slots 0 and 1 are cached) gives other samples than
    // slots 0 and 1 (never the cached ones again) and, decoded one after
    // another, exactly the samples 2 and 3 of the whole request.
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
    if !installed("a_shared_prefix_is_reused_and_gives_the_same_answer") {
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
    if !installed(test) {
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
    if !installed(test) {
        return;
    }
    let Some(data) = common::real_spider(test) else {
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
            // And its text, byte by byte.
            for end in 1..=sql.len() {
                let tail = spider_bench::llm::repetition::degenerate_text(&sql.as_bytes()[..end]);
                assert_eq!(tail, None, "{file}:{}: the text of {sql}", line + 1);
            }
            checked += 1;
        }
    }
    assert!(checked > 8000, "{checked} gold queries");
}

/// A request alone on a fresh batched engine is decoded exactly as the
/// one-sequence engine decodes it (the same batches), and its greedy
/// samples are that one answer, decoded once.
#[test]
fn a_request_alone_and_its_greedy_samples_are_the_one_sequence_answer() {
    if !installed("a_request_alone_and_its_greedy_samples_are_the_one_sequence_answer") {
        return;
    }
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
        let single = load_with_sequences(1).unwrap();
        let batched = load_model().unwrap();
        let one = texts(rt.block_on(single.generate(&messages, &greedy(64), &[0])).unwrap());
        let same = texts(rt.block_on(batched.generate(&messages, &greedy(64), &[0])).unwrap());
        assert_eq!(one, same, "greedy, one sequence");
        let three = rt
            .block_on(batched.generate(&messages, &greedy(64), &[0, 1, 2]))
            .unwrap();
        assert_eq!(
            batched.stats.generations.load(Ordering::Relaxed),
            2,
            "three greedy samples are one answer decoded once"
        );
        assert_eq!(
            three.iter().map(|c| c.prompt_tokens > 0).collect::<Vec<_>>(),
            [true, false, false]
        );
        // The second request evaluated its prompt's last token alone (the
        // rest came from the KV cache): the first request's answer may
        // differ from it by rounding, so it is compared with a one-sequence
        // request made the same way.
        let again = texts(rt.block_on(single.generate(&messages, &greedy(64), &[0])).unwrap());
        assert_eq!(texts(three), vec![again[0].clone(); 3], "three greedy samples");
    }
}

/// Requests in flight at the same time (the questions of a run with
/// `--concurrency`, each with its own prompt) are decoded together, each
/// answer in its own sequence: with answers allowed their whole window
/// (8,000 tokens), only four fit the KV cache at once (4 x 8,192 of its
/// 32,768 cells) and the others wait for a sequence. A sampled request in
/// the mix gets its three samples. Answers decoded together may differ from
/// the one-sequence answers by rounding (src/llm/local/engine.rs: a greedy
/// near-tie can flip), so the check is that most are the same: an answer
/// read from another sequence's cells or logits would differ from all.
#[test]
fn requests_in_flight_are_decoded_together_in_their_own_sequences() {
    let test = "requests_in_flight_are_decoded_together_in_their_own_sequences";
    if !installed(test) {
        return;
    }
    let batched = load_model().unwrap();
    let single = load_with_sequences(1).unwrap();
    let schema = "CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, country TEXT, age INTEGER);\n\
                  CREATE TABLE concert (concert_id INTEGER PRIMARY KEY, singer_id INTEGER REFERENCES singer, year INTEGER);";
    let ask = |q: &str| {
        vec![
            Message::system("You write SQLite queries. Answer with the query only."),
            Message::user(format!("Database schema:\n{schema}\n\nQuestion: {q}")),
        ]
    };
    let questions: Vec<Vec<Message>> = [
        "How many singers are there?",
        "List the names of singers from France, oldest first.",
        "What is the average age of singers in each country?",
        "Which year had the most concerts?",
        "Show the name of every singer who never gave a concert.",
        "How many concerts did each singer give? Show name and count.",
    ]
    .iter()
    .map(|q| ask(q))
    .collect();
    let rt = runtime();
    let text = |r: Vec<spider_bench::llm::RawCompletion>| r[0].text.clone();
    let alone: Vec<_> = questions
        .iter()
        .map(|m| rt.block_on(single.generate(m, &greedy(8000), &[0])).unwrap())
        .collect();
    for a in &alone {
        assert!(
            a[0].completion_tokens < 200,
            "an answer of 200 tokens or more: {:?}",
            a[0].text
        );
    }
    let alone: Vec<String> = alone.into_iter().map(text).collect();
    let hot = GenParams {
        temperature: 0.8,
        max_tokens: 64,
        seed: Some(5),
        grammar: None,
    };
    for max_tokens in [200, 8000] {
        let params = greedy(max_tokens);
        let (together, sampled) = rt.block_on(async {
            let greedy = futures::future::join_all(questions.iter().map(|m| batched.generate(m, &params, &[0])));
            let sampled = batched.generate(&questions[0], &hot, &[0, 1, 2]);
            let bounded = async { tokio::join!(greedy, sampled) };
            tokio::time::timeout(std::time::Duration::from_secs(600), bounded)
                .await
                .expect("the batched engine answered within 10 minutes")
        });
        let together: Vec<String> = together.into_iter().map(|r| text(r.unwrap())).collect();
        let differ: Vec<(&String, &String)> = alone.iter().zip(&together).filter(|(a, b)| a != b).collect();
        assert!(
            differ.len() <= 2,
            "max_tokens {max_tokens}: {} of 6 answers decoded together differ from their one-sequence answer: {differ:#?}",
            differ.len()
        );
        let sampled = sampled.unwrap();
        assert_eq!(sampled.len(), 3);
        assert!(sampled.iter().all(|c| c.completion_tokens > 0));
    }
    let together = batched.stats.answers_together();
    assert!(together > 2.0, "only {together:.2} answers decoded together on average");
}

/// A request that fails on its own (here, a grammar llama.cpp refuses)
/// fails alone: the request decoded beside it is answered, and so is the
/// next one.
#[test]
fn a_request_that_fails_fails_alone() {
    if !installed("a_request_that_fails_fails_alone") {
        return;
    }
    let batched = load_model().unwrap();
    let rt = runtime();
    let messages = [
        Message::system("You write SQLite queries. Answer with the query only."),
        Message::user("Table singer(name, age). How many singers are there?"),
    ];
    let broken = GenParams {
        grammar: Some("root ::= (".into()),
        ..greedy(32)
    };
    let plain = greedy(32);
    let (good, bad) = rt.block_on(async {
        tokio::join!(
            batched.generate(&messages, &plain, &[0]),
            batched.generate(&messages, &broken, &[0])
        )
    });
    let good = good.expect("the request beside the failing one is answered");
    assert!(good[0].text.to_lowercase().contains("select"), "{:?}", good[0].text);
    let bad = bad.expect_err("a grammar llama.cpp refuses fails its request");
    assert!(bad.to_string().contains("grammar"), "{bad}");
    let next = rt.block_on(batched.generate(&messages, &greedy(32), &[0])).unwrap();
    assert!(next[0].completion_tokens > 0);
}
