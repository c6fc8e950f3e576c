//! The OpenAI-compatible client and its cache against a real HTTP server on
//! 127.0.0.1 (tests/common/fake_llm.rs).

#[path = "common/mod.rs"]
mod common;

use common::fake_llm::{FakeLlm, Reply};
use spider_bench::llm::cache::{Cache, CacheMode, CachedModel};
use spider_bench::llm::client::{ClientConfig, OpenAiClient};
use spider_bench::llm::{ChatModel, ChatRequest, GenParams, LlmError, Message};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn config(server: &FakeLlm) -> ClientConfig {
    let mut c = ClientConfig::new(&server.url, "test-model", Some("sk-test-KEY".into()));
    c.initial_backoff = Duration::from_millis(20);
    c.max_backoff = Duration::from_millis(100);
    c.max_retries = 3;
    c.request_timeout = Duration::from_secs(5);
    c
}

fn request(n: u32) -> ChatRequest {
    ChatRequest {
        messages: vec![Message::user("Question: how many?")],
        params: GenParams::default(),
        n,
    }
}

fn model(c: ClientConfig, cache: Option<Cache>, mode: CacheMode) -> CachedModel {
    CachedModel::new(Arc::new(OpenAiClient::new(c).unwrap()), cache, mode)
}

fn block<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn scratch(name: &str) -> std::path::PathBuf {
    let d = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("llm-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn answers_carry_usage_and_the_key_goes_in_the_header_only() {
    let server = FakeLlm::start(Arc::new(|_, _| Reply::Answers(vec!["SELECT 1".into()])));
    let m = model(config(&server), None, CacheMode::Off);
    let out = block(m.complete(&request(1))).unwrap();
    assert_eq!(out[0].text, "SELECT 1");
    assert!(out[0].prompt_tokens > 0 && out[0].completion_tokens > 0);
    assert_eq!(server.auth_headers(), [Some("Bearer sk-test-KEY".to_string())]);
    assert!(!server.bodies()[0].to_string().contains("sk-test-KEY"));
}

#[test]
fn rate_limits_are_retried_after_the_time_the_server_asks_for() {
    let server = FakeLlm::start(Arc::new(|_, n| {
        if n == 0 {
            Reply::Status(429, Some("1".into()))
        } else {
            Reply::Answers(vec!["ok".into()])
        }
    }));
    let m = model(config(&server), None, CacheMode::Off);
    let start = Instant::now();
    let out = block(m.complete(&request(1))).unwrap();
    assert_eq!(out[0].text, "ok");
    assert_eq!(server.calls(), 2);
    assert!(
        start.elapsed() >= Duration::from_millis(950),
        "Retry-After: 1 not honoured ({:?})",
        start.elapsed()
    );
}

#[test]
fn server_errors_are_retried_with_backoff_then_reported() {
    let flaky = FakeLlm::start(Arc::new(|_, n| {
        if n < 2 {
            Reply::Status(503, None)
        } else {
            Reply::Answers(vec!["ok".into()])
        }
    }));
    assert_eq!(
        block(model(config(&flaky), None, CacheMode::Off).complete(&request(1))).unwrap()[0].text,
        "ok"
    );
    assert_eq!(flaky.calls(), 3);
    let down = FakeLlm::start(Arc::new(|_, _| Reply::Status(500, None)));
    let err = block(model(config(&down), None, CacheMode::Off).complete(&request(1))).unwrap_err();
    assert!(
        matches!(&err, LlmError::Unavailable(m) if m.contains("gave up after 4 attempts")),
        "{err}"
    );
    assert_eq!(down.calls(), 4);
}

#[test]
fn malformed_and_refused_responses_are_failures_not_crashes() {
    // Something that is not a chat completion is not the model's answer:
    // the endpoint is unavailable (the run records an error and resumes it).
    let bad = FakeLlm::start(Arc::new(|_, _| Reply::Malformed));
    let err = block(model(config(&bad), None, CacheMode::Off).complete(&request(1))).unwrap_err();
    assert!(
        matches!(&err, LlmError::Unavailable(m) if m.contains("malformed")),
        "{err}"
    );
    assert_eq!(bad.calls(), 1, "a malformed answer is not retried");
    let denied = FakeLlm::start(Arc::new(|_, _| Reply::Status(401, None)));
    assert!(matches!(
        block(model(config(&denied), None, CacheMode::Off).complete(&request(1))),
        Err(LlmError::Fatal(_))
    ));
    let bad_request = FakeLlm::start(Arc::new(|_, _| Reply::Status(400, None)));
    assert!(matches!(
        block(model(config(&bad_request), None, CacheMode::Off).complete(&request(1))),
        Err(LlmError::Request(_))
    ));
}

#[test]
fn slow_responses_time_out_and_are_retried() {
    let slow = FakeLlm::start(Arc::new(|_, n| {
        if n == 0 {
            Reply::Slow(Duration::from_secs(3), Box::new(Reply::Answers(vec!["late".into()])))
        } else {
            Reply::Answers(vec!["quick".into()])
        }
    }));
    let mut c = config(&slow);
    c.request_timeout = Duration::from_millis(500);
    let start = Instant::now();
    let out = block(model(c, None, CacheMode::Off).complete(&request(1))).unwrap();
    assert_eq!(out[0].text, "quick");
    assert!(start.elapsed() < Duration::from_secs(3));
}

#[test]
fn n_samples_natively_or_one_request_each() {
    let native = FakeLlm::start(Arc::new(|b, _| {
        Reply::Answers((0..b["n"].as_u64().unwrap_or(1)).map(|i| format!("s{i}")).collect())
    }));
    let out = block(model(config(&native), None, CacheMode::Off).complete(&request(3))).unwrap();
    assert_eq!(
        out.iter().map(|c| c.text.as_str()).collect::<Vec<_>>(),
        ["s0", "s1", "s2"]
    );
    assert_eq!(native.calls(), 1);
    let ignores_n = FakeLlm::start(Arc::new(|_, n| Reply::Answers(vec![format!("call{n}")])));
    let out = block(model(config(&ignores_n), None, CacheMode::Off).complete(&request(3))).unwrap();
    assert_eq!(
        out.iter().map(|c| c.text.as_str()).collect::<Vec<_>>(),
        ["call0", "call1", "call2"]
    );
    assert_eq!(ignores_n.calls(), 3);
}

#[test]
fn the_cache_replays_without_http_and_never_stores_the_key() {
    let dir = scratch("cache");
    let server = FakeLlm::start(Arc::new(|_, n| Reply::Answers(vec![format!("answer {n}")])));
    let first = block(
        model(
            config(&server),
            Some(Cache::open(&dir.join("c.sqlite")).unwrap()),
            CacheMode::ReadWrite,
        )
        .complete(&request(2)),
    )
    .unwrap();
    assert_eq!(server.calls(), 2);
    let again = block(
        model(
            config(&server),
            Some(Cache::open(&dir.join("c.sqlite")).unwrap()),
            CacheMode::CacheOnly,
        )
        .complete(&request(2)),
    )
    .unwrap();
    assert_eq!(server.calls(), 2, "a replay makes no HTTP call");
    assert_eq!(
        first.iter().map(|c| (&c.text, &c.cache_key)).collect::<Vec<_>>(),
        again.iter().map(|c| (&c.text, &c.cache_key)).collect::<Vec<_>>()
    );
    assert!(again.iter().all(|c| c.from_cache));
    // A different request misses: fatal in cache-only mode.
    let other = ChatRequest { n: 1, ..request(1) };
    let other = ChatRequest {
        messages: vec![Message::user("Question: something else")],
        ..other
    };
    let err = block(
        model(
            config(&server),
            Some(Cache::open(&dir.join("c.sqlite")).unwrap()),
            CacheMode::CacheOnly,
        )
        .complete(&other),
    )
    .unwrap_err();
    assert!(matches!(&err, LlmError::Fatal(m) if m.contains("cache miss")), "{err}");
    // --no-cache goes to the server.
    block(
        model(
            config(&server),
            Some(Cache::open(&dir.join("c.sqlite")).unwrap()),
            CacheMode::Off,
        )
        .complete(&request(1)),
    )
    .unwrap();
    assert_eq!(server.calls(), 3);
    for entry in std::fs::read_dir(&dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(
            !bytes.windows(11).any(|w| w == b"sk-test-KEY"),
            "the key reached the cache"
        );
    }
}

#[test]
fn concurrency_is_bounded() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (f, p) = (in_flight.clone(), peak.clone());
    let server = FakeLlm::start(Arc::new(move |_, _| {
        let now = f.fetch_add(1, Ordering::SeqCst) + 1;
        p.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(50));
        f.fetch_sub(1, Ordering::SeqCst);
        Reply::Answers(vec!["x".into()])
    }));
    let mut c = config(&server);
    c.concurrency = 2;
    let m = Arc::new(model(c, None, CacheMode::Off));
    block(async {
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let m = m.clone();
                tokio::spawn(async move {
                    let req = ChatRequest {
                        messages: vec![Message::user(format!("q{i}"))],
                        params: GenParams::default(),
                        n: 1,
                    };
                    m.complete(&req).await.unwrap()
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    assert_eq!(server.calls(), 8);
    assert!(
        peak.load(Ordering::SeqCst) <= 2,
        "peak {} requests in flight",
        peak.load(Ordering::SeqCst)
    );
}

#[test]
fn requests_per_minute_are_spaced() {
    let server = FakeLlm::start(Arc::new(|_, _| Reply::Answers(vec!["x".into()])));
    let mut c = config(&server);
    c.requests_per_minute = Some(240); // one every 250 ms
    let m = model(c, None, CacheMode::Off);
    let start = Instant::now();
    block(async {
        for i in 0..5 {
            let req = ChatRequest {
                messages: vec![Message::user(format!("q{i}"))],
                params: GenParams::default(),
                n: 1,
            };
            m.complete(&req).await.unwrap();
        }
    });
    assert!(
        start.elapsed() >= Duration::from_millis(950),
        "5 requests at 240/min took {:?}",
        start.elapsed()
    );
    assert_eq!(server.calls(), 5);
}

/// A server whose choices follow the seed, as seeded servers' do: choice
/// `i` of a request seeded `s` is "SELECT s+i".
fn seeded_answers() -> common::fake_llm::Script {
    Arc::new(|body, _| {
        let seed = body["seed"].as_u64().unwrap_or(0);
        let n = body["n"].as_u64().unwrap_or(1);
        Reply::Answers((0..n).map(|i| format!("SELECT {}", seed + i)).collect())
    })
}

#[test]
fn a_partial_cache_hit_seeds_each_missing_sample_by_its_slot() {
    let dir = scratch("slots");
    let server = FakeLlm::start(seeded_answers());
    let m = model(
        config(&server),
        Some(Cache::open(&dir.join("c.sqlite")).unwrap()),
        CacheMode::ReadWrite,
    );
    let sampled = |n| ChatRequest {
        params: GenParams {
            temperature: 0.8,
            max_tokens: 64,
            seed: Some(7),
            grammar: None,
        },
        ..request(n)
    };
    let three: Vec<String> = block(m.complete(&sampled(3)))
        .unwrap()
        .into_iter()
        .map(|c| c.text)
        .collect();
    assert_eq!(three, ["SELECT 7", "SELECT 8", "SELECT 9"]);
    // Slots 0-2 are cached; slots 3 and 4 are asked one by one, seeded by
    // their slot (asking for "2 samples" would repeat slots 0 and 1's seeds).
    let five: Vec<String> = block(m.complete(&sampled(5)))
        .unwrap()
        .into_iter()
        .map(|c| c.text)
        .collect();
    assert_eq!(five, ["SELECT 7", "SELECT 8", "SELECT 9", "SELECT 10", "SELECT 11"]);
    let bodies = server.bodies();
    assert_eq!(bodies.len(), 3);
    assert_eq!(
        (bodies[0]["n"].as_u64(), bodies[0]["seed"].as_u64()),
        (Some(3), Some(7))
    );
    for (body, seed) in bodies[1..].iter().zip([10, 11]) {
        assert_eq!(
            (body["n"].as_u64(), body["seed"].as_u64()),
            (None, Some(seed)),
            "{body}"
        );
    }
}

#[test]
fn a_cache_written_by_a_newer_version_is_refused_and_an_older_one_is_marked() {
    let dir = scratch("cache-format");
    let path = dir.join("c.sqlite");
    // A cache made before formats were recorded: same table, user_version 0.
    let old = rusqlite::Connection::open(&path).unwrap();
    old.execute_batch(
        "CREATE TABLE completions (key TEXT PRIMARY KEY, endpoint TEXT NOT NULL, model TEXT NOT NULL,
         request TEXT NOT NULL, completion TEXT NOT NULL, created_at INTEGER NOT NULL)",
    )
    .unwrap();
    drop(old);
    Cache::open(&path).unwrap();
    let version = |p: &std::path::Path| -> i64 {
        rusqlite::Connection::open(p)
            .unwrap()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap()
    };
    assert_eq!(version(&path), spider_bench::llm::cache::CACHE_FORMAT);
    rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let err = Cache::open(&path).err().expect("a newer format is refused").to_string();
    assert!(err.contains("newer spider-bench") && err.contains("format 99"), "{err}");
}

/// A constrained request (the `constrained` step's grammar in its
/// parameters) goes to an endpoint declared to take grammars, in the field
/// declared, under a cache key of its own; an endpoint not so declared is
/// refused before any call, with what to do. An unconstrained request's key
/// has no grammar in it (tests/request_fingerprints.rs holds it to the keys
/// recorded before grammars existed).
#[test]
fn a_grammar_goes_only_to_an_endpoint_that_takes_one() {
    let server = FakeLlm::start(Arc::new(|_, _| Reply::Answers(vec!["SELECT 1".into()])));
    let constrained = |grammar: &str| ChatRequest {
        params: GenParams {
            grammar: Some(grammar.into()),
            ..GenParams::default()
        },
        ..request(1)
    };
    let refused = block(model(config(&server), None, CacheMode::Off).complete(&constrained("root ::= \"SELECT 1\"")));
    match refused {
        Err(LlmError::Fatal(m)) => assert!(
            m.contains("--grammar-field grammar") && m.contains("guided_grammar"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(server.calls(), 0, "refused before any call");

    let mut c = config(&server);
    c.grammar_field = Some("guided_grammar".into());
    let dir = scratch("grammar");
    let m = model(
        c,
        Some(Cache::open(&dir.join("c.sqlite")).unwrap()),
        CacheMode::ReadWrite,
    );
    let plain = block(m.complete(&request(1))).unwrap();
    let a = block(m.complete(&constrained("root ::= \"SELECT 1\""))).unwrap();
    let b = block(m.complete(&constrained("root ::= \"SELECT 2\""))).unwrap();
    let bodies = server.bodies();
    assert_eq!(bodies.len(), 3, "each request is its own cache entry");
    assert!(bodies[0].get("guided_grammar").is_none());
    assert_eq!(bodies[1]["guided_grammar"], "root ::= \"SELECT 1\"");
    let keys = [&plain[0].cache_key, &a[0].cache_key, &b[0].cache_key];
    assert!(keys[0] != keys[1] && keys[1] != keys[2], "{keys:?}");
    let again = block(m.complete(&constrained("root ::= \"SELECT 1\""))).unwrap();
    assert!(again[0].from_cache && again[0].cache_key == a[0].cache_key);
}
