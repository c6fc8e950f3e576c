//! The first rows of a query's result, for people to read (`compare`, the
//! HTML report). Records keep verdicts, not results, so the rows are
//! computed again from the database, through the same sandbox that scoring
//! uses: predicted SQL stays untrusted here too (read-only files, a time
//! limit, bounded rows and bytes).

use crate::dataset::Spider;
use crate::exec::sandbox::{Limits, Outcome, with_sandbox};
use serde::Serialize;
use std::time::Duration;

/// Rows shown per result unless asked otherwise.
pub const DEFAULT_PREVIEW_ROWS: usize = 5;

/// What running a query gave, cut to its first rows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResultPreview {
    /// The first rows, each cell as JSON (numbers stay numbers).
    pub rows: Vec<Vec<serde_json::Value>>,
    /// How many rows the result has (at most the preview limit's cap).
    pub total: usize,
    /// Why there are no rows: the query failed, timed out, or the database
    /// is missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The limits of a preview: the scoring limits, but shorter and smaller,
/// since nothing is judged from it.
fn preview_limits() -> Limits {
    Limits {
        timeout: Duration::from_secs(5),
        max_rows: 100_000,
        max_bytes: 16 << 20,
    }
}

/// Runs `sql` on the database's own file (the first of its folder) and
/// keeps the first `limit` rows.
pub fn preview(spider: &Spider, db_id: &str, sql: &str, limit: usize) -> ResultPreview {
    let failed = |error: String| ResultPreview {
        rows: Vec::new(),
        total: 0,
        error: Some(error),
    };
    let Some(file) = spider.database_files(db_id).into_iter().next() else {
        return failed(format!("database {db_id} is not in {}", spider.root.display()));
    };
    if let Err(why) = crate::dataset::db::check_database_file(&file) {
        return failed(format!("database file {} is damaged: {why}", file.display()));
    }
    match with_sandbox(|s| s.execute(&file, sql, &preview_limits())) {
        Outcome::Rows(rows) => ResultPreview {
            total: rows.len(),
            rows: rows
                .iter()
                .take(limit)
                .map(|r| r.iter().map(|v| v.to_json()).collect())
                .collect(),
            error: None,
        },
        Outcome::Error(e) => failed(e),
        Outcome::Timeout => failed("timed out".into()),
        Outcome::TooManyRows => failed("more than 100,000 rows".into()),
    }
}
