//! Verdicts that match the official Spider evaluator (test-suite-sql-eval).
pub mod exact;
pub mod judge;
pub mod parse;
pub mod result_eq;
pub mod score;
pub mod sqlparse;
pub mod summary;
pub mod tokenize;
