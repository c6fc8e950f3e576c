//! Renderings of results: the official summary of one predictions file
//! ([`crate::eval::summary::Summary`]) in the official layout, as a terminal
//! table, Markdown, CSV and JSON (this file); the comparison table of
//! several rows with its statistics ([`table`], [`stats`]) and where its
//! rows come from ([`rows`]); the questions on which two rows disagree
//! ([`compare`]); the self-contained HTML report ([`html`]); the first rows
//! of a query's result ([`preview`]).

pub mod compare;
pub mod html;
pub mod preview;
pub mod rows;
pub mod stats;
pub mod table;

use crate::eval::exact::Hardness;
use crate::eval::judge::Status;
use crate::eval::summary::{LevelCounts, Summary};
use crate::table::{Format, render_grid};

/// The summary in `format`.
pub fn render(summary: &Summary, format: Format) -> String {
    match format {
        Format::Table | Format::Markdown => grid(summary, format),
        Format::Csv => csv(summary),
        Format::Json => serde_json::to_string_pretty(summary).expect("summary serializes") + "\n",
    }
}

fn status(summary: &Summary, st: Status) -> usize {
    summary.statuses.get(st.as_str()).copied().unwrap_or(0)
}

fn columns(summary: &Summary) -> Vec<(&'static str, &LevelCounts)> {
    let mut cols: Vec<(&'static str, &LevelCounts)> =
        Hardness::ALL.iter().map(|h| (h.as_str(), &summary.levels[h])).collect();
    cols.push(("all", &summary.all));
    cols
}

/// Rows of the official layout: (label, cell per column).
fn rows(summary: &Summary) -> Vec<(String, Vec<String>)> {
    let cols = columns(summary);
    let row = |f: &dyn Fn(&LevelCounts) -> String| cols.iter().map(|(_, c)| f(c)).collect::<Vec<_>>();
    vec![
        ("count".into(), row(&|c| c.count.to_string())),
        ("execution".into(), row(&|c| format!("{:.3}", c.exec_accuracy()))),
        ("exact match".into(), row(&|c| format!("{:.3}", c.exact_accuracy()))),
        ("execution (n)".into(), row(&|c| c.exec_correct.to_string())),
        ("exact match (n)".into(), row(&|c| c.exact_correct.to_string())),
    ]
}

fn footer(summary: &Summary) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(i) = stats::wilson_interval(summary.all.exec_correct, summary.all.count) {
        lines.push(format!(
            "execution accuracy {:.3}, 95% Wilson interval [{:.3}, {:.3}] over {} scored questions",
            summary.all.exec_accuracy(),
            i.low,
            i.high,
            summary.all.count
        ));
    }
    lines.push(format!(
        "skipped: {}   gold errors: {}   timeouts: {}   exec errors: {}   empty: {}",
        status(summary, Status::Skipped),
        status(summary, Status::GoldError),
        status(summary, Status::Timeout),
        status(summary, Status::ExecError),
        status(summary, Status::Empty),
    ));
    if let Some(d) = &summary.differs_from_official {
        lines.push(format!(
            "strict vs official: {} execution verdicts differ (+{} / -{}), {} exact-match verdicts differ",
            d.exec, d.exec_gained, d.exec_lost, d.exact
        ));
    }
    lines
}

/// The official layout as a terminal table or Markdown.
fn grid(summary: &Summary, format: Format) -> String {
    let mut header = vec![""];
    header.extend(columns(summary).iter().map(|(name, _)| *name));
    let rows: Vec<Vec<String>> = rows(summary)
        .into_iter()
        .map(|(label, cells)| [vec![label], cells].concat())
        .collect();
    render_grid(&header, &rows, format, &(footer(summary).join("\n") + "\n"))
}

fn csv(summary: &Summary) -> String {
    let header = [
        "level",
        "count",
        "exec_correct",
        "exact_correct",
        "execution",
        "exact_match",
    ];
    let rows: Vec<Vec<String>> = columns(summary)
        .into_iter()
        .map(|(name, c)| {
            vec![
                name.to_string(),
                c.count.to_string(),
                c.exec_correct.to_string(),
                c.exact_correct.to_string(),
                format!("{:.6}", c.exec_accuracy()),
                format!("{:.6}", c.exact_accuracy()),
            ]
        })
        .collect();
    crate::table::csv_text(&header, &rows)
}
