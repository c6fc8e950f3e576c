//! `finetune train` for real: a short LoRA run of the local 0.5B model on
//! 8 examples exported from a Spider-format fixture, in the pinned Python
//! environment (`finetune setup`). The loss goes down, the adapter is
//! registered with its base and data hashes, llama.cpp loads it, and it
//! changes the model's greedy answer to a question it was trained on.
//! Needs the local model (`models fetch`) and the environment (`finetune
//! setup`); skipped where either is missing (CI installs both).

mod common;

use serde_json::Value;
use spider_bench::llm::local::{Adapter, LocalConfig, LocalModel};
use spider_bench::llm::{GenParams, Generator, Message};
use spider_bench::models::{DEFAULT_GENERATION_MODEL, is_installed, spec};
use spider_bench::paths::models_dir;
use std::path::{Path, PathBuf};
use std::process::Command;

fn ready(test: &str) -> bool {
    if !is_installed(spec(DEFAULT_GENERATION_MODEL).unwrap(), &models_dir()) {
        common::skip(
            test,
            "the local model is not installed (run `spider-bench models fetch`)",
        );
        return false;
    }
    let env = spider_bench::finetune::train::python_env_dir();
    if !spider_bench::finetune::train::python_env_installed() {
        common::skip(
            test,
            &format!(
                "the fine-tuning environment is not installed in {} (run `spider-bench finetune setup`)",
                env.display()
            ),
        );
        return false;
    }
    true
}

fn bin(models: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_spider-bench"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("SPIDER_BENCH_MODELS", models);
    c
}

fn checked(mut c: Command) -> String {
    let o = c.output().unwrap();
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{c:?}\n{out}");
    out
}

/// The mini fixture with a dev split on a database no train question uses,
/// so that all 8 train questions can be exported.
fn data(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    common::copy_dir(&common::mini_spider(), &data);
    let dev =
        serde_json::json!([{"db_id": "lost_db", "question": "How many rows?", "query": "SELECT count(*) FROM t"}]);
    std::fs::write(data.join("dev.json"), dev.to_string()).unwrap();
    let _ = std::fs::remove_file(data.join("dev_gold.sql"));
    data
}

/// A models folder of the test's own (the installed base model, seen
/// through a link; adapters are registered there), and the fixture's 8
/// train questions exported with the plain prompt.
fn exported(dir: &Path) -> (PathBuf, PathBuf) {
    let models = dir.join("models");
    std::fs::create_dir_all(&models).unwrap();
    std::os::unix::fs::symlink(
        models_dir().join(DEFAULT_GENERATION_MODEL),
        models.join(DEFAULT_GENERATION_MODEL),
    )
    .unwrap();
    let data = data(dir);
    let train_file = dir.join("plain.jsonl");
    let mut export = bin(&models);
    export
        .args(["finetune", "export", "--val-fraction", "0", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&train_file);
    checked(export);
    (models, train_file)
}

async fn greedy(config: LocalConfig, messages: &[Message]) -> String {
    let model = LocalModel::load(config, Default::default()).unwrap();
    let params = GenParams {
        temperature: 0.0,
        max_tokens: 48,
        ..GenParams::default()
    };
    model.generate(messages, &params, &[0]).await.unwrap().remove(0).text
}

#[tokio::test(flavor = "multi_thread")]
async fn a_short_training_run_lowers_the_loss_and_its_adapter_changes_the_answer() {
    if !ready("a_short_training_run_lowers_the_loss_and_its_adapter_changes_the_answer") {
        return;
    }
    let dir = common::scratch("finetune", "train");
    let (models, train_file) = exported(&dir);
    let mut check = bin(&models);
    check.args(["finetune", "check"]).arg(&train_file);
    let said = checked(check);
    assert!(said.contains("8 rows") && said.contains("ready to train"), "{said}");
    assert!(said.contains("computed once packed"), "no training plan: {said}");
    let mut train = bin(&models);
    train
        .args(["finetune", "train", "--name", "test-adapter", "--quiet"])
        .args([
            "--rank",
            "8",
            "--lr",
            "2e-3",
            "--batch-size",
            "4",
            "--epochs",
            "6",
            "--eval-every",
            "1000",
        ])
        .args(["--checkpoint-every", "4", "--seed", "1"])
        .arg("--work-dir")
        .arg(dir.join("work"))
        .arg(&train_file);
    let said = checked(train);
    let registration: Value =
        serde_json::from_str(&std::fs::read_to_string(models.join("adapters/test-adapter/adapter.json")).unwrap())
            .unwrap();
    let outcome = &registration["outcome"];
    let (first, last) = (
        outcome["train_loss_first"].as_f64().unwrap(),
        outcome["train_loss_last"].as_f64().unwrap(),
    );
    assert!(
        last < 0.7 * first,
        "the loss did not go down: {first} -> {last}\n{said}"
    );
    assert_eq!(
        registration["base_sha256"],
        spec(DEFAULT_GENERATION_MODEL).unwrap().gguf().unwrap().sha256
    );
    assert_eq!(
        registration["train_sha256"].as_str().unwrap(),
        spider_bench::models::sha256_of(&train_file).unwrap()
    );
    // `models list` shows it.
    let mut list = bin(&models);
    list.args(["models", "list"]);
    assert!(checked(list).contains("test-adapter"));
    // The greedy answer to a trained question, without and with the adapter.
    let row: Value =
        serde_json::from_str(std::fs::read_to_string(&train_file).unwrap().lines().next().unwrap()).unwrap();
    let messages: Vec<Message> = serde_json::from_value(row["messages"].clone()).unwrap();
    let (prompt, answer) = messages.split_at(messages.len() - 1);
    let spec = spec(DEFAULT_GENERATION_MODEL).unwrap();
    let gguf = models_dir().join(spec.name).join(spec.gguf().unwrap().name);
    let mut config = LocalConfig::new(DEFAULT_GENERATION_MODEL, &gguf, spec.gguf().unwrap().sha256);
    config.sequences = 1;
    let base = greedy(config.clone(), prompt).await;
    let adapter_path = models.join("adapters/test-adapter/adapter.gguf");
    config.adapter = Some(Adapter {
        sha256: spider_bench::models::sha256_of(&adapter_path).unwrap(),
        path: adapter_path,
    });
    let tuned = greedy(config, prompt).await;
    assert_ne!(base, tuned, "the adapter did not change the answer");
    eprintln!(
        "trained answer {:?}\nbase: {base:?}\ntuned: {tuned:?}",
        answer[0].content
    );
}

/// The first validation loss (before any step) of a training run.
fn first_val_loss(work: &Path) -> f64 {
    let events = std::fs::read_to_string(work.join("events.jsonl")).unwrap();
    events
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|e| e["event"] == "eval" && e["step"] == 0)
        .and_then(|e| e["val_loss"].as_f64())
        .unwrap_or_else(|| panic!("no validation loss at step 0 in {}", work.display()))
}

#[test]
fn packed_examples_get_the_loss_they_have_alone() {
    if !ready("packed_examples_get_the_loss_they_have_alone") {
        return;
    }
    let dir = common::scratch("finetune", "packing");
    let (models, train_file) = exported(&dir);
    // The training file is its own validation file: the loss before any
    // step, packed (questions of one database share their schema in one
    // sequence) and one example a sequence.
    let mut losses = Vec::new();
    for packing in [true, false] {
        let work = dir.join(format!("work-{packing}"));
        let mut train = bin(&models);
        train
            .args([
                "finetune",
                "train",
                "--name",
                &format!("packing-{packing}"),
                "--quiet",
                "--max-steps",
                "1",
            ])
            .args(["--batch-size", "8", "--checkpoint-every", "0"])
            .arg("--val")
            .arg(&train_file)
            .arg("--work-dir")
            .arg(&work)
            .arg(&train_file);
        if !packing {
            train.arg("--no-packing");
        }
        checked(train);
        losses.push(first_val_loss(&work));
    }
    let events = std::fs::read_to_string(dir.join("work-true/events.jsonl")).unwrap();
    let start: Value = serde_json::from_str(events.lines().next().unwrap()).unwrap();
    assert!(
        start["computed_tokens_per_epoch"].as_u64() < start["tokens_per_epoch"].as_u64(),
        "nothing was packed: {start}"
    );
    assert!(
        (losses[0] - losses[1]).abs() < 1e-4 * losses[1],
        "packed {} against alone {}",
        losses[0],
        losses[1]
    );
    // `finetune check` estimates the time from the trainer's own plan (the
    // same batches of 8): the tokens an epoch computes once packed, at the
    // computed rate the newest of the two adapters measured.
    let mut check = bin(&models);
    check.args(["finetune", "check", "--format", "json"]).arg(&train_file);
    let o = check.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    let local = &report["local"];
    assert_eq!(
        local["plan"]["computed_tokens_per_epoch"], start["computed_tokens_per_epoch"],
        "{local}"
    );
    assert_eq!(local["plan"]["tokens_per_epoch"], start["tokens_per_epoch"], "{local}");
    // check's own count (llama.cpp's tokenizer) is the trainer's (transformers').
    assert_eq!(local["tokens_per_epoch"], start["tokens_per_epoch"], "{local}");
    let expected = start["computed_tokens_per_epoch"].as_f64().unwrap()
        / local["computed_tokens_per_s"]
            .as_f64()
            .unwrap_or_else(|| panic!("not estimated in computed tokens: {local}"));
    assert!(
        (local["seconds"].as_f64().unwrap() - expected).abs() < 1e-6 * expected,
        "{local}"
    );
}
