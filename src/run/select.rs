//! Which questions a run answers: all, the first N, one database, or a
//! sample stratified by hardness.

use crate::eval::exact::Hardness;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, clap::Args)]
pub struct Selection {
    /// The first N scorable questions.
    #[arg(long, conflicts_with = "sample")]
    pub limit: Option<usize>,
    /// N questions drawn at random, stratified by hardness.
    #[arg(long)]
    pub sample: Option<usize>,
    /// Seed of --sample.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Only questions on this database.
    #[arg(long)]
    pub db: Option<String>,
}

/// A candidate question: its id, database, hardness, and whether it can be
/// scored (its database exists).
#[derive(Debug, Clone)]
pub struct Candidate {
    pub id: usize,
    pub db_id: String,
    pub hardness: Option<Hardness>,
    pub scorable: bool,
}

/// The ids to run, in id order. Without `limit` or `sample` every question
/// is kept (unscorable ones are reported as skipped); otherwise only
/// scorable questions are drawn.
pub fn select(candidates: &[Candidate], s: &Selection) -> Vec<usize> {
    let pool: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| s.db.as_ref().is_none_or(|d| *d == c.db_id))
        .collect();
    if let Some(n) = s.sample {
        return stratified(&pool.into_iter().filter(|c| c.scorable).collect::<Vec<_>>(), n, s.seed);
    }
    if let Some(n) = s.limit {
        return pool.into_iter().filter(|c| c.scorable).take(n).map(|c| c.id).collect();
    }
    pool.into_iter().map(|c| c.id).collect()
}

/// `n` questions with each hardness level represented in proportion to its
/// share (largest remainders), drawn at random with `seed` within a level.
fn stratified(pool: &[&Candidate], n: usize, seed: u64) -> Vec<usize> {
    let mut levels: BTreeMap<Option<Hardness>, Vec<usize>> = BTreeMap::new();
    for c in pool {
        levels.entry(c.hardness).or_default().push(c.id);
    }
    let n = n.min(pool.len());
    let total = pool.len().max(1) as f64;
    let mut quota: Vec<(Option<Hardness>, usize, f64)> = levels
        .iter()
        .map(|(h, ids)| {
            let exact = n as f64 * ids.len() as f64 / total;
            (*h, exact.floor() as usize, exact - exact.floor())
        })
        .collect();
    let mut left = n - quota.iter().map(|q| q.1).sum::<usize>();
    let mut by_remainder: Vec<usize> = (0..quota.len()).collect();
    by_remainder.sort_by(|&a, &b| quota[b].2.total_cmp(&quota[a].2).then(a.cmp(&b)));
    for i in by_remainder {
        if left == 0 {
            break;
        }
        quota[i].1 += 1;
        left -= 1;
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut chosen = Vec::with_capacity(n);
    for (h, take, _) in quota {
        let mut ids = levels[&h].clone();
        ids.shuffle(&mut rng);
        chosen.extend(ids.into_iter().take(take));
    }
    chosen.sort_unstable();
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> Vec<Candidate> {
        (0..100)
            .map(|id| Candidate {
                id,
                db_id: if id < 50 { "a".into() } else { "b".into() },
                hardness: Some(
                    Hardness::ALL[if id < 40 {
                        0
                    } else if id < 80 {
                        1
                    } else if id < 90 {
                        2
                    } else {
                        3
                    }],
                ),
                scorable: id != 3,
            })
            .collect()
    }

    #[test]
    fn stratified_samples_keep_proportions_and_are_deterministic() {
        let s = Selection {
            sample: Some(20),
            seed: 7,
            ..Selection::default()
        };
        let ids = select(&pool(), &s);
        assert_eq!(ids.len(), 20);
        let level = |lo: usize, hi: usize| ids.iter().filter(|&&i| (lo..hi).contains(&i)).count();
        assert_eq!(
            (level(0, 40), level(40, 80), level(80, 90), level(90, 100)),
            (8, 8, 2, 2)
        );
        assert_eq!(ids, select(&pool(), &s));
        assert_ne!(ids, select(&pool(), &Selection { seed: 8, ..s.clone() }));
        assert!(!ids.contains(&3));
    }

    #[test]
    fn limit_db_and_all() {
        let p = pool();
        assert_eq!(
            select(
                &p,
                &Selection {
                    limit: Some(5),
                    ..Selection::default()
                }
            ),
            [0, 1, 2, 4, 5]
        );
        assert_eq!(
            select(
                &p,
                &Selection {
                    db: Some("b".into()),
                    ..Selection::default()
                }
            )
            .len(),
            50
        );
        assert_eq!(select(&p, &Selection::default()).len(), 100);
    }
}
