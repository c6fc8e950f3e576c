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
    // Gold lines keep their "\tdb_id" tail, which is ignored; one line is
    // blank; one starts with a TAB, which the official script strips first.
    let mut lines = golds.clone();
    lines[2] = String::new();
    lines[0] = format!("\t{}", lines[0]);
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

/// A copy of the mini fixture with concert_hall's file damaged in the way
/// `kind` names; returns the folder and the damaged file.
fn damaged_mini(kind: &str) -> (PathBuf, PathBuf) {
    let dir = common::mini_copy(&format!("cli-{kind}"));
    let file = dir.join("database/concert_hall/concert_hall.sqlite");
    common::damage(&file, kind);
    (dir, file)
}

/// `eval` of the gold file on `data`, run by `cmd`: the concert_hall records'
/// reasons, and the `all` row of the CSV table.
fn eval_gold(mut cmd: Command, data: &Path, out_dir: &Path) -> (Vec<String>, String) {
    let out = out_dir.join("out.jsonl");
    let o = cmd
        .args(["eval", "--data", data.to_str().unwrap(), "--pred"])
        .arg(data.join("dev_gold.sql"))
        .args(["--format", "csv", "--out", out.to_str().unwrap()])
        .env_remove("SPIDER_DATA")
        .output()
        .unwrap();
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let reasons = read_records(&out)
        .iter()
        .filter(|r| r["db_id"] == "concert_hall")
        .map(|r| {
            assert_eq!(r["status"], "skipped", "{r}");
            assert!(r["exec"].is_null(), "{r}");
            r["error"].as_str().unwrap().to_string()
        })
        .collect();
    let all = stdout.lines().find(|l| l.starts_with("all,")).unwrap().to_string();
    (reasons, all)
}

#[test]
fn eval_skips_a_damaged_database_with_the_reason_and_scores_the_others() {
    for (kind, fragment) in common::DAMAGE {
        let (data, file) = damaged_mini(kind);
        let (reasons, all) = eval_gold(bin(), &data, &data);
        assert_eq!(reasons.len(), 8, "{kind}");
        for why in &reasons {
            assert!(
                why.contains(&format!("database file {} {fragment}", file.display())),
                "{kind}: {why}"
            );
        }
        // odd_values and orders_db: 3 questions, all correct.
        assert!(all.starts_with("all,3,3,3,"), "{kind}: {all}");
    }
}

#[test]
fn data_check_names_each_damaged_file_and_fails() {
    for (kind, fragment) in common::DAMAGE {
        let (data, file) = damaged_mini(kind);
        let o = run(&["data", "check", "--data", data.to_str().unwrap()]);
        let (stdout, stderr) = text(&o);
        assert!(!o.status.success(), "{kind}: {stdout}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        let what = fragment.trim_start_matches("is damaged: ");
        assert!(
            stdout.contains(&format!("  {}: {what}", file.display())),
            "{kind}: {stdout}"
        );
        assert!(stderr.contains("1 damaged database file(s)"), "{kind}: {stderr}");
        // The other databases' golds still run; concert_hall's are skipped.
        assert!(
            stdout.contains("dev           12 questions: 3 golds run"),
            "{kind}: {stdout}"
        );
        assert!(stdout.contains("concert_hall: 8"), "{kind}: {stdout}");
    }
}

/// The user id this process runs as (the owner of a file it creates).
fn my_uid(dir: &Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    let probe = dir.join("uid-probe");
    std::fs::write(&probe, b"").unwrap();
    std::fs::metadata(&probe).unwrap().uid()
}

#[test]
fn an_unreadable_database_file_is_named_by_eval_and_data_check() {
    use std::os::unix::fs::PermissionsExt;
    let dir = common::mini_copy("cli-unreadable");
    let file = dir.join("database/concert_hall/concert_hall.sqlite");
    let out_dir = scratch("unreadable-out");
    let still_readable = common::make_unreadable(&file);
    // As root, mode 000 does not stop reads: run the binary as the
    // unprivileged user nobody instead, where setpriv exists.
    let setpriv = Path::new("/usr/bin/setpriv");
    let as_nobody = still_readable && my_uid(&out_dir) == 0 && setpriv.exists();
    let cmd = || {
        if as_nobody {
            let mut c = Command::new(setpriv);
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(env!("CARGO_BIN_EXE_spider-bench"));
            c
        } else {
            bin()
        }
    };
    if still_readable && !as_nobody {
        eprintln!("note: this process reads mode-000 files and cannot drop privileges: checked that they are scored");
        let data = dir.display().to_string();
        let gold = dir.join("dev_gold.sql").display().to_string();
        let stdout = text(&run(&["eval", "--data", &data, "--pred", &gold, "--format", "csv"])).0;
        assert!(stdout.contains("all,11,11,11,"), "{stdout}");
        return;
    }
    // The unprivileged user writes --out here.
    std::fs::set_permissions(&out_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (reasons, all) = eval_gold(cmd(), &dir, &out_dir);
    assert_eq!(reasons.len(), 8);
    for why in &reasons {
        assert!(
            why.contains(&format!("database file {} is damaged: unreadable: ", file.display())),
            "{why}"
        );
    }
    assert!(all.starts_with("all,3,3,3,"), "{all}");
    let o = cmd()
        .args(["data", "check", "--data", dir.to_str().unwrap()])
        .env_remove("SPIDER_DATA")
        .output()
        .unwrap();
    let (stdout, stderr) = text(&o);
    assert!(!o.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!("  {}: unreadable: Permission denied", file.display())),
        "{stdout}\n{stderr}"
    );
}
