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

/// The first table named after FROM.
fn first_table(gold: &str) -> Option<String> {
    let c = re(r"(?i)\bfrom\s+([A-Za-z_]\w*)").captures(gold)?;
    Some(c[1].to_string())
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
                replace_first(g, r"(?i)(order\s+by\s+[^\s,;)]+(?:\s*\([^)]*\))?)", "$1 DESC")
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
            let t = first_table(g)?;
            Some(format!("{g}; DROP TABLE {t}"))
        },
    },
    Mutation {
        name: "drop_table",
        apply: |g, _| {
            let t = first_table(g)?;
            Some(format!("DROP TABLE {t}"))
        },
    },
    Mutation {
        name: "delete_rows",
        apply: |g, _| {
            let t = first_table(g)?;
            Some(format!("DELETE FROM {t}"))
        },
    },
    Mutation {
        name: "update_rows",
        apply: |g, _| {
            let t = first_table(g)?;
            Some(format!("UPDATE {t} SET rowid = rowid"))
        },
    },
    Mutation {
        name: "pragma",
        apply: |g, _| {
            let t = first_table(g)?;
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
        apply: |g, _| Some(g.replace(" FROM ", "\nFROM ").replace(" WHERE ", "\n  WHERE ")),
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
            r.is_match(g).then(|| r.replace_all(g, "\"$1\"").into_owned())
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
        apply: |g, _| replace_first(g, r"(?i)^(\s*select\s+)(distinct\s+)?[^()]*?(\s+from\b)", "${1}*${3}"),
    },
    Mutation {
        name: "count_distinct",
        apply: |g, _| replace_first(g, r"(?i)count\(\s*([A-Za-z_][\w.]*)\s*\)", "count(DISTINCT $1)"),
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
        apply: |g, _| replace_first(g, r"(?i)(group\s+by\s+[\w.]+)(\s|$)", "$1 HAVING count(*) >= 1$2"),
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
        // Whitespace only: blank after the official script's line stripping.
        name: "blank",
        apply: |_, _| Some(" \t\n ".into()),
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
    Mutation {
        name: "alias_no_as",
        apply: |g, _| replace_first(g, r"(?i)\s+as\s+(t\d)\b", " $1"),
    },
    Mutation {
        name: "left_join",
        apply: |g, _| replace_first(g, r"(?i)\bjoin\b", "LEFT JOIN"),
    },
    Mutation {
        name: "limit_offset",
        apply: |g, _| replace_first(g, r"(?i)\blimit\s+(\d+)", "LIMIT $1 OFFSET 1"),
    },
    Mutation {
        name: "is_not_null",
        apply: |g, _| replace_first(g, r"(?i)\bwhere\s+", "WHERE 1 IS NOT NULL AND "),
    },
    Mutation {
        name: "between",
        apply: |g, _| replace_first(g, r"([\w.]+)\s*>\s*(\d+)", "$1 BETWEEN $2 AND 1000000"),
    },
    Mutation {
        name: "group_by_number",
        apply: |g, _| replace_first(g, r"(?i)group\s+by\s+[\w.]+", "GROUP BY 1"),
    },
    Mutation {
        name: "prose_prefix",
        apply: |g, _| Some(format!("Here is the query: {g}")),
    },
    Mutation {
        name: "fenced",
        apply: |g, _| Some(format!("```sql\n{g}\n```")),
    },
    Mutation {
        name: "trailing_comment",
        apply: |g, _| Some(format!("{g}; -- returns the answer")),
    },
    Mutation {
        name: "lower_swap",
        apply: |g, _| {
            replace_first(
                &g.to_lowercase(),
                r"(?i)^(\s*select\s+(?:distinct\s+)?)([^,()]+?)\s*,\s*([^,()]+?)(\s+from\b)",
                "$1$3 , $2$4",
            )
        },
    },
    Mutation {
        name: "order_limit_to_max",
        apply: |g, _| {
            let c = re(r"(?i)^select\s+([\w.]+)\s+from\s+(\w+)\s+order\s+by\s+([\w.]+)\s+desc\s+limit\s+1\s*$")
                .captures(g)?;
            Some(format!(
                "SELECT {} FROM {} WHERE {} = (SELECT max({}) FROM {})",
                &c[1], &c[2], &c[3], &c[3], &c[2]
            ))
        },
    },
    Mutation {
        name: "count_star_to_col",
        apply: |g, _| replace_first(g, r"(?i)count\(\*\)\s+from\s+(\w+)", "count($1.rowid) FROM $1"),
    },
    Mutation {
        name: "sum_avg",
        apply: |g, _| {
            let r = re(r"(?i)\b(sum|avg)\(");
            r.captures(g).map(|c| {
                r.replace(
                    g,
                    if c[1].eq_ignore_ascii_case("sum") {
                        "avg("
                    } else {
                        "sum("
                    },
                )
                .into_owned()
            })
        },
    },
    Mutation {
        name: "add_limit",
        apply: |g, _| (!g.to_lowercase().contains("limit")).then(|| format!("{g} LIMIT 3")),
    },
    Mutation {
        name: "add_order",
        apply: |g, _| {
            let c = re(r"(?i)^\s*select\s+(?:distinct\s+)?([A-Za-z_][\w.]*)").captures(g)?;
            (!g.to_lowercase().contains("order by")
                && !g.to_lowercase().contains("union")
                && !g.to_lowercase().contains("intersect")
                && !g.to_lowercase().contains("except"))
            .then(|| format!("{g} ORDER BY {} DESC", &c[1]))
        },
    },
    Mutation {
        name: "not_exists",
        apply: |g, _| {
            replace_first(
                g,
                r"(?i)([\w.]+)\s+not\s+in\s*\(\s*select\s+([\w.]+)\s+from\s+(\w+)\s*\)",
                "NOT EXISTS (SELECT 1 FROM $3 WHERE $3.$2 = $1)",
            )
        },
    },
    Mutation {
        name: "except_to_not_in",
        apply: |g, _| {
            let c =
                re(r"(?i)^select\s+([\w.]+)\s+from\s+(\w+)\s+except\s+select\s+([\w.]+)\s+from\s+(.+)$").captures(g)?;
            Some(format!(
                "SELECT {} FROM {} WHERE {} NOT IN (SELECT {} FROM {})",
                &c[1], &c[2], &c[1], &c[3], &c[4]
            ))
        },
    },
    Mutation {
        name: "dup_column",
        apply: |g, _| {
            replace_first(
                g,
                r"(?i)^(\s*select\s+(?:distinct\s+)?)([A-Za-z_][\w.]*)(\s*(,|from\b))",
                "${1}${2}, ${2}${3}",
            )
        },
    },
    Mutation {
        name: "unicode_literal",
        apply: |g, _| replace_first(g, r"'([^']*)'", "'$1é'"),
    },
    Mutation {
        name: "double_spaces",
        apply: |g, _| Some(g.replace(' ', "  ")),
    },
    Mutation {
        name: "tabs",
        apply: |g, _| Some(g.replace(' ', "\t")),
    },
    Mutation {
        name: "upper_values",
        apply: |g, _| {
            let r = re(r"'([^']*)'");
            r.is_match(g).then(|| {
                r.replace_all(g, |c: &regex::Captures| format!("'{}'", c[1].to_uppercase()))
                    .into_owned()
            })
        },
    },
    Mutation {
        name: "like_wild",
        apply: |g, _| replace_first(g, r#"(?i)\s=\s*'([^']*)'"#, " LIKE '%$1%'"),
    },
    Mutation {
        name: "iif",
        apply: |g, _| {
            replace_first(
                g,
                r"(?i)^(\s*select\s+(?:distinct\s+)?)([A-Za-z_][\w.]*)",
                "${1}iif(${2} IS NULL, NULL, ${2})",
            )
        },
    },
    Mutation {
        name: "string_agg_fn",
        apply: |g, _| replace_first(g, r"(?i)^(\s*select\s+)count\(\*\)", "${1}string_agg(1, ',')"),
    },
    Mutation {
        name: "group_concat",
        apply: |g, _| {
            replace_first(
                g,
                r"(?i)^(\s*select\s+)(distinct\s+)?([A-Za-z_][\w.]*)(\s+from\b)",
                "${1}group_concat(${3})${4}",
            )
        },
    },
    Mutation {
        name: "nested_from",
        apply: |g, _| {
            replace_first(
                g,
                r"(?i)\bfrom\s+([A-Za-z_]\w*)(\s+as\s+(\w+))?",
                "FROM (SELECT * FROM $1) AS $1",
            )
        },
    },
    Mutation {
        name: "year_func",
        apply: |g, _| replace_first(g, r"\b(19|20)(\d\d)\b", "strftime('%Y', '$1$2-01-01')"),
    },
    Mutation {
        name: "cross_join",
        apply: |g, _| replace_first(g, r"(?i)\bjoin\b", "CROSS JOIN"),
    },
    Mutation {
        name: "value_column",
        apply: |g, _| replace_first(g, r"(?i)^(\s*select\s+)", "${1}'value' AS v, "),
    },
];

/// The predictions of one mutation for a split: (example id, SQL). `other`
/// is the next example's gold on the same database.
pub fn predictions(examples: &[spider_bench::dataset::Example], m: &Mutation) -> Vec<(usize, String)> {
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
