//! `constrained`: schema-constrained decoding. Later generations on the
//! question follow the grammar of its database ([`crate::llm::grammar`]):
//! Spider's SQLite subset, with only the schema's tables and columns. The
//! grammar is built once per database; a database whose grammar cannot be
//! built is answered unconstrained, the reason in the trace.
//!
//! The local model applies the grammar with llama.cpp's grammar sampler; an
//! HTTP endpoint gets it in the request field `--grammar-field` names, and
//! without that flag the run stops with a message saying so.

use crate::llm::LlmError;
use crate::llm::grammar::GrammarCache;
use crate::strategy::Env;
use crate::strategy::state::QuestionState;
use crate::strategy::step::{BuildContext, Built, NoParams, Params, Step, StepKind, parse_params, resolved};

/// The `constrained` step kind (see [`super::STEPS`]).
pub const KIND: StepKind = StepKind {
    name: "constrained",
    place: 65,
    needs: &[],
    summary: "constrain generation with the database's SQLite grammar (schema tables and columns only)",
    resolve: resolved::<NoParams>,
    build,
};

pub fn build(p: &Params, _: &BuildContext) -> anyhow::Result<Built> {
    let params: NoParams = parse_params("constrained", p)?;
    Ok(Built::new(Constrained::default(), &params))
}

#[derive(Default)]
struct Constrained {
    grammars: GrammarCache,
}

#[async_trait::async_trait]
impl Step for Constrained {
    async fn apply(&self, state: &mut QuestionState, _: &Env) -> Result<(), LlmError> {
        // The whole database's schema, even where a step kept part of it
        // for the prompt: one grammar per database.
        match self.grammars.get(&state.db.schema) {
            Ok(grammar) => {
                state.note(format!("generation constrained by the grammar of {} ({} bytes)", state.db.db_id, grammar.len()));
                state.grammar = Some(grammar);
            }
            Err(e) => {
                state.note(format!("unconstrained: {e}"));
                state.grammar = None;
            }
        }
        Ok(())
    }
}
