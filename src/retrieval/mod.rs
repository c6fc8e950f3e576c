//! Retrieval of solved examples: the example pool, SQL skeletons, text
//! similarity (lexical BM25, or embeddings), and the selectors that rank pool
//! examples for a question.
pub mod embed;
pub mod evaluate;
/// The local embedding model (candle), built with the `local-models` feature.
#[cfg(feature = "local-models")]
pub mod local;
pub mod mask;
pub mod pool;
pub mod select;
pub mod similarity;
pub mod skeleton;
