//! The per-database SQLite grammar (src/llm/grammar.rs), checked with
//! llama.cpp's own grammar sampler and the local model's tokenizer (the
//! vocabulary of the installed GGUF; no weights are loaded): every dev and
//! train gold query is accepted by its database's grammar, except the few
//! listed with their reasons; names outside the schema are refused at the
//! first wrong token. Skipped (SKIPPED in the output; a failure under CI)
//! where the model or the Spider data is absent.
//!
//! The grammar's costs (build time per database, the sampler's cost per
//! generated token) are measured in `benches/grammar.rs`.

#[path = "common/mod.rs"]
mod common;

use spider_bench::dataset::schema::SchemaSet;
use spider_bench::llm::grammar::sqlite_grammar;
use spider_bench::llm::local::{GrammarChecker, Verdict};
use spider_bench::models::{DEFAULT_GENERATION_MODEL, is_installed, spec};
use spider_bench::paths::models_dir;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Instant;

/// Gold queries their database's grammar refuses: (gold file, 0-based
/// line, why). Each must really be refused, so the list stays true.
const EXCEPTIONS: &[(&str, usize, &str)] = &[
    (
        "train_gold.sql",
        5938,
        "ORDER BY and LIMIT before INTERSECT: SQLite refuses it too (ORDER BY clause should come after INTERSECT \
         not before)",
    ),
    ("train_gold.sql", 5939, "the same query as line 5938"),
    (
        "train_gold.sql",
        4397, // train_spider.json example 3153
        "joins Ref_Company_Types and reads company_type_code, which assets_maintenance does not have in \
     tables.json (nor in its SQLite file)",
    ),
];

/// The installed model's vocabulary, loaded once per test process.
fn checker(test: &str) -> Option<&'static GrammarChecker> {
    static CHECKER: OnceLock<Option<GrammarChecker>> = OnceLock::new();
    let checker = CHECKER.get_or_init(|| {
        let spec = spec(DEFAULT_GENERATION_MODEL).unwrap();
        if !is_installed(spec, &models_dir()) {
            return None;
        }
        let gguf = models_dir().join(spec.name).join(spec.gguf().unwrap().name);
        Some(GrammarChecker::load(&gguf).unwrap())
    });
    if checker.is_none() {
        common::skip(
            test,
            &format!(
                "{DEFAULT_GENERATION_MODEL} is not installed in {} (run `spider-bench models fetch`)",
                models_dir().display()
            ),
        );
    }
    checker.as_ref()
}

/// The model's vocabulary and the real data's schemas, or `None` (skipped).
fn setup(test: &str) -> Option<(&'static GrammarChecker, std::path::PathBuf, SchemaSet)> {
    let data = common::real_spider(test)?;
    let checker = checker(test)?;
    let schemas = SchemaSet::load(&data.join("tables.json")).unwrap();
    Some((checker, data, schemas))
}

/// (line, SQL, db_id) of every query of a gold file (`SQL<TAB>db_id`).
fn gold(path: &Path) -> Vec<(usize, String, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let (sql, db) = l
                .rsplit_once('\t')
                .unwrap_or_else(|| panic!("{}:{}: no TAB", path.display(), i + 1));
            (i, sql.trim().to_string(), db.trim().to_string())
        })
        .collect()
}

/// Checks every query of `file` against its database's grammar (built once
/// per database); panics listing every refusal that is not an exception.
fn all_gold_accepted(test: &str, file: &str, expect: usize) {
    let Some((checker, data, schemas)) = setup(test) else {
        return;
    };
    let queries = gold(&data.join(file));
    assert_eq!(queries.len(), expect, "{file}");
    let mut by_db: BTreeMap<&str, Vec<&(usize, String, String)>> = BTreeMap::new();
    for q in &queries {
        by_db.entry(&q.2).or_default().push(q);
    }
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut refused_exceptions = Vec::new();
    for (db, qs) in &by_db {
        let schema = schemas.get(db).unwrap_or_else(|| panic!("{db} is not in tables.json"));
        let gbnf = sqlite_grammar(schema).unwrap_or_else(|e| panic!("{e}"));
        for (line, sql, _) in qs {
            let verdict = checker.check(&gbnf, "root", sql).unwrap();
            let exception = EXCEPTIONS.iter().find(|(f, l, _)| *f == file && l == line);
            match (verdict, exception) {
                (Verdict::Accepted, None) => {}
                (Verdict::Accepted, Some((_, _, why))) => failures.push(format!(
                    "{file}:{line} ({db}) is listed as refused ({why}) but is accepted"
                )),
                (_, Some(_)) => refused_exceptions.push(*line),
                (v, None) => failures.push(describe(file, *line, db, sql, &v)),
            }
        }
    }
    let listed = EXCEPTIONS.iter().filter(|(f, _, _)| *f == file).count();
    let report = format!(
        "{file}: {} queries on {} databases checked in {:.1} s, {} exceptions listed",
        queries.len(),
        by_db.len(),
        started.elapsed().as_secs_f64(),
        listed
    );
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{report}");
    assert!(
        failures.is_empty(),
        "{} of {} gold queries refused:\n{}",
        failures.len(),
        queries.len(),
        failures.join("\n")
    );
    assert_eq!(refused_exceptions.len(), listed, "every listed exception is refused");
}

fn describe(file: &str, line: usize, db: &str, sql: &str, v: &Verdict) -> String {
    match v {
        Verdict::Refused { offset, piece, .. } => {
            let (before, after) = sql.split_at((*offset).min(sql.len()));
            format!("{file}:{line} ({db}) refused at {piece:?}: {before}⟦{after}")
        }
        other => format!("{file}:{line} ({db}) {other:?}: {sql}"),
    }
}

#[test]
fn every_dev_gold_query_is_accepted() {
    all_gold_accepted("every_dev_gold_query_is_accepted", "dev_gold.sql", 1034);
}

/// train_gold.sql: the 7000 train_spider queries, then the 1659 of
/// train_others (whose databases are in tables.json too).
#[test]
fn every_train_gold_query_is_accepted() {
    all_gold_accepted("every_train_gold_query_is_accepted", "train_gold.sql", 8659);
}

/// Queries that name what the schema does not have; `|` marks the first
/// character no query on the schema can have there.
const WRONG: &[&str] = &[
    "SELECT n|me FROM singer",                         // no column starts "nm"
    "SELECT name FROM singer|s",                       // table singers
    "SELECT T1.ti|tle FROM singer AS T1",              // no column "title" (Theme starts "t")
    "SELECT singer.|Year FROM singer",                 // Year is concert's column, not singer's
    "SELECT name FROM singer AS |s",                   // aliases are T1, T2, ...
    "SELECT name |AS n FROM singer",                   // no column aliases
    "SELECT * FROM singer WHERE nat|ion = 'France'",   // no column "nation"
    "SELECT count(*) FROM singer;| DROP TABLE singer", // one statement
    "SELECT count(*) FROM s|qlite_master",             // not a schema table (singer, stadium)
    "SELECT |upper(name) FROM singer",                 // not a function Spider uses
    "SELECT DISTINCT|name FROM singer",                // words need a space between them
];

#[test]
fn names_outside_the_schema_are_refused_at_the_first_wrong_token() {
    let Some((checker, _, schemas)) = setup("names_outside_the_schema_are_refused_at_the_first_wrong_token") else {
        return;
    };
    let gbnf = sqlite_grammar(schemas.get("concert_singer").unwrap()).unwrap();
    for case in WRONG {
        let wrong = case.find('|').unwrap();
        let sql = case.replace('|', "");
        match checker.check(&gbnf, "root", &sql).unwrap() {
            Verdict::Refused { offset, piece, .. } => assert!(
                offset <= wrong && wrong < offset + piece.len(),
                "{sql:?}: refused at {piece:?} (byte {offset}), but the first wrong character is byte {wrong}"
            ),
            v => panic!("{sql:?}: {v:?}"),
        }
    }
}

#[test]
fn the_grammar_ends_only_after_a_whole_query() {
    let Some((checker, _, schemas)) = setup("the_grammar_ends_only_after_a_whole_query") else {
        return;
    };
    let gbnf = sqlite_grammar(schemas.get("concert_singer").unwrap()).unwrap();
    let check = |sql: &str| checker.check(&gbnf, "root", sql).unwrap();
    assert_eq!(check("SELECT name FROM"), Verdict::Unfinished);
    assert_eq!(check("SELECT name FROM singer WHERE age >"), Verdict::Unfinished);
    assert_eq!(check("```sql\nSELECT name FROM singer"), Verdict::Unfinished);
    // What the prompts ask for: the query alone in a ```sql block.
    assert_eq!(check("```sql\nSELECT name FROM singer;\n```"), Verdict::Accepted);
    assert_eq!(check("select NAME from SINGER where AGE > 30"), Verdict::Accepted);
    assert_eq!(check("SELECT \"Song_Name\" FROM `singer` AS t1"), Verdict::Accepted);
    assert_eq!(
        check("SELECT DISTINCT(name) FROM singer ORDER BY count(*) >= 2"),
        Verdict::Accepted
    );
}

#[test]
fn a_grammar_that_does_not_parse_is_an_error_not_a_crash() {
    let Some(checker) = checker("a_grammar_that_does_not_parse_is_an_error_not_a_crash") else {
        return;
    };
    for bad in [
        "root ::= (",
        "root ::= undefined-rule",
        "root ::= \"unclosed",
        "other ::= \"x\"",
    ] {
        let err = checker
            .sampler(bad, "root")
            .err()
            .unwrap_or_else(|| panic!("{bad:?} parsed"));
        assert!(err.to_string().contains("refuses the grammar"), "{err}");
    }
    assert!(checker.sampler("root ::= \"x\"", "root").is_ok());
}

/// The local model under the grammar, end to end (weights loaded): greedy
/// answers to dev questions on concert_singer and on a database with many
/// tables, and sampled ones to the first of each, each one the grammar
/// accepts whole (so it names only the schema's tables and columns). The
/// grammar's cost per token is measured in benches/grammar.rs.
#[test]
fn the_local_model_under_the_grammar_writes_only_schema_names() {
    use spider_bench::llm::local::{LocalConfig, LocalModel};
    use spider_bench::llm::{GenParams, Generator, Message};
    let test = "the_local_model_under_the_grammar_writes_only_schema_names";
    let Some((checker, data, schemas)) = setup(test) else {
        return;
    };
    let spec = spec(DEFAULT_GENERATION_MODEL).unwrap();
    let gguf = spec.gguf().unwrap();
    let path = models_dir().join(spec.name).join(gguf.name);
    let model = LocalModel::load(
        LocalConfig::new(DEFAULT_GENERATION_MODEL, &path, gguf.sha256),
        Default::default(),
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dev: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(data.join("dev.json")).unwrap()).unwrap();
    for db in ["concert_singer", "world_1"] {
        let schema = schemas.get(db).unwrap();
        let gbnf: std::sync::Arc<str> = sqlite_grammar(schema).unwrap().into();
        let tables: Vec<String> = schema
            .tables()
            .iter()
            .map(|t| {
                format!(
                    "{}({})",
                    t.name,
                    t.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
                )
            })
            .collect();
        for (i, q) in dev.iter().filter(|e| e["db_id"] == db).step_by(7).take(3).enumerate() {
            let messages = [
                Message::system(
                    "Write one SQLite query that answers the question. Answer with the query alone in a ```sql code block.",
                ),
                Message::user(format!(
                    "Tables: {}\n\nQuestion: {}",
                    tables.join("; "),
                    q["question"].as_str().unwrap()
                )),
            ];
            let params = |grammar: Option<std::sync::Arc<str>>| GenParams {
                max_tokens: 160,
                grammar,
                ..GenParams::default()
            };
            let out = rt
                .block_on(model.generate(&messages, &params(Some(gbnf.clone())), &[0]))
                .unwrap()
                .remove(0);
            let (text, n) = (out.text, out.completion_tokens);
            let verdict = checker.check(&gbnf, "root", &text).unwrap();
            assert!(
                verdict == Verdict::Accepted || (verdict == Verdict::Unfinished && n == 160),
                "{db}: {text:?} under the grammar: {verdict:?}"
            );
            if i == 0 {
                // Sampled under the grammar (a draw kept when the grammar
                // allows it, else one from the masked distribution): every
                // sample is a query of the grammar too.
                let hot = GenParams {
                    temperature: 0.8,
                    seed: Some(2),
                    ..params(Some(gbnf.clone()))
                };
                for sample in rt.block_on(model.generate(&messages, &hot, &[0, 1, 2])).unwrap() {
                    let verdict = checker.check(&gbnf, "root", &sample.text).unwrap();
                    assert!(
                        verdict == Verdict::Accepted
                            || (verdict == Verdict::Unfinished && sample.completion_tokens == 160),
                        "{db}: sampled {:?} under the grammar: {verdict:?}",
                        sample.text
                    );
                }
            }
        }
    }
}
