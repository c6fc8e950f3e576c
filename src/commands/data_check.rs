//! `spider-bench data check`: what is in the data folder, what is missing,
//! and whether every gold query parses and runs.

use crate::dataset::db::check_database_file;
use crate::dataset::{Example, SchemaSet, Spider, Split, resolve_data_dir};
use crate::eval::exact::Hardness;
use crate::eval::judge::{JudgeConfig, check_gold};
use crate::eval::score::Scorer;
use crate::exec::sandbox::{DEFAULT_TIMEOUT_SECS, Limits};
use anyhow::Result;
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, clap::Args)]
pub struct DataCheckArgs {
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    #[arg(long, default_value_t = DEFAULT_TIMEOUT_SECS)]
    pub timeout_secs: f64,
    #[arg(long)]
    pub jobs: Option<usize>,
}

/// What the check found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckOutcome {
    /// Golds that fail, and splits that cannot be loaded.
    pub problems: usize,
    /// Database files that are unreadable, empty, not SQLite, truncated or
    /// corrupt (their databases' questions are not scored).
    pub damaged_files: usize,
}

/// Runs the check and prints what it finds.
pub fn run(opts: &DataCheckArgs) -> Result<CheckOutcome> {
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
            missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        );
    }
    let damaged = damaged_files(&spider, &schemas, opts.jobs)?;
    if !damaged.is_empty() {
        println!("damaged database files (their databases are not scored):");
        for (path, why) in &damaged {
            println!("  {}: {why}", path.display());
        }
    }
    let mut problems = 0;
    for split in [Split::Dev, Split::Train, Split::TrainOthers] {
        if !spider.root.join(split.file_name()).is_file() {
            println!("{:<13} not present ({})", split.name(), split.file_name());
            continue;
        }
        let examples = match spider.load_split_with_source(split) {
            Ok((e, source)) => {
                println!("{:<13} {source}", split.name());
                e
            }
            Err(e) => {
                println!("{:<13} cannot be loaded: {e:#}", split.name());
                problems += 1;
                continue;
            }
        };
        problems += check_split(&spider, split, &examples, opts)?;
    }
    Ok(CheckOutcome {
        problems,
        damaged_files: damaged.len(),
    })
}

/// Every database file of the databases in tables.json that is damaged, with
/// what is wrong with it.
fn damaged_files(spider: &Spider, schemas: &SchemaSet, jobs: Option<usize>) -> Result<Vec<(PathBuf, String)>> {
    let files: Vec<PathBuf> = schemas.by_id.keys().flat_map(|id| spider.database_files(id)).collect();
    crate::commands::with_jobs(jobs, || {
        files
            .par_iter()
            .filter_map(|f| check_database_file(f).err().map(|why| (f.clone(), why)))
            .collect()
    })
}

/// What checking one gold query found.
enum GoldCheck {
    Ok(Hardness),
    Skipped,
    Failed(String),
}

fn check_split(spider: &Spider, split: Split, examples: &[Example], opts: &DataCheckArgs) -> Result<usize> {
    let config = JudgeConfig {
        limits: Limits {
            timeout: Duration::from_secs_f64(opts.timeout_secs),
            ..Limits::default()
        },
        ..JudgeConfig::default()
    };
    let checks = crate::commands::with_jobs(opts.jobs, || -> Result<Vec<GoldCheck>> {
        let scorer = Scorer::new(spider, examples, config)?;
        Ok(examples
            .par_iter()
            .map(|e| {
                let ctx = scorer.context(&e.db_id).expect("a context per database");
                if ctx.missing.is_some() {
                    return GoldCheck::Skipped;
                }
                match check_gold(ctx, &e.gold, &scorer.config) {
                    Ok(h) => GoldCheck::Ok(h),
                    Err(why) => GoldCheck::Failed(why),
                }
            })
            .collect())
    })??;
    let mut levels: BTreeMap<Hardness, usize> = BTreeMap::new();
    let mut skipped: BTreeMap<&str, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for (e, check) in examples.iter().zip(&checks) {
        match check {
            GoldCheck::Ok(h) => *levels.entry(*h).or_default() += 1,
            GoldCheck::Skipped => *skipped.entry(e.db_id.as_str()).or_default() += 1,
            GoldCheck::Failed(why) => failures.push(format!("  {} #{} ({}): {why}", split.name(), e.id, e.db_id)),
        }
    }
    println!(
        "{:<13} {} questions: {} golds run ({}), {} skipped ({}), {} fail",
        split.name(),
        examples.len(),
        levels.values().sum::<usize>(),
        levels
            .iter()
            .map(|(h, n)| format!("{h} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        skipped.values().sum::<usize>(),
        skipped
            .iter()
            .map(|(db, n)| format!("{db}: {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        failures.len()
    );
    for f in &failures {
        println!("{f}");
    }
    Ok(failures.len())
}
