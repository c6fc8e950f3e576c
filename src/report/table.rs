//! The comparison table of `run`, `report` and `eval --pred NAME=FILE ...`:
//! one row per strategy or predictions file, each with its execution
//! accuracy and 95% interval, and compared with the row before it and with
//! a baseline row (discordant counts, exact McNemar p, paired bootstrap
//! interval of the difference), in the terminal, Markdown, CSV and JSON.
//! Every figure comes from the rows' records ([`super::stats`]).

use super::rows::Row;
use super::stats::{
    Comparison, RowStats, StatsOptions, TableStats, compare_rows, format_accuracy, format_comparison, format_detectable,
};
use crate::eval::exact::Hardness;
use crate::run::summary::StrategySummary;
use crate::table::{Format, render_grid};
use anyhow::{Result, bail};
use serde::Serialize;
use std::collections::BTreeSet;

/// A comparison table: the rows' counts and their statistics.
#[derive(Debug, Clone, Serialize)]
pub struct ComparisonTable {
    /// The counts of each row (hardness, tokens, cost, failures).
    pub rows: Vec<StrategySummary>,
    /// Intervals and paired comparisons, row by row (same order).
    pub stats: TableStats,
    /// Per row: whether it scored other questions than the baseline row,
    /// so that its comparisons hold on the shared questions only.
    pub other_questions: Vec<bool>,
}

/// The table of `rows`, compared with the row labelled `baseline` (the
/// first row when `None`).
pub fn build(rows: &[Row], baseline: Option<&str>, options: &StatsOptions) -> Result<ComparisonTable> {
    let baseline = baseline_index(rows, baseline)?;
    let outcomes: Vec<_> = rows.iter().map(Row::outcomes).collect();
    let stats = compare_rows(&outcomes, baseline, options);
    let question_sets: Vec<BTreeSet<usize>> = outcomes
        .iter()
        .map(|o| o.by_question.keys().copied().collect())
        .collect();
    let other_questions = question_sets
        .iter()
        .map(|set| question_sets.get(baseline).is_some_and(|b| b != set))
        .collect();
    Ok(ComparisonTable {
        rows: rows.iter().map(Row::summary).collect(),
        stats,
        other_questions,
    })
}

/// The row `--baseline NAME` names: its label, else a strategy name that
/// one row alone has.
fn baseline_index(rows: &[Row], name: Option<&str>) -> Result<usize> {
    let Some(name) = name else { return Ok(0) };
    if let Some(i) = rows.iter().position(|r| r.label == name) {
        return Ok(i);
    }
    let by_strategy: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].strategy == name).collect();
    match by_strategy[..] {
        [i] => Ok(i),
        [] => bail!(
            "--baseline {name}: no such row; the rows are: {}",
            rows.iter().map(|r| r.label.as_str()).collect::<Vec<_>>().join(", ")
        ),
        _ => bail!(
            "--baseline {name}: several rows have that strategy; name one of: {}",
            by_strategy
                .iter()
                .map(|&i| rows[i].label.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The table in `format`.
pub fn render(table: &ComparisonTable, format: Format) -> String {
    match format {
        Format::Json => serde_json::to_string_pretty(table).expect("the table serializes") + "\n",
        Format::Csv => csv(table),
        Format::Table | Format::Markdown => grid(table, format),
    }
}

const HEADER: [&str; 17] = [
    "strategy",
    "n",
    "EX [95% CI]",
    "vs previous",
    "vs baseline",
    "easy",
    "medium",
    "hard",
    "extra",
    "EM",
    "tokens/q",
    "$/q",
    "no SQL",
    "exec err",
    "timeout",
    "no answer",
    "loops cut",
];

fn pct(x: f64) -> String {
    format!("{:.1}", 100.0 * x)
}

fn grid_row(table: &ComparisonTable, i: usize) -> Vec<String> {
    let (s, st) = (&table.rows[i], &table.stats.rows[i]);
    // The n of an incomplete row says so: what is scored, and what is not yet.
    let mut n = match s.errors + s.missing {
        0 => s.count.to_string(),
        pending => format!("{} (+{pending} pending)", s.count),
    };
    if table.other_questions[i] {
        n.push_str(" †");
    }
    let baseline_cell = if i == table.stats.baseline {
        "baseline".to_string()
    } else {
        comparison_cell(st.vs_baseline.as_ref())
    };
    let mut r = vec![
        s.strategy.clone(),
        n,
        format_accuracy(st),
        comparison_cell(st.vs_previous.as_ref()),
        baseline_cell,
    ];
    for h in Hardness::ALL {
        r.push(match (s.level_accuracy(h), s.by_hardness.get(&h)) {
            (Some(acc), Some(c)) => format!("{} ({})", pct(acc), c.count),
            _ => "-".into(),
        });
    }
    r.push(pct(s.exact_accuracy()));
    r.push(format!("{:.0}", s.per_question((s.tokens_in + s.tokens_out) as f64)));
    r.push(format!("{:.5}", s.per_question(s.cost_usd)));
    r.push(s.no_answer.to_string());
    r.push(s.exec_errors.to_string());
    r.push(s.timeouts.to_string());
    r.push(s.errors.to_string());
    r.push(s.loops_cut.to_string());
    r
}

/// A comparison's cell: [`format_comparison`], marked ‡ where the interval
/// and the exact test disagree; "-" for none.
pub fn comparison_cell(c: Option<&Comparison>) -> String {
    match c {
        None => "-".into(),
        Some(c) if disagrees(c) => format!("{} ‡", format_comparison(c)),
        Some(c) => format_comparison(c),
    }
}

/// Whether the interval and the exact test tell different stories: one
/// excludes no difference and the other does not reject it. With few
/// discordant questions the percentile bootstrap is too narrow (4 against
/// 0 of 24 gives an interval above 0, while the exact p is 0.125).
pub fn disagrees(c: &Comparison) -> bool {
    let interval = c.clustered.as_ref().map(|cl| cl.estimate.interval).or(c.bootstrap);
    let Some(i) = interval else { return false };
    let excludes_zero = i.low > 0.0 || i.high < 0.0;
    excludes_zero != (c.mcnemar_p < 0.05)
}

/// The notes under the table: what the columns mean, the smallest
/// detectable difference, rows on other questions, pending records.
fn notes(table: &ComparisonTable) -> String {
    let mut lines = vec![
        format!(
            "EX: execution accuracy (%) with its 95% interval ({}); by hardness: EX (questions); EM: exact-set \
             match (%).",
            if table.stats.options.cluster {
                "errors clustered by database"
            } else {
                "Wilson"
            }
        ),
        format!(
            "vs previous / vs baseline: difference in EX points [{}], exact McNemar p, (right only in this row / \
             right only in the other), on the questions both rows scored.",
            if table.stats.options.cluster {
                "95% interval, errors clustered by database"
            } else {
                "paired bootstrap 95% interval"
            }
        ),
    ];
    if let Some(d) = &table.stats.detectable {
        lines.push(format_detectable(d));
    }
    if table.rows.iter().any(|s| s.loops_cut > 0) {
        lines.push(
            "loops cut: answers in which the local model repeated one block of tokens until the repetition rule \
             stopped it (src/llm/repetition.rs)."
                .to_string(),
        );
    }
    if table.other_questions.iter().any(|&o| o) {
        let baseline = &table.rows[table.stats.baseline].strategy;
        lines.push(format!(
            "† scored on other questions than the baseline ({baseline}): compared only on the questions both rows \
             scored (n= in the cell)."
        ));
    }
    let compared = table
        .stats
        .rows
        .iter()
        .flat_map(|r| [r.vs_previous.as_ref(), r.vs_baseline.as_ref()]);
    if compared.flatten().any(disagrees) {
        lines.push(
            "‡ the interval and the exact test disagree (few discordant questions, where the interval is too \
             narrow): go by the exact McNemar p."
                .to_string(),
        );
    }
    let errors: usize = table.rows.iter().map(|s| s.errors).sum();
    let missing: usize = table.rows.iter().map(|s| s.missing).sum();
    if errors + missing > 0 {
        lines.push(format!(
            "INCOMPLETE: {errors} questions got no answer from the model (endpoint errors, not scored) and {missing} \
             have no record yet; `spider-bench run ... --resume --out DIR` asks for them."
        ));
    }
    lines.join("\n") + "\n"
}

/// Columns about model calls, left out of a table whose rows made none
/// (prediction files): zeros there would read as measured.
const MODEL_COLUMNS: [&str; 3] = ["tokens/q", "$/q", "no answer"];

fn grid(table: &ComparisonTable, format: Format) -> String {
    let called = table
        .rows
        .iter()
        .any(|s| s.calls > 0 || s.tokens_in + s.tokens_out > 0 || s.errors > 0);
    let cut = table.rows.iter().any(|s| s.loops_cut > 0);
    let keep: Vec<bool> = HEADER
        .iter()
        .map(|h| (called || !MODEL_COLUMNS.contains(h)) && (cut || *h != "loops cut"))
        .collect();
    let pick = |cells: Vec<String>| -> Vec<String> {
        cells
            .into_iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|(c, _)| c)
            .collect()
    };
    let header: Vec<&str> = HEADER.iter().zip(&keep).filter(|(_, k)| **k).map(|(h, _)| *h).collect();
    let rows: Vec<Vec<String>> = (0..table.rows.len()).map(|i| pick(grid_row(table, i))).collect();
    render_grid(&header, &rows, format, &notes(table))
}

/// One CSV line per row, every figure in its own column: percent points
/// for accuracies and differences (4 decimals), empty where there is none.
/// The csv crate quotes labels that hold commas or quotes.
fn csv(table: &ComparisonTable) -> String {
    let mut header: Vec<String> = [
        "strategy",
        "n",
        "pending",
        "ex_correct",
        "ex_pct",
        "ex_low_pct",
        "ex_high_pct",
        "ex_interval",
    ]
    .map(String::from)
    .to_vec();
    for h in Hardness::ALL {
        header.push(format!("{}_n", h.as_str()));
        header.push(format!("{}_pct", h.as_str()));
    }
    header.extend(
        [
            "em_correct",
            "em_pct",
            "tokens_per_question",
            "cost_per_question_usd",
            "cost_usd",
            "no_sql",
            "exec_errors",
            "timeouts",
            "no_answer",
            "loops_cut",
            "other_questions",
        ]
        .map(String::from),
    );
    for prefix in ["prev_", "base_"] {
        header.extend(COMPARISON_COLUMNS.iter().map(|c| format!("{prefix}{c}")));
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(&header).expect("writes to memory");
    for (i, s) in table.rows.iter().enumerate() {
        w.write_record(csv_row(s, &table.stats.rows[i], table.other_questions[i]))
            .expect("writes to memory");
    }
    String::from_utf8(w.into_inner().expect("writes to memory")).expect("CSV of UTF-8 text")
}

const COMPARISON_COLUMNS: [&str; 8] = [
    "against",
    "shared",
    "this_only",
    "other_only",
    "diff_pct",
    "diff_low_pct",
    "diff_high_pct",
    "mcnemar_p",
];

/// Percent points, rounded to 4 decimals.
fn points(x: f64) -> String {
    format!("{}", (x * 1e6).round() / 1e4)
}

fn opt<T: ToString>(x: Option<T>) -> String {
    x.map(|v| v.to_string()).unwrap_or_default()
}

fn csv_row(s: &StrategySummary, st: &RowStats, other_questions: bool) -> Vec<String> {
    let interval = st.clustered.map(|c| c.interval).or(st.wilson);
    let mut r = vec![
        s.strategy.clone(),
        s.count.to_string(),
        (s.errors + s.missing).to_string(),
        s.exec_correct.to_string(),
        opt(st.accuracy.map(points)),
        opt(interval.map(|i| points(i.low))),
        opt(interval.map(|i| points(i.high))),
        if st.clustered.is_some() { "clustered" } else { "wilson" }.to_string(),
    ];
    for h in Hardness::ALL {
        r.push(s.by_hardness.get(&h).map_or(0, |c| c.count).to_string());
        r.push(opt(s.level_accuracy(h).map(points)));
    }
    r.extend([
        s.exact_correct.to_string(),
        opt((s.count > 0).then(|| points(s.exact_accuracy()))),
        s.per_question((s.tokens_in + s.tokens_out) as f64).to_string(),
        s.per_question(s.cost_usd).to_string(),
        s.cost_usd.to_string(),
        s.no_answer.to_string(),
        s.exec_errors.to_string(),
        s.timeouts.to_string(),
        s.errors.to_string(),
        s.loops_cut.to_string(),
        other_questions.to_string(),
    ]);
    for c in [st.vs_previous.as_ref(), st.vs_baseline.as_ref()] {
        r.extend(csv_comparison(c));
    }
    r
}

fn csv_comparison(c: Option<&Comparison>) -> Vec<String> {
    let Some(c) = c else {
        return vec![String::new(); COMPARISON_COLUMNS.len()];
    };
    let interval = c.clustered.as_ref().map(|cl| cl.estimate.interval).or(c.bootstrap);
    vec![
        c.against.clone(),
        c.shared.to_string(),
        c.this_only.to_string(),
        c.other_only.to_string(),
        opt(c.difference.map(points)),
        opt(interval.map(|i| points(i.low))),
        opt(interval.map(|i| points(i.high))),
        c.mcnemar_p.to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::record::RunRecord;

    /// A row whose question `id` is right where `right(id)`, over `ids`.
    fn row(label: &str, ids: std::ops::Range<usize>, right: impl Fn(usize) -> bool) -> Row {
        let records: Vec<RunRecord> = ids
            .map(|id| {
                let ok = right(id);
                serde_json::from_value(serde_json::json!({
                    "id": id, "strategy": label, "db_id": format!("db{}", id % 4), "question": "q",
                    "gold": "SELECT 1", "pred": "SELECT 1", "exec": ok, "exact": ok, "hardness": "easy",
                    "status": if ok { "correct" } else { "wrong" }, "error": null, "model_failure": null,
                    "tokens_in": 10, "tokens_out": 5, "latency_ms": 1.0, "calls": 1, "cost_usd": 0.0,
                    "cache_keys": [], "candidates": []
                }))
                .unwrap()
            })
            .collect();
        Row {
            label: label.into(),
            strategy: label.into(),
            source: "run".into(),
            questions: 24,
            records,
        }
    }

    #[test]
    fn few_discordant_questions_flag_the_interval_against_the_exact_test() {
        // 4 against 0 of 24 (the published decompose table): the bootstrap
        // interval is above 0, the exact p is 0.125 (2 / 2^4, the exact binomial sum).
        let rows = [row("a", 0..24, |i| i < 5), row("b", 0..24, |i| i < 9)];
        let table = build(&rows, None, &StatsOptions::default()).unwrap();
        let c = table.stats.rows[1].vs_baseline.as_ref().unwrap();
        assert_eq!((c.this_only, c.other_only), (4, 0));
        assert!((c.mcnemar_p - 0.125).abs() < 1e-12);
        assert!(disagrees(c));
        let text = render(&table, Format::Markdown);
        assert!(
            text.contains("(4/0) ‡") && text.contains("go by the exact McNemar p"),
            "{text}"
        );
    }

    #[test]
    fn the_baseline_is_named_by_label_or_strategy_and_other_question_sets_are_marked() {
        let rows = [
            row("zero-shot", 0..24, |i| i % 2 == 0),
            row("few-shot", 0..24, |i| i % 3 == 0),
            row("cot", 0..12, |i| i % 2 == 0),
        ];
        let table = build(&rows, Some("few-shot"), &StatsOptions::default()).unwrap();
        assert_eq!(table.stats.baseline, 1);
        assert_eq!(table.other_questions, [false, false, true]);
        let cot = table.stats.rows[2].vs_baseline.as_ref().unwrap();
        assert_eq!((cot.shared, cot.unshared), (12, 12));
        let text = render(&table, Format::Table);
        assert!(text.contains("12 (+12 pending) †") && text.contains("n=12"), "{text}");
        let err = build(&rows, Some("nope"), &StatsOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("zero-shot, few-shot, cot"), "{err}");
    }

    #[test]
    fn answers_cut_as_loops_are_counted_and_shown_only_when_there_are_some() {
        let mut rows = [row("a", 0..24, |i| i < 5), row("b", 0..24, |i| i < 9)];
        let plain = render(&build(&rows, None, &StatsOptions::default()).unwrap(), Format::Markdown);
        assert!(!plain.contains("loops cut"), "{plain}");
        rows[1].records[3].loops_cut = 2;
        rows[1].records[4].loops_cut = 1;
        let table = build(&rows, None, &StatsOptions::default()).unwrap();
        assert_eq!((table.rows[0].loops_cut, table.rows[1].loops_cut), (0, 2));
        let text = render(&table, Format::Markdown);
        assert!(
            text.contains("| loops cut |") && text.contains("repetition rule"),
            "{text}"
        );
        assert!(text.lines().nth(3).unwrap().ends_with("| 2 |"), "{text}");
    }

    #[test]
    fn csv_has_one_parsable_line_per_row_with_every_figure() {
        let rows = [row("a, b", 0..24, |i| i < 12), row("c \"d\"", 0..24, |i| i < 18)];
        let text = render(&build(&rows, None, &StatsOptions::default()).unwrap(), Format::Csv);
        let mut reader = ::csv::Reader::from_reader(text.as_bytes());
        let header = reader.headers().unwrap().clone();
        let lines: Vec<::csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
        let get = |line: usize, name: &str| lines[line][header.iter().position(|h| h == name).unwrap()].to_string();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            (get(0, "strategy"), get(1, "strategy")),
            ("a, b".into(), "c \"d\"".into())
        );
        assert_eq!(
            (get(1, "base_this_only"), get(1, "base_other_only")),
            ("6".into(), "0".into())
        );
        assert_eq!((get(1, "ex_pct"), get(1, "base_diff_pct")), ("75".into(), "25".into()));
        // 6 against 0: exact two-sided p = 2 / 2^6 (the exact binomial sum).
        let p: f64 = get(1, "base_mcnemar_p").parse().unwrap();
        assert!((p - 0.03125).abs() < 1e-12, "{p}");
    }
}
