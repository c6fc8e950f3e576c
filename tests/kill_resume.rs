//! A run killed with SIGKILL at 20 random moments, resumed each time, ends
//! with the records of an uninterrupted run, and asks the model again only
//! for requests that were in flight at a kill. Real processes (the binary),
//! a real HTTP server on 127.0.0.1, real files.

#[path = "common/mod.rs"]
mod common;

use common::fake_llm::{FakeLlm, Reply, Script, gold_answers};
use common::mini_gold;
use spider_bench::run::record::{PredictionsFile, RunRecord};
use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

const KILLS: usize = 20;
const CONCURRENCY: usize = 2;

/// Gold answers, each after 300 ms, so that kills land mid-run.
fn slow_gold() -> Script {
    let gold = gold_answers(mini_gold());
    Arc::new(move |b, n| Reply::Slow(Duration::from_millis(300), Box::new(gold(b, n))))
}

fn command(url: &str, dir: &Path) -> Command {
    let concurrency = CONCURRENCY.to_string();
    let mut c = common::mini_run_command(
        url,
        "zero-shot,cot,self-consistency,exec-retry",
        dir,
        &["--concurrency", &concurrency, "--resume"],
    );
    c.stdout(Stdio::null()).stderr(Stdio::null());
    c
}

/// The run's records, without the latency each process measured.
fn records(dir: &Path) -> Vec<RunRecord> {
    let file = PredictionsFile::read(&dir.join("run/predictions.jsonl")).unwrap();
    assert!(file.damaged.is_empty(), "damage left after a finished run");
    file.records
        .into_iter()
        .map(|mut r| {
            r.latency_ms = 0.0;
            r
        })
        .collect()
}

/// Requests by body, counted.
fn requests(bodies: &[serde_json::Value]) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for body in bodies {
        *out.entry(body.to_string()).or_default() += 1;
    }
    out
}

#[test]
fn sigkill_at_twenty_random_moments_loses_nothing_and_repeats_only_requests_in_flight() {
    // One server for both runs: the endpoint is part of the cache keys.
    let server = FakeLlm::start(slow_gold());
    let reference_dir = common::scratch("kill", "reference");
    let done = command(&server.url, &reference_dir).status().unwrap();
    assert!(done.success());
    let expected = records(&reference_dir);
    assert_eq!(expected.len(), 48);
    let reference_requests = server.calls();

    let dir = common::scratch("kill", "killed");
    // Kill moments from a fixed xorshift sequence: 30-400 ms after start,
    // so kills land in start-up, mid-request, mid-write and between records.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut kills = 0;
    for _ in 0..KILLS {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let delay = Duration::from_millis(30 + state % 370);
        let mut child = command(&server.url, &dir).spawn().unwrap();
        std::thread::sleep(delay);
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
    }
    assert!(
        kills >= KILLS - 2,
        "only {kills} of {KILLS} kills landed before the run ended"
    );
    let finished = command(&server.url, &dir).status().unwrap();
    assert!(finished.success(), "the last resume failed");
    let got = records(&dir);
    assert_eq!(got.len(), expected.len(), "records after the resumes");
    for (a, b) in got.iter().zip(&expected) {
        assert_eq!(
            serde_json::to_string_pretty(a).unwrap(),
            serde_json::to_string_pretty(b).unwrap(),
            "a record differs from the uninterrupted run's"
        );
    }

    // Every request of the uninterrupted run, and no other; a request is
    // repeated only when a kill caught it in flight (at most CONCURRENCY
    // at a time).
    let bodies = server.bodies();
    let (reference, asked) = (
        requests(&bodies[..reference_requests]),
        requests(&bodies[reference_requests..]),
    );
    let mut unique: Vec<&String> = asked.keys().collect();
    let mut wanted: Vec<&String> = reference.keys().collect();
    unique.sort();
    wanted.sort();
    assert_eq!(unique, wanted, "other requests than an uninterrupted run's");
    let repeated: usize = asked.values().map(|n| n - 1).sum();
    assert!(
        repeated <= kills * CONCURRENCY,
        "{repeated} repeated requests for {kills} kills (at most {CONCURRENCY} in flight at a time)"
    );
    eprintln!(
        "{kills} kills, {repeated} repeated requests, {} requests in all",
        bodies.len() - reference_requests
    );
}
