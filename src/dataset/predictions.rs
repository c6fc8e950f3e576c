//! Prediction files: JSONL (`{"id": N, "sql": "..."}` per line, N a 0-based
//! index into the split file) or the official text format (one SQL per line,
//! aligned with the split; text after the first TAB is ignored).

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// Predictions by example id. Examples without an entry are not scored.
#[derive(Debug, Clone, Default)]
pub struct Predictions {
    pub by_id: BTreeMap<usize, String>,
    /// Blank lines in a text file (each scored as an empty prediction).
    pub blank_lines: usize,
}

#[derive(Deserialize)]
struct JsonlRow {
    #[serde(deserialize_with = "id_number_or_string")]
    id: usize,
    #[serde(alias = "pred", alias = "prediction", alias = "query")]
    sql: Option<String>,
}

/// Ids are numbers; `"12"` is accepted too.
fn id_number_or_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Number(usize),
        Text(String),
    }
    match Id::deserialize(d)? {
        Id::Number(n) => Ok(n),
        Id::Text(t) => t
            .trim()
            .parse()
            .map_err(|_| serde::de::Error::custom(format!("id {t:?} is not a number"))),
    }
}

/// Reads a prediction file for a split of `split_len` examples.
pub fn load_predictions(path: &Path, split_len: usize) -> Result<Predictions> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read predictions {}", path.display()))?;
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let jsonl = path.extension().is_some_and(|e| e == "jsonl") || first.trim_start().starts_with('{');
    if jsonl {
        parse_jsonl(path, &text, split_len)
    } else {
        parse_text(path, &text, split_len)
    }
}

fn parse_jsonl(path: &Path, text: &str, split_len: usize) -> Result<Predictions> {
    let mut p = Predictions::default();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let row: JsonlRow = serde_json::from_str(line).with_context(|| {
            format!(
                "{} line {}: expected {{\"id\": <index>, \"sql\": \"...\"}}",
                path.display(),
                n + 1
            )
        })?;
        if row.id >= split_len {
            bail!(
                "{} line {}: id {} is out of range (the split has {split_len} examples, ids 0..{})",
                path.display(),
                n + 1,
                row.id,
                split_len - 1
            );
        }
        if p.by_id.insert(row.id, row.sql.unwrap_or_default()).is_some() {
            bail!(
                "{} line {}: id {} appears twice; each example is scored at most once",
                path.display(),
                n + 1,
                row.id
            );
        }
    }
    Ok(p)
}

fn parse_text(path: &Path, text: &str, split_len: usize) -> Result<Predictions> {
    let mut lines: Vec<&str> = text.lines().collect();
    while lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop();
    }
    if lines.len() != split_len {
        bail!(
            "{} has {} lines but the split has {split_len} questions; the text format needs one line per question \
             in split order (use JSONL with ids to score a subset)",
            path.display(),
            lines.len()
        );
    }
    let mut p = Predictions::default();
    for (id, line) in lines.into_iter().enumerate() {
        // evaluation.py: l.strip().split('\t')[0], with Python's whitespace.
        let sql = line.trim_matches(py_is_space).split('\t').next().unwrap_or("");
        if sql.is_empty() {
            p.blank_lines += 1;
        }
        p.by_id.insert(id, sql.to_string());
    }
    Ok(p)
}

/// Python's `str.isspace()`: Unicode whitespace and the separators
/// U+001C..U+001F (what `str.split()` splits on and `str.strip()` strips).
pub fn py_is_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}
