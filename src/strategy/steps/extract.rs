//! `extract`: the SQL in each answer (fenced blocks, prose around the query,
//! reasoning before it); see [`crate::strategy::extract`].

use crate::llm::LlmError;
use crate::strategy::Env;
use crate::strategy::extract::extract_sql;
use crate::strategy::state::QuestionState;
use crate::strategy::step::{BuildContext, Built, NoParams, Params, Step, StepKind, parse_params, resolved};
/// The `extract` step kind (see [`super::STEPS`]).
pub const KIND: StepKind = StepKind {
    name: "extract",
    place: 80,
    needs: &["generate"],
    summary: "take the SQL out of each answer (code fences, prose, reasoning)",
    resolve: resolved::<NoParams>,
    build,
};

pub fn build(p: &Params, _: &BuildContext) -> anyhow::Result<Built> {
    let params: NoParams = parse_params("extract", p)?;
    Ok(Built::new(Extract, &params))
}

struct Extract;

#[async_trait::async_trait]
impl Step for Extract {
    async fn apply(&self, state: &mut QuestionState, _: &Env) -> Result<(), LlmError> {
        for d in state.candidates.iter_mut().filter(|d| d.sql.is_none()) {
            d.sql = extract_sql(&d.answer);
        }
        let found = state.candidates.iter().filter(|d| d.sql.is_some()).count();
        state.note(format!("SQL in {found} of {} answers", state.candidates.len()));
        Ok(())
    }
}
