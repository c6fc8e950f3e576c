//! The `spider-bench` command line: argument parsing and dispatch only; the
//! arguments of each command are defined next to it, in the library.

use clap::{Parser, Subcommand};
use spider_bench::commands::{compare, data_check, eval, finetune, models, retrieval, run};
use spider_bench::dataset::fetch::FetchOptions;
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
    Eval(eval::EvalArgs),
    /// Run strategies against a chat model and compare them.
    Run(Box<run::RunArgs>),
    /// Print the comparison table of saved runs again.
    Report(run::ReportArgs),
    /// Show the questions where two runs, strategies or prediction files disagree.
    Compare(compare::CompareArgs),
    /// Score example selectors against the gold, without generating.
    Retrieval(retrieval::RetrievalArgs),
    /// Install or list model weights.
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
    /// List the strategies: built-in rungs and files in strategies/.
    Strategies(run::StrategiesArgs),
    /// Fine-tuning: training data, its checks, LoRA training of a local model.
    Finetune {
        #[command(subcommand)]
        command: FinetuneCommand,
    },
    /// Inspect the Spider data folder.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// Download, verify (sha256) and install models; does nothing for what is installed.
    Fetch(models::FetchArgs),
    /// Show the known models and whether they are installed.
    List(models::ListArgs),
}

#[derive(Subcommand)]
enum FinetuneCommand {
    /// One training example per train question: the prompt a strategy
    /// builds at inference time and the gold SQL (no dev question or
    /// database ever); validation split by database.
    Export(spider_bench::finetune::export::ExportOptions),
    /// Check a training file before training: format errors, token counts
    /// with the model's tokenizer, duplicates, train/validation overlap,
    /// epochs, cost or time.
    Check(spider_bench::finetune::check::CheckOptions),
    /// LoRA fine-tuning of a local model (PyTorch + PEFT, in a pinned
    /// Python environment installed on first use); registers the adapter.
    Train(spider_bench::finetune::train::TrainOptions),
    /// Install the pinned Python environment that `train` uses, now
    /// (idempotent; `train` does it on first use).
    Setup,
}

#[derive(Subcommand)]
enum DataCommand {
    /// Put Spider 1.0 in the data folder: download the official zip
    /// (verified, extracted), or link/copy an existing copy with --from.
    Fetch(FetchOptions),
    /// Show what is present and missing, and run every gold query once.
    Check(data_check::DataCheckArgs),
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Eval(a) => eval::run(&a),
        Command::Run(a) => run::run_command(&a),
        Command::Report(a) => run::report(&a),
        Command::Compare(a) => compare::run(&a),
        Command::Strategies(a) => run::strategies(&a),
        Command::Retrieval(a) => retrieval::run(&a),
        Command::Models { command } => match command {
            ModelsCommand::Fetch(a) => models::fetch(&a),
            ModelsCommand::List(a) => models::print_list(&a),
        },
        Command::Finetune { command } => match command {
            FinetuneCommand::Export(a) => finetune::export_command(&a),
            FinetuneCommand::Check(a) => finetune::check_command(&a),
            FinetuneCommand::Train(a) => finetune::train_command(&a),
            FinetuneCommand::Setup => finetune::setup_command(),
        },
        Command::Data { command } => match command {
            DataCommand::Fetch(a) => spider_bench::dataset::fetch::fetch(&a),
            DataCommand::Check(a) => data_check::run(&a).and_then(|found| {
                if found.problems > 0 {
                    eprintln!("{} gold queries fail", found.problems);
                }
                if found.damaged_files > 0 {
                    anyhow::bail!(
                        "{} damaged database file(s): their databases cannot be scored (see above)",
                        found.damaged_files
                    );
                }
                Ok(())
            }),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
