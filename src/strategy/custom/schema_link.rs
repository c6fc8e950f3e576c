//! `schema-link`: a two-step strategy written in Rust, the worked example of
//! the README. First the model names the tables the question needs; then it
//! writes the query seeing only those tables (the whole schema if it named
//! none we know).

use crate::dataset::schema::DbSchema;
use crate::llm::{ChatRequest, GenParams, LlmError, Message};
use crate::strategy::extract::extract_sql;
use crate::strategy::prompt::{PromptStyle, build_messages};
use crate::strategy::schema::{CreateTables, SchemaRenderer, render_create_tables};
use crate::strategy::{Candidate, Env, Prediction, Question, Strategy};

pub struct SchemaLink {
    /// The whole schema, rendered once per database.
    full: CreateTables,
}

impl Default for SchemaLink {
    fn default() -> Self {
        SchemaLink {
            full: CreateTables::new(0),
        }
    }
}

const LINK_PROMPT: &str = "List the tables of this database that are needed to answer the question, \
one name per line, nothing else.";

#[async_trait::async_trait]
impl Strategy for SchemaLink {
    fn name(&self) -> &str {
        "schema-link"
    }

    fn description(&self) -> &str {
        "two steps: the model names the tables it needs, then writes the query seeing only them"
    }

    fn parameters(&self) -> serde_json::Value {
        serde_json::json!({"steps": ["link tables", "zero-shot on the linked tables"], "temperature": 0.0})
    }

    async fn predict(&self, q: &Question<'_>, env: &Env) -> Result<Prediction, LlmError> {
        let params = GenParams::default();
        let full = self.full.render(q.db);
        let link = ChatRequest {
            messages: vec![
                Message::system(LINK_PROMPT),
                Message::user(format!("{full}\n\nQuestion: {}", q.example.question)),
            ],
            params: params.clone(),
            n: 1,
        };
        let mut used = match env.model.complete(&link).await {
            Ok(c) => c,
            Err(LlmError::Request(e)) => {
                return Ok(Prediction {
                    failure: Some(format!("model: {e}")),
                    ..Default::default()
                });
            }
            Err(fatal) => return Err(fatal),
        };
        let linked = keep_tables(&q.db.schema, &used[0].text);
        let schema = render_create_tables(&linked, q.db.sqlite.as_deref(), 0);
        let ask = ChatRequest {
            messages: build_messages(PromptStyle::Plain, &schema, &[], &q.example.question),
            params,
            n: 1,
        };
        match env.model.complete(&ask).await {
            Ok(mut c) => used.append(&mut c),
            Err(LlmError::Request(e)) => {
                return Ok(Prediction {
                    failure: Some(format!("model: {e}")),
                    completions: used,
                    ..Default::default()
                });
            }
            Err(fatal) => return Err(fatal),
        }
        let sql = extract_sql(&used[1].text);
        Ok(Prediction {
            failure: sql.is_none().then(|| "no SQL query in the model's answer".into()),
            candidates: vec![Candidate {
                sql: sql.clone(),
                repairs: 0,
                outcome: String::new(),
            }],
            sql,
            completions: used,
        })
    }
}

/// The schema restricted to the tables named in `answer` (all of them when
/// it names none).
fn keep_tables(schema: &DbSchema, answer: &str) -> DbSchema {
    let named: Vec<String> = answer
        .lines()
        .map(|l| {
            l.trim()
                .trim_matches(|c: char| !c.is_alphanumeric() && c != '_')
                .to_lowercase()
        })
        .collect();
    let keep: Vec<bool> = schema
        .table_names_original
        .iter()
        .map(|t| named.contains(&t.to_lowercase()))
        .collect();
    if !keep.contains(&true) {
        return schema.clone();
    }
    let mut s = schema.clone();
    s.foreign_keys.retain(|&(a, b)| {
        [a, b]
            .iter()
            .all(|&c| usize::try_from(schema.column_names_original[c].0).is_ok_and(|t| keep[t]))
    });
    // Columns of dropped tables are detached (table -1) so they render nowhere.
    for (i, (t, _)) in s.column_names_original.iter_mut().enumerate() {
        if usize::try_from(*t).is_ok_and(|t| !keep[t]) {
            *t = -1;
            s.column_names[i].0 = -1;
        }
    }
    s
}
