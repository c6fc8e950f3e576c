//! The official summary of scored examples: counts and accuracies by
//! hardness, and examples by status. Rendered by [`crate::report`].

use super::exact::Hardness;
use super::judge::Verdict;
use serde::Serialize;
use std::collections::BTreeMap;

/// Counts for one hardness level (or for all).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct LevelCounts {
    /// Scored examples (skipped and gold errors excluded), as the official `count`.
    pub count: usize,
    pub exec_correct: usize,
    pub exact_correct: usize,
}

impl LevelCounts {
    pub fn exec_accuracy(&self) -> f64 {
        ratio(self.exec_correct, self.count)
    }
    pub fn exact_accuracy(&self) -> f64 {
        ratio(self.exact_correct, self.count)
    }
}

fn ratio(n: usize, d: usize) -> f64 {
    if d == 0 { 0.0 } else { n as f64 / d as f64 }
}

/// The official table plus failure counts.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub levels: BTreeMap<Hardness, LevelCounts>,
    pub all: LevelCounts,
    /// Every example, scored or not, by status.
    pub statuses: BTreeMap<String, usize>,
    /// Strict mode only: examples whose verdict differs from official mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub differs_from_official: Option<OfficialDiff>,
}

/// How strict-mode verdicts differ from official ones.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct OfficialDiff {
    pub exec: usize,
    pub exact: usize,
    /// Examples whose strict execution verdict is correct but official is not.
    pub exec_gained: usize,
    /// Examples whose official execution verdict is correct but strict is not.
    pub exec_lost: usize,
}

impl Summary {
    pub fn from_verdicts<'a>(verdicts: impl IntoIterator<Item = &'a Verdict>) -> Summary {
        let mut s = Summary::default();
        for h in Hardness::ALL {
            s.levels.insert(h, LevelCounts::default());
        }
        for v in verdicts {
            *s.statuses.entry(v.status.as_str().to_string()).or_default() += 1;
            if !v.status.is_scored() {
                continue;
            }
            for counts in [Some(&mut s.all), v.hardness.and_then(|h| s.levels.get_mut(&h))]
                .into_iter()
                .flatten()
            {
                counts.count += 1;
                counts.exec_correct += usize::from(v.exec == Some(true));
                counts.exact_correct += usize::from(v.exact == Some(true));
            }
        }
        s
    }
}
