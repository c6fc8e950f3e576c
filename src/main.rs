//! The `spider-bench` command line: argument parsing only; the work is in the library.

use clap::{Args, Parser, Subcommand};
use spider_bench::commands::{data_check, eval};
use spider_bench::dataset::Split;
use spider_bench::eval::judge::Mode;
use spider_bench::report::Format;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "spider-bench",
    version,
    about = "Text-to-SQL benchmark harness for Spider 1.0, with official-grade scoring"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Score predicted SQL against the gold, as the official evaluator does.
    Eval(EvalArgs),
    /// Inspect the Spider data folder.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
}

#[derive(Subcommand)]
enum DataCommand {
    /// Show what is present and missing, and run every gold query once.
    Check {
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
        #[arg(long, default_value_t = DEFAULT_TIMEOUT_SECS)]
        timeout_secs: f64,
        #[arg(long)]
        jobs: Option<usize>,
    },
}

/// Long enough for every dev and train gold query on a slow machine
/// (the slowest dev gold takes well under a second).
const DEFAULT_TIMEOUT_SECS: f64 = 30.0;

#[derive(Args)]
struct EvalArgs {
    /// Spider data folder (default: $SPIDER_DATA, else spider_data/).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Predictions: JSONL ({"id": N, "sql": "..."}) or one SQL per line.
    #[arg(long, value_name = "FILE")]
    pred: PathBuf,
    #[arg(long, value_enum, default_value = "dev")]
    split: Split,
    #[arg(long, value_enum, default_value = "official")]
    mode: Mode,
    /// Keep DISTINCT when executing (the official --keep_distinct).
    #[arg(long)]
    keep_distinct: bool,
    /// Time limit per query execution, in seconds.
    #[arg(long, default_value_t = DEFAULT_TIMEOUT_SECS)]
    timeout_secs: f64,
    /// Worker threads (default: all cores). Results do not depend on it.
    #[arg(long)]
    jobs: Option<usize>,
    /// Write one JSON object per scored example to this file.
    #[arg(long, value_name = "FILE.jsonl")]
    out: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Eval(a) => eval::run(&eval::EvalOptions {
            data: a.data,
            pred: a.pred,
            split: a.split,
            mode: a.mode,
            keep_distinct: a.keep_distinct,
            timeout_secs: a.timeout_secs,
            jobs: a.jobs,
            out: a.out,
            format: a.format,
        }),
        Command::Data {
            command:
                DataCommand::Check {
                    data,
                    timeout_secs,
                    jobs,
                },
        } => data_check::run(&data_check::DataCheckOptions {
            data,
            timeout_secs,
            jobs,
        })
        .map(|problems| {
            if problems > 0 {
                eprintln!("{problems} gold queries fail");
            }
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
