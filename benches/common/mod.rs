//! Helpers shared by the benchmarks.

use std::path::PathBuf;

/// The Spider data: `$SPIDER_DATA`, else `../shared/spider` beside the checkout.
pub fn spider_data() -> Option<PathBuf> {
    [
        std::env::var_os("SPIDER_DATA").map(PathBuf::from),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/spider")),
    ]
    .into_iter()
    .flatten()
    .find(|p| p.join("dev.json").is_file())
}
