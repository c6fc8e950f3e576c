//! `finetune export` on a Spider-format fixture whose dev split shares a
//! database and a question with its train split: neither gets in, the
//! retrieved examples of a prompt are never its own question or database,
//! every format reads back as the same conversations, and the validation
//! split takes whole databases.

mod common;

use serde_json::Value;
use std::path::Path;
use std::process::Command;

const DEV_QUESTION: &str = "How many purchases were placed?";

/// The mini fixture with a dev split on concert_hall (a train database
/// too) that also asks one of orders_db's train questions.
fn data(name: &str) -> std::path::PathBuf {
    let dir = common::mini_copy(name);
    let dev = serde_json::json!([
        {"db_id": "concert_hall", "question": "How many concerts are there?", "query": "SELECT count(*) FROM concert"},
        {"db_id": "concert_hall", "question": DEV_QUESTION, "query": "SELECT count(*) FROM concert"},
    ]);
    std::fs::write(dir.join("dev.json"), dev.to_string()).unwrap();
    let _ = std::fs::remove_file(dir.join("dev_gold.sql"));
    dir
}

fn export(data: &Path, out: &Path, extra: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_spider-bench"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["finetune", "export", "--data"])
        .arg(data)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&o.stderr));
    stdout
}

fn rows(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn user_text(row: &Value) -> String {
    row["messages"][1]["content"].as_str().unwrap().to_string()
}

#[test]
fn no_dev_database_or_question_gets_in_and_prompts_never_show_their_own_answer() {
    let dir = data("finetune-export");
    let out = dir.join("out/rag.jsonl");
    let said = export(&dir, &out, &["--prompt", "rag", "--val-fraction", "0"]);
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("out/rag.manifest.json")).unwrap()).unwrap();
    // 8 train questions: concert_hall's 2 are on a dev database, one
    // orders_db question is a dev question; 5 remain.
    let train = rows(&out);
    assert_eq!(train.len(), 5, "{said}");
    let left: Vec<(String, u64)> = manifest["left_out"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["reason"].as_str().unwrap().to_string(),
                l["questions"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(
        left.contains(&("its database is also a dev database".into(), 2)),
        "{left:?}"
    );
    assert!(
        left.contains(&("its question is also a dev question".into(), 1)),
        "{left:?}"
    );
    assert!(said.contains("left out: 2 questions"), "{said}");
    let all = std::fs::read_to_string(&out).unwrap();
    for text in [
        DEV_QUESTION,
        "Which stadiums hosted concerts in 2015?",
        "CREATE TABLE concert",
    ] {
        assert!(!all.contains(text), "{text:?} is in the export");
    }
    for row in &train {
        let user = user_text(row);
        let (examples, question) = user.rsplit_once("Question: ").unwrap();
        let shown: Vec<&str> = examples.split("Question: ").skip(1).collect();
        assert!(!shown.is_empty() && shown.len() <= 3, "{user}");
        for s in &shown {
            assert!(!s.starts_with(question.trim()), "its own question is shown: {user}");
        }
        // The examples are of the other database only (orders_db's
        // questions are about customers and purchases).
        let own_db_is_orders = user.contains("CREATE TABLE customer (");
        assert!(
            shown.iter().all(|s| s.contains("customers") || s.contains("purchase")) != own_db_is_orders,
            "{user}"
        );
        let answer = row["messages"][2]["content"].as_str().unwrap();
        assert!(
            answer.starts_with("```sql\nSELECT") && answer.ends_with("\n```"),
            "{answer}"
        );
    }
}

#[test]
fn formats_hold_the_same_conversations_and_validation_takes_whole_databases() {
    let dir = data("finetune-formats");
    export(&dir, &dir.join("chat.jsonl"), &["--val-fraction", "0.3"]);
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("chat.manifest.json")).unwrap()).unwrap();
    let val_dbs = manifest["val_databases"].as_array().unwrap();
    let (train, val) = (rows(&dir.join("chat.jsonl")), rows(&dir.join("chat.val.jsonl")));
    // odd_values (2 questions) or orders_db (3): one whole database.
    assert_eq!(val_dbs.len(), 1, "{manifest}");
    assert_eq!(train.len() + val.len(), 5);
    let val_has_orders = val.iter().all(|r| user_text(r).contains("CREATE TABLE customer ("));
    let train_has_orders = train.iter().any(|r| user_text(r).contains("CREATE TABLE customer ("));
    assert!(val_has_orders != train_has_orders, "a database is on both sides");
    for format in ["alpaca", "sharegpt"] {
        let out = dir.join(format!("{format}.jsonl"));
        export(&dir, &out, &["--val-fraction", "0.3", "--format", format]);
        let back: Vec<Value> = rows(&out)
            .iter()
            .map(|r| spider_bench::finetune::format::to_chat(r).unwrap())
            .collect();
        assert_eq!(back, train, "{format}");
    }
}
