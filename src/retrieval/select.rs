//! Ranking pool examples for a question: random, by question similarity
//! (plain or masked), by similarity of a hypothetical answer (HyDE), among
//! examples of the predicted difficulty, or DAIL-SQL's re-ranking.

use super::mask::mask_question;
use super::pool::{ExamplePool, PoolText};
use super::similarity::{TextIndex, top_k};
use super::skeleton::{similarity, skeleton};
use crate::dataset::schema::DbSchema;
use crate::eval::exact::hardness;
use crate::eval::parse::{ParseSchema, get_sql};
use serde::{Deserialize, Serialize};

/// A way to rank the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// k examples at random (seeded per question): the baseline.
    Random,
    /// Nearest pool questions.
    QuestionSimilarity,
    /// Nearest pool questions after masking schema words and values.
    MaskedQuestionSimilarity,
    /// Pool examples whose SQL skeleton is closest to a hypothetical answer.
    Hyde,
    /// Nearest questions among pool examples of the hypothetical answer's hardness.
    DifficultyMatched,
    /// HyDE restricted to examples of the hypothetical answer's hardness.
    HydeDifficulty,
    /// DAIL-SQL: masked-question neighbours re-ranked by skeleton similarity.
    Dail,
}

impl Method {
    pub const ALL: [Method; 7] = [
        Method::Random,
        Method::QuestionSimilarity,
        Method::MaskedQuestionSimilarity,
        Method::Hyde,
        Method::DifficultyMatched,
        Method::HydeDifficulty,
        Method::Dail,
    ];

    /// Needs a preliminary (hypothetical) SQL answer.
    pub fn needs_preliminary(self) -> bool {
        matches!(
            self,
            Method::Hyde | Method::DifficultyMatched | Method::HydeDifficulty | Method::Dail
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            Method::Random => "random",
            Method::QuestionSimilarity => "question-similarity",
            Method::MaskedQuestionSimilarity => "masked-question-similarity",
            Method::Hyde => "hyde",
            Method::DifficultyMatched => "difficulty-matched",
            Method::HydeDifficulty => "hyde-difficulty",
            Method::Dail => "dail",
        }
    }
}

/// What a selector knows about the question.
pub struct Query<'a> {
    pub question: &'a str,
    pub schema: &'a DbSchema,
    /// The hypothetical answer, for methods that need one.
    pub preliminary: Option<&'a str>,
    /// Per-question seed for `random`.
    pub seed: u64,
    pub options: RankOptions,
    /// Pool indices never to return, sorted (the fine-tuning export leaves
    /// out the example being written, every other with its question, and
    /// those of its database).
    pub exclude: &'a [usize],
}

/// How a hypothetical answer is compared with pool SQL.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum HydeBy {
    /// Similarity of SQL skeletons (token edit distance).
    #[default]
    Skeleton,
    /// BM25 similarity of the SQL texts.
    SqlText,
}

/// Options of the SQL-based selectors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
pub struct RankOptions {
    /// How hyde compares the hypothetical answer with pool SQL.
    #[arg(long, value_enum, default_value = "skeleton")]
    pub hyde_by: HydeBy,
    /// Keep table and column names in skeletons (DAIL-SQL masks them).
    #[arg(long)]
    pub keep_identifiers: bool,
}

/// A question's similarity to every pool example: by its question, and by
/// its masked question.
pub struct Scores {
    pub question: Vec<f32>,
    pub masked: Vec<f32>,
}

/// How question similarity is measured.
pub enum Similarity {
    /// BM25 over words (no model).
    Bm25,
    /// Cosine of embeddings (pool vectors stored once).
    Dense {
        embedder: std::sync::Arc<dyn crate::retrieval::embed::Embedder>,
        questions: crate::retrieval::embed::DenseIndex,
        masked: crate::retrieval::embed::DenseIndex,
    },
}

impl Similarity {
    /// Builds the dense variant: embeds the pool's questions and masked
    /// questions once (stored under `store`).
    pub async fn dense(
        embedder: std::sync::Arc<dyn crate::retrieval::embed::Embedder>,
        pool: &ExamplePool,
        store: &std::path::Path,
    ) -> anyhow::Result<Similarity> {
        use crate::retrieval::embed::DenseIndex;
        let q: Vec<String> = pool.examples.iter().map(|e| e.question.clone()).collect();
        let m: Vec<String> = pool.examples.iter().map(|e| e.masked_question.clone()).collect();
        let questions = DenseIndex::load_or_build(embedder.as_ref(), &q, store).await?;
        let masked = DenseIndex::load_or_build(embedder.as_ref(), &m, store).await?;
        Ok(Similarity::Dense {
            embedder,
            questions,
            masked,
        })
    }

    /// The query's scores against the pool, and any model calls made.
    pub async fn scores(
        &self,
        pool: &ExamplePool,
        question: &str,
        schema: &DbSchema,
    ) -> Result<(Scores, Vec<crate::llm::Completion>), crate::llm::LlmError> {
        match self {
            Similarity::Bm25 => Ok((lexical_scores(pool, question, schema), vec![])),
            Similarity::Dense {
                embedder,
                questions,
                masked,
            } => {
                let texts = vec![question.to_string(), mask_question(question, schema)];
                let e = embedder.embed(&texts).await?;
                let scores = Scores {
                    question: questions.scores_of(&e.vectors[0]),
                    masked: masked.scores_of(&e.vectors[1]),
                };
                Ok((scores, e.usage))
            }
        }
    }
}

impl Similarity {
    /// Scores of many questions at once (one embedding batch for all).
    pub async fn scores_many(
        &self,
        pool: &ExamplePool,
        questions: &[(&str, &DbSchema)],
    ) -> Result<Vec<Scores>, crate::llm::LlmError> {
        match self {
            Similarity::Bm25 => Ok(questions.iter().map(|(q, s)| lexical_scores(pool, q, s)).collect()),
            Similarity::Dense {
                embedder,
                questions: qi,
                masked,
            } => {
                let mut texts: Vec<String> = questions.iter().map(|(q, _)| q.to_string()).collect();
                texts.extend(questions.iter().map(|(q, s)| mask_question(q, s)));
                let e = embedder.embed(&texts).await?;
                let n = questions.len();
                let q_scores = qi.scores_batch(&e.vectors[..n]);
                let m_scores = masked.scores_batch(&e.vectors[n..]);
                Ok(q_scores
                    .into_iter()
                    .zip(m_scores)
                    .map(|(question, masked)| Scores { question, masked })
                    .collect())
            }
        }
    }
}

/// BM25 scores of a question against the pool.
pub fn lexical_scores(pool: &ExamplePool, question: &str, schema: &DbSchema) -> Scores {
    Scores {
        question: pool.text_index(PoolText::Question).scores(question),
        masked: pool
            .text_index(PoolText::MaskedQuestion)
            .scores(&mask_question(question, schema)),
    }
}

/// DAIL-SQL's first stage keeps this many masked-question neighbours.
const DAIL_CANDIDATES: usize = 50;

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The `k` best pool examples for the query, best first, none of
/// `q.exclude`. Methods that need a preliminary answer fall back to
/// question similarity without one.
pub fn rank(pool: &ExamplePool, method: Method, q: &Query<'_>, k: usize, scores: &Scores) -> Vec<usize> {
    // Every method ranks the pool and keeps a prefix, so the k best of the
    // allowed examples are among the k + |exclude| best of all.
    without_excluded(rank_all(pool, method, q, k + q.exclude.len(), scores), q.exclude, k)
}

fn without_excluded(mut ranked: Vec<usize>, exclude: &[usize], k: usize) -> Vec<usize> {
    ranked.retain(|i| exclude.binary_search(i).is_err());
    ranked.truncate(k);
    ranked
}

fn rank_all(pool: &ExamplePool, method: Method, q: &Query<'_>, k: usize, scores: &Scores) -> Vec<usize> {
    let questions = || scores.question.clone();
    let by_skeleton = |candidates: &[usize], prelim: &str| {
        let tie = questions();
        if q.options.hyde_by == HydeBy::SqlText {
            let sql = pool.text_index(PoolText::Sql).scores(prelim);
            return top_k(&sql, k, Some(candidates));
        }
        let keep = q.options.keep_identifiers;
        let target = skeleton(prelim, !keep);
        // Many pool examples share a skeleton: compare with each distinct one once.
        let distinct = pool.distinct_skeletons(keep);
        let mut scored: Vec<(usize, f64)> = if candidates.len() < distinct.skeletons.len() {
            candidates
                .iter()
                .map(|&i| (i, similarity(&target, &pool.examples[i].skeleton)))
                .collect()
        } else {
            let sims: Vec<f64> = distinct.skeletons.iter().map(|s| similarity(&target, s)).collect();
            candidates.iter().map(|&i| (i, sims[distinct.of_example[i]])).collect()
        };
        scored.sort_by(|a, b| {
            b.1.total_cmp(&a.1)
                .then(tie[b.0].total_cmp(&tie[a.0]))
                .then(a.0.cmp(&b.0))
        });
        scored.into_iter().take(k).map(|(i, _)| i).collect::<Vec<_>>()
    };
    let same_hardness = |prelim: &str| -> Option<Vec<usize>> {
        let level = hardness(&get_sql(&ParseSchema::from_db(q.schema), prelim).ok()?);
        Some(
            (0..pool.examples.len())
                .filter(|&i| pool.examples[i].hardness == Some(level))
                .collect(),
        )
    };
    let all: Vec<usize> = (0..pool.examples.len()).collect();
    match (method, q.preliminary) {
        (Method::Random, _) => {
            let mut order = all;
            order.sort_by_key(|&i| splitmix(q.seed ^ splitmix(i as u64)));
            order.truncate(k);
            order
        }
        (Method::MaskedQuestionSimilarity, _) => top_k(&scores.masked, k, None),
        (Method::Hyde, Some(p)) => by_skeleton(&all, p),
        (Method::DifficultyMatched, Some(p)) => match same_hardness(p) {
            Some(c) => top_k(&questions(), k, Some(&c)),
            None => top_k(&questions(), k, None),
        },
        (Method::HydeDifficulty, Some(p)) => by_skeleton(&same_hardness(p).unwrap_or(all), p),
        (Method::Dail, Some(p)) => {
            let masked = &scores.masked;
            let first = top_k(masked, DAIL_CANDIDATES + q.exclude.len(), None);
            by_skeleton(&without_excluded(first, q.exclude, DAIL_CANDIDATES), p)
        }
        _ => top_k(&questions(), k, None),
    }
}
