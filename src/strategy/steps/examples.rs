//! `examples`: solved train questions for the prompt. `fixed`: the same k
//! for every question (from k databases, cycling through the hardness
//! levels); a retrieval method (`random`, `question-similarity`, `hyde`,
//! `dail`...): k per question, ranked by [`crate::retrieval::select`],
//! first asking a cheaper `preliminary` strategy for a hypothetical answer
//! when the method needs one.

use crate::eval::exact::Hardness;
use crate::llm::LlmError;
use crate::retrieval::pool::ExamplePool;
use crate::retrieval::select::{HydeBy, Method, Query, RankOptions, Similarity, lexical_scores, rank};
use crate::strategy::chain::Chain;
use crate::strategy::state::QuestionState;
use crate::strategy::step::{BuildContext, Built, Params, Step, StepKind, parse_params, resolved};
use crate::strategy::{Env, Strategy};
use anyhow::bail;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::Arc;

/// How examples are chosen: none, a fixed set, or a retrieval method
/// (written as their names: `hyde`, `dail`...).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Selector {
    Basic(BasicSelector),
    Retrieve(Method),
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum BasicSelector {
    None,
    /// The same k train examples for every question.
    Fixed,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExamplesParams {
    pub selector: Selector,
    pub k: usize,
    /// Show each example's own schema.
    pub with_schema: bool,
    pub seed: u64,
    /// The strategy that writes the hypothetical answer for hyde,
    /// difficulty-matched and dail (any strategy name, `+` allowed).
    pub preliminary: String,
    /// Question similarity: "bm25" (no model), "local:all-minilm-l6-v2",
    /// or "openai:MODEL" (the embeddings API of the run's endpoint).
    pub similarity: String,
    /// How hyde compares the hypothetical answer with pool SQL.
    pub hyde_by: HydeBy,
    /// Keep identifiers in skeletons (DAIL-SQL masks them).
    pub keep_identifiers: bool,
}

impl Default for ExamplesParams {
    fn default() -> Self {
        ExamplesParams {
            selector: Selector::Basic(BasicSelector::None),
            k: 3,
            with_schema: false,
            seed: 0,
            preliminary: "zero-shot".into(),
            similarity: "bm25".into(),
            hyde_by: Default::default(),
            keep_identifiers: false,
        }
    }
}

/// The `examples` step kind (see [`super::STEPS`]).
pub const KIND: StepKind = StepKind {
    name: "examples",
    place: 40,
    needs: &[],
    summary: "choose train examples: fixed, or retrieved by a selector (k, selector, with_schema, preliminary...)",
    resolve: resolved::<ExamplesParams>,
    build,
};

pub fn build(p: &Params, ctx: &BuildContext) -> anyhow::Result<Built> {
    let params: ExamplesParams = parse_params("examples", p)?;
    let mut recorded = serde_json::to_value(&params)?;
    let choice = match params.selector {
        Selector::Basic(BasicSelector::None) => Choice::None,
        selector => {
            let Some(pool) = ctx.resources.pool.clone() else {
                bail!("the examples step shows train examples: the data folder needs train_spider.json")
            };
            match selector {
                Selector::Retrieve(method) => {
                    let preliminary = if method.needs_preliminary() {
                        let spec = (ctx.resolve)(&params.preliminary)?;
                        if spec.params_of("examples").is_some_and(needs_preliminary) {
                            bail!(
                                "the preliminary strategy {} cannot itself need a preliminary answer",
                                spec.name
                            );
                        }
                        let chain = Chain::build(&spec, ctx)?;
                        recorded["preliminary"] = chain.parameters();
                        Some(Arc::new(chain))
                    } else {
                        None
                    };
                    Choice::Retrieve {
                        method,
                        preliminary,
                        similarity: ctx.resources.similarity(&params.similarity)?,
                    }
                }
                _ => Choice::Fixed(fixed_examples(&pool, params.k, params.seed)),
            }
        }
    };
    let pool = ctx.resources.pool.clone();
    Ok(Built::new(Examples { params, choice, pool }, &recorded))
}

fn needs_preliminary(p: &Params) -> bool {
    parse_params::<ExamplesParams>("examples", p)
        .ok()
        .and_then(|e| match e.selector {
            Selector::Retrieve(m) => Some(m.needs_preliminary()),
            Selector::Basic(_) => None,
        })
        .unwrap_or(false)
}

enum Choice {
    None,
    /// Pool indices.
    Fixed(Vec<usize>),
    Retrieve {
        method: Method,
        preliminary: Option<Arc<Chain>>,
        similarity: Arc<Similarity>,
    },
}

struct Examples {
    params: ExamplesParams,
    choice: Choice,
    pool: Option<Arc<ExamplePool>>,
}

impl Examples {
    /// Retrieves pool indices for the question.
    async fn retrieve(
        &self,
        state: &mut QuestionState,
        env: &Env,
        method: Method,
        preliminary: Option<&Chain>,
        similarity: &Similarity,
        pool: &Arc<ExamplePool>,
    ) -> Result<Vec<usize>, LlmError> {
        let hypothesis = match preliminary {
            Some(p) => {
                let mut inner = QuestionState::new(state.example.clone(), state.db.clone());
                p.run(&mut inner, env).await?;
                let unavailable = inner.unavailable.clone();
                let sql = inner.final_sql.clone();
                state.note(format!(
                    "hypothetical answer from {}: {}",
                    p.name(),
                    sql.as_deref().unwrap_or("(none)")
                ));
                state.absorb(inner);
                // No hypothesis because the model could not be reached: the
                // whole question waits for a resume, not a weaker retrieval.
                if let Some(e) = unavailable {
                    return Err(LlmError::Unavailable(e));
                }
                sql
            }
            None => None,
        };
        // Embedding the question is a model call (accounted); BM25 is local.
        let dense = match similarity {
            Similarity::Bm25 => None,
            s => {
                let (scores, usage) = s.scores(pool, &state.example.question, &state.db.schema).await?;
                state.used(&usage);
                Some(scores)
            }
        };
        let (pool, k, options) = (
            pool.clone(),
            self.params.k,
            RankOptions {
                hyde_by: self.params.hyde_by,
                keep_identifiers: self.params.keep_identifiers,
            },
        );
        let seed = self.params.seed ^ state.example.id as u64;
        let exclude = if state.leave_out_same_question {
            pool.left_out_for(&state.example.question, &state.example.db_id)
        } else {
            vec![]
        };
        let (question, schema) = (state.example.question.clone(), state.db.schema.clone());
        // Ranking scans the whole pool: keep it off the async threads.
        Ok(crate::exec::sandbox::off_async(move || {
            let scores = dense.unwrap_or_else(|| lexical_scores(&pool, &question, &schema));
            let query = Query {
                question: &question,
                schema: &schema,
                preliminary: hypothesis.as_deref(),
                seed,
                options,
                exclude: &exclude,
            };
            rank(&pool, method, &query, k, &scores)
        })
        .await)
    }
}

#[async_trait::async_trait]
impl Step for Examples {
    async fn apply(&self, state: &mut QuestionState, env: &Env) -> Result<(), LlmError> {
        let Some(pool) = &self.pool else {
            state.note("no examples");
            return Ok(());
        };
        let ids = match &self.choice {
            Choice::None => vec![],
            Choice::Fixed(ids) if state.leave_out_same_question => {
                let same = pool.left_out_for(&state.example.question, &state.example.db_id);
                ids.iter().copied().filter(|i| !same.contains(i)).collect()
            }
            Choice::Fixed(ids) => ids.clone(),
            Choice::Retrieve {
                method,
                preliminary,
                similarity,
            } => {
                self.retrieve(state, env, *method, preliminary.as_deref(), similarity, pool)
                    .await?
            }
        };
        // Example schemas are rendered as the question's schema is.
        let rows = state.schema.as_ref().map(|s| s.sample_rows).unwrap_or(0);
        let render = |db: &crate::dataset::DbInfo| env.schemas.render(db, rows).to_string();
        state.examples = ids
            .iter()
            .map(|&i| pool.few_shot(i, self.params.with_schema, &render))
            .collect();
        let shown: Vec<String> = ids
            .iter()
            .map(|&i| format!("{} ({})", pool.examples[i].db_id, i))
            .collect();
        state.note(format!("{} examples: {}", ids.len(), shown.join(", ")));
        Ok(())
    }
}

/// The same k examples for every question: from k different databases,
/// cycling through the hardness levels, in a fixed pseudo-random order.
fn fixed_examples(pool: &ExamplePool, k: usize, seed: u64) -> Vec<usize> {
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
            .copied()
            .find(|&i| pool.examples[i].hardness == Some(want) && !used_dbs.contains(&pool.examples[i].db_id));
        level += 1;
        let Some(i) = pick else {
            if level > 4 * (k + 4) {
                break;
            }
            continue;
        };
        used_dbs.insert(pool.examples[i].db_id.clone());
        chosen.push(i);
    }
    chosen
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}
