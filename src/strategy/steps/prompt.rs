//! `prompt`: renders a template (built-in `plain`, `cot`, `decompose`, or a
//! `.jinja` file) into the conversation. The template sees `schema`,
//! `examples` (question, sql, schema), `question`, `db_id`, and every
//! variable earlier steps set (`class`, `subqueries`...).

use crate::llm::LlmError;
use crate::strategy::Env;
use crate::strategy::state::QuestionState;
use crate::strategy::step::{BuildContext, Built, Params, Step, StepKind, parse_params, resolved};
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

/// The `prompt` step kind (see [`super::STEPS`]).
pub const KIND: StepKind = StepKind {
    name: "prompt",
    place: 60,
    needs: &["schema"],
    summary: "render the prompt template (plain, cot, decompose, or a .jinja file) into the conversation",
    resolve: resolved::<PromptParams>,
    build,
};

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

/// Loads the template a step names, and the step's parameters as
/// config.json records them (the template's source and full text in place
/// of its name).
pub fn load_template(
    params: &impl Serialize,
    name: &str,
    ctx: &BuildContext,
) -> anyhow::Result<(Template, serde_json::Value)> {
    let template = Template::load(name, ctx.base_dir)?;
    let mut recorded = serde_json::to_value(params)?;
    recorded["template"] = template.describe();
    Ok((template, recorded))
}

/// One greedy answer (temperature 0, no seed) to a template's messages:
/// the answer's text and the messages it answers.
pub async fn ask_greedy(
    state: &mut QuestionState,
    env: &Env,
    template: &Template,
    vars: &impl Serialize,
    max_tokens: u32,
) -> Result<(String, Vec<crate::llm::Message>), LlmError> {
    let messages = render(template, vars)?;
    let req = crate::llm::ChatRequest {
        messages: messages.clone(),
        params: crate::llm::GenParams {
            temperature: 0.0,
            max_tokens,
            seed: None,
            grammar: None,
        },
        n: 1,
    };
    let mut answers = state.ask(env, &req).await?;
    Ok((answers.remove(0).text, messages))
}
