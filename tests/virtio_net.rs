//! virtio-net end to end with a booted kernel: frames cross between the
//! kernel's eth interfaces and a socket pair the test holds, both for a
//! device given at boot and for one hot-added later.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use lkl::syscall::{self as sys, abi};
use lkl::virtio::{Net, SocketPairBackend};
use testkit::{boot, in_child};

const MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
const PEER_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0xfe];

fn recv_frame(fd: &OwnedFd, timeout: Duration) -> Option<Vec<u8>> {
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; 2048];
    while Instant::now() < deadline {
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd on the stack.
        if unsafe { libc::poll(&mut pfd, 1, 50) } > 0 {
            // SAFETY: reads into a buffer we own.
            let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n > 0 {
                return Some(buf[..n as usize].to_vec());
            }
        }
    }
    None
}

fn send_frame(fd: &OwnedFd, frame: &[u8]) {
    // SAFETY: sends from a buffer we own.
    let n = unsafe { libc::send(fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
    assert_eq!(n as usize, frame.len());
}

fn arp_request(target: Ipv4Addr, sender: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&PEER_MAC);
    f.extend_from_slice(&[0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01]);
    f.extend_from_slice(&PEER_MAC);
    f.extend_from_slice(&sender.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target.octets());
    f.resize(60, 0);
    f
}

/// Brings `ifname` up with `addr`/24, then checks both directions.
fn exercise(ifname: &str, peer: &OwnedFd, addr: Ipv4Addr) {
    sys::if_set_up(ifname, true).unwrap_or_else(|e| panic!("{ifname} up: {e}"));
    sys::if_set_ipv4(ifname, addr, 24).unwrap();

    // Kernel -> wire: a UDP broadcast.
    let o = addr.octets();
    let bcast = Ipv4Addr::new(o[0], o[1], o[2], 255);
    let s = sys::socket(abi::AF_INET, abi::SOCK_DGRAM, 0).unwrap();
    sys::setsockopt_int(s, abi::SOL_SOCKET, abi::SO_BROADCAST, 1).unwrap();
    sys::sendto_in(s, b"hello wire", 0, &abi::SockAddrIn::new(bcast, 9)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = false;
    while !seen && Instant::now() < deadline {
        let Some(f) = recv_frame(peer, Duration::from_secs(1)) else {
            continue;
        };
        // Ethernet IPv4 UDP to port 9 carrying our payload (IPv6 noise is skipped).
        seen =
            f.len() > 42 && f[12..14] == [0x08, 0x00] && f[23] == 17 && f.ends_with(b"hello wire");
    }
    assert!(seen, "{ifname}: the UDP broadcast never reached the wire");
    sys::close(s).unwrap();

    // Wire -> kernel: an ARP request for its address gets a reply.
    send_frame(
        peer,
        &arp_request(addr, Ipv4Addr::new(o[0], o[1], o[2], 254)),
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut replied = false;
    while !replied && Instant::now() < deadline {
        let Some(f) = recv_frame(peer, Duration::from_secs(1)) else {
            continue;
        };
        replied =
            f.len() >= 42 && f[12..14] == [0x08, 0x06] && f[20..22] == [0, 2] && f[28..32] == o;
    }
    assert!(replied, "{ifname}: no ARP reply");
}

#[testkit::needs(kernel_net)]
#[test]
fn frames_cross_boot_time_and_hot_added_devices() {
    in_child(
        "frames_cross_boot_time_and_hot_added_devices",
        Duration::from_secs(60),
        || {
            let (backend, peer) = SocketPairBackend::pair(false).unwrap();
            let net = Net::new(Box::new(backend), 0, Some(MAC)).unwrap();
            let dev0 = lkl::devices::attach(Box::new(net)).unwrap();

            let (kernel, console) = boot(64 << 20);
            assert!(testkit::kernel_has_net(), "the kernel has no networking");
            assert!(
                sys::if_flags("eth0").is_ok(),
                "no eth0:\n{}",
                console.contents()
            );
            exercise("eth0", &peer, Ipv4Addr::new(10, 9, 0, 1));

            let (backend, peer1) = SocketPairBackend::pair(false).unwrap();
            let mut mac = MAC;
            mac[5] = 2;
            let net = Net::new(Box::new(backend), 0, Some(mac)).unwrap();
            let dev1 = lkl::devices::attach(Box::new(net)).unwrap();
            assert!(dev1.platform_id().is_some());
            exercise("eth1", &peer1, Ipv4Addr::new(10, 9, 1, 1));

            kernel.halt().unwrap();
            drop((dev0, dev1));
        },
    );
}
