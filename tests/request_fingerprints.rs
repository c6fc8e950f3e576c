//! Every strategy sends exactly the requests it sent before the strategies
//! became step chains: same messages, parameters and cache keys, so
//! published runs and existing caches replay.
//!
//! Each strategy runs alone on the mini fixture against a loopback server
//! whose answers depend only on the request (some first answers broken, so
//! repairs happen; sampled answers mixed, so votes happen). The request
//! bodies are hashed, with the cache key of every sample computed from the
//! body by the cache's key function on a fixed endpoint, and compared with
//! `tests/data/request_fingerprints.tsv`, recorded with the strategies of commit ace964f (before
//! the change) with `SPIDER_BENCH_RECORD_FINGERPRINTS=1 cargo test --release
//! --test request_fingerprints`. The records' cache keys must be the keys of
//! the requests sent.

#[path = "common/mod.rs"]
mod common;

use common::fake_llm::{FakeLlm, Reply, Script, question_of};
use serde_json::Value;
use sha2::{Digest, Sha256};
use spider_bench::llm::cache::{cache_key, request_description};
use spider_bench::llm::{ChatRequest, GenParams, Message, ModelIdentity};
use spider_bench::run::run;
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

/// Every built-in rung, the Rust strategy, the TOML files that need no
/// installed model, and compositions. (rag-dail-cot.toml needs the local
/// embedding model; its requests differ from rag-dail+cot only by k and the
/// similarity, both covered here.)
const STRATEGIES: &[&str] = &[
    "zero-shot",
    "few-shot",
    "cot",
    "exec-retry",
    "self-consistency",
    "rag-random",
    "rag-question",
    "rag-masked-question",
    "rag-hyde",
    "rag-difficulty",
    "rag-hyde-difficulty",
    "rag-dail",
    "schema-link",
    "best-prompting",
    "few-shot-cot",
    "rag-hyde-exec-retry",
    "zero-shot-rows",
    "cot+self-consistency",
    "few-shot+exec-retry",
    "exec-retry+cot",
    "rag-hyde+cot",
    "rag-dail+self-consistency",
];

const GOLDEN: &str = "tests/data/request_fingerprints.tsv";

fn sha(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Answers that depend on the request alone: a question whose text hashes
/// odd gets broken SQL first (so exec-retry repairs it) and the gold on
/// repair; sampled requests get a mix of wrong, gold and SQL-less answers;
/// table-linking requests get two table names.
fn script() -> Script {
    let gold = common::mini_gold();
    Arc::new(move |body, _| {
        let system = body["messages"][0]["content"].as_str().unwrap_or("");
        if system.starts_with("List the tables") {
            return Reply::Answers(vec!["singer\nconcert".into()]);
        }
        let q = question_of(body);
        let sql = gold.get(&q).cloned().unwrap_or_else(|| "SELECT 1".into());
        let fenced = |s: &str| format!("Thinking about it.\n```sql\n{s}\n```");
        let n = body["n"].as_u64().unwrap_or(1) as usize;
        if n > 1 {
            let mix = [
                fenced("SELECT nope FROM nowhere"),
                fenced(&sql),
                fenced("SELECT 42"),
                "I cannot answer that.".to_string(),
                fenced(&sql),
            ];
            return Reply::Answers((0..n).map(|i| mix[i % mix.len()].clone()).collect());
        }
        let repairing = body["messages"].as_array().map(|m| m.len()).unwrap_or(0) > 2;
        let odd = sha(&q).as_bytes()[0] % 2 == 1;
        Reply::Answers(vec![if odd && !repairing {
            fenced("SELECT nope FROM nowhere")
        } else {
            fenced(&sql)
        }])
    })
}

/// JSON with object keys sorted, so the hash does not depend on key order.
fn canonical(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let inner: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{}", Value::String((*k).clone()), canonical(&m[*k])))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        Value::Array(a) => format!("[{}]", a.iter().map(canonical).collect::<Vec<_>>().join(",")),
        other => other.to_string(),
    }
}

/// The cache keys of a request body's samples, for the given endpoint.
fn keys_of(body: &Value, endpoint: &str) -> Vec<String> {
    let messages: Vec<Message> = serde_json::from_value(body["messages"].clone()).unwrap();
    let req = ChatRequest {
        messages: messages.clone(),
        params: GenParams {
            temperature: body["temperature"].as_f64().unwrap(),
            max_tokens: body["max_tokens"].as_u64().unwrap() as u32,
            seed: body["seed"].as_u64(),
            grammar: None,
        },
        n: body["n"].as_u64().unwrap_or(1) as u32,
    };
    let id = ModelIdentity {
        endpoint: endpoint.to_string(),
        model: body["model"].as_str().unwrap().to_string(),
    };
    (0..req.n)
        .map(|i| cache_key(&request_description(&id, &messages, &req, i)))
        .collect()
}

/// (requests sent, fingerprint of the bodies and their cache keys).
fn fingerprint(strategy: &str) -> (usize, String) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "fingerprints-{}-{}",
        std::process::id(),
        strategy.replace('+', "_")
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let server = FakeLlm::start(script());
    let o = common::mini_run_options(&server.url, &[strategy], &dir.join("run"), &dir.join("cache.sqlite"));
    let outcome = run(&o).unwrap_or_else(|e| panic!("{strategy}: {e:#}"));
    let bodies = server.bodies();

    // The records name exactly the samples that were requested (a record
    // may name a key twice: a prompt asked again is served by the cache).
    let sent: BTreeSet<String> = bodies.iter().flat_map(|b| keys_of(b, &server.url)).collect();
    let recorded: BTreeSet<String> = outcome.records.iter().flat_map(|r| r.cache_keys.clone()).collect();
    assert_eq!(
        sent, recorded,
        "{strategy}: records' cache keys are not the requests' keys"
    );

    let mut lines: Vec<String> = bodies
        .iter()
        .map(|b| format!("{} {}", canonical(b), keys_of(b, "http://127.0.0.1/v1").join(",")))
        .collect();
    lines.sort();
    (bodies.len(), sha(&lines.join("\n")))
}

#[test]
fn every_strategy_sends_the_requests_it_sent_before() {
    let golden_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(GOLDEN);
    let measured: Vec<(String, usize, String)> = STRATEGIES
        .iter()
        .map(|s| {
            let (n, h) = fingerprint(s);
            (s.to_string(), n, h)
        })
        .collect();
    if std::env::var_os("SPIDER_BENCH_RECORD_FINGERPRINTS").is_some() {
        let text: String = measured.iter().map(|(s, n, h)| format!("{s}\t{n}\t{h}\n")).collect();
        std::fs::write(&golden_path, text).unwrap();
        eprintln!("recorded {}", golden_path.display());
        return;
    }
    let golden: HashMap<String, (usize, String)> = std::fs::read_to_string(&golden_path)
        .unwrap_or_else(|e| panic!("{}: {e}", golden_path.display()))
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].to_string(), (f[1].parse().unwrap(), f[2].to_string()))
        })
        .collect();
    let mut differ = Vec::new();
    for (s, n, h) in &measured {
        match golden.get(s) {
            Some((gn, gh)) if gn == n && gh == h => {}
            Some((gn, _)) => differ.push(format!("{s}: {n} requests (recorded {gn}), fingerprint changed")),
            None => differ.push(format!("{s}: not recorded in {GOLDEN}")),
        }
    }
    assert!(differ.is_empty(), "requests changed:\n{}", differ.join("\n"));
}
