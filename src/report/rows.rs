//! The rows of a comparison table, whatever they come from: the strategies
//! of run folders (`run`, `report`), the strategies of a published results
//! folder (`results/*/verdicts.jsonl`), or scored prediction files
//! (`eval --pred NAME=FILE`). Every row is a list of [`RunRecord`]s, so the
//! table, its statistics, `compare` and the HTML report read one type.

use super::stats::RowOutcomes;
use crate::eval::score::Record;
use crate::run::record::{PREDICTIONS_FILE, PredictionsFile, RunRecord};
use crate::run::summary::{StrategySummary, summarize_run};
use crate::run::{CONFIG_FILE, RunConfig};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// The verdict lines of a published results folder (`results/NAME/`): the
/// records without Spider's questions and gold, which are not copied there.
pub const VERDICTS_FILE: &str = "verdicts.jsonl";

/// One row of a comparison table.
#[derive(Debug, Clone)]
pub struct Row {
    /// The row's name in the table (unique within it).
    pub label: String,
    /// The strategy as its records name it (`label` may add the run).
    pub strategy: String,
    /// Where the records come from: a run folder or a predictions file.
    pub source: PathBuf,
    /// How many questions the row should have: those of its run, or the
    /// predictions file's. Records short of it are pending.
    pub questions: usize,
    /// One per question, the latest of each.
    pub records: Vec<RunRecord>,
}

impl Row {
    /// The row's counts, as the table shows them.
    pub fn summary(&self) -> StrategySummary {
        let mut s = summarize_run(&self.records, std::slice::from_ref(&self.strategy), self.questions)
            .pop()
            .expect("one summary per strategy");
        s.strategy = self.label.clone();
        s
    }

    /// The row's scored questions, for the statistics.
    pub fn outcomes(&self) -> RowOutcomes {
        let mut row = RowOutcomes::from_run_records(&self.strategy, &self.records);
        row.label = self.label.clone();
        row
    }

    /// Fills the question text and gold SQL of the records that lack them
    /// (published verdicts carry neither) from the split's examples.
    pub fn fill_from_split(&mut self, examples: &[crate::dataset::Example]) {
        for r in &mut self.records {
            let Some(e) = examples.get(r.id).filter(|e| e.db_id == r.db_id) else {
                continue;
            };
            if r.question.is_empty() {
                r.question = e.question.clone();
            }
            if r.gold.is_empty() {
                r.gold = e.gold.clone();
            }
        }
    }

    /// The record of question `id`, if the row has one.
    pub fn record(&self, id: usize) -> Option<&RunRecord> {
        self.records.iter().find(|r| r.id == id)
    }
}

/// The rows cut to the questions that every row scored: the records of
/// other questions are left out, and so is each row's pending count.
pub fn on_common_questions(rows: &[Row]) -> Vec<Row> {
    let scored = |row: &Row| -> std::collections::BTreeSet<usize> {
        row.records
            .iter()
            .filter(|r| r.status.is_scored())
            .map(|r| r.id)
            .collect()
    };
    let Some(first) = rows.first() else { return Vec::new() };
    let common = rows.iter().skip(1).fold(scored(first), |acc, row| {
        acc.intersection(&scored(row)).copied().collect()
    });
    rows.iter()
        .map(|row| Row {
            questions: common.len(),
            records: row.records.iter().filter(|r| common.contains(&r.id)).cloned().collect(),
            ..row.clone()
        })
        .collect()
}

/// A run folder as `report` reads it.
#[derive(Debug, Clone)]
pub struct LoadedRun {
    pub dir: PathBuf,
    pub config: RunConfig,
    /// One row per strategy, in the run's order.
    pub rows: Vec<Row>,
    /// `FILE:LINE: not a record (...)` for each damaged line.
    pub damage: Vec<String>,
}

/// Reads a run folder (`config.json` and `predictions.jsonl`), or a
/// published results folder (`config.json` and `verdicts.jsonl`). Damaged
/// lines are reported in [`LoadedRun::damage`], never dropped silently.
pub fn load_run(dir: &Path) -> Result<LoadedRun> {
    let config_path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&config_path).with_context(|| {
        format!(
            "{} is not a run folder (no {CONFIG_FILE}); give a folder written by `spider-bench run`",
            dir.display()
        )
    })?;
    let config: RunConfig =
        serde_json::from_str(&text).with_context(|| format!("{} is not a run configuration", config_path.display()))?;
    let (records, damage) = if dir.join(PREDICTIONS_FILE).exists() || !dir.join(VERDICTS_FILE).exists() {
        let file = PredictionsFile::read(&dir.join(PREDICTIONS_FILE))?;
        let damage = file.damage_report();
        (file.records, damage)
    } else {
        (read_verdicts(&dir.join(VERDICTS_FILE))?, Vec::new())
    };
    let rows = config
        .strategies
        .iter()
        .map(|s| Row {
            label: s.name.clone(),
            strategy: s.name.clone(),
            source: dir.to_path_buf(),
            questions: config.ids.len(),
            records: records.iter().filter(|r| r.strategy == s.name).cloned().collect(),
        })
        .collect();
    Ok(LoadedRun {
        dir: dir.to_path_buf(),
        config,
        rows,
        damage,
    })
}

/// The rows of several run folders in one table: with more than one folder
/// each label says which run it is from ("zero-shot (model, folder)"; the
/// folder's path where two folders share a name).
pub fn rows_of_runs(runs: &[LoadedRun]) -> Vec<Row> {
    let short: Vec<String> = runs.iter().map(|r| run_label(r, false)).collect();
    let mut rows = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        let clash = short.iter().filter(|s| **s == short[i]).count() > 1;
        for row in &run.rows {
            let mut row = row.clone();
            if runs.len() > 1 {
                row.label = format!("{} ({})", row.label, run_label(run, clash));
            }
            rows.push(row);
        }
    }
    rows
}

/// "model, folder name" (or the folder's path): how a run is told apart
/// from another in a table.
fn run_label(run: &LoadedRun, full_path: bool) -> String {
    let name = if full_path {
        run.dir.display().to_string()
    } else {
        run.dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default()
    };
    format!("{}, {name}", run.config.model.model)
}

/// A row from `eval` records (a scored predictions file); `questions` are
/// the split's examples, for the question texts.
pub fn row_of_eval(label: &str, source: &Path, records: &[Record], questions: &[crate::dataset::Example]) -> Row {
    let records = records
        .iter()
        .map(|r| RunRecord {
            v: crate::run::record::RECORD_FORMAT,
            id: r.id,
            strategy: label.to_string(),
            db_id: r.db_id.clone(),
            question: questions.get(r.id).map(|e| e.question.clone()).unwrap_or_default(),
            gold: r.gold.clone(),
            pred: r.pred.clone(),
            exec: r.exec,
            exact: r.exact,
            hardness: r.hardness,
            status: r.status,
            error: r.error.clone(),
            model_failure: None,
            tokens_in: 0,
            tokens_out: 0,
            latency_ms: 0.0,
            calls: 0,
            cost_usd: 0.0,
            cache_keys: Vec::new(),
            candidates: Vec::new(),
            trace: Vec::new(),
            loops_cut: 0,
        })
        .collect::<Vec<_>>();
    Row {
        label: label.to_string(),
        strategy: label.to_string(),
        source: source.to_path_buf(),
        questions: records.len(),
        records,
    }
}

/// What a line of `verdicts.jsonl` may leave out of a record: Spider's
/// question and gold (not copied there), and what only a live run has.
fn verdict_defaults() -> serde_json::Value {
    serde_json::json!({
        "question": "", "gold": "", "model_failure": null, "tokens_in": 0, "tokens_out": 0,
        "latency_ms": 0.0, "calls": 0, "cost_usd": 0.0, "cache_keys": [], "candidates": []
    })
}

/// Reads a published `verdicts.jsonl`: each line is a record less what
/// [`verdict_defaults`] fills in. Unlike a checkpoint, a published file is
/// never repaired: any line that is not a verdict is an error.
fn read_verdicts(path: &Path) -> Result<Vec<RunRecord>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let serde_json::Value::Object(defaults) = verdict_defaults() else {
        unreachable!("an object literal")
    };
    let mut records = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let what = || format!("{}:{}: not a verdict line", path.display(), i + 1);
        let mut fields: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line).with_context(what)?;
        for (name, default) in &defaults {
            fields.entry(name.as_str()).or_insert_with(|| default.clone());
        }
        records.push(serde_json::from_value(fields.into()).with_context(what)?);
    }
    Ok(records)
}
