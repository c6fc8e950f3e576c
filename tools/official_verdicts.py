#!/usr/bin/env python3
"""Score prediction files with the official Spider evaluator, example by example.

This is how spider-bench's official mode is checked: the predictions written by
`cargo run --example differential_preds -- SPIDER_DIR PRED_DIR` are scored here
with test-suite-sql-eval (a checkout you provide; it is not part of this
repository), and the verdicts go to a TSV file that tests/differential.rs
compares with spider-bench's, example by example.

    pip install sqlparse nltk tqdm
    python3 tools/official_verdicts.py --official PATH/TO/test-suite-sql-eval \
        --data ../shared/spider --preds PRED_DIR --out plain.tsv
    python3 tools/official_verdicts.py --official PATH/TO/test-suite-sql-eval \
        --data ../shared/spider --preds PRED_DIR --out kept.tsv --keep-distinct
    cat plain.tsv kept.tsv > tests/data/official_verdicts.tsv

The verdict of each example is computed exactly as the loop body of
evaluation.evaluate() computes it with --etype all and no --plug_value (and,
with --keep-distinct, --keep_distinct; those rows are named
keep_distinct:<mutation>). The prediction text is passed as it is in the
JSONL file: an empty one is how an empty prediction reaches the loop body
(the official text format cannot carry one: a blank line separates
"interactions").
NLTK's word_tokenize is called with preserve_line=True (the punkt model cannot
be downloaded here). The evaluator writes to the database files (DDL is
committed), so it runs on a scratch copy that is restored whenever a file
changes. Output columns: mutation, id, sha1 of the prediction (first 12 hex
digits), exec (0/1), exact (0/1), hardness. Where the official run would
stop (an exception, e.g. without --keep_distinct sqlparse finds no statement
in an empty prediction) exec is `crash`; where it runs past --timeout, `timeout`: neither is compared.
"""
import argparse, hashlib, json, os, shutil, signal, sys, tempfile, glob


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--official", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--preds", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--timeout", type=int, default=60)
    ap.add_argument("--keep-distinct", action="store_true",
                    help="score as evaluation.py --keep_distinct; rows are named keep_distinct:<mutation>")
    ap.add_argument("--only", help="comma-separated mutations to score (default: every file in --preds)")
    args = ap.parse_args()

    sys.path.insert(0, os.path.abspath(args.official))
    import nltk
    import process_sql
    process_sql.word_tokenize = lambda s: nltk.word_tokenize(s, preserve_line=True)
    import evaluation
    from evaluation import (Evaluator, build_foreign_key_map_from_json, build_valid_col_units,
                            rebuild_sql_val, rebuild_sql_col)
    from exec_eval import eval_exec_match
    from process_sql import Schema, get_schema, get_sql

    data = os.path.abspath(args.data)
    preds_dir, out_path = os.path.abspath(args.preds), os.path.abspath(args.out)
    scratch = tempfile.mkdtemp(prefix="official-db-")
    pristine = os.path.join(data, "database")
    work = os.path.join(scratch, "database")
    shutil.copytree(pristine, work)
    os.chdir(scratch)  # ATTACH 'x' creates x here

    def stamp(db):
        d = os.path.join(work, db)
        return sorted((f, os.stat(os.path.join(d, f)).st_mtime_ns, os.path.getsize(os.path.join(d, f)))
                      for f in os.listdir(d))

    def restore(db):
        shutil.rmtree(os.path.join(work, db))
        shutil.copytree(os.path.join(pristine, db), os.path.join(work, db))

    kmaps = build_foreign_key_map_from_json(os.path.join(data, "tables.json"))
    dev = json.load(open(os.path.join(data, "dev.json")))
    gold = [l.rstrip("\n").split("\t") for l in open(os.path.join(data, "dev_gold.sql")) if l.strip()]
    evaluator = Evaluator()
    empty = {"except": None, "from": {"conds": [], "table_units": []}, "groupBy": [], "having": [],
             "intersect": None, "limit": None, "orderBy": [], "select": [False, []], "union": None, "where": []}

    def on_alarm(signum, frame):
        raise TimeoutError()
    signal.signal(signal.SIGALRM, on_alarm)

    def verdict(p_str, g_str, db_name):
        p_str = p_str.replace("value", "1")
        db = os.path.join(work, db_name, db_name + ".sqlite")
        schema = Schema(get_schema(db))
        g_sql = get_sql(schema, g_str)
        hardness = evaluator.eval_hardness(g_sql)
        try:
            p_sql = get_sql(schema, p_str)
        except:
            p_sql = json.loads(json.dumps(empty))
        exec_score = eval_exec_match(db=db, p_str=p_str, g_str=g_str, plug_value=False,
                                     keep_distinct=args.keep_distinct, progress_bar_for_each_datapoint=False)
        kmap = kmaps[db_name]
        g_valid = build_valid_col_units(g_sql["from"]["table_units"], schema)
        g_sql = rebuild_sql_col(g_valid, rebuild_sql_val(g_sql), kmap)
        p_valid = build_valid_col_units(p_sql["from"]["table_units"], schema)
        p_sql = rebuild_sql_col(p_valid, rebuild_sql_val(p_sql), kmap)
        try:
            exact = evaluator.eval_exact_match(p_sql, g_sql)
        except TypeError:
            exact = "crash"
        return int(exec_score), exact if exact == "crash" else int(bool(exact)), hardness

    only = set(args.only.split(",")) if args.only else None
    prefix = "keep_distinct:" if args.keep_distinct else ""
    with open(out_path, "w") as out:
        for path in sorted(glob.glob(os.path.join(preds_dir, "*.jsonl"))):
            name = os.path.basename(path)[:-6]
            if only is not None and name not in only:
                continue
            name = prefix + name
            for line in open(path):
                row = json.loads(line)
                i, sql = row["id"], row["sql"]
                g_str, db_name = gold[i]
                if not os.path.exists(os.path.join(pristine, db_name, db_name + ".sqlite")):
                    continue
                before = stamp(db_name)
                signal.alarm(args.timeout)
                try:
                    e, x, h = verdict(sql, g_str, db_name)
                except TimeoutError:
                    e, x, h = "timeout", "timeout", "-"
                except Exception:  # the official run would abort here
                    e, x, h = "crash", "crash", "-"
                finally:
                    signal.alarm(0)
                if stamp(db_name) != before:
                    restore(db_name)
                sha = hashlib.sha1(sql.encode("utf-8")).hexdigest()[:12]
                out.write(f"{name}\t{i}\t{sha}\t{e}\t{x}\t{h}\n")
            out.flush()
            print(name, file=sys.stderr)
    shutil.rmtree(scratch)


if __name__ == "__main__":
    main()
