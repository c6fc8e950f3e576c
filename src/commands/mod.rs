//! The CLI subcommands, one module each; `src/main.rs` parses arguments and
//! calls these.
pub mod compare;
pub mod data_check;
pub mod eval;
pub mod models;
pub mod retrieval;
pub mod run;

/// Runs `f` on a rayon pool of `jobs` threads (all cores when `None`).
pub fn with_jobs<T: Send>(jobs: Option<usize>, f: impl FnOnce() -> T + Send) -> anyhow::Result<T> {
    let mut builder = rayon::ThreadPoolBuilder::new().stack_size(16 << 20);
    if let Some(n) = jobs {
        builder = builder.num_threads(n.max(1));
    }
    Ok(builder.build()?.install(f))
}
