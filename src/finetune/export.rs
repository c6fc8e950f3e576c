//! `finetune export`: one training example per train question, whose prompt
//! is built by the steps that build a strategy's prompt at inference time
//! (every step of the strategy up to and including `prompt`) and whose
//! answer is the gold SQL, as the prompt asks for it (a ```sql block).
//!
//! What never gets in: a question on a dev database or whose text is a dev
//! question's (so no dev question or database appears, in a prompt or an
//! answer: the example pool of retrieved prompts leaves them out too), and,
//! in a retrieved prompt, the example itself, any other with the same
//! question, or any on the same database (at inference the examples are
//! always of other databases, and the prompt says so). Questions left out are counted by reason, never dropped
//! silently. The validation split is by database.

use super::format::{Format, to_row};
use crate::dataset::{DbInfo, Example, Spider, Split, resolve_data_dir};
use crate::llm::{ChatModel, ChatRequest, Completion, LlmError, Message, ModelIdentity};
use crate::run::{RunOptions, databases_of, load_train, pool_of, resources_for};
use crate::strategy::registry::{build_chain, find};
use crate::strategy::spec::StrategySpec;
use crate::strategy::state::QuestionState;
use crate::strategy::step::kind;
use crate::strategy::{Env, Strategy};
use anyhow::{Context, Result, bail};
use futures::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Which rung's prompt the examples get: the fine-tuned rung's own, so
/// that the model is trained on exactly what it is shown at inference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum PromptKind {
    /// The `finetuned` rung's prompt (zero-shot's): instructions, schema,
    /// question.
    Plain,
    /// The `finetuned-rag` rung's prompt (rag-question's): the same with 3
    /// train examples retrieved by question similarity (never the example
    /// itself, another with its question, or one of its database).
    Rag,
}

impl PromptKind {
    pub fn strategy(self) -> &'static str {
        match self {
            PromptKind::Plain => "finetuned",
            PromptKind::Rag => "finetuned-rag",
        }
    }
}

/// The options of `spider-bench finetune export`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExportOptions {
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// The training file; the validation file and the manifest are written
    /// beside it (NAME.val.jsonl, NAME.manifest.json).
    #[arg(long, value_name = "FILE.jsonl")]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value = "plain")]
    pub prompt: PromptKind,
    /// Any strategy whose prompt the examples get instead (its steps up to
    /// `prompt`, e.g. another selector's retrieval; they must not call a
    /// model).
    #[arg(long, value_name = "STRATEGY")]
    pub strategy: Option<String>,
    #[arg(long, default_value = "strategies")]
    pub strategies_dir: PathBuf,
    #[arg(long, value_enum, default_value = "chat")]
    pub format: Format,
    /// The share of examples in the validation file, whole databases at a time.
    #[arg(long, default_value_t = 0.1)]
    pub val_fraction: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Export only this many train questions (seeded choice), e.g. for a
    /// short test run.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
}

/// Train questions left out of the export for one reason.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LeftOut {
    pub reason: String,
    pub questions: usize,
    pub databases: Vec<String>,
}

/// A written file.
#[derive(Debug, Clone, Serialize)]
pub struct WrittenFile {
    pub path: PathBuf,
    pub examples: usize,
    pub sha256: String,
}

/// What `NAME.manifest.json` records: how the files were made.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    pub tool_version: String,
    pub strategy: String,
    /// The prompt steps as built (templates included).
    pub steps: serde_json::Value,
    pub format: Format,
    pub seed: u64,
    pub val_fraction: f64,
    /// `--limit`: the seeded subset of train questions, where one was asked.
    pub limit: Option<usize>,
    pub train: WrittenFile,
    pub val: Option<WrittenFile>,
    pub val_databases: Vec<String>,
    pub left_out: Vec<LeftOut>,
    /// SHA-256 of the data files read.
    pub source: BTreeMap<String, String>,
}

/// The model behind the export's steps: there is none, so a step that
/// asks one (a hypothetical answer, table linking) stops the export.
struct NoModel {
    strategy: String,
}

#[async_trait::async_trait]
impl ChatModel for NoModel {
    async fn complete(&self, _: &ChatRequest) -> Result<Vec<Completion>, LlmError> {
        Err(LlmError::Fatal(format!(
            "strategy {} asks the model before its prompt is built (a hypothetical answer, \
             table linking...); the export builds prompts without a model: choose a strategy \
             whose steps up to `prompt` need none (e.g. rag-question, rag-random, few-shot)",
            self.strategy
        )))
    }

    fn identity(&self) -> ModelIdentity {
        ModelIdentity {
            endpoint: "none".into(),
            model: "none".into(),
        }
    }
}

/// The strategy's steps up to and including `prompt`.
fn prompt_steps(spec: &StrategySpec) -> Result<StrategySpec> {
    let prompt_place = kind("prompt")?.place;
    let mut steps = Vec::new();
    for s in &spec.steps {
        if kind(&s.step)?.place <= prompt_place {
            steps.push(s.clone());
        }
    }
    if !steps.iter().any(|s| s.step == "prompt") {
        bail!("strategy {} has no `prompt` step to export", spec.name);
    }
    Ok(StrategySpec { steps, ..spec.clone() })
}

/// The answer a training example teaches: the gold SQL as the prompt asks
/// for it.
pub fn answer_of(gold: &str) -> String {
    format!("```sql\n{}\n```", gold.trim())
}

fn question_key(q: &str) -> String {
    q.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

fn hash_of(seed: u64, text: &str) -> u64 {
    let d = Sha256::digest(format!("{seed}:{text}").as_bytes());
    u64::from_le_bytes(d[..8].try_into().expect("8 bytes"))
}

/// The train questions that may be exported, and those left out by reason.
fn eligible(
    spider: &Spider,
    train: Vec<Example>,
    dbs: &BTreeMap<String, Arc<DbInfo>>,
) -> Result<(Vec<Example>, Vec<Example>, Vec<LeftOut>)> {
    let dev = if spider.root.join(Split::Dev.file_name()).is_file() {
        spider.load_split(Split::Dev)?
    } else {
        vec![]
    };
    let dev_dbs: HashSet<&str> = dev.iter().map(|e| e.db_id.as_str()).collect();
    let dev_questions: HashSet<String> = dev.iter().map(|e| question_key(&e.question)).collect();
    let mut left: BTreeMap<&'static str, (usize, std::collections::BTreeSet<String>)> = BTreeMap::new();
    let (mut pool, mut kept) = (Vec::new(), Vec::new());
    for e in train {
        let reason = if dev_dbs.contains(e.db_id.as_str()) {
            Some("its database is also a dev database")
        } else if dev_questions.contains(&question_key(&e.question)) {
            Some("its question is also a dev question")
        } else {
            None
        };
        if let Some(r) = reason {
            let entry = left.entry(r).or_default();
            entry.0 += 1;
            entry.1.insert(e.db_id.clone());
            continue;
        }
        // The pool keeps what inference's pool keeps; an exported example
        // needs its database, so that its gold is the query that runs.
        pool.push(e.clone());
        let reason = match dbs.get(&e.db_id) {
            None => Some("its database is not in tables.json"),
            Some(db) if db.sqlite.is_none() => Some("its database file is missing or damaged"),
            Some(_) => None,
        };
        match reason {
            Some(r) => {
                let entry = left.entry(r).or_default();
                entry.0 += 1;
                entry.1.insert(e.db_id.clone());
            }
            None => kept.push(e),
        }
    }
    let left = left
        .into_iter()
        .map(|(reason, (questions, dbs))| LeftOut {
            reason: reason.to_string(),
            questions,
            databases: dbs.into_iter().collect(),
        })
        .collect();
    Ok((kept, pool, left))
}

/// Whole databases, in a seeded order, until they hold `fraction` of the
/// examples.
fn validation_databases(examples: &[(Example, Vec<Message>)], fraction: f64, seed: u64) -> HashSet<String> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (e, _) in examples {
        *counts.entry(&e.db_id).or_default() += 1;
    }
    let mut order: Vec<&str> = counts.keys().copied().collect();
    order.sort_by_key(|db| hash_of(seed, db));
    let target = (fraction.clamp(0.0, 1.0) * examples.len() as f64).round() as usize;
    let (mut chosen, mut held) = (HashSet::new(), 0);
    for db in order {
        if held >= target {
            break;
        }
        held += counts[db];
        chosen.insert(db.to_string());
    }
    chosen
}

fn sidecar(out: &Path, suffix: &str) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let stem = name.strip_suffix(".jsonl").unwrap_or(&name);
    out.with_file_name(format!("{stem}{suffix}"))
}

fn write_rows(path: &Path, rows: &[serde_json::Value]) -> Result<WrittenFile> {
    let mut text = String::new();
    for r in rows {
        text.push_str(&serde_json::to_string(r)?);
        text.push('\n');
    }
    let tmp = path.with_extension("jsonl.partial");
    std::fs::write(&tmp, &text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(WrittenFile {
        path: path.to_path_buf(),
        examples: rows.len(),
        sha256: hex::encode(Sha256::digest(text.as_bytes())),
    })
}

/// Writes the training file, the validation file and the manifest.
pub fn export(opts: &ExportOptions) -> Result<Manifest> {
    let spider = Spider::open(&resolve_data_dir(opts.data.as_deref()))?;
    let train = load_train(&spider)?;
    let dbs = databases_of(&spider, &train)?;
    let (mut kept, pool_examples, left_out) = eligible(&spider, train, &dbs)?;
    if let Some(n) = opts.limit {
        kept.sort_by_key(|e| hash_of(opts.seed, &e.id.to_string()));
        kept.truncate(n);
        kept.sort_by_key(|e| e.id);
    }
    let name = opts
        .strategy
        .clone()
        .unwrap_or_else(|| opts.prompt.strategy().to_string());
    let spec = prompt_steps(&find(&name, &opts.strategies_dir)?)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let pool = if spec.needs_examples() {
        Some(pool_of(&spider, &pool_examples)?)
    } else {
        None
    };
    let mut run_opts = RunOptions::new(vec![name.clone()], "none");
    run_opts.strategies_dir = opts.strategies_dir.clone();
    let resources = resources_for(std::slice::from_ref(&spec), pool, &run_opts, &runtime)?;
    let chain = build_chain(&spec, &resources)?;
    let env = Env {
        model: Arc::new(NoModel { strategy: name.clone() }),
        limits: Default::default(),
        schemas: Default::default(),
    };
    let prompts: Vec<Result<(Example, Vec<Message>), String>> = runtime.block_on(async {
        futures::stream::iter(kept.iter())
            .map(|e| {
                let (chain, env, db) = (&chain, &env, dbs[&e.db_id].clone());
                async move {
                    let mut state = QuestionState::new(e.clone(), db);
                    state.leave_out_same_question = true;
                    chain.run(&mut state, env).await.map_err(|f| format!("{f}"))?;
                    if let Some(why) = state
                        .unavailable
                        .or(state.failure.filter(|_| state.conversation.is_empty()))
                    {
                        return Err(format!("question {} ({}): {why}", e.id, e.db_id));
                    }
                    let mut messages = state.conversation;
                    messages.push(Message::assistant(answer_of(&e.gold)));
                    Ok((e.clone(), messages))
                }
            })
            .buffered(16)
            .collect()
            .await
    });
    let examples = prompts
        .into_iter()
        .collect::<std::result::Result<Vec<_>, String>>()
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("building the prompts of strategy {name}"))?;
    if examples.is_empty() {
        bail!(
            "no train question of {} can be exported (left out: {:?})",
            spider.root.display(),
            left_out
        );
    }
    let val_dbs = validation_databases(&examples, opts.val_fraction, opts.seed);
    let (val, train): (Vec<_>, Vec<_>) = examples.iter().partition(|(e, _)| val_dbs.contains(&e.db_id));
    let rows = |part: &[&(Example, Vec<Message>)]| -> Vec<serde_json::Value> {
        part.iter().map(|(_, m)| to_row(opts.format, m)).collect()
    };
    if let Some(dir) = opts.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let train_file = write_rows(&opts.out, &rows(&train))?;
    let val_file = if val.is_empty() {
        None
    } else {
        Some(write_rows(&sidecar(&opts.out, ".val.jsonl"), &rows(&val))?)
    };
    let mut val_databases: Vec<String> = val_dbs.into_iter().collect();
    val_databases.sort();
    let manifest = Manifest {
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        strategy: name,
        steps: chain.parameters(),
        format: opts.format,
        seed: opts.seed,
        val_fraction: opts.val_fraction,
        limit: opts.limit,
        train: train_file,
        val: val_file,
        val_databases,
        left_out,
        source: source_hashes(&spider),
    };
    let path = sidecar(&opts.out, ".manifest.json");
    std::fs::write(&path, serde_json::to_string_pretty(&manifest)? + "\n")
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(manifest)
}

fn source_hashes(spider: &Spider) -> BTreeMap<String, String> {
    [
        "train_spider.json",
        "train_others.json",
        "train_gold.sql",
        "tables.json",
        "dev.json",
    ]
    .iter()
    .filter_map(|f| {
        let bytes = std::fs::read(spider.root.join(f)).ok()?;
        Some((f.to_string(), hex::encode(Sha256::digest(&bytes))))
    })
    .collect()
}
