//! Helpers shared by the integration tests.
#![allow(dead_code)]

#[path = "mutations.rs"]
pub mod mutations;

use std::path::PathBuf;

/// The real Spider data: `$SPIDER_DATA`, else `../shared/spider` beside the
/// checkout. `None` (and a message saying why the test is skipped) when absent.
pub fn real_spider(test: &str) -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("SPIDER_DATA").map(PathBuf::from),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/spider")),
    ];
    for c in candidates.into_iter().flatten() {
        if c.join("tables.json").is_file() && c.join("dev.json").is_file() {
            return Some(c);
        }
    }
    eprintln!(
        "SKIPPED {test}: the real Spider data is not here (set SPIDER_DATA or put it at ../shared/spider)"
    );
    None
}
