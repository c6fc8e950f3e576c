//! `prompt`: renders a template (built-in `plain`, `cot`, `decompose`, or a
//! `.jinja` file) into the conversation. The template sees `schema`,
//! `examples` (question, sql, schema), `question`, `db_id`, and every
//! variable earlier steps set (`class`, `subqueries`...).

use crate::llm::LlmError;
use crate::strategy::Env;
use crate::strategy::state::QuestionState;
use crate::strategy::step::{BuildContext, Built, Params, Step, parse_params, resolved};
use crate::strategy::template::Template;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PromptParams {
    /// A built-in template name or a path to a .jinja file (`style` is its
    /// older name).
    #[serde(alias = "style")]
    pub template: String,
}

impl Default for PromptParams {
    fn default() -> Self {
        PromptParams {
            template: "plain".into(),
        }
    }
}

pub fn resolve(p: &Params) -> anyhow::Result<serde_json::Value> {
    resolved::<PromptParams>("prompt", p)
}

pub fn build(p: &Params, ctx: &BuildContext) -> anyhow::Result<Built> {
    let params: PromptParams = parse_params("prompt", p)?;
    let template = Template::load(&params.template, ctx.base_dir)?;
    let recorded = serde_json::json!({"template": template.describe()});
    Ok(Built::new(Prompt { template }, &recorded))
}

struct Prompt {
    template: Template,
}

/// The variables every prompt template sees.
pub fn prompt_vars(state: &QuestionState) -> Result<serde_json::Map<String, serde_json::Value>, LlmError> {
    let mut vars = state.vars.clone();
    vars.insert("schema".into(), state.schema_text()?.into());
    vars.insert("question".into(), state.example.question.clone().into());
    vars.insert("db_id".into(), state.example.db_id.clone().into());
    vars.insert(
        "examples".into(),
        serde_json::to_value(&state.examples).expect("examples serialize"),
    );
    Ok(vars)
}

/// Renders a template, a failure of the question if it cannot.
pub fn render(template: &Template, vars: &impl Serialize) -> Result<Vec<crate::llm::Message>, LlmError> {
    template.render(vars).map_err(|e| LlmError::Request(format!("{e:#}")))
}

#[async_trait::async_trait]
impl Step for Prompt {
    async fn apply(&self, state: &mut QuestionState, _: &Env) -> Result<(), LlmError> {
        let vars = prompt_vars(state)?;
        state.conversation = render(&self.template, &vars)?;
        let chars: usize = state.conversation.iter().map(|m| m.content.len()).sum();
        state.note(format!(
            "template {}: {} messages, {chars} characters, {} examples",
            self.template.source,
            state.conversation.len(),
            state.examples.len()
        ));
        Ok(())
    }
}
