//! The kernel on a tap device, inside a network namespace this test makes:
//! the host pings the kernel and the kernel pings the host, 65 times at
//! 10 ms intervals, over IPv4 and IPv6; the config (LKL's JSON keys) is
//! applied over rtnetlink.

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::Command;
use std::time::{Duration, Instant};

use common::netns::{in_netns, Setup};
use lkl::config::Config;
use lkl::syscall::{self as sys, abi};
use lkl::virtio::net::backends::open_backend;
use lkl::virtio::Net;
use lkl::{BootOptions, Kernel};

const HOST4: Ipv4Addr = Ipv4Addr::new(192, 168, 113, 1);
const LKL4: Ipv4Addr = Ipv4Addr::new(192, 168, 113, 2);
const HOST6: &str = "fc00:113::1";
const LKL6: &str = "fc00:113::2";

fn checksum(data: &[u8]) -> u16 {
    let mut sum = 0u32;
    for chunk in data.chunks(2) {
        let word = if chunk.len() == 2 {
            u16::from_be_bytes([chunk[0], chunk[1]])
        } else {
            u16::from(chunk[0]) << 8
        };
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Sends `count` echo requests from the kernel at `interval`; returns the
/// number of replies.
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
    let mut replies = 0;
    let mut buf = [0u8; 1500];
    for seq in 0..count {
        let mut pkt = vec![kind_req, 0, 0, 0, 0x4c, 0x4b, (seq >> 8) as u8, seq as u8];
        pkt.extend_from_slice(b"lkl-ping-payload");
        if family == abi::AF_INET {
            let c = checksum(&pkt);
            pkt[2..4].copy_from_slice(&c.to_be_bytes());
        }
        sys::sendto(fd, &pkt, 0, &to).expect("send echo request");
        let deadline = Instant::now() + interval;
        loop {
            match sys::recv(fd, &mut buf, 0) {
                Ok(n) => {
                    // IPv4 raw sockets deliver the IP header; ICMPv6 ones do not.
                    let icmp = if family == abi::AF_INET {
                        &buf[((buf[0] & 0xf) as usize * 4).min(n)..n]
                    } else {
                        &buf[..n]
                    };
                    if icmp.len() >= 8
                        && icmp[0] == kind_rep
                        && icmp[4..6] == [0x4c, 0x4b]
                        && icmp[6..8] == [(seq >> 8) as u8, seq as u8]
                    {
                        replies += 1;
                    }
                }
                Err(lkl::Errno::EAGAIN) => {
                    if Instant::now() >= deadline {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => panic!("recv: {e}"),
            }
        }
    }
    let _ = sys::close(fd);
    replies
}

fn host_ping(args: &[&str]) -> String {
    let out = Command::new("ping")
        .args(args)
        .output()
        .expect("ping (apt-get install iputils-ping)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn tap_ping_both_ways_v4_and_v6() {
    in_netns(
        "tap_ping_both_ways_v4_and_v6",
        "tapping",
        |ns| {
            if !std::path::Path::new("/dev/net/tun").exists() {
                return Err(Setup::Skip("no /dev/net/tun".into()));
            }
            ns.ip(&["link", "set", "lo", "up"])?;
            ns.ip(&["tuntap", "add", "dev", "tap0", "mode", "tap"])?;
            ns.ip(&["addr", "add", "192.168.113.1/24", "dev", "tap0"])?;
            ns.ip(&[
                "-6",
                "addr",
                "add",
                "fc00:113::1/64",
                "dev",
                "tap0",
                "nodad",
            ])?;
            ns.ip(&["link", "set", "tap0", "up"])?;
            Ok(())
        },
        || {
            let config = Config::parse_str(
                r#"{"interfaces":[{"type":"tap","param":"tap0","ip":"192.168.113.2","masklen":"24",
                    "ipv6":"fc00:113::2","masklen6":"64","mac":"02:00:00:00:01:13"}]}"#,
            )
            .expect("config");
            let iface = &config.interfaces[0];
            let backend = open_backend(&iface.backend, false).expect("tap backend");
            let net = Net::new(
                backend,
                0,
                Some(iface.mac.map(|m| m.0).unwrap_or([2, 0, 0, 0, 1, 0x13])),
            )
            .expect("net device");
            let device = lkl::devices::attach(Box::new(net)).expect("attach");
            let kernel = Kernel::boot(BootOptions {
                memory: 64 << 20,
                ..Default::default()
            })
            .expect("boot");
            lkl::netcfg::apply(&config, &[(0, "eth0".to_string())]).expect("apply config");

            // Host -> kernel.
            let v4 = host_ping(&["-c", "65", "-i", "0.01", "-W", "1", &LKL4.to_string()]);
            assert!(
                v4.contains("65 packets transmitted, 65 received"),
                "host ping v4:\n{v4}"
            );
            let v6 = host_ping(&["-6", "-c", "65", "-i", "0.01", "-W", "1", LKL6]);
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
