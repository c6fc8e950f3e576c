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
        Format::Csv | Format::Json => csv_text(header, rows),
        Format::Markdown => {
            let numeric = "---:|".repeat(header.len().saturating_sub(1));
            let line = |cells: &mut dyn Iterator<Item = &str>| {
                format!("| {} |\n", cells.map(markdown_cell).collect::<Vec<_>>().join(" | "))
            };
            let mut out = line(&mut header.iter().copied()) + &format!("|---|{numeric}\n");
            for r in rows {
                out.push_str(&line(&mut r.iter().map(String::as_str)));
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

/// A Markdown table cell: a `|` would end the cell and a line break the
/// row, so they are escaped (GitHub-flavoured Markdown's `\|`, and `<br>`).
pub fn markdown_cell(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace("\r\n", "<br>")
        .replace('\n', "<br>")
}

/// CSV through the csv crate: fields with commas, quotes or line breaks are
/// quoted.
pub fn csv_text<S: AsRef<str>>(header: &[&str], rows: &[Vec<S>]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(header).expect("writes to memory");
    for r in rows {
        w.write_record(r.iter().map(|c| c.as_ref())).expect("writes to memory");
    }
    String::from_utf8(w.into_inner().expect("writes to memory")).expect("CSV of UTF-8 text")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_cells_cannot_break_the_table() {
        let rows = vec![vec!["a | b\nc".to_string(), "1".to_string()]];
        let md = render_grid(&["strategy", "n"], &rows, Format::Markdown, "");
        assert_eq!(md.lines().nth(2), Some("| a \\| b<br>c | 1 |"), "{md}");
    }

    #[test]
    fn csv_quotes_labels_with_commas_and_quotes() {
        let rows = vec![vec!["zero-shot (gpt, run \"a\")".to_string(), "3".to_string()]];
        let out = csv_text(&["strategy", "n"], &rows);
        assert_eq!(out, "strategy,n\n\"zero-shot (gpt, run \"\"a\"\")\",3\n");
        let mut r = csv::Reader::from_reader(out.as_bytes());
        let back: Vec<csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
        assert_eq!(&back[0][0], "zero-shot (gpt, run \"a\")");
    }
}
