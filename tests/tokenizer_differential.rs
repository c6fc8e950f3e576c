//! The official evaluator's text layers on 4000 random SQL-like strings:
//! `process_sql.tokenize` (NLTK) and `remove_distinct` (sqlparse), as
//! recorded by tools/tokenizer_cases.py.

use spider_bench::eval::sqlparse::remove_distinct;
use spider_bench::eval::tokenize::tokenize;

#[derive(serde::Deserialize)]
struct Case {
    input: String,
    tokens: Option<Vec<String>>,
    no_distinct: Option<String>,
}

fn cases() -> Vec<Case> {
    include_str!("data/tokenizer_cases.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn tokenize_matches_process_sql() {
    let mut bad = Vec::new();
    let cases = cases();
    for c in &cases {
        let ours = tokenize(&c.input).ok();
        if ours != c.tokens {
            bad.push(format!(
                "{:?}\n  official: {:?}\n  ours:     {:?}",
                c.input, c.tokens, ours
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "{} of {} differ:\n{}",
        bad.len(),
        cases.len(),
        bad[..bad.len().min(15)].join("\n")
    );
}

#[test]
fn remove_distinct_matches_sqlparse() {
    let mut bad = Vec::new();
    let cases = cases();
    for c in &cases {
        let ours = remove_distinct(&c.input, false).ok();
        if ours != c.no_distinct {
            bad.push(format!(
                "{:?}\n  official: {:?}\n  ours:     {:?}",
                c.input, c.no_distinct, ours
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "{} of {} differ:\n{}",
        bad.len(),
        cases.len(),
        bad[..bad.len().min(15)].join("\n")
    );
}
