//! Retrieval measured on its own, apart from generation: for each question,
//! how the examples a selector returns compare with the gold query.

use super::pool::ExamplePool;
use super::select::{Method, Query, rank};
use super::skeleton::{similarity, skeleton};
use crate::dataset::Example;
use crate::dataset::schema::SchemaSet;
use crate::eval::exact::{Hardness, hardness};
use crate::eval::parse::{ParseSchema, get_sql};
use crate::table::{Format, render_grid};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;

/// Sums over questions (divide by `questions`). JSON gives the shares and
/// means (see [`TotalsJson`]), not these sums.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    pub questions: usize,
    /// Sum of the share of retrieved examples whose skeleton equals the gold's.
    pub precision: f64,
    /// Questions with at least one such example.
    pub hits: usize,
    /// Sum of the mean skeleton similarity of the retrieved examples.
    pub skeleton_similarity: f64,
    /// Sum of the share of retrieved examples of the gold's hardness.
    pub same_hardness: f64,
}

impl Totals {
    fn add(&mut self, o: &Totals) {
        self.questions += o.questions;
        self.precision += o.precision;
        self.hits += o.hits;
        self.skeleton_similarity += o.skeleton_similarity;
        self.same_hardness += o.same_hardness;
    }
    fn mean(&self, x: f64) -> f64 {
        if self.questions == 0 {
            0.0
        } else {
            x / self.questions as f64
        }
    }
}

/// What [`Totals`] means, as JSON writes it: counts under count names,
/// shares (0 to 1) and means under theirs.
#[derive(Serialize)]
struct TotalsJson {
    questions: usize,
    /// Mean over questions of the share of retrieved examples whose
    /// skeleton equals the gold's (P@k).
    precision_at_k: f64,
    /// Questions with at least one such example.
    hit_questions: usize,
    /// `hit_questions / questions` (hit@k).
    hit_rate: f64,
    /// Mean skeleton similarity of the retrieved examples to the gold.
    mean_skeleton_similarity: f64,
    /// Mean share of retrieved examples of the gold's hardness.
    same_hardness_share: f64,
}

impl Serialize for Totals {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        TotalsJson {
            questions: self.questions,
            precision_at_k: self.mean(self.precision),
            hit_questions: self.hits,
            hit_rate: self.mean(self.hits as f64),
            mean_skeleton_similarity: self.mean(self.skeleton_similarity),
            same_hardness_share: self.mean(self.same_hardness),
        }
        .serialize(s)
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SelectorScore {
    pub selector: String,
    pub k: usize,
    /// Wall time of ranking every question.
    pub seconds: f64,
    pub all: Totals,
    pub by_hardness: BTreeMap<Hardness, Totals>,
}

/// Scores one question's retrieved examples.
fn score_one(pool: &ExamplePool, retrieved: &[usize], gold: &str, level: Option<Hardness>) -> Totals {
    let target = skeleton(gold, true); // precision is always judged on DAIL's masked skeleton
    let n = retrieved.len().max(1) as f64;
    let equal = retrieved
        .iter()
        .filter(|&&i| pool.examples[i].skeleton == target)
        .count();
    Totals {
        questions: 1,
        precision: equal as f64 / n,
        hits: usize::from(equal > 0),
        skeleton_similarity: retrieved
            .iter()
            .map(|&i| similarity(&target, &pool.examples[i].skeleton))
            .sum::<f64>()
            / n,
        same_hardness: retrieved
            .iter()
            .filter(|&&i| level.is_some() && pool.examples[i].hardness == level)
            .count() as f64
            / n,
    }
}

/// What to evaluate: the selectors, how many examples each returns, and the
/// options of the SQL-based ones.
pub struct Selectors<'a> {
    pub methods: &'a [Method],
    pub k: usize,
    pub options: super::select::RankOptions,
}

/// Evaluates each selector on every question. `preliminary(question)` is the
/// hypothetical answer given to selectors that need one; `dense_scores` holds
/// embedding scores by question id (BM25 where absent).
pub fn evaluate(
    pool: &ExamplePool,
    questions: &[Example],
    schemas: &SchemaSet,
    selectors: &Selectors<'_>,
    preliminary: &dyn Fn(&Example) -> Option<String>,
    dense_scores: Option<&std::collections::HashMap<usize, super::select::Scores>>,
) -> Vec<SelectorScore> {
    let Selectors { methods, k, options } = *selectors;
    let prepared: Vec<(&Example, Option<Hardness>, Option<String>)> = questions
        .iter()
        .filter(|e| schemas.get(&e.db_id).is_some())
        .map(|e| {
            let schema = schemas.get(&e.db_id).expect("filtered");
            let level = get_sql(&ParseSchema::from_db(schema), &e.gold)
                .ok()
                .map(|s| hardness(&s));
            (e, level, preliminary(e))
        })
        .collect();
    methods
        .iter()
        .map(|&method| {
            let start = std::time::Instant::now();
            let per_question: Vec<(Option<Hardness>, Totals)> = prepared
                .par_iter()
                .map(|(e, level, prelim)| {
                    let q = Query {
                        question: &e.question,
                        schema: schemas.get(&e.db_id).expect("filtered"),
                        preliminary: prelim.as_deref(),
                        seed: e.id as u64,
                        options,
                        exclude: &[],
                    };
                    let lexical;
                    let scores = match dense_scores.and_then(|d| d.get(&e.id)) {
                        Some(s) => s,
                        None => {
                            lexical = super::select::lexical_scores(pool, &e.question, q.schema);
                            &lexical
                        }
                    };
                    (
                        *level,
                        score_one(pool, &rank(pool, method, &q, k, scores), &e.gold, *level),
                    )
                })
                .collect();
            let mut s = SelectorScore {
                selector: method.name().into(),
                k,
                seconds: start.elapsed().as_secs_f64(),
                all: Totals::default(),
                by_hardness: BTreeMap::new(),
            };
            for (level, t) in &per_question {
                s.all.add(t);
                if let Some(h) = level {
                    s.by_hardness.entry(*h).or_default().add(t);
                }
            }
            s
        })
        .collect()
}

const HEADER: [&str; 10] = [
    "selector",
    "P@k",
    "hit@k",
    "skeleton sim",
    "same hardness",
    "P@k easy",
    "P@k medium",
    "P@k hard",
    "P@k extra",
    "seconds",
];

fn row(s: &SelectorScore) -> Vec<String> {
    let pct = |x: f64| format!("{:.1}", 100.0 * x);
    let mut r = vec![
        s.selector.clone(),
        pct(s.all.mean(s.all.precision)),
        pct(s.all.mean(s.all.hits as f64)),
        format!("{:.3}", s.all.mean(s.all.skeleton_similarity)),
        pct(s.all.mean(s.all.same_hardness)),
    ];
    for h in Hardness::ALL {
        r.push(
            s.by_hardness
                .get(&h)
                .map(|t| pct(t.mean(t.precision)))
                .unwrap_or_else(|| "-".into()),
        );
    }
    r.push(format!("{:.3}", s.seconds));
    r
}

pub fn render(scores: &[SelectorScore], format: Format) -> String {
    let k = scores.first().map(|s| s.k).unwrap_or(0);
    let note = format!(
        "k = {k}. P@k: share of retrieved examples whose SQL skeleton equals the gold's; hit@k: questions with at least one; \
         skeleton sim: mean similarity to the gold skeleton; same hardness: share of the gold's hardness (all %).\n"
    );
    match format {
        Format::Json => serde_json::to_string_pretty(scores).expect("serializes") + "\n",
        _ => render_grid(&HEADER, &scores.iter().map(row).collect::<Vec<_>>(), format, &note),
    }
}
