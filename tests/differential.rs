//! spider-bench's official mode against the official evaluator, example by
//! example, on tens of thousands of predictions derived from the dev golds
//! (correct, subtly wrong, broken and hostile; see tests/common/mutations.rs).
//! The official verdicts in tests/data/official_verdicts.tsv were computed by
//! tools/official_verdicts.py with test-suite-sql-eval.

#[path = "common/mod.rs"]
mod common;

use common::mutations::{MUTATIONS, predictions};
use spider_bench::dataset::{Spider, Split};
use spider_bench::eval::judge::JudgeConfig;
use spider_bench::eval::score::Scorer;
use std::collections::HashMap;

struct Official {
    sha: String,
    exec: Option<bool>,
    exact: Option<bool>,
    hardness: String,
}

fn load_verdicts() -> HashMap<(String, usize), Official> {
    let text = include_str!("data/official_verdicts.tsv");
    text.lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            // An execution "crash" (the official run would abort) or "timeout"
            // carries no verdict; an exact-match "crash" (a TypeError while
            // sorting FROM subqueries) can only count as no match.
            let bit = |s: &str| match s {
                "1" => Some(true),
                "0" => Some(false),
                _ => None,
            };
            (
                (f[0].to_string(), f[1].parse().unwrap()),
                Official {
                    sha: f[2].into(),
                    exec: bit(f[3]),
                    exact: Some(f[4] == "1"),
                    hardness: f[5].into(),
                },
            )
        })
        .collect()
}

/// SHA-1, first 12 hex digits (what tools/official_verdicts.py records).
fn sha1_12(s: &str) -> String {
    hex::encode(sha1_smol::Sha1::from(s).digest().bytes())[..12].to_string()
}

/// The configurations the verdicts were recorded under: rows named
/// `keep_distinct:<mutation>` were scored with `evaluation.py --keep_distinct`.
fn configs() -> [(&'static str, JudgeConfig); 2] {
    [
        ("", JudgeConfig::default()),
        (
            "keep_distinct:",
            JudgeConfig {
                keep_distinct: true,
                ..JudgeConfig::default()
            },
        ),
    ]
}

#[test]
fn official_mode_matches_the_official_evaluator() {
    let Some(data) = common::real_spider("official_mode_matches_the_official_evaluator") else {
        return;
    };
    let spider = Spider::open(&data).unwrap();
    let examples = spider.load_split(Split::Dev).unwrap();
    let verdicts = load_verdicts();
    let mut compared: HashMap<String, usize> = HashMap::new();
    let mut mismatches = Vec::new();
    for (prefix, config) in configs() {
        let scorer = Scorer::new(&spider, &examples, config).unwrap();
        for m in MUTATIONS {
            let name = format!("{prefix}{}", m.name);
            let preds = predictions(&examples, m);
            if !preds.iter().any(|(id, _)| verdicts.contains_key(&(name.clone(), *id))) {
                continue;
            }
            let items: Vec<_> = preds
                .iter()
                .map(|(id, sql)| (&examples[*id], Some(sql.as_str())))
                .collect();
            let records = scorer.score_all(&items);
            for ((id, sql), r) in preds.iter().zip(&records) {
                let Some(o) = verdicts.get(&(name.clone(), *id)) else {
                    continue;
                };
                assert_eq!(
                    o.sha,
                    sha1_12(sql),
                    "{name} #{id}: the prediction changed since the verdicts were computed; regenerate them"
                );
                if o.exec.is_none() {
                    continue;
                }
                *compared.entry(name.clone()).or_default() += 1;
                let hardness = r.hardness.map(|h| h.to_string()).unwrap_or_default();
                if r.exec != o.exec || r.exact != o.exact || hardness != o.hardness {
                    mismatches.push(format!(
                        "{name} #{id} ({}): official exec={:?} exact={:?} {} / spider-bench exec={:?} exact={:?} {} [{}: {}]\n    {sql}",
                        r.db_id, o.exec, o.exact, o.hardness, r.exec, r.exact, hardness, r.status.as_str(), r.error.as_deref().unwrap_or("")
                    ));
                }
            }
        }
    }
    let kept: usize = compared
        .iter()
        .filter(|(n, _)| n.starts_with("keep_distinct:"))
        .map(|(_, c)| c)
        .sum();
    let plain = compared.values().sum::<usize>() - kept;
    assert!(
        mismatches.is_empty(),
        "{} of {} verdicts differ:\n{}",
        mismatches.len(),
        plain + kept,
        mismatches.iter().take(40).cloned().collect::<Vec<_>>().join("\n")
    );
    assert!(plain > 45_000, "only {plain} verdicts compared without keep_distinct");
    assert!(kept > 45_000, "only {kept} verdicts compared with keep_distinct");
    // Empty and blank predictions: the official script raises on them without
    // --keep_distinct (nothing to compare); with it, every scorable one has a verdict.
    for m in ["empty", "blank"] {
        assert_eq!(
            compared.get(m),
            None,
            "{m} without keep_distinct has official verdicts?"
        );
        assert_eq!(
            compared.get(&format!("keep_distinct:{m}")),
            Some(&972),
            "keep_distinct:{m}"
        );
    }
    eprintln!("{plain} verdicts compared without keep_distinct and {kept} with it, all equal");
}
