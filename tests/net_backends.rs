//! The host network backends against the real host kernel.
//!
//! The tap, macvtap and raw tests need root (`CAP_NET_ADMIN`,
//! `CAP_NET_RAW`, `CAP_SYS_ADMIN` for namespaces). Each one makes a network
//! namespace of its own, `lkl-<pid>-<tag>` (with
//! `/etc/netns/<name>/resolv.conf` saying `nameserver 127.0.0.1`), creates
//! its devices there, and runs its body in that namespace by re-running
//! this test binary, filtered to the one test, under `ip netns exec` (with
//! `LKL_TEST_NETNS=<tag>`): nothing touches the host's own interfaces, and
//! every frame stays inside the namespace. The namespace is deleted when
//! the test ends, passed or failed. Each names what it needs
//! (`#[testkit::needs(root, tun)]`): where that is missing it is ignored,
//! and under `CI=true` it fails.
//!
//! The VDE test needs no privilege, only `vde_switch` (Debian's `vde2`).
//!
//! Frames use EtherType 0x88b5 (IEEE "local experimental") and carry a
//! marker, so the IPv6 chatter of a fresh interface is told apart.

use std::fs;
use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;

use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use lkl::config::Backend;
use lkl::virtio::net::backends::{open_backend, Cause, InheritedFd, Macvtap, RawSocket, Tap, Vde};
use lkl::virtio::net::{features, NetBackend, FRAME_BUF_LEN, VNET_HDR_LEN};
use testkit::netns::{in_netns, run, Netns, INNER_ENV};

/// Our EtherType.
const ETHERTYPE: u16 = 0x88b5;

// ------------------------------------------------------------ frames, I/O

fn mac_of(ifname: &str) -> [u8; 6] {
    let text = fs::read_to_string(format!("/sys/class/net/{ifname}/address")).unwrap();
    let mut mac = [0u8; 6];
    for (m, part) in mac.iter_mut().zip(text.trim().split(':')) {
        *m = u8::from_str_radix(part, 16).unwrap();
    }
    mac
}

/// An Ethernet frame of our EtherType carrying `marker`, padded to 60.
fn eth_frame(dst: [u8; 6], src: [u8; 6], marker: &str) -> Vec<u8> {
    let mut f = Vec::with_capacity(64);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ETHERTYPE.to_be_bytes());
    f.extend_from_slice(marker.as_bytes());
    f.resize(f.len().max(60), 0);
    f
}

fn is_ours(frame: &[u8], marker: &str) -> bool {
    frame.len() >= 14
        && frame[12..14] == ETHERTYPE.to_be_bytes()
        && frame[14..].starts_with(marker.as_bytes())
}

fn poll_in(fd: RawFd, timeout: Duration) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: `p` is one live pollfd for the call.
    let r = unsafe { libc::poll(&mut p, 1, ms) };
    r > 0
}

/// The first frame from `backend` (vnet header, if any, still in front)
/// whose Ethernet part satisfies `want`, within `within`.
fn backend_recv_until(
    b: &mut dyn NetBackend,
    within: Duration,
    want: impl Fn(&[u8]) -> bool,
) -> Option<Vec<u8>> {
    let hdr = if b.has_vnet_hdr() { VNET_HDR_LEN } else { 0 };
    let deadline = Instant::now() + within;
    let mut buf = vec![0u8; FRAME_BUF_LEN];
    loop {
        match b.recv(&mut [IoSliceMut::new(&mut buf)]) {
            Ok(n) if n >= hdr && want(&buf[hdr..n]) => return Some(buf[..n].to_vec()),
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return None;
                }
                poll_in(b.as_raw_fd(), left);
            }
            Err(e) => panic!("backend recv: {e}"),
        }
    }
}

fn backend_send(b: &mut dyn NetBackend, frame: &[u8]) {
    let hdr = [0u8; VNET_HDR_LEN];
    let mut parts = Vec::new();
    if b.has_vnet_hdr() {
        parts.push(IoSlice::new(&hdr));
    }
    parts.push(IoSlice::new(frame));
    let want = parts.iter().map(|p| p.len()).sum::<usize>();
    assert_eq!(b.send(&parts).expect("backend send"), want);
}

/// An `AF_PACKET` socket on one interface: the host's side of the wire.
struct PacketSock(OwnedFd);

impl PacketSock {
    fn open(ifname: &str) -> PacketSock {
        let name = std::ffi::CString::new(ifname).unwrap();
        // SAFETY: `name` is a live NUL-terminated string.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        assert_ne!(ifindex, 0, "no interface {ifname}");
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: socket takes no pointers.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                0,
            )
        };
        assert!(fd >= 0, "packet socket: {}", io::Error::last_os_error());
        // SAFETY: `fd` was just created and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sockaddr_ll is plain old data; all-zero is valid.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: `sll` is live and its size is passed.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        assert_eq!(r, 0, "bind: {}", io::Error::last_os_error());
        PacketSock(fd)
    }

    fn send(&self, frame: &[u8]) {
        // SAFETY: `frame` is live for the call; send only reads it.
        let n = unsafe { libc::send(self.0.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        assert_eq!(
            usize::try_from(n).ok(),
            Some(frame.len()),
            "packet send: {}",
            io::Error::last_os_error()
        );
    }

    fn recv_until(&self, within: Duration, want: impl Fn(&[u8]) -> bool) -> Option<Vec<u8>> {
        let deadline = Instant::now() + within;
        let mut buf = vec![0u8; 70000];
        loop {
            // SAFETY: `buf` is live and exclusively borrowed; recv writes at
            // most its length.
            let n = unsafe {
                libc::recv(
                    self.0.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            match usize::try_from(n) {
                Ok(n) if want(&buf[..n]) => return Some(buf[..n].to_vec()),
                Ok(_) => continue,
                Err(_) => {
                    let e = io::Error::last_os_error();
                    assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "packet recv: {e}");
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return None;
                    }
                    poll_in(self.0.as_raw_fd(), left);
                }
            }
        }
    }
}

const WAIT: Duration = Duration::from_secs(5);

/// Sends with `send` every 200 ms until `recv` (which waits up to 200 ms)
/// returns something, for up to [`WAIT`]. Resending covers a link that has
/// just come up: until linkwatch runs (up to a second later) the interface
/// keeps the `noop` qdisc, which drops what is sent out of it.
fn until_received<T>(mut send: impl FnMut(), mut recv: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        send();
        if let Some(got) = recv() {
            return Some(got);
        }
    }
    None
}

const RETRY: Duration = Duration::from_millis(200);

/// Frames both ways between a backend and a packet socket on the far side.
fn exchange(b: &mut dyn NetBackend, far: &PacketSock, b_mac: [u8; 6], far_mac: [u8; 6], tag: &str) {
    let marker = format!("lklbk-{tag}-out");
    let out = eth_frame(far_mac, b_mac, &marker);
    let b = std::cell::RefCell::new(b);
    let got = until_received(
        || backend_send(&mut **b.borrow_mut(), &out),
        || far.recv_until(RETRY, |f| is_ours(f, &marker)),
    )
    .unwrap_or_else(|| panic!("{tag}: the far side never saw our frame"));
    assert_eq!(got, out, "{tag}: frame changed on the way out");

    let marker = format!("lklbk-{tag}-in");
    let back = eth_frame(b_mac, far_mac, &marker);
    let got = until_received(
        || far.send(&back),
        || backend_recv_until(&mut **b.borrow_mut(), RETRY, |f| is_ours(f, &marker)),
    )
    .unwrap_or_else(|| panic!("{tag}: the backend never got the far side's frame"));
    let hdr = if b.borrow().has_vnet_hdr() {
        VNET_HDR_LEN
    } else {
        0
    };
    assert_eq!(&got[hdr..], &back[..], "{tag}: frame changed on the way in");
    if hdr > 0 {
        assert_eq!(got[1], 0, "{tag}: a 60-byte frame is not segmented");
    }
}

// ------------------------------------------------------------------- tap

#[testkit::needs(root, tun)]
#[test]
fn tap_attaches_and_exchanges_frames() {
    in_netns(
        "tap_attaches_and_exchanges_frames",
        "tap",
        |ns| ns.add_tap("lkt0", false, &[]),
        || {
            let far = PacketSock::open("lkt0");
            let host_mac = mac_of("lkt0");
            let our_mac = [0x02, 0, 0, 0, 0, 0x01];
            for vnet in [false, true] {
                let mut tap = Tap::open("lkt0", vnet).unwrap();
                assert!(!tap.created(), "lkt0 was made beforehand");
                assert_eq!(tap.ifname(), "lkt0");
                assert_eq!(tap.has_vnet_hdr(), vnet);
                let acked = features::GUEST_CSUM | features::GUEST_TSO4 | features::GUEST_TSO6;
                tap.set_offload(acked).expect("TUNSETOFFLOAD");
                exchange(
                    &mut tap,
                    &far,
                    our_mac,
                    host_mac,
                    &format!("tap-vnet{vnet}"),
                );
            }
            // The same through the config layer's entry point.
            let mut b = open_backend(
                &Backend::Tap {
                    ifname: "lkt0".into(),
                },
                true,
            )
            .unwrap();
            exchange(&mut *b, &far, our_mac, host_mac, "tap-open_backend");
            // A second reader of a single-queue tap is refused, and says so.
            let e = Tap::open("lkt0", false).unwrap_err();
            assert_eq!(
                e.to_string(),
                "tap lkt0: attach (TUNSETIFF): device or resource busy \
                 (another program has it open)"
            );
        },
    );
}

#[testkit::needs(root, tun)]
#[test]
fn tap_is_created_when_missing_and_goes_away_with_us() {
    in_netns(
        "tap_is_created_when_missing_and_goes_away_with_us",
        "tapnew",
        |_| Ok(()),
        || {
            let mut tap = Tap::open("lkt1", true).unwrap();
            assert!(tap.created());
            run(Command::new("ip").args(["link", "set", "lkt1", "up"])).unwrap();
            let far = PacketSock::open("lkt1");
            exchange(
                &mut tap,
                &far,
                [0x02, 0, 0, 0, 0, 0x02],
                mac_of("lkt1"),
                "tap-created",
            );
            drop(tap);
            assert!(
                run(Command::new("ip").args(["link", "show", "lkt1"])).is_err(),
                "a tap we created is not persistent"
            );
            // An interface of another kind under the name: not a tap.
            run(Command::new("ip").args([
                "link", "add", "lkd0", "type", "veth", "peer", "name", "lkd1",
            ]))
            .unwrap();
            let e = Tap::open("lkd0", false).unwrap_err();
            assert!(
                e.to_string()
                    .ends_with("(an interface with that name exists but is not a tap)"),
                "{e}"
            );
        },
    );
}

#[testkit::needs(root)]
#[test]
fn tap_without_privilege_says_why() {
    const TEST: &str = "tap_without_privilege_says_why";
    if std::env::var(INNER_ENV).as_deref() == Ok("tap-nobody") {
        // Here we run as nobody.
        let e = Tap::open("lkt9", false).unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("tap lkt9: "), "{text}");
        assert!(text.contains("CAP_NET_ADMIN"), "{text}");
        assert!(matches!(e.cause(), Cause::Os { .. }), "an OS error: {text}");
        // On a line of its own, after libtest's "test ... ".
        println!("\nas nobody: {text}");
        return;
    }
    in_netns(
        TEST,
        "nobody",
        |_| Ok(()),
        || {
            // Nobody may not reach the binary where it was built (under a
            // home of mode 700): a copy in a directory of its own.
            let exe = std::env::current_exe().unwrap();
            let dir = std::env::temp_dir().join(format!("lklbk-nobody-{}", std::process::id()));
            fs::create_dir_all(&dir).unwrap();
            let copy = dir.join("net_backends");
            fs::copy(&exe, &copy).unwrap();
            for p in [&dir, &copy] {
                fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
            }
            let out = Command::new(&copy)
                .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
                .env(INNER_ENV, "tap-nobody")
                .uid(65534)
                .gid(65534)
                .output();
            let _ = fs::remove_dir_all(&dir);
            let out = out.unwrap_or_else(|e| panic!("running as nobody: {e}"));
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && stdout.contains("1 passed"),
                "as nobody: {}\n{stdout}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            print!("{stdout}");
        },
    );
}

// ------------------------------------------------------------------- raw

fn veth_pair(ns: &Netns, a: &str, b: &str) -> Result<(), String> {
    ns.ip(&["link", "add", a, "type", "veth", "peer", "name", b])?;
    ns.ip(&["link", "set", a, "up"])?;
    ns.ip(&["link", "set", b, "up"])?;
    Ok(())
}

fn promiscuity(ifname: &str) -> u32 {
    let text = run(Command::new("ip").args(["-d", "link", "show", ifname])).unwrap();
    let mut words = text.split_whitespace();
    while let Some(w) = words.next() {
        if w == "promiscuity" {
            return words.next().and_then(|v| v.parse().ok()).unwrap();
        }
    }
    panic!("no promiscuity in {text}");
}

#[testkit::needs(root)]
#[test]
fn raw_socket_exchanges_frames_over_a_veth_pair() {
    in_netns(
        "raw_socket_exchanges_frames_over_a_veth_pair",
        "raw",
        |ns| veth_pair(ns, "lkv0", "lkv1"),
        || {
            let before = promiscuity("lkv0");
            let mut raw = RawSocket::open("lkv0").unwrap();
            assert!(!raw.has_vnet_hdr());
            assert_eq!(promiscuity("lkv0"), before + 1, "promiscuous membership");
            let far = PacketSock::open("lkv1");
            // Our MAC is not lkv0's: the kernel behind a raw backend has
            // its own.
            let our_mac = [0x02, 0, 0, 0, 0, 0x03];
            exchange(&mut raw, &far, our_mac, mac_of("lkv1"), "raw");

            // What the host itself sends out of lkv0 is not for us.
            let host_side = PacketSock::open("lkv0");
            let outgoing = eth_frame(mac_of("lkv1"), mac_of("lkv0"), "lklbk-raw-host");
            let seen = until_received(
                || host_side.send(&outgoing),
                || far.recv_until(RETRY, |f| is_ours(f, "lklbk-raw-host")),
            );
            assert!(seen.is_some(), "the host's frame left on the wire");
            assert!(
                backend_recv_until(&mut raw, Duration::from_millis(300), |f| {
                    is_ours(f, "lklbk-raw-host")
                })
                .is_none(),
                "outgoing frames are ignored"
            );
            drop(raw);
            assert_eq!(promiscuity("lkv0"), before, "membership dropped on close");
        },
    );
}

// --------------------------------------------------------------- macvtap

#[testkit::needs(root, macvtap)]
#[test]
fn macvtap_exchanges_frames_through_its_lower_device() {
    in_netns(
        "macvtap_exchanges_frames_through_its_lower_device",
        "macvtap",
        |ns| {
            veth_pair(ns, "lkv0", "lkv1")?;
            ns.ip(&[
                "link", "add", "link", "lkv0", "name", "lkm0", "type", "macvtap", "mode", "bridge",
            ])?;
            ns.ip(&["link", "set", "lkm0", "up"])?;
            Ok(())
        },
        || {
            // Inside `ip netns exec`, /sys shows this namespace. The device
            // node is made here: /dev/tapN is named by ifindex, which other
            // namespaces reuse.
            let ifindex = fs::read_to_string("/sys/class/net/lkm0/ifindex").unwrap();
            let ifindex = ifindex.trim();
            let dev = fs::read_to_string(format!("/sys/class/net/lkm0/macvtap/tap{ifindex}/dev"))
                .unwrap();
            let (major, minor) = dev.trim().split_once(':').unwrap();
            let dir = std::env::temp_dir().join(format!("lklbk-macvtap-{}", std::process::id()));
            fs::create_dir_all(&dir).unwrap();
            let node = dir.join(format!("tap{ifindex}"));
            let _ = fs::remove_file(&node);
            run(Command::new("mknod").arg(&node).args(["c", major, minor])).unwrap();

            let lkm_mac = mac_of("lkm0");
            let far = PacketSock::open("lkv1");
            for vnet in [true, false] {
                let mut m = Macvtap::open(&node, vnet).unwrap();
                assert_eq!(m.ifname(), "lkm0");
                assert_eq!(m.has_vnet_hdr(), vnet);
                m.set_offload(features::GUEST_CSUM | features::GUEST_TSO4)
                    .expect("TUNSETOFFLOAD");
                // In: only frames for the macvtap's MAC reach it.
                exchange(
                    &mut m,
                    &far,
                    lkm_mac,
                    mac_of("lkv1"),
                    &format!("macvtap-vnet{vnet}"),
                );
            }
            let mut b = open_backend(&Backend::Macvtap { path: node.clone() }, true).unwrap();
            exchange(
                &mut *b,
                &far,
                lkm_mac,
                mac_of("lkv1"),
                "macvtap-open_backend",
            );
            drop(b);
            let _ = fs::remove_dir_all(&dir);
        },
    );
}

// -------------------------------------------------------------------- fd

#[testkit::needs(root, tun)]
#[test]
fn fd_backend_takes_an_open_tap() {
    in_netns(
        "fd_backend_takes_an_open_tap",
        "fdtap",
        |ns| ns.add_tap("lkt2", true, &[]),
        || {
            // A program that opened the tap itself and hands us the number.
            let tap = Tap::open("lkt2", true).unwrap();
            let mut b = InheritedFd::open(tap.as_raw_fd(), false).unwrap();
            assert!(
                b.is_tap() && b.has_vnet_hdr(),
                "the tap's IFF_VNET_HDR decides"
            );
            b.set_offload(features::GUEST_CSUM).unwrap();
            let far = PacketSock::open("lkt2");
            exchange(
                &mut b,
                &far,
                [0x02, 0, 0, 0, 0, 0x04],
                mac_of("lkt2"),
                "fd-tap",
            );
        },
    );
}

// ------------------------------------------------------------------- vde

#[testkit::needs(vde_switch)]
#[test]
fn vde_ports_on_a_real_switch_exchange_frames() {
    let dir = std::env::temp_dir().join(format!("lklbk-vde-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    // A hub: every frame to every other port, no learning to wait for.
    // The switch reads commands on stdin and stops at its end, so we keep
    // it open until we are done.
    let mut switch = Command::new("vde_switch")
        .arg("-x")
        .arg("-s")
        .arg(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    while !dir.join("ctl").exists() {
        assert!(
            Instant::now() < deadline,
            "vde_switch made no {}/ctl",
            dir.display()
        );
        thread::sleep(Duration::from_millis(10));
    }
    let result = std::panic::catch_unwind(|| {
        let mut a = Vde::open(&dir).unwrap();
        let mut b = open_backend(&Backend::Vde { path: dir.clone() }, false).unwrap();
        assert!(!a.has_vnet_hdr() && !b.has_vnet_hdr());
        let (mac_a, mac_b) = ([0x02, 0, 0, 0, 0, 0x0a], [0x02, 0, 0, 0, 0, 0x0b]);
        for i in 0..20 {
            let f = eth_frame(mac_b, mac_a, &format!("lklbk-vde-ab{i}"));
            backend_send(&mut a, &f);
            let got =
                backend_recv_until(&mut *b, WAIT, |g| is_ours(g, &format!("lklbk-vde-ab{i}")))
                    .expect("b never got a's frame");
            assert_eq!(got, f);
            let f = eth_frame(mac_a, mac_b, &format!("lklbk-vde-ba{i}"));
            backend_send(&mut *b, &f);
            let got = backend_recv_until(&mut a, WAIT, |g| is_ours(g, &format!("lklbk-vde-ba{i}")))
                .expect("a never got b's frame");
            assert_eq!(got, f);
        }
    });
    // Our own child, by its handle.
    let _ = switch.kill();
    let out = switch.wait_with_output();
    let _ = fs::remove_dir_all(&dir);
    if let Err(p) = result {
        if let Ok(out) = out {
            eprintln!(
                "vde_switch stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::panic::resume_unwind(p);
    }
}
