//! `hijack-stress`: many TCP connections through whatever stack the process
//! has. Run under the hijack (`bin/lkl-hijack.sh hijack-stress ...`) its
//! sockets live in the in-process kernel; run plainly it measures the host.
//!
//! ```text
//! hijack-stress [--threads N] [--conns N] [--held N] [--soak SECS]
//!               [--connect ADDR:PORT] [--serve ADDR:PORT]
//! ```
//!
//! Without `--connect`, a server runs in the same process on 127.0.0.1 (the
//! kernel's loopback when hijacked). Phases, each printed with its figures:
//! 1. churn: `--threads` client threads each open, use and close `--conns`
//!    connections (request, echoed reply, server closes first so TIME_WAIT
//!    stays with the server's 4-tuples, as a real server arranges);
//! 2. held: `--held` connections open at once, each then used once;
//! 3. soak (`--soak SECS`): mixed short and long-lived connections with
//!    random-sized echoes; host fds, threads and resident memory sampled
//!    after a warm-up must not grow (fds, threads) or grow by more than 10%
//!    (memory).
//!
//! Exits 1 on any failed connection or growth, after printing the figures.
//! `--serve ADDR:PORT` runs only the server (for the host side of a tap).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// First byte of a connection: echo one message, then the server closes.
const ONCE: u8 = b'E';
/// First byte of a connection: echo everything until the client closes.
const HOLD: u8 = b'H';

struct Options {
    threads: usize,
    conns: usize,
    held: usize,
    soak: Option<u64>,
    connect: Option<SocketAddr>,
    serve: Option<SocketAddr>,
}

const USAGE: &str = "usage: hijack-stress [--threads N] [--conns N] [--held N] [--soak SECS] \
                     [--connect ADDR:PORT] [--serve ADDR:PORT]
  churn: N threads each open/use/close N connections (server closes first);
  held: N connections open at once; soak: mixed traffic for SECS seconds,
  host fds/threads must not grow and anonymous RSS not by more than 10% (at
  least 2 MiB) after warm-up (file-backed pages, the kernel's code coming back in after boot
  handed it back, are no leak).
  Without --connect the server runs in-process on 127.0.0.1.";

fn usage() -> ! {
    eprintln!("{USAGE}");
    std::process::exit(2)
}

fn parse_args() -> Options {
    let mut o = Options {
        threads: 64,
        conns: 1000,
        held: 1000,
        soak: None,
        connect: None,
        serve: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--threads" => o.threads = value().parse().unwrap_or_else(|_| usage()),
            "--conns" => o.conns = value().parse().unwrap_or_else(|_| usage()),
            "--held" => o.held = value().parse().unwrap_or_else(|_| usage()),
            "--soak" => o.soak = Some(value().parse().unwrap_or_else(|_| usage())),
            "--connect" => o.connect = Some(value().parse().unwrap_or_else(|_| usage())),
            "--serve" => o.serve = Some(value().parse().unwrap_or_else(|_| usage())),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0)
            }
            _ => usage(),
        }
    }
    o
}

/// Raises the soft descriptor limit to the hard one: every connection is a
/// host descriptor too (a kernel socket's placeholder).
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid out-pointer; then the same struct back in.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

// ---- server: a few threads, each a poll loop over its own connections ----

struct Conn {
    stream: TcpStream,
    mode: u8,
    buf: Vec<u8>,
}

fn serve(
    listener: TcpListener,
    workers: usize,
    stop: Arc<AtomicBool>,
) -> Vec<thread::JoinHandle<()>> {
    if let Err(e) = listener.set_nonblocking(true) {
        eprintln!("hijack-stress: listener: {e}");
        std::process::exit(1);
    }
    let listener = Arc::new(listener);
    (0..workers)
        .map(|_| {
            let listener = listener.clone();
            let stop = stop.clone();
            thread::spawn(move || serve_loop(&listener, &stop))
        })
        .collect()
}

static ACCEPT_ERRORS: AtomicU64 = AtomicU64::new(0);

fn serve_loop(listener: &TcpListener, stop: &AtomicBool) {
    let mut conns: Vec<Conn> = Vec::new();
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Relaxed) {
        let mut fds: Vec<libc::pollfd> = Vec::with_capacity(conns.len() + 1);
        fds.push(pollfd(listener.as_raw_fd()));
        fds.extend(conns.iter().map(|c| pollfd(c.stream.as_raw_fd())));
        // SAFETY: `fds` is a valid array of that length.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 100) };
        if n <= 0 {
            continue;
        }
        let polled = conns.len();
        if fds[0].revents != 0 {
            // Several workers share the listener: EAGAIN means another won.
            loop {
                match listener.accept() {
                    Ok((stream, _)) => {
                        if stream.set_nonblocking(true).is_ok() {
                            let _ = stream.set_nodelay(true);
                            conns.push(Conn {
                                stream,
                                mode: 0,
                                buf: Vec::new(),
                            });
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        // EMFILE and friends leave the listener readable:
                        // say so once in a while and back off, no busy loop.
                        if ACCEPT_ERRORS
                            .fetch_add(1, Ordering::Relaxed)
                            .is_multiple_of(1000)
                        {
                            eprintln!("hijack-stress: accept: {e}");
                        }
                        thread::sleep(Duration::from_millis(10));
                        break;
                    }
                }
            }
        }
        // Backwards over the polled ones: swap_remove only moves an entry
        // already served or just accepted into the freed slot.
        let mut i = polled;
        while i > 0 {
            i -= 1;
            if fds[i + 1].revents == 0 {
                continue;
            }
            if !service(&mut conns[i], &mut buf) {
                conns.swap_remove(i);
            }
        }
    }
}

fn pollfd(fd: RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

/// Serves what is readable; false when the connection is done.
fn service(c: &mut Conn, buf: &mut [u8]) -> bool {
    loop {
        match c.stream.read(buf) {
            Ok(0) => return false,
            Ok(n) => {
                let mut data = &buf[..n];
                if c.mode == 0 {
                    c.mode = data[0];
                    data = &data[1..];
                }
                if c.mode == ONCE {
                    // The request is 8 bytes; reply with them and close.
                    c.buf.extend_from_slice(data);
                    if c.buf.len() >= 8 {
                        let _ = c.stream.set_nonblocking(false);
                        let _ = c.stream.write_all(&c.buf[..8]);
                        return false;
                    }
                } else if c.stream.set_nonblocking(false).is_err()
                    || c.stream.write_all(data).is_err()
                    || c.stream.set_nonblocking(true).is_err()
                {
                    return false;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
    }
}

// ---- clients ----

/// A client connection; a server that stops answering fails it, not hangs.
fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    Ok(s)
}

fn once(addr: SocketAddr, id: u64) -> io::Result<()> {
    let mut s = connect(addr)?;
    let mut req = [0u8; 9];
    req[0] = ONCE;
    req[1..].copy_from_slice(&id.to_le_bytes());
    s.write_all(&req)?;
    let mut reply = [0u8; 8];
    s.read_exact(&mut reply)?;
    if reply != req[1..] {
        return Err(io::Error::other("wrong reply"));
    }
    // The server closes first: expect end of file.
    let mut rest = [0u8; 1];
    if s.read(&mut rest)? != 0 {
        return Err(io::Error::other("data after the reply"));
    }
    Ok(())
}

fn hold(addr: SocketAddr) -> io::Result<TcpStream> {
    let mut s = connect(addr)?;
    s.write_all(&[HOLD])?;
    Ok(s)
}

fn echo(s: &mut TcpStream, data: &[u8]) -> io::Result<()> {
    s.write_all(data)?;
    let mut back = vec![0u8; data.len()];
    s.read_exact(&mut back)?;
    if back != data {
        return Err(io::Error::other("echo differs"));
    }
    Ok(())
}

fn churn(addr: SocketAddr, threads: usize, conns: usize) -> u64 {
    let failures = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let failures = failures.clone();
            thread::spawn(move || {
                for i in 0..conns {
                    if let Err(e) = once(addr, (t * conns + i) as u64) {
                        if failures.fetch_add(1, Ordering::Relaxed) < 5 {
                            eprintln!("hijack-stress: thread {t} connection {i}: {e}");
                        }
                    }
                }
            })
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
    let total = threads * conns;
    let secs = start.elapsed().as_secs_f64();
    let failed = failures.load(Ordering::Relaxed);
    println!(
        "churn: {threads} threads x {conns} connections = {total} in {secs:.1} s \
         ({:.0} conn/s), {failed} failed",
        total as f64 / secs
    );
    failed
}

fn held(addr: SocketAddr, n: usize) -> u64 {
    let start = Instant::now();
    let mut open = Vec::with_capacity(n);
    let mut failed = 0u64;
    for i in 0..n {
        match hold(addr) {
            Ok(s) => open.push(s),
            Err(e) => {
                failed += 1;
                if failed <= 5 {
                    eprintln!("hijack-stress: held connection {i}: {e}");
                }
            }
        }
    }
    let opened = start.elapsed();
    for (i, s) in open.iter_mut().enumerate() {
        if let Err(e) = echo(s, &(i as u64).to_le_bytes()) {
            failed += 1;
            if failed <= 5 {
                eprintln!("hijack-stress: held connection {i} echo: {e}");
            }
        }
    }
    println!(
        "held: {} connections open at once (opened in {:.2} s, all used in {:.2} s), {failed} failed, \
         {} host fds",
        open.len(),
        opened.as_secs_f64(),
        start.elapsed().as_secs_f64(),
        count_fds()
    );
    failed
}

// ---- soak ----

#[derive(Clone, Copy, Debug)]
struct Sample {
    fds: usize,
    threads: usize,
    rss_kib: u64,
    /// Anonymous resident memory (RssAnon): what a leak grows.
    anon_kib: u64,
}

fn count_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

fn sample() -> Sample {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Sample {
        fds: count_fds(),
        threads: field("Threads:") as usize,
        rss_kib: field("VmRSS:"),
        anon_kib: field("RssAnon:"),
    }
}

/// xorshift64*: enough randomness for traffic shapes.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

fn soak(addr: SocketAddr, secs: u64, threads: usize) -> u64 {
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (stop, failures, done) = (stop.clone(), failures.clone(), done.clone());
            thread::spawn(move || {
                let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ (t as u64 + 1);
                let mut data = vec![0u8; 65536];
                while !stop.load(Ordering::Relaxed) {
                    let r = next(&mut rng);
                    let result = if !r.is_multiple_of(4) {
                        once(addr, r)
                    } else {
                        hold(addr).and_then(|mut s| {
                            for _ in 0..(r >> 8) % 50 + 1 {
                                let len = (next(&mut rng) % 65536) as usize + 1;
                                data[0] = len as u8;
                                echo(&mut s, &data[..len])?;
                            }
                            Ok(())
                        })
                    };
                    match result {
                        Ok(()) => done.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            if failures.fetch_add(1, Ordering::Relaxed) < 5 {
                                eprintln!("hijack-stress: soak: {e}");
                            }
                            0
                        }
                    };
                }
            })
        })
        .collect();
    let start = Instant::now();
    let warmup = Duration::from_secs((secs / 5).clamp(2, 60));
    let step = Duration::from_secs((secs / 20).clamp(1, 30));
    thread::sleep(warmup);
    let base = sample();
    let mut worst = base;
    let mut samples = 1;
    while start.elapsed() < Duration::from_secs(secs) {
        thread::sleep(step);
        let s = sample();
        worst.fds = worst.fds.max(s.fds);
        worst.threads = worst.threads.max(s.threads);
        worst.rss_kib = worst.rss_kib.max(s.rss_kib);
        worst.anon_kib = worst.anon_kib.max(s.anon_kib);
        samples += 1;
    }
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.join();
    }
    let failed = failures.load(Ordering::Relaxed);
    let growth = worst.anon_kib as f64 / base.anon_kib.max(1) as f64 - 1.0;
    // Connections in flight at a sample: each client thread holds at most
    // one connection, which is two descriptors with the in-process server.
    let slack = 2 * threads;
    // 10%, but at least 2 MiB: the kernel's caches (slabs of sockets,
    // hash tables) settle in the first seconds, which a small base (a few
    // MiB) would call a leak; a leak of even 100 bytes a connection shows
    // here as more.
    let grown_kib = worst.anon_kib.saturating_sub(base.anon_kib);
    let grew = worst.fds > base.fds + slack
        || worst.threads > base.threads
        || grown_kib > (base.anon_kib / 10).max(2048);
    println!(
        "soak: {secs} s, {} connections, {failed} failed; after {} s warm-up ({samples} samples): \
         host fds {} -> max {} (in-flight slack {slack}), threads {} -> max {}, anonymous RSS {:.1} -> max {:.1} MiB ({:+.1}%), RSS {:.1} -> max {:.1} MiB{}",
        done.load(Ordering::Relaxed),
        warmup.as_secs(),
        base.fds,
        worst.fds,
        base.threads,
        worst.threads,
        base.anon_kib as f64 / 1024.0,
        worst.anon_kib as f64 / 1024.0,
        growth * 100.0,
        base.rss_kib as f64 / 1024.0,
        worst.rss_kib as f64 / 1024.0,
        if grew { "  GREW" } else { "" }
    );
    failed + u64::from(grew)
}

fn main() {
    let o = parse_args();
    raise_fd_limit();
    if let Some(addr) = o.serve {
        let listener = TcpListener::bind(addr).unwrap_or_else(|e| {
            eprintln!("hijack-stress: bind {addr}: {e}");
            std::process::exit(1)
        });
        println!(
            "serving {}",
            listener
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_default()
        );
        let _ = io::stdout().flush();
        for h in serve(listener, 4, Arc::new(AtomicBool::new(false))) {
            let _ = h.join();
        }
        return;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let (addr, servers) = match o.connect {
        Some(addr) => (addr, Vec::new()),
        None => {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| {
                eprintln!("hijack-stress: bind 127.0.0.1: {e}");
                std::process::exit(1)
            });
            // A deep backlog, as a server expecting bursts would ask for.
            // SAFETY: a listening socket we own.
            unsafe { libc::listen(listener.as_raw_fd(), 4096) };
            let addr = listener.local_addr().unwrap_or_else(|e| {
                eprintln!("hijack-stress: {e}");
                std::process::exit(1)
            });
            (addr, serve(listener, 4, stop.clone()))
        }
    };
    let before = sample();
    let mut failed = 0;
    if o.conns > 0 && o.threads > 0 {
        failed += churn(addr, o.threads, o.conns);
    }
    if o.held > 0 {
        failed += held(addr, o.held);
    }
    if let Some(secs) = o.soak {
        failed += soak(addr, secs, o.threads.clamp(1, 16));
    }
    stop.store(true, Ordering::Relaxed);
    for h in servers {
        let _ = h.join();
    }
    let after = sample();
    println!(
        "process: host fds {} -> {}, threads {} -> {}, RSS {:.1} -> {:.1} MiB",
        before.fds,
        after.fds,
        before.threads,
        after.threads,
        before.rss_kib as f64 / 1024.0,
        after.rss_kib as f64 / 1024.0
    );
    std::process::exit(i32::from(failed > 0))
}
