//! The system-call tier (`syscalls: "all"`, docs/every-syscall.md): raw
//! system calls — a library's `syscall(SYS_socket, ...)`, inline
//! `syscall` instructions, Go's runtime — reach the kernel in the process
//! through the same hooks as the `LD_PRELOAD` path. The programs are built
//! here from tests/syscalls/. Each network test proves its traffic crossed
//! the tap: interface counters, and the address the peer saw (the
//! kernel's, 192.168.113.2, never the host's 192.168.113.1).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use testkit::build::run_ok;
use testkit::hijack::*;
use testkit::netns::in_netns;

/// The programs' sources.
fn sources() -> PathBuf {
    testkit::repo().join("tests/syscalls")
}

/// Where the programs are built (kept between runs: Go's cache).
fn build_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("syscalls");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Builds tests/syscalls/NAME.c (with `extra` arguments) with the system's
/// C compiler.
fn build_c(name: &str, extra: &[&str]) -> PathBuf {
    testkit::build::cc(
        &sources().join(format!("{name}.c")),
        &build_dir().join(name),
        extra,
    )
}

/// Builds the Go program in tests/syscalls/NAME, with cgo (dynamic) or
/// without (static, `NAME-static`).
fn build_go_as(name: &str, cgo: bool) -> PathBuf {
    let out = build_dir().join(if cgo {
        name.to_string()
    } else {
        format!("{name}-static")
    });
    testkit::build::go(&sources().join(name), &out, cgo, &build_dir().join("go"))
}

/// Runs `cmd` to the end, at most 120 s (then it is killed and the test
/// fails with what it printed): a hang must not hold the suite.
fn output_within(cmd: &mut Command) -> std::process::Output {
    testkit::build::output_within(cmd, Duration::from_secs(120))
}

/// `args` under the hijack (testkit's `hijacked`), at most 120 s.
fn hijacked(args: &[&str], envs: &[(&str, &str)]) -> std::process::Output {
    output_within(&mut command(args, envs))
}

/// A tap counter of tap0 (inside the test's namespace).
fn tap_counter(name: &str) -> u64 {
    std::fs::read_to_string(format!("/sys/class/net/tap0/statistics/{name}"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// The tap's byte counters (rx, tx), as its host side counts them.
fn tap_bytes() -> (u64, u64) {
    (tap_counter("rx_bytes"), tap_counter("tx_bytes"))
}

/// A fetch of `body` bytes by the kernel from the tap's host side: the
/// peer saw the kernel's address, the bytes left the host through the tap
/// (its tx) and the requests came in (its rx).
fn assert_crossed(body: usize, peers: &[String], before: (u64, u64), after: (u64, u64)) {
    assert_eq!(peers, ["192.168.113.2"]);
    let ((rx, tx), (rx2, tx2)) = (before, after);
    assert!(tx2 >= tx + body as u64, "tap tx_bytes {tx} -> {tx2}");
    assert!(rx2 > rx, "tap rx_bytes {rx} -> {rx2}");
}

/// A host-side server on 192.168.113.1: for each connection, reads what
/// comes (up to `\r\n\r\n` or 5 bytes of "hello"), then answers with the
/// peer address it saw (an HTTP response with `X-Peer` and `body` bytes
/// for an HTTP request).
fn peer_server(body: usize) -> (u16, std::thread::JoinHandle<Vec<String>>) {
    let l = TcpListener::bind("192.168.113.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        let mut peers = Vec::new();
        l.set_nonblocking(false).unwrap();
        for _ in 0..1 {
            let (mut c, peer) = l.accept().unwrap();
            let ip = peer.ip().to_string();
            peers.push(ip.clone());
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while !got.ends_with(b"\r\n\r\n") && got != b"hello" {
                let n = c.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            if got == b"hello" {
                c.write_all(ip.as_bytes()).unwrap();
            } else {
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {body}\r\nX-Peer: {ip}\r\nConnection: close\r\n\r\n"
                );
                c.write_all(head.as_bytes()).unwrap();
                c.write_all(&vec![b'x'; body]).unwrap();
            }
        }
        peers
    });
    (port, h)
}

#[testkit::needs(root, tun, cc, sud)]
#[test]
fn raw_syscalls_in_a_library_reach_the_kernel() {
    in_netns(
        "raw_syscalls_in_a_library_reach_the_kernel",
        "tierraw",
        tap_setup,
        || {
            let dir = build_dir();
            let lib = dir.join("librawlib.so");
            run_ok(
                Command::new("cc")
                    .args(["-O2", "-Wall", "-shared", "-fPIC", "-o"])
                    .arg(&lib)
                    .arg(sources().join("rawlib.c")),
                "cc rawlib.c",
            );
            let main = build_c(
                "rawmain",
                &[
                    "-L",
                    dir.to_str().unwrap(),
                    "-lrawlib",
                    &format!("-Wl,-rpath,{}", dir.display()),
                ],
            );
            let config = tap_config_file(&build_dir(), "raw");
            let cfg = config.to_str().unwrap();
            let main = main.to_str().unwrap();

            // With the switch on: the library's calls go to the kernel.
            let (port, server) = peer_server(0);
            let rx = tap_counter("rx_packets");
            let out = hijacked(
                &[main, "192.168.113.1", &port.to_string()],
                &[
                    ("LKL_HIJACK_CONFIG_FILE", cfg),
                    ("LKL_HIJACK_SYSCALLS", "all"),
                ],
            );
            let rx_after = tap_counter("rx_packets");
            let peers = server.join().unwrap();
            assert!(out.status.success(), "{}", show(&out));
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(stdout.contains("reply 192.168.113.2"), "{stdout}");
            assert_eq!(peers, ["192.168.113.2"]);
            assert!(rx_after >= rx + 4, "tap rx_packets {rx} -> {rx_after}");

            // Without it the same calls bypass the kernel (the LD_PRELOAD
            // hooks never see them): the peer sees the host itself.
            let (port, server) = peer_server(0);
            let out = hijacked(
                &[main, "192.168.113.1", &port.to_string()],
                &[("LKL_HIJACK_CONFIG_FILE", cfg)],
            );
            let peers = server.join().unwrap();
            let _ = std::fs::remove_file(&config);
            assert!(out.status.success(), "{}", show(&out));
            assert_eq!(peers, ["192.168.113.1"], "{}", show(&out));
            println!(
                "raw calls: kernel with syscalls=all, host without; tap rx {rx} -> {rx_after}"
            );
        },
    );
}

#[testkit::needs(root, tun, go, sud)]
#[test]
fn cgo_go_client_fetches_through_the_kernel() {
    go_client("cgo_go_client_fetches_through_the_kernel", "tiergocl", true);
}

#[testkit::needs(root, tun, go, sud)]
#[test]
fn static_go_client_fetches_3mb_through_the_loader() {
    go_client(
        "static_go_client_fetches_3mb_through_the_loader",
        "tiergocls",
        false,
    );
}

/// A Go client (cgo: dynamic, else static through the loader) fetches 3 MB
/// from the tap's host side; the launcher turns the tier on by itself.
fn go_client(test: &str, tag: &'static str, cgo: bool) {
    in_netns(test, tag, tap_setup, || {
        let client = build_go_as("goclient", cgo);
        let config = tap_config_file(&build_dir(), tag);
        let body = 3 << 20;
        let (port, server) = peer_server(body);
        let (rx, tx) = tap_bytes();
        // No LKL_HIJACK_SYSCALLS: the launcher sees a Go binary.
        let url = format!("http://192.168.113.1:{port}/");
        let mut cmd = with_config(&config, &[client.to_str().unwrap(), &url]);
        cmd.env_remove("LKL_HIJACK_SYSCALLS");
        let out = output_within(&mut cmd);
        let (rx2, tx2) = tap_bytes();
        let _ = std::fs::remove_file(&config);
        // The client's side first: a server that lost its peer says less.
        let peers = server
            .join()
            .unwrap_or_else(|_| panic!("the peer server failed; the client: {}", show(&out)));
        assert!(out.status.success(), "{}", show(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains(&format!("status 200 bytes {body} peer-saw 192.168.113.2")),
            "{stdout}"
        );
        assert_crossed(body, &peers, (rx, tx), (rx2, tx2));
        println!("Go client: {body} bytes through the tap (tx {tx} -> {tx2})");
    });
}

#[testkit::needs(root, tun, go, sud)]
#[test]
fn go_http_server_on_the_kernel_address() {
    go_server("go_http_server_on_the_kernel_address", "tiergosrv", true);
}

#[testkit::needs(root, tun, go, sud)]
#[test]
fn static_go_http_server_on_the_kernel_address() {
    go_server(
        "static_go_http_server_on_the_kernel_address",
        "tiergosrvs",
        false,
    );
}

/// A Go net/http server (cgo: dynamic, else static through the loader) on
/// the kernel's address, GOMAXPROCS=4, 50 concurrent clients from the
/// host side.
fn go_server(test: &str, tag: &'static str, cgo: bool) {
    in_netns(test, tag, tap_setup, || {
        let server = build_go_as("goserver", cgo);
        let config = tap_config_file(&build_dir(), tag);
        let mut cmd = with_config(&config, &[server.to_str().unwrap(), "192.168.113.2:8080"]);
        cmd.env("GOMAXPROCS", "4").stderr(Stdio::piped());
        let (child, line) = start_first_line(cmd);
        let child = Helper(child);
        assert!(line.contains("listening 192.168.113.2:8080"), "{line:?}");
        let (rx, tx) = tap_bytes();
        concurrent_gets("192.168.113.2:8080", 50, "192.168.113.1", 65536);
        let (rx2, tx2) = tap_bytes();
        drop(child);
        let _ = std::fs::remove_file(&config);
        // 50 responses of 64 KiB came out of the kernel through the tap.
        assert!(rx2 >= rx + 50 * 65536, "tap rx_bytes {rx} -> {rx2}");
        assert!(tx2 > tx, "tap tx_bytes {tx} -> {tx2}");
        println!("Go server: 50 clients, tap rx {rx} -> {rx2}");
    });
}

/// Runs `prog args` hijacked on loopback with the tier on; must succeed.
fn tier_run(prog: &Path, args: &[&str]) -> String {
    let mut all = vec![prog.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = hijacked(&all, &[("LKL_HIJACK_SYSCALLS", "all")]);
    assert!(out.status.success(), "{}", show(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[testkit::needs(cc, sud)]
#[test]
fn io_uring_setup_gets_enosys() {
    let prog = build_c("uring", &[]);
    let out = tier_run(&prog, &[]);
    assert!(out.contains("setup -38 enter -38 register -38"), "{out}");
}

#[testkit::needs(cc, sud)]
#[test]
fn own_sigsys_handler_keeps_working() {
    let prog = build_c("sigsys", &[]);
    // A port the host holds: only a kernel socket can bind it.
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port().to_string();
    let out = tier_run(&prog, &[&port]);
    assert!(
        out.contains("bind 0 armed 1") && out.ends_with("ok\n"),
        "{out}"
    );
}

/// No handler of the program runs nested on the SIGSYS handler's stack
/// (tests/syscalls/nested.c): signals sent while the main thread traps,
/// its handler on an alternate stack the trap's handler shares, never run
/// deeper than one from ordinary code. Before, one could land inside the
/// trap's handler, a whole signal frame deeper: busybox sh's SIGCHLD
/// overflowed Rust's 8 KiB alternate stack so (SIGSEGV at exit).
#[testkit::needs(cc, sud)]
#[test]
fn no_handler_nests_on_the_trap() {
    let prog = build_c("nested", &["-lpthread"]);
    let out = tier_run(&prog, &[]);
    assert!(out.ends_with("ok\n"), "{out}");
}

#[testkit::needs(cc, sud)]
#[test]
fn new_tasks_are_armed_before_they_run() {
    let prog = build_c("children", &["-lpthread"]);
    let out = tier_run(&prog, &[]);
    assert!(out.ends_with("ok\n"), "{out}");
}

#[testkit::needs(cc)]
#[test]
fn bad_syscalls_value_is_refused() {
    let out = hijacked(&["/bin/true"], &[("LKL_HIJACK_SYSCALLS", "everything")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        err.contains("LKL_HIJACK_SYSCALLS") && err.contains("\"all\""),
        "{err}"
    );
}

/// Builds tests/syscalls/NAMES.c into one static musl program `out`.
fn build_musl(out: &str, names: &[&str]) -> PathBuf {
    let prog = build_dir().join(out);
    let mut cmd = Command::new("musl-gcc");
    cmd.args(["-static", "-O2", "-o"]).arg(&prog);
    for n in names {
        cmd.arg(sources().join(format!("{n}.c")));
    }
    run_ok(&mut cmd, &format!("musl-gcc {names:?}"));
    prog
}

#[testkit::needs(musl_gcc, busybox, sud)]
#[test]
fn static_programs_run_through_the_loader() {
    // A static musl program: its raw calls are routed (io_uring: ENOSYS).
    let prog = build_musl("uring-static", &["uring"]);
    let out = hijacked(&[prog.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("setup -38 enter -38 register -38"),
        "{stdout}"
    );
    // Its threads (raw clone, pthreads: each with a twin), fork and vfork
    // children are armed before they run.
    let prog = build_musl("children-static", &["children"]);
    let out = hijacked(&[prog.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).ends_with("ok\n"),
        "{}",
        show(&out)
    );
    // busybox-static (static glibc): a shell pipeline (fork, exec of a
    // static program: the loader again), /proc/self/exe the program's.
    let real = std::fs::canonicalize("/bin/busybox").unwrap();
    let out = hijacked(
        &[
            "/bin/busybox",
            "sh",
            "-c",
            "echo piped | busybox cat; readlink /proc/self/exe; busybox true && echo exec ok",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout,
        format!("piped\n{}\nexec ok\n", real.display()),
        "{}",
        show(&out)
    );
}

#[testkit::needs(root, tun, busybox, sud)]
#[test]
fn busybox_wget_through_the_loader() {
    in_netns(
        "busybox_wget_through_the_loader",
        "tierbbwget",
        tap_setup,
        || {
            let config = tap_config_file(&build_dir(), "bbwget");
            let body = 1 << 20;
            let (port, server) = peer_server(body);
            let (rx, tx) = tap_bytes();
            let mut out = with_config(
                &config,
                &[
                    "/bin/busybox",
                    "wget",
                    "-q",
                    "-O-",
                    &format!("http://192.168.113.1:{port}/"),
                ],
            );
            let out = output_within(&mut out);
            let (rx2, tx2) = tap_bytes();
            let peers = server.join().unwrap();
            let _ = std::fs::remove_file(&config);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(out.stdout.len(), body);
            assert_crossed(body, &peers, (rx, tx), (rx2, tx2));
            println!("busybox wget: {body} bytes through the tap");
        },
    );
}

#[testkit::needs(root, tun, musl_gcc, sud)]
#[test]
fn static_musl_raw_syscalls_over_a_tap() {
    in_netns(
        "static_musl_raw_syscalls_over_a_tap",
        "tiermusl",
        tap_setup,
        || {
            let prog = build_musl("rawmain-static", &["rawmain", "rawlib"]);
            let config = tap_config_file(&build_dir(), "musl");
            let (port, server) = peer_server(0);
            let rx = tap_counter("rx_packets");
            let out = output_within(&mut with_config(
                &config,
                &[prog.to_str().unwrap(), "192.168.113.1", &port.to_string()],
            ));
            let rx2 = tap_counter("rx_packets");
            let peers = server.join().unwrap();
            let _ = std::fs::remove_file(&config);
            assert!(out.status.success(), "{}", show(&out));
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(stdout.contains("reply 192.168.113.2"), "{stdout}");
            assert_eq!(peers, ["192.168.113.2"]);
            assert!(rx2 >= rx + 4, "tap rx_packets {rx} -> {rx2}");
        },
    );
}

/// Every hook the router calls by name is one the library exports: a name
/// it did not would bind to glibc's function, a silent bypass.
#[test]
fn routed_hooks_are_exported() {
    let src = std::fs::read_to_string(testkit::repo().join("src/hijack/tier/route.rs")).unwrap();
    let nm = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(library())
        .output()
        .expect("nm (binutils)");
    let exported: Vec<String> = String::from_utf8_lossy(&nm.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().last().map(str::to_string))
        .collect();
    let mut called = Vec::new();
    for part in src.split("libc::").skip(1) {
        let name: String = part
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        // Calls, not constants or types (those are upper case or followed
        // by no parenthesis).
        if part[name.len()..].starts_with('(') && name.chars().all(|c| !c.is_ascii_uppercase()) {
            called.push(name);
        }
    }
    // Not hooks: C functions the router uses for itself.
    let own = ["strlen"];
    let missing: Vec<_> = called
        .iter()
        .filter(|n| !own.contains(&n.as_str()) && !exported.contains(n))
        .collect();
    assert!(called.len() > 60, "{called:?}");
    assert!(
        missing.is_empty(),
        "routed to libc, not a hook: {missing:?}"
    );
    assert!(exported.iter().any(|n| n == "epoll_pwait2"));
    let internal: Vec<_> = exported
        .iter()
        .filter(|n| n.starts_with("lkl_tier"))
        .collect();
    assert!(internal.is_empty(), "{internal:?}");
}

/// A signal sent to the process (`kill`) by another thread ends the main
/// thread's blocking kernel `accept` as on the host: with the tier armed,
/// the sending thread traps right after its `kill` and would take the
/// signal itself (Python runs handlers on the main thread only).
#[testkit::needs(python3, sud)]
#[test]
fn process_signal_reaches_the_main_thread() {
    let script = r#"
import os, signal, socket, threading
class Stop(Exception): pass
def stop(*_): raise Stop
signal.signal(signal.SIGUSR1, stop)
ls = socket.socket(); ls.bind(("127.0.0.1", 0)); ls.listen()
for _ in range(5):
    threading.Timer(0.05, lambda: os.kill(os.getpid(), signal.SIGUSR1)).start()
    try:
        ls.accept()
    except Stop:
        pass
print("ok main thread")
"#;
    let mut child = command(&[PYTHON, "-c", script], &[("LKL_HIJACK_SYSCALLS", "all")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (status, _) = wait_within(&mut child, Duration::from_secs(60));
    let out = drain(&mut child);
    assert!(
        status.success() && out.contains("ok main thread"),
        "{status}: {out}"
    );
}

/// Builds tests/syscalls/NAME.c as a static glibc program (`cc -static`).
fn build_static_glibc(name: &str) -> PathBuf {
    let out = build_dir().join(format!("{name}-glibc-static"));
    run_ok(
        Command::new("cc")
            .args(["-static", "-O2", "-Wall", "-pthread", "-o"])
            .arg(&out)
            .arg(sources().join(format!("{name}.c"))),
        &format!("cc -static {name}.c"),
    );
    out
}

/// A static glibc program's four threads blocked in kernel calls (two
/// `accept`, two `recv`; each thread's calls made by its twin) and then
/// its main thread (its own calls) take signals as on the host: EINTR
/// without SA_RESTART, the calls restarted with it. Through the launcher,
/// in the process-tree mode (its default) and in the single-process mode.
#[testkit::needs(cc, sud)]
#[test]
fn static_threads_blocked_in_kernel_calls_take_signals() {
    let prog = build_static_glibc("sigblock");
    let prog = prog.to_str().unwrap();
    // A port the host holds: only a kernel socket can bind it.
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port().to_string();
    for mode in ["eintr", "restart"] {
        for single in [false, true] {
            let mut args = vec![];
            if single {
                args.push("--single-process");
            }
            args.extend([prog, mode, &port]);
            let out = hijacked(&args, &[]);
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && stdout.contains(&format!("{mode} ok")),
                "{mode}, single-process {single}: {}",
                show(&out)
            );
        }
    }
}

/// A fork no hook sees, in a tree (the launcher's default mode): a static
/// glibc program's `fork()` (the tier routes its raw `clone`) and a
/// dynamic program's `syscall(SYS_fork)` (the `syscall` hook), with the
/// tier on and off. The child is a
/// kernel process of its own with a copy of the descriptor table: its
/// `getsockname` on the inherited kernel socket fills the child's memory
/// (on the parent's channel the server would have written the parent's),
/// its new socket reaches the parent's, its close leaves the parent's open.
/// A static program's fork from a second thread (which has no library
/// state to ask the server with) gives a child with a kernel process of
/// its own: no kernel descriptors (EBADF), but working new sockets, and
/// never the parent's channels.
#[testkit::needs(cc, sud)]
#[test]
fn forks_no_hook_sees_get_kernel_processes_of_their_own() {
    let held = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port().to_string();
    let stat = build_static_glibc("forkchild");
    let dynamic = build_c("forkchild", &[]);
    for (prog, how, envs) in [
        (&stat, "libc", &[][..]),
        (&stat, "thread", &[][..]),
        (&dynamic, "raw", &[][..]),
        (&dynamic, "raw", &[("LKL_HIJACK_SYSCALLS", "all")][..]),
    ] {
        let out = hijacked(&[prog.to_str().unwrap(), how, &port], envs);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("fork ok"),
            "{how}: {}",
            show(&out)
        );
    }
}

/// A tiny DNS responder on 192.168.113.1:53 (UDP): `name` has the A
/// record `addr` (AAAA: no data), anything else NXDOMAIN. Returns a stop
/// flag and the thread, which yields the source addresses of the queries
/// it answered.
fn dns_responder(
    name: &'static str,
    addr: [u8; 4],
) -> (
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    std::thread::JoinHandle<Vec<String>>,
) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let sock = std::net::UdpSocket::bind("192.168.113.1:53").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let h = std::thread::spawn(move || {
        let mut peers = Vec::new();
        let mut buf = [0u8; 1500];
        while !stop2.load(Ordering::Acquire) {
            let Ok((n, peer)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let q = &buf[..n];
            // The question: labels from offset 12, then type and class.
            let mut pos = 12;
            let mut labels = Vec::new();
            while pos < n && q[pos] != 0 {
                let l = usize::from(q[pos]);
                labels
                    .push(String::from_utf8_lossy(&q[pos + 1..(pos + 1 + l).min(n)]).into_owned());
                pos += 1 + l;
            }
            if pos + 5 > n {
                continue;
            }
            let qtype = u16::from_be_bytes([q[pos + 1], q[pos + 2]]);
            let end = pos + 5;
            peers.push(peer.ip().to_string());
            let known = labels.join(".").eq_ignore_ascii_case(name);
            let answer = known && qtype == 1;
            let mut r = Vec::new();
            r.extend_from_slice(&q[..2]);
            // QR, RD copied, RA; NXDOMAIN for an unknown name.
            r.extend_from_slice(&[0x81 | (q[2] & 1), if known { 0x80 } else { 0x83 }]);
            r.extend_from_slice(&[0, 1, 0, u8::from(answer), 0, 0, 0, 0]);
            r.extend_from_slice(&q[12..end]);
            if answer {
                r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
                r.extend_from_slice(&addr);
            }
            let _ = sock.send_to(&r, peer);
        }
        peers
    });
    (stop, h)
}

/// Programs with a resolver of their own (static musl's, static Go's)
/// read `/etc/resolv.conf` themselves: under the tier they get the
/// config's `nameserver` (192.168.113.1, the tap's host side), not the
/// host's (the namespace's says 127.0.0.1), and their queries leave
/// through the kernel: the responder sees the kernel's address.
#[testkit::needs(root, tun, musl_gcc, go, sud)]
#[test]
fn own_resolvers_ask_the_configs_nameserver() {
    in_netns(
        "own_resolvers_ask_the_configs_nameserver",
        "tierdns",
        tap_setup,
        || {
            let musl = build_musl("resolve-static", &["resolve"]);
            let go = build_go_as("goresolve", false);
            let config = build_dir().join(format!("tap-dns-{}.json", std::process::id()));
            std::fs::write(
                &config,
                r#"{"interfaces":[{"type":"tap","param":"tap0","ip":"192.168.113.2","masklen":"24"}],"nameserver":"192.168.113.1"}"#,
            )
            .unwrap();
            for prog in [&musl, &go] {
                let (stop, responder) = dns_responder("made-up.lkl.test", [192, 168, 113, 77]);
                let rx = tap_counter("rx_packets");
                let out = output_within(&mut with_config(
                    &config,
                    &[prog.to_str().unwrap(), "made-up.lkl.test"],
                ));
                let rx2 = tap_counter("rx_packets");
                stop.store(true, std::sync::atomic::Ordering::Release);
                let peers = responder.join().unwrap();
                assert!(out.status.success(), "{}: {}", prog.display(), show(&out));
                let stdout = String::from_utf8_lossy(&out.stdout);
                assert!(stdout.contains("192.168.113.77"), "{}", show(&out));
                assert!(!peers.is_empty(), "no query reached the responder");
                assert!(
                    peers.iter().all(|p| p == "192.168.113.2"),
                    "queries from {peers:?}"
                );
                assert!(rx2 > rx, "tap rx_packets {rx} -> {rx2}");
                println!(
                    "{}: {} queries from the kernel's address, tap rx_packets {rx} -> {rx2}",
                    prog.file_name().unwrap().to_string_lossy(),
                    peers.len()
                );
            }
            let _ = std::fs::remove_file(&config);
        },
    );
}

/// A host-side TCP sink on 192.168.113.1: counts the bytes of one
/// connection up to EOF; yields (peer address, bytes).
fn sink() -> (u16, std::thread::JoinHandle<(String, usize)>) {
    let l = TcpListener::bind("192.168.113.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        let (mut c, peer) = l.accept().unwrap();
        c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut n = 0;
        let mut buf = vec![0u8; 65536];
        loop {
            match c.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(k) => n += k,
            }
        }
        (peer.ip().to_string(), n)
    });
    (port, h)
}

/// A dynamic (cgo) Go program writes 4 MB to a peer on a kernel socket and
/// ends at once with os.Exit (a raw exit_group) without closing: the peer
/// still gets every byte, in both modes (single-process: the tier halts
/// the kernel before the process ends, as the destructor does).
#[testkit::needs(root, tun, go, sud)]
#[test]
fn go_exit_without_close_delivers_everything() {
    in_netns(
        "go_exit_without_close_delivers_everything",
        "tiergoexit",
        tap_setup,
        || {
            let prog = build_go_as("goexit", true);
            let config = tap_config_file(&build_dir(), "goexit");
            let size = 4 << 20;
            for single in [true, false] {
                let (port, peer) = sink();
                let rx = tap_counter("rx_bytes");
                let target = format!("192.168.113.1:{port}");
                let size_s = size.to_string();
                let mut args = vec![];
                if single {
                    args.push("--single-process");
                }
                args.extend([prog.to_str().unwrap(), &target, &size_s]);
                let out = output_within(&mut with_config(&config, &args));
                let (ip, got) = peer.join().unwrap();
                let rx2 = tap_counter("rx_bytes");
                assert!(out.status.success(), "{}", show(&out));
                assert_eq!(ip, "192.168.113.2");
                assert_eq!(got, size, "single-process {single}: {}", show(&out));
                // The bytes came out of the kernel through the tap.
                assert!(rx2 >= rx + size as u64, "tap rx_bytes {rx} -> {rx2}");
                println!(
                    "Go os.Exit after writing {size} bytes (single-process {single}): all received"
                );
            }
            let _ = std::fs::remove_file(&config);
        },
    );
}

/// busybox-static's `sh -c 'wget -O- URL | wc -c'`: the shell forks, each
/// child execs busybox again (the loader again), and `wget` in the
/// pipeline's child fetches through the tree's kernel (the launcher's
/// default mode).
#[testkit::needs(root, tun, busybox, sud)]
#[test]
fn busybox_sh_pipeline_wget_wc() {
    in_netns(
        "busybox_sh_pipeline_wget_wc",
        "tierbbpipe",
        tap_setup,
        || {
            let config = tap_config_file(&build_dir(), "bbpipe");
            let body = 1 << 20;
            let (port, server) = peer_server(body);
            let rx = tap_counter("rx_bytes");
            let tx = tap_counter("tx_bytes");
            let script =
                format!("busybox wget -q -O- http://192.168.113.1:{port}/ | busybox wc -c");
            let out = output_within(&mut with_config(
                &config,
                &["/bin/busybox", "sh", "-c", &script],
            ));
            let (rx2, tx2) = tap_bytes();
            let peers = server.join().unwrap();
            let _ = std::fs::remove_file(&config);
            assert!(out.status.success(), "{}", show(&out));
            assert_eq!(
                String::from_utf8_lossy(&out.stdout).trim(),
                body.to_string()
            );
            assert_crossed(body, &peers, (rx, tx), (rx2, tx2));
            println!("busybox sh -c 'wget | wc -c': {body} bytes through the tap");
        },
    );
}

/// As a non-root user (`nobody`) with a tap that user owns (`ip tuntap
/// add ... user nobody`): busybox-static's `wget` fetches through the
/// kernel, in the tree mode. CI runs as root: the test drops to `nobody`
/// for the launcher and everything it starts, in a mount namespace of its
/// own where `/dev/net/tun` is open to all (as distributions have it; here
/// it may be root's only), and runs copies of the launcher, library,
/// loader and server from a directory `nobody` can read.
#[testkit::needs(root, tun, busybox, sud)]
#[test]
fn non_root_user_with_its_own_tap() {
    in_netns(
        "non_root_user_with_its_own_tap",
        "tieruser",
        |ns| {
            ns.lo_up()?;
            ns.ip(&[
                "tuntap", "add", "dev", "tap0", "mode", "tap", "user", "nobody",
            ])?;
            ns.ip(&["addr", "add", "192.168.113.1/24", "dev", "tap0"])?;
            ns.ip(&["link", "set", "tap0", "up"]).map(drop)
        },
        || {
            use std::os::unix::fs::PermissionsExt;
            let dir = std::env::temp_dir().join(format!("lkl-tier-user-{}", std::process::id()));
            std::fs::create_dir_all(dir.join("bin")).unwrap();
            let lib = library();
            let built = lib.parent().unwrap();
            for (from, to) in [
                (testkit::hijack::script(), dir.join("bin/lkl-hijack.sh")),
                (lib.clone(), dir.join("liblkl_hijack.so")),
                (built.join("lkl-loader"), dir.join("lkl-loader")),
                (built.join("lkl-server"), dir.join("lkl-server")),
            ] {
                std::fs::copy(&from, &to).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
            }
            let config = dir.join("tap.json");
            std::fs::write(&config, tap_config(None)).unwrap();
            for p in [&dir, &dir.join("bin")] {
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
            let mnt = dir.join("dev");
            std::fs::create_dir_all(&mnt).unwrap();
            let body = 1 << 20;
            let (port, server) = peer_server(body);
            let (rx, tx) = tap_bytes();
            let script = r#"set -e
mount --make-rprivate /
mount -t tmpfs none "$1"
mknod "$1/tun" c 10 200
chmod 666 "$1/tun"
mount --bind "$1/tun" /dev/net/tun
shift
cd /tmp
exec setpriv --reuid=65534 --regid=65534 --clear-groups sh -c 'id -u >&2; exec "$@"' sh "$@""#;
            let url = format!("http://192.168.113.1:{port}/");
            let out = output_within(
                Command::new("unshare")
                    .args(["-m", "sh", "-c", script, "sh"])
                    .arg(&mnt)
                    .args(["env", "-u", "LKL_HIJACK_SYSCALLS", "HOME=/tmp"])
                    .arg(format!(
                        "LKL_HIJACK_LIB={}",
                        dir.join("liblkl_hijack.so").display()
                    ))
                    .arg(format!("LKL_HIJACK_CONFIG_FILE={}", config.display()))
                    .arg(dir.join("bin/lkl-hijack.sh"))
                    .args(["/bin/busybox", "wget", "-q", "-O-", &url]),
            );
            let (rx2, tx2) = tap_bytes();
            let peers = server.join().unwrap();
            let _ = std::fs::remove_dir_all(&dir);
            assert!(out.status.success(), "{}", show(&out));
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(err.lines().next(), Some("65534"), "{}", show(&out));
            assert_eq!(out.stdout.len(), body);
            assert_crossed(body, &peers, (rx, tx), (rx2, tx2));
            println!("busybox wget as nobody on its own tap: {body} bytes through the tap");
        },
    );
}
