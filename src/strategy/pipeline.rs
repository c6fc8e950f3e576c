//! The standard strategy: stages composed from a [`StrategyConfig`].

use super::config::{SelectorKind, StrategyConfig};
use super::examples::{ExamplePool, ExampleSelector, FixedExamples, NoExamples, Selected};
use super::extract::extract_sql;
use super::prompt::{build_messages, repair_message};
use super::schema::{CreateTables, SchemaRenderer};
use super::vote::{fingerprint, majority};
use super::{Candidate, Env, Prediction, Question, Strategy, execute_candidate};
use crate::exec::sandbox::Outcome;
use crate::llm::{ChatRequest, Completion, GenParams, LlmError, Message};
use anyhow::{Result, bail};
use std::sync::Arc;

/// Retrieves pool examples for each question (see [`crate::retrieval`]),
/// first asking a cheaper strategy for a hypothetical answer when the method
/// needs one.
pub struct RetrievalSelector {
    method: crate::retrieval::select::Method,
    k: usize,
    with_schema: bool,
    pool: Arc<ExamplePool>,
    preliminary: Option<Arc<dyn Strategy>>,
    schema: Arc<dyn SchemaRenderer>,
    similarity: Arc<crate::retrieval::select::Similarity>,
    options: crate::retrieval::select::RankOptions,
    /// Mixed with the question id for `random`.
    seed: u64,
}

#[async_trait::async_trait]
impl ExampleSelector for RetrievalSelector {
    async fn select(&self, q: &Question<'_>, env: &Env) -> Result<Selected, LlmError> {
        use crate::retrieval::select::{Query, Similarity, lexical_scores, rank};
        let (hypothesis, mut completions) = match &self.preliminary {
            Some(p) => {
                let answer = p.predict(q, env).await?;
                (answer.sql, answer.completions)
            }
            None => (None, vec![]),
        };
        // Embedding the question is a model call (accounted); BM25 is local.
        let dense = match self.similarity.as_ref() {
            Similarity::Bm25 => None,
            similarity => {
                let (scores, usage) = similarity.scores(&self.pool, &q.example.question, &q.db.schema).await?;
                completions.extend(usage);
                Some(scores)
            }
        };
        let (pool, method, k, seed, options) = (
            self.pool.clone(),
            self.method,
            self.k,
            self.seed ^ q.example.id as u64,
            self.options,
        );
        let (question, schema) = (q.example.question.clone(), q.db.schema.clone());
        // Ranking scans the whole pool: keep it off the async threads.
        let ids = crate::exec::sandbox::off_async(move || {
            let scores = dense.unwrap_or_else(|| lexical_scores(&pool, &question, &schema));
            let query = Query {
                question: &question,
                schema: &schema,
                preliminary: hypothesis.as_deref(),
                seed,
                options,
            };
            rank(&pool, method, &query, k, &scores)
        })
        .await;
        let render = |db: &super::DbInfo| self.schema.render(db).to_string();
        let examples = ids
            .into_iter()
            .map(|i| self.pool.few_shot(i, self.with_schema, &render))
            .collect();
        Ok(Selected { examples, completions })
    }
}

/// What building strategies may need besides their configuration.
#[derive(Default, Clone)]
pub struct Resources {
    /// Train examples, for strategies that show examples.
    pub pool: Option<Arc<ExamplePool>>,
    /// Dense similarities over the pool, by their `similarity` name.
    pub dense: std::collections::BTreeMap<String, Arc<crate::retrieval::select::Similarity>>,
}

impl Resources {
    /// The similarity named `name` ("bm25", or a prepared embedding model).
    pub fn similarity(&self, name: &str) -> Result<Arc<crate::retrieval::select::Similarity>> {
        if name == "bm25" {
            return Ok(Arc::new(crate::retrieval::select::Similarity::Bm25));
        }
        match self.dense.get(name) {
            Some(s) => Ok(s.clone()),
            None => bail!("similarity {name:?} is not prepared: use \"bm25\" or \"openai:MODEL\""),
        }
    }
}

pub struct Pipeline {
    config: StrategyConfig,
    schema: Arc<dyn SchemaRenderer>,
    examples: Box<dyn ExampleSelector>,
}

impl Pipeline {
    pub fn new(config: StrategyConfig, resources: &Resources) -> Result<Pipeline> {
        let schema: Arc<dyn SchemaRenderer> = Arc::new(CreateTables::new(config.schema.sample_rows));
        let examples: Box<dyn ExampleSelector> = if config.examples.selector == SelectorKind::NONE {
            Box::new(NoExamples)
        } else {
            let Some(pool) = &resources.pool else {
                bail!(
                    "strategy {} shows train examples: the data folder needs train_spider.json",
                    config.name
                )
            };
            match config.examples.selector.method() {
                None => {
                    let render = |db: &super::DbInfo| schema.render(db).to_string();
                    let e = &config.examples;
                    Box::new(FixedExamples::new(pool, e.k, e.with_schema, e.seed, render))
                }
                Some(method) => {
                    let preliminary = if method.needs_preliminary() {
                        let c = super::config::from_rungs(&config.examples.preliminary)?;
                        if c.examples.selector.method().is_some_and(|m| m.needs_preliminary()) {
                            bail!(
                                "the preliminary strategy of {} cannot itself need a preliminary answer",
                                config.name
                            );
                        }
                        Some(Arc::new(Pipeline::new(c, resources)?) as Arc<dyn Strategy>)
                    } else {
                        None
                    };
                    Box::new(RetrievalSelector {
                        method,
                        k: config.examples.k,
                        with_schema: config.examples.with_schema,
                        pool: pool.clone(),
                        preliminary,
                        schema: schema.clone(),
                        similarity: resources.similarity(&config.examples.similarity)?,
                        seed: config.examples.seed,
                        options: crate::retrieval::select::RankOptions {
                            hyde_by: config.examples.hyde_by,
                            keep_identifiers: config.examples.keep_identifiers,
                        },
                    })
                }
            }
        };
        Ok(Pipeline {
            config,
            schema,
            examples,
        })
    }

    fn params(&self) -> GenParams {
        let g = &self.config.generation;
        GenParams {
            temperature: g.temperature,
            max_tokens: g.max_tokens,
            seed: g.seed,
        }
    }

    /// Extracts, runs and repairs one sample; returns the candidate and the
    /// fingerprint of its result when it ran.
    async fn refine(
        &self,
        q: &Question<'_>,
        env: &Env,
        conversation: &[Message],
        first: Completion,
        used: &mut Vec<Completion>,
    ) -> Result<(Candidate, Option<String>), LlmError> {
        let mut history = conversation.to_vec();
        let mut answer = first.text.clone();
        used.push(first);
        let mut repairs = 0;
        loop {
            let sql = extract_sql(&answer);
            let run = match &sql {
                Some(s) => execute_candidate(q.db, s, &env.limits).await,
                None => None,
            };
            let problem = match (&sql, &run) {
                (None, _) => Some("no SQL query was found in the answer".to_string()),
                (Some(_), Some(Outcome::Error(e))) => Some(format!("error: {e}")),
                (Some(_), Some(Outcome::Timeout)) => Some("the query timed out".to_string()),
                (Some(_), Some(Outcome::Rows(r))) if r.is_empty() && self.config.repair.on_empty => {
                    Some("the query returned no rows".to_string())
                }
                _ => None,
            };
            let outcome = match &run {
                Some(Outcome::Rows(r)) => format!("{} rows", r.len()),
                Some(Outcome::TooManyRows) => "too many rows".to_string(),
                Some(Outcome::Error(e)) => format!("error: {e}"),
                Some(Outcome::Timeout) => "timeout".to_string(),
                None if sql.is_none() => "no SQL in the answer".to_string(),
                None => "not run (no database)".to_string(),
            };
            let can_retry = repairs < self.config.repair.rounds && (sql.is_none() || q.db.sqlite.is_some());
            let Some(problem) = problem.filter(|_| can_retry) else {
                let ordered = sql.as_deref().is_some_and(|s| s.to_lowercase().contains("order by"));
                let fp = match &run {
                    Some(Outcome::Rows(rows)) => Some(fingerprint(rows, ordered)),
                    _ => None,
                };
                return Ok((Candidate { sql, repairs, outcome }, fp));
            };
            history.push(Message::assistant(answer.clone()));
            history.push(repair_message(&problem));
            let req = ChatRequest {
                messages: history.clone(),
                params: self.params(),
                n: 1,
            };
            let next = match env.model.complete(&req).await {
                Ok(mut c) => c.remove(0),
                Err(LlmError::Request(_)) => {
                    // The repair call failed: keep the answer we have.
                    return Ok((Candidate { sql, repairs, outcome }, None));
                }
                Err(fatal) => return Err(fatal),
            };
            answer = next.text.clone();
            used.push(next);
            repairs += 1;
        }
    }
}

#[async_trait::async_trait]
impl Strategy for Pipeline {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn description(&self) -> &str {
        &self.config.description
    }

    fn parameters(&self) -> serde_json::Value {
        serde_json::to_value(&self.config).expect("config serializes")
    }

    async fn predict(&self, q: &Question<'_>, env: &Env) -> Result<Prediction, LlmError> {
        let schema = self.schema.render(q.db);
        let selected = match self.examples.select(q, env).await {
            Ok(e) => e,
            Err(LlmError::Request(e)) => {
                return Ok(Prediction {
                    failure: Some(format!("example selection: {e}")),
                    ..Default::default()
                });
            }
            Err(fatal) => return Err(fatal),
        };
        let conversation = build_messages(
            self.config.prompt.style,
            &schema,
            &selected.examples,
            &q.example.question,
        );
        let n = self.config.generation.samples.max(1);
        let req = ChatRequest {
            messages: conversation.clone(),
            params: self.params(),
            n,
        };
        let samples = match env.model.complete(&req).await {
            Ok(s) => s,
            Err(LlmError::Request(e)) => {
                return Ok(Prediction {
                    failure: Some(format!("model: {e}")),
                    ..Default::default()
                });
            }
            Err(fatal) => return Err(fatal),
        };
        let mut used = selected.completions;
        let mut candidates = Vec::new();
        let mut fingerprints = Vec::new();
        for sample in samples {
            let (c, fp) = self.refine(q, env, &conversation, sample, &mut used).await?;
            candidates.push(c);
            fingerprints.push(fp);
        }
        let has_sql: Vec<bool> = candidates.iter().map(|c| c.sql.is_some()).collect();
        let winner = if candidates.len() == 1 {
            Some(0)
        } else {
            majority(&fingerprints, &has_sql)
        };
        let sql = winner.and_then(|i| candidates[i].sql.clone());
        let failure = sql.is_none().then(|| "no SQL query in the model's answer".to_string());
        Ok(Prediction {
            sql,
            failure,
            completions: used,
            candidates,
        })
    }
}
