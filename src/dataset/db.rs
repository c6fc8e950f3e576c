//! A database as the later layers see it: its id, its schema from
//! tables.json and its SQLite file.

use super::schema::DbSchema;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct DbInfo {
    pub db_id: String,
    pub schema: DbSchema,
    /// The SQLite file, when present (needed to execute queries).
    pub sqlite: Option<PathBuf>,
}
