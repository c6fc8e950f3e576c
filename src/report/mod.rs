//! Summaries of scored examples and their renderings: the official layout
//! as a terminal table (comfy-table), Markdown, CSV and JSON.

use crate::eval::exact::Hardness;
use crate::eval::judge::{Status, Verdict};
use comfy_table::{Cell, CellAlignment, Table, presets};
use serde::Serialize;
use std::collections::BTreeMap;

/// Output format of a summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Markdown,
    Csv,
    Json,
}

/// Counts for one hardness level (or for all).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct LevelCounts {
    /// Scored examples (skipped and gold errors excluded), as the official `count`.
    pub count: usize,
    pub exec_correct: usize,
    pub exact_correct: usize,
}

impl LevelCounts {
    pub fn exec_accuracy(&self) -> f64 {
        ratio(self.exec_correct, self.count)
    }
    pub fn exact_accuracy(&self) -> f64 {
        ratio(self.exact_correct, self.count)
    }
}

fn ratio(n: usize, d: usize) -> f64 {
    if d == 0 { 0.0 } else { n as f64 / d as f64 }
}

/// The official table plus failure counts.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub levels: BTreeMap<Hardness, LevelCounts>,
    pub all: LevelCounts,
    /// Every example, scored or not, by status.
    pub statuses: BTreeMap<String, usize>,
    /// Strict mode only: examples whose verdict differs from official mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub differs_from_official: Option<OfficialDiff>,
}

/// How strict-mode verdicts differ from official ones.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct OfficialDiff {
    pub exec: usize,
    pub exact: usize,
    /// Examples whose strict execution verdict is correct but official is not.
    pub exec_gained: usize,
    /// Examples whose official execution verdict is correct but strict is not.
    pub exec_lost: usize,
}

impl Summary {
    pub fn from_verdicts<'a>(verdicts: impl IntoIterator<Item = &'a Verdict>) -> Summary {
        let mut s = Summary::default();
        for h in Hardness::ALL {
            s.levels.insert(h, LevelCounts::default());
        }
        for v in verdicts {
            *s.statuses.entry(v.status.as_str().to_string()).or_default() += 1;
            if !v.status.is_scored() {
                continue;
            }
            for counts in [Some(&mut s.all), v.hardness.and_then(|h| s.levels.get_mut(&h))]
                .into_iter()
                .flatten()
            {
                counts.count += 1;
                counts.exec_correct += usize::from(v.exec == Some(true));
                counts.exact_correct += usize::from(v.exact == Some(true));
            }
        }
        s
    }

    fn status(&self, st: Status) -> usize {
        self.statuses.get(st.as_str()).copied().unwrap_or(0)
    }

    fn columns(&self) -> Vec<(&'static str, &LevelCounts)> {
        let mut cols: Vec<(&'static str, &LevelCounts)> =
            Hardness::ALL.iter().map(|h| (h.as_str(), &self.levels[h])).collect();
        cols.push(("all", &self.all));
        cols
    }

    /// Rows of the official layout: (label, cell per column).
    fn rows(&self) -> Vec<(String, Vec<String>)> {
        let cols = self.columns();
        let row = |f: &dyn Fn(&LevelCounts) -> String| cols.iter().map(|(_, c)| f(c)).collect::<Vec<_>>();
        vec![
            ("count".into(), row(&|c| c.count.to_string())),
            ("execution".into(), row(&|c| format!("{:.3}", c.exec_accuracy()))),
            ("exact match".into(), row(&|c| format!("{:.3}", c.exact_accuracy()))),
            ("execution (n)".into(), row(&|c| c.exec_correct.to_string())),
            ("exact match (n)".into(), row(&|c| c.exact_correct.to_string())),
        ]
    }

    fn footer(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "skipped: {}   gold errors: {}   timeouts: {}   exec errors: {}   empty: {}",
            self.status(Status::Skipped),
            self.status(Status::GoldError),
            self.status(Status::Timeout),
            self.status(Status::ExecError),
            self.status(Status::Empty),
        )];
        if let Some(d) = &self.differs_from_official {
            lines.push(format!(
                "strict vs official: {} execution verdicts differ (+{} / -{}), {} exact-match verdicts differ",
                d.exec, d.exec_gained, d.exec_lost, d.exact
            ));
        }
        lines
    }

    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Table | Format::Markdown => self.render_grid(format),
            Format::Csv => self.render_csv(),
            Format::Json => serde_json::to_string_pretty(self).expect("summary serializes") + "\n",
        }
    }

    /// The official layout as a terminal table or Markdown.
    fn render_grid(&self, format: Format) -> String {
        let mut header = vec![""];
        header.extend(self.columns().iter().map(|(name, _)| *name));
        let rows: Vec<Vec<String>> = self
            .rows()
            .into_iter()
            .map(|(label, cells)| [vec![label], cells].concat())
            .collect();
        render_grid(&header, &rows, format, &(self.footer().join("\n") + "\n"))
    }

    fn render_csv(&self) -> String {
        let mut out = String::from("level,count,exec_correct,exact_correct,execution,exact_match\n");
        for (name, c) in self.columns() {
            out.push_str(&format!(
                "{name},{},{},{},{:.6},{:.6}\n",
                c.count,
                c.exec_correct,
                c.exact_correct,
                c.exec_accuracy(),
                c.exact_accuracy()
            ));
        }
        out
    }
}

/// Renders a table of text rows (first column left-aligned, the rest right)
/// as a terminal table, Markdown or CSV, followed by `note` (not in CSV).
/// JSON has no generic form: callers serialize their own rows.
/// A table row: the first column is a label, the others are numbers.
fn grid_cells<S: AsRef<str>>(values: &[S]) -> Vec<Cell> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| match i {
            0 => Cell::new(v.as_ref()),
            _ => Cell::new(v.as_ref()).set_alignment(CellAlignment::Right),
        })
        .collect()
}

pub fn render_grid(header: &[&str], rows: &[Vec<String>], format: Format, note: &str) -> String {
    match format {
        Format::Csv | Format::Json => {
            let mut out = header.join(",") + "\n";
            for r in rows {
                out.push_str(&(r.join(",") + "\n"));
            }
            out
        }
        Format::Markdown => {
            let numeric = "---:|".repeat(header.len().saturating_sub(1));
            let mut out = format!("| {} |\n|---|{numeric}\n", header.join(" | "));
            for r in rows {
                out.push_str(&format!("| {} |\n", r.join(" | ")));
            }
            format!("{out}\n{note}")
        }
        Format::Table => {
            let mut t = Table::new();
            t.load_style(presets::UTF8_FULL_CONDENSED);
            t.set_header(grid_cells(header));
            for r in rows {
                t.add_row(grid_cells(r));
            }
            format!("{t}\n{note}")
        }
    }
}
