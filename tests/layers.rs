//! The kernel library's imports point one way: down the layers that the
//! module tables in `src/lib.rs` (the crate's top-level modules) and in
//! `src/virtio.rs` (the virtio layer's own modules) write down. A module
//! may use a module of a lower layer, never one of its own layer or above,
//! so the import graph has no cycle. No kernel boot: this reads the sources.
//!
//! What is read: every `.rs` file under `src/` but the hijack library's
//! (`src/hijack.rs`, `src/hijack/`, a crate of its own above this one).
//! Every path that starts with `crate::`, `super::` or `self::`, in a `use`
//! (brace groups expanded) or in an expression, is resolved to the module
//! it names; comments and string literals are skipped. A name re-exported
//! by a table's module (`pub use kernel::{Kernel, ...}` in lib.rs) counts
//! as the module it comes from; the table module's own items (`virtio::features`)
//! belong to no layer and may be used by all of its modules.
//!
//! Test code (a `#[cfg(test)]` module, inline or in its own file) is not
//! checked: a test may drive its module through the layers above it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Imports that are known to point up, each with why. Remove an entry when
/// its edge is gone: the test fails on an entry that no longer matches.
const KNOWN_UPWARD: &[(&str, &str, &str)] = &[];

/// A table of layers: the module that holds it, and its child modules'
/// layers.
struct Table {
    scope: Vec<String>,
    layers: BTreeMap<String, u32>,
    /// Names the scope's root re-exports, and the child they come from.
    reexports: BTreeMap<String, String>,
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The rows `//! | N | [`name`] | ...` of a module's doc comment.
fn read_table(file: &Path, scope: &[&str]) -> Table {
    let text = fs::read_to_string(file).unwrap();
    let mut layers = BTreeMap::new();
    for line in text.lines() {
        let Some(row) = line.strip_prefix("//! |") else {
            continue;
        };
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        if cells.len() < 2 {
            continue;
        }
        let (Ok(layer), Some(name)) = (
            cells[0].parse::<u32>(),
            cells[1]
                .strip_prefix("[`")
                .and_then(|c| c.strip_suffix("`]")),
        ) else {
            continue;
        };
        assert!(
            layers.insert(name.to_string(), layer).is_none(),
            "{}: `{name}` is in the layer table twice",
            file.display()
        );
    }
    assert!(!layers.is_empty(), "{}: no layer table", file.display());
    // `pub use child::{a, b};` and `pub use child::a;` lines.
    let mut reexports = BTreeMap::new();
    let code = strip(&text);
    for stmt in code.split(';') {
        let Some(k) = stmt.find("pub use ") else {
            continue;
        };
        let tree = &stmt[k + "pub use ".len()..];
        for path in expand_use(&tokenize(tree)) {
            if path.len() >= 2 && layers.contains_key(&path[0]) {
                let name = path.last().unwrap().clone();
                reexports.insert(name, path[0].clone());
            }
        }
    }
    Table {
        scope: scope.iter().map(|s| s.to_string()).collect(),
        layers,
        reexports,
    }
}

/// The source with comments, string and character literals blanked out
/// (newlines kept, so that line numbers stay right).
fn strip(src: &str) -> String {
    let b: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && (!ident_before(&b, i) || (b[i - 1] == 'b' && !ident_before(&b, i - 1)))
        {
            // A raw string: r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == '"' && (0..hashes).all(|k| b.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            for &ch in &b[i..j.min(b.len())] {
                out.push(blank(ch));
            }
            i = j;
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < b.len() {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            let end = if next == Some('\\') {
                (i + 3..b.len()).find(|&j| b[j] == '\'')
            } else if b.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            match end {
                Some(e) => {
                    for _ in i..=e {
                        out.push(' ');
                    }
                    i = e + 1;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_before(b: &[char], i: usize) -> bool {
    i > 0 && (b[i - 1].is_alphanumeric() || b[i - 1] == '_')
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    Path, // ::
    Punct(char),
}

fn tokenize(code: &str) -> Vec<(Tok, usize)> {
    let mut toks = Vec::new();
    let b: Vec<char> = code.chars().collect();
    let mut line = 1;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                i += 1;
            }
            toks.push((Tok::Ident(b[start..i].iter().collect()), line));
        } else if c == ':' && b.get(i + 1) == Some(&':') {
            toks.push((Tok::Path, line));
            i += 2;
        } else {
            toks.push((Tok::Punct(c), line));
            i += 1;
        }
    }
    toks
}

/// The paths of a use tree (`a::{b, c::{d, e}}` gives a::b, a::c::d,
/// a::c::e; `self` in a group names the group's own path).
fn expand_use(toks: &[(Tok, usize)]) -> Vec<Vec<String>> {
    fn tree(toks: &[(Tok, usize)], pos: &mut usize, prefix: &[String], out: &mut Vec<Vec<String>>) {
        let mut path = prefix.to_vec();
        loop {
            match toks.get(*pos).map(|t| &t.0) {
                Some(Tok::Ident(s)) => {
                    if s == "as" {
                        // `x as y`: the alias names nothing new.
                        *pos += 2;
                        continue;
                    }
                    if s != "self" || path.is_empty() || prefix.len() != path.len() {
                        path.push(s.clone());
                    }
                    *pos += 1;
                }
                Some(Tok::Path) => *pos += 1,
                Some(Tok::Punct('*')) => {
                    *pos += 1;
                }
                Some(Tok::Punct('{')) => {
                    *pos += 1;
                    loop {
                        match toks.get(*pos).map(|t| &t.0) {
                            Some(Tok::Punct('}')) => {
                                *pos += 1;
                                break;
                            }
                            Some(Tok::Punct(',')) => *pos += 1,
                            None => break,
                            _ => tree(toks, pos, &path, out),
                        }
                    }
                    return;
                }
                _ => break,
            }
        }
        out.push(path);
    }
    let mut out = Vec::new();
    let mut pos = 0;
    tree(toks, &mut pos, &[], &mut out);
    out
}

/// One path found in a file, resolved from the crate root.
struct Use {
    line: usize,
    path: Vec<String>,
    /// The module (crate-relative) where the path was written.
    from: Vec<String>,
    in_test: bool,
}

/// The module path of a file under src/ (`virtio/net.rs` is virtio::net).
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap();
    let stem = last.strip_suffix(".rs").unwrap().to_string();
    if stem != "mod" && stem != "lib" {
        parts.push(stem);
    }
    parts
}

/// Resolves `crate::`, `super::` and `self::` paths against `module`.
fn resolve(module: &[String], path: &[String]) -> Option<Vec<String>> {
    let first = path.first()?;
    let mut base: Vec<String>;
    let mut rest = &path[1..];
    match first.as_str() {
        "crate" => base = Vec::new(),
        "self" => base = module.to_vec(),
        "super" => {
            base = module.to_vec();
            base.pop()?;
            while rest.first().map(String::as_str) == Some("super") {
                base.pop()?;
                rest = &rest[1..];
            }
        }
        _ => return None,
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

/// Every path of a file, with the inline module it was written in.
fn uses_of(file: &Path, module: &[String], test_file: bool) -> (Vec<Use>, Vec<Vec<String>>) {
    let code = strip(&fs::read_to_string(file).unwrap());
    let toks = tokenize(&code);
    let mut uses = Vec::new();
    let mut test_mods = Vec::new();
    // Inline modules: (name, brace depth inside it, is test code).
    let mut stack: Vec<(String, usize, bool)> = Vec::new();
    let mut depth = 0usize;
    let mut cfg_test = false;
    let mut i = 0;
    let ident = |j: usize| match toks.get(j) {
        Some((Tok::Ident(s), _)) => Some(s.as_str()),
        _ => None,
    };
    while i < toks.len() {
        let here: Vec<String> = module
            .iter()
            .cloned()
            .chain(stack.iter().map(|s| s.0.clone()))
            .collect();
        let in_test = test_file || stack.iter().any(|s| s.2);
        match &toks[i].0 {
            Tok::Punct('#') => {
                // `#[cfg(test)]`
                let words: Vec<&str> = (i + 1..(i + 8).min(toks.len())).filter_map(ident).collect();
                if toks.get(i + 1).map(|t| &t.0) == Some(&Tok::Punct('['))
                    && words.first() == Some(&"cfg")
                    && words.get(1) == Some(&"test")
                {
                    cfg_test = true;
                }
                i += 1;
            }
            Tok::Punct('{') => {
                cfg_test = false;
                depth += 1;
                i += 1;
            }
            Tok::Punct('}') => {
                cfg_test = false;
                if stack.last().is_some_and(|s| s.1 == depth) {
                    stack.pop();
                }
                depth = depth.saturating_sub(1);
                i += 1;
            }
            Tok::Punct(';') => {
                cfg_test = false;
                i += 1;
            }
            Tok::Ident(w) if w == "mod" => {
                let name = ident(i + 1).unwrap_or_default().to_string();
                let is_test = cfg_test || name == "tests";
                match toks.get(i + 2).map(|t| &t.0) {
                    Some(Tok::Punct('{')) => {
                        stack.push((name, depth + 1, is_test));
                        depth += 1;
                        i += 3;
                    }
                    _ => {
                        if is_test {
                            let mut m = here.clone();
                            m.push(name);
                            test_mods.push(m);
                        }
                        i += 2;
                    }
                }
                cfg_test = false;
            }
            Tok::Ident(w) if w == "use" => {
                let end = (i..toks.len())
                    .find(|&j| toks[j].0 == Tok::Punct(';'))
                    .unwrap_or(toks.len());
                let line = toks[i].1;
                for path in expand_use(&toks[i + 1..end]) {
                    if let Some(p) = resolve(&here, &path) {
                        uses.push(Use {
                            line,
                            path: p,
                            from: here.clone(),
                            in_test: in_test || cfg_test,
                        });
                    }
                }
                cfg_test = false;
                i = end;
            }
            Tok::Ident(w)
                if (w == "crate" || w == "super" || w == "self")
                    && toks.get(i + 1).map(|t| &t.0) == Some(&Tok::Path)
                    && !(i > 0 && toks[i - 1].0 == Tok::Path) =>
            {
                let line = toks[i].1;
                let mut path = vec![w.clone()];
                let mut j = i + 1;
                while toks.get(j).map(|t| &t.0) == Some(&Tok::Path) {
                    match ident(j + 1) {
                        Some(s) => path.push(s.to_string()),
                        None => break,
                    }
                    j += 2;
                }
                if let Some(p) = resolve(&here, &path) {
                    uses.push(Use {
                        line,
                        path: p,
                        from: here.clone(),
                        in_test,
                    });
                }
                i = j;
            }
            _ => i += 1,
        }
    }
    (uses, test_mods)
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Which child of `table`'s scope a module path lies in, if any.
fn child_of<'a>(table: &'a Table, path: &[String]) -> Option<&'a str> {
    if path.len() <= table.scope.len() || path[..table.scope.len()] != table.scope[..] {
        return None;
    }
    let name = &path[table.scope.len()];
    if let Some((k, _)) = table.layers.get_key_value(name) {
        return Some(k);
    }
    // A name the scope re-exports counts as the module it comes from.
    table.reexports.get(name).map(String::as_str)
}

#[test]
fn imports_point_down_the_layers() {
    let src = src_dir();
    let tables = [
        read_table(&src.join("lib.rs"), &[]),
        read_table(&src.join("virtio.rs"), &["virtio"]),
    ];
    let mut files = Vec::new();
    rs_files(&src, &mut files);
    files.sort();
    let mut all = Vec::new();
    let mut test_mods: Vec<Vec<String>> = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        if rel.starts_with("hijack") || rel == Path::new("hijack.rs") {
            continue;
        }
        let module = module_of(rel);
        let (uses, tests) = uses_of(f, &module, false);
        test_mods.extend(tests);
        all.push((rel.to_path_buf(), module, uses));
    }

    // Every top-level module and every virtio module is in its table.
    for table in &tables {
        let mut seen = BTreeSet::new();
        for (_, module, _) in &all {
            if module.len() > table.scope.len() && module[..table.scope.len()] == table.scope[..] {
                let child = &module[table.scope.len()];
                let mut m = table.scope.clone();
                m.push(child.clone());
                if !test_mods.contains(&m) {
                    seen.insert(child.clone());
                }
            }
        }
        for child in &seen {
            assert!(
                table.layers.contains_key(child),
                "module {}::{child} is not in the layer table of {}",
                table.scope.join("::"),
                if table.scope.is_empty() {
                    "src/lib.rs".to_string()
                } else {
                    format!("src/{}.rs", table.scope.join("/"))
                }
            );
        }
    }

    let mut bad = Vec::new();
    let mut known_hit = BTreeSet::new();
    for (rel, module, uses) in &all {
        let file_is_test = test_mods
            .iter()
            .any(|t| module.len() >= t.len() && module[..t.len()] == t[..]);
        for u in uses {
            if u.in_test || file_is_test {
                continue;
            }
            for table in &tables {
                let (Some(from), Some(to)) = (child_of(table, &u.from), child_of(table, &u.path))
                else {
                    continue;
                };
                if from == to {
                    continue;
                }
                let (lf, lt) = (table.layers[from], table.layers[to]);
                if lt < lf {
                    continue;
                }
                if let Some(k) = KNOWN_UPWARD
                    .iter()
                    .position(|&(a, b, _)| table.scope.is_empty() && a == from && b == to)
                {
                    known_hit.insert(k);
                    continue;
                }
                bad.push(format!(
                    "src/{}:{}: {} (layer {lf}) uses {} (layer {lt})",
                    rel.display(),
                    u.line,
                    u.from.join("::"),
                    u.path.join("::")
                ));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "imports that point up the layers (or across one):\n{}",
        bad.join("\n")
    );
    for (k, (a, b, why)) in KNOWN_UPWARD.iter().enumerate() {
        assert!(
            known_hit.contains(&k),
            "the known exception {a} -> {b} is gone ({why}): remove it from KNOWN_UPWARD"
        );
    }
}

#[test]
fn the_parser_reads_what_it_must() {
    let toks = tokenize("crate::a::{b, c::{self, d as e}, f::*}");
    let mut paths = expand_use(&toks);
    paths.sort();
    let want: Vec<Vec<String>> = [
        vec!["crate", "a", "b"],
        vec!["crate", "a", "c"],
        vec!["crate", "a", "c", "d"],
        vec!["crate", "a", "f"],
    ]
    .iter()
    .map(|v| v.iter().map(|s| s.to_string()).collect())
    .collect();
    assert_eq!(paths, want);
    let s = strip("let a = \"crate::x\"; // crate::y\nlet c = '\"'; /* crate::z */ crate::w");
    assert!(!s.contains("crate::x") && !s.contains("crate::y") && !s.contains("crate::z"));
    assert!(s.contains("crate::w"));
    let m: Vec<String> = vec!["virtio".into(), "net".into()];
    assert_eq!(
        resolve(&m, &["super".into(), "mem".into()]),
        Some(vec!["virtio".to_string(), "mem".to_string()])
    );
}
