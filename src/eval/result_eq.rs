//! Result comparison: a port of `exec_eval.result_eq` from the official
//! evaluator (test-suite-sql-eval), with its one known defect kept in
//! [`Compare::Official`] and fixed in [`Compare::Strict`].

use crate::exec::value::{Row, Value};
use std::collections::{HashMap, HashSet};

/// Which comparison rules to apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compare {
    /// Exactly the official `result_eq`, including the quick-reject defect:
    /// cells are sorted by `str(v) + str(type(v))`, so rows `(11, 1)` and
    /// `(11, 1.0)` sort differently and are rejected although Python finds
    /// `1 == 1.0`.
    Official,
    /// The same equivalence without the false negatives of the quick reject.
    Strict,
}

/// Upper bound on candidate column permutations checked for one pair of
/// results; past it the comparison is abandoned as "not equal". No real
/// Spider result comes near it (it needs many columns with identical values).
pub const MAX_PERMUTATIONS: usize = 200_000;

/// `result_eq(gold, pred, order_matters)`.
pub fn result_eq(gold: &[Row], pred: &[Row], order_matters: bool, mode: Compare) -> bool {
    if gold.is_empty() && pred.is_empty() {
        return true;
    }
    if gold.len() != pred.len() {
        return false;
    }
    let ncols = gold[0].len();
    if pred[0].len() != ncols {
        return false;
    }
    if !quick_accept(gold, pred, order_matters, mode) {
        return false;
    }
    find_column_permutation(gold, pred, order_matters)
}

/// The official `quick_rej`: each row's cells are sorted, then the lists
/// (order matters) or sets (it doesn't) of sorted rows must be equal.
fn quick_accept(gold: &[Row], pred: &[Row], order_matters: bool, mode: Compare) -> bool {
    let unorder = |row: &Row| -> Row {
        let mut keyed: Vec<(String, &Value)> = row
            .iter()
            .map(|v| {
                let key = match mode {
                    Compare::Official => v.py_sort_key(),
                    Compare::Strict => canonical_key(v),
                };
                (key, v)
            })
            .collect();
        // Python's sort is stable; so is `sort_by`.
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        keyed.into_iter().map(|(_, v)| v.clone()).collect()
    };
    let g: Vec<Row> = gold.iter().map(unorder).collect();
    let p: Vec<Row> = pred.iter().map(unorder).collect();
    if order_matters {
        g == p
    } else {
        g.iter().collect::<HashSet<_>>() == p.iter().collect::<HashSet<_>>()
    }
}

/// A sort key under which Python-equal values always sort together.
fn canonical_key(v: &Value) -> String {
    match v {
        Value::Real(f) if *f == f.trunc() && f.abs() < 9.2e18 => Value::Int(*f as i64).py_sort_key(),
        _ => v.py_sort_key(),
    }
}

/// Is there a bijection from gold columns to prediction columns under which
/// the rows are equal (as lists when order matters, as multisets otherwise)?
///
/// The official code enumerates the product of per-column candidate sets,
/// pruned with 20 random prediction rows; pruning with every row is equally
/// sound, so the verdict is the same and deterministic.
fn find_column_permutation(gold: &[Row], pred: &[Row], order_matters: bool) -> bool {
    let ncols = gold[0].len();
    let gold_cols: Vec<HashSet<&Value>> = (0..ncols).map(|c| gold.iter().map(|r| &r[c]).collect()).collect();
    // candidates[g] = prediction columns whose every value occurs in gold column g
    let candidates: Vec<Vec<usize>> = (0..ncols)
        .map(|g| {
            (0..ncols)
                .filter(|&p| pred.iter().all(|r| gold_cols[g].contains(&r[p])))
                .collect()
        })
        .collect();
    let gold_counts = (!order_matters).then(|| count_rows(gold.iter().cloned()));
    let mut perm = Vec::with_capacity(ncols);
    let mut used = vec![false; ncols];
    let mut budget = MAX_PERMUTATIONS;
    search(
        &candidates,
        &mut perm,
        &mut used,
        &mut budget,
        &mut |perm: &[usize]| {
            let permuted = pred.iter().map(|r| perm.iter().map(|&i| r[i].clone()).collect::<Row>());
            match &gold_counts {
                None => permuted.eq(gold.iter().cloned()),
                Some(counts) => count_rows(permuted) == *counts,
            }
        },
    )
}

fn count_rows(rows: impl Iterator<Item = Row>) -> HashMap<Row, usize> {
    let mut counts = HashMap::new();
    for r in rows {
        *counts.entry(r).or_insert(0) += 1;
    }
    counts
}

fn search(
    candidates: &[Vec<usize>],
    perm: &mut Vec<usize>,
    used: &mut [bool],
    budget: &mut usize,
    check: &mut dyn FnMut(&[usize]) -> bool,
) -> bool {
    if perm.len() == candidates.len() {
        if *budget == 0 {
            return false;
        }
        *budget -= 1;
        return check(perm);
    }
    for &c in &candidates[perm.len()] {
        if used[c] {
            continue;
        }
        used[c] = true;
        perm.push(c);
        let found = search(candidates, perm, used, budget, check);
        perm.pop();
        used[c] = false;
        if found {
            return true;
        }
        if *budget == 0 {
            return false;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use Value::*;

    fn rows(v: &[&[Value]]) -> Vec<Row> {
        v.iter().map(|r| r.to_vec()).collect()
    }

    #[test]
    fn empty_results_match_and_row_counts_must_agree() {
        assert!(result_eq(&[], &[], false, Compare::Official));
        assert!(!result_eq(&rows(&[&[Int(1)]]), &[], false, Compare::Official));
    }

    #[test]
    fn column_order_never_matters() {
        let g = rows(&[&[Int(1), Text("a".into())], &[Int(2), Text("b".into())]]);
        let p = rows(&[&[Text("a".into()), Int(1)], &[Text("b".into()), Int(2)]]);
        assert!(result_eq(&g, &p, true, Compare::Official));
    }

    #[test]
    fn row_order_matters_only_when_asked() {
        let g = rows(&[&[Int(1)], &[Int(2)]]);
        let p = rows(&[&[Int(2)], &[Int(1)]]);
        assert!(result_eq(&g, &p, false, Compare::Official));
        assert!(!result_eq(&g, &p, true, Compare::Official));
    }

    #[test]
    fn duplicates_count_when_order_does_not_matter() {
        let g = rows(&[&[Int(1)], &[Int(1)], &[Int(2)]]);
        let p = rows(&[&[Int(1)], &[Int(2)], &[Int(2)]]);
        assert!(!result_eq(&g, &p, false, Compare::Official));
    }

    #[test]
    fn int_float_quick_reject_defect_is_official_only() {
        // dev example 94's shape: the same numbers, one side as floats.
        let g = rows(&[&[Int(11), Int(1)]]);
        let p = rows(&[&[Int(11), Real(1.0)]]);
        assert!(!result_eq(&g, &p, false, Compare::Official));
        assert!(result_eq(&g, &p, false, Compare::Strict));
        // A single column has nothing to reorder, so 1 == 1.0 holds in both.
        assert!(result_eq(
            &rows(&[&[Int(1)]]),
            &rows(&[&[Real(1.0)]]),
            false,
            Compare::Official
        ));
    }

    #[test]
    fn wide_results_find_the_permutation() {
        let g = rows(&[
            &[Int(1), Int(2), Int(3), Int(4), Int(5)],
            &[Int(6), Int(7), Int(8), Int(9), Int(10)],
        ]);
        let p = rows(&[
            &[Int(5), Int(4), Int(3), Int(2), Int(1)],
            &[Int(10), Int(9), Int(8), Int(7), Int(6)],
        ]);
        assert!(result_eq(&g, &p, true, Compare::Official));
        // Same cells per row but columns mixed across rows: no single permutation.
        let q = rows(&[
            &[Int(1), Int(2), Int(3), Int(4), Int(5)],
            &[Int(10), Int(9), Int(8), Int(7), Int(6)],
        ]);
        assert!(!result_eq(&g, &q, true, Compare::Official));
    }
}
