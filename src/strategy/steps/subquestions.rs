//! `subquestions` (DIN-SQL's nested case): for a question that `classify`
//! found nested, the SQL of each sub-question is written first (one call
//! each, with a prompt template); the pairs go to later prompts as the
//! variable `subqueries` (question, sql). Other classes skip the step.

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
pub struct SubquestionParams {
    /// The prompt for one sub-question (sees `question` = the sub-question).
    pub template: String,
    pub max_tokens: u32,
}

impl Default for SubquestionParams {
    fn default() -> Self {
        SubquestionParams {
            template: "plain".into(),
            max_tokens: 512,
        }
    }
}

/// The `subquestions` step kind (see [`super::STEPS`]).
pub const KIND: StepKind = StepKind {
    name: "subquestions",
    place: 50,
    needs: &["classify"],
    summary: "for a nested question, write the SQL of each sub-question first",
    resolve: resolved::<SubquestionParams>,
    build,
};

pub fn build(p: &Params, ctx: &BuildContext) -> anyhow::Result<Built> {
    let params: SubquestionParams = parse_params("subquestions", p)?;
    let (template, recorded) = load_template(&params, &params.template, ctx)?;
    Ok(Built::new(Subquestions { params, template }, &recorded))
}

struct Subquestions {
    params: SubquestionParams,
    template: Template,
}

#[async_trait::async_trait]
impl Step for Subquestions {
    async fn apply(&self, state: &mut QuestionState, env: &Env) -> Result<(), LlmError> {
        let nested = state.vars.get("class").and_then(|c| c.as_str()) == Some("nested");
        let subquestions: Vec<String> = state
            .vars
            .get("subquestions")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        if !nested || subquestions.is_empty() {
            state.note("not nested: nothing to solve first");
            state.vars.insert("subqueries".into(), serde_json::Value::Array(vec![]));
            return Ok(());
        }
        let mut solved = Vec::new();
        for q in subquestions {
            let mut vars = prompt_vars(state)?;
            vars.insert("question".into(), q.clone().into());
            vars.insert("examples".into(), serde_json::Value::Array(vec![]));
            let (answer, _) = ask_greedy(state, env, &self.template, &vars, self.params.max_tokens).await?;
            match extract_sql(&answer) {
                Some(sql) => {
                    state.note(format!("{q} -> {sql}"));
                    solved.push(serde_json::json!({"question": q, "sql": sql}));
                }
                None => state.note(format!("{q} -> no SQL in the answer (left out)")),
            }
        }
        state.vars.insert("subqueries".into(), solved.into());
        Ok(())
    }
}
