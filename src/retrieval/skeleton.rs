//! SQL skeletons (as in DAIL-SQL): the query with its values masked, and
//! optionally its identifiers too, so that queries of the same shape compare
//! equal whatever they ask about.

use crate::eval::parse::py_float;
use crate::eval::tokenize::tokenize;

/// Words that stay in a skeleton even when identifiers are masked.
const KEYWORDS: &[&str] = &[
    "select",
    "from",
    "where",
    "group",
    "by",
    "order",
    "limit",
    "having",
    "join",
    "on",
    "as",
    "and",
    "or",
    "not",
    "in",
    "like",
    "between",
    "is",
    "null",
    "exists",
    "distinct",
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "union",
    "intersect",
    "except",
    "desc",
    "asc",
    "all",
    "case",
    "when",
    "then",
    "else",
    "end",
    "cast",
    "left",
    "inner",
    "outer",
    "cross",
    "natural",
    "with",
];

const VALUE: &str = "_";
const IDENT: &str = "#";

/// The skeleton of `sql`: tokens as the official tokenizer splits them,
/// string and number literals replaced by `_`, and with `mask_identifiers`
/// every table/column name (also `t1.name`) by `#`.
pub fn skeleton(sql: &str, mask_identifiers: bool) -> String {
    let toks = tokenize(sql).unwrap_or_else(|_| sql.split_whitespace().map(|t| t.to_lowercase()).collect());
    let mut out: Vec<&str> = Vec::with_capacity(toks.len());
    for t in &toks {
        let t = t.as_str();
        let word = t.starts_with(|c: char| c.is_alphabetic() || c == '_');
        let piece = if t.starts_with('"') || py_float(t).is_some() {
            VALUE
        } else if mask_identifiers && word && !KEYWORDS.contains(&t) {
            IDENT
        } else {
            t
        };
        // Runs such as "_ , _" from IN lists collapse to one value.
        if piece == VALUE && out.len() >= 2 && out[out.len() - 1] == "," && out[out.len() - 2] == VALUE {
            out.pop();
            continue;
        }
        out.push(piece);
    }
    out.join(" ")
}

/// Similarity of two skeletons in [0, 1]: 1 - token edit distance / longer length.
pub fn similarity(a: &str, b: &str) -> f64 {
    let (ta, tb): (Vec<&str>, Vec<&str>) = (a.split(' ').collect(), b.split(' ').collect());
    let longest = ta.len().max(tb.len());
    if longest == 0 {
        return 1.0;
    }
    1.0 - strsim::generic_levenshtein(&ta, &tb) as f64 / longest as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_identifiers_are_masked() {
        let a = skeleton("SELECT name FROM singer WHERE age > 30 AND country = 'France'", false);
        assert_eq!(a, "select name from singer where age > _ and country = _");
        let b = skeleton(
            "SELECT T1.title FROM concert AS T1 WHERE T1.year IN (2014, 2015, 2016)",
            true,
        );
        assert_eq!(b, "select # from # as # where # in ( _ )");
        assert_eq!(
            skeleton("select count(*) from a where x = 1", true),
            skeleton("SELECT count(*) FROM b WHERE y = 'z'", true)
        );
    }

    #[test]
    fn similarity_is_one_minus_normalised_edit_distance() {
        assert_eq!(similarity("select # from #", "select # from #"), 1.0);
        assert!((similarity("select # from #", "select # from # where # = _") - 4.0 / 8.0).abs() < 1e-12);
    }
}
