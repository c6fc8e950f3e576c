//! Strategies written in Rust (each registered in `registry::RUST_STRATEGIES`).
pub mod schema_link;
