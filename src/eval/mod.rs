//! Verdicts that match the official Spider evaluator (test-suite-sql-eval).
pub mod exact;
pub mod judge;
pub mod parse;
pub mod result_eq;
pub mod score;
pub mod sqlparse;
pub mod summary;
pub mod tokenize;

/// For complexity tests: whether `work(n)` grows about linearly, judged by
/// the ratio of its times at `4n` and `n` (the best of 3 runs each), not by
/// an absolute time, which a loaded machine stretches. Linear work gives a
/// ratio near 4 and quadratic near 16; the bound is 10.
#[cfg(test)]
pub(crate) fn assert_linear(what: &str, n: usize, work: impl Fn(usize)) {
    let best = |n: usize| {
        (0..3)
            .map(|_| {
                let start = std::time::Instant::now();
                work(n);
                start.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min)
    };
    let (small, large) = (best(n), best(4 * n));
    let ratio = large / small.max(1e-4);
    assert!(
        ratio < 10.0,
        "{what}: {small:.4} s at n = {n}, {large:.4} s at 4n (x{ratio:.1}): not linear"
    );
}
