//! docs/config.md lists every config key and `LKL_HIJACK_*` variable: the
//! keys the parser accepts (the tables in src/config/validate/schema.rs
//! and src/config/env.rs) and the document's tables must be the same
//! lists, and the parser must know every key the document lists.

use std::collections::BTreeSet;
use std::path::Path;

use lkl::config::Config;

fn read(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The string literals of `const NAME: &[&str] = &[...];` in `src`.
fn const_list(src: &str, name: &str) -> BTreeSet<String> {
    let start = src
        .find(&format!("const {name}: &[&str] = &["))
        .unwrap_or_else(|| panic!("schema.rs has no {name}"));
    let body = &src[start..];
    let end = body.find("];").expect("end of the list");
    quoted(&body[..end])
        .into_iter()
        .filter(|s| s != "str")
        .collect()
}

/// Every "..." literal in `text`.
fn quoted(text: &str) -> Vec<String> {
    text.split('"')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s.to_string())
        .collect()
}

/// The variables of env.rs's VARS and REMOVED tables.
fn env_vars(src: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for table in ["const VARS:", "const REMOVED:"] {
        let start = src
            .find(table)
            .unwrap_or_else(|| panic!("env.rs has no {table}"));
        let body = &src[start..];
        let end = body.find("\n];").expect("end of the table");
        out.extend(
            quoted(&body[..end])
                .into_iter()
                .filter(|s| s.starts_with("LKL_HIJACK_")),
        );
    }
    out
}

/// The first-column names (`| `name` |`) of the table under `heading`.
fn doc_table(doc: &str, heading: &str) -> BTreeSet<String> {
    let start = doc
        .find(&format!("\n## {heading}"))
        .unwrap_or_else(|| panic!("docs/config.md has no section \"{heading}\""));
    let section = &doc[start + 4..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let names: BTreeSet<String> = section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once('`').map(|(n, _)| n.to_string()))
        .collect();
    assert!(!names.is_empty(), "no table rows under \"{heading}\"");
    names
}

fn same(what: &str, parser: &BTreeSet<String>, doc: &BTreeSet<String>) {
    let missing: Vec<_> = parser.difference(doc).collect();
    let extra: Vec<_> = doc.difference(parser).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: accepted but not in docs/config.md: {missing:?}; in docs/config.md but not accepted: {extra:?}"
    );
}

#[test]
fn the_document_lists_every_key_the_parser_accepts() {
    let schema = read("src/config/validate/schema.rs");
    let doc = read("docs/config.md");
    for (list, heading) in [
        ("TOP_KEYS", "Top-level keys"),
        ("INTERFACE_KEYS", "Interface keys"),
        ("DISK_KEYS", "Disk keys"),
        ("ROUTE_KEYS", "Route keys"),
    ] {
        same(
            heading,
            &const_list(&schema, list),
            &doc_table(&doc, heading),
        );
    }
    same(
        "Environment variables",
        &env_vars(&read("src/config/env.rs")),
        &doc_table(&doc, "Environment variables"),
    );
}

/// The other direction, by behaviour: no key of the document is unknown
/// to the parser (whatever its value's errors).
#[test]
fn the_parser_knows_every_documented_key() {
    let doc = read("docs/config.md");
    let unknown = |json: &str, key: &str| {
        let text = match Config::parse_str(json) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        };
        assert!(
            !text.contains(&format!("unknown key \"{key}\"")),
            "{key} is documented but unknown: {text}"
        );
    };
    // The check below can see an unknown key.
    let bogus = Config::parse_str("{\"bogus_key\": 1}")
        .err()
        .map(|e| e.to_string());
    assert!(
        bogus
            .as_deref()
            .unwrap_or("")
            .contains("unknown key \"bogus_key\""),
        "{bogus:?}"
    );
    for key in doc_table(&doc, "Top-level keys") {
        unknown(&format!("{{\"{key}\": \"?\"}}"), &key);
    }
    for key in doc_table(&doc, "Interface keys") {
        unknown(&format!("{{\"interfaces\": [{{\"{key}\": \"?\"}}]}}"), &key);
    }
    for key in doc_table(&doc, "Disk keys") {
        unknown(&format!("{{\"disks\": [{{\"{key}\": \"?\"}}]}}"), &key);
    }
    for key in doc_table(&doc, "Route keys") {
        unknown(&format!("{{\"routes\": [{{\"{key}\": \"?\"}}]}}"), &key);
    }
    // An empty directory: no ./lkl-hijack.json is read.
    let cwd = std::env::temp_dir().join(format!("lkl-config-ref-{}", std::process::id()));
    std::fs::create_dir_all(&cwd).expect("scratch dir");
    let env_errors = |var: &str| match Config::from_sources_in(vec![(var.into(), "?".into())], &cwd)
    {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    };
    assert!(env_errors("LKL_HIJACK_BOGUS").contains("unknown environment variable"));
    for var in doc_table(&doc, "Environment variables") {
        let text = env_errors(&var);
        assert!(
            !text.contains("unknown environment variable"),
            "{var} is documented but unknown: {text}"
        );
    }
    let _ = std::fs::remove_dir_all(&cwd);
}
