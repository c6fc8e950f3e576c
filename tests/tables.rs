//! Comparison tables from the binary as a user runs it: `eval` with several
//! `--pred NAME=FILE` (text and JSONL mixed), and `report` of two run
//! folders, in every format, against figures computed by hand.

#[path = "common/mod.rs"]
mod common;

use common::fake_llm::{FakeLlm, gold_answers};
use common::{mini_gold, mini_run_command, mini_spider, scratch};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

fn spider_bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_spider-bench"))
        .args(args)
        .env_remove("SPIDER_DATA")
        .output()
        .expect("binary runs")
}

fn stdout_of(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The mini fixture's gold SQL, one per question (12; the last database is
/// missing, so 11 are scored).
fn gold() -> Vec<String> {
    std::fs::read_to_string(mini_spider().join("dev_gold.sql"))
        .unwrap()
        .lines()
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect()
}

/// Gold everywhere but at `wrong` (a query that runs and returns nothing).
fn predictions(wrong: &[usize]) -> Vec<String> {
    gold()
        .into_iter()
        .enumerate()
        .map(|(i, g)| {
            if wrong.contains(&i) {
                "SELECT 'no such answer'".into()
            } else {
                g
            }
        })
        .collect()
}

fn write_text(path: &Path, sqls: &[String]) -> String {
    std::fs::write(path, sqls.join("\n") + "\n").unwrap();
    path.display().to_string()
}

fn write_jsonl(path: &Path, sqls: &[String]) -> String {
    let lines: Vec<String> = sqls
        .iter()
        .enumerate()
        .map(|(id, sql)| serde_json::json!({"id": id, "sql": sql}).to_string())
        .collect();
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
    path.display().to_string()
}

#[test]
fn eval_puts_prediction_files_in_one_table_with_paired_tests() {
    let dir = scratch("tables", "eval");
    let data = mini_spider().display().to_string();
    // a: wrong on 0, 1, 2; b: wrong on 2 only; c (JSONL): wrong on 0..=7.
    let a = write_text(&dir.join("a.sql"), &predictions(&[0, 1, 2]));
    let b = write_text(&dir.join("b.sql"), &predictions(&[2]));
    let c = write_jsonl(&dir.join("c.jsonl"), &predictions(&[0, 1, 2, 3, 4, 5, 6, 7]));
    let args = |format: &str| {
        vec![
            "eval".to_string(),
            "--data".into(),
            data.clone(),
            "--pred".into(),
            format!("a | x={a}"),
            "--pred".into(),
            format!("b, y={b}"),
            "--pred".into(),
            format!("c={c}"),
            "--format".into(),
            format.into(),
        ]
    };
    let run = |format: &str| {
        stdout_of(&spider_bench(
            &args(format).iter().map(String::as_str).collect::<Vec<_>>(),
        ))
    };

    let json: Value = serde_json::from_str(&run("json")).unwrap();
    let rows = json["stats"]["rows"].as_array().unwrap();
    let labels: Vec<&str> = rows.iter().map(|r| r["label"].as_str().unwrap()).collect();
    assert_eq!(labels, ["a | x", "b, y", "c"], "rows in the order given");
    let figures = |r: &Value| (r["n"].as_u64().unwrap(), r["correct"].as_u64().unwrap());
    assert_eq!(
        rows.iter().map(figures).collect::<Vec<_>>(),
        [(11, 8), (11, 10), (11, 3)]
    );
    // b against a: right only in b on questions 0 and 1, never the reverse.
    let prev = &rows[1]["vs_previous"];
    assert_eq!(
        (prev["this_only"].as_u64(), prev["other_only"].as_u64()),
        (Some(2), Some(0))
    );
    assert_eq!(prev["shared"].as_u64(), Some(11));
    // Exact two-sided McNemar with 2 against 0: 2 * 0.5^2 = 0.5 (the exact
    // binomial sum; scipy's binomtest(0, 2).pvalue is the same test).
    assert!((prev["mcnemar_p"].as_f64().unwrap() - 0.5).abs() < 1e-12);
    // c against b: 0 against 7 discordant; p = 2 * 0.5^7 = 0.015625.
    let prev = &rows[2]["vs_previous"];
    assert_eq!(
        (prev["this_only"].as_u64(), prev["other_only"].as_u64()),
        (Some(0), Some(7))
    );
    assert!((prev["mcnemar_p"].as_f64().unwrap() - 0.015625).abs() < 1e-12);
    // Against the baseline (a): 0 against 5.
    let base = &rows[2]["vs_baseline"];
    assert_eq!(
        (base["this_only"].as_u64(), base["other_only"].as_u64()),
        (Some(0), Some(5))
    );
    let interval = &prev["bootstrap"];
    assert!(interval["low"].as_f64().unwrap() < -0.3 && interval["high"].as_f64().unwrap() < 0.0);
    // Wilson 95% for 8 of 11: [0.43435, 0.90254] (Wilson's formula with
    // z = NormalDist().inv_cdf(0.975), in Python's standard library; the
    // formula itself is checked against statsmodels in tests/stats.rs).
    let w = &rows[0]["wilson"];
    assert!((w["low"].as_f64().unwrap() - 0.43436).abs() < 1e-4, "{w}");
    assert!((w["high"].as_f64().unwrap() - 0.90255).abs() < 1e-4, "{w}");

    // The same seeded figures every time.
    assert_eq!(run("json"), run("json"));

    // Markdown keeps the row although its label holds a '|'.
    let md = run("markdown");
    assert!(md.contains("| a \\| x | 11 | 72.7 [43.4, 90.3] |"), "{md}");
    assert!(md.contains("p=0.016 (0/7)"), "{md}");
    // Prediction files made no model calls: no token or cost columns.
    assert!(!md.contains("tokens/q"), "{md}");

    // CSV: one line per row, the label with a comma quoted.
    let csv = run("csv");
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header = reader.headers().unwrap().clone();
    let lines: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    assert_eq!(lines.len(), 3);
    assert_eq!(&lines[1][col("strategy")], "b, y");
    assert_eq!(
        (&lines[2][col("prev_this_only")], &lines[2][col("prev_other_only")]),
        ("0", "7")
    );
    assert_eq!(&lines[2][col("base_against")], "a | x");

    // --baseline by name moves the comparisons.
    let mut with_baseline = args("json");
    with_baseline.extend(["--baseline".into(), "b, y".into()]);
    let json: Value = serde_json::from_str(&stdout_of(&spider_bench(
        &with_baseline.iter().map(String::as_str).collect::<Vec<_>>(),
    )))
    .unwrap();
    assert_eq!(json["stats"]["baseline"].as_u64(), Some(1));
    let base = &json["stats"]["rows"][0]["vs_baseline"];
    assert_eq!(
        (base["this_only"].as_u64(), base["other_only"].as_u64()),
        (Some(0), Some(2))
    );
}

#[test]
fn eval_refuses_ambiguous_rows_and_names_the_way_out() {
    let dir = scratch("tables", "refuse");
    let data = mini_spider().display().to_string();
    let a = write_text(&dir.join("a.sql"), &predictions(&[]));
    let both = spider_bench(&[
        "eval",
        "--data",
        &data,
        "--pred",
        &format!("x={a}"),
        "--pred",
        &format!("x={a}"),
    ]);
    assert!(!both.status.success());
    assert!(String::from_utf8_lossy(&both.stderr).contains("NAME=FILE"));
    let out = dir.join("out.jsonl").display().to_string();
    let two_out = spider_bench(&[
        "eval",
        "--data",
        &data,
        "--pred",
        &a,
        "--pred",
        &format!("y={a}"),
        "--out",
        &out,
    ]);
    assert!(!two_out.status.success());
    assert!(String::from_utf8_lossy(&two_out.stderr).contains("--out writes the records of one predictions file"));
    let baseline = spider_bench(&[
        "eval",
        "--data",
        &data,
        "--pred",
        &format!("x={a}"),
        "--baseline",
        "nope",
    ]);
    assert!(String::from_utf8_lossy(&baseline.stderr).contains("no such row; the rows are: x"));
}

#[test]
fn one_prediction_file_keeps_the_official_summary_with_its_interval() {
    let dir = scratch("tables", "single");
    let a = write_text(&dir.join("a.sql"), &predictions(&[0, 1, 2]));
    let text = stdout_of(&spider_bench(&[
        "eval",
        "--data",
        mini_spider().to_str().unwrap(),
        "--pred",
        &a,
    ]));
    assert!(text.contains("execution (n)"), "{text}");
    assert!(
        text.contains("execution accuracy 0.727, 95% Wilson interval [0.434, 0.903] over 11 scored questions"),
        "{text}"
    );
}

#[test]
fn report_of_two_runs_labels_rows_by_run_and_exports_them_intact() {
    let dir = scratch("tables", "report");
    let server = FakeLlm::start(gold_answers(mini_gold()));
    for run in ["r1", "r2"] {
        let out = mini_run_command(&server.url, "zero-shot,cot", &dir.join(run), &[])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        for f in ["summary.md", "summary.json"] {
            assert!(
                dir.join(run).join("run").join(f).is_file(),
                "the run command writes {f}"
            );
        }
    }
    let dirs = [1, 2].map(|i| dir.join(format!("r{i}/run")).display().to_string());
    let csv = stdout_of(&spider_bench(&[
        "report",
        &dirs[0],
        &dirs[1],
        "--format",
        "csv",
        "--cluster",
        "db",
    ]));
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header = reader.headers().unwrap().clone();
    let lines: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    assert_eq!(lines.len(), 4, "{csv}");
    assert!(lines.iter().all(|l| l.len() == header.len()), "{csv}");
    assert!(lines[0][col("strategy")].starts_with("zero-shot ("), "{csv}");
    // Both folders are named `run`: their paths tell the rows apart.
    assert!(
        lines[0][col("strategy")].ends_with(&format!("gpt-4o-mini, {})", dirs[0])),
        "{csv}"
    );
    assert!(
        lines[2][col("strategy")].ends_with(&format!("gpt-4o-mini, {})", dirs[1])),
        "{csv}"
    );
    assert_eq!(&lines[0][col("ex_interval")], "clustered");
    // The same answers in both runs: no discordant question.
    assert_eq!(
        (&lines[2][col("prev_this_only")], &lines[2][col("prev_other_only")]),
        ("0", "0")
    );
    let summary = std::fs::read_to_string(dir.join("r1/run/summary.md")).unwrap();
    let report = stdout_of(&spider_bench(&["report", &dirs[0], "--format", "markdown"]));
    assert_eq!(summary, report, "summary.md is the table `report` prints");

    // --html writes the page (tests/html_report.rs opens one in Chromium).
    let html = dir.join("html");
    let data = mini_spider().display().to_string();
    let out = spider_bench(&["report", &dirs[0], "--html", html.to_str().unwrap(), "--data", &data]);
    stdout_of(&out);
    let page = std::fs::read_to_string(html.join("index.html")).unwrap();
    assert!(page.contains("<svg") && page.contains("zero-shot") && page.contains("cot"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("HTML report:"));
}
