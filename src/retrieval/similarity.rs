//! Text similarity over a fixed corpus. Every method answers the same
//! question, "how close is this query to each corpus text?", so selectors
//! work with any of them.

use bm25::{Language, SearchEngine, SearchEngineBuilder};

/// Scores queries against a corpus fixed at construction.
pub trait TextIndex: Send + Sync {
    /// What identifies the method (in configurations and stored vectors).
    fn identity(&self) -> String;
    /// One score per corpus text, higher is closer.
    fn scores(&self, query: &str) -> Vec<f32>;
}

/// BM25 over English word stems (no model needed).
pub struct Bm25Index {
    engine: SearchEngine<usize>,
    len: usize,
}

impl Bm25Index {
    pub fn new(corpus: &[String]) -> Self {
        let docs: Vec<bm25::Document<usize>> = corpus
            .iter()
            .enumerate()
            .map(|(i, t)| bm25::Document::new(i, t.clone()))
            .collect();
        let engine = SearchEngineBuilder::<usize>::with_documents(Language::English, docs).build();
        Bm25Index {
            engine,
            len: corpus.len(),
        }
    }
}

impl TextIndex for Bm25Index {
    fn identity(&self) -> String {
        "bm25".into()
    }

    fn scores(&self, query: &str) -> Vec<f32> {
        let mut out = vec![0.0; self.len];
        for r in self.engine.search(query, None) {
            out[r.document.id] = r.score;
        }
        out
    }
}

/// Indices of the `k` best scores among `candidates` (all when `None`),
/// best first, ties to the lower index (so results are deterministic).
pub fn top_k(scores: &[f32], k: usize, candidates: Option<&[usize]>) -> Vec<usize> {
    let mut idx: Vec<usize> = match candidates {
        Some(c) => c.to_vec(),
        None => (0..scores.len()).collect(),
    };
    let better = |a: &usize, b: &usize| scores[*b].total_cmp(&scores[*a]).then(a.cmp(b));
    // Partition around the k-th best, then sort only the k best.
    if k < idx.len() {
        idx.select_nth_unstable_by(k, better);
        idx.truncate(k);
    }
    idx.sort_by(better);
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bm25_ranks_word_overlap_first() {
        let corpus: Vec<String> = [
            "How many singers are there?",
            "List the titles of all concerts.",
            "What is the average age of singers from France?",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let index = Bm25Index::new(&corpus);
        let s = index.scores("Average age of the singers?");
        assert_eq!(top_k(&s, 2, None), [2, 0]);
        assert_eq!(top_k(&s, 1, Some(&[0, 1])), [0]);
    }
}
