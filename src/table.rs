//! Text tables in the output formats of every command: a terminal table
//! (comfy-table), Markdown or CSV (JSON is left to each caller).

use comfy_table::{Cell, CellAlignment, Table, presets};

/// Output format of a table or summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Markdown,
    Csv,
    Json,
}

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

/// Renders a table of text rows (first column left-aligned, the rest right)
/// as a terminal table, Markdown or CSV, followed by `note` (not in CSV).
/// JSON has no generic form: callers serialize their own rows.
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
