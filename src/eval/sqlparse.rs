//! The part of `sqlparse` (0.6.1) that the official execution check depends
//! on: `remove_distinct(s)` is
//! `''.join(t.value for t in sqlparse.parse(s)[0].flatten() if t.value.lower() != 'distinct')`,
//! so the lexer's token boundaries decide which `distinct`s vanish, and the
//! statement splitter decides where the first statement ends (everything
//! after it is never executed).

use fancy_regex::Regex;
use std::collections::HashMap;
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    CommentSingle,
    CommentSingleHint,
    CommentMultiline,
    Newline,
    Whitespace,
    Punctuation,
    /// Exactly `T.Keyword`.
    Keyword,
    /// `T.Keyword.DDL`.
    KeywordDdl,
    /// Another subtype of `T.Keyword` (DML, Order, CTE, TZCast...).
    KeywordOther,
    /// Exactly `T.Name`.
    Name,
    Other,
}

impl Kind {
    fn is_keyword(self) -> bool {
        matches!(self, Kind::Keyword | Kind::KeywordDdl | Kind::KeywordOther)
    }
    fn is_whitespace(self) -> bool {
        matches!(self, Kind::Whitespace | Kind::Newline)
    }
}

#[derive(Debug, Clone)]
struct Token<'a> {
    kind: Kind,
    value: &'a str,
}

enum Action {
    Kind(Kind),
    /// Look the word up in sqlparse's keyword tables.
    Keyword,
}

/// What must precede a match (sqlparse uses look-behinds, which see the text
/// before the lexer's position).
#[derive(Clone, Copy)]
enum Before {
    Any,
    NotWord,
    Dot,
    NotWordOrCloser,
}

struct LexRule {
    re: Regex,
    before: Before,
    action: Action,
}

const LETTER: &str = "[A-ZÀ-Ü]";

fn lex_rules() -> &'static [LexRule] {
    static RULES: OnceLock<Vec<LexRule>> = OnceLock::new();
    RULES.get_or_init(|| {
        use Action::Kind as K;
        use Kind::*;
        let l = LETTER;
        let specs: Vec<(String, Before, Action)> = vec![
            (r"(--|# )\+.*?(\r\n|\r|\n|\z)".into(), Before::Any, K(CommentSingleHint)),
            (r"(--|# ).*?(\r\n|\r|\n|\z)".into(), Before::Any, K(CommentSingle)),
            (r"(\r\n|\r|\n)".into(), Before::Any, K(Newline)),
            (r"[\s\x1c-\x1f]".into(), Before::Any, K(Whitespace)),
            (r":=".into(), Before::Any, K(Other)),
            (r"::".into(), Before::Any, K(Punctuation)),
            (r"\*".into(), Before::Any, K(Other)),
            (r"`(``|[^`])*`".into(), Before::Any, K(Name)),
            (r"´(´´|[^´])*´".into(), Before::Any, K(Name)),
            (r"\?".into(), Before::Any, K(Other)),
            (r"%(\(\w+\))?s".into(), Before::Any, K(Other)),
            (r"[$:?]\w+".into(), Before::NotWord, K(Other)),
            (r"\\\w+".into(), Before::Any, K(Other)),
            (r"(CASE|IN|VALUES|USING|FROM|AS)\b".into(), Before::Any, K(Keyword)),
            (format!(r"(@|##|#){l}\w+"), Before::Any, K(Name)),
            (format!(r"{l}\w*(?=[\s\x1c-\x1f]*\.(?!\d))"), Before::Any, K(Name)),
            (format!(r"{l}\w*"), Before::Dot, K(Name)),
            (format!(r"{l}\w*(?=\()"), Before::Any, K(Name)),
            (r"-?0x[\dA-F]+".into(), Before::Any, K(Other)),
            (r"-?\d+(\.\d+)?E-?\d+".into(), Before::Any, K(Other)),
            (
                r"(?![_A-ZÀ-Ü])-?(\d+(\.\d*)|\.\d+)(?![_A-ZÀ-Ü])".into(),
                Before::Any,
                K(Other),
            ),
            (r"(?![_A-ZÀ-Ü])-?\d+(?![_A-ZÀ-Ü])".into(), Before::Any, K(Other)),
            (r"'(''|\\'|[^'])*'".into(), Before::Any, K(Other)),
            (r#""(""|\\"|[^"])*""#.into(), Before::Any, K(Other)),
            (r#"(""|".*?[^\\]")"#.into(), Before::Any, K(Other)),
            (r"(\[[^\]\[]+\])".into(), Before::NotWordOrCloser, K(Name)),
            (
                r"((LEFT\s+|RIGHT\s+|FULL\s+)?(INNER\s+|OUTER\s+|STRAIGHT\s+)?|(CROSS\s+|NATURAL\s+)?)?JOIN\b".into(),
                Before::Any,
                K(Keyword),
            ),
            (
                r"END(\s+IF|\s+LOOP|\s+WHILE|\s+FOR|\s+CASE)?\b".into(),
                Before::Any,
                K(Keyword),
            ),
            (r"IF\s+(NOT\s+)?EXISTS\b".into(), Before::Any, K(Keyword)),
            (r"NOT\s+NULL\b".into(), Before::Any, K(Keyword)),
            (
                r"(ASC|DESC)(\s+NULLS\s+(FIRST|LAST))?\b".into(),
                Before::Any,
                K(KeywordOther),
            ),
            (r"(ASC|DESC)\b".into(), Before::Any, K(KeywordOther)),
            (r"NULLS\s+(FIRST|LAST)\b".into(), Before::Any, K(KeywordOther)),
            (r"UNION\s+ALL\b".into(), Before::Any, K(Keyword)),
            (r"CREATE(\s+OR\s+REPLACE)?\b".into(), Before::Any, K(KeywordDdl)),
            (r"DOUBLE\s+PRECISION\b".into(), Before::Any, K(Other)),
            (r"GROUP\s+BY\b".into(), Before::Any, K(Keyword)),
            (r"ORDER\s+BY\b".into(), Before::Any, K(Keyword)),
            (r"PRIMARY\s+KEY\b".into(), Before::Any, K(Keyword)),
            (r"HANDLER\s+FOR\b".into(), Before::Any, K(Keyword)),
            (r"GO(\s\d+)\b".into(), Before::Any, K(Keyword)),
            (
                r"(LATERAL\s+VIEW\s+)(EXPLODE|INLINE|PARSE_URL_TUPLE|POSEXPLODE|STACK)\b".into(),
                Before::Any,
                K(Keyword),
            ),
            (
                r"(AT|WITH')\s+TIME\s+ZONE\s+'[^']+'".into(),
                Before::Any,
                K(KeywordOther),
            ),
            (r"(NOT\s+)?(LIKE|ILIKE|RLIKE)\b".into(), Before::Any, K(Other)),
            (r"(NOT\s+)?(REGEXP)(\s+(BINARY))?\b".into(), Before::Any, K(Other)),
            (r"\w[$#\w]*".into(), Before::Any, Action::Keyword),
            (r"[;:()\[\],\.]".into(), Before::Any, K(Punctuation)),
            (r"(\->>?|#>>?|@>|<@|\?\|?|\?&|\-|#\-)".into(), Before::Any, K(Other)),
            (r"[<>=~!]+".into(), Before::Any, K(Other)),
            (r"[+/@#%^&|^-]+".into(), Before::Any, K(Other)),
        ];
        specs
            .into_iter()
            .map(|(p, before, action)| LexRule {
                re: Regex::new(&format!("(?i)^(?:{p})")).unwrap_or_else(|e| panic!("{p}: {e}")),
                before,
                action,
            })
            .collect()
    })
}

/// The keyword class of the words the statement splitter reacts to (checked
/// against sqlparse 0.6.1's tables); every other word's class does not
/// change where statements end.
fn keyword_kind(word: &str) -> Kind {
    match word.to_uppercase().as_str() {
        "BEGIN" | "DECLARE" | "TRANSACTION" | "WORK" | "DEFERRED" | "IMMEDIATE" | "EXCLUSIVE" | "FOR" | "WHILE"
        | "LOOP" | "DO" | "IF" | "CASE" | "END" | "GO" => Kind::Keyword,
        "CREATE" => Kind::KeywordDdl,
        _ => Kind::Name,
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// What speeds up the search for closers (without it, text full of unclosed
/// `/*` or `$tag$` openers takes quadratic time).
#[derive(Default)]
struct Closers<'a> {
    /// No `*/` starts at or after this position.
    no_comment_end_from: Option<usize>,
    /// Where each `$...$` string occurs, built at the first `$` opener: a
    /// tag `$w$` (w holds no `$`) can only occur at a `$` and run to the
    /// next `$`, so each `$` starts at most one candidate.
    tags: Option<HashMap<&'a str, Vec<usize>>>,
}

impl<'a> Closers<'a> {
    /// `text[from..].find("*/")`, as a position in `text`.
    fn comment_end(&mut self, text: &str, from: usize) -> Option<usize> {
        if self.no_comment_end_from.is_some_and(|f| f <= from) {
            return None;
        }
        let found = text[from..].find("*/").map(|i| from + i);
        if found.is_none() {
            self.no_comment_end_from = Some(from);
        }
        found
    }

    /// `text[from..].find(tag)`, as a position in `text`.
    fn tag(&mut self, text: &'a str, tag: &str, from: usize) -> Option<usize> {
        let tags = self.tags.get_or_insert_with(|| {
            let dollars: Vec<usize> = text.match_indices('$').map(|(i, _)| i).collect();
            let mut map: HashMap<&str, Vec<usize>> = HashMap::new();
            for w in dollars.windows(2) {
                map.entry(&text[w[0]..=w[1]]).or_default().push(w[0]);
            }
            map
        });
        let at = tags.get(tag)?;
        at.get(at.partition_point(|&i| i < from)).copied()
    }
}

/// sqlparse's handling of `$tag$...$tag$` literals and `/* ... */` comments:
/// an opener at `pos` spans to the first matching closer that starts after it.
fn delimited_span<'a>(text: &'a str, pos: usize, closers: &mut Closers<'a>) -> Option<(usize, Kind)> {
    let rest = &text[pos..];
    if let Some(after) = rest.strip_prefix("/*") {
        // A `/*+` hint is another token type, and its closer must start
        // after the '+'.
        let (kind, skip) = if after.starts_with('+') {
            (Kind::Other, 1)
        } else {
            (Kind::CommentMultiline, 0)
        };
        return closers.comment_end(text, pos + 2 + skip).map(|i| (i + 2, kind));
    }
    if rest.starts_with('$') {
        let prev = text[..pos].chars().next_back();
        if prev.is_some_and(|c| is_word_char(c) || c == '"' || c == '$') {
            return None;
        }
        static TAG: OnceLock<regex::Regex> = OnceLock::new();
        let tag_re = TAG.get_or_init(|| regex::Regex::new(r"(?i)^\$(?:[_A-ZÀ-Ü]\w*)?\$").expect("valid"));
        let tag = tag_re.find(rest)?.as_str();
        return closers
            .tag(text, tag, pos + tag.len())
            .map(|i| (i + tag.len(), Kind::Other));
    }
    None
}

fn lex(text: &str) -> Vec<Token<'_>> {
    let rules = lex_rules();
    let mut tokens = Vec::new();
    let mut pos = 0;
    let mut closers = Closers::default();
    'outer: while pos < text.len() {
        if let Some((end, kind)) = delimited_span(text, pos, &mut closers) {
            tokens.push(Token {
                kind,
                value: &text[pos..end],
            });
            pos = end;
            continue;
        }
        let rest = &text[pos..];
        let prev = text[..pos].chars().next_back();
        for rule in rules {
            let allowed = match rule.before {
                Before::Any => true,
                Before::NotWord => !prev.is_some_and(is_word_char),
                Before::Dot => prev == Some('.'),
                Before::NotWordOrCloser => !prev.is_some_and(|c| is_word_char(c) || c == ']' || c == ')'),
            };
            if !allowed {
                continue;
            }
            if let Ok(Some(m)) = rule.re.find(rest) {
                if m.end() == 0 {
                    continue;
                }
                let value = &rest[..m.end()];
                let kind = match rule.action {
                    Action::Kind(k) => k,
                    Action::Keyword => keyword_kind(value),
                };
                tokens.push(Token { kind, value });
                pos += m.end();
                continue 'outer;
            }
        }
        let ch = rest.chars().next().expect("pos < len");
        tokens.push(Token {
            kind: Kind::Other,
            value: &rest[..ch.len_utf8()],
        });
        pos += ch.len_utf8();
    }
    tokens
}

/// `sqlparse.engine.StatementSplitter`.
#[derive(Default)]
struct Splitter {
    block_stack: Vec<&'static str>,
    unconfirmed_start: Option<&'static str>,
    is_create: bool,
    seen_begin: bool,
    consume_ws: bool,
    level: i64,
}

impl Splitter {
    fn nested_block(&mut self, unified: &str) -> Option<i64> {
        match unified {
            "FOR" => {
                self.unconfirmed_start = Some("FOR");
                Some(0)
            }
            "WHILE" => {
                self.unconfirmed_start = Some("WHILE");
                Some(0)
            }
            "LOOP" | "DO" => {
                if let Some(s) = self.unconfirmed_start.filter(|s| *s == "FOR" || *s == "WHILE") {
                    self.block_stack.push(s);
                    self.unconfirmed_start = None;
                    return Some(1);
                }
                if unified == "LOOP" {
                    self.block_stack.push("LOOP");
                    return Some(1);
                }
                None
            }
            "IF" => {
                self.block_stack.push("IF");
                Some(1)
            }
            "CASE" => {
                self.block_stack.push("CASE");
                Some(1)
            }
            _ => None,
        }
    }

    fn closing_keyword(&mut self, unified: &str) -> i64 {
        let top = self.block_stack.last().copied();
        let pops = match unified {
            "END IF" => top == Some("IF"),
            "END FOR" => top == Some("FOR"),
            "END WHILE" => top == Some("WHILE"),
            "END LOOP" => matches!(top, Some("LOOP" | "FOR" | "WHILE")),
            "END CASE" => top == Some("CASE"),
            "END" => {
                self.block_stack.pop();
                return -1;
            }
            _ => false,
        };
        if pops {
            self.block_stack.pop();
            -1
        } else {
            0
        }
    }

    fn change_level(&mut self, tok: &Token) -> i64 {
        if tok.kind == Kind::Punctuation {
            match tok.value {
                ";" => {
                    self.unconfirmed_start = None;
                    if self.seen_begin {
                        self.seen_begin = false;
                        if self.block_stack.last() == Some(&"BEGIN") {
                            self.block_stack.pop();
                            return -1;
                        }
                    }
                    return 0;
                }
                "(" => return 1,
                ")" => return -1,
                _ => {}
            }
        }
        if !tok.kind.is_keyword() {
            return 0;
        }
        let unified = tok.value.to_uppercase();
        if tok.kind == Kind::KeywordDdl && unified.starts_with("CREATE") {
            self.is_create = true;
            return 0;
        }
        if unified == "DECLARE" && self.is_create && self.block_stack.is_empty() {
            self.block_stack.push("DECLARE");
            return 1;
        }
        if unified == "BEGIN" {
            self.seen_begin = true;
            if self.block_stack.last() == Some(&"DECLARE") {
                self.block_stack.pop();
                self.block_stack.push("BEGIN");
                return 0;
            }
            self.block_stack.push("BEGIN");
            return 1;
        }
        if self.seen_begin
            && matches!(
                unified.as_str(),
                "TRANSACTION" | "WORK" | "TRAN" | "DISTRIBUTED" | "DEFERRED" | "IMMEDIATE" | "EXCLUSIVE"
            )
        {
            self.seen_begin = false;
            if self.block_stack.last() == Some(&"BEGIN") {
                self.block_stack.pop();
                return -1;
            }
            return 0;
        }
        if self.block_stack.contains(&"BEGIN")
            && let Some(r) = self.nested_block(&unified)
        {
            return r;
        }
        self.closing_keyword(&unified)
    }
}

fn split<'a>(tokens: Vec<Token<'a>>) -> Vec<Vec<Token<'a>>> {
    let mut statements = Vec::new();
    let mut current: Vec<Token<'a>> = Vec::new();
    let mut s = Splitter::default();
    for tok in tokens {
        if s.consume_ws && !matches!(tok.kind, Kind::Whitespace | Kind::CommentSingle) {
            statements.push(std::mem::take(&mut current));
            s = Splitter::default();
        }
        s.level += s.change_level(&tok);
        let (kind, value) = (tok.kind, tok.value);
        current.push(tok);
        if kind == Kind::Punctuation && value == ";" {
            s.seen_begin = false;
            if s.level <= 0 && !s.block_stack.contains(&"BEGIN") {
                s.consume_ws = true;
            }
        } else if kind == Kind::Keyword && value.split(char::is_whitespace).next() == Some("GO") {
            s.consume_ws = true;
        } else {
            let layout = matches!(
                kind,
                Kind::Whitespace | Kind::Newline | Kind::CommentSingle | Kind::CommentMultiline
            );
            let begin = kind == Kind::Keyword && value.eq_ignore_ascii_case("BEGIN");
            if !layout && !begin {
                s.seen_begin = false;
            }
        }
    }
    if !current.is_empty() && !current.iter().all(|t| t.kind.is_whitespace()) {
        statements.push(current);
    }
    statements
}

/// sqlparse refuses (SQLParseError) to group a statement of more tokens than
/// this, or nested deeper than [`MAX_GROUPING_DEPTH`].
const MAX_GROUPING_TOKENS: usize = 10_000;
const MAX_GROUPING_DEPTH: i64 = 100;

/// Why `remove_distinct` raised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlParseError(pub String);

/// `exec_eval.remove_distinct`: the first statement, without `distinct`
/// tokens. With `all_statements`, every statement is kept (strict mode).
pub fn remove_distinct(sql: &str, all_statements: bool) -> Result<String, SqlParseError> {
    // Fast path: nothing to remove and nothing that could end a statement.
    let lower_has = |needle: &str| sql.to_ascii_lowercase().contains(needle);
    if !lower_has("distinct") && !sql.contains(';') && !sql.contains("GO") && !sql.contains("go") && sql.len() < 20_000
    {
        return if sql.chars().all(super::tokenize::py_is_space) {
            Err(SqlParseError("no statement".into()))
        } else {
            Ok(sql.to_string())
        };
    }
    let statements = split(lex(sql));
    for st in &statements {
        if st.len() > MAX_GROUPING_TOKENS {
            return Err(SqlParseError(format!(
                "Maximum number of tokens exceeded ({MAX_GROUPING_TOKENS})."
            )));
        }
        let mut depth: i64 = 0;
        for t in st {
            if t.kind == Kind::Punctuation {
                depth += match t.value {
                    "(" => 1,
                    ")" => -1,
                    _ => 0,
                };
            }
            if depth > MAX_GROUPING_DEPTH {
                return Err(SqlParseError(format!(
                    "Maximum grouping depth exceeded ({MAX_GROUPING_DEPTH})."
                )));
            }
        }
    }
    let Some(first) = statements.first() else {
        return Err(SqlParseError("no statement".into()));
    };
    let keep = if all_statements {
        &statements[..]
    } else {
        std::slice::from_ref(first)
    };
    Ok(keep
        .iter()
        .flatten()
        .filter(|t| !t.value.eq_ignore_ascii_case("distinct"))
        .map(|t| t.value)
        .collect())
}

/// The first statement as sqlparse splits it (used to tell whether a
/// prediction holds more than one statement).
pub fn statement_count(sql: &str) -> usize {
    split(lex(sql)).len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_distinct_tokens_only() {
        assert_eq!(
            remove_distinct("SELECT DISTINCT name FROM t", false).unwrap(),
            "SELECT  name FROM t"
        );
        assert_eq!(
            remove_distinct("SELECT count(DISTINCT name) FROM t", false).unwrap(),
            "SELECT count( name) FROM t"
        );
        assert_eq!(
            remove_distinct("SELECT distinct_col FROM t WHERE x = 'distinct'", false).unwrap(),
            "SELECT distinct_col FROM t WHERE x = 'distinct'"
        );
        assert_eq!(
            remove_distinct("SELECT t.distinct FROM t", false).unwrap(),
            "SELECT t. FROM t"
        );
    }

    #[test]
    fn keeps_only_the_first_statement() {
        assert_eq!(remove_distinct("SELECT 1; DROP TABLE t", false).unwrap(), "SELECT 1; ");
        assert_eq!(remove_distinct("SELECT 1;\nDROP TABLE t", false).unwrap(), "SELECT 1;");
        assert_eq!(remove_distinct("SELECT ';' ; x", false).unwrap(), "SELECT ';' ; ");
        assert_eq!(
            remove_distinct("SELECT 1 -- c;\n; y", false).unwrap(),
            "SELECT 1 -- c;\n; "
        );
        // A ';' inside parentheses does not split.
        assert_eq!(remove_distinct("SELECT (1; 2)", false).unwrap(), "SELECT (1; 2)");
        assert_eq!(
            remove_distinct("SELECT 1; DROP TABLE t", true).unwrap(),
            "SELECT 1; DROP TABLE t"
        );
        assert_eq!(statement_count("SELECT 1; DROP TABLE t"), 2);
    }

    #[test]
    fn unclosed_comments_and_dollar_quotes_lex_in_linear_time() {
        // Each unclosed opener searched the rest of the text for its closer.
        let tags = |n: usize| -> String { (0..n).map(|i| format!("$t{i}$ ")).collect() };
        let texts: [(&str, &dyn Fn(usize) -> String); 4] = [
            ("/*", &|n| "/* ".repeat(n)),
            ("/*+", &|n| "/*+ ".repeat(n)),
            ("$a$", &|n| "$a$ x ".repeat(n)),
            ("$tN$", &tags),
        ];
        for (what, text) in texts {
            crate::eval::assert_linear(what, 4_000, |n| {
                assert_eq!(statement_count(&format!("SELECT DISTINCT 1; {}", text(n))), 2);
            });
        }
        // Comments and dollar-quoted strings still end at their first closer.
        assert_eq!(
            remove_distinct("SELECT 1 /* a /* b */ DISTINCT $x$ ; $x$ ; /* z", true).unwrap(),
            "SELECT 1 /* a /* b */  $x$ ; $x$ ; /* z"
        );
        assert_eq!(statement_count("SELECT /* x */ 1; /* y */ SELECT $q$ ; $q$ 2"), 2);
        // An unclosed one is not a comment: the ';' after it splits.
        assert_eq!(statement_count("SELECT 1 /* ; 2 $q$ ; 3"), 3);
    }

    /// The searches with [`Closers`] find what a plain search from each
    /// position finds (sqlparse's regular expressions).
    #[test]
    fn closers_find_what_a_plain_search_finds() {
        let tag_re = regex::Regex::new(r"(?i)^\$(?:[_A-ZÀ-Ü]\w*)?\$").unwrap();
        let plain = |text: &str, pos: usize| -> Option<(usize, Kind)> {
            let rest = &text[pos..];
            if let Some(after) = rest.strip_prefix("/*") {
                let (kind, skip) = if after.starts_with('+') {
                    (Kind::Other, 1)
                } else {
                    (Kind::CommentMultiline, 0)
                };
                return after[skip..].find("*/").map(|i| (pos + 2 + skip + i + 2, kind));
            }
            if rest.starts_with('$') {
                let prev = text[..pos].chars().next_back();
                if prev.is_some_and(|c| is_word_char(c) || c == '"' || c == '$') {
                    return None;
                }
                let tag = tag_re.find(rest)?.as_str();
                let body = pos + tag.len();
                return text[body..].find(tag).map(|i| (body + i + tag.len(), Kind::Other));
            }
            None
        };
        let alphabet = ["$", "a", "$a$", "$A$", "$$", "/*", "*/", "+", " ", "é", "$b$"];
        for len in 0..=5u32 {
            for code in 0..alphabet.len().pow(len) {
                let mut c = code;
                let text: String = (0..len)
                    .map(|_| {
                        let t = alphabet[c % alphabet.len()];
                        c /= alphabet.len();
                        t
                    })
                    .collect();
                let mut closers = Closers::default();
                for (pos, _) in text.char_indices() {
                    assert_eq!(
                        delimited_span(&text, pos, &mut closers),
                        plain(&text, pos),
                        "{text:?} at {pos}"
                    );
                }
            }
        }
    }

    #[test]
    fn no_statement_is_an_error() {
        assert!(remove_distinct("", false).is_err());
        assert!(remove_distinct("  \n ", false).is_err());
        assert!(remove_distinct(";", false).is_ok());
    }
}
