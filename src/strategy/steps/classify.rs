//! `classify` (DIN-SQL's classification): the model says whether the
//! question is easy (one table), non-nested (joins) or nested (sub-queries),
//! and lists a nested question's sub-questions. Later steps read the state
//! variables `class` ("easy", "non-nested", "nested") and `subquestions`.
//! An answer without a class, or a failed call, counts as non-nested (the
//! general prompt) and says so in the trace.

use super::prompt::{ask_greedy, load_template, prompt_vars};
use crate::llm::LlmError;
use crate::strategy::Env;
use crate::strategy::state::QuestionState;
use crate::strategy::step::{BuildContext, Built, Params, Step, StepKind, parse_params, resolved};
use crate::strategy::template::Template;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClassifyParams {
    /// Sees `schema` and `question`.
    pub template: String,
    pub max_tokens: u32,
    /// Sub-questions kept at most.
    pub max_subquestions: usize,
}

impl Default for ClassifyParams {
    fn default() -> Self {
        ClassifyParams {
            template: "classify".into(),
            max_tokens: 256,
            max_subquestions: 3,
        }
    }
}

/// The `classify` step kind (see [`super::STEPS`]).
pub const KIND: StepKind = StepKind {
    name: "classify",
    place: 30,
    needs: &["schema"],
    summary: "ask whether the question is easy, non-nested or nested (and its sub-questions)",
    resolve: resolved::<ClassifyParams>,
    build,
};

pub fn build(p: &Params, ctx: &BuildContext) -> anyhow::Result<Built> {
    let params: ClassifyParams = parse_params("classify", p)?;
    let (template, recorded) = load_template(&params, &params.template, ctx)?;
    Ok(Built::new(Classify { params, template }, &recorded))
}

struct Classify {
    params: ClassifyParams,
    template: Template,
}

/// The class named in an answer (on the first line that names one: after
/// "Class:" if the line has it, so that a model that first echoes the
/// definitions is not read as naming them all), and the sub-questions listed
/// after it (`- ...` lines).
pub fn parse_class(answer: &str, max_subquestions: usize) -> (Option<&'static str>, Vec<String>) {
    let mut class = None;
    let mut subquestions = Vec::new();
    let marked = answer.to_uppercase().contains("CLASS:");
    for line in answer.lines() {
        if class.is_none() {
            let upper = line.to_uppercase().replace(['_', ' '], "-");
            let named = match upper.split_once("CLASS:") {
                Some((_, rest)) => rest.to_string(),
                None if marked => continue,
                None => upper,
            };
            class = if named.contains("NON-NESTED") {
                Some("non-nested")
            } else if named.contains("NESTED") {
                Some("nested")
            } else if named.contains("EASY") {
                Some("easy")
            } else {
                None
            };
            continue;
        }
        let item = line.trim_start();
        if let Some(q) = item.strip_prefix("- ").or_else(|| item.strip_prefix("* "))
            && !q.trim().is_empty()
            && subquestions.len() < max_subquestions
        {
            subquestions.push(q.trim().to_string());
        }
    }
    (class, subquestions)
}

#[async_trait::async_trait]
impl Step for Classify {
    async fn apply(&self, state: &mut QuestionState, env: &Env) -> Result<(), LlmError> {
        let vars = prompt_vars(state)?;
        let (class, subquestions) = match ask_greedy(state, env, &self.template, &vars, self.params.max_tokens).await {
            Ok((text, _)) => parse_class(&text, self.params.max_subquestions),
            Err(LlmError::Request(e)) => {
                state.note(format!("the classifying call failed ({e})"));
                (None, vec![])
            }
            Err(fatal) => return Err(fatal),
        };
        let class = class.unwrap_or_else(|| {
            state.note("no class in the answer: treated as non-nested");
            "non-nested"
        });
        // A nested class without sub-questions is solved as non-nested.
        let class = if class == "nested" && subquestions.is_empty() {
            state.note("nested, but no sub-question listed: treated as non-nested");
            "non-nested"
        } else {
            class
        };
        state.note(format!("{class}, {} sub-questions", subquestions.len()));
        state.vars.insert("class".into(), class.into());
        state.vars.insert("subquestions".into(), subquestions.into());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::parse_class;

    #[test]
    fn classes_and_subquestions_are_read_from_free_text() {
        let (c, s) = parse_class("Class: NESTED\n- Which singers are French?\n- How old are they?\n", 3);
        assert_eq!((c, s.len()), (Some("nested"), 2));
        assert_eq!(parse_class("non nested", 3).0, Some("non-nested"));
        assert_eq!(parse_class("It is EASY.", 3).0, Some("easy"));
        assert_eq!(parse_class("no idea", 3), (None, vec![]));
        let echoed = "EASY: one table.\nNON-NESTED: joins.\nClass: NON-NESTED\n";
        assert_eq!(parse_class(echoed, 3).0, Some("non-nested"));
        assert_eq!(parse_class("NESTED\n- a\n- b\n- c\n- d", 2).1, ["a", "b"]);
    }
}
