//! The module layering: dependencies point one way, down the flow of a
//! benchmark run. Every `crate::X` path in src/ (use lines and inline paths,
//! comments and strings skipped) must name the module it is in or one below
//! it in [`LAYERS`].

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The top-level modules, bottom first: a module may use itself and the
/// modules before it.
///
/// - Bottom utilities, which use nothing above them: `paths` (every cache
///   and models path), `table` (the output formats), `cli` (clap helpers),
///   `net` (TLS set-up), `download` (uses `net`).
/// - `models` (model weights: which files, where from, where installed) uses
///   only `download` and `paths`, so it sits below everything that needs a
///   model name or folder (`llm`'s local model, `retrieval`'s local
///   embedder, `run`'s default model, `commands`).
/// - Then the flow: `dataset -> exec -> eval -> llm -> retrieval -> strategy
///   -> run -> finetune -> report`, with `commands` (the CLI) on top. `src/main.rs` and
///   `src/lib.rs` are not modules of the crate's tree and are not checked.
const LAYERS: &[&str] = &[
    "paths",
    "table",
    "cli",
    "net",
    "download",
    "models",
    "dataset",
    "exec",
    "eval",
    "llm",
    "retrieval",
    "strategy",
    "run",
    "finetune",
    "report",
    "commands",
];

/// A `crate::` (or `super::`) reference: the module it names, and where.
struct Edge {
    from: String,
    to: String,
    file: PathBuf,
    line: usize,
}

fn rank(module: &str) -> Option<usize> {
    LAYERS.iter().position(|m| *m == module)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file under src/: src/run/record.rs -> [run, record],
/// src/run/mod.rs -> [run], src/paths.rs -> [paths]; `None` for the crate
/// roots (lib.rs, main.rs).
fn module_path(src: &Path, file: &Path) -> Option<Vec<String>> {
    let rel = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if parts.is_empty() && (stem == "lib" || stem == "main") {
        return None;
    }
    if stem != "mod" {
        parts.push(stem.to_string());
    }
    Some(parts)
}

/// The code of a Rust file with comments, string and char literals blanked
/// out (newlines kept, so line numbers stay right).
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !is_ident(chars.get(i.wrapping_sub(1))) {
            // A raw string: r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            let close: String = std::iter::once('"').chain(std::iter::repeat_n('#', hashes)).collect();
            let rest: String = chars[j + 1..].iter().collect();
            let end = rest
                .find(&close)
                .map_or(chars.len(), |k| j + 1 + rest[..k].chars().count() + close.len());
            for &ch in &chars[i..end] {
                out.push(blank(ch));
            }
            i = end;
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < chars.len() {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if let Some(end) = (c == '\'').then(|| char_literal_end(&chars, i)).flatten() {
            for &ch in &chars[i..=end] {
                out.push(blank(ch));
            }
            i = end + 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn is_ident(c: Option<&char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric() || *c == '_')
}

/// Where the char literal opening at `i` closes: 'x', '\n', '\'', '\u{..}'
/// (`None` for a lifetime, which has no closing quote).
fn char_literal_end(chars: &[char], i: usize) -> Option<usize> {
    match chars.get(i + 1)? {
        // The escaped character is at i + 2 (a quote, too, in '\''); the
        // literal closes at the first quote after it.
        '\\' => (i + 3..chars.len().min(i + 12)).find(|&k| chars[k] == '\''),
        _ => (chars.get(i + 2) == Some(&'\'')).then_some(i + 2),
    }
}

/// The identifier at the start of `s` (after spaces).
fn leading_ident(s: &str) -> Option<&str> {
    let s = s.trim_start();
    let end = s.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(s.len());
    (end > 0).then(|| &s[..end])
}

/// The top-level modules a path after `crate::` names: one, or each item of
/// a `crate::{a::.., b}` group.
fn named_modules(after: &str) -> Vec<String> {
    let after = after.trim_start();
    if let Some(group) = after.strip_prefix('{') {
        let mut depth = 1;
        let mut item_start = true;
        let mut names = Vec::new();
        for (k, ch) in group.char_indices() {
            if item_start && let Some(name) = leading_ident(&group[k..]) {
                names.push(name.to_string());
                item_start = false;
            }
            match ch {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                ',' if depth == 1 => item_start = true,
                _ => {}
            }
        }
        return names;
    }
    leading_ident(after).map(|n| vec![n.to_string()]).unwrap_or_default()
}

/// Every reference to a top-level module in `file`.
fn edges_of(src: &Path, file: &Path, modules: &BTreeSet<String>) -> Vec<Edge> {
    let Some(path) = module_path(src, file) else {
        return vec![];
    };
    let from = path[0].clone();
    let code = code_only(&std::fs::read_to_string(file).unwrap());
    let line_of = |offset: usize| code[..offset].matches('\n').count() + 1;
    let mut edges = Vec::new();
    let mut push = |to: String, offset: usize| {
        if modules.contains(&to) {
            edges.push(Edge {
                from: from.clone(),
                to,
                file: file.to_path_buf(),
                line: line_of(offset),
            });
        }
    };
    for (offset, _) in code.match_indices("crate::") {
        if is_ident(code[..offset].chars().last().as_ref()) {
            continue; // e.g. `$crate::` or `my_crate::`
        }
        for to in named_modules(&code[offset + "crate::".len()..]) {
            push(to, offset);
        }
    }
    // `super::` chains that climb out of the top-level module.
    for (offset, _) in code.match_indices("super::") {
        if is_ident(code[..offset].chars().last().as_ref()) || code[..offset].ends_with("::") {
            continue; // counted from the first `super` of a chain
        }
        let mut rest = &code[offset..];
        let mut depth = path.len();
        while let Some(r) = rest.strip_prefix("super::") {
            depth = depth.saturating_sub(1);
            rest = r.trim_start();
        }
        if depth == 0 {
            for to in named_modules(rest) {
                push(to, offset);
            }
        }
    }
    edges
}

fn all_edges() -> (Vec<Edge>, BTreeSet<String>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let modules: BTreeSet<String> = files
        .iter()
        .filter_map(|f| module_path(&src, f))
        .map(|p| p[0].clone())
        .collect();
    let edges = files.iter().flat_map(|f| edges_of(&src, f, &modules)).collect();
    (edges, modules)
}

#[test]
fn every_module_has_a_layer() {
    let (_, modules) = all_edges();
    let unplaced: Vec<&String> = modules.iter().filter(|m| rank(m).is_none()).collect();
    assert!(
        unplaced.is_empty(),
        "modules missing from LAYERS in tests/layers.rs: {unplaced:?}"
    );
}

#[test]
fn dependencies_point_down_the_flow() {
    let (edges, _) = all_edges();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let upward = |e: &&Edge| match (rank(&e.from), rank(&e.to)) {
        (Some(from), Some(to)) => to > from,
        _ => false,
    };
    let violations: Vec<String> = edges
        .iter()
        .filter(upward)
        .map(|e| {
            format!(
                "{}:{}: {} uses {} (above it)",
                e.file.strip_prefix(root).unwrap().display(),
                e.line,
                e.from,
                e.to
            )
        })
        .collect();
    assert!(
        violations.is_empty(),
        "upward dependencies (order, bottom first: {}):\n{}",
        LAYERS.join(" < "),
        violations.join("\n")
    );
}

#[test]
fn the_scanner_sees_through_comments_strings_and_groups() {
    let code = code_only(
        "// crate::a\nlet s = \"crate::b\"; /* crate::c */ let r = r#\"crate::d\"#;\nlet c = '\"'; use crate::{e::X, f};\n",
    );
    assert!(!code.contains("crate::a") && !code.contains("crate::b"));
    assert!(!code.contains("crate::c") && !code.contains("crate::d"));
    assert_eq!(code.lines().count(), 3);
    let at = code.find("crate::{").unwrap();
    assert_eq!(named_modules(&code[at + 7..]), vec!["e", "f"]);
    assert_eq!(named_modules(" llm::cache::Cache"), vec!["llm"]);
}
