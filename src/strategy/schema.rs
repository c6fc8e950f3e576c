//! Schema rendering: the database as the model sees it.

use crate::dataset::DbInfo;
use crate::dataset::schema::DbSchema;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// `CREATE TABLE` statements with primary and foreign keys (names as in the
/// database, types from the SQLite file when it is there), optionally
/// followed by N sample rows per table. Each (database, rows) is rendered
/// once per run.
#[derive(Default)]
pub struct SchemaCache {
    rendered: Mutex<HashMap<(String, usize), Arc<str>>>,
}

impl SchemaCache {
    pub fn render(&self, db: &DbInfo, sample_rows: usize) -> Arc<str> {
        let key = (db.db_id.clone(), sample_rows);
        if let Some(text) = self.rendered.lock().expect("schema cache").get(&key) {
            return text.clone();
        }
        let text: Arc<str> = render_create_tables(&db.schema, db.sqlite.as_deref(), sample_rows).into();
        self.rendered.lock().expect("schema cache").insert(key, text.clone());
        text
    }
}

fn quote_ident(name: &str) -> String {
    if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !name.starts_with(|c: char| c.is_ascii_digit()) {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// Declared column types from the SQLite file, by lower-cased table and column.
fn sqlite_types(conn: &rusqlite::Connection, table: &str) -> HashMap<String, String> {
    let Ok(mut stmt) = conn.prepare(&format!("PRAGMA table_info({})", quote_ident(table))) else {
        return HashMap::new();
    };
    stmt.query_map([], |r| {
        Ok((r.get::<_, String>(1)?, r.get::<_, String>(2).unwrap_or_default()))
    })
    .map(|rows| rows.flatten().map(|(c, t)| (c.to_lowercase(), t)).collect())
    .unwrap_or_default()
}

fn sample_rows(conn: &rusqlite::Connection, table: &str, n: usize) -> Option<String> {
    let mut stmt = conn
        .prepare(&format!("SELECT * FROM {} LIMIT {n}", quote_ident(table)))
        .ok()?;
    let names: Vec<String> = stmt.column_names().map(|s| s.to_string()).collect();
    let ncols = names.len();
    let rows: Vec<String> = stmt
        .query_map([], |r| {
            Ok((0..ncols)
                .map(|i| {
                    let v = match r.get_ref(i) {
                        Ok(rusqlite::types::ValueRef::Null) => "NULL".to_string(),
                        Ok(rusqlite::types::ValueRef::Integer(x)) => x.to_string(),
                        Ok(rusqlite::types::ValueRef::Real(x)) => x.to_string(),
                        Ok(rusqlite::types::ValueRef::Text(t)) => String::from_utf8_lossy(t).into_owned(),
                        Ok(rusqlite::types::ValueRef::Blob(b)) => format!("<{} bytes>", b.len()),
                        Err(_) => "?".to_string(),
                    };
                    let short: String = v.chars().take(40).collect();
                    if short.len() < v.len() {
                        format!("{short}...")
                    } else {
                        short
                    }
                })
                .collect::<Vec<_>>()
                .join(" | "))
        })
        .ok()?
        .flatten()
        .collect();
    if rows.is_empty() {
        return None;
    }
    Some(format!(
        "/*\n{} rows from {table}:\n{}\n{}\n*/",
        rows.len(),
        names.join(" | "),
        rows.join("\n")
    ))
}

/// The schema as CREATE TABLE statements.
pub fn render_create_tables(schema: &DbSchema, sqlite: Option<&std::path::Path>, rows: usize) -> String {
    let conn = sqlite.and_then(|p| crate::dataset::db::open_immutable(p).ok());
    let fks = schema.foreign_key_refs();
    let mut out = Vec::new();
    for table in schema.tables() {
        if table.columns.is_empty() {
            continue; // a table left out of this rendering
        }
        let types = conn.as_ref().map(|c| sqlite_types(c, &table.name)).unwrap_or_default();
        let mut lines: Vec<String> = table
            .columns
            .iter()
            .map(|c| {
                let ty = types
                    .get(&c.name.to_lowercase())
                    .filter(|t| !t.is_empty())
                    .cloned()
                    .unwrap_or_else(|| c.ty.to_uppercase());
                format!("  {} {}", quote_ident(&c.name), ty)
            })
            .collect();
        let pk: Vec<String> = table
            .columns
            .iter()
            .filter(|c| c.primary_key)
            .map(|c| quote_ident(&c.name))
            .collect();
        if !pk.is_empty() {
            lines.push(format!("  PRIMARY KEY ({})", pk.join(", ")));
        }
        for fk in fks.iter().filter(|f| f.from_table == table.name) {
            lines.push(format!(
                "  FOREIGN KEY ({}) REFERENCES {} ({})",
                quote_ident(&fk.from_column),
                quote_ident(&fk.to_table),
                quote_ident(&fk.to_column)
            ));
        }
        let mut block = format!("CREATE TABLE {} (\n{}\n);", quote_ident(&table.name), lines.join(",\n"));
        if rows > 0
            && let Some(sample) = conn.as_ref().and_then(|c| sample_rows(c, &table.name, rows))
        {
            block.push('\n');
            block.push_str(&sample);
        }
        out.push(block);
    }
    out.join("\n\n")
}
