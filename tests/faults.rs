//! Nothing is lost under faults: an endpoint outage, an endpoint that stays
//! down, damaged lines in predictions.jsonl, and a resume with another
//! setup. Against a real HTTP server on 127.0.0.1, real files, and the
//! binary where the user would see it.

#[path = "common/mod.rs"]
mod common;

use common::fake_llm::{FakeLlm, Reply, Script, gold_answers, unused_address};
use common::{mini_gold, mini_run_options, mini_spider};
use spider_bench::eval::judge::Status;
use spider_bench::report::{rows::load_run, table};
use spider_bench::run::record::{DAMAGED_FILE, PredictionsFile, RunRecord};
use spider_bench::run::run;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

fn scratch(name: &str) -> PathBuf {
    common::scratch("faults", name)
}

/// The gold for every question, except calls `outage` (0-based), which
/// answer 503 as an overloaded or restarting endpoint does.
fn gold_with_outage(outage: std::ops::Range<usize>) -> Script {
    let gold = gold_answers(mini_gold());
    Arc::new(move |b, n| {
        if outage.contains(&n) {
            Reply::Status(503, None)
        } else {
            gold(b, n)
        }
    })
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .split_inclusive('\n')
        .map(str::to_string)
        .collect()
}

fn record(line: &str) -> RunRecord {
    serde_json::from_str(line).unwrap()
}

/// `spider-bench run` of zero-shot on the mini fixture against `url`, one
/// question at a time, one retry 10 ms later.
fn run_binary(url: &str, dir: &Path, extra: &[&str]) -> Output {
    let fast = ["--concurrency", "1", "--max-retries", "1", "--retry-base-ms", "10"];
    common::mini_run_command(url, "zero-shot", dir, &[&fast[..], extra].concat())
        .output()
        .unwrap()
}

#[test]
fn an_outage_gives_unscored_errors_and_a_resume_asks_exactly_those_again() {
    let dir = scratch("outage");
    // Calls 2-7 fail: with one retry each, questions 3 to 5 get no answer.
    let server = FakeLlm::start(gold_with_outage(2..8));
    let mut opts = mini_run_options(&server.url, &["zero-shot"], &dir.join("run"), &dir.join("c.sqlite"));
    opts.client.max_retries = 1;
    opts.client.concurrency = 1;
    let first = run(&opts).unwrap();
    let s = &first.summaries[0];
    assert_eq!(
        (s.count, s.exec_correct, s.errors, s.skipped),
        (8, 8, 3, 1),
        "errors are not scored as wrong"
    );
    let errors: Vec<&RunRecord> = first.records.iter().filter(|r| r.status == Status::Error).collect();
    assert_eq!(errors.len(), 3);
    for r in &errors {
        let why = r.error.as_deref().unwrap();
        assert!(why.contains("no answer from the model") && why.contains("503"), "{why}");
        assert_eq!((r.exec, r.exact, r.pred.as_deref()), (None, None, None));
    }
    let rows = load_run(&dir.join("run")).unwrap().rows;
    let built = table::build(&rows, None, &Default::default()).unwrap();
    let table = table::render(&built, spider_bench::table::Format::Markdown);
    assert!(
        table.contains("8 (+3 pending)") && table.contains("INCOMPLETE"),
        "{table}"
    );

    let preds = dir.join("run/predictions.jsonl");
    let before = lines(&preds);
    let calls = server.calls();
    opts.resume = true;
    let resumed = run(&opts).unwrap();
    assert_eq!(
        server.calls() - calls,
        3,
        "the resume asks for the 3 errors and nothing else"
    );
    let s = &resumed.summaries[0];
    assert_eq!((s.count, s.exec_correct, s.errors, s.missing), (11, 11, 0, 0));
    let after = lines(&preds);
    assert_eq!(after.len(), 12, "the retried records replace the errors");
    for line in before.iter().filter(|l| record(l).status != Status::Error) {
        assert!(after.contains(line), "a finished record changed: {line}");
    }
}

#[test]
fn an_endpoint_that_stays_down_stops_the_run_and_a_resume_finishes_it() {
    let dir = scratch("down");
    let addr = unused_address();
    let url = format!("http://{addr}/v1");
    let stopped = run_binary(&url, &dir, &[]);
    let stderr = String::from_utf8_lossy(&stopped.stderr);
    assert!(!stopped.status.success());
    assert!(
        stderr.contains("run stopped: 5 questions in a row got no answer from the model")
            && stderr.contains("cannot reach")
            && stderr.contains("--resume --out"),
        "{stderr}"
    );
    let file = PredictionsFile::read(&dir.join("run/predictions.jsonl")).unwrap();
    let errors = file.records.iter().filter(|r| r.status == Status::Error).count();
    assert_eq!(errors, 5, "it stopped instead of burning through the questions");
    assert!(
        file.records.iter().all(|r| r.exec.is_none()),
        "nothing was scored as wrong"
    );

    // The endpoint comes back at the same address.
    let server = FakeLlm::start_on(&addr, gold_answers(mini_gold()));
    let resumed = run_binary(&url, &dir, &["--resume"]);
    assert!(resumed.status.success(), "{}", String::from_utf8_lossy(&resumed.stderr));
    assert_eq!(server.calls(), 11, "one request per scorable question");
    let file = PredictionsFile::read(&dir.join("run/predictions.jsonl")).unwrap();
    let correct = file.records.iter().filter(|r| r.status == Status::Correct).count();
    assert_eq!((file.records.len(), correct), (12, 11));
}

#[test]
fn a_run_with_errors_left_ends_with_an_error_that_says_how_to_finish_it() {
    let dir = scratch("errors-left");
    // Calls 0 and 1: the first question's two attempts fail.
    let server = FakeLlm::start(gold_with_outage(0..2));
    let out = run_binary(&server.url, &dir, &[]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(!out.status.success());
    assert!(stdout.contains("10 (+1 pending)"), "{stdout}");
    assert!(
        stderr.contains("1 questions got no answer from the model") && stderr.contains("--resume"),
        "{stderr}"
    );
}

#[test]
fn a_damaged_line_is_reported_and_only_its_record_is_redone() {
    let dir = scratch("damaged");
    let server = FakeLlm::start(gold_answers(mini_gold()));
    let mut opts = mini_run_options(
        &server.url,
        &["zero-shot", "cot"],
        &dir.join("run"),
        &dir.join("c.sqlite"),
    );
    opts.cache.no_cache = true;
    run(&opts).unwrap();
    let preds = dir.join("run/predictions.jsonl");
    let original = lines(&preds);
    assert_eq!(original.len(), 24);
    // Line 10 cut short (its newline kept), the last line cut by a kill.
    let mut damaged = original.clone();
    damaged[9] = format!("{}\n", &original[9][..original[9].len() / 2]);
    damaged[23] = original[23][..original[23].len() / 3].to_string();
    std::fs::write(&preds, damaged.concat()).unwrap();
    let asked_again = [9, 23]
        .iter()
        .filter(|&&i| record(&original[i]).status != Status::Skipped)
        .count();

    let report = Command::new(env!("CARGO_BIN_EXE_spider-bench"))
        .args(["report", dir.join("run").to_str().unwrap()])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&report.stdout),
        String::from_utf8_lossy(&report.stderr),
    );
    assert!(
        stderr.contains("predictions.jsonl:10: not a record") && stderr.contains("predictions.jsonl:24: not a record"),
        "{stderr}"
    );
    assert!(
        stdout.contains("(+1 pending)") && stdout.contains("INCOMPLETE"),
        "{stdout}"
    );
    assert_eq!(lines(&preds), damaged, "report changes nothing");

    let calls = server.calls();
    opts.resume = true;
    run(&opts).unwrap();
    assert_eq!(
        server.calls() - calls,
        asked_again,
        "only the damaged records are asked again"
    );
    let after = lines(&preds);
    assert_eq!(after.len(), 24);
    for (i, line) in original.iter().enumerate() {
        if i == 9 || i == 23 {
            // Redone: the same record but for the measured latency.
            let (mut a, mut b) = (record(line), record(&after[i]));
            (a.latency_ms, b.latency_ms) = (0.0, 0.0);
            assert_eq!(a, b);
        } else {
            assert_eq!(&after[i], line, "line {} changed", i + 1);
        }
    }
    let aside = lines(&dir.join("run").join(DAMAGED_FILE));
    assert_eq!(
        aside,
        [damaged[9].clone(), format!("{}\n", damaged[23])],
        "the damaged lines are kept"
    );
}

#[test]
fn a_record_of_a_newer_format_is_an_error_not_damage() {
    let dir = scratch("newer-record");
    let path = dir.join("predictions.jsonl");
    let server = FakeLlm::start(gold_answers(mini_gold()));
    let opts = mini_run_options(&server.url, &["zero-shot"], &dir.join("run"), &dir.join("c.sqlite"));
    let outcome = run(&opts).unwrap();
    let mut newer = serde_json::to_value(&outcome.records[0]).unwrap();
    newer["v"] = 99.into();
    std::fs::write(&path, format!("{newer}\n")).unwrap();
    let err = PredictionsFile::read(&path).unwrap_err().to_string();
    assert!(err.contains("line 1") && err.contains("newer spider-bench"), "{err}");
    // Records written before formats were recorded read as format 1.
    let mut older = serde_json::to_value(&outcome.records[0]).unwrap();
    older.as_object_mut().unwrap().remove("v");
    std::fs::write(&path, format!("{older}\n")).unwrap();
    assert_eq!(PredictionsFile::read(&path).unwrap().records[0].v, 1);
}

/// Edits the run folder's config.json.
fn edit_config(dir: &Path, edit: impl Fn(&mut serde_json::Value)) {
    let path = dir.join("config.json");
    let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut config);
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
}

#[test]
fn a_resume_with_another_version_steps_or_data_is_refused_unless_forced() {
    let dir = scratch("setup");
    let data = dir.join("data");
    common::copy_dir(&mini_spider(), &data);
    let strategies = dir.join("strategies");
    std::fs::create_dir_all(&strategies).unwrap();
    let write_strategy = |tokens: u32| {
        std::fs::write(
            strategies.join("mine.toml"),
            format!("extends = \"zero-shot\"\n[generate]\nmax_tokens = {tokens}\n"),
        )
        .unwrap()
    };
    write_strategy(300);
    let server = FakeLlm::start(gold_answers(mini_gold()));
    let out = dir.join("run");
    let mut opts = mini_run_options(&server.url, &["mine"], &out, &dir.join("c.sqlite"));
    opts.data = Some(data.clone());
    opts.strategies_dir = strategies.clone();
    run(&opts).unwrap();
    opts.resume = true;
    run(&opts).expect("the same setup resumes");

    let refusal = |opts: &spider_bench::run::RunOptions| match run(opts) {
        Ok(_) => panic!("the resume was not refused"),
        Err(e) => format!("{e:#}"),
    };
    // Other steps (a parameter of one) ...
    write_strategy(400);
    let err = refusal(&opts);
    assert!(
        err.contains("strategy mine: its steps, parameters or prompts differ") && err.contains("--force"),
        "{err}"
    );
    write_strategy(300);
    // ... another version, and a folder made before formats were recorded ...
    edit_config(&out, |c| {
        c["tool_version"] = "0.0.1".into();
        c.as_object_mut().unwrap().remove("format_version");
    });
    let err = refusal(&opts);
    assert!(
        err.contains("spider-bench 0.0.1, now") && err.contains("record format 0"),
        "{err}"
    );
    edit_config(&out, |c| {
        c["tool_version"] = env!("CARGO_PKG_VERSION").into();
        c["format_version"] = spider_bench::run::record::RECORD_FORMAT.into();
    });
    // ... and other data: a database file changed.
    let db = data.join("database/orders_db/orders_db.sqlite");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("CREATE TABLE extra (x INTEGER)")
        .unwrap();
    let err = refusal(&opts);
    assert!(
        err.contains("data: database/orders_db/orders_db.sqlite differ"),
        "{err}"
    );
    // --force resumes, and says so in config.json.
    opts.force = true;
    run(&opts).unwrap();
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    let forced = config["forced_resumes"].as_array().unwrap();
    assert_eq!(forced.len(), 1);
    assert!(
        forced[0]["differences"][0]
            .as_str()
            .unwrap()
            .contains("orders_db.sqlite")
    );
    // Another model is another run, --force or not.
    opts.model = Some("another-model".into());
    let err = refusal(&opts);
    assert!(
        err.contains("made for another run") && err.contains("another-model"),
        "{err}"
    );
}
