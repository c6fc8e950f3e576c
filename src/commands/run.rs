//! `spider-bench run`, `report` and `strategies`.

use crate::run::record::{PREDICTIONS_FILE, PredictionsFile};
use crate::run::summary::{render_comparison, summarize_run};
use crate::run::{CONFIG_FILE, RunConfig, RunOptions, run};
use crate::strategy::registry::list;
use crate::table::Format;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub options: RunOptions,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// Run folders (written by `run`).
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
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
    print!("{}", render_comparison(&outcome.summaries, args.format));
    let calls = if outcome.local_stats.is_some() {
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
    if let Some(stats) = outcome
        .local_stats
        .as_ref()
        .filter(|s| s.generations.load(Ordering::Relaxed) > 0)
    {
        eprintln!("local model: {}", stats.describe());
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

/// Prints the comparison table of saved runs (several folders: one table).
pub fn report(args: &ReportArgs) -> Result<()> {
    let dirs = &args.dirs;
    let mut summaries = Vec::new();
    for dir in dirs {
        let config: RunConfig = serde_json::from_str(
            &std::fs::read_to_string(dir.join(CONFIG_FILE))
                .with_context(|| format!("{} is not a run folder (no {CONFIG_FILE})", dir.display()))?,
        )?;
        let file = PredictionsFile::read(&dir.join(PREDICTIONS_FILE))?;
        for line in file.damage_report() {
            eprintln!(
                "warning: {line}; its record counts as missing (`spider-bench run ... --resume --out {}` redoes it)",
                dir.display()
            );
        }
        let order: Vec<String> = config.strategies.iter().map(|s| s.name.clone()).collect();
        let mut these = summarize_run(&file.records, &order, config.ids.len());
        if dirs.len() > 1 {
            for s in &mut these {
                s.strategy = format!("{} ({})", s.strategy, run_label(dir, &config));
            }
        }
        summaries.extend(these);
    }
    print!("{}", render_comparison(&summaries, args.format));
    Ok(())
}

fn run_label(dir: &Path, config: &RunConfig) -> String {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    format!("{}, {}", config.model.model, name)
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
