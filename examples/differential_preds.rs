//! Writes the differential-test predictions (one JSONL file per mutation) so
//! that `tools/official_verdicts.py` can score them with the official
//! evaluator. Usage: cargo run --example differential_preds -- SPIDER_DIR OUT_DIR

#[path = "../tests/common/mutations.rs"]
mod mutations;

use spider_bench::dataset::{Spider, Split};
use std::io::Write;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (data, out) = (std::path::Path::new(&args[1]), std::path::Path::new(&args[2]));
    std::fs::create_dir_all(out)?;
    let examples = Spider::open(data)?.load_split(Split::Dev)?;
    for m in mutations::MUTATIONS {
        let mut f = std::io::BufWriter::new(std::fs::File::create(out.join(format!("{}.jsonl", m.name)))?);
        for (id, pred) in mutations::predictions(&examples, m) {
            writeln!(f, "{}", serde_json::json!({"id": id, "sql": pred}))?;
        }
    }
    Ok(())
}
