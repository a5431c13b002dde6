//! Every key, every kind of bad input, the environment and the precedence.

use std::ffi::OsString;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::suggest::{distance, nearest};
use super::*;

const FULL: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/hijack/configs/full.json"
));

/// A directory of its own for each test, removed afterwards.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("lkl-config-test-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        fs::write(&path, contents).unwrap();
        path
    }

    /// The host files full.json names.
    fn with_full_files() -> TempDir {
        let dir = TempDir::new();
        dir.file("rx.fifo", "");
        dir.file("tx.fifo", "");
        dir.file("disk.img", "");
        dir
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Parses with relative paths against a directory where nothing exists.
fn parse(json: &str) -> Result<Config, ConfigError> {
    Config::parse_str_in(json, Path::new("/nonexistent-lkl-config-test"))
}

fn err(json: &str) -> ConfigError {
    match parse(json) {
        Ok(cfg) => panic!("accepted: {json}\n{cfg:#?}"),
        Err(e) => e,
    }
}

fn path_of(e: &ConfigError) -> &str {
    e.json_path()
        .unwrap_or_else(|| panic!("no JSON path in {e:?}"))
}

fn vars(list: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
    list.iter()
        .map(|(k, v)| (OsString::from(k), OsString::from(v)))
        .collect()
}

/// One interface with a tap backend plus `extra` members.
fn iface(extra: &str) -> String {
    let sep = if extra.is_empty() { "" } else { ", " };
    format!(r#"{{"interfaces": [{{"type": "tap", "param": "tap0"{sep}{extra}}}]}}"#)
}

// ---- the full example ----------------------------------------------------

#[test]
fn full_config_parses_every_key() {
    let dir = TempDir::with_full_files();
    let cfg = Config::parse_str_in(FULL, dir.path()).unwrap();
    let base = dir.path();

    assert_eq!(cfg.gateway, Some(Ipv4Addr::new(192, 168, 13, 1)));
    assert_eq!(cfg.gateway6, Some("fc03::1".parse::<Ipv6Addr>().unwrap()));
    assert_eq!(cfg.nameservers, vec![IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8))]);
    assert_eq!(cfg.debug, DebugFlags(1));
    assert!(cfg.debug.console() && !cfg.debug.pause_at_exit() && !cfg.debug.wait_before_boot());
    assert_eq!(cfg.single_cpu, SingleCpu::Kernel);
    assert_eq!(cfg.mounts, vec!["proc", "sysfs"]);
    assert_eq!(cfg.dump, vec!["/sysfs/class/net/eth0/mtu", "/proc/net/dev"]);
    assert_eq!(
        cfg.sysctls,
        vec![
            Sysctl {
                key: "net.ipv4.tcp_congestion_control".into(),
                value: "bbr".into()
            },
            Sysctl {
                key: "net.ipv4.tcp_wmem".into(),
                value: "4096 87380 2147483647".into()
            },
        ]
    );
    assert_eq!(
        cfg.sysctls[0].proc_path(),
        "/proc/sys/net/ipv4/tcp_congestion_control"
    );
    assert_eq!(cfg.boot_cmdline, "mem=128M loglevel=4");
    assert_eq!(cfg.delay_main, Some(Duration::from_micros(100_000)));
    assert_eq!(cfg.log, LogTarget::File(base.join("hijack.log")));
    assert_eq!(cfg.file, None);
    assert!(cfg.warnings.is_empty());

    assert_eq!(cfg.interfaces.len(), 2);
    let eth0 = &cfg.interfaces[0];
    assert_eq!(eth0.name, "eth0");
    assert_eq!(
        eth0.backend,
        Backend::Tap {
            ifname: "tap0".into()
        }
    );
    assert_eq!(eth0.backend.kind(), BackendKind::Tap);
    assert_eq!(eth0.mac, Some(MacAddr([2, 0, 0, 0, 0, 1])));
    assert_eq!(eth0.mtu, Some(1500));
    let v4 = eth0.ipv4.unwrap();
    assert_eq!(
        (v4.addr(), v4.prefix()),
        (Ipv4Addr::new(192, 168, 13, 2), 24)
    );
    assert_eq!(v4.netmask(), Ipv4Addr::new(255, 255, 255, 0));
    assert_eq!(eth0.ifgateway, Some(Ipv4Addr::new(192, 168, 13, 1)));
    let v6 = eth0.ipv6.unwrap();
    assert_eq!((v6.addr().to_string(), v6.prefix()), ("fc03::2".into(), 64));
    assert_eq!(eth0.ifgateway6, Some("fc03::1".parse().unwrap()));
    assert_eq!(
        eth0.neighbors,
        vec![
            Neighbor {
                ip: "192.168.13.100".parse().unwrap(),
                mac: MacAddr([2, 0, 0, 0, 0, 0xfe])
            },
            Neighbor {
                ip: "fc03::100".parse().unwrap(),
                mac: MacAddr([2, 0, 0, 0, 0, 0xfd])
            },
        ]
    );
    assert_eq!(eth0.qdiscs, vec![Qdisc { kind: "fq".into() }]);
    assert_eq!(eth0.offload.bits(), 0x883);
    assert!(eth0
        .offload
        .contains(Offload::CSUM | Offload::GUEST_TSO4 | Offload::HOST_TSO4));

    let eth1 = &cfg.interfaces[1];
    assert_eq!(eth1.name, "eth1");
    assert_eq!(
        eth1.backend,
        Backend::Pipe {
            rx: base.join("rx.fifo"),
            tx: base.join("tx.fifo")
        }
    );
    assert_eq!(eth1.mtu, Some(9000));
    assert_eq!(eth1.ipv4.map(|n| n.to_string()), Some("10.0.0.2/24".into()));
    assert_eq!(eth1.ipv6, None);
    assert_eq!(eth1.mac, None);
    assert_eq!(eth1.offload.bits(), 0x8003);

    assert_eq!(
        cfg.disks,
        vec![Disk {
            image: base.join("disk.img"),
            fstype: Some("ext4".into()),
            partition: 1,
            mount: Some("/mnt/data".into()),
            readonly: true,
        }]
    );
    assert_eq!(
        cfg.routes,
        vec![
            Route {
                destination: IpNet::V4(Ipv4Net::new(Ipv4Addr::new(10, 1, 0, 0), 16).unwrap()),
                gateway: Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))),
                device: Some("eth1".into()),
                table: TABLE_MAIN,
                metric: Some(100),
            },
            Route {
                destination: IpNet::V6(Ipv6Net::new("fd00:1::".parse().unwrap(), 64).unwrap()),
                gateway: Some("fc03::1".parse().unwrap()),
                device: None,
                table: 100,
                metric: None,
            },
        ]
    );
}

#[test]
fn full_config_round_trips() {
    let dir = TempDir::with_full_files();
    let cfg = Config::parse_str_in(FULL, dir.path()).unwrap();
    let text = serde_json::to_string_pretty(&cfg.to_json()).unwrap();
    let again = Config::parse_str_in(&text, dir.path()).unwrap();
    assert_eq!(cfg, again, "{text}");
    // And once more: the canonical form is a fixed point.
    assert_eq!(again.to_json(), cfg.to_json());
}

#[test]
fn full_config_file_loads_through_the_sources() {
    let dir = TempDir::with_full_files();
    let file = dir.file("lkl-hijack.json", FULL);
    let cfg = Config::from_sources_in(vars(&[]), dir.path()).unwrap();
    assert_eq!(cfg.file, Some(file));
    assert_eq!(cfg.interfaces.len(), 2);
}

/// hijack-reference.md §3.3's example: every value a string, as LKL writes.
#[test]
fn lkl_style_example_parses() {
    let dir = TempDir::with_full_files();
    let json = r#"{
      "gateway": "192.168.13.1", "gateway6": "fc03::1", "nameserver": "8.8.8.8",
      "debug": "1", "singlecpu": "1", "mount": "proc,sysfs",
      "dump": "/sysfs/class/net/eth0/mtu",
      "sysctl": "net.ipv4.tcp_congestion_control=bbr;net.ipv4.tcp_wmem=4096 87380 2147483647",
      "boot_cmdline": "mem=128M loglevel=4", "delay_main": "100000",
      "interfaces": [
        { "type": "tap", "param": "tap0", "mac": "02:00:00:00:00:01", "mtu": "1500",
          "ip": "192.168.13.2", "masklen": "24", "ifgateway": "192.168.13.1",
          "ipv6": "fc03::2", "masklen6": "64", "ifgateway6": "fc03::1",
          "neigh": "192.168.13.1|02:00:00:00:00:fe", "qdisc": "root|fq", "offload": "0x883" },
        { "type": "pipe", "param": "rx.fifo|tx.fifo", "ip": "10.0.0.2", "masklen": "24" }
      ]
    }"#;
    let cfg = Config::parse_str_in(json, dir.path()).unwrap();
    assert_eq!(cfg.interfaces.len(), 2);
    assert_eq!(cfg.debug, DebugFlags(1));
}

/// LKL's tests/config.c sample, as the hijack tests write it.
#[test]
fn lkl_test_config_parses() {
    let json = r#"{
        "gateway": "192.168.113.1", "gateway6": "fc03::1",
        "nameserver": "2001:4860:4860::8888", "debug": "1",
        "interfaces": [{
            "type": "tap", "param": "lkl_test_tap0",
            "ip": "192.168.113.2", "masklen": "24",
            "ipv6": "fc03::2", "masklen6": "64", "mac": "aa:bb:cc:dd:ee:ff"
        }]
    }"#;
    let cfg = parse(json).unwrap();
    assert_eq!(cfg.interfaces.len(), 1);
    assert_eq!(
        cfg.nameservers,
        vec!["2001:4860:4860::8888".parse::<IpAddr>().unwrap()]
    );
    assert_eq!(
        cfg.interfaces[0].mac,
        Some(MacAddr([0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]))
    );
}

#[test]
fn empty_config_is_the_default() {
    assert_eq!(parse("{}").unwrap(), Config::default());
    // A byte-order mark is skipped only at the very start.
    assert!(matches!(err(" \u{feff}{}"), ConfigError::Syntax { .. }));
    assert_eq!(parse("\u{feff}{}").unwrap(), Config::default());
}

#[test]
fn numbers_booleans_and_arrays_are_accepted() {
    let json = r#"{
        "debug": true, "singlecpu": 2, "delay_main": 5,
        "mount": ["proc", "sysfs"], "dump": ["/proc/meminfo"],
        "nameserver": ["1.1.1.1", "2606:4700:4700::1111"],
        "sysctl": {"net.ipv4.ip_forward": 1, "net/ipv4/conf/eth0.100/rp_filter": "0"},
        "interfaces": [{"type": "tap", "param": "tap0", "mtu": 1500, "ip": "10.0.0.2",
            "masklen": 8, "offload": 3, "neigh": ["10.0.0.1|02:00:00:00:00:01"],
            "qdisc": ["root|fq_codel"]}]
    }"#;
    let cfg = parse(json).unwrap();
    assert_eq!(cfg.debug, DebugFlags(1));
    assert_eq!(cfg.single_cpu, SingleCpu::KernelAndPolling);
    assert_eq!(cfg.delay_main, Some(Duration::from_micros(5)));
    assert_eq!(cfg.nameservers.len(), 2);
    assert_eq!(cfg.sysctls[0].value, "1");
    assert_eq!(
        cfg.sysctls[1].proc_path(),
        "/proc/sys/net/ipv4/conf/eth0.100/rp_filter"
    );
    let i = &cfg.interfaces[0];
    assert_eq!((i.mtu, i.offload.bits()), (Some(1500), 3));
    assert_eq!(i.qdiscs[0].kind, "fq_codel");
}

#[test]
fn strtol_base_zero_for_debug_and_offload() {
    assert_eq!(
        parse(r#"{"debug": "0x300"}"#).unwrap().debug,
        DebugFlags(0x300)
    );
    assert_eq!(parse(r#"{"debug": "010"}"#).unwrap().debug, DebugFlags(8));
    assert_eq!(parse(r#"{"debug": "0"}"#).unwrap().debug, DebugFlags(0));
    let d = parse(r#"{"debug": "0x300"}"#).unwrap().debug;
    assert!(d.pause_at_exit() && d.wait_before_boot());
    let cfg = parse(&iface(r#""offload": "0xc803""#)).unwrap();
    assert_eq!(cfg.interfaces[0].offload.bits(), 0xc803);
    // Decimal elsewhere, as LKL's atoi: "010" is ten.
    let cfg = parse(&iface(r#""mtu": "01500""#)).unwrap();
    assert_eq!(cfg.interfaces[0].mtu, Some(1500));
}

#[test]
fn slirp_param_is_qemus_netdev_user_syntax() {
    let cfg = parse(
        r#"{"interfaces": [{"type": "slirp", "param": "net=10.0.3.0/24,ipv6=off"},
        {"type": "slirp", "param": " "}]}"#,
    );
    // An empty param is an error, as for every backend.
    assert!(cfg.is_err());
    let cfg = parse(r#"{"interfaces": [{"type": "slirp", "param": "net=10.0.3.0/24,ipv6=off"}]}"#)
        .unwrap();
    assert_eq!(
        cfg.interfaces[0].backend,
        Backend::Slirp {
            param: Some("net=10.0.3.0/24,ipv6=off".into())
        }
    );
    assert_eq!(
        cfg.interfaces[0].backend.param().as_deref(),
        Some("net=10.0.3.0/24,ipv6=off")
    );
}

#[test]
fn other_backends() {
    let cfg = parse(
        r#"{"interfaces": [{"type": "fd", "param": 3}, {"type": "slirp"},
        {"type": "raw", "param": "eth0"}]}"#,
    )
    .unwrap();
    assert_eq!(cfg.interfaces[0].backend, Backend::Fd { fd: 3 });
    assert_eq!(cfg.interfaces[1].backend, Backend::Slirp { param: None });
    assert_eq!(
        cfg.interfaces[2].backend,
        Backend::Raw {
            ifname: "eth0".into()
        }
    );

    let dir = TempDir::new();
    let cfg = Config::parse_str_in(
        r#"{"interfaces": [{"type": "vde", "param": "."}, {"type": "macvtap", "param": "/dev/null"}]}"#,
        dir.path(),
    )
    .unwrap();
    assert_eq!(
        cfg.interfaces[0].backend,
        Backend::Vde {
            path: dir.path().join(".")
        }
    );
    assert_eq!(
        cfg.interfaces[1].backend,
        Backend::Macvtap {
            path: PathBuf::from("/dev/null")
        }
    );
}

// ---- malformed input: one specific error each ----------------------------

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
    let e = err(r#"{"routes": [{"via": "10.0.0.1"}]}"#);
    assert!(matches!(
        &e,
        ConfigError::UnknownKey {
            suggestion: Some(Suggestion::Name("gateway")),
            ..
        }
    ));
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
    let e = Config::parse_str_in(r#"{"disks": [{"image": "sub"}]}"#, dir.path()).unwrap_err();
    assert!(
        matches!(&e, ConfigError::File { why, .. } if why.contains("directory")),
        "{e:?}"
    );
    let e = Config::parse_str_in(
        r#"{"interfaces": [{"type": "macvtap", "param": "sub"}]}"#,
        dir.path(),
    )
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
    let e = Config::parse_str_in(json, dir.path()).unwrap_err();
    assert!(matches!(&e, ConfigError::DuplicateBackend { .. }), "{e:?}");
    // Two fds, the same.
    let e = err(r#"{"interfaces": [{"type": "fd", "param": "3"}, {"type": "fd", "param": 3}]}"#);
    assert!(matches!(&e, ConfigError::DuplicateBackend { .. }), "{e:?}");
    // A pipe reading and writing one FIFO.
    let json = r#"{"interfaces": [{"type": "pipe", "param": "a|a"}]}"#;
    let e = Config::parse_str_in(json, dir.path()).unwrap_err();
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
    let e = parse_in(r#"{"disks": [{"image": "a.img", "mount": "/mnt"}]}"#).unwrap_err();
    assert!(
        matches!(&e, ConfigError::MissingKey { key: "fstype", .. }),
        "{e:?}"
    );
    let e = parse_in(r#"{"disks": [{"image": "a.img", "fstype": "ext4", "mount": "mnt"}]}"#)
        .unwrap_err();
    assert!(
        matches!(&e, ConfigError::BadValue { .. }) && path_of(&e) == "disks[0].mount",
        "{e:?}"
    );
    let e =
        parse_in(r#"{"disks": [{"image": "a.img", "fstype": "ext4", "mount": "/"}]}"#).unwrap_err();
    assert!(matches!(&e, ConfigError::BadValue { .. }), "{e:?}");
    let e = parse_in(r#"{"disks": [{"image": "a.img", "partition": 256}]}"#).unwrap_err();
    assert!(matches!(&e, ConfigError::BadNumber { .. }), "{e:?}");
    let e = parse_in(r#"{"disks": [{"image": "a.img", "readonly": "maybe"}]}"#).unwrap_err();
    assert!(matches!(&e, ConfigError::BadValue { .. }), "{e:?}");
    let e = parse_in(r#"{"disks": [{"image": "a.img"}, {"image": "a.img", "readonly": true}]}"#)
        .unwrap_err();
    assert!(
        matches!(&e, ConfigError::DuplicateBackend { .. }) && path_of(&e) == "disks[1].image",
        "{e:?}"
    );
    let e = parse_in(r#"{"disks": [{"fstype": "ext4"}]}"#).unwrap_err();
    assert!(
        matches!(&e, ConfigError::MissingKey { key: "image", .. }),
        "{e:?}"
    );
    let e = parse_in(
        r#"{"mount": "proc", "disks": [{"image": "a.img", "fstype": "ext4", "mount": "/proc"}]}"#,
    )
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

// ---- environment and precedence ------------------------------------------

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

    let e = load(&[("LKL_HIJACK_NET_IFTYPE", "tap")]).unwrap_err();
    assert_eq!(
        e.location(),
        Some(&Location::Env("LKL_HIJACK_NET_IFPARAMS"))
    );

    let e = load(&[
        ("LKL_HIJACK_NET_IFTYPE", "tap"),
        ("LKL_HIJACK_NET_IFPARAMS", "tap0"),
        ("LKL_HIJACK_NET_IP", "10.0.0.2"),
    ])
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "LKL_HIJACK_NET_IP: LKL_HIJACK_NET_IP is set but LKL_HIJACK_NET_NETMASK_LEN (its prefix length) is not"
    );

    let e = load(&[("LKL_HIJACK_NET_NETMASK", "24")]).unwrap_err();
    assert_eq!(
        e,
        ConfigError::UnknownEnv {
            var: "LKL_HIJACK_NET_NETMASK".into(),
            suggestion: Some(Suggestion::Name("LKL_HIJACK_NET_NETMASK_LEN")),
        }
    );
    let e = load(&[("LKL_HIJACK_MEMSIZE", "64M")]).unwrap_err();
    assert!(
        matches!(&e, ConfigError::Unsupported { why, .. } if why.contains("mem=")),
        "{e:?}"
    );
    let e = load(&[("LKL_HIJACK_ZPOLINE", "1")]).unwrap_err();
    assert!(matches!(&e, ConfigError::Unsupported { .. }), "{e:?}");
    let e = load(&[("LKL_HIJACK_CONFIG_FILE", "")]).unwrap_err();
    assert!(matches!(&e, ConfigError::BadValue { .. }), "{e:?}");
    let e = load(&[("LKL_HIJACK_SINGLE_CPU", "4")]).unwrap_err();
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
    let e = Config::from_sources_in(vars(&[]), dir.path()).unwrap_err();
    assert!(matches!(&e, ConfigError::ReadFile { .. }), "{e:?}");

    let dir = TempDir::new();
    let file = dir.file(
        "lkl-hijack.json",
        "{\n \"debug\": 1,\n \"interfaces\": [\n  {\"type\": \"tap\", \"parm\": \"tap0\"}]}",
    );
    let e = Config::from_sources_in(vars(&[]), dir.path()).unwrap_err();
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
    let e = Config::from_sources_in(vars(&[]), dir.path()).unwrap_err();
    assert!(
        matches!(&e, ConfigError::Syntax { file: Some(f), line: 3, column: 3, .. } if *f == file),
        "{e:?}"
    );
    assert!(e.to_string().starts_with(&format!(
        "{}: invalid JSON at line 3, column 3: ",
        file.display()
    )));

    fs::write(&file, b"{\"debug\": \"\xff\"}").unwrap();
    let e = Config::from_sources_in(vars(&[]), dir.path()).unwrap_err();
    assert!(
        matches!(&e, ConfigError::ReadFile { why, .. } if why.contains("UTF-8")),
        "{e:?}"
    );

    fs::write(&file, vec![b' '; 2 << 20]).unwrap();
    let e = Config::from_sources_in(vars(&[]), dir.path()).unwrap_err();
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
    let e = Config::parse_file(&dir.path().join("none.json")).unwrap_err();
    assert!(matches!(e, ConfigError::ReadFile { .. }));
}

// ---- pieces ----------------------------------------------------------------

#[test]
fn suggestions() {
    assert_eq!(distance("masklne", "masklen"), 1);
    assert_eq!(distance("", "abc"), 3);
    assert_eq!(distance("kitten", "sitting"), 3);
    assert_eq!(
        nearest("gatewya", &["gateway", "gateway6"], &[]),
        Some("gateway")
    );
    assert_eq!(nearest("GATEWAY", &["gateway"], &[]), Some("gateway"));
    assert_eq!(nearest("xyz", &["gateway"], &[]), None);
    assert_eq!(
        nearest("dns", &["nameserver"], &[("dns", "nameserver")]),
        Some("nameserver")
    );
}

#[test]
fn nets_and_macs() {
    let n = Ipv4Net::new(Ipv4Addr::new(10, 1, 2, 3), 0).unwrap();
    assert!(n.contains(Ipv4Addr::new(192, 168, 0, 1)));
    assert_eq!(n.netmask(), Ipv4Addr::UNSPECIFIED);
    let n = Ipv4Net::new(Ipv4Addr::new(10, 1, 2, 3), 32).unwrap();
    assert_eq!(n.network(), Ipv4Addr::new(10, 1, 2, 3));
    assert!(Ipv4Net::new(Ipv4Addr::LOCALHOST, 33).is_none());
    let n = Ipv6Net::new("fc03::2".parse().unwrap(), 128).unwrap();
    assert!(n.contains("fc03::2".parse().unwrap()) && !n.contains("fc03::3".parse().unwrap()));
    assert!(Ipv6Net::new(Ipv6Addr::LOCALHOST, 129).is_none());
    assert_eq!(
        MacAddr([0xaa, 0, 1, 2, 3, 0xff]).to_string(),
        "aa:00:01:02:03:ff"
    );
    assert!(MacAddr::parse("aa:bb:cc:dd:ee").is_err());
    assert!(MacAddr::parse("aa-bb-cc-dd-ee-ff").is_err());
    assert!(MacAddr::parse("").is_err());
    assert_eq!(Offload::new(0x883).map(Offload::bits), Ok(0x883));
    assert!(Offload::new(0x8002).is_ok());
    assert!(Offload::new(1 << 11).is_err()); // HOST_TSO4 without CSUM
}
