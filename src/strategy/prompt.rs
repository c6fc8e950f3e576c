//! Prompt building: instructions, schema, examples and the question.

use super::examples::FewShot;
use crate::llm::Message;
use serde::{Deserialize, Serialize};

/// How the model is asked to answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PromptStyle {
    /// Answer with the query only.
    Plain,
    /// Chain of thought in steps (relevant columns, then tables and joins,
    /// then the query), ending with the query in a code block.
    Cot,
}

const PLAIN_SYSTEM: &str = "You are an expert at writing SQLite queries. Given a database schema and a question, \
write one SQLite query that answers the question. Use only tables and columns from the schema. \
Answer with the query alone in a ```sql code block.";

const COT_SYSTEM: &str = "You are an expert at writing SQLite queries. Given a database schema and a question, \
write one SQLite query that answers the question. Use only tables and columns from the schema. Think step by step:\n\
1. Columns: list the columns the question needs (to show, filter, group or sort by).\n\
2. Tables: list the tables those columns come from and how they join (foreign keys).\n\
3. Query: write the query.\n\
End your answer with the final query alone in a ```sql code block.";

fn render_examples(examples: &[FewShot]) -> String {
    if examples.is_empty() {
        return String::new();
    }
    let mut s = String::from("Examples of questions and their SQL (on other databases):\n\n");
    for e in examples {
        if let Some(schema) = &e.schema {
            s.push_str(&format!("Schema:\n{schema}\n"));
        }
        s.push_str(&format!("Question: {}\nSQL: {}\n\n", e.question, e.sql));
    }
    s
}

/// The conversation for one question.
pub fn build_messages(style: PromptStyle, schema: &str, examples: &[FewShot], question: &str) -> Vec<Message> {
    let system = match style {
        PromptStyle::Plain => PLAIN_SYSTEM,
        PromptStyle::Cot => COT_SYSTEM,
    };
    // The schema comes first: every question on a database then shares the
    // prompt up to its examples, which a local model or an HTTP server with
    // prompt caching computes once.
    let user = format!(
        "Database schema:\n{schema}\n\n{}Question: {question}",
        render_examples(examples)
    );
    vec![Message::system(system), Message::user(user)]
}

/// The follow-up that asks for a repair after a failed execution.
pub fn repair_message(problem: &str) -> Message {
    Message::user(format!(
        "Running that query on the database gave: {problem}\nFix the query. Answer with the corrected query alone in a ```sql code block."
    ))
}
