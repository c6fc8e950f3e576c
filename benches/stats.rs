//! Wall-clock time of the statistics of a comparison table of 10 strategies
//! on the 1034 Spider dev questions (20 databases), with the default 10,000
//! bootstrap resamples, plain and clustered by database. Issue 11 asks that
//! the statistics and the HTML report take under a second.
//!
//!     cargo bench --no-default-features --bench stats

use spider_bench::report::stats::{RowOutcomes, StatsOptions, compare_rows};
use std::time::Instant;

const ROWS: usize = 10;
const QUESTIONS: usize = 1034;

/// Rows whose verdicts vary by row and question (a fixed hash, so every
/// run times the same work), in 20 databases.
fn rows() -> Vec<RowOutcomes> {
    (0..ROWS)
        .map(|r| {
            let mut row = RowOutcomes::new(format!("strategy-{r}"));
            for q in 0..QUESTIONS {
                let h = (q as u64 * 2654435761 + r as u64 * 40503).wrapping_mul(0x9E3779B97F4A7C15) >> 40;
                row.insert(q, h % 100 < 60 + 3 * r as u64, format!("db{}", q % 20));
            }
            row
        })
        .collect()
}

fn time(label: &str, rows: &[RowOutcomes], options: &StatsOptions) {
    let start = Instant::now();
    let stats = compare_rows(rows, 0, options);
    let json = serde_json::to_string(&stats).expect("serializes");
    println!(
        "{label}: {:.3} s ({} bytes of JSON)",
        start.elapsed().as_secs_f64(),
        json.len()
    );
}

fn main() {
    let rows = rows();
    for _ in 0..3 {
        time("10 x 1034, B = 10,000", &rows, &StatsOptions::default());
        let clustered = StatsOptions {
            cluster: true,
            ..StatsOptions::default()
        };
        time("10 x 1034, B = 10,000, clustered by database", &rows, &clustered);
    }
}
