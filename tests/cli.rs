//! The `spider-bench` binary end to end on the mini fixture.

#[path = "common/mod.rs"]
mod common;

use common::mini_spider;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_spider-bench"))
}

fn run(args: &[&str]) -> Output {
    bin()
        .args(args)
        .env_remove("SPIDER_DATA")
        .output()
        .expect("binary runs")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn scratch(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The records of an `--out` file.
fn read_records(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn write(path: &Path, content: &str) -> String {
    std::fs::write(path, content).unwrap();
    path.display().to_string()
}

/// Gold for every mini question but #1 (wrong) and #3 (empty).
fn mini_jsonl() -> String {
    let dev: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(mini_spider().join("dev.json")).unwrap()).unwrap();
    dev.iter()
        .enumerate()
        .map(|(i, e)| {
            let sql = match i {
                1 => "SELECT name FROM singer WHERE country = 'Sweden'".to_string(),
                3 => String::new(),
                _ => e["query"].as_str().unwrap().to_string(),
            };
            serde_json::json!({"id": i, "sql": sql}).to_string() + "\n"
        })
        .collect()
}

#[test]
fn eval_prints_the_official_table_and_writes_records() {
    let dir = scratch("records");
    let pred = write(&dir.join("p.jsonl"), &mini_jsonl());
    let out = dir.join("out.jsonl");
    let data = mini_spider().display().to_string();
    let o = run(&["eval", "--data", &data, "--pred", &pred, "--out", out.to_str().unwrap()]);
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    for word in [
        "easy",
        "medium",
        "hard",
        "extra",
        "all",
        "count",
        "execution",
        "exact match",
        "skipped: 1",
        "timeouts: 0",
        "empty: 1",
    ] {
        assert!(stdout.contains(word), "missing {word:?} in\n{stdout}");
    }
    let records = read_records(&out);
    assert_eq!(records.len(), 12);
    for r in &records {
        for field in ["id", "db_id", "hardness", "exec", "exact", "status", "error", "ms"] {
            assert!(r.get(field).is_some(), "record lacks {field}: {r}");
        }
    }
    assert_eq!(records[1]["status"], "wrong");
    assert_eq!(records[1]["exact"], true);
    assert_eq!(records[3]["status"], "empty");
    assert_eq!(records[11]["status"], "skipped");
    assert!(records[11]["exec"].is_null());
    assert_eq!(records[0]["status"], "correct");
}

#[test]
fn only_listed_ids_are_scored_and_jobs_do_not_change_results() {
    let dir = scratch("jobs");
    let pred = write(
        &dir.join("p.jsonl"),
        "{\"id\": 4, \"sql\": \"SELECT concert_id, count(*) FROM singer_in_concert GROUP BY concert_id\"}\n{\"id\": 0, \"sql\": \"SELECT count(*) FROM concert\"}\n",
    );
    let data = mini_spider().display().to_string();
    let mut outputs = Vec::new();
    for jobs in ["1", "2"] {
        let out = dir.join(format!("out{jobs}.jsonl"));
        let o = run(&[
            "eval",
            "--data",
            &data,
            "--pred",
            &pred,
            "--jobs",
            jobs,
            "--out",
            out.to_str().unwrap(),
            "--format",
            "json",
        ]);
        assert!(o.status.success(), "{}", text(&o).1);
        let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let mut records = read_records(&out);
        for r in records.iter_mut() {
            r.as_object_mut().unwrap().remove("ms");
        }
        outputs.push((summary, records));
    }
    assert_eq!(outputs[0], outputs[1]);
    let (summary, records) = &outputs[0];
    assert_eq!(summary["all"]["count"], 2);
    assert_eq!(summary["all"]["exec_correct"], 1);
    assert_eq!(
        records.iter().map(|r| r["id"].as_u64().unwrap()).collect::<Vec<_>>(),
        [0, 4]
    );
}

#[test]
fn the_official_text_format_is_read_line_by_line() {
    let dir = scratch("text");
    let golds: Vec<String> = std::fs::read_to_string(mini_spider().join("dev_gold.sql"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    // Gold lines keep their "\tdb_id" tail, which is ignored; one line is blank.
    let mut lines = golds.clone();
    lines[2] = String::new();
    let pred = write(&dir.join("p.sql"), &(lines.join("\n") + "\n"));
    let data = mini_spider().display().to_string();
    let o = run(&["eval", "--data", &data, "--pred", &pred, "--format", "csv"]);
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("1 blank line"), "{stderr}");
    let all = stdout.lines().find(|l| l.starts_with("all,")).unwrap();
    assert!(all.starts_with("all,11,10,10,"), "{all}");
    // A file that does not line up with the split is refused.
    let short = write(&dir.join("short.sql"), &golds[..5].join("\n"));
    let (_, stderr) = text(&run(&["eval", "--data", &data, "--pred", &short]));
    assert!(
        stderr.contains("has 5 lines but the split has 12 questions"),
        "{stderr}"
    );
}

#[test]
fn bad_inputs_get_errors_that_say_what_to_do() {
    let dir = scratch("bad");
    let data = mini_spider().display().to_string();
    let dup = write(
        &dir.join("dup.jsonl"),
        "{\"id\": 1, \"sql\": \"SELECT 1\"}\n{\"id\": 1, \"sql\": \"SELECT 2\"}\n",
    );
    let o = run(&["eval", "--data", &data, "--pred", &dup]);
    assert!(!o.status.success());
    assert!(text(&o).1.contains("line 2: id 1 appears twice"), "{}", text(&o).1);
    let far = write(&dir.join("far.jsonl"), "{\"id\": 99, \"sql\": \"SELECT 1\"}\n");
    assert!(
        text(&run(&["eval", "--data", &data, "--pred", &far]))
            .1
            .contains("id 99 is out of range")
    );
    let o = run(&["eval", "--data", dir.to_str().unwrap(), "--pred", &far]);
    let stderr = text(&o).1;
    assert!(
        !o.status.success() && stderr.contains("not a Spider data folder") && stderr.contains("SPIDER_DATA"),
        "{stderr}"
    );
}

#[test]
fn the_data_folder_comes_from_spider_data_when_no_flag_is_given() {
    let dir = scratch("env");
    let pred = write(
        &dir.join("p.jsonl"),
        "{\"id\": 0, \"sql\": \"SELECT count(*) FROM singer\"}\n",
    );
    let o = bin()
        .args(["eval", "--pred", &pred, "--format", "json"])
        .env("SPIDER_DATA", mini_spider())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["all"]["exec_correct"], 1);
}

#[test]
fn data_check_reports_missing_databases_and_runs_every_gold() {
    let data = mini_spider().display().to_string();
    let o = run(&["data", "check", "--data", &data]);
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    assert!(stdout.contains("missing databases: lost_db"), "{stdout}");
    assert!(stdout.contains("dev           12 questions: 11 golds run"), "{stdout}");
    assert!(stdout.contains("lost_db: 1"), "{stdout}");
    assert!(stdout.contains("train         8 questions: 8 golds run"), "{stdout}");
}
