//! The config as a user meets it through `bin/lkl-hijack.sh`: an IPv6
//! address usable by the first `bind`, the best offloads without an
//! `offload` key, `--check-config`, and every mistake reported at once.

use std::io::Read;
use std::net::TcpListener;
use std::process::Output;
use std::time::{Duration, Instant};

use testkit::hijack::*;
use testkit::images::Scratch;
use testkit::netns::{in_netns, Netns};

/// [`tap_setup`], plus fc03::1/64 on the host side of the tap (`nodad`:
/// the host's own detection would delay the test, not the program).
fn tap_setup_v6(ns: &Netns) -> Result<(), String> {
    tap_setup(ns)?;
    ns.ip(&["-6", "addr", "add", "fc03::1/64", "dev", "tap0", "nodad"])?;
    Ok(())
}

/// A tap config with IPv4 and IPv6 addresses and `extra` members.
fn v6_config(extra: &str) -> String {
    format!(
        r#"{{"interfaces":[{{"type":"tap","param":"tap0","ip":"192.168.113.2","masklen":24,
            "ipv6":"fc03::2","masklen6":64{extra}}}]}}"#
    )
}

/// Runs `args` under the hijack with the config `json` (written to a file
/// of `dir`) and `envs`.
fn with_config(dir: &Scratch, json: &str, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let file = dir.0.join("config.json");
    std::fs::write(&file, json).unwrap();
    let file = file.to_str().unwrap().to_string();
    let mut all = vec![("LKL_HIJACK_CONFIG_FILE", file.as_str())];
    all.extend_from_slice(envs);
    hijacked(args, &all)
}

/// A program that binds the config's IPv6 address, connects once to a
/// listener on the tap's host side and says hello.
const BIND_CONNECT: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.bind(("fc03::2", 0))
s.connect(("fc03::1", int(sys.argv[1])))
s.sendall(b"hello")
s.close()
print("connected")
"#;

/// Runs [`BIND_CONNECT`] hijacked with `json`; returns how long the
/// program took, start to exit, after checking the listener got hello.
fn bind_and_connect(dir: &Scratch, json: &str) -> Duration {
    let listener = TcpListener::bind("[fc03::1]:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let accept = std::thread::spawn(move || {
        let (mut c, from) = listener.accept().unwrap();
        let mut got = Vec::new();
        c.read_to_end(&mut got).unwrap();
        (from, got)
    });
    let t0 = Instant::now();
    let out = with_config(dir, json, &[PYTHON, "-c", BIND_CONNECT, &port], &[]);
    let took = t0.elapsed();
    assert!(out.status.success(), "{}", show(&out));
    let (from, got) = accept.join().unwrap();
    assert_eq!(from.ip().to_string(), "fc03::2");
    assert_eq!(got, b"hello");
    took
}

/// The config's IPv6 address is usable by the program's first `bind` and
/// `connect`, with no wait for duplicate address detection: detection
/// takes at least a second (one RetransTimer), the whole program far
/// less. With `"dad": true` the wait is back, and the address is still
/// usable when `main` runs.
#[testkit::needs(root, tun, python3)]
#[test]
fn ipv6_address_is_usable_by_the_first_bind_and_connect() {
    in_netns(
        "ipv6_address_is_usable_by_the_first_bind_and_connect",
        "cfgv6",
        tap_setup_v6,
        || {
            let dir = Scratch::new("v6");
            let fast = bind_and_connect(&dir, &v6_config(""));
            let slow = bind_and_connect(&dir, &v6_config(r#","dad":true"#));
            println!("bind+connect over tap: {fast:?} without detection, {slow:?} with");
            assert!(fast < Duration::from_secs(1), "{fast:?}: a DAD wait?");
            assert!(slow >= Duration::from_secs(1), "{slow:?}: no DAD wait?");
        },
    );
}

/// The small program of the start-up figures, in C so that its own start
/// is as short as `true`'s (the kernel's build needs a C compiler, so one
/// is here): binds argv[1], connects once to [argv[2]]:argv[3].
const CONNECT6_C: &str = r#"
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (argc != 4) return 2;
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 a = { .sin6_family = AF_INET6 };
    struct sockaddr_in6 p = { .sin6_family = AF_INET6, .sin6_port = htons(atoi(argv[3])) };
    if (fd < 0 || inet_pton(AF_INET6, argv[1], &a.sin6_addr) != 1
        || inet_pton(AF_INET6, argv[2], &p.sin6_addr) != 1) return 2;
    if (bind(fd, (struct sockaddr *)&a, sizeof a)) { perror("bind"); return 1; }
    if (connect(fd, (struct sockaddr *)&p, sizeof p)) { perror("connect"); return 1; }
    return close(fd) != 0;
}
"#;

/// Start-up figures (printed, not gated): a hijacked `true` and a small
/// program that binds the config's IPv6 address and connects out once
/// over the tap (config with IPv4 and IPv6 addresses), median of 20, next
/// to the same programs run plain (binding the tap's host address).
#[testkit::needs(root, tun, python3)]
#[test]
fn start_figures_next_to_the_plain_program() {
    in_netns(
        "start_figures_next_to_the_plain_program",
        "cfgfig",
        tap_setup_v6,
        || {
            let dir = Scratch::new("fig");
            let file = dir.0.join("config.json");
            std::fs::write(&file, v6_config("")).unwrap();
            let src = dir.0.join("connect6.c");
            let exe = dir.0.join("connect6");
            std::fs::write(&src, CONNECT6_C).unwrap();
            let cc = std::process::Command::new("cc")
                .args(["-O2", "-o"])
                .arg(&exe)
                .arg(&src)
                .output()
                .expect("cc (the kernel's build needs it)");
            assert!(cc.status.success(), "cc: {}", show(&cc));
            let exe = exe.to_str().unwrap();
            let listener = TcpListener::bind("[fc03::1]:0").unwrap();
            let port = listener.local_addr().unwrap().port().to_string();
            std::thread::spawn(move || {
                for c in listener.incoming() {
                    drop(c);
                }
            });
            let median = |args: &[&str], hijack: bool| {
                let mut times: Vec<Duration> = (0..21)
                    .map(|_| {
                        // Preloaded directly: the launcher's bash would
                        // count too.
                        let mut cmd = std::process::Command::new(args[0]);
                        cmd.args(&args[1..]);
                        if hijack {
                            cmd.env("LD_PRELOAD", library())
                                .env("LKL_HIJACK_CONFIG_FILE", &file);
                        }
                        let t0 = Instant::now();
                        let out = cmd.output().unwrap();
                        assert!(out.status.success(), "{args:?}: {}", show(&out));
                        t0.elapsed()
                    })
                    .skip(1) // warm-up
                    .collect();
                times.sort();
                times[times.len() / 2]
            };
            let ms = |d: Duration| d.as_secs_f64() * 1e3;
            for (what, plain, hijacked) in [
                ("true", ["/bin/true"].as_slice(), ["/bin/true"].as_slice()),
                (
                    "bind [fc03::2] + connect over tap",
                    &[exe, "fc03::1", "fc03::1", &port],
                    &[exe, "fc03::2", "fc03::1", &port],
                ),
            ] {
                let plain = median(plain, false);
                let hijacked = median(hijacked, true);
                println!(
                    "{what}: plain {:.1} ms, hijacked {:.1} ms (+{:.1} ms), median of 20",
                    ms(plain),
                    ms(hijacked),
                    ms(hijacked.saturating_sub(plain))
                );
            }
        },
    );
}

/// The virtio-net features the kernel's driver negotiated, from the
/// bit string in sysfs that the config's `dump` prints at exit.
fn negotiated_features(dir: &Scratch, offload: &str) -> u64 {
    let json = format!(
        r#"{{"mount":"sysfs","dump":"/sysfs/bus/virtio/devices/virtio0/features",
            "interfaces":[{{"type":"tap","param":"tap0","ip":"192.168.113.2","masklen":24{offload}}}]}}"#
    );
    let out = with_config(dir, &json, &["/bin/true"], &[]);
    assert!(out.status.success(), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let bits = stderr
        .lines()
        .skip_while(|l| !l.contains("dump /sysfs/bus/virtio/devices/virtio0/features:"))
        .nth(1)
        .unwrap_or_else(|| panic!("no features in {}", show(&out)));
    // One character per feature bit, bit 0 first.
    bits.trim()
        .chars()
        .take(64)
        .enumerate()
        .filter(|(_, c)| *c == '1')
        .fold(0, |acc, (i, _)| acc | 1 << i)
}

/// A tap configured with no `offload` key gets the best set the backend
/// supports, as the kernel sees it; an explicit 0 gets none.
#[testkit::needs(root, tun)]
#[test]
fn tap_without_offload_key_gets_the_best_features() {
    in_netns(
        "tap_without_offload_key_gets_the_best_features",
        "cfgoff",
        tap_setup,
        || {
            use lkl::virtio::net::features::*;
            let dir = Scratch::new("offload");
            let best = CSUM | GUEST_CSUM | GUEST_TSO4 | GUEST_TSO6 | HOST_TSO4 | HOST_TSO6;
            let got = negotiated_features(&dir, "");
            println!("no offload key: features {got:#x}");
            assert_eq!(got & best, best, "{got:#x}");
            assert_ne!(got & MRG_RXBUF, 0, "{got:#x}");
            let got = negotiated_features(&dir, r#","offload":"0""#);
            println!("\"offload\": \"0\": features {got:#x}");
            assert_eq!(got & (best | MRG_RXBUF), 0, "{got:#x}");
            let got = negotiated_features(&dir, r#","offload":"0x883""#);
            assert_eq!(got & (best | MRG_RXBUF), 0x883, "{got:#x}");
        },
    );
}

#[test]
fn check_config_prints_the_effective_settings() {
    let dir = Scratch::new("check");
    let good = dir.0.join("good.json");
    std::fs::write(&good, v6_config(r#","mac":"02:00:00:00:00:07""#)).unwrap();
    let out = command(&["--config", good.to_str().unwrap(), "--check-config"], &[])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", show(&out));
    for want in [
        &format!("config: {}", good.display()),
        "eth0: tap tap0",
        "eth0: mac 02:00:00:00:00:07",
        "eth0: ip 192.168.113.2/24",
        "eth0: ipv6 fc03::2/64, usable at once",
        "eth0: offload 0x9983 (the tap default): CSUM GUEST_CSUM GUEST_TSO4 GUEST_TSO6 \
         HOST_TSO4 HOST_TSO6 MRG_RXBUF",
    ] {
        assert!(stdout.contains(want), "{want:?} missing: {}", show(&out));
    }
    assert!(out.stderr.is_empty(), "{}", show(&out));

    // The variables alone, an explicit offload.
    let out = command(
        &["--check-config"],
        &[
            ("LKL_HIJACK_NET_IFTYPE", "tap"),
            ("LKL_HIJACK_NET_IFPARAMS", "tap0"),
            ("LKL_HIJACK_OFFLOAD", "0"),
        ],
    )
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        stdout.contains("eth0: offload 0x0, none (from \"offload\")"),
        "{}",
        show(&out)
    );

    // A bad config: every error, status 1, nothing on stdout.
    let bad = dir.0.join("bad.json");
    std::fs::write(
        &bad,
        r#"{"interfaces":[{"type":"tap","param":"tap0","ip":"10.0.0.300","masklen":24,"mtu":9}],
            "gateway":"10.0.0.1.1"}"#,
    )
    .unwrap();
    let out = command(&["--config", bad.to_str().unwrap(), "--check-config"], &[])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(out.stdout.is_empty(), "{}", show(&out));
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{}", show(&out));
    for (line, path) in lines
        .iter()
        .zip(["interfaces[0].ip", "interfaces[0].mtu", "gateway"])
    {
        assert!(
            line.starts_with("lkl-hijack: ") && line.contains(&format!(": {path}: ")),
            "{line}"
        );
    }

    // No program with --check-config.
    let out = command(&["--check-config", "/bin/true"], &[])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
}

/// Four mistakes, four lines, and the program's `main` never runs: in a
/// file, then in the variables.
#[testkit::needs(python3)]
#[test]
fn four_mistakes_are_reported_at_once() {
    let dir = Scratch::new("four");
    let json = r#"{
      "interfaces": [{ "type": "tap", "param": "tap0", "ip": "10.0.0.300", "masklen": 24,
                       "offlaod": "0x883" }],
      "nameserver": "8.8.8.8,nonsense",
      "sysctl": "net.ipv4.tcp_congestion_control"
    }"#;
    let main_ran = "print('main ran')";
    let out = with_config(&dir, json, &[PYTHON, "-c", main_ran], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("main ran"));
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 4, "{}", show(&out));
    for (line, want) in lines.iter().zip([
        r#"interfaces[0]: unknown key "offlaod" (did you mean "offload"?)"#,
        r#"interfaces[0].ip: "10.0.0.300" is not an IPv4 address"#,
        r#"nameserver: "nonsense" is not an IPv4 or IPv6 address"#,
        r#"sysctl: "net.ipv4.tcp_congestion_control" is not "key=value""#,
    ]) {
        assert!(
            line.starts_with("lkl-hijack: ") && line.ends_with(want),
            "{line:?} does not end with {want:?}"
        );
    }

    let out = hijacked(
        &[PYTHON, "-c", main_ran],
        &[
            ("LKL_HIJACK_NET_IFTYPE", "tapp"),
            ("LKL_HIJACK_NET_IFPARAMS", "tap0"),
            ("LKL_HIJACK_NET_MTU", "9"),
            ("LKL_HIJACK_DEBUG", "yes please"),
            ("LKL_HIJACK_NET_GATEWAI", "10.0.0.1"),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 4, "{}", show(&out));
    for (line, var) in lines.iter().zip([
        "LKL_HIJACK_NET_GATEWAI",
        "LKL_HIJACK_NET_IFTYPE",
        "LKL_HIJACK_NET_MTU",
        "LKL_HIJACK_DEBUG",
    ]) {
        assert!(line.contains(var), "{line:?} does not name {var}");
    }
}

/// `LKL_HIJACK_DEBUG` logs the effective settings before the program runs.
#[test]
fn debug_prints_the_settings() {
    let out = hijacked(&["/bin/true"], &[("LKL_HIJACK_DEBUG", "1")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        stderr.contains("lkl-hijack: interfaces: none (loopback only)"),
        "{}",
        show(&out)
    );
    assert!(stderr.contains("lkl-hijack: debug: 0x1"), "{}", show(&out));
}

/// Both warnings the config prepares reach stderr before `main`: the
/// obsolete `LKL_HIJACK_NET_TAP`, and interface variables replaced by the
/// file's `interfaces` (here empty, so no tap is needed).
#[test]
fn config_warnings_are_printed_before_main() {
    let dir = Scratch::new("warnings");
    let out = with_config(
        &dir,
        r#"{"interfaces": []}"#,
        &["/bin/sh", "-c", "echo main >&2"],
        &[("LKL_HIJACK_NET_TAP", "tap9")],
    );
    assert!(out.status.success(), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    let obsolete = lines
        .iter()
        .position(|l| l.starts_with("lkl-hijack: warning: LKL_HIJACK_NET_TAP is obsolete"));
    let replaced = lines.iter().position(|l| {
        l.starts_with("lkl-hijack: warning: LKL_HIJACK_NET_TAP ignored: \"interfaces\" in")
    });
    let main = lines.iter().position(|l| *l == "main");
    assert!(
        obsolete.is_some() && replaced.is_some() && obsolete < main && replaced < main,
        "{}",
        show(&out)
    );
}

/// `delay_main` (LKL: microseconds slept after the config is applied,
/// before `main`) delays the program by that much.
#[test]
fn delay_main_delays_main() {
    let t0 = Instant::now();
    let out = hijacked(&["/bin/true"], &[]);
    let plain = t0.elapsed();
    assert!(out.status.success(), "{}", show(&out));
    let t0 = Instant::now();
    let out = hijacked(
        &["/bin/true"],
        &[
            ("LKL_HIJACK_DELAY_MAIN", "1500000"),
            ("LKL_HIJACK_DEBUG", "1"),
        ],
    );
    let delayed = t0.elapsed();
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("lkl-hijack: delay_main: sleeping 1500000 us"),
        "{}",
        show(&out)
    );
    assert!(
        delayed >= Duration::from_millis(1500) && delayed > plain + Duration::from_millis(1000),
        "plain {plain:?}, delayed {delayed:?}"
    );
}

/// Prints each thread of the process (the main thread first) with the
/// CPUs it may run on.
const AFFINITIES: &str = r#"
import os
me = os.getpid()
tids = sorted(int(t) for t in os.listdir("/proc/self/task"))
tids.remove(me)
for t in [me] + tids:
    print(t, ",".join(str(c) for c in sorted(os.sched_getaffinity(t))))
"#;

/// The CPU sets of the hijacked program's threads, the main thread first.
fn thread_cpus(envs: &[(&str, &str)]) -> Vec<String> {
    // The kernel's threads are in the program's process only there.
    let out = hijacked(&["--single-process", PYTHON, "-c", AFFINITIES], envs);
    assert!(out.status.success(), "{}", show(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split_once(' ').unwrap().1.to_string())
        .collect()
}

/// `singlecpu` as LKL: 1 or 2 pins the kernel's threads to the first CPU
/// the program may use; the main thread keeps its own set. Without it the
/// kernel's threads may use every CPU the program may.
#[test]
fn singlecpu_pins_the_kernel_threads() {
    let own: Vec<usize> = (0..1024)
        .filter(|&c| {
            // SAFETY: a zeroed cpu_set_t is valid; sched_getaffinity fills it.
            unsafe {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0
                    && libc::CPU_ISSET(c, &set)
            }
        })
        .collect();
    let own_list = own
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(",");
    for mode in ["1", "2"] {
        let cpus = thread_cpus(&[("LKL_HIJACK_SINGLE_CPU", mode)]);
        assert!(cpus.len() > 1, "no kernel threads? {cpus:?}");
        assert_eq!(cpus[0], own_list, "singlecpu {mode}: main thread");
        for c in &cpus[1..] {
            assert_eq!(*c, own[0].to_string(), "singlecpu {mode}: {cpus:?}");
        }
    }
    if own.len() > 1 {
        let cpus = thread_cpus(&[]);
        assert!(cpus[1..].iter().all(|c| *c == own_list), "{cpus:?}");
    }
}

/// `debug` 0x200 (LKL: wait for Enter before boot) prompts on stderr and
/// boots once a line arrives; 0x100 (LKL: pause at exit, the kernel
/// alive) keeps the program at exit until it is killed; 0x400 (LKL's DPDK
/// logging) is rejected with the reason.
#[test]
fn debug_bits_as_lkl() {
    use std::io::Write;
    use std::process::Stdio;

    let mut child = command(&["/bin/echo", "ran"], &[("LKL_HIJACK_DEBUG", "0x200")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    child.stdin.take().unwrap().write_all(b"\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ran\n");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("debug 0x200: press Enter"),
        "{}",
        show(&out)
    );

    // (The single-process mode: in the tree mode the server pauses.)
    let mut child = command(
        &["--single-process", "/bin/true"],
        &[("LKL_HIJACK_DEBUG", "0x100")],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert!(child.try_wait().unwrap().is_none(), "did not pause at exit");
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("debug 0x100: paused at exit"),
        "{}",
        show(&out)
    );

    let out = hijacked(&["/bin/true"], &[("LKL_HIJACK_DEBUG", "0x401")]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("DPDK"),
        "{}",
        show(&out)
    );
}

/// A relative config path is the tree's: the launcher makes it absolute,
/// so a process of the tree in another directory reads the same file
/// (here: a shell that changes directory, then starts a child).
#[test]
fn a_relative_config_serves_the_whole_tree() {
    let dir = Scratch::new("relative-config");
    std::fs::write(dir.0.join("config.json"), r#"{"debug":"1"}"#).unwrap();
    let out = std::process::Command::new(script())
        .args(["bash", "-c", "cd / && sh -c 'echo $LKL_HIJACK_CONFIG_FILE'"])
        .current_dir(&dir.0)
        .env("LKL_HIJACK_LIB", library())
        .env("LKL_HIJACK_CONFIG_FILE", "config.json")
        .output()
        .expect("run the launcher");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(
        stdout.trim(),
        dir.0.join("config.json").to_str().unwrap(),
        "{}",
        show(&out)
    );
    assert!(
        !stderr.contains("cannot read config file"),
        "{}",
        show(&out)
    );
}
