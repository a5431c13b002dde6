//! netcfg end to end: a booted kernel with two virtio-net devices on
//! socket pairs gets a whole config applied, and everything is read back
//! from the kernel (netlink dumps, /proc/sys, /etc/resolv.conf). Then the
//! error paths, IPv6 duplicate address detection failing against a peer
//! that defends the address, and `net-test` pinging over a socket pair.

use std::net::{IpAddr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lkl::config::{Config, IpNet, TABLE_MAIN};
use lkl::devices::{self, AttachedDevice};
use lkl::netcfg::{self, wire, ApplyOptions, Dad, Link, NetcfgError, RouteSpec, Rtnl};
use lkl::syscall::Errno;
use lkl::virtio::hostio::{recv_vectored, send_vectored, Interest, PollSet};
use lkl::virtio::{Net, SocketPairBackend};
use testkit::{boot, in_child};

const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];

/// The host end of a device's wire: a thread that reads every frame the
/// kernel sends (so transmit never backs up) and may answer some.
struct Wire {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Wire {
    fn spawn(fd: OwnedFd, answer: fn(&[u8]) -> Option<Vec<u8>>) -> Wire {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            let mut set = PollSet::new();
            while !flag.load(Ordering::Relaxed) {
                set.clear();
                set.add(fd.as_raw_fd(), 0, Interest::READ);
                if set.wait(Some(Duration::from_millis(20))).unwrap_or(0) == 0 {
                    continue;
                }
                let n = match recv_vectored(fd.as_fd(), &mut [std::io::IoSliceMut::new(&mut buf)]) {
                    Ok((n, _)) if n > 0 => n,
                    _ => return,
                };
                if let Some(reply) = answer(&buf[..n]) {
                    let _ = send_vectored(fd.as_fd(), &[std::io::IoSlice::new(&reply)]);
                }
            }
        });
        Wire {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Wire {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn drain(_: &[u8]) -> Option<Vec<u8>> {
    None
}

/// Attaches a virtio-net device with `mac` whose wire is served by `answer`.
fn attach(mac: [u8; 6], answer: fn(&[u8]) -> Option<Vec<u8>>) -> (AttachedDevice, Wire) {
    let (backend, peer) = SocketPairBackend::pair(false).unwrap();
    let net = Net::new(Box::new(backend), 0, Some(mac)).unwrap();
    (
        devices::attach(Box::new(net)).unwrap(),
        Wire::spawn(peer, answer),
    )
}

fn net(s: &str) -> IpNet {
    let (a, p) = s.split_once('/').unwrap();
    IpNet::new(a.parse().unwrap(), p.parse().unwrap()).unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const FULL: &str = r#"{
  "mount": "sysfs",
  "gateway": "10.0.0.1",
  "gateway6": "fc03::1",
  "nameserver": "8.8.8.8,2001:4860:4860::8888",
  "sysctl": "net.ipv4.ip_forward=1;net.core.somaxconn=1234",
  "interfaces": [
    {
      "type": "tap", "param": "tap0",
      "mac": "02:00:00:00:00:01", "mtu": "1400",
      "ip": "10.0.0.2", "masklen": "24", "ifgateway": "10.0.0.1",
      "ipv6": "fc03::2", "masklen6": "64", "ifgateway6": "fc03::1",
      "neigh": "10.0.0.9|02:00:00:00:00:09;fc03::9|02:00:00:00:00:0a",
      "qdisc": "root|fq"
    },
    {
      "type": "tap", "param": "tap1",
      "ip": "10.1.0.2", "masklen": 16,
      "ipv6": "fd01::2", "masklen6": 64, "dad": true,
      "qdisc": "root|fq_codel"
    }
  ],
  "routes": [
    { "destination": "10.9.0.0/16", "gateway": "10.1.0.1", "device": "eth1", "metric": 50 },
    { "destination": "fd09::/64", "gateway": "fd01::1", "table": 100 }
  ]
}"#;

#[testkit::needs(kernel_net)]
#[test]
fn applies_a_full_config_and_reads_it_back() {
    in_child(
        "applies_a_full_config_and_reads_it_back",
        Duration::from_secs(90),
        || {
            // eth0's device starts with another MAC than the config's.
            let (dev0, wire0) = attach([2, 0, 0, 0, 0, 0xaa], drain);
            let (dev1, wire1) = attach([2, 0, 0, 0, 0, 2], drain);
            let (kernel, console) = boot(64 << 20);
            assert!(testkit::kernel_has_net(), "the kernel has no networking");
            let cfg = Config::parse_str(FULL).unwrap();
            let ifaces = [(0, "eth0".to_string()), (1, "eth1".to_string())];
            let t0 = Instant::now();
            netcfg::apply(&cfg, &ifaces)
                .unwrap_or_else(|e| panic!("apply: {e}\n{}", console.contents()));
            println!("applied in {:?} (one DAD wait, eth1's)", t0.elapsed());

            let mut nl = Rtnl::open().unwrap();
            let eth0 = nl.link_by_name("eth0").unwrap();
            let eth1 = nl.link_by_name("eth1").unwrap();
            let (i0, i1) = (eth0.index, eth1.index);
            assert_eq!(nl.ifindex("eth1").unwrap(), i1);

            // Links: up, MTU, MAC, qdisc.
            assert!(eth0.is_up() && eth1.is_up());
            assert!(nl.link_by_name("lo").unwrap().is_up());
            assert_eq!(eth0.mtu, Some(1400));
            assert_eq!(eth0.address.as_deref(), Some(&[2, 0, 0, 0, 0, 1][..]));
            assert_eq!(eth1.address.as_deref(), Some(&[2, 0, 0, 0, 0, 2][..]));

            // Addresses, IPv6 ones usable: eth0's at once (no detection),
            // eth1's ("dad": true) past detection.
            let addrs = nl.addresses(wire::AF_UNSPEC, None).unwrap();
            for (index, a, nodad) in [
                (i0, "10.0.0.2/24", false),
                (i0, "fc03::2/64", true),
                (i1, "10.1.0.2/16", false),
                (i1, "fd01::2/64", false),
            ] {
                let found = addrs
                    .iter()
                    .find(|x| x.index == index && x.addr == net(a))
                    .unwrap_or_else(|| panic!("{a} missing: {addrs:#?}"));
                assert!(!found.is_tentative() && !found.dad_failed(), "{found:?}");
                assert_eq!(found.flags & wire::ifa::F_NODAD != 0, nodad, "{found:?}");
            }
            let only_eth1 = nl.addresses(wire::AF_INET, Some(i1)).unwrap();
            assert_eq!(only_eth1.len(), 1, "{only_eth1:#?}");

            // Main table.
            let main4 = nl.routes(wire::AF_INET, Some(TABLE_MAIN)).unwrap();
            assert!(main4.iter().all(|r| r.table == TABLE_MAIN));
            assert!(
                main4.iter().any(|r| r.destination == net("0.0.0.0/0")
                    && r.gateway == Some(ip("10.0.0.1"))
                    && r.oif == Some(i0)),
                "{main4:#?}"
            );
            assert!(
                main4.iter().any(|r| r.destination == net("10.9.0.0/16")
                    && r.gateway == Some(ip("10.1.0.1"))
                    && r.oif == Some(i1)
                    && r.metric == Some(50)),
                "{main4:#?}"
            );
            let main6 = nl.routes(wire::AF_INET6, Some(TABLE_MAIN)).unwrap();
            assert!(
                main6
                    .iter()
                    .any(|r| r.destination == net("::/0") && r.gateway == Some(ip("fc03::1"))),
                "{main6:#?}"
            );
            let t100 = nl.routes(wire::AF_INET6, Some(100)).unwrap();
            assert!(
                t100.iter().any(|r| r.destination == net("fd09::/64")
                    && r.gateway == Some(ip("fd01::1"))
                    && r.oif == Some(i1)),
                "{t100:#?}"
            );

            // ifgateway tables: 2*ifindex (IPv4), 2*ifindex+1 (IPv6).
            let t4 = nl.routes(wire::AF_INET, Some(2 * i0)).unwrap();
            assert_eq!(t4.len(), 2, "{t4:#?}");
            assert!(t4.iter().any(|r| r.destination == net("10.0.0.0/24")
                && r.gateway.is_none()
                && r.oif == Some(i0)));
            assert!(t4.iter().any(|r| r.destination == net("0.0.0.0/0")
                && r.gateway == Some(ip("10.0.0.1"))
                && r.oif == Some(i0)));
            let t6 = nl.routes(wire::AF_INET6, Some(2 * i0 + 1)).unwrap();
            assert!(t6
                .iter()
                .any(|r| r.destination == net("fc03::/64") && r.oif == Some(i0)));
            assert!(t6.iter().any(|r| r.destination == net("::/0")
                && r.gateway == Some(ip("fc03::1"))
                && r.oif == Some(i0)));
            assert!(t6.iter().all(|r| r.table == 2 * i0 + 1), "{t6:#?}");
            // eth1 has no ifgateway: no tables of its own.
            assert!(nl.routes(wire::AF_INET, Some(2 * i1)).unwrap().is_empty());

            // Rules.
            let rules = nl.rules(wire::AF_UNSPEC).unwrap();
            assert!(
                rules
                    .iter()
                    .any(|r| r.from == Some(net("10.0.0.2/32")) && r.table == 2 * i0),
                "{rules:#?}"
            );
            assert!(
                rules
                    .iter()
                    .any(|r| r.from == Some(net("fc03::2/128")) && r.table == 2 * i0 + 1),
                "{rules:#?}"
            );

            // Neighbours.
            let neigh = nl.neighbors(wire::AF_UNSPEC).unwrap();
            for (a, mac) in [("10.0.0.9", 9u8), ("fc03::9", 10)] {
                let n = neigh
                    .iter()
                    .find(|n| n.ip == ip(a) && n.index == i0)
                    .unwrap_or_else(|| panic!("{a} missing: {neigh:#?}"));
                assert!(n.is_permanent(), "{n:?}");
                assert_eq!(n.lladdr.as_deref(), Some(&[2, 0, 0, 0, 0, mac][..]));
            }

            // Qdiscs.
            let q = nl.qdiscs().unwrap();
            let root = |i| {
                q.iter()
                    .find(|q| q.index == i && q.is_root())
                    .map(|q| q.kind.clone())
            };
            assert_eq!(root(i0).as_deref(), Some("fq"), "{q:#?}");
            assert_eq!(root(i1).as_deref(), Some("fq_codel"), "{q:#?}");
            assert_eq!(
                nl.link_by_name("eth0").unwrap().qdisc.as_deref(),
                Some("fq")
            );

            // Files: sysctls, the sysfs mount, resolv.conf.
            assert_eq!(
                netcfg::read_file("/proc/sys/net/ipv4/ip_forward").unwrap(),
                "1\n"
            );
            assert_eq!(
                netcfg::read_file("/proc/sys/net/core/somaxconn").unwrap(),
                "1234\n"
            );
            assert_eq!(
                netcfg::read_file("/sysfs/class/net/eth0/mtu").unwrap(),
                "1400\n"
            );
            assert_eq!(
                netcfg::read_file("/etc/resolv.conf").unwrap(),
                "nameserver 8.8.8.8\nnameserver 2001:4860:4860::8888\n"
            );

            drop(nl);
            kernel.halt().unwrap();
            drop((wire0, wire1, dev0, dev1));
        },
    );
}

/// Answers an IPv6 duplicate-address probe (a neighbour solicitation from
/// `::`) with a neighbour advertisement: "that address is mine".
fn defend_ipv6(frame: &[u8]) -> Option<Vec<u8>> {
    // Ethernet + IPv6 (40) + ICMPv6 neighbour solicitation (24).
    if frame.len() < 78 || frame[12..14] != [0x86, 0xdd] || frame[20] != 58 || frame[54] != 135 {
        return None;
    }
    let src: [u8; 16] = frame[22..38].try_into().ok()?;
    if src != [0; 16] {
        return None; // not a DAD probe
    }
    let target: [u8; 16] = frame[62..78].try_into().ok()?;
    let our_ll: [u8; 16] = "fe80::ff:fe00:fe".parse::<Ipv6Addr>().unwrap().octets();
    let all_nodes: [u8; 16] = "ff02::1".parse::<Ipv6Addr>().unwrap().octets();
    // ICMPv6 neighbour advertisement, Override flag, target link-layer option.
    let mut icmp = vec![136, 0, 0, 0, 0x20, 0, 0, 0];
    icmp.extend_from_slice(&target);
    icmp.extend_from_slice(&[2, 1]);
    icmp.extend_from_slice(&PEER_MAC);
    let mut sum: u32 = 0;
    let mut add = |b: &[u8]| {
        for c in b.chunks(2) {
            sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
    };
    add(&our_ll);
    add(&all_nodes);
    add(&(icmp.len() as u32).to_be_bytes());
    add(&[0, 0, 0, 58]);
    add(&icmp);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    icmp[2..4].copy_from_slice(&(!(sum as u16)).to_be_bytes());

    let mut f = vec![0x33, 0x33, 0, 0, 0, 1];
    f.extend_from_slice(&PEER_MAC);
    f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
    f.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    f.extend_from_slice(&[58, 255]);
    f.extend_from_slice(&our_ll);
    f.extend_from_slice(&all_nodes);
    f.extend_from_slice(&icmp);
    Some(f)
}

#[testkit::needs(kernel_net)]
#[test]
fn errors_name_the_key_the_interface_and_the_errno() {
    in_child(
        "errors_name_the_key_the_interface_and_the_errno",
        Duration::from_secs(90),
        || {
            let (dev0, wire0) = attach([2, 0, 0, 0, 0, 1], defend_ipv6);
            let (kernel, _console) = boot(64 << 20);
            assert!(testkit::kernel_has_net(), "the kernel has no networking");
            let eth = |j: &str| Config::parse_str(j).unwrap_or_else(|e| panic!("{e}"));

            // An interface the kernel does not have.
            let cfg = eth(r#"{"interfaces": [{"type": "tap", "param": "tap0"}]}"#);
            let e = netcfg::apply(&cfg, &[(0, "eth7".into())]).unwrap_err();
            assert_eq!(e.key(), Some("interfaces[0]"));
            assert_eq!(
                e.root(),
                &NetcfgError::NoSuchInterface {
                    name: "eth7".into()
                }
            );
            println!("{e}");
            assert_eq!(
                e.to_string(),
                "interfaces[0]: the kernel has no interface named \"eth7\""
            );
            // A pair pointing past the config.
            let e = netcfg::apply(&cfg, &[(3, "eth0".into())]).unwrap_err();
            assert!(
                matches!(e, NetcfgError::BadInterfaceIndex { index: 3, .. }),
                "{e}"
            );

            // A qdisc kind the kernel does not know: ENOENT, after the
            // address went on.
            let cfg = eth(r#"{"interfaces": [{"type": "tap", "param": "tap0",
                "ip": "10.0.0.2", "masklen": 24, "qdisc": "root|nosuchqdisc"}]}"#);
            let e = netcfg::apply(&cfg, &[(0, "eth0".into())]).unwrap_err();
            println!("{e}");
            assert_eq!(e.key(), Some("interfaces[0].qdisc[0]"));
            assert_eq!(e.errno(), Some(Errno::ENOENT));
            assert!(e.to_string().contains("eth0"), "{e}");
            assert!(e.to_string().contains("ENOENT"), "{e}");

            // A route the kernel already has (the subnet route): EEXIST.
            let cfg = eth(r#"{"interfaces": [{"type": "tap", "param": "tap0"}],
                "routes": [{"destination": "10.0.0.0/24", "device": "eth0"}]}"#);
            let e = netcfg::apply(&cfg, &[(0, "eth0".into())]).unwrap_err();
            println!("{e}");
            assert_eq!(e.key(), Some("routes[0]"));
            assert_eq!(e.errno(), Some(Errno::EEXIST));
            assert!(
                e.to_string().starts_with(
                    "routes[0]: add route 10.0.0.0/24 dev eth0 table main: the kernel refused: \
                     File exists (EEXIST)"
                ),
                "{e}"
            );

            // A gateway the kernel cannot reach, through the API: the
            // errno and the kernel's explanation.
            let mut nl = Rtnl::open().unwrap();
            let e = nl
                .add_route(&RouteSpec {
                    destination: net("10.9.0.0/16"),
                    gateway: Some(ip("192.168.77.1")),
                    dev: None,
                    table: TABLE_MAIN,
                    metric: None,
                })
                .unwrap_err();
            println!("{e}");
            assert_eq!(e.errno(), Some(Errno::ENETUNREACH), "{e}");
            let NetcfgError::Rejected { message, .. } = &e else {
                panic!("{e:?}")
            };
            assert!(message.is_some(), "extended ack expected: {e}");
            // A link that is not there, by index.
            let ghost = Link {
                index: 999,
                name: "ghost".into(),
            };
            let e = nl.set_mtu(&ghost, 1400).unwrap_err();
            assert_eq!(e.errno(), Some(Errno::ENODEV), "{e}");
            assert!(e.to_string().contains("ghost"), "{e}");

            // A sysctl that does not exist.
            let cfg = eth(r#"{"sysctl": "net.ipv4.no_such_knob=1"}"#);
            let e = netcfg::apply(&cfg, &[]).unwrap_err();
            println!("{e}");
            assert_eq!(e.key(), Some("sysctl.net.ipv4.no_such_knob"));
            assert_eq!(e.errno(), Some(Errno::ENOENT));
            assert!(
                e.to_string().contains("/proc/sys/net/ipv4/no_such_knob"),
                "{e}"
            );

            // IPv6 with detection asked for: the peer defends the
            // address, so DAD fails.
            let cfg = eth(r#"{"interfaces": [{"type": "tap", "param": "tap0",
                "ipv6": "fc05::2", "masklen6": 64, "dad": true}]}"#);
            let e = netcfg::apply(&cfg, &[(0, "eth0".into())]).unwrap_err();
            println!("{e}");
            assert_eq!(e.key(), Some("interfaces[0].ipv6"));
            assert!(matches!(e.root(), NetcfgError::Dad { .. }), "{e:?}");
            assert!(
                e.to_string().contains("duplicate address detection failed"),
                "{e}"
            );
            let a = nl
                .addresses(wire::AF_INET6, None)
                .unwrap()
                .into_iter()
                .find(|a| a.addr == net("fc05::2/64"))
                .unwrap();
            assert!(a.dad_failed());

            // With DAD skipped the address is usable at once, even though
            // the peer would defend it.
            let cfg = eth(r#"{"interfaces": [{"type": "tap", "param": "tap0",
                "ipv6": "fc06::2", "masklen6": 64, "dad": true}]}"#);
            let opts = ApplyOptions { dad: Dad::Skip };
            netcfg::apply_with(&cfg, &[(0, "eth0".into())], &opts).unwrap();
            let a = nl
                .addresses(wire::AF_INET6, None)
                .unwrap()
                .into_iter()
                .find(|a| a.addr == net("fc06::2/64"))
                .unwrap();
            assert!(!a.is_tentative() && !a.dad_failed(), "{a:?}");
            assert_ne!(a.flags & wire::ifa::F_NODAD, 0);

            drop(nl);
            kernel.halt().unwrap();
            drop((wire0, dev0));
        },
    );
}

/// Runs `net-test` and returns (success, stdout + stderr).
fn net_test(args: &[&str], limit: Duration) -> (bool, String) {
    let mut cmd = Command::new(testkit::workspace_bin("net-test"));
    cmd.args(args);
    let out = testkit::run_limited(cmd, limit)
        .unwrap_or_else(|| panic!("net-test {args:?}: no result after {limit:?}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[testkit::needs(kernel_net)]
#[test]
fn net_test_pings_over_a_socket_pair() {
    let common = [
        "--backend",
        "socketpair-test",
        "--ip",
        "10.0.0.2",
        "--netmask-len",
        "24",
        "--gateway",
        "10.0.0.1",
        "--count",
        "3",
    ];
    // On the link, and off it through the gateway.
    for dst in ["10.0.0.1", "192.0.2.7"] {
        let mut args = common.to_vec();
        args.extend(["--dst", dst]);
        let (ok, out) = net_test(&args, Duration::from_secs(60));
        print!("{out}");
        assert!(
            !out.contains("no networking"),
            "the kernel has no networking"
        );
        assert!(ok, "net-test failed:\n{out}");
        assert!(out.contains(&format!("from {dst}: icmp_seq=1")), "{out}");
        assert!(out.contains("3 packets transmitted, 3 received"), "{out}");
    }
    // A peer that never answers: exit status 1.
    let mut args = common.to_vec();
    args.extend(["--dst", "10.0.0.1", "--count", "1", "--peer", "silent"]);
    let (ok, out) = net_test(&args, Duration::from_secs(60));
    print!("{out}");
    assert!(!ok, "net-test succeeded without replies:\n{out}");
    assert!(out.contains("1 packets transmitted, 0 received"), "{out}");
    // Usage errors.
    let (ok, out) = net_test(&["--backend", "socketpair-test"], Duration::from_secs(10));
    assert!(!ok && out.contains("--ip"), "{out}");
}

/// `gateway6` when a default route with the same metric is already there,
/// as a router advertisement installs one as soon as the link is up: ours
/// replaces it (a plain add fails with `EEXIST`).
#[testkit::needs(kernel_net)]
#[test]
fn gateway6_replaces_an_existing_default_route() {
    in_child(
        "gateway6_replaces_an_existing_default_route",
        Duration::from_secs(90),
        || {
            let (dev0, wire0) = attach([2, 0, 0, 0, 0, 1], drain);
            let (kernel, console) = boot(64 << 20);
            assert!(testkit::kernel_has_net(), "the kernel has no networking");
            let skip = ApplyOptions { dad: Dad::Skip };
            let first = Config::parse_str(
                r#"{"interfaces":[{"type":"tap","param":"tap0",
                    "ipv6":"fc03::2","masklen6":64,"ip":"10.0.0.2","masklen":24}]}"#,
            )
            .unwrap();
            netcfg::apply_with(&first, &[(0, "eth0".to_string())], &skip)
                .unwrap_or_else(|e| panic!("apply: {e}\n{}", console.contents()));
            let mut nl = Rtnl::open().unwrap();
            // Another router's default routes, with the default metric.
            for other in ["fc03::99", "10.0.0.99"] {
                let route = |gw: &str| RouteSpec {
                    destination: if gw.contains(':') {
                        net("::/0")
                    } else {
                        net("0.0.0.0/0")
                    },
                    gateway: Some(ip(gw)),
                    dev: None,
                    table: TABLE_MAIN,
                    metric: None,
                };
                nl.add_route(&route(other)).unwrap();
                if other.contains(':') {
                    // What LKL-style code does, and what failed before.
                    let e = nl.add_route(&route("fc03::1")).unwrap_err();
                    assert!(
                        matches!(
                            e,
                            NetcfgError::Rejected {
                                errno: Errno::EEXIST,
                                ..
                            }
                        ),
                        "{e}"
                    );
                }
            }
            // The interface again, for the gateways' reachability check, but
            // not attached to a device: its addresses are not added twice.
            let second = Config::parse_str(
                r#"{"gateway6":"fc03::1","gateway":"10.0.0.1",
                    "interfaces":[{"type":"tap","param":"tap0",
                    "ipv6":"fc03::2","masklen6":64,"ip":"10.0.0.2","masklen":24}]}"#,
            )
            .unwrap();
            netcfg::apply_with(&second, &[], &skip)
                .unwrap_or_else(|e| panic!("apply gateway6: {e}\n{}", console.contents()));
            let main6 = nl.routes(wire::AF_INET6, Some(TABLE_MAIN)).unwrap();
            let defaults6: Vec<_> = main6
                .iter()
                .filter(|r| r.destination == net("::/0"))
                .collect();
            assert_eq!(defaults6.len(), 1, "{main6:#?}");
            assert_eq!(defaults6[0].gateway, Some(ip("fc03::1")), "{main6:#?}");
            let main4 = nl.routes(wire::AF_INET, Some(TABLE_MAIN)).unwrap();
            let defaults4: Vec<_> = main4
                .iter()
                .filter(|r| r.destination == net("0.0.0.0/0"))
                .collect();
            assert_eq!(defaults4.len(), 1, "{main4:#?}");
            assert_eq!(defaults4[0].gateway, Some(ip("10.0.0.1")), "{main4:#?}");
            // Applying it again is no error either.
            netcfg::apply_with(&second, &[], &skip).unwrap();
            drop(nl);
            kernel.halt().unwrap();
            drop((wire0, dev0));
        },
    );
}
