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

/// Writes `bytes` to `path` through a temporary file beside it, synced,
/// then renamed into place: a kill leaves the old file or the new one,
/// never half of one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    let file = std::fs::File::create(&tmp)?;
    std::io::Write::write_all(&mut &file, bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}
