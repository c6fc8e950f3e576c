//! Deterministic prediction generators for the differential test against the
//! official evaluator: from each gold query, variants that are correct,
//! subtly wrong, broken or hostile. The same code produces the predictions
//! that `tools/official_verdicts.py` scores with the official evaluator and
//! the ones `tests/differential.rs` scores with spider-bench.

#![allow(dead_code)]

use regex::Regex;

/// A named way to derive a prediction from a gold query (`None`: not
/// applicable to this gold). `other` is another gold query of the same
/// database.
pub struct Mutation {
    pub name: &'static str,
    pub apply: fn(gold: &str, other: &str) -> Option<String>,
}

fn re(p: &str) -> Regex {
    Regex::new(p).expect("valid regex")
}

fn replace_first(gold: &str, pattern: &str, with: &str) -> Option<String> {
    let r = re(pattern);
    r.is_match(gold).then(|| r.replace(gold, with).into_owned())
}

pub const MUTATIONS: &[Mutation] = &[
    Mutation {
        name: "gold",
        apply: |g, _| Some(g.to_string()),
    },
    Mutation {
        name: "lowercase",
        apply: |g, _| Some(g.to_lowercase()),
    },
    Mutation {
        name: "uppercase",
        apply: |g, _| Some(g.to_uppercase()),
    },
    Mutation {
        name: "drop_distinct",
        apply: |g, _| replace_first(g, r"(?i)\bdistinct\s+", ""),
    },
    Mutation {
        name: "add_distinct",
        apply: |g, _| replace_first(g, r"(?i)^\s*select\s+(?:distinct\s+)?", "SELECT DISTINCT "),
    },
    Mutation {
        name: "flip_order",
        apply: |g, _| {
            let r = re(r"(?i)\b(desc|asc)\b");
            if r.is_match(g) {
                Some(
                    r.replace(g, |c: &regex::Captures| {
                        if c[1].eq_ignore_ascii_case("desc") {
                            "ASC"
                        } else {
                            "DESC"
                        }
                    })
                    .into_owned(),
                )
            } else {
                replace_first(
                    g,
                    r"(?i)(order\s+by\s+[^\s,;)]+(?:\s*\([^)]*\))?)",
                    "$1 DESC",
                )
            }
        },
    },
    Mutation {
        name: "drop_order",
        apply: |g, _| replace_first(g, r"(?i)\s+order\s+by\s+[^;]*?(\s+limit\s+\d+)?\s*$", "$1"),
    },
    Mutation {
        name: "limit_plus",
        apply: |g, _| {
            let r = re(r"(?i)\blimit\s+(\d+)");
            r.captures(g).map(|c| {
                r.replace(g, format!("LIMIT {}", c[1].parse::<u64>().unwrap_or(0) + 1))
                    .into_owned()
            })
        },
    },
    Mutation {
        name: "drop_where",
        apply: |g, _| {
            replace_first(
                g,
                r"(?i)\s+where\s+.*?(\s+(group|order|limit|intersect|union|except)\b|$)",
                "$1",
            )
        },
    },
    Mutation {
        name: "swap_select",
        apply: |g, _| {
            replace_first(
                g,
                r"(?i)^(\s*select\s+(?:distinct\s+)?)([^,()]+?)\s*,\s*([^,()]+?)(\s+from\b)",
                "$1$3 , $2$4",
            )
        },
    },
    Mutation {
        name: "neq",
        apply: |g, _| replace_first(g, r"\s=\s", " != "),
    },
    Mutation {
        name: "spaced_ops",
        apply: |g, _| {
            replace_first(g, r"(>=|<=|!=)", "SPACED$1").map(|s| {
                s.replace("SPACED>=", "> =")
                    .replace("SPACED<=", "< =")
                    .replace("SPACED!=", "! =")
            })
        },
    },
    Mutation {
        name: "value_literal",
        apply: |g, _| replace_first(g, r#"('[^']*'|"[^"]*")"#, "'value'"),
    },
    Mutation {
        name: "value_number",
        apply: |g, _| replace_first(g, r"([=<>]\s*)\d+(\.\d+)?\b", "${1}value"),
    },
    Mutation {
        name: "alias_value",
        apply: |g, _| replace_first(g, r"(?i)^(\s*select\s+)(count\(\*\))", "${1}${2} AS value"),
    },
    Mutation {
        name: "times_float",
        apply: |g, _| replace_first(g, r"(?i)count\(\*\)", "count(*) * 1.0"),
    },
    Mutation {
        name: "column_alias",
        apply: |g, _| {
            replace_first(
                g,
                r"(?i)^(\s*select\s+)([A-Za-z_][\w.]*)(\s*(,|from\b))",
                "${1}${2} AS col_a${3}",
            )
        },
    },
    Mutation {
        name: "semicolon",
        apply: |g, _| Some(format!("{g};")),
    },
    Mutation {
        name: "double_semicolon",
        apply: |g, _| Some(format!("{g};;")),
    },
    Mutation {
        name: "then_drop",
        apply: |g, _| {
            let t = re(r"(?i)\bfrom\s+([A-Za-z_]\w*)")
                .captures(g)?
                .get(1)?
                .as_str()
                .to_string();
            Some(format!("{g}; DROP TABLE {t}"))
        },
    },
    Mutation {
        name: "drop_table",
        apply: |g, _| {
            let t = re(r"(?i)\bfrom\s+([A-Za-z_]\w*)")
                .captures(g)?
                .get(1)?
                .as_str()
                .to_string();
            Some(format!("DROP TABLE {t}"))
        },
    },
    Mutation {
        name: "delete_rows",
        apply: |g, _| {
            let t = re(r"(?i)\bfrom\s+([A-Za-z_]\w*)")
                .captures(g)?
                .get(1)?
                .as_str()
                .to_string();
            Some(format!("DELETE FROM {t}"))
        },
    },
    Mutation {
        name: "update_rows",
        apply: |g, _| {
            let c = re(r"(?i)\bfrom\s+([A-Za-z_]\w*)").captures(g)?;
            Some(format!("UPDATE {} SET rowid = rowid", &c[1]))
        },
    },
    Mutation {
        name: "pragma",
        apply: |g, _| {
            let t = re(r"(?i)\bfrom\s+([A-Za-z_]\w*)")
                .captures(g)?
                .get(1)?
                .as_str()
                .to_string();
            Some(format!("PRAGMA table_info({t})"))
        },
    },
    Mutation {
        name: "pragma_write",
        apply: |_, _| Some("PRAGMA user_version = 7".into()),
    },
    Mutation {
        name: "begin",
        apply: |_, _| Some("BEGIN".into()),
    },
    Mutation {
        name: "create_temp",
        apply: |_, _| Some("CREATE TEMP TABLE scratch_t(x)".into()),
    },
    Mutation {
        name: "truncated",
        apply: |g, _| {
            let cut = g.char_indices().nth(g.chars().count() * 2 / 3)?.0;
            Some(g[..cut].to_string())
        },
    },
    Mutation {
        name: "other_gold",
        apply: |_, o| Some(o.to_string()),
    },
    Mutation {
        name: "comment",
        apply: |g, _| Some(format!("-- generated\n{g} /* end */")),
    },
    Mutation {
        name: "newlines",
        apply: |g, _| {
            Some(
                g.replace(" FROM ", "\nFROM ")
                    .replace(" WHERE ", "\n  WHERE "),
            )
        },
    },
    Mutation {
        name: "quote_swap",
        apply: |g, _| {
            let r = re(r#""([^"']*)""#);
            r.is_match(g).then(|| r.replace_all(g, "'$1'").into_owned())
        },
    },
    Mutation {
        name: "dq_literals",
        apply: |g, _| {
            let r = re(r"'([^'\x22]*)'");
            r.is_match(g)
                .then(|| r.replace_all(g, "\"$1\"").into_owned())
        },
    },
    Mutation {
        name: "apostrophe",
        apply: |g, _| replace_first(g, r"'([^']*)'", "'O''$1'"),
    },
    Mutation {
        name: "cur_year",
        apply: |g, _| replace_first(g, r"\b(19|20)\d\d\b", "YEAR(CURDATE())"),
    },
    Mutation {
        name: "select_star",
        apply: |g, _| {
            replace_first(
                g,
                r"(?i)^(\s*select\s+)(distinct\s+)?[^()]*?(\s+from\b)",
                "${1}*${3}",
            )
        },
    },
    Mutation {
        name: "count_distinct",
        apply: |g, _| {
            replace_first(
                g,
                r"(?i)count\(\s*([A-Za-z_][\w.]*)\s*\)",
                "count(DISTINCT $1)",
            )
        },
    },
    Mutation {
        name: "round",
        apply: |g, _| replace_first(g, r"(?i)\b(avg|sum)\(([^()]*)\)", "round($1($2), 2)"),
    },
    Mutation {
        name: "cast_text",
        apply: |g, _| {
            replace_first(
                g,
                r"(?i)^(\s*select\s+(?:distinct\s+)?)([A-Za-z_][\w.]*)",
                "${1}CAST(${2} AS TEXT)",
            )
        },
    },
    Mutation {
        name: "in_to_eq",
        apply: |g, _| replace_first(g, r"(?i)\bin\s*\(\s*select", "= (SELECT"),
    },
    Mutation {
        name: "not_in",
        apply: |g, _| replace_first(g, r"(?i)\bin\s*\(\s*select", "NOT IN (SELECT"),
    },
    Mutation {
        name: "intersect_union",
        apply: |g, _| replace_first(g, r"(?i)\bintersect\b", "UNION"),
    },
    Mutation {
        name: "join_comma",
        apply: |g, _| {
            replace_first(
                g,
                r"(?i)\s+join\s+([A-Za-z_]\w*)(\s+as\s+\w+)?\s+on\s+([\w.]+\s*=\s*[\w.]+)",
                ", $1$2 WHERE $3",
            )
        },
    },
    Mutation {
        name: "having_count",
        apply: |g, _| {
            replace_first(
                g,
                r"(?i)(group\s+by\s+[\w.]+)(\s|$)",
                "$1 HAVING count(*) >= 1$2",
            )
        },
    },
    Mutation {
        name: "like",
        apply: |g, _| replace_first(g, r"(?i)\s=\s*('[^']*'|\x22[^\x22]*\x22)", " LIKE $1"),
    },
    Mutation {
        name: "max_min",
        apply: |g, _| {
            let r = re(r"(?i)\b(max|min)\(");
            r.captures(g).map(|c| {
                r.replace(
                    g,
                    if c[1].eq_ignore_ascii_case("max") {
                        "MIN("
                    } else {
                        "MAX("
                    },
                )
                .into_owned()
            })
        },
    },
    Mutation {
        name: "count_col",
        apply: |g, _| replace_first(g, r"(?i)count\(\*\)", "count(1)"),
    },
    Mutation {
        name: "bracket_ident",
        apply: |g, _| replace_first(g, r"(?i)\bfrom\s+([A-Za-z_]\w*)", "FROM [$1]"),
    },
    Mutation {
        name: "backtick_ident",
        apply: |g, _| replace_first(g, r"(?i)\bfrom\s+([A-Za-z_]\w*)", "FROM `$1`"),
    },
    Mutation {
        name: "order_by_number",
        apply: |g, _| {
            replace_first(
                g,
                r"(?i)(order\s+by\s+)[^;]*?(\s+(asc|desc))?(\s+limit\s+\d+)?\s*$",
                "${1}1${2}${4}",
            )
        },
    },
    Mutation {
        name: "nested_parens",
        apply: |g, _| replace_first(g, r"(?i)^\s*select\s+(.*)$", "SELECT * FROM (SELECT $1)"),
    },
    Mutation {
        name: "random_junk",
        apply: |_, _| Some("SELEC nothing FROM nowhere".into()),
    },
    Mutation {
        name: "empty",
        apply: |_, _| Some(String::new()),
    },
    Mutation {
        name: "just_semicolon",
        apply: |_, _| Some(";".into()),
    },
    Mutation {
        name: "comment_only",
        apply: |_, _| Some("-- nothing here".into()),
    },
    Mutation {
        name: "union_all",
        apply: |g, _| Some(format!("{g} UNION ALL {g}")),
    },
    Mutation {
        name: "distinct_keyword_col",
        apply: |g, _| replace_first(g, r"(?i)^(\s*select\s+)", "${1}DISTINCT "),
    },
    Mutation {
        name: "values_kw",
        apply: |_, _| Some("VALUES (1), (2)".into()),
    },
    Mutation {
        name: "with_cte",
        apply: |g, _| Some(format!("WITH q AS ({g}) SELECT * FROM q")),
    },
    Mutation {
        name: "case_when",
        apply: |g, _| {
            replace_first(
                g,
                r"(?i)^(\s*select\s+(?:distinct\s+)?)([A-Za-z_][\w.]*)",
                "${1}CASE WHEN ${2} IS NULL THEN 0 ELSE ${2} END",
            )
        },
    },
    Mutation {
        name: "concat_fn",
        apply: |g, _| {
            replace_first(
                g,
                r"(?i)^(\s*select\s+(?:distinct\s+)?)([A-Za-z_][\w.]*)",
                "${1}concat(${2}, '')",
            )
        },
    },
    Mutation {
        name: "math_fn",
        apply: |g, _| replace_first(g, r"(?i)\b(avg|sum)\(([^()]*)\)", "floor($1($2))"),
    },
];

/// The predictions of one mutation for a split: (example id, SQL). `other`
/// is the next example's gold on the same database.
pub fn predictions(
    examples: &[spider_bench::dataset::Example],
    m: &Mutation,
) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, e) in examples.iter().enumerate() {
        let other = examples[i + 1..]
            .iter()
            .chain(&examples[..i])
            .find(|o| o.db_id == e.db_id)
            .map(|o| o.gold.as_str())
            .unwrap_or("SELECT 1");
        if let Some(p) = (m.apply)(&e.gold, other)
            && (p != e.gold || m.name == "gold")
        {
            out.push((e.id, p));
        }
    }
    out
}
