//! The state one strategy builds up for one question, threaded through its
//! steps (as inspect_ai threads a TaskState through its solvers): the
//! question and its database, the schema as the model sees it, the chosen
//! examples, the conversation, the candidate answers, the final SQL, every
//! model call, and a trace of what each step did.

use super::Env;
use crate::dataset::schema::DbSchema;
use crate::dataset::{DbInfo, Example};
use crate::llm::{ChatRequest, Completion, GenParams, LlmError, Message};
use crate::retrieval::pool::FewShot;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The schema shown to the model and its rendering.
#[derive(Clone, Debug)]
pub struct SchemaView {
    /// The part of the database's schema a step kept (`None`: all of it,
    /// `QuestionState::db.schema`, which is not copied for each question).
    pub kept: Option<Arc<DbSchema>>,
    /// Sample rows under each CREATE TABLE.
    pub sample_rows: usize,
    pub text: Arc<str>,
}

/// What running a candidate gave.
#[derive(Clone, Debug, PartialEq)]
pub enum Execution {
    Rows {
        count: usize,
        fingerprint: String,
    },
    TooManyRows,
    Error(String),
    Timeout,
    /// The database file is missing, so nothing ran.
    NoDatabase,
}

impl Execution {
    /// As records show it ("3 rows", "error: ...").
    pub fn describe(&self) -> String {
        match self {
            Execution::Rows { count, .. } => format!("{count} rows"),
            Execution::TooManyRows => "too many rows".to_string(),
            Execution::Error(e) => format!("error: {e}"),
            Execution::Timeout => "timeout".to_string(),
            Execution::NoDatabase => "not run (no database)".to_string(),
        }
    }
}

/// One candidate answer: the model's text, the conversation it answers
/// (repairs continue it), the SQL in it and what running that SQL gave.
#[derive(Clone, Debug)]
pub struct Draft {
    pub answer: String,
    pub conversation: Vec<Message>,
    pub sql: Option<String>,
    pub execution: Option<Execution>,
    pub repairs: u32,
    /// The step that last produced or changed it.
    pub step: String,
    /// The sampling parameters of the generation (repairs ask with them).
    pub params: GenParams,
}

impl Draft {
    pub fn new(answer: String, conversation: Vec<Message>, step: &str) -> Draft {
        Draft {
            answer,
            conversation,
            sql: None,
            execution: None,
            repairs: 0,
            step: step.to_string(),
            params: GenParams::default(),
        }
    }

    /// As the record keeps it.
    pub fn to_candidate(&self) -> Candidate {
        let outcome = match (&self.execution, &self.sql) {
            (Some(e), _) => e.describe(),
            (None, None) => "no SQL in the answer".to_string(),
            (None, Some(_)) => "not run".to_string(),
        };
        Candidate {
            sql: self.sql.clone(),
            repairs: self.repairs,
            outcome,
            step: self.step.clone(),
        }
    }

    /// The result's identity for voting, when it ran.
    pub fn fingerprint(&self) -> Option<&str> {
        match &self.execution {
            Some(Execution::Rows { fingerprint, .. }) => Some(fingerprint),
            _ => None,
        }
    }
}

/// One candidate as a record keeps it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Candidate {
    pub sql: Option<String>,
    pub repairs: u32,
    /// "N rows", or why it did not run.
    pub outcome: String,
    /// The step that produced it (absent in records written before steps).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub step: String,
}

/// What one step did to the state, for the record's `trace`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct TraceEvent {
    /// The step's name; a step run inside another (a preliminary strategy)
    /// is named `outer > inner`.
    pub step: String,
    /// What it did, in a line or a few.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// Cache keys of the model calls it made, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cache_keys: Vec<String>,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One (strategy, question) in progress.
pub struct QuestionState {
    pub example: Example,
    pub db: Arc<DbInfo>,
    /// Set by the `schema` step.
    pub schema: Option<SchemaView>,
    pub examples: Vec<FewShot>,
    /// The prompt the next generation answers.
    pub conversation: Vec<Message>,
    pub candidates: Vec<Draft>,
    pub final_sql: Option<String>,
    /// Why there is no SQL.
    pub failure: Option<String>,
    /// Why the model could not be reached (the question is then not scored).
    pub unavailable: Option<String>,
    /// Every model call, in order (tokens, latency, cache keys).
    pub completions: Vec<Completion>,
    /// The grammar the `generate` step constrains answers with (set by the
    /// `constrained` step); repairs ask with their draft's parameters, so
    /// with it too.
    pub grammar: Option<Arc<str>>,
    pub trace: Vec<TraceEvent>,
    /// What steps tell later steps (e.g. `class`, `subqueries`); prompt
    /// templates see every entry as a variable.
    pub vars: serde_json::Map<String, serde_json::Value>,
    /// Set by the fine-tuning export, where the question is itself a train
    /// example: the `examples` step then never shows a pool example with
    /// the same question (the example itself among them) or on the same
    /// database, so a training prompt never holds its own answer and looks
    /// like a dev prompt (dev databases are never in the pool). Runs on dev
    /// leave it unset.
    pub leave_out_same_question: bool,
    /// The event of the step now running.
    current: TraceEvent,
}

impl QuestionState {
    pub fn new(example: Example, db: Arc<DbInfo>) -> QuestionState {
        QuestionState {
            example,
            db,
            schema: None,
            examples: Vec::new(),
            conversation: Vec::new(),
            candidates: Vec::new(),
            final_sql: None,
            failure: None,
            unavailable: None,
            completions: Vec::new(),
            grammar: None,
            trace: Vec::new(),
            vars: Default::default(),
            leave_out_same_question: false,
            current: TraceEvent::default(),
        }
    }

    /// The rendered schema; an error when no `schema` step ran before.
    pub fn schema_text(&self) -> Result<&str, LlmError> {
        self.schema
            .as_ref()
            .map(|s| &*s.text)
            .ok_or_else(|| LlmError::Request("no schema: put a `schema` step before this one".into()))
    }

    /// Adds a line to the running step's trace detail.
    pub fn note(&mut self, detail: impl AsRef<str>) {
        if !self.current.detail.is_empty() {
            self.current.detail.push('\n');
        }
        self.current.detail.push_str(detail.as_ref());
    }

    /// Keeps model completions: usage for the record, keys for the trace.
    pub fn used(&mut self, completions: &[Completion]) {
        self.current
            .cache_keys
            .extend(completions.iter().map(|c| c.cache_key.clone()));
        self.completions.extend_from_slice(completions);
    }

    /// Asks the model and keeps what it answered.
    pub async fn ask(&mut self, env: &Env, req: &ChatRequest) -> Result<Vec<Completion>, LlmError> {
        let answers = env.model.complete(req).await?;
        self.used(&answers);
        Ok(answers)
    }

    /// Starts the trace event of the step `name`.
    pub(super) fn begin(&mut self, name: &str) {
        self.current = TraceEvent {
            step: name.to_string(),
            ..Default::default()
        };
    }

    /// Closes the running step's event.
    pub(super) fn end(&mut self, error: Option<String>) {
        let mut event = std::mem::take(&mut self.current);
        event.error = error;
        self.trace.push(event);
    }

    /// Takes in what a strategy run inside this one (a preliminary answer)
    /// did: its calls count here, its trace nests under the running step.
    pub fn absorb(&mut self, inner: QuestionState) {
        let outer = self.current.step.clone();
        self.completions.extend(inner.completions);
        for mut event in inner.trace {
            event.step = format!("{outer} > {}", event.step);
            self.trace.push(event);
        }
    }
}
