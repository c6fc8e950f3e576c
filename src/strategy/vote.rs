//! Final selection among samples: majority vote by execution result, ties
//! going to the earliest sample (as DAIL-SQL and C3 do).

use crate::exec::value::{Row, Value};
use sha2::{Digest, Sha256};

/// A result's identity for voting: cells compared as Python compares them
/// (1 == 1.0), row order ignored unless the query orders its rows.
pub fn fingerprint(rows: &[Row], ordered: bool) -> String {
    let cell = |v: &Value| match v {
        Value::Real(f) if f.fract() == 0.0 && f.abs() < 9e15 => Value::Int(*f as i64).py_sort_key(),
        other => other.py_sort_key(),
    };
    let mut lines: Vec<String> = rows
        .iter()
        .map(|r| r.iter().map(cell).collect::<Vec<_>>().join("\u{1f}"))
        .collect();
    if !ordered {
        lines.sort();
    }
    hex::encode(Sha256::digest(lines.join("\u{1e}").as_bytes()))
}

/// The index of the winning sample: the largest group of samples with the
/// same result fingerprint; among equal groups, the one whose first sample
/// comes first. Samples that did not run (`None`) do not vote; if none ran,
/// the first sample that has SQL wins.
pub fn majority(fingerprints: &[Option<String>], has_sql: &[bool]) -> Option<usize> {
    let mut best: Option<(usize, usize)> = None; // (count, first index)
    for (i, fp) in fingerprints.iter().enumerate() {
        let Some(fp) = fp else { continue };
        if fingerprints[..i].iter().any(|p| p.as_ref() == Some(fp)) {
            continue; // counted with its first occurrence
        }
        let count = fingerprints.iter().filter(|p| p.as_ref() == Some(fp)).count();
        if best.is_none_or(|(c, _)| count > c) {
            best = Some((count, i));
        }
    }
    best.map(|(_, i)| i).or_else(|| has_sql.iter().position(|&h| h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majority_then_earliest() {
        let fp = |s: &str| Some(s.to_string());
        assert_eq!(majority(&[fp("a"), fp("b"), fp("b")], &[true; 3]), Some(1));
        assert_eq!(majority(&[fp("a"), fp("b"), fp("b"), fp("a")], &[true; 4]), Some(0));
        assert_eq!(majority(&[None, fp("b"), None], &[true; 3]), Some(1));
        assert_eq!(majority(&[None, None], &[false, true]), Some(1));
        assert_eq!(majority(&[None], &[false]), None);
    }

    #[test]
    fn fingerprints_follow_python_equality_and_order() {
        let a = vec![vec![Value::Int(1)], vec![Value::Int(2)]];
        let b = vec![vec![Value::Real(2.0)], vec![Value::Real(1.0)]];
        assert_eq!(fingerprint(&a, false), fingerprint(&b, false));
        assert_ne!(fingerprint(&a, true), fingerprint(&b, true));
    }
}
