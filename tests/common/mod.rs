//! Helpers shared by the integration tests.
#![allow(dead_code)]

#[path = "fake_llm.rs"]
pub mod fake_llm;
#[path = "mutations.rs"]
pub mod mutations;

use std::path::PathBuf;

/// Whether this is a CI run: `CI` is `true` or `1`, as CI systems set it.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// Reports that `test` cannot run here, and why (`reason` says what to
/// install). Under CI, which installs everything the tests need (the Spider
/// data at ../shared/spider, `spider-bench models fetch`), this panics, so a
/// missing piece fails the test instead of passing it silently. Elsewhere
/// the caller returns and the test passes, with `SKIPPED <test>: <reason>`
/// written to the process's stderr itself: libtest captures what `print!`
/// and `eprint!` write, and shows nothing of a passing test's, but not what
/// goes to `std::io::stderr()` directly.
pub fn skip(test: &str, reason: &str) {
    if under_ci() {
        panic!(
            "{test} cannot run under CI (CI={:?}): {reason}",
            std::env::var("CI").unwrap_or_default()
        );
    }
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {reason}");
}

/// The real Spider data: `$SPIDER_DATA` when set, else `../shared/spider`
/// beside the checkout. `None` (after [`skip`]) when it is not there.
pub fn real_spider(test: &str) -> Option<PathBuf> {
    let dir = match std::env::var_os("SPIDER_DATA").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/spider"),
    };
    if dir.join("tables.json").is_file() && dir.join("dev.json").is_file() {
        return Some(dir);
    }
    skip(
        test,
        &format!(
            "the real Spider data is not in {} (set SPIDER_DATA or put it at ../shared/spider)",
            dir.display()
        ),
    );
    None
}

use spider_bench::dataset::{Example, Spider};
use spider_bench::eval::judge::JudgeConfig;
use spider_bench::eval::score::{Record, Scorer};
use std::sync::OnceLock;

/// A private copy of tests/fixtures/mini with its SQLite files built from
/// the committed schema.sql scripts (one copy per test process).
pub fn mini_spider() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mini");
        let dst = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("mini-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dst);
        copy_dir(&src, &dst);
        for entry in std::fs::read_dir(dst.join("database")).unwrap() {
            let dir = entry.unwrap().path();
            let db_id = dir.file_name().unwrap().to_string_lossy().to_string();
            let script = std::fs::read_to_string(dir.join("schema.sql")).unwrap();
            let conn = rusqlite::Connection::open(dir.join(format!("{db_id}.sqlite"))).unwrap();
            conn.execute_batch(&script).unwrap();
        }
        dst
    })
    .clone()
}

pub fn copy_dir(src: &std::path::Path, dst: &std::path::Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let to = dst.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to);
        } else {
            std::fs::copy(entry.path(), &to).unwrap();
        }
    }
}

/// Judges `pred` against `gold` on a database of the mini fixture.
pub fn judge_mini(db_id: &str, gold: &str, pred: &str, config: JudgeConfig) -> Record {
    let spider = Spider::open(&mini_spider()).unwrap();
    let example = Example {
        id: 0,
        db_id: db_id.into(),
        question: String::new(),
        gold: gold.into(),
    };
    let scorer = Scorer::new(&spider, [&example], config).unwrap();
    scorer.score_one(&example, Some(pred))
}

/// SHA-256 of every file under `dir`, by path.
pub fn hash_tree(dir: &std::path::Path) -> std::collections::BTreeMap<PathBuf, String> {
    use sha2::{Digest, Sha256};
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.clone(), hex::encode(Sha256::digest(std::fs::read(&p).unwrap())));
            }
        }
    }
    out
}

/// Serves `files` (URL path -> bytes) over HTTP on 127.0.0.1 until the
/// returned runtime is dropped; returns the base URL.
pub fn serve_files(files: Vec<(String, Vec<u8>)>) -> (String, tokio::runtime::Runtime) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut router = axum::Router::new();
    for (path, bytes) in files {
        router = router.route(&path, axum::routing::get(move || async move { bytes.clone() }));
    }
    rt.spawn(async move { axum::serve(listener, router).await.unwrap() });
    (format!("http://{addr}"), rt)
}

/// A fresh folder for one test: `<prefix>-<process>-<name>` under the
/// target's temporary folder.
pub fn scratch(prefix: &str, name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{prefix}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The mini fixture's dev questions and their gold SQL.
pub fn mini_gold() -> std::collections::HashMap<String, String> {
    let dev: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(mini_spider().join("dev.json")).unwrap()).unwrap();
    dev.iter()
        .map(|e| {
            (
                e["question"].as_str().unwrap().to_string(),
                e["query"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The `spider-bench run` command on the mini fixture against the loopback
/// server at `url`, as `mini_run_options` sets it up: folder DIR/run, cache
/// DIR/c.sqlite, a test key variable, no progress bar; then `extra`.
pub fn mini_run_command(url: &str, strategies: &str, dir: &std::path::Path, extra: &[&str]) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_spider-bench"));
    c.arg("run")
        .arg("--data")
        .arg(mini_spider())
        .args(["--strategy", strategies, "--model", "gpt-4o-mini", "--base-url", url])
        .args(["--api-key-env", "SPIDER_BENCH_TEST_KEY", "--quiet"])
        .arg("--out")
        .arg(dir.join("run"))
        .arg("--cache")
        .arg(dir.join("c.sqlite"))
        .args(extra)
        .env_remove("SPIDER_DATA");
    c
}

/// `run` on the mini fixture against the loopback server at `url`, with
/// the repository's strategies, a test key variable, fast retries, no
/// progress bar.
pub fn mini_run_options(
    url: &str,
    strategies: &[&str],
    out: &std::path::Path,
    cache: &std::path::Path,
) -> spider_bench::run::RunOptions {
    let mut o = spider_bench::run::RunOptions::new(strategies.iter().map(|s| s.to_string()).collect(), "gpt-4o-mini");
    o.data = Some(mini_spider());
    o.client.base_url = Some(url.to_string());
    o.client.api_key_env = "SPIDER_BENCH_TEST_KEY".into();
    o.out = Some(out.to_path_buf());
    o.cache.file = Some(cache.to_path_buf());
    o.progress = false;
    o.client.retry_base_ms = 10;
    o.strategies_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("strategies");
    o
}

/// A private copy of the built mini fixture (SQLite files included) in a
/// fresh folder named after the test.
pub fn mini_copy(name: &str) -> PathBuf {
    let dir = scratch("mini-copy", name);
    copy_dir(&mini_spider(), &dir);
    dir
}

/// The ways a database file is damaged in the tests, and what the reason
/// for not scoring its database must say.
pub const DAMAGE: &[(&str, &str)] = &[
    ("truncated", "is damaged: truncated: "),
    ("one_byte_short", "is damaged: truncated: "),
    ("random_bytes", "is damaged: not an SQLite database"),
    ("text_file", "is damaged: not an SQLite database"),
    ("empty", "is damaged: empty (0 bytes)"),
    ("corrupt_page", "is damaged: corrupt: "),
];

/// Damages the database file at `path` in the way `kind` (one of [`DAMAGE`]) names.
pub fn damage(path: &std::path::Path, kind: &str) {
    let good = std::fs::read(path).unwrap();
    assert!(good.len() >= 3 * 4096, "{} is too small to damage", path.display());
    // Deterministic garbage (a linear congruential generator).
    let garbage = |n: usize| -> Vec<u8> {
        let mut x: u32 = 12345;
        (0..n)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (x >> 16) as u8
            })
            .collect()
    };
    let bad = match kind {
        "truncated" => good[..good.len() / 2].to_vec(),
        "one_byte_short" => good[..good.len() - 1].to_vec(),
        "random_bytes" => garbage(good.len()),
        "text_file" => b"this is not a database\n".to_vec(),
        "empty" => vec![],
        "corrupt_page" => {
            // The cells of the third page (a table's b-tree) overwritten.
            let mut b = good.clone();
            b[2 * 4096 + 8..3 * 4096].copy_from_slice(&garbage(4096 - 8));
            b
        }
        _ => panic!("unknown damage {kind}"),
    };
    std::fs::write(path, bad).unwrap();
}

/// Makes `path` unreadable (mode 000) and says whether this process can
/// still read it (it can as root, or with CAP_DAC_OVERRIDE).
pub fn make_unreadable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o000)).unwrap();
    std::fs::File::open(path).is_ok()
}
