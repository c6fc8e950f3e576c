//! `spider-bench data fetch`: puts Spider 1.0 in the data folder, either
//! from the official zip (downloaded, hashed, checked, extracted) or from
//! an existing copy (`--from DIR`, linked or copied).

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

/// The official Spider 1.0 release (spider_data.zip, linked from
/// https://yale-lily.github.io/spider), fetched past Google Drive's
/// virus-scan page. Its sha256 is not pinned here: this project's machines
/// cannot reach Google Drive, so it was never measured; pass `--sha256` to
/// pin the one `data fetch` prints.
pub const OFFICIAL_URL: &str =
    "https://drive.usercontent.google.com/download?id=1403EGqzIDoHMdQF4c9Bkyl7dZLZ5Wt6J&export=download&confirm=t";

/// The files a Spider folder must hold to be used.
const REQUIRED: &[&str] = &["dev.json", "tables.json", "database"];

#[derive(Debug, Clone, clap::Args)]
pub struct FetchOptions {
    /// Data folder to fill.
    #[arg(long, default_value = super::DEFAULT_DATA_DIR)]
    pub dir: PathBuf,
    /// Where the zip is (default: the official release).
    #[arg(long, conflicts_with = "from")]
    pub url: Option<String>,
    /// Expected sha256 of the zip; another file is refused.
    #[arg(long, conflicts_with = "from")]
    pub sha256: Option<String>,
    /// An existing Spider folder to link (or copy) instead of downloading.
    #[arg(long, value_name = "DIR")]
    pub from: Option<PathBuf>,
    /// Copy --from instead of linking it.
    #[arg(long, requires = "from")]
    pub copy: bool,
    /// Replace a Spider copy already in the folder.
    #[arg(long)]
    pub force: bool,
}

/// Whether `dir` holds a Spider layout; the first thing missing otherwise.
fn missing_in(dir: &Path) -> Option<&'static str> {
    REQUIRED.iter().copied().find(|f| !dir.join(f).exists())
}

pub fn fetch(opts: &FetchOptions) -> Result<()> {
    let dir = &opts.dir;
    if missing_in(dir).is_none() && !opts.force {
        eprintln!(
            "{} already holds Spider (dev.json, tables.json, database/); pass --force to replace it",
            dir.display()
        );
        return Ok(());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    match &opts.from {
        Some(from) => place_from(from, dir, opts.copy),
        None => download_official(opts),
    }?;
    match missing_in(dir) {
        None => {
            eprintln!(
                "Spider is in {}; `spider-bench data check --data {}` runs every gold query once",
                dir.display(),
                dir.display()
            );
            Ok(())
        }
        Some(f) => bail!("{} still lacks {f} after the fetch", dir.display()),
    }
}

/// The entries of a Spider folder that are placed (everything but this
/// project's own README).
fn entries(from: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))? {
        let path = e?.path();
        if path.file_name().is_some_and(|n| n != "README.md") {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Links (or copies) every entry of an existing Spider folder into `dir`.
fn place_from(from: &Path, dir: &Path, copy: bool) -> Result<()> {
    if let Some(f) = missing_in(from) {
        bail!(
            "{} is not a Spider folder: it has no {f} (expected dev.json, tables.json, database/<db_id>/<db_id>.sqlite)",
            from.display()
        );
    }
    let from = from.canonicalize()?;
    place_entries(&from, dir, |source, target| {
        if copy || symlink(source, target).is_err() {
            copy_tree(source, target)?;
        }
        Ok(())
    })?;
    eprintln!(
        "{} {} into {}",
        if copy { "copied" } else { "linked" },
        from.display(),
        dir.display()
    );
    Ok(())
}

#[cfg(unix)]
fn symlink(source: &Path, target: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(source, target)
}

#[cfg(not(unix))]
fn symlink(_: &Path, _: &Path) -> std::io::Result<()> {
    Err(std::io::Error::other("no symbolic links here"))
}

fn remove_any(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path)?,
        Ok(_) => std::fs::remove_file(path)?,
        Err(_) => {}
    }
    Ok(())
}

fn copy_tree(source: &Path, target: &Path) -> Result<()> {
    if source.is_dir() {
        std::fs::create_dir_all(target)?;
        for e in std::fs::read_dir(source)? {
            let e = e?;
            copy_tree(&e.path(), &target.join(e.file_name()))?;
        }
    } else {
        std::fs::copy(source, target).with_context(|| format!("cannot copy {}", source.display()))?;
    }
    Ok(())
}

fn download_official(opts: &FetchOptions) -> Result<()> {
    let url = opts.url.as_deref().unwrap_or(OFFICIAL_URL);
    let work = opts.dir.join(".download");
    std::fs::create_dir_all(&work)?;
    let zip_path = work.join("spider.zip");
    eprintln!("downloading {url}");
    let got = crate::download::download(url, &zip_path, opts.sha256.as_deref(), None).with_context(|| {
        "cannot download Spider; download spider_data.zip yourself (https://yale-lily.github.io/spider) \
         and use --url file-server or --from the unzipped folder"
    })?;
    eprintln!(
        "  {} bytes, sha256 {}{}",
        got.bytes,
        got.sha256,
        if opts.sha256.is_some() {
            " (as expected)"
        } else {
            " (not pinned: pass --sha256 to verify it next time)"
        }
    );
    let staged = work.join("unzipped");
    let _ = std::fs::remove_dir_all(&staged);
    let root = extract(&zip_path, &staged)?;
    place_entries(&root, &opts.dir, |source, target| {
        std::fs::rename(source, target).with_context(|| format!("cannot move {} into place", target.display()))
    })?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

/// Extracts the Spider folder of the zip (the one holding tables.json,
/// at any depth: spider/, spider_data/...) into `staged`; returns it.
fn extract(zip_path: &Path, staged: &Path) -> Result<PathBuf> {
    let file = std::fs::File::open(zip_path)?;
    let mut archive = zip::ZipArchive::new(file)
        .with_context(|| format!("{} is not a zip archive (a server error page?)", zip_path.display()))?;
    let prefix = archive
        .file_names()
        .filter_map(|n| n.ok())
        .filter(|n| n.rsplit('/').next() == Some("tables.json"))
        .map(|n| n.trim_end_matches("tables.json").to_string())
        .min_by_key(|p| p.len())
        .context("the zip holds no tables.json: it is not the Spider release")?;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i)?;
        // enclosed_name() refuses absolute paths and "..": nothing is
        // written outside the staging folder.
        let Some(name) = entry.enclosed_name() else {
            bail!("the zip holds an unsafe path {:?}", entry.name());
        };
        let Ok(relative) = name.strip_prefix(&prefix) else {
            continue;
        };
        if relative.as_os_str().is_empty() || name.components().any(|c| c.as_os_str() == "__MACOSX") {
            continue;
        }
        let out = staged.join(relative);
        if entry.is_dir() {
            std::fs::create_dir_all(&out)?;
            continue;
        }
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut file = std::fs::File::create(&out).with_context(|| format!("cannot create {}", out.display()))?;
        std::io::copy(&mut entry, &mut file).with_context(|| format!("cannot write {}", out.display()))?;
    }
    if let Some(f) = missing_in(staged) {
        bail!("the zip's Spider folder has no {f}");
    }
    Ok(staged.to_path_buf())
}

/// Puts every entry of `from` (but a README) at the same name in `dir`
/// with `place`, replacing what is there.
fn place_entries(from: &Path, dir: &Path, place: impl Fn(&Path, &Path) -> Result<()>) -> Result<()> {
    for source in entries(from)? {
        let target = dir.join(source.file_name().expect("entries have names"));
        remove_any(&target)?;
        place(&source, &target)?;
    }
    Ok(())
}
