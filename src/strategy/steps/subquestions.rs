//! `subquestions` (DIN-SQL's nested case): for a question that `classify`
//! found nested, the SQL of each sub-question is written first (one call
//! each, with a prompt template); the pairs go to later prompts as the
//! variable `subqueries` (question, sql). Other classes skip the step.

use crate::llm::{ChatRequest, GenParams, LlmError};
use crate::strategy::Env;
use crate::strategy::extract::extract_sql;
use crate::strategy::state::QuestionState;
use crate::strategy::step::{BuildContext, Built, Params, Step, parse_params, resolved};
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

pub fn resolve(p: &Params) -> anyhow::Result<serde_json::Value> {
    resolved::<SubquestionParams>("subquestions", p)
}

pub fn build(p: &Params, ctx: &BuildContext) -> anyhow::Result<Built> {
    let params: SubquestionParams = parse_params("subquestions", p)?;
    let template = Template::load(&params.template, ctx.base_dir)?;
    let mut recorded = serde_json::to_value(&params)?;
    recorded["template"] = template.describe();
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
            let mut vars = super::prompt::prompt_vars(state)?;
            vars.insert("question".into(), q.clone().into());
            vars.insert("examples".into(), serde_json::Value::Array(vec![]));
            let req = ChatRequest {
                messages: super::prompt::render(&self.template, &vars)?,
                params: GenParams {
                    temperature: 0.0,
                    max_tokens: self.params.max_tokens,
                    seed: None,
                },
                n: 1,
            };
            let answer = state.ask(env, &req).await?;
            match extract_sql(&answer[0].text) {
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
