//! The example pool: the train questions examples are chosen from (dev
//! questions are never in it), with what retrieval compares them by.

use crate::dataset::DbInfo;
use crate::eval::exact::{Hardness, hardness};
use crate::eval::parse::get_sql;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One solved example shown to the model.
#[derive(Clone, Debug, PartialEq, Serialize)]
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
    indexes: [std::sync::OnceLock<super::similarity::Bm25Index>; 3],
    /// Distinct skeletons, identifiers masked [0] and kept [1].
    distinct: [std::sync::OnceLock<DistinctSkeletons>; 2],
    /// The examples of each question, normalised ([`same_question_key`]).
    by_question: std::sync::OnceLock<std::collections::HashMap<String, Vec<usize>>>,
}

/// Questions compare equal when they differ only in case and spacing.
fn same_question_key(question: &str) -> String {
    question.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
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
        use super::{mask::mask_question, skeleton::skeleton};
        let parse_schemas: BTreeMap<&String, crate::eval::parse::ParseSchema> = dbs
            .iter()
            .map(|(id, db)| (id, crate::eval::parse::ParseSchema::from_db(&db.schema)))
            .collect();
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
            by_question: Default::default(),
        }
    }

    /// The pool examples a train question's own prompt must not show: those
    /// asking the same question (up to case and spacing) and those on its
    /// database, in order.
    pub fn left_out_for(&self, question: &str, db_id: &str) -> Vec<usize> {
        let mut out = self.same_question(question);
        out.extend((0..self.examples.len()).filter(|&i| self.examples[i].db_id == db_id));
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The pool examples asking `question` (up to case and spacing), in
    /// order.
    pub fn same_question(&self, question: &str) -> Vec<usize> {
        let index = self.by_question.get_or_init(|| {
            let mut index: std::collections::HashMap<String, Vec<usize>> = Default::default();
            for (i, e) in self.examples.iter().enumerate() {
                index.entry(same_question_key(&e.question)).or_default().push(i);
            }
            index
        });
        index.get(&same_question_key(question)).cloned().unwrap_or_default()
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
    pub fn text_index(&self, text: PoolText) -> &super::similarity::Bm25Index {
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
            super::similarity::Bm25Index::new(&corpus)
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
