//! `finetune train`: LoRA fine-tuning of a local model with PyTorch + PEFT,
//! the field's standard engine, in a Python environment that spider-bench
//! installs itself from PyPI with pinned versions (`python/requirements.txt`)
//! under the cache folder, once. The trainer (`python/train.py`) reads the
//! base weights from the installed GGUF (dequantized by transformers), so
//! no model hub is needed; it reports one JSON event per line, which this
//! side shows as a progress bar and keeps in the run's log. The adapter
//! comes back in llama.cpp's GGUF LoRA format and is registered with what
//! made it (`models list` shows it; `--model local:BASE+lora:NAME` runs it).

use crate::models::adapters::{Adapter, check_name, register};
use crate::models::local_ref::{LocalRef, ResolvedLocal};
use crate::models::sha256_of;
use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The trainer and its pinned environment, compiled into the binary so the
/// environment always matches the code that drives it.
const TRAINER: &str = include_str!("python/train.py");
const REQUIREMENTS: &str = include_str!("python/requirements.txt");

/// The options of `spider-bench finetune train`.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct TrainOptions {
    /// The training file (chat JSONL, as `finetune export` writes it).
    pub train: PathBuf,
    /// The adapter's name (`--model local:BASE+lora:NAME`).
    #[arg(long)]
    pub name: String,
    /// The validation file (default: NAME.val.jsonl beside the training
    /// file, when present).
    #[arg(long, value_name = "FILE")]
    pub val: Option<PathBuf>,
    /// The base model: a local model's name or a GGUF file.
    #[arg(long, default_value = crate::models::DEFAULT_GENERATION_MODEL)]
    pub base: String,
    /// LoRA rank and alpha (the update is scaled by alpha / rank).
    #[arg(long, default_value_t = 16)]
    pub rank: u32,
    #[arg(long, default_value_t = 32.0)]
    pub alpha: f64,
    #[arg(long, default_value_t = 0.05)]
    pub dropout: f64,
    #[arg(long = "lr", default_value_t = 2e-4)]
    pub learning_rate: f64,
    #[arg(long, default_value_t = 1)]
    pub epochs: u32,
    /// Stop after this many optimizer steps (default: the epochs' steps).
    #[arg(long)]
    pub max_steps: Option<u64>,
    /// Examples per batch, and batches per optimizer step.
    #[arg(long, default_value_t = 8)]
    pub batch_size: u32,
    #[arg(long, default_value_t = 1)]
    pub grad_accum: u32,
    /// Train each example in a sequence of its own, instead of packing
    /// examples that share a prompt prefix (one database's schema) into one
    /// sequence that computes the prefix once (exact, and several times
    /// faster on Spider's prompts).
    #[arg(long = "no-packing", action = clap::ArgAction::SetFalse)]
    pub packing: bool,
    /// Longest example in tokens; longer ones are left out and counted.
    #[arg(long, default_value_t = super::check::DEFAULT_MAX_LEN)]
    pub max_len: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Save a checkpoint every N optimizer steps (what --resume continues from).
    #[arg(long, default_value_t = 50)]
    pub checkpoint_every: u64,
    /// Validation loss every N steps (and before and after training).
    #[arg(long, default_value_t = 100)]
    pub eval_every: u64,
    /// Where to train: a CUDA GPU when PyTorch sees one (auto), or say.
    #[arg(long, value_enum, default_value = "auto")]
    pub device: Device,
    /// Number format of the base weights during training (auto: bf16 where
    /// the CPU or GPU computes it faster, else f32).
    #[arg(long, value_enum, default_value = "auto")]
    pub dtype: Dtype,
    /// CPU threads for PyTorch (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Continue the training run of this name from its last checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// The run's folder (default: finetune/NAME in the cache folder).
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// No progress bar (events are still logged).
    #[arg(long = "quiet", action = clap::ArgAction::SetFalse)]
    #[serde(skip)]
    pub progress: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    Auto,
    Cpu,
    Cuda,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    Auto,
    F32,
    Bf16,
}

/// The Python environment: a venv per requirements file, under the cache
/// folder, made once (`ok` marks a finished install).
pub struct PythonEnv {
    pub dir: PathBuf,
}

impl PythonEnv {
    pub fn python(&self) -> PathBuf {
        self.dir.join("bin").join("python")
    }

    /// The trainer script, written into the environment.
    pub fn trainer(&self) -> PathBuf {
        self.dir.join("spider_bench_train.py")
    }
}

/// The environment's folder: `finetune-env-HASH` (of the requirements) in
/// the cache folder, or `$SPIDER_BENCH_FINETUNE_ENV`.
pub fn python_env_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("SPIDER_BENCH_FINETUNE_ENV").filter(|v| !v.is_empty()) {
        return PathBuf::from(d);
    }
    let hash = hex::encode(Sha256::digest(REQUIREMENTS.as_bytes()));
    crate::paths::cache_dir().join(format!("finetune-env-{}", &hash[..12]))
}

/// The file in the environment's folder whose presence marks a finished
/// install.
const INSTALLED_MARKER: &str = "ok";

/// Whether the environment is installed (nothing is installed by asking).
pub fn python_env_installed() -> bool {
    python_env_dir().join(INSTALLED_MARKER).is_file()
}

/// Installs the pinned environment where it is missing (idempotent) and
/// writes the trainer into it.
pub fn ensure_python_env() -> Result<PythonEnv> {
    let env = PythonEnv { dir: python_env_dir() };
    let marker = env.dir.join(INSTALLED_MARKER);
    if !marker.is_file() {
        install_env(&env)?;
        std::fs::write(&marker, REQUIREMENTS).with_context(|| format!("cannot write {}", marker.display()))?;
    }
    if std::fs::read_to_string(env.trainer()).ok().as_deref() != Some(TRAINER) {
        std::fs::write(env.trainer(), TRAINER).with_context(|| format!("cannot write {}", env.trainer().display()))?;
    }
    Ok(env)
}

fn install_env(env: &PythonEnv) -> Result<()> {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    eprintln!(
        "installing the fine-tuning environment (PyTorch, PEFT, transformers, gguf; pinned in \
         src/finetune/python/requirements.txt) into {} from PyPI: once, a few minutes, several GB",
        env.dir.display()
    );
    let started = std::time::Instant::now();
    let _ = std::fs::remove_dir_all(&env.dir);
    run_checked(
        Command::new(&python).args(["-m", "venv"]).arg(&env.dir),
        "create the venv",
    )
    .with_context(|| format!("is {python} (3.9 or newer, with venv) installed? set $PYTHON to another"))?;
    let requirements = env.dir.join("requirements.txt");
    std::fs::write(&requirements, REQUIREMENTS)?;
    run_checked(
        Command::new(env.python())
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(&requirements),
        "install the pinned packages",
    )
    .context("check that PyPI can be reached (or set PIP_INDEX_URL to a mirror)")?;
    eprintln!(
        "fine-tuning environment installed in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn run_checked(cmd: &mut Command, what: &str) -> Result<()> {
    let status = cmd.status().with_context(|| format!("cannot {what}: {cmd:?}"))?;
    if !status.success() {
        bail!("could not {what} ({status}): {cmd:?}");
    }
    Ok(())
}

/// What the trainer reads (`config.json` of the run).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrainerConfig {
    pub base_gguf: PathBuf,
    pub train_file: PathBuf,
    pub val_file: Option<PathBuf>,
    pub out_dir: PathBuf,
    pub rank: u32,
    pub alpha: f64,
    pub dropout: f64,
    pub learning_rate: f64,
    pub epochs: u32,
    pub max_steps: Option<u64>,
    pub batch_size: u32,
    pub grad_accum: u32,
    pub max_len: usize,
    pub seed: u64,
    pub checkpoint_every: u64,
    pub eval_every: u64,
    pub device: Device,
    pub threads: Option<usize>,
    pub resume: bool,
    pub dtype: Dtype,
    pub packing: bool,
}

/// What the run ended with (the trainer's `done` event).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Trained {
    pub adapter: Adapter,
    pub log: PathBuf,
}

/// The run's folder.
pub fn work_dir(opts: &TrainOptions) -> PathBuf {
    opts.work_dir
        .clone()
        .unwrap_or_else(|| crate::paths::cache_dir().join("finetune").join(&opts.name))
}

/// Trains, then registers the adapter.
pub fn train(opts: &TrainOptions) -> Result<Trained> {
    check_name(&opts.name)?;
    if !opts.train.is_file() {
        bail!(
            "no training file {} (make one with `spider-bench finetune export`)",
            opts.train.display()
        );
    }
    let val = opts
        .val
        .clone()
        .or_else(|| Some(super::check::default_val_file(&opts.train)).filter(|p| p.is_file()));
    let (resolved, gguf) = install_base(&opts.base)?;
    let dir = work_dir(opts);
    let config = trainer_config(opts, &gguf, val.as_deref(), &dir)?;
    let done = run_in(&dir, &config, opts.progress)?;
    let log = dir.join("events.jsonl");
    let adapter_file = done
        .get("adapter")
        .and_then(|v| v.as_str())
        .map(PathBuf::from)
        .ok_or_else(|| {
            anyhow!(
                "the trainer finished without naming its adapter file (see {})",
                log.display()
            )
        })?;
    let adapter_sha256 = sha256_of(&adapter_file)
        .ok_or_else(|| anyhow!("the trainer's adapter {} cannot be read", adapter_file.display()))?;
    let train_sha256 = sha256_of(&opts.train).unwrap_or_default();
    let manifest_path = opts.train.with_file_name(
        opts.train
            .file_name()
            .map(|n| n.to_string_lossy().trim_end_matches(".jsonl").to_string() + ".manifest.json")
            .unwrap_or_default(),
    );
    let export_manifest = std::fs::read_to_string(&manifest_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let adapter = Adapter {
        name: opts.name.clone(),
        base_model: resolved.display.clone(),
        base_sha256: resolved.sha256.clone(),
        adapter_sha256,
        train_sha256,
        val_sha256: val.as_deref().and_then(sha256_of),
        export_manifest,
        hyperparameters: serde_json::to_value(&config)?,
        outcome: done,
        command: std::env::args().collect::<Vec<_>>().join(" "),
        created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        dir: PathBuf::new(),
    };
    // The run keeps its copy; the registered adapter is a copy of it.
    let staged = dir.join("adapter.registered.gguf");
    std::fs::copy(&adapter_file, &staged).with_context(|| format!("cannot copy {}", adapter_file.display()))?;
    let adapter = register(adapter, &staged)?;
    Ok(Trained { adapter, log })
}

/// The base model to train on, resolved and installed: its GGUF file.
fn install_base(base: &str) -> Result<(ResolvedLocal, PathBuf)> {
    let base_ref = LocalRef::parse(base)?;
    if base_ref.adapter.is_some() {
        bail!("--base {base}: train on a base model, not on one with an adapter");
    }
    let resolved = base_ref.resolve()?;
    let gguf = resolved.install()?;
    Ok((resolved, gguf))
}

/// What the trainer reads for `opts`, with the run in `dir`.
fn trainer_config(opts: &TrainOptions, base_gguf: &Path, val: Option<&Path>, dir: &Path) -> Result<TrainerConfig> {
    Ok(TrainerConfig {
        base_gguf: std::path::absolute(base_gguf)?,
        train_file: std::path::absolute(&opts.train)?,
        val_file: val.map(std::path::absolute).transpose()?,
        out_dir: std::path::absolute(dir)?,
        rank: opts.rank,
        alpha: opts.alpha,
        dropout: opts.dropout,
        learning_rate: opts.learning_rate,
        epochs: opts.epochs,
        max_steps: opts.max_steps,
        batch_size: opts.batch_size,
        grad_accum: opts.grad_accum,
        max_len: opts.max_len,
        seed: opts.seed,
        checkpoint_every: opts.checkpoint_every,
        eval_every: opts.eval_every,
        device: opts.device,
        threads: opts.threads,
        resume: opts.resume,
        dtype: opts.dtype,
        packing: opts.packing,
    })
}

/// A training run as the trainer plans it (`train.py --plan-only`): with
/// packing, the tokens it computes are far fewer than the examples' tokens,
/// by a share that depends on how much of their prompts the examples share.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrainPlan {
    pub examples: usize,
    pub skipped_too_long: usize,
    /// Optimizer steps in all (every epoch, up to --max-steps).
    pub steps: u64,
    pub tokens_per_epoch: usize,
    pub computed_tokens_per_epoch: usize,
    /// Tokens computed in all: what the training time follows (each epoch
    /// packs its own shuffle, so it is not epochs x the first epoch's).
    pub computed_tokens: usize,
}

/// The plan `finetune train` with `opts` would follow, made by the trainer
/// itself (the same packing code) without loading the model's weights, in
/// a folder that is removed after; `None` when the fine-tuning environment
/// is not installed (this never installs its several GB).
pub fn plan(opts: &TrainOptions) -> Result<Option<TrainPlan>> {
    if !python_env_installed() {
        return Ok(None);
    }
    let env = ensure_python_env()?;
    let (_, gguf) = install_base(&opts.base)?;
    let dir = tempfile::Builder::new()
        .prefix("spider-bench-plan-")
        .tempdir()
        .context("cannot make a temporary folder for the trainer's plan")?;
    let config = trainer_config(opts, &gguf, None, dir.path())?;
    prepare_work_dir(dir.path(), &config, false)?;
    let run = TrainerRun {
        progress: false,
        args: &["--plan-only"],
        kept: false,
    };
    let done = run_trainer(&env, dir.path(), &dir.path().join("events.jsonl"), &run)?;
    let plan = serde_json::from_value(done.clone())
        .with_context(|| format!("the trainer's plan is not what this version expects: {done}"))?;
    Ok(Some(plan))
}

impl TrainOptions {
    /// `finetune train`'s defaults for a training file and a base model.
    pub fn defaults(train: &Path, base: &str) -> Result<TrainOptions> {
        #[derive(clap::Parser)]
        struct Defaults {
            #[command(flatten)]
            opts: TrainOptions,
        }
        let args = [
            "train".as_ref(),
            "--name".as_ref(),
            "plan".as_ref(),
            "--base".as_ref(),
            base.as_ref(),
            "--".as_ref(),
            train.as_os_str(),
        ];
        Ok(<Defaults as clap::Parser>::try_parse_from(args)?.opts)
    }
}

/// Runs the trainer on `config` in the run folder `dir` (made, or checked
/// against a resumed run's settings), installing the environment where it
/// is missing; returns the trainer's `done` event. The events are in
/// `dir/events.jsonl`.
pub fn run_in(dir: &Path, config: &TrainerConfig, progress: bool) -> Result<serde_json::Value> {
    prepare_work_dir(dir, config, config.resume)?;
    let env = ensure_python_env()?;
    let run = TrainerRun {
        progress,
        args: &[],
        kept: true,
    };
    run_trainer(&env, dir, &dir.join("events.jsonl"), &run)
}

/// How the trainer is run: a training run (its folder kept for --resume)
/// or a plan in a folder that goes away.
struct TrainerRun<'a> {
    progress: bool,
    args: &'a [&'a str],
    /// Whether the run's folder (its logs and checkpoints) outlives the run.
    kept: bool,
}

/// Creates the run's folder, or checks that a resumed one was made with
/// the same settings (only `resume` may differ).
fn prepare_work_dir(dir: &Path, config: &TrainerConfig, resume: bool) -> Result<()> {
    let path = dir.join("config.json");
    if path.is_file() {
        if !resume {
            bail!(
                "{} already holds a training run: pass --resume to continue it, or choose another --name (or --work-dir)",
                dir.display()
            );
        }
        let old: TrainerConfig = serde_json::from_str(&std::fs::read_to_string(&path)?)
            .with_context(|| format!("{} is not a training configuration", path.display()))?;
        let same = TrainerConfig {
            resume: config.resume,
            ..old.clone()
        };
        if same != *config {
            bail!(
                "{} was started with other settings; resume with the same arguments, or train under another --name\n  was: {}\n  now: {}",
                dir.display(),
                serde_json::to_string(&old)?,
                serde_json::to_string(config)?
            );
        }
    } else if resume {
        bail!("nothing to resume in {}: train without --resume first", dir.display());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    crate::paths::write_atomically(&path, serde_json::to_string_pretty(config)?.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Runs the trainer, logging its events and showing its progress; returns
/// its `done` event.
fn run_trainer(env: &PythonEnv, dir: &Path, log: &Path, run: &TrainerRun) -> Result<serde_json::Value> {
    let stderr_path = dir.join("trainer.stderr.log");
    let stderr = std::fs::File::create(&stderr_path)?;
    let mut child = Command::new(env.python())
        .arg(env.trainer())
        .arg("--config")
        .arg(dir.join("config.json"))
        .args(run.args)
        .env("HF_HUB_OFFLINE", "1")
        .env("TRANSFORMERS_OFFLINE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .with_context(|| format!("cannot start {}", env.python().display()))?;
    let mut events = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    let bar = progress_bar(run.progress);
    let mut done = None;
    let mut error = None;
    let stdout = child.stdout.take().expect("piped");
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        writeln!(events, "{line}")?;
        let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        show(&bar, &event);
        match event.get("event").and_then(|v| v.as_str()) {
            Some("done") => done = Some(event),
            Some("error") => error = event.get("message").and_then(|m| m.as_str()).map(str::to_string),
            _ => {}
        }
    }
    let status = child.wait()?;
    bar.finish_and_clear();
    match (done, status.success()) {
        (Some(done), true) => Ok(done),
        _ => {
            let tail = std::fs::read_to_string(&stderr_path).unwrap_or_default();
            let tail: Vec<&str> = tail
                .lines()
                .rev()
                .take(15)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            let (where_, then) = if run.kept {
                (
                    format!(" ({})", stderr_path.display()),
                    "\ncheckpoints are kept: fix the problem and rerun with --resume",
                )
            } else {
                (String::new(), "")
            };
            bail!(
                "the trainer stopped ({status}){}; its last words{where_}:\n{}{then}",
                error.map(|e| format!(": {e}")).unwrap_or_default(),
                tail.join("\n")
            )
        }
    }
}

fn progress_bar(visible: bool) -> indicatif::ProgressBar {
    let bar = if visible {
        indicatif::ProgressBar::new(0)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} step {pos}/{len} {msg} [{elapsed_precise}, ETA {eta}]")
            .expect("valid template"),
    );
    bar
}

/// One event on the progress bar (and the lines worth keeping above it).
fn show(bar: &indicatif::ProgressBar, event: &serde_json::Value) {
    let f = |k: &str| event.get(k).and_then(|v| v.as_f64());
    let u = |k: &str| event.get(k).and_then(|v| v.as_u64());
    match event.get("event").and_then(|v| v.as_str()) {
        Some("start") => {
            bar.set_length(u("steps").unwrap_or(0));
            bar.set_position(u("step").unwrap_or(0));
            bar.println(format!(
                "training on {} examples ({} left out as longer than the limit), {} steps, {} {}, {} trainable parameters",
                u("examples").unwrap_or(0),
                u("skipped_too_long").unwrap_or(0),
                u("steps").unwrap_or(0),
                event.get("device").and_then(|v| v.as_str()).unwrap_or("?"),
                event.get("dtype").and_then(|v| v.as_str()).unwrap_or("?"),
                u("trainable_params").unwrap_or(0),
            ));
        }
        Some("step") => {
            bar.set_position(u("step").unwrap_or(0));
            bar.set_message(format!(
                "loss {:.3} | {:.0} tokens/s | epoch {}",
                f("loss").unwrap_or(f64::NAN),
                f("tokens_per_s").unwrap_or(0.0),
                u("epoch").unwrap_or(0)
            ));
        }
        Some("eval") => bar.println(format!(
            "step {}: validation loss {:.4}",
            u("step").unwrap_or(0),
            f("val_loss").unwrap_or(f64::NAN)
        )),
        Some("checkpoint") => bar.set_message(format!("checkpoint at step {}", u("step").unwrap_or(0))),
        _ => {}
    }
}
