//! Every rule of the official evaluator's semantics
//! (../shared/docs/official-evaluator-semantics.md), each with a case on the
//! mini fixture that fails if the rule is implemented wrong.

#[path = "common/mod.rs"]
mod common;

use common::judge_mini;
use spider_bench::eval::judge::{JudgeConfig, Mode, Status};
use spider_bench::exec::sandbox::Limits;
use std::time::Duration;

fn official() -> JudgeConfig {
    JudgeConfig::default()
}
fn strict() -> JudgeConfig {
    JudgeConfig {
        mode: Mode::Strict,
        ..JudgeConfig::default()
    }
}
fn keep_distinct() -> JudgeConfig {
    JudgeConfig {
        keep_distinct: true,
        ..JudgeConfig::default()
    }
}

/// (exec, exact) on concert_hall.
fn ch(gold: &str, pred: &str, cfg: JudgeConfig) -> (Option<bool>, Option<bool>) {
    let r = judge_mini("concert_hall", gold, pred, cfg);
    (r.exec, r.exact)
}

fn exec(db: &str, gold: &str, pred: &str, cfg: JudgeConfig) -> bool {
    judge_mini(db, gold, pred, cfg).exec.expect("scored")
}

// ------------------------------------------------------------ input handling

#[test]
fn value_is_rewritten_to_1_in_predictions_only_in_official_mode() {
    let gold = "SELECT name FROM singer WHERE singer_id = 1";
    let pred = "SELECT name FROM singer WHERE singer_id = value";
    assert_eq!(ch(gold, pred, official()).0, Some(true));
    assert_eq!(ch(gold, pred, strict()).0, Some(false));
    // ...even inside an alias, where it breaks the query.
    let gold = "SELECT count(*) FROM singer";
    assert_eq!(
        ch(gold, "SELECT count(*) AS value FROM singer", official()).0,
        Some(false)
    );
    assert_eq!(ch(gold, "SELECT count(*) AS value FROM singer", strict()).0, Some(true));
}

#[test]
fn spaced_comparison_operators_are_joined() {
    let gold = "SELECT name FROM singer WHERE age >= 40";
    assert_eq!(
        ch(gold, "SELECT name FROM singer WHERE age > = 40", official()),
        (Some(true), Some(true))
    );
}

#[test]
fn year_of_curdate_is_2020() {
    let gold = "SELECT title FROM concert WHERE year = 2020";
    assert_eq!(
        ch(
            gold,
            "SELECT title FROM concert WHERE year = YEAR(CURDATE())",
            official()
        )
        .0,
        Some(true)
    );
}

// ----------------------------------------------------------------- execution

#[test]
fn distinct_is_removed_from_both_queries_unless_kept() {
    let gold = "SELECT DISTINCT country FROM singer";
    let pred = "SELECT country FROM singer";
    assert_eq!(ch(gold, pred, official()).0, Some(true));
    assert_eq!(ch(gold, pred, keep_distinct()).0, Some(false));
    // Also inside count(DISTINCT x): 4 distinct countries, 6 rows.
    let gold = "SELECT count(DISTINCT country) FROM singer";
    assert_eq!(ch(gold, "SELECT count(country) FROM singer", official()).0, Some(true));
    assert_eq!(
        ch(gold, "SELECT count(country) FROM singer", keep_distinct()).0,
        Some(false)
    );
}

#[test]
fn only_the_first_statement_runs_after_distinct_removal() {
    let gold = "SELECT count(*) FROM singer";
    let pred = "SELECT count(*) FROM singer; DROP TABLE singer";
    assert_eq!(ch(gold, pred, official()).0, Some(true));
    let kept = judge_mini("concert_hall", gold, pred, keep_distinct());
    assert_eq!((kept.exec, kept.status), (Some(false), Status::ExecError));
    assert!(kept.error.unwrap().contains("one statement at a time"));
    assert_eq!(ch(gold, pred, strict()).0, Some(false));
}

#[test]
fn text_is_decoded_with_invalid_utf8_dropped() {
    // The label is the bytes 61 ff 62: Python's decode(errors="ignore") gives "ab".
    assert!(exec(
        "odd_values",
        "SELECT label FROM item WHERE item_id = 1",
        "SELECT 'ab'",
        official()
    ));
    assert!(!exec(
        "odd_values",
        "SELECT label FROM item WHERE item_id = 1",
        "SELECT 'a\u{fffd}b'",
        official()
    ));
}

#[test]
fn statements_without_rows_match_an_empty_gold_except_in_strict_mode() {
    let empty_gold = "SELECT name FROM singer WHERE age > 100";
    for pred in [
        "DELETE FROM singer",
        "DROP TABLE singer",
        "CREATE TABLE t2(x)",
        "PRAGMA user_version = 3",
    ] {
        assert_eq!(ch(empty_gold, pred, official()).0, Some(true), "{pred}");
        assert_eq!(ch(empty_gold, pred, strict()).0, Some(false), "{pred}");
    }
    // A DROP changed nothing: the table is still there for the next example.
    assert_eq!(
        ch("SELECT count(*) FROM singer", "SELECT count(*) FROM singer", official()).0,
        Some(true)
    );
}

#[test]
fn runaway_queries_time_out_and_are_counted_as_such() {
    let cfg = JudgeConfig {
        limits: Limits {
            timeout: Duration::from_millis(300),
            ..Limits::default()
        },
        ..official()
    };
    let start = std::time::Instant::now();
    let r = judge_mini(
        "concert_hall",
        "SELECT count(*) FROM singer",
        "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) SELECT count(*) FROM r",
        cfg,
    );
    assert_eq!((r.exec, r.status), (Some(false), Status::Timeout));
    assert!(start.elapsed() < Duration::from_secs(10));
}

// ---------------------------------------------------------------- comparison

#[test]
fn row_and_column_counts_must_agree() {
    assert_eq!(
        ch("SELECT name FROM singer", "SELECT name, age FROM singer", official()).0,
        Some(false)
    );
    assert_eq!(
        ch("SELECT name FROM singer", "SELECT name FROM singer LIMIT 5", official()).0,
        Some(false)
    );
    // Both empty: equal, whatever the columns.
    assert_eq!(
        ch(
            "SELECT name FROM singer WHERE age > 100",
            "SELECT title, year FROM concert WHERE year = 1",
            official()
        )
        .0,
        Some(true)
    );
}

#[test]
fn row_order_matters_only_when_the_gold_text_says_order_by() {
    let gold = "SELECT name, age FROM singer ORDER BY age DESC";
    assert_eq!(
        ch(gold, "SELECT name, age FROM singer ORDER BY age ASC", official()).0,
        Some(false)
    );
    let gold = "SELECT name FROM singer WHERE country = 'France'";
    assert_eq!(
        ch(
            gold,
            "SELECT name FROM singer WHERE country = 'France' ORDER BY name DESC",
            official()
        )
        .0,
        Some(true)
    );
    // An ORDER BY inside a subquery still makes the outer order matter.
    let gold = "SELECT name FROM singer WHERE singer_id IN (SELECT singer_id FROM singer ORDER BY age LIMIT 3)";
    assert_eq!(
        ch(
            gold,
            "SELECT name FROM singer WHERE singer_id IN (3, 1, 5) ORDER BY name DESC",
            official()
        )
        .0,
        Some(false)
    );
    assert_eq!(
        ch(gold, "SELECT name FROM singer WHERE singer_id IN (3, 1, 5)", official()).0,
        Some(true)
    );
}

#[test]
fn int_float_quick_reject_is_a_false_negative_fixed_in_strict_mode() {
    // Row (11, 1) against (11, 1.0): sorted by str(v)+str(type(v)) they differ.
    let gold = "SELECT singer_id, count(*) FROM singer_in_concert GROUP BY singer_id";
    let pred = "SELECT singer_id, count(*) * 1.0 FROM singer_in_concert GROUP BY singer_id";
    assert_eq!(ch(gold, pred, official()).0, Some(false));
    assert_eq!(ch(gold, pred, strict()).0, Some(true));
}

#[test]
fn columns_may_come_in_any_order() {
    let gold = "SELECT singer_id, name, country, age FROM singer";
    assert_eq!(
        ch(gold, "SELECT age, country, name, singer_id FROM singer", official()).0,
        Some(true)
    );
    assert_eq!(
        ch(
            "SELECT name, age FROM singer",
            "SELECT age, name FROM singer",
            official()
        )
        .0,
        Some(true)
    );
}

#[test]
fn values_compare_with_python_equality() {
    let gold = "SELECT count(*) FROM singer";
    assert_eq!(ch(gold, "SELECT count(*) * 1.0 FROM singer", official()).0, Some(true)); // 6 == 6.0
    assert_eq!(
        ch(gold, "SELECT CAST(count(*) AS TEXT) FROM singer", official()).0,
        Some(false)
    ); // '6' != 6
    assert!(!exec(
        "odd_values",
        "SELECT label FROM item WHERE item_id = 2",
        "SELECT NULL",
        official()
    )); // '' != None
    assert!(exec(
        "odd_values",
        "SELECT label FROM item WHERE item_id = 3",
        "SELECT NULL",
        official()
    ));
    assert!(!exec(
        "odd_values",
        "SELECT code FROM item WHERE item_id = 2",
        "SELECT 'A'",
        official()
    )); // b'A' != 'A'
    assert!(exec(
        "odd_values",
        "SELECT code FROM item WHERE item_id = 2",
        "SELECT x'41'",
        official()
    ));
    // Floats must be exactly equal: avg is 4.75.
    let gold = "SELECT avg(net_worth) FROM singer";
    assert_eq!(
        ch(gold, "SELECT round(avg(net_worth), 1) FROM singer", official()).0,
        Some(false)
    );
    assert_eq!(
        ch(gold, "SELECT sum(net_worth) / 5 FROM singer", official()).0,
        Some(true)
    );
}

#[test]
fn duplicate_rows_count() {
    // Same set of countries and the same number of rows, different multiplicities.
    let gold = "SELECT country FROM singer";
    let pred = "SELECT CASE WHEN singer_id = 5 THEN 'France' ELSE country END FROM singer";
    assert_eq!(ch(gold, pred, official()).0, Some(false));
}

// --------------------------------------------------------------- exact match

#[test]
fn exact_match_fails_where_the_official_parser_fails() {
    let gold = "SELECT count(*) FROM singer";
    // Runs right (column names never matter) but does not parse (alias).
    assert_eq!(
        ch(gold, "SELECT count(*) AS n FROM singer", official()),
        (Some(true), Some(false))
    );
    assert_eq!(
        ch(
            "SELECT avg(age) FROM singer",
            "SELECT round(avg(age), 9) FROM singer",
            official()
        )
        .1,
        Some(false)
    );
    assert_eq!(
        ch(
            "SELECT T1.name FROM singer AS T1 JOIN singer_in_concert AS T2 ON T1.singer_id = T2.singer_id",
            "SELECT singer.name FROM singer, singer_in_concert WHERE singer.singer_id = singer_in_concert.singer_id",
            official()
        )
        .1,
        Some(false)
    );
}

#[test]
fn exact_match_ignores_values_case_limit_numbers_and_item_order() {
    let gold = "SELECT name, age FROM singer WHERE country = 'France' AND age > 30 ORDER BY age LIMIT 1";
    let pred = "select AGE, NAME from SINGER where AGE > 99 and COUNTRY = 'Chad' order by AGE limit 4";
    assert_eq!(ch(gold, pred, official()), (Some(false), Some(true)));
    // ...but whether there is a LIMIT matters.
    assert_eq!(
        ch(
            gold,
            "SELECT name, age FROM singer WHERE country = 'France' AND age > 30 ORDER BY age",
            official()
        )
        .1,
        Some(false)
    );
}

#[test]
fn exact_match_unifies_foreign_keys() {
    // singer_in_concert.singer_id references singer.singer_id: the same column.
    let gold = "SELECT T2.singer_id FROM singer AS T1 JOIN singer_in_concert AS T2 ON T1.singer_id = T2.singer_id WHERE T1.age > 40";
    let pred = "SELECT T1.singer_id FROM singer AS T1 JOIN singer_in_concert AS T2 ON T1.singer_id = T2.singer_id WHERE T1.age > 40";
    assert_eq!(ch(gold, pred, official()), (Some(true), Some(true)));
    let pred =
        "SELECT T1.age FROM singer AS T1 JOIN singer_in_concert AS T2 ON T1.singer_id = T2.singer_id WHERE T1.age > 40";
    assert_eq!(ch(gold, pred, official()).1, Some(false));
}

#[test]
fn exact_match_never_compares_join_conditions() {
    let gold = "SELECT T1.name FROM singer AS T1 JOIN singer_in_concert AS T2 ON T1.singer_id = T2.singer_id";
    let pred = "SELECT T1.name FROM singer AS T1 JOIN singer_in_concert AS T2 ON T1.age = T2.concert_id";
    assert_eq!(ch(gold, pred, official()), (Some(false), Some(true)));
}

// ------------------------------------------------------------------ hardness

#[test]
fn hardness_comes_from_the_gold() {
    use spider_bench::eval::exact::Hardness::*;
    let h = |gold: &str| {
        judge_mini("concert_hall", gold, "SELECT 1", official())
            .hardness
            .unwrap()
    };
    assert_eq!(h("SELECT count(*) FROM singer"), Easy);
    assert_eq!(h("SELECT name, age FROM singer ORDER BY age DESC"), Medium);
    assert_eq!(
        h("SELECT name FROM singer WHERE age > (SELECT avg(age) FROM singer)"),
        Hard
    );
    assert_eq!(
        h(
            "SELECT name FROM singer WHERE age > 30 AND country = 'France' INTERSECT SELECT name FROM singer WHERE net_worth > 2"
        ),
        Extra
    );
}

#[test]
fn missing_databases_are_skipped_with_the_reason_and_golds_that_fail_are_reported() {
    let r = judge_mini(
        "lost_db",
        "SELECT count(*) FROM thing",
        "SELECT count(*) FROM thing",
        official(),
    );
    assert_eq!((r.status, r.exec, r.exact), (Status::Skipped, None, None));
    assert!(r.error.unwrap().contains("lost_db is missing"));
    assert_eq!(r.hardness, Some(spider_bench::eval::exact::Hardness::Easy));
    let r = judge_mini("concert_hall", "SELECT nope FROM singer", "SELECT 1", official());
    assert_eq!(r.status, Status::GoldError);
}

#[test]
fn an_empty_prediction_runs_as_an_empty_result_only_with_keep_distinct_in_official_mode() {
    // evaluation.py --keep_distinct hands the empty text to SQLite, which runs
    // nothing: no rows, equal to a gold that returns none. Without
    // --keep_distinct the official script raises on it (sqlparse finds no
    // statement), so it stays wrong; strict mode keeps it wrong and counts the
    // difference.
    let empty_gold = "SELECT name FROM singer WHERE age > 100";
    let gold_with_rows = "SELECT count(*) FROM singer";
    let strict_kept = JudgeConfig {
        mode: Mode::Strict,
        keep_distinct: true,
        ..JudgeConfig::default()
    };
    for pred in ["", " \t\n "] {
        let r = judge_mini("concert_hall", empty_gold, pred, keep_distinct());
        assert_eq!(
            (r.status, r.exec, r.exact),
            (Status::Empty, Some(true), Some(false)),
            "{pred:?}"
        );
        assert_eq!(r.hardness, Some(spider_bench::eval::exact::Hardness::Easy));
        let r = judge_mini("concert_hall", gold_with_rows, pred, keep_distinct());
        assert_eq!(
            (r.status, r.exec, r.exact),
            (Status::Empty, Some(false), Some(false)),
            "{pred:?}"
        );
        let r = judge_mini("concert_hall", empty_gold, pred, official());
        assert_eq!(
            (r.status, r.exec, r.exact),
            (Status::Empty, Some(false), Some(false)),
            "{pred:?}"
        );
        for cfg in [strict(), strict_kept.clone()] {
            let r = judge_mini("concert_hall", empty_gold, pred, cfg);
            assert_eq!((r.status, r.exec), (Status::Empty, Some(false)), "{pred:?}");
        }
    }
    // No prediction at all is an empty one; the strict summary counts the
    // one verdict that official mode (with --keep_distinct) scores otherwise.
    let spider = spider_bench::dataset::Spider::open(&common::mini_spider()).unwrap();
    let examples: Vec<_> = [empty_gold, gold_with_rows]
        .iter()
        .enumerate()
        .map(|(id, gold)| spider_bench::dataset::Example {
            id,
            db_id: "concert_hall".into(),
            question: String::new(),
            gold: gold.to_string(),
        })
        .collect();
    let scorer = spider_bench::eval::score::Scorer::new(&spider, &examples, strict_kept).unwrap();
    let records: Vec<_> = examples
        .iter()
        .flat_map(|e| [scorer.score_one(e, None), scorer.score_one(e, Some(""))])
        .collect();
    let official_exec: Vec<_> = records.iter().map(|r| r.official.as_ref().unwrap().exec).collect();
    assert_eq!(official_exec, [Some(true), Some(true), Some(false), Some(false)]);
    let s = spider_bench::eval::score::summarize(&records);
    assert_eq!((s.all.count, s.all.exec_correct), (4, 0));
    let d = s.differs_from_official.unwrap();
    assert_eq!((d.exec, d.exec_lost, d.exec_gained, d.exact), (2, 2, 0, 0));
    // The same questions in official mode with --keep_distinct: 2 of 4 correct.
    let scorer = spider_bench::eval::score::Scorer::new(&spider, &examples, keep_distinct()).unwrap();
    let records: Vec<_> = examples.iter().map(|e| scorer.score_one(e, None)).collect();
    let s = spider_bench::eval::score::summarize(&records);
    assert_eq!((s.all.count, s.all.exec_correct, s.statuses["empty"]), (2, 1, 2));
    assert!(s.differs_from_official.is_none());
}
