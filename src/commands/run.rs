//! `spider-bench run`, `report` and `strategies`.

use super::TableArgs;
use crate::report::rows::{load_run, rows_of_runs};
use crate::report::table::{ComparisonTable, render};
use crate::run::{RunOptions, run};
use crate::strategy::registry::list;
use crate::table::Format;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub options: RunOptions,
    #[command(flatten)]
    pub table: TableArgs,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// Run folders (written by `run`).
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    #[command(flatten)]
    pub table: TableArgs,
    /// Also write a self-contained HTML report, DIR/index.html: the ladder
    /// chart with intervals, the table, failures per rung and a browser of
    /// every question with each strategy's answer.
    #[arg(long, value_name = "DIR")]
    pub html: Option<PathBuf>,
    /// Spider data folder, for the result rows of the HTML report (default:
    /// $SPIDER_DATA, else spider_data/; without it the page has none).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Result rows shown per query in the HTML report (as `compare --rows`).
    #[arg(long, value_name = "N", default_value_t = crate::report::preview::DEFAULT_PREVIEW_ROWS)]
    pub rows: usize,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

#[derive(Debug, Clone, clap::Args)]
pub struct StrategiesArgs {
    #[arg(long, default_value = "strategies")]
    pub dir: PathBuf,
}

/// Runs, then prints the comparison table and where the run folder is. A
/// run that stopped early, or left questions without an answer from the
/// model, ends with an error that says how to finish it.
pub fn run_command(args: &RunArgs) -> Result<()> {
    let outcome = run(&args.options)?;
    let (_, table) = args.table.table(load_run(&outcome.dir)?.rows)?;
    write_summary(&outcome.dir, &table)?;
    print!("{}", render(&table, args.format));
    let calls = if !outcome.local_stats.is_empty() {
        "local generations"
    } else {
        "HTTP requests"
    };
    eprintln!(
        "run folder: {}  ({} {calls}, {} completions from the cache)",
        outcome.dir.display(),
        outcome.backend_calls,
        outcome.cache_hits
    );
    for (name, stats) in outcome
        .local_stats
        .iter()
        .filter(|(_, s)| s.generations.load(Ordering::Relaxed) > 0)
    {
        eprintln!("local model {name}: {}", stats.describe());
    }
    let errors: usize = outcome.summaries.iter().map(|s| s.errors).sum();
    let resume = format!(
        "the finished questions are saved in {dir}; once the endpoint answers, rerun the same command with \
         --resume --out {dir} to ask the others",
        dir = outcome.dir.display()
    );
    if let Some(why) = &outcome.execution.stopped {
        anyhow::bail!("run stopped: {why}.\n{resume}");
    }
    if errors > 0 {
        anyhow::bail!("{errors} questions got no answer from the model (recorded as `error`, not scored).\n{resume}");
    }
    Ok(())
}

/// The run folder's `summary.md` and `summary.json`: the table that
/// `report DIR --format markdown|json` prints.
fn write_summary(dir: &Path, table: &ComparisonTable) -> Result<()> {
    for (name, format) in [("summary.md", Format::Markdown), ("summary.json", Format::Json)] {
        let path = dir.join(name);
        crate::paths::write_atomically(&path, render(table, format).as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Prints the comparison table of saved runs (several folders: one table).
pub fn report(args: &ReportArgs) -> Result<()> {
    let mut runs = Vec::new();
    for dir in &args.dirs {
        let run = load_run(dir)?;
        for line in &run.damage {
            eprintln!(
                "warning: {line}; its record counts as missing (`spider-bench run ... --resume --out {}` redoes it)",
                dir.display()
            );
        }
        runs.push(run);
    }
    let (rows, table) = args.table.table(rows_of_runs(&runs))?;
    print!("{}", render(&table, args.format));
    if let Some(dir) = &args.html {
        let page = write_html(dir, &runs, &rows, &table, args)?;
        eprintln!("HTML report: {}", page.display());
    }
    Ok(())
}

/// The HTML report of `report --html DIR`, with result rows when the data
/// folder is there.
fn write_html(
    dir: &Path,
    runs: &[crate::report::rows::LoadedRun],
    rows: &[crate::report::rows::Row],
    table: &ComparisonTable,
    args: &ReportArgs,
) -> Result<PathBuf> {
    use crate::report::html;
    let data = crate::dataset::resolve_data_dir(args.data.as_deref());
    let mut rows = rows.to_vec();
    let previews = match crate::dataset::Spider::open(&data) {
        Ok(spider) => {
            fill_questions(&spider, runs, &mut rows)?;
            Some(html::compute_previews(&spider, &rows, args.rows))
        }
        Err(e) => {
            eprintln!("note: the HTML report has no result rows: {e:#}");
            None
        }
    };
    let names: Vec<String> = runs.iter().map(|r| r.dir.display().to_string()).collect();
    let input = html::HtmlInput {
        title: format!("spider-bench: {}", names.join(", ")),
        rows: &rows,
        summaries: &table.rows,
        stats: &table.stats,
        previews: previews.as_ref(),
    };
    html::write(dir, &input)
}

/// The questions and gold of published verdicts, which carry neither,
/// from each run's split.
fn fill_questions(
    spider: &crate::dataset::Spider,
    runs: &[crate::report::rows::LoadedRun],
    rows: &mut [crate::report::rows::Row],
) -> Result<()> {
    for run in runs {
        let Some(split) = crate::dataset::Split::from_name(&run.config.split) else {
            continue;
        };
        let mine: Vec<&mut crate::report::rows::Row> = rows.iter_mut().filter(|r| r.source == run.dir).collect();
        if mine.iter().all(|r| r.records.iter().all(|x| !x.question.is_empty())) {
            continue;
        }
        let examples = spider.load_split(split)?;
        for row in mine {
            row.fill_from_split(&examples);
        }
    }
    Ok(())
}

/// Lists every strategy with its steps, then the step kinds and the rules
/// by which `+` composes strategies.
pub fn strategies(args: &StrategiesArgs) -> Result<()> {
    let dir = &args.dir;
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::UTF8_FULL_CONDENSED);
    t.set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
    if t.width().is_none() {
        t.set_width(160); // not a terminal: wrap for a wide page anyway
    }
    t.set_header(vec!["strategy", "steps", "description", "from"]);
    for s in list(dir) {
        t.add_row(vec![s.name, s.steps, s.description, s.source]);
    }
    println!("{t}");
    let mut k = comfy_table::Table::new();
    k.load_style(comfy_table::presets::UTF8_FULL_CONDENSED);
    k.set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
    k.set_header(vec!["step", "needs before it", "what it does"]);
    for step in crate::strategy::steps::STEPS {
        k.add_row(vec![
            step.name.to_string(),
            step.needs.join(", "),
            step.summary.to_string(),
        ]);
    }
    println!("{k}");
    let flow: Vec<&str> = crate::strategy::steps::STEPS.iter().map(|s| s.name).collect();
    println!("{COMPOSITION_RULES}\n     {}.", flow.join(", "));
    println!(
        "Strategy files: {} (extends = \"a+b\", steps = [...], and tables named after a step); prompts: prompts/*.jinja.",
        dir.display()
    );
    Ok(())
}

/// How `+` composes strategies (src/strategy/step.rs implements it).
pub const COMPOSITION_RULES: &str = "Compose strategies with '+' (e.g. cot+self-consistency), left to right:
  1. a step of a kind already in the list merges into the first step of that kind,
     parameter by parameter; the right-hand strategy's value wins;
  2. a step of a new kind is inserted before the first step that comes later in the flow:";
