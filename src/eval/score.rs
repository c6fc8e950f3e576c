//! Scoring many examples in parallel.

use super::exact::{Hardness, key_map};
use super::judge::{DbContext, JudgeConfig, Mode, Status, Verdict, judge};
use super::parse::{ParseSchema, read_parse_schema};
use super::summary::{OfficialDiff, Summary};
use crate::dataset::db::check_database_file;
use crate::dataset::{Example, SchemaSet, Spider};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

/// One scored example, as written by `eval --out`.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    pub id: usize,
    pub db_id: String,
    pub hardness: Option<Hardness>,
    pub exec: Option<bool>,
    pub exact: Option<bool>,
    pub status: Status,
    pub error: Option<String>,
    /// Wall time of judging this example, in milliseconds.
    pub ms: f64,
    pub pred: Option<String>,
    pub gold: String,
    /// Strict mode: the official verdicts, for comparison.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub official: Option<OfficialVerdict>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OfficialVerdict {
    pub exec: Option<bool>,
    pub exact: Option<bool>,
}

impl Record {
    pub fn verdict(&self) -> Verdict {
        Verdict {
            hardness: self.hardness,
            exec: self.exec,
            exact: self.exact,
            status: self.status,
            error: self.error.clone(),
        }
    }
}

/// Judges examples of one data folder.
pub struct Scorer {
    contexts: HashMap<String, DbContext>,
    pub config: JudgeConfig,
}

impl Scorer {
    /// Prepares the databases used by `examples`.
    pub fn new<'a>(
        spider: &Spider,
        examples: impl IntoIterator<Item = &'a Example>,
        config: JudgeConfig,
    ) -> anyhow::Result<Scorer> {
        let schemas = spider.load_schemas()?;
        let ids: BTreeSet<&str> = examples.into_iter().map(|e| e.db_id.as_str()).collect();
        let contexts = ids
            .into_par_iter()
            .map(|id| (id.to_string(), db_context(spider, &schemas, id)))
            .collect();
        Ok(Scorer { contexts, config })
    }

    pub fn context(&self, db_id: &str) -> Option<&DbContext> {
        self.contexts.get(db_id)
    }

    /// Judges one example.
    pub fn score_one(&self, example: &Example, pred: Option<&str>) -> Record {
        let start = Instant::now();
        let ctx = &self.contexts[&example.db_id];
        let v = judge(ctx, &example.gold, pred, &self.config);
        let official = (self.config.mode == Mode::Strict).then(|| {
            let cfg = JudgeConfig {
                mode: Mode::Official,
                ..self.config.clone()
            };
            let o = judge(ctx, &example.gold, pred, &cfg);
            OfficialVerdict {
                exec: o.exec,
                exact: o.exact,
            }
        });
        Record {
            id: example.id,
            db_id: example.db_id.clone(),
            hardness: v.hardness,
            exec: v.exec,
            exact: v.exact,
            status: v.status,
            error: v.error,
            ms: start.elapsed().as_secs_f64() * 1000.0,
            pred: pred.map(str::to_string),
            gold: example.gold.clone(),
            official,
        }
    }

    /// Judges every item in parallel; the records come back in input order.
    pub fn score_all(&self, items: &[(&Example, Option<&str>)]) -> Vec<Record> {
        items.par_iter().map(|(e, p)| self.score_one(e, *p)).collect()
    }
}

/// The summary of records, with the strict/official difference when present.
pub fn summarize(records: &[Record]) -> Summary {
    let verdicts: Vec<Verdict> = records.iter().map(Record::verdict).collect();
    let mut summary = Summary::from_verdicts(&verdicts);
    if records.iter().any(|r| r.official.is_some()) {
        let mut d = OfficialDiff::default();
        for r in records {
            let Some(o) = &r.official else { continue };
            if o.exec != r.exec {
                d.exec += 1;
                if r.exec == Some(true) {
                    d.exec_gained += 1;
                } else {
                    d.exec_lost += 1;
                }
            }
            d.exact += usize::from(o.exact != r.exact);
        }
        summary.differs_from_official = Some(d);
    }
    summary
}

fn db_context(spider: &Spider, schemas: &SchemaSet, db_id: &str) -> DbContext {
    let schema = schemas.get(db_id);
    let keys = schema.map(key_map).unwrap_or_default();
    let from_json = || schema.map(ParseSchema::from_db).unwrap_or_default();
    let files = spider.database_files(db_id);
    let mut ctx = DbContext {
        db_id: db_id.to_string(),
        parse_schema: from_json(),
        keys,
        files,
        missing: None,
    };
    if schema.is_none() {
        ctx.missing = Some(format!(
            "database {db_id} has no entry in {}",
            spider.tables_path().display()
        ));
    } else if ctx.files.is_empty() {
        ctx.missing = Some(format!(
            "database {db_id} is missing: no .sqlite file in {}",
            spider.database_dir(db_id).display()
        ));
    } else if let Some(why) = damaged_files(&ctx.files) {
        ctx.missing = Some(why);
    } else {
        match read_parse_schema(&ctx.files[0]) {
            Ok(s) => ctx.parse_schema = s,
            Err(e) => ctx.missing = Some(format!("database {db_id} cannot be read: {e:#}")),
        }
    }
    ctx
}

/// Why a database cannot be scored because of its files: every damaged one,
/// named with what is wrong. One damaged file among several good ones (a test
/// suite) is enough: the official evaluator would stop on it, and scoring on
/// the good files only would quietly test less.
fn damaged_files(files: &[std::path::PathBuf]) -> Option<String> {
    let damaged: Vec<String> = files
        .iter()
        .filter_map(|f| {
            check_database_file(f)
                .err()
                .map(|why| format!("database file {} is damaged: {why}", f.display()))
        })
        .collect();
    (!damaged.is_empty()).then(|| format!("not scored: {}", damaged.join("; ")))
}
