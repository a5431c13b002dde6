//! net-bench: the kernel's network path against the host kernel's, measured
//! in the same run. Prints figures; asserts nothing.
//!
//! Usage: net-bench [--quick | --rr N | --idle]
//!
//! - **lkl over tap**: the kernel (through the Rust API) on a virtio-net
//!   device whose backend is a tap, talking to a host socket on the tap's
//!   address, with LKL's `offload` 0, 0x883 and 0x8803 (one child process
//!   each: the kernel boots once per process).
//! - **veth**: two host sockets in two network namespaces joined by a veth
//!   pair (the host kernel on both ends, offloads as the host sets them).
//!
//! For each: one TCP stream's throughput each way (128 KiB writes and
//! reads) and the 1-byte request/response round trip with `TCP_NODELAY`
//! (the median of 10 batch means), the latter measured again with every
//! thread of both ends on one CPU, where no round trip waits for an idle
//! CPU to wake (on a VM that wake-up can be most of the time measured).
//! The kernel (or namespace A) always dials, the host (or namespace B)
//! listens. Ratios are lkl/veth; the targets are throughput at least 0.5x
//! veth with offloads on and latency at most 1.5x.
//!
//! `--rr N` measures only the round trip (both ways of running it), N
//! times, alternating a veth child and an lkl child (offload 0x883), and
//! prints each pair's ratio and the medians and ranges: on a shared,
//! noisy machine one pair of figures says little.
//!
//! `--idle` boots the kernel on the tap, configures it, exchanges a few
//! round trips, then measures the CPU time the whole process uses over
//! 5 s with no traffic: it must be about 0 (no busy polling anywhere).
//!
//! Needs root (it makes network namespaces); without it, it says it skips
//! and exits 0. Every interface is in a namespace this program creates
//! (`lklbench-<pid>-*`, with `/etc/netns/<name>/resolv.conf` saying
//! `nameserver 127.0.0.1`) and deletes at the end, also on failure; no
//! traffic leaves them.

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use lkl::config::Config;
use lkl::syscall::{self as sys, abi, Errno};
use lkl::virtio::net::backends::open_backend;
use lkl::virtio::Net;
use lkl::{BootOptions, Kernel};

/// The tap's (host) address and the kernel's, in the tap namespace.
const TAP_HOST: Ipv4Addr = Ipv4Addr::new(10, 79, 0, 1);
const TAP_LKL: Ipv4Addr = Ipv4Addr::new(10, 79, 0, 2);
/// The veth ends' addresses, in namespaces A and B.
const VETH_A: Ipv4Addr = Ipv4Addr::new(10, 79, 1, 1);
const VETH_B: Ipv4Addr = Ipv4Addr::new(10, 79, 1, 2);
/// LKL `offload` values measured; the first is "off".
const OFFLOADS: [&str; 3] = ["0", "0x883", "0x8803"];
/// Bytes per read and write in the throughput figures (iperf3's default).
const CHUNK: usize = 128 << 10;
/// Batches of round trips in one latency figure.
const RR_BATCHES: usize = 10;
/// The command line.
const USAGE: &str = "usage: net-bench [--quick | --rr N | --idle]";
/// What a child prints when the kernel has no networking.
const NO_NET: &str = "no-networking";

/// How much each figure measures.
#[derive(Clone, Copy)]
struct Size {
    /// Bytes per throughput run.
    bytes: usize,
    /// Round trips per latency run.
    round_trips: usize,
    /// Runs of each figure (the median is kept).
    runs: usize,
    /// A child that has not finished by then reports a stall and exits
    /// (before the parent's own limit, so that the report is seen).
    stall: Duration,
}

impl Size {
    fn new(quick: bool) -> Size {
        if quick {
            Size {
                bytes: 256 << 20,
                round_trips: 5_000,
                runs: 1,
                stall: Duration::from_secs(40),
            }
        } else {
            Size {
                bytes: 1 << 30,
                round_trips: 50_000,
                runs: 3,
                stall: Duration::from_secs(120),
            }
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    let child = match arg(1) {
        "--child-lkl" | "--child-veth" => {
            let size = Size::new(arg(4) == "quick");
            let one_cpu = arg(5) == "one-cpu";
            // `rr-all-cpus`: the round trip alone, on every CPU (--rr).
            let rr_only = one_cpu || arg(5) == "rr-all-cpus";
            let idle = arg(5) == "idle";
            Some(if arg(1) == "--child-lkl" {
                child_lkl(arg(2), arg(3), size, one_cpu, rr_only || idle, idle)
            } else {
                child_veth(arg(2), arg(3), size, one_cpu, rr_only)
            })
        }
        _ => None,
    };
    if let Some(result) = child {
        return match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("net-bench child: {e}");
                ExitCode::from(1)
            }
        };
    }
    if args.iter().skip(1).any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let result = match (arg(1), arg(2)) {
        ("--rr", n) if args.len() == 3 => match n.parse::<usize>() {
            Ok(n) if n > 0 => run_rr(n),
            _ => {
                eprintln!("net-bench: --rr wants a positive count, not {n:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        },
        ("--quick", "") if args.len() == 2 => run(true),
        ("--idle", "") if args.len() == 2 => run_idle(),
        ("", "") => run(false),
        _ => {
            eprintln!("net-bench: bad arguments {:?}\n{USAGE}", &args[1..]);
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("net-bench: {e}");
            ExitCode::from(1)
        }
    }
}

/// Why this host cannot run the benchmark, or `None`.
fn missing_privilege() -> Option<String> {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let caps = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    for (bit, name) in [(12, "CAP_NET_ADMIN"), (21, "CAP_SYS_ADMIN")] {
        if caps & (1 << bit) == 0 {
            return Some(format!(
                "needs {name} to make network namespaces (run as root)"
            ));
        }
    }
    let ip = Command::new("ip")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if ip.is_err() {
        return Some("iproute2's `ip` is not installed".into());
    }
    if !Path::new("/dev/net/tun").exists() {
        return Some("no /dev/net/tun".into());
    }
    None
}

// ---- namespaces ---------------------------------------------------------------

fn run_cmd(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .output()
        .map_err(|e| format!("{cmd:?}: cannot run: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A network namespace of ours, deleted (with its `/etc/netns` entry) on
/// drop.
struct Netns {
    name: String,
}

impl Netns {
    fn create(tag: &str) -> Result<Netns, String> {
        let name = format!("lklbench-{}-{tag}", std::process::id());
        run_cmd(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Netns { name };
        // `ip netns exec` binds this over /etc/resolv.conf: lookups fail at
        // once instead of leaving the namespace.
        let etc = ns.etc_dir();
        fs::create_dir_all(&etc)
            .and_then(|()| fs::write(etc.join("resolv.conf"), "nameserver 127.0.0.1\n"))
            .map_err(|e| format!("{}: {e}", etc.display()))?;
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    fn etc_dir(&self) -> PathBuf {
        Path::new("/etc/netns").join(&self.name)
    }

    fn ip(&self, args: &[&str]) -> Result<(), String> {
        run_cmd(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run_cmd(Command::new("ip").args(["netns", "del", &self.name]));
        let _ = fs::remove_dir_all(self.etc_dir());
    }
}

/// Deletes namespaces an earlier run left behind when it was killed
/// before its guards could (`lklbench-<pid>-*` whose process is gone).
fn remove_stale_namespaces() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(pid) = name
            .strip_prefix("lklbench-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new("/proc").join(pid.to_string()).exists() {
            drop(Netns {
                name: name.to_string(),
            });
        }
    }
}

/// Moves this thread (and the threads it starts later) into namespace
/// `name` (`/run/netns/<name>`, as `ip netns add` makes it).
fn enter_netns(name: &str) -> Result<(), String> {
    let path = Path::new("/run/netns").join(name);
    let f = fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    // SAFETY: setns takes a descriptor we hold open for the call and a
    // namespace type; it changes only the calling thread's network
    // namespace, which no memory safety depends on.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(format!(
            "setns {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

// ---- the parent ---------------------------------------------------------------

/// One setup's figures: throughput each way (Gbit/s), round trip (µs),
/// and round trip with every thread on one CPU (µs).
#[derive(Clone, Copy, Debug)]
struct Figures {
    up: f64,
    down: f64,
    rr: f64,
    rr_one_cpu: f64,
}

fn field(out: &str, key: &str) -> Option<f64> {
    out.lines()
        .find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
}

/// Runs the child `args` (then `mode`) twice, the second time on one CPU
/// for the latency alone; `None` if the kernel has no networking.
fn figures(args: &[&str], mode: &str, limit: Duration) -> Result<Option<Figures>, String> {
    let what = args.join(" ");
    let all = [args, &[mode, "all-cpus"]].concat();
    let out = run_child(&all, limit)?;
    if out.contains(NO_NET) {
        return Ok(None);
    }
    let one = [args, &[mode, "one-cpu"]].concat();
    let out1 = run_child(&one, limit)?;
    let bad = |o: &str| format!("{what} said: {o}");
    Ok(Some(Figures {
        up: field(&out, "up_gbit ").ok_or_else(|| bad(&out))?,
        down: field(&out, "down_gbit ").ok_or_else(|| bad(&out))?,
        rr: field(&out, "rr_us ").ok_or_else(|| bad(&out))?,
        rr_one_cpu: field(&out1, "rr_us ").ok_or_else(|| bad(&out1))?,
    }))
}

/// Puts this thread, and so every thread it starts later (the kernel's
/// too), on the first CPU it may use: round trips then cost no wake-up of
/// an idle CPU, which on a VM can be most of the time measured.
fn pin_to_one_cpu() -> Result<(), String> {
    // SAFETY: cpu_set_t is a plain bit array, valid all-zero; the
    // CPU_* helpers index within its size (cpu < CPU_SETSIZE) and
    // sched_{get,set}affinity get its true size; pid 0 is this thread.
    let rc = unsafe {
        let mut allowed: libc::cpu_set_t = std::mem::zeroed();
        let size = std::mem::size_of::<libc::cpu_set_t>();
        if libc::sched_getaffinity(0, size, &mut allowed) != 0 {
            -1
        } else {
            let setsize = usize::try_from(libc::CPU_SETSIZE).unwrap_or(0);
            match (0..setsize).find(|&cpu| libc::CPU_ISSET(cpu, &allowed)) {
                None => -1,
                Some(cpu) => {
                    let mut one: libc::cpu_set_t = std::mem::zeroed();
                    libc::CPU_SET(cpu, &mut one);
                    libc::sched_setaffinity(0, size, &one)
                }
            }
        }
    };
    if rc != 0 {
        return Err(format!(
            "sched_setaffinity: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Runs this program with `args` and returns its stdout, or why not; it is
/// killed after `limit`.
fn run_child(args: &[&str], limit: Duration) -> Result<String, String> {
    // Not current_exe(): a rebuild may have replaced the file since we
    // started, and the magic link still names what is running.
    let mut child = Command::new("/proc/self/exe")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("child {args:?}: {e}"))?;
    // The outputs are a few lines; read them on threads so that a chatty
    // child cannot block on a full pipe.
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let out_t = thread::spawn(move || {
        let mut s = String::new();
        if let Some(o) = out.as_mut() {
            let _ = o.read_to_string(&mut s);
        }
        s
    });
    let err_t = thread::spawn(move || {
        let mut s = String::new();
        if let Some(e) = err.as_mut() {
            let _ = e.read_to_string(&mut s);
        }
        s
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if start.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("waiting for child {args:?}: {e}")),
        }
    };
    let out = out_t.join().unwrap_or_default();
    let err = err_t.join().unwrap_or_default();
    match status {
        None => Err(format!("child {args:?}: no result after {limit:?}")),
        Some(s) if !s.success() => Err(format!("child {args:?}: {s}: {}", err.trim())),
        Some(_) => Ok(out),
    }
}

fn run(quick: bool) -> Result<(), String> {
    if let Some(why) = missing_privilege() {
        println!("net-bench: skipped ({why})");
        return Ok(());
    }
    let size = Size::new(quick);
    let mode = if quick { "quick" } else { "full" };
    let limit = size.stall + Duration::from_secs(20);
    println!(
        "net-bench: Linux {} as a library over tap vs the host kernel over veth, same run \
         ({} MiB per stream, {} round trips, {} run{} each{})",
        lkl::KERNEL_VERSION,
        size.bytes >> 20,
        size.round_trips,
        size.runs,
        if size.runs == 1 { "" } else { "s" },
        if size.runs == 1 { "" } else { ", median" },
    );

    remove_stale_namespaces();
    // Both setups first; each namespace is deleted when its guard drops,
    // however this function returns.
    let tap_ns = Netns::create("tap")?;
    let ns_a = Netns::create("va")?;
    let ns_b = Netns::create("vb")?;
    ns_a.ip(&[
        "link", "add", "va0", "type", "veth", "peer", "name", "vb0", "netns", &ns_b.name,
    ])?;
    ns_a.ip(&["addr", "add", &format!("{VETH_A}/24"), "dev", "va0"])?;
    ns_b.ip(&["addr", "add", &format!("{VETH_B}/24"), "dev", "vb0"])?;
    ns_a.ip(&["link", "set", "va0", "up"])?;
    ns_b.ip(&["link", "set", "vb0", "up"])?;

    let veth = figures(&["--child-veth", &ns_a.name, &ns_b.name], mode, limit)?
        .ok_or("the veth child saw no networking")?;
    let mut lkl = Vec::new();
    for offload in OFFLOADS {
        // A fresh tap for each: a persistent tap keeps the offloads the
        // last reader set (TUNSETOFFLOAD), and a reader without a vnet
        // header would then get GSO frames it cannot take.
        let _ = tap_ns.ip(&["link", "del", "tap0"]);
        tap_ns.ip(&["tuntap", "add", "dev", "tap0", "mode", "tap", "vnet_hdr"])?;
        tap_ns.ip(&["addr", "add", &format!("{TAP_HOST}/24"), "dev", "tap0"])?;
        tap_ns.ip(&["link", "set", "tap0", "up"])?;
        match figures(&["--child-lkl", &tap_ns.name, offload], mode, limit)? {
            Some(f) => lkl.push((offload, f)),
            None => {
                println!("net-bench: skipped (this kernel config has no networking)");
                return Ok(());
            }
        }
    }
    drop((tap_ns, ns_a, ns_b));

    println!(
        "{:<24} {:>22} {:>22} {:>18} {:>18}",
        "", "TCP out (dialer->)", "TCP in (->dialer)", "1-byte RR", "RR, 1 CPU"
    );
    println!(
        "{:<24} {:>15.2} Gbit/s {:>15.2} Gbit/s {:>15.1} us {:>15.1} us",
        "veth, host ns A -> B", veth.up, veth.down, veth.rr, veth.rr_one_cpu
    );
    for (offload, f) in &lkl {
        println!(
            "{:<24} {:>8.2} Gbit/s ({:.2}x) {:>8.2} Gbit/s ({:.2}x) {:>6.1} us ({:.2}x) {:>6.1} us ({:.2}x)",
            format!("lkl tap, offload {offload}"),
            f.up,
            f.up / veth.up,
            f.down,
            f.down / veth.down,
            f.rr,
            f.rr / veth.rr,
            f.rr_one_cpu,
            f.rr_one_cpu / veth.rr_one_cpu,
        );
    }
    // "Offloads on" is the better of the two offload values (by the slower
    // direction); the latency target is taken from the same run.
    let on = lkl
        .iter()
        .filter(|(o, _)| *o != "0")
        .max_by(|a, b| a.1.up.min(a.1.down).total_cmp(&b.1.up.min(b.1.down)));
    if let Some((offload, f)) = on {
        let tput = (f.up / veth.up).min(f.down / veth.down);
        let rr = f.rr / veth.rr;
        let rr1 = f.rr_one_cpu / veth.rr_one_cpu;
        let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
        println!(
            "targets (offload {offload}, the faster): throughput >= 0.5x veth: {tput:.2}x ({}); \
             latency <= 1.5x veth: {rr:.2}x ({}), on one CPU {rr1:.2}x ({})",
            verdict(tput >= 0.5),
            verdict(rr <= 1.5),
            verdict(rr1 <= 1.5),
        );
    }
    Ok(())
}

/// `--idle`: the CPU the process uses while nothing flows.
fn run_idle() -> Result<(), String> {
    if let Some(why) = missing_privilege() {
        println!("net-bench: skipped ({why})");
        return Ok(());
    }
    remove_stale_namespaces();
    let tap_ns = Netns::create("tap")?;
    tap_ns.ip(&["tuntap", "add", "dev", "tap0", "mode", "tap", "vnet_hdr"])?;
    tap_ns.ip(&["addr", "add", &format!("{TAP_HOST}/24"), "dev", "tap0"])?;
    tap_ns.ip(&["link", "set", "tap0", "up"])?;
    let out = run_child(
        &["--child-lkl", &tap_ns.name, "0x883", "quick", "idle"],
        Duration::from_secs(60),
    )?;
    let ms = field(&out, "idle_cpu_ms ").ok_or_else(|| format!("the idle child said: {out}"))?;
    println!(
        "net-bench --idle: {ms:.1} ms of CPU in {IDLE_SECS} s with the kernel up on a tap \
         and a connection open, no traffic ({:.2}% of one CPU)",
        ms / (IDLE_SECS as f64 * 10.0)
    );
    Ok(())
}

/// How long `--idle` measures.
const IDLE_SECS: u64 = 5;

/// CPU time (user + system) of this process so far, in ms.
fn process_cpu_ms() -> f64 {
    let stat = fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which ends with the last ')').
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13
    // after the name.
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| f.get(i).and_then(|v| v.parse::<f64>().ok()))
        .sum();
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks * 1000.0 / hz
}

/// A few round trips (so every path ran), then [`IDLE_SECS`] of nothing
/// with the connection open; prints `idle_cpu_ms`.
fn measure_idle(listener: &TcpListener, dial: Dial) -> Result<(), String> {
    let (mut d, mut l) = connect(listener, dial)?;
    let mut b = [1u8; 1];
    for _ in 0..100 {
        d.write(&b)?;
        l.read(&mut b)?;
        l.write(&b)?;
        d.read(&mut b)?;
    }
    // Let delayed work (ACK timers, the tick) settle first.
    thread::sleep(Duration::from_millis(500));
    let before = process_cpu_ms();
    thread::sleep(Duration::from_secs(IDLE_SECS));
    let used = process_cpu_ms() - before;
    println!("idle_cpu_ms {used}");
    drop((d, l));
    Ok(())
}

/// `--rr N`: round trips only, veth and lkl alternating, N pairs.
fn run_rr(n: usize) -> Result<(), String> {
    if let Some(why) = missing_privilege() {
        println!("net-bench: skipped ({why})");
        return Ok(());
    }
    let size = Size::new(true);
    let limit = size.stall + Duration::from_secs(20);
    remove_stale_namespaces();
    let tap_ns = Netns::create("tap")?;
    let ns_a = Netns::create("va")?;
    let ns_b = Netns::create("vb")?;
    ns_a.ip(&[
        "link", "add", "va0", "type", "veth", "peer", "name", "vb0", "netns", &ns_b.name,
    ])?;
    ns_a.ip(&["addr", "add", &format!("{VETH_A}/24"), "dev", "va0"])?;
    ns_b.ip(&["addr", "add", &format!("{VETH_B}/24"), "dev", "vb0"])?;
    ns_a.ip(&["link", "set", "va0", "up"])?;
    ns_b.ip(&["link", "set", "vb0", "up"])?;
    tap_ns.ip(&["tuntap", "add", "dev", "tap0", "mode", "tap", "vnet_hdr"])?;
    tap_ns.ip(&["addr", "add", &format!("{TAP_HOST}/24"), "dev", "tap0"])?;
    tap_ns.ip(&["link", "set", "tap0", "up"])?;
    println!(
        "net-bench --rr: {} round trips per figure, veth and lkl (offload 0x883) alternating",
        size.round_trips
    );
    println!(
        "{:>4} {:>9} {:>9} {:>6} {:>10} {:>10} {:>6}",
        "", "veth", "lkl", "ratio", "veth 1cpu", "lkl 1cpu", "ratio"
    );
    let rr = |args: &[&str], cpus: &str| -> Result<f64, String> {
        let all = [args, &["quick", cpus]].concat();
        let out = run_child(&all, limit)?;
        field(&out, "rr_us ").ok_or_else(|| format!("{} said: {out}", args.join(" ")))
    };
    let veth_args = ["--child-veth", ns_a.name.as_str(), ns_b.name.as_str()];
    let lkl_args = ["--child-lkl", tap_ns.name.as_str(), "0x883"];
    let mut rows = Vec::new();
    for i in 1..=n {
        let v = rr(&veth_args, "rr-all-cpus")?;
        let l = rr(&lkl_args, "rr-all-cpus")?;
        let v1 = rr(&veth_args, "one-cpu")?;
        let l1 = rr(&lkl_args, "one-cpu")?;
        println!(
            "{i:>4} {v:>6.1} us {l:>6.1} us {:>5.2}x {v1:>7.1} us {l1:>7.1} us {:>5.2}x",
            l / v,
            l1 / v1
        );
        rows.push([v, l, l / v, v1, l1, l1 / v1]);
    }
    let col = |k: usize| -> (f64, f64, f64) {
        let v: Vec<f64> = rows.iter().map(|r| r[k]).collect();
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (median(v), lo, hi)
    };
    for (k, name) in [
        (0, "veth"),
        (1, "lkl"),
        (2, "ratio lkl/veth"),
        (3, "veth, one CPU"),
        (4, "lkl, one CPU"),
        (5, "ratio, one CPU"),
    ] {
        let (m, lo, hi) = col(k);
        println!("{name:<16} median {m:>7.2}  range {lo:.2} .. {hi:.2}");
    }
    Ok(())
}

// ---- streams ------------------------------------------------------------------

/// One end of a TCP connection: a host socket or a kernel one.
trait Stream: Send {
    /// Bytes read; 0 at end of stream.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, String>;
    /// Bytes written (at least one).
    fn write(&mut self, buf: &[u8]) -> Result<usize, String>;
    fn nodelay(&mut self) -> Result<(), String>;
    fn shutdown_write(&mut self) -> Result<(), String>;
}

impl Stream for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, String> {
        Read::read(self, buf).map_err(|e| format!("host read: {e}"))
    }
    fn write(&mut self, buf: &[u8]) -> Result<usize, String> {
        match Write::write(self, buf) {
            Ok(0) => Err("host write: wrote nothing".into()),
            Ok(n) => Ok(n),
            Err(e) => Err(format!("host write: {e}")),
        }
    }
    fn nodelay(&mut self) -> Result<(), String> {
        self.set_nodelay(true)
            .map_err(|e| format!("host TCP_NODELAY: {e}"))
    }
    fn shutdown_write(&mut self) -> Result<(), String> {
        self.shutdown(Shutdown::Write)
            .map_err(|e| format!("host shutdown: {e}"))
    }
}

/// A kernel socket, closed on drop.
struct KernelStream(i32);

impl KernelStream {
    /// Connects to `to`, from the kernel.
    fn connect(to: Ipv4Addr, port: u16) -> Result<KernelStream, String> {
        let fd = sys::socket(abi::AF_INET, abi::SOCK_STREAM | abi::SOCK_CLOEXEC, 0)
            .map_err(|e| format!("kernel socket: {e}"))?;
        let s = KernelStream(fd);
        sys::connect_in(fd, &abi::SockAddrIn::new(to, port))
            .map_err(|e| format!("kernel connect to {to}:{port}: {e}"))?;
        Ok(s)
    }
}

impl Drop for KernelStream {
    fn drop(&mut self) {
        let _ = sys::close(self.0);
    }
}

impl Stream for KernelStream {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, String> {
        loop {
            match sys::read(self.0, buf) {
                Err(Errno::EINTR) => continue,
                r => return r.map_err(|e| format!("kernel read: {e}")),
            }
        }
    }
    fn write(&mut self, buf: &[u8]) -> Result<usize, String> {
        loop {
            match sys::write(self.0, buf) {
                Err(Errno::EINTR) => continue,
                Ok(0) => return Err("kernel write: wrote nothing".into()),
                r => return r.map_err(|e| format!("kernel write: {e}")),
            }
        }
    }
    fn nodelay(&mut self) -> Result<(), String> {
        sys::setsockopt_int(self.0, abi::IPPROTO_TCP, abi::TCP_NODELAY, 1)
            .map_err(|e| format!("kernel TCP_NODELAY: {e}"))
    }
    fn shutdown_write(&mut self) -> Result<(), String> {
        sys::shutdown(self.0, abi::SHUT_WR).map_err(|e| format!("kernel shutdown: {e}"))
    }
}

type Dial<'a> = &'a dyn Fn() -> Result<Box<dyn Stream>, String>;
/// Both ends of one connection: `(dialer's end, listener's end)`.
type Connection = (Box<dyn Stream>, Box<dyn Stream>);

/// A fresh connection.
fn connect(listener: &TcpListener, dial: Dial) -> Result<Connection, String> {
    // The listener's kernel completes the handshake from its backlog, so
    // dialling before accepting does not wait.
    let dialer = dial()?;
    let (accepted, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
    Ok((dialer, Box::new(accepted)))
}

/// Gbit/s of `bytes` from `tx` to `rx`, from the first write until the
/// receiver has seen the end of the stream.
fn throughput(
    mut tx: Box<dyn Stream>,
    mut rx: Box<dyn Stream>,
    bytes: usize,
) -> Result<f64, String> {
    let receiver = thread::spawn(move || -> Result<usize, String> {
        let mut buf = vec![0u8; CHUNK];
        let mut total = 0;
        loop {
            let n = rx.read(&mut buf)?;
            if n == 0 {
                return Ok(total);
            }
            total += n;
        }
    });
    let buf = vec![0x5au8; CHUNK];
    let t0 = Instant::now();
    let mut sent = 0;
    while sent < bytes {
        sent += tx.write(&buf[..CHUNK.min(bytes - sent)])?;
    }
    tx.shutdown_write()?;
    let got = receiver
        .join()
        .map_err(|_| "receiver thread panicked".to_string())??;
    let secs = t0.elapsed().as_secs_f64();
    if got != sent {
        return Err(format!("sent {sent} bytes, {got} arrived"));
    }
    Ok(got as f64 * 8.0 / secs / 1e9)
}

/// µs per 1-byte round trip (`TCP_NODELAY` on both ends), the median of
/// [`RR_BATCHES`] batch means; the listener's end echoes.
fn round_trip(
    mut client: Box<dyn Stream>,
    mut server: Box<dyn Stream>,
    n: usize,
) -> Result<f64, String> {
    client.nodelay()?;
    server.nodelay()?;
    let echo = thread::spawn(move || -> Result<(), String> {
        let mut b = [0u8; 1];
        while server.read(&mut b)? == 1 {
            server.write(&b)?;
        }
        Ok(())
    });
    let mut b = [7u8; 1];
    let mut once = |c: &mut Box<dyn Stream>| -> Result<(), String> {
        c.write(&b)?;
        if c.read(&mut b)? != 1 {
            return Err("the echo side closed".into());
        }
        Ok(())
    };
    for _ in 0..n / 10 {
        once(&mut client)?;
    }
    // The median of 10 batches' means: one stall of the machine (other
    // work on a shared CPU) moves one batch, not the figure.
    let batch = (n / RR_BATCHES).max(1);
    let mut means = Vec::with_capacity(RR_BATCHES);
    for _ in 0..RR_BATCHES {
        let t0 = Instant::now();
        for _ in 0..batch {
            once(&mut client)?;
        }
        means.push(t0.elapsed().as_secs_f64() * 1e6 / batch as f64);
    }
    let us = median(means);
    client.shutdown_write()?;
    echo.join()
        .map_err(|_| "echo thread panicked".to_string())??;
    Ok(us)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Measures and prints `up_gbit`, `down_gbit` and `rr_us` for connections
/// made by `dial` to `listener`.
fn measure(listener: &TcpListener, dial: Dial, size: Size, rr_only: bool) -> Result<(), String> {
    let (mut up, mut down, mut rr) = (Vec::new(), Vec::new(), Vec::new());
    for run in 1..=size.runs {
        if !rr_only {
            set_phase(format!("run {run}: stream out (dialer -> listener)"));
            let (d, l) = connect(listener, dial)?;
            up.push(throughput(d, l, size.bytes)?);
            set_phase(format!("run {run}: stream in (listener -> dialer)"));
            let (d, l) = connect(listener, dial)?;
            down.push(throughput(l, d, size.bytes)?);
        }
        set_phase(format!("run {run}: request/response"));
        let (d, l) = connect(listener, dial)?;
        rr.push(round_trip(d, l, size.round_trips)?);
    }
    set_phase("done".into());
    if !rr_only {
        println!("up_gbit {}", median(up));
        println!("down_gbit {}", median(down));
    }
    println!("rr_us {}", median(rr));
    Ok(())
}

// ---- the children -----------------------------------------------------------

/// What the child is measuring, for a stall report.
static PHASE: Mutex<String> = Mutex::new(String::new());

fn set_phase(what: String) {
    if let Ok(mut p) = PHASE.lock() {
        *p = what;
    }
}

/// Ends this process with status 3 and a report on stderr (the phase, and
/// `details()`) if it is still running after `after`: a stalled TCP
/// stream would otherwise wait forever.
fn watchdog(after: Duration, details: impl Fn() -> String + Send + 'static) {
    thread::spawn(move || {
        thread::sleep(after);
        let phase = PHASE.lock().map(|p| p.clone()).unwrap_or_default();
        eprintln!(
            "stalled: no result after {}s, during {phase}{}",
            after.as_secs(),
            details()
        );
        std::process::exit(3);
    });
}

/// The host kernel on both ends: listen in namespace B, dial from A.
fn child_veth(
    ns_a: &str,
    ns_b: &str,
    size: Size,
    one_cpu: bool,
    rr_only: bool,
) -> Result<(), String> {
    if one_cpu {
        pin_to_one_cpu()?;
    }
    set_phase("setup".into());
    watchdog(size.stall, String::new);
    enter_netns(ns_b)?;
    let listener = TcpListener::bind((VETH_B, 0)).map_err(|e| format!("bind in B: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    enter_netns(ns_a)?;
    let dial = || -> Result<Box<dyn Stream>, String> {
        let s = TcpStream::connect((VETH_B, port)).map_err(|e| format!("connect from A: {e}"))?;
        Ok(Box::new(s))
    };
    measure(&listener, &dial, size, rr_only)
}

/// The kernel on the namespace's tap with LKL `offload` `offload`; the
/// host listens on the tap's address.
fn child_lkl(
    ns: &str,
    offload: &str,
    size: Size,
    one_cpu: bool,
    rr_only: bool,
    idle: bool,
) -> Result<(), String> {
    if one_cpu {
        pin_to_one_cpu()?;
    }
    enter_netns(ns)?;
    let json = format!(
        r#"{{"interfaces":[{{"type":"tap","param":"tap0","ip":"{TAP_LKL}","masklen":"24",
            "mac":"02:00:00:00:79:02","offload":"{offload}"}}]}}"#
    );
    let config = Config::parse_str(&json).map_err(|e| format!("config: {e}"))?;
    let iface = &config.interfaces[0];
    let features = u64::from(iface.offload.bits());
    let backend = open_backend(&iface.backend, features != 0).map_err(|e| e.to_string())?;
    let net = Net::new(backend, features, iface.mac.map(|m| m.0)).map_err(|e| e.to_string())?;
    let metrics = net.metrics();
    set_phase("boot and setup".into());
    watchdog(size.stall, move || {
        let json = serde_json::to_string(&*metrics).unwrap_or_default();
        format!("; virtio-net metrics: {json}")
    });
    let device = lkl::devices::attach(Box::new(net)).map_err(|e| e.to_string())?;
    let kernel = Kernel::boot(BootOptions {
        memory: 256 << 20,
        ..Default::default()
    })
    .map_err(|e| format!("boot: {e}"))?;
    let result = (|| {
        if sys::socket(abi::AF_INET, abi::SOCK_DGRAM, 0)
            .map(sys::close)
            .is_err()
        {
            println!("{NO_NET}");
            return Ok(());
        }
        lkl::netcfg::apply(&config, &[(0, "eth0".to_string())]).map_err(|e| e.to_string())?;
        let listener = TcpListener::bind((TAP_HOST, 0)).map_err(|e| format!("host bind: {e}"))?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let dial = || -> Result<Box<dyn Stream>, String> {
            Ok(Box::new(KernelStream::connect(TAP_HOST, port)?))
        };
        if idle {
            return measure_idle(&listener, &dial);
        }
        measure(&listener, &dial, size, rr_only)
    })();
    let _ = kernel.halt();
    drop(device);
    result
}
