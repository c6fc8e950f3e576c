//! A built strategy: its steps in order, run over one question state.

use super::spec::StrategySpec;
use super::state::QuestionState;
use super::step::{BuildContext, Step, kind};
use super::{Env, Prediction, Question, Strategy};
use crate::llm::LlmError;
use anyhow::{Context, Result};
use std::sync::Arc;

pub struct Chain {
    name: String,
    description: String,
    steps: Vec<(String, Arc<dyn Step>)>,
    /// The resolved steps, as config.json records them.
    parameters: serde_json::Value,
    /// The model it is bound to, if any ([`StrategySpec::model`]).
    model: Option<String>,
}

impl Chain {
    pub fn build(spec: &StrategySpec, ctx: &BuildContext) -> Result<Chain> {
        super::step::check_order(&spec.steps).with_context(|| format!("strategy {}", spec.name))?;
        let mut steps = Vec::new();
        let mut resolved = Vec::new();
        for s in &spec.steps {
            let built = (kind(&s.step)?.build)(&s.params, ctx)
                .with_context(|| format!("strategy {}, step {}", spec.name, s.step))?;
            let mut entry = serde_json::json!({ "step": s.step });
            if let serde_json::Value::Object(params) = built.parameters
                && !params.is_empty()
            {
                entry["parameters"] = serde_json::Value::Object(params);
            }
            resolved.push(entry);
            steps.push((s.step.clone(), built.step));
        }
        Ok(Chain {
            name: spec.name.clone(),
            description: spec.description.clone(),
            steps,
            parameters: serde_json::json!({ "steps": resolved }),
            model: spec.model.clone(),
        })
    }

    /// Runs the steps in order. A step that fails the question ends the
    /// chain with the failure recorded (in the trace and `state.failure`,
    /// or `state.unavailable` when the model could not be reached); only a
    /// fatal error comes back as `Err`.
    pub async fn run(&self, state: &mut QuestionState, env: &Env) -> Result<(), LlmError> {
        for (name, step) in &self.steps {
            state.begin(name);
            match step.apply(state, env).await {
                Ok(()) => state.end(None),
                Err(LlmError::Request(e)) => {
                    state.failure = Some(format!("{name}: {e}"));
                    state.end(Some(e));
                    return Ok(());
                }
                Err(LlmError::Unavailable(e)) => {
                    state.unavailable = Some(format!("{name}: {e}"));
                    state.end(Some(e));
                    return Ok(());
                }
                Err(fatal) => {
                    state.end(Some(fatal.to_string()));
                    return Err(fatal);
                }
            }
        }
        if state.final_sql.is_none() && state.failure.is_none() {
            state.failure = Some("no SQL query in the model's answer".to_string());
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Strategy for Chain {
    fn name(&self) -> &str {
        &self.name
    }

    fn description(&self) -> &str {
        &self.description
    }

    fn parameters(&self) -> serde_json::Value {
        self.parameters.clone()
    }

    fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    async fn predict(&self, q: &Question<'_>, env: &Env) -> Result<Prediction, LlmError> {
        let mut state = QuestionState::new(q.example.clone(), q.db.clone());
        self.run(&mut state, env).await?;
        Ok(Prediction {
            sql: state.final_sql,
            failure: state.failure,
            completions: state.completions,
            candidates: state.candidates.iter().map(|d| d.to_candidate()).collect(),
            trace: state.trace,
            unavailable: state.unavailable,
        })
    }
}
