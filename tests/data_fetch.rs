//! `spider-bench data fetch`: the zip comes from a real HTTP server on
//! 127.0.0.1 started by the test (a Spider-format zip of the mini fixture),
//! and `--from` links an existing folder.

#[path = "common/mod.rs"]
mod common;

use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

/// A zip of the mini fixture laid out like the official release (inside a
/// `spider_data/` folder), plus `extra` entries.
fn spider_zip(extra: &[(&str, &[u8])]) -> Vec<u8> {
    let mini = common::mini_spider();
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut buf);
        let options = zip::write::SimpleFileOptions::default();
        let add_dir = |zip: &mut zip::ZipWriter<_>, dir: &Path, prefix: &str| {
            let mut stack = vec![(dir.to_path_buf(), prefix.to_string())];
            while let Some((dir, prefix)) = stack.pop() {
                for entry in std::fs::read_dir(&dir).unwrap() {
                    let entry = entry.unwrap();
                    let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
                    if entry.file_type().unwrap().is_dir() {
                        stack.push((entry.path(), format!("{name}/")));
                    } else {
                        zip.start_file(name, options).unwrap();
                        zip.write_all(&std::fs::read(entry.path()).unwrap()).unwrap();
                    }
                }
            }
        };
        add_dir(&mut zip, &mini, "spider_data/");
        for (name, bytes) in extra {
            zip.start_file(*name, options).unwrap();
            zip.write_all(bytes).unwrap();
        }
        zip.finish().unwrap();
    }
    buf.into_inner()
}

fn serve(files: Vec<(&str, Vec<u8>)>) -> (String, tokio::runtime::Runtime) {
    common::serve_files(files.into_iter().map(|(p, b)| (p.to_string(), b)).collect())
}

fn spider_bench(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_spider-bench"))
        .args(args)
        .arg("--dir")
        .arg(dir)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[test]
fn the_zip_is_downloaded_verified_and_extracted() {
    let zip = spider_zip(&[("__MACOSX/spider_data/._dev.json", b"junk")]);
    let sha = hex::encode(Sha256::digest(&zip));
    let (url, _rt) = serve(vec![("/spider.zip", zip)]);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("spider_data");
    let out = spider_bench(
        &["data", "fetch", "--url", &format!("{url}/spider.zip"), "--sha256", &sha],
        &dir,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains(&sha), "the hash is reported: {}", stderr(&out));
    for f in [
        "dev.json",
        "tables.json",
        "dev_gold.sql",
        "database/concert_hall/concert_hall.sqlite",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    assert!(!dir.join("__MACOSX").exists() && !dir.join(".download").exists());
    // The fetched folder is usable: the gold scores 100%.
    let eval = Command::new(env!("CARGO_BIN_EXE_spider-bench"))
        .args(["eval", "--format", "json", "--data"])
        .arg(&dir)
        .arg("--pred")
        .arg(dir.join("dev_gold.sql"))
        .output()
        .unwrap();
    let summary: serde_json::Value = serde_json::from_slice(&eval.stdout).unwrap();
    assert_eq!(summary["all"]["exec_correct"], summary["all"]["count"], "{summary}");
    // Idempotent: a second fetch leaves it alone.
    let again = spider_bench(&["data", "fetch", "--url", "http://127.0.0.1:9/never"], &dir);
    assert!(again.status.success() && stderr(&again).contains("already holds Spider"));
}

#[test]
fn a_zip_with_another_hash_is_refused_and_nothing_is_placed() {
    let zip = spider_zip(&[]);
    let (url, _rt) = serve(vec![("/spider.zip", zip)]);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("spider_data");
    let wrong = "0".repeat(64);
    let out = spider_bench(
        &[
            "data",
            "fetch",
            "--url",
            &format!("{url}/spider.zip"),
            "--sha256",
            &wrong,
        ],
        &dir,
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("refusing it"), "{}", stderr(&out));
    assert!(!dir.join("dev.json").exists() && !dir.join(".download/spider.zip").exists());
}

#[test]
fn an_error_page_and_an_unsafe_zip_are_clear_failures() {
    let evil = spider_zip(&[("spider_data/../../escaped.txt", b"x")]);
    let (url, _rt) = serve(vec![
        ("/page", b"<html>quota exceeded</html>".to_vec()),
        ("/evil.zip", evil),
    ]);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a/spider_data");
    let out = spider_bench(&["data", "fetch", "--url", &format!("{url}/page")], &dir);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not a zip archive"), "{}", stderr(&out));

    let out = spider_bench(&["data", "fetch", "--url", &format!("{url}/evil.zip")], &dir);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("unsafe path"), "{}", stderr(&out));
    assert!(!tmp.path().join("escaped.txt").exists() && !tmp.path().join("a/escaped.txt").exists());

    let unreachable = spider_bench(&["data", "fetch", "--url", "http://127.0.0.1:9/spider.zip"], &dir);
    assert!(!unreachable.status.success());
    assert!(
        stderr(&unreachable).contains("cannot reach"),
        "{}",
        stderr(&unreachable)
    );
}

#[test]
fn from_links_an_existing_copy() {
    let mini = common::mini_spider();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("spider_data");
    let out = spider_bench(&["data", "fetch", "--from", mini.to_str().unwrap()], &dir);
    assert!(out.status.success(), "{}", stderr(&out));
    let link = std::fs::symlink_metadata(dir.join("database")).unwrap();
    assert!(link.file_type().is_symlink());
    assert!(dir.join("database/concert_hall/concert_hall.sqlite").is_file());

    let copied = tmp.path().join("copy");
    let out = spider_bench(&["data", "fetch", "--copy", "--from", mini.to_str().unwrap()], &copied);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !std::fs::symlink_metadata(copied.join("database"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        std::fs::read(copied.join("tables.json")).unwrap(),
        std::fs::read(mini.join("tables.json")).unwrap()
    );

    let not_spider = spider_bench(
        &["data", "fetch", "--from", tmp.path().to_str().unwrap()],
        &tmp.path().join("x"),
    );
    assert!(!not_spider.status.success());
    assert!(
        stderr(&not_spider).contains("is not a Spider folder"),
        "{}",
        stderr(&not_spider)
    );
}
