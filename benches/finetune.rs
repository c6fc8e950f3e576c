//! Training speed of `finetune train` on this machine, in one run: the
//! trainer on Spider's train set exported with the `finetuned` rung's
//! prompt (the 0.5B model, LoRA r = 16 on every linear layer of the blocks,
//! batches of 4 (one example a sequence at 8 needs more memory than these machines have on the longest schemas), f32 on CPUs without AMX), with and without packing, and
//! PyTorch's own f32 matmul speed measured in the same environment, so that
//! the share of the machine's matmul peak is a ratio of two numbers taken
//! side by side. Prints training tokens/s (tokens of the examples, what an
//! epoch is made of), tokens computed per second (a pack computes the
//! prefix its examples share once), the FLOP rate that implies, its share
//! of the matmul peak, and the time one epoch of Spider train takes.
//!
//! `BENCH_FINETUNE_STEPS` optimizer steps per mode (default 4; the first
//! step is warm-up and not counted).

mod common;

use anyhow::{Context, Result};
use spider_bench::finetune::export::{ExportOptions, PromptKind, export};
use spider_bench::finetune::format::Format;
use spider_bench::finetune::train::{Device, Dtype, TrainerConfig, ensure_python_env, python_env_installed, run_in};
use std::path::{Path, PathBuf};
use std::process::Command;

/// PyTorch's best f32 matmul rate over the shapes of the 0.5B model's
/// linear layers (and a square one), in GFLOP/s, with `threads` threads.
const MATMUL_PEAK: &str = r#"
import json, sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
best = 0.0
for m, k, n in [(1024, 896, 4864), (1024, 4864, 896), (1024, 896, 896), (2048, 2048, 2048)]:
    a, b = torch.randn(m, k), torch.randn(k, n)
    for _ in range(3):
        a @ b
    runs, t = 0, time.perf_counter()
    while time.perf_counter() - t < 1.5:
        a @ b
        runs += 1
    best = max(best, 2 * m * k * n * runs / (time.perf_counter() - t) / 1e9)
print(json.dumps({"gflops": best}))
"#;

fn main() -> Result<()> {
    let Some(data) = common::spider_data("finetune") else {
        return Ok(());
    };
    let Some((gguf, _)) = common::default_model("finetune") else {
        return Ok(());
    };
    if !python_env_installed() {
        println!("finetune: SKIPPED, the fine-tuning environment is not installed (run `spider-bench finetune setup`)");
        return Ok(());
    }
    let steps: u64 = std::env::var("BENCH_FINETUNE_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-finetune");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let train_file = dir.join("plain.jsonl");
    let manifest = export(&ExportOptions {
        data: Some(data),
        out: train_file.clone(),
        prompt: PromptKind::Plain,
        strategy: None,
        strategies_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("strategies"),
        format: Format::Chat,
        val_fraction: 0.0,
        seed: 0,
        limit: None,
    })?;
    println!(
        "finetune: {} train examples exported with the finetuned rung's prompt; {} optimizer steps of 4 examples per mode, {threads} threads",
        manifest.train.examples, steps
    );
    let mut rows = Vec::new();
    for packing in [false, true] {
        let done = train_steps(
            &gguf,
            &train_file,
            &dir.join(format!("packing-{packing}")),
            steps,
            threads,
            packing,
        )?;
        rows.push((packing, done));
    }
    let peak = matmul_peak(threads)?;
    let mut table = comfy_table::Table::new();
    table.load_style(comfy_table::presets::ASCII_MARKDOWN).set_header([
        "mode",
        "training tokens/s",
        "computed tokens/s",
        "GFLOP/s",
        "share of matmul peak",
        "one epoch of Spider train",
    ]);
    for (packing, done) in &rows {
        let f = |k: &str| done.get(k).and_then(|v| v.as_f64()).unwrap_or(f64::NAN);
        // Every computed token passes the frozen linear weights forward and
        // back to its inputs (2 + 2 FLOPs a weight), and the LoRA weights
        // forward, back and to their own gradients (6 a weight); attention
        // and the answer positions' logits are left out.
        let flops_per_token = 4.0 * f("base_linear_params") + 6.0 * f("trainable_params");
        let gflops = f("computed_tokens_per_s") * flops_per_token / 1e9;
        let epoch_s = f("tokens_per_epoch") / f("tokens_per_s");
        table.add_row([
            if *packing { "packed" } else { "one example a sequence" }.to_string(),
            format!("{:.1}", f("tokens_per_s")),
            format!("{:.1}", f("computed_tokens_per_s")),
            format!("{gflops:.1}"),
            format!("{:.0}% of {peak:.0} GFLOP/s", 100.0 * gflops / peak),
            format!(
                "{:.1} h ({:.2} M tokens, {:.2} M computed)",
                epoch_s / 3600.0,
                f("tokens_per_epoch") / 1e6,
                f("computed_tokens_per_epoch") / 1e6
            ),
        ]);
    }
    println!("{table}");
    let speedup = rows[1].1["tokens_per_s"].as_f64().unwrap_or(0.0) / rows[0].1["tokens_per_s"].as_f64().unwrap_or(1.0);
    println!("finetune: packing trains {speedup:.2}x as many tokens per second (same examples, same steps budget)");
    Ok(())
}

/// A few optimizer steps on the full export; the trainer's `done` event
/// (speeds, epoch figures, trainable and frozen parameter counts).
fn train_steps(
    gguf: &Path,
    train: &Path,
    dir: &Path,
    steps: u64,
    threads: usize,
    packing: bool,
) -> Result<serde_json::Value> {
    let config = TrainerConfig {
        base_gguf: gguf.to_path_buf(),
        train_file: train.to_path_buf(),
        val_file: None,
        out_dir: dir.to_path_buf(),
        rank: 16,
        alpha: 32.0,
        dropout: 0.05,
        learning_rate: 2e-4,
        epochs: 1,
        max_steps: Some(steps),
        batch_size: 4,
        grad_accum: 1,
        max_len: 2048,
        seed: 0,
        checkpoint_every: 0,
        eval_every: 0,
        device: Device::Cpu,
        threads: Some(threads),
        resume: false,
        dtype: Dtype::Auto,
        packing,
    };
    run_in(dir, &config, false).with_context(|| format!("training in {}", dir.display()))
}

fn matmul_peak(threads: usize) -> Result<f64> {
    let python = ensure_python_env()?.python();
    let out = Command::new(python)
        .args(["-c", MATMUL_PEAK, &threads.to_string()])
        .output()?;
    anyhow::ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    v["gflops"].as_f64().context("no gflops")
}
