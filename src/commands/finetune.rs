//! `spider-bench finetune export|check|train`.

use crate::finetune::check::{CheckFormat, CheckOptions, OpenAiCounter, TokenCounter, check_with, render_text};
use crate::finetune::export::{ExportOptions, export};
use crate::finetune::train::{TrainOptions, TrainPlan, train};
use anyhow::{Result, bail};

/// Writes the files and says what went where, and what was left out.
pub fn export_command(opts: &ExportOptions) -> Result<()> {
    let m = export(opts)?;
    println!(
        "{}: {} training examples ({} format, prompts of {})",
        m.train.path.display(),
        m.train.examples,
        m.format.name(),
        m.strategy
    );
    match &m.val {
        Some(v) => println!(
            "{}: {} validation examples, from {} databases of their own",
            v.path.display(),
            v.examples,
            m.val_databases.len()
        ),
        None => println!("no validation file (--val-fraction {})", m.val_fraction),
    }
    for l in &m.left_out {
        println!(
            "left out: {} {}: {} ({})",
            l.questions,
            if l.questions == 1 { "question" } else { "questions" },
            l.reason,
            l.databases.join(", ")
        );
    }
    Ok(())
}

/// Prints the checks; fails when a file has format errors.
pub fn check_command(opts: &CheckOptions) -> Result<()> {
    let counter = counter_for(&opts.model)?;
    let speed = crate::finetune::check::measured_local_speed(&opts.model);
    let report = check_with(opts, counter.as_ref(), speed, &|| local_plan(opts))?;
    match opts.format {
        CheckFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        CheckFormat::Table => print!("{}", render_text(&report)),
    }
    if !report.ok() {
        bail!("{} has format errors (listed above)", opts.file.display());
    }
    Ok(())
}

/// The trainer's plan of the file with `finetune train`'s defaults (and
/// check's --max-tokens and --epochs) on the local model's base, or why
/// there is none: the estimate then falls back to the examples' tokens.
fn local_plan(opts: &CheckOptions) -> Result<TrainPlan, String> {
    let model = opts.model.strip_prefix("local:").unwrap_or(&opts.model);
    // An adapter's model trains on its base, with the base's tokenizer.
    let base = crate::models::local_ref::base_name(model);
    let planned = TrainOptions::defaults(&opts.file, base).and_then(|mut t| {
        t.max_len = opts.max_tokens.unwrap_or(t.max_len);
        t.epochs = opts.epochs.unwrap_or(t.epochs);
        crate::finetune::train::plan(&t)
    });
    match planned {
        Ok(Some(plan)) => Ok(plan),
        Ok(None) => {
            Err("the fine-tuning environment that plans it is not installed (`spider-bench finetune setup`)".into())
        }
        Err(e) => {
            eprintln!("warning: the trainer could not plan {}: {e:#}", opts.file.display());
            Err("the trainer's plan failed (the warning above says why)".into())
        }
    }
}

fn counter_for(model: &str) -> Result<Box<dyn TokenCounter>> {
    if model.starts_with("local:") {
        #[cfg(feature = "local-models")]
        return Ok(Box::new(crate::finetune::check::LocalCounter::new(model)?));
        #[cfg(not(feature = "local-models"))]
        bail!("--model {model}: {}", crate::models::WITHOUT_LOCAL_MODELS);
    }
    Ok(Box::new(OpenAiCounter::new(model)?))
}

/// Trains and says where the adapter is and how to run it.
pub fn train_command(opts: &TrainOptions) -> Result<()> {
    let t = train(opts)?;
    let a = &t.adapter;
    let f = |k: &str| a.outcome.get(k).and_then(|v| v.as_f64()).unwrap_or(f64::NAN);
    println!(
        "adapter {} on {}: {} (training loss {:.4} -> {:.4}, validation loss {:.4} -> {:.4}, {:.0} tokens/s, {:.0} s)",
        a.name,
        a.base_model,
        a.gguf_path().display(),
        f("train_loss_first"),
        f("train_loss_last"),
        f("val_loss_first"),
        f("val_loss_last"),
        f("tokens_per_s"),
        f("elapsed_s"),
    );
    println!("events: {}", t.log.display());
    println!(
        "run it: spider-bench run --model local:{}+lora:{} ...",
        a.base_model, a.name
    );
    Ok(())
}

/// Installs the fine-tuning environment and says where it is.
pub fn setup_command() -> Result<()> {
    let env = crate::finetune::train::ensure_python_env()?;
    println!("{}", env.dir.display());
    Ok(())
}
