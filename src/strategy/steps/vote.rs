//! `vote`: the final SQL. One candidate is the answer; among several, the
//! largest group with the same execution result wins, ties going to the
//! earliest sample (see [`crate::strategy::vote::majority`]).

use crate::llm::LlmError;
use crate::strategy::Env;
use crate::strategy::state::QuestionState;
use crate::strategy::step::{BuildContext, Built, Params, Step, StepKind, parse_params, resolved};
use crate::strategy::vote::majority;

/// The `vote` step kind (see [`super::STEPS`]).
pub const KIND: StepKind = StepKind {
    name: "vote",
    place: 110,
    needs: &["extract"],
    summary: "choose the final SQL: majority by execution result, ties to the earliest",
    resolve: resolved::<crate::strategy::step::NoParams>,
    build,
};

pub fn build(p: &Params, _: &BuildContext) -> anyhow::Result<Built> {
    let params: crate::strategy::step::NoParams = parse_params("vote", p)?;
    Ok(Built::new(Vote, &params))
}

struct Vote;

#[async_trait::async_trait]
impl Step for Vote {
    async fn apply(&self, state: &mut QuestionState, _: &Env) -> Result<(), LlmError> {
        let c = &state.candidates;
        let winner = if c.len() == 1 {
            Some(0)
        } else {
            let fingerprints: Vec<Option<String>> = c.iter().map(|d| d.fingerprint().map(str::to_string)).collect();
            let has_sql: Vec<bool> = c.iter().map(|d| d.sql.is_some()).collect();
            majority(&fingerprints, &has_sql)
        };
        state.final_sql = winner.and_then(|i| c[i].sql.clone());
        let line = match winner {
            Some(i) if c.len() > 1 => {
                let votes = c[i]
                    .fingerprint()
                    .map(|f| c.iter().filter(|d| d.fingerprint() == Some(f)).count())
                    .unwrap_or(0);
                format!("candidate {i} of {} wins with {votes} votes", c.len())
            }
            Some(_) => "the only candidate".to_string(),
            None => "no candidate has SQL".to_string(),
        };
        state.note(line);
        Ok(())
    }
}
