//! The official evaluator's tokenizer: `process_sql.tokenize`, which runs
//! NLTK's `word_tokenize` (NLTKWordTokenizer, `preserve_line=True`) over the
//! query after swapping string literals for placeholder keys.
//!
//! Every regular expression below is NLTK's, in NLTK's order; Python's `$`
//! ("end, or before a final newline") is written `(?=\n?\z)`. NLTK compiles
//! them with the `regex` module, whose `\s`, `\w` and `\d` follow Unicode
//! like Rust's (unlike `re`, its `\s` excludes \x1c-\x1f); the final
//! `str.split()` does split on those.

use fancy_regex::Regex;
use std::sync::OnceLock;

struct Rule {
    re: Regex,
    replacement: &'static str,
}

fn rule(pattern: &str, replacement: &'static str) -> Rule {
    Rule {
        re: Regex::new(pattern).unwrap_or_else(|e| panic!("bad pattern {pattern}: {e}")),
        replacement,
    }
}

struct Rules {
    starting_quotes: Vec<Rule>,
    punctuation: Vec<Rule>,
    parens: Rule,
    double_dashes: Rule,
    ending_quotes: Vec<Rule>,
    contractions: Vec<Rule>,
}

fn rules() -> &'static Rules {
    static RULES: OnceLock<Rules> = OnceLock::new();
    RULES.get_or_init(|| Rules {
        starting_quotes: vec![
            rule(r"([«“‘„]|[`]+)", " $1 "),
            rule(r#"^""#, "``"),
            rule(r"(``)", " $1 "),
            rule(r#"([ \(\[{<])("|'{2})"#, "$1 `` "),
            rule(r"(?i)(?<!\w)(')(?!(?:re|ve|ll|m|t|s|d|n)\b)(?=\w)", "$1 "),
        ],
        punctuation: vec![
            rule(r#"([^\.])(\.)([\]\)}>"'»”’ ]*)\s*(?=\n?\z)"#, "$1 $2 $3 "),
            rule(r"([:,])([^\d])", " $1 $2"),
            rule(r"([:,])(?=\n?\z)", " $1 "),
            rule(r"\.{2,}", " $0 "),
            rule(r"[;@#$%&]", " $0 "),
            rule(r"[\u{2012}-\u{2015}]", " $0 "),
            rule(r#"([^\.])(\.)([\]\)}>"']*)\s*(?=\n?\z)"#, "$1 $2$3 "),
            rule(r"[?!]", " $0 "),
            rule(r"([^'])' ", "$1 ' "),
            rule(r"[*]", " $0 "),
        ],
        parens: rule(r"[\]\[\(\)\{\}<>]", " $0 "),
        double_dashes: rule(r"--", " -- "),
        ending_quotes: vec![
            rule(r"([»”’])", " $1 "),
            rule(r"''", " '' "),
            rule(r#"""#, " '' "),
            rule(r"\s+", " "),
            rule(r"([^' ])('[sS]|'[mM]|'[dD]|') ", "$1 $2 "),
            rule(r"([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) ", "$1 $2 "),
        ],
        contractions: vec![
            rule(r"(?i)\b(can)(not)\b", " $1 $2 "),
            rule(r"(?i)\b(d)('ye)\b", " $1 $2 "),
            rule(r"(?i)\b(gim)(me)\b", " $1 $2 "),
            rule(r"(?i)\b(gon)(na)\b", " $1 $2 "),
            rule(r"(?i)\b(got)(ta)\b", " $1 $2 "),
            rule(r"(?i)\b(lem)(me)\b", " $1 $2 "),
            rule(r"(?i)\b(more)('n)\b", " $1 $2 "),
            rule(r"(?i)\b(wan)(na)(?=\s)", " $1 $2 "),
            rule(r"(?i) ('t)(is)\b", " $1 $2 "),
            rule(r"(?i) ('t)(was)\b", " $1 $2 "),
        ],
    })
}

fn apply(rule: &Rule, text: String) -> String {
    // Regex::replace_all only allocates when something matched.
    match rule.re.replace_all(&text, rule.replacement) {
        std::borrow::Cow::Borrowed(_) => text,
        std::borrow::Cow::Owned(s) => s,
    }
}

/// Python's `str.isspace()` (what `str.split()` splits on).
pub fn py_is_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

/// `nltk.word_tokenize(text, preserve_line=True)`.
pub fn word_tokenize(text: &str) -> Vec<String> {
    let r = rules();
    let mut text = text.to_string();
    for rule in &r.starting_quotes {
        text = apply(rule, text);
    }
    for rule in &r.punctuation {
        text = apply(rule, text);
    }
    text = apply(&r.parens, text);
    text = apply(&r.double_dashes, text);
    text = format!(" {text} ");
    for rule in &r.ending_quotes {
        text = apply(rule, text);
    }
    for rule in &r.contractions {
        text = apply(rule, text);
    }
    text.split(py_is_space)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// Raised where the official tokenizer raises (an odd number of quotes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnbalancedQuotes;

/// `process_sql.tokenize`: lower-cased tokens, string literals kept whole
/// (with their original case, in double quotes), and `! =`, `> =`, `< =`
/// joined into one operator.
pub fn tokenize(query: &str) -> Result<Vec<String>, UnbalancedQuotes> {
    // Python indexes strings by code point, and so do the placeholder keys.
    let mut chars: Vec<char> = query.chars().map(|c| if c == '\'' { '"' } else { c }).collect();
    let quotes: Vec<usize> = chars
        .iter()
        .enumerate()
        .filter(|(_, c)| **c == '"')
        .map(|(i, _)| i)
        .collect();
    if !quotes.len().is_multiple_of(2) {
        return Err(UnbalancedQuotes);
    }
    let mut literals: Vec<(String, String)> = Vec::new();
    for pair in quotes.chunks(2).rev() {
        let (q1, q2) = (pair[0], pair[1]);
        let literal: String = chars[q1..=q2].iter().collect();
        let key = format!("__val_{q1}_{q2}__");
        chars.splice(q1..=q2, key.chars());
        literals.push((key, literal));
    }
    let text: String = chars.into_iter().collect();
    let mut toks: Vec<String> = word_tokenize(&text).into_iter().map(|t| t.to_lowercase()).collect();
    for tok in toks.iter_mut() {
        if let Some((_, literal)) = literals.iter().find(|(k, _)| k == tok) {
            *tok = literal.clone();
        }
    }
    Ok(join_comparison_operators(toks))
}

/// The `!=`/`>=`/`<=` joining loop, with Python's indexing (for an `=` at
/// position 0, `toks[-1]` is the last token and `toks[:-1]` drops it).
fn join_comparison_operators(mut toks: Vec<String>) -> Vec<String> {
    let eq_idxs: Vec<usize> = toks
        .iter()
        .enumerate()
        .filter(|(_, t)| *t == "=")
        .map(|(i, _)| i)
        .collect();
    for &eq in eq_idxs.iter().rev() {
        let n = toks.len() as isize;
        let prev_idx = eq as isize - 1;
        let prev_pos = if prev_idx < 0 { prev_idx + n } else { prev_idx };
        let Some(prev) = toks.get(prev_pos as usize).cloned() else {
            continue;
        };
        if !matches!(prev.as_str(), "!" | ">" | "<") {
            continue;
        }
        // toks[:eq-1] + [prev + "="] + toks[eq+1:]
        let head_end = if prev_idx < 0 {
            (prev_idx + n).max(0) as usize
        } else {
            prev_idx as usize
        };
        let mut joined: Vec<String> = toks[..head_end.min(toks.len())].to_vec();
        joined.push(format!("{prev}="));
        joined.extend_from_slice(&toks[(eq + 1).min(toks.len())..]);
        toks = joined;
    }
    toks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(q: &str) -> Vec<String> {
        tokenize(q).unwrap()
    }

    #[test]
    fn splits_like_nltk() {
        assert_eq!(
            toks("SELECT count(*) FROM singer WHERE age >= 20."),
            [
                "select", "count", "(", "*", ")", "from", "singer", "where", "age", ">=", "20", "."
            ]
        );
        assert_eq!(
            toks("SELECT T1.name, T2.id FROM a AS T1"),
            ["select", "t1.name", ",", "t2.id", "from", "a", "as", "t1"]
        );
        // NLTK does not split '=' from its neighbours.
        assert_eq!(toks("a=b"), ["a=b"]);
        // ...but it splits contractions such as "cannot".
        assert_eq!(toks("select cannot from t"), ["select", "can", "not", "from", "t"]);
    }

    #[test]
    fn string_literals_stay_whole_with_case() {
        assert_eq!(
            toks("SELECT name FROM t WHERE x = 'New York' AND y != \"A b\""),
            [
                "select",
                "name",
                "from",
                "t",
                "where",
                "x",
                "=",
                "\"New York\"",
                "and",
                "y",
                "!=",
                "\"A b\""
            ]
        );
        assert_eq!(tokenize("select 'it''s"), Err(UnbalancedQuotes));
    }

    #[test]
    fn operator_joining_uses_python_indexing() {
        assert_eq!(toks("< = 1"), ["<=", "1"]);
        // '=' first: toks[-1] is '<', so the result is toks[:-1] + ['<='] + toks[1:]
        assert_eq!(
            join_comparison_operators(vec!["=".into(), "a".into(), "<".into()]),
            ["=", "a", "<=", "a", "<"]
        );
    }
}
