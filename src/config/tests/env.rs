//! The LKL_HIJACK_* variables, and how they combine with a file.

use super::*;

#[test]
fn env_only_configuration() {
    let dir = TempDir::new(); // no lkl-hijack.json in it
    let cfg = Config::from_sources_in(
        vars(&[
            ("LKL_HIJACK_NET_IFTYPE", "tap"),
            ("LKL_HIJACK_NET_IFPARAMS", "lkl_test_tap0"),
            ("LKL_HIJACK_NET_MTU", "1400"),
            ("LKL_HIJACK_NET_IP", "192.168.113.2"),
            ("LKL_HIJACK_NET_NETMASK_LEN", "24"),
            ("LKL_HIJACK_NET_IFGATEWAY", "192.168.113.1"),
            ("LKL_HIJACK_NET_IPV6", "fc03::2"),
            ("LKL_HIJACK_NET_NETMASK6_LEN", "64"),
            ("LKL_HIJACK_NET_IFGATEWAY6", "fc03::1"),
            ("LKL_HIJACK_NET_MAC", "aa:bb:cc:dd:ee:ff"),
            ("LKL_HIJACK_NET_NEIGHBOR", "192.168.113.1|aa:bb:cc:dd:ee:aa"),
            ("LKL_HIJACK_NET_QDISC", "root|fq"),
            ("LKL_HIJACK_OFFLOAD", "0x8803"),
            ("LKL_HIJACK_NET_GATEWAY", "192.168.113.1"),
            ("LKL_HIJACK_NET_GATEWAY6", "fc03::1"),
            ("LKL_HIJACK_DEBUG", "0x1"),
            ("LKL_HIJACK_MOUNT", "proc,sysfs"),
            ("LKL_HIJACK_SINGLE_CPU", "2"),
            ("LKL_HIJACK_SYSCTL", "net.ipv4.tcp_sack=0"),
            ("LKL_HIJACK_BOOT_CMDLINE", "loglevel=1"),
            ("LKL_HIJACK_DUMP", "/sysfs/class/net/lo/mtu"),
            ("LKL_HIJACK_DELAY_MAIN", "10"),
            ("LKL_HIJACK_NAMESERVER", "8.8.8.8"),
            ("LKL_HIJACK_LOG", "stderr"),
            ("LKL_HIJACK_ZPOLINE", ""), // empty: unset
            ("PATH", "/usr/bin"),
        ]),
        dir.path(),
    )
    .unwrap();
    assert_eq!(cfg.file, None);
    assert_eq!(cfg.interfaces.len(), 1);
    let i = &cfg.interfaces[0];
    assert_eq!(
        i.backend,
        Backend::Tap {
            ifname: "lkl_test_tap0".into()
        }
    );
    assert_eq!(i.mtu, Some(1400));
    assert_eq!(
        i.ipv4.map(|n| n.to_string()),
        Some("192.168.113.2/24".into())
    );
    assert_eq!(i.ifgateway, Some(Ipv4Addr::new(192, 168, 113, 1)));
    assert_eq!(i.ipv6.map(|n| n.to_string()), Some("fc03::2/64".into()));
    assert_eq!(i.ifgateway6, Some("fc03::1".parse().unwrap()));
    assert_eq!(i.mac, Some(MacAddr([0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff])));
    assert_eq!(i.neighbors.len(), 1);
    assert_eq!(i.qdiscs.len(), 1);
    assert_eq!(i.offload.bits(), 0x8803);
    assert_eq!(cfg.gateway, Some(Ipv4Addr::new(192, 168, 113, 1)));
    assert_eq!(cfg.gateway6, Some("fc03::1".parse().unwrap()));
    assert_eq!(cfg.debug, DebugFlags(1));
    assert_eq!(cfg.mounts, vec!["proc", "sysfs"]);
    assert_eq!(cfg.single_cpu, SingleCpu::KernelAndPolling);
    assert_eq!(cfg.sysctls.len(), 1);
    assert_eq!(cfg.boot_cmdline, "loglevel=1");
    assert_eq!(cfg.dump, vec!["/sysfs/class/net/lo/mtu"]);
    assert_eq!(cfg.delay_main, Some(Duration::from_micros(10)));
    assert_eq!(cfg.nameservers.len(), 1);
    assert_eq!(cfg.log, LogTarget::Stderr);
    assert!(cfg.warnings.is_empty());
}

#[test]
fn nothing_set_is_the_default() {
    let dir = TempDir::new();
    let cfg = Config::from_sources_in(vars(&[("HOME", "/root")]), dir.path()).unwrap();
    assert_eq!(cfg, Config::default());
}

#[test]
fn env_errors_name_the_variable() {
    let dir = TempDir::new();
    let load = |v: &[(&str, &str)]| Config::from_sources_in(vars(v), dir.path());

    let e = load(&[
        ("LKL_HIJACK_NET_IFTYPE", "tap"),
        ("LKL_HIJACK_NET_IFPARAMS", "tap0"),
        ("LKL_HIJACK_NET_IP", "10.0.0.300"),
        ("LKL_HIJACK_NET_NETMASK_LEN", "24"),
    ])
    .map_err(only)
    .unwrap_err();
    assert_eq!(e.location(), Some(&Location::Env("LKL_HIJACK_NET_IP")));
    assert_eq!(
        e.to_string(),
        "LKL_HIJACK_NET_IP: \"10.0.0.300\" is not an IPv4 address"
    );

    // An interface variable without a type (LKL silently ignored it).
    let e = load(&[
        ("LKL_HIJACK_NET_IP", "10.0.0.2"),
        ("LKL_HIJACK_NET_NETMASK_LEN", "24"),
    ])
    .map_err(only)
    .unwrap_err();
    assert!(
        matches!(&e, ConfigError::MissingKey { key: "type", .. }),
        "{e:?}"
    );
    assert_eq!(e.location(), Some(&Location::Env("LKL_HIJACK_NET_IFTYPE")));
    assert!(
        e.to_string()
            .starts_with("LKL_HIJACK_NET_IFTYPE is not set, but LKL_HIJACK_NET_IP"),
        "{e}"
    );

    let e = load(&[("LKL_HIJACK_NET_IFTYPE", "tap")])
        .map_err(only)
        .unwrap_err();
    assert_eq!(
        e.location(),
        Some(&Location::Env("LKL_HIJACK_NET_IFPARAMS"))
    );

    let e = load(&[
        ("LKL_HIJACK_NET_IFTYPE", "tap"),
        ("LKL_HIJACK_NET_IFPARAMS", "tap0"),
        ("LKL_HIJACK_NET_IP", "10.0.0.2"),
    ])
    .map_err(only)
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "LKL_HIJACK_NET_IP: LKL_HIJACK_NET_IP is set but LKL_HIJACK_NET_NETMASK_LEN (its prefix length) is not"
    );

    let e = load(&[("LKL_HIJACK_NET_NETMASK", "24")])
        .map_err(only)
        .unwrap_err();
    assert_eq!(
        e,
        ConfigError::UnknownEnv {
            var: "LKL_HIJACK_NET_NETMASK".into(),
            suggestion: Some(Suggestion::Name("LKL_HIJACK_NET_NETMASK_LEN")),
        }
    );
    let e = load(&[("LKL_HIJACK_MEMSIZE", "64M")])
        .map_err(only)
        .unwrap_err();
    assert!(
        matches!(&e, ConfigError::Unsupported { why, .. } if why.contains("mem=")),
        "{e:?}"
    );
    let e = load(&[("LKL_HIJACK_ZPOLINE", "1")])
        .map_err(only)
        .unwrap_err();
    assert!(matches!(&e, ConfigError::Unsupported { .. }), "{e:?}");
    let e = load(&[("LKL_HIJACK_CONFIG_FILE", "")])
        .map_err(only)
        .unwrap_err();
    assert!(matches!(&e, ConfigError::BadValue { .. }), "{e:?}");
    let e = load(&[("LKL_HIJACK_SINGLE_CPU", "4")])
        .map_err(only)
        .unwrap_err();
    assert_eq!(e.location(), Some(&Location::Env("LKL_HIJACK_SINGLE_CPU")));
}

#[test]
fn obsolete_tap_variable() {
    let dir = TempDir::new();
    let cfg = Config::from_sources_in(vars(&[("LKL_HIJACK_NET_TAP", "tap7")]), dir.path()).unwrap();
    assert_eq!(
        cfg.interfaces[0].backend,
        Backend::Tap {
            ifname: "tap7".into()
        }
    );
    assert_eq!(cfg.warnings, vec![ConfigWarning::ObsoleteTapVariable]);
    let e = Config::from_sources_in(
        vars(&[
            ("LKL_HIJACK_NET_TAP", "tap7"),
            ("LKL_HIJACK_NET_IFTYPE", "tap"),
        ]),
        dir.path(),
    )
    .map_err(only)
    .unwrap_err();
    assert!(matches!(&e, ConfigError::Conflict { .. }), "{e:?}");
}

#[test]
fn file_overrides_env_key_by_key() {
    let dir = TempDir::new();
    let file = dir.file(
        "lkl-hijack.json",
        r#"{"debug": "0", "interfaces": [{"type": "tap", "param": "tap1",
            "ip": "10.0.0.2", "masklen": "24"}], "gateway": "10.0.0.1"}"#,
    );
    let cfg = Config::from_sources_in(
        vars(&[
            ("LKL_HIJACK_DEBUG", "1"),
            ("LKL_HIJACK_BOOT_CMDLINE", "mem=32M"),
            ("LKL_HIJACK_NET_IFTYPE", "tap"),
            ("LKL_HIJACK_NET_IFPARAMS", "tap0"),
            ("LKL_HIJACK_NET_MTU", "1400"),
        ]),
        dir.path(),
    )
    .unwrap();
    // The file's keys win ...
    assert_eq!(cfg.debug, DebugFlags(0));
    assert_eq!(cfg.gateway, Some(Ipv4Addr::new(10, 0, 0, 1)));
    // ... its interfaces replace the environment's (MTU included) ...
    assert_eq!(cfg.interfaces.len(), 1);
    assert_eq!(
        cfg.interfaces[0].backend,
        Backend::Tap {
            ifname: "tap1".into()
        }
    );
    assert_eq!(cfg.interfaces[0].mtu, None);
    // ... and keys the file lacks keep the environment's value.
    assert_eq!(cfg.boot_cmdline, "mem=32M");
    assert_eq!(cfg.file.as_deref(), Some(file.as_path()));
    assert_eq!(
        cfg.warnings,
        vec![ConfigWarning::EnvInterfaceReplaced {
            file: file.clone(),
            vars: vec![
                "LKL_HIJACK_NET_IFTYPE",
                "LKL_HIJACK_NET_IFPARAMS",
                "LKL_HIJACK_NET_MTU"
            ],
        }]
    );

    // An environment value overridden by the file is not validated: LKL
    // never looks at it either.
    let cfg = Config::from_sources_in(vars(&[("LKL_HIJACK_DEBUG", "junk")]), dir.path()).unwrap();
    assert_eq!(cfg.debug, DebugFlags(0));
}

#[test]
fn config_file_variable_wins_over_default_file() {
    let dir = TempDir::new();
    dir.file("lkl-hijack.json", r#"{"debug": "1"}"#);
    let other = dir.file("other.json", r#"{"debug": "2"}"#);
    let cfg = Config::from_sources_in(
        vars(&[("LKL_HIJACK_CONFIG_FILE", "other.json")]),
        dir.path(),
    )
    .unwrap();
    assert_eq!(cfg.debug, DebugFlags(2));
    assert_eq!(cfg.file, Some(other));

    // Named but missing: an error (LKL aborts too, then runs on the host).
    let e = Config::from_sources_in(vars(&[("LKL_HIJACK_CONFIG_FILE", "gone.json")]), dir.path())
        .map_err(only)
        .unwrap_err();
    assert_eq!(
        e,
        ConfigError::ReadFile {
            file: dir.path().join("gone.json"),
            why: "does not exist".into()
        }
    );
}

#[test]
fn default_file_problems() {
    let dir = TempDir::new();
    // A directory where the file should be: an error, not "no file".
    fs::create_dir(dir.path().join("lkl-hijack.json")).unwrap();
    let e = Config::from_sources_in(vars(&[]), dir.path())
        .map_err(only)
        .unwrap_err();
    assert!(matches!(&e, ConfigError::ReadFile { .. }), "{e:?}");

    let dir = TempDir::new();
    let file = dir.file(
        "lkl-hijack.json",
        "{\n \"debug\": 1,\n \"interfaces\": [\n  {\"type\": \"tap\", \"parm\": \"tap0\"}]}",
    );
    let e = Config::from_sources_in(vars(&[]), dir.path())
        .map_err(only)
        .unwrap_err();
    assert_eq!(
        e.location(),
        Some(&Location::Json {
            file: Some(file.clone()),
            path: JsonPath::root().key("interfaces").index(0)
        })
    );
    assert_eq!(
        e.to_string(),
        format!(
            "{}: interfaces[0]: unknown key \"parm\" (did you mean \"param\"?)",
            file.display()
        )
    );

    fs::write(&file, "{\n  \"debug\": 1\n  \"mount\": \"proc\"\n}").unwrap();
    let e = Config::from_sources_in(vars(&[]), dir.path())
        .map_err(only)
        .unwrap_err();
    assert!(
        matches!(&e, ConfigError::Syntax { file: Some(f), line: 3, column: 3, .. } if *f == file),
        "{e:?}"
    );
    assert!(e.to_string().starts_with(&format!(
        "{}: invalid JSON at line 3, column 3: ",
        file.display()
    )));

    fs::write(&file, b"{\"debug\": \"\xff\"}").unwrap();
    let e = Config::from_sources_in(vars(&[]), dir.path())
        .map_err(only)
        .unwrap_err();
    assert!(
        matches!(&e, ConfigError::ReadFile { why, .. } if why.contains("UTF-8")),
        "{e:?}"
    );

    fs::write(&file, vec![b' '; 2 << 20]).unwrap();
    let e = Config::from_sources_in(vars(&[]), dir.path())
        .map_err(only)
        .unwrap_err();
    assert!(
        matches!(&e, ConfigError::ReadFile { why, .. } if why.contains("larger")),
        "{e:?}"
    );
}

#[test]
fn parse_file_reads_one_file() {
    let dir = TempDir::new();
    let file = dir.file("c.json", r#"{"mount": "proc"}"#);
    let cfg = Config::parse_file(&file).unwrap();
    assert_eq!(cfg.mounts, vec!["proc"]);
    assert_eq!(cfg.file, Some(file));
    let e = Config::parse_file(&dir.path().join("none.json"))
        .map_err(only)
        .unwrap_err();
    assert!(matches!(e, ConfigError::ReadFile { .. }));
}
