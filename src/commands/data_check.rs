//! `spider-bench data check`: what is in the data folder, what is missing,
//! and whether every gold query runs.

use crate::dataset::{Example, Spider, Split, resolve_data_dir};
use crate::eval::judge::{JudgeConfig, Status};
use crate::eval::score::Scorer;
use crate::exec::sandbox::Limits;
use anyhow::Result;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub struct DataCheckOptions {
    pub data: Option<PathBuf>,
    pub timeout_secs: f64,
    pub jobs: Option<usize>,
}

/// Runs the check; returns the number of problems found (golds that fail).
pub fn run(opts: &DataCheckOptions) -> Result<usize> {
    let root = resolve_data_dir(opts.data.as_deref());
    let spider = Spider::open(&root)?;
    let schemas = spider.load_schemas()?;
    println!("data folder: {}", root.display());
    let present = schemas
        .by_id
        .keys()
        .filter(|id| !spider.database_files(id).is_empty())
        .count();
    println!(
        "tables.json: {} databases; {present} have a .sqlite file",
        schemas.by_id.len()
    );
    let missing: Vec<&String> = schemas
        .by_id
        .keys()
        .filter(|id| spider.database_files(id).is_empty())
        .collect();
    if !missing.is_empty() {
        println!(
            "missing databases: {}",
            missing
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let mut problems = 0;
    for split in [Split::Dev, Split::Train, Split::TrainOthers] {
        let examples = match spider.load_split(split) {
            Ok(e) => e,
            Err(_) => {
                println!("{:<13} not present ({})", split.name(), split.file_name());
                continue;
            }
        };
        problems += check_split(&spider, split, &examples, opts)?;
    }
    Ok(problems)
}

fn check_split(
    spider: &Spider,
    split: Split,
    examples: &[Example],
    opts: &DataCheckOptions,
) -> Result<usize> {
    let config = JudgeConfig {
        limits: Limits {
            timeout: Duration::from_secs_f64(opts.timeout_secs),
            ..Limits::default()
        },
        ..JudgeConfig::default()
    };
    // Gold as the prediction: runs every gold once (twice, in fact) and parses it.
    let items: Vec<(&Example, Option<&str>)> = examples
        .iter()
        .map(|e| (e, Some(e.gold.as_str())))
        .collect();
    let records = crate::commands::with_jobs(opts.jobs, || -> Result<_> {
        let scorer = Scorer::new(spider, examples, config)?;
        Ok(scorer.score_all(&items))
    })??;
    let mut by_status: BTreeMap<Status, usize> = BTreeMap::new();
    let mut skipped_dbs: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &records {
        *by_status.entry(r.status).or_default() += 1;
        if r.status == Status::Skipped {
            *skipped_dbs.entry(r.db_id.as_str()).or_default() += 1;
        }
    }
    let ok = by_status.get(&Status::Correct).copied().unwrap_or(0);
    println!(
        "{:<13} {} questions: {ok} executable and self-consistent, {} skipped ({})",
        split.name(),
        examples.len(),
        by_status.get(&Status::Skipped).copied().unwrap_or(0),
        skipped_dbs
            .iter()
            .map(|(db, n)| format!("{db}: {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut problems = 0;
    for r in records.iter().filter(|r| {
        r.status.is_scored() && r.status != Status::Correct || r.status == Status::GoldError
    }) {
        problems += 1;
        println!(
            "  {} #{} ({}): {} {}",
            split.name(),
            r.id,
            r.db_id,
            r.status.as_str(),
            r.error.as_deref().unwrap_or("gold does not match itself")
        );
    }
    Ok(problems)
}
