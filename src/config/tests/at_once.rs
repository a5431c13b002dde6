//! Every error of a config in one run, each at its place, and no error
//! that only follows from another.

use super::*;

/// The places of `errors`: JSON paths, or variable names.
fn places(errors: &[ConfigError]) -> Vec<String> {
    errors
        .iter()
        .map(|e| match e.location() {
            Some(Location::Json { path, .. }) => path.as_str().to_string(),
            Some(Location::Env(var)) => (*var).to_string(),
            None => match e {
                ConfigError::UnknownEnv { var, .. } => var.clone(),
                other => format!("{other}"),
            },
        })
        .collect()
}

#[test]
fn four_mistakes_in_json_are_four_errors() {
    let json = r#"{
      "interfaces": [
        { "type": "tap", "param": "tap0", "ip": "10.0.0.300", "masklen": 24,
          "mtu": 70000 },
        { "type": "tapp", "param": "tap1" }
      ],
      "nameserver": "8.8.8.8,not-an-address"
    }"#;
    let e = errs(json);
    assert_eq!(
        places(&e),
        [
            "interfaces[0].ip",
            "interfaces[0].mtu",
            "interfaces[1].type",
            "nameserver"
        ],
        "{e:#?}"
    );
    let text = parse(json).unwrap_err().to_string();
    assert_eq!(text.lines().count(), 4, "{text}");
    assert!(text.contains("did you mean \"tap\"?"), "{text}");
}

#[test]
fn four_mistakes_in_variables_are_four_errors() {
    let dir = TempDir::new();
    let e = Config::from_sources_in(
        vars(&[
            ("LKL_HIJACK_NET_IFTYPE", "tap"),
            ("LKL_HIJACK_NET_IFPARAMS", "tap0"),
            ("LKL_HIJACK_NET_IP", "10.0.0.2"),
            ("LKL_HIJACK_NET_NETMASK_LEN", "33"),
            ("LKL_HIJACK_NET_MAC", "01:00:00:00:00:01"),
            ("LKL_HIJACK_SINGLE_CPU", "7"),
            ("LKL_HIJACK_NET_NETMASK", "24"),
        ]),
        dir.path(),
    )
    .unwrap_err()
    .into_vec();
    // The variables' own problems first (sorted), then their values.
    assert_eq!(
        places(&e),
        [
            "LKL_HIJACK_NET_NETMASK",
            "LKL_HIJACK_NET_NETMASK_LEN",
            "LKL_HIJACK_NET_MAC",
            "LKL_HIJACK_SINGLE_CPU"
        ],
        "{e:#?}"
    );
}

/// The errors of `c.json` holding `text`, with an unknown variable set.
fn with_file_and_unknown_variable(text: &str) -> ConfigErrors {
    let dir = TempDir::new();
    dir.file("c.json", text);
    Config::from_sources_in(
        vars(&[
            ("LKL_HIJACK_CONFIG_FILE", "c.json"),
            ("LKL_HIJACK_NOSUCH", "1"),
        ]),
        dir.path(),
    )
    .unwrap_err()
}

#[test]
fn variables_and_file_are_reported_together() {
    let e = with_file_and_unknown_variable(r#"{"debug": "x", "gateway": "10.0.0.1.2"}"#);
    let e = e.errors();
    assert_eq!(
        places(e),
        ["LKL_HIJACK_NOSUCH", "gateway", "debug"],
        "{e:#?}"
    );
    assert!(e[1].to_string().contains("c.json"), "{}", e[1]);
}

#[test]
fn a_syntax_error_stops_at_the_first() {
    let e = errs(r#"{"debug": "x", "gateway": }"#);
    assert!(matches!(e[..], [ConfigError::Syntax { .. }]), "{e:#?}");
    // The variables' errors found before it are kept.
    let e = with_file_and_unknown_variable("{,}");
    assert!(
        matches!(
            e.errors(),
            [ConfigError::UnknownEnv { .. }, ConfigError::Syntax { .. }]
        ),
        "{e:#?}"
    );
}

/// One mistake is one error, also where other checks depend on the
/// setting that is wrong.
#[test]
fn no_error_follows_from_another() {
    for json in [
        // The gateway is on the subnet the bad address was meant to make.
        r#"{"gateway": "10.0.0.1", "interfaces": [{"type": "tap", "param": "tap0",
            "ip": "10.0.0.300", "masklen": 24}]}"#,
        r#"{"interfaces": [{"type": "tap", "param": "tap0", "ip": "10.0.0.2",
            "masklen": 99, "ifgateway": "10.0.0.1"}]}"#,
        r#"{"interfaces": [{"type": "tap", "param": "tap0", "ipv6": "fc03::2",
            "masklen6": "x", "ifgateway6": "fc03::1", "dad": true}]}"#,
        // A misspelled key is not also missing.
        r#"{"interfaces": [{"type": "tap", "param": "tap0", "ipp": "10.0.0.2",
            "masklen": 24}]}"#,
        r#"{"interfaces": [{"typ": "tap", "param": "tap0"}]}"#,
        r#"{"interfaces": [{"type": "tap", "parm": "tap0"}]}"#,
        r#"{"disks": [{"imag": "/x"}]}"#,
        // A bad type: its param and offload are not checked against it.
        r#"{"interfaces": [{"type": "nosuch", "param": "tap0", "offload": "0x883"}]}"#,
        // A route through an interface that is wrong: the device exists.
        r#"{"interfaces": [{"type": "tap", "param": "tap0", "mtu": 1}],
            "routes": [{"destination": "10.9.0.0/16", "device": "eth0"}]}"#,
        r#"{"routes": [{"destination": "default", "gateway": "10.0.0.x"}]}"#,
        r#"{"boot_cmdline": 5, "gateway": "10.0.0.1"}"#,
    ] {
        err(json);
    }
    let dir = TempDir::new();
    dir.file("a.img", "");
    for json in [
        // Readonly is wrong, so whether the image must open read-write is
        // not known.
        r#"{"disks": [{"image": "a.img", "readonly": "maybe"}]}"#,
        // The fstype is there, wrong: not also missing for the mount.
        r#"{"disks": [{"image": "a.img", "fstype": "EXT4!", "mount": "/mnt"}]}"#,
    ] {
        one(
            Config::parse_str_in(json, dir.path())
                .unwrap_err()
                .into_vec(),
            json,
        );
    }
    // Two interfaces on one tap, the second also with a bad MTU: two.
    let e = errs(
        r#"{"interfaces": [{"type": "tap", "param": "tap0"},
            {"type": "tap", "param": "tap0", "mtu": 1}]}"#,
    );
    assert_eq!(places(&e), ["interfaces[1].mtu"], "{e:#?}");
    // The obsolete tap variable and the type: one conflict (env.rs).
}

#[test]
fn every_item_of_a_list_is_checked() {
    let e = errs(
        r#"{"mount": "proc,PROC!,sysfs,proc", "dump": ["/a", "b", 5],
        "sysctl": "a.b=1;=2;a.b=3"}"#,
    );
    assert_eq!(
        places(&e),
        ["mount", "mount", "sysctl", "sysctl", "dump[1]", "dump[2]"],
        "{e:#?}"
    );
}
