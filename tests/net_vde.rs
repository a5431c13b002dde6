//! The kernel on a VDE switch (the `vde` backend), inside a network
//! namespace this test makes: a `vde_switch` with the namespace's tap
//! `tap0` on one port and the kernel on another; the kernel pings the host
//! (the tap's address) and the host pings the kernel. The switch is
//! stopped at the end, passed or failed.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use lkl::config::Config;
use lkl::syscall::{self as sys, abi};
use testkit::boot_with_net;
use testkit::netns::in_netns;
use testkit::wire::checksum;

const HOST4: Ipv4Addr = Ipv4Addr::new(192, 168, 114, 1);
const LKL4: Ipv4Addr = Ipv4Addr::new(192, 168, 114, 2);
/// Echo requests each way.
const COUNT: u16 = 20;

/// Sends `count` echo requests from the kernel to `dst`, each waiting up to
/// `timeout` for its reply; returns the sequence numbers not answered.
fn kernel_ping(dst: Ipv4Addr, count: u16, timeout: Duration) -> Vec<u16> {
    let fd = sys::socket(abi::AF_INET, abi::SOCK_RAW | abi::SOCK_NONBLOCK, 1).expect("raw socket");
    let to = sys::SockAddr::In(abi::SockAddrIn::new(dst, 0));
    let mut missing = Vec::new();
    let mut buf = [0u8; 1500];
    for seq in 0..count {
        let mut pkt = vec![8, 0, 0, 0, 0x56, 0x44, (seq >> 8) as u8, seq as u8];
        pkt.extend_from_slice(b"lkl-vde-payload");
        let c = checksum(&pkt);
        pkt[2..4].copy_from_slice(&c.to_be_bytes());
        sys::sendto(fd, &pkt, 0, &to).expect("send echo request");
        let deadline = Instant::now() + timeout;
        let mut answered = false;
        'wait: loop {
            match sys::recv(fd, &mut buf, 0) {
                Ok(n) => {
                    // IPv4 raw sockets deliver the IP header.
                    let icmp = &buf[((buf[0] & 0xf) as usize * 4).min(n)..n];
                    if icmp.len() >= 8
                        && icmp[0] == 0
                        && icmp[4..6] == [0x56, 0x44]
                        && icmp[6..8] == [(seq >> 8) as u8, seq as u8]
                    {
                        answered = true;
                        break 'wait;
                    }
                }
                Err(lkl::Errno::EAGAIN) => {
                    if Instant::now() >= deadline {
                        break 'wait;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => panic!("recv: {e}"),
            }
        }
        if !answered {
            missing.push(seq);
        }
    }
    let _ = sys::close(fd);
    missing
}

/// A `vde_switch` of ours, stopped when dropped: its stdin (its console)
/// is closed, which makes it clean up and exit; it is killed if it has not
/// within a second.
struct Switch {
    child: Child,
    stdin: Option<ChildStdin>,
    dir: PathBuf,
}

impl Switch {
    /// Starts a switch whose control directory is `dir`, with the tap
    /// `tap` on a port, and waits for its control socket and for the tap's
    /// carrier (the switch has opened it).
    fn start(dir: &Path, tap: &str) -> Result<Switch, String> {
        let mut child = Command::new("vde_switch")
            .args(["-t", tap, "-s"])
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("vde_switch: {e}"))?;
        let stdin = child.stdin.take();
        let mut switch = Switch {
            child,
            stdin,
            dir: dir.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let carrier = Path::new("/sys/class/net").join(tap).join("carrier");
        let ready = || {
            dir.join("ctl").exists()
                && std::fs::read_to_string(&carrier).is_ok_and(|c| c.trim() == "1")
        };
        while !ready() {
            if let Ok(Some(status)) = switch.child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = switch.child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                return Err(format!("vde_switch exited: {status}: {}", err.trim()));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "vde_switch made no {}/ctl or {tap} has no carrier",
                    dir.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(switch)
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn vde_body() {
    let dir = std::env::temp_dir().join(format!("lkl-vde-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let switch = Switch::start(&dir, "tap0").unwrap_or_else(|e| panic!("{e}"));

    let json = format!(
        r#"{{"interfaces":[{{"type":"vde","param":"{}","ip":"{LKL4}","masklen":"24",
            "mac":"02:00:00:00:01:14"}}]}}"#,
        dir.display()
    );
    let config = Config::parse_str(&json).expect("config");
    let (kernel, device) = boot_with_net(&config, 64 << 20, None);

    // Kernel -> host, through the switch and the tap.
    let t0 = Instant::now();
    let missing = kernel_ping(HOST4, COUNT, Duration::from_secs(1));
    assert!(
        missing.is_empty(),
        "kernel -> host: no reply to echo requests {missing:?} of 0..{COUNT}"
    );
    println!(
        "kernel -> host: {COUNT}/{COUNT} replies in {:.0} ms",
        t0.elapsed().as_secs_f64() * 1e3
    );

    // Host -> kernel.
    let out = Command::new("ping")
        .args(["-c", &COUNT.to_string(), "-i", "0.01", "-w", "10"])
        .arg(LKL4.to_string())
        .output()
        .expect("ping (apt-get install iputils-ping)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("{COUNT} packets transmitted, {COUNT} received")),
        "host ping:\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!(
        "host -> kernel: {}",
        text.lines()
            .find(|l| l.contains("packets transmitted"))
            .unwrap_or("")
    );

    kernel.halt().expect("halt");
    drop(device);
    drop(switch);
}

#[testkit::needs(root, tun, kernel_net, ping, vde_switch)]
#[test]
fn vde_switch_pings_host() {
    in_netns(
        "vde_switch_pings_host",
        "vde",
        |ns| {
            ns.lo_up()?;
            ns.add_tap("tap0", false, &["192.168.114.1/24"])
        },
        vde_body,
    );
}
