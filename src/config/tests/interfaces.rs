//! Bad interfaces: addresses, prefixes, MACs, MTUs, offloads, backends.

use super::*;

#[test]
fn bad_ip_address() {
    let json = r#"{"interfaces": [{"type": "tap", "param": "tap0"},
        {"type": "tap", "param": "tap1", "ip": "10.0.0.300", "masklen": "24"}]}"#;
    let e = err(json);
    assert!(
        matches!(&e, ConfigError::BadAddress { value, .. } if value == "10.0.0.300"),
        "{e:?}"
    );
    assert_eq!(path_of(&e), "interfaces[1].ip");
    assert_eq!(
        e.to_string(),
        "interfaces[1].ip: \"10.0.0.300\" is not an IPv4 address"
    );

    let e = err(&iface(r#""ip": "fc03::2", "masklen": "24""#));
    assert!(
        e.to_string()
            .contains("is an IPv6 address; this key takes IPv4"),
        "{e}"
    );
    let e = err(&iface(r#""ip": "dhcp", "masklen": "24""#));
    assert!(e.to_string().contains("ip=dhcp in boot_cmdline"), "{e}");
    let e = err(&iface(r#""ip": "224.0.0.1", "masklen": "24""#));
    assert!(e.to_string().contains("multicast"), "{e}");
    let e = err(&iface(r#""ipv6": "fc03::zz", "masklen6": "64""#));
    assert_eq!(path_of(&e), "interfaces[0].ipv6");
    assert!(matches!(e, ConfigError::BadAddress { .. }));
    let e = err(r#"{"gateway": "fc03::1"}"#);
    assert!(
        matches!(&e, ConfigError::BadAddress { .. }) && path_of(&e) == "gateway",
        "{e:?}"
    );
    let e = err(r#"{"gateway6": "10.0.0.1"}"#);
    assert!(
        matches!(&e, ConfigError::BadAddress { .. }) && path_of(&e) == "gateway6",
        "{e:?}"
    );
    let e = err(r#"{"nameserver": "8.8.8"}"#);
    assert!(
        matches!(&e, ConfigError::BadAddress { .. }) && path_of(&e) == "nameserver",
        "{e:?}"
    );
}

#[test]
fn bad_mac() {
    let e = err(&iface(r#""mac": "02:00:00:00:00""#));
    assert!(matches!(&e, ConfigError::BadMac { .. }), "{e:?}");
    assert_eq!(path_of(&e), "interfaces[0].mac");
    assert!(e.to_string().contains("has 5 groups"), "{e}");
    let e = err(&iface(r#""mac": "02:00:00:00:00:zz""#));
    assert!(e.to_string().contains("group 6"), "{e}");
    let e = err(&iface(r#""mac": "02:00:00:00:00:01:02""#));
    assert!(e.to_string().contains("more than 6"), "{e}");
    let e = err(&iface(r#""mac": "01:00:5e:00:00:01""#));
    assert!(
        matches!(&e, ConfigError::BadMac { why, .. } if why.contains("multicast")),
        "{e:?}"
    );
    let e = err(&iface(r#""mac": "00:00:00:00:00:00""#));
    assert!(matches!(&e, ConfigError::BadMac { .. }), "{e:?}");
    // LKL's reader takes one hex digit per group.
    let cfg = parse(&iface(r#""mac": "2:0:0:0:0:A""#)).unwrap();
    assert_eq!(cfg.interfaces[0].mac, Some(MacAddr([2, 0, 0, 0, 0, 10])));
}

#[test]
fn bad_prefix() {
    for (extra, path) in [
        (
            r#""ip": "10.0.0.2", "masklen": "33""#,
            "interfaces[0].masklen",
        ),
        (
            r#""ip": "10.0.0.2", "masklen": "0""#,
            "interfaces[0].masklen",
        ),
        (
            r#""ip": "10.0.0.2", "masklen": "24x""#,
            "interfaces[0].masklen",
        ),
        (
            r#""ip": "10.0.0.2", "masklen": -1"#,
            "interfaces[0].masklen",
        ),
        (
            r#""ipv6": "fc03::2", "masklen6": 129"#,
            "interfaces[0].masklen6",
        ),
    ] {
        let e = err(&iface(extra));
        assert!(
            matches!(&e, ConfigError::BadPrefix { .. }),
            "{extra}: {e:?}"
        );
        assert_eq!(path_of(&e), path, "{extra}");
    }
    // /32 is accepted (LKL silently ignored it).
    let cfg = parse(&iface(r#""ip": "10.0.0.2", "masklen": "32""#)).unwrap();
    assert_eq!(cfg.interfaces[0].ipv4.unwrap().prefix(), 32);
}

#[test]
fn address_and_prefix_go_together() {
    let e = err(&iface(r#""ip": "10.0.0.2""#));
    assert!(matches!(&e, ConfigError::Conflict { .. }), "{e:?}");
    assert_eq!(path_of(&e), "interfaces[0].ip");
    assert_eq!(
        e.to_string(),
        "interfaces[0].ip: ip is set but masklen (its prefix length) is not"
    );
    let e = err(&iface(r#""masklen6": "64""#));
    assert_eq!(path_of(&e), "interfaces[0].masklen6");
    let e = err(&iface(r#""ifgateway": "10.0.0.1""#));
    assert!(matches!(&e, ConfigError::Conflict { .. }), "{e:?}");
    let e = err(&iface(
        r#""ip": "10.0.0.2", "masklen": 24, "ifgateway": "10.0.1.1""#,
    ));
    assert!(matches!(&e, ConfigError::BadAddress { .. }), "{e:?}");
    assert_eq!(path_of(&e), "interfaces[0].ifgateway");
    let e = err(&iface(
        r#""ipv6": "fc03::2", "masklen6": 64, "ifgateway6": "fc04::1""#,
    ));
    assert_eq!(path_of(&e), "interfaces[0].ifgateway6");
    // A link-local IPv6 gateway is always on link.
    parse(&iface(
        r#""ipv6": "fc03::2", "masklen6": 64, "ifgateway6": "fe80::1""#,
    ))
    .unwrap();
}

#[test]
fn bad_mtu() {
    for mtu in [r#""67""#, "70000", r#""1500abc""#, r#""""#, "1500.5"] {
        let e = err(&iface(&format!(r#""mtu": {mtu}"#)));
        assert!(matches!(&e, ConfigError::BadMtu { .. }), "{mtu}: {e:?}");
        assert_eq!(path_of(&e), "interfaces[0].mtu");
    }
    let e = err(&iface(r#""mtu": 1000, "ipv6": "fc03::2", "masklen6": 64"#));
    assert!(
        matches!(&e, ConfigError::BadMtu { why, .. } if why.contains("1280")),
        "{e:?}"
    );
}

#[test]
fn bad_offload() {
    let e = err(&iface(r#""offload": "0x20""#));
    assert!(
        matches!(&e, ConfigError::BadOffload { why, .. } if why.contains("bit 5")),
        "{e:?}"
    );
    assert_eq!(path_of(&e), "interfaces[0].offload");
    let e = err(&iface(r#""offload": "0x80""#));
    assert!(
        matches!(&e, ConfigError::BadOffload { why, .. } if why.contains("GUEST_TSO4 without GUEST_CSUM")),
        "{e:?}"
    );
    let e = err(&iface(r#""offload": "banana""#));
    assert!(matches!(&e, ConfigError::BadOffload { .. }), "{e:?}");
    let e = err(&iface(r#""offload": "0x100000000""#));
    assert!(matches!(&e, ConfigError::BadOffload { .. }), "{e:?}");
    // Offload needs a virtio-net header: not on raw.
    let e = err(r#"{"interfaces": [{"type": "raw", "param": "eth0", "offload": "0x3"}]}"#);
    assert!(matches!(&e, ConfigError::Unsupported { .. }), "{e:?}");
    assert_eq!(path_of(&e), "interfaces[0].offload");
    // Zero is fine anywhere.
    parse(r#"{"interfaces": [{"type": "raw", "param": "eth0", "offload": "0"}]}"#).unwrap();
}

#[test]
fn two_interfaces_on_one_tap() {
    let e = err(
        r#"{"interfaces": [{"type": "tap", "param": "tap0"}, {"type": "tap", "param": "tap0"}]}"#,
    );
    assert_eq!(
        e,
        ConfigError::DuplicateBackend {
            at: Location::Json {
                file: None,
                path: JsonPath::root().key("interfaces").index(1).key("param")
            },
            first: Location::Json {
                file: None,
                path: JsonPath::root().key("interfaces").index(0).key("param")
            },
            what: "tap \"tap0\"".into(),
        }
    );
    assert_eq!(
        e.to_string(),
        "interfaces[1].param: tap \"tap0\" is already used by interfaces[0].param"
    );
    // Pipes sharing one FIFO.
    let dir = TempDir::new();
    for f in ["a", "b", "c"] {
        dir.file(f, "");
    }
    let json =
        r#"{"interfaces": [{"type": "pipe", "param": "a|b"}, {"type": "pipe", "param": "c|a"}]}"#;
    let e = Config::parse_str_in(json, dir.path())
        .map_err(only)
        .unwrap_err();
    assert!(matches!(&e, ConfigError::DuplicateBackend { .. }), "{e:?}");
    // Two fds, the same.
    let e = err(r#"{"interfaces": [{"type": "fd", "param": "3"}, {"type": "fd", "param": 3}]}"#);
    assert!(matches!(&e, ConfigError::DuplicateBackend { .. }), "{e:?}");
    // A pipe reading and writing one FIFO.
    let json = r#"{"interfaces": [{"type": "pipe", "param": "a|a"}]}"#;
    let e = Config::parse_str_in(json, dir.path())
        .map_err(only)
        .unwrap_err();
    assert!(matches!(&e, ConfigError::BadValue { .. }), "{e:?}");
}

#[test]
fn dpdk_is_unsupported() {
    let e = err(r#"{"interfaces": [{"type": "dpdk", "param": "dpdk0"}]}"#);
    assert!(
        matches!(&e, ConfigError::Unsupported { what, .. } if what == "the dpdk backend"),
        "{e:?}"
    );
    assert_eq!(path_of(&e), "interfaces[0].type");
    assert!(e
        .to_string()
        .starts_with("interfaces[0].type: the dpdk backend is not supported: "));
}

#[test]
fn bad_backend_type_and_param() {
    let e = err(r#"{"interfaces": [{"type": "tun", "param": "tun0"}]}"#);
    assert!(
        matches!(&e, ConfigError::BadValue { why, .. } if why.contains("did you mean \"tap\"")),
        "{e:?}"
    );
    let e = err(r#"{"interfaces": [{"type": "tap"}]}"#);
    assert!(
        matches!(&e, ConfigError::MissingKey { key: "param", .. }),
        "{e:?}"
    );
    let e = err(r#"{"interfaces": [{"param": "tap0"}]}"#);
    assert!(
        matches!(&e, ConfigError::MissingKey { key: "type", .. }),
        "{e:?}"
    );
    assert_eq!(path_of(&e), "interfaces[0]");
    assert_eq!(
        e.to_string(),
        "interfaces[0]: required key \"type\" is missing (every interface needs one: \
         tap, macvtap, raw, pipe, vde, fd, slirp)"
    );
    let e = err(r#"{"interfaces": [{"type": "tap", "param": "a-very-long-tap-name"}]}"#);
    assert!(
        matches!(&e, ConfigError::BadValue { why, .. } if why.contains("15 bytes")),
        "{e:?}"
    );
    let e = err(r#"{"interfaces": [{"type": "tap", "param": "tap/0"}]}"#);
    assert!(matches!(&e, ConfigError::BadValue { .. }), "{e:?}");
    let e = err(r#"{"interfaces": [{"type": "fd", "param": "stdin"}]}"#);
    assert!(matches!(&e, ConfigError::BadValue { .. }), "{e:?}");
    let e = err(r#"{"interfaces": [{"type": "slirp", "param": "x"}]}"#);
    assert!(matches!(&e, ConfigError::BadValue { .. }), "{e:?}");
    assert!(e.to_string().contains("-netdev user"), "{e}");
    let e = err(r#"{"interfaces": [{"type": "slirp", "param": "net=10.0.3.0/24,host=10.0.4.2"}]}"#);
    assert!(matches!(&e, ConfigError::BadValue { .. }), "{e:?}");
    let e = err(r#"{"interfaces": [{"type": "pipe", "param": "onlyone"}]}"#);
    assert!(matches!(&e, ConfigError::BadValue { .. }), "{e:?}");
}

#[test]
fn offload_defaults_per_backend() {
    let best = crate::virtio::net::backends::spec::BEST_TAP_OFFLOAD;
    let offload = |json: &str, dir: &Path| {
        Config::parse_str_in(json, dir)
            .unwrap_or_else(|e| panic!("{json}: {e}"))
            .interfaces[0]
            .offload
    };
    let dir = TempDir::new();
    dir.file("rx", "");
    dir.file("tx", "");
    // No key: tap and macvtap get the best set, the others none.
    let tap = offload(&iface(""), dir.path());
    assert_eq!(u64::from(tap.bits()), best);
    assert_eq!(tap, Offload::default_for(BackendKind::Tap));
    assert_eq!(
        tap.names(),
        [
            "CSUM",
            "GUEST_CSUM",
            "GUEST_TSO4",
            "GUEST_TSO6",
            "HOST_TSO4",
            "HOST_TSO6",
            "MRG_RXBUF"
        ]
    );
    let macvtap = r#"{"interfaces": [{"type": "macvtap", "param": "/dev/null"}]}"#;
    assert_eq!(u64::from(offload(macvtap, dir.path()).bits()), best);
    for json in [
        r#"{"interfaces": [{"type": "pipe", "param": "rx|tx"}]}"#,
        r#"{"interfaces": [{"type": "raw", "param": "eth9"}]}"#,
        r#"{"interfaces": [{"type": "fd", "param": "3"}]}"#,
        r#"{"interfaces": [{"type": "slirp"}]}"#,
    ] {
        assert!(offload(json, dir.path()).is_empty(), "{json}");
    }
    // An explicit value wins, 0 included, and survives the round trip.
    for (value, bits) in [("0", 0), ("0x883", 0x883), ("0x3", 3)] {
        let json = iface(&format!(r#""offload": "{value}""#));
        let cfg = Config::parse_str_in(&json, dir.path()).unwrap();
        assert_eq!(cfg.interfaces[0].offload.bits(), bits, "{json}");
        let again = Config::parse_str_in(&cfg.to_json().to_string(), dir.path()).unwrap();
        assert_eq!(again, cfg, "{}", cfg.to_json());
    }
    let piped = r#"{"interfaces": [{"type": "pipe", "param": "rx|tx", "offload": "0x883"}]}"#;
    assert_eq!(offload(piped, dir.path()).bits(), 0x883);
    // The environment's interface too.
    let cfg = Config::from_sources_in(
        vars(&[
            ("LKL_HIJACK_NET_IFTYPE", "tap"),
            ("LKL_HIJACK_NET_IFPARAMS", "tap0"),
        ]),
        dir.path(),
    )
    .unwrap();
    assert_eq!(u64::from(cfg.interfaces[0].offload.bits()), best);
    let cfg = Config::from_sources_in(
        vars(&[
            ("LKL_HIJACK_NET_IFTYPE", "tap"),
            ("LKL_HIJACK_NET_IFPARAMS", "tap0"),
            ("LKL_HIJACK_OFFLOAD", "0"),
        ]),
        dir.path(),
    )
    .unwrap();
    assert!(cfg.interfaces[0].offload.is_empty());
}

#[test]
fn dad_is_asked_for_per_interface() {
    let v6 = r#""ipv6": "fc03::2", "masklen6": 64"#;
    let cfg = parse(&iface(v6)).unwrap();
    assert!(!cfg.interfaces[0].dad, "off by default");
    for yes in ["true", "1", "\"yes\""] {
        let cfg = parse(&iface(&format!(r#"{v6}, "dad": {yes}"#))).unwrap();
        assert!(cfg.interfaces[0].dad, "{yes}");
        let again = parse(&cfg.to_json().to_string()).unwrap();
        assert_eq!(again, cfg);
    }
    let cfg = parse(&iface(&format!(r#"{v6}, "dad": false"#))).unwrap();
    assert!(!cfg.interfaces[0].dad);
    let e = err(&iface(r#""dad": true"#));
    assert_eq!(path_of(&e), "interfaces[0].dad");
    assert!(e.to_string().contains("ipv6 is not set"), "{e}");
    // "dad": false without IPv6 says nothing wrong.
    parse(&iface(r#""dad": false"#)).unwrap();
    let e = err(&iface(&format!(r#"{v6}, "dad": "maybe""#)));
    assert_eq!(path_of(&e), "interfaces[0].dad");
    let e = err(&iface(&format!(r#"{v6}, "accept_dad": 1"#)));
    assert!(e.to_string().contains("did you mean \"dad\"?"), "{e}");

    let dir = TempDir::new();
    let cfg = Config::from_sources_in(
        vars(&[
            ("LKL_HIJACK_NET_IFTYPE", "tap"),
            ("LKL_HIJACK_NET_IFPARAMS", "tap0"),
            ("LKL_HIJACK_NET_IPV6", "fc03::2"),
            ("LKL_HIJACK_NET_NETMASK6_LEN", "64"),
            ("LKL_HIJACK_NET_DAD", "1"),
        ]),
        dir.path(),
    )
    .unwrap();
    assert!(cfg.interfaces[0].dad);
    let e = Config::from_sources_in(
        vars(&[
            ("LKL_HIJACK_NET_IFTYPE", "tap"),
            ("LKL_HIJACK_NET_IFPARAMS", "tap0"),
            ("LKL_HIJACK_NET_DAD", "1"),
        ]),
        dir.path(),
    )
    .map_err(only)
    .unwrap_err();
    assert_eq!(e.location(), Some(&Location::Env("LKL_HIJACK_NET_DAD")));
    assert_eq!(
        e.to_string(),
        "LKL_HIJACK_NET_DAD: LKL_HIJACK_NET_DAD asks for duplicate address detection, \
         which is for IPv6 addresses, but LKL_HIJACK_NET_IPV6 is not set"
    );
}
