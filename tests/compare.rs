//! `spider-bench compare A B`, run as a user runs it: on run folders made
//! against a loopback fake model on the mini fixture (two strategies that
//! fail on different questions), a published results folder made from one,
//! and prediction files in both formats, adversarial SQL included.

#[path = "common/mod.rs"]
mod common;

use common::fake_llm::{FakeLlm, Reply, Script, question_of};
use common::{hash_tree, mini_copy, mini_gold, mini_run_command, mini_spider};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_spider-bench"));
    c.env_remove("SPIDER_DATA");
    c
}

/// Runs `spider-bench compare ARGS`: (success, stdout, stderr).
fn compare(args: &[&str]) -> (bool, String, String) {
    let o = bin().arg("compare").args(args).output().unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `compare ARGS --format json`, which must succeed.
fn compare_json(args: &[&str]) -> Value {
    let (ok, out, err) = compare(&[args, &["--format", "json"]].concat());
    assert!(ok, "compare {args:?} failed: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn ids(direction: &Value) -> Vec<u64> {
    direction["questions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["id"].as_u64().unwrap())
        .collect()
}

fn counts(c: &Value) -> [u64; 5] {
    [
        c["a_right_b_wrong"]["count"].as_u64().unwrap(),
        c["b_right_a_wrong"]["count"].as_u64().unwrap(),
        c["shared"].as_u64().unwrap(),
        c["both_right"].as_u64().unwrap(),
        c["both_wrong"].as_u64().unwrap(),
    ]
}

fn question(c: &Value, id: u64) -> Value {
    ["a_right_b_wrong", "b_right_a_wrong"]
        .iter()
        .flat_map(|d| c[d]["questions"].as_array().unwrap().clone())
        .find(|q| q["id"] == id)
        .unwrap_or_else(|| panic!("question {id} not shown: {c:#}"))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The mini dev questions (index -> text), for the scripted wrong answers.
fn dev_questions() -> Vec<String> {
    let dev: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(mini_spider().join("dev.json")).unwrap()).unwrap();
    dev.iter()
        .map(|e| e["question"].as_str().unwrap().to_string())
        .collect()
}

/// zero-shot's wrong answers, by question index: 0 and 3 wrong rows, 7 an
/// SQL error, 5 wrong (cot gets 5 wrong too).
const ZERO_SHOT_WRONG: &[(usize, &str)] = &[
    (0, "SELECT count(*) FROM concert"),
    (3, "SELECT name, age FROM singer ORDER BY age ASC"),
    (5, "SELECT title FROM concert"),
    (7, "SELECT nme FROM singer"),
];
/// cot's wrong answers: 1, 10 and 5.
const COT_WRONG: &[(usize, &str)] = &[
    (1, "SELECT name FROM singer WHERE country = 'Germany'"),
    (5, "SELECT stadium FROM concert"),
    (10, "SELECT customer_id FROM purchase"),
];

/// The gold for every question, except the wrong answers above (cot is
/// told apart by its max_tokens of 1024).
fn two_strategy_script() -> Script {
    let gold = mini_gold();
    let questions = dev_questions();
    let wrong = |list: &[(usize, &str)]| -> HashMap<String, String> {
        list.iter()
            .map(|(i, sql)| (questions[*i].clone(), sql.to_string()))
            .collect()
    };
    let (zero, cot) = (wrong(ZERO_SHOT_WRONG), wrong(COT_WRONG));
    Arc::new(move |body, _| {
        let q = question_of(body);
        let wrong = if body["max_tokens"] == 1024 { &cot } else { &zero };
        let sql = wrong.get(&q).or(gold.get(&q)).cloned().unwrap_or_default();
        Reply::Answers(vec![format!("```sql\n{sql}\n```")])
    })
}

/// A run folder with zero-shot and cot on the mini fixture, made once.
fn two_strategy_run() -> PathBuf {
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = common::scratch("compare", "run");
        let server = FakeLlm::start(two_strategy_script());
        let o = mini_run_command(&server.url, "zero-shot,cot", &dir, &["--concurrency", "2"])
            .env("SPIDER_BENCH_TEST_KEY", "test")
            .output()
            .unwrap();
        assert!(o.status.success(), "run failed: {}", String::from_utf8_lossy(&o.stderr));
        dir.join("run")
    })
    .clone()
}

fn mini() -> String {
    s(&mini_spider()).to_string()
}

#[test]
fn two_strategies_of_one_run_split_into_both_directions_with_queries_gold_and_rows() {
    let run = two_strategy_run();
    let (a, b) = (format!("{}:zero-shot", s(&run)), format!("{}:cot", s(&run)));
    let c = compare_json(&[&a, &b, "--data", &mini()]);
    // A = zero-shot, B = cot: 11 scored questions (lost_db is skipped).
    assert_eq!(ids(&c["a_right_b_wrong"]), [1, 10]);
    assert_eq!(ids(&c["b_right_a_wrong"]), [0, 3, 7]);
    assert_eq!(counts(&c), [2, 3, 11, 5, 1]);
    assert_eq!(c["scored_by_neither"], 1);
    assert_eq!(c["scored_by_a_only"], Value::Array(vec![]));
    let p = c["mcnemar_p"].as_f64().unwrap();
    assert!((p - 1.0).abs() < 1e-12, "McNemar exact p of 2 vs 3 is 1: {p}");
    assert_eq!(
        (c["a"]["label"].as_str(), c["b"]["strategy"].as_str()),
        (Some("zero-shot (run)"), Some("cot"))
    );
    assert_eq!(
        (c["a"]["scored"].as_u64(), c["a"]["correct"].as_u64()),
        (Some(11), Some(7))
    );

    // Question 1: the question, database, hardness, both queries, gold, rows.
    let q = question(&c, 1);
    assert_eq!(q["question"], "List the names of singers from France.");
    assert_eq!(q["db_id"], "concert_hall");
    assert!(q["hardness"].is_string());
    assert_eq!(q["gold"], "SELECT name FROM singer WHERE country = 'France'");
    assert_eq!(q["a"]["sql"], "SELECT name FROM singer WHERE country = 'France'");
    assert_eq!(q["a"]["status"], "correct");
    assert_eq!(q["b"]["sql"], "SELECT name FROM singer WHERE country = 'Germany'");
    assert_eq!(q["b"]["status"], "wrong");
    let france = serde_json::json!([["Ada Vale"], ["Cy Moreau"]]);
    assert_eq!(q["rows"]["gold"]["rows"], france);
    assert_eq!(q["rows"]["a"]["rows"], france);
    assert_eq!(
        (q["rows"]["b"]["rows"].clone(), q["rows"]["b"]["total"].as_u64()),
        (serde_json::json!([]), Some(0))
    );
    // Question 7: A's SQL fails; its error is there, in the status and the rows.
    let q = question(&c, 7);
    assert_eq!(q["a"]["status"], "exec_error");
    assert!(q["a"]["error"].as_str().unwrap().contains("nme"), "{q:#}");
    assert!(q["rows"]["a"]["error"].as_str().unwrap().contains("nme"), "{q:#}");
    // --rows caps the preview; the total stays.
    let c2 = compare_json(&[&a, &b, "--data", &mini(), "--rows", "1"]);
    let q3 = question(&c2, 3);
    assert_eq!(q3["rows"]["gold"]["rows"].as_array().unwrap().len(), 1);
    assert_eq!(q3["rows"]["gold"]["total"], 6);
    assert_eq!(c2["preview_rows"], 1);

    // The terminal form: the header line, then each question as a block.
    let (ok, out, err) = compare(&[&a, &b, "--data", &mini()]);
    assert!(ok, "{err}");
    assert!(
        out.contains("A right, B wrong: 2 · B right, A wrong: 3 · shared 11 · McNemar p=1.00"),
        "{out}"
    );
    assert!(
        out.contains("both right: 5 · both wrong: 1 · scored by A only: 0 · by B only: 0 · by neither: 1"),
        "{out}"
    );
    assert!(
        out.contains("#1 · concert_hall ·") && out.contains("#10 · orders_db ·"),
        "{out}"
    );
    assert!(
        out.contains("question     List the names of singers from France."),
        "{out}"
    );
    assert!(
        out.contains("B wrong      SELECT name FROM singer WHERE country = 'Germany'"),
        "{out}"
    );
    assert!(out.contains("Ada Vale") && out.contains("gold: 2 rows"), "{out}");
    assert!(out.contains("A exec_error") && out.contains("error      "), "{out}");
}

#[test]
fn filters_by_hardness_and_database_and_the_limit_keeps_counts_whole() {
    let run = two_strategy_run();
    let (a, b) = (format!("{}:zero-shot", s(&run)), format!("{}:cot", s(&run)));
    let c = compare_json(&[&a, &b, "--data", &mini(), "--db", "orders_db"]);
    assert_eq!(ids(&c["a_right_b_wrong"]), [10]);
    assert_eq!(ids(&c["b_right_a_wrong"]), Vec::<u64>::new());
    assert_eq!(counts(&c), [1, 0, 2, 1, 0]);
    assert_eq!(c["filters"]["db"], serde_json::json!(["orders_db"]));
    assert_eq!(c["a"]["scored"], 2);

    // Each hardness level alone: the levels partition the questions.
    let all = compare_json(&[&a, &b, "--data", &mini(), "--rows", "0"]);
    let hardness_of = |id: u64| question(&all, id)["hardness"].as_str().unwrap().to_string();
    let mut seen = [0u64; 5];
    for level in ["easy", "medium", "hard", "extra"] {
        let c = compare_json(&[&a, &b, "--data", &mini(), "--rows", "0", "--hardness", level]);
        assert_eq!(c["filters"]["hardness"], serde_json::json!([level]));
        for d in ["a_right_b_wrong", "b_right_a_wrong"] {
            for id in ids(&c[d]) {
                assert_eq!(hardness_of(id), level, "question {id} under --hardness {level}");
            }
        }
        for (s, n) in seen.iter_mut().zip(counts(&c)) {
            *s += n;
        }
    }
    assert_eq!(seen, counts(&all), "the four levels add up to the whole");
    // Two levels and a database at once.
    let h1 = hardness_of(1);
    let h0 = hardness_of(0);
    let c = compare_json(&[
        &a,
        &b,
        "--data",
        &mini(),
        "--hardness",
        &h1,
        "--hardness",
        &h0,
        "--db",
        "concert_hall",
        "--db",
        "odd_values",
    ]);
    assert!(ids(&c["a_right_b_wrong"]).contains(&1) && ids(&c["b_right_a_wrong"]).contains(&0));
    assert!(!ids(&c["a_right_b_wrong"]).contains(&10), "orders_db is filtered out");
    let (ok, out, _) = compare(&[&a, &b, "--data", &mini(), "--db", "orders_db"]);
    assert!(ok && out.contains("filters: db orders_db"), "{out}");
    let (ok, _, err) = compare(&[&a, &b, "--hardness", "impossible"]);
    assert!(!ok && err.contains("use easy, medium, hard or extra"), "{err}");

    // --limit: one question per direction shown, the counts whole.
    let c = compare_json(&[&a, &b, "--data", &mini(), "--limit", "1"]);
    assert_eq!(ids(&c["b_right_a_wrong"]), [0]);
    assert_eq!(
        (
            c["b_right_a_wrong"]["count"].as_u64(),
            c["b_right_a_wrong"]["left_out"].as_u64()
        ),
        (Some(3), Some(2))
    );
    let (_, out, _) = compare(&[&a, &b, "--data", &mini(), "--limit", "1"]);
    assert!(out.contains("… 2 more B right, A wrong left out (--limit 1"), "{out}");
}

#[test]
fn strategies_are_named_and_an_unknown_one_lists_the_run_s() {
    let run = two_strategy_run();
    let (ok, _, err) = compare(&[&format!("{}:nope", s(&run)), &format!("{}:cot", s(&run))]);
    assert!(!ok);
    assert!(
        err.contains("has no strategy \"nope\"") && err.contains("its strategies: zero-shot, cot"),
        "{err}"
    );
    let (ok, _, err) = compare(&[s(&run), &format!("{}:cot", s(&run))]);
    assert!(
        !ok && err.contains("has 2 strategies (zero-shot, cot); name one"),
        "{err}"
    );
    let (ok, _, err) = compare(&["/no/such/run:zero-shot", s(&run)]);
    assert!(
        !ok && err.contains("/no/such/run:zero-shot: no such file or folder"),
        "{err}"
    );
}

#[test]
fn a_published_results_folder_gets_its_questions_and_rows_from_the_data_or_says_why_not() {
    // A published folder: config.json and verdicts.jsonl without questions and gold.
    let run = two_strategy_run();
    let published = common::scratch("compare", "published");
    std::fs::copy(run.join("config.json"), published.join("config.json")).unwrap();
    let mut verdicts = String::new();
    for line in std::fs::read_to_string(run.join("predictions.jsonl")).unwrap().lines() {
        let mut v: Value = serde_json::from_str(line).unwrap();
        for k in ["question", "gold", "cache_keys", "candidates", "trace", "v"] {
            v.as_object_mut().unwrap().remove(k);
        }
        verdicts.push_str(&format!("{v}\n"));
    }
    std::fs::write(published.join("verdicts.jsonl"), verdicts).unwrap();
    let (a, b) = (format!("{}:zero-shot", s(&published)), format!("{}:cot", s(&published)));
    let c = compare_json(&[&a, &b, "--data", &mini()]);
    assert_eq!(counts(&c), [2, 3, 11, 5, 1]);
    let q = question(&c, 1);
    assert_eq!(q["question"], "List the names of singers from France.");
    assert_eq!(q["gold"], "SELECT name FROM singer WHERE country = 'France'");
    assert_eq!(
        q["rows"]["gold"]["rows"],
        serde_json::json!([["Ada Vale"], ["Cy Moreau"]])
    );

    // Without the data folder: the same counts, and rows unavailable with the reason.
    let nowhere = common::scratch("compare", "no-data");
    let c = compare_json(&[&a, &b, "--data", s(&nowhere)]);
    assert_eq!(counts(&c), [2, 3, 11, 5, 1]);
    let q = question(&c, 1);
    assert_eq!(q["question"], "");
    let why = q["rows"]["a"]["error"].as_str().unwrap();
    assert!(
        why.contains("rows unavailable") && why.contains("not a Spider data folder"),
        "{why}"
    );
    let (ok, out, err) = compare(&[&a, &b, "--data", s(&nowhere)]);
    assert!(ok, "{err}");
    assert!(
        out.contains("give --data to read it from the split") && out.contains("rows unavailable"),
        "{out}"
    );
    assert!(err.contains("published verdicts carry no questions or gold"), "{err}");
}

fn gold_lines() -> Vec<String> {
    std::fs::read_to_string(mini_spider().join("dev_gold.sql"))
        .unwrap()
        .lines()
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect()
}

/// A text file: the gold except question 2 and 8.
fn text_predictions(dir: &Path) -> PathBuf {
    let mut lines = gold_lines();
    lines[2] = "SELECT name FROM singer".into();
    lines[8] = "SELECT count(*) FROM item".into();
    let path = dir.join("a.sql");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

/// A JSONL file of questions 0-9: the gold except 0 (wrong), 2 (DROP
/// TABLE) and 4 (a read, then a DELETE).
fn jsonl_predictions(dir: &Path) -> PathBuf {
    let mut lines = gold_lines();
    lines[0] = "SELECT count(*) FROM concert".into();
    lines[2] = "DROP TABLE singer".into();
    lines[4] = "SELECT name FROM singer; DELETE FROM singer".into();
    let mut out = String::new();
    for (id, sql) in lines.iter().enumerate().take(10) {
        out.push_str(&format!("{}\n", serde_json::json!({"id": id, "sql": sql})));
    }
    let path = dir.join("b.jsonl");
    std::fs::write(&path, out).unwrap();
    path
}

#[test]
fn two_prediction_files_and_adversarial_sql_leave_the_data_unchanged() {
    let data = mini_copy("compare-files");
    let dir = common::scratch("compare", "files");
    let (a, b) = (text_predictions(&dir), jsonl_predictions(&dir));
    let before = hash_tree(&data);
    let c = compare_json(&[s(&a), s(&b), "--data", s(&data)]);
    assert_eq!(hash_tree(&data), before, "a prediction changed the data folder");
    // A (text): wrong on 2 and 8. B (JSONL, 0-9): wrong on 0, 2 and 4.
    assert_eq!(ids(&c["a_right_b_wrong"]), [0, 4]);
    assert_eq!(ids(&c["b_right_a_wrong"]), [8]);
    assert_eq!(counts(&c), [2, 1, 10, 6, 1]);
    // Question 10 only A scored (B has no record); 11 neither (lost_db).
    let only_a = c["scored_by_a_only"].as_array().unwrap();
    assert_eq!(only_a.len(), 1);
    assert_eq!(
        (only_a[0]["id"].as_u64(), only_a[0]["other"].as_str()),
        (Some(10), Some("no record"))
    );
    assert_eq!(c["scored_by_neither"], 1);
    assert_eq!(c["a"]["label"], "a.sql");
    assert!(
        c["b"]["origin"]
            .as_str()
            .unwrap()
            .starts_with("predictions file, dev split, official scoring")
    );
    let q = question(&c, 4);
    assert_eq!(q["b"]["sql"], "SELECT name FROM singer; DELETE FROM singer");
    assert_eq!(
        q["question"],
        "How many singers performed in each concert, by concert id?"
    );
    assert!(q["rows"]["gold"]["total"].as_u64().unwrap() > 0);
    // The terminal form lists what only one side scored.
    let (ok, out, err) = compare(&[s(&a), s(&b), "--data", s(&data)]);
    assert!(ok, "{err}");
    assert!(
        out.contains("scored by A only: 1 (A right on 1)\n  B no record (1): 10\n"),
        "{out}"
    );
    assert_eq!(hash_tree(&data), before, "a preview changed the data folder");
    // Strict mode scores the multi-statement prediction wrong too.
    let c = compare_json(&[s(&a), s(&b), "--data", s(&data), "--mode", "strict"]);
    assert!(ids(&c["a_right_b_wrong"]).contains(&4));
    assert_eq!(hash_tree(&data), before);
    // A strategy on a file is an error that says so.
    let (ok, _, err) = compare(&[&format!("{}:x", s(&a)), s(&b), "--data", s(&data)]);
    assert!(
        !ok && err.contains("is a predictions file, which has no strategies"),
        "{err}"
    );
}

#[test]
fn a_run_against_a_prediction_file() {
    let run = two_strategy_run();
    let dir = common::scratch("compare", "run-vs-file");
    let file = text_predictions(&dir);
    let c = compare_json(&[&format!("{}:zero-shot", s(&run)), s(&file), "--data", &mini()]);
    // zero-shot: wrong on 0, 3, 5, 7; the file: wrong on 2, 8.
    assert_eq!(ids(&c["a_right_b_wrong"]), [2, 8]);
    assert_eq!(ids(&c["b_right_a_wrong"]), [0, 3, 5, 7]);
    assert_eq!(counts(&c), [2, 4, 11, 5, 0]);
    let q = question(&c, 2);
    assert_eq!(q["a"]["sql"], q["gold"]);
    assert_eq!(q["b"]["sql"], "SELECT name FROM singer");
    // Without the data folder a predictions file cannot be scored: the error says what to do.
    let (ok, _, err) = compare(&[&format!("{}:zero-shot", s(&run)), s(&file), "--data", "/no/such/data"]);
    assert!(
        !ok && err.contains("side B: cannot score") && err.contains("Pass --data DIR"),
        "{err}"
    );
}

/// A record as a run writes it, with only what compare reads set.
fn record(id: usize, db: &str, hardness: Option<&str>, status: &str, error: Option<&str>) -> Value {
    serde_json::json!({
        "id": id, "strategy": "s", "db_id": db, "question": format!("q{id}"), "gold": "SELECT 1",
        "pred": "SELECT 1", "exec": if status == "correct" { Some(true) } else if status == "wrong" { Some(false) } else { None },
        "exact": null, "hardness": hardness, "status": status, "error": error, "model_failure": null,
        "tokens_in": 0, "tokens_out": 0, "latency_ms": 0.0, "calls": 0, "cost_usd": 0.0,
        "cache_keys": [], "candidates": []
    })
}

fn row(label: &str, records: &[Value]) -> spider_bench::report::rows::Row {
    spider_bench::report::rows::Row {
        label: label.into(),
        strategy: "s".into(),
        source: PathBuf::from(label),
        questions: records.len(),
        records: records
            .iter()
            .map(|r| serde_json::from_value(r.clone()).unwrap())
            .collect(),
    }
}

#[test]
fn questions_one_side_did_not_score_are_listed_with_the_reason_never_dropped() {
    use spider_bench::report::compare::{Filters, compare};
    let e = Some("easy");
    let a = row(
        "a",
        &[
            record(0, "x", e, "correct", None),
            record(1, "x", e, "wrong", None),
            record(2, "x", e, "error", Some("no answer from the model: 503")),
            record(3, "y", e, "skipped", Some("database y is missing")),
            record(4, "x", None, "correct", None),
        ],
    );
    let b = row(
        "b",
        &[
            record(0, "x", e, "wrong", None),
            record(1, "x", e, "correct", None),
            record(2, "x", e, "correct", None),
            record(3, "y", e, "skipped", Some("database y is missing")),
            record(5, "x", Some("hard"), "correct", None),
        ],
    );
    let c = compare(&a, &b, &Filters::default()).unwrap();
    let ids = |d: &spider_bench::report::compare::Direction| d.questions.iter().map(|q| q.id).collect::<Vec<_>>();
    assert_eq!((ids(&c.a_right_b_wrong), ids(&c.b_right_a_wrong)), (vec![0], vec![1]));
    assert_eq!(
        (c.shared, c.both_right, c.both_wrong, c.scored_by_neither),
        (2, 0, 0, 1)
    );
    let one =
        |l: &[spider_bench::report::compare::OneSided]| l.iter().map(|o| (o.id, o.other.clone())).collect::<Vec<_>>();
    assert_eq!(one(&c.scored_by_a_only), [(4, "no record".to_string())]);
    assert_eq!(
        one(&c.scored_by_b_only),
        [
            (2, "error: no answer from the model: 503".to_string()),
            (5, "no record".to_string())
        ]
    );
    assert_eq!((c.a.records, c.a.scored, c.a.correct), (5, 3, 2));
    // A hardness filter keeps no question without a hardness.
    let easy = Filters {
        hardness: vec![spider_bench::eval::exact::Hardness::Easy],
        db: vec![],
    };
    let c = compare(&a, &b, &easy).unwrap();
    assert!(c.scored_by_a_only.is_empty() && one(&c.scored_by_b_only).len() == 1);
    // --limit 0: nothing shown, the counts whole.
    let mut c = compare(&a, &b, &Filters::default()).unwrap();
    c.truncate(0);
    assert_eq!(
        (
            c.a_right_b_wrong.count,
            c.a_right_b_wrong.left_out,
            c.a_right_b_wrong.questions.len()
        ),
        (1, 1, 0)
    );
    // Two sides that place a question on different databases are not one split.
    let other = row("other", &[record(0, "z", e, "correct", None)]);
    let err = compare(&a, &other, &Filters::default()).unwrap_err().to_string();
    assert!(
        err.contains("question 0 asks about database x in a but z in other") && err.contains("not on the same split"),
        "{err}"
    );
}
