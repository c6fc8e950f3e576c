//! `spider-bench retrieval`: selectors scored against the gold, without
//! generating anything.

use crate::dataset::{Example, Spider, Split, resolve_data_dir};
use crate::report::Format;
use crate::retrieval::evaluate::{evaluate, render};
use crate::retrieval::select::Method;
use crate::run::record::{PREDICTIONS_FILE, read_records};
use anyhow::{Context, Result, bail};
use std::collections::HashMap;
use std::path::PathBuf;

pub struct RetrievalOptions {
    pub data: Option<PathBuf>,
    pub split: Split,
    pub selectors: Vec<Method>,
    pub k: usize,
    /// `gold` (upper bound), `none`, or `RUN_DIR[:STRATEGY]`.
    pub preliminary: String,
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
            let (records, _) = read_records(&PathBuf::from(dir).join(PREDICTIONS_FILE))?;
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

pub fn run(opts: &RetrievalOptions) -> Result<()> {
    let spider = Spider::open(&resolve_data_dir(opts.data.as_deref()))?;
    let questions = spider.load_split(opts.split)?;
    let schemas = spider.load_schemas()?;
    let pool = crate::run::load_pool(&spider).context("the example pool is the train split")?;
    let prelim = preliminary_answers(&opts.preliminary, &questions)?;
    let scores = evaluate(
        &pool,
        &questions,
        &schemas,
        &opts.selectors,
        opts.k,
        &|e| prelim.get(&e.id).cloned(),
        None,
    );
    print!("{}", render(&scores, opts.format));
    eprintln!(
        "{} questions of {}, pool of {} train examples; preliminary SQL: {}",
        questions.len(),
        opts.split.name(),
        pool.examples.len(),
        opts.preliminary
    );
    Ok(())
}
