//! Bad top-level settings, routes, disks and host files.

use super::*;

#[test]
fn missing_files() {
    let e = err(r#"{"disks": [{"image": "missing.img"}]}"#);
    match &e {
        ConfigError::File { file, why, .. } => {
            assert_eq!(file, &Path::new("/nonexistent-lkl-config-test/missing.img"));
            assert_eq!(why, "does not exist");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(path_of(&e), "disks[0].image");
    assert_eq!(
        e.to_string(),
        "disks[0].image: /nonexistent-lkl-config-test/missing.img: does not exist"
    );
    let e = err(r#"{"interfaces": [{"type": "pipe", "param": "rx|tx"}]}"#);
    assert!(matches!(&e, ConfigError::File { .. }), "{e:?}");
    assert_eq!(path_of(&e), "interfaces[0].param");
    let e = err(r#"{"interfaces": [{"type": "macvtap", "param": "/nonexistent/tap5"}]}"#);
    assert!(matches!(&e, ConfigError::File { .. }), "{e:?}");
    let e = err(r#"{"log": "/nonexistent-dir/x.log"}"#);
    assert!(
        matches!(&e, ConfigError::File { .. }) && path_of(&e) == "log",
        "{e:?}"
    );

    let dir = TempDir::new();
    fs::create_dir(dir.path().join("sub")).unwrap();
    let e = Config::parse_str_in(r#"{"disks": [{"image": "sub"}]}"#, dir.path())
        .map_err(only)
        .unwrap_err();
    assert!(
        matches!(&e, ConfigError::File { why, .. } if why.contains("directory")),
        "{e:?}"
    );
    let e = Config::parse_str_in(
        r#"{"interfaces": [{"type": "macvtap", "param": "sub"}]}"#,
        dir.path(),
    )
    .map_err(only)
    .unwrap_err();
    assert!(
        matches!(&e, ConfigError::File { why, .. } if why.contains("character device")),
        "{e:?}"
    );
}

#[test]
fn dump_paths_are_kernel_paths() {
    // They name files inside the kernel, read at exit, so only their form
    // can be checked here.
    let e = err(r#"{"dump": "/proc/meminfo,sysfs/class"}"#);
    assert!(
        matches!(&e, ConfigError::BadValue { value, .. } if value == "sysfs/class"),
        "{e:?}"
    );
    assert_eq!(path_of(&e), "dump");
    let e = err(r#"{"dump": ["/proc/meminfo", "/proc/../etc"]}"#);
    assert_eq!(path_of(&e), "dump[1]");
}

#[test]
fn other_bad_values() {
    let e = err(r#"{"singlecpu": "3"}"#);
    assert!(
        matches!(&e, ConfigError::BadValue { .. }) && path_of(&e) == "singlecpu",
        "{e:?}"
    );
    let e = err(r#"{"sysctl": "net.ipv4.ip_forward"}"#);
    assert!(
        matches!(&e, ConfigError::BadValue { why, .. } if why.contains("key=value")),
        "{e:?}"
    );
    let e = err(r#"{"sysctl": "a.b=1;a/b=2"}"#);
    assert!(
        matches!(&e, ConfigError::BadValue { why, .. } if why.contains("twice")),
        "{e:?}"
    );
    let e = err(r#"{"sysctl": {"../../etc": "1"}}"#);
    assert!(matches!(&e, ConfigError::BadValue { .. }), "{e:?}");
    let e = err(r#"{"mount": "proc,../x"}"#);
    assert!(matches!(&e, ConfigError::BadValue { .. }), "{e:?}");
    let e = err(r#"{"delay_main": "-1"}"#);
    assert!(matches!(&e, ConfigError::BadNumber { .. }), "{e:?}");
    let e = err(r#"{"debug": "0x1g"}"#);
    assert!(matches!(&e, ConfigError::BadNumber { .. }), "{e:?}");
    let e = err(&iface(r#""neigh": "10.0.0.1""#));
    assert!(
        matches!(&e, ConfigError::BadValue { why, .. } if why.contains("ip|mac")),
        "{e:?}"
    );
    let e = err(&iface(r#""neigh": "10.0.0.1|zz:00:00:00:00:01""#));
    assert!(
        matches!(&e, ConfigError::BadMac { .. }) && path_of(&e) == "interfaces[0].neigh",
        "{e:?}"
    );
    let e = err(&iface(r#""qdisc": "1:|fq""#));
    assert!(
        matches!(&e, ConfigError::BadValue { why, .. } if why.contains("root")),
        "{e:?}"
    );
    let e = err(&iface(r#""qdisc": "root|fq;root|pfifo""#));
    assert!(matches!(&e, ConfigError::BadValue { .. }), "{e:?}");
    let e = err(r#"{"nameserver": "1.1.1.1,1.0.0.1,8.8.8.8,8.8.4.4"}"#);
    assert!(
        matches!(&e, ConfigError::BadValue { why, .. } if why.contains("3")),
        "{e:?}"
    );
    let e = err(r#"{"boot_cmdline": "mem=1G\u0000x"}"#);
    assert!(
        matches!(&e, ConfigError::BadValue { why, .. } if why.contains("NUL")),
        "{e:?}"
    );
    let e = err(r#"{"log": "stdout"}"#);
    assert!(matches!(&e, ConfigError::BadValue { .. }), "{e:?}");
    assert_eq!(
        parse(r#"{"log": "stderr"}"#).unwrap().log,
        LogTarget::Stderr
    );
}

#[test]
fn gateways_must_be_on_link() {
    let e = err(r#"{"gateway": "192.168.1.1"}"#);
    assert!(
        matches!(&e, ConfigError::Conflict { why, .. } if why.contains("no interface has an address")),
        "{e:?}"
    );
    assert_eq!(path_of(&e), "gateway");
    let e = err(&format!(
        "{}, \"gateway\": \"10.1.0.1\"}}",
        iface(r#""ip": "10.0.0.2", "masklen": 24"#).trim_end_matches('}')
    ));
    assert!(
        matches!(&e, ConfigError::Conflict { why, .. } if why.contains("10.0.0.0/24 on eth0")),
        "{e:?}"
    );
    // On link through a device route.
    parse(
        r#"{"interfaces": [{"type": "tap", "param": "tap0"}], "gateway": "10.1.0.1",
            "routes": [{"destination": "10.1.0.0/16", "device": "eth0"}]}"#,
    )
    .unwrap();
    // With ip= on the command line the kernel assigns the address.
    parse(r#"{"boot_cmdline": "ip=dhcp", "gateway": "192.168.1.1"}"#).unwrap();
}

#[test]
fn bad_routes() {
    let base = r#"{"interfaces": [{"type": "tap", "param": "tap0", "ip": "10.0.0.2", "masklen": 24}], "routes": "#;
    let route = |r: &str| err(&format!("{base}[{r}]}}"));
    let e = route(r#"{"destination": "10.1.0.1/16", "gateway": "10.0.0.1"}"#);
    assert!(
        matches!(&e, ConfigError::BadPrefix { why, .. } if why.contains("10.1.0.0/16")),
        "{e:?}"
    );
    assert_eq!(path_of(&e), "routes[0].destination");
    let e = route(r#"{"destination": "10.1.0.0/33", "gateway": "10.0.0.1"}"#);
    assert!(matches!(&e, ConfigError::BadPrefix { .. }), "{e:?}");
    let e = route(r#"{"destination": "10.1.0.0", "gateway": "10.0.0.1"}"#);
    assert!(matches!(&e, ConfigError::BadPrefix { .. }), "{e:?}");
    let e = route(r#"{"destination": "fd00::/64", "gateway": "10.0.0.1"}"#);
    assert!(
        matches!(&e, ConfigError::BadAddress { .. }) && path_of(&e) == "routes[0].gateway",
        "{e:?}"
    );
    let e = route(r#"{"destination": "10.1.0.0/16", "device": "eth5"}"#);
    assert!(
        matches!(&e, ConfigError::BadValue { why, .. } if why.contains("lo, eth0")),
        "{e:?}"
    );
    let e = route(r#"{"gateway": "10.0.0.1"}"#);
    assert!(
        matches!(
            &e,
            ConfigError::MissingKey {
                key: "destination",
                ..
            }
        ),
        "{e:?}"
    );
    let e = route(r#"{"destination": "10.1.0.0/16"}"#);
    assert!(matches!(&e, ConfigError::MissingKey { .. }), "{e:?}");
    let e = route(r#"{"destination": "10.1.0.0/16", "gateway": "10.0.0.1", "table": 0}"#);
    assert!(
        matches!(&e, ConfigError::BadValue { .. }) && path_of(&e) == "routes[0].table",
        "{e:?}"
    );
    let e = route(r#"{"destination": "10.1.0.0/16", "gateway": "10.9.0.1"}"#);
    assert!(
        matches!(&e, ConfigError::Conflict { .. }) && path_of(&e) == "routes[0].gateway",
        "{e:?}"
    );
    let e = route(r#"{"destination": "fd00::/64", "gateway": "fe80::1"}"#);
    assert!(
        matches!(&e, ConfigError::Conflict { why, .. } if why.contains("link-local")),
        "{e:?}"
    );
    let e = route(
        r#"{"destination": "10.1.0.0/16", "gateway": "10.0.0.1"},
           {"destination": "10.1.0.0/16", "gateway": "10.0.0.3"}"#,
    );
    assert!(
        matches!(&e, ConfigError::Conflict { .. }) && path_of(&e) == "routes[1]",
        "{e:?}"
    );
    // "default" takes the gateway's family.
    let cfg = parse(&format!(
        r#"{base}[{{"destination": "default", "gateway": "10.0.0.1", "table": 7}}]}}"#
    ))
    .unwrap();
    assert_eq!(cfg.routes[0].destination, IpNet::DEFAULT_V4);
}

#[test]
fn bad_disks() {
    let dir = TempDir::new();
    dir.file("a.img", "");
    let parse_in = |json: &str| Config::parse_str_in(json, dir.path());
    let e = parse_in(r#"{"disks": [{"image": "a.img", "mount": "/mnt"}]}"#)
        .map_err(only)
        .unwrap_err();
    assert!(
        matches!(&e, ConfigError::MissingKey { key: "fstype", .. }),
        "{e:?}"
    );
    let e = parse_in(r#"{"disks": [{"image": "a.img", "fstype": "ext4", "mount": "mnt"}]}"#)
        .map_err(only)
        .unwrap_err();
    assert!(
        matches!(&e, ConfigError::BadValue { .. }) && path_of(&e) == "disks[0].mount",
        "{e:?}"
    );
    let e = parse_in(r#"{"disks": [{"image": "a.img", "fstype": "ext4", "mount": "/"}]}"#)
        .map_err(only)
        .unwrap_err();
    assert!(matches!(&e, ConfigError::BadValue { .. }), "{e:?}");
    let e = parse_in(r#"{"disks": [{"image": "a.img", "partition": 256}]}"#)
        .map_err(only)
        .unwrap_err();
    assert!(matches!(&e, ConfigError::BadNumber { .. }), "{e:?}");
    let e = parse_in(r#"{"disks": [{"image": "a.img", "readonly": "maybe"}]}"#)
        .map_err(only)
        .unwrap_err();
    assert!(matches!(&e, ConfigError::BadValue { .. }), "{e:?}");
    let e = parse_in(r#"{"disks": [{"image": "a.img"}, {"image": "a.img", "readonly": true}]}"#)
        .map_err(only)
        .unwrap_err();
    assert!(
        matches!(&e, ConfigError::DuplicateBackend { .. }) && path_of(&e) == "disks[1].image",
        "{e:?}"
    );
    let e = parse_in(r#"{"disks": [{"fstype": "ext4"}]}"#)
        .map_err(only)
        .unwrap_err();
    assert!(
        matches!(&e, ConfigError::MissingKey { key: "image", .. }),
        "{e:?}"
    );
    let e = parse_in(
        r#"{"mount": "proc", "disks": [{"image": "a.img", "fstype": "ext4", "mount": "/proc"}]}"#,
    )
    .map_err(only)
    .unwrap_err();
    assert!(matches!(&e, ConfigError::Conflict { .. }), "{e:?}");
    // Read-only twice is fine; readonly accepts LKL-ish strings.
    let cfg = parse_in(
        r#"{"disks": [{"image": "a.img", "readonly": "1"}, {"image": "a.img", "readonly": true}]}"#,
    )
    .unwrap();
    assert!(cfg
        .disks
        .iter()
        .all(|d| d.readonly && d.partition == 0 && d.mount.is_none()));
}

/// `debug`: 0x1-0xff (the console), 0x100 (pause at exit) and 0x200 (wait
/// for Enter before boot) are LKL's bits we honour; 0x400 (LKL's DPDK
/// logging) and the bits LKL defines nothing for are errors saying why.
#[test]
fn debug_bits() {
    let cfg = parse(r#"{"debug": "0x3ff"}"#).unwrap();
    assert!(cfg.debug.console() && cfg.debug.pause_at_exit() && cfg.debug.wait_before_boot());
    let cfg = parse(r#"{"debug": "0x100"}"#).unwrap();
    assert!(cfg.debug.pause_at_exit() && !cfg.debug.wait_before_boot());
    assert_eq!(parse(r#"{"debug": 0}"#).unwrap().debug, DebugFlags(0));
    let e = err(r#"{"debug": "0x401"}"#);
    assert_eq!(path_of(&e), "debug");
    assert!(e.to_string().contains("no DPDK backend"), "{e}");
    let e = err(r#"{"debug": "0x1800"}"#);
    assert!(
        e.to_string()
            .contains("sets 0x1800, bits LKL defines nothing for"),
        "{e}"
    );
}

#[test]
fn syscalls_key() {
    assert_eq!(parse(r#"{}"#).unwrap().syscalls, Syscalls::Libc);
    assert_eq!(
        parse(r#"{"syscalls": "all"}"#).unwrap().syscalls,
        Syscalls::All
    );
    assert_eq!(
        parse(r#"{"syscalls": "libc"}"#).unwrap().syscalls,
        Syscalls::Libc
    );
    let cfg = parse(r#"{"syscalls": "all"}"#).unwrap();
    assert!(cfg
        .settings()
        .iter()
        .any(|l| l.starts_with("syscalls: all")));
    for bad in [r#""everything""#, r#""ALL""#, "true", "1"] {
        let e = err(&format!(r#"{{"syscalls": {bad}}}"#));
        assert!(
            matches!(&e, ConfigError::BadValue { why, .. } if why.contains("\"libc\"") && why.contains("\"all\""))
                || matches!(&e, ConfigError::WrongType { .. }),
            "{bad}: {e:?}"
        );
        assert_eq!(path_of(&e), "syscalls", "{bad}");
    }
    let dir = TempDir::new();
    let cfg = Config::from_sources_in(vars(&[("LKL_HIJACK_SYSCALLS", "all")]), dir.path()).unwrap();
    assert_eq!(cfg.syscalls, Syscalls::All);
    let e =
        Config::from_sources_in(vars(&[("LKL_HIJACK_SYSCALLS", "raw")]), dir.path()).unwrap_err();
    assert!(e.to_string().contains("LKL_HIJACK_SYSCALLS"), "{e}");
}
