//! The HTML report (issue 11): one self-contained page, with no request to
//! any network, for a comparison table's rows (`report RUN... --html DIR`):
//!
//! - the ladder chart: each row's execution accuracy with its 95% interval
//!   (clustered by database when computed, else Wilson), an SVG drawn by
//!   plotters and inlined;
//! - the comparison table with its statistics ([`super::stats`]): n, EX with
//!   its interval, against the row before and against the baseline, EM, EX
//!   by hardness, tokens and cost per question, and the failure counts, with
//!   the footnote of the smallest detectable difference;
//! - the failure categories of each row ([`Category`]): correct, wrong
//!   result, execution errors by kind, timeout, no SQL, not scored;
//! - a question browser: filters by database, hardness, status and strategy
//!   and a text search (kept in the URL's fragment, so a view can be shared),
//!   and for each question the gold beside every row's answer, with result
//!   rows ([`compute_previews`], when asked for) and the record's step trace
//!   and candidates.
//!
//! Everything from records (questions, SQL, errors, traces) is untrusted
//! text: the Rust side escapes it ([`escape`]) and embeds the questions as
//! JSON in a `<script type="application/json">` with every `<` written as
//! `\u003c` ([`script_json`]), so no SQL can close the script element; the
//! page's script only ever puts that text in the page as text nodes.

use super::preview::{ResultPreview, preview};
use super::rows::Row;
use super::stats::{Comparison, Interval, RowStats, TableStats, format_accuracy, format_detectable};
use crate::dataset::Spider;
use crate::eval::exact::Hardness;
use crate::eval::judge::Status;
use crate::run::record::RunRecord;
use crate::run::summary::StrategySummary;
use crate::strategy::Candidate;
use anyhow::{Context, Result};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The file [`write`] writes in the report's folder.
pub const INDEX_FILE: &str = "index.html";

/// Questions the browser shows at first, and at each "show more".
const PAGE_SIZE: usize = 200;

/// What the page shows.
pub struct HtmlInput<'a> {
    /// The page's title and heading.
    pub title: String,
    /// The table's rows, in order.
    pub rows: &'a [Row],
    /// One per row, in the same order (`Row::summary`).
    pub summaries: &'a [StrategySummary],
    /// The statistics of the rows (`stats::compare_rows` of their outcomes).
    pub stats: &'a TableStats,
    /// The first result rows of the gold and of each answer; `None` when
    /// the report was made without the data (the page says how to get them).
    pub previews: Option<&'a Previews>,
}

/// The first rows of the results of the gold and of each row's answers.
#[derive(Debug, Clone, Default)]
pub struct Previews {
    /// By question id.
    pub gold: HashMap<usize, ResultPreview>,
    /// By (row index, question id).
    pub predicted: HashMap<(usize, usize), ResultPreview>,
}

/// Runs each distinct (database, SQL) of the rows' gold and answers once,
/// in parallel, through the scoring sandbox ([`preview`]), keeping the
/// first `limit` rows of each result. Records without a gold (published
/// verdicts) or without SQL get no preview.
pub fn compute_previews<'a>(spider: &Spider, rows: &'a [Row], limit: usize) -> Previews {
    let mut queries: Vec<(&'a str, &'a str)> = Vec::new();
    let mut index: HashMap<(&'a str, &'a str), usize> = HashMap::new();
    let mut gold_of: BTreeMap<usize, usize> = BTreeMap::new();
    let mut predicted_of: Vec<((usize, usize), usize)> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        for r in &row.records {
            let mut intern = |sql: &'a str| -> usize {
                let key = (r.db_id.as_str(), sql);
                *index.entry(key).or_insert_with(|| {
                    queries.push(key);
                    queries.len() - 1
                })
            };
            if !r.gold.trim().is_empty() && !gold_of.contains_key(&r.id) {
                let q = intern(&r.gold);
                gold_of.insert(r.id, q);
            }
            if let Some(sql) = r.pred.as_deref().filter(|s| !s.trim().is_empty()) {
                let q = intern(sql);
                predicted_of.push(((i, r.id), q));
            }
        }
    }
    let results: Vec<ResultPreview> = queries
        .par_iter()
        .map(|(db, sql)| preview(spider, db, sql, limit))
        .collect();
    Previews {
        gold: gold_of.into_iter().map(|(id, q)| (id, results[q].clone())).collect(),
        predicted: predicted_of
            .into_iter()
            .map(|(key, q)| (key, results[q].clone()))
            .collect(),
    }
}

/// `text` with the characters that mean something in HTML (`& < > " '`)
/// escaped, for element content and quoted attribute values alike.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `value` as JSON to put inside `<script type="application/json">`: every
/// `<` is written `\u003c` (the same string to a JSON parser), so that no
/// text in it can end the script element (`</script>`) or open a comment
/// (`<!--`). `>` and `&` are written as escapes too, for good measure.
pub fn script_json(value: &impl Serialize) -> String {
    let json = serde_json::to_string(value).expect("report data serializes");
    let mut out = String::with_capacity(json.len() + json.len() / 50);
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            // Valid in JSON, but line terminators in older JavaScript.
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// What became of one record, for the failure table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    Correct,
    /// Ran, with another result than the gold's.
    WrongResult,
    /// Execution errors, by SQLite's message.
    NoSuchColumn,
    NoSuchTable,
    SyntaxError,
    OtherExecError,
    Timeout,
    /// The strategy gave no SQL (the model failed, or its answer held none).
    NoSql,
    /// Skipped (no database), a failing gold, or no answer from the model.
    NotScored,
}

impl Category {
    pub const ALL: [Category; 9] = [
        Category::Correct,
        Category::WrongResult,
        Category::NoSuchColumn,
        Category::NoSuchTable,
        Category::SyntaxError,
        Category::OtherExecError,
        Category::Timeout,
        Category::NoSql,
        Category::NotScored,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Category::Correct => "correct",
            Category::WrongResult => "wrong result",
            Category::NoSuchColumn => "no such column",
            Category::NoSuchTable => "no such table",
            Category::SyntaxError => "syntax error",
            Category::OtherExecError => "other",
            Category::Timeout => "timeout",
            Category::NoSql => "no SQL",
            Category::NotScored => "not scored",
        }
    }

    /// The browser's status filter that shows these records.
    fn status(self) -> &'static str {
        match self {
            Category::Correct => "correct",
            Category::WrongResult => "wrong",
            Category::NoSuchColumn | Category::NoSuchTable | Category::SyntaxError | Category::OtherExecError => {
                "exec_error"
            }
            Category::Timeout => "timeout",
            Category::NoSql => "empty",
            Category::NotScored => "not_scored",
        }
    }
}

/// The category of a record.
pub fn category(r: &RunRecord) -> Category {
    let no_sql = r.pred.as_deref().is_none_or(|s| s.trim().is_empty());
    match r.status {
        Status::Correct => Category::Correct,
        Status::Skipped | Status::GoldError | Status::Error => Category::NotScored,
        _ if no_sql => Category::NoSql,
        Status::Empty => Category::NoSql,
        Status::Wrong => Category::WrongResult,
        Status::Timeout => Category::Timeout,
        Status::ExecError => exec_error_kind(r.error.as_deref().unwrap_or("")),
    }
}

/// The kind of an execution error, from SQLite's message.
pub fn exec_error_kind(error: &str) -> Category {
    let e = error.to_ascii_lowercase();
    if e.contains("no such column") {
        Category::NoSuchColumn
    } else if e.contains("no such table") {
        Category::NoSuchTable
    } else if e.contains("syntax error") || e.contains("incomplete input") || e.contains("unrecognized token") {
        Category::SyntaxError
    } else {
        Category::OtherExecError
    }
}

/// How many of a row's records fall in each category.
pub fn category_counts(row: &Row) -> BTreeMap<Category, usize> {
    let mut counts: BTreeMap<Category, usize> = Category::ALL.iter().map(|c| (*c, 0)).collect();
    for r in &row.records {
        *counts.entry(category(r)).or_default() += 1;
    }
    counts
}

/// The page.
pub fn render(input: &HtmlInput) -> String {
    let mut page = String::with_capacity(1 << 20);
    let title = escape(&input.title);
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; \
         script-src 'unsafe-inline'; img-src data:\">\n<title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <h1>{title}</h1>\n"
    );
    page.push_str("<section id=\"ladder\">\n<h2>Execution accuracy</h2>\n<figure>");
    page.push_str(&ladder_svg(input));
    page.push_str(
        "<figcaption>Execution accuracy of each row with its 95% interval (clustered by database where the \
         statistics were clustered, else Wilson).</figcaption></figure>\n</section>\n",
    );
    comparison_table(&mut page, input);
    failure_table(&mut page, input);
    browser(&mut page, input);
    page.push_str("</body>\n</html>\n");
    page
}

/// Writes the page to `DIR/index.html` (atomically), creating `DIR`;
/// returns the file's path.
pub fn write(dir: &Path, input: &HtmlInput) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create the report folder {}", dir.display()))?;
    let path = dir.join(INDEX_FILE);
    crate::paths::write_atomically(&path, render(input).as_bytes())
        .with_context(|| format!("cannot write the report {}", path.display()))?;
    Ok(path)
}

/// The interval the chart and the table show: clustered when computed.
fn shown_interval(row: &RowStats) -> Option<Interval> {
    row.clustered.map(|c| c.interval).or(row.wilson)
}

/// The ladder chart: one mark (the accuracy, with its interval as an error
/// bar) per row with a scored question, rows top to bottom in table order.
fn ladder_svg(input: &HtmlInput) -> String {
    let rows = &input.stats.rows;
    let n = rows.len().max(1);
    let longest = rows.iter().map(|r| r.label.chars().count()).max().unwrap_or(0);
    let label_width = (longest as u32 * 7 + 16).clamp(60, 360);
    let (width, height) = (820u32, 70 + 34 * n as u32);
    let mut svg = String::new();
    let drawn = draw_ladder(&mut svg, (width, height), label_width, rows);
    if let Err(e) = drawn {
        return format!(
            "<p class=\"error\">The chart could not be drawn: {}</p>",
            escape(&e.to_string())
        );
    }
    svg
}

fn draw_ladder(
    svg: &mut String,
    size: (u32, u32),
    label_width: u32,
    rows: &[RowStats],
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    let n = rows.len().max(1);
    let root = SVGBackend::with_string(svg, size).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(label_width)
        // An integer range includes its end, and each value is a segment:
        // 0..n-1 has one segment per row.
        .build_cartesian_2d(0f64..100f64, (0..(n - 1).max(1)).into_segmented())?;
    let label = |v: &SegmentValue<usize>| match v {
        SegmentValue::CenterOf(k) | SegmentValue::Exact(k) if *k < rows.len() => rows[rows.len() - 1 - k].label.clone(),
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_max_light_lines(1)
        .y_labels(n)
        .y_label_formatter(&label)
        .x_labels(11)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .x_desc("execution accuracy (%), 95% interval")
        .label_style(("sans-serif", 13))
        .draw()?;
    let blue = RGBColor(31, 95, 170);
    let marks = rows.iter().enumerate().filter_map(|(i, r)| {
        let acc = r.accuracy?;
        let iv = shown_interval(r).unwrap_or(Interval { low: acc, high: acc });
        let clamp = |x: f64| (100.0 * x).clamp(0.0, 100.0);
        Some(ErrorBar::new_horizontal(
            SegmentValue::CenterOf(rows.len() - 1 - i),
            clamp(iv.low),
            clamp(acc),
            clamp(iv.high),
            blue.filled().stroke_width(2),
            12,
        ))
    });
    chart.draw_series(marks)?;
    root.present()?;
    Ok(())
}

fn pct(x: f64) -> String {
    format!("{:.1}", 100.0 * x)
}

/// Whether a comparison left out questions one of its rows scored.
fn partial(c: &Option<Comparison>) -> bool {
    c.as_ref().is_some_and(|c| c.unshared > 0)
}

fn comparison_table(page: &mut String, input: &HtmlInput) {
    let stats = input.stats;
    page.push_str(
        "<section id=\"comparison\">\n<h2>Comparison</h2>\n<div class=\"scroll\"><table class=\"grid\">\n<thead><tr>\
         <th>strategy</th><th>n</th><th>EX [95% CI]</th><th>vs previous</th><th>vs baseline</th>\
         <th>easy</th><th>medium</th><th>hard</th><th>extra</th><th>EM</th><th>tokens/q</th><th>$/q</th>\
         <th>$ total</th><th>no SQL</th><th>exec err</th><th>timeout</th><th>no answer</th></tr></thead>\n<tbody>\n",
    );
    let mut any_partial = false;
    for (i, s) in input.summaries.iter().enumerate() {
        let row_stats = stats.rows.get(i);
        let mut label = escape(&s.strategy);
        if i == stats.baseline {
            label += " <span class=\"badge\">baseline</span>";
        }
        let different = row_stats.is_some_and(|r| partial(&r.vs_baseline) || partial(&r.vs_previous));
        if different {
            any_partial = true;
            label += " <span class=\"mark\" title=\"scored on a different question set: compared on the questions \
                      both rows scored\">&#8224;</span>";
        }
        let n = match s.errors + s.missing {
            0 => s.count.to_string(),
            pending => format!("{} (+{pending} pending)", s.count),
        };
        let cell = super::table::comparison_cell;
        let ex = row_stats.map(format_accuracy).unwrap_or_else(|| pct(s.exec_accuracy()));
        let _ = write!(
            page,
            "<tr{}><td class=\"label\">{label}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
            if different { " class=\"partial\"" } else { "" },
            escape(&n),
            escape(&ex),
            escape(&cell(row_stats.and_then(|r| r.vs_previous.as_ref()))),
            escape(&cell(row_stats.and_then(|r| r.vs_baseline.as_ref()))),
        );
        for h in Hardness::ALL {
            let _ = write!(
                page,
                "<td>{}</td>",
                s.level_accuracy(h).map(pct).unwrap_or_else(|| "-".into())
            );
        }
        let _ = writeln!(
            page,
            "<td>{}</td><td>{:.0}</td><td>{:.5}</td><td>{:.4}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            pct(s.exact_accuracy()),
            s.per_question((s.tokens_in + s.tokens_out) as f64),
            s.per_question(s.cost_usd),
            s.cost_usd,
            s.no_answer,
            s.exec_errors,
            s.timeouts,
            s.errors,
        );
    }
    page.push_str(
        "</tbody>\n</table></div>\n<p class=\"note\">EX: execution accuracy (%), by hardness; EM: exact-set match (%). \
        vs previous, vs baseline: the difference in points with its 95% interval, the exact McNemar p-value and \
        (right only in this row / right only in the other); no answer: endpoint errors (not scored).",
    );
    if any_partial {
        page.push_str(
            " &#8224; this row scored other questions than the row it is compared with: the comparison uses \
             the questions both scored (its n is given).",
        );
    }
    let compared = stats
        .rows
        .iter()
        .flat_map(|r| [r.vs_previous.as_ref(), r.vs_baseline.as_ref()]);
    if compared.flatten().any(super::table::disagrees) {
        page.push_str(
            " &#8225; the interval and the exact test disagree (few discordant questions, where the interval is \
             too narrow): go by the exact McNemar p.",
        );
    }
    page.push_str("</p>\n");
    if let Some(d) = &stats.detectable {
        let _ = writeln!(
            page,
            "<p class=\"note\" id=\"detectable\">{}</p>",
            escape(&format_detectable(d))
        );
    }
    let errors: usize = input.summaries.iter().map(|s| s.errors).sum();
    let missing: usize = input.summaries.iter().map(|s| s.missing).sum();
    if errors + missing > 0 {
        let _ = writeln!(
            page,
            "<p class=\"note warn\">INCOMPLETE: {errors} questions got no answer from the model (endpoint errors, \
             not scored) and {missing} have no record yet; <code>spider-bench run ... --resume --out DIR</code> \
             asks for them.</p>"
        );
    }
    page.push_str("</section>\n");
}

fn failure_table(page: &mut String, input: &HtmlInput) {
    page.push_str(
        "<section id=\"failures\">\n<h2>Failure categories</h2>\n<div class=\"scroll\"><table class=\"grid\">\n<thead>\
         <tr><th rowspan=\"2\">strategy</th><th rowspan=\"2\">correct</th><th rowspan=\"2\">wrong result</th>\
         <th colspan=\"4\">execution error</th><th rowspan=\"2\">timeout</th><th rowspan=\"2\">no SQL</th>\
         <th rowspan=\"2\">not scored</th><th rowspan=\"2\">no record</th></tr>\n<tr><th>no such column</th>\
         <th>no such table</th><th>syntax error</th><th>other</th></tr></thead>\n<tbody>\n",
    );
    for (i, row) in input.rows.iter().enumerate() {
        let counts = category_counts(row);
        let _ = write!(page, "<tr><td class=\"label\">{}</td>", escape(&row.label));
        for c in Category::ALL {
            let k = counts[&c];
            let _ = write!(
                page,
                "<td><a href=\"#{}\" title=\"{}\">{k}</a></td>",
                escape(&hash(&[("strategy", &row.label), ("status", c.status())])),
                escape(c.label()),
            );
        }
        let missing = input.summaries.get(i).map(|s| s.missing).unwrap_or(0);
        let _ = writeln!(page, "<td>{missing}</td></tr>");
    }
    page.push_str(
        "</tbody>\n</table></div>\n<p class=\"note\">Records of each row by what became of them; the kind of an \
         execution error is read from SQLite's message. A count opens the questions behind it below.</p>\n</section>\n",
    );
}

/// A URL fragment (without `#`) of the browser's filters.
fn hash(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", form_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `application/x-www-form-urlencoded`, as URLSearchParams reads it.
fn form_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => out.push(b as char),
            b' ' => out.push('+'),
            b => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// The data of the question browser.
#[derive(Serialize)]
struct PageData<'a> {
    rows: Vec<&'a str>,
    dbs: Vec<&'a str>,
    /// Whether result previews were computed.
    previews: bool,
    page_size: usize,
    /// Each distinct result preview once: the same SQL on the same
    /// database (a right answer that is the gold, a repeated answer) has
    /// one result. Questions and answers give their index here.
    results: Vec<&'a ResultPreview>,
    questions: Vec<QuestionData<'a>>,
}

/// The distinct results of [`PageData::results`], by (database, SQL).
#[derive(Default)]
struct Results<'a> {
    list: Vec<&'a ResultPreview>,
    index: HashMap<(&'a str, &'a str), usize>,
}

impl<'a> Results<'a> {
    fn intern(&mut self, db: &'a str, sql: &'a str, preview: Option<&'a ResultPreview>) -> Option<usize> {
        let preview = preview?;
        let list = &mut self.list;
        Some(*self.index.entry((db, sql)).or_insert_with(|| {
            list.push(preview);
            list.len() - 1
        }))
    }
}

#[derive(Serialize)]
struct QuestionData<'a> {
    id: usize,
    /// Index in `dbs`.
    db: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    h: Option<&'static str>,
    q: &'a str,
    gold: &'a str,
    /// The gold's result (index in `results`).
    #[serde(skip_serializing_if = "Option::is_none")]
    gp: Option<usize>,
    /// One per row: its answer, or null where the row has no record.
    a: Vec<Option<AnswerData<'a>>>,
}

#[derive(Serialize)]
struct AnswerData<'a> {
    /// The status (`Status::as_str`).
    s: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sql: Option<&'a str>,
    /// The error, or why there is no SQL.
    #[serde(skip_serializing_if = "Option::is_none")]
    e: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    em: Option<bool>,
    /// The answer's result (index in `results`).
    #[serde(skip_serializing_if = "Option::is_none")]
    p: Option<usize>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    t: Vec<TraceData<'a>>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    c: &'a [Candidate],
    /// Model calls, tokens (in + out).
    #[serde(skip_serializing_if = "is_zero")]
    calls: usize,
    #[serde(skip_serializing_if = "is_zero_u64")]
    tok: u64,
}

fn is_zero(x: &usize) -> bool {
    *x == 0
}

fn is_zero_u64(x: &u64) -> bool {
    *x == 0
}

/// A trace event without its cache keys.
#[derive(Serialize)]
struct TraceData<'a> {
    step: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    detail: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

fn page_data<'a>(input: &HtmlInput<'a>) -> PageData<'a> {
    let by_id: Vec<HashMap<usize, &'a RunRecord>> = input
        .rows
        .iter()
        .map(|row| row.records.iter().map(|r| (r.id, r)).collect())
        .collect();
    // Each question once, described by its first record in row order
    // (the first with a question text and a gold, where some lack them).
    let mut firsts: BTreeMap<usize, &'a RunRecord> = BTreeMap::new();
    for row in input.rows {
        for r in &row.records {
            let e = firsts.entry(r.id).or_insert(r);
            if (e.question.is_empty() && !r.question.is_empty()) || (e.gold.is_empty() && !r.gold.is_empty()) {
                *e = r;
            }
        }
    }
    let mut dbs: Vec<&'a str> = firsts.values().map(|r| r.db_id.as_str()).collect();
    dbs.sort_unstable();
    dbs.dedup();
    let db_index: HashMap<&str, usize> = dbs.iter().enumerate().map(|(i, d)| (*d, i)).collect();
    let previews = input.previews;
    let results = std::cell::RefCell::new(Results::default());
    let questions = firsts
        .iter()
        .map(|(&id, first)| {
            let answers = by_id
                .iter()
                .enumerate()
                .map(|(i, records)| {
                    records.get(&id).map(|r| AnswerData {
                        s: r.status.as_str(),
                        sql: r.pred.as_deref(),
                        e: r.error.as_deref().or(r.model_failure.as_deref()),
                        em: r.exact,
                        p: r.pred.as_deref().and_then(|sql| {
                            let preview = previews.and_then(|p| p.predicted.get(&(i, id)));
                            results.borrow_mut().intern(&r.db_id, sql, preview)
                        }),
                        t: r.trace
                            .iter()
                            .map(|t| TraceData {
                                step: &t.step,
                                detail: &t.detail,
                                error: t.error.as_deref(),
                            })
                            .collect(),
                        c: &r.candidates,
                        calls: r.calls,
                        tok: r.tokens_in + r.tokens_out,
                    })
                })
                .collect();
            let hardness = by_id.iter().find_map(|m| m.get(&id).and_then(|r| r.hardness));
            QuestionData {
                id,
                db: db_index[first.db_id.as_str()],
                h: hardness.map(Hardness::as_str),
                q: &first.question,
                gold: &first.gold,
                gp: results
                    .borrow_mut()
                    .intern(&first.db_id, &first.gold, previews.and_then(|p| p.gold.get(&id))),
                a: answers,
            }
        })
        .collect();
    PageData {
        rows: input.rows.iter().map(|r| r.label.as_str()).collect(),
        dbs,
        previews: previews.is_some(),
        page_size: PAGE_SIZE,
        results: results.into_inner().list,
        questions,
    }
}

fn browser(page: &mut String, input: &HtmlInput) {
    page.push_str(
        "<section id=\"browser\">\n<h2>Questions</h2>\n<form id=\"filters\" onsubmit=\"return false\">\
         <label>database <select id=\"f-db\"><option value=\"\">all</option></select></label>\
         <label>hardness <select id=\"f-h\"><option value=\"\">all</option></select></label>\
         <label>status <select id=\"f-status\"><option value=\"\">all</option></select></label>\
         <label>strategy <select id=\"f-strategy\"><option value=\"\">all</option></select></label>\
         <label>search <input id=\"f-q\" type=\"search\" placeholder=\"question or SQL\" size=\"28\"></label>\
         <button type=\"button\" id=\"f-reset\">reset</button></form>\n\
         <p id=\"count\" class=\"count\"></p>\n",
    );
    if input.previews.is_none() {
        page.push_str(
            "<p class=\"note\" id=\"no-previews\">Result rows are not in this report: make it with the data, \
             <code>spider-bench report RUN... --html DIR --data SPIDER_DIR</code>, to see the first rows of each \
             gold and answer.</p>\n",
        );
    }
    page.push_str(
        "<p class=\"note\">The status filter applies to the chosen strategy, or to any strategy when all are shown \
         (\"right and wrong\": some strategies right, others wrong). The filters are kept in the address \
         (after #), so a view can be shared.</p>\n<div id=\"questions\"></div>\n\
         <button type=\"button\" id=\"more\" hidden>show more</button>\n</section>\n",
    );
    let _ = write!(
        page,
        "<script type=\"application/json\" id=\"report-data\">{}</script>\n<script>{SCRIPT}</script>\n",
        script_json(&page_data(input))
    );
}

const STYLE: &str = r##"
:root { --fg: #1d232b; --muted: #5d6775; --line: #d8dde3; --bg2: #f5f7f9; --ok: #1b7a3d; --bad: #b42318; --warn: #9a6700; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); margin: 0 auto; padding: 16px 24px 48px; max-width: 1400px; }
h1 { font-size: 22px; margin: 4px 0 16px; }
h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
figure { margin: 0; }
figcaption, .note { color: var(--muted); font-size: 12.5px; }
.warn { color: var(--warn); }
.scroll { overflow-x: auto; }
table.grid { border-collapse: collapse; font-variant-numeric: tabular-nums; }
table.grid th, table.grid td { border: 1px solid var(--line); padding: 3px 7px; text-align: right; white-space: nowrap; }
table.grid th { background: var(--bg2); text-align: center; font-weight: 600; }
table.grid td.label { text-align: left; }
tr.partial td { background: #fff8e6; }
.badge { font-size: 11px; background: #e4ecf7; color: #1f5faa; border-radius: 3px; padding: 0 4px; }
.mark { color: var(--warn); font-weight: 700; cursor: help; }
a { color: #1f5faa; }
form#filters { display: flex; flex-wrap: wrap; gap: 6px 14px; align-items: center; background: var(--bg2); padding: 8px 10px; border-radius: 6px; position: sticky; top: 0; z-index: 1; }
form#filters label { color: var(--muted); }
select, input, button { font: inherit; }
.count { font-weight: 600; }
article.card { border: 1px solid var(--line); border-radius: 6px; margin: 10px 0; padding: 8px 10px; }
article.card header { display: flex; flex-wrap: wrap; gap: 8px; align-items: baseline; margin-bottom: 6px; }
.qid { color: var(--muted); font-variant-numeric: tabular-nums; }
.qtext { font-weight: 600; }
.tag { font-size: 12px; background: var(--bg2); border: 1px solid var(--line); border-radius: 3px; padding: 0 5px; color: var(--muted); }
.answers { display: grid; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr)); gap: 8px; }
.answer { border: 1px solid var(--line); border-radius: 4px; padding: 6px 8px; min-width: 0; }
.answer.gold { background: #f3f8f4; }
.answer.chosen { outline: 2px solid #1f5faa; }
.answer h3 { font-size: 13px; margin: 0 0 4px; display: flex; justify-content: space-between; gap: 6px; }
.status { font-size: 12px; border-radius: 3px; padding: 0 5px; color: #fff; background: var(--muted); white-space: nowrap; }
.status.correct { background: var(--ok); }
.status.wrong, .status.exec_error, .status.timeout, .status.empty { background: var(--bad); }
pre { white-space: pre-wrap; word-break: break-word; margin: 4px 0; font: 12.5px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: var(--bg2); padding: 4px 6px; border-radius: 3px; }
.err { color: var(--bad); font-size: 12.5px; word-break: break-word; }
table.rows { border-collapse: collapse; font-size: 12px; margin: 4px 0; font-variant-numeric: tabular-nums; }
table.rows td { border: 1px solid var(--line); padding: 1px 5px; max-width: 220px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
table.rows caption { text-align: left; color: var(--muted); font-size: 11.5px; }
details { margin-top: 4px; font-size: 12.5px; }
details summary { cursor: pointer; color: #1f5faa; }
details ol { padding-left: 20px; margin: 4px 0; }
.step { font-weight: 600; }
#more { margin: 8px 0; }
"##;

/// The question browser. Every text from the data goes into the page
/// through `textContent`, never as HTML.
const SCRIPT: &str = r##"
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("report-data").textContent);
  function $(id) { return document.getElementById(id); }
  var STATUS = {
    correct: "correct", wrong: "wrong result", exec_error: "execution error", timeout: "timeout",
    empty: "no SQL", skipped: "skipped (no database)", gold_error: "gold error",
    error: "no answer (endpoint)", missing: "no record"
  };
  var NOT_SCORED = { skipped: 1, gold_error: 1, error: 1 };
  var FILTERS = [["db", "f-db"], ["h", "f-h"], ["status", "f-status"], ["strategy", "f-strategy"], ["q", "f-q"]];
  var limit = D.page_size;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function option(select, value, text) {
    var o = el("option", null, text);
    o.value = value;
    select.appendChild(o);
  }
  function statusOf(q, i) { var a = q.a[i]; return a ? a.s : "missing"; }

  D.dbs.forEach(function (d) { option($("f-db"), d, d); });
  var levels = {};
  D.questions.forEach(function (q) { levels[q.h || "none"] = 1; });
  ["easy", "medium", "hard", "extra", "none"].forEach(function (h) {
    if (levels[h]) option($("f-h"), h, h === "none" ? "not scored (no hardness)" : h);
  });
  var present = {};
  D.questions.forEach(function (q) { D.rows.forEach(function (_, i) { present[statusOf(q, i)] = 1; }); });
  Object.keys(STATUS).forEach(function (s) { if (present[s]) option($("f-status"), s, STATUS[s]); });
  option($("f-status"), "not_scored", "not scored (any reason)");
  option($("f-status"), "mixed", "right and wrong");
  D.rows.forEach(function (r) { option($("f-strategy"), r, r); });

  function mixed(q) {
    var right = false, wrong = false;
    q.a.forEach(function (a) {
      if (!a || NOT_SCORED[a.s]) return;
      if (a.s === "correct") right = true; else wrong = true;
    });
    return right && wrong;
  }
  function statusMatches(s, want) { return want === "not_scored" ? !!NOT_SCORED[s] : s === want; }
  function haystack(q) {
    if (q._hay === undefined) {
      var parts = [q.q, q.gold, D.dbs[q.db]];
      q.a.forEach(function (a) { if (a && a.sql) parts.push(a.sql); });
      q._hay = parts.join("\n").toLowerCase();
    }
    return q._hay;
  }
  function current() {
    var f = {};
    FILTERS.forEach(function (p) { f[p[0]] = $(p[1]).value; });
    return f;
  }
  function matches(q, f, si) {
    if (f.db && D.dbs[q.db] !== f.db) return false;
    if (f.h && (q.h || "none") !== f.h) return false;
    if (f.status) {
      if (f.status === "mixed") { if (!mixed(q)) return false; }
      else if (si >= 0) { if (!statusMatches(statusOf(q, si), f.status)) return false; }
      else if (!q.a.some(function (_, i) { return statusMatches(statusOf(q, i), f.status); })) return false;
    }
    if (f.q && haystack(q).indexOf(f.q.toLowerCase()) < 0) return false;
    return true;
  }

  function result(i) { return i === undefined ? null : D.results[i]; }
  function previewTable(p, error) {
    if (!D.previews) return null;
    if (!p) return null;
    if (p.error) return p.error === error ? null : el("div", "err", "result: " + p.error);
    var t = el("table", "rows");
    var shown = p.rows.length;
    t.appendChild(el("caption", null, shown < p.total ? "first " + shown + " of " + p.total + " rows" : p.total + (p.total === 1 ? " row" : " rows")));
    p.rows.forEach(function (r) {
      var tr = el("tr");
      r.forEach(function (v) {
        var td = el("td", null, v === null ? "NULL" : (typeof v === "object" ? JSON.stringify(v) : v));
        td.title = td.textContent;
        tr.appendChild(td);
      });
      t.appendChild(tr);
    });
    return t;
  }
  function trace(a) {
    if (!(a.t && a.t.length) && !(a.c && a.c.length)) return null;
    var d = el("details", "trace");
    var parts = [];
    if (a.t && a.t.length) parts.push(a.t.length + " steps");
    if (a.c && a.c.length) parts.push(a.c.length + (a.c.length === 1 ? " candidate" : " candidates"));
    if (a.calls) parts.push(a.calls + (a.calls === 1 ? " call" : " calls"));
    if (a.tok) parts.push(a.tok + " tokens");
    d.appendChild(el("summary", null, "trace: " + parts.join(", ")));
    if (a.t && a.t.length) {
      var ol = el("ol", "steps");
      a.t.forEach(function (e) {
        var li = el("li");
        li.appendChild(el("span", "step", e.step));
        if (e.detail) li.appendChild(el("pre", null, e.detail));
        if (e.error) li.appendChild(el("div", "err", e.error));
        ol.appendChild(li);
      });
      d.appendChild(ol);
    }
    if (a.c && a.c.length) {
      d.appendChild(el("div", "step", "candidates"));
      var cl = el("ol", "candidates");
      a.c.forEach(function (c) {
        var li = el("li");
        li.appendChild(el("pre", null, c.sql === null || c.sql === undefined ? "(no SQL)" : c.sql));
        var bits = [c.outcome];
        if (c.repairs) bits.push(c.repairs + (c.repairs === 1 ? " repair" : " repairs"));
        if (c.step) bits.push("from " + c.step);
        li.appendChild(el("div", "note", bits.join("; ")));
        cl.appendChild(li);
      });
      d.appendChild(cl);
    }
    return d;
  }
  function box(title, cls, status, sql, error, preview) {
    var b = el("div", "answer " + cls);
    var h = el("h3");
    h.appendChild(el("span", "name", title));
    if (status) h.appendChild(el("span", "status " + status, STATUS[status] || status));
    b.appendChild(h);
    b.appendChild(el("pre", "sql", sql === null || sql === undefined || sql === "" ? "(no SQL)" : sql));
    if (error) b.appendChild(el("div", "err", error));
    var t = previewTable(preview, error);
    if (t) b.appendChild(t);
    return b;
  }
  function card(q, si) {
    var c = el("article", "card");
    c.dataset.id = q.id;
    var h = el("header");
    h.appendChild(el("span", "qid", "#" + q.id));
    h.appendChild(el("span", "qtext", q.q || "(no question text in the records)"));
    h.appendChild(el("span", "tag", D.dbs[q.db]));
    h.appendChild(el("span", "tag", q.h || "no hardness"));
    c.appendChild(h);
    var g = el("div", "answers");
    g.appendChild(box("gold", "gold", null, q.gold || "(no gold in the records)", null, result(q.gp)));
    q.a.forEach(function (a, i) {
      var cls = i === si ? "chosen" : "";
      if (!a) { g.appendChild(box(D.rows[i], cls, "missing", null, "no record for this question", null)); return; }
      var b = box(D.rows[i], cls, a.s, a.sql, a.e, result(a.p));
      if (a.em !== undefined) b.appendChild(el("div", "note", "exact-set match: " + (a.em ? "yes" : "no")));
      var t = trace(a);
      if (t) b.appendChild(t);
      g.appendChild(b);
    });
    c.appendChild(g);
    return c;
  }

  function render() {
    var f = current();
    var si = f.strategy ? D.rows.indexOf(f.strategy) : -1;
    var shown = D.questions.filter(function (q) { return matches(q, f, si); });
    $("count").textContent = shown.length + " of " + D.questions.length + " questions";
    var list = $("questions");
    list.textContent = "";
    var frag = document.createDocumentFragment();
    shown.slice(0, limit).forEach(function (q) { frag.appendChild(card(q, si)); });
    list.appendChild(frag);
    var more = $("more");
    more.hidden = shown.length <= limit;
    more.textContent = "show " + Math.min(D.page_size, shown.length - limit) + " more (" + (shown.length - Math.min(limit, shown.length)) + " not shown)";
  }
  var written = null;
  function writeHash() {
    var f = current(), p = new URLSearchParams();
    FILTERS.forEach(function (k) { if (f[k[0]]) p.set(k[0], f[k[0]]); });
    written = p.toString();
    if (location.hash.slice(1) !== written) location.replace("#" + written);
  }
  function readHash() {
    var h = location.hash.slice(1);
    if (h === written) return false;
    var p = new URLSearchParams(h);
    FILTERS.forEach(function (k) { $(k[1]).value = p.get(k[0]) || ""; });
    written = h;
    return true;
  }
  function changed() { limit = D.page_size; writeHash(); render(); }
  FILTERS.forEach(function (k) { $(k[1]).addEventListener(k[0] === "q" ? "input" : "change", changed); });
  $("f-reset").addEventListener("click", function () { FILTERS.forEach(function (k) { $(k[1]).value = ""; }); changed(); });
  $("more").addEventListener("click", function () { limit += D.page_size; render(); });
  window.addEventListener("hashchange", function () { if (readHash()) { limit = D.page_size; render(); } });
  readHash();
  render();
})();
"##;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x" onclick='y'>&amp;</a>"#),
            "&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;amp;&lt;/a&gt;"
        );
        assert_eq!(escape("plain SELECT 1"), "plain SELECT 1");
        assert_eq!(escape("naïve – ünïcode"), "naïve – ünïcode");
    }

    #[test]
    fn script_json_cannot_close_the_script_element() {
        let sql = "SELECT '</script><script>window.pwned=1</script>' <!-- & \u{2028}";
        let json = script_json(&serde_json::json!({ "sql": sql }));
        assert!(
            !json.contains('<') && !json.contains('>') && !json.contains('&'),
            "{json}"
        );
        assert!(!json.contains('\u{2028}'));
        // The same string to a JSON parser.
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back["sql"], sql);
    }

    #[test]
    fn exec_errors_by_kind() {
        assert_eq!(exec_error_kind("no such column: nope"), Category::NoSuchColumn);
        assert_eq!(exec_error_kind("no such table: nowhere"), Category::NoSuchTable);
        assert_eq!(exec_error_kind("near \"FORM\": syntax error"), Category::SyntaxError);
        assert_eq!(exec_error_kind("incomplete input"), Category::SyntaxError);
        assert_eq!(
            exec_error_kind("not a single read-only statement"),
            Category::OtherExecError
        );
    }

    fn record(id: usize, label: &str, status: Status, pred: Option<&str>, error: Option<&str>) -> RunRecord {
        RunRecord {
            v: crate::run::record::RECORD_FORMAT,
            id,
            strategy: label.into(),
            db_id: format!("db{}", id % 2),
            question: format!("question {id} <b>bold</b>"),
            gold: "SELECT 1".into(),
            pred: pred.map(str::to_string),
            exec: status.is_scored().then_some(status == Status::Correct),
            exact: None,
            hardness: Some(Hardness::Easy),
            status,
            error: error.map(str::to_string),
            model_failure: None,
            tokens_in: 10,
            tokens_out: 2,
            latency_ms: 1.0,
            calls: 1,
            cost_usd: 0.0,
            cache_keys: Vec::new(),
            candidates: Vec::new(),
            trace: Vec::new(),
            loops_cut: 0,
        }
    }

    fn row(label: &str, records: Vec<RunRecord>) -> Row {
        Row {
            label: label.into(),
            strategy: label.into(),
            source: PathBuf::from("x"),
            questions: records.len(),
            records,
        }
    }

    #[test]
    fn categories_of_records() {
        let r = |status, pred, error| category(&record(0, "a", status, pred, error));
        assert_eq!(r(Status::Correct, Some("SELECT 1"), None), Category::Correct);
        assert_eq!(r(Status::Wrong, Some("SELECT 2"), None), Category::WrongResult);
        assert_eq!(r(Status::Wrong, None, None), Category::NoSql);
        assert_eq!(r(Status::Empty, None, None), Category::NoSql);
        assert_eq!(
            r(Status::ExecError, Some("SELECT x"), Some("no such column: x")),
            Category::NoSuchColumn
        );
        assert_eq!(r(Status::Timeout, Some("SELECT 1"), None), Category::Timeout);
        assert_eq!(r(Status::Skipped, None, None), Category::NotScored);
        assert_eq!(r(Status::Error, None, None), Category::NotScored);
    }

    #[test]
    fn the_page_escapes_what_records_hold() {
        let bad = "SELECT '</script><script>alert(1)</script>'";
        let rows = vec![
            row(
                "a <i>",
                vec![
                    record(0, "a <i>", Status::Correct, Some("SELECT 1"), None),
                    record(1, "a <i>", Status::Wrong, Some(bad), None),
                ],
            ),
            row(
                "b",
                vec![
                    record(0, "b", Status::ExecError, Some("SELECT x"), Some("no such column: x")),
                    record(1, "b", Status::Correct, Some("SELECT 1"), None),
                ],
            ),
        ];
        let summaries: Vec<_> = rows.iter().map(Row::summary).collect();
        let outcomes: Vec<_> = rows.iter().map(Row::outcomes).collect();
        let stats = super::super::stats::compare_rows(&outcomes, 0, &Default::default());
        let page = render(&HtmlInput {
            title: "t".into(),
            rows: &rows,
            summaries: &summaries,
            stats: &stats,
            previews: None,
        });
        assert_eq!(page.matches("<script").count(), 2, "{page}");
        assert!(!page.contains("<i>") && !page.contains("<b>"));
        assert!(page.contains("a &lt;i&gt;"));
        // One mark per row in the chart.
        let svg = &page[page.find("<svg").unwrap()..page.find("</svg>").unwrap()];
        assert_eq!(svg.matches("<circle").count(), 2, "{svg}");
        assert!(svg.contains("a &lt;i&gt;"), "{svg}");
        // The data round-trips.
        let start = page.find("id=\"report-data\">").unwrap() + "id=\"report-data\">".len();
        let end = start + page[start..].find("</script>").unwrap();
        let data: serde_json::Value = serde_json::from_str(&page[start..end]).unwrap();
        assert_eq!(data["questions"][1]["a"][0]["sql"], bad);
        assert_eq!(data["questions"][0]["a"][1]["e"], "no such column: x");
        assert_eq!(data["rows"], serde_json::json!(["a <i>", "b"]));
    }

    #[test]
    fn fragments_are_form_encoded() {
        assert_eq!(
            hash(&[("strategy", "zero-shot (gpt, run 1)"), ("status", "wrong")]),
            "strategy=zero-shot+%28gpt%2C+run+1%29&status=wrong"
        );
        assert_eq!(form_encode("a&b=c#d"), "a%26b%3Dc%23d");
    }
}
