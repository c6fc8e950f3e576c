//! Where spider-bench keeps its files outside the repository: the cache
//! folder, and in it the LLM cache file, the pool embeddings and the
//! installed models. Every such path is computed here.

use std::path::{Path, PathBuf};

/// The cache folder: `$XDG_CACHE_HOME/spider-bench`, else
/// `~/.cache/spider-bench`.
pub fn cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    base.join("spider-bench")
}

/// The default LLM cache file: `llm-cache.sqlite` in [`cache_dir`].
pub fn llm_cache_file() -> PathBuf {
    cache_dir().join("llm-cache.sqlite")
}

/// Where pool embeddings are stored: `embeddings/` beside the LLM cache
/// file (`cache`, else the default one).
pub fn embeddings_dir(cache: Option<&Path>) -> PathBuf {
    let cache = cache.map(Path::to_path_buf).unwrap_or_else(llm_cache_file);
    cache
        .parent()
        .map(|p| p.join("embeddings"))
        .unwrap_or_else(|| PathBuf::from("embeddings"))
}

/// Where models are installed: `$SPIDER_BENCH_MODELS`, else `models/` in
/// [`cache_dir`].
pub fn models_dir() -> PathBuf {
    match std::env::var_os("SPIDER_BENCH_MODELS").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => cache_dir().join("models"),
    }
}

/// The absolute path of a file as the path of a SQLite `file:` URI (`%`,
/// `?` and `#` escaped; other characters, non-ASCII ones included, as
/// they are).
pub fn sqlite_uri_path(path: &Path) -> String {
    let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = String::new();
    for c in abs.to_string_lossy().chars() {
        match c {
            '%' | '?' | '#' => out.push_str(&format!("%{:02X}", c as u32)),
            _ => out.push(c),
        }
    }
    out
}
