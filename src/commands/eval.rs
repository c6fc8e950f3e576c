//! `spider-bench eval`: score a prediction file.

use crate::dataset::predictions::load_predictions;
use crate::dataset::{Example, Spider, Split, resolve_data_dir};
use crate::eval::judge::{JudgeConfig, Mode};
use crate::eval::score::{Record, Scorer, summarize};
use crate::eval::summary::Summary;
use crate::exec::sandbox::{DEFAULT_TIMEOUT_SECS, Limits};
use crate::table::Format;
use anyhow::{Context, Result};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, clap::Args)]
pub struct EvalArgs {
    /// Spider data folder (default: $SPIDER_DATA, else spider_data/).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Predictions: JSONL ({"id": N, "sql": "..."}) or one SQL per line.
    #[arg(long, value_name = "FILE")]
    pub pred: PathBuf,
    #[arg(long, value_enum, default_value = "dev")]
    pub split: Split,
    #[arg(long, value_enum, default_value = "official")]
    pub mode: Mode,
    /// Keep DISTINCT when executing (the official --keep_distinct).
    #[arg(long)]
    pub keep_distinct: bool,
    /// Time limit per query execution, in seconds.
    #[arg(long, default_value_t = DEFAULT_TIMEOUT_SECS)]
    pub timeout_secs: f64,
    /// Worker threads (default: all cores). Results do not depend on it.
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Write one JSON object per scored example to this file.
    #[arg(long, value_name = "FILE.jsonl")]
    pub out: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

/// What `eval` computed.
pub struct EvalResult {
    pub records: Vec<Record>,
    pub summary: Summary,
}

/// Scores the predictions and returns the records (in split order).
pub fn evaluate(opts: &EvalArgs) -> Result<EvalResult> {
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
pub fn run(opts: &EvalArgs) -> Result<()> {
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
