//! `run` end to end against a real HTTP server on 127.0.0.1: every rung,
//! repairs and votes, the cache, resuming a killed run, and secrets.

#[path = "common/mod.rs"]
mod common;

use common::fake_llm::{FakeLlm, Reply, Script, gold_answers, question_of};
use common::mini_spider;
use serde_json::Value;
use spider_bench::run::record::RunRecord;
use spider_bench::run::{RunOptions, run};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn scratch(name: &str) -> PathBuf {
    common::scratch("run", name)
}

fn gold_map() -> HashMap<String, String> {
    common::mini_gold()
}

fn options(server: &FakeLlm, strategies: &[&str], dir: &Path, cache: &Path) -> RunOptions {
    common::mini_run_options(&server.url, strategies, dir, cache)
}

const RUNGS: [&str; 6] = [
    "zero-shot",
    "few-shot",
    "cot",
    "exec-retry",
    "self-consistency",
    "cot+self-consistency",
];

#[test]
fn a_server_that_answers_the_gold_makes_every_rung_score_100_percent() {
    let dir = scratch("gold");
    let server = FakeLlm::start(gold_answers(gold_map()));
    let outcome = run(&options(&server, &RUNGS, &dir.join("run"), &dir.join("cache.sqlite"))).unwrap();
    assert_eq!(outcome.summaries.len(), RUNGS.len());
    for s in &outcome.summaries {
        assert_eq!((s.count, s.exec_correct, s.skipped), (11, 11, 1), "{}", s.strategy);
        assert!(
            s.tokens_in > 0 && s.cost_usd > 0.0,
            "{}: usage not accounted",
            s.strategy
        );
    }
    // Self-consistency asked for 5 samples per question.
    let sc = outcome
        .records
        .iter()
        .find(|r| r.strategy == "self-consistency" && r.id == 0)
        .unwrap();
    assert_eq!((sc.calls, sc.candidates.len()), (5, 5));
    // Few-shot prompts hold train examples, zero-shot prompts do not.
    let bodies = server.bodies();
    let has_examples = |b: &Value| {
        b["messages"][1]["content"]
            .as_str()
            .unwrap()
            .contains("Examples of questions and their SQL")
    };
    assert!(bodies.iter().any(has_examples));
    assert!(!bodies.iter().all(has_examples));
    // The runner writes the configuration and the records; the summary
    // files are the command's (see the report test below).
    for f in ["config.json", "predictions.jsonl"] {
        assert!(dir.join("run").join(f).is_file(), "{f} missing");
    }
}

#[test]
fn exec_retry_repairs_and_self_consistency_votes() {
    let dir = scratch("repair");
    let gold = gold_map();
    // First answers are broken SQL; answers to a repair request are the gold.
    // With n samples, the first sample is wrong-but-valid and the rest gold.
    let script: Script = Arc::new(move |body, _| {
        let q = question_of(body);
        let sql = gold.get(&q).cloned().unwrap_or_default();
        let msgs = body["messages"].as_array().unwrap();
        let n = body["n"].as_u64().unwrap_or(1) as usize;
        if msgs.len() > 2 {
            return Reply::Answers(vec![format!("```sql\n{sql}\n```")]);
        }
        if n > 1 {
            let mut v = vec!["```sql\nSELECT 42\n```".to_string()];
            v.extend(std::iter::repeat_n(format!("```sql\n{sql}\n```"), n - 1));
            return Reply::Answers(v);
        }
        Reply::Answers(vec!["```sql\nSELECT nope FROM nowhere\n```".into()])
    });
    let server = FakeLlm::start(script);
    let outcome = run(&options(
        &server,
        &["zero-shot", "exec-retry", "self-consistency"],
        &dir.join("run"),
        &dir.join("c.sqlite"),
    ))
    .unwrap();
    let by = |name: &str| outcome.summaries.iter().find(|s| s.strategy == name).unwrap().clone();
    assert_eq!(by("zero-shot").exec_correct, 0);
    assert_eq!(by("zero-shot").exec_errors, 11);
    assert_eq!(by("exec-retry").exec_correct, 11);
    assert_eq!(by("self-consistency").exec_correct, 11);
    let r = outcome
        .records
        .iter()
        .find(|r| r.strategy == "exec-retry" && r.id == 0)
        .unwrap();
    assert_eq!((r.calls, r.candidates[0].repairs), (2, 1));
}

#[test]
fn a_second_run_is_served_from_the_cache_with_identical_results() {
    let dir = scratch("cache");
    let server = FakeLlm::start(gold_answers(gold_map()));
    let first = run(&options(
        &server,
        &["zero-shot", "self-consistency"],
        &dir.join("a"),
        &dir.join("c.sqlite"),
    ))
    .unwrap();
    let calls = server.calls();
    assert!(calls > 0);
    let mut replay = options(
        &server,
        &["zero-shot", "self-consistency"],
        &dir.join("b"),
        &dir.join("c.sqlite"),
    );
    replay.cache.cache_only = true;
    let second = run(&replay).unwrap();
    assert_eq!(server.calls(), calls, "the replay made HTTP calls");
    assert_eq!(second.backend_calls, 0);
    assert_eq!(first.records, second.records);
    assert_eq!(
        std::fs::read(dir.join("a/predictions.jsonl")).unwrap(),
        std::fs::read(dir.join("b/predictions.jsonl")).unwrap()
    );
    // --cache-only with an empty cache fails fast, naming the problem.
    let mut cold = options(&server, &["zero-shot"], &dir.join("c"), &dir.join("empty.sqlite"));
    cold.cache.cache_only = true;
    let err = format!("{:#}", run(&cold).err().unwrap());
    assert!(err.contains("cache miss"), "{err}");
}

#[test]
fn a_killed_run_resumes_without_repeating_finished_examples() {
    let dir = scratch("resume");
    let gold = gold_map();
    let slow: Script = {
        let inner = gold_answers(gold);
        Arc::new(move |b, n| Reply::Slow(std::time::Duration::from_millis(150), Box::new(inner(b, n))))
    };
    let server = FakeLlm::start(slow);
    let out = dir.join("run");
    let args = |extra: &[&str]| {
        let mut a: Vec<String> = [
            "run",
            "--data",
            mini_spider().to_str().unwrap(),
            "--strategy",
            "zero-shot,cot",
            "--model",
            "gpt-4o-mini",
            "--base-url",
            &server.url,
            "--api-key-env",
            "SPIDER_BENCH_TEST_KEY",
            "--out",
            out.to_str().unwrap(),
            "--cache",
            dir.join("c.sqlite").to_str().unwrap(),
            "--concurrency",
            "1",
            "--quiet",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_spider-bench"))
        .args(args(&[]))
        .spawn()
        .unwrap();
    let preds = out.join("predictions.jsonl");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::fs::read_to_string(&preds).map(|t| t.lines().count()).unwrap_or(0) < 5 {
        assert!(std::time::Instant::now() < deadline, "the run did not progress");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before: Vec<RunRecord> = std::fs::read_to_string(&preds)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        before.len() >= 5 && before.len() < 24,
        "{} records before the kill",
        before.len()
    );
    let calls_before = server.calls();
    // Without --resume the folder is refused.
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_spider-bench"))
        .args(args(&[]))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--resume"));
    let resumed = std::process::Command::new(env!("CARGO_BIN_EXE_spider-bench"))
        .args(args(&["--resume"]))
        .output()
        .unwrap();
    assert!(resumed.status.success(), "{}", String::from_utf8_lossy(&resumed.stderr));
    let after: Vec<RunRecord> = std::fs::read_to_string(&preds)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(after.len(), 24);
    let keys: std::collections::HashSet<(String, usize)> = after.iter().map(|r| (r.strategy.clone(), r.id)).collect();
    assert_eq!(keys.len(), 24, "duplicate records");
    for r in &before {
        assert!(after.contains(r), "a finished record changed: {} #{}", r.strategy, r.id);
    }
    // Only unfinished scorable examples were asked (one request each, plus at
    // most one answered by the killed process but not yet recorded).
    let new_calls = server.calls() - calls_before;
    let remaining = after
        .iter()
        .filter(|r| !before.contains(r) && r.status != spider_bench::eval::judge::Status::Skipped)
        .count();
    assert!(
        new_calls <= remaining,
        "{new_calls} calls for {remaining} remaining examples"
    );
    assert!(String::from_utf8_lossy(&resumed.stdout).contains("zero-shot"));
}

#[test]
fn the_api_key_never_reaches_a_file_or_the_output() {
    let dir = scratch("secret");
    let secret = "sk-live-SECRET-0123456789";
    let server = FakeLlm::start(gold_answers(gold_map()));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_spider-bench"))
        .args([
            "run",
            "--data",
            mini_spider().to_str().unwrap(),
            "--strategy",
            "zero-shot,exec-retry",
            "--model",
            "m",
            "--base-url",
            &server.url,
            "--api-key-env",
            "MY_KEY",
            "--out",
            dir.join("run").to_str().unwrap(),
            "--cache",
            dir.join("c.sqlite").to_str().unwrap(),
            "--quiet",
        ])
        .env("MY_KEY", secret)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        server
            .auth_headers()
            .iter()
            .all(|h| h.as_deref() == Some(&format!("Bearer {secret}")[..]))
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains(secret));
    for f in common::hash_tree(&dir).keys() {
        let bytes = std::fs::read(f).unwrap();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "the key is in {}",
            f.display()
        );
    }
    let config = std::fs::read_to_string(dir.join("run/config.json")).unwrap();
    assert!(config.contains("\"api_key_env\": \"MY_KEY\""));
}

#[test]
fn samples_are_stratified_and_report_reprints_the_table() {
    let dir = scratch("sample");
    let server = FakeLlm::start(gold_answers(gold_map()));
    let mut o = options(&server, &["zero-shot"], &dir.join("run"), &dir.join("c.sqlite"));
    o.selection.sample = Some(4);
    o.selection.seed = 3;
    let outcome = run(&o).unwrap();
    assert_eq!(outcome.records.len(), 4);
    assert!(outcome.records.iter().all(|r| r.db_id != "lost_db"));
    let levels: std::collections::HashSet<_> = outcome.records.iter().map(|r| r.hardness).collect();
    assert!(
        levels.len() >= 2,
        "a 4-question sample of a mixed set spans levels: {levels:?}"
    );
    let report = std::process::Command::new(env!("CARGO_BIN_EXE_spider-bench"))
        .args(["report", dir.join("run").to_str().unwrap(), "--format", "csv"])
        .output()
        .unwrap();
    let csv = String::from_utf8_lossy(&report.stdout);
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header = reader.headers().unwrap().clone();
    let row = reader.records().next().unwrap().unwrap();
    let field = |name: &str| &row[header.iter().position(|h| h == name).unwrap()];
    assert_eq!(
        (field("strategy"), field("n"), field("ex_pct"), field("ex_interval")),
        ("zero-shot", "4", "100", "wilson"),
        "{csv}"
    );
    // Wilson's 95% interval for 4 of 4: [0.51011, 1] (Wilson's formula with
    // z = NormalDist().inv_cdf(0.975), in Python's standard library).
    assert_eq!(field("ex_low_pct"), "51.0109", "{csv}");
}

#[test]
fn the_ladder_toml_strategies_and_rust_strategies_run_by_name() {
    let dir = scratch("names");
    let gold = gold_map();
    let answer = gold_answers(gold.clone());
    // schema-link asks for tables first: answer with every table name.
    let script: Script = Arc::new(move |b, n| {
        if b["messages"][0]["content"]
            .as_str()
            .unwrap_or("")
            .starts_with("List the tables")
        {
            Reply::Answers(vec![
                "singer\nconcert\nsinger_in_concert\nitem\ncustomer\npurchase".into(),
            ])
        } else {
            answer(b, n)
        }
    });
    let server = FakeLlm::start(script);
    let outcome = run(&options(
        &server,
        &["ladder-prompting", "zero-shot-rows", "schema-link"],
        &dir.join("run"),
        &dir.join("c.sqlite"),
    ))
    .unwrap();
    let names: Vec<&str> = outcome.summaries.iter().map(|s| s.strategy.as_str()).collect();
    let ladder = [
        "zero-shot",
        "few-shot",
        "rag-question",
        "rag-hyde",
        "rag-difficulty",
        "cot",
        "exec-retry",
        "self-consistency",
        "best-prompting",
    ];
    assert_eq!(names, [&ladder[..], &["zero-shot-rows", "schema-link"]].concat());
    assert!(
        outcome.summaries.iter().all(|s| s.exec_correct == 11),
        "{:?}",
        outcome
            .summaries
            .iter()
            .map(|s| (&s.strategy, s.exec_correct))
            .collect::<Vec<_>>()
    );
    let rows_prompt = server.bodies().into_iter().find(|b| {
        b["messages"][1]["content"]
            .as_str()
            .unwrap()
            .contains("rows from singer")
    });
    assert!(rows_prompt.is_some(), "zero-shot-rows shows sample rows");
    let config: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("run/config.json")).unwrap()).unwrap();
    let first_step = &config["strategies"][9]["parameters"]["steps"][0];
    assert_eq!(
        (&first_step["step"], &first_step["parameters"]["sample_rows"]),
        (&Value::from("schema"), &Value::from(3))
    );
}

#[test]
fn retrieval_rungs_run_end_to_end_and_count_their_preliminary_calls() {
    let dir = scratch("rag");
    let server = FakeLlm::start(gold_answers(gold_map()));
    let rungs = [
        "rag-random",
        "rag-question",
        "rag-masked-question",
        "rag-hyde",
        "rag-difficulty",
        "rag-hyde-difficulty",
        "rag-dail",
        "best-prompting",
    ];
    let outcome = run(&options(&server, &rungs, &dir.join("run"), &dir.join("c.sqlite"))).unwrap();
    for s in &outcome.summaries {
        assert_eq!((s.count, s.exec_correct), (11, 11), "{}", s.strategy);
    }
    let calls = |name: &str| {
        outcome
            .records
            .iter()
            .find(|r| r.strategy == name && r.id == 0)
            .unwrap()
            .calls
    };
    assert_eq!(calls("rag-question"), 1);
    assert_eq!(calls("rag-hyde"), 2, "a zero-shot hypothetical answer, then the answer");
    assert_eq!(calls("best-prompting"), 6, "one hypothetical answer and five samples");
    // The prompts carry train examples (the mini pool has 8).
    let bodies = server.bodies();
    assert!(
        bodies
            .iter()
            .filter(|b| b["messages"][1]["content"]
                .as_str()
                .unwrap()
                .contains("Examples of questions and their SQL"))
            .count()
            > 50
    );
}

#[test]
fn embedding_similarity_goes_through_the_api_and_is_reused() {
    let dir = scratch("embed");
    std::fs::write(
        dir.join("rag-embedded.toml"),
        "description = \"question similarity by embeddings\"\nextends = \"rag-question\"\n[examples]\nsimilarity = \"openai:emb-model\"\n",
    )
    .unwrap();
    let server = FakeLlm::start(gold_answers(gold_map()));
    let mut o = options(&server, &["rag-embedded"], &dir.join("a"), &dir.join("cache/c.sqlite"));
    o.strategies_dir = dir.clone();
    let first = run(&o).unwrap();
    assert_eq!(first.summaries[0].exec_correct, 11);
    let embedding_calls = server.embedding_calls();
    assert!(embedding_calls > 0, "the embeddings API was not used");
    // Pool vectors were stored once, beside the cache, with the model's identity.
    let stored: Vec<_> = std::fs::read_dir(dir.join("cache/embeddings")).unwrap().collect();
    assert_eq!(stored.len(), 2, "question and masked-question vectors");
    // Embedding calls are accounted like chat calls.
    let r = &first.records[0];
    assert_eq!(
        r.calls, 3,
        "two embeddings (question, masked question) and one chat call"
    );
    // A second run embeds nothing: pool vectors from disk, questions from the cache.
    let mut again = o.clone();
    again.out = Some(dir.join("b"));
    let second = run(&again).unwrap();
    assert_eq!(server.embedding_calls(), embedding_calls);
    assert_eq!(first.records, second.records);
}

#[test]
fn a_damaged_database_is_skipped_with_the_reason_and_never_asked_about() {
    let dir = scratch("damaged");
    let data = common::mini_copy("run-damaged");
    let file = data.join("database/concert_hall/concert_hall.sqlite");
    common::damage(&file, "truncated");
    let server = FakeLlm::start(gold_answers(gold_map()));
    let mut o = options(&server, &["zero-shot"], &dir.join("run"), &dir.join("c.sqlite"));
    o.data = Some(data);
    let outcome = run(&o).unwrap();
    let s = &outcome.summaries[0];
    // odd_values and orders_db are scored; concert_hall's 8 and lost_db are not.
    assert_eq!((s.count, s.exec_correct, s.skipped), (3, 3, 9));
    let ch: Vec<_> = outcome.records.iter().filter(|r| r.db_id == "concert_hall").collect();
    assert_eq!(ch.len(), 8);
    for r in ch {
        assert_eq!(r.status, spider_bench::eval::judge::Status::Skipped);
        let why = r.error.as_deref().unwrap();
        assert!(
            why.contains(&format!("database file {} is damaged: truncated", file.display())),
            "{why}"
        );
    }
    assert_eq!(server.calls(), 3, "only the scorable questions reach the model");
}

/// A strategy file's `model = ...` binds the rung to that model: one run
/// puts rungs on two models in one table, each request names its rung's
/// model, config.json records the bound model, and resuming with another
/// binding is refused as another run.
#[test]
fn a_rung_bound_to_a_model_runs_on_it_beside_the_run_model() {
    let dir = scratch("bound");
    let strategies = dir.join("strategies");
    std::fs::create_dir_all(&strategies).unwrap();
    let bound = "extends = \"zero-shot\"\ndescription = \"zero-shot on the tuned model\"\nmodel = \"tuned-model\"\n";
    std::fs::write(strategies.join("tuned.toml"), bound).unwrap();
    let server = FakeLlm::start(gold_answers(gold_map()));
    let mut o = options(
        &server,
        &["zero-shot", "tuned"],
        &dir.join("run"),
        &dir.join("c.sqlite"),
    );
    o.strategies_dir = strategies.clone();
    let outcome = run(&o).unwrap();
    let names: Vec<&str> = outcome.summaries.iter().map(|s| s.strategy.as_str()).collect();
    assert_eq!(names, ["zero-shot", "tuned"]);
    assert!(outcome.summaries.iter().all(|s| s.exec_correct == 11));
    // 11 scorable questions per rung, each request naming its rung's model.
    let models: Vec<String> = server
        .bodies()
        .iter()
        .map(|b| b["model"].as_str().unwrap().to_string())
        .collect();
    let count = |m: &str| models.iter().filter(|x| *x == m).count();
    assert_eq!((count("gpt-4o-mini"), count("tuned-model"), models.len()), (11, 11, 22));
    let config: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("run/config.json")).unwrap()).unwrap();
    assert_eq!(config["model"]["model"], "gpt-4o-mini");
    assert!(config["strategies"][0].get("model").is_none(), "{config}");
    assert_eq!(config["strategies"][1]["model"]["model"], "tuned-model");
    // Bound to another model, the folder is another run's.
    std::fs::write(
        strategies.join("tuned.toml"),
        bound.replace("tuned-model", "other-model"),
    )
    .unwrap();
    o.resume = true;
    let e = run(&o).err().expect("another binding is another run");
    assert!(
        format!("{e:#}").contains("strategy tuned ran on tuned-model, now other-model"),
        "{e:#}"
    );
    // A composition of parts bound to two models is refused.
    std::fs::write(
        strategies.join("other.toml"),
        bound.replace("tuned-model", "third-model"),
    )
    .unwrap();
    let mut o2 = options(&server, &["tuned+other"], &dir.join("run2"), &dir.join("c.sqlite"));
    o2.strategies_dir = strategies;
    let e = run(&o2).err().expect("two models in one strategy");
    assert!(format!("{e:#}").contains("a strategy runs on one model"), "{e:#}");
}
