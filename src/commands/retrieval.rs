//! `spider-bench retrieval`: selectors scored against the gold, without
//! generating anything.

use crate::dataset::{Example, Spider, Split, resolve_data_dir};
use crate::llm::cache::CacheArgs;
use crate::llm::client::{ClientArgs, OPENAI_BASE_URL};
use crate::retrieval::embed::{EmbedderSettings, embedder_for};
use crate::retrieval::evaluate::{Selectors, evaluate, render};
use crate::retrieval::select::{Method, RankOptions};
use crate::run::record::{PREDICTIONS_FILE, PredictionsFile};
use crate::table::Format;
use anyhow::{Context, Result, bail};
use std::collections::HashMap;
use std::path::PathBuf;

#[derive(Debug, Clone, clap::Args)]
pub struct RetrievalArgs {
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "dev")]
    pub split: Split,
    /// Selectors, comma-separated.
    #[arg(
        long = "selector",
        value_name = "SELECTOR",
        value_enum,
        value_delimiter = ',',
        default_value = "random,question-similarity,masked-question-similarity,hyde,difficulty-matched,hyde-difficulty,dail"
    )]
    pub selectors: Vec<Method>,
    #[arg(long, default_value_t = 5)]
    pub k: usize,
    /// Hypothetical SQL for hyde/difficulty/dail: gold (upper bound), none, or RUN_DIR[:STRATEGY].
    #[arg(long, default_value = "gold")]
    pub preliminary: String,
    /// Question similarity: bm25, local:all-minilm-l6-v2, or openai:MODEL (with --base-url, --api-key-env).
    #[arg(long, default_value = "bm25")]
    pub similarity: String,
    #[arg(long, default_value = OPENAI_BASE_URL)]
    pub base_url: String,
    #[arg(long, default_value = "OPENAI_API_KEY")]
    pub api_key_env: String,
    #[command(flatten)]
    pub options: RankOptions,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

/// Hypothetical answers by question id.
fn preliminary_answers(spec: &str, examples: &[Example]) -> Result<HashMap<usize, String>> {
    match spec {
        "gold" => Ok(examples.iter().map(|e| (e.id, e.gold.clone())).collect()),
        "none" => Ok(HashMap::new()),
        run => {
            let (dir, strategy) = match run.rsplit_once(':') {
                Some((d, s)) if !s.contains('/') => (d, Some(s)),
                _ => (run, None),
            };
            let file = PredictionsFile::read(&PathBuf::from(dir).join(PREDICTIONS_FILE))?;
            if let Some(first) = file.damage_report().first() {
                bail!("{first}: rerun that run with --resume to redo the record, then use it here");
            }
            let records = file.records;
            if records.is_empty() {
                bail!("{dir} has no predictions: --preliminary takes gold, none, or a run folder (RUN_DIR[:STRATEGY])");
            }
            let strategy = strategy
                .map(str::to_string)
                .unwrap_or_else(|| records[0].strategy.clone());
            Ok(records
                .into_iter()
                .filter(|r| r.strategy == strategy)
                .filter_map(|r| r.pred.map(|p| (r.id, p)))
                .collect())
        }
    }
}

/// Embedding scores of every question, when the similarity is not BM25.
fn dense_scores(
    opts: &RetrievalArgs,
    pool: &std::sync::Arc<crate::retrieval::pool::ExamplePool>,
    questions: &[Example],
    schemas: &crate::dataset::SchemaSet,
) -> Result<Option<HashMap<usize, crate::retrieval::select::Scores>>> {
    if opts.similarity == "bm25" {
        return Ok(None);
    }
    // The endpoint's other settings, and the cache, as `run` has them by default.
    let client = ClientArgs {
        base_url: Some(opts.base_url.clone()),
        api_key_env: opts.api_key_env.clone(),
        ..ClientArgs::default()
    };
    let cache = CacheArgs::default();
    let settings = EmbedderSettings {
        client: &client,
        cache: &cache,
    };
    let embedder = embedder_for(&opts.similarity, &settings)?;
    let store = crate::paths::embeddings_dir(None);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let start = std::time::Instant::now();
        let similarity = crate::retrieval::select::Similarity::dense(embedder, pool, &store).await?;
        eprintln!("pool embeddings ready in {:.2} s", start.elapsed().as_secs_f64());
        let items: Vec<(&Example, &crate::dataset::schema::DbSchema)> = questions
            .iter()
            .filter_map(|e| schemas.get(&e.db_id).map(|s| (e, s)))
            .collect();
        let refs: Vec<(&str, &crate::dataset::schema::DbSchema)> =
            items.iter().map(|(e, s)| (e.question.as_str(), *s)).collect();
        let start = std::time::Instant::now();
        let scores = similarity
            .scores_many(pool, &refs)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        eprintln!(
            "question embeddings: {:.2} s for {}",
            start.elapsed().as_secs_f64(),
            refs.len()
        );
        Ok(Some(items.iter().map(|(e, _)| e.id).zip(scores).collect()))
    })
}

pub fn run(opts: &RetrievalArgs) -> Result<()> {
    let spider = Spider::open(&resolve_data_dir(opts.data.as_deref()))?;
    let questions = spider.load_split(opts.split)?;
    let schemas = spider.load_schemas()?;
    let pool = crate::run::load_pool(&spider).context("the example pool is the train split")?;
    let prelim = preliminary_answers(&opts.preliminary, &questions)?;
    let dense = dense_scores(opts, &pool, &questions, &schemas)?;
    let start = std::time::Instant::now();
    let prelim_of = |e: &Example| prelim.get(&e.id).cloned();
    let selectors = Selectors {
        methods: &opts.selectors,
        k: opts.k,
        options: opts.options,
    };
    let scores = evaluate(&pool, &questions, &schemas, &selectors, &prelim_of, dense.as_ref());
    let ranking = start.elapsed();
    print!("{}", render(&scores, opts.format));
    eprintln!(
        "ranking: {:.3} s for {} selectors x {} questions",
        ranking.as_secs_f64(),
        opts.selectors.len(),
        questions.len()
    );
    eprintln!(
        "{} questions of {}, pool of {} train examples; preliminary SQL: {}",
        questions.len(),
        opts.split.name(),
        pool.examples.len(),
        opts.preliminary
    );
    Ok(())
}
