//! `spider-bench eval`: score a prediction file.

use crate::dataset::predictions::load_predictions;
use crate::dataset::{Example, Spider, Split, resolve_data_dir};
use crate::eval::judge::{JudgeConfig, Mode};
use crate::eval::score::{Record, Scorer, summarize};
use crate::exec::sandbox::Limits;
use crate::eval::summary::Summary;
use crate::table::Format;
use anyhow::{Context, Result};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct EvalOptions {
    pub data: Option<PathBuf>,
    pub pred: PathBuf,
    pub split: Split,
    pub mode: Mode,
    pub keep_distinct: bool,
    pub timeout_secs: f64,
    pub jobs: Option<usize>,
    pub out: Option<PathBuf>,
    pub format: Format,
}

/// What `eval` computed.
pub struct EvalResult {
    pub records: Vec<Record>,
    pub summary: Summary,
}

/// Scores the predictions and returns the records (in split order).
pub fn evaluate(opts: &EvalOptions) -> Result<EvalResult> {
    let spider = Spider::open(&resolve_data_dir(opts.data.as_deref()))?;
    let examples = spider.load_split(opts.split)?;
    let preds = load_predictions(&opts.pred, examples.len())?;
    if preds.blank_lines > 0 {
        eprintln!(
            "warning: {} blank line(s) in {}: scored as empty predictions (the official script would misalign them)",
            preds.blank_lines,
            opts.pred.display()
        );
    }
    let items: Vec<(&Example, Option<&str>)> = preds
        .by_id
        .iter()
        .map(|(id, sql)| (&examples[*id], Some(sql.as_str())))
        .collect();
    let config = JudgeConfig {
        mode: opts.mode,
        keep_distinct: opts.keep_distinct,
        limits: Limits {
            timeout: Duration::from_secs_f64(opts.timeout_secs),
            ..Limits::default()
        },
    };
    let records = crate::commands::with_jobs(opts.jobs, || -> Result<Vec<Record>> {
        let scorer = Scorer::new(&spider, items.iter().map(|(e, _)| *e), config)?;
        Ok(scorer.score_all(&items))
    })??;
    let summary = summarize(&records);
    Ok(EvalResult { records, summary })
}

/// The `eval` command: score, write `--out`, print the summary.
pub fn run(opts: &EvalOptions) -> Result<()> {
    let result = evaluate(opts)?;
    if let Some(out) = &opts.out {
        write_records(out, &result.records)?;
    }
    print!("{}", crate::report::render(&result.summary, opts.format));
    Ok(())
}

/// Writes one JSON object per record.
pub fn write_records(path: &PathBuf, records: &[Record]) -> Result<()> {
    let file = std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut w = std::io::BufWriter::new(file);
    for r in records {
        serde_json::to_writer(&mut w, r)?;
        w.write_all(b"\n")?;
    }
    w.flush().with_context(|| format!("cannot write {}", path.display()))
}
