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

/// What is wrong with a database file, if anything: unreadable, empty, not
/// SQLite, truncated, or corrupt (SQLite's `quick_check` fails). Reads the file
/// only (opened read-only and immutable); never changes it.
pub fn check_database_file(path: &std::path::Path) -> Result<(), String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| format!("unreadable: {e}"))?;
    let len = file.metadata().map_err(|e| format!("unreadable: {e}"))?.len();
    if len == 0 {
        return Err("empty (0 bytes)".into());
    }
    let mut header = Vec::with_capacity(100);
    (&mut file)
        .take(100)
        .read_to_end(&mut header)
        .map_err(|e| format!("unreadable: {e}"))?;
    if !header.starts_with(b"SQLite format 3\0") {
        return Err(format!(
            "not an SQLite database: {len} bytes without the \"SQLite format 3\" header"
        ));
    }
    if header.len() < 100 {
        return Err(format!(
            "truncated: {len} bytes, shorter than the 100-byte SQLite header"
        ));
    }
    let be32 = |at: usize| u32::from_be_bytes(header[at..at + 4].try_into().expect("4 bytes"));
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65536,
        n => u64::from(n),
    };
    if page_size < 512 || !page_size.is_power_of_two() {
        return Err(format!(
            "not a valid SQLite database: page size {page_size} in its header"
        ));
    }
    // The header's page count is valid when "version-valid-for" equals the
    // change counter (every SQLite since 3.7.0 writes it).
    let pages = u64::from(be32(28));
    if be32(92) == be32(24) && pages > 0 && len < pages * page_size {
        return Err(format!(
            "truncated: {len} bytes, but its header says {pages} pages of {page_size} bytes ({} bytes)",
            pages * page_size
        ));
    }
    if len % page_size != 0 {
        return Err(format!(
            "truncated: {len} bytes is not a whole number of {page_size}-byte pages"
        ));
    }
    quick_check(path).map_err(|e| format!("corrupt: {e}"))
}

/// A read-only connection to a database file, opened `immutable` (SQLite
/// neither locks nor writes it, not even a journal): how every part of
/// spider-bench opens the data.
pub fn open_immutable(path: &std::path::Path) -> rusqlite::Result<rusqlite::Connection> {
    use rusqlite::OpenFlags;
    let uri = format!("file:{}?immutable=1", uri_path(path));
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    rusqlite::Connection::open_with_flags(uri, flags)
}

/// The absolute path of a file as the path of a SQLite `file:` URI (`%`,
/// `?` and `#` escaped; other characters, non-ASCII ones included, as
/// they are).
fn uri_path(path: &std::path::Path) -> String {
    let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = String::new();
    for c in abs.to_string_lossy().chars() {
        match c {
            '%' | '?' | '#' => out.push_str(&format!("%{:02X}", c as u32)),
            _ => out.push(c),
        }
    }
    out
}

/// `PRAGMA quick_check` on a read-only, immutable connection.
fn quick_check(path: &std::path::Path) -> Result<(), String> {
    let conn = open_immutable(path).map_err(|e| e.to_string())?;
    let mut stmt = conn.prepare("PRAGMA quick_check(3)").map_err(|e| e.to_string())?;
    let problems: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(|e| e.to_string())?
        .collect::<rusqlite::Result<_>>()
        .map_err(|e| e.to_string())?;
    match problems.as_slice() {
        [ok] if ok == "ok" => Ok(()),
        _ => Err(problems.join("; ").replace('\n', "; ")),
    }
}
