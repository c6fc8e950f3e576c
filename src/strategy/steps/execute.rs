//! `execute`: runs each candidate's SQL on the question's database in the
//! sandbox (read-only, time- and memory-bounded), so that later steps
//! (repair, vote) and the record know what it gave.

use crate::dataset::DbInfo;
use crate::exec::sandbox::{Limits, Outcome, off_async, with_sandbox};
use crate::llm::LlmError;
use crate::strategy::Env;
use crate::strategy::state::{Draft, Execution, QuestionState};
use crate::strategy::step::{BuildContext, Built, Params, Step, StepKind, parse_params, resolved};
use crate::strategy::vote::fingerprint;
use std::collections::BTreeMap;

/// The `execute` step kind (see [`super::STEPS`]).
pub const KIND: StepKind = StepKind {
    name: "execute",
    place: 90,
    needs: &["extract"],
    summary: "run each query on the database in the sandbox",
    resolve: resolved::<crate::strategy::step::NoParams>,
    build,
};

pub fn build(p: &Params, _: &BuildContext) -> anyhow::Result<Built> {
    let params: crate::strategy::step::NoParams = parse_params("execute", p)?;
    Ok(Built::new(Execute, &params))
}

struct Execute;

/// Runs a query on the database (blocking work, off the async threads).
pub async fn execute_sql(db: &DbInfo, sql: &str, limits: &Limits) -> Execution {
    let Some(path) = db.sqlite.clone() else {
        return Execution::NoDatabase;
    };
    let (query, limits) = (sql.to_string(), limits.clone());
    let outcome = off_async(move || with_sandbox(|s| s.execute(&path, &query, &limits))).await;
    match outcome {
        Outcome::Rows(rows) => {
            let ordered = sql.to_lowercase().contains("order by");
            Execution::Rows {
                count: rows.len(),
                fingerprint: fingerprint(&rows, ordered),
            }
        }
        Outcome::TooManyRows => Execution::TooManyRows,
        Outcome::Error(e) => Execution::Error(e),
        Outcome::Timeout => Execution::Timeout,
    }
}

/// Runs the draft's SQL unless it ran already (or has none).
pub async fn ensure_executed(db: &DbInfo, d: &mut Draft, limits: &Limits) {
    if d.execution.is_none()
        && let Some(sql) = &d.sql
    {
        d.execution = Some(execute_sql(db, sql, limits).await);
    }
}

#[async_trait::async_trait]
impl Step for Execute {
    async fn apply(&self, state: &mut QuestionState, env: &Env) -> Result<(), LlmError> {
        let db = state.db.clone();
        for d in &mut state.candidates {
            ensure_executed(&db, d, &env.limits).await;
        }
        let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
        for d in &state.candidates {
            *outcomes.entry(d.to_candidate().outcome).or_default() += 1;
        }
        let summary: Vec<String> = outcomes.iter().map(|(o, n)| format!("{n} x {o}")).collect();
        state.note(summary.join("; "));
        Ok(())
    }
}
