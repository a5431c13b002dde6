//! The kernel on a tap device, inside a network namespace this test makes:
//! the host pings the kernel and the kernel pings the host, 65 times at
//! 10 ms intervals, over IPv4 and IPv6; the config (LKL's JSON keys) is
//! applied over rtnetlink.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::Command;
use std::time::{Duration, Instant};

use lkl::config::Config;
use lkl::syscall::{self as sys, abi};
use testkit::boot_with_net;
use testkit::hijack::sha256;
use testkit::netns::in_netns;
use testkit::wire::{checksum, pattern};

const HOST4: Ipv4Addr = Ipv4Addr::new(192, 168, 113, 1);
const LKL4: Ipv4Addr = Ipv4Addr::new(192, 168, 113, 2);
const HOST6: &str = "fc00:113::1";
const LKL6: &str = "fc00:113::2";

/// Sends `count` echo requests from the kernel at `interval`; returns the
/// number of distinct replies (late ones are waited for up to 2 s).
fn kernel_ping(dst: IpAddr, count: u16, interval: Duration) -> usize {
    let (family, proto, kind_req, kind_rep) = match dst {
        IpAddr::V4(_) => (abi::AF_INET, 1, 8u8, 0u8),
        IpAddr::V6(_) => (abi::AF_INET6, 58, 128u8, 129u8),
    };
    let fd =
        sys::socket(family, abi::SOCK_RAW | abi::SOCK_NONBLOCK, proto).expect("raw ICMP socket");
    let to = match dst {
        IpAddr::V4(a) => sys::SockAddr::In(abi::SockAddrIn::new(a, 0)),
        IpAddr::V6(a) => sys::SockAddr::In6(sys::SockAddrIn6::new(a, 0)),
    };
    let mut seen = vec![false; usize::from(count)];
    let mut buf = [0u8; 1500];
    let mut collect = |seen: &mut Vec<bool>, until: Instant| loop {
        match sys::recv(fd, &mut buf, 0) {
            Ok(n) => {
                // IPv4 raw sockets deliver the IP header; ICMPv6 ones do not.
                let start = if family == abi::AF_INET {
                    (usize::from(buf[0] & 0xf) * 4).min(n)
                } else {
                    0
                };
                let icmp = &buf[start..n];
                if icmp.len() >= 8 && icmp[0] == kind_rep && icmp[4..6] == [0x4c, 0x4b] {
                    let seq = usize::from(u16::from_be_bytes([icmp[6], icmp[7]]));
                    if let Some(s) = seen.get_mut(seq) {
                        *s = true;
                    }
                }
            }
            Err(lkl::Errno::EAGAIN) => {
                if Instant::now() >= until || seen.iter().all(|&s| s) {
                    return;
                }
                std::thread::sleep(Duration::from_micros(500));
            }
            Err(e) => panic!("recv: {e}"),
        }
    };
    for seq in 0..count {
        let mut pkt = vec![kind_req, 0, 0, 0, 0x4c, 0x4b, (seq >> 8) as u8, seq as u8];
        pkt.extend_from_slice(b"lkl-ping-payload");
        if family == abi::AF_INET {
            let c = checksum(&pkt);
            pkt[2..4].copy_from_slice(&c.to_be_bytes());
        }
        sys::sendto(fd, &pkt, 0, &to).expect("send echo request");
        collect(&mut seen, Instant::now() + interval);
    }
    collect(&mut seen, Instant::now() + Duration::from_secs(2));
    let _ = sys::close(fd);
    seen.iter().filter(|&&s| s).count()
}

fn host_ping(args: &[&str]) -> String {
    let out = Command::new("ping")
        .args(args)
        .output()
        .expect("ping (apt-get install iputils-ping)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[testkit::needs(root, tun, kernel_net, ping)]
#[test]
fn tap_ping_both_ways_v4_and_v6() {
    in_netns(
        "tap_ping_both_ways_v4_and_v6",
        "tapping",
        |ns| {
            ns.lo_up()?;
            ns.add_tap("tap0", false, &["192.168.113.1/24", "fc00:113::1/64"])
        },
        || {
            let config = Config::parse_str(
                r#"{"interfaces":[{"type":"tap","param":"tap0","ip":"192.168.113.2","masklen":"24",
                    "ipv6":"fc00:113::2","masklen6":"64","mac":"02:00:00:00:01:13"}]}"#,
            )
            .expect("config");
            let (kernel, device) = boot_with_net(&config, 64 << 20, Some([2, 0, 0, 0, 1, 0x13]));

            // Host -> kernel.
            let v4 = host_ping(&["-c", "65", "-i", "0.01", "-w", "10", &LKL4.to_string()]);
            assert!(
                v4.contains("65 packets transmitted, 65 received"),
                "host ping v4:\n{v4}"
            );
            let v6 = host_ping(&["-6", "-c", "65", "-i", "0.01", "-w", "10", LKL6]);
            assert!(
                v6.contains("65 packets transmitted, 65 received"),
                "host ping v6:\n{v6}"
            );
            println!("host -> kernel: {}", v4.lines().last().unwrap_or(""));

            // Kernel -> host.
            let t0 = Instant::now();
            let got = kernel_ping(IpAddr::V4(HOST4), 65, Duration::from_millis(10));
            assert_eq!(got, 65, "kernel ping v4");
            let got6 = kernel_ping(
                IpAddr::V6(HOST6.parse::<Ipv6Addr>().unwrap()),
                65,
                Duration::from_millis(10),
            );
            assert_eq!(got6, 65, "kernel ping v6");
            println!("kernel -> host: 65/65 v4, 65/65 v6 in {:?}", t0.elapsed());

            kernel.halt().expect("halt");
            drop(device);
        },
    );
}

const TRANSFER: usize = 100 << 20;

/// 100 MB each way between the kernel (over tap, with LKL's `offload`
/// value `offload`) and a host socket, checked with SHA-256.
fn tcp_both_ways(offload: &str) {
    use std::io::{Read, Write};

    let json = format!(
        r#"{{"interfaces":[{{"type":"tap","param":"tap0","ip":"192.168.113.2","masklen":"24","offload":"{offload}"}}]}}"#
    );
    let config = Config::parse_str(&json).expect("config");
    let (kernel, device) = boot_with_net(&config, 128 << 20, Some([2, 0, 0, 0, 1, 0x13]));

    let listener = std::net::TcpListener::bind((HOST4, 0)).expect("host listener");
    let port = listener.local_addr().unwrap().port();
    let up = pattern(TRANSFER, 0x1234_5678);
    let down = pattern(TRANSFER, 0x9abc_def0);
    let (up_hash, down_hash) = (sha256(&up), sha256(&down));

    let host = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let mut got = Vec::with_capacity(TRANSFER);
        let mut buf = vec![0u8; 256 << 10];
        while got.len() < TRANSFER {
            let n = s.read(&mut buf).expect("host read");
            assert!(n > 0, "kernel closed early at {}", got.len());
            got.extend_from_slice(&buf[..n]);
        }
        s.write_all(&down).expect("host write");
        s.shutdown(std::net::Shutdown::Write).unwrap();
        sha256(&got)
    });

    let t0 = Instant::now();
    let fd = sys::socket(abi::AF_INET, abi::SOCK_STREAM, 0).expect("kernel socket");
    sys::connect_in(fd, &abi::SockAddrIn::new(HOST4, port)).expect("connect to host");
    let mut off = 0;
    while off < up.len() {
        off += sys::write(fd, &up[off..(off + (1 << 20)).min(up.len())]).expect("kernel write");
    }
    let sent = t0.elapsed();
    let mut got = Vec::with_capacity(TRANSFER);
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = sys::read(fd, &mut buf).expect("kernel read");
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    let total = t0.elapsed();
    assert_eq!(
        host.join().expect("host side"),
        up_hash,
        "kernel -> host data differs"
    );
    assert_eq!(got.len(), TRANSFER);
    assert_eq!(sha256(&got), down_hash, "host -> kernel data differs");
    println!(
        "offload {offload}: 100 MB up in {:.0} ms, then 100 MB down in {:.0} ms",
        sent.as_secs_f64() * 1e3,
        (total - sent).as_secs_f64() * 1e3
    );
    let _ = sys::close(fd);
    kernel.halt().expect("halt");
    drop(device);
}

fn tap_setup(ns: &testkit::netns::Netns) -> Result<(), String> {
    ns.add_tap("tap0", true, &["192.168.113.1/24"])
}

#[testkit::needs(root, tun, kernel_net)]
#[test]
fn tap_tcp_100mb_each_way_no_offload() {
    in_netns(
        "tap_tcp_100mb_each_way_no_offload",
        "tcp0",
        tap_setup,
        || tcp_both_ways("0"),
    );
}

#[testkit::needs(root, tun, kernel_net)]
#[test]
fn tap_tcp_100mb_each_way_offload_0x883() {
    in_netns(
        "tap_tcp_100mb_each_way_offload_0x883",
        "tcp883",
        tap_setup,
        || tcp_both_ways("0x883"),
    );
}

#[testkit::needs(root, tun, kernel_net)]
#[test]
fn tap_tcp_100mb_each_way_offload_0x8803() {
    in_netns(
        "tap_tcp_100mb_each_way_offload_0x8803",
        "tcp8803",
        tap_setup,
        || tcp_both_ways("0x8803"),
    );
}
