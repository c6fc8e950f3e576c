//! Getting the SQL out of a model's answer: fenced code blocks, prose around
//! the query, chain-of-thought before it, several statements, trailing
//! semicolons, or no query at all.

use std::sync::OnceLock;

fn fence_re() -> &'static regex::Regex {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    RE.get_or_init(|| regex::Regex::new(r"(?s)```[ \t]*([A-Za-z0-9_-]*)[ \t]*\r?\n?(.*?)(?:```|\z)").expect("valid"))
}

fn start_re() -> &'static regex::Regex {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    RE.get_or_init(|| regex::Regex::new(r"(?i)\b(SELECT|WITH)\b").expect("valid"))
}

fn looks_like_sql(s: &str) -> bool {
    start_re().is_match(s)
}

/// The SQL query in `answer`, or `None` when there is none. With several
/// fenced blocks the last one that holds a query wins (the final answer after
/// reasoning); without fences, the first query in the text.
pub fn extract_sql(answer: &str) -> Option<String> {
    let blocks: Vec<&str> = fence_re()
        .captures_iter(answer)
        .map(|c| c.get(2).map_or("", |m| m.as_str()))
        .filter(|b| looks_like_sql(b))
        .collect();
    let region = match blocks.last() {
        Some(b) => b,
        None => answer,
    };
    let start = start_re().find(region)?.start();
    let statement = first_statement(&region[start..]);
    let sql = squash_whitespace(statement.trim().trim_end_matches(';').trim());
    (!sql.is_empty()).then_some(sql)
}

/// Text up to the first `;` outside quotes, or up to a blank line (prose
/// after an unfenced query), or the end.
fn first_statement(s: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut prev_newline = false;
    for (i, c) in s.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '\'' | '"' | '`' => quote = Some(c),
                ';' => return &s[..i],
                '\n' if prev_newline => return &s[..i],
                _ => {}
            },
        }
        if c == '\n' {
            prev_newline = true;
        } else if !c.is_whitespace() {
            prev_newline = false;
        }
    }
    s
}

/// Line breaks and runs of spaces become one space, outside string literals
/// (so the query fits the one-line official prediction format).
fn squash_whitespace(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut quote: Option<char> = None;
    let mut pending_space = false;
    for c in s.chars() {
        if quote.is_none() && c.is_whitespace() {
            pending_space = true;
            continue;
        }
        if pending_space && !out.is_empty() {
            out.push(' ');
        }
        pending_space = false;
        out.push(c);
        match quote {
            Some(q) if c == q => quote = None,
            None if matches!(c, '\'' | '"' | '`') => quote = Some(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fenced_blocks_prose_and_reasoning() {
        assert_eq!(
            extract_sql("```sql\nSELECT name\nFROM singer;\n```").unwrap(),
            "SELECT name FROM singer"
        );
        assert_eq!(
            extract_sql("Here you go:\n\nSELECT count(*) FROM singer;\n\nThis counts singers.").unwrap(),
            "SELECT count(*) FROM singer"
        );
        let cot = "1. Columns: singer.name\n2. Tables: singer\n```sql\nSELECT age FROM singer\n```\nFinal:\n```sql\nSELECT name FROM singer WHERE age > 30\n```";
        assert_eq!(extract_sql(cot).unwrap(), "SELECT name FROM singer WHERE age > 30");
        assert_eq!(extract_sql("SELECT 1; DROP TABLE x;").unwrap(), "SELECT 1");
        assert_eq!(extract_sql("SELECT 'a;  b' FROM t").unwrap(), "SELECT 'a;  b' FROM t");
        assert_eq!(
            extract_sql("```\nWITH x AS (SELECT 1) SELECT * FROM x\n```").unwrap(),
            "WITH x AS (SELECT 1) SELECT * FROM x"
        );
        // A fence cut off by the token limit still yields its query.
        assert_eq!(
            extract_sql("```sql\nSELECT name FROM singer WHERE").unwrap(),
            "SELECT name FROM singer WHERE"
        );
    }

    #[test]
    fn no_query_is_none() {
        assert_eq!(extract_sql("I cannot answer that."), None);
        assert_eq!(extract_sql(""), None);
        assert_eq!(extract_sql("```\n;\n```"), None);
    }
}
