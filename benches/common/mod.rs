//! Helpers shared by the benchmarks.

use std::path::PathBuf;

/// The Spider data: `$SPIDER_DATA`, else `../shared/spider` beside the
/// checkout. None, after saying SKIPPED for `bench`, when neither has it.
#[allow(dead_code)] // not every benchmark reads the data
pub fn spider_data(bench: &str) -> Option<PathBuf> {
    let found = [
        std::env::var_os("SPIDER_DATA").map(PathBuf::from),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/spider")),
    ]
    .into_iter()
    .flatten()
    .find(|p| p.join("dev.json").is_file());
    if found.is_none() {
        println!("{bench}: SKIPPED, no Spider data (set SPIDER_DATA or put it at ../shared/spider)");
    }
    found
}

/// The installed default generation model: its GGUF's path and file entry.
/// None, after saying SKIPPED for `bench`, when it is not installed.
#[allow(dead_code)] // not every benchmark loads the model
pub fn default_model(bench: &str) -> Option<(PathBuf, &'static spider_bench::models::ModelFile)> {
    use spider_bench::models::{DEFAULT_GENERATION_MODEL, is_installed, spec};
    let dir = spider_bench::paths::models_dir();
    let spec = spec(DEFAULT_GENERATION_MODEL).unwrap();
    if !is_installed(spec, &dir) {
        println!("{bench}: SKIPPED, {DEFAULT_GENERATION_MODEL} is not installed (run `spider-bench models fetch`)");
        return None;
    }
    let gguf = spec.gguf().unwrap();
    Some((dir.join(spec.name).join(gguf.name), gguf))
}
