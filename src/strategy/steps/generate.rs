//! `generate`: asks the model for samples of the conversation; each sample
//! becomes a candidate.

use crate::llm::{ChatRequest, GenParams, LlmError};
use crate::strategy::Env;
use crate::strategy::state::{Draft, QuestionState};
use crate::strategy::step::{BuildContext, Built, Params, Step, StepKind, parse_params, resolved};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenerateParams {
    /// Samples per question; more than one means a vote.
    pub samples: u32,
    pub temperature: f64,
    pub max_tokens: u32,
    pub seed: Option<u64>,
}

impl Default for GenerateParams {
    fn default() -> Self {
        GenerateParams {
            samples: 1,
            temperature: 0.0,
            max_tokens: 512,
            seed: None,
        }
    }
}

impl GenerateParams {
    pub fn gen_params(&self) -> GenParams {
        GenParams {
            temperature: self.temperature,
            max_tokens: self.max_tokens,
            seed: self.seed,
            grammar: None,
        }
    }
}

/// The `generate` step kind (see [`super::STEPS`]).
pub const KIND: StepKind = StepKind {
    name: "generate",
    place: 70,
    needs: &["prompt"],
    summary: "ask the model for samples of the conversation (samples, temperature, max_tokens, seed)",
    resolve: resolved::<GenerateParams>,
    build,
};

pub fn build(p: &Params, _: &BuildContext) -> anyhow::Result<Built> {
    let params: GenerateParams = parse_params("generate", p)?;
    Ok(Built::new(Generate(params.clone()), &params))
}

struct Generate(GenerateParams);

#[async_trait::async_trait]
impl Step for Generate {
    async fn apply(&self, state: &mut QuestionState, env: &Env) -> Result<(), LlmError> {
        let params = GenParams {
            grammar: state.grammar.clone(),
            ..self.0.gen_params()
        };
        let req = ChatRequest {
            messages: state.conversation.clone(),
            params,
            n: self.0.samples.max(1),
        };
        let answers = state.ask(env, &req).await?;
        // (Nothing here depends on the cache, so a replay's trace is the same.)
        state.note(format!(
            "{} samples at temperature {}",
            answers.len(),
            self.0.temperature
        ));
        for a in answers {
            let mut draft = Draft::new(a.text, state.conversation.clone(), "generate");
            draft.params = req.params.clone();
            state.candidates.push(draft);
        }
        Ok(())
    }
}
