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
use std::collections::HashMap;
use std::sync::OnceLock;

struct Rule {
    re: Engine,
    replacement: &'static str,
}

/// The `regex` crate where the pattern needs no look-around (linear time:
/// fancy-regex's `replace_all` took a second on 20,000 curly quotes, found
/// by tests/fuzz.rs), fancy-regex where it does. Both follow the same
/// syntax and Unicode classes for the patterns `regex` accepts.
enum Engine {
    Plain(regex::Regex),
    Fancy(Regex),
}

fn rule(pattern: &str, replacement: &'static str) -> Rule {
    let re = match regex::Regex::new(pattern) {
        Ok(re) => Engine::Plain(re),
        Err(_) => Engine::Fancy(Regex::new(pattern).unwrap_or_else(|e| panic!("bad pattern {pattern}: {e}"))),
    };
    Rule { re, replacement }
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
            // NLTK's `(?=\n?\Z)` lookaheads, written as a consumed and
            // restored `(\n?)\z`: the same matches, but linear (the regex
            // crate) instead of fancy-regex's backtracking, whose limit a
            // megabyte of "0.000..." exceeded (tests/fuzz.rs).
            rule(r#"([^\.])(\.)([\]\)}>"'»”’ ]*)\s*(\n?)\z"#, "$1 $2 $3 $4"),
            rule(r"([:,])([^\d])", " $1 $2"),
            rule(r"([:,])(\n?)\z", " $1 $2"),
            rule(r"\.{2,}", " $0 "),
            rule(r"[;@#$%&]", " $0 "),
            rule(r"[\u{2012}-\u{2015}]", " $0 "),
            rule(r#"([^\.])(\.)([\]\)}>"']*)\s*(\n?)\z"#, "$1 $2$3 $4"),
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

fn apply(rule: &Rule, text: String) -> Result<String, TokenizeError> {
    // replace_all only allocates when something matched.
    let replaced = match &rule.re {
        Engine::Plain(re) => re.replace_all(&text, rule.replacement),
        // (fancy-regex's replace_all panics where its backtracking limit is
        // reached: an error here, never a crash.)
        Engine::Fancy(re) => re
            .try_replacen(&text, 0, rule.replacement)
            .map_err(|e| TokenizeError::TooComplex(format!("the tokenizer gave up on this query: {e}")))?,
    };
    Ok(match replaced {
        std::borrow::Cow::Borrowed(_) => text,
        std::borrow::Cow::Owned(s) => s,
    })
}

pub use crate::dataset::predictions::py_is_space;

/// `nltk.word_tokenize(text, preserve_line=True)`.
pub fn word_tokenize(text: &str) -> Result<Vec<String>, TokenizeError> {
    let r = rules();
    let mut text = text.to_string();
    for rule in &r.starting_quotes {
        text = apply(rule, text)?;
    }
    for rule in &r.punctuation {
        text = apply(rule, text)?;
    }
    text = apply(&r.parens, text)?;
    text = apply(&r.double_dashes, text)?;
    text = format!(" {text} ");
    for rule in &r.ending_quotes {
        text = apply(rule, text)?;
    }
    for rule in &r.contractions {
        text = apply(rule, text)?;
    }
    Ok(text
        .split(py_is_space)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect())
}

/// Why a query does not tokenize.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenizeError {
    /// Where the official tokenizer raises: an odd number of quotes.
    UnbalancedQuotes,
    /// A look-around rule of NLTK's tokenizer reached fancy-regex's
    /// backtracking limit, on pathological input only (never on Spider's
    /// queries), where Python would take very long instead.
    TooComplex(String),
}

impl std::fmt::Display for TokenizeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenizeError::UnbalancedQuotes => write!(f, "Unexpected quote"),
            TokenizeError::TooComplex(why) => write!(f, "{why}"),
        }
    }
}

/// `process_sql.tokenize`: lower-cased tokens, string literals kept whole
/// (with their original case, in double quotes), and `! =`, `> =`, `< =`
/// joined into one operator.
pub fn tokenize(query: &str) -> Result<Vec<String>, TokenizeError> {
    // Python indexes strings by code point, and so do the placeholder keys.
    let chars: Vec<char> = query.chars().map(|c| if c == '\'' { '"' } else { c }).collect();
    let quotes: Vec<usize> = chars
        .iter()
        .enumerate()
        .filter(|(_, c)| **c == '"')
        .map(|(i, _)| i)
        .collect();
    if !quotes.len().is_multiple_of(2) {
        return Err(TokenizeError::UnbalancedQuotes);
    }
    // Python replaces the pairs right to left, so every key names the
    // positions of the original text; one pass left to right builds the
    // same text (in linear time, where splicing pair by pair is quadratic).
    let mut literals: HashMap<String, String> = HashMap::new();
    let mut text = String::with_capacity(chars.len());
    let mut copied = 0;
    for pair in quotes.chunks(2) {
        let (q1, q2) = (pair[0], pair[1]);
        text.extend(&chars[copied..q1]);
        let key = format!("__val_{q1}_{q2}__");
        text.push_str(&key);
        literals.insert(key, chars[q1..=q2].iter().collect());
        copied = q2 + 1;
    }
    text.extend(&chars[copied..]);
    let mut toks: Vec<String> = word_tokenize(&text)?.into_iter().map(|t| t.to_lowercase()).collect();
    for tok in toks.iter_mut() {
        if let Some(literal) = literals.get(tok.as_str()) {
            *tok = literal.clone();
        }
    }
    Ok(join_comparison_operators(toks))
}

/// The `!=`/`>=`/`<=` joining loop, with Python's indexing (for an `=` at
/// position 0, `toks[-1]` is the last token and `toks[:-1]` drops it).
///
/// Python walks the `=` positions right to left and rebuilds the list at
/// each join (quadratic in the number of `=`). A join at position `i >= 1`
/// only looks at the original `toks[i-1]` (a `!`, `>` or `<` is never an
/// `=`, and a join never touches positions before `i-1`), so those joins
/// are made in one pass left to right; the join at position 0, which Python
/// makes last, then looks at the last token of the result.
fn join_comparison_operators(toks: Vec<String>) -> Vec<String> {
    let is_prefix = |t: &str| matches!(t, "!" | ">" | "<");
    let first_is_eq = toks.first().is_some_and(|t| t == "=");
    let mut out: Vec<String> = Vec::with_capacity(toks.len());
    for (i, tok) in toks.into_iter().enumerate() {
        if i >= 1
            && tok == "="
            && let Some(prev) = out.last_mut()
            && is_prefix(prev)
        {
            prev.push('=');
            continue;
        }
        out.push(tok);
    }
    if first_is_eq && let Some(last) = out.last().filter(|t| is_prefix(t)).cloned() {
        // toks[:-1] + [prev + "="] + toks[1:]
        let mut joined: Vec<String> = out[..out.len() - 1].to_vec();
        joined.push(format!("{last}="));
        joined.extend_from_slice(&out[1..]);
        out = joined;
    }
    out
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
        assert_eq!(tokenize("select 'it''s"), Err(TokenizeError::UnbalancedQuotes));
    }

    #[test]
    fn operator_joining_uses_python_indexing() {
        assert_eq!(toks("< = 1"), ["<=", "1"]);
        // '=' first: toks[-1] is '<', so the result is toks[:-1] + ['<='] + toks[1:]
        assert_eq!(
            join_comparison_operators(vec!["=".into(), "a".into(), "<".into()]),
            ["=", "a", "<=", "a", "<"]
        );
        let j = |t: &[&str]| join_comparison_operators(t.iter().map(|s| s.to_string()).collect());
        assert_eq!(
            j(&["a", "!", "=", "b", ">", "=", "=", "<"]),
            ["a", "!=", "b", ">=", "=", "<"]
        );
        // The join at 0 comes last and sees the last token after the others.
        assert_eq!(j(&["=", "a", "<", "="]), ["=", "a", "<="]);
        assert_eq!(j(&["=", "!", "=", ">"]), ["=", "!=", ">=", "!=", ">"]);
        assert_eq!(j(&["="]), ["="]);
        assert_eq!(j(&["=", "="]), ["=", "="]);
        assert_eq!(j(&["!", "="]), ["!="]);
        assert!(j(&[]).is_empty());
    }

    /// Python's loop, transcribed (quadratic), against the one-pass version.
    #[test]
    fn operator_joining_is_pythons_loop() {
        fn python(mut toks: Vec<String>) -> Vec<String> {
            let eqs: Vec<usize> = (0..toks.len()).filter(|&i| toks[i] == "=").rev().collect();
            for eq in eqs {
                let n = toks.len() as isize;
                let prev_idx = eq as isize - 1;
                let prev = toks[prev_idx.rem_euclid(n) as usize].clone();
                if matches!(prev.as_str(), "!" | ">" | "<") {
                    let head = if prev_idx < 0 {
                        (n - 1) as usize
                    } else {
                        prev_idx as usize
                    };
                    let mut joined = toks[..head].to_vec();
                    joined.push(format!("{prev}="));
                    joined.extend_from_slice(&toks[eq + 1..]);
                    toks = joined;
                }
            }
            toks
        }
        let alphabet = ["=", "!", "<", ">", "a"];
        // Every sequence of up to 7 tokens over the alphabet.
        for len in 0..=7u32 {
            for code in 0..alphabet.len().pow(len) {
                let mut c = code;
                let toks: Vec<String> = (0..len)
                    .map(|_| {
                        let t = alphabet[c % alphabet.len()];
                        c /= alphabet.len();
                        t.to_string()
                    })
                    .collect();
                assert_eq!(
                    join_comparison_operators(toks.clone()),
                    python(toks.clone()),
                    "{toks:?}"
                );
            }
        }
    }

    #[test]
    fn long_queries_tokenize_in_linear_time() {
        // 40,000 characters of `! =` or of string literals took seconds
        // (a join or a splice per operator or literal, each copying the rest).
        for unit in ["! = ", "'a' ", "a > = 'b' "] {
            crate::eval::assert_linear(unit, 2_500, |n| {
                assert!(tokenize(&unit.repeat(n)).unwrap().len() >= n);
            });
        }
    }
}
