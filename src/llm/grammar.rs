//! A grammar of SQLite queries for one database, in llama.cpp's GBNF format,
//! for schema-constrained decoding: the model can only write the SQL that
//! Spider's gold queries use (SELECT with DISTINCT, joins, subqueries, set
//! operations, the five aggregates, WHERE / GROUP BY / HAVING / ORDER BY /
//! LIMIT, literals, arithmetic), and the only names it can write are the
//! schema's tables and columns.
//!
//! How names are kept to the schema:
//! - A table name (in FROM, JOIN, or as a qualifier `table.column`) is one
//!   of the schema's tables; `table.column` names a column of that table.
//! - A bare column, or `alias.column`, names a column that some table of
//!   the schema has.
//! - Aliases are Spider's `T1`, `T2`, ... (any case, 1 to 99): a context-free
//!   grammar cannot tie an alias's uses to its definition, so an open alias
//!   word would let any identifier through as a qualifier. Every alias in
//!   the gold is of this form. There are no column aliases (`expr AS name`)
//!   for the same reason: `ORDER BY name` would then accept any word.
//! - Names match case-insensitively, as SQLite matches them, and may be
//!   quoted ("x", `x`, [x]); a name that is not a plain identifier (a space,
//!   a parenthesis, a leading digit) can only be written quoted.
//!
//! A double-quoted string is a literal (Spider's gold writes "France"):
//! SQLite reads one that happens to spell a column as that column, which is
//! still a schema name.
//!
//! Names are written as tries (shared prefixes factored), because llama.cpp
//! keeps one parse stack per live alternative: a flat list of 100 columns
//! is 100 stacks at every place a column may start, and the sampler's cost
//! per token grows with the stacks.
//!
//! The root accepts the query alone, or inside a ```sql code block (what
//! the prompts ask for), with an optional `;`.

use crate::dataset::schema::DbSchema;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

/// Why a database's grammar cannot be built. Decoding on that database then
/// falls back to unconstrained, with this as the recorded reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrammarError {
    #[error("database {db}: tables.json lists no tables, so no query can be written; check its entry in tables.json")]
    NoTables { db: String },
    #[error("database {db}: tables.json lists no columns, so no query can be written; check its entry in tables.json")]
    NoColumns { db: String },
    #[error("database {db}: the {what} name {name:?} cannot be written in a grammar ({why}); fix it in tables.json")]
    BadName {
        db: String,
        what: &'static str,
        name: String,
        why: &'static str,
    },
}

/// The GBNF grammar (root rule `root`) of the queries on `schema`'s database.
pub fn sqlite_grammar(schema: &DbSchema) -> Result<String, GrammarError> {
    let names = Names::of(schema)?;
    let mut out = String::new();
    out.push_str(FIXED);
    out.push_str(&keyword_rules());
    write_names(&mut out, &names);
    Ok(out)
}

/// The part of the grammar that does not depend on the schema. Convention
/// for whitespace: no rule starts or ends with it, except the optional
/// clauses, which carry the space before them; `sp` is required space
/// (between words), `ws` optional (around punctuation). (llama.cpp reads
/// a newline as the end of a rule, except inside parentheses.)
const FIXED: &str = r#"root ::= answer | "```" ([sS] [qQ] [lL])? "\n" answer ws "```"
answer ::= query (ws ";")?
sp ::= [ \t\r\n]+
ws ::= [ \t\r\n]*

query ::= core (sp setop sp core)* order? limit?
setop ::= kw-union (sp kw-all)? | kw-intersect | kw-except
core ::= kw-select (sp items | sp kw-distinct (sp items | ws "(" ws expr ws ")" expr-tail more-items)) from? where? group? having?
items ::= item more-items
more-items ::= (ws "," ws item)*
item ::= "*" | qualifier "." "*" | expr

from ::= sp kw-from sp source join*
join ::= (ws "," ws | sp (kw-left sp (kw-outer sp)? | kw-inner sp | kw-cross sp)? kw-join sp) source (sp kw-on sp cond)?
source ::= (table | "(" ws query ws ")") (sp (kw-as sp)? alias)?
alias ::= [tT] [1-9] [0-9]?
qualifier ::= alias | table

where ::= sp kw-where sp cond
group ::= sp kw-group sp kw-by sp expr (ws "," ws expr)*
having ::= sp kw-having sp cond
order ::= sp kw-order sp kw-by sp ordering (ws "," ws ordering)*
ordering ::= expr (ws cmp ws expr)? (sp (kw-asc | kw-desc))?
limit ::= sp kw-limit sp integer (sp kw-offset sp integer | ws "," ws integer)?

cond ::= pred (sp (kw-and | kw-or) sp pred)*
pred ::= kw-not sp pred | "(" ws cond ws ")" | kw-exists ws "(" ws query ws ")" | expr test
test ::= ws cmp ws expr | sp (kw-not sp)? (in | like | between) | sp kw-is sp (kw-not sp)? kw-null
in ::= kw-in ws "(" ws (query | expr (ws "," ws expr)*) ws ")"
like ::= kw-like sp expr
between ::= kw-between sp expr sp kw-and sp expr
cmp ::= "=" | "==" | "!=" | "<>" | "<" | ">" | "<=" | ">="

expr ::= term expr-tail
expr-tail ::= (ws arith ws term)*
arith ::= "+" | "-" | "*" | "/" | "||"
term ::= column | number | string | kw-null | aggregate | "(" ws query ws ")" | "(" ws expr ws ")"
aggregate ::= (kw-count | kw-sum | kw-avg | kw-min | kw-max) ws "(" ws ((kw-distinct sp)? expr | "*") ws ")"

integer ::= [0-9]+
number ::= "-"? [0-9]+ ("." [0-9]+)?
string ::= "\"" ([^"] | "\"\"")* "\"" | "'" ([^'] | "''")* "'"
"#;

/// The SQL keywords the grammar uses; each becomes a case-insensitive rule
/// `kw-<word>`.
const KEYWORDS: &[&str] = &[
    "select",
    "distinct",
    "from",
    "where",
    "group",
    "by",
    "having",
    "order",
    "limit",
    "offset",
    "asc",
    "desc",
    "join",
    "left",
    "outer",
    "inner",
    "cross",
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
    "union",
    "all",
    "intersect",
    "except",
    "count",
    "sum",
    "avg",
    "min",
    "max",
];

fn keyword_rules() -> String {
    let mut out = String::from("\n");
    for k in KEYWORDS {
        let spelled: Vec<String> = k.chars().map(char_class).collect();
        let _ = writeln!(out, "kw-{k} ::= {}", spelled.join(" "));
    }
    out
}

/// One character, case-insensitively where it is an ASCII letter (SQLite
/// folds ASCII case only).
fn char_class(c: char) -> String {
    if c.is_ascii_alphabetic() {
        format!("[{}{}]", c.to_ascii_lowercase(), c.to_ascii_uppercase())
    } else {
        literal(c)
    }
}

/// A GBNF string literal of one character.
fn literal(c: char) -> String {
    match c {
        '"' => r#""\"""#.to_string(),
        '\\' => r#""\\""#.to_string(),
        '\n' => r#""\n""#.to_string(),
        '\r' => r#""\r""#.to_string(),
        '\t' => r#""\t""#.to_string(),
        c => format!("\"{c}\""),
    }
}

/// The schema's names, case-folded as SQLite folds them: tables that fold to
/// the same name are one table with both column lists.
struct Names {
    /// Lowercased table name -> its spelling and its columns' spellings.
    tables: BTreeMap<String, (String, Vec<String>)>,
}

impl Names {
    fn of(schema: &DbSchema) -> Result<Names, GrammarError> {
        let db = &schema.db_id;
        let mut tables: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
        let mut by_index = Vec::new();
        for name in &schema.table_names_original {
            check_name(db, "table", name)?;
            let key = name.to_ascii_lowercase();
            tables.entry(key.clone()).or_insert_with(|| (name.clone(), vec![]));
            by_index.push(key);
        }
        if tables.is_empty() {
            return Err(GrammarError::NoTables { db: db.clone() });
        }
        for (t, column) in &schema.column_names_original {
            // Column -1 is tables.json's `*`.
            let Some(key) = usize::try_from(*t).ok().and_then(|t| by_index.get(t)) else {
                continue;
            };
            check_name(db, "column", column)?;
            tables.get_mut(key).expect("indexed above").1.push(column.clone());
        }
        // An empty trie would be an empty rule, which matches the empty
        // string: every name rule needs one name at least.
        if tables.values().all(|(_, cols)| cols.is_empty()) {
            return Err(GrammarError::NoColumns { db: db.clone() });
        }
        Ok(Names { tables })
    }

    fn all_columns(&self) -> Vec<String> {
        self.tables
            .values()
            .flat_map(|(_, cols)| cols.iter().cloned())
            .collect()
    }
}

fn check_name(db: &str, what: &'static str, name: &str) -> Result<(), GrammarError> {
    let bad = |why| {
        Err(GrammarError::BadName {
            db: db.to_string(),
            what,
            name: name.to_string(),
            why,
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.chars().any(char::is_control) {
        return bad("it has a control character");
    }
    if quoted_forms(name).is_empty() {
        return bad("it has all three quote characters in it");
    }
    Ok(())
}

/// A plain SQL identifier, which needs no quotes.
fn is_plain(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The ways `name` can be written: bare when plain, and in each quoting
/// SQLite reads as an identifier whose closing character it does not hold.
fn spellings(name: &str) -> Vec<String> {
    let mut out = quoted_forms(name);
    if is_plain(name) {
        out.push(name.to_string());
    }
    out
}

fn quoted_forms(name: &str) -> Vec<String> {
    [('"', '"'), ('`', '`'), ('[', ']')]
        .iter()
        .filter(|(_, close)| !name.contains(*close))
        .map(|(open, close)| format!("{open}{name}{close}"))
        .collect()
}

/// The rules naming tables and columns: `table`, `any-column`, and
/// `table-column` (`table.column` with the column from that table).
fn write_names(out: &mut String, names: &Names) {
    let mut tables = Trie::default();
    let mut qualified = Trie::default();
    out.push('\n');
    for (i, (spelling, columns)) in names.tables.values().enumerate() {
        let mut cols = Trie::default();
        for c in columns {
            cols.insert_all(c, "");
        }
        // A table without columns in tables.json can be named, not qualified.
        if !columns.is_empty() {
            let _ = writeln!(out, "columns-{i} ::= {}", cols.to_gbnf());
            let tail = format!("\".\" columns-{i}");
            qualified.insert_all(spelling, &tail);
        }
        tables.insert_all(spelling, "");
    }
    let mut any = Trie::default();
    for c in names.all_columns() {
        any.insert_all(&c, "");
    }
    let _ = writeln!(out, "table ::= {}", tables.to_gbnf());
    let _ = writeln!(out, "any-column ::= {}", any.to_gbnf());
    let _ = writeln!(out, "table-column ::= {}", qualified.to_gbnf());
    out.push_str("column ::= any-column | alias \".\" any-column | table-column\n");
}

/// A case-folded trie of spellings; a spelling's end carries the GBNF text
/// that must follow it (empty for none).
#[derive(Default)]
struct Trie {
    children: BTreeMap<char, Trie>,
    /// The tails of the spellings that end here (several where two tables
    /// fold to the same name: both column lists).
    ends: Vec<String>,
}

impl Trie {
    fn insert_all(&mut self, name: &str, tail: &str) {
        for s in spellings(name) {
            self.insert(&s, tail);
        }
    }

    fn insert(&mut self, spelling: &str, tail: &str) {
        let mut node = self;
        for c in spelling.chars() {
            node = node.children.entry(c.to_ascii_lowercase()).or_default();
        }
        if !node.ends.iter().any(|t| t == tail) {
            node.ends.push(tail.to_string());
        }
    }

    /// The trie as one GBNF expression: a sequence where there is one way
    /// on, an alternation where there are several, optional where a
    /// spelling may end here with nothing after it.
    fn to_gbnf(&self) -> String {
        let mut alts: Vec<String> = self
            .children
            .iter()
            .map(|(c, sub)| {
                let rest = sub.to_gbnf();
                if rest.is_empty() {
                    char_class(*c)
                } else {
                    format!("{} {rest}", char_class(*c))
                }
            })
            .collect();
        let ends_bare = self.ends.iter().any(String::is_empty);
        alts.extend(self.ends.iter().filter(|t| !t.is_empty()).cloned());
        match (alts.len(), ends_bare) {
            (0, _) => String::new(),
            (1, false) => alts.remove(0),
            (_, false) => format!("({})", alts.join(" | ")),
            (_, true) => format!("({})?", alts.join(" | ")),
        }
    }
}

/// Grammars built once per database and shared (a run asks for the same
/// database's grammar for every question on it).
#[derive(Default)]
pub struct GrammarCache {
    built: Mutex<HashMap<String, Result<Arc<str>, GrammarError>>>,
}

impl GrammarCache {
    /// The grammar of `schema`'s database, built on the first call.
    pub fn get(&self, schema: &DbSchema) -> Result<Arc<str>, GrammarError> {
        let mut built = self.built.lock().unwrap_or_else(|e| e.into_inner());
        built
            .entry(schema.db_id.clone())
            .or_insert_with(|| sqlite_grammar(schema).map(Arc::from))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(tables: &[&str], columns: &[(i64, &str)]) -> DbSchema {
        DbSchema {
            db_id: "test_db".into(),
            table_names_original: tables.iter().map(|s| s.to_string()).collect(),
            table_names: tables.iter().map(|s| s.to_string()).collect(),
            column_names_original: columns.iter().map(|(t, c)| (*t, c.to_string())).collect(),
            column_names: columns.iter().map(|(t, c)| (*t, c.to_string())).collect(),
            column_types: columns.iter().map(|_| "text".to_string()).collect(),
            primary_keys: vec![],
            foreign_keys: vec![],
        }
    }

    #[test]
    fn names_become_case_insensitive_tries() {
        let s = schema(&["singer"], &[(-1, "*"), (0, "name"), (0, "Name_id"), (0, "age")]);
        let g = sqlite_grammar(&s).unwrap();
        assert!(g.contains("kw-select ::= [sS] [eE] [lL] [eE] [cC] [tT]\n"), "{g}");
        // "name" ends where "name_id" goes on: optional continuation.
        assert!(g.contains("[nN] [aA] [mM] [eE] (\"_\" [iI] [dD])?"), "{g}");
        assert!(g.contains("table-column ::= "), "{g}");
        assert!(g.contains("\".\" columns-0"), "{g}");
    }

    #[test]
    fn a_name_that_is_not_an_identifier_is_only_quoted() {
        let s = schema(&["t"], &[(0, "Home Town")]);
        let g = sqlite_grammar(&s).unwrap();
        let any = g.lines().find(|l| l.starts_with("any-column ::=")).unwrap();
        assert!(
            !any.contains("| [hH]") && !any.starts_with("any-column ::= [hH]"),
            "{any}"
        );
        assert!(any.contains("\" \""), "the space is inside the quotes: {any}");
    }

    #[test]
    fn a_schema_without_tables_is_an_error_naming_the_database() {
        let err = sqlite_grammar(&schema(&[], &[])).unwrap_err();
        assert_eq!(err, GrammarError::NoTables { db: "test_db".into() });
        assert!(err.to_string().contains("test_db"));
        let err = sqlite_grammar(&schema(&["a\u{0}b"], &[])).unwrap_err();
        assert!(err.to_string().contains("control character"), "{err}");
    }

    #[test]
    fn the_cache_builds_once_per_database() {
        let cache = GrammarCache::default();
        let s = schema(&["singer"], &[(0, "name")]);
        let a = cache.get(&s).unwrap();
        let b = cache.get(&s).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
    }
}
