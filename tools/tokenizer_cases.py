#!/usr/bin/env python3
"""Random SQL-like strings and what the official evaluator's text layers make
of them: process_sql.tokenize (NLTK word_tokenize with preserve_line=True)
and exec_eval's remove_distinct (sqlparse). tests/tokenizer_differential.rs
checks spider-bench's ports against the recorded outputs.

    pip install sqlparse nltk
    python3 tools/tokenizer_cases.py --official PATH/TO/test-suite-sql-eval \
        --out tests/data/tokenizer_cases.jsonl [--n 4000 --seed 7]
"""
import argparse, json, random, sys

PIECES = [
    "SELECT", "select", "FROM", "WHERE", "DISTINCT", "distinct", "Distinct", "count", "(", ")", "*", ",", ";", ";;",
    ".", "..", "T1", "T1.name", "t2.id", "name", "value", "values", "VALUE", "cannot", "gonna", "wanna ", "AS", "as",
    "=", "!=", "! =", ">=", "> =", "<=", "<", ">", "<>", "-", "--", "-- c\n", "/*", "*/", "/* x */", "'", '"', "`",
    "'a b'", "'it''s'", '"x y"', "`col`", "[col]", "$1", "$$", "$tag$", ":x", "?", "%s", "@v", "#t", "##x",
    "1", "1.5", ".5", "5.", "1e5", "-3", "0x1F", "1_000", "nan", "inf", "é", "café", "Ü", "ß", "日本", "\u2013",
    "«", "»", "“", "”", "‘", "’", "''", "``", " ", "  ", "\n", "\t", "\r\n", "\x1c", "!", "?", "&", "%", "@", "#",
    "BEGIN", "END", "END IF", "END LOOP", "CASE", "WHEN", "THEN", "ELSE", "IF", "GO", "GO 2", "go", "CREATE",
    "CREATE OR REPLACE", "DECLARE", "TRANSACTION", "FOR", "WHILE", "LOOP", "DO", "ORDER BY", "GROUP BY", "LIMIT",
    "JOIN", "LEFT JOIN", "ON", "IN", "NOT NULL", "LIKE", "NOT LIKE", "UNION ALL", "INTERSECT", "EXCEPT",
    "distinct_col", "t.distinct", "distinct(", "'distinct'", '"distinct"', "x:", ":", ",x", "a,b", "3,4", "'s", "n't",
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--official", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    sys.path.insert(0, args.official)
    import nltk, process_sql
    process_sql.word_tokenize = lambda s: nltk.word_tokenize(s, preserve_line=True)
    import sqlparse

    def remove_distinct(s):
        toks = [t.value for t in list(sqlparse.parse(s)[0].flatten())]
        return "".join([t for t in toks if t.lower() != "distinct"])

    rng = random.Random(args.seed)
    with open(args.out, "w") as out:
        for _ in range(args.n):
            k = rng.randint(1, 14)
            sep = rng.choice(["", " ", " ", " ", "  "])
            s = sep.join(rng.choice(PIECES) for _ in range(k))
            try:
                toks = process_sql.tokenize(s)
            except Exception:
                toks = None
            try:
                nd = remove_distinct(s)
            except Exception:
                nd = None
            out.write(json.dumps({"input": s, "tokens": toks, "no_distinct": nd}, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
