//! The `run` command: every selected question through every strategy against
//! a chat model, scored as `eval` scores, checkpointed example by example.

pub mod record;
pub mod select;
pub mod summary;

use crate::dataset::DbInfo;
use crate::dataset::{Example, Spider, Split, resolve_data_dir};
use crate::eval::exact::hardness;
use crate::eval::judge::{JudgeConfig, Mode, Status};
use crate::eval::parse::get_sql;
use crate::eval::score::{Record, Scorer};
use crate::exec::sandbox::{DEFAULT_TIMEOUT_SECS, Limits, off_async};
use crate::llm::cache::{CacheArgs, CachedModel};
use crate::llm::client::{ClientArgs, OpenAiClient};
use crate::llm::local::LocalStats;
use crate::llm::pricing::PriceTable;
use crate::llm::{ChatModel, LlmError, ModelIdentity};
use crate::retrieval::embed::{EmbedderSettings, embedder_for};
use crate::retrieval::pool::ExamplePool;
use crate::strategy::registry::{build, expand, find};
use crate::strategy::spec::StrategySpec;
use crate::strategy::step::Resources;
use crate::strategy::{Env, Prediction, Question, Strategy};
use anyhow::{Context, Result, bail};
use futures::StreamExt;
use record::{Checkpoint, RECORD_FORMAT, RunRecord, rewrite_sorted};
use select::{Selection, select};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use summary::{StrategySummary, summarize_run};

/// The options of `spider-bench run` (its command-line arguments).
#[derive(Debug, Clone, clap::Args)]
pub struct RunOptions {
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Strategies, comma-separated: rungs (zero-shot, few-shot, cot, exec-retry,
    /// self-consistency, rag-*, decompose), compositions with '+'
    /// (decompose+exec-retry), TOML files, list files (ladder) or Rust
    /// strategies; `spider-bench strategies` lists them with their steps.
    #[arg(long = "strategy", value_name = "STRATEGY", value_delimiter = ',', required = true)]
    pub strategies: Vec<String>,
    /// Folder of TOML strategy files.
    #[arg(long, default_value = "strategies")]
    pub strategies_dir: PathBuf,
    /// Model name as the server knows it, or local:NAME for a model run in
    /// this process (see `models list`). Default: local:qwen2.5-coder-0.5b
    /// when neither an API key nor --base-url is given.
    #[arg(long)]
    pub model: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
    #[arg(long, value_enum, default_value = "dev")]
    pub split: Split,
    #[command(flatten)]
    pub selection: Selection,
    /// Run folder (default: results/runs/<time>-<model>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Continue the run in --out, skipping finished examples.
    #[arg(long, requires = "out")]
    pub resume: bool,
    #[command(flatten)]
    pub cache: CacheArgs,
    #[arg(long, value_enum, default_value = "official")]
    pub mode: Mode,
    /// Time limit per SQL execution, in seconds.
    #[arg(long, default_value_t = DEFAULT_TIMEOUT_SECS)]
    pub timeout_secs: f64,
    /// Price table overrides (TOML: [models."name"] input = .., output = .., USD per 1M tokens).
    #[arg(long, value_name = "FILE")]
    pub prices: Option<PathBuf>,
    /// No progress bar.
    #[arg(long = "quiet", action = clap::ArgAction::SetFalse)]
    pub progress: bool,
    /// Stop the run after this many questions in a row got no answer from
    /// the model (endpoint down, timeouts, 5xx past the retries); they are
    /// recorded as `error` and asked again by --resume.
    #[arg(long = "max-errors-in-a-row", value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_errors_in_a_row: u64,
    /// Resume even though the folder was made by another spider-bench
    /// version, other steps or prompts, other scoring or other data (the
    /// differences are listed, and recorded in config.json).
    #[arg(long, requires = "resume")]
    pub force: bool,
}

impl RunOptions {
    /// The command line's defaults for everything but what must be chosen.
    pub fn new(strategies: Vec<String>, model: &str) -> Self {
        let mut o: RunOptions = crate::cli::parse(&["--strategy", "-"]);
        o.strategies = strategies;
        o.model = Some(model.to_string());
        o
    }

    /// `--model`, else the default model (see [`default_model`]).
    pub fn model_name(&self) -> Result<String> {
        match &self.model {
            Some(m) => Ok(m.clone()),
            None => default_model(self.client.base_url.is_some(), &self.client.api_key_env),
        }
    }
}

/// What a run folder's `config.json` records: enough to replay the run,
/// and to refuse resuming it with something else.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunConfig {
    /// The record format of its predictions.jsonl ([`RECORD_FORMAT`]); 0 in
    /// folders made before it was recorded.
    #[serde(default)]
    pub format_version: u32,
    pub tool_version: String,
    pub model: ModelIdentity,
    /// The name of the variable the key was read from (never the key).
    pub api_key_env: String,
    pub split: String,
    pub selection: Selection,
    pub ids: Vec<usize>,
    pub strategies: Vec<StrategyEntry>,
    pub scoring: ScoringConfig,
    /// SHA-256 of the data files the run reads: the split, tables.json, the
    /// gold file and every database file of its questions (by path under
    /// the data folder).
    pub data_hashes: BTreeMap<String, String>,
    /// Resumes that `--force` let through, with what differed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forced_resumes: Vec<ForcedResume>,
}

/// A resume despite differences (`run --resume --force`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ForcedResume {
    pub tool_version: String,
    pub differences: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StrategyEntry {
    pub name: String,
    pub description: String,
    pub parameters: serde_json::Value,
    /// The model of a strategy bound to one other than the run's
    /// ([`Strategy::model`]); absent for those on the run's model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelIdentity>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScoringConfig {
    pub mode: Mode,
    pub timeout_secs: f64,
}

pub const CONFIG_FILE: &str = "config.json";

/// What a finished run produced.
pub struct RunOutcome {
    pub dir: PathBuf,
    pub records: Vec<RunRecord>,
    pub summaries: Vec<StrategySummary>,
    /// Why the run stopped early, if it did.
    pub execution: Execution,
    /// Calls that reached the model (HTTP requests, or local generations)
    /// in this invocation: 0 when everything came from the cache.
    pub backend_calls: u64,
    pub cache_hits: u64,
    /// Speed counters of each embedded model the run used, by model name.
    pub local_stats: Vec<(String, Arc<LocalStats>)>,
}

fn sha256_file(path: &Path) -> Option<String> {
    std::fs::read(path).ok().map(|b| hex::encode(Sha256::digest(b)))
}

fn utc_stamp() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .replace([':', '-'], "")
        .replace('T', "-")
        .trim_end_matches('Z')
        .to_string()
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Databases as strategies see them.
fn db_infos(spider: &Spider, scorer: &Scorer, examples: &[&Example]) -> Result<BTreeMap<String, Arc<DbInfo>>> {
    let schemas = spider.load_schemas()?;
    let mut out = BTreeMap::new();
    for e in examples {
        if out.contains_key(&e.db_id) {
            continue;
        }
        let Some(schema) = schemas.get(&e.db_id) else {
            continue;
        };
        // A damaged database file is never opened by a strategy either.
        let sqlite = scorer
            .context(&e.db_id)
            .filter(|c| c.missing.is_none())
            .and_then(|c| c.files.first().cloned());
        out.insert(
            e.db_id.clone(),
            Arc::new(DbInfo {
                db_id: e.db_id.clone(),
                schema: schema.clone(),
                sqlite,
            }),
        );
    }
    Ok(out)
}

/// The example pool of every train question (train_spider, and
/// train_others when present).
pub fn load_pool(spider: &Spider) -> Result<Arc<ExamplePool>> {
    pool_of(spider, &load_train(spider)?)
}

/// The train questions: train_spider, then train_others when present (its
/// ids continue after train_spider's).
pub fn load_train(spider: &Spider) -> Result<Vec<Example>> {
    let mut train = spider
        .load_split(Split::Train)
        .context("example strategies take their examples from the train split")?;
    // train_others joins the pool when present (ids continue after train_spider).
    if spider.root.join(Split::TrainOthers.file_name()).is_file() {
        let offset = train.len();
        train.extend(spider.load_split(Split::TrainOthers)?.into_iter().map(|mut e| {
            e.id += offset;
            e
        }));
    }
    Ok(train)
}

/// The example pool of these train questions, with their databases.
pub fn pool_of(spider: &Spider, train: &[Example]) -> Result<Arc<ExamplePool>> {
    let scorer = Scorer::new(spider, train, JudgeConfig::default())?;
    let refs: Vec<&Example> = train.iter().collect();
    let dbs = db_infos(spider, &scorer, &refs)?;
    Ok(Arc::new(ExamplePool::new(train, dbs)))
}

/// The databases of these questions as strategies see them (schema, and
/// the SQLite file when it is present and sound).
pub fn databases_of(spider: &Spider, examples: &[Example]) -> Result<BTreeMap<String, Arc<DbInfo>>> {
    let scorer = Scorer::new(spider, examples, JudgeConfig::default())?;
    let refs: Vec<&Example> = examples.iter().collect();
    db_infos(spider, &scorer, &refs)
}

/// The model of the run behind the cache: the embedded llama.cpp model for
/// "local:NAME" (loaded only when the cache cannot answer everything, so a
/// replay needs no weights), else the HTTP client.
fn build_model(opts: &RunOptions, model: &str) -> Result<(Arc<CachedModel>, Option<Arc<LocalStats>>)> {
    let (cache, mode) = (opts.cache.open()?, opts.cache.mode());
    if model.starts_with("local:") {
        // The questions in flight are decoded together, one sequence each
        // (more for the samples of self-consistency, as sequences free up).
        let sequences = u32::try_from(opts.client.concurrency.clamp(1, 64)).expect("at most 64");
        let (backend, stats) = crate::llm::local::generator(model, sequences)?;
        return Ok((Arc::new(CachedModel::new(backend, cache, mode)), Some(stats)));
    }
    let client = Arc::new(OpenAiClient::new(opts.client.config(model, mode)?)?);
    Ok((Arc::new(CachedModel::new(client, cache, mode)), None))
}

/// The model a run uses when `--model` is not given: the local default
/// where no API key and no `--base-url` are set; otherwise the user must say.
fn default_model(base_url_given: bool, api_key_env: &str) -> Result<String> {
    let has_key = std::env::var(api_key_env).is_ok_and(|k| !k.trim().is_empty());
    if base_url_given || has_key {
        bail!(
            "name the model with --model (the name the server knows, e.g. gpt-4o-mini), \
             or --model local:{} for the embedded model",
            crate::models::DEFAULT_GENERATION_MODEL
        );
    }
    Ok(format!("local:{}", crate::models::DEFAULT_GENERATION_MODEL))
}

/// Runs the strategies and returns the scored records.
pub fn run(opts: &RunOptions) -> Result<RunOutcome> {
    let model_name = opts.model_name()?;
    let questions = load_questions(opts)?;
    let ids = select_questions(&questions, opts)?;
    let chosen: Vec<&Example> = ids.iter().map(|&i| &questions.examples[i]).collect();
    let dbs = db_infos(&questions.spider, &questions.scorer, &chosen)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let strategies = build_strategies(&questions.spider, opts, &runtime)?;
    let models = RunModels::build(opts, &model_name, &strategies)?;
    let rungs = models.bind(&strategies, &questions.limits);
    let config = run_config(opts, &questions, &ids, &rungs, models.identity(&model_name));
    let dir = run_dir(opts, &model_name);
    prepare_dir(&dir, &config, opts)?;
    let ctx = RunContext {
        scorer: questions.scorer,
        dbs,
        prices: load_prices(opts)?,
    };
    let execution = runtime.block_on(execute(&ctx, &rungs, &chosen, &dir, opts))?;
    let order: Vec<String> = strategies.iter().map(|s| s.name().to_string()).collect();
    let (records, summaries) = write_summary(&dir, &order, ids.len())?;
    Ok(RunOutcome {
        dir,
        records,
        summaries,
        execution,
        backend_calls: models.backend_calls(),
        cache_hits: models.cache_hits(),
        local_stats: models.local_stats(),
    })
}

/// The models of a run: `--model`, and every model a strategy is bound to,
/// each behind the cache (a local one is loaded only when its first
/// request misses the cache).
struct RunModels {
    /// `--model` (or the default model).
    run_model: String,
    by_name: BTreeMap<String, (Arc<CachedModel>, Option<Arc<LocalStats>>)>,
}

/// A strategy with the model it runs on.
struct Rung {
    strategy: Arc<dyn Strategy>,
    env: Arc<Env>,
    /// The model's name as given (prices are looked up by it).
    model_name: String,
    /// Whether it runs on another model than the run's.
    bound: bool,
}

impl RunModels {
    fn build(opts: &RunOptions, run_model: &str, strategies: &[Arc<dyn Strategy>]) -> Result<RunModels> {
        let mut by_name = BTreeMap::new();
        by_name.insert(
            run_model.to_string(),
            build_model(opts, run_model).with_context(|| format!("--model {run_model}"))?,
        );
        for s in strategies {
            let Some(name) = s.model() else { continue };
            if !by_name.contains_key(name) {
                let built =
                    build_model(opts, name).with_context(|| format!("strategy {} runs on model {name}", s.name()))?;
                by_name.insert(name.to_string(), built);
            }
        }
        Ok(RunModels {
            run_model: run_model.to_string(),
            by_name,
        })
    }

    fn identity(&self, name: &str) -> ModelIdentity {
        self.by_name[name].0.identity()
    }

    /// Each strategy with its model: its own, else the run's. Strategies on
    /// one model share its environment (and so its schema cache).
    fn bind(&self, strategies: &[Arc<dyn Strategy>], limits: &Limits) -> Vec<Rung> {
        let mut envs: BTreeMap<&str, Arc<Env>> = BTreeMap::new();
        strategies
            .iter()
            .map(|s| {
                let name = s.model().unwrap_or(&self.run_model);
                let env = envs
                    .entry(name)
                    .or_insert_with(|| {
                        Arc::new(Env {
                            model: self.by_name[name].0.clone() as Arc<dyn ChatModel>,
                            limits: limits.clone(),
                            schemas: Default::default(),
                        })
                    })
                    .clone();
                Rung {
                    strategy: s.clone(),
                    env,
                    model_name: name.to_string(),
                    bound: name != self.run_model,
                }
            })
            .collect()
    }

    fn backend_calls(&self) -> u64 {
        self.by_name.values().map(|(m, _)| m.backend_calls()).sum()
    }

    fn cache_hits(&self) -> u64 {
        self.by_name
            .values()
            .map(|(m, _)| m.stats.hits.load(Ordering::Relaxed))
            .sum()
    }

    fn local_stats(&self) -> Vec<(String, Arc<LocalStats>)> {
        self.by_name
            .iter()
            .filter_map(|(name, (_, stats))| stats.clone().map(|s| (name.clone(), s)))
            .collect()
    }
}

/// The questions of the split, with the scorer of their databases and the
/// execution limits.
struct Questions {
    spider: Spider,
    examples: Vec<Example>,
    scorer: Arc<Scorer>,
    limits: Limits,
}

fn load_questions(opts: &RunOptions) -> Result<Questions> {
    let spider = Spider::open(&resolve_data_dir(opts.data.as_deref()))?;
    let examples = spider.load_split(opts.split)?;
    let limits = Limits {
        timeout: Duration::from_secs_f64(opts.timeout_secs),
        ..Limits::default()
    };
    let judge = JudgeConfig {
        mode: opts.mode,
        limits: limits.clone(),
        ..JudgeConfig::default()
    };
    let scorer = Arc::new(Scorer::new(&spider, &examples, judge)?);
    Ok(Questions {
        spider,
        examples,
        scorer,
        limits,
    })
}

/// The ids of the questions the selection keeps.
fn select_questions(questions: &Questions, opts: &RunOptions) -> Result<Vec<usize>> {
    let candidates: Vec<select::Candidate> = questions
        .examples
        .iter()
        .map(|e| {
            let ctx = questions.scorer.context(&e.db_id).expect("context per database");
            select::Candidate {
                id: e.id,
                db_id: e.db_id.clone(),
                hardness: get_sql(&ctx.parse_schema, &e.gold).ok().map(|s| hardness(&s)),
                scorable: ctx.missing.is_none(),
            }
        })
        .collect();
    let ids = select(&candidates, &opts.selection);
    if ids.is_empty() {
        bail!(
            "no question matches the selection (split {}, {:?})",
            opts.split.name(),
            opts.selection
        );
    }
    Ok(ids)
}

/// The strategies, with what they need built first: the example pool, and
/// the pool's embeddings for the similarities they name.
fn build_strategies(
    spider: &Spider,
    opts: &RunOptions,
    runtime: &tokio::runtime::Runtime,
) -> Result<Vec<Arc<dyn Strategy>>> {
    let names = expand(&opts.strategies, &opts.strategies_dir);
    let found = names
        .iter()
        .map(|n| find(n, &opts.strategies_dir))
        .collect::<Result<Vec<StrategySpec>>>()?;
    let pool = if found.iter().any(|f| f.needs_examples()) {
        Some(load_pool(spider)?)
    } else {
        None
    };
    let resources = resources_for(&found, pool, opts, runtime)?;
    found.iter().map(|f| build(f, &resources)).collect()
}

/// What building the strategies `found` needs: the example pool (when one
/// shows examples) and its embeddings for the similarities they name.
pub fn resources_for(
    found: &[StrategySpec],
    pool: Option<Arc<ExamplePool>>,
    opts: &RunOptions,
    runtime: &tokio::runtime::Runtime,
) -> Result<Resources> {
    let dense = match &pool {
        Some(pool) => runtime.block_on(prepare_dense(found, pool, opts))?,
        None => Default::default(),
    };
    Ok(Resources {
        pool,
        dense,
        strategies_dir: opts.strategies_dir.clone(),
    })
}

/// What `config.json` records of this run.
fn run_config(
    opts: &RunOptions,
    questions: &Questions,
    ids: &[usize],
    rungs: &[Rung],
    model: ModelIdentity,
) -> RunConfig {
    let (spider, scorer) = (&questions.spider, &questions.scorer);
    RunConfig {
        format_version: RECORD_FORMAT,
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        model,
        api_key_env: opts.client.api_key_env.clone(),
        split: opts.split.name().to_string(),
        selection: opts.selection.clone(),
        ids: ids.to_vec(),
        strategies: rungs
            .iter()
            .map(|r| StrategyEntry {
                name: r.strategy.name().into(),
                description: r.strategy.description().into(),
                parameters: r.strategy.parameters(),
                model: r.bound.then(|| r.env.model.identity()),
            })
            .collect(),
        scoring: ScoringConfig {
            mode: opts.mode,
            timeout_secs: opts.timeout_secs,
        },
        data_hashes: data_hashes(spider, scorer, opts.split, &questions.examples, ids),
        forced_resumes: Vec::new(),
    }
}

/// SHA-256 of every data file the questions `ids` are answered and judged
/// from (36 MB for all of Spider's databases: a fraction of a second).
fn data_hashes(
    spider: &Spider,
    scorer: &Scorer,
    split: Split,
    examples: &[Example],
    ids: &[usize],
) -> BTreeMap<String, String> {
    let mut files: Vec<PathBuf> = [split.file_name(), "tables.json", split.gold_file_name()]
        .iter()
        .map(|f| spider.root.join(f))
        .collect();
    let dbs: std::collections::BTreeSet<&str> = ids
        .iter()
        .filter_map(|&i| examples.get(i))
        .map(|e| e.db_id.as_str())
        .collect();
    for db in dbs {
        files.extend(scorer.context(db).map(|c| c.files.clone()).unwrap_or_default());
    }
    files
        .iter()
        .filter_map(|f| {
            let name = f
                .strip_prefix(&spider.root)
                .unwrap_or(f)
                .to_string_lossy()
                .replace('\\', "/");
            sha256_file(f).map(|h| (name, h))
        })
        .collect()
}

/// `--out`, else `results/runs/<time>-<model>`.
fn run_dir(opts: &RunOptions, model_name: &str) -> PathBuf {
    opts.out.clone().unwrap_or_else(|| {
        PathBuf::from("results")
            .join("runs")
            .join(format!("{}-{}", utc_stamp(), sanitize(model_name)))
    })
}

/// The default prices, with `--prices` overrides.
fn load_prices(opts: &RunOptions) -> Result<PriceTable> {
    let mut prices = PriceTable::with_defaults();
    if let Some(f) = &opts.prices {
        prices.load_overrides(f)?;
    }
    Ok(prices)
}

/// Rewrites the records in order and counts them; the comparison table
/// (`summary.md`, `summary.json`) is the reporter's (`commands::run`).
fn write_summary(dir: &Path, order: &[String], questions: usize) -> Result<(Vec<RunRecord>, Vec<StrategySummary>)> {
    let records = rewrite_sorted(dir, order)?;
    let summaries = summarize_run(&records, order, questions);
    Ok((records, summaries))
}

/// Embeds the pool once for every embedding similarity the strategies use
/// ("openai:MODEL": the embeddings API of the run's endpoint, same key and
/// cache). Vectors are stored beside the LLM cache.
async fn prepare_dense(
    found: &[StrategySpec],
    pool: &Arc<ExamplePool>,
    opts: &RunOptions,
) -> Result<BTreeMap<String, Arc<crate::retrieval::select::Similarity>>> {
    use crate::retrieval::select::Similarity;
    let mut out = BTreeMap::new();
    let store = crate::paths::embeddings_dir(opts.cache.file.as_deref());
    for spec in found.iter().filter(|s| s.needs_examples()) {
        let name = spec
            .params_of("examples")
            .and_then(|p| p.get("similarity"))
            .and_then(|v| v.as_str())
            .unwrap_or("bm25")
            .to_string();
        if name == "bm25" || out.contains_key(&name) {
            continue;
        }
        let settings = EmbedderSettings {
            client: &opts.client,
            cache: &opts.cache,
        };
        let embedder = embedder_for(&name, &settings).with_context(|| format!("strategy {}", spec.name))?;
        out.insert(name.clone(), Arc::new(Similarity::dense(embedder, pool, &store).await?));
    }
    Ok(out)
}

/// Creates the run folder, or checks that a resumed one was made for the
/// same run by the same version with the same data (`--force` lets a
/// different version, steps, prompts, scoring or data through, and records
/// that it did).
fn prepare_dir(dir: &Path, config: &RunConfig, opts: &RunOptions) -> Result<()> {
    let config_path = dir.join(CONFIG_FILE);
    if !config_path.exists() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        return write_config(&config_path, config);
    }
    if !opts.resume {
        bail!(
            "{} already holds a run; pass --resume to continue it, or choose another --out",
            dir.display()
        );
    }
    let mut old: RunConfig = serde_json::from_str(&std::fs::read_to_string(&config_path)?)
        .with_context(|| format!("{} is not a spider-bench run configuration", config_path.display()))?;
    let (another_run, forceable) = differences(&old, config);
    if !another_run.is_empty() {
        bail!(
            "{} was made for another run ({}); resume it with the same arguments, or choose another --out",
            dir.display(),
            another_run.join("; ")
        );
    }
    if forceable.is_empty() {
        return Ok(());
    }
    if !opts.force {
        bail!(
            "{} was made by another setup, so its records may not compare with new ones:\n  {}\n\
             rerun with the setup that made it, start another --out, or pass --force to resume anyway \
             (the differences are recorded in config.json)",
            dir.display(),
            forceable.join("\n  ")
        );
    }
    eprintln!("warning: resuming with --force despite:\n  {}", forceable.join("\n  "));
    old.forced_resumes.push(ForcedResume {
        tool_version: config.tool_version.clone(),
        differences: forceable,
    });
    write_config(&config_path, &old)
}

fn write_config(path: &Path, config: &RunConfig) -> Result<()> {
    crate::paths::write_atomically(path, serde_json::to_string_pretty(config)?.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// What differs between a folder's configuration and this invocation's:
/// (what makes it another run, what `--force` may let through).
fn differences(old: &RunConfig, new: &RunConfig) -> (Vec<String>, Vec<String>) {
    let mut another = Vec::new();
    let mut forceable = Vec::new();
    let names = |c: &RunConfig| c.strategies.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
    if old.model != new.model {
        another.push(format!("model {:?}, now {:?}", old.model.model, new.model.model));
    }
    if old.split != new.split {
        another.push(format!("split {}, now {}", old.split, new.split));
    }
    if old.ids != new.ids {
        another.push(format!(
            "{} questions, now {} (or other ones)",
            old.ids.len(),
            new.ids.len()
        ));
    }
    if names(old) != names(new) {
        another.push(format!(
            "strategies {}, now {}",
            names(old).join(","),
            names(new).join(",")
        ));
    }
    if old.format_version != new.format_version {
        forceable.push(format!(
            "record format {} (0: before formats were recorded), now {}",
            old.format_version, new.format_version
        ));
    }
    if old.tool_version != new.tool_version {
        forceable.push(format!("spider-bench {}, now {}", old.tool_version, new.tool_version));
    }
    for (a, b) in old.strategies.iter().zip(&new.strategies) {
        if a.model != b.model {
            let shown =
                |m: &Option<ModelIdentity>| m.as_ref().map_or("the run's model".to_string(), |m| m.model.clone());
            another.push(format!(
                "strategy {} ran on {}, now {}",
                a.name,
                shown(&a.model),
                shown(&b.model)
            ));
        } else if a != b {
            forceable.push(format!("strategy {}: its steps, parameters or prompts differ", a.name));
        }
    }
    if old.scoring != new.scoring {
        forceable.push(format!("scoring {:?}, now {:?}", old.scoring, new.scoring));
    }
    let changed: Vec<&String> = new
        .data_hashes
        .iter()
        .filter(|(file, hash)| old.data_hashes.get(*file) != Some(hash))
        .map(|(file, _)| file)
        .collect();
    if !changed.is_empty() {
        let shown: Vec<&str> = changed.iter().take(5).map(|f| f.as_str()).collect();
        let more = changed.len().saturating_sub(shown.len());
        forceable.push(format!(
            "data: {}{} differ from the folder's (or were not fingerprinted)",
            shown.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ));
    }
    (another, forceable)
}

struct RunContext {
    scorer: Arc<Scorer>,
    dbs: BTreeMap<String, Arc<DbInfo>>,
    prices: PriceTable,
}

async fn answer(ctx: &RunContext, rung: &Rung, example: &Example) -> Result<RunRecord, LlmError> {
    let strategy = rung.strategy.as_ref();
    let scorable = ctx.scorer.context(&example.db_id).is_some_and(|c| c.missing.is_none());
    let prediction = match ctx.dbs.get(&example.db_id) {
        Some(db) if scorable => match strategy.predict(&Question { example, db }, &rung.env).await {
            Err(LlmError::Unavailable(e)) => Prediction {
                unavailable: Some(e),
                ..Default::default()
            },
            other => other?,
        },
        // Unscorable questions cost nothing: they are recorded as skipped.
        _ => Default::default(),
    };
    let scored = match &prediction.unavailable {
        // No answer to score: the record waits for a resume.
        Some(e) => Record {
            id: example.id,
            db_id: example.db_id.clone(),
            hardness: None,
            exec: None,
            exact: None,
            status: Status::Error,
            error: Some(format!("no answer from the model: {e}")),
            ms: 0.0,
            pred: None,
            gold: example.gold.clone(),
            official: None,
        },
        None => {
            let scorer = ctx.scorer.clone();
            let (e, sql) = (example.clone(), prediction.sql.clone());
            off_async(move || scorer.score_one(&e, sql.as_deref())).await
        }
    };
    let c = &prediction.completions;
    let (tokens_in, tokens_out) = (
        c.iter().map(|x| x.prompt_tokens).sum(),
        c.iter().map(|x| x.completion_tokens).sum(),
    );
    Ok(RunRecord {
        v: RECORD_FORMAT,
        id: example.id,
        strategy: strategy.name().to_string(),
        db_id: example.db_id.clone(),
        question: example.question.clone(),
        gold: example.gold.clone(),
        pred: prediction.sql,
        exec: scored.exec,
        exact: scored.exact,
        hardness: scored.hardness,
        status: scored.status,
        error: scored.error,
        model_failure: prediction.failure,
        tokens_in,
        tokens_out,
        // (+ 0.0: an empty f64 sum is -0.0)
        latency_ms: c.iter().map(|x| x.latency_ms).sum::<f64>() + 0.0,
        calls: c.len(),
        cost_usd: ctx.prices.cost(&rung.model_name, tokens_in, tokens_out),
        cache_keys: c.iter().map(|x| x.cache_key.clone()).collect(),
        candidates: prediction.candidates,
        trace: prediction.trace,
        loops_cut: c.iter().filter(|x| x.cut.is_some()).count(),
    })
}

/// How the questions of an invocation went.
#[derive(Debug, Default)]
pub struct Execution {
    /// Why the run stopped early: that many questions in a row got no
    /// answer from the model.
    pub stopped: Option<String>,
}

async fn execute(
    ctx: &RunContext,
    rungs: &[Rung],
    chosen: &[&Example],
    dir: &Path,
    opts: &RunOptions,
) -> Result<Execution> {
    let (mut checkpoint, existing) = Checkpoint::open(dir)?;
    let mut outcome = Execution::default();
    for line in existing.damage_report() {
        eprintln!(
            "warning: {line}; it is kept in {} and its record is asked for again",
            record::DAMAGED_FILE
        );
    }
    let done = existing.done_keys();
    // Strategy by strategy, database by database: consecutive prompts share
    // the system message and schema, which a local model keeps in its KV
    // cache (and an HTTP server with prompt caching, too).
    let mut by_db: Vec<&Example> = chosen.to_vec();
    by_db.sort_by(|a, b| (&a.db_id, a.id).cmp(&(&b.db_id, b.id)));
    let todo: Vec<(&Rung, &Example)> = rungs
        .iter()
        .flat_map(|r| by_db.iter().map(move |e| (r, *e)))
        .filter(|(r, e)| !done.contains(&(r.strategy.name().to_string(), e.id)))
        .collect();
    let bar = progress_bar(opts.progress, (todo.len() + done.len()) as u64, done.len() as u64);
    let kept: Vec<&RunRecord> = existing.records.iter().filter(|r| r.status != Status::Error).collect();
    let mut tally = Tally::from(kept);
    bar.set_message(tally.message());
    let mut results = futures::stream::iter(todo.into_iter().map(|(r, e)| answer(ctx, r, e)))
        .buffer_unordered(opts.client.concurrency.max(1));
    let mut in_a_row = 0u64;
    while let Some(result) = results.next().await {
        let record = result.map_err(|e| {
            bar.abandon();
            anyhow::anyhow!("run stopped: {e} (finished examples are saved; fix the problem and rerun with --resume)")
        })?;
        checkpoint.append(&record)?;
        tally.add(&record);
        bar.set_message(tally.message());
        bar.inc(1);
        // Only an answer from the model ends a series of errors (a skipped
        // question says nothing about the endpoint).
        match record.status {
            Status::Error => in_a_row += 1,
            s if s.is_scored() => in_a_row = 0,
            _ => {}
        }
        if in_a_row >= opts.max_errors_in_a_row {
            bar.abandon();
            outcome.stopped = Some(format!(
                "{in_a_row} questions in a row got no answer from the model; the last ({}, question {}): {}",
                record.strategy,
                record.id,
                record.error.as_deref().unwrap_or("")
            ));
            break;
        }
    }
    drop(results);
    checkpoint.sync()?;
    bar.finish();
    Ok(outcome)
}

fn progress_bar(visible: bool, total: u64, done: u64) -> indicatif::ProgressBar {
    let bar = if visible {
        indicatif::ProgressBar::new(total)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} [{elapsed_precise}, ETA {eta}]")
            .expect("valid template"),
    );
    bar.set_position(done);
    bar
}

/// Running totals for the progress line.
#[derive(Default)]
struct Tally {
    scored: usize,
    correct: usize,
    errors: usize,
    tokens: u64,
    cost: f64,
}

impl Tally {
    fn from<'a>(records: impl IntoIterator<Item = &'a RunRecord>) -> Self {
        let mut t = Tally::default();
        for r in records {
            t.add(r);
        }
        t
    }
    fn add(&mut self, r: &RunRecord) {
        if r.exec.is_some() {
            self.scored += 1;
            self.correct += usize::from(r.exec == Some(true));
        }
        self.errors += usize::from(r.status == Status::Error);
        self.tokens += r.tokens_in + r.tokens_out;
        self.cost += r.cost_usd;
    }
    fn message(&self) -> String {
        let acc = if self.scored == 0 {
            0.0
        } else {
            100.0 * self.correct as f64 / self.scored as f64
        };
        let errors = match self.errors {
            0 => String::new(),
            n => format!(" | {n} without an answer (endpoint errors)"),
        };
        format!("EX {acc:.1}% | {} tokens | ${:.4}{errors}", self.tokens, self.cost)
    }
}
