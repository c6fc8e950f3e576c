//! Spider 1.0 in its official layout: `dev.json`, `train_spider.json`,
//! `train_others.json`, `tables.json`, `dev_gold.sql`, `train_gold.sql` and
//! `database/<db_id>/<db_id>.sqlite`.

pub mod db;
pub mod fetch;
pub mod predictions;
pub mod schema;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::path::{Path, PathBuf};

pub use db::DbInfo;
pub use schema::{DbSchema, SchemaSet};

/// Environment variable naming the data folder when `--data` is not given.
pub const DATA_ENV: &str = "SPIDER_DATA";
/// Data folder used when neither `--data` nor `$SPIDER_DATA` is set.
pub const DEFAULT_DATA_DIR: &str = "spider_data";

/// Resolves the data folder: `--data`, else `$SPIDER_DATA`, else `spider_data/`.
pub fn resolve_data_dir(flag: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    match std::env::var_os(DATA_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(DEFAULT_DATA_DIR),
    }
}

/// A split of Spider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// dev.json (1034 questions)
    Dev,
    /// train_spider.json (7000 questions)
    Train,
    /// train_others.json (1659 questions), when present
    TrainOthers,
}

impl Split {
    /// The split that [`Split::name`] names ("dev", "train", "train_others").
    pub fn from_name(name: &str) -> Option<Split> {
        [Split::Dev, Split::Train, Split::TrainOthers]
            .into_iter()
            .find(|s| s.name() == name)
    }

    pub fn file_name(self) -> &'static str {
        match self {
            Split::Dev => "dev.json",
            Split::Train => "train_spider.json",
            Split::TrainOthers => "train_others.json",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Split::Dev => "dev",
            Split::Train => "train",
            Split::TrainOthers => "train_others",
        }
    }

    /// The gold file beside the split's JSON file.
    pub fn gold_file_name(self) -> &'static str {
        self.gold_file().0
    }

    /// The official gold file and the line this split starts at in it.
    fn gold_file(self) -> (&'static str, usize) {
        match self {
            Split::Dev => ("dev_gold.sql", 0),
            Split::Train => ("train_gold.sql", 0),
            Split::TrainOthers => ("train_gold.sql", 7000),
        }
    }
}

/// One question of a split.
#[derive(Debug, Clone)]
pub struct Example {
    /// 0-based index in the split file.
    pub id: usize,
    pub db_id: String,
    pub question: String,
    /// Gold SQL: from the official `*_gold.sql` file when it is there (that is
    /// what the official evaluator reads), else the `query` field.
    pub gold: String,
}

#[derive(Deserialize)]
struct RawExample {
    db_id: String,
    query: String,
    question: String,
}

/// A Spider data folder.
#[derive(Debug, Clone)]
pub struct Spider {
    pub root: PathBuf,
}

impl Spider {
    /// Checks that `root` looks like a Spider folder.
    pub fn open(root: &Path) -> Result<Spider> {
        if !root.join("tables.json").is_file() {
            bail!(
                "{} is not a Spider data folder (no tables.json). Pass --data DIR or set ${DATA_ENV} \
                 to the folder that holds dev.json, tables.json and database/ (see spider_data/README.md)",
                root.display()
            );
        }
        Ok(Spider {
            root: root.to_path_buf(),
        })
    }

    pub fn tables_path(&self) -> PathBuf {
        self.root.join("tables.json")
    }

    pub fn load_schemas(&self) -> Result<SchemaSet> {
        SchemaSet::load(&self.tables_path())
    }

    /// The folder of one database.
    pub fn database_dir(&self, db_id: &str) -> PathBuf {
        self.root.join("database").join(db_id)
    }

    /// The database files of `db_id`: every file in its folder whose name
    /// contains `.sqlite`, as the official evaluator collects them (one for
    /// Spider; several for a test suite). Empty when the database is missing.
    pub fn database_files(&self, db_id: &str) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(self.database_dir(db_id)) else {
            return vec![];
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".sqlite") && e.path().is_file())
            .map(|e| e.path())
            .collect();
        files.sort();
        // The database's own file first: it is the one the schema is read from.
        let own = self.database_dir(db_id).join(format!("{db_id}.sqlite"));
        if let Some(pos) = files.iter().position(|f| *f == own) {
            let f = files.remove(pos);
            files.insert(0, f);
        }
        files
    }

    /// Loads a split, with gold SQL from the official gold file when present.
    pub fn load_split(&self, split: Split) -> Result<Vec<Example>> {
        Ok(self.load_split_with_source(split)?.0)
    }

    /// Loads a split and says where its gold SQL came from.
    pub fn load_split_with_source(&self, split: Split) -> Result<(Vec<Example>, GoldSource)> {
        let path = self.root.join(split.file_name());
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "cannot read {} (the {} split); is the Spider download complete?",
                path.display(),
                split.name()
            )
        })?;
        let raw: Vec<RawExample> =
            serde_json::from_str(&text).with_context(|| format!("{} is not a Spider question file", path.display()))?;
        let (gold, source) = match self.gold_lines(split, &raw) {
            Ok((lines, path)) => (Some(lines), GoldSource::GoldFile(path)),
            Err(why) => (None, GoldSource::QueryField(why)),
        };
        let examples = raw
            .into_iter()
            .enumerate()
            .map(|(id, r)| Example {
                id,
                gold: gold.as_ref().map(|g| g[id].clone()).unwrap_or(r.query),
                db_id: r.db_id,
                question: r.question,
            })
            .collect();
        Ok((examples, source))
    }

    /// Gold SQL lines for the split from the official gold file, when it
    /// exists and lines up with the split (same db_id on every line); else
    /// why not.
    fn gold_lines(&self, split: Split, raw: &[RawExample]) -> std::result::Result<(Vec<String>, PathBuf), String> {
        let (name, offset) = split.gold_file();
        let path = self.root.join(name);
        let text = std::fs::read_to_string(&path).map_err(|_| format!("no {name}"))?;
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        if lines.len() < offset + raw.len() {
            return Err(format!(
                "{name} has {} lines, too few for {}",
                lines.len(),
                split.file_name()
            ));
        }
        let mut gold = Vec::with_capacity(raw.len());
        for (i, r) in raw.iter().enumerate() {
            let line = lines[offset + i].trim();
            let (sql, db) = line.rsplit_once('\t').unwrap_or((line, ""));
            if db != r.db_id {
                return Err(format!(
                    "{name} line {} is on database {db:?} but {} question {i} is on {:?}: the files do not line up",
                    offset + i + 1,
                    split.file_name(),
                    r.db_id
                ));
            }
            gold.push(sql.trim().to_string());
        }
        Ok((gold, path))
    }
}

/// Where a split's gold SQL comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GoldSource {
    /// The official gold file, line by line.
    GoldFile(PathBuf),
    /// The `query` field of the question file, and why the gold file was not used.
    QueryField(String),
}

impl std::fmt::Display for GoldSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GoldSource::GoldFile(p) => write!(f, "gold SQL from {}", p.display()),
            GoldSource::QueryField(why) => write!(f, "gold SQL from the query field ({why})"),
        }
    }
}
