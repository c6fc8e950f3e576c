//! `spider-bench eval`: score a prediction file.

use crate::dataset::predictions::load_predictions;
use crate::dataset::{Example, Spider, Split, resolve_data_dir};
use crate::eval::judge::{JudgeConfig, Mode};
use crate::eval::score::{Record, Scorer, summarize};
use crate::eval::summary::Summary;
use crate::exec::sandbox::{DEFAULT_TIMEOUT_SECS, Limits};
use crate::report::rows::{Row, row_of_eval};
use crate::table::Format;
use anyhow::{Context, Result, bail};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How predictions files are scored (`eval`, and the files `compare` reads).
#[derive(Debug, Clone, clap::Args)]
pub struct ScoringArgs {
    /// Spider data folder (default: $SPIDER_DATA, else spider_data/).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
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
}

impl ScoringArgs {
    pub fn judge_config(&self) -> JudgeConfig {
        JudgeConfig {
            mode: self.mode,
            keep_distinct: self.keep_distinct,
            limits: Limits {
                timeout: Duration::from_secs_f64(self.timeout_secs),
                ..Limits::default()
            },
        }
    }

    /// The data folder and the split's examples.
    pub fn open(&self) -> Result<(Spider, Vec<Example>)> {
        let spider = Spider::open(&resolve_data_dir(self.data.as_deref()))?;
        let examples = spider.load_split(self.split)?;
        Ok((spider, examples))
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub scoring: ScoringArgs,
    /// Predictions: JSONL ({"id": N, "sql": "..."}) or one SQL per line.
    /// Several (`--pred NAME=FILE --pred NAME=FILE ...`, formats mixed) give
    /// one comparison table, a row each in the order given, with intervals
    /// and paired tests; one file alone gives the official summary.
    #[arg(long, value_name = "[NAME=]FILE", required = true)]
    pub pred: Vec<String>,
    /// Write one JSON object per scored example to this file.
    #[arg(long, value_name = "FILE.jsonl")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub table: super::TableArgs,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

/// One `--pred`: `NAME=FILE`, or `FILE` (named after the file).
#[derive(Debug, Clone, PartialEq)]
pub struct PredArg {
    pub name: String,
    pub path: PathBuf,
    /// Whether the name was given (`NAME=FILE`).
    pub named: bool,
}

impl PredArg {
    /// `NAME=FILE` when the text before the first `=` is a name (no path
    /// separator) and the whole text is not itself an existing file.
    pub fn parse(text: &str) -> PredArg {
        if let Some((name, file)) = text.split_once('=')
            && !name.is_empty()
            && !name.contains(std::path::MAIN_SEPARATOR)
            && !std::path::Path::new(text).exists()
        {
            return PredArg {
                name: name.to_string(),
                path: PathBuf::from(file),
                named: true,
            };
        }
        let path = PathBuf::from(text);
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| text.to_string());
        PredArg {
            name,
            path,
            named: false,
        }
    }
}

/// What `eval` computed for one predictions file.
pub struct EvalResult {
    pub records: Vec<Record>,
    pub summary: Summary,
}

impl EvalArgs {
    pub fn preds(&self) -> Vec<PredArg> {
        self.pred.iter().map(|p| PredArg::parse(p)).collect()
    }
}

/// Scores the first `--pred` and returns its records (in split order).
pub fn evaluate(opts: &EvalArgs) -> Result<EvalResult> {
    let (spider, examples) = opts.scoring.open()?;
    let pred = opts.preds().remove(0);
    let records = score_file(&spider, &examples, &pred.path, &opts.scoring)?;
    let summary = summarize(&records);
    Ok(EvalResult { records, summary })
}

/// Scores one predictions file against the split's `examples`.
pub fn score_file(spider: &Spider, examples: &[Example], path: &Path, opts: &ScoringArgs) -> Result<Vec<Record>> {
    let preds = load_predictions(path, examples.len())?;
    if preds.blank_lines > 0 {
        eprintln!(
            "warning: {} blank line(s) in {}: scored as empty predictions (the official script would misalign them)",
            preds.blank_lines,
            path.display()
        );
    }
    let items: Vec<(&Example, Option<&str>)> = preds
        .by_id
        .iter()
        .map(|(id, sql)| (&examples[*id], Some(sql.as_str())))
        .collect();
    crate::commands::with_jobs(opts.jobs, || -> Result<Vec<Record>> {
        let scorer = Scorer::new(spider, items.iter().map(|(e, _)| *e), opts.judge_config())?;
        Ok(scorer.score_all(&items))
    })?
}

/// The `eval` command. One file: score, write `--out`, print the official
/// summary. Several (or one named): one comparison table.
pub fn run(opts: &EvalArgs) -> Result<()> {
    let preds = opts.preds();
    if preds.len() == 1 && !preds[0].named {
        let result = evaluate(opts)?;
        if let Some(out) = &opts.out {
            write_records(out, &result.records)?;
        }
        print!("{}", crate::report::render(&result.summary, opts.format));
        return Ok(());
    }
    if opts.out.is_some() {
        bail!("--out writes the records of one predictions file; give one --pred with it, or none");
    }
    let (_, table) = opts.table.table(pred_rows(opts, &preds)?)?;
    print!("{}", crate::report::table::render(&table, opts.format));
    Ok(())
}

/// One table row per `--pred`, scored on the same split.
fn pred_rows(opts: &EvalArgs, preds: &[PredArg]) -> Result<Vec<Row>> {
    let mut seen = std::collections::HashSet::new();
    if let Some(p) = preds.iter().find(|p| !seen.insert(p.name.as_str())) {
        bail!(
            "two --pred rows are named {:?}: name them apart with --pred NAME=FILE",
            p.name
        );
    }
    let (spider, examples) = opts.scoring.open()?;
    preds
        .iter()
        .map(|p| {
            let records = score_file(&spider, &examples, &p.path, &opts.scoring)?;
            Ok(row_of_eval(&p.name, &p.path, &records, &examples))
        })
        .collect()
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
