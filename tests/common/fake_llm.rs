//! A real OpenAI-compatible HTTP server on 127.0.0.1 for tests: each
//! request is answered by a scripted function of the request body and the
//! call number. It records every request (body and Authorization header).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How to answer one request.
pub enum Reply {
    /// A completion per string (as many choices as given).
    Answers(Vec<String>),
    /// An error status, with an optional Retry-After header value.
    Status(u16, Option<String>),
    /// 200 with a body that is not a chat completion.
    Malformed,
    /// Wait, then answer.
    Slow(Duration, Box<Reply>),
}

pub type Script = Arc<dyn Fn(&Value, usize) -> Reply + Send + Sync>;

/// Every request: its body and Authorization header.
type RequestLog = Arc<Mutex<Vec<(Value, Option<String>)>>>;

#[derive(Clone)]
struct Shared {
    script: Script,
    calls: Arc<AtomicUsize>,
    log: RequestLog,
    embedding_calls: Arc<AtomicUsize>,
}

pub struct FakeLlm {
    pub url: String,
    calls: Arc<AtomicUsize>,
    log: RequestLog,
    embedding_calls: Arc<AtomicUsize>,
}

impl FakeLlm {
    /// Starts the server on a free loopback port, on its own thread.
    pub fn start(script: Script) -> FakeLlm {
        FakeLlm::start_on("127.0.0.1:0", script)
    }

    /// Starts the server at `addr` (e.g. the port of an endpoint that was
    /// down), on its own thread.
    pub fn start_on(addr: &str, script: Script) -> FakeLlm {
        let addr = addr.to_string();
        let calls = Arc::new(AtomicUsize::new(0));
        let log = Arc::new(Mutex::new(Vec::new()));
        let embedding_calls = Arc::new(AtomicUsize::new(0));
        let shared = Shared {
            script,
            calls: calls.clone(),
            log: log.clone(),
            embedding_calls: embedding_calls.clone(),
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                let app = axum::Router::new()
                    .route("/v1/chat/completions", post(handle))
                    .route("/v1/embeddings", post(embeddings))
                    .with_state(shared);
                axum::serve(listener, app).await.unwrap();
            });
        });
        let addr = rx.recv().unwrap();
        FakeLlm {
            url: format!("http://{addr}/v1"),
            calls,
            log,
            embedding_calls,
        }
    }

    /// HTTP requests received so far.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Requests to /v1/embeddings received so far.
    pub fn embedding_calls(&self) -> usize {
        self.embedding_calls.load(Ordering::SeqCst)
    }

    /// Authorization headers received.
    pub fn auth_headers(&self) -> Vec<Option<String>> {
        self.log.lock().unwrap().iter().map(|(_, a)| a.clone()).collect()
    }

    pub fn bodies(&self) -> Vec<Value> {
        self.log.lock().unwrap().iter().map(|(b, _)| b.clone()).collect()
    }
}

async fn handle(State(s): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let n = s.calls.fetch_add(1, Ordering::SeqCst);
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let auth = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap_or("").to_string());
    s.log.lock().unwrap().push((body.clone(), auth));
    let mut reply = (s.script)(&body, n);
    loop {
        match reply {
            Reply::Slow(d, inner) => {
                tokio::time::sleep(d).await;
                reply = *inner;
            }
            Reply::Answers(texts) => {
                let prompt: usize = body["messages"]
                    .as_array()
                    .map(|m| m.iter().map(|x| x["content"].as_str().unwrap_or("").len() / 4).sum())
                    .unwrap_or(0);
                let choices: Vec<Value> = texts
                    .iter()
                    .enumerate()
                    .map(|(i, t)| json!({"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": "stop"}))
                    .collect();
                let completion: usize = texts.iter().map(|t| t.len() / 4 + 1).sum();
                let out = json!({
                    "id": format!("cmpl-{n}"), "object": "chat.completion", "model": body["model"],
                    "choices": choices,
                    "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
                });
                return (StatusCode::OK, [("content-type", "application/json")], out.to_string()).into_response();
            }
            Reply::Status(code, retry_after) => {
                let mut r = (
                    StatusCode::from_u16(code).unwrap(),
                    json!({"error": {"message": "scripted"}}).to_string(),
                )
                    .into_response();
                if let Some(v) = retry_after {
                    r.headers_mut().insert("retry-after", v.parse().unwrap());
                }
                return r;
            }
            Reply::Malformed => return (StatusCode::OK, "this is not json").into_response(),
        }
    }
}

/// A deterministic embedding: letter counts (26 dimensions), so texts with
/// the same words are close.
pub fn letter_vector(text: &str) -> Vec<f32> {
    let mut v = vec![0.0f32; 26];
    for c in text.to_lowercase().chars().filter(|c| c.is_ascii_lowercase()) {
        v[(c as u8 - b'a') as usize] += 1.0;
    }
    v
}

async fn embeddings(State(s): State<Shared>, body: String) -> Response {
    s.embedding_calls.fetch_add(1, Ordering::SeqCst);
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let inputs: Vec<String> = body["input"]
        .as_array()
        .map(|a| a.iter().map(|x| x.as_str().unwrap_or("").to_string()).collect())
        .unwrap_or_default();
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": letter_vector(t)}))
        .collect();
    let tokens: usize = inputs.iter().map(|t| t.len() / 4 + 1).sum();
    let out = json!({"object": "list", "data": data, "model": body["model"], "usage": {"prompt_tokens": tokens, "total_tokens": tokens}});
    (StatusCode::OK, [("content-type", "application/json")], out.to_string()).into_response()
}

/// The question in a prompt built by spider-bench (after the last "Question: ").
pub fn question_of(body: &Value) -> String {
    let msgs = body["messages"].as_array().cloned().unwrap_or_default();
    let first_user = msgs
        .iter()
        .find(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_str())
        .unwrap_or("");
    first_user.rsplit("Question: ").next().unwrap_or("").trim().to_string()
}

/// A loopback address where nothing listens (yet): an endpoint that is down.
pub fn unused_address() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// A script that answers every question with its gold SQL (in a fenced
/// block, after some reasoning), as many samples as asked for.
pub fn gold_answers(gold_by_question: std::collections::HashMap<String, String>) -> Script {
    Arc::new(move |body, _| {
        let q = question_of(body);
        let sql = gold_by_question
            .get(&q)
            .cloned()
            .unwrap_or_else(|| "SELECT 'unknown question'".into());
        let n = body["n"].as_u64().unwrap_or(1) as usize;
        Reply::Answers(vec![format!("Columns and tables found.\n```sql\n{sql}\n```"); n])
    })
}
