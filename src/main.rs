//! The `spider-bench` command line: argument parsing only; the work is in the library.

use clap::{Args, Parser, Subcommand};
use spider_bench::commands::{data_check, eval, retrieval, run};
use spider_bench::dataset::Split;
use spider_bench::eval::judge::Mode;
use spider_bench::llm::cache::CacheMode;
use spider_bench::table::Format;
use spider_bench::retrieval::select::{HydeBy, Method, RankOptions};
use spider_bench::run::RunOptions;
use spider_bench::run::select::Selection;
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
    /// Run strategies against a chat model and compare them.
    Run(Box<RunArgs>),
    /// Print the comparison table of saved runs again.
    Report {
        /// Run folders (written by `run`).
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Score example selectors against the gold, without generating.
    Retrieval {
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "dev")]
        split: Split,
        /// Selectors, comma-separated.
        #[arg(
            long,
            value_enum,
            value_delimiter = ',',
            default_value = "random,question-similarity,masked-question-similarity,hyde,difficulty-matched,hyde-difficulty,dail"
        )]
        selector: Vec<Method>,
        #[arg(long, default_value_t = 5)]
        k: usize,
        /// Hypothetical SQL for hyde/difficulty/dail: gold (upper bound), none, or RUN_DIR[:STRATEGY].
        #[arg(long, default_value = "gold")]
        preliminary: String,
        /// Question similarity: bm25, local:all-minilm-l6-v2, or openai:MODEL (with --base-url, --api-key-env).
        #[arg(long, default_value = "bm25")]
        similarity: String,
        #[arg(long, default_value = spider_bench::llm::client::OPENAI_BASE_URL)]
        base_url: String,
        #[arg(long, default_value = "OPENAI_API_KEY")]
        api_key_env: String,
        /// How hyde compares the hypothetical answer with pool SQL.
        #[arg(long, value_enum, default_value = "skeleton")]
        hyde_by: HydeBy,
        /// Keep table and column names in skeletons (DAIL-SQL masks them).
        #[arg(long)]
        keep_identifiers: bool,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Install or list model weights.
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
    /// List the strategies: built-in rungs and files in strategies/.
    Strategies {
        #[arg(long, default_value = "strategies")]
        dir: PathBuf,
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
    Fetch {
        /// Model names (see `models list`); default: the local generation
        /// model and the embedding model.
        names: Vec<String>,
        /// Models folder (default: $SPIDER_BENCH_MODELS, else ~/.cache/spider-bench/models).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Where from.
        #[arg(long, value_enum, default_value = "auto")]
        source: spider_bench::models::ModelSource,
    },
    /// Show the known models and whether they are installed.
    List {
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum DataCommand {
    /// Put Spider 1.0 in the data folder: download the official zip
    /// (verified, extracted), or link/copy an existing copy with --from.
    Fetch(spider_bench::dataset::fetch::FetchOptions),
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

#[derive(Args)]
struct RunArgs {
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Strategies, comma-separated: rungs (zero-shot, few-shot, cot, exec-retry,
    /// self-consistency), compositions (cot+self-consistency) or TOML names.
    #[arg(long, value_delimiter = ',', required = true)]
    strategy: Vec<String>,
    /// Folder of TOML strategy files.
    #[arg(long, default_value = "strategies")]
    strategies_dir: PathBuf,
    /// Model name as the server knows it, or local:NAME for a model run in
    /// this process (see `models list`). Default: local:qwen2.5-coder-0.5b
    /// when neither an API key nor --base-url is given.
    #[arg(long)]
    model: Option<String>,
    /// OpenAI-compatible endpoint (vLLM, llama.cpp server, Ollama:
    /// http://host:port/v1). Default: OpenAI's API.
    #[arg(long)]
    base_url: Option<String>,
    /// Environment variable holding the API key.
    #[arg(long, default_value = "OPENAI_API_KEY")]
    api_key_env: String,
    #[arg(long, value_enum, default_value = "dev")]
    split: Split,
    /// The first N scorable questions.
    #[arg(long, conflicts_with = "sample")]
    limit: Option<usize>,
    /// N questions drawn at random, stratified by hardness.
    #[arg(long)]
    sample: Option<usize>,
    /// Seed of --sample.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Only questions on this database.
    #[arg(long)]
    db: Option<String>,
    /// Requests (and questions) in flight at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Requests per minute, at most.
    #[arg(long)]
    rpm: Option<u32>,
    /// Tokens per minute, at most (estimated before each request).
    #[arg(long)]
    tpm: Option<u32>,
    #[arg(long, default_value_t = 120.0)]
    request_timeout_secs: f64,
    /// Retries of a request on 429, 5xx and timeouts.
    #[arg(long, default_value_t = 6)]
    max_retries: u32,
    /// First retry delay (doubled each time, with jitter) unless the server says Retry-After.
    #[arg(long, default_value_t = 1000)]
    retry_base_ms: u64,
    /// Run folder (default: results/runs/<time>-<model>).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Continue the run in --out, skipping finished examples.
    #[arg(long, requires = "out")]
    resume: bool,
    /// LLM cache file (default: ~/.cache/spider-bench/llm-cache.sqlite).
    #[arg(long, value_name = "FILE")]
    cache: Option<PathBuf>,
    /// Replay from the cache only; a miss stops the run.
    #[arg(long, conflicts_with = "no_cache")]
    cache_only: bool,
    /// Neither read nor write the cache.
    #[arg(long)]
    no_cache: bool,
    #[arg(long, value_enum, default_value = "official")]
    mode: Mode,
    /// Time limit per SQL execution, in seconds.
    #[arg(long, default_value_t = DEFAULT_TIMEOUT_SECS)]
    timeout_secs: f64,
    /// Price table overrides (TOML: [models."name"] input = .., output = .., USD per 1M tokens).
    #[arg(long, value_name = "FILE")]
    prices: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

impl RunArgs {
    fn options(self) -> anyhow::Result<RunOptions> {
        let model = match self.model {
            Some(m) => m,
            None => spider_bench::run::default_model(self.base_url.is_some(), &self.api_key_env)?,
        };
        let mut o = RunOptions::new(self.strategy, &model);
        o.data = self.data;
        o.strategies_dir = self.strategies_dir;
        if let Some(url) = self.base_url {
            o.base_url = url;
        }
        o.api_key_env = self.api_key_env;
        o.split = self.split;
        o.selection = Selection {
            limit: self.limit,
            sample: self.sample,
            seed: self.seed,
            db: self.db,
        };
        o.concurrency = self.concurrency;
        o.requests_per_minute = self.rpm;
        o.tokens_per_minute = self.tpm;
        o.request_timeout_secs = self.request_timeout_secs;
        o.max_retries = self.max_retries;
        o.retry_base_ms = self.retry_base_ms;
        o.out = self.out;
        o.resume = self.resume;
        o.cache = self.cache;
        o.cache_mode = if self.no_cache {
            CacheMode::Off
        } else if self.cache_only {
            CacheMode::CacheOnly
        } else {
            CacheMode::ReadWrite
        };
        o.mode = self.mode;
        o.timeout_secs = self.timeout_secs;
        o.prices = self.prices;
        o.progress = !self.quiet;
        Ok(o)
    }
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
        Command::Run(a) => {
            let format = a.format;
            a.options().and_then(|o| run::run_command(&o, format))
        }
        Command::Report { dirs, format } => run::report(&dirs, format),
        Command::Strategies { dir } => run::strategies(&dir),
        Command::Retrieval {
            data,
            split,
            selector,
            k,
            preliminary,
            similarity,
            base_url,
            api_key_env,
            hyde_by,
            keep_identifiers,
            format,
        } => retrieval::run(&retrieval::RetrievalOptions {
            data,
            split,
            selectors: selector,
            k,
            preliminary,
            similarity,
            base_url,
            api_key_env,
            options: RankOptions {
                hyde_by,
                keep_identifiers,
            },
            format,
        }),
        Command::Models {
            command: ModelsCommand::Fetch { names, dir, source },
        } => spider_bench::models::fetch_all(&names, dir.as_deref(), source),
        Command::Models {
            command: ModelsCommand::List { dir },
        } => {
            for (name, description, installed, path) in spider_bench::models::list(dir.as_deref()) {
                let state = if installed { "installed" } else { "not installed" };
                println!("{name:<20} {state:<14} {}  ({description})", path.display());
            }
            Ok(())
        }
        Command::Data {
            command: DataCommand::Fetch(options),
        } => spider_bench::dataset::fetch::fetch(&options),
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
