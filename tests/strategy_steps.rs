//! Strategies as steps, end to end against a real HTTP server on
//! 127.0.0.1: `decompose` (DIN-SQL) and its compositions, the trace in
//! every record, failing steps recorded while the run goes on, and
//! strategy files that list steps and bring their own prompt template.

#[path = "common/mod.rs"]
mod common;

use common::fake_llm::{FakeLlm, Reply, Script, question_of};
use serde_json::Value;
use spider_bench::run::record::RunRecord;
use spider_bench::run::{RunOptions, run};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn scratch(name: &str) -> PathBuf {
    common::scratch("steps", name)
}

fn gold_map() -> HashMap<String, String> {
    common::mini_gold()
}

fn options(server: &FakeLlm, strategies: &[&str], dir: &Path) -> RunOptions {
    common::mini_run_options(&server.url, strategies, &dir.join("run"), &dir.join("cache.sqlite"))
}

const AVERAGE_SUBQUESTION: &str = "What is the average age of singers?";

fn system(body: &Value) -> &str {
    body["messages"][0]["content"].as_str().unwrap_or("")
}

fn user(body: &Value) -> &str {
    body["messages"][1]["content"].as_str().unwrap_or("")
}

/// The question of the last user message (classification shows solved
/// exchanges before it).
fn last_question(body: &Value) -> String {
    let last = body["messages"].as_array().unwrap().last().unwrap();
    last["content"]
        .as_str()
        .unwrap()
        .rsplit("Question: ")
        .next()
        .unwrap()
        .to_string()
}

/// A model that plays DIN-SQL's steps: links the singer table alone for
/// "How many singers", calls the average-age question nested (one
/// sub-question), writes broken SQL for "France" that self-correction
/// fixes, and the gold otherwise. `fail` picks requests to refuse (400).
fn decompose_script(fail: fn(&Value) -> bool) -> Script {
    let gold = gold_map();
    Arc::new(move |body, _| {
        if fail(body) {
            return Reply::Status(400, None);
        }
        let fenced = |s: &str| format!("Let me think.\n```sql\n{s}\n```");
        let n = body["n"].as_u64().unwrap_or(1) as usize;
        let q = question_of(body);
        if system(body).starts_with("List the tables") {
            let tables = if q.starts_with("How many singers") {
                "singer"
            } else {
                "singer\nconcert\nsinger_in_concert\nitem\ncustomer\npurchase"
            };
            return Reply::Answers(vec![tables.into()]);
        }
        if system(body).starts_with("You classify") {
            let q = last_question(body);
            let class = if q.contains("average") {
                format!("NESTED\n- {AVERAGE_SUBQUESTION}")
            } else if gold.get(&q).is_some_and(|g| g.contains("JOIN")) {
                "NON-NESTED".into()
            } else {
                "EASY".into()
            };
            return Reply::Answers(vec![class]);
        }
        if system(body).starts_with("You check") {
            // Self-correction: the query is on the user message's last line.
            let (question, sql) = user(body).rsplit_once("\nSQL: ").unwrap();
            let question = question.rsplit("Question: ").next().unwrap();
            let fixed = if sql.contains("nowhere") {
                gold[question].clone()
            } else {
                sql.to_string()
            };
            return Reply::Answers(vec![fenced(&fixed)]);
        }
        if q == AVERAGE_SUBQUESTION {
            return Reply::Answers(vec![fenced("SELECT avg(age) FROM singer")]);
        }
        let sql = gold.get(&q).cloned().unwrap_or_else(|| "SELECT 1".into());
        let first = if q.contains("France") && body["messages"].as_array().unwrap().len() == 2 {
            "SELECT nope FROM nowhere".to_string()
        } else {
            sql
        };
        Reply::Answers(vec![fenced(&first); n])
    })
}

fn record<'a>(records: &'a [RunRecord], strategy: &str, question: &str) -> &'a RunRecord {
    records
        .iter()
        .find(|r| r.strategy == strategy && r.question.contains(question))
        .unwrap_or_else(|| panic!("no record of {strategy} for {question:?}"))
}

fn steps_of(r: &RunRecord) -> Vec<&str> {
    r.trace.iter().map(|e| e.step.as_str()).collect()
}

#[test]
fn decompose_links_classifies_solves_subquestions_and_self_corrects() {
    let dir = scratch("decompose");
    let server = FakeLlm::start(decompose_script(|_| false));
    let outcome = run(&options(&server, &["decompose"], &dir)).unwrap();
    let s = &outcome.summaries[0];
    assert_eq!((s.count, s.exec_correct, s.skipped), (11, 11, 1));

    let nested = record(&outcome.records, "decompose", "average age");
    assert_eq!(
        steps_of(nested),
        [
            "schema",
            "link-tables",
            "classify",
            "subquestions",
            "prompt",
            "generate",
            "extract",
            "self-correct",
            "execute",
            "vote"
        ]
    );
    let event = |r: &RunRecord, step: &str| r.trace.iter().find(|e| e.step == step).unwrap().detail.clone();
    assert!(event(nested, "classify").contains("nested, 1 sub-questions"));
    assert!(event(nested, "subquestions").contains("SELECT avg(age) FROM singer"));
    assert_eq!(
        nested.calls, 5,
        "link, classify, one sub-question, the query, self-correction"
    );
    // Each model call's key is in the trace of the step that made it.
    let traced: Vec<&String> = nested.trace.iter().flat_map(|e| &e.cache_keys).collect();
    assert_eq!(traced, nested.cache_keys.iter().collect::<Vec<_>>());

    let bodies = server.bodies();
    // The query prompts (not the linking, classifying or checking ones).
    let query_prompt = |question: &str| {
        bodies
            .iter()
            .find(|b| system(b).starts_with("You are an expert") && user(b).ends_with(&format!("Question: {question}")))
            .unwrap()
            .clone()
    };
    // The nested question is asked with its solved sub-question.
    let main = query_prompt("Names of singers who are older than the average age.");
    assert!(
        user(&main).contains(&format!(
            "Sub-question: {AVERAGE_SUBQUESTION}\nSQL: SELECT avg(age) FROM singer"
        )),
        "{}",
        user(&main)
    );
    assert!(system(&main).contains("needs sub-queries"));
    // Linking kept only `singer` for "How many singers are there?".
    let linked = &query_prompt("How many singers are there?");
    assert!(user(linked).contains("CREATE TABLE singer"));
    assert!(!user(linked).contains("CREATE TABLE concert"), "{}", user(linked));
    assert!(system(linked).contains("single table"), "classified easy");
    assert!(
        event(
            record(&outcome.records, "decompose", "How many singers are"),
            "link-tables"
        )
        .contains("kept 1 of 3")
    );

    // Self-correction fixed the broken France query.
    let france = record(&outcome.records, "decompose", "France");
    assert_eq!(france.exec, Some(true));
    assert_eq!(france.candidates[0].step, "self-correct");
    assert!(event(france, "self-correct").contains("changed"));

    // The trace is in predictions.jsonl (for every question but the
    // skipped one, whose database is missing).
    let text = std::fs::read_to_string(dir.join("run/predictions.jsonl")).unwrap();
    assert_eq!(
        text.lines()
            .filter(|l| l.contains("\"trace\":[{\"step\":\"schema\""))
            .count(),
        11
    );
}

#[test]
fn decompose_composes_with_exec_retry_and_self_consistency() {
    let dir = scratch("decompose-plus");
    let server = FakeLlm::start(decompose_script(|_| false));
    let outcome = run(&options(
        &server,
        &["decompose+exec-retry", "decompose+self-consistency"],
        &dir,
    ))
    .unwrap();
    for s in &outcome.summaries {
        assert_eq!((s.count, s.exec_correct), (11, 11), "{}", s.strategy);
    }
    let retry = record(&outcome.records, "decompose+exec-retry", "France");
    assert_eq!(
        &steps_of(retry)[7..],
        ["self-correct", "execute", "repair", "vote"],
        "repair goes after execute, before vote"
    );
    let sc = record(&outcome.records, "decompose+self-consistency", "average age");
    assert_eq!(sc.candidates.len(), 5);
    assert!(
        sc.trace
            .iter()
            .any(|e| e.step == "vote" && e.detail.contains("wins with 5 votes"))
    );
    let config: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("run/config.json")).unwrap()).unwrap();
    let steps = &config["strategies"][1]["parameters"]["steps"];
    let generate = steps
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "generate")
        .unwrap();
    assert_eq!(
        (
            &generate["parameters"]["samples"],
            &generate["parameters"]["max_tokens"]
        ),
        (&Value::from(5), &Value::from(1024))
    );
    // The templates used are recorded whole.
    let prompt = steps
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "prompt")
        .unwrap();
    assert!(
        prompt["parameters"]["template"]["text"]
            .as_str()
            .unwrap()
            .contains("Sub-questions already solved")
    );
}

#[test]
fn a_failing_step_is_recorded_and_the_run_goes_on() {
    let dir = scratch("failing");
    // Classifying "Which countries" and the query for "oldest first" are refused.
    let server = FakeLlm::start(decompose_script(|b| {
        let q = question_of(b);
        (system(b).starts_with("You classify") && last_question(b).starts_with("Which countries"))
            || (system(b).starts_with("You are an expert") && q.contains("oldest first"))
    }));
    let outcome = run(&options(&server, &["decompose"], &dir)).unwrap();
    assert_eq!(outcome.summaries[0].exec_correct, 10);

    // A refused classification falls back to the general prompt, noted.
    let countries = record(&outcome.records, "decompose", "Which countries");
    assert_eq!(countries.exec, Some(true));
    let classify = countries.trace.iter().find(|e| e.step == "classify").unwrap();
    assert!(classify.detail.contains("classifying call failed"), "{classify:?}");

    // A refused generation fails that question at that step, in the trace.
    let oldest = record(&outcome.records, "decompose", "oldest first");
    assert_eq!((oldest.exec, oldest.pred.as_deref()), (Some(false), None));
    assert!(
        oldest.model_failure.as_deref().unwrap().starts_with("generate: "),
        "{oldest:?}"
    );
    let last = oldest.trace.last().unwrap();
    assert_eq!(last.step, "generate");
    assert!(last.error.is_some());
}

#[test]
fn a_strategy_file_lists_steps_with_its_own_prompt_template() {
    let dir = scratch("toml-steps");
    let strategies = dir.join("strategies");
    std::fs::create_dir_all(&strategies).unwrap();
    std::fs::write(
        strategies.join("terse.jinja"),
        "=== system ===\nWrite SQLite. Tables:\n{{ schema }}\n=== user ===\n{{ question }}\n",
    )
    .unwrap();
    std::fs::write(
        strategies.join("terse.toml"),
        r#"description = "my own prompt, two samples, repaired"
steps = [
    { step = "schema", sample_rows = 1 },
    { step = "prompt", template = "terse.jinja" },
    { step = "generate", samples = 2, temperature = 0.5 },
    "extract",
    "execute",
    { step = "repair", rounds = 1 },
    "vote",
]
"#,
    )
    .unwrap();
    let gold = gold_map();
    let server = FakeLlm::start(Arc::new(move |body, _| {
        let q = user(body).to_string();
        let n = body["n"].as_u64().unwrap_or(1) as usize;
        let sql = gold.get(&q).cloned().unwrap_or_else(|| "SELECT 1".into());
        Reply::Answers(vec![format!("```sql\n{sql}\n```"); n])
    }));
    let mut o = options(&server, &["terse", "terse+cot"], &dir);
    o.strategies_dir = strategies.clone();
    let outcome = run(&o).unwrap();
    assert_eq!(outcome.summaries[0].exec_correct, 11);
    let bodies = server.bodies();
    let terse = bodies
        .iter()
        .find(|b| user(b) == "How many singers are there?")
        .unwrap();
    assert!(system(terse).starts_with("Write SQLite. Tables:\nCREATE TABLE"));
    assert!(system(terse).contains("rows from singer"), "one sample row per table");
    assert_eq!(
        (terse["n"].as_u64(), terse["temperature"].as_f64()),
        (Some(2), Some(0.5))
    );
    // terse+cot: cot's template replaces the file's, cot's max_tokens joins.
    let cot = bodies
        .iter()
        .find(|b| system(b).contains("Think step by step") && user(b).ends_with("How many singers are there?"))
        .unwrap();
    assert_eq!((cot["n"].as_u64(), cot["max_tokens"].as_u64()), (Some(2), Some(1024)));
    let config = std::fs::read_to_string(dir.join("run/config.json")).unwrap();
    assert!(
        config.contains("Write SQLite. Tables:"),
        "the template text is recorded"
    );
}

#[test]
fn strategies_lists_every_rung_with_its_steps_and_the_composition_rules() {
    let dir = scratch("listing");
    std::fs::copy(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("strategies/few-shot-cot.toml"),
        dir.join("few-shot-cot.toml"),
    )
    .unwrap();
    std::fs::write(dir.join("broken.toml"), "steps = [\"generate\", \"vote\"]\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_spider-bench"))
        .args(["strategies", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    // Cells wrap over several lines: join each row's steps column.
    let mut rows: Vec<(String, String)> = Vec::new();
    for line in text.lines().filter(|l| l.contains('┆')) {
        let cells: Vec<&str> = line.trim_matches('│').split('┆').map(str::trim).collect();
        if !cells[0].is_empty() {
            rows.push((cells[0].to_string(), String::new()));
        }
        if let Some(row) = rows.last_mut() {
            row.1.push_str(cells[1]);
        }
    }
    let squeeze = |s: &str| s.replace(' ', "");
    let steps_of = |name: &str| rows.iter().find(|(n, _)| n == name).map(|(_, s)| s.clone());
    for rung in spider_bench::strategy::spec::rungs() {
        assert_eq!(
            steps_of(&rung.name).map(|s| squeeze(&s)),
            Some(squeeze(&rung.steps_line())),
            "{}:\n{text}",
            rung.name
        );
    }
    assert_eq!(
        steps_of("few-shot-cot").map(|s| squeeze(&s)),
        Some(squeeze(
            "schema -> examples(k=3, selector=\"fixed\", with_schema=true) -> prompt(template=\"cot\") -> \
             generate(max_tokens=1024) -> extract -> execute -> vote"
        ))
    );
    assert!(
        text.contains("INVALID") && text.contains("needs a `prompt` step"),
        "{text}"
    );
    assert!(text.contains("merges into the first step of that kind"));
    assert!(text.contains("schema, link-tables, classify, examples"));
}
