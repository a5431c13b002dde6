//! The document itself: JSON syntax, keys, value types, mangled input.

use super::*;

#[test]
fn bad_json_reports_line_and_column() {
    let e = err("{\n  \"gateway\": \"1.2.3.4\",\n}");
    match &e {
        ConfigError::Syntax {
            file: None,
            line,
            column,
            message,
        } => {
            assert_eq!((*line, *column), (3, 1));
            assert!(message.contains("trailing comma"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        e.to_string(),
        "config: invalid JSON at line 3, column 1: trailing comma"
    );
    let e = err("{\"a\" 1}");
    assert!(
        matches!(
            e,
            ConfigError::Syntax {
                line: 1,
                column: 6,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(matches!(err(""), ConfigError::Syntax { line: 1, .. }));
    assert!(matches!(
        err("{} {}"),
        ConfigError::Syntax {
            line: 1,
            column: 4,
            ..
        }
    ));
}

#[test]
fn unknown_key_names_path_and_nearest_key() {
    let e = err(&iface(r#""ip": "10.0.0.2", "masklne": "24""#));
    assert_eq!(
        e,
        ConfigError::UnknownKey {
            at: Location::Json {
                file: None,
                path: JsonPath::root().key("interfaces").index(0)
            },
            key: "masklne".into(),
            suggestion: Some(Suggestion::Name("masklen")),
        }
    );
    assert_eq!(
        e.to_string(),
        "interfaces[0]: unknown key \"masklne\" (did you mean \"masklen\"?)"
    );

    let e = err(r#"{"gatway": "10.0.0.1"}"#);
    assert_eq!(
        e.to_string(),
        "top level: unknown key \"gatway\" (did you mean \"gateway\"?)"
    );
    // Synonyms that edit distance would miss.
    let e = err(&iface(r#""netmask_len": "24""#));
    assert!(
        matches!(
            &e,
            ConfigError::UnknownKey {
                suggestion: Some(Suggestion::Name("masklen")),
                ..
            }
        ),
        "{e:?}"
    );
    let e = err(&iface(r#""ipv4": "10.0.0.2""#));
    assert!(
        matches!(
            &e,
            ConfigError::UnknownKey {
                suggestion: Some(Suggestion::Name("ip")),
                ..
            }
        ),
        "{e:?}"
    );
    // A key of the wrong level.
    let e = err(r#"{"mtu": "1500"}"#);
    assert_eq!(
        e.to_string(),
        "top level: unknown key \"mtu\" (\"mtu\" is a known key, but it belongs inside an element of \"interfaces\")"
    );
    // Nothing near.
    let e = err(r#"{"zzzzzzzz": 1}"#);
    assert!(
        matches!(
            &e,
            ConfigError::UnknownKey {
                suggestion: None,
                ..
            }
        ),
        "{e:?}"
    );
    // In disks and routes too.
    let e = err(r#"{"disks": [{"imgae": "x"}]}"#);
    assert_eq!(path_of(&e), "disks[0]");
    assert!(matches!(
        &e,
        ConfigError::UnknownKey {
            suggestion: Some(Suggestion::Name("image")),
            ..
        }
    ));
    // Two mistakes, two errors: "via" stands for the gateway, so only the
    // destination is missing.
    let e = errs(r#"{"routes": [{"via": "10.0.0.1"}]}"#);
    assert!(matches!(
        &e[0],
        ConfigError::UnknownKey {
            suggestion: Some(Suggestion::Name("gateway")),
            ..
        }
    ));
    assert!(
        matches!(
            &e[1..],
            [ConfigError::MissingKey {
                key: "destination",
                ..
            }]
        ),
        "{e:#?}"
    );
}

#[test]
fn duplicate_key() {
    let e = err(r#"{"debug": "1", "debug": "0"}"#);
    assert!(
        matches!(&e, ConfigError::DuplicateKey { key, .. } if key == "debug"),
        "{e:?}"
    );
    assert_eq!(path_of(&e), "debug");
}

#[test]
fn wrong_value_types() {
    let cases = [
        (
            r#"{"interfaces": {}}"#,
            "interfaces",
            "an array of objects",
            "an object",
        ),
        (
            r#"{"interfaces": ["tap0"]}"#,
            "interfaces[0]",
            "an object",
            "a string",
        ),
        (r#"{"gateway": 10}"#, "gateway", "a string", "a number"),
        (r#"{"gateway": null}"#, "gateway", "a string", "null"),
        (
            r#"{"boot_cmdline": ["mem=1G"]}"#,
            "boot_cmdline",
            "a string",
            "an array",
        ),
        (
            r#"{"mount": 1}"#,
            "mount",
            "a string or an array of strings",
            "a number",
        ),
        (r#"{"dump": [1]}"#, "dump[0]", "a string", "a number"),
    ];
    for (json, path, expected, found) in cases {
        let e = err(json);
        match &e {
            ConfigError::WrongType {
                expected: x,
                found: f,
                ..
            } => assert_eq!((*x, *f), (expected, found), "{json}"),
            other => panic!("{json}: {other:?}"),
        }
        assert_eq!(path_of(&e), path, "{json}");
    }
    let e = err(&iface(r#""mtu": true"#));
    assert!(
        matches!(
            &e,
            ConfigError::WrongType {
                found: "a boolean",
                ..
            }
        ),
        "{e:?}"
    );
    let e = err("[]");
    assert!(
        matches!(
            &e,
            ConfigError::WrongType {
                expected: "an object",
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "top level: expected an object, found an array"
    );
}

/// Garbage in, an error out: never a panic, never a stack overflow.
#[test]
fn no_panics_on_mangled_input() {
    let dir = TempDir::with_full_files();
    let bytes = FULL.as_bytes();
    for i in 0..bytes.len() {
        let mut v = bytes.to_vec();
        v.remove(i);
        if let Ok(s) = String::from_utf8(v) {
            let _ = Config::parse_str_in(&s, dir.path());
        }
        for junk in [b'"', b'0', b'{', b']'] {
            let mut v = bytes.to_vec();
            v.insert(i, junk);
            if let Ok(s) = String::from_utf8(v) {
                let _ = Config::parse_str_in(&s, dir.path());
            }
        }
    }
    let deep = "[".repeat(100_000);
    assert!(matches!(err(&deep), ConfigError::Syntax { .. }));
    let deep = format!("{}{}", "{\"a\":".repeat(100_000), "1");
    assert!(matches!(err(&deep), ConfigError::Syntax { .. }));
    let huge_key = format!("{{\"{}\": 1}}", "k".repeat(1_000_000));
    assert!(matches!(
        err(&huge_key),
        ConfigError::UnknownKey {
            suggestion: None,
            ..
        }
    ));
    for s in [
        "null",
        "1",
        "\"x\"",
        "{\"interfaces\": [null]}",
        "{\"mtu\": 1e400}",
        "{\"debug\": 1e400}",
    ] {
        let _ = parse(s);
    }
    let e = err(&iface(r#""mtu": 18446744073709551616"#));
    assert!(matches!(e, ConfigError::BadMtu { .. }), "{e:?}");
}
