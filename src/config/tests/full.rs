//! Configs that are accepted: the full example, LKL's own, every value form.

use super::*;

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
    assert!(eth0.dad);

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
    assert!(!eth1.dad);

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

/// LKL's documented example config: every value a string, as LKL writes.

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
