//! The statistics of comparison tables (src/report/stats.rs) against values
//! computed independently in Python.
//!
//! Every reference value below was printed by `tools/stats_reference.py`
//! (Python 3.11.7, numpy 2.4.6, scipy 1.17.1, statsmodels 0.15.0; see its
//! header for the venv), which calls:
//!
//! - Wilson: `statsmodels.stats.proportion.proportion_confint(k, n,
//!   alpha=0.05, method='wilson')`;
//! - McNemar: `statsmodels.stats.contingency_tables.mcnemar([[0, b], [c, 0]],
//!   exact=True).pvalue`, equal to `scipy.stats.binomtest(b, b + c,
//!   0.5).pvalue`;
//! - clustered SE: `statsmodels.api.OLS(x, ones).fit(cov_type='cluster',
//!   cov_kwds={'groups': g, 'use_correction': False}).bse[0]`, equal to the
//!   numpy formula `sqrt(sum(bincount(g, weights=x - mean)**2)) / n`;
//! - z values and power figures: `scipy.stats.norm.ppf`;
//! - bootstrap: `scipy.stats.bootstrap((d,), np.mean, n_resamples=10000,
//!   method='percentile', rng=np.random.default_rng(0))`, another generator,
//!   so compared only within Monte Carlo error.

use spider_bench::eval::judge::Status;
use spider_bench::report::stats::*;
use spider_bench::run::record::RunRecord;
use spider_bench::run::summary::summarize_run;

fn close(actual: f64, expected: f64, tol: f64) {
    assert!(
        (actual - expected).abs() <= tol,
        "{actual} differs from {expected} by more than {tol}"
    );
}

fn relative(actual: f64, expected: f64, tol: f64) {
    close(actual, expected, tol * expected.abs());
}

/// A row of `n` questions (ids from `first`) in one database each, the
/// first `correct` of them right.
fn row_of(label: &str, first: usize, n: usize, correct: impl Fn(usize) -> bool) -> RowOutcomes {
    let mut row = RowOutcomes::new(label);
    for id in first..first + n {
        row.insert(id, correct(id), format!("db{}", id % 20));
    }
    row
}

/// Two rows on the same `n` questions with `b` right only in the first and
/// `c` only in the second (and `both` right in both).
fn discordant_rows(n: usize, both: usize, b: usize, c: usize) -> [RowOutcomes; 2] {
    let this = row_of("this", 0, n, |i| i < both + b);
    let other = row_of("other", 0, n, |i| i < both || (both + b..both + b + c).contains(&i));
    [this, other]
}

#[test]
fn z_values_match_scipy() {
    // scipy.stats.norm.ppf(0.975), norm.ppf(0.975) + norm.ppf(0.8)
    close(z_two_sided(), 1.959963984540054, 1e-12);
    close(detectable_multiplier(), 2.8015852181129683, 1e-12);
}

#[test]
fn wilson_matches_statsmodels() {
    // (k, n, low, high): proportion_confint(k, n, alpha=0.05, method='wilson')
    let cases = [
        (0, 24, 0.0, 0.13797620467498026),
        (24, 24, 0.8620237953250198, 1.0),
        (5, 24, 0.09244825352851854, 0.40470453253188665),
        (9, 24, 0.21159367559548778, 0.5729003755732573),
        (0, 1034, 2.168404344971009e-19, 0.0037013927204827615),
        (1034, 1034, 0.9962986072795172, 1.0),
        (866, 1034, 0.8137973956796178, 0.8587523411493021),
        (465, 1034, 0.4196301586495331, 0.48016185763956765),
        (0, 1, 0.0, 0.7934506856227627),
        (1, 1, 0.2065493143772374, 1.0),
    ];
    for (k, n, low, high) in cases {
        let i = wilson_interval(k, n).unwrap();
        close(i.low, low, 1e-12);
        close(i.high, high, 1e-12);
    }
    // The bounds are exact at the ends: 0 and 1, never a rounding error away.
    assert_eq!(wilson_interval(0, 1034).unwrap().low, 0.0);
    assert_eq!(wilson_interval(1034, 1034).unwrap().high, 1.0);
}

#[test]
fn wilson_of_no_question_is_none() {
    assert_eq!(wilson_interval(0, 0), None);
    let t = compare_rows(&[RowOutcomes::new("empty")], 0, &StatsOptions::default());
    let row = &t.rows[0];
    assert_eq!((row.n, row.accuracy, row.wilson), (0, None, None));
    assert_eq!(format_accuracy(row), "-");
    assert_eq!(t.detectable, None);
}

#[test]
fn mcnemar_matches_statsmodels() {
    // (b, c, p): mcnemar([[0, b], [c, 0]], exact=True).pvalue
    let cases = [
        (0, 0, 1.0),
        (21, 15, 0.4050322461407632),
        (87, 57, 0.015370514949913762),
        (4, 0, 0.125),
        (1, 0, 1.0),
        (10, 10, 1.0),
        (5, 0, 0.0625),
        (0, 7, 0.015625),
        (120, 80, 0.005685155996750306),
        (300, 200, 8.940066542253288e-06),
    ];
    for (b, c, p) in cases {
        relative(mcnemar_exact_p(b, c), p, 1e-9);
        assert_eq!(mcnemar_exact_p(b, c), mcnemar_exact_p(c, b), "symmetric");
    }
}

#[test]
fn the_issues_mcnemar_examples() {
    // DAIL-SQL's published self-consistency, 83.8 against 83.2: the two
    // differ on 21 against 15 questions, which is no evidence of a
    // difference.
    assert!(mcnemar_exact_p(21, 15) > 0.4);
    // GPT-4 zero-shot against few-shot: 87 against 57, significant.
    assert!(mcnemar_exact_p(87, 57) < 0.05);
    // The local-model note: decompose 4, zero-shot 0, on 24 questions.
    relative(mcnemar_exact_p(4, 0), 0.125, 1e-12);
}

#[test]
fn min_detectable_matches_the_formula() {
    // (z_0.975 + z_0.8) * sqrt((b + c) / n) / sqrt(n), scipy's quantiles
    close(
        paired_min_detectable(87 + 57, 1034).unwrap(),
        0.032513561525488996,
        1e-12,
    );
    close(
        paired_min_detectable(21 + 15, 1034).unwrap(),
        0.016256780762744498,
        1e-12,
    );
    close(paired_min_detectable(4, 24).unwrap(), 0.23346543484274734, 1e-12);
    // (z_0.975 + z_0.8) * sqrt(2 p (1 - p) / n)
    close(unpaired_min_detectable(866, 1034).unwrap(), 0.0454518551397882, 1e-12);
    close(unpaired_min_detectable(5, 24).unwrap(), 0.3284458472710198, 1e-12);
    // Nothing to estimate a variance from.
    assert_eq!(paired_min_detectable(0, 1034), None);
    assert_eq!(unpaired_min_detectable(0, 24), None);
    assert_eq!(unpaired_min_detectable(24, 24), None);
    assert_eq!(unpaired_min_detectable(0, 0), None);
}

/// The clustered data of tools/stats_reference.py: 200 questions, 20
/// databases of 10 (question i in database i / 10); whole databases wrong.
fn clustered_rows(singletons: bool) -> [RowOutcomes; 2] {
    let a = |i: usize| !(i / 10).is_multiple_of(4) && !i.is_multiple_of(5);
    let b = |i: usize| !(i / 10).is_multiple_of(3) && i % 4 != 1;
    let cluster = |i: usize| {
        if singletons {
            format!("q{i}")
        } else {
            format!("db{}", i / 10)
        }
    };
    let mut rows = [RowOutcomes::new("a"), RowOutcomes::new("b")];
    for i in 0..200 {
        rows[0].insert(i, a(i), cluster(i));
        rows[1].insert(i, b(i), cluster(i));
    }
    rows
}

fn clustered_options() -> StatsOptions {
    StatsOptions {
        cluster: true,
        ..StatsOptions::default()
    }
}

#[test]
fn clustered_se_matches_statsmodels() {
    let t = compare_rows(&clustered_rows(false), 0, &clustered_options());
    let (a, b) = (&t.rows[0], &t.rows[1]);
    // OLS(x, ones).fit(cov_type='cluster', use_correction=False).bse[0]
    let ca = a.clustered.unwrap();
    assert_eq!((a.accuracy, ca.clusters), (Some(0.6), 20));
    close(ca.se, 0.07745966692414834, 1e-14);
    close(ca.interval.low, 0.6 - 1.959963984540054 * 0.07745966692414834, 1e-12);
    close(b.clustered.unwrap().se, 0.08090117428072352, 1e-14);
    // The paired difference b - a: the formula on d_i = b_i - a_i (the
    // reference took a - b: same standard error, opposite sign).
    let c = b.vs_baseline.as_ref().unwrap();
    assert_eq!((c.this_only, c.other_only, c.shared), (38, 60, 200));
    close(c.difference.unwrap(), -0.11, 1e-15);
    let cl = c.clustered.as_ref().unwrap();
    close(cl.estimate.se, 0.10556988206870367, 1e-14);
    // About 0 rather than the mean, for the smallest detectable difference.
    close(
        cl.min_detectable.unwrap(),
        2.8015852181129683 * 0.108397416943394,
        1e-12,
    );
    // Unclustered, paired (HC0 on d): 0.04888251221040097.
    close(c.se.unwrap(), 0.04888251221040097, 1e-14);
}

#[test]
fn clustered_se_is_the_plain_one_when_each_question_is_its_own_cluster() {
    let t = compare_rows(&clustered_rows(true), 0, &clustered_options());
    let (a, b) = (&t.rows[0], &t.rows[1]);
    // sqrt(p (1 - p) / n); statsmodels HC0: 0.03464101615137756
    close(a.clustered.unwrap().se, (0.6f64 * 0.4 / 200.0).sqrt(), 1e-15);
    close(a.clustered.unwrap().se, 0.03464101615137756, 1e-15);
    close(b.clustered.unwrap().se, 0.035348267284267265, 1e-15);
    let c = b.vs_baseline.as_ref().unwrap();
    close(c.clustered.as_ref().unwrap().estimate.se, c.se.unwrap(), 1e-15);
    // Correlated within databases, the clustered errors are larger.
    let grouped = compare_rows(&clustered_rows(false), 0, &clustered_options());
    assert!(grouped.rows[0].clustered.unwrap().se > 2.0 * a.clustered.unwrap().se);
    let cg = grouped.rows[1].vs_baseline.as_ref().unwrap();
    assert!(cg.clustered.as_ref().unwrap().estimate.se > 2.0 * c.se.unwrap());
}

#[test]
fn clustered_se_from_totals() {
    // Per-cluster totals give the same as the rows: database i / 10, a_i.
    let a = |i: usize| i64::from(!(i / 10).is_multiple_of(4) && !i.is_multiple_of(5));
    let names: Vec<String> = (0..200).map(|i| format!("db{:02}", i / 10)).collect();
    let totals = cluster_totals((0..200).map(|i| (names[i].as_str(), a(i))));
    assert_eq!(totals.len(), 20);
    close(clustered_se(&totals, 0.6, 200), 0.07745966692414834, 1e-14);
}

#[test]
fn one_database_gives_no_clustered_interval() {
    let mut row = RowOutcomes::new("one");
    for i in 0..10 {
        row.insert(i, i % 2 == 0, "db");
    }
    let t = compare_rows(&[row], 0, &clustered_options());
    assert_eq!(t.rows[0].clustered, None);
}

#[test]
fn clusters_are_off_by_default() {
    let t = compare_rows(&clustered_rows(false), 0, &StatsOptions::default());
    assert_eq!(t.rows[0].clustered, None);
    assert_eq!(t.rows[1].vs_baseline.as_ref().unwrap().clustered, None);
}

#[test]
fn bootstrap_is_deterministic_and_seeded() {
    let a = paired_bootstrap(87, 57, 1034, 10_000, 0).unwrap();
    assert_eq!(
        a,
        paired_bootstrap(87, 57, 1034, 10_000, 0).unwrap(),
        "same seed, same interval"
    );
    // Other seeds: other resamples, so now and then other percentiles
    // (they lie on the grid of means k / 1034, so often the same ones), all
    // within Monte Carlo error.
    let others: Vec<Interval> = (1..6)
        .map(|seed| paired_bootstrap(87, 57, 1034, 10_000, seed).unwrap())
        .collect();
    assert!(others.iter().any(|b| *b != a), "{a:?} {others:?}");
    for b in others {
        close(a.low, b.low, 0.002);
        close(a.high, b.high, 0.002);
    }
    // The same figures wherever the comparison sits in a table.
    let rows = discordant_rows(1034, 780, 87, 57);
    let t = compare_rows(&rows, 0, &StatsOptions::default());
    assert_eq!(
        t.rows[1].vs_baseline.as_ref().unwrap().bootstrap,
        paired_bootstrap(57, 87, 1034, 10_000, 0)
    );
}

#[test]
fn bootstrap_agrees_with_scipy_and_the_standard_error() {
    // (b, c, n, scipy low, scipy high, plug-in se)
    let cases = [
        (
            87,
            57,
            1034,
            0.006769825918762089,
            0.05222437137330754,
            0.011570288303127823,
        ),
        (
            21,
            15,
            1034,
            -0.005802707930367505,
            0.017408123791102514,
            0.005799901300007251,
        ),
    ];
    for (b, c, n, low, high, se) in cases {
        let i = paired_bootstrap(b, c, n, 10_000, 0).unwrap();
        let observed = (b as f64 - c as f64) / n as f64;
        assert!(i.contains(observed), "{i:?} holds {observed}");
        // Monte Carlo error of a 2.5% percentile at B = 10,000 is about
        // 0.05 se; the grid of possible means is 1/n = 0.001.
        close(i.low, low, 0.002);
        close(i.high, high, 0.002);
        close(paired_se(b + c, n, observed), se, 1e-15);
        close((i.high - i.low) / (2.0 * 1.959963984540054), se, 0.05 * se);
    }
}

#[test]
fn bootstrap_edges() {
    assert_eq!(paired_bootstrap(0, 0, 0, 10_000, 0), None);
    assert_eq!(paired_bootstrap(3, 1, 10, 0, 0), None);
    // No discordant question: every resample differs by nothing.
    assert_eq!(
        paired_bootstrap(0, 0, 50, 1000, 0),
        Some(Interval { low: 0.0, high: 0.0 })
    );
    // All discordant one way.
    assert_eq!(
        paired_bootstrap(24, 0, 24, 1000, 0),
        Some(Interval { low: 1.0, high: 1.0 })
    );
}

#[test]
fn cluster_bootstrap_resamples_databases() {
    let t = compare_rows(&clustered_rows(false), 0, &clustered_options());
    let c = t.rows[1].vs_baseline.as_ref().unwrap();
    let cl = c.clustered.as_ref().unwrap();
    let boot = cl.bootstrap.unwrap();
    assert!(boot.contains(c.difference.unwrap()));
    // About as wide as the clustered normal interval, and much wider than
    // the question-level bootstrap.
    let width = boot.high - boot.low;
    let normal = cl.estimate.interval.high - cl.estimate.interval.low;
    assert!(
        (0.7 * normal..1.3 * normal).contains(&width),
        "{width} against {normal}"
    );
    let plain = c.bootstrap.unwrap();
    assert!(width > 1.8 * (plain.high - plain.low));
    // Deterministic.
    let again = compare_rows(&clustered_rows(false), 0, &clustered_options());
    assert_eq!(again, t);
}

#[test]
fn rows_on_different_questions_are_compared_on_the_shared_ones() {
    // a scores questions 0..100, b 50..150; b is right on every one, a on
    // the even ones.
    let a = row_of("a", 0, 100, |i| i % 2 == 0);
    let b = row_of("b", 50, 100, |_| true);
    let t = compare_rows(&[a, b], 0, &StatsOptions::default());
    let (ra, rb) = (&t.rows[0], &t.rows[1]);
    assert_eq!((ra.n, ra.correct, rb.n, rb.correct), (100, 50, 100, 100));
    let c = rb.vs_baseline.as_ref().unwrap();
    assert_eq!((c.shared, c.unshared, c.this_only, c.other_only), (50, 100, 25, 0));
    // On the shared 50, b is right on all and a on 25: +50 points, though
    // the rows' own accuracies differ by 50 points over different questions.
    close(c.difference.unwrap(), 0.5, 1e-15);
    // Exact McNemar for 25 against 0: 2 * 0.5^25 = 2^-24.
    relative(c.mcnemar_p, 5.960464477539063e-08, 1e-9);
    assert_eq!(c.bootstrap, paired_bootstrap(25, 0, 50, 10_000, 0));
    assert!(format_comparison(c).ends_with(" n=50"), "{}", format_comparison(c));
    assert_eq!(t.detectable.as_ref().unwrap().n, 50);
}

#[test]
fn rows_with_nothing_shared() {
    let a = row_of("a", 0, 10, |_| true);
    let b = row_of("b", 10, 10, |_| false);
    let t = compare_rows(&[a, b], 0, &clustered_options());
    let c = t.rows[1].vs_baseline.as_ref().unwrap();
    assert_eq!((c.shared, c.unshared, c.difference, c.bootstrap), (0, 20, None, None));
    assert_eq!((c.mcnemar_p, c.min_detectable, c.clustered.as_ref()), (1.0, None, None));
    assert_eq!(format_comparison(c), "no shared questions");
    // No pair to use: the unpaired figure of the baseline row, which has
    // no variance (all right), so none.
    assert_eq!(t.detectable, None);
}

#[test]
fn the_footnote_figure() {
    // One row: the unpaired fallback.
    let one = [row_of("zero-shot", 0, 1034, |i| i < 866)];
    let t = compare_rows(&one, 0, &StatsOptions::default());
    let d = t.detectable.unwrap();
    close(d.difference, 0.0454518551397882, 1e-12);
    assert_eq!((d.n, d.row.as_str()), (1034, "zero-shot"));
    assert!(matches!(d.method, DetectableMethod::Unpaired { .. }));
    assert_eq!(
        format_detectable(&d),
        "Differences under 4.5 points may go undetected at n = 1034 (80% power, two-sided alpha 0.05; \
         two independent rows at 83.8% accuracy)."
    );
    // Three rows: the largest paired figure against the baseline.
    let [base, many] = discordant_rows(1034, 780, 57, 87);
    let few = discordant_rows(1034, 780, 15, 21)[1].clone();
    let rows = [
        base,
        RowOutcomes {
            label: "few-shot".into(),
            ..many
        },
        few,
    ];
    let t = compare_rows(&rows, 0, &StatsOptions::default());
    let d = t.detectable.unwrap();
    close(d.difference, 0.032513561525488996, 1e-12);
    assert_eq!(d.row, "few-shot");
    assert_eq!(
        format_detectable(&d),
        "Differences under 3.3 points may go undetected at n = 1034 (80% power, two-sided alpha 0.05; \
         few-shot against this, 13.9% of questions discordant)."
    );
    // Clustered: the clustered figure.
    let t = compare_rows(&clustered_rows(false), 0, &clustered_options());
    let d = t.detectable.unwrap();
    close(d.difference, 2.8015852181129683 * 0.108397416943394, 1e-12);
    assert!(matches!(d.method, DetectableMethod::Clustered { clusters: 20, .. }));
}

#[test]
fn terminal_cells() {
    // DAIL-SQL-like: 21 against 15 of 1034.
    let rows = discordant_rows(1034, 850, 21, 15);
    let t = compare_rows(&rows, 0, &StatsOptions::default());
    assert_eq!(format_accuracy(&t.rows[0]), "84.2 [81.9, 86.3]");
    let c = t.rows[1].vs_baseline.as_ref().unwrap();
    assert_eq!(format_comparison(c), "-0.6 [-1.7, 0.6] p=0.41 (15/21)");
    // The Wilson cells of the local-model note (README of
    // results/local-qwen2.5-coder-0.5b-decompose): 9.2 - 40.5, 21.2 - 57.3.
    let t = compare_rows(
        &[
            row_of("zero-shot", 0, 24, |i| i < 5),
            row_of("decompose", 0, 24, |i| i < 9),
        ],
        0,
        &StatsOptions::default(),
    );
    assert_eq!(format_accuracy(&t.rows[0]), "20.8 [9.2, 40.5]");
    assert_eq!(format_accuracy(&t.rows[1]), "37.5 [21.2, 57.3]");
    let c = t.rows[1].vs_previous.as_ref().unwrap();
    assert_eq!(format_comparison(c), "+16.7 [4.2, 33.3] p=0.13 (4/0)");
}

#[test]
fn json_carries_every_figure() {
    let t = compare_rows(&clustered_rows(false), 0, &clustered_options());
    let v = serde_json::to_value(&t).unwrap();
    let c = &v["rows"][1]["vs_baseline"];
    for key in [
        "against_row",
        "against",
        "shared",
        "unshared",
        "this_only",
        "other_only",
        "difference",
        "se",
        "mcnemar_p",
        "bootstrap",
        "min_detectable",
    ] {
        assert!(!c[key].is_null(), "{key} in {c}");
    }
    for key in ["clusters", "se", "interval", "bootstrap", "min_detectable"] {
        assert!(!c["clustered"][key].is_null(), "clustered {key} in {c}");
    }
    assert_eq!(
        v["rows"][0]["wilson"]["low"],
        serde_json::json!(t.rows[0].wilson.unwrap().low)
    );
    assert_eq!(
        v["options"],
        serde_json::json!({"cluster": true, "bootstrap": 10000, "seed": 0})
    );
    assert_eq!(v["detectable"]["method"]["kind"], "clustered");
    assert_eq!(v["confidence"], 0.95);
}

/// A run record as `predictions.jsonl` holds it.
fn record(id: usize, strategy: &str, db: &str, status: Status) -> RunRecord {
    let exec = match status {
        Status::Skipped | Status::GoldError | Status::Error => None,
        s => Some(s == Status::Correct),
    };
    serde_json::from_value(serde_json::json!({
        "id": id, "strategy": strategy, "db_id": db, "question": "q", "gold": "SELECT 1",
        "pred": "SELECT 1", "exec": exec, "exact": exec, "hardness": "easy", "status": status,
        "error": null, "model_failure": null, "tokens_in": 1, "tokens_out": 1, "latency_ms": 1.0,
        "calls": 1, "cost_usd": 0.0, "cache_keys": [], "candidates": []
    }))
    .unwrap()
}

#[test]
fn run_rows_count_what_the_summary_counts() {
    use Status::*;
    let statuses = [
        Correct, Wrong, ExecError, Timeout, Empty, Skipped, GoldError, Error, Correct,
    ];
    let mut records = Vec::new();
    for (i, &s) in statuses.iter().enumerate() {
        records.push(record(i, "a", &format!("db{}", i % 3), s));
        records.push(record(
            i,
            "b",
            &format!("db{}", i % 3),
            statuses[(i + 1) % statuses.len()],
        ));
    }
    let order = vec!["a".to_string(), "b".to_string()];
    let summaries = summarize_run(&records, &order, statuses.len());
    let rows = rows_from_run(&records, &order);
    for (row, s) in rows.iter().zip(&summaries) {
        assert_eq!(row.label, s.strategy);
        assert_eq!((row.n(), row.correct()), (s.count, s.exec_correct));
    }
    assert_eq!(rows[0].by_question[&4].cluster, "db1");
    assert!(!rows[0].by_question.contains_key(&5), "skipped is not scored");
}
