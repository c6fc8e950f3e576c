//! The local model's speed, side by side with llama.cpp's own server on the
//! same GGUF, the same prompts and the same threads.
//!
//!     cargo bench --bench local_model
//!
//! Prompts are the real zero-shot and few-shot prompts of Q dev questions on
//! each of D databases (recorded from the strategies themselves). For each
//! engine and prompt style:
//! - prompt tokens/s: each prompt once with max_tokens = 1 and a distinct
//!   first line, so no engine can reuse a previous prompt;
//! - generation tokens/s: the same prompt again, greedy, up to 128 tokens
//!   (both engines reuse the evaluated prompt, so this is decoding);
//! - seconds per question: the prompts in run order (database by database,
//!   as `run` orders them), answered in full: what a run costs, with the
//!   schema prefix reused between questions on the same database.
//!
//! The reference is llama-cpp-python's OpenAI-compatible server, asked
//! over HTTP with the same messages and parameters. It is used when `$LLAMA_CPP_PYTHON`
//! (default: python3) can import llama_cpp.server; build it as README.md
//! says. Otherwise only the local model is measured.
//!
//! Needs the Spider data ($SPIDER_DATA, else ../shared/spider) and the
//! model (`spider-bench models fetch`); says SKIPPED otherwise.
//! LOCAL_BENCH_DATABASES (default 4) and LOCAL_BENCH_PER_DATABASE (default 3)
//! size it.

mod common;

use spider_bench::dataset::DbInfo;
use spider_bench::dataset::{Example, Spider, Split};
use spider_bench::exec::sandbox::Limits;
use spider_bench::llm::local::{LocalConfig, LocalModel, LocalStats};
use spider_bench::llm::{
    ChatModel, ChatRequest, Completion, GenParams, Generator, LlmError, Message, ModelIdentity, RawCompletion,
};
use spider_bench::models::DEFAULT_GENERATION_MODEL;
use spider_bench::strategy::registry::{build, find};
use spider_bench::strategy::step::Resources;
use spider_bench::strategy::{Env, Question};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MAX_TOKENS: u32 = 128;

/// A chat model that records the conversations a strategy sends.
#[derive(Default)]
struct Recorder(Mutex<Vec<Vec<Message>>>);

#[async_trait::async_trait]
impl ChatModel for Recorder {
    async fn complete(&self, req: &ChatRequest) -> Result<Vec<Completion>, LlmError> {
        self.0.lock().unwrap().push(req.messages.clone());
        Ok(vec![
            Completion {
                text: "SELECT 1".into(),
                prompt_tokens: 0,
                completion_tokens: 0,
                latency_ms: 0.0,
                cache_key: String::new(),
                from_cache: false,
                cut: None,
            };
            req.n as usize
        ])
    }
    fn identity(&self) -> ModelIdentity {
        ModelIdentity {
            endpoint: "recorder".into(),
            model: "recorder".into(),
        }
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Q questions on each of D databases (the first databases of dev, in file
/// order, that have their SQLite file), in run order.
fn questions(spider: &Spider, dev: &[Example]) -> Vec<Example> {
    let (databases, per) = (
        env_usize("LOCAL_BENCH_DATABASES", 4),
        env_usize("LOCAL_BENCH_PER_DATABASE", 3),
    );
    let mut by_db: BTreeMap<&str, Vec<&Example>> = BTreeMap::new();
    let mut order = Vec::new();
    for e in dev {
        if !spider
            .root
            .join("database")
            .join(&e.db_id)
            .join(format!("{}.sqlite", e.db_id))
            .is_file()
        {
            continue;
        }
        let entry = by_db.entry(&e.db_id).or_default();
        if entry.is_empty() {
            order.push(e.db_id.as_str());
        }
        if entry.len() < per {
            entry.push(e);
        }
    }
    order
        .into_iter()
        .take(databases)
        .flat_map(|db| by_db[db].iter().map(|e| (*e).clone()))
        .collect()
}

/// The conversations `strategy` sends for `examples`.
fn prompts(strategy: &str, spider: &Spider, examples: &[Example], resources: &Resources) -> Vec<Vec<Message>> {
    let schemas = spider.load_schemas().unwrap();
    let recorder = Arc::new(Recorder::default());
    let env = Env {
        model: recorder.clone(),
        limits: Limits::default(),
        schemas: Default::default(),
    };
    let strategy = build(&find(strategy, Path::new("strategies")).unwrap(), resources).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for e in examples {
        let db = Arc::new(DbInfo {
            db_id: e.db_id.clone(),
            schema: schemas.get(&e.db_id).unwrap().clone(),
            sqlite: None,
        });
        rt.block_on(strategy.predict(&Question { example: e, db: &db }, &env))
            .unwrap();
    }
    let recorded = recorder.0.lock().unwrap().clone();
    assert_eq!(recorded.len(), examples.len(), "one call per question");
    recorded
}

#[derive(Default)]
struct Figures {
    prompt_tokens: u64,
    prompt_secs: f64,
    generated: u64,
    generation_secs: f64,
    run_secs: f64,
    questions: usize,
    answers: Vec<String>,
}

fn greedy(max_tokens: u32) -> GenParams {
    GenParams {
        temperature: 0.0,
        max_tokens,
        seed: None,
        grammar: None,
    }
}

fn measure(engine: &dyn Generator, conversations: &[Vec<Message>], rt: &tokio::runtime::Runtime) -> Figures {
    let mut f = Figures::default();
    let call = |messages: &[Message], max_tokens: u32| {
        let started = Instant::now();
        let out = rt
            .block_on(engine.generate(messages, &greedy(max_tokens), &[0]))
            .unwrap();
        (out.into_iter().next().unwrap(), started.elapsed().as_secs_f64())
    };
    for (i, conversation) in conversations.iter().enumerate() {
        // A distinct first line: nothing of a previous prompt can be reused.
        let mut fresh = conversation.clone();
        fresh[0].content = format!("[bench prompt {i}]\n{}", fresh[0].content);
        let (first, secs) = call(&fresh, 1);
        f.prompt_tokens += first.prompt_tokens;
        f.prompt_secs += secs;
        let (full, secs) = call(&fresh, MAX_TOKENS);
        f.generated += full.completion_tokens;
        f.generation_secs += secs;
    }
    // Run order, full answers: the schema prefix is shared within a database.
    call(&[Message::user("Reset.")], 1);
    let started = Instant::now();
    for conversation in conversations {
        f.answers.push(call(conversation, MAX_TOKENS).0.text);
    }
    f.run_secs = started.elapsed().as_secs_f64();
    f.questions = conversations.len();
    f
}

/// The reference server, asked as spider-bench's HTTP client asks, plus
/// `repeat_penalty: 1.0`: llama-cpp-python otherwise applies a repetition
/// penalty of 1.1 even at temperature 0, and greedy answers would differ
/// for that reason rather than the engine.
struct Reference {
    http: reqwest::Client,
    url: String,
}

#[async_trait::async_trait]
impl Generator for Reference {
    async fn generate(
        &self,
        messages: &[Message],
        params: &GenParams,
        slots: &[u32],
    ) -> Result<Vec<RawCompletion>, LlmError> {
        assert_eq!(slots, [0]);
        let started = Instant::now();
        let body = serde_json::json!({
            "model": "local",
            "messages": messages,
            "temperature": params.temperature,
            "max_tokens": params.max_tokens,
            "repeat_penalty": 1.0,
        });
        let answer: serde_json::Value = self
            .http
            .post(&self.url)
            .json(&body)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| LlmError::Request(e.to_string()))?
            .json()
            .await
            .map_err(|e| LlmError::Request(e.to_string()))?;
        Ok(vec![RawCompletion {
            text: answer["choices"][0]["message"]["content"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            prompt_tokens: answer["usage"]["prompt_tokens"].as_u64().unwrap_or(0),
            completion_tokens: answer["usage"]["completion_tokens"].as_u64().unwrap_or(0),
            latency_ms: started.elapsed().as_secs_f64() * 1000.0,
            cut: None,
        }])
    }
    fn identity(&self) -> ModelIdentity {
        ModelIdentity {
            endpoint: self.url.clone(),
            model: "local".into(),
        }
    }
    fn calls(&self) -> u64 {
        0
    }
}

/// llama-cpp-python's server on a free port, killed on drop.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_reference(gguf: &Path, threads: usize) -> Option<(Server, String)> {
    let python = std::env::var("LLAMA_CPP_PYTHON").unwrap_or_else(|_| "python3".into());
    let importable = std::process::Command::new(&python)
        .args(["-c", "import llama_cpp.server, llama_cpp; print(llama_cpp.__version__)"])
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let version = String::from_utf8_lossy(&importable.stdout).trim().to_string();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = std::process::Command::new(&python)
        .args(["-m", "llama_cpp.server", "--model"])
        .arg(gguf)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args([
            "--n_threads",
            &threads.to_string(),
            "--n_threads_batch",
            &threads.to_string(),
        ])
        .args(["--n_ctx", "8192", "--n_batch", "512", "--n_ubatch", "512"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let server = Server(child);
    let url = format!("127.0.0.1:{port}");
    // Bounded wait for the model to load.
    for _ in 0..240 {
        if std::net::TcpStream::connect(&url).is_ok() {
            println!("reference: llama-cpp-python {version} server on {url}");
            return Some((server, format!("http://{url}/v1")));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    println!("reference: llama-cpp-python's server did not start within 120 s");
    None
}

fn row(engine: &str, style: &str, f: &Figures) -> String {
    format!(
        "| {engine} | {style} | {:.0} | {:.0} | {:.1} | {:.2} |",
        f.prompt_tokens as f64 / f.questions as f64,
        f.prompt_tokens as f64 / f.prompt_secs,
        f.generated as f64 / f.generation_secs,
        f.run_secs / f.questions as f64
    )
}

fn main() {
    let Some(data) = common::spider_data("local_model") else {
        return;
    };
    let Some((gguf, gguf_file)) = common::default_model("local_model") else {
        return;
    };
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);

    let spider = Spider::open(&data).unwrap();
    let dev = spider.load_split(Split::Dev).unwrap();
    let chosen = questions(&spider, &dev);
    let resources = Resources {
        pool: Some(spider_bench::run::load_pool(&spider).unwrap()),
        dense: Default::default(),
        strategies_dir: PathBuf::from("strategies"),
    };
    let styles: Vec<(&str, Vec<Vec<Message>>)> = ["zero-shot", "few-shot"]
        .into_iter()
        .map(|s| (s, prompts(s, &spider, &chosen, &resources)))
        .collect();
    println!(
        "{} questions ({} per database), {threads} threads, {} (sha256 {}), up to {MAX_TOKENS} tokens per answer",
        chosen.len(),
        env_usize("LOCAL_BENCH_PER_DATABASE", 3),
        gguf_file.name,
        &gguf_file.sha256[..12]
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();

    let mut rows = Vec::new();
    let mut local_figures = Vec::new();
    {
        let mut config = LocalConfig::new(DEFAULT_GENERATION_MODEL, &gguf, gguf_file.sha256);
        config.threads = threads;
        let local = LocalModel::load(config, Arc::new(LocalStats::default())).unwrap();
        for (style, conversations) in &styles {
            let f = measure(&local, conversations, &rt);
            rows.push(row("spider-bench (llama-cpp-2)", style, &f));
            local_figures.push(f);
        }
    }
    let mut reference_figures = Vec::new();
    if let Some((_server, url)) = start_reference(&gguf, threads) {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = Reference {
            http: reqwest::Client::new(),
            url: format!("{url}/chat/completions"),
        };
        for (style, conversations) in &styles {
            let f = measure(&client, conversations, &rt);
            rows.push(row("llama-cpp-python server", style, &f));
            reference_figures.push(f);
        }
    } else {
        println!(
            "reference: llama-cpp-python is not importable by $LLAMA_CPP_PYTHON (default python3); local model only"
        );
    }

    println!(
        "\n| engine | prompt | prompt tokens/question | prompt tok/s | generation tok/s | s/question (run order) |"
    );
    println!("|---|---|---|---|---|---|");
    for r in &rows {
        println!("{r}");
    }
    for ((style, _), (local, reference)) in styles.iter().zip(local_figures.iter().zip(&reference_figures)) {
        let ratio = |a: f64, b: f64| 100.0 * a / b;
        let same = local
            .answers
            .iter()
            .zip(&reference.answers)
            .filter(|(a, b)| a == b)
            .count();
        println!(
            "\n{style}: local / llama.cpp = prompt {:.0}%, generation {:.0}%, s/question {:.0}% (lower is faster); \
             identical greedy answers {same}/{}",
            ratio(
                local.prompt_tokens as f64 / local.prompt_secs,
                reference.prompt_tokens as f64 / reference.prompt_secs
            ),
            ratio(
                local.generated as f64 / local.generation_secs,
                reference.generated as f64 / reference.generation_secs
            ),
            ratio(local.run_secs, reference.run_secs),
            local.answers.len()
        );
        // Where greedy answers differ, show where they part (two llama.cpp
        // builds can break near-ties between tokens differently).
        for (a, b) in local.answers.iter().zip(&reference.answers).filter(|(a, b)| a != b) {
            let common = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
            println!(
                "  differ after {common} characters: {:?} | {:?}",
                a.chars().skip(common).take(40).collect::<String>(),
                b.chars().skip(common).take(40).collect::<String>()
            );
        }
    }
}
