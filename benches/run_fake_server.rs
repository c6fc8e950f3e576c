//! `run` throughput against a local OpenAI-compatible server that answers
//! every request after a fixed 100 ms: the full dev set (972 questions with
//! databases) through zero-shot at concurrency 32, whole process included
//! (ideal: 972 x 0.1 / 32 = 3.04 s); then zero-shot and exec-retry, two
//! passes (exec-retry repairs nothing: the server answers the gold), to show
//! that memory stops growing once every database has been opened. The child's resident memory is
//! sampled throughout to show that it stays flat.
//!
//!     cargo bench --bench run_fake_server
//!
//! Data: $SPIDER_DATA, else ../shared/spider.

#[path = "../tests/common/fake_llm.rs"]
#[allow(dead_code)]
mod fake_llm;

mod common;

use fake_llm::{FakeLlm, Reply, gold_answers};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const LATENCY: Duration = Duration::from_millis(100);
const CONCURRENCY: usize = 32;

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn main() {
    let Some(data) = common::spider_data("run_fake_server") else {
        return;
    };
    let dev: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(data.join("dev.json")).unwrap()).unwrap();
    let gold: HashMap<String, String> = dev
        .iter()
        .map(|e| {
            (
                e["question"].as_str().unwrap().to_string(),
                e["query"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for strategies in ["zero-shot", "zero-shot,exec-retry"] {
        bench(&data, gold.clone(), strategies);
    }
}

fn bench(data: &std::path::Path, gold: HashMap<String, String>, strategies: &str) {
    let answer = gold_answers(gold);
    let server = FakeLlm::start(Arc::new(move |b, n| Reply::Slow(LATENCY, Box::new(answer(b, n)))));
    let out = std::env::temp_dir().join(format!("spider-bench-run-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let start = Instant::now();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_spider-bench"))
        .args([
            "run",
            "--data",
            data.to_str().unwrap(),
            "--strategy",
            strategies,
            "--model",
            "bench-model",
            "--base-url",
            &server.url,
        ])
        .args([
            "--api-key-env",
            "SPIDER_BENCH_NO_KEY",
            "--no-cache",
            "--quiet",
            "--concurrency",
            &CONCURRENCY.to_string(),
        ])
        .args(["--out", out.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut samples = Vec::new();
    while child.try_wait().unwrap().is_none() {
        if let Some(kib) = rss_kib(child.id()) {
            samples.push((start.elapsed(), kib));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let wall = start.elapsed();
    assert!(child.wait().unwrap().success());
    let answered = server.calls();
    let ideal = answered as f64 * LATENCY.as_secs_f64() / CONCURRENCY as f64;
    println!(
        "run --strategy {strategies}: {answered} requests of 100 ms at concurrency {CONCURRENCY}: {:.3} s wall",
        wall.as_secs_f64()
    );
    println!(
        "  ideal {answered} x 0.1 / {CONCURRENCY} = {ideal:.3} s; overhead {:+.1}%",
        100.0 * (wall.as_secs_f64() / ideal - 1.0)
    );
    if !samples.is_empty() {
        let at = |f: f64| samples[((samples.len() - 1) as f64 * f) as usize].1 / 1024;
        let peak = samples.iter().map(|s| s.1).max().unwrap() / 1024;
        println!(
            "  resident memory (MiB) at 10/25/50/75/100% of the run: {} / {} / {} / {} / {}; peak {peak}",
            at(0.1),
            at(0.25),
            at(0.5),
            at(0.75),
            at(1.0)
        );
    }
    let _ = std::fs::remove_dir_all(&out);
}
