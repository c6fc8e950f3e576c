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

/// Checks `ours` against the recorded official output of every case.
fn check<T: PartialEq + std::fmt::Debug>(ours: impl Fn(&str) -> Option<T>, official: impl Fn(&Case) -> Option<T>) {
    let cases = cases();
    let bad: Vec<String> = cases
        .iter()
        .filter_map(|c| {
            let (o, t) = (official(c), ours(&c.input));
            (o != t).then(|| format!("{:?}\n  official: {o:?}\n  ours:     {t:?}", c.input))
        })
        .collect();
    assert!(
        bad.is_empty(),
        "{} of {} differ:\n{}",
        bad.len(),
        cases.len(),
        bad[..bad.len().min(15)].join("\n")
    );
}

#[test]
fn tokenize_matches_process_sql() {
    check(|s| tokenize(s).ok(), |c| c.tokens.clone());
}

#[test]
fn remove_distinct_matches_sqlparse() {
    check(|s| remove_distinct(s, false).ok(), |c| c.no_distinct.clone());
}
