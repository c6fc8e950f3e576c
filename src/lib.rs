//! spider-bench: a text-to-SQL benchmark harness for Spider 1.0.
//!
//! The flow of the crate follows the flow of a benchmark run:
//! [`dataset`] (Spider files) -> [`exec`] (sandboxed SQLite execution of
//! untrusted SQL) -> [`eval`] (verdicts that match the official evaluator) ->
//! [`report`] (tables and machine-readable output). [`commands`] glues them
//! into the CLI subcommands; `src/main.rs` only parses arguments.

pub mod cli;
pub mod commands;
pub mod dataset;
pub mod download;
pub mod eval;
pub mod exec;
pub mod llm;
pub mod models;
pub mod net;
pub mod paths;
pub mod report;
pub mod retrieval;
pub mod run;
pub mod strategy;
pub mod table;
