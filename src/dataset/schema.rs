//! Database schemas: tables.json (names, types, keys). The schema the
//! official parser reads is built from them, or from each SQLite file, by
//! [`crate::eval::parse`].

use anyhow::{Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// A primary key: one column, or several (newer tables.json files).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum PrimaryKey {
    One(usize),
    Many(Vec<usize>),
}

/// One entry of tables.json.
#[derive(Debug, Clone, Deserialize)]
pub struct DbSchema {
    pub db_id: String,
    pub table_names_original: Vec<String>,
    pub table_names: Vec<String>,
    pub column_names_original: Vec<(i64, String)>,
    pub column_names: Vec<(i64, String)>,
    pub column_types: Vec<String>,
    #[serde(default)]
    pub primary_keys: Vec<PrimaryKey>,
    #[serde(default)]
    pub foreign_keys: Vec<(usize, usize)>,
}

/// A column of a table, with the names tables.json gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// The name in the database.
    pub name: String,
    /// The natural-language name (`column_names`).
    pub natural: String,
    /// tables.json type: text, number, time, boolean, others.
    pub ty: String,
    pub primary_key: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub name: String,
    pub natural: String,
    pub columns: Vec<Column>,
}

/// `from_table.from_column` references `to_table.to_column`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKey {
    pub from_table: String,
    pub from_column: String,
    pub to_table: String,
    pub to_column: String,
}

impl DbSchema {
    /// Tables with their columns, in tables.json order.
    pub fn tables(&self) -> Vec<Table> {
        let pks = self.primary_key_columns();
        let mut tables: Vec<Table> = self
            .table_names_original
            .iter()
            .zip(&self.table_names)
            .map(|(name, natural)| Table {
                name: name.clone(),
                natural: natural.clone(),
                columns: vec![],
            })
            .collect();
        for (i, (t, c)) in self.column_names_original.iter().enumerate() {
            let Some(table) = usize::try_from(*t).ok().and_then(|t| tables.get_mut(t)) else {
                continue;
            };
            table.columns.push(Column {
                name: c.clone(),
                natural: self.column_names.get(i).map(|(_, n)| n.clone()).unwrap_or_default(),
                ty: self.column_types.get(i).cloned().unwrap_or_default(),
                primary_key: pks.contains(&i),
            });
        }
        tables
    }

    /// Foreign keys by name.
    pub fn foreign_key_refs(&self) -> Vec<ForeignKey> {
        let col = |i: usize| -> Option<(String, String)> {
            let (t, c) = self.column_names_original.get(i)?;
            let table = self.table_names_original.get(usize::try_from(*t).ok()?)?;
            Some((table.clone(), c.clone()))
        };
        self.foreign_keys
            .iter()
            .filter_map(|&(from, to)| {
                let ((from_table, from_column), (to_table, to_column)) = (col(from)?, col(to)?);
                Some(ForeignKey {
                    from_table,
                    from_column,
                    to_table,
                    to_column,
                })
            })
            .collect()
    }

    /// Column indices of every primary key column.
    pub fn primary_key_columns(&self) -> Vec<usize> {
        self.primary_keys
            .iter()
            .flat_map(|k| match k {
                PrimaryKey::One(c) => vec![*c],
                PrimaryKey::Many(cs) => cs.clone(),
            })
            .collect()
    }
}

/// All schemas of tables.json, by db_id.
#[derive(Debug, Clone, Default)]
pub struct SchemaSet {
    pub by_id: BTreeMap<String, DbSchema>,
}

impl SchemaSet {
    pub fn load(path: &Path) -> Result<SchemaSet> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let list: Vec<DbSchema> = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a Spider tables.json file", path.display()))?;
        Ok(SchemaSet {
            by_id: list.into_iter().map(|s| (s.db_id.clone(), s)).collect(),
        })
    }

    pub fn get(&self, db_id: &str) -> Option<&DbSchema> {
        self.by_id.get(db_id)
    }
}
