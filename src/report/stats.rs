//! The statistics of a comparison table (issue 11, "Trustworthy tables"):
//! how sure each accuracy is, and whether two rows really differ.
//!
//! The input is one [`RowOutcomes`] per row: which questions the row scored
//! and whether each was right, with the database it asks about (its
//! cluster). It comes from a run ([`RowOutcomes::from_run_records`]) or from
//! `eval --pred` records ([`RowOutcomes::from_eval_records`]) alike.
//! [`compare_rows`] gives every figure the table needs ([`TableStats`],
//! serializable for JSON output), and the `format_*` helpers give the
//! terminal cells.
//!
//! What it computes, at 95% confidence:
//!
//! - Each row's execution accuracy with its Wilson interval
//!   ([`wilson_interval`]): right at small n and at 0% or 100%, where the
//!   normal interval fails (Brown, Cai & DasGupta 2001).
//! - Each row against the row before it and against a baseline row, on the
//!   questions both scored (rows on different question sets are compared
//!   only there, and that shared n is reported): the two discordant counts,
//!   the exact McNemar p-value ([`mcnemar_exact_p`]) and the difference in
//!   accuracy with a paired percentile bootstrap interval
//!   ([`paired_bootstrap`]).
//! - The smallest difference the comparison can detect at 80% power
//!   ([`paired_min_detectable`], or [`unpaired_min_detectable`] where no pair
//!   exists), for the table's footnote ([`TableStats::detectable`]).
//! - With [`StatsOptions::cluster`]: standard errors clustered by database
//!   ([`clustered_se`], Miller 2024), giving a clustered interval for each
//!   accuracy and each difference, and a bootstrap that resamples databases
//!   ([`cluster_bootstrap`]). Spider's questions come in groups that share a
//!   database; a model that misreads one schema misses many of its
//!   questions at once, so the questions are not independent and the plain
//!   intervals are too narrow.
//!
//! Everything is a pure function of its inputs: the bootstraps draw from a
//! ChaCha8 generator seeded by [`StatsOptions::seed`], with integer-only
//! sampling, so the same inputs give the same figures on every run and
//! platform.
//!
//! References:
//! - E. B. Wilson (1927), "Probable inference, the law of succession, and
//!   statistical inference", JASA 22:209-212.
//! - L. D. Brown, T. T. Cai, A. DasGupta (2001), "Interval estimation for a
//!   binomial proportion", Statistical Science 16:101-133.
//! - Q. McNemar (1947), "Note on the sampling error of the difference between
//!   correlated proportions or percentages", Psychometrika 12:153-157; the
//!   exact (conditional binomial) form as in statsmodels'
//!   `mcnemar(exact=True)`; M. W. Fagerland, S. Lydersen, P. Laake (2013),
//!   "The McNemar test for binary matched-pairs data", BMC Medical Research
//!   Methodology 13:91.
//! - B. Efron, R. J. Tibshirani (1993), "An Introduction to the Bootstrap",
//!   ch. 13 (the percentile interval).
//! - E. Miller (2024), "Adding Error Bars to Evals: A Statistical Approach to
//!   Language Model Evaluations", arXiv:2411.00640: clustered standard errors
//!   (section 2 and appendix A), paired differences (section 4), power
//!   analysis (section 5).
//! - A. C. Cameron, D. L. Miller (2015), "A Practitioner's Guide to
//!   Cluster-Robust Inference", Journal of Human Resources 50:317-372 (the
//!   estimator is anti-conservative with few clusters: Spider dev has 20).
//! - R. J. Connor (1987), "Sample size for testing differences in
//!   proportions for the paired-sample design", Biometrics 43:207-211.

use crate::eval::judge::Status;
use crate::eval::score::Record;
use crate::run::record::RunRecord;
use rand::rngs::ChaCha8Rng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::Serialize;
use statrs::distribution::{Binomial, ContinuousCDF, DiscreteCDF, Normal};
use std::collections::{BTreeMap, BTreeSet};

/// The confidence level of every interval.
pub const CONFIDENCE: f64 = 0.95;
/// The power at which [`paired_min_detectable`] and
/// [`unpaired_min_detectable`] are computed (two-sided, alpha = 1 - CONFIDENCE).
pub const POWER: f64 = 0.80;
/// Bootstrap resamples unless told otherwise.
pub const DEFAULT_RESAMPLES: usize = 10_000;

/// A question, as `RunRecord::id` and `eval::score::Record::id` number it.
pub type QuestionId = usize;

/// One row's verdict on one question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// Execution match.
    pub correct: bool,
    /// The group the question belongs to for clustered errors: its database.
    pub cluster: String,
}

/// The scored questions of one table row (a strategy, or a predictions
/// file). Unscored questions (skipped, gold errors, endpoint errors) are
/// left out, as the row's n leaves them out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RowOutcomes {
    pub label: String,
    pub by_question: BTreeMap<QuestionId, Outcome>,
}

impl RowOutcomes {
    pub fn new(label: impl Into<String>) -> RowOutcomes {
        RowOutcomes {
            label: label.into(),
            by_question: BTreeMap::new(),
        }
    }

    /// Adds (or replaces: a later verdict counts) one question's outcome.
    pub fn insert(&mut self, id: QuestionId, correct: bool, cluster: impl Into<String>) {
        let cluster = cluster.into();
        self.by_question.insert(id, Outcome { correct, cluster });
    }

    /// The scored records of `strategy` in a run, clustered by database:
    /// the same questions and verdicts as its `StrategySummary` counts.
    pub fn from_run_records(strategy: &str, records: &[RunRecord]) -> RowOutcomes {
        let verdicts = records
            .iter()
            .filter(|r| r.strategy == strategy)
            .map(|r| (r.id, r.status, r.exec, r.db_id.as_str()));
        RowOutcomes::from_verdicts(strategy, verdicts)
    }

    /// The scored records of `eval --out`, clustered by database.
    pub fn from_eval_records(label: &str, records: &[Record]) -> RowOutcomes {
        let verdicts = records.iter().map(|r| (r.id, r.status, r.exec, r.db_id.as_str()));
        RowOutcomes::from_verdicts(label, verdicts)
    }

    /// (id, status, execution verdict, database) of each question; the
    /// scored ones count.
    fn from_verdicts<'a>(
        label: &str,
        verdicts: impl Iterator<Item = (QuestionId, Status, Option<bool>, &'a str)>,
    ) -> RowOutcomes {
        let mut row = RowOutcomes::new(label);
        for (id, _, exec, db) in verdicts.filter(|v| v.1.is_scored()) {
            row.insert(id, exec == Some(true), db);
        }
        row
    }

    /// Scored questions.
    pub fn n(&self) -> usize {
        self.by_question.len()
    }

    /// Questions answered correctly.
    pub fn correct(&self) -> usize {
        self.by_question.values().filter(|o| o.correct).count()
    }

    /// The totals of each cluster (database), for [`clustered_se`].
    fn cluster_totals(&self) -> Vec<ClusterTotal> {
        cluster_totals(
            self.by_question
                .values()
                .map(|o| (o.cluster.as_str(), i64::from(o.correct))),
        )
    }
}

/// One row per run strategy, in `order`.
pub fn rows_from_run(records: &[RunRecord], order: &[String]) -> Vec<RowOutcomes> {
    order
        .iter()
        .map(|s| RowOutcomes::from_run_records(s, records))
        .collect()
}

/// How [`compare_rows`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StatsOptions {
    /// Also give errors clustered by database (`--cluster db`).
    pub cluster: bool,
    /// Bootstrap resamples (B); 0 leaves the bootstrap intervals out.
    pub bootstrap: usize,
    /// Seed of the bootstrap generator.
    pub seed: u64,
}

impl Default for StatsOptions {
    fn default() -> StatsOptions {
        StatsOptions {
            cluster: false,
            bootstrap: DEFAULT_RESAMPLES,
            seed: 0,
        }
    }
}

/// A confidence interval, as fractions (0.45 is 45%).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

impl Interval {
    pub fn contains(&self, x: f64) -> bool {
        self.low <= x && x <= self.high
    }

    /// `center` plus or minus the 95% normal quantile of standard errors.
    fn normal(center: f64, se: f64) -> Interval {
        let z = z_two_sided();
        Interval {
            low: center - z * se,
            high: center + z * se,
        }
    }
}

/// An estimate's clustered standard error and the normal interval it gives.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ClusteredEstimate {
    /// Clusters (databases) among the questions.
    pub clusters: usize,
    pub se: f64,
    /// Estimate plus or minus z_0.975 clustered standard errors.
    pub interval: Interval,
}

/// Every figure of one table row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RowStats {
    pub label: String,
    /// Scored questions.
    pub n: usize,
    pub correct: usize,
    /// `correct / n`; `None` when the row scored nothing.
    pub accuracy: Option<f64>,
    /// 95% Wilson interval of the accuracy; `None` when n = 0.
    pub wilson: Option<Interval>,
    /// With `cluster`: the accuracy's interval clustered by database
    /// (`None` also with fewer than 2 databases).
    pub clustered: Option<ClusteredEstimate>,
    /// Against the row before it (none for the first row).
    pub vs_previous: Option<Comparison>,
    /// Against the baseline row (none for the baseline itself).
    pub vs_baseline: Option<Comparison>,
}

/// One row against another, on the questions both scored. Differences are
/// this row's accuracy minus the other's, as fractions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// The other row: its index and label.
    pub against_row: usize,
    pub against: String,
    /// Questions both rows scored: the n of every figure below.
    pub shared: usize,
    /// Questions only one of the two rows scored (left out here).
    pub unshared: usize,
    /// Right in this row and wrong in the other.
    pub this_only: usize,
    /// Wrong in this row and right in the other.
    pub other_only: usize,
    /// `(this_only - other_only) / shared`; `None` with nothing shared.
    pub difference: Option<f64>,
    /// Standard error of the difference (paired, plug-in).
    pub se: Option<f64>,
    /// Exact two-sided McNemar p-value.
    pub mcnemar_p: f64,
    /// Paired percentile bootstrap 95% interval of the difference.
    pub bootstrap: Option<Interval>,
    /// The smallest true difference this pairing detects with 80% power
    /// ([`paired_min_detectable`]); `None` with no discordant question.
    pub min_detectable: Option<f64>,
    /// With `cluster`: the difference's errors clustered by database.
    pub clustered: Option<ClusteredDifference>,
}

/// A difference's errors when questions are clustered by database.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusteredDifference {
    /// The clustered standard error and the normal interval.
    #[serde(flatten)]
    pub estimate: ClusteredEstimate,
    /// Percentile interval of a bootstrap that resamples databases.
    pub bootstrap: Option<Interval>,
    /// [`paired_min_detectable`] with the clustered standard error.
    pub min_detectable: Option<f64>,
}

/// The footnote figure: differences smaller than this can go unnoticed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detectable {
    /// The smallest true difference in accuracy (a fraction) detected with
    /// 80% power at two-sided alpha 0.05.
    pub difference: f64,
    /// The n it holds for.
    pub n: usize,
    /// Which row it comes from.
    pub row: String,
    pub method: DetectableMethod,
}

/// How [`Detectable::difference`] was computed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DetectableMethod {
    /// Paired against the baseline, from the observed discordance rate
    /// ([`paired_min_detectable`]).
    Paired { against: String, discordance: f64 },
    /// Paired, with standard errors clustered by database.
    Clustered { against: String, clusters: usize },
    /// No pair to use: two independent rows of this n and accuracy
    /// ([`unpaired_min_detectable`]).
    Unpaired { accuracy: f64 },
}

/// Every figure of a table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableStats {
    pub confidence: f64,
    pub options: StatsOptions,
    /// Index of the baseline row.
    pub baseline: usize,
    pub rows: Vec<RowStats>,
    /// The footnote figure: the largest of the baseline comparisons'
    /// smallest detectable differences (clustered ones with `cluster`), so
    /// that every comparison with the baseline detects a difference of this
    /// size; the unpaired figure of the baseline row where none exists.
    pub detectable: Option<Detectable>,
}

/// The statistics of a table: each row, and each row against the row before
/// it and against row `baseline`. Panics if `baseline` is not a row (unless
/// there are no rows).
pub fn compare_rows(rows: &[RowOutcomes], baseline: usize, options: &StatsOptions) -> TableStats {
    assert!(
        rows.is_empty() || baseline < rows.len(),
        "baseline row {baseline} of {}",
        rows.len()
    );
    let comparisons = comparisons(rows, baseline, options);
    let take = |pair: (usize, usize)| comparisons.get(&pair).cloned();
    let stats: Vec<RowStats> = rows
        .iter()
        .enumerate()
        .map(|(i, row)| RowStats {
            vs_previous: i.checked_sub(1).and_then(|j| take((i, j))),
            vs_baseline: take((i, baseline)),
            ..row_stats(row, options)
        })
        .collect();
    let detectable = detectable(&stats, baseline);
    TableStats {
        confidence: CONFIDENCE,
        options: *options,
        baseline,
        rows: stats,
        detectable,
    }
}

/// Each pair the table shows, computed once (the row after the baseline
/// compares with it twice), in parallel: each comparison has its own
/// generator, so the figures do not depend on the threads.
fn comparisons(rows: &[RowOutcomes], baseline: usize, options: &StatsOptions) -> BTreeMap<(usize, usize), Comparison> {
    let pairs: BTreeSet<(usize, usize)> = (0..rows.len())
        .flat_map(|i| [i.checked_sub(1), (i != baseline).then_some(baseline)].map(|j| j.map(|j| (i, j))))
        .flatten()
        .collect();
    pairs
        .into_par_iter()
        .map(|(i, j)| ((i, j), compare(&rows[i], &rows[j], j, options)))
        .collect()
}

/// A row's own figures (comparisons left empty).
fn row_stats(row: &RowOutcomes, options: &StatsOptions) -> RowStats {
    let (n, correct) = (row.n(), row.correct());
    let accuracy = (n > 0).then(|| correct as f64 / n as f64);
    let clustered = match (options.cluster, accuracy) {
        (true, Some(acc)) => clustered_estimate(&row.cluster_totals(), acc, n),
        _ => None,
    };
    RowStats {
        label: row.label.clone(),
        n,
        correct,
        accuracy,
        wilson: wilson_interval(correct, n),
        clustered,
        vs_previous: None,
        vs_baseline: None,
    }
}

/// The clustered standard error of an estimate and its normal interval;
/// `None` with fewer than 2 clusters (one cluster has no spread to see).
fn clustered_estimate(totals: &[ClusterTotal], estimate: f64, n: usize) -> Option<ClusteredEstimate> {
    if totals.len() < 2 {
        return None;
    }
    let se = clustered_se(totals, estimate, n);
    Some(ClusteredEstimate {
        clusters: totals.len(),
        se,
        interval: Interval::normal(estimate, se),
    })
}

/// The per-question outcomes two rows share.
struct Pairing {
    shared: usize,
    unshared: usize,
    this_only: usize,
    other_only: usize,
    /// Per cluster (this row's cluster): the sum of the paired differences
    /// d_i = this_i - other_i (each -1, 0 or 1) and the question count.
    by_cluster: Vec<ClusterTotal>,
}

fn pairing(this: &RowOutcomes, other: &RowOutcomes) -> Pairing {
    let mut diffs = Vec::new();
    let (mut this_only, mut other_only) = (0, 0);
    for (id, o) in &this.by_question {
        let Some(p) = other.by_question.get(id) else { continue };
        let d = i64::from(o.correct) - i64::from(p.correct);
        this_only += usize::from(d == 1);
        other_only += usize::from(d == -1);
        diffs.push((o.cluster.as_str(), d));
    }
    let shared = diffs.len();
    Pairing {
        shared,
        unshared: this.n() + other.n() - 2 * shared,
        this_only,
        other_only,
        by_cluster: cluster_totals(diffs),
    }
}

/// `this` against `other` (row `against_row`).
fn compare(this: &RowOutcomes, other: &RowOutcomes, against_row: usize, options: &StatsOptions) -> Comparison {
    let p = pairing(this, other);
    let difference = (p.shared > 0).then(|| (p.this_only as f64 - p.other_only as f64) / p.shared as f64);
    Comparison {
        against_row,
        against: other.label.clone(),
        shared: p.shared,
        unshared: p.unshared,
        this_only: p.this_only,
        other_only: p.other_only,
        difference,
        se: difference.map(|d| paired_se(p.this_only + p.other_only, p.shared, d)),
        mcnemar_p: mcnemar_exact_p(p.this_only, p.other_only),
        bootstrap: paired_bootstrap(p.this_only, p.other_only, p.shared, options.bootstrap, options.seed),
        min_detectable: paired_min_detectable(p.this_only + p.other_only, p.shared),
        clustered: match (options.cluster, difference) {
            (true, Some(d)) => clustered_difference(&p, d, options),
            _ => None,
        },
    }
}

fn clustered_difference(p: &Pairing, difference: f64, options: &StatsOptions) -> Option<ClusteredDifference> {
    let estimate = clustered_estimate(&p.by_cluster, difference, p.shared)?;
    // Under the null the differences center on 0, not on their mean.
    let null_se = clustered_se(&p.by_cluster, 0.0, p.shared);
    Some(ClusteredDifference {
        estimate,
        bootstrap: cluster_bootstrap(&p.by_cluster, options.bootstrap, options.seed),
        min_detectable: (null_se > 0.0).then(|| detectable_multiplier() * null_se),
    })
}

/// The footnote figure (see [`TableStats::detectable`]).
fn detectable(stats: &[RowStats], baseline: usize) -> Option<Detectable> {
    let paired = stats
        .iter()
        .filter_map(|row| paired_detectable(row, row.vs_baseline.as_ref()?))
        .max_by(|a, b| a.difference.total_cmp(&b.difference));
    paired.or_else(|| {
        let row = stats.get(baseline)?;
        Some(Detectable {
            difference: unpaired_min_detectable(row.correct, row.n)?,
            n: row.n,
            row: row.label.clone(),
            method: DetectableMethod::Unpaired {
                accuracy: row.accuracy?,
            },
        })
    })
}

/// One baseline comparison's smallest detectable difference: clustered when
/// computed (with `--cluster db`), else paired.
fn paired_detectable(row: &RowStats, c: &Comparison) -> Option<Detectable> {
    let (difference, method) = match c.clustered.as_ref() {
        Some(cl) => (
            cl.min_detectable?,
            DetectableMethod::Clustered {
                against: c.against.clone(),
                clusters: cl.estimate.clusters,
            },
        ),
        None => (
            c.min_detectable?,
            DetectableMethod::Paired {
                against: c.against.clone(),
                discordance: (c.this_only + c.other_only) as f64 / c.shared as f64,
            },
        ),
    };
    Some(Detectable {
        difference,
        n: c.shared,
        row: row.label.clone(),
        method,
    })
}

// ---------------------------------------------------------------------------
// The formulas.

/// z_{1 - alpha/2} for two-sided alpha = 1 - CONFIDENCE: 1.959964.
pub fn z_two_sided() -> f64 {
    Normal::standard().inverse_cdf(1.0 - (1.0 - CONFIDENCE) / 2.0)
}

/// z_{1 - alpha/2} + z_{POWER}: 2.801585, the number of standard errors a
/// true difference must span to be detected with 80% power.
pub fn detectable_multiplier() -> f64 {
    z_two_sided() + Normal::standard().inverse_cdf(POWER)
}

/// The 95% Wilson score interval of `correct` out of `n`:
///
/// ```text
/// center = (k + z²/2) / (n + z²)
/// half   = z / (n + z²) · sqrt(k (n - k) / n + z²/4)
/// ```
///
/// with z = z_0.975. Unlike the normal interval it stays inside [0, 1] and
/// keeps its coverage at small n and at k = 0 or k = n (Wilson 1927; Brown,
/// Cai & DasGupta 2001). `None` when n = 0: no question, no estimate.
pub fn wilson_interval(correct: usize, n: usize) -> Option<Interval> {
    if n == 0 {
        return None;
    }
    let (k, n, z) = (correct as f64, n as f64, z_two_sided());
    let z2 = z * z;
    let center = (k + z2 / 2.0) / (n + z2);
    let half = z / (n + z2) * (k * (n - k) / n + z2 / 4.0).sqrt();
    Some(Interval {
        low: if correct == 0 { 0.0 } else { (center - half).max(0.0) },
        high: if k == n { 1.0 } else { (center + half).min(1.0) },
    })
}

/// The exact two-sided McNemar p-value for `this_only` = b and `other_only`
/// = c discordant questions: under the null each discordant question is
/// equally likely to go either way, so given b + c, b is Binomial(b + c,
/// 1/2) and
///
/// ```text
/// p = min(1, 2 · P[X <= min(b, c)]),  X ~ Binomial(b + c, 1/2)
/// ```
///
/// (McNemar 1947; as statsmodels' `mcnemar(exact=True)` and scipy's
/// `binomtest(b, b + c)`). Questions both rows got right, or both wrong, say
/// nothing about which is better. b = c = 0 gives 1.
pub fn mcnemar_exact_p(this_only: usize, other_only: usize) -> f64 {
    let n = (this_only + other_only) as u64;
    if n == 0 {
        return 1.0;
    }
    let tail = Binomial::new(0.5, n)
        .expect("p = 0.5 is valid")
        .cdf(this_only.min(other_only) as u64);
    (2.0 * tail).min(1.0)
}

/// The plug-in standard error of a paired difference `difference` = d̄
/// with `discordant` = b + c of `n` questions differing:
/// sqrt(Σ (d_i - d̄)²) / n = sqrt(((b + c)/n - d̄²) / n), the mean's
/// standard error with each d_i in {-1, 0, 1} (Miller 2024, section 4).
pub fn paired_se(discordant: usize, n: usize, difference: f64) -> f64 {
    let n = n as f64;
    ((discordant as f64 / n - difference * difference).max(0.0) / n).sqrt()
}

/// The smallest true difference in accuracy a paired comparison of `n`
/// questions, `discordant` = b + c of them discordant, detects with 80%
/// power at two-sided alpha 0.05:
///
/// ```text
/// MDE = (z_0.975 + z_0.80) · sqrt(p_disc / n),   p_disc = (b + c) / n
/// ```
///
/// Why: the paired difference d̄ has variance Var(d)/n with
/// Var(d) = p_disc - δ²; a test at alpha detects δ with power 1 - β when
/// δ = (z_{1-α/2} + z_{1-β}) · SE (Miller 2024, section 5). Taking the
/// variance under the null (δ = 0, so Var(d) = E(d²) = p_disc) gives the
/// formula. Solving Connor's (1987) sample-size equation
/// n = (z_a·sqrt(ψ) + z_b·sqrt(ψ - δ²))² / δ² for δ instead gives a value a
/// little smaller (3.248 against 3.251 points at b + c = 144 of 1034, 22.2
/// against 23.3 at 4 of 24): this one errs on the side of caution. `None`
/// with no discordant question (no variance to estimate).
pub fn paired_min_detectable(discordant: usize, n: usize) -> Option<f64> {
    (discordant > 0 && n > 0).then(|| detectable_multiplier() * (discordant as f64).sqrt() / n as f64)
}

/// The smallest true difference between two independent rows of `n`
/// questions each at accuracy p = correct / n that a test detects with 80%
/// power at two-sided alpha 0.05: (z_0.975 + z_0.80) · sqrt(2 p (1 - p) / n)
/// (Miller 2024, section 5, with equal variances). The fallback when no
/// pair exists; a paired comparison of the same questions detects less.
/// `None` when n = 0 or p is 0 or 1 (no variance to estimate).
pub fn unpaired_min_detectable(correct: usize, n: usize) -> Option<f64> {
    if n == 0 || correct == 0 || correct == n {
        return None;
    }
    let p = correct as f64 / n as f64;
    Some(detectable_multiplier() * (2.0 * p * (1.0 - p) / n as f64).sqrt())
}

/// One cluster's questions: the sum of their values (1/0 for correct, or
/// -1/0/1 for a paired difference) and how many there are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterTotal {
    pub sum: i64,
    pub count: usize,
}

/// The per-cluster totals of (cluster, value) pairs, in cluster order.
pub fn cluster_totals<'a>(values: impl IntoIterator<Item = (&'a str, i64)>) -> Vec<ClusterTotal> {
    let mut by_cluster: BTreeMap<&str, ClusterTotal> = BTreeMap::new();
    for (cluster, x) in values {
        let t = by_cluster.entry(cluster).or_insert(ClusterTotal { sum: 0, count: 0 });
        t.sum += x;
        t.count += 1;
    }
    by_cluster.into_values().collect()
}

/// The clustered standard error of the mean of `n` values about `center`
/// (their mean, or 0 under a null):
///
/// ```text
/// SE = sqrt( Σ_c ( Σ_{i in c} (x_i - center) )² ) / n
///    = sqrt( Σ_c (S_c - n_c · center)² ) / n
/// ```
///
/// Miller (2024), appendix A (section 2 writes it as the unclustered
/// variance plus the within-cluster cross terms): the sandwich estimator of
/// a mean, as statsmodels' cluster-robust OLS on a constant without the
/// small-sample correction (`use_correction=False`). With every question
/// its own cluster it is the plug-in standard error sqrt(p (1 - p) / n); it
/// grows when values move together within clusters. For a paired
/// difference the values are d_i = this_i - other_i (Miller 2024,
/// section 4). With few clusters it is somewhat too small (Cameron & Miller
/// 2015), which [`cluster_bootstrap`] shares.
pub fn clustered_se(totals: &[ClusterTotal], center: f64, n: usize) -> f64 {
    let squares: f64 = totals
        .iter()
        .map(|t| (t.sum as f64 - t.count as f64 * center).powi(2))
        .sum();
    squares.sqrt() / n as f64
}

/// Uniform draws for a bootstrap of n items (n > 0): each from 16 random
/// bits when n is small (four per 64-bit output of the generator), else
/// from 32. A draw r is uniform on 0..limit, where limit = n · width is the
/// largest multiple of n that fits (draws at or above it are redrawn: 394
/// of 65,536, 0.6%, at n = 1034), and its item is r / width, so that
/// "item < k" is just "r < k · width": no division on the hot path. Integer
/// arithmetic only, so the same on every platform.
///
/// Each bootstrap's generator starts from the seed, so its interval depends
/// on its own figures only, not on the table around it.
struct UniformDraws {
    rng: ChaCha8Rng,
    bits: u32,
    mask: u64,
    /// floor(2^bits / n): the draws that make one item.
    width: u64,
    /// n · width.
    limit: u64,
    word: u64,
    chunks_left: u32,
}

impl UniformDraws {
    fn new(seed: u64, n: u32) -> UniformDraws {
        assert!(n > 0, "a sample from nothing");
        let bits = if n <= 1 << 12 { 16 } else { 32 };
        let width = (1u64 << bits) / u64::from(n);
        UniformDraws {
            rng: ChaCha8Rng::seed_from_u64(seed),
            bits,
            mask: (1 << bits) - 1,
            width,
            limit: u64::from(n) * width,
            word: 0,
            chunks_left: 0,
        }
    }

    /// The next `bits` random bits.
    fn chunk(&mut self) -> u64 {
        if self.chunks_left == 0 {
            self.word = self.rng.next_u64();
            self.chunks_left = 64 / self.bits;
        }
        let x = self.word & self.mask;
        self.word >>= self.bits;
        self.chunks_left -= 1;
        x
    }

    /// A draw, uniform on 0..limit.
    fn draw(&mut self) -> u64 {
        loop {
            let r = self.chunk();
            if r < self.limit {
                return r;
            }
        }
    }

    /// An item, uniform on 0..n.
    fn item(&mut self) -> usize {
        (self.draw() / self.width) as usize
    }
}

/// The `q` quantile of sorted values, interpolated linearly between order
/// statistics (numpy's default `percentile`).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let h = (sorted.len() - 1) as f64 * q;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// The central 95% of sorted resampled statistics.
fn percentile_interval(sorted: &[f64]) -> Interval {
    let tail = (1.0 - CONFIDENCE) / 2.0;
    Interval {
        low: quantile(sorted, tail),
        high: quantile(sorted, 1.0 - tail),
    }
}

/// The paired percentile bootstrap 95% interval of the difference in
/// accuracy on `n` shared questions, `this_only` = b right only in this row
/// and `other_only` = c only in the other: `resamples` times, draw n
/// questions with replacement and take the mean of their d_i; the interval
/// is the 2.5% and 97.5% percentiles (Efron & Tibshirani 1993, ch. 13).
///
/// The d_i are b ones, c minus ones and zeros, and a resample's mean only
/// depends on how many of its draws are of each kind, so the questions are
/// laid out as [+1 × b, -1 × c, 0 × rest] and a draw is two comparisons of
/// 16 random bits (`UniformDraws`), no division and no per-question
/// state. `None` when n = 0 or `resamples` = 0.
pub fn paired_bootstrap(
    this_only: usize,
    other_only: usize,
    n: usize,
    resamples: usize,
    seed: u64,
) -> Option<Interval> {
    if n == 0 || resamples == 0 {
        return None;
    }
    let mut draws = UniformDraws::new(seed, u32::try_from(n).expect("under 2^32 questions"));
    // Items below b are the +1s, the next c the -1s.
    let (plus, minus) = (this_only as u64 * draws.width, other_only as u64 * draws.width);
    let mut sums: Vec<i32> = (0..resamples)
        .map(|_| {
            (0..n).fold(0i32, |sum, _| {
                let r = draws.draw();
                sum + i32::from(r < plus) - i32::from(r.wrapping_sub(plus) < minus)
            })
        })
        .collect();
    sums.sort_unstable();
    let means: Vec<f64> = sums.iter().map(|&s| f64::from(s) / n as f64).collect();
    Some(percentile_interval(&means))
}

/// The cluster bootstrap 95% interval of a mean (of paired differences,
/// or of correct answers): `resamples` times, draw as many clusters as
/// there are with replacement, and take the mean of all their questions
/// (Σ sums / Σ counts); the interval is the 2.5% and 97.5% percentiles.
/// Resampling whole databases keeps the correlation within each. `None`
/// with fewer than 2 clusters or `resamples` = 0.
pub fn cluster_bootstrap(totals: &[ClusterTotal], resamples: usize, seed: u64) -> Option<Interval> {
    if totals.len() < 2 || resamples == 0 {
        return None;
    }
    let g = u32::try_from(totals.len()).expect("under 2^32 clusters");
    let mut draws = UniformDraws::new(seed, g);
    let mut means: Vec<f64> = (0..resamples)
        .map(|_| {
            let (mut sum, mut count) = (0i64, 0usize);
            for _ in 0..g {
                let t = totals[draws.item()];
                sum += t.sum;
                count += t.count;
            }
            sum as f64 / count as f64
        })
        .collect();
    means.sort_unstable_by(f64::total_cmp);
    Some(percentile_interval(&means))
}

// ---------------------------------------------------------------------------
// Terminal cells.

/// A fraction as percent with one decimal: 0.45 -> "45.0".
fn pct(x: f64) -> String {
    format!("{:.1}", 100.0 * x)
}

/// A signed fraction as percentage points: 0.03 -> "+3.0".
fn points(x: f64) -> String {
    format!("{:+.1}", 100.0 * x)
}

fn bracket(i: &Interval) -> String {
    format!("[{}, {}]", pct(i.low), pct(i.high))
}

/// A p-value to two significant figures' worth: "p=0.27", "p=0.015",
/// "p<0.001".
pub fn format_p(p: f64) -> String {
    match p {
        p if p < 0.001 => "p<0.001".into(),
        p if p < 0.1 => format!("p={p:.3}"),
        p => format!("p={p:.2}"),
    }
}

/// A row's accuracy cell: "45.0 [35.6, 54.8]" (percent, 95% interval:
/// clustered when computed, else Wilson); "-" for a row with no question.
pub fn format_accuracy(row: &RowStats) -> String {
    let Some(acc) = row.accuracy else { return "-".into() };
    let interval = row.clustered.map(|c| c.interval).or(row.wilson);
    match interval {
        Some(i) => format!("{} {}", pct(acc), bracket(&i)),
        None => pct(acc),
    }
}

/// A comparison cell: "-0.6 [-1.7, 0.6] p=0.41 (15/21)": the difference in
/// points, its 95% interval (clustered when computed, else the paired
/// bootstrap's), the exact McNemar p-value and the discordant counts (right
/// only here / right only there); " n=950" follows when the two rows share
/// only part of their questions.
pub fn format_comparison(c: &Comparison) -> String {
    let Some(d) = c.difference else {
        return "no shared questions".into();
    };
    let interval = c.clustered.as_ref().map(|cl| cl.estimate.interval).or(c.bootstrap);
    let mut cell = points(d);
    if let Some(i) = interval {
        cell += &format!(" {}", bracket(&i));
    }
    cell += &format!(" {} ({}/{})", format_p(c.mcnemar_p), c.this_only, c.other_only);
    if c.unshared > 0 {
        cell += &format!(" n={}", c.shared);
    }
    cell
}

/// The footnote: "Differences under 3.3 points may go undetected at n = 1034
/// (80% power, two-sided alpha 0.05; few-shot against this, 13.9% of
/// questions discordant)."
pub fn format_detectable(d: &Detectable) -> String {
    let how = match &d.method {
        DetectableMethod::Paired { against, discordance } => {
            format!(
                "{} against {against}, {}% of questions discordant",
                d.row,
                pct(*discordance)
            )
        }
        DetectableMethod::Clustered { against, clusters } => {
            format!("{} against {against}, errors clustered by {clusters} databases", d.row)
        }
        DetectableMethod::Unpaired { accuracy } => {
            format!("two independent rows at {}% accuracy", pct(*accuracy))
        }
    };
    format!(
        "Differences under {} points may go undetected at n = {} (80% power, two-sided alpha 0.05; {how}).",
        pct(d.difference),
        d.n
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(label: &str, outcomes: &[(usize, bool, &str)]) -> RowOutcomes {
        let mut r = RowOutcomes::new(label);
        for &(id, ok, db) in outcomes {
            r.insert(id, ok, db);
        }
        r
    }

    #[test]
    fn draws_cover_the_range_evenly() {
        // 16-bit draws (n <= 4096) and 32-bit ones: each eighth of 0..n
        // gets an eighth of 400,000 draws, within 1% (about 2.4 standard
        // deviations: it holds for the fixed seed 7, not for any seed).
        for n in [7u32, 1034, 5000, 100_000] {
            let mut draws = UniformDraws::new(7, n);
            let mut bands = [0usize; 8];
            for _ in 0..400_000 {
                let i = draws.item() as u64;
                assert!(i < u64::from(n));
                bands[(i * 8 / u64::from(n)) as usize] += 1;
            }
            for (band, count) in bands.iter().enumerate() {
                let lo = (band as u64 * u64::from(n)).div_ceil(8);
                let hi = ((band as u64 + 1) * u64::from(n)).div_ceil(8);
                let expected = 400_000.0 * (hi - lo) as f64 / f64::from(n);
                assert!(
                    (*count as f64 - expected).abs() < 0.01 * 400_000.0 / 8.0,
                    "{n}: {bands:?}"
                );
            }
        }
    }

    #[test]
    fn draws_at_or_above_the_largest_multiple_are_redrawn() {
        // 2^16 = 3 · 21845 + 1: the one draw 65535 is redrawn.
        let draws = UniformDraws::new(0, 3);
        assert_eq!((draws.bits, draws.width, draws.limit), (16, 21845, 65535));
        let draws = UniformDraws::new(0, 1 << 12);
        assert_eq!((draws.bits, draws.limit), (16, 1 << 16));
        let draws = UniformDraws::new(0, (1 << 12) + 1);
        assert_eq!(draws.bits, 32);
    }

    #[test]
    fn quantile_interpolates_like_numpy() {
        // numpy.percentile([1, 2, 3, 4], [2.5, 97.5]) = [1.075, 3.925]
        let i = percentile_interval(&[1.0, 2.0, 3.0, 4.0]);
        assert!((i.low - 1.075).abs() < 1e-12 && (i.high - 3.925).abs() < 1e-12, "{i:?}");
    }

    #[test]
    fn the_row_after_the_baseline_has_one_comparison_twice() {
        let a = row("a", &[(0, true, "x"), (1, false, "x")]);
        let b = row("b", &[(0, true, "x"), (1, true, "x")]);
        let t = compare_rows(&[a, b], 0, &StatsOptions::default());
        assert_eq!(t.rows[1].vs_previous, t.rows[1].vs_baseline);
        assert!(t.rows[0].vs_previous.is_none() && t.rows[0].vs_baseline.is_none());
    }

    #[test]
    fn a_baseline_in_the_middle() {
        let rows: Vec<RowOutcomes> = ["a", "b", "c"]
            .iter()
            .map(|l| row(l, &[(0, true, "x"), (1, false, "y")]))
            .collect();
        let t = compare_rows(&rows, 1, &StatsOptions::default());
        assert_eq!(t.rows[0].vs_baseline.as_ref().unwrap().against, "b");
        assert!(t.rows[1].vs_baseline.is_none());
        assert_eq!(t.rows[1].vs_previous.as_ref().unwrap().against, "a");
        assert_eq!(t.rows[2].vs_previous.as_ref().unwrap().against_row, 1);
    }

    #[test]
    fn no_rows_no_figures() {
        let t = compare_rows(&[], 0, &StatsOptions::default());
        assert!(t.rows.is_empty() && t.detectable.is_none());
    }

    #[test]
    fn cells() {
        assert_eq!(format_p(0.2734), "p=0.27");
        assert_eq!(format_p(0.015370514949913762), "p=0.015");
        assert_eq!(format_p(8.9e-6), "p<0.001");
        assert_eq!(format_p(1.0), "p=1.00");
        let r = row("a", &[(0, true, "x"), (1, false, "x")]);
        let t = compare_rows(&[r], 0, &StatsOptions::default());
        assert_eq!(format_accuracy(&t.rows[0]), "50.0 [9.5, 90.5]");
    }
}
