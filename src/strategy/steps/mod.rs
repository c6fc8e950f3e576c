//! Every step kind, one file each. To add a step: write a file with its
//! parameters and its [`Step`](super::step::Step) implementation, then add
//! one line to [`STEPS`] (its name, place in the flow, the steps it needs
//! before it, a summary, and the two functions of the file).

pub mod classify;
pub mod examples;
pub mod execute;
pub mod extract;
pub mod generate;
pub mod link_tables;
pub mod prompt;
pub mod repair;
pub mod schema;
pub mod self_correct;
pub mod subquestions;
pub mod vote;

use super::step::StepKind;

#[rustfmt::skip]
pub const STEPS: &[StepKind] = &[
    StepKind { name: "schema", place: 10, needs: &[], summary: "render the database as CREATE TABLE statements (sample_rows: rows shown under each)", resolve: schema::resolve, build: schema::build },
    StepKind { name: "link-tables", place: 20, needs: &["schema"], summary: "ask which tables the question needs; keep only those in the schema", resolve: link_tables::resolve, build: link_tables::build },
    StepKind { name: "classify", place: 30, needs: &["schema"], summary: "ask whether the question is easy, non-nested or nested (and its sub-questions)", resolve: classify::resolve, build: classify::build },
    StepKind { name: "examples", place: 40, needs: &[], summary: "choose train examples: fixed, or retrieved by a selector (k, selector, with_schema, preliminary...)", resolve: examples::resolve, build: examples::build },
    StepKind { name: "subquestions", place: 50, needs: &["classify"], summary: "for a nested question, write the SQL of each sub-question first", resolve: subquestions::resolve, build: subquestions::build },
    StepKind { name: "prompt", place: 60, needs: &["schema"], summary: "render the prompt template (plain, cot, decompose, or a .jinja file) into the conversation", resolve: prompt::resolve, build: prompt::build },
    StepKind { name: "generate", place: 70, needs: &["prompt"], summary: "ask the model for samples of the conversation (samples, temperature, max_tokens, seed)", resolve: generate::resolve, build: generate::build },
    StepKind { name: "extract", place: 80, needs: &["generate"], summary: "take the SQL out of each answer (code fences, prose, reasoning)", resolve: extract::resolve, build: extract::build },
    StepKind { name: "self-correct", place: 85, needs: &["extract"], summary: "ask the model to check each query against the schema and fix it", resolve: self_correct::resolve, build: self_correct::build },
    StepKind { name: "execute", place: 90, needs: &["extract"], summary: "run each query on the database in the sandbox", resolve: execute::resolve, build: execute::build },
    StepKind { name: "repair", place: 100, needs: &["extract"], summary: "send a query that fails back with the error and ask again (rounds, on_empty)", resolve: repair::resolve, build: repair::build },
    StepKind { name: "vote", place: 110, needs: &["extract"], summary: "choose the final SQL: majority by execution result, ties to the earliest", resolve: vote::resolve, build: vote::build },
];
