//! Unit tests of the plan (no kernel): order, tables, keys, errors.

use super::*;

const JSON: &str = r#"{
  "mount": "proc,sysfs",
  "gateway": "10.0.0.1",
  "gateway6": "fc03::1",
  "nameserver": "8.8.8.8",
  "sysctl": "net.ipv4.ip_forward=1",
  "interfaces": [
    { "type": "tap", "param": "tap0", "mac": "02:00:00:00:00:01", "mtu": 1400,
      "ip": "10.0.0.2", "masklen": 24, "ifgateway": "10.0.0.1",
      "ipv6": "fc03::2", "masklen6": 64, "ifgateway6": "fc03::1", "dad": true,
      "neigh": "10.0.0.9|02:00:00:00:00:09", "qdisc": "root|fq" },
    { "type": "tap", "param": "tap1", "ip": "10.1.0.2", "masklen": 16 }
  ],
  "routes": [
    { "destination": "10.9.0.0/16", "gateway": "10.1.0.1", "device": "eth1", "metric": 5 }
  ]
}"#;

fn info(index: u32, name: &str, mac: [u8; 6]) -> LinkInfo {
    LinkInfo {
        index,
        name: name.into(),
        flags: 0,
        mtu: Some(1500),
        address: Some(mac.to_vec()),
        qdisc: None,
        operstate: None,
    }
}

fn lo() -> Link {
    Link {
        index: 1,
        name: "lo".into(),
    }
}

fn summary(steps: &[Step]) -> Vec<String> {
    steps
        .iter()
        .map(|s| format!("{}: {}", s.key, s.action))
        .collect()
}

#[test]
fn plan_follows_lkl_order() {
    let cfg = Config::parse_str(JSON).unwrap();
    // Given out of order, and eth0's device already has another MAC.
    let links = [
        (1, info(3, "eth1", [2, 0, 0, 0, 0, 2])),
        (0, info(2, "eth0", [2, 0, 0, 0, 0, 0x55])),
    ];
    let steps = plan(&cfg, &links, &lo(), &ApplyOptions::default()).unwrap();
    assert_eq!(
        summary(&steps),
        [
            "mount[0]: mount proc at /proc",
            "mount[1]: mount sysfs at /sysfs",
            "lo: set lo up",
            "interfaces[0].mac: set address 02:00:00:00:00:01 on eth0",
            "interfaces[0]: set eth0 up",
            "interfaces[0].mtu: set mtu 1400 on eth0",
            "interfaces[0].ip: add address 10.0.0.2/24 on eth0",
            "interfaces[0].ifgateway: add rule from 10.0.0.2/32 lookup 4",
            "interfaces[0].ifgateway: add route 10.0.0.0/24 dev eth0 table 4",
            "interfaces[0].ifgateway: add route default via 10.0.0.1 dev eth0 table 4",
            "interfaces[0].ipv6: add address fc03::2/64 on eth0",
            "interfaces[0].ifgateway6: add rule from fc03::2/128 lookup 5",
            "interfaces[0].ifgateway6: add route fc03::/64 dev eth0 table 5",
            "interfaces[0].ifgateway6: add route default via fc03::1 dev eth0 table 5",
            "interfaces[0].neigh[0]: add neighbour 10.0.0.9 lladdr 02:00:00:00:00:09 dev eth0 permanent",
            "interfaces[0].qdisc[0]: set root qdisc fq on eth0",
            "interfaces[1]: set eth1 up",
            "interfaces[1].ip: add address 10.1.0.2/16 on eth1",
            "interfaces[0].ipv6: wait for DAD of fc03::2 on eth0",
            "routes[0]: add route 10.9.0.0/16 via 10.1.0.1 dev eth1 table main metric 5",
            "gateway: replace route default via 10.0.0.1 table main",
            "gateway6: replace route default via fc03::1 table main",
            "sysctl.net.ipv4.ip_forward: write \"1\" to /proc/sys/net/ipv4/ip_forward",
            "nameserver: write /etc/resolv.conf (1 nameservers)",
        ]
    );
}

#[test]
fn plan_options_and_partial_interfaces() {
    let cfg = Config::parse_str(JSON).unwrap();
    // Only eth0 has a device; its MAC is already right; DAD skipped.
    let links = [(0, info(7, "veth9", [2, 0, 0, 0, 0, 1]))];
    let opts = ApplyOptions { dad: Dad::Skip };
    let steps = plan(&cfg, &links, &lo(), &opts);
    // The route on eth1 cannot be placed.
    let e = steps.unwrap_err();
    assert_eq!(e.key(), Some("routes[0]"));
    assert_eq!(
        e.root(),
        &NetcfgError::NotConfigured {
            name: "eth1".into()
        }
    );
    assert_eq!(
        e.to_string(),
        "routes[0]: interface eth1 is not among the interfaces being configured (no device?)"
    );

    let mut cfg = cfg;
    cfg.routes.clear();
    let steps = plan(&cfg, &links, &lo(), &opts).unwrap();
    let s = summary(&steps);
    assert!(!s.iter().any(|l| l.contains(".mac")), "{s:#?}");
    assert!(!s.iter().any(|l| l.contains("wait for DAD")), "{s:#?}");
    assert!(s.contains(&"interfaces[0].ipv6: add address fc03::2/64 on veth9 nodad".into()));
    // Tables follow the kernel's ifindex, not the config position.
    assert!(s.contains(&"interfaces[0].ifgateway: add rule from 10.0.0.2/32 lookup 14".into()));
    assert!(s.contains(&"interfaces[0].ifgateway6: add rule from fc03::2/128 lookup 15".into()));
    assert!(!s.iter().any(|l| l.contains("eth1")));
}

#[test]
fn ipv6_addresses_are_usable_at_once_unless_dad_is_asked_for() {
    let json = r#"{"interfaces": [
        { "type": "tap", "param": "tap0", "ipv6": "fc03::2", "masklen6": 64 },
        { "type": "tap", "param": "tap1", "ipv6": "fc04::2", "masklen6": 64, "dad": true }
    ]}"#;
    let cfg = Config::parse_str(json).unwrap();
    let links = [(0, info(2, "eth0", [0; 6])), (1, info(3, "eth1", [0; 6]))];
    let steps = plan(&cfg, &links, &lo(), &ApplyOptions::default()).unwrap();
    let s = summary(&steps);
    assert!(s.contains(&"interfaces[0].ipv6: add address fc03::2/64 on eth0 nodad".into()));
    assert!(s.contains(&"interfaces[1].ipv6: add address fc04::2/64 on eth1".into()));
    let waits: Vec<_> = s.iter().filter(|l| l.contains("wait for DAD")).collect();
    assert_eq!(
        waits,
        ["interfaces[1].ipv6: wait for DAD of fc04::2 on eth1"]
    );
    // Skip: none at all.
    let opts = ApplyOptions { dad: Dad::Skip };
    let s = summary(&plan(&cfg, &links, &lo(), &opts).unwrap());
    assert!(!s.iter().any(|l| l.contains("wait for DAD")), "{s:#?}");
    assert!(s.contains(&"interfaces[1].ipv6: add address fc04::2/64 on eth1 nodad".into()));
}

#[test]
fn plan_refuses_bad_pairs() {
    let cfg = Config::parse_str(JSON).unwrap();
    let e = plan(
        &cfg,
        &[(5, info(2, "eth0", [0; 6]))],
        &lo(),
        &ApplyOptions::default(),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "interface \"eth0\" is paired with interfaces[5], but the config has 2"
    );
    let e = plan(
        &cfg,
        &[(0, info(2, "eth0", [0; 6])), (0, info(3, "eth1", [0; 6]))],
        &lo(),
        &ApplyOptions::default(),
    )
    .unwrap_err();
    assert_eq!(e, NetcfgError::DuplicateInterface { index: 0 });
}

#[test]
fn link_local_gateway6_needs_one_interface() {
    let json = r#"{
      "gateway6": "fe80::1",
      "interfaces": [
        { "type": "tap", "param": "tap0", "ipv6": "fc03::2", "masklen6": 64 },
        { "type": "tap", "param": "tap1", "ipv6": "fc04::2", "masklen6": 64 }
      ]
    }"#;
    let cfg = Config::parse_str(json).unwrap();
    let one = [(0, info(2, "eth0", [0; 6]))];
    let steps = plan(&cfg, &one, &lo(), &ApplyOptions::default()).unwrap();
    assert_eq!(
        summary(&steps).last().unwrap(),
        "gateway6: replace route default via fe80::1 dev eth0 table main"
    );
    let two = [(0, info(2, "eth0", [0; 6])), (1, info(3, "eth1", [0; 6]))];
    let e = plan(&cfg, &two, &lo(), &ApplyOptions::default()).unwrap_err();
    assert_eq!(e.key(), Some("gateway6"));
    assert!(e.to_string().contains("link-local"), "{e}");
}

#[test]
fn errors_name_key_and_errno() {
    let e = NetcfgError::Rejected {
        request: "add route 10.9.0.0/16 via 10.99.0.1 table main".into(),
        errno: Errno::ENETUNREACH,
        message: Some("Nexthop has invalid gateway".into()),
    }
    .at("routes[0]");
    assert_eq!(e.errno(), Some(Errno::ENETUNREACH));
    assert_eq!(
        e.to_string(),
        "routes[0]: add route 10.9.0.0/16 via 10.99.0.1 table main: the kernel refused: \
         Network is unreachable (ENETUNREACH) (Nexthop has invalid gateway)"
    );
    assert!(std::error::Error::source(&e).is_some());
    let e = NetcfgError::NoSuchInterface {
        name: "eth7".into(),
    };
    assert_eq!(e.errno(), None);
    assert_eq!(e.to_string(), "the kernel has no interface named \"eth7\"");
}

#[test]
fn tables() {
    assert_eq!(ifgateway_table(2), 4);
    assert_eq!(ifgateway6_table(2), 5);
    assert_eq!(ifgateway6_table(u32::MAX), u32::MAX);
}
