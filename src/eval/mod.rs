//! Verdicts that match the official Spider evaluator (test-suite-sql-eval).
pub mod exact;
pub mod judge;
pub mod parse;
/// Kept for src/strategy until it moves: the value type lives in
/// [`crate::exec::value`].
pub mod pyvalue {
    pub use crate::exec::value::Value;
}
pub mod result_eq;
pub mod score;
pub mod sqlparse;
pub mod summary;
pub mod tokenize;
