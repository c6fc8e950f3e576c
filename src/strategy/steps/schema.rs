//! `schema`: the database as the model sees it, as CREATE TABLE statements
//! (keys included), with optional sample rows under each table.

use crate::llm::LlmError;
use crate::strategy::Env;
use crate::strategy::state::{QuestionState, SchemaView};
use crate::strategy::step::{BuildContext, Built, Params, Step, StepKind, parse_params, resolved};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchemaParams {
    /// Sample rows shown under each CREATE TABLE.
    pub sample_rows: usize,
}

/// The `schema` step kind (see [`super::STEPS`]).
pub const KIND: StepKind = StepKind {
    name: "schema",
    place: 10,
    needs: &[],
    summary: "render the database as CREATE TABLE statements (sample_rows: rows shown under each)",
    resolve: resolved::<SchemaParams>,
    build,
};

pub fn build(p: &Params, _: &BuildContext) -> anyhow::Result<Built> {
    let params: SchemaParams = parse_params("schema", p)?;
    Ok(Built::new(RenderSchema(params.clone()), &params))
}

struct RenderSchema(SchemaParams);

#[async_trait::async_trait]
impl Step for RenderSchema {
    async fn apply(&self, state: &mut QuestionState, env: &Env) -> Result<(), LlmError> {
        let rows = self.0.sample_rows;
        let text = env.schemas.render(&state.db, rows);
        let tables = state.db.schema.table_names_original.len();
        state.note(format!("{tables} tables as CREATE TABLE, {rows} sample rows each"));
        state.schema = Some(SchemaView {
            kept: None,
            sample_rows: rows,
            text,
        });
        Ok(())
    }
}
