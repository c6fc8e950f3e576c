//! Downloads over HTTP(S) for the set-up commands (`models fetch`,
//! `data fetch`): streamed to disk with a progress bar, hashed on the way,
//! refused when the sha256 is not the expected one.

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

/// What was downloaded.
pub struct Downloaded {
    pub sha256: String,
    pub bytes: u64,
}

/// A progress bar for `total` bytes (hidden when stderr is not a terminal).
fn byte_bar(total: u64, label: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template("  {msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}")
            .expect("valid template"),
    );
    bar.set_message(label.to_string());
    bar
}

/// Downloads `url` into `dest`. With `expected_sha256`, a file with another
/// hash is deleted and refused. `size_hint` sizes the progress bar when the
/// server does not say.
pub fn download(url: &str, dest: &Path, expected_sha256: Option<&str>, size_hint: Option<u64>) -> Result<Downloaded> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let result = runtime.block_on(stream_to_file(url, dest, size_hint));
    let got = match result {
        Ok(got) => got,
        Err(e) => {
            let _ = std::fs::remove_file(dest);
            return Err(e);
        }
    };
    if let Some(expected) = expected_sha256
        && !got.sha256.eq_ignore_ascii_case(expected)
    {
        let _ = std::fs::remove_file(dest);
        bail!(
            "{url} gave {} bytes with sha256 {}, expected {expected}: refusing it",
            got.bytes,
            got.sha256
        );
    }
    Ok(got)
}

async fn stream_to_file(url: &str, dest: &Path, size_hint: Option<u64>) -> Result<Downloaded> {
    crate::net::install_crypto_provider();
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(60))
        .build()?;
    let mut response = client
        .get(url)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    if !response.status().is_success() {
        bail!("{url} answered {}", response.status());
    }
    let label = dest
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let bar = byte_bar(response.content_length().or(size_hint).unwrap_or(0), &label);
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(dest).with_context(|| format!("cannot create {}", dest.display()))?,
    );
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    while let Some(chunk) = response
        .chunk()
        .await
        .with_context(|| format!("the download of {url} broke off"))?
    {
        hasher.update(&chunk);
        out.write_all(&chunk)?;
        bytes += chunk.len() as u64;
        bar.set_position(bytes);
    }
    out.flush()?;
    bar.finish_and_clear();
    Ok(Downloaded {
        sha256: hex::encode(hasher.finalize()),
        bytes,
    })
}
