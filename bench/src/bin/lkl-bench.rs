//! Benchmarks of the kernel library, each next to the host kernel measured
//! in the same run. Prints figures; asserts nothing.
//!
//! Usage: lkl-bench [--quick] | lkl-bench --boot-profile
//! `--boot-profile` boots once with `initcall_debug` and prints the
//! kernel's log, the slowest initcalls (as addresses: `nm` the binary,
//! minus the first mapping's start, names them), the resident memory per
//! mapping and the kernel's tasks; `LKL_BENCH_CMDLINE` adds kernel
//! parameters (to the boot-time runs too), `LKL_BENCH_SMAPS=1` adds the raw
//! smaps, meminfo and vmstat.
//! Boot-time and memory-floor figures come from child processes (the
//! kernel boots once per process); the host's TCP figures come from a
//! child in a fresh network namespace (root only; skipped otherwise).

use std::process::Command;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use lkl::host::Console;
use lkl::syscall::{self as sys, abi};
use lkl::{BootOptions, Kernel};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--child-boot") => return child_boot(&args[2]),
        Some("--boot-profile") => return boot_profile(),
        Some("--child-host-net") => {
            return child_host_net(args.get(2).map(String::as_str) == Some("quick"))
        }
        _ => {}
    }
    let quick = args.iter().any(|a| a == "--quick");
    let exe = std::env::current_exe().expect("own path");

    println!(
        "lkl-bench: Linux {} as a library (config: {})",
        lkl::KERNEL_VERSION,
        option_env!("LKL_CONFIG").unwrap_or("defconfig")
    );

    // Boot time, from fresh processes.
    // Quick still takes 15: a median of 5 moved by 2 ms between CI runs.
    let runs = if quick { 15 } else { 30 };
    let mut boots: Vec<f64> = (0..runs)
        .filter_map(|_| run_child(&exe, &["--child-boot", "32M"]))
        .filter_map(|out| {
            out.lines()
                .find_map(|l| l.strip_prefix("boot_ms ")?.trim().parse().ok())
        })
        .collect();
    boots.sort_by(f64::total_cmp);
    if let Some(m) = median(&boots) {
        println!("boot to first syscall (mem=32M):      median {m:.2} ms (min {:.2}, max {:.2}, {} runs)", boots[0], boots[boots.len() - 1], boots.len());
    }

    // Smallest mem= that boots.
    let mut floor = None;
    for mib in [32u64, 16, 8, 6, 5, 4, 3, 2] {
        let ok = run_child(&exe, &["--child-boot", &format!("{mib}M")])
            .is_some_and(|o| o.contains("boot_ms"));
        if ok {
            floor = Some(mib);
        } else {
            break;
        }
    }
    match floor {
        Some(m) => println!(
            "smallest mem= that boots:             {m}M (tried 32, 16, 8, 6, 5, 4, 3, 2 MiB)"
        ),
        None => println!("smallest mem= that boots:             none of the sizes tried"),
    }

    let before_threads = host_threads();
    let t0 = Instant::now();
    let kernel = Kernel::boot(BootOptions {
        memory: 32 << 20,
        console: Console::Silent,
        ..Default::default()
    })
    .expect("boot");
    let boot = t0.elapsed();
    thread::sleep(Duration::from_millis(50));
    println!(
        "boot in this process:                 {:.2} ms",
        boot.as_secs_f64() * 1e3
    );
    println!(
        "host threads at idle:                 {} (process had {before_threads} before boot)",
        host_threads() - before_threads
    );
    println!(
        "resident memory after boot (mem=32M): {:.1} MiB (VmRSS of the whole process)",
        rss_kib() as f64 / 1024.0
    );
    let (image, ram, other) = rss_split();
    println!(
        "  of which: program image {:.1} MiB (kernel code and data included), kernel RAM touched {:.1} MiB, other {:.1} MiB",
        image as f64 / 1024.0,
        ram as f64 / 1024.0,
        other as f64 / 1024.0
    );

    // Empty syscall, one thread.
    let n = if quick { 200_000 } else { 2_000_000 };
    let lkl_ns = per_call(n, || {
        let _ = sys::getpid();
    });
    let host_ns = per_call(n, || {
        // SAFETY: getpid has no arguments and no side effects.
        unsafe { libc::syscall(libc::SYS_getpid) };
    });
    println!("getpid, 1 thread:                     lkl {lkl_ns:.1} ns   host {host_ns:.1} ns   ratio {:.2}", lkl_ns / host_ns);

    // 8 threads at once.
    for threads in [2usize, 8] {
        let per = if quick { 20_000 } else { 100_000 };
        let lkl_mt = concurrent(threads, per, || {
            let _ = sys::getpid();
        });
        let host_mt = concurrent(threads, per, || {
            // SAFETY: as above.
            unsafe { libc::syscall(libc::SYS_getpid) };
        });
        println!(
            "getpid, {threads} threads at once:          lkl {:.0} ns/call   host {:.0} ns/call   ratio {:.1}",
            lkl_mt,
            host_mt,
            lkl_mt / host_mt
        );
    }

    // TCP over the kernel's loopback, and the host's in a fresh netns.
    if sys::if_set_up("lo", true).is_ok() {
        let bytes: usize = if quick { 64 << 20 } else { 512 << 20 };
        let rr_n = if quick { 2_000 } else { 10_000 };
        let lkl_tput = tcp_throughput(&KernelNet, bytes);
        let lkl_rr = tcp_rr(&KernelNet, rr_n);
        let host = run_child_netns(&exe, quick);
        let host_tput: Option<f64> = host.as_ref().and_then(|o| field(o, "tput_gbit"));
        let host_rr: Option<f64> = host.as_ref().and_then(|o| field(o, "rr_us"));
        match (host_tput, host_rr) {
            (Some(ht), Some(hr)) => {
                println!("TCP loopback throughput:              lkl {lkl_tput:.2} Gbit/s   host {ht:.2} Gbit/s   ratio {:.2}", lkl_tput / ht);
                println!("TCP 1-byte request/response:          lkl {lkl_rr:.1} us   host {hr:.1} us   ratio {:.2}", lkl_rr / hr);
            }
            _ => {
                println!("TCP loopback throughput:              lkl {lkl_tput:.2} Gbit/s   host: not measured (needs root for a network namespace)");
                println!(
                    "TCP 1-byte request/response:          lkl {lkl_rr:.1} us   host: not measured"
                );
            }
        }
    } else {
        println!("TCP figures: skipped (this kernel config has no networking)");
    }

    kernel.halt().expect("halt");
    println!(
        "host threads after halt:              {} (before boot: {before_threads})",
        host_threads()
    );
}

fn field(out: &str, key: &str) -> Option<f64> {
    out.lines()
        .find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
}

fn median(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v[v.len() / 2])
}

fn run_child(exe: &std::path::Path, args: &[&str]) -> Option<String> {
    let out = Command::new(exe).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn child_boot(mem: &str) {
    let mib: u64 = mem.trim_end_matches('M').parse().expect("size in MiB");
    let t0 = Instant::now();
    let kernel = Kernel::boot(BootOptions {
        memory: mib << 20,
        cmdline: std::env::var("LKL_BENCH_CMDLINE").unwrap_or_default(),
        ..Default::default()
    })
    .expect("boot");
    let _ = sys::getpid();
    println!("boot_ms {}", t0.elapsed().as_secs_f64() * 1e3);
    kernel.halt().expect("halt");
}

/// Boots with `initcall_debug` and prints the kernel's log (printk
/// timestamps, one line per initcall with its duration), the initcalls
/// sorted by duration, and where the process's resident memory sits.
fn boot_profile() {
    let log = lkl::host::ConsoleBuffer::new();
    let t0 = Instant::now();
    let kernel = Kernel::boot(BootOptions {
        memory: 32 << 20,
        console: Console::Buffer(log.clone()),
        cmdline: format!(
            "initcall_debug {}",
            std::env::var("LKL_BENCH_CMDLINE").unwrap_or_default()
        ),
        loglevel: Some(8),
    })
    .expect("boot");
    let _ = sys::getpid();
    let boot = t0.elapsed();
    let text = log.contents();
    print!("{text}");
    println!("boot_ms {}", boot.as_secs_f64() * 1e3);
    let mut calls: Vec<(u64, &str)> = text
        .lines()
        .filter_map(|l| {
            let (_, rest) = l.split_once("initcall ")?;
            let (name, after) = rest.split_once(" returned ")?;
            let us = after.split_once(" after ")?.1.split_whitespace().next()?;
            Some((us.parse().ok()?, name))
        })
        .collect();
    calls.sort_by_key(|c| std::cmp::Reverse(c.0));
    let total: u64 = calls.iter().map(|c| c.0).sum();
    println!(
        "initcalls: {} taking {total} us in all; slowest:",
        calls.len()
    );
    for (us, name) in calls.iter().take(40) {
        println!("  {us:>6} us  {name}");
    }
    if let Ok(maps) = std::fs::read_to_string("/proc/self/maps") {
        if let Some(l) = maps.lines().next() {
            println!("first mapping: {l}");
        }
    }
    print_smaps();
    print_tasks();
    kernel.halt().expect("halt");
}

/// The kernel's tasks (each kernel thread has a host thread), from its /proc.
fn print_tasks() {
    let _ = sys::mkdir("/proc", 0o555);
    if sys::mount("proc", "/proc", "proc", 0, None).is_err() {
        return;
    }
    let mut names = Vec::new();
    for pid in sys::read_dir("/proc").unwrap_or_default() {
        if pid.parse::<u32>().is_err() {
            continue;
        }
        if let Ok(fd) = sys::open(&format!("/proc/{pid}/comm"), abi::O_RDONLY, 0) {
            let mut buf = [0u8; 64];
            let n = sys::read(fd, &mut buf).unwrap_or(0);
            let _ = sys::close(fd);
            names.push(format!(
                "{pid}:{}",
                String::from_utf8_lossy(&buf[..n]).trim()
            ));
        }
    }
    println!("kernel tasks ({}): {}", names.len(), names.join(" "));
    if std::env::var_os("LKL_BENCH_SMAPS").is_some() {
        for f in ["/proc/meminfo", "/proc/slabinfo", "/proc/vmstat"] {
            if let Ok(fd) = sys::open(f, abi::O_RDONLY, 0) {
                let mut all = Vec::new();
                let mut buf = vec![0u8; 65536];
                while let Ok(n) = sys::read(fd, &mut buf) {
                    if n == 0 {
                        break;
                    }
                    all.extend_from_slice(&buf[..n]);
                }
                let _ = sys::close(fd);
                println!("== {f}\n{}", String::from_utf8_lossy(&all));
            }
        }
    }
}

/// Resident KiB in the program's own file mappings, in the kernel's RAM,
/// and elsewhere (libraries, heap, stacks), from /proc/self/smaps.
fn rss_split() -> (u64, u64, u64) {
    let exe = std::env::current_exe().ok();
    let exe = exe.as_ref().and_then(|p| p.to_str()).unwrap_or("");
    let ram = lkl::host::kernel_ram();
    let (mut image, mut in_ram, mut other) = (0, 0, 0);
    let mut kind = 2;
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
    for l in smaps.lines() {
        let first = l.split_whitespace().next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-').filter(|_| !first.ends_with(':')) {
            let start = usize::from_str_radix(a, 16).unwrap_or(0);
            let end = usize::from_str_radix(b, 16).unwrap_or(0);
            kind = if !exe.is_empty() && l.ends_with(exe) {
                0
            } else if ram.is_some_and(|(base, len)| start < base + len && end > base) {
                1
            } else {
                2
            };
        } else if let Some(kb) = l.strip_prefix("Rss:") {
            let kb: u64 = kb.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
            match kind {
                0 => image += kb,
                1 => in_ram += kb,
                _ => other += kb,
            }
        }
    }
    (image, in_ram, other)
}

/// Resident memory per mapping (largest first), from /proc/self/smaps.
fn print_smaps() {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    let mut rows: Vec<(u64, String)> = Vec::new();
    let mut head = String::new();
    for l in smaps.lines() {
        if let Some(kb) = l.strip_prefix("Rss:") {
            let kb = kb.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
            rows.push((kb, head.clone()));
        } else if l.split_whitespace().next().is_some_and(|w| w.contains('-')) {
            head = l.to_string();
        }
    }
    if std::env::var_os("LKL_BENCH_SMAPS").is_some() {
        print!("{smaps}");
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.0));
    let total: u64 = rows.iter().map(|r| r.0).sum();
    println!("resident: {total} KiB in all; per mapping:");
    for (kb, h) in rows.iter().filter(|r| r.0 > 0) {
        println!("  {kb:>6} KiB  {h}");
    }
}

fn run_child_netns(exe: &std::path::Path, quick: bool) -> Option<String> {
    run_child(
        exe,
        &["--child-host-net", if quick { "quick" } else { "full" }],
    )
}

/// Host side of the TCP figures, in a network namespace of its own.
fn child_host_net(quick: bool) {
    // SAFETY: unshare affects only this (single-threaded so far) process.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        std::process::exit(1);
    }
    host_lo_up();
    let bytes: usize = if quick { 64 << 20 } else { 512 << 20 };
    let rr_n = if quick { 2_000 } else { 10_000 };
    println!("tput_gbit {}", tcp_throughput(&HostNet, bytes));
    println!("rr_us {}", tcp_rr(&HostNet, rr_n));
}

fn host_lo_up() {
    // SAFETY: a plain ioctl on a fresh socket with a local ifreq.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
        let mut req: libc::ifreq = std::mem::zeroed();
        req.ifr_name[..2].copy_from_slice(&[b'l' as libc::c_char, b'o' as libc::c_char]);
        libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req);
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as i16;
        libc::ioctl(fd, libc::SIOCSIFFLAGS, &mut req);
        libc::close(fd);
    }
}

fn per_call(n: usize, f: impl Fn()) -> f64 {
    for _ in 0..n / 10 {
        f();
    }
    let t0 = Instant::now();
    for _ in 0..n {
        f();
    }
    t0.elapsed().as_nanos() as f64 / n as f64
}

/// Mean cost per call with `threads` threads calling at once: wall-clock
/// time from the first thread's start to the last one's end, over all
/// calls made (the kernel's one CPU serialises them).
fn concurrent(threads: usize, per_thread: usize, f: fn()) -> f64 {
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let b = barrier.clone();
            thread::spawn(move || {
                f();
                b.wait();
                let start = Instant::now();
                for _ in 0..per_thread {
                    f();
                }
                (start, Instant::now())
            })
        })
        .collect();
    let spans: Vec<(Instant, Instant)> = handles
        .into_iter()
        .map(|h| h.join().expect("worker"))
        .collect();
    let first = spans.iter().map(|s| s.0).min().expect("threads");
    let last = spans.iter().map(|s| s.1).max().expect("threads");
    (last - first).as_nanos() as f64 / (threads * per_thread) as f64
}

fn host_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("VmRSS:")?
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse()
                    .ok()
            })
        })
        .unwrap_or(0)
}

/// The socket calls the TCP figures need, from the kernel library or the host.
trait Net: Sync {
    fn listener(&self) -> (i32, u16);
    fn connect(&self, port: u16) -> i32;
    fn accept(&self, fd: i32) -> i32;
    fn read(&self, fd: i32, buf: &mut [u8]) -> usize;
    fn write(&self, fd: i32, buf: &[u8]) -> usize;
    fn nodelay(&self, fd: i32);
    fn close(&self, fd: i32);
}

struct KernelNet;
struct HostNet;

impl Net for KernelNet {
    fn listener(&self) -> (i32, u16) {
        let fd = sys::socket(abi::AF_INET, abi::SOCK_STREAM, 0).expect("socket");
        sys::setsockopt_int(fd, abi::SOL_SOCKET, abi::SO_REUSEADDR, 1).expect("reuseaddr");
        sys::bind_in(fd, &abi::SockAddrIn::new(std::net::Ipv4Addr::LOCALHOST, 0)).expect("bind");
        sys::listen(fd, 16).expect("listen");
        (fd, sys::getsockname_in(fd).expect("getsockname").port())
    }
    fn connect(&self, port: u16) -> i32 {
        let fd = sys::socket(abi::AF_INET, abi::SOCK_STREAM, 0).expect("socket");
        sys::connect_in(
            fd,
            &abi::SockAddrIn::new(std::net::Ipv4Addr::LOCALHOST, port),
        )
        .expect("connect");
        fd
    }
    fn accept(&self, fd: i32) -> i32 {
        sys::accept(fd, 0).expect("accept")
    }
    fn read(&self, fd: i32, buf: &mut [u8]) -> usize {
        sys::read(fd, buf).expect("read")
    }
    fn write(&self, fd: i32, buf: &[u8]) -> usize {
        sys::write(fd, buf).expect("write")
    }
    fn nodelay(&self, fd: i32) {
        sys::setsockopt_int(fd, abi::IPPROTO_TCP, abi::TCP_NODELAY, 1).expect("nodelay");
    }
    fn close(&self, fd: i32) {
        let _ = sys::close(fd);
    }
}

impl Net for HostNet {
    fn listener(&self) -> (i32, u16) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        (std::os::fd::IntoRawFd::into_raw_fd(l), port)
    }
    fn connect(&self, port: u16) -> i32 {
        let s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        std::os::fd::IntoRawFd::into_raw_fd(s)
    }
    fn accept(&self, fd: i32) -> i32 {
        // SAFETY: accept on a listening socket, no address wanted.
        unsafe { libc::accept(fd, std::ptr::null_mut(), std::ptr::null_mut()) }
    }
    fn read(&self, fd: i32, buf: &mut [u8]) -> usize {
        // SAFETY: reads into a valid buffer.
        unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) }.max(0) as usize
    }
    fn write(&self, fd: i32, buf: &[u8]) -> usize {
        // SAFETY: writes from a valid buffer.
        unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) }.max(0) as usize
    }
    fn nodelay(&self, fd: i32) {
        let one: libc::c_int = 1;
        // SAFETY: an int option of the right size.
        unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                (&one as *const i32).cast(),
                4,
            )
        };
    }
    fn close(&self, fd: i32) {
        // SAFETY: closes a descriptor this code opened.
        unsafe { libc::close(fd) };
    }
}

/// Gbit/s of one TCP stream: 64 KiB writes, 128 KiB reads, two threads.
fn tcp_throughput<N: Net>(net: &N, bytes: usize) -> f64 {
    let (l, port) = net.listener();
    thread::scope(|s| {
        let rx = s.spawn(|| {
            let c = net.accept(l);
            let mut buf = vec![0u8; 128 << 10];
            let mut total = 0;
            loop {
                let n = net.read(c, &mut buf);
                if n == 0 {
                    break;
                }
                total += n;
            }
            net.close(c);
            total
        });
        let c = net.connect(port);
        let buf = vec![1u8; 64 << 10];
        let t0 = Instant::now();
        let mut sent = 0;
        while sent < bytes {
            sent += net.write(c, &buf);
        }
        net.close(c);
        let got = rx.join().expect("receiver");
        let secs = t0.elapsed().as_secs_f64();
        net.close(l);
        got as f64 * 8.0 / secs / 1e9
    })
}

/// Mean µs per 1-byte round trip with TCP_NODELAY.
fn tcp_rr<N: Net>(net: &N, n: usize) -> f64 {
    let (l, port) = net.listener();
    thread::scope(|s| {
        s.spawn(|| {
            let c = net.accept(l);
            net.nodelay(c);
            let mut b = [0u8; 1];
            while net.read(c, &mut b) == 1 {
                net.write(c, &b);
            }
            net.close(c);
        });
        let c = net.connect(port);
        net.nodelay(c);
        let mut b = [0u8; 1];
        for _ in 0..n / 10 {
            net.write(c, &b);
            net.read(c, &mut b);
        }
        let t0 = Instant::now();
        for _ in 0..n {
            net.write(c, &b);
            net.read(c, &mut b);
        }
        let us = t0.elapsed().as_secs_f64() * 1e6 / n as f64;
        net.close(c);
        net.close(l);
        us
    })
}
