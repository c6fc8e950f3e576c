//! One verdict per example: execution match, exact-set match and hardness,
//! as `evaluation.py --etype all` (without `--plug_value`) computes them.

use super::exact::{Hardness, KeyMap, exact_match, hardness, rebuild_for_match};
use super::parse::{ParseSchema, Sql, get_sql};
use super::result_eq::{Compare, result_eq};
use super::sqlparse::remove_distinct;
use crate::exec::sandbox::{Limits, Outcome, Sandbox, with_sandbox};
use crate::exec::value::Row;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Which rules decide the verdicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Exactly the official evaluator, known defects included.
    Official,
    /// The official rules with the defects of the semantics document fixed:
    /// no `value` -> `1` rewrite, a prediction must be a single read-only
    /// statement, and no int/float false negative in the quick reject.
    Strict,
}

#[derive(Debug, Clone)]
pub struct JudgeConfig {
    pub mode: Mode,
    /// `--keep_distinct`: run DISTINCT as written.
    pub keep_distinct: bool,
    pub limits: Limits,
}

impl Default for JudgeConfig {
    fn default() -> Self {
        JudgeConfig {
            mode: Mode::Official,
            keep_distinct: false,
            limits: Limits::default(),
        }
    }
}

/// What happened to one example.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Same result as the gold.
    Correct,
    /// Ran, but its result differs from the gold's.
    Wrong,
    /// The prediction failed to run (SQL error, several statements...).
    ExecError,
    /// The prediction ran past the time limit.
    Timeout,
    /// No prediction, or a blank one. Wrong, except in official mode with
    /// `--keep_distinct`, where it runs as an empty result (and so matches a
    /// gold that returns no rows) as in the official script.
    Empty,
    /// Not scored: the database is missing.
    Skipped,
    /// Not scored: the gold query itself fails (a dataset error).
    GoldError,
    /// Not scored: no answer could be had from the model (endpoint down,
    /// timeouts, 5xx past the retries). `run --resume` asks again.
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Correct => "correct",
            Status::Wrong => "wrong",
            Status::ExecError => "exec_error",
            Status::Timeout => "timeout",
            Status::Empty => "empty",
            Status::Skipped => "skipped",
            Status::GoldError => "gold_error",
            Status::Error => "error",
        }
    }

    /// Counted in the accuracy denominators.
    pub fn is_scored(self) -> bool {
        !matches!(self, Status::Skipped | Status::GoldError | Status::Error)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub hardness: Option<Hardness>,
    /// Execution match; `None` when the example is not scored.
    pub exec: Option<bool>,
    /// Exact-set match; `None` when the example is not scored.
    pub exact: Option<bool>,
    pub status: Status,
    pub error: Option<String>,
}

/// Everything about one database that judging needs.
#[derive(Debug, Clone)]
pub struct DbContext {
    pub db_id: String,
    /// The parser's schema, read from the SQLite file like the official code
    /// (from tables.json when the file is missing).
    pub parse_schema: ParseSchema,
    pub keys: KeyMap,
    /// Database files; empty when missing.
    pub files: Vec<PathBuf>,
    /// Why the database cannot be used, when it cannot.
    pub missing: Option<String>,
}

/// `exec_eval.postprocess`.
fn postprocess(q: &str) -> String {
    q.replace("> =", ">=").replace("< =", "<=").replace("! =", "!=")
}

/// `exec_eval.replace_cur_year`.
fn replace_cur_year(q: &str) -> std::borrow::Cow<'_, str> {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    RE.get_or_init(|| regex::Regex::new(r"(?i)YEAR\s*\(\s*CURDATE\s*\(\s*\)\s*\)\s*").expect("valid regex"))
        .replace_all(q, "2020")
}

fn unscored(hardness: Option<Hardness>, status: Status, error: String) -> Verdict {
    Verdict {
        hardness,
        exec: None,
        exact: None,
        status,
        error: Some(error),
    }
}

/// Judges one prediction (`None`: no prediction was given) against the gold.
pub fn judge(ctx: &DbContext, gold: &str, pred: Option<&str>, cfg: &JudgeConfig) -> Verdict {
    let gold_sql = match get_sql(&ctx.parse_schema, gold) {
        Ok(s) => s,
        Err(e) => {
            return unscored(None, Status::GoldError, format!("the gold query does not parse: {e}"));
        }
    };
    let level = Some(hardness(&gold_sql));
    if let Some(why) = &ctx.missing {
        return unscored(level, Status::Skipped, why.clone());
    }
    let blank = pred.is_none_or(|p| p.trim().is_empty());
    // Official mode with --keep_distinct hands an empty prediction to SQLite,
    // which runs nothing and returns no rows: it is judged as the empty
    // query (matching a gold with no rows on every file; never an exact
    // match), its status staying `empty`. Without --keep_distinct the
    // official script raises on it (sqlparse finds no statement to remove
    // DISTINCT from) and the run stops: there is no verdict to copy.
    let runs_empty = cfg.mode == Mode::Official && cfg.keep_distinct;
    if blank && !runs_empty {
        return Verdict {
            hardness: level,
            exec: Some(false),
            exact: Some(false),
            status: Status::Empty,
            error: Some("no prediction".into()),
        };
    }
    let pred = if blank { "" } else { pred.unwrap_or_default() };
    // evaluation.py: p_str.replace("value", "1"), before parsing and executing.
    let pred: std::borrow::Cow<str> = match cfg.mode {
        Mode::Official => pred.replace("value", "1").into(),
        Mode::Strict => pred.into(),
    };
    let exact = exact_verdict(ctx, gold_sql, &pred);
    match exec_verdict(ctx, gold, &pred, cfg) {
        Ok((status, error)) => {
            let exec = status == Status::Correct;
            let (status, error) = match (blank, exec) {
                (false, _) => (status, error),
                (true, true) => (Status::Empty, Some(EMPTY_MATCH.into())),
                (true, false) => (Status::Empty, Some(EMPTY_RUN.into())),
            };
            Verdict {
                hardness: level,
                exec: Some(exec),
                exact: Some(exact),
                status,
                error,
            }
        }
        Err(gold_error) => unscored(level, Status::GoldError, gold_error),
    }
}

const EMPTY_MATCH: &str =
    "empty prediction: run as an empty result, which equals the gold's (official --keep_distinct)";
const EMPTY_RUN: &str = "empty prediction: run as an empty result (official --keep_distinct)";

fn exact_verdict(ctx: &DbContext, gold_sql: Sql, pred: &str) -> bool {
    let pred_sql = get_sql(&ctx.parse_schema, pred).unwrap_or_else(|_| Sql::empty());
    let gold_sql = rebuild_for_match(gold_sql, &ctx.parse_schema, &ctx.keys);
    let pred_sql = rebuild_for_match(pred_sql, &ctx.parse_schema, &ctx.keys);
    exact_match(&pred_sql, &gold_sql)
}

/// The gold text as the official code executes it: joined operators,
/// DISTINCT removed (unless kept, which also keeps every statement), current
/// year replaced.
fn executable_gold(gold: &str, cfg: &JudgeConfig) -> Result<String, String> {
    let mut g = postprocess(gold);
    if !cfg.keep_distinct {
        g = remove_distinct(&g, false).map_err(|e| format!("sqlparse cannot split the gold query: {}", e.0))?;
    }
    Ok(g)
}

/// Runs the (executable) gold on one database file; `Err` explains a failure.
fn run_gold(sandbox: &mut Sandbox, file: &Path, gold: &str, limits: &Limits) -> Result<Vec<Row>, String> {
    match sandbox.execute(file, &replace_cur_year(gold), limits) {
        Outcome::Rows(r) => Ok(r),
        Outcome::Error(e) => Err(format!("the gold query fails on {}: {e}", file.display())),
        Outcome::Timeout => Err(format!("the gold query timed out on {}", file.display())),
        Outcome::TooManyRows => Err(format!("the gold query returns too many rows on {}", file.display())),
    }
}

/// Parses and runs a gold query once on each database file, as a data
/// check: `Err` says why the official evaluator would abort on it.
pub fn check_gold(ctx: &DbContext, gold: &str, cfg: &JudgeConfig) -> Result<Hardness, String> {
    let sql = get_sql(&ctx.parse_schema, gold).map_err(|e| format!("the gold query does not parse: {e}"))?;
    let g = executable_gold(gold, cfg)?;
    with_sandbox(|sandbox| {
        ctx.files
            .iter()
            .try_for_each(|f| run_gold(sandbox, f, &g, &cfg.limits).map(drop))
    })?;
    Ok(hardness(&sql))
}

/// `exec_eval.eval_exec_match`. `Err` means the gold failed (the official
/// run would abort).
fn exec_verdict(
    ctx: &DbContext,
    gold: &str,
    pred: &str,
    cfg: &JudgeConfig,
) -> Result<(Status, Option<String>), String> {
    let strict = cfg.mode == Mode::Strict;
    let g = executable_gold(gold, cfg)?;
    let mut p = postprocess(pred);
    if !cfg.keep_distinct {
        p = match remove_distinct(&p, strict) {
            Ok(p) => p,
            Err(e) => {
                return Ok((
                    Status::ExecError,
                    Some(format!("sqlparse cannot split the prediction: {}", e.0)),
                ));
            }
        };
    }
    let order_matters = g.to_lowercase().contains("order by");
    let compare = if strict { Compare::Strict } else { Compare::Official };
    let p = replace_cur_year(&p).into_owned();
    with_sandbox(|sandbox| {
        if strict {
            match sandbox.is_single_read(&ctx.files[0], &p) {
                Ok(true) => {}
                Ok(false) => {
                    return Ok((Status::ExecError, Some("not a single read-only statement".into())));
                }
                Err(e) => return Ok((Status::ExecError, Some(e))),
            }
        }
        for file in &ctx.files {
            let gold_rows = run_gold(sandbox, file, &g, &cfg.limits)?;
            // More rows than the gold can only be wrong: stop reading there.
            let limits = Limits {
                max_rows: gold_rows.len() + 1,
                ..cfg.limits.clone()
            };
            let (status, error) = match sandbox.execute(file, &p, &limits) {
                Outcome::Rows(rows) if result_eq(&gold_rows, &rows, order_matters, compare) => {
                    continue;
                }
                Outcome::Rows(_) => (Status::Wrong, None),
                Outcome::TooManyRows => (Status::Wrong, Some(format!("more than {} rows", gold_rows.len()))),
                Outcome::Error(e) => (Status::ExecError, Some(e)),
                Outcome::Timeout => (
                    Status::Timeout,
                    Some(format!("timed out after {:?}", cfg.limits.timeout)),
                ),
            };
            return Ok((status, error));
        }
        Ok((Status::Correct, None))
    })
}
