//! The run folder's `predictions.jsonl`: one record per example and
//! strategy, written as soon as the example is done, so a killed process
//! loses nothing (each record is one `write`; the file is also synced to disk
//! at most every second, so a machine crash loses at most that).
//!
//! Reading never drops a record silently: a last line without its newline
//! (a write cut short) and any line that is not a record are returned as
//! damage, with their line numbers, beside every good record. A resumed run
//! moves them to `predictions.damaged.jsonl`, keeps every other line byte for
//! byte and asks again for the records they held. When a record appears
//! twice (an `error` record, then its retry), the later one counts.

use crate::eval::exact::Hardness;
use crate::eval::judge::Status;
use crate::strategy::{Candidate, TraceEvent};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

/// One example answered by one strategy. `exec`, `exact`, `hardness`,
/// `status` and `error` mean what they mean in `eval --out`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunRecord {
    /// The record format ([`RECORD_FORMAT`]); records written before it was
    /// recorded are format 1, which reads the same.
    #[serde(default = "format_1")]
    pub v: u32,
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
    /// Completions of the record that the repetition rule stopped early
    /// (`llm::repetition`; absent when none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub loops_cut: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The format of the records this version writes. 2 added `v` and the
/// `error` status (no answer from the model, not scored).
pub const RECORD_FORMAT: u32 = 2;

fn format_1() -> u32 {
    1
}

pub const PREDICTIONS_FILE: &str = "predictions.jsonl";
/// Where a resumed run moves the lines of `predictions.jsonl` that hold no
/// record (kept, never deleted).
pub const DAMAGED_FILE: &str = "predictions.damaged.jsonl";

/// A line of a predictions file that holds no record.
#[derive(Debug, Clone)]
pub struct DamagedLine {
    /// 1-based line number.
    pub line: usize,
    pub error: String,
    pub bytes: Vec<u8>,
}

/// Everything a predictions file holds.
#[derive(Debug, Default)]
pub struct PredictionsFile {
    pub path: PathBuf,
    /// The latest record of each (strategy, id), in file order.
    pub records: Vec<RunRecord>,
    /// Lines that are not records, a last line without its newline (a
    /// write that a kill cut short) included.
    pub damaged: Vec<DamagedLine>,
    /// The exact bytes of the line of each record in `records`.
    lines: Vec<Vec<u8>>,
}

impl PredictionsFile {
    /// Reads `path` (a missing file holds nothing). Only a record written
    /// by a newer spider-bench is an error: this version cannot judge it.
    pub fn read(path: &Path) -> Result<PredictionsFile> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let mut file = PredictionsFile {
            path: path.to_path_buf(),
            ..Default::default()
        };
        let mut latest: HashMap<(String, usize), usize> = HashMap::new();
        let mut slots: Vec<Option<(RunRecord, Vec<u8>)>> = Vec::new();
        for (i, line) in bytes.split_inclusive(|&b| b == b'\n').enumerate() {
            let damaged = |error: String| DamagedLine {
                line: i + 1,
                error,
                bytes: line.to_vec(),
            };
            if !line.ends_with(b"\n") {
                file.damaged
                    .push(damaged("the line has no end (a write cut short)".into()));
                break;
            }
            if line.trim_ascii().is_empty() {
                continue;
            }
            match serde_json::from_slice::<RunRecord>(line) {
                Ok(r) if r.v > RECORD_FORMAT => anyhow::bail!(
                    "{} line {}: written by a newer spider-bench (record format {}; this one reads up to {RECORD_FORMAT}); \
                     use that version, or a newer one of this",
                    path.display(),
                    i + 1,
                    r.v
                ),
                Ok(r) => {
                    if let Some(old) = latest.insert((r.strategy.clone(), r.id), slots.len()) {
                        slots[old] = None;
                    }
                    slots.push(Some((r, line.to_vec())));
                }
                Err(e) => file.damaged.push(damaged(e.to_string())),
            }
        }
        for (r, line) in slots.into_iter().flatten() {
            file.records.push(r);
            file.lines.push(line);
        }
        Ok(file)
    }

    /// One sentence per damaged line: file, line number and what is wrong.
    pub fn damage_report(&self) -> Vec<String> {
        self.damaged
            .iter()
            .map(|d| format!("{}:{}: not a record ({})", self.path.display(), d.line, d.error))
            .collect()
    }

    /// (strategy, id) pairs with an answer: records that are not `error`.
    pub fn done_keys(&self) -> HashSet<(String, usize)> {
        self.records
            .iter()
            .filter(|r| r.status != Status::Error)
            .map(|r| (r.strategy.clone(), r.id))
            .collect()
    }

    /// Moves the damaged lines to [`DAMAGED_FILE`] beside the file and
    /// rewrites it with every other line as it was (atomically), so that the
    /// records they held are asked for again. Does nothing without damage.
    fn set_damage_aside(&mut self) -> Result<()> {
        if self.damaged.is_empty() {
            return Ok(());
        }
        let aside = self.path.with_file_name(DAMAGED_FILE);
        let mut out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&aside)
            .with_context(|| format!("cannot write {}", aside.display()))?;
        for d in &self.damaged {
            out.write_all(&d.bytes)?;
            if !d.bytes.ends_with(b"\n") {
                out.write_all(b"\n")?;
            }
        }
        out.sync_all()?;
        write_lines(&self.path, self.lines.iter())?;
        Ok(())
    }
}

/// Writes `lines` to `path` atomically (see [`crate::paths::write_atomically`]).
fn write_lines<'a>(path: &Path, lines: impl Iterator<Item = &'a Vec<u8>>) -> Result<()> {
    let bytes: Vec<u8> = lines.flatten().copied().collect();
    crate::paths::write_atomically(path, &bytes).with_context(|| format!("cannot replace {}", path.display()))
}

/// Appends records to `predictions.jsonl`, each synced to disk.
pub struct Checkpoint {
    file: std::fs::File,
    path: PathBuf,
    last_sync: std::time::Instant,
}

/// How often appended records are forced to disk.
const SYNC_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

impl Checkpoint {
    /// Opens the file for appending, first setting its damaged lines aside
    /// (a last line that a killed run left half-written, or any line that
    /// is not a record; see [`PredictionsFile::damage_report`]).
    pub fn open(dir: &Path) -> Result<(Checkpoint, PredictionsFile)> {
        let path = dir.join(PREDICTIONS_FILE);
        let mut existing = PredictionsFile::read(&path)?;
        existing.set_damage_aside()?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        Ok((
            Checkpoint {
                file,
                path,
                last_sync: std::time::Instant::now(),
            },
            existing,
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

/// Rewrites the predictions file in (strategy order, id) order, atomically,
/// each record's line as it was written; a record superseded by a later one
/// (an `error`, then its retry) is dropped. Refuses a file with damaged
/// lines (a resumed run sets them aside first).
pub fn rewrite_sorted(dir: &Path, strategy_order: &[String]) -> Result<Vec<RunRecord>> {
    let path = dir.join(PREDICTIONS_FILE);
    let file = PredictionsFile::read(&path)?;
    if let Some(first) = file.damage_report().first() {
        anyhow::bail!("{first}; rerun with --resume to set it aside and redo its record");
    }
    let rank = |s: &str| strategy_order.iter().position(|n| n == s).unwrap_or(usize::MAX);
    let mut order: Vec<usize> = (0..file.records.len()).collect();
    order.sort_by_key(|&i| (rank(&file.records[i].strategy), file.records[i].id));
    write_lines(&path, order.iter().map(|&i| &file.lines[i]))?;
    let mut records: Vec<Option<RunRecord>> = file.records.into_iter().map(Some).collect();
    Ok(order.iter().map(|&i| records[i].take().expect("each once")).collect())
}
