//! Exact-set match and hardness, ported from the official `evaluation.py`
//! (`Evaluator.eval_exact_match`, `eval_hardness` and the `rebuild_*`
//! helpers that drop values and unify foreign keys before comparing).

use super::parse::*;
use crate::dataset::schema::DbSchema;
use std::collections::{HashMap, HashSet};

/// Column-id unification map built from tables.json foreign keys
/// (`build_foreign_key_map`): every column of a foreign-key cluster maps to
/// the cluster's lowest-numbered column.
pub type KeyMap = HashMap<String, String>;

/// The official hardness levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Hardness {
    Easy,
    Medium,
    Hard,
    Extra,
}

impl Hardness {
    pub const ALL: [Hardness; 4] = [Hardness::Easy, Hardness::Medium, Hardness::Hard, Hardness::Extra];

    pub fn as_str(self) -> &'static str {
        match self {
            Hardness::Easy => "easy",
            Hardness::Medium => "medium",
            Hardness::Hard => "hard",
            Hardness::Extra => "extra",
        }
    }
}

impl std::fmt::Display for Hardness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The official foreign-key unification map of a database.
pub fn key_map(db: &DbSchema) -> KeyMap {
    build_key_map(&db.column_names_original, &db.table_names_original, &db.foreign_keys)
}

/// `build_foreign_key_map(entry)` for one tables.json entry.
pub fn build_key_map(
    column_names_original: &[(i64, String)],
    table_names_original: &[String],
    foreign_keys: &[(usize, usize)],
) -> KeyMap {
    let cols: Vec<String> = column_names_original
        .iter()
        .map(|(t, c)| {
            if *t >= 0 {
                let table = table_names_original.get(*t as usize).map(String::as_str).unwrap_or("");
                format!("__{}.{}__", table.to_lowercase(), c.to_lowercase())
            } else {
                "__all__".to_string()
            }
        })
        .collect();
    // keyset_in_list: a key pair joins the first set holding either key.
    let mut sets: Vec<HashSet<usize>> = Vec::new();
    for &(k1, k2) in foreign_keys {
        let pos = sets.iter().position(|s| s.contains(&k1) || s.contains(&k2));
        let set = match pos {
            Some(p) => &mut sets[p],
            None => {
                sets.push(HashSet::new());
                sets.last_mut().expect("just pushed")
            }
        };
        set.insert(k1);
        set.insert(k2);
    }
    let mut map = KeyMap::new();
    for set in &sets {
        let mut ids: Vec<usize> = set.iter().copied().collect();
        ids.sort_unstable();
        let head = ids[0];
        for id in ids {
            if let (Some(from), Some(to)) = (cols.get(id), cols.get(head)) {
                map.insert(from.clone(), to.clone());
            }
        }
    }
    map
}

// ---------------------------------------------------------------- hardness

fn count_component1(sql: &Sql) -> usize {
    let mut count = 0;
    count += usize::from(!sql.where_.is_empty());
    count += usize::from(!sql.group_by.is_empty());
    count += usize::from(sql.order_by.is_some());
    count += usize::from(sql.limit.is_some());
    count += sql.table_units.len().saturating_sub(1);
    let conditions = [&sql.from_conds, &sql.where_, &sql.having];
    count += conditions
        .iter()
        .flat_map(|c| conjunctions(c))
        .filter(|c| *c == "or")
        .count();
    count += conditions
        .iter()
        .flat_map(|c| cond_units(c))
        .filter(|u| u.op == OP_LIKE)
        .count();
    count
}

/// `get_nestedSQL`: subqueries used as condition values, then I/E/U.
fn nested_sqls(sql: &Sql) -> Vec<&Sql> {
    let mut nested = Vec::new();
    for c in [&sql.from_conds, &sql.where_, &sql.having] {
        for u in cond_units(c) {
            for v in [&u.val1, &u.val2] {
                if let Val::Sql(s) = v {
                    nested.push(s.as_ref());
                }
            }
        }
    }
    nested.extend(
        [&sql.intersect, &sql.except, &sql.union]
            .into_iter()
            .flatten()
            .map(|b| b.as_ref()),
    );
    nested
}

fn count_others(sql: &Sql) -> usize {
    // `has_agg(unit)` is `unit[0] != 0`: for condition units that is the NOT
    // flag, and for HAVING's 'and'/'or' strings it is always true.
    let mut agg = sql.select.items.iter().filter(|(a, _)| *a != 0).count();
    agg += cond_units(&sql.where_).filter(|u| u.not).count();
    agg += sql.group_by.iter().filter(|c| c.agg != 0).count();
    if let Some((_, units)) = &sql.order_by {
        agg += units.iter().filter(|u| u.col1.agg != 0).count();
        agg += units
            .iter()
            .filter_map(|u| u.col2.as_ref())
            .filter(|c| c.agg != 0)
            .count();
    }
    agg += sql
        .having
        .iter()
        .filter(|item| match item {
            CondItem::Unit(u) => u.not,
            CondItem::Conj(_) => true,
        })
        .count();
    usize::from(agg > 1)
        + usize::from(sql.select.items.len() > 1)
        + usize::from(sql.where_.len() > 1)
        + usize::from(sql.group_by.len() > 1)
}

/// `Evaluator.eval_hardness` on a parsed gold query.
pub fn hardness(sql: &Sql) -> Hardness {
    let c1 = count_component1(sql);
    let c2 = nested_sqls(sql).len();
    let others = count_others(sql);
    if c1 <= 1 && others == 0 && c2 == 0 {
        Hardness::Easy
    } else if (others <= 2 && c1 <= 1 && c2 == 0) || (c1 <= 2 && others < 2 && c2 == 0) {
        Hardness::Medium
    } else if (others > 2 && c1 <= 2 && c2 == 0)
        || (2 < c1 && c1 <= 3 && others <= 2 && c2 == 0)
        || (c1 <= 1 && others == 0 && c2 <= 1)
    {
        Hardness::Hard
    } else {
        Hardness::Extra
    }
}

// ----------------------------------------------------------------- rebuild

/// `rebuild_sql_val`: condition values that are not subqueries become None
/// (recursing into condition subqueries and I/E/U, not into FROM subqueries).
fn rebuild_values(mut sql: Sql) -> Sql {
    fn cond(c: Condition) -> Condition {
        c.into_iter()
            .map(|item| match item {
                CondItem::Unit(mut u) => {
                    u.val1 = val(u.val1);
                    u.val2 = val(u.val2);
                    CondItem::Unit(u)
                }
                conj => conj,
            })
            .collect()
    }
    fn val(v: Val) -> Val {
        match v {
            Val::Sql(s) => Val::Sql(Box::new(rebuild_values(*s))),
            _ => Val::None,
        }
    }
    sql.from_conds = cond(sql.from_conds);
    sql.having = cond(sql.having);
    sql.where_ = cond(sql.where_);
    sql.intersect = sql.intersect.map(|s| Box::new(rebuild_values(*s)));
    sql.except = sql.except.map(|s| Box::new(rebuild_values(*s)));
    sql.union = sql.union.map(|s| Box::new(rebuild_values(*s)));
    sql
}

/// `build_valid_col_units`: the column ids of the tables in the top FROM.
fn valid_columns(sql: &Sql, schema: &ParseSchema) -> HashSet<String> {
    let prefixes: Vec<&str> = sql
        .table_units
        .iter()
        .filter_map(|t| match t {
            TableUnit::Table(id) => Some(&id[..id.len().saturating_sub(2)]),
            TableUnit::Sql(_) => None,
        })
        .collect();
    schema
        .id_map
        .values()
        .filter(|v| v.find('.').is_some_and(|dot| prefixes.contains(&&v[..dot])))
        .cloned()
        .collect()
}

struct ColumnRebuild<'a> {
    valid: &'a HashSet<String>,
    keys: &'a KeyMap,
}

impl ColumnRebuild<'_> {
    fn col(&self, mut c: ColUnit) -> ColUnit {
        if self.valid.contains(&c.col)
            && let Some(k) = self.keys.get(&c.col)
        {
            c.col = k.clone();
        }
        c.distinct = None;
        c
    }

    fn val_unit(&self, v: ValUnit) -> ValUnit {
        ValUnit {
            op: v.op,
            col1: self.col(v.col1),
            col2: v.col2.map(|c| self.col(c)),
        }
    }

    /// Only the left side of each condition; values are left as they are.
    fn cond(&self, c: Condition) -> Condition {
        c.into_iter()
            .map(|item| match item {
                CondItem::Unit(mut u) => {
                    u.val_unit = self.val_unit(u.val_unit);
                    CondItem::Unit(u)
                }
                conj => conj,
            })
            .collect()
    }

    /// `rebuild_sql_col`.
    fn sql(&self, mut sql: Sql) -> Sql {
        sql.select.distinct = None;
        sql.select.items = sql
            .select
            .items
            .into_iter()
            .map(|(a, v)| (a, self.val_unit(v)))
            .collect();
        sql.from_conds = self.cond(sql.from_conds);
        sql.where_ = self.cond(sql.where_);
        sql.group_by = sql.group_by.into_iter().map(|c| self.col(c)).collect();
        sql.order_by = sql
            .order_by
            .map(|(dir, units)| (dir, units.into_iter().map(|v| self.val_unit(v)).collect()));
        sql.having = self.cond(sql.having);
        sql.intersect = sql.intersect.map(|s| Box::new(self.sql(*s)));
        sql.except = sql.except.map(|s| Box::new(self.sql(*s)));
        sql.union = sql.union.map(|s| Box::new(self.sql(*s)));
        sql
    }
}

/// The evaluator's preparation of a parsed tree before exact matching.
pub fn rebuild_for_match(sql: Sql, schema: &ParseSchema, keys: &KeyMap) -> Sql {
    let valid = valid_columns(&sql, schema);
    let sql = rebuild_values(sql);
    ColumnRebuild { valid: &valid, keys }.sql(sql)
}

// ------------------------------------------------------------- exact match

/// Counts how many of `pred` can be matched one-to-one in `label`.
fn multiset_hits<T: PartialEq>(pred: &[T], label: &[T]) -> usize {
    let mut remaining: Vec<&T> = label.iter().collect();
    let mut hits = 0;
    for p in pred {
        if let Some(i) = remaining.iter().position(|l| *l == p) {
            remaining.remove(i);
            hits += 1;
        }
    }
    hits
}

/// `get_scores(...)[2] == 1`.
fn full_score(count: usize, pred_total: usize, label_total: usize) -> bool {
    pred_total == label_total && count == pred_total
}

fn keywords(sql: &Sql) -> HashSet<&str> {
    let mut k = HashSet::new();
    if !sql.where_.is_empty() {
        k.insert("where");
    }
    if !sql.group_by.is_empty() {
        k.insert("group");
    }
    if !sql.having.is_empty() {
        k.insert("having");
    }
    if let Some((dir, _)) = &sql.order_by {
        k.insert(dir.as_str());
        k.insert("order");
    }
    if sql.limit.is_some() {
        k.insert("limit");
    }
    if sql.except.is_some() {
        k.insert("except");
    }
    if sql.union.is_some() {
        k.insert("union");
    }
    if sql.intersect.is_some() {
        k.insert("intersect");
    }
    let conds = [&sql.from_conds, &sql.where_, &sql.having];
    if conds.iter().flat_map(|c| conjunctions(c)).any(|c| c == "or") {
        k.insert("or");
    }
    let units: Vec<&CondUnit> = conds.iter().flat_map(|c| cond_units(c)).collect();
    if units.iter().any(|u| u.not) {
        k.insert("not");
    }
    if units.iter().any(|u| u.op == OP_IN) {
        k.insert("in");
    }
    if units.iter().any(|u| u.op == OP_LIKE) {
        k.insert("like");
    }
    k
}

fn group_column_names(sql: &Sql) -> Vec<&str> {
    sql.group_by
        .iter()
        .map(|c| match c.col.split('.').nth(1) {
            Some(after_dot) => after_dot,
            None => c.col.as_str(),
        })
        .collect()
}

/// Every partial score of `eval_partial_match` is perfect.
fn partial_match(pred: &Sql, label: &Sql) -> bool {
    // select and select(no AGG)
    let (ps, ls) = (&pred.select.items, &label.select.items);
    if !full_score(multiset_hits(ps, ls), ps.len(), ls.len()) {
        return false;
    }
    let pv: Vec<&ValUnit> = ps.iter().map(|(_, v)| v).collect();
    let lv: Vec<&ValUnit> = ls.iter().map(|(_, v)| v).collect();
    if !full_score(multiset_hits(&pv, &lv), ps.len(), ls.len()) {
        return false;
    }
    // where and where(no OP)
    let pw: Vec<&CondUnit> = cond_units(&pred.where_).collect();
    let lw: Vec<&CondUnit> = cond_units(&label.where_).collect();
    if !full_score(multiset_hits(&pw, &lw), pw.len(), lw.len()) {
        return false;
    }
    let pwv: Vec<&ValUnit> = pw.iter().map(|u| &u.val_unit).collect();
    let lwv: Vec<&ValUnit> = lw.iter().map(|u| &u.val_unit).collect();
    if !full_score(multiset_hits(&pwv, &lwv), pw.len(), lw.len()) {
        return false;
    }
    // group(no Having): column names without their table
    let (pg, lg) = (group_column_names(pred), group_column_names(label));
    if !full_score(multiset_hits(&pg, &lg), pg.len(), lg.len()) {
        return false;
    }
    // group: same GROUP BY columns in order and the same HAVING
    let (pt, lt) = (
        usize::from(!pred.group_by.is_empty()),
        usize::from(!label.group_by.is_empty()),
    );
    let same_group = pt == 1
        && lt == 1
        && pred
            .group_by
            .iter()
            .map(|c| &c.col)
            .eq(label.group_by.iter().map(|c| &c.col))
        && pred.having == label.having;
    if !full_score(usize::from(same_group), pt, lt) {
        return false;
    }
    // order: same ORDER BY and LIMIT present on both or neither
    let (pt, lt) = (
        usize::from(pred.order_by.is_some()),
        usize::from(label.order_by.is_some()),
    );
    let same_order =
        label.order_by.is_some() && pred.order_by == label.order_by && pred.limit.is_some() == label.limit.is_some();
    if !full_score(usize::from(same_order), pt, lt) {
        return false;
    }
    // and/or: the same set of connectors in WHERE
    let pao: HashSet<&str> = conjunctions(&pred.where_).collect();
    let lao: HashSet<&str> = conjunctions(&label.where_).collect();
    if pao != lao {
        return false;
    }
    // IUEN: nested intersect/except/union must match exactly
    let mut totals = (0, 0, 0);
    for (p, l) in [
        (&pred.intersect, &label.intersect),
        (&pred.except, &label.except),
        (&pred.union, &label.union),
    ] {
        totals.0 += usize::from(l.is_some());
        totals.1 += usize::from(p.is_some());
        if let (Some(p), Some(l)) = (p, l) {
            totals.2 += usize::from(exact_match(p, l));
        }
    }
    if !full_score(totals.2, totals.1, totals.0) {
        return false;
    }
    keywords(pred) == keywords(label)
}

/// `sorted(table_units)`: tuples `('sql', dict)` sort before
/// `('table_unit', str)`; two unequal dicts cannot be ordered (Python raises
/// TypeError, returned here as `None`).
fn sorted_table_units(units: &[TableUnit]) -> Option<(Vec<&Sql>, Vec<&str>)> {
    let sqls: Vec<&Sql> = units
        .iter()
        .filter_map(|u| match u {
            TableUnit::Sql(s) => Some(s.as_ref()),
            TableUnit::Table(_) => None,
        })
        .collect();
    if sqls.windows(2).any(|w| w[0] != w[1]) {
        return None;
    }
    let mut tables: Vec<&str> = units
        .iter()
        .filter_map(|u| match u {
            TableUnit::Table(t) => Some(t.as_str()),
            TableUnit::Sql(_) => None,
        })
        .collect();
    tables.sort_unstable();
    Some((sqls, tables))
}

/// `Evaluator.eval_exact_match(pred, label)` on rebuilt trees. A TypeError in
/// the official code (see [`sorted_table_units`]) counts as no match.
pub fn exact_match(pred: &Sql, label: &Sql) -> bool {
    if !partial_match(pred, label) {
        return false;
    }
    if label.table_units.is_empty() {
        return true;
    }
    match (
        sorted_table_units(&label.table_units),
        sorted_table_units(&pred.table_units),
    ) {
        (Some(l), Some(p)) => l == p,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::eval::parse::tests::schema;

    fn keys() -> KeyMap {
        let cols = vec![
            (-1, "*".to_string()),
            (0, "Singer_ID".to_string()),
            (0, "Name".to_string()),
            (0, "Age".to_string()),
            (1, "Concert_ID".to_string()),
            (1, "Singer_ID".to_string()),
            (1, "Year".to_string()),
        ];
        build_key_map(&cols, &["singer".into(), "concert".into()], &[(5, 1)])
    }

    fn exact(pred: &str, gold: &str) -> bool {
        let s = schema();
        let g = rebuild_for_match(get_sql(&s, gold).unwrap(), &s, &keys());
        let p = get_sql(&s, pred)
            .map(|p| rebuild_for_match(p, &s, &keys()))
            .unwrap_or_else(|_| Sql::empty());
        exact_match(&p, &g)
    }

    fn hard(q: &str) -> Hardness {
        hardness(&get_sql(&schema(), q).unwrap())
    }

    #[test]
    fn values_limits_case_and_order_of_items_are_ignored() {
        assert!(exact(
            "select age, name from singer where age > 30 limit 5",
            "SELECT name, age FROM singer WHERE age > 20 LIMIT 1"
        ));
        assert!(!exact(
            "select name from singer where age < 30",
            "SELECT name FROM singer WHERE age > 30"
        ));
        assert!(!exact("select name from singer", "SELECT name FROM singer LIMIT 1"));
    }

    #[test]
    fn foreign_keys_are_unified() {
        assert!(exact(
            "SELECT T2.singer_id FROM singer AS T1 JOIN concert AS T2 ON T1.singer_id = T2.singer_id",
            "SELECT T1.singer_id FROM singer AS T1 JOIN concert AS T2 ON T1.singer_id = T2.singer_id"
        ));
    }

    #[test]
    fn hardness_levels() {
        assert_eq!(hard("SELECT count(*) FROM singer"), Hardness::Easy);
        assert_eq!(hard("SELECT name, age FROM singer WHERE age > 3"), Hardness::Medium);
        assert_eq!(
            hard("SELECT name FROM singer WHERE age > (SELECT avg(age) FROM singer)"),
            Hardness::Hard
        );
        assert_eq!(
            hard(
                "SELECT name FROM singer WHERE age > 3 AND name LIKE '%a%' INTERSECT SELECT name FROM singer ORDER BY age LIMIT 1"
            ),
            Hardness::Extra
        );
    }
}
