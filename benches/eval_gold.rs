//! Wall-clock benchmark of a full official-mode evaluation: gold as the
//! prediction on the Spider dev set (972 executable examples), whole process
//! included (start-up, loading, parsing, executing, comparing, printing).
//!
//!     cargo bench --bench eval_gold
//!
//! Set OFFICIAL_EVALUATOR to a checkout of test-suite-sql-eval (with
//! `pip install sqlparse nltk tqdm`) to time the official evaluator on the
//! same inputs in the same run and print the speed-up. Data: $SPIDER_DATA,
//! else ../shared/spider.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const RUNS: usize = 10;
const OFFICIAL_RUNS: usize = 3;

fn time(mut cmd: Command) -> Duration {
    let start = Instant::now();
    let out = cmd.output().expect("command runs");
    let elapsed = start.elapsed();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    elapsed
}

fn report(name: &str, mut times: Vec<Duration>) -> Duration {
    times.sort();
    let median = times[times.len() / 2];
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    println!(
        "{name:<28} runs={:<3} min={:>8.3}s median={:>8.3}s mean={:>8.3}s",
        times.len(),
        times[0].as_secs_f64(),
        median.as_secs_f64(),
        mean.as_secs_f64()
    );
    median
}

/// dev_gold.sql without the examples whose database is missing (the official
/// script aborts on them), and the same SQL as the prediction file.
fn write_inputs(data: &Path, dir: &Path) -> (PathBuf, PathBuf) {
    let gold = std::fs::read_to_string(data.join("dev_gold.sql")).expect("dev_gold.sql");
    let mut g = String::new();
    let mut p = String::new();
    for line in gold.lines().filter(|l| !l.trim().is_empty()) {
        let (sql, db) = line.rsplit_once('\t').expect("SQL<TAB>db_id");
        if data.join("database").join(db).join(format!("{db}.sqlite")).is_file() {
            g.push_str(&format!("{sql}\t{db}\n"));
            p.push_str(&format!("{sql}\n"));
        }
    }
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("gold.sql"), g).unwrap();
    std::fs::write(dir.join("pred.sql"), p).unwrap();
    (dir.join("gold.sql"), dir.join("pred.sql"))
}

fn main() {
    let Some(data) = common::spider_data("eval_gold") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("spider-bench-bench-{}", std::process::id()));
    let (gold, pred) = write_inputs(&data, &dir);
    let ours_pred = dir.join("pred.jsonl");
    let full = std::fs::read_to_string(data.join("dev_gold.sql")).unwrap();
    let jsonl: String = full
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| serde_json::json!({"id": i, "sql": l.rsplit_once('\t').unwrap().0}).to_string() + "\n")
        .collect();
    std::fs::write(&ours_pred, jsonl).unwrap();

    let ours = |_: usize| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_spider-bench"));
        c.args(["eval", "--data"]).arg(&data).arg("--pred").arg(&ours_pred);
        time(c)
    };
    ours(0); // warm the page cache
    let ours_median = report("spider-bench eval (gold)", (0..RUNS).map(ours).collect());

    if let Some(official) = std::env::var_os("OFFICIAL_EVALUATOR") {
        let script = format!(
            "import sys, runpy; sys.path.insert(0, {dir:?}); import nltk, process_sql; \
             process_sql.word_tokenize = lambda s: nltk.word_tokenize(s, preserve_line=True); \
             sys.argv = ['evaluation.py', '--gold', {gold:?}, '--pred', {pred:?}, '--db', {db:?}, '--table', {table:?}, '--etype', 'all']; \
             runpy.run_path({dir:?} + '/evaluation.py', run_name='__main__')",
            dir = Path::new(&official).display().to_string(),
            gold = gold.display().to_string(),
            pred = pred.display().to_string(),
            db = data.join("database").display().to_string(),
            table = data.join("tables.json").display().to_string(),
        );
        let official_run = |_: usize| {
            let mut c = Command::new("python3");
            c.args(["-c", &script]);
            time(c)
        };
        let theirs = report("official evaluation.py", (0..OFFICIAL_RUNS).map(official_run).collect());
        println!(
            "speed-up (median wall clock): {:.1}x",
            theirs.as_secs_f64() / ours_median.as_secs_f64()
        );
    } else {
        println!("(set OFFICIAL_EVALUATOR=path/to/test-suite-sql-eval to time the official evaluator side by side)");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
