//! Question masking (DAIL-SQL's "masked question"): words that name the
//! database's tables or columns become `<mask>`, values become `<unk>`, so
//! that questions of the same shape on different databases look alike.

use crate::dataset::schema::DbSchema;
use std::collections::HashSet;

/// Lower-cased words of the schema's names (original and natural).
fn schema_words(schema: &DbSchema) -> HashSet<String> {
    let mut words = HashSet::new();
    let names = schema
        .table_names_original
        .iter()
        .chain(&schema.table_names)
        .chain(schema.column_names_original.iter().map(|(_, c)| c))
        .chain(schema.column_names.iter().map(|(_, c)| c));
    for name in names {
        for w in name.split(|c: char| !c.is_alphanumeric()).filter(|w| w.len() > 1) {
            words.insert(w.to_lowercase());
        }
        words.insert(name.to_lowercase());
    }
    words.remove("*");
    words
}

fn is_value(word: &str) -> bool {
    word.chars().any(|c| c.is_ascii_digit()) || word.starts_with(|c: char| c.is_uppercase()) && word.len() > 1
}

/// The question with schema words masked as `<mask>` and values (numbers,
/// quoted text, capitalised words after the first) as `<unk>`.
pub fn mask_question(question: &str, schema: &DbSchema) -> String {
    let words = schema_words(schema);
    let mut out = Vec::new();
    let mut in_quote = false;
    for (i, raw) in question.split_whitespace().enumerate() {
        let core = raw.trim_matches(|c: char| !c.is_alphanumeric());
        let opens = raw.starts_with(['"', '\'', '“']);
        let closes =
            raw.ends_with(['"', '\'', '”']) || raw.trim_end_matches(['?', '.', ',']).ends_with(['"', '\'', '”']);
        if in_quote || opens {
            in_quote = !closes || (opens && raw.len() == 1);
            if out.last() != Some(&"<unk>".to_string()) {
                out.push("<unk>".to_string());
            }
            continue;
        }
        let lower = core.to_lowercase();
        let token = if core.is_empty() {
            raw.to_string()
        } else if words.contains(&lower) || words.contains(lower.trim_end_matches('s')) {
            "<mask>".to_string()
        } else if (i > 0 && is_value(core)) || core.chars().all(|c| c.is_ascii_digit()) {
            "<unk>".to_string()
        } else {
            lower
        };
        out.push(token);
    }
    out.join(" ")
}
