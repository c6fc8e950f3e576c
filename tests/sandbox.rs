//! Predicted SQL is untrusted: hostile predictions get a verdict and a
//! reason, never change a database file, never create files, never hang.

#[path = "common/mod.rs"]
mod common;

use common::{hash_tree, mini_spider};
use spider_bench::dataset::{Example, Spider};
use spider_bench::eval::judge::{JudgeConfig, Mode, Status};
use spider_bench::eval::score::Scorer;
use spider_bench::exec::sandbox::Limits;
use std::time::{Duration, Instant};

fn hostile(dir: &std::path::Path) -> Vec<String> {
    let evil = |name: &str| dir.join(name).display().to_string();
    let cartesian = (0..12).map(|i| format!("singer s{i}")).collect::<Vec<_>>().join(", ");
    vec![
        "DROP TABLE singer".into(),
        "DELETE FROM singer".into(),
        "UPDATE singer SET age = 0".into(),
        "INSERT INTO singer VALUES (99, 'x', 'y', 1, 1)".into(),
        "REPLACE INTO singer VALUES (1, 'x', 'y', 1, 1)".into(),
        "ALTER TABLE singer ADD COLUMN z".into(),
        "CREATE TABLE t(x)".into(),
        "CREATE INDEX i ON singer(age)".into(),
        "CREATE TRIGGER tr AFTER INSERT ON singer BEGIN DELETE FROM concert; END".into(),
        "CREATE VIEW v AS SELECT 1".into(),
        format!("ATTACH DATABASE '{}' AS evil", evil("attached.db")),
        format!("ATTACH '{}' AS e; CREATE TABLE e.t(x)", evil("attached2.db")),
        format!("VACUUM INTO '{}'", evil("vacuumed.db")),
        "VACUUM".into(),
        "REINDEX".into(),
        "ANALYZE".into(),
        "PRAGMA user_version = 5".into(),
        "PRAGMA journal_mode = WAL".into(),
        "PRAGMA writable_schema = ON".into(),
        "PRAGMA foreign_keys = ON".into(),
        "BEGIN; DELETE FROM singer; COMMIT".into(),
        "BEGIN".into(),
        "COMMIT".into(),
        "SAVEPOINT s".into(),
        "SELECT count(*) FROM singer; DROP TABLE singer".into(),
        "SELECT 1; DELETE FROM concert; DROP TABLE concert".into(),
        "DELETE FROM singer RETURNING *".into(),
        "SELECT load_extension('/tmp/nothing')".into(),
        format!("SELECT count(*) FROM {cartesian}"),
        format!("SELECT * FROM {cartesian}"),
        format!("SELECT group_concat(s0.name) FROM {cartesian}"),
        "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) SELECT x FROM r".into(),
        "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) SELECT max(x) FROM r".into(),
        "SELECT randomblob(2000000000)".into(),
        "SELECT zeroblob(999999999)".into(),
        "SELECT replace(hex(zeroblob(40000000)), '0', 'aa')".into(),
        "SELECT 'unterminated".into(),
        "SELECT * FROM nowhere".into(),
        format!("SELECT {}1{}", "(".repeat(5000), ")".repeat(5000)),
        "SELECT 1\0; DROP TABLE singer".into(),
        String::new(),
        "   ".into(),
        ";".into(),
        "-- only a comment".into(),
        "/* unterminated comment".into(),
        "DETACH DATABASE main".into(),
        format!("SELECT {}", "x".repeat(200_000)),
    ]
}

#[test]
fn hostile_predictions_change_nothing_and_get_a_recorded_failure() {
    let root = mini_spider();
    let spider = Spider::open(&root).unwrap();
    let scratch = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("hostile-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let before = hash_tree(&root.join("database"));
    let golds = [
        "SELECT count(*) FROM singer",
        "SELECT name FROM singer WHERE age > 100",
        "SELECT name, age FROM singer ORDER BY age DESC",
    ];
    let examples: Vec<Example> = golds
        .iter()
        .enumerate()
        .map(|(id, g)| Example {
            id,
            db_id: "concert_hall".into(),
            question: String::new(),
            gold: g.to_string(),
        })
        .collect();
    let preds = hostile(&scratch);
    for mode in [Mode::Official, Mode::Strict] {
        let config = JudgeConfig {
            mode,
            limits: Limits {
                timeout: Duration::from_millis(500),
                ..Limits::default()
            },
            ..JudgeConfig::default()
        };
        let scorer = Scorer::new(&spider, &examples, config).unwrap();
        for e in &examples {
            let items: Vec<_> = preds.iter().map(|p| (e, Some(p.as_str()))).collect();
            let start = Instant::now();
            let records = scorer.score_all(&items);
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "hostile batch took {:?}",
                start.elapsed()
            );
            for (p, r) in preds.iter().zip(&records) {
                assert!(r.exec.is_some(), "{mode:?} {p:.60}: not scored");
                if matches!(r.status, Status::ExecError | Status::Timeout | Status::Empty) {
                    assert!(r.error.is_some(), "{mode:?} {p:.60}: no failure reason recorded");
                }
            }
            // After all that, a plain query still sees the original data.
            let check = scorer.score_one(&examples[0], Some("SELECT count(*) FROM singer"));
            assert_eq!(
                check.status,
                Status::Correct,
                "{mode:?}: the database changed under the scorer"
            );
        }
    }
    assert_eq!(before, hash_tree(&root.join("database")), "a database file changed");
    for f in ["attached.db", "attached2.db", "vacuumed.db"] {
        assert!(!scratch.join(f).exists(), "{f} was created");
    }
    let leftovers: Vec<_> = std::fs::read_dir(root.join("database/concert_hall"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        2,
        "unexpected files beside the database: {leftovers:?}"
    );
}

#[test]
fn timeouts_are_real_and_counted_separately() {
    let cfg = JudgeConfig {
        limits: Limits {
            timeout: Duration::from_millis(200),
            ..Limits::default()
        },
        ..JudgeConfig::default()
    };
    let spider = Spider::open(&mini_spider()).unwrap();
    let e = Example {
        id: 0,
        db_id: "concert_hall".into(),
        question: String::new(),
        gold: "SELECT count(*) FROM singer".into(),
    };
    let scorer = Scorer::new(&spider, [&e], cfg).unwrap();
    let slow = "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) SELECT count(*) FROM r";
    let start = Instant::now();
    let records = scorer.score_all(&[
        (&e, Some(slow)),
        (&e, Some("SELECT count(*) FROM singer")),
        (&e, Some(slow)),
    ]);
    assert!(start.elapsed() < Duration::from_secs(5));
    let statuses: Vec<Status> = records.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [Status::Timeout, Status::Correct, Status::Timeout]);
    let summary = spider_bench::eval::score::summarize(&records);
    assert_eq!(summary.statuses["timeout"], 2);
}
