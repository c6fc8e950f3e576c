//! Verdicts that match the official Spider evaluator (test-suite-sql-eval).
pub mod exact;
pub mod parse;
pub mod pyvalue;
pub mod result_eq;
pub mod score;
pub mod tokenize;
pub mod sqlparse;
pub mod judge;
