//! net-test: LKL's network smoke test (its `tools/lkl/tests/net-test`). Boots the
//! kernel with one virtio-net interface on a host backend, configures it
//! through `lkl::netcfg`, sends ICMP echo requests to `--dst` from a raw
//! socket inside the kernel and reports the replies and round-trip times.
//! Exit status: 0 if at least one reply arrived, 1 if none (or setup
//! failed), 2 for a usage error.
//!
//! Usage:
//!   net-test --backend tap|macvtap|raw|pipe|vde|fd|socketpair-test
//!            [--ifname NAME] --ip A.B.C.D --netmask-len N [--gateway G]
//!            --dst D [--count N] [--timeout-ms MS] [--sleep SECS]
//!            [--mac aa:bb:cc:dd:ee:ff] [--mtu N] [--mem SIZE] [--console]
//!            [--peer answer|silent] [--serve SECS]
//!
//! `--ifname` is the backend's host-side parameter, as in LKL's config:
//! the tap's name, the macvtap's `/dev/tapN`, the NIC for `raw`,
//! `rx_path|tx_path` for `pipe`, the switch directory for `vde`, the
//! descriptor number for `fd`.
//!
//! `--serve SECS` keeps the kernel up for SECS seconds after the pings, so
//! that a peer (another net-test on the other end of a `pipe`, say) can
//! ping this one; the exit status still comes from our own pings.
//!
//! `socketpair-test` needs nothing from the host: the interface's wire is a
//! socket pair whose other end is a small peer in this process that
//! answers ARP for every address but ours and echo requests to any
//! destination (a host and its router at once). `--peer silent` makes it
//! answer nothing, to see the failure path. LKL's `--dhcp` and `loopback`
//! backend are not here (no DHCP client; `lo` needs no device).

#![forbid(unsafe_code)]

use std::io::{IoSlice, IoSliceMut};
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use lkl::config::{Backend, Config, DebugFlags, Interface, Ipv4Net, MacAddr, Offload};
use lkl::host::Console;
use lkl::netcfg;
use lkl::syscall::{self as sys, abi, Errno, SockAddr};
use lkl::virtio::hostio::{recv_vectored, send_vectored, Interest, PollSet};
use lkl::virtio::net::backends;
use lkl::virtio::{Net, NetBackend, SocketPairBackend};
use lkl::{BootOptions, Kernel};

/// LKL's net-test MAC.
const DEFAULT_MAC: [u8; 6] = [0x00, 0x01, 0x00, 0x00, 0x00, 0xab];
/// The socketpair-test peer's MAC.
const PEER_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0xfe];
/// Bytes of ICMP payload (as ping's default).
const PAYLOAD: usize = 56;

const USAGE: &str = "usage: net-test --backend tap|macvtap|raw|pipe|vde|fd|socketpair-test \
[--ifname NAME] --ip A.B.C.D --netmask-len N [--gateway G] --dst D [--count N] \
[--timeout-ms MS] [--sleep SECS] [--mac MAC] [--mtu N] [--mem SIZE] [--console] \
[--peer answer|silent] [--serve SECS]";

#[derive(Debug)]
struct Args {
    backend: String,
    ifname: Option<String>,
    ip: Ipv4Addr,
    prefix: u8,
    gateway: Option<Ipv4Addr>,
    dst: Ipv4Addr,
    count: u32,
    timeout: Duration,
    sleep: Duration,
    serve: Duration,
    mac: MacAddr,
    mtu: Option<u32>,
    mem: u64,
    console: bool,
    peer_answers: bool,
}

fn usage(msg: &str) -> ! {
    eprintln!("net-test: {msg}\n{USAGE}");
    std::process::exit(2);
}

fn parse_size(s: &str) -> Option<u64> {
    let (num, mult) = match s.as_bytes().last()? {
        b'K' | b'k' => (&s[..s.len() - 1], 1 << 10),
        b'M' | b'm' => (&s[..s.len() - 1], 1 << 20),
        b'G' | b'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

fn parse_args() -> Args {
    let mut it = std::env::args().skip(1);
    let mut backend = None;
    let mut ifname = None;
    let mut ip = None;
    let mut prefix = None;
    let mut gateway = None;
    let mut dst = None;
    let mut count = 10u32;
    let mut timeout = Duration::from_secs(1);
    let mut sleep = Duration::ZERO;
    let mut serve = Duration::ZERO;
    let mut mac = MacAddr(DEFAULT_MAC);
    let mut mtu = None;
    let mut mem = 64u64 << 20;
    let mut console = false;
    let mut peer_answers = true;
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .unwrap_or_else(|| usage(&format!("{name} needs a value")))
        };
        fn parsed<T: std::str::FromStr>(name: &str, v: &str) -> T {
            v.parse()
                .unwrap_or_else(|_| usage(&format!("bad value {v:?} for {name}")))
        }
        match arg.as_str() {
            "--backend" => backend = Some(value("--backend")),
            "--ifname" => ifname = Some(value("--ifname")),
            "--ip" => ip = Some(parsed::<Ipv4Addr>("--ip", &value("--ip"))),
            "--netmask-len" => {
                let n: u8 = parsed("--netmask-len", &value("--netmask-len"));
                if n > 32 {
                    usage("--netmask-len must be 0..32");
                }
                prefix = Some(n);
            }
            "--gateway" => gateway = Some(parsed("--gateway", &value("--gateway"))),
            "--dst" => dst = Some(parsed("--dst", &value("--dst"))),
            "--count" => count = parsed("--count", &value("--count")),
            "--timeout-ms" => {
                timeout = Duration::from_millis(parsed("--timeout-ms", &value("--timeout-ms")))
            }
            "--sleep" => sleep = Duration::from_secs(parsed("--sleep", &value("--sleep"))),
            "--serve" => serve = Duration::from_secs(parsed("--serve", &value("--serve"))),
            "--mac" => {
                let v = value("--mac");
                mac = MacAddr::parse(&v).unwrap_or_else(|e| usage(&format!("--mac {v}: {e}")));
            }
            "--mtu" => mtu = Some(parsed("--mtu", &value("--mtu"))),
            "--mem" => {
                let v = value("--mem");
                mem = parse_size(&v).unwrap_or_else(|| usage(&format!("bad size {v:?}")));
            }
            "--console" => console = true,
            "--peer" => {
                peer_answers = match value("--peer").as_str() {
                    "answer" => true,
                    "silent" => false,
                    other => usage(&format!("--peer {other}: answer or silent")),
                }
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => usage(&format!("unknown argument {other:?}")),
        }
    }
    Args {
        backend: backend.unwrap_or_else(|| usage("--backend is required")),
        ifname,
        ip: ip.unwrap_or_else(|| usage("--ip is required")),
        prefix: prefix.unwrap_or_else(|| usage("--netmask-len is required")),
        gateway,
        dst: dst.unwrap_or_else(|| usage("--dst is required")),
        count,
        timeout,
        sleep,
        serve,
        mac,
        mtu,
        mem,
        console,
        peer_answers,
    }
}

/// The config's [`Backend`] for a host backend and its `--ifname`.
fn host_backend(kind: &str, param: Option<&str>) -> Result<Backend, String> {
    let param = param.ok_or_else(|| format!("--backend {kind} needs --ifname"))?;
    Ok(match kind {
        "tap" => Backend::Tap {
            ifname: param.into(),
        },
        "raw" => Backend::Raw {
            ifname: param.into(),
        },
        "macvtap" => Backend::Macvtap {
            path: PathBuf::from(param),
        },
        "vde" => Backend::Vde {
            path: PathBuf::from(param),
        },
        "pipe" => match param.split_once('|') {
            Some((rx, tx)) if !rx.is_empty() && !tx.is_empty() => Backend::Pipe {
                rx: PathBuf::from(rx),
                tx: PathBuf::from(tx),
            },
            _ => {
                return Err(format!(
                    "--ifname {param:?}: pipe needs \"rx_path|tx_path\""
                ))
            }
        },
        "fd" => Backend::Fd {
            fd: param
                .parse()
                .map_err(|_| format!("--ifname {param:?}: fd needs a descriptor number"))?,
        },
        other => return Err(format!("unknown backend {other:?}")),
    })
}

// ---- the socketpair-test peer ---------------------------------------------

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .fold(0u32, |a, b| a.wrapping_add(b));
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The peer's answer to one frame from the kernel, if any: an ARP reply
/// for any address but `ours`, an echo reply to any echo request.
fn answer(frame: &[u8], ours: Ipv4Addr) -> Option<Vec<u8>> {
    if frame.len() < 14 {
        return None;
    }
    let src_mac = &frame[6..12];
    match frame[12..14] {
        // ARP request (Ethernet/IPv4).
        [0x08, 0x06] if frame.len() >= 42 && frame[20..22] == [0, 1] => {
            let sender_ip = &frame[28..32];
            let target_ip = &frame[38..42];
            if target_ip == ours.octets() || target_ip == sender_ip {
                return None; // ours, or a gratuitous announcement
            }
            let mut f = Vec::with_capacity(60);
            f.extend_from_slice(src_mac);
            f.extend_from_slice(&PEER_MAC);
            f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2]);
            f.extend_from_slice(&PEER_MAC);
            f.extend_from_slice(target_ip);
            f.extend_from_slice(src_mac);
            f.extend_from_slice(sender_ip);
            f.resize(60, 0);
            Some(f)
        }
        // IPv4 ICMP echo request.
        [0x08, 0x00] => {
            let ip = &frame[14..];
            if ip.len() < 20 || ip[0] >> 4 != 4 || ip[9] != 1 {
                return None;
            }
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            if ihl < 20 || total < ihl + 8 || total > ip.len() || ip[ihl] != 8 {
                return None;
            }
            let mut reply_ip = ip[..total].to_vec();
            reply_ip[12..16].copy_from_slice(&ip[16..20]);
            reply_ip[16..20].copy_from_slice(&ip[12..16]);
            reply_ip[8] = 64; // TTL
            reply_ip[10..12].copy_from_slice(&[0, 0]);
            let c = checksum(&reply_ip[..ihl]);
            reply_ip[10..12].copy_from_slice(&c.to_be_bytes());
            let icmp = &mut reply_ip[ihl..];
            icmp[0] = 0; // echo reply
            icmp[2..4].copy_from_slice(&[0, 0]);
            let c = checksum(icmp);
            icmp[2..4].copy_from_slice(&c.to_be_bytes());
            let mut f = Vec::with_capacity(14 + total);
            f.extend_from_slice(src_mac);
            f.extend_from_slice(&PEER_MAC);
            f.extend_from_slice(&[0x08, 0x00]);
            f.extend_from_slice(&reply_ip);
            Some(f)
        }
        _ => None,
    }
}

/// Serves the peer end of the wire until the process exits.
fn run_peer(fd: OwnedFd, ours: Ipv4Addr, answers: bool) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        let mut set = PollSet::new();
        loop {
            set.clear();
            set.add(fd.as_raw_fd(), 0, Interest::READ);
            match set.wait(Some(Duration::from_millis(100))) {
                Ok(0) => continue,
                Ok(_) => {}
                Err(_) => return,
            }
            let n = match recv_vectored(fd.as_fd(), &mut [IoSliceMut::new(&mut buf)]) {
                Ok((n, _)) if n > 0 => n,
                _ => return,
            };
            if !answers {
                continue;
            }
            if let Some(reply) = answer(&buf[..n], ours) {
                let _ = send_vectored(fd.as_fd(), &[IoSlice::new(&reply)]);
            }
        }
    });
}

// ---- ping -------------------------------------------------------------------

fn echo_request(id: u16, seq: u16) -> Vec<u8> {
    let mut p = vec![8, 0, 0, 0];
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend((0..PAYLOAD).map(|i| i as u8));
    let c = checksum(&p);
    p[2..4].copy_from_slice(&c.to_be_bytes());
    p
}

/// An echo reply `(seq, ttl, icmp length)` from `dst` with our `id` in a
/// datagram a raw socket returned (IP header included); None otherwise.
fn parse_reply(pkt: &[u8], dst: Ipv4Addr, id: u16) -> Option<(u16, u8, usize)> {
    if pkt.len() < 20 || pkt[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(pkt[0] & 0x0f) * 4;
    let icmp = pkt.get(ihl..)?;
    if ihl < 20 || icmp.len() < 8 || pkt[12..16] != dst.octets() {
        return None;
    }
    if icmp[0] != 0 || u16::from_be_bytes([icmp[4], icmp[5]]) != id {
        return None;
    }
    Some((u16::from_be_bytes([icmp[6], icmp[7]]), pkt[8], icmp.len()))
}

/// Waits up to `left` for a datagram on kernel socket `fd`.
fn wait_readable(fd: i32, left: Duration) -> Result<bool, Errno> {
    let mut pfd = [abi::PollFd {
        fd,
        events: abi::POLLIN,
        revents: 0,
    }];
    let ts = abi::Timespec {
        tv_sec: left.as_secs() as i64,
        tv_nsec: i64::from(left.subsec_nanos()),
    };
    match sys::ppoll(&mut pfd, Some(ts)) {
        Ok(n) => Ok(n > 0),
        Err(Errno::EINTR) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Pings; returns the round-trip times of the replies.
fn ping(args: &Args) -> Result<(u32, Vec<Duration>), String> {
    let fd = sys::socket(
        abi::AF_INET,
        abi::SOCK_RAW | abi::SOCK_CLOEXEC,
        sys::IPPROTO_ICMP,
    )
    .map_err(|e| format!("raw ICMP socket: {e}"))?;
    let id = (std::process::id() & 0xffff) as u16;
    let to = SockAddr::v4(args.dst, 0);
    let mut rtts = Vec::new();
    let mut sent = 0;
    let mut buf = vec![0u8; 65536];
    println!("PING {}: {PAYLOAD} data bytes", args.dst);
    for seq in 1..=args.count {
        let seq = (seq & 0xffff) as u16;
        let start = Instant::now();
        match sys::sendto(fd, &echo_request(id, seq), 0, &to) {
            Ok(_) => sent += 1,
            Err(e) => {
                println!("icmp_seq={seq}: send: {e}");
                continue;
            }
        }
        let deadline = start + args.timeout;
        let mut got = false;
        while !got {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !wait_readable(fd, left).map_err(|e| format!("ppoll: {e}"))? {
                break;
            }
            let (n, _) = match sys::recvfrom(fd, &mut buf, sys::MSG_DONTWAIT) {
                Ok(r) => r,
                Err(Errno::EAGAIN) | Err(Errno::EINTR) => continue,
                Err(e) => return Err(format!("recvfrom: {e}")),
            };
            let Some((rseq, ttl, len)) = parse_reply(&buf[..n.min(buf.len())], args.dst, id) else {
                continue;
            };
            if rseq != seq {
                continue; // a late reply to an earlier request
            }
            let rtt = start.elapsed();
            println!(
                "{len} bytes from {}: icmp_seq={seq} ttl={ttl} time={:.3} ms",
                args.dst,
                rtt.as_secs_f64() * 1e3
            );
            rtts.push(rtt);
            got = true;
        }
        if !got {
            println!("icmp_seq={seq}: no reply within {:?}", args.timeout);
        }
    }
    let _ = sys::close(fd);
    Ok((sent, rtts))
}

fn main() -> ExitCode {
    let args = parse_args();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("net-test: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(args: &Args) -> Result<bool, String> {
    let net = Ipv4Net::new(args.ip, args.prefix).ok_or("bad --netmask-len")?;
    if let Some(gw) = args.gateway {
        if !net.contains(gw) {
            return Err(format!("--gateway {gw} is not in {net}"));
        }
    }

    // The device, before boot (LKL adds it before lkl_start_kernel too).
    let (backend, config_backend): (Box<dyn NetBackend>, Backend) = if args.backend
        == "socketpair-test"
    {
        let (b, peer) = SocketPairBackend::pair(false).map_err(|e| format!("socketpair: {e}"))?;
        let fd = b.as_raw_fd();
        run_peer(peer, args.ip, args.peer_answers);
        (Box::new(b), Backend::Fd { fd })
    } else {
        let cb = host_backend(&args.backend, args.ifname.as_deref())?;
        let b = backends::open_backend(&cb, false).map_err(|e| e.to_string())?;
        (b, cb)
    };
    let net_dev = Net::new(backend, 0, Some(args.mac.0)).map_err(|e| e.to_string())?;
    let device = lkl::devices::attach(Box::new(net_dev)).map_err(|e| e.to_string())?;

    let opts = BootOptions {
        memory: args.mem,
        console: if args.console {
            Console::Stderr
        } else {
            Console::Silent
        },
        loglevel: args.console.then_some(8),
        ..Default::default()
    };
    let kernel = Kernel::boot(opts).map_err(|e| format!("boot: {e}"))?;
    let result = configure_and_ping(args, net, config_backend);
    let _ = kernel.halt();
    drop(device);
    result
}

fn configure_and_ping(args: &Args, net: Ipv4Net, backend: Backend) -> Result<bool, String> {
    if sys::socket(abi::AF_INET, abi::SOCK_DGRAM, 0)
        .map(sys::close)
        .is_err()
    {
        println!("skipped: this kernel config has no networking");
        return Ok(false);
    }
    let config = Config {
        interfaces: vec![Interface {
            name: "eth0".into(),
            backend,
            mtu: args.mtu,
            ipv4: Some(net),
            ifgateway: None,
            ipv6: None,
            ifgateway6: None,
            mac: Some(args.mac),
            neighbors: Vec::new(),
            qdiscs: Vec::new(),
            offload: Offload::default(),
            dad: false,
        }],
        gateway: args.gateway,
        debug: DebugFlags(u32::from(args.console)),
        ..Default::default()
    };
    // The first (only) virtio-net device is eth0.
    netcfg::apply(&config, &[(0, "eth0".into())]).map_err(|e| e.to_string())?;
    println!(
        "eth0: {net}{}",
        args.gateway
            .map(|g| format!(", default via {g}"))
            .unwrap_or_default()
    );
    if !args.sleep.is_zero() {
        std::thread::sleep(args.sleep);
    }
    let (sent, rtts) = ping(args)?;
    println!("--- {} statistics ---", args.dst);
    let loss = if sent == 0 {
        100.0
    } else {
        100.0 * f64::from(sent - rtts.len() as u32) / f64::from(sent)
    };
    println!(
        "{sent} packets transmitted, {} received, {loss:.0}% packet loss",
        rtts.len()
    );
    if !rtts.is_empty() {
        let ms = |d: &Duration| d.as_secs_f64() * 1e3;
        let min = rtts.iter().map(ms).fold(f64::INFINITY, f64::min);
        let max = rtts.iter().map(ms).fold(0.0, f64::max);
        let avg = rtts.iter().map(ms).sum::<f64>() / rtts.len() as f64;
        println!("rtt min/avg/max = {min:.3}/{avg:.3}/{max:.3} ms");
    }
    if !args.serve.is_zero() {
        println!("serving for {} s", args.serve.as_secs());
        std::thread::sleep(args.serve);
    }
    Ok(!rtts.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_answers_echo_and_arp() {
        let ours = Ipv4Addr::new(10, 0, 0, 2);
        // An echo request frame from "the kernel" to 192.0.2.7.
        let icmp = echo_request(7, 1);
        let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 1, 0, 0];
        ip.extend_from_slice(&ours.octets());
        ip.extend_from_slice(&[192, 0, 2, 7]);
        let total = (20 + icmp.len()) as u16;
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        let c = checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        ip.extend_from_slice(&icmp);
        let mut f = PEER_MAC.to_vec();
        f.extend_from_slice(&DEFAULT_MAC);
        f.extend_from_slice(&[0x08, 0x00]);
        f.extend_from_slice(&ip);
        let r = answer(&f, ours).unwrap();
        assert_eq!(&r[0..6], &DEFAULT_MAC);
        assert_eq!(checksum(&r[14..34]), 0, "IP checksum");
        assert_eq!(checksum(&r[34..]), 0, "ICMP checksum");
        assert_eq!(
            parse_reply(&r[14..], Ipv4Addr::new(192, 0, 2, 7), 7),
            Some((1, 64, 64))
        );
        assert_eq!(parse_reply(&r[14..], Ipv4Addr::new(192, 0, 2, 8), 7), None);
        assert_eq!(parse_reply(&r[14..17], ours, 7), None);

        // ARP for the gateway is answered; for our own address it is not.
        let arp = |target: Ipv4Addr| {
            let mut f = vec![0xff; 6];
            f.extend_from_slice(&DEFAULT_MAC);
            f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
            f.extend_from_slice(&DEFAULT_MAC);
            f.extend_from_slice(&ours.octets());
            f.extend_from_slice(&[0; 6]);
            f.extend_from_slice(&target.octets());
            f
        };
        let r = answer(&arp(Ipv4Addr::new(10, 0, 0, 1)), ours).unwrap();
        assert_eq!(&r[20..22], &[0, 2]);
        assert_eq!(&r[22..28], &PEER_MAC);
        assert_eq!(&r[28..32], &[10, 0, 0, 1]);
        assert!(answer(&arp(ours), ours).is_none());
        assert!(answer(&[0; 10], ours).is_none());
    }

    #[test]
    fn backends_from_arguments() {
        assert_eq!(
            host_backend("pipe", Some("a|b")).unwrap(),
            Backend::Pipe {
                rx: "a".into(),
                tx: "b".into()
            }
        );
        assert!(host_backend("pipe", Some("a")).is_err());
        assert!(host_backend("tap", None).is_err());
        assert_eq!(
            host_backend("fd", Some("3")).unwrap(),
            Backend::Fd { fd: 3 }
        );
        assert!(host_backend("slirp", Some("x")).is_err());
    }
}
