//! `self-correct` (DIN-SQL's self-correction): each candidate's query goes
//! back to the model with the schema and the question, to be fixed if it
//! has bugs and returned unchanged otherwise. A corrected query replaces
//! the candidate's (and is run again by a later `execute`); an answer
//! without SQL, or a failed call, keeps the query there was. An answer with
//! SQL becomes the candidate's latest exchange, which a later `repair`
//! continues.

use super::prompt::{ask_greedy, load_template, prompt_vars};
use crate::llm::LlmError;
use crate::strategy::Env;
use crate::strategy::extract::extract_sql;
use crate::strategy::state::QuestionState;
use crate::strategy::step::{BuildContext, Built, Params, Step, StepKind, parse_params, resolved};
use crate::strategy::template::Template;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SelfCorrectParams {
    /// Sees `schema`, `question` and `sql`.
    pub template: String,
    pub max_tokens: u32,
}

impl Default for SelfCorrectParams {
    fn default() -> Self {
        SelfCorrectParams {
            template: "self-correct".into(),
            max_tokens: 512,
        }
    }
}

/// The `self-correct` step kind (see [`super::STEPS`]).
pub const KIND: StepKind = StepKind {
    name: "self-correct",
    place: 85,
    needs: &["extract"],
    summary: "ask the model to check each query against the schema and fix it",
    resolve: resolved::<SelfCorrectParams>,
    build,
};

pub fn build(p: &Params, ctx: &BuildContext) -> anyhow::Result<Built> {
    let params: SelfCorrectParams = parse_params("self-correct", p)?;
    let (template, recorded) = load_template(&params, &params.template, ctx)?;
    Ok(Built::new(SelfCorrect { params, template }, &recorded))
}

struct SelfCorrect {
    params: SelfCorrectParams,
    template: Template,
}

#[async_trait::async_trait]
impl Step for SelfCorrect {
    async fn apply(&self, state: &mut QuestionState, env: &Env) -> Result<(), LlmError> {
        for i in 0..state.candidates.len() {
            let Some(sql) = state.candidates[i].sql.clone() else {
                continue;
            };
            let mut vars = prompt_vars(state)?;
            vars.insert("sql".into(), sql.clone().into());
            let (answer, messages) = match ask_greedy(state, env, &self.template, &vars, self.params.max_tokens).await {
                Ok(a) => a,
                Err(LlmError::Request(e)) => {
                    state.note(format!("candidate {i}: the call failed ({e}); kept its query"));
                    continue;
                }
                Err(fatal) => return Err(fatal),
            };
            match extract_sql(&answer) {
                Some(fixed) if !same_query(&fixed, &sql) => {
                    state.note(format!("candidate {i}: changed to {fixed}"));
                    let d = &mut state.candidates[i];
                    d.sql = Some(fixed);
                    d.execution = None;
                    d.step = "self-correct".into();
                }
                Some(_) => state.note(format!("candidate {i}: unchanged")),
                None => {
                    state.note(format!("candidate {i}: no SQL in the answer; kept its query"));
                    continue;
                }
            }
            // A later repair continues the latest exchange about the query.
            let d = &mut state.candidates[i];
            d.answer = answer;
            d.conversation = messages;
        }
        Ok(())
    }
}

/// The same query written again: equal once runs of whitespace are one
/// space and a trailing semicolon is dropped (so a reformatted answer does
/// not count as a correction).
fn same_query(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.trim().trim_end_matches(';').split_whitespace().collect::<Vec<_>>().join(" ");
    norm(a) == norm(b)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reformatting_is_not_a_correction() {
        assert!(super::same_query("SELECT a\n  FROM t;", "SELECT a FROM t"));
        assert!(!super::same_query("SELECT a FROM t", "SELECT b FROM t"));
    }
}
