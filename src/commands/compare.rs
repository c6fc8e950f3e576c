//! `spider-bench compare A B`: the questions that one side gets right and
//! the other wrong. The comparison itself is [`crate::report::compare`];
//! this reads the two sides (run folders, published results folders,
//! prediction files) and prints.

use crate::commands::eval::{ScoringArgs, score_file};
use crate::dataset::{Spider, Split, resolve_data_dir};
use crate::eval::exact::Hardness;
use crate::eval::judge::Mode;
use crate::report::compare::{Filters, attach_previews, compare, render_terminal};
use crate::report::preview::DEFAULT_PREVIEW_ROWS;
use crate::report::rows::{Row, load_run, row_of_eval};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompareFormat {
    Table,
    Json,
}

#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "\
Each side is one of:
  RUN_DIR[:STRATEGY]   a run folder (written by `run`) or a published results folder
                       (config.json + verdicts.jsonl); STRATEGY is needed when it has several
  FILE                 a predictions file (JSONL or one SQL per line), scored as `eval` scores it
                       (--data, --split, --mode, --keep-distinct, --timeout-secs apply)

Two strategies of one run: DIR:zero-shot DIR:cot.
Right means execution match (the table's EX). Questions only one side scored are listed apart.
The first rows of each result are computed again from the data folder (--data), through the
scoring sandbox, for each query as written (official scoring also drops DISTINCT before it
compares, unless --keep-distinct); without the data folder they are shown as unavailable.

Examples:
  spider-bench compare results/runs/R:zero-shot results/runs/R:few-shot
  spider-bench compare RUN_DIR:cot preds.jsonl --data ../shared/spider --hardness hard --hardness extra
  spider-bench compare a.sql b.jsonl --db concert_singer --format json")]
pub struct CompareArgs {
    /// The first side (A): RUN_DIR[:STRATEGY] or a predictions file.
    #[arg(value_name = "A")]
    pub a: String,
    /// The second side (B): RUN_DIR[:STRATEGY] or a predictions file.
    #[arg(value_name = "B")]
    pub b: String,
    /// How prediction files are scored (run folders were scored when run);
    /// --data also gives the result rows and the questions of published
    /// verdicts.
    #[command(flatten)]
    pub scoring: ScoringArgs,
    /// Only questions of this hardness (repeatable).
    #[arg(long, value_name = "easy|medium|hard|extra", value_parser = parse_hardness)]
    pub hardness: Vec<Hardness>,
    /// Only questions on this database (repeatable).
    #[arg(long = "db", value_name = "NAME")]
    pub db: Vec<String>,
    /// Result rows shown per query (0: none, and no query is run).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_PREVIEW_ROWS)]
    pub rows: usize,
    /// Questions shown per direction (the counts stay whole; default: all).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: CompareFormat,
}

fn parse_hardness(s: &str) -> Result<Hardness, String> {
    Hardness::ALL
        .into_iter()
        .find(|h| h.as_str() == s.to_ascii_lowercase())
        .ok_or_else(|| format!("unknown hardness {s:?}: use easy, medium, hard or extra"))
}

/// One side, read.
struct Side {
    row: Row,
    split: Split,
    mode: Mode,
    /// Whether its records lack question texts or gold (published verdicts).
    incomplete: bool,
}

/// `PATH` or `PATH:STRATEGY`: a path that exists is taken whole, so a
/// path with a colon in it still works.
fn parse_operand(s: &str) -> Result<(PathBuf, Option<String>)> {
    if Path::new(s).exists() {
        return Ok((PathBuf::from(s), None));
    }
    if let Some((path, strategy)) = s.rsplit_once(':')
        && !path.is_empty()
        && Path::new(path).exists()
    {
        return Ok((PathBuf::from(path), Some(strategy.to_string())));
    }
    bail!(
        "{s}: no such file or folder. Give a run folder or a published results folder (with :STRATEGY \
         when it has several, e.g. results/runs/R:zero-shot), or a predictions file"
    )
}

fn read_side(which: &str, operand: &str, args: &CompareArgs) -> Result<Side> {
    let (path, strategy) = parse_operand(operand)?;
    if path.is_dir() {
        let run = load_run(&path).with_context(|| format!("side {which} ({operand})"))?;
        for line in &run.damage {
            eprintln!(
                "warning: {line}; its record counts as missing (`spider-bench run ... --resume --out {}` redoes it)",
                path.display()
            );
        }
        let names: Vec<&str> = run.rows.iter().map(|r| r.strategy.as_str()).collect();
        let folder = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let mut row = match &strategy {
            Some(s) => match run.rows.iter().find(|r| &r.strategy == s) {
                Some(r) => r.clone(),
                None => bail!(
                    "side {which}: {} has no strategy {s:?}; its strategies: {}",
                    path.display(),
                    names.join(", ")
                ),
            },
            None if run.rows.len() == 1 => run.rows[0].clone(),
            None => bail!(
                "side {which}: {} has {} strategies ({}); name one: {}:{}",
                path.display(),
                names.len(),
                names.join(", "),
                path.display(),
                names.first().copied().unwrap_or("STRATEGY")
            ),
        };
        row.label = format!("{} ({folder})", row.strategy);
        let split = Split::from_name(&run.config.split).with_context(|| {
            format!(
                "side {which}: {} names an unknown split {:?}",
                path.display(),
                run.config.split
            )
        })?;
        let incomplete = row.records.iter().any(|r| r.question.is_empty() || r.gold.is_empty());
        return Ok(Side {
            row,
            split,
            mode: run.config.scoring.mode,
            incomplete,
        });
    }
    if let Some(s) = strategy {
        bail!(
            "side {which}: {} is a predictions file, which has no strategies (drop \":{s}\")",
            path.display()
        );
    }
    let cannot_score = || format!("side {which}: cannot score {}", path.display());
    let (spider, examples) = args.scoring.open().with_context(cannot_score)?;
    let records = score_file(&spider, &examples, &path, &args.scoring).with_context(cannot_score)?;
    let label = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    Ok(Side {
        row: row_of_eval(&label, &path, &records, &examples),
        split: args.scoring.split,
        mode: args.scoring.mode,
        incomplete: false,
    })
}

fn origin(side: &Side, args: &CompareArgs) -> String {
    let mode = match side.mode {
        Mode::Official => "official",
        Mode::Strict => "strict",
    };
    if side.row.source.is_dir() {
        format!("run folder, {} split, {mode} scoring", side.split.name())
    } else {
        let kd = if args.scoring.keep_distinct {
            ", keep-distinct"
        } else {
            ""
        };
        format!("predictions file, {} split, {mode} scoring{kd}", side.split.name())
    }
}

/// The `compare` command.
pub fn run(args: &CompareArgs) -> Result<()> {
    let mut a = read_side("A", &args.a, args)?;
    let mut b = read_side("B", &args.b, args)?;
    if a.split != b.split {
        bail!(
            "A is on the {} split and B on the {}: compare sides of one split (--split sets a predictions file's)",
            a.split.name(),
            b.split.name()
        );
    }
    if a.mode != b.mode {
        eprintln!(
            "warning: A and B were scored in different modes ({} and {}): some differences may be the scoring's",
            origin(&a, args),
            origin(&b, args)
        );
    }
    let data = resolve_data_dir(args.scoring.data.as_deref());
    let spider = Spider::open(&data).map_err(|e| format!("{e:#}"));
    if a.incomplete || b.incomplete {
        match spider.as_ref().map(|s| s.load_split(a.split)) {
            Ok(Ok(examples)) => {
                for side in [&mut a, &mut b].into_iter().filter(|s| s.incomplete) {
                    side.row.fill_from_split(&examples);
                }
            }
            Ok(Err(e)) => eprintln!("warning: cannot read the questions of published verdicts: {e:#}"),
            Err(e) => eprintln!("warning: published verdicts carry no questions or gold, and {e}"),
        }
    }
    let filters = Filters {
        hardness: args.hardness.clone(),
        db: args.db.clone(),
    };
    let mut cmp = compare(&a.row, &b.row, &filters)?;
    cmp.a.origin = origin(&a, args);
    cmp.b.origin = origin(&b, args);
    if let Some(limit) = args.limit {
        cmp.truncate(limit);
    }
    if args.rows > 0 {
        attach_previews(&mut cmp, spider.as_ref().map_err(|e| e.as_str()), args.rows);
    }
    match args.format {
        CompareFormat::Json => println!("{}", serde_json::to_string_pretty(&cmp)?),
        CompareFormat::Table => {
            let width = comfy_table::Table::new().width().unwrap_or(120);
            print!("{}", render_terminal(&cmp, width));
        }
    }
    Ok(())
}
