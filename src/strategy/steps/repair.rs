//! `repair` (execution-guided, as exec-retry): a candidate whose query has
//! no SQL, fails to run, times out (or, with `on_empty`, returns no rows)
//! is sent back with the problem, continuing its conversation, up to
//! `rounds` times. A repair call that fails keeps the answer there is.

use super::execute::ensure_executed;
use crate::llm::{ChatRequest, LlmError, Message};
use crate::strategy::Env;
use crate::strategy::extract::extract_sql;
use crate::strategy::state::{Draft, Execution, QuestionState};
use crate::strategy::step::{BuildContext, Built, Params, Step, StepKind, parse_params, resolved};
use crate::strategy::template::Template;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RepairParams {
    /// Times a failing answer is sent back.
    pub rounds: u32,
    /// Also send back answers whose result is empty.
    pub on_empty: bool,
    /// The follow-up message (sees `problem`).
    pub template: String,
}

impl Default for RepairParams {
    fn default() -> Self {
        RepairParams {
            rounds: 3,
            on_empty: false,
            template: "repair".into(),
        }
    }
}

/// The `repair` step kind (see [`super::STEPS`]).
pub const KIND: StepKind = StepKind {
    name: "repair",
    place: 100,
    needs: &["extract"],
    summary: "send a query that fails back with the error and ask again (rounds, on_empty)",
    resolve: resolved::<RepairParams>,
    build,
};

pub fn build(p: &Params, ctx: &BuildContext) -> anyhow::Result<Built> {
    let params: RepairParams = parse_params("repair", p)?;
    let (template, recorded) = super::prompt::load_template(&params, &params.template, ctx)?;
    Ok(Built::new(Repair { params, template }, &recorded))
}

struct Repair {
    params: RepairParams,
    template: Template,
}

impl Repair {
    /// What to tell the model about the candidate, if anything is wrong.
    fn problem(&self, d: &Draft) -> Option<String> {
        match (&d.sql, &d.execution) {
            (None, _) => Some("no SQL query was found in the answer".to_string()),
            (Some(_), Some(Execution::Error(e))) => Some(format!("error: {e}")),
            (Some(_), Some(Execution::Timeout)) => Some("the query timed out".to_string()),
            (Some(_), Some(Execution::Rows { count: 0, .. })) if self.params.on_empty => {
                Some("the query returned no rows".to_string())
            }
            _ => None,
        }
    }

    /// The follow-up request for candidate `i` when its answer has a
    /// problem it may still be sent back for: the problem, and the request
    /// (whose messages are the candidate's conversation from then on).
    async fn follow_up(
        &self,
        state: &mut QuestionState,
        i: usize,
        env: &Env,
    ) -> Result<Option<(String, ChatRequest)>, LlmError> {
        let db = state.db.clone();
        let d = &mut state.candidates[i];
        ensure_executed(&db, d, &env.limits).await;
        let can_retry = d.repairs < self.params.rounds && (d.sql.is_none() || db.sqlite.is_some());
        let Some(problem) = self.problem(d).filter(|_| can_retry) else {
            return Ok(None);
        };
        let mut history = d.conversation.clone();
        history.push(Message::assistant(d.answer.clone()));
        let follow_up = super::prompt::render(&self.template, &serde_json::json!({ "problem": problem }))?;
        history.extend(follow_up);
        let req = ChatRequest {
            messages: history,
            params: d.params.clone(),
            n: 1,
        };
        Ok(Some((problem, req)))
    }
}

#[async_trait::async_trait]
impl Step for Repair {
    /// Round by round: every candidate with a problem is sent back at once
    /// (a local model decodes them together, an HTTP endpoint takes them in
    /// parallel), until none has one or each has had its rounds.
    async fn apply(&self, state: &mut QuestionState, env: &Env) -> Result<(), LlmError> {
        let n = state.candidates.len();
        let mut first_problem: Vec<Option<String>> = vec![None; n];
        // A candidate whose repair call failed keeps its answer.
        let mut failed: Vec<Option<String>> = vec![None; n];
        loop {
            let mut asks = Vec::new();
            for i in (0..n).filter(|&i| failed[i].is_none()) {
                if let Some((problem, req)) = self.follow_up(state, i, env).await? {
                    first_problem[i].get_or_insert(problem);
                    asks.push((i, req));
                }
            }
            if asks.is_empty() {
                break;
            }
            let answers = futures::future::join_all(asks.iter().map(|(_, req)| env.model.complete(req))).await;
            for ((i, req), answer) in asks.into_iter().zip(answers) {
                let next = match answer {
                    Ok(mut c) => {
                        state.used(&c);
                        c.remove(0)
                    }
                    Err(LlmError::Request(e)) => {
                        failed[i] = Some(format!("candidate {i}: the repair call failed ({e}); kept its answer"));
                        continue;
                    }
                    Err(fatal) => return Err(fatal),
                };
                let d = &mut state.candidates[i];
                d.sql = extract_sql(&next.text);
                d.answer = next.text;
                d.conversation = req.messages;
                d.execution = None;
                d.repairs += 1;
                d.step = "repair".into();
            }
        }
        let lines: Vec<String> = (0..n)
            .filter_map(|i| {
                failed[i].clone().or_else(|| {
                    let d = &state.candidates[i];
                    first_problem[i]
                        .as_ref()
                        .map(|p| format!("candidate {i}: {p} -> {} repairs, now {}", d.repairs, d.to_candidate().outcome))
                })
            })
            .collect();
        if lines.is_empty() {
            state.note("nothing to repair");
        }
        for l in lines {
            state.note(l);
        }
        Ok(())
    }
}
