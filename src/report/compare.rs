//! `compare`: the questions on which two rows (two runs, two strategies of
//! one run, two prediction files, or a mix) disagree.
//!
//! [`compare`] is pure: given two [`Row`]s and the [`Filters`], it pairs the
//! records by question id and splits the questions both rows scored into
//! both right, both wrong, "A right, B wrong" and "B right, A wrong"
//! (execution match, as the table's EX), with the exact McNemar p-value of
//! the two discordant counts. Questions that only one row scored (the other
//! has no record, or skipped it, or got no answer from the model) are
//! listed apart, never dropped. [`attach_previews`] then runs the gold's and
//! both predictions' SQL through the sandbox for the first rows of each
//! result, and [`render_terminal`] prints it; JSON is the [`Comparison`]
//! serialized.

use super::preview::{ResultPreview, preview};
use super::rows::Row;
use super::stats::{format_p, mcnemar_exact_p};
use crate::dataset::Spider;
use crate::eval::exact::Hardness;
use crate::eval::judge::Status;
use crate::run::record::RunRecord;
use anyhow::{Result, bail};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Which questions to compare: all, or those of the given hardness levels
/// and databases (each list empty = no filter on it).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Filters {
    pub hardness: Vec<Hardness>,
    pub db: Vec<String>,
}

impl Filters {
    /// Whether a question on `db_id` of `hardness` is compared. A question
    /// without a hardness (its gold did not parse) passes no hardness filter.
    pub fn keeps(&self, db_id: &str, hardness: Option<Hardness>) -> bool {
        (self.hardness.is_empty() || hardness.is_some_and(|h| self.hardness.contains(&h)))
            && (self.db.is_empty() || self.db.iter().any(|d| d == db_id))
    }

    pub fn is_empty(&self) -> bool {
        self.hardness.is_empty() && self.db.is_empty()
    }

    /// "hardness easy, hard · db concert_hall", or "none".
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.hardness.is_empty() {
            let h: Vec<&str> = self.hardness.iter().map(|h| h.as_str()).collect();
            parts.push(format!("hardness {}", h.join(", ")));
        }
        if !self.db.is_empty() {
            parts.push(format!("db {}", self.db.join(", ")));
        }
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(" · ")
        }
    }
}

/// One side of the comparison, counted on the questions the filters keep.
#[derive(Debug, Clone, Serialize)]
pub struct SideSummary {
    pub label: String,
    pub strategy: String,
    pub source: PathBuf,
    /// What the side is and how it was scored ("run folder, official
    /// scoring"); set by the caller.
    pub origin: String,
    /// Records the filters keep (scored or not).
    pub records: usize,
    /// Of those, the scored ones, and the right ones (execution match).
    pub scored: usize,
    pub correct: usize,
}

/// One side's answer to a question.
#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    pub sql: Option<String>,
    pub status: Status,
    pub exec: Option<bool>,
    pub exact: Option<bool>,
    pub error: Option<String>,
    /// Why the strategy gave no SQL (runs only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_failure: Option<String>,
}

impl Answer {
    fn of(r: &RunRecord) -> Answer {
        Answer {
            sql: r.pred.clone(),
            status: r.status,
            exec: r.exec,
            exact: r.exact,
            error: r.error.clone(),
            model_failure: r.model_failure.clone(),
        }
    }
}

/// The first rows of the gold's and both answers' results.
#[derive(Debug, Clone, Serialize)]
pub struct Previews {
    pub gold: ResultPreview,
    pub a: ResultPreview,
    pub b: ResultPreview,
}

/// A question that one side got right and the other wrong.
#[derive(Debug, Clone, Serialize)]
pub struct Difference {
    pub id: usize,
    pub db_id: String,
    pub hardness: Option<Hardness>,
    /// Empty when neither side's records carry it (published verdicts
    /// without the data folder).
    pub question: String,
    pub gold: String,
    pub a: Answer,
    pub b: Answer,
    /// Set by [`attach_previews`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<Previews>,
}

/// The questions of one direction ("A right, B wrong").
#[derive(Debug, Clone, Default, Serialize)]
pub struct Direction {
    /// All of them, whatever the limit.
    pub count: usize,
    /// The first ones by id (all unless [`Comparison::limit`] cut them).
    pub questions: Vec<Difference>,
    /// How many the limit left out.
    pub left_out: usize,
}

/// A question that one side scored and the other did not.
#[derive(Debug, Clone, Serialize)]
pub struct OneSided {
    pub id: usize,
    pub db_id: String,
    pub hardness: Option<Hardness>,
    /// Whether the side that scored it got it right.
    pub correct: bool,
    /// Why the other side did not: "no record", or its status and reason.
    pub other: String,
}

/// Everything `compare` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub a: SideSummary,
    pub b: SideSummary,
    pub filters: Filters,
    /// Questions both sides scored (the McNemar n).
    pub shared: usize,
    pub both_right: usize,
    pub both_wrong: usize,
    pub a_right_b_wrong: Direction,
    pub b_right_a_wrong: Direction,
    /// Exact McNemar p-value of the two discordant counts.
    pub mcnemar_p: f64,
    pub scored_by_a_only: Vec<OneSided>,
    pub scored_by_b_only: Vec<OneSided>,
    /// Questions with a record on some side that neither side scored
    /// (database missing or damaged, gold error, no answer from the model).
    pub scored_by_neither: usize,
    /// The limit on questions shown per direction, if any.
    pub limit: Option<usize>,
    /// Rows shown per result in the previews.
    pub preview_rows: Option<usize>,
}

/// Why a record of one side does not count: "no record" or "skipped: ...".
fn unscored_reason(r: Option<&RunRecord>) -> String {
    match r {
        None => "no record".into(),
        Some(r) => match &r.error {
            Some(e) => format!("{}: {e}", r.status.as_str()),
            None => r.status.as_str().into(),
        },
    }
}

fn by_id(row: &Row) -> BTreeMap<usize, &RunRecord> {
    row.records.iter().map(|r| (r.id, r)).collect()
}

fn scored(r: Option<&RunRecord>) -> Option<&RunRecord> {
    r.filter(|r| r.status.is_scored())
}

fn right(r: &RunRecord) -> bool {
    r.exec == Some(true)
}

/// Compares `a` with `b` on the questions `filters` keeps. An error when
/// the two disagree on which database a question asks about: they are then
/// not on the same split.
pub fn compare(a: &Row, b: &Row, filters: &Filters) -> Result<Comparison> {
    let (ra, rb) = (by_id(a), by_id(b));
    let mut ids: Vec<usize> = ra.keys().chain(rb.keys()).copied().collect();
    ids.sort_unstable();
    ids.dedup();
    let side = |row: &Row| SideSummary {
        label: row.label.clone(),
        strategy: row.strategy.clone(),
        source: row.source.clone(),
        origin: String::new(),
        records: 0,
        scored: 0,
        correct: 0,
    };
    let mut out = Comparison {
        a: side(a),
        b: side(b),
        filters: filters.clone(),
        shared: 0,
        both_right: 0,
        both_wrong: 0,
        a_right_b_wrong: Direction::default(),
        b_right_a_wrong: Direction::default(),
        mcnemar_p: 1.0,
        scored_by_a_only: Vec::new(),
        scored_by_b_only: Vec::new(),
        scored_by_neither: 0,
        limit: None,
        preview_rows: None,
    };
    for id in ids {
        let (x, y) = (ra.get(&id).copied(), rb.get(&id).copied());
        if let (Some(x), Some(y)) = (x, y)
            && x.db_id != y.db_id
        {
            bail!(
                "question {id} asks about database {} in {} but {} in {}: the two are not on the same split \
                 (compare runs of one split; give --split for a predictions file)",
                x.db_id,
                a.label,
                y.db_id,
                b.label
            );
        }
        let any = x.or(y).expect("an id of one side");
        let hardness = x.and_then(|r| r.hardness).or(y.and_then(|r| r.hardness));
        if !filters.keeps(&any.db_id, hardness) {
            continue;
        }
        for (r, s) in [(x, &mut out.a), (y, &mut out.b)] {
            if let Some(r) = r {
                s.records += 1;
                if r.status.is_scored() {
                    s.scored += 1;
                    s.correct += usize::from(right(r));
                }
            }
        }
        match (scored(x), scored(y)) {
            (Some(x), Some(y)) => {
                out.shared += 1;
                let dir = match (right(x), right(y)) {
                    (true, true) => {
                        out.both_right += 1;
                        continue;
                    }
                    (false, false) => {
                        out.both_wrong += 1;
                        continue;
                    }
                    (true, false) => &mut out.a_right_b_wrong,
                    (false, true) => &mut out.b_right_a_wrong,
                };
                let text = |f: fn(&RunRecord) -> &String| {
                    let t = f(x);
                    if t.is_empty() { f(y).clone() } else { t.clone() }
                };
                dir.count += 1;
                dir.questions.push(Difference {
                    id,
                    db_id: x.db_id.clone(),
                    hardness,
                    question: text(|r| &r.question),
                    gold: text(|r| &r.gold),
                    a: Answer::of(x),
                    b: Answer::of(y),
                    rows: None,
                });
            }
            (Some(s), None) | (None, Some(s)) => {
                let (list, other) = if x.is_some_and(|r| r.status.is_scored()) {
                    (&mut out.scored_by_a_only, y)
                } else {
                    (&mut out.scored_by_b_only, x)
                };
                list.push(OneSided {
                    id,
                    db_id: s.db_id.clone(),
                    hardness,
                    correct: right(s),
                    other: unscored_reason(other),
                });
            }
            (None, None) => out.scored_by_neither += 1,
        }
    }
    out.mcnemar_p = mcnemar_exact_p(out.a_right_b_wrong.count, out.b_right_a_wrong.count);
    Ok(out)
}

impl Comparison {
    /// Keeps the first `limit` questions of each direction (by id); the
    /// counts stay whole and `left_out` says how many were cut.
    pub fn truncate(&mut self, limit: usize) {
        self.limit = Some(limit);
        for d in [&mut self.a_right_b_wrong, &mut self.b_right_a_wrong] {
            d.left_out = d.questions.len().saturating_sub(limit);
            d.questions.truncate(limit);
        }
    }

    /// The questions shown, both directions.
    pub fn differences(&self) -> impl Iterator<Item = &Difference> {
        self.a_right_b_wrong
            .questions
            .iter()
            .chain(&self.b_right_a_wrong.questions)
    }
}

/// Runs the gold's and both answers' SQL of every shown question through
/// the sandbox and keeps the first `limit` rows of each. `spider` is the
/// data folder, or why there is none: then every preview says so.
pub fn attach_previews(cmp: &mut Comparison, spider: std::result::Result<&Spider, &str>, limit: usize) {
    cmp.preview_rows = Some(limit);
    let unavailable = |why: String| ResultPreview {
        rows: Vec::new(),
        total: 0,
        error: Some(why),
    };
    let run = |db_id: &str, sql: Option<&str>, missing: &str| -> ResultPreview {
        match (spider, sql.filter(|s| !s.trim().is_empty())) {
            (Err(why), _) => unavailable(format!("rows unavailable: {why}")),
            (_, None) => unavailable(missing.into()),
            (Ok(spider), Some(sql)) => preview(spider, db_id, sql, limit),
        }
    };
    for d in cmp
        .a_right_b_wrong
        .questions
        .iter_mut()
        .chain(cmp.b_right_a_wrong.questions.iter_mut())
    {
        let no_gold = "no gold SQL (published verdicts do not carry it; give --data to read it from the split)";
        d.rows = Some(Previews {
            gold: run(&d.db_id, Some(&d.gold), no_gold),
            a: run(&d.db_id, d.a.sql.as_deref(), "no SQL"),
            b: run(&d.db_id, d.b.sql.as_deref(), "no SQL"),
        });
    }
}

fn percent(correct: usize, n: usize) -> String {
    if n == 0 {
        "-".into()
    } else {
        format!("{:.1}%", 100.0 * correct as f64 / n as f64)
    }
}

/// A result cell as people read it: strings bare, NULL for null.
fn cell(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "NULL".into(),
        v => v.to_string(),
    }
}

fn rows_word(n: usize) -> &'static str {
    if n == 1 { "row" } else { "rows" }
}

/// The three results side by side: one column each, one line per row.
fn previews_table(p: &Previews, width: u16) -> String {
    use comfy_table::{ContentArrangement, Table, presets};
    let cols = [("gold", &p.gold), ("A", &p.a), ("B", &p.b)];
    let mut t = Table::new();
    t.load_style(presets::UTF8_FULL_CONDENSED);
    t.set_content_arrangement(ContentArrangement::Dynamic);
    t.set_width(width);
    t.set_header(cols.iter().map(|(name, r)| match &r.error {
        Some(_) => format!("{name}: no result"),
        None => format!("{name}: {} {}", r.total, rows_word(r.total)),
    }));
    let body = |r: &ResultPreview| -> Vec<String> {
        if let Some(e) = &r.error {
            return vec![e.clone()];
        }
        let mut lines: Vec<String> = r
            .rows
            .iter()
            .map(|row| row.iter().map(cell).collect::<Vec<_>>().join(" | "))
            .collect();
        if r.total > r.rows.len() {
            lines.push(format!("… {} more", r.total - r.rows.len()));
        }
        if r.total == 0 {
            lines.push("(no rows)".into());
        }
        lines
    };
    let bodies: Vec<Vec<String>> = cols.iter().map(|(_, r)| body(r)).collect();
    let height = bodies.iter().map(Vec::len).max().unwrap_or(0);
    for i in 0..height {
        t.add_row(bodies.iter().map(|b| b.get(i).cloned().unwrap_or_default()));
    }
    t.to_string()
}

/// Text that may hold several lines, indented after the first.
fn indented(text: &str, by: usize) -> String {
    text.trim_end().replace('\n', &format!("\n{}", " ".repeat(by)))
}

fn answer_lines(out: &mut String, side: &str, a: &Answer) {
    let status = a.status.as_str();
    let sql = a.sql.as_deref().filter(|s| !s.trim().is_empty()).unwrap_or("(no SQL)");
    out.push_str(&format!("{side} {status:<10} {}\n", indented(sql, 13)));
    if let Some(e) = &a.error {
        out.push_str(&format!("  {:<10} {}\n", "error", indented(e, 13)));
    }
    if let Some(m) = &a.model_failure {
        out.push_str(&format!("  {:<10} {}\n", "no SQL", indented(m, 13)));
    }
}

fn one_sided_lines(out: &mut String, list: &[OneSided], side: &str, other: &str) {
    if list.is_empty() {
        return;
    }
    const SHOWN: usize = 20;
    let right = list.iter().filter(|o| o.correct).count();
    out.push_str(&format!(
        "scored by {side} only: {} ({side} right on {right})\n",
        list.len()
    ));
    let mut reasons: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for o in list {
        reasons.entry(o.other.as_str()).or_default().push(o.id);
    }
    for (why, ids) in reasons {
        let shown: Vec<String> = ids.iter().take(SHOWN).map(|i| i.to_string()).collect();
        let more = if ids.len() > SHOWN {
            format!(", … {} more (--format json lists all)", ids.len() - SHOWN)
        } else {
            String::new()
        };
        out.push_str(&format!(
            "  {other} {why} ({}): {}{more}\n",
            ids.len(),
            shown.join(", ")
        ));
    }
}

/// The comparison for a terminal: the counts, then each question as a block.
/// `width` is the width of the result tables.
pub fn render_terminal(c: &Comparison, width: u16) -> String {
    let mut out = String::new();
    for (name, s) in [("A", &c.a), ("B", &c.b)] {
        out.push_str(&format!(
            "{name}: {}  [{}: {}]  {} of {} scored right ({})\n",
            s.label,
            s.origin,
            s.source.display(),
            s.correct,
            s.scored,
            percent(s.correct, s.scored)
        ));
    }
    if !c.filters.is_empty() {
        out.push_str(&format!("filters: {}\n", c.filters.describe()));
    }
    out.push_str(&format!(
        "A right, B wrong: {} · B right, A wrong: {} · shared {} · McNemar {}\n",
        c.a_right_b_wrong.count,
        c.b_right_a_wrong.count,
        c.shared,
        format_p(c.mcnemar_p)
    ));
    out.push_str(&format!(
        "both right: {} · both wrong: {} · scored by A only: {} · by B only: {} · by neither: {}\n",
        c.both_right,
        c.both_wrong,
        c.scored_by_a_only.len(),
        c.scored_by_b_only.len(),
        c.scored_by_neither
    ));
    one_sided_lines(&mut out, &c.scored_by_a_only, "A", "B");
    one_sided_lines(&mut out, &c.scored_by_b_only, "B", "A");
    for (title, d) in [
        ("A right, B wrong", &c.a_right_b_wrong),
        ("B right, A wrong", &c.b_right_a_wrong),
    ] {
        out.push_str(&format!("\n━━ {title}: {} ━━\n", d.count));
        for q in &d.questions {
            let hardness = q.hardness.map(|h| h.as_str()).unwrap_or("hardness unknown");
            out.push_str(&format!("\n#{} · {} · {hardness}\n", q.id, q.db_id));
            let question = if q.question.is_empty() {
                "(not in the records; give --data to read it from the split)"
            } else {
                &q.question
            };
            out.push_str(&format!("question     {}\n", indented(question, 13)));
            let gold = if q.gold.is_empty() {
                "(not in the records)"
            } else {
                &q.gold
            };
            out.push_str(&format!("gold         {}\n", indented(gold, 13)));
            answer_lines(&mut out, "A", &q.a);
            answer_lines(&mut out, "B", &q.b);
            match &q.rows {
                // No data folder: one line, not three copies of the reason.
                Some(p) if p.gold.error.is_some() && p.gold.error == p.a.error && p.gold.error == p.b.error => {
                    let why = p.gold.error.as_deref().unwrap_or_default();
                    out.push_str(&format!("rows         {}\n", indented(why, 13)));
                }
                Some(p) => {
                    out.push_str(&previews_table(p, width));
                    out.push('\n');
                }
                None => {}
            }
        }
        if d.left_out > 0 {
            out.push_str(&format!(
                "\n… {} more {title} left out (--limit {}; the counts above are whole)\n",
                d.left_out,
                c.limit.unwrap_or(0)
            ));
        }
    }
    out
}
