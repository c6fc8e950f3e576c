//! The run folder's `predictions.jsonl`: one record per example and
//! strategy, written as soon as the example is done, so a killed process
//! loses nothing (each record is one `write`; the file is also synced to disk
//! at most every second, so a machine crash loses at most that).

use crate::eval::exact::Hardness;
use crate::eval::judge::Status;
use crate::strategy::{Candidate, TraceEvent};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

/// One example answered by one strategy. `exec`, `exact`, `hardness`,
/// `status` and `error` mean what they mean in `eval --out`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunRecord {
    pub id: usize,
    pub strategy: String,
    pub db_id: String,
    pub question: String,
    pub gold: String,
    pub pred: Option<String>,
    pub exec: Option<bool>,
    pub exact: Option<bool>,
    pub hardness: Option<Hardness>,
    pub status: Status,
    pub error: Option<String>,
    /// Why the strategy gave no SQL (model failure, or none in the answer).
    pub model_failure: Option<String>,
    pub tokens_in: u64,
    pub tokens_out: u64,
    /// Sum of the latencies of the model calls (as first measured).
    pub latency_ms: f64,
    /// Model completions the strategy used (cache hits included).
    pub calls: usize,
    pub cost_usd: f64,
    /// Cache keys of every completion used, in order.
    pub cache_keys: Vec<String>,
    /// The samples behind a vote, or the single repaired answer.
    pub candidates: Vec<Candidate>,
    /// What each step of the strategy did (absent in records written
    /// before strategies were steps).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trace: Vec<TraceEvent>,
}

pub const PREDICTIONS_FILE: &str = "predictions.jsonl";

/// Appends records to `predictions.jsonl`, each synced to disk.
pub struct Checkpoint {
    file: std::fs::File,
    path: PathBuf,
    last_sync: std::time::Instant,
}

/// How often appended records are forced to disk.
const SYNC_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

impl Checkpoint {
    /// Opens the file for appending, first cutting off a last line that a
    /// killed run left half-written.
    pub fn open(dir: &Path) -> Result<(Checkpoint, Vec<RunRecord>)> {
        let path = dir.join(PREDICTIONS_FILE);
        let (records, good_len) = read_records(&path)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        file.set_len(good_len)?;
        Ok((
            Checkpoint {
                file,
                path,
                last_sync: std::time::Instant::now(),
            },
            records,
        ))
    }

    pub fn append(&mut self, r: &RunRecord) -> Result<()> {
        let mut line = serde_json::to_vec(r)?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .with_context(|| format!("cannot write {}", self.path.display()))?;
        if self.last_sync.elapsed() >= SYNC_EVERY {
            self.sync()?;
        }
        Ok(())
    }

    pub fn sync(&mut self) -> Result<()> {
        self.file
            .sync_data()
            .with_context(|| format!("cannot sync {}", self.path.display()))?;
        self.last_sync = std::time::Instant::now();
        Ok(())
    }
}

/// The complete records of a predictions file and the byte length they
/// span (a trailing partial line is not counted).
pub fn read_records(path: &Path) -> Result<(Vec<RunRecord>, u64)> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((vec![], 0)),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut records = Vec::new();
    let mut good = 0usize;
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        if !line.ends_with(b"\n") {
            break;
        }
        match serde_json::from_slice::<RunRecord>(line) {
            Ok(r) => records.push(r),
            Err(_) => break,
        }
        good += line.len();
    }
    Ok((records, good as u64))
}

/// (strategy, id) pairs already done.
pub fn done_keys(records: &[RunRecord]) -> HashSet<(String, usize)> {
    records.iter().map(|r| (r.strategy.clone(), r.id)).collect()
}

/// Rewrites the predictions file in (strategy order, id) order, atomically.
pub fn rewrite_sorted(dir: &Path, strategy_order: &[String]) -> Result<Vec<RunRecord>> {
    let path = dir.join(PREDICTIONS_FILE);
    let (mut records, _) = read_records(&path)?;
    let rank = |s: &str| strategy_order.iter().position(|n| n == s).unwrap_or(usize::MAX);
    records.sort_by_key(|a| (rank(&a.strategy), a.id));
    let tmp = dir.join(format!("{PREDICTIONS_FILE}.tmp"));
    let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
    for r in &records {
        serde_json::to_writer(&mut out, r)?;
        out.write_all(b"\n")?;
    }
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(records)
}
