//! `link-tables` (schema linking): the model names the tables the question
//! needs (see [`keep_tables`] for what counts as naming); the schema shown afterwards keeps only those (all of them when it
//! names none we know, or when the call fails: linking is a help, not a
//! condition).

use crate::dataset::schema::DbSchema;
use super::prompt::{ask_greedy, load_template, prompt_vars};
use crate::llm::{GenParams, LlmError};
use crate::strategy::Env;
use crate::strategy::schema::render_create_tables;
use crate::strategy::state::{QuestionState, SchemaView};
use crate::strategy::step::{BuildContext, Built, Params, Step, StepKind, parse_params, resolved};
use crate::strategy::template::Template;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinkParams {
    /// Sees `schema` and `question`.
    pub template: String,
    pub max_tokens: u32,
}

impl Default for LinkParams {
    fn default() -> Self {
        LinkParams {
            template: "link-tables".into(),
            max_tokens: GenParams::default().max_tokens,
        }
    }
}

/// The `link-tables` step kind (see [`super::STEPS`]).
pub const KIND: StepKind = StepKind {
    name: "link-tables",
    place: 20,
    needs: &["schema"],
    summary: "ask which tables the question needs; keep only those in the schema",
    resolve: resolved::<LinkParams>,
    build,
};

pub fn build(p: &Params, ctx: &BuildContext) -> anyhow::Result<Built> {
    let params: LinkParams = parse_params("link-tables", p)?;
    let (template, recorded) = load_template(&params, &params.template, ctx)?;
    Ok(Built::new(LinkTables { params, template }, &recorded))
}

struct LinkTables {
    params: LinkParams,
    template: Template,
}

#[async_trait::async_trait]
impl Step for LinkTables {
    async fn apply(&self, state: &mut QuestionState, env: &Env) -> Result<(), LlmError> {
        let view = state
            .schema
            .clone()
            .ok_or_else(|| LlmError::Request("no schema: put a `schema` step before link-tables".into()))?;
        let vars = prompt_vars(state)?;
        let answer = match ask_greedy(state, env, &self.template, &vars, self.params.max_tokens).await {
            Ok((text, _)) => text,
            Err(LlmError::Request(e)) => {
                state.note(format!("the linking call failed ({e}); kept the whole schema"));
                return Ok(());
            }
            Err(fatal) => return Err(fatal),
        };
        let shown = view.kept.as_deref().unwrap_or(&state.db.schema);
        let (linked, kept) = keep_tables(shown, &answer);
        let total = shown.table_names_original.len();
        if kept.is_empty() {
            state.note(format!("named no table of the schema; kept all {total}"));
            return Ok(());
        }
        state.note(format!("kept {} of {total} tables: {}", kept.len(), kept.join(", ")));
        let text = render_create_tables(&linked, state.db.sqlite.as_deref(), view.sample_rows);
        state.schema = Some(SchemaView {
            kept: Some(Arc::new(linked)),
            sample_rows: view.sample_rows,
            text: text.into(),
        });
        Ok(())
    }
}

/// The schema restricted to the tables named in `answer`, and the names
/// kept; the whole schema when it names none. A table counts as named when
/// its name appears as a word anywhere in the answer (case-insensitive):
/// one name per line as asked, a list in prose, or a query that uses it,
/// which is what small models often answer instead.
pub fn keep_tables(schema: &DbSchema, answer: &str) -> (DbSchema, Vec<String>) {
    let words: std::collections::HashSet<String> = answer
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let keep: Vec<bool> = schema
        .table_names_original
        .iter()
        .map(|t| words.contains(&t.to_lowercase()))
        .collect();
    if !keep.contains(&true) {
        return (schema.clone(), vec![]);
    }
    let kept = schema
        .table_names_original
        .iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(t, _)| t.clone())
        .collect();
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
    (s, kept)
}

#[cfg(test)]
mod tests {
    use super::keep_tables;
    use crate::dataset::schema::DbSchema;

    fn schema() -> DbSchema {
        serde_json::from_value(serde_json::json!({
            "db_id": "d",
            "table_names_original": ["singer", "concert", "singer_in_concert"],
            "table_names": ["singer", "concert", "singer in concert"],
            "column_names_original": [[-1, "*"], [0, "singer_id"], [1, "concert_id"], [2, "singer_id"], [2, "concert_id"]],
            "column_names": [[-1, "*"], [0, "singer id"], [1, "concert id"], [2, "singer id"], [2, "concert id"]],
            "column_types": ["text", "number", "number", "number", "number"],
            "primary_keys": [1, 2],
            "foreign_keys": [[3, 1], [4, 2]]
        }))
        .unwrap()
    }

    #[test]
    fn tables_are_named_by_lines_lists_or_queries() {
        assert_eq!(keep_tables(&schema(), "singer\nconcert").1, ["singer", "concert"]);
        assert_eq!(keep_tables(&schema(), "Tables: `Singer`, concert.").1, ["singer", "concert"]);
        let (linked, kept) = keep_tables(&schema(), "SELECT count(*) FROM singer_in_concert");
        assert_eq!(kept, ["singer_in_concert"]);
        assert!(linked.foreign_keys.is_empty(), "keys to dropped tables go");
        assert_eq!(keep_tables(&schema(), "singers").1, Vec::<String>::new(), "whole words only");
    }
}
