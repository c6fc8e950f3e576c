//! `finetune check FILE`: what OpenAI's data-preparation cookbook checks
//! before a fine-tuning job is paid for, for any of the export's formats,
//! with the chosen model's real tokenizer:
//!
//! - format errors per row (not JSON, not an object, no `messages` list,
//!   a message without `role` or `content`, unknown keys, unknown roles,
//!   empty content, no assistant message), and rows without a system or
//!   user message;
//! - token counts per example (the GGUF's own vocabulary and chat template
//!   for `local:` models; tiktoken for OpenAI models, with the cookbook's
//!   per-message overhead), their distribution, examples over the context
//!   limit;
//! - duplicates (identical rows), conflicting rows (one prompt, two
//!   answers), prompts found in both the training and the validation file;
//! - for OpenAI models, the default epochs, billed tokens and cost; for
//!   local training, the time from the trainer's own plan (the tokens it
//!   computes once packed) at the speed the last adapter measured.

use super::format::{Format, to_chat};
use super::train::TrainPlan;
use crate::llm::Message;
use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

/// The options of `spider-bench finetune check`.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckOptions {
    /// The training file (chat, alpaca or sharegpt JSONL).
    pub file: PathBuf,
    /// The validation file (default: NAME.val.jsonl beside FILE, when present).
    #[arg(long, value_name = "FILE")]
    pub val: Option<PathBuf>,
    /// Whose tokenizer counts: local:NAME (or local:PATH.gguf) for local
    /// training, or an OpenAI model (gpt-4o-mini-2024-07-18, gpt-4.1-mini-2025-04-14, ...).
    #[arg(long, default_value = "local:qwen2.5-coder-0.5b")]
    pub model: String,
    /// The most tokens an example may have (default: the trainer's
    /// --max-len for local models, the provider's limit for OpenAI models).
    #[arg(long, value_name = "TOKENS")]
    pub max_tokens: Option<usize>,
    /// Epochs (default: OpenAI's default for this many examples; 1 locally).
    #[arg(long)]
    pub epochs: Option<u32>,
    /// USD per 1M training tokens (default: the published price of known OpenAI models).
    #[arg(long, value_name = "USD")]
    pub price: Option<f64>,
    /// Training speed for the local estimate, in tokens of examples a
    /// second (default: the computed tokens a second that the last adapter
    /// trained on this base measured, applied to the trainer's plan).
    #[arg(long, value_name = "TOKENS_PER_S")]
    pub tokens_per_s: Option<f64>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: CheckFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CheckFormat {
    Table,
    Json,
}

/// One example's tokens: all of it, and the answer (what the loss is on).
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Tokens {
    pub total: usize,
    pub answer: usize,
}

/// Counts the tokens of conversations for one model.
pub trait TokenCounter {
    /// Which tokenizer, in words.
    fn describe(&self) -> String;
    fn count(&self, messages: &[Message]) -> Result<Tokens>;
}

/// OpenAI chat models: tiktoken's encoding for the model and the cookbook's
/// count (3 tokens per message, its role and content, 3 to prime the reply).
pub struct OpenAiCounter {
    model: String,
    bpe: &'static tiktoken_rs::CoreBPE,
}

impl OpenAiCounter {
    pub fn new(model: &str) -> Result<OpenAiCounter> {
        let bpe = tiktoken_rs::bpe_for_model(model)
            .map_err(|e| anyhow::anyhow!("no tiktoken encoding is known for {model} ({e})"))?;
        Ok(OpenAiCounter {
            model: model.to_string(),
            bpe,
        })
    }
}

impl TokenCounter for OpenAiCounter {
    fn describe(&self) -> String {
        format!("tiktoken's encoding for {}", self.model)
    }

    fn count(&self, messages: &[Message]) -> Result<Tokens> {
        let len = |t: &str| self.bpe.encode_with_special_tokens(t).len();
        let total = 3 + messages
            .iter()
            .map(|m| 3 + len(&m.role) + len(&m.content))
            .sum::<usize>();
        let answer = messages
            .iter()
            .filter(|m| m.role == "assistant")
            .map(|m| len(&m.content))
            .sum();
        Ok(Tokens { total, answer })
    }
}

/// What OpenAI publishes for fine-tuning a model: the longest training
/// example and the price per 1M training tokens (USD; check the current
/// price list, or pass --price).
struct OpenAiTerms {
    prefix: &'static str,
    max_tokens: usize,
    usd_per_million: f64,
}

const OPENAI_TERMS: &[OpenAiTerms] = &[
    OpenAiTerms {
        prefix: "gpt-4o-mini",
        max_tokens: 65_536,
        usd_per_million: 3.0,
    },
    OpenAiTerms {
        prefix: "gpt-4o",
        max_tokens: 65_536,
        usd_per_million: 25.0,
    },
    OpenAiTerms {
        prefix: "gpt-4.1-nano",
        max_tokens: 65_536,
        usd_per_million: 1.5,
    },
    OpenAiTerms {
        prefix: "gpt-4.1-mini",
        max_tokens: 65_536,
        usd_per_million: 5.0,
    },
    OpenAiTerms {
        prefix: "gpt-4.1",
        max_tokens: 65_536,
        usd_per_million: 25.0,
    },
    OpenAiTerms {
        prefix: "gpt-3.5-turbo",
        max_tokens: 16_385,
        usd_per_million: 8.0,
    },
];

fn openai_terms(model: &str) -> Option<&'static OpenAiTerms> {
    OPENAI_TERMS.iter().find(|t| model.starts_with(t.prefix))
}

/// OpenAI's default epochs for `n` training examples (the cookbook's rule:
/// 3, raised so that small files are seen about 100 times, lowered so that
/// large ones stop near 25,000 examples).
pub fn openai_default_epochs(n: usize) -> u32 {
    const TARGET: usize = 3;
    const MIN_EXAMPLES: usize = 100;
    const MAX_EXAMPLES: usize = 25_000;
    let n = n.max(1);
    if n * TARGET < MIN_EXAMPLES {
        (MIN_EXAMPLES / n).min(25) as u32
    } else if n * TARGET > MAX_EXAMPLES {
        (MAX_EXAMPLES / n).max(1) as u32
    } else {
        TARGET as u32
    }
}

/// The checks of one file.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    pub path: PathBuf,
    pub rows: usize,
    /// The format the rows are in (the first row's).
    pub format: Option<&'static str>,
    /// Error kind -> line numbers (1-based).
    pub format_errors: BTreeMap<String, Vec<usize>>,
    pub missing_system: usize,
    pub missing_user: usize,
    /// Tokens of each well-formed row, in file order.
    #[serde(skip)]
    pub tokens: Vec<Tokens>,
    pub token_stats: Option<Distribution>,
    pub answer_token_stats: Option<Distribution>,
    /// Lines of examples over the limit.
    pub over_limit: Vec<usize>,
    /// Rows identical to an earlier row.
    pub duplicates: usize,
    /// Rows whose prompt an earlier row has with another answer.
    pub conflicting: usize,
    /// Tokens in all, and answer tokens.
    pub total_tokens: usize,
    pub answer_tokens: usize,
    /// The prompts of the well-formed rows (everything but the last answer).
    #[serde(skip)]
    prompts: HashSet<String>,
}

impl FileReport {
    pub fn error_count(&self) -> usize {
        self.format_errors.values().map(Vec::len).sum()
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Distribution {
    pub min: usize,
    pub p10: usize,
    pub median: usize,
    pub mean: f64,
    pub p90: usize,
    pub max: usize,
}

impl Distribution {
    pub fn of(values: &[usize]) -> Option<Distribution> {
        if values.is_empty() {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_unstable();
        // Nearest-rank percentiles.
        let at = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        Some(Distribution {
            min: v[0],
            p10: at(0.1),
            median: at(0.5),
            mean: v.iter().sum::<usize>() as f64 / v.len() as f64,
            p90: at(0.9),
            max: v[v.len() - 1],
        })
    }
}

/// The whole check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub model: String,
    pub tokenizer: String,
    pub max_tokens: usize,
    pub train: FileReport,
    pub val: Option<FileReport>,
    /// Validation rows whose prompt is also a training prompt.
    pub val_prompts_in_train: usize,
    pub openai: Option<OpenAiEstimate>,
    pub local: Option<LocalEstimate>,
}

impl CheckReport {
    /// Whether the file can be trained on as it is.
    pub fn ok(&self) -> bool {
        self.train.error_count() == 0 && self.val.as_ref().is_none_or(|v| v.error_count() == 0)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct OpenAiEstimate {
    pub epochs: u32,
    /// Tokens billed per epoch: each example's, capped at the limit.
    pub billed_tokens_per_epoch: usize,
    pub billed_tokens: usize,
    pub usd_per_million: Option<f64>,
    pub cost_usd: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LocalEstimate {
    pub epochs: u32,
    /// Tokens of the examples within the limit, per epoch.
    pub tokens_per_epoch: usize,
    /// The trainer's plan (with the environment installed): the tokens it
    /// computes once packing shares the prompts' common prefixes.
    pub plan: Option<TrainPlan>,
    /// The speed the time is estimated at, one of the two: computed tokens
    /// a second (with the plan and a measured computed rate), else tokens
    /// of examples a second.
    pub computed_tokens_per_s: Option<f64>,
    pub tokens_per_s: Option<f64>,
    /// Where the speed comes from, and how rough the estimate is.
    pub speed_source: String,
    pub seconds: Option<f64>,
}

/// A training speed measured by an adapter's run.
#[derive(Debug, Clone, PartialEq)]
pub struct MeasuredSpeed {
    /// Tokens of examples a second.
    pub tokens_per_s: f64,
    /// Tokens computed a second (packing computes a shared prefix once);
    /// absent for adapters trained before the trainer reported it.
    pub computed_tokens_per_s: Option<f64>,
    pub source: String,
}

const ALLOWED_MESSAGE_KEYS: &[&str] = &["role", "content", "name", "weight", "function_call", "tool_calls"];
const ROLES: &[&str] = &["system", "user", "assistant", "function", "tool"];

/// The cookbook's per-row format checks; `Ok(messages)` when there are none.
fn check_row(row: &Value) -> std::result::Result<Vec<Message>, Vec<&'static str>> {
    if !row.is_object() {
        return Err(vec!["data_type: the row is not a JSON object"]);
    }
    let Some(chat) = to_chat(row) else {
        return Err(vec![
            "missing_messages_list: no messages, conversations or instruction/output",
        ]);
    };
    let Some(messages) = chat.get("messages").and_then(Value::as_array) else {
        return Err(vec!["missing_messages_list: `messages` is not a list"]);
    };
    let mut errors = Vec::new();
    for m in messages {
        let Some(o) = m.as_object() else {
            errors.push("data_type: a message is not an object");
            continue;
        };
        if !o.contains_key("role") || !o.contains_key("content") {
            errors.push("message_missing_key: a message has no role or no content");
        }
        if o.keys().any(|k| !ALLOWED_MESSAGE_KEYS.contains(&k.as_str())) {
            errors.push("message_unrecognized_key: a message has a key other than role, content, name, weight");
        }
        if o.get("role")
            .and_then(Value::as_str)
            .is_none_or(|r| !ROLES.contains(&r))
        {
            errors.push("unrecognized_role: a role other than system, user, assistant, function, tool");
        }
        let content = o.get("content");
        if content.is_some_and(|c| !c.is_string() || c.as_str().is_some_and(|t| t.trim().is_empty())) {
            errors.push("missing_content: a message's content is empty or not text");
        }
    }
    if !messages
        .iter()
        .any(|m| m.get("role").and_then(Value::as_str) == Some("assistant"))
    {
        errors.push("example_missing_assistant_message: no assistant message to learn");
    }
    if !errors.is_empty() {
        errors.sort_unstable();
        errors.dedup();
        return Err(errors);
    }
    Ok(messages
        .iter()
        .map(|m| Message {
            role: m["role"].as_str().unwrap_or_default().to_string(),
            content: m["content"].as_str().unwrap_or_default().to_string(),
        })
        .collect())
}

/// The prompt of a conversation (all but its last message) as one key.
fn prompt_key(messages: &[Message]) -> String {
    let prompt = &messages[..messages.len().saturating_sub(1)];
    serde_json::to_string(prompt).expect("messages serialize")
}

/// Reads and checks one file.
pub fn check_file(path: &Path, counter: &dyn TokenCounter, max_tokens: usize) -> Result<FileReport> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut report = FileReport {
        path: path.to_path_buf(),
        rows: 0,
        format: None,
        format_errors: BTreeMap::new(),
        missing_system: 0,
        missing_user: 0,
        tokens: Vec::new(),
        token_stats: None,
        answer_token_stats: None,
        over_limit: Vec::new(),
        duplicates: 0,
        conflicting: 0,
        total_tokens: 0,
        answer_tokens: 0,
        prompts: HashSet::new(),
    };
    let mut seen_rows: HashSet<String> = HashSet::new();
    let mut answers_of_prompt: HashMap<String, String> = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        report.rows += 1;
        let row: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(_) => {
                let kind = "not_json: the line is not JSON".to_string();
                report.format_errors.entry(kind).or_default().push(line_no);
                continue;
            }
        };
        if report.format.is_none() {
            report.format = Format::detect(&row).map(Format::name);
        }
        let messages = match check_row(&row) {
            Ok(m) => m,
            Err(kinds) => {
                for k in kinds {
                    report.format_errors.entry(k.to_string()).or_default().push(line_no);
                }
                continue;
            }
        };
        report.missing_system += usize::from(!messages.iter().any(|m| m.role == "system"));
        report.missing_user += usize::from(!messages.iter().any(|m| m.role == "user"));
        let tokens = counter
            .count(&messages)
            .with_context(|| format!("{}:{line_no}: counting tokens", path.display()))?;
        if tokens.total > max_tokens {
            report.over_limit.push(line_no);
        }
        report.tokens.push(tokens);
        let whole = serde_json::to_string(&messages).expect("messages serialize");
        if !seen_rows.insert(whole) {
            report.duplicates += 1;
        }
        let prompt = prompt_key(&messages);
        let answer = messages.last().map(|m| m.content.clone()).unwrap_or_default();
        match answers_of_prompt.get(&prompt) {
            Some(earlier) if *earlier != answer => report.conflicting += 1,
            Some(_) => {}
            None => {
                answers_of_prompt.insert(prompt.clone(), answer);
            }
        }
        report.prompts.insert(prompt);
    }
    let totals: Vec<usize> = report.tokens.iter().map(|t| t.total).collect();
    let answers: Vec<usize> = report.tokens.iter().map(|t| t.answer).collect();
    report.token_stats = Distribution::of(&totals);
    report.answer_token_stats = Distribution::of(&answers);
    report.total_tokens = totals.iter().sum();
    report.answer_tokens = answers.iter().sum();
    Ok(report)
}

/// NAME.val.jsonl beside NAME.jsonl.
pub fn default_val_file(train: &Path) -> PathBuf {
    let name = train
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let stem = name.strip_suffix(".jsonl").unwrap_or(&name);
    train.with_file_name(format!("{stem}.val.jsonl"))
}

/// The trainer's default longest example, in tokens (`finetune train
/// --max-len`).
pub const DEFAULT_MAX_LEN: usize = 2048;

/// Runs every check of `opts` with `counter`.
pub fn check_with(
    opts: &CheckOptions,
    counter: &dyn TokenCounter,
    local_speed: Option<MeasuredSpeed>,
    plan: &dyn Fn() -> std::result::Result<TrainPlan, String>,
) -> Result<CheckReport> {
    let is_local = opts.model.starts_with("local:");
    let terms = openai_terms(&opts.model);
    let max_tokens = opts.max_tokens.unwrap_or(match (is_local, terms) {
        (true, _) => DEFAULT_MAX_LEN,
        (false, Some(t)) => t.max_tokens,
        (false, None) => 65_536,
    });
    let train = check_file(&opts.file, counter, max_tokens)?;
    if train.rows == 0 {
        bail!("{} holds no examples", opts.file.display());
    }
    let val_path = opts
        .val
        .clone()
        .or_else(|| Some(default_val_file(&opts.file)).filter(|p| p.is_file()));
    let val = val_path.map(|p| check_file(&p, counter, max_tokens)).transpose()?;
    let val_prompts_in_train = val
        .as_ref()
        .map(|v| v.prompts.iter().filter(|p| train.prompts.contains(*p)).count())
        .unwrap_or(0);
    let n = train.tokens.len();
    let (openai, local) = if is_local {
        let epochs = opts.epochs.unwrap_or(1);
        let tokens_per_epoch: usize = train.tokens.iter().map(|t| t.total).filter(|&t| t <= max_tokens).sum();
        // The trainer's plan costs a Python start and a tokenization of the
        // file: only for a file that can be trained on, and a speed it serves.
        let formats_ok = train.error_count() == 0 && val.as_ref().is_none_or(|v| v.error_count() == 0);
        let plan = match (formats_ok, opts.tokens_per_s) {
            (true, None) => plan(),
            (false, _) => Err("no plan for a file with format errors".to_string()),
            (true, Some(_)) => Err("--tokens-per-s is given".to_string()),
        };
        let rate = local_rate(opts.tokens_per_s, local_speed, plan.as_ref().map_err(String::as_str));
        let tokens = match (&plan, rate.computed) {
            (Ok(p), true) => p.computed_tokens,
            _ => epochs as usize * tokens_per_epoch,
        };
        let seconds = rate.speed.map(|s| tokens as f64 / s.max(1e-9));
        (
            None,
            Some(LocalEstimate {
                epochs,
                tokens_per_epoch,
                plan: plan.ok(),
                computed_tokens_per_s: rate.speed.filter(|_| rate.computed),
                tokens_per_s: rate.speed.filter(|_| !rate.computed),
                speed_source: rate.source,
                seconds,
            }),
        )
    } else {
        let epochs = opts.epochs.unwrap_or_else(|| openai_default_epochs(n));
        let billed_tokens_per_epoch: usize = train.tokens.iter().map(|t| t.total.min(max_tokens)).sum();
        let billed_tokens = billed_tokens_per_epoch * epochs as usize;
        let price = opts.price.or(terms.map(|t| t.usd_per_million));
        (
            Some(OpenAiEstimate {
                epochs,
                billed_tokens_per_epoch,
                billed_tokens,
                usd_per_million: price,
                cost_usd: price.map(|p| p * billed_tokens as f64 / 1e6),
            }),
            None,
        )
    };
    Ok(CheckReport {
        model: opts.model.clone(),
        tokenizer: counter.describe(),
        max_tokens,
        train,
        val,
        val_prompts_in_train,
        openai,
        local,
    })
}

struct LocalRate {
    speed: Option<f64>,
    computed: bool,
    source: String,
}

/// The speed a local training time is estimated at. Computed tokens when
/// both the plan and a measured computed rate are known: that rate hardly
/// depends on the data (62.0 and 61.8 tokens/s for Spider's plain and
/// retrieval prompts on this project's 2-core machine), while the rate of
/// examples' tokens follows how much packing saves (237 against 137).
fn local_rate(
    given: Option<f64>,
    measured: Option<MeasuredSpeed>,
    plan: std::result::Result<&TrainPlan, &str>,
) -> LocalRate {
    let rate = |speed, computed, source: String| LocalRate {
        speed: Some(speed),
        computed,
        source,
    };
    match (given, measured) {
        (Some(s), _) => rate(s, false, "--tokens-per-s, tokens of examples a second".into()),
        (None, Some(m)) => match (m.computed_tokens_per_s, plan) {
            (Some(c), Ok(_)) => rate(c, true, format!("{}; the trainer's packing plan", m.source)),
            (_, Err(why)) => rate(
                m.tokens_per_s,
                false,
                format!(
                    "{}, in tokens of examples: rough, since packing computes a share of them that depends on \
                     the prompts, and there is no plan of this file: {why}",
                    m.source
                ),
            ),
            (None, Ok(_)) => rate(
                m.tokens_per_s,
                false,
                format!(
                    "{}, in tokens of examples (its run did not count computed tokens): rough",
                    m.source
                ),
            ),
        },
        (None, None) => LocalRate {
            speed: None,
            computed: false,
            source: "no adapter trained on this model yet: pass --tokens-per-s".into(),
        },
    }
}

/// The report as text: one block per file, then the estimate.
pub fn render_text(r: &CheckReport) -> String {
    let mut out = format!(
        "tokens counted with {} (limit {} per example)\n",
        r.tokenizer, r.max_tokens
    );
    for (label, f) in std::iter::once(("training", &r.train)).chain(r.val.iter().map(|v| ("validation", v))) {
        out.push_str(&format!(
            "\n{label} file {}: {} rows ({} format)\n",
            f.path.display(),
            f.rows,
            f.format.unwrap_or("unknown")
        ));
        if f.format_errors.is_empty() {
            out.push_str("  format: no errors\n");
        }
        for (kind, lines) in &f.format_errors {
            let shown: Vec<String> = lines.iter().take(5).map(|l| l.to_string()).collect();
            let more = if lines.len() > 5 {
                format!(" and {} more", lines.len() - 5)
            } else {
                String::new()
            };
            out.push_str(&format!(
                "  ERROR {kind}: {} rows (lines {}{more})\n",
                lines.len(),
                shown.join(", ")
            ));
        }
        let warn = |n: usize, what: &str| {
            if n > 0 {
                format!("  warning: {what}: {n}\n")
            } else {
                String::new()
            }
        };
        out.push_str(&warn(f.missing_system, "rows without a system message"));
        out.push_str(&warn(f.missing_user, "rows without a user message"));
        out.push_str(&warn(f.duplicates, "rows identical to an earlier row"));
        out.push_str(&warn(
            f.conflicting,
            "rows whose prompt an earlier row has with another answer",
        ));
        out.push_str(&warn(
            f.over_limit.len(),
            &format!("examples over {} tokens (left out of training)", r.max_tokens),
        ));
        for (what, d) in [
            ("tokens per example", &f.token_stats),
            ("answer tokens", &f.answer_token_stats),
        ] {
            if let Some(d) = d {
                out.push_str(&format!(
                    "  {what}: min {}, p10 {}, median {}, mean {:.1}, p90 {}, max {}\n",
                    d.min, d.p10, d.median, d.mean, d.p90, d.max
                ));
            }
        }
        out.push_str(&format!(
            "  {} tokens in all, {} of them answers (where the loss is)\n",
            f.total_tokens, f.answer_tokens
        ));
    }
    if r.val.is_some() {
        out.push_str(&format!(
            "\nvalidation prompts also in the training file: {}\n",
            r.val_prompts_in_train
        ));
    }
    if let Some(o) = &r.openai {
        let cost = match (o.cost_usd, o.usd_per_million) {
            (Some(c), Some(p)) => format!("about ${c:.2} at ${p:.2} per 1M training tokens"),
            _ => "price unknown for this model: pass --price".to_string(),
        };
        out.push_str(&format!(
            "\n{}: {} epochs (default for {} examples), {} billed tokens per epoch, {} in all: {cost}\n",
            r.model,
            o.epochs,
            r.train.tokens.len(),
            o.billed_tokens_per_epoch,
            o.billed_tokens
        ));
    }
    if let Some(l) = &r.local {
        let speed = match (l.computed_tokens_per_s, l.tokens_per_s) {
            (Some(c), _) => Some(format!("{c:.0} computed tokens/s")),
            (None, Some(t)) => Some(format!("{t:.0} tokens/s")),
            (None, None) => None,
        };
        let time = match (l.seconds, speed) {
            (Some(s), Some(speed)) => format!(
                "about {} at {speed} ({})",
                humantime::format_duration(std::time::Duration::from_secs(s as u64)),
                l.speed_source
            ),
            _ => l.speed_source.clone(),
        };
        let planned = l
            .plan
            .as_ref()
            .map(|p| {
                format!(
                    " ({} computed once packed, {} steps in all)",
                    p.computed_tokens_per_epoch, p.steps
                )
            })
            .unwrap_or_default();
        out.push_str(&format!(
            "\nlocal training on {}: {} epoch(s) of {} tokens{planned}: {time}\n",
            r.model, l.epochs, l.tokens_per_epoch
        ));
    }
    out.push_str(if r.ok() {
        "\nno format errors: ready to train\n"
    } else {
        "\nformat errors above: fix them (or re-export) before training\n"
    });
    out
}

/// A local model's counts: its GGUF's vocabulary and chat template
/// ([`crate::llm::local::ChatTokenizer`]).
#[cfg(feature = "local-models")]
pub struct LocalCounter {
    name: String,
    tokenizer: crate::llm::local::ChatTokenizer,
}

#[cfg(feature = "local-models")]
impl LocalCounter {
    /// The tokenizer of `local:NAME` (installing a known model where it is
    /// missing).
    pub fn new(model: &str) -> Result<LocalCounter> {
        let name = model.strip_prefix("local:").unwrap_or(model);
        let resolved = crate::models::local_ref::LocalRef::parse(name)?.resolve()?;
        let tokenizer = crate::llm::local::ChatTokenizer::load(&resolved.install()?)?;
        Ok(LocalCounter {
            name: resolved.display,
            tokenizer,
        })
    }
}

#[cfg(feature = "local-models")]
impl TokenCounter for LocalCounter {
    fn describe(&self) -> String {
        format!("the vocabulary and chat template of {}'s GGUF", self.name)
    }

    fn count(&self, messages: &[Message]) -> Result<Tokens> {
        let (prompt, answer) = messages.split_at(messages.len().saturating_sub(1));
        let answer = answer
            .first()
            .map(|m| self.tokenizer.answer_tokens(&m.content))
            .unwrap_or(0);
        Ok(Tokens {
            total: self.tokenizer.prompt_tokens(prompt)? + answer,
            answer,
        })
    }
}

/// The training speed measured by the newest adapter trained on `model`'s
/// base, with where it comes from.
pub fn measured_local_speed(model: &str) -> Option<MeasuredSpeed> {
    let name = model.strip_prefix("local:").unwrap_or(model);
    let sha = crate::models::local_ref::LocalRef::parse(name)
        .ok()?
        .resolve()
        .ok()?
        .sha256;
    crate::models::adapters::list_adapters()
        .into_iter()
        .filter(|a| a.base_sha256 == sha)
        .filter_map(|a| {
            let h = &a.hyperparameters;
            let device = a.outcome["device"]
                .as_str()
                .map(|d| format!(", on {d}"))
                .unwrap_or_default();
            let how = format!(
                "{}, batches of {}{device}",
                if h["packing"] == false { "unpacked" } else { "packed" },
                h["batch_size"],
            );
            let speed = MeasuredSpeed {
                tokens_per_s: a.outcome.get("tokens_per_s")?.as_f64()?,
                computed_tokens_per_s: a.outcome.get("computed_tokens_per_s").and_then(|v| v.as_f64()),
                source: format!("measured by adapter {} ({how}), trained {}", a.name, a.created),
            };
            Some((a.created, speed))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, speed)| speed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_time_is_estimated_in_computed_tokens_only_with_a_plan_and_a_computed_rate() {
        let measured = MeasuredSpeed {
            tokens_per_s: 237.0,
            computed_tokens_per_s: Some(62.0),
            source: "measured by adapter a".into(),
        };
        let plan = TrainPlan {
            examples: 2044,
            skipped_too_long: 0,
            steps: 371,
            tokens_per_epoch: 1_227_883,
            computed_tokens_per_epoch: 552_865,
            computed_tokens: 552_865,
        };
        let planned = local_rate(None, Some(measured.clone()), Ok(&plan));
        assert!(planned.computed && planned.speed == Some(62.0), "{}", planned.source);
        let unplanned = local_rate(None, Some(measured.clone()), Err("not installed"));
        assert!(!unplanned.computed && unplanned.speed == Some(237.0));
        assert!(
            unplanned.source.contains("rough") && unplanned.source.contains("not installed"),
            "{}",
            unplanned.source
        );
        let older = MeasuredSpeed {
            computed_tokens_per_s: None,
            ..measured.clone()
        };
        let older = local_rate(None, Some(older), Ok(&plan));
        assert!(!older.computed && older.source.contains("rough"), "{}", older.source);
        let given = local_rate(Some(100.0), Some(measured), Ok(&plan));
        assert!(!given.computed && given.speed == Some(100.0));
        assert!(local_rate(None, None, Ok(&plan)).speed.is_none());
    }

    #[test]
    fn default_epochs_follow_the_cookbook() {
        assert_eq!(openai_default_epochs(10), 10);
        assert_eq!(openai_default_epochs(20), 5);
        assert_eq!(openai_default_epochs(2), 25);
        assert_eq!(openai_default_epochs(1000), 3);
        assert_eq!(openai_default_epochs(8333), 3);
        assert_eq!(openai_default_epochs(10_000), 2);
        assert_eq!(openai_default_epochs(30_000), 1);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let d = Distribution::of(&[5, 1, 4, 2, 3, 6, 7, 8, 9, 10]).unwrap();
        assert_eq!((d.min, d.p10, d.median, d.p90, d.max), (1, 1, 5, 9, 10));
        assert_eq!(d.mean, 5.5);
        assert!(Distribution::of(&[]).is_none());
    }

    #[test]
    fn row_checks_name_each_problem() {
        let kinds = |v: Value| check_row(&v).err().unwrap_or_default();
        assert_eq!(
            kinds(serde_json::json!([1])),
            vec!["data_type: the row is not a JSON object"]
        );
        assert!(kinds(serde_json::json!({"x": 1}))[0].starts_with("missing_messages_list"));
        let bad = kinds(serde_json::json!({"messages": [
            {"role": "user", "content": "q", "extra": 1},
            {"role": "robot", "content": ""},
        ]}));
        for k in [
            "message_unrecognized_key",
            "unrecognized_role",
            "missing_content",
            "example_missing_assistant_message",
        ] {
            assert!(bad.iter().any(|b| b.starts_with(k)), "{k} not in {bad:?}");
        }
        let good = check_row(&serde_json::json!({"messages": [
            {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}
        ]}));
        assert_eq!(good.unwrap().len(), 2);
    }
}
