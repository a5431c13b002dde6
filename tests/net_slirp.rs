//! The kernel on a `slirp` interface (libslirp user-mode networking: no
//! root, no tap, no namespace), configured from LKL-style JSON. Everything
//! it reaches is a service this test runs on the host's loopback, through
//! the gateway address 10.0.2.2 (fec0::2 for IPv6), which slirp maps to
//! 127.0.0.1 (::1):
//!
//! - TCP: 1 MB echoed and compared, both ends' view of the addresses, a
//!   refused connection to a closed port, then 32 MB each way with
//!   throughput figures;
//! - UDP: datagrams from 1 byte to 16000 (IP fragments both ways) echoed;
//! - IPv6: a TCP echo over fec0::/64 to the host's ::1.
//!
//! Needs libslirp0 and ::1 on the host (`#[testkit::needs]`).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, TcpListener, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use lkl::config::Config;
use lkl::syscall::{self as sys, abi};
use lkl::virtio::net::backends::slirp;
use testkit::wire::pattern;
use testkit::{boot_with_net, in_child};

/// The gateway, which slirp maps to the host's 127.0.0.1.
const HOST4: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
/// Its IPv6 counterpart (to the host's ::1).
const HOST6: Ipv6Addr = Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 2);
const GUEST4: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);

/// No `gateway6`: fec0::2 is on-link, and slirp's router advertisements
/// give the kernel its IPv6 default route, which a configured one would
/// race (`EEXIST`).
const CONFIG: &str = r#"{
    "gateway": "10.0.2.2",
    "interfaces": [{"type": "slirp", "ip": "10.0.2.15", "masklen": "24",
                    "ipv6": "fec0::15", "masklen6": "64",
                    "mac": "52:54:00:12:34:56"}]
}"#;

/// A host TCP server that echoes its first connection; returns the peer
/// address it saw and the byte count.
fn host_echo(listener: TcpListener) -> thread::JoinHandle<(std::net::SocketAddr, usize)> {
    thread::spawn(move || {
        let (mut s, peer) = listener.accept().expect("accept");
        let mut buf = vec![0u8; 64 << 10];
        let mut total = 0;
        loop {
            let n = s.read(&mut buf).expect("host read");
            if n == 0 {
                break;
            }
            s.write_all(&buf[..n]).expect("host write");
            total += n;
        }
        (peer, total)
    })
}

/// Writes all of `data` to kernel socket `fd`.
fn kernel_write_all(fd: i32, data: &[u8]) {
    let mut off = 0;
    while off < data.len() {
        let end = (off + (256 << 10)).min(data.len());
        off += sys::write(fd, &data[off..end]).expect("kernel write");
    }
}

/// Reads from kernel socket `fd` until end of stream.
fn kernel_read_to_end(fd: i32, expect: usize) -> Vec<u8> {
    let mut got = Vec::with_capacity(expect);
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = sys::read(fd, &mut buf).expect("kernel read");
        if n == 0 {
            return got;
        }
        got.extend_from_slice(&buf[..n]);
    }
}

/// Sends `data` through an echo server on kernel socket `fd` (a writer
/// thread, so neither direction waits for the other) and returns what came
/// back.
fn kernel_echo(fd: i32, data: &[u8]) -> Vec<u8> {
    let out = data.to_vec();
    let writer = thread::spawn(move || {
        kernel_write_all(fd, &out);
        sys::shutdown(fd, abi::SHUT_WR).expect("shutdown");
    });
    let got = kernel_read_to_end(fd, data.len());
    writer.join().expect("kernel writer");
    got
}

fn mbit_s(bytes: usize, d: Duration) -> f64 {
    bytes as f64 * 8.0 / d.as_secs_f64() / 1e6
}

/// Waits up to 5 s for kernel fd `fd` to be readable.
fn kernel_wait_readable(fd: i32) -> bool {
    let mut fds = [abi::PollFd {
        fd,
        events: abi::POLLIN,
        revents: 0,
    }];
    let t = abi::Timespec {
        tv_sec: 5,
        tv_nsec: 0,
    };
    matches!(sys::ppoll(&mut fds, Some(t)), Ok(1))
}

fn tcp(kernel_dst: Ipv4Addr) {
    // 1 MB echoed.
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("host listener");
    let port = listener.local_addr().unwrap().port();
    let server = host_echo(listener);
    let fd = sys::socket(abi::AF_INET, abi::SOCK_STREAM, 0).expect("kernel socket");
    let t0 = Instant::now();
    sys::connect_in(fd, &abi::SockAddrIn::new(kernel_dst, port)).expect("connect to 10.0.2.2");
    let local = sys::getsockname_in(fd).expect("getsockname");
    assert_eq!(
        Ipv4Addr::from(u32::from_be(local.sin_addr)),
        GUEST4,
        "the kernel's own address"
    );
    let data = pattern(1 << 20, 0x5eed);
    let back = kernel_echo(fd, &data);
    let elapsed = t0.elapsed();
    assert!(
        back == data,
        "echo differs ({} of {} bytes back)",
        back.len(),
        data.len()
    );
    sys::close(fd).unwrap();
    let (peer, total) = server.join().expect("host echo");
    assert_eq!(total, data.len());
    assert!(
        peer.ip().is_loopback(),
        "slirp connects from the host's loopback: {peer}"
    );
    println!("tcp: 1 MB echoed via {kernel_dst}:{port} -> 127.0.0.1 in {elapsed:?}");

    // A closed port is refused, not a hang.
    let closed = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let fd = sys::socket(abi::AF_INET, abi::SOCK_STREAM, 0).unwrap();
    let t0 = Instant::now();
    let e = sys::connect_in(fd, &abi::SockAddrIn::new(kernel_dst, closed_port)).unwrap_err();
    assert_eq!(e, lkl::Errno::ECONNREFUSED, "connect to a closed port");
    assert!(t0.elapsed() < Duration::from_secs(5));
    sys::close(fd).unwrap();
    println!("tcp: closed port refused in {:?}", t0.elapsed());

    // Throughput, each way.
    const BULK: usize = 32 << 20;
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let down = pattern(BULK, 0xd0);
    let up_len = BULK;
    let host = {
        let down = down.clone();
        thread::spawn(move || {
            // First connection: the host sends; second: the host receives.
            let (mut s, _) = listener.accept().expect("accept down");
            s.write_all(&down).expect("host send");
            s.shutdown(Shutdown::Write).unwrap();
            let (mut s, _) = listener.accept().expect("accept up");
            let mut got = Vec::with_capacity(up_len);
            s.read_to_end(&mut got).expect("host receive");
            got
        })
    };
    let fd = sys::socket(abi::AF_INET, abi::SOCK_STREAM, 0).unwrap();
    sys::connect_in(fd, &abi::SockAddrIn::new(kernel_dst, port)).expect("connect down");
    let t0 = Instant::now();
    let got = kernel_read_to_end(fd, BULK);
    let t_down = t0.elapsed();
    sys::close(fd).unwrap();
    assert!(got == down, "download differs ({} bytes)", got.len());
    let up = pattern(BULK, 0x0f);
    let fd = sys::socket(abi::AF_INET, abi::SOCK_STREAM, 0).unwrap();
    sys::connect_in(fd, &abi::SockAddrIn::new(kernel_dst, port)).expect("connect up");
    let t0 = Instant::now();
    kernel_write_all(fd, &up);
    sys::close(fd).unwrap();
    let got = host.join().expect("host bulk");
    let t_up = t0.elapsed();
    assert!(got == up, "upload differs ({} bytes)", got.len());
    println!(
        "tcp: 32 MB host->kernel {:.0} Mbit/s, kernel->host {:.0} Mbit/s",
        mbit_s(BULK, t_down),
        mbit_s(BULK, t_up)
    );
}

fn udp(kernel_dst: Ipv4Addr) {
    let host = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("host UDP socket");
    host.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let port = host.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        let mut echoed = 0;
        loop {
            let (n, from) = host.recv_from(&mut buf).expect("host UDP receive");
            if &buf[..n] == b"quit" {
                return (echoed, from);
            }
            host.send_to(&buf[..n], from).expect("host UDP send");
            echoed += 1;
        }
    });
    let fd = sys::socket(abi::AF_INET, abi::SOCK_DGRAM, 0).expect("kernel UDP socket");
    // Connected: only datagrams from 10.0.2.2:port are received.
    sys::connect_in(fd, &abi::SockAddrIn::new(kernel_dst, port)).unwrap();
    let sizes = [1usize, 100, 512, 1472, 1473, 4000, 16000];
    let t0 = Instant::now();
    let mut buf = vec![0u8; 65536];
    for (i, &len) in sizes.iter().enumerate() {
        let msg = pattern(len, i as u64 + 1);
        assert_eq!(sys::send(fd, &msg, 0).expect("kernel UDP send"), len);
        assert!(
            kernel_wait_readable(fd),
            "no UDP echo of {len} bytes within 5 s"
        );
        let n = sys::recv(fd, &mut buf, 0).expect("kernel UDP receive");
        assert_eq!(n, len, "echo length");
        assert!(buf[..n] == msg[..], "echo of {len} bytes differs");
    }
    let elapsed = t0.elapsed();
    sys::send(fd, b"quit", 0).unwrap();
    let (echoed, from) = server.join().expect("host UDP echo");
    assert_eq!(echoed, sizes.len());
    assert!(from.ip().is_loopback(), "from the host's loopback: {from}");
    sys::close(fd).unwrap();
    println!(
        "udp: {} datagrams (1 to 16000 bytes) echoed via {kernel_dst}:{port} in {elapsed:?}",
        sizes.len()
    );
}

fn tcp6() {
    let listener = TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).expect("listen on [::1]");
    let port = listener.local_addr().unwrap().port();
    let server = host_echo(listener);
    let fd = sys::socket(abi::AF_INET6, abi::SOCK_STREAM, 0).expect("kernel socket");
    let to = sys::SockAddr::In6(sys::SockAddrIn6::new(HOST6, port));
    sys::connect(fd, &to).expect("connect to [fec0::2]");
    let data = pattern(256 << 10, 0x66);
    let back = kernel_echo(fd, &data);
    assert!(back == data, "IPv6 echo differs");
    sys::close(fd).unwrap();
    let (peer, _) = server.join().unwrap();
    assert!(peer.ip().is_loopback(), "{peer}");
    println!("tcp6: 256 KiB echoed via [{HOST6}]:{port} -> [::1]");
}

fn slirp_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|c| c.trim() == "lkl-slirp")
        .count()
}

#[testkit::needs(kernel_net, libslirp, ipv6_loopback)]
#[test]
fn slirp_reaches_host_loopback_tcp_udp_ipv6() {
    let version = slirp::probe().unwrap_or_else(|e| panic!("{e}"));
    println!("libslirp {version}");
    in_child(
        "slirp_reaches_host_loopback_tcp_udp_ipv6",
        Duration::from_secs(180),
        || {
            let config = Config::parse_str(CONFIG).expect("config");
            let (kernel, device) = boot_with_net(&config, 128 << 20, None);
            assert_eq!(slirp_threads(), 1, "the slirp thread runs");

            tcp(HOST4);
            udp(HOST4);
            tcp6();

            kernel.halt().expect("halt");
            drop(device);
            assert_eq!(slirp_threads(), 0, "the slirp thread is joined");
        },
    );
}
