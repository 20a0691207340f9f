//! The top-level modules of the crate (each `src/<name>.rs` or `src/<name>/`)
//! must not import each other in a cycle (issue 10, "modules without cycles"):
//! with no cycle they form layers, and each can be read, tested and changed
//! knowing only the ones below it.
//!
//! This test reads the source text, std only: every `crate::<name>` path
//! (`use` statements with their `{…}` groups, nested and over several lines, and
//! paths written inline in code), and `super::…` chains that climb to the crate
//! root from a nested file or inline `mod`. Comments, doc comments and string and
//! character literals are skipped.
//!
//! What it cannot see:
//! - glob imports of the crate root (`use crate::*`, or `super::*` reaching it);
//! - paths produced by macros (what a `macro_rules!` expands to at the call
//!   site), and `#[path = "…"]` attributes that move a module's file;
//! - the crate's own name (`mcp_oauth_proxy::…`), which only `main.rs` and the
//!   tests use;
//! - code that `#[cfg]` leaves out counts like any other: test modules' imports
//!   make edges too.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs;
use std::path::Path;

/// For each edge `(from, to)` between top-level modules: the files (relative
/// to `src/`) that make it, each with the lines naming `to`.
type Edges = BTreeMap<(String, String), BTreeMap<String, Vec<usize>>>;

#[derive(Debug, PartialEq)]
enum Token {
    Ident(String),
    /// `::`
    PathSep,
    Open,
    Close,
    Comma,
    Other,
}

/// Rust source as the tokens that matter here, each with its line; comments,
/// string, character and number literals and lifetimes are left out.
fn tokens(source: &str) -> Vec<(Token, usize)> {
    let s: Vec<char> = source.chars().collect();
    let at = |i: usize| s.get(i).copied().unwrap_or('\0');
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    // Skips a quoted literal whose opening quote is at `i`; returns the index after it.
    let skip_quoted = |mut i: usize, line: &mut usize| {
        i += 1;
        while i < s.len() {
            match s[i] {
                '\\' => {
                    if at(i + 1) == '\n' {
                        *line += 1;
                    }
                    i += 2;
                }
                '"' => return i + 1,
                c => {
                    if c == '\n' {
                        *line += 1;
                    }
                    i += 1;
                }
            }
        }
        i
    };
    while i < s.len() {
        let c = s[i];
        match c {
            '\n' => {
                line += 1;
                i += 1;
            }
            '/' if at(i + 1) == '/' => {
                while i < s.len() && s[i] != '\n' {
                    i += 1;
                }
            }
            '/' if at(i + 1) == '*' => {
                let mut depth = 0;
                while i < s.len() {
                    if s[i] == '/' && at(i + 1) == '*' {
                        depth += 1;
                        i += 2;
                    } else if s[i] == '*' && at(i + 1) == '/' {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        if s[i] == '\n' {
                            line += 1;
                        }
                        i += 1;
                    }
                }
            }
            '"' => i = skip_quoted(i, &mut line),
            '\'' => {
                if at(i + 1) == '\\' {
                    // '\n', '\'', '\u{…}'
                    i += 3;
                    while i < s.len() && s[i] != '\'' {
                        i += 1;
                    }
                    i += 1;
                } else if at(i + 2) == '\'' {
                    i += 3;
                } else {
                    // A lifetime or loop label.
                    i += 1;
                    while is_ident(at(i)) {
                        i += 1;
                    }
                }
            }
            c if c.is_ascii_digit() => {
                while is_ident(at(i)) {
                    i += 1;
                }
                out.push((Token::Other, line));
            }
            c if is_ident(c) => {
                let start = i;
                while is_ident(at(i)) {
                    i += 1;
                }
                let word: String = s[start..i].iter().collect();
                let raw_prefix = matches!(word.as_str(), "r" | "br" | "cr");
                if raw_prefix && (at(i) == '"' || (at(i) == '#' && !is_ident(at(i + 1)))) {
                    // r"…", r#"…"#: ends at a quote followed by as many hashes.
                    let mut hashes = 0;
                    while at(i) == '#' {
                        hashes += 1;
                        i += 1;
                    }
                    i += 1;
                    while i < s.len() {
                        if s[i] == '"' && (1..=hashes).all(|h| at(i + h) == '#') {
                            i += 1 + hashes;
                            break;
                        }
                        if s[i] == '\n' {
                            line += 1;
                        }
                        i += 1;
                    }
                } else if word == "r" && at(i) == '#' {
                    // A raw identifier, r#type.
                    let start = i + 1;
                    i += 1;
                    while is_ident(at(i)) {
                        i += 1;
                    }
                    out.push((Token::Ident(s[start..i].iter().collect()), line));
                } else if matches!(word.as_str(), "b" | "c") && at(i) == '"' {
                    i = skip_quoted(i, &mut line);
                } else {
                    out.push((Token::Ident(word), line));
                }
            }
            ':' if at(i + 1) == ':' => {
                out.push((Token::PathSep, line));
                i += 2;
            }
            '{' | '}' | ',' => {
                let token = match c {
                    '{' => Token::Open,
                    '}' => Token::Close,
                    _ => Token::Comma,
                };
                out.push((token, line));
                i += 1;
            }
            c if c.is_whitespace() => i += 1,
            _ => {
                out.push((Token::Other, line));
                i += 1;
            }
        }
    }
    out
}

/// The names that a path naming the crate root goes on to, starting at token `j`
/// (just after `crate::`): one name, or the first name of each item of a
/// `{…}` group.
fn names_after_root(toks: &[(Token, usize)], j: usize) -> Vec<(String, usize)> {
    match toks.get(j) {
        Some((Token::Ident(name), line)) => vec![(name.clone(), *line)],
        Some((Token::Open, _)) => {
            let mut names = Vec::new();
            let mut depth = 0;
            let mut item_start = true;
            for (token, line) in &toks[j..] {
                match token {
                    Token::Open => depth += 1,
                    Token::Close => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    Token::Comma if depth == 1 => {
                        item_start = true;
                        continue;
                    }
                    Token::Ident(name) if depth == 1 && item_start && name != "self" => {
                        names.push((name.clone(), *line));
                    }
                    _ => {}
                }
                if depth == 1 && !matches!(token, Token::Open) {
                    item_start = false;
                }
            }
            names
        }
        _ => Vec::new(),
    }
}

/// The names that `source` reaches through the crate root (`crate::name`, or
/// enough `super::` to climb there), with the lines that name them. `module` is
/// the file's own module path: `["proxy", "h1"]` for `src/proxy/h1.rs`.
fn crate_references(source: &str, module: &[String]) -> BTreeMap<String, Vec<usize>> {
    let toks = tokens(source);
    let mut found: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    // Inline `mod name { … }` blocks we are in, by the brace depth outside each.
    let mut inline: Vec<usize> = Vec::new();
    let mut depth = 0usize;
    for i in 0..toks.len() {
        let starts_path = i == 0 || toks[i - 1].0 != Token::PathSep;
        let sep_follows = toks.get(i + 1).is_some_and(|(t, _)| *t == Token::PathSep);
        match &toks[i].0 {
            Token::Open => depth += 1,
            Token::Close => {
                depth = depth.saturating_sub(1);
                if inline.last() == Some(&depth) {
                    inline.pop();
                }
            }
            Token::Ident(word) if word == "mod" => {
                let named = matches!(toks.get(i + 1), Some((Token::Ident(_), _)));
                let block = matches!(toks.get(i + 2), Some((Token::Open, _)));
                if named && block {
                    inline.push(depth);
                }
            }
            Token::Ident(word) if word == "crate" && starts_path && sep_follows => {
                for (name, line) in names_after_root(&toks, i + 2) {
                    found.entry(name).or_default().push(line);
                }
            }
            Token::Ident(word) if word == "super" && starts_path && sep_follows => {
                let mut j = i;
                let mut supers = 0;
                while matches!(&toks.get(j), Some((Token::Ident(w), _)) if w == "super")
                    && toks.get(j + 1).is_some_and(|(t, _)| *t == Token::PathSep)
                {
                    supers += 1;
                    j += 2;
                }
                if supers == module.len() + inline.len() {
                    for (name, line) in names_after_root(&toks, j) {
                        found.entry(name).or_default().push(line);
                    }
                }
            }
            _ => {}
        }
    }
    for lines in found.values_mut() {
        lines.dedup();
    }
    found
}

/// The module path of a file given relative to `src/` (`proxy/h1.rs` is
/// `["proxy", "h1"]`, `proxy/mod.rs` is `["proxy"]`); `None` for the crate roots
/// `lib.rs` and `main.rs`, binaries under `bin/`, and files that are not Rust.
fn module_path(relative: &str) -> Option<Vec<String>> {
    let stem = relative.strip_suffix(".rs")?;
    let mut path: Vec<String> = stem.split('/').map(str::to_owned).collect();
    if path.len() > 1 && path.last().is_some_and(|last| last == "mod") {
        path.pop();
    }
    match path.first().map(String::as_str) {
        Some("lib" | "main") if path.len() == 1 => None,
        Some("bin") => None,
        _ => Some(path),
    }
}

/// The edges between top-level modules made by `files`, each given as its path
/// relative to `src/` and its text. The top-level modules are the ones the files
/// belong to; a name that is not one of them (`crate::SomeType`) makes no edge,
/// and neither does a module naming itself.
fn module_graph(files: &[(String, String)]) -> Edges {
    let parsed: Vec<(&String, Vec<String>, &String)> = files
        .iter()
        .filter_map(|(file, text)| module_path(file).map(|m| (file, m, text)))
        .collect();
    let modules: BTreeSet<&String> = parsed.iter().map(|(_, m, _)| &m[0]).collect();
    let mut edges = Edges::new();
    for (file, module, text) in &parsed {
        for (name, lines) in crate_references(text, module) {
            if name != module[0] && modules.contains(&name) {
                edges
                    .entry((module[0].clone(), name))
                    .or_default()
                    .insert((*file).clone(), lines);
            }
        }
    }
    edges
}

/// Cycles of the graph, each as its modules in order (the edge from the last back
/// to the first closes it), starting at its smallest name. For each edge that
/// lies on some cycle this lists the shortest cycle through it, so every such
/// edge shows up at least once without listing every cycle there is.
fn cycles(edges: &Edges) -> Vec<Vec<String>> {
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (from, to) in edges.keys() {
        next.entry(from).or_default().push(to);
    }
    let mut found = BTreeSet::new();
    for (from, to) in edges.keys() {
        // Shortest way back from `to` to `from`, breadth first.
        let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue = VecDeque::from([to.as_str()]);
        while let Some(node) = queue.pop_front() {
            if node == from {
                break;
            }
            for &n in next.get(node).into_iter().flatten() {
                if n != to && !came_from.contains_key(n) {
                    came_from.insert(n, node);
                    queue.push_back(n);
                }
            }
        }
        if !came_from.contains_key(from.as_str()) {
            continue;
        }
        let mut cycle = vec![from.to_string()];
        let mut node = from.as_str();
        while node != to {
            node = came_from[node];
            cycle.push(node.to_string());
        }
        // `cycle` is from, then the way back reversed: from <- … <- to. Read it forwards.
        cycle[1..].reverse();
        let smallest = (0..cycle.len()).min_by_key(|&k| &cycle[k]).unwrap_or(0);
        cycle.rotate_left(smallest);
        found.insert(cycle);
    }
    let mut found: Vec<Vec<String>> = found.into_iter().collect();
    found.sort_by_key(|cycle| cycle.len());
    found
}

/// Each cycle as `a -> b -> a`, then each of its edges with the files (and lines)
/// that make it.
fn describe(cycles: &[Vec<String>], edges: &Edges) -> String {
    let mut out = String::new();
    for cycle in cycles {
        let mut closed = cycle.clone();
        closed.push(cycle[0].clone());
        out.push_str(&closed.join(" -> "));
        out.push('\n');
        for pair in closed.windows(2) {
            let files = edges
                .get(&(pair[0].clone(), pair[1].clone()))
                .into_iter()
                .flatten()
                .map(|(file, lines)| {
                    let lines: Vec<String> = lines.iter().map(usize::to_string).collect();
                    format!("src/{file}:{}", lines.join(","))
                })
                .collect::<Vec<_>>()
                .join(", ");
            out.push_str(&format!("    {} -> {}: {files}\n", pair[0], pair[1]));
        }
    }
    out
}

/// Every `.rs` file under `dir`, as (path relative to `root` with `/`, text).
fn read_rust_files(
    root: &Path,
    dir: &Path,
    out: &mut Vec<(String, String)>,
) -> std::io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            read_rust_files(root, &path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            let relative = path.strip_prefix(root).unwrap_or(&path);
            let relative: Vec<String> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            out.push((relative.join("/"), fs::read_to_string(&path)?));
        }
    }
    Ok(())
}

#[test]
fn top_level_modules_have_no_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    read_rust_files(&src, &src, &mut files).expect("src/ is readable");
    let edges = module_graph(&files);
    assert!(
        !edges.is_empty(),
        "no module names another: is the parsing broken?"
    );
    let found = cycles(&edges);
    assert!(
        found.is_empty(),
        "top-level modules of src/ import each other in {} cycle(s); move code so that \
         imports between modules point one way (issue 10). Each cycle, then the files \
         (with lines) that make each of its edges:\n\n{}",
        found.len(),
        describe(&found, &edges),
    );
}

#[cfg(test)]
mod checks {
    use super::*;

    fn files(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(f, t)| (f.to_string(), t.to_string()))
            .collect()
    }

    fn refs(source: &str, module: &[&str]) -> Vec<String> {
        let module: Vec<String> = module.iter().map(|m| m.to_string()).collect();
        crate_references(source, &module).into_keys().collect()
    }

    fn names(cycles: Vec<Vec<String>>) -> Vec<String> {
        cycles.into_iter().map(|c| c.join(" ")).collect()
    }

    #[test]
    fn finds_a_two_module_cycle() {
        let edges = module_graph(&files(&[
            ("a.rs", "use crate::b::Thing;"),
            ("b/mod.rs", "fn f() { crate::a::g() }"),
        ]));
        assert_eq!(names(cycles(&edges)), ["a b"]);
    }

    #[test]
    fn finds_a_three_module_cycle_once() {
        let edges = module_graph(&files(&[
            ("c.rs", "use crate::a;"),
            ("a.rs", "use crate::b;"),
            ("b.rs", "use crate::c;"),
        ]));
        assert_eq!(names(cycles(&edges)), ["a b c"]);
    }

    #[test]
    fn every_edge_on_a_cycle_shows_up_in_some_listed_cycle() {
        // a <-> b and b -> c -> a: the edges b->c and c->a are only on the longer cycle.
        let edges = module_graph(&files(&[
            ("a.rs", "use crate::b;"),
            ("b.rs", "use crate::{a, c};"),
            ("c.rs", "use crate::a;"),
        ]));
        assert_eq!(names(cycles(&edges)), ["a b", "a b c"]);
    }

    #[test]
    fn layered_modules_have_no_cycle() {
        let edges = module_graph(&files(&[
            ("web.rs", "use crate::{proxy, config};"),
            ("proxy/mod.rs", "use crate::config::Config;"),
            ("proxy/h1.rs", "use crate::config;"),
            ("config.rs", "use crate::Error; use crate::config::x;"),
        ]));
        assert_eq!(edges.len(), 3);
        assert!(cycles(&edges).is_empty());
    }

    #[test]
    fn names_that_are_not_top_level_modules_make_no_edge() {
        let edges = module_graph(&files(&[
            ("a.rs", "use crate::SomeType; use crate::a::inner;"),
            ("lib.rs", "pub mod a; use crate::a;"),
        ]));
        assert!(edges.is_empty(), "{edges:?}");
    }

    #[test]
    fn reads_groups_nested_groups_and_multi_line_use_statements() {
        let source = "use crate::{\n    alpha,\n    beta::{x, y::{z}},\n    gamma as g,\n    self,\n};\n\
                      use crate::delta::{\n    epsilon,\n};\n\
                      fn f() { let _ = crate::zeta::new(); }\n\
                      use crate\n    ::eta;";
        assert_eq!(
            refs(source, &["a"]),
            ["alpha", "beta", "delta", "eta", "gamma", "zeta"]
        );
    }

    #[test]
    fn ignores_comments() {
        let source = "// use crate::line;\n\
                      /// use crate::outer_doc;\n\
                      //! use crate::inner_doc;\n\
                      /* use crate::block; /* nested */ crate::still_block */\n\
                      /** crate::block_doc */\n\
                      use crate::real; // crate::after";
        assert_eq!(refs(source, &["a"]), ["real"]);
    }

    #[test]
    fn ignores_string_and_character_literals() {
        // Braces inside literals must not count: `super::after` is only read as the
        // crate root's `after` if the end of `mod inner` is seen where it is.
        let source = r####"
            mod inner {
                const A: &str = "crate::plain \" crate::escaped {";
                const B: &str = r#"crate::raw " crate::raw_quote {"#;
                const C: &[u8] = b"crate::bytes {";
                const D: char = '{';
                const E: char = '\'';
                fn f<'a>(x: &'a str) -> &'a str { x }
            }
            use super::after;
            use crate::real;
        "####;
        assert_eq!(refs(source, &["a"]), ["after", "real"]);
    }

    #[test]
    fn super_climbing_to_the_crate_root_counts_as_crate() {
        assert_eq!(refs("use super::super::b;", &["a", "nested"]), ["b"]);
        assert_eq!(refs("use super::b;", &["a"]), ["b"]);
        assert_eq!(refs("use super::{b, c::d};", &["a"]), ["b", "c"]);
    }

    #[test]
    fn super_that_stays_inside_the_module_is_ignored() {
        let source = "use super::sibling;\n\
                      #[cfg(test)]\nmod tests {\n    use super::*;\n    use super::super::sibling2;\n}\n\
                      pub(super) fn f() {}\n\
                      pub(in super::super) fn g() {}";
        assert!(refs(source, &["a", "nested"]).is_empty());
        // After the inline module closes, `super::` is the file's parent again.
        let source = "mod tests { fn f() {} }\nuse super::b;";
        assert_eq!(refs(source, &["a"]), ["b"]);
    }

    #[test]
    fn file_paths_become_module_paths() {
        assert_eq!(
            module_path("proxy/h1.rs"),
            Some(vec!["proxy".into(), "h1".into()])
        );
        assert_eq!(module_path("proxy/mod.rs"), Some(vec!["proxy".into()]));
        assert_eq!(module_path("cimd.rs"), Some(vec!["cimd".into()]));
        assert_eq!(module_path("lib.rs"), None);
        assert_eq!(module_path("main.rs"), None);
        assert_eq!(module_path("bin/tool.rs"), None);
    }

    #[test]
    fn the_failure_message_names_the_files_of_each_edge() {
        let edges = module_graph(&files(&[
            ("a.rs", "\nuse crate::b;"),
            ("a/deep.rs", "use crate::b::x;\nfn f() { crate::b::y() }"),
            ("b.rs", "use crate::a;"),
            ("c.rs", "use crate::a;"),
        ]));
        assert_eq!(
            describe(&cycles(&edges), &edges),
            "a -> b -> a\n    a -> b: src/a.rs:2, src/a/deep.rs:1,2\n    b -> a: src/b.rs:1\n"
        );
    }
}
