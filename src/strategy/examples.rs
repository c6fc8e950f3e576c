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
    /// The SQL skeleton with values and identifiers masked.
    pub skeleton: String,
    /// The SQL skeleton with values masked, identifiers kept.
    pub skeleton_kept: String,
    /// The question with schema words and values masked.
    pub masked_question: String,
}

/// The train examples available for selection, with their databases.
#[derive(Default)]
pub struct ExamplePool {
    pub examples: Vec<PoolExample>,
    pub dbs: BTreeMap<String, Arc<DbInfo>>,
    /// Lexical indexes over the questions, masked questions and SQL, built
    /// on first use.
    indexes: [std::sync::OnceLock<crate::retrieval::similarity::Bm25Index>; 3],
    /// Distinct skeletons, identifiers masked [0] and kept [1].
    distinct: [std::sync::OnceLock<DistinctSkeletons>; 2],
}

/// The pool's distinct SQL skeletons.
pub struct DistinctSkeletons {
    pub skeletons: Vec<String>,
    /// For each example, the index of its skeleton.
    pub of_example: Vec<usize>,
}

/// Which text of the pool an index covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolText {
    Question = 0,
    MaskedQuestion = 1,
    Sql = 2,
}

impl ExamplePool {
    /// Builds the pool from train examples (hardness from the official
    /// classifier on tables.json's schema).
    pub fn new(examples: &[crate::dataset::Example], dbs: BTreeMap<String, Arc<DbInfo>>) -> Self {
        use crate::retrieval::{mask::mask_question, skeleton::skeleton};
        let parse_schemas: BTreeMap<&String, crate::eval::parse::ParseSchema> =
            dbs.iter().map(|(id, db)| (id, db.schema.parse_schema())).collect();
        let examples = examples
            .iter()
            .map(|e| PoolExample {
                question: e.question.clone(),
                sql: e.gold.clone(),
                db_id: e.db_id.clone(),
                hardness: parse_schemas
                    .get(&e.db_id)
                    .and_then(|s| get_sql(s, &e.gold).ok())
                    .map(|s| hardness(&s)),
                skeleton: skeleton(&e.gold, true),
                skeleton_kept: skeleton(&e.gold, false),
                masked_question: dbs
                    .get(&e.db_id)
                    .map(|db| mask_question(&e.question, &db.schema))
                    .unwrap_or_default(),
            })
            .collect();
        ExamplePool {
            examples,
            dbs,
            indexes: Default::default(),
            distinct: Default::default(),
        }
    }

    /// The distinct skeletons of the pool, and which one each example has.
    pub fn distinct_skeletons(&self, keep_identifiers: bool) -> &DistinctSkeletons {
        self.distinct[usize::from(keep_identifiers)].get_or_init(|| {
            let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
            let mut skeletons = Vec::new();
            let of_example = self
                .examples
                .iter()
                .map(|e| {
                    let s = if keep_identifiers {
                        &e.skeleton_kept
                    } else {
                        &e.skeleton
                    };
                    *index.entry(s.as_str()).or_insert_with(|| {
                        skeletons.push(s.clone());
                        skeletons.len() - 1
                    })
                })
                .collect();
            DistinctSkeletons { skeletons, of_example }
        })
    }

    /// The lexical index over one text of every pool example.
    pub fn text_index(&self, text: PoolText) -> &crate::retrieval::similarity::Bm25Index {
        self.indexes[text as usize].get_or_init(|| {
            let corpus: Vec<String> = self
                .examples
                .iter()
                .map(|e| match text {
                    PoolText::Question => e.question.clone(),
                    PoolText::MaskedQuestion => e.masked_question.clone(),
                    PoolText::Sql => e.sql.clone(),
                })
                .collect();
            crate::retrieval::similarity::Bm25Index::new(&corpus)
        })
    }

    /// The example as shown in a prompt.
    pub fn few_shot(&self, i: usize, with_schema: bool, render: &dyn Fn(&DbInfo) -> String) -> FewShot {
        let e = &self.examples[i];
        let schema = with_schema
            .then(|| self.dbs.get(&e.db_id).map(|db| render(db)))
            .flatten();
        FewShot {
            question: e.question.clone(),
            sql: e.sql.clone(),
            schema,
        }
    }
}

/// Examples for one question, and the model calls it took to choose them.
#[derive(Default)]
pub struct Selected {
    pub examples: Vec<FewShot>,
    pub completions: Vec<crate::llm::Completion>,
}

/// Chooses the examples for a question.
#[async_trait::async_trait]
pub trait ExampleSelector: Send + Sync {
    async fn select(&self, question: &Question<'_>, env: &Env) -> Result<Selected, LlmError>;
}

/// No examples (zero-shot).
pub struct NoExamples;

#[async_trait::async_trait]
impl ExampleSelector for NoExamples {
    async fn select(&self, _: &Question<'_>, _: &Env) -> Result<Selected, LlmError> {
        Ok(Selected::default())
    }
}

/// The same k examples for every question: from k different databases,
/// cycling through the hardness levels, in a fixed pseudo-random order.
pub struct FixedExamples {
    chosen: Vec<FewShot>,
}

impl FixedExamples {
    pub fn new(pool: &ExamplePool, k: usize, with_schema: bool, seed: u64, render: impl Fn(&DbInfo) -> String) -> Self {
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
    async fn select(&self, _: &Question<'_>, _: &Env) -> Result<Selected, LlmError> {
        Ok(Selected {
            examples: self.chosen.clone(),
            completions: vec![],
        })
    }
}
