//! The counts of a run, one summary per strategy; the comparison table
//! with its statistics is `report::table`'s.

use super::record::RunRecord;
use crate::eval::exact::Hardness;
use crate::eval::judge::Status;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StrategySummary {
    pub strategy: String,
    /// Scored questions (skipped ones excluded).
    pub count: usize,
    pub exec_correct: usize,
    pub exact_correct: usize,
    pub by_hardness: BTreeMap<Hardness, LevelCount>,
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub cost_usd: f64,
    pub calls: usize,
    /// No SQL from the strategy (the model failed, or its answer held none).
    pub no_answer: usize,
    pub exec_errors: usize,
    pub timeouts: usize,
    pub skipped: usize,
    /// No answer from the model (endpoint down, timeouts): not scored;
    /// `run --resume` asks again.
    pub errors: usize,
    /// Questions of the run without a record yet (a run stopped or killed
    /// before them, or whose line of predictions.jsonl is damaged).
    pub missing: usize,
    /// Records with an answer that the repetition rule stopped early.
    pub loops_cut: usize,
}

/// The questions of one hardness level and how many were right.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct LevelCount {
    pub count: usize,
    pub exec_correct: usize,
}

impl StrategySummary {
    pub fn exec_accuracy(&self) -> f64 {
        ratio(self.exec_correct, self.count)
    }
    pub fn exact_accuracy(&self) -> f64 {
        ratio(self.exact_correct, self.count)
    }
    pub fn per_question(&self, x: f64) -> f64 {
        if self.count == 0 { 0.0 } else { x / self.count as f64 }
    }
    pub fn level_accuracy(&self, h: Hardness) -> Option<f64> {
        self.by_hardness
            .get(&h)
            .filter(|c| c.count > 0)
            .map(|c| ratio(c.exec_correct, c.count))
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// One summary per strategy, in the given order; `questions` is how many
/// each strategy should have (the run's questions).
pub fn summarize_run(records: &[RunRecord], order: &[String], questions: usize) -> Vec<StrategySummary> {
    order
        .iter()
        .map(|name| {
            let mut s = StrategySummary {
                strategy: name.clone(),
                count: 0,
                exec_correct: 0,
                exact_correct: 0,
                by_hardness: BTreeMap::new(),
                tokens_in: 0,
                tokens_out: 0,
                cost_usd: 0.0,
                calls: 0,
                no_answer: 0,
                exec_errors: 0,
                timeouts: 0,
                skipped: 0,
                errors: 0,
                missing: questions,
                loops_cut: 0,
            };
            for r in records.iter().filter(|r| &r.strategy == name) {
                s.missing = s.missing.saturating_sub(1);
                s.tokens_in += r.tokens_in;
                s.tokens_out += r.tokens_out;
                s.cost_usd += r.cost_usd;
                s.calls += r.calls;
                s.loops_cut += usize::from(r.loops_cut > 0);
                match r.status {
                    Status::Skipped | Status::GoldError => {
                        s.skipped += 1;
                        continue;
                    }
                    Status::Error => {
                        s.errors += 1;
                        continue;
                    }
                    Status::ExecError => s.exec_errors += 1,
                    Status::Timeout => s.timeouts += 1,
                    _ => {}
                }
                s.no_answer += usize::from(r.pred.is_none());
                s.count += 1;
                let ok = r.exec == Some(true);
                s.exec_correct += usize::from(ok);
                s.exact_correct += usize::from(r.exact == Some(true));
                if let Some(h) = r.hardness {
                    let e = s.by_hardness.entry(h).or_default();
                    e.count += 1;
                    e.exec_correct += usize::from(ok);
                }
            }
            s
        })
        .collect()
}
