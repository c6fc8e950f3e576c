//! spider-bench: a text-to-SQL benchmark harness for Spider 1.0.
//!
//! The modules follow the flow of a benchmark run, and each uses only the
//! modules before it in this order (`tests/layers.rs` checks it):
//!
//! [`dataset`] (Spider files) -> [`exec`] (sandboxed SQLite execution of
//! untrusted SQL, and its result values) -> [`eval`] (verdicts that match
//! the official evaluator, and their summary) -> [`llm`] (chat models: the
//! OpenAI-compatible client, the local model, the cache) -> [`retrieval`]
//! (example selection: BM25, embeddings, selectors) -> [`strategy`] (strategies as
//! steps over one question state: schema, examples, prompt templates,
//! generation, repair, voting, decomposition) -> [`run`] (every question through every
//! strategy, scored and checkpointed) -> [`finetune`] (training data built
//! with the strategies' prompt steps) -> [`report`] (renderings of the
//! official summary). [`commands`] sits on top: the CLI subcommands and
//! their arguments; `src/main.rs` only parses and dispatches.
//!
//! Below them all are leaf utilities that use nothing above themselves:
//! [`paths`] (every folder and file outside the repository), [`table`] (the
//! output formats), [`cli`] (clap helpers), [`net`] (TLS set-up),
//! [`download`], and [`models`] (model weights and their installation).
//!
//! The embedded models (llama.cpp for generation, candle for embeddings)
//! are behind the default feature `local-models`: without it
//! (`--no-default-features`) the crate builds without their toolchains, and
//! still scores, checks data, runs against HTTP endpoints and reports.

pub mod cli;
pub mod commands;
pub mod dataset;
pub mod download;
pub mod eval;
pub mod exec;
pub mod finetune;
pub mod llm;
pub mod models;
pub mod net;
pub mod paths;
pub mod report;
pub mod retrieval;
pub mod run;
pub mod strategy;
pub mod table;
