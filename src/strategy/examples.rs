//! Example selection: which solved questions go into the prompt. The pool is
//! the train split; dev questions are never in it.

use super::{DbInfo, Env, Question};
use crate::eval::exact::{Hardness, hardness};
use crate::eval::parse::get_sql;
use crate::llm::LlmError;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

/// One solved example shown to the model.
#[derive(Clone, Debug, PartialEq)]
pub struct FewShot {
    pub question: String,
    pub sql: String,
    /// The example's own schema, when the strategy shows it.
    pub schema: Option<String>,
}

/// A question of the pool.
#[derive(Clone, Debug)]
pub struct PoolExample {
    pub question: String,
    pub sql: String,
    pub db_id: String,
    pub hardness: Option<Hardness>,
}

/// The train examples available for selection, with their databases.
#[derive(Default)]
pub struct ExamplePool {
    pub examples: Vec<PoolExample>,
    pub dbs: BTreeMap<String, Arc<DbInfo>>,
}

impl ExamplePool {
    /// Builds the pool from train examples (hardness from the official
    /// classifier on tables.json's schema).
    pub fn new(examples: &[crate::dataset::Example], dbs: BTreeMap<String, Arc<DbInfo>>) -> Self {
        let examples = examples
            .iter()
            .map(|e| PoolExample {
                question: e.question.clone(),
                sql: e.gold.clone(),
                db_id: e.db_id.clone(),
                hardness: dbs
                    .get(&e.db_id)
                    .and_then(|db| get_sql(&db.schema.parse_schema(), &e.gold).ok())
                    .map(|s| hardness(&s)),
            })
            .collect();
        ExamplePool { examples, dbs }
    }
}

/// Chooses the examples for a question.
#[async_trait::async_trait]
pub trait ExampleSelector: Send + Sync {
    async fn select(&self, question: &Question<'_>, env: &Env) -> Result<Vec<FewShot>, LlmError>;
}

/// No examples (zero-shot).
pub struct NoExamples;

#[async_trait::async_trait]
impl ExampleSelector for NoExamples {
    async fn select(&self, _: &Question<'_>, _: &Env) -> Result<Vec<FewShot>, LlmError> {
        Ok(vec![])
    }
}

/// The same k examples for every question: from k different databases,
/// cycling through the hardness levels, in a fixed pseudo-random order.
pub struct FixedExamples {
    chosen: Vec<FewShot>,
}

impl FixedExamples {
    pub fn new(
        pool: &ExamplePool,
        k: usize,
        with_schema: bool,
        seed: u64,
        render: impl Fn(&DbInfo) -> String,
    ) -> Self {
        // A fixed permutation of the pool (splitmix64 of the index), so the
        // choice never depends on the pool's order on disk beyond its content.
        let mut order: Vec<usize> = (0..pool.examples.len()).collect();
        order.sort_by_key(|&i| splitmix(seed ^ i as u64));
        let mut chosen = Vec::new();
        let mut used_dbs = HashSet::new();
        let mut level = 0;
        while chosen.len() < k && used_dbs.len() < pool.dbs.len() {
            let want = Hardness::ALL[level % 4];
            let pick = order
                .iter()
                .map(|&i| &pool.examples[i])
                .find(|e| e.hardness == Some(want) && !used_dbs.contains(&e.db_id));
            level += 1;
            let Some(e) = pick else {
                if level > 4 * (k + 4) {
                    break;
                }
                continue;
            };
            used_dbs.insert(e.db_id.clone());
            let schema = with_schema
                .then(|| pool.dbs.get(&e.db_id).map(|db| render(db)))
                .flatten();
            chosen.push(FewShot {
                question: e.question.clone(),
                sql: e.sql.clone(),
                schema,
            });
        }
        FixedExamples { chosen }
    }

    pub fn examples(&self) -> &[FewShot] {
        &self.chosen
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[async_trait::async_trait]
impl ExampleSelector for FixedExamples {
    async fn select(&self, _: &Question<'_>, _: &Env) -> Result<Vec<FewShot>, LlmError> {
        Ok(self.chosen.clone())
    }
}
