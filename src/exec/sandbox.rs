//! Safe execution of untrusted SQL against Spider's SQLite files.
//!
//! Guarantees:
//! - **No file is ever modified.** Databases are opened read-only and
//!   `immutable`. A statement that is not a pure read (DML, DDL, PRAGMA,
//!   ATTACH, transactions...) is run on a private in-memory copy that is thrown
//!   away afterwards, so it gets the same verdict as in the official
//!   evaluator (which runs it on the file) without damaging anything.
//!   ATTACH/VACUUM INTO, which would create files, are never run: they yield
//!   the empty result they yield in the official evaluator.
//! - **No hang.** A progress handler interrupts a statement at its deadline.
//! - **Bounded memory.** Results stop at a row cap (a prediction with more rows
//!   than the gold is wrong whatever its content), a byte cap, SQLite's own
//!   length limit, and a process-wide SQLite heap limit.
//!
//! Execution follows Python's `sqlite3` as the official evaluator uses it:
//! one statement per call ("You can only execute one statement at a time"
//! otherwise), a statement that returns no rows gives an empty result, and
//! TEXT is decoded as UTF-8 with invalid bytes dropped.

// The statement loop talks to SQLite's C API directly: it needs the prepare
// tail (Python's one-statement rule) and per-statement read-only checks.
#![allow(unsafe_op_in_unsafe_fn)]

use super::value::{Row, Value, decode_utf8_ignore};
use rusqlite::Connection;
use rusqlite::ffi;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::limits::Limit;
use std::collections::HashMap;
use std::ffi::{CStr, c_char, c_int};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Resource limits for one statement.
#[derive(Clone, Debug)]
pub struct Limits {
    pub timeout: Duration,
    /// Stop reading after this many rows ([`Outcome::TooManyRows`]).
    pub max_rows: usize,
    /// Stop reading after this many bytes of cell data.
    pub max_bytes: usize,
}

/// The default time limit of a statement, in seconds: long enough for every
/// dev and train gold query on a slow machine (the slowest dev gold takes
/// well under a second).
pub const DEFAULT_TIMEOUT_SECS: f64 = 30.0;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs_f64(DEFAULT_TIMEOUT_SECS),
            max_rows: 5_000_000,
            max_bytes: 512 << 20,
        }
    }
}

/// What running one statement gave.
#[derive(Clone, Debug)]
pub enum Outcome {
    Rows(Vec<Row>),
    /// SQLite (or the Python-compatible front end) refused or failed.
    Error(String),
    Timeout,
    /// More than `max_rows` rows.
    TooManyRows,
}

/// SQL functions that SQLite gained after 3.40.1, the version the official
/// verdicts were measured with: there they fail with "no such function", so
/// they are refused here too.
const FUNCTIONS_AFTER_3_40: &[&str] = &[
    "concat",
    "concat_ws",
    "octet_length",
    "timediff",
    "string_agg",
    "unistr",
    "unistr_quote",
    "if",
    "jsonb",
    "jsonb_array",
    "jsonb_extract",
    "jsonb_group_array",
    "jsonb_group_object",
    "jsonb_insert",
    "jsonb_object",
    "jsonb_patch",
    "jsonb_remove",
    "jsonb_replace",
    "jsonb_set",
    "json_pretty",
    "median",
    "percentile",
    "percentile_cont",
    "percentile_disc",
    "json_array_insert",
    "jsonb_array_insert",
];

/// Process-wide SQLite heap ceiling: allocation past it fails with SQLITE_NOMEM.
const SQLITE_HEAP_LIMIT: i64 = 4 << 30;
/// Past this, SQLite gives back page-cache memory before allocating more:
/// with one connection per database and worker thread, caches would
/// otherwise grow with every database a thread touches. The files are
/// immutable and small, so pages re-read from the OS cache cost little.
const SQLITE_SOFT_HEAP_LIMIT: i64 = 64 << 20;
/// Page cache per connection, in KiB.
const PAGE_CACHE_KIB: i64 = 1024;
/// Longest string or blob SQLite may build.
const SQLITE_MAX_LENGTH: i32 = 100_000_000;
/// Progress handler period, in virtual machine instructions.
const PROGRESS_PERIOD: c_int = 4096;

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_nanos() -> u64 {
    epoch().elapsed().as_nanos() as u64
}

/// Actions the authorizer saw while a statement was prepared.
#[derive(Default)]
struct AuthLog {
    /// Something other than reading (write, DDL, PRAGMA, ATTACH, transaction...).
    not_a_read: bool,
}

struct Db {
    conn: Connection,
    log: Arc<Mutex<AuthLog>>,
    /// The sandbox's clock at the last use, for closing the least recent.
    last_used: u64,
}

/// Connections a sandbox keeps open (one per database file).
const MAX_OPEN_DATABASES: usize = 16;

/// A per-thread executor: one read-only connection per database file, opened
/// on first use. Not `Sync`; use one per worker thread (see [`with_sandbox`]).
pub struct Sandbox {
    dbs: HashMap<PathBuf, Db>,
    clock: u64,
    deadline: Arc<AtomicU64>,
}

thread_local! {
    static SANDBOX: std::cell::RefCell<Sandbox> = std::cell::RefCell::new(Sandbox::new());
}

/// Runs `f` with this thread's sandbox.
pub fn with_sandbox<T>(f: impl FnOnce(&mut Sandbox) -> T) -> T {
    SANDBOX.with(|s| f(&mut s.borrow_mut()))
}

/// Runs blocking SQL work from async code on rayon's pool (one thread per
/// core), so that only that many sandboxes (and connection caches) exist.
pub async fn off_async<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = tokio::sync::oneshot::channel();
    rayon::spawn(move || {
        let _ = tx.send(f());
    });
    rx.await.expect("SQL work panicked")
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Sandbox {
    pub fn new() -> Self {
        static HEAP: OnceLock<()> = OnceLock::new();
        HEAP.get_or_init(|| unsafe {
            ffi::sqlite3_hard_heap_limit64(SQLITE_HEAP_LIMIT);
            ffi::sqlite3_soft_heap_limit64(SQLITE_SOFT_HEAP_LIMIT);
        });
        Sandbox {
            dbs: HashMap::new(),
            clock: 0,
            deadline: Arc::new(AtomicU64::new(u64::MAX)),
        }
    }

    /// Runs `sql` (one statement, as Python's `cursor.execute`) against the
    /// database file at `path` and fetches every row.
    pub fn execute(&mut self, path: &Path, sql: &str, limits: &Limits) -> Outcome {
        if sql.contains('\0') {
            return Outcome::Error("the query contains a null character".into());
        }
        let deadline = now_nanos().saturating_add(limits.timeout.as_nanos() as u64);
        self.deadline.store(deadline, Ordering::Relaxed);
        let outcome = match self.db(path) {
            Err(e) => Outcome::Error(format!("cannot open {}: {e}", path.display())),
            Ok(db) => {
                db.log.lock().expect("auth log").not_a_read = false;
                // SAFETY: the handle is valid while `db` lives; run_statement
                // finalizes every statement it prepares.
                match unsafe { run_statement(&db.conn, sql, limits, deadline, Some(&db.log)) } {
                    Run::Done(o) => o,
                    Run::NeedsPrivateCopy => self.execute_on_copy(path, sql, limits, deadline),
                }
            }
        };
        self.deadline.store(u64::MAX, Ordering::Relaxed);
        outcome
    }

    /// Whether `sql` is a single statement that only reads (strict mode's
    /// definition of an acceptable prediction). Errors are returned as text.
    pub fn is_single_read(&mut self, path: &Path, sql: &str) -> Result<bool, String> {
        let db = self.db(path).map_err(|e| e.to_string())?;
        db.log.lock().expect("auth log").not_a_read = false;
        unsafe { classify(&db.conn, sql, &db.log) }
    }

    fn db(&mut self, path: &Path) -> rusqlite::Result<&Db> {
        self.clock += 1;
        if !self.dbs.contains_key(path) {
            if self.dbs.len() >= MAX_OPEN_DATABASES {
                // Close the least recently used connection (and its cache).
                let oldest = self.dbs.iter().min_by_key(|(_, d)| d.last_used).map(|(p, _)| p.clone());
                if let Some(p) = oldest {
                    self.dbs.remove(&p);
                }
            }
            let mut conn = crate::dataset::db::open_immutable(path)?;
            let log = Arc::new(Mutex::new(AuthLog::default()));
            configure(&mut conn, &self.deadline, Some(log.clone()))?;
            self.dbs.insert(
                path.to_path_buf(),
                Db {
                    conn,
                    log,
                    last_used: 0,
                },
            );
        }
        let db = self.dbs.get_mut(path).expect("just inserted");
        db.last_used = self.clock;
        Ok(db)
    }

    fn execute_on_copy(&self, path: &Path, sql: &str, limits: &Limits, deadline: u64) -> Outcome {
        let copy = match private_copy(path, &self.deadline) {
            Ok(c) => c,
            Err(e) => return Outcome::Error(format!("cannot copy {}: {e}", path.display())),
        };
        match unsafe { run_statement(&copy, sql, limits, deadline, None) } {
            Run::Done(Outcome::Error(msg)) if msg.contains("too many attached databases") => {
                // ATTACH / VACUUM INTO: the official evaluator runs them (they
                // return no rows); here they would create files, so they are
                // refused and given the same empty result.
                Outcome::Rows(vec![])
            }
            Run::Done(o) => o,
            Run::NeedsPrivateCopy => unreachable!("private copies run everything"),
        }
    }
}

/// A writable in-memory copy of the database, for statements that write.
fn private_copy(path: &Path, deadline: &Arc<AtomicU64>) -> rusqlite::Result<Connection> {
    let bytes = std::fs::read(path).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    let mut conn = Connection::open_in_memory()?;
    conn.deserialize_read_exact(rusqlite::MAIN_DB, &bytes[..], bytes.len(), false)?;
    configure(&mut conn, deadline, None)?;
    Ok(conn)
}

fn configure(
    conn: &mut Connection,
    deadline: &Arc<AtomicU64>,
    log: Option<Arc<Mutex<AuthLog>>>,
) -> rusqlite::Result<()> {
    conn.set_limit(Limit::SQLITE_LIMIT_LENGTH, SQLITE_MAX_LENGTH)?;
    conn.pragma_update(None, "cache_size", -PAGE_CACHE_KIB)?;
    // No ATTACH (and so no VACUUM INTO): nothing may create a file.
    conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0)?;
    let d = deadline.clone();
    conn.progress_handler(PROGRESS_PERIOD, Some(move || now_nanos() > d.load(Ordering::Relaxed)))?;
    conn.authorizer(Some(move |ctx: AuthContext<'_>| authorize(&ctx, log.as_deref())))?;
    Ok(())
}

fn authorize(ctx: &AuthContext<'_>, log: Option<&Mutex<AuthLog>>) -> Authorization {
    let read = match ctx.action {
        AuthAction::Select | AuthAction::Read { .. } | AuthAction::Recursive => true,
        AuthAction::Function { function_name } => {
            if FUNCTIONS_AFTER_3_40
                .iter()
                .any(|f| f.eq_ignore_ascii_case(function_name))
            {
                return Authorization::Deny;
            }
            true
        }
        _ => false,
    };
    if !read && let Some(log) = log {
        log.lock().expect("auth log").not_a_read = true;
    }
    Authorization::Allow
}

/// CPython's `lstrip_sql`: what remains after whitespace and comments, if
/// anything (Python refuses a call with a second statement).
fn lstrip_sql(sql: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < sql.len() {
        match sql[i] {
            b' ' | b'\t' | 0x0c | b'\n' | b'\r' => i += 1,
            b'-' if sql.get(i + 1) == Some(&b'-') => {
                i += 2;
                while i < sql.len() && sql[i] != b'\n' {
                    i += 1;
                }
                if i >= sql.len() {
                    return None;
                }
                i += 1;
            }
            b'/' if sql.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < sql.len() && !(sql[i] == b'*' && sql.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                if i >= sql.len() {
                    return None;
                }
                i += 2;
            }
            _ => return Some(i),
        }
    }
    None
}

enum Run {
    Done(Outcome),
    /// The statement is not a pure read: run it on a private copy instead.
    NeedsPrivateCopy,
}

struct Prepared {
    stmt: *mut ffi::sqlite3_stmt,
    tail: usize,
}

unsafe fn errmsg(db: *mut ffi::sqlite3) -> String {
    CStr::from_ptr(ffi::sqlite3_errmsg(db)).to_string_lossy().into_owned()
}

unsafe fn prepare(conn: &Connection, sql: &str) -> Result<Prepared, String> {
    let db = conn.handle();
    let mut stmt = std::ptr::null_mut();
    let mut tail: *const c_char = std::ptr::null();
    let head = sql.as_ptr().cast::<c_char>();
    let Ok(len) = c_int::try_from(sql.len()) else {
        return Err("query too long".into());
    };
    let rc = ffi::sqlite3_prepare_v2(db, head, len, &mut stmt, &mut tail);
    if rc != ffi::SQLITE_OK {
        return Err(errmsg(db));
    }
    let tail = if tail.is_null() {
        sql.len()
    } else {
        tail.offset_from(head) as usize
    };
    Ok(Prepared { stmt, tail })
}

unsafe fn classify(conn: &Connection, sql: &str, log: &Mutex<AuthLog>) -> Result<bool, String> {
    let p = prepare(conn, sql)?;
    if p.stmt.is_null() {
        return Ok(false);
    }
    let readonly = ffi::sqlite3_stmt_readonly(p.stmt) != 0 && !log.lock().expect("auth log").not_a_read;
    ffi::sqlite3_finalize(p.stmt);
    // Trailing semicolons are fine; another statement is not.
    let rest = sql[p.tail..].trim_start_matches(|c: char| c == ';' || c.is_whitespace());
    Ok(readonly && lstrip_sql(rest.as_bytes()).is_none())
}

unsafe fn run_statement(
    conn: &Connection,
    sql: &str,
    limits: &Limits,
    deadline: u64,
    log: Option<&Mutex<AuthLog>>,
) -> Run {
    let p = match prepare(conn, sql) {
        Ok(p) => p,
        Err(msg) => return Run::Done(Outcome::Error(msg)),
    };
    if lstrip_sql(&sql.as_bytes()[p.tail..]).is_some() {
        ffi::sqlite3_finalize(p.stmt);
        return Run::Done(Outcome::Error("You can only execute one statement at a time.".into()));
    }
    if p.stmt.is_null() {
        return Run::Done(Outcome::Rows(vec![]));
    }
    if let Some(log) = log
        && (ffi::sqlite3_stmt_readonly(p.stmt) == 0 || log.lock().expect("auth log").not_a_read)
    {
        ffi::sqlite3_finalize(p.stmt);
        return Run::NeedsPrivateCopy;
    }
    let outcome = fetch_all(conn.handle(), p.stmt, limits, deadline);
    ffi::sqlite3_finalize(p.stmt);
    Run::Done(outcome)
}

unsafe fn fetch_all(db: *mut ffi::sqlite3, stmt: *mut ffi::sqlite3_stmt, limits: &Limits, deadline: u64) -> Outcome {
    let ncols = ffi::sqlite3_column_count(stmt);
    let mut rows = Vec::new();
    let mut bytes = 0usize;
    loop {
        match ffi::sqlite3_step(stmt) {
            ffi::SQLITE_ROW => {
                if rows.len() >= limits.max_rows {
                    return Outcome::TooManyRows;
                }
                let mut row = Vec::with_capacity(ncols as usize);
                for i in 0..ncols {
                    let v = read_cell(stmt, i);
                    bytes += match &v {
                        Value::Text(s) => s.len() + 24,
                        Value::Blob(b) => b.len() + 24,
                        _ => 16,
                    };
                    row.push(v);
                }
                if bytes > limits.max_bytes {
                    return Outcome::Error(format!("result larger than {} bytes", limits.max_bytes));
                }
                rows.push(row);
            }
            ffi::SQLITE_DONE => return Outcome::Rows(rows),
            ffi::SQLITE_INTERRUPT if now_nanos() > deadline => return Outcome::Timeout,
            _ => return Outcome::Error(errmsg(db)),
        }
    }
}

unsafe fn read_cell(stmt: *mut ffi::sqlite3_stmt, i: c_int) -> Value {
    match ffi::sqlite3_column_type(stmt, i) {
        ffi::SQLITE_INTEGER => Value::Int(ffi::sqlite3_column_int64(stmt, i)),
        ffi::SQLITE_FLOAT => Value::Real(ffi::sqlite3_column_double(stmt, i)),
        ffi::SQLITE_TEXT => {
            let p = ffi::sqlite3_column_text(stmt, i);
            let n = ffi::sqlite3_column_bytes(stmt, i) as usize;
            let bytes = if p.is_null() {
                &[][..]
            } else {
                std::slice::from_raw_parts(p, n)
            };
            Value::Text(decode_utf8_ignore(bytes))
        }
        ffi::SQLITE_BLOB => {
            let p = ffi::sqlite3_column_blob(stmt, i).cast::<u8>();
            let n = ffi::sqlite3_column_bytes(stmt, i) as usize;
            Value::Blob(if p.is_null() {
                vec![]
            } else {
                std::slice::from_raw_parts(p, n).to_vec()
            })
        }
        _ => Value::Null,
    }
}
