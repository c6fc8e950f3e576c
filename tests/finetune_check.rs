//! `finetune check` through the binary on files with known problems: each
//! format error is named with its lines, duplicates, conflicting answers
//! and train/validation overlap are counted, tokens are counted with the
//! model's tokenizer (tiktoken here, the cookbook's per-message count), and
//! the OpenAI estimate follows the cookbook's default epochs.

mod common;

use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;

fn check(args: &[&str]) -> (bool, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_spider-bench"))
        .args(["finetune", "check"])
        .args(args)
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    )
}

fn row(question: &str, answer: &str) -> Value {
    json!({"messages": [
        {"role": "system", "content": "You write SQLite queries."},
        {"role": "user", "content": format!("CREATE TABLE singer (name text)\nQuestion: {question}")},
        {"role": "assistant", "content": format!("```sql\n{answer}\n```")},
    ]})
}

fn write(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

#[test]
fn format_errors_are_named_with_their_lines_and_fail_the_check() {
    let dir = common::scratch("finetune-check", "errors");
    let file = dir.join("bad.jsonl");
    write(
        &file,
        &[
            row("How many singers?", "SELECT count(*) FROM singer").to_string(),
            "{not json".to_string(),
            json!({"messages": [{"role": "user", "content": "q"}]}).to_string(),
            json!({"messages": [{"role": "robot", "content": "q"}, {"role": "assistant", "content": "a", "mood": 1}]})
                .to_string(),
            json!({"messages": [{"role": "user"}, {"role": "assistant", "content": ""}]}).to_string(),
            json!([1, 2]).to_string(),
        ],
    );
    let (ok, out, err) = check(&[
        file.to_str().unwrap(),
        "--model",
        "gpt-4o-mini-2024-07-18",
        "--format",
        "json",
    ]);
    assert!(!ok, "a file with format errors must fail the check\n{out}");
    assert!(err.contains("has format errors"), "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let errors = &report["train"]["format_errors"];
    let lines = |prefix: &str| -> Vec<u64> {
        errors
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .flat_map(|(_, v)| v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap()))
            .collect()
    };
    assert_eq!(lines("not_json"), [2]);
    assert_eq!(lines("example_missing_assistant_message"), [3]);
    assert_eq!(lines("unrecognized_role"), [4]);
    assert_eq!(lines("message_unrecognized_key"), [4]);
    assert_eq!(lines("message_missing_key"), [5]);
    assert_eq!(lines("missing_content"), [5]);
    assert_eq!(lines("data_type"), [6]);
    assert_eq!(report["train"]["rows"], 6);
}

#[test]
fn tokens_duplicates_overlap_and_the_openai_estimate() {
    let dir = common::scratch("finetune-check", "clean");
    let train = dir.join("t.jsonl");
    let val = dir.join("t.val.jsonl");
    let mut rows: Vec<String> = (0..20)
        .map(|i| row(&format!("Question number {i}?"), "SELECT name FROM singer").to_string())
        .collect();
    rows.push(rows[0].clone()); // a duplicate
    rows.push(row("Question number 1?", "SELECT count(*) FROM singer").to_string()); // a conflict
    write(&train, &rows);
    write(
        &val,
        &[
            row("Question number 2?", "SELECT name FROM singer").to_string(),
            row("Another question?", "SELECT 1").to_string(),
        ],
    );
    let model = "gpt-4o-mini-2024-07-18";
    let (ok, out, err) = check(&[train.to_str().unwrap(), "--model", model, "--format", "json"]);
    assert!(ok, "{out}{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (r["train"]["rows"].as_u64(), r["train"]["duplicates"].as_u64()),
        (Some(22), Some(1))
    );
    assert_eq!(r["train"]["conflicting"], 1);
    // The validation file beside it is found, and its overlap counted.
    assert_eq!(r["val"]["rows"], 2);
    assert_eq!(r["val_prompts_in_train"], 1);
    // The cookbook's count: 3 per message, its role and content, 3 more.
    let bpe = tiktoken_rs::bpe_for_model(model).unwrap();
    assert_eq!(bpe.encode_with_special_tokens("hello world").len(), 2);
    let first: Value = serde_json::from_str(&rows[0]).unwrap();
    let len = |t: &str| bpe.encode_with_special_tokens(t).len() as u64;
    let expected = 3 + first["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| 3 + len(m["role"].as_str().unwrap()) + len(m["content"].as_str().unwrap()))
        .sum::<u64>();
    assert_eq!(r["train"]["token_stats"]["min"].as_u64(), Some(expected));
    // 22 examples: the default is 100 / 22 = 4 epochs, every token billed.
    let openai = &r["openai"];
    assert_eq!(openai["epochs"], 4);
    let per_epoch = r["train"]["total_tokens"].as_u64().unwrap();
    assert_eq!(openai["billed_tokens_per_epoch"].as_u64(), Some(per_epoch));
    assert_eq!(openai["billed_tokens"].as_u64(), Some(4 * per_epoch));
    let cost = openai["cost_usd"].as_f64().unwrap();
    assert!((cost - 3.0 * 4.0 * per_epoch as f64 / 1e6).abs() < 1e-12, "{cost}");
    // The text report says the same in words.
    let (_, text, _) = check(&[train.to_str().unwrap(), "--model", model]);
    for words in [
        "22 rows (chat format)",
        "rows identical to an earlier row: 1",
        "validation prompts also in the training file: 1",
        "4 epochs",
    ] {
        assert!(text.contains(words), "{words:?} not in:\n{text}");
    }
    // A limit below the longest example counts the examples over it.
    let (_, out, _) = check(&[
        train.to_str().unwrap(),
        "--model",
        model,
        "--max-tokens",
        "10",
        "--format",
        "json",
    ]);
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["train"]["over_limit"].as_array().unwrap().len(), 22);
}
