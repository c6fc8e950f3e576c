//! `spider-bench models fetch` from a Hugging Face endpoint: a real HTTP
//! server on 127.0.0.1 (named by HF_ENDPOINT, as the Hugging Face tools
//! read it) serves the model files in the hub's URL layout. The files are
//! the installed all-MiniLM-L6-v2 (skipped without it, as `common::skip`
//! does: a failure under CI, which installs it); a file
//! with another hash is refused.

#[path = "common/mod.rs"]
mod common;

use spider_bench::models::{DEFAULT_EMBEDDING_MODEL, is_installed, spec};
use spider_bench::paths::models_dir;
use std::process::{Command, Output};

/// Serves each file of the installed embedding model at its hub path; with
/// `corrupt`, the config has one byte changed.
fn serve_hub(corrupt: bool) -> (String, tokio::runtime::Runtime) {
    let spec = spec(DEFAULT_EMBEDDING_MODEL).unwrap();
    let files = spec
        .files
        .iter()
        .map(|f| {
            let mut bytes = std::fs::read(models_dir().join(spec.name).join(f.name)).unwrap();
            if corrupt && f.name == "config.json" {
                bytes[0] ^= 1;
            }
            (format!("/{}", f.huggingface), bytes)
        })
        .collect();
    common::serve_files(files)
}

fn fetch(endpoint: &str, dir: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_spider-bench"))
        .args([
            "models",
            "fetch",
            DEFAULT_EMBEDDING_MODEL,
            "--source",
            "huggingface",
            "--dir",
        ])
        .arg(dir)
        .env("HF_ENDPOINT", endpoint)
        .output()
        .unwrap()
}

fn installed(test: &str) -> bool {
    let ok = is_installed(spec(DEFAULT_EMBEDDING_MODEL).unwrap(), &models_dir());
    if !ok {
        common::skip(
            test,
            &format!(
                "{DEFAULT_EMBEDDING_MODEL} is not installed in {} (run `spider-bench models fetch`)",
                models_dir().display()
            ),
        );
    }
    ok
}

#[test]
fn installs_from_a_hugging_face_endpoint_and_is_idempotent() {
    if !installed("installs_from_a_hugging_face_endpoint_and_is_idempotent") {
        return;
    }
    let (endpoint, _rt) = serve_hub(false);
    let tmp = tempfile::tempdir().unwrap();
    let out = fetch(&endpoint, tmp.path());
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(log.contains(&format!(
        "{endpoint}/sentence-transformers/all-MiniLM-L6-v2/resolve/main/model.safetensors"
    )));
    assert!(is_installed(spec(DEFAULT_EMBEDDING_MODEL).unwrap(), tmp.path()));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        tmp.path().join(DEFAULT_EMBEDDING_MODEL).display().to_string()
    );
    // Again, with the server gone: nothing to download.
    let again = fetch("http://127.0.0.1:9", tmp.path());
    let log = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{log}");
    assert_eq!(log.matches("is installed (sha256 verified)").count(), 3, "{log}");
}

#[test]
fn a_file_with_another_hash_is_refused_with_a_clear_error() {
    if !installed("a_file_with_another_hash_is_refused_with_a_clear_error") {
        return;
    }
    let (endpoint, _rt) = serve_hub(true);
    let tmp = tempfile::tempdir().unwrap();
    let out = fetch(&endpoint, tmp.path());
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(log.contains("refusing it") && log.contains("config.json"), "{log}");
    assert!(log.contains("cannot install all-minilm-l6-v2/config.json"), "{log}");
    assert!(!tmp.path().join(DEFAULT_EMBEDDING_MODEL).join("config.json").exists());

    let nowhere = fetch("http://127.0.0.1:9", &tmp.path().join("other"));
    let log = String::from_utf8_lossy(&nowhere.stderr);
    assert!(!nowhere.status.success());
    assert!(log.contains("cannot reach") && log.contains("by hand"), "{log}");
}
