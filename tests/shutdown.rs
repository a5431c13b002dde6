//! Shutdown under load. tests/hijack_system.rs covers one thread blocked
//! while main returns, exit() from a thread while main sits in accept, and
//! SIGINT to a program blocked in accept. Here: exit while eight threads
//! are blocked in eight different kernel calls (recv, accept, a write to a
//! full socket, poll, select, epoll, a UDP recvfrom, read) and a ninth
//! keeps writing to a disk, in three ways (exit() from main, exit() from a
//! worker, sys.exit); then SIGINT and SIGTERM to hijacked socketserver and
//! http.server servers with a client connection open. Every case runs the
//! same Python on the host first and prints both times; ours must end
//! within 1 s with the host's exit status, without a crash or a word on
//! stderr, and the disk must be clean (the exit path unmounted it).
//!
//! The helper code that runs a hijacked program is a minimal copy of the
//! one in tests/hijack*.rs.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use testkit::hijack::{with_config, PYTHON};
use testkit::images::{make_image, Scratch};

const LIMIT: Duration = Duration::from_secs(1);

/// Python on the host (`config` None) or under the hijack.
fn python(config: Option<&Path>, script: &str, args: &[&str]) -> Child {
    let mut cmd = match config {
        None => Command::new(PYTHON),
        Some(c) => with_config(c, &[PYTHON]),
    };
    cmd.arg("-c")
        .arg(script)
        .args(args)
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python")
}

/// Reads lines until one starts with `tag`.
fn wait_line(child: &mut Child, tag: &str) -> Result<String, String> {
    let mut r = BufReader::new(child.stdout.as_mut().unwrap());
    let mut seen = String::new();
    loop {
        let mut l = String::new();
        if r.read_line(&mut l).unwrap_or(0) == 0 {
            return Err(format!("no '{tag}' line; stdout: {seen}"));
        }
        if l.starts_with(tag) {
            return Ok(l);
        }
        seen.push_str(&l);
    }
}

/// Waits at most `limit` (then kills and reports None).
fn wait_within(child: &mut Child, limit: Duration) -> (Option<ExitStatus>, Duration, String) {
    let t0 = Instant::now();
    let st = testkit::wait_limited(child, limit);
    let took = t0.elapsed();
    let mut err = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
    (st, took, err)
}

/// Eight threads blocked in kernel calls (and one writing to the disk if
/// argv[2] names a directory), then exit as argv[1] says.
const BLOCKERS: &str = r#"
import ctypes, os, select, socket, sys, threading, time
how, disk = sys.argv[1], sys.argv[2]
lst = socket.socket(); lst.bind(("127.0.0.1", 0)); lst.listen(8)
lst2 = socket.socket(); lst2.bind(("127.0.0.1", 0)); lst2.listen(8)
c1 = socket.create_connection(lst.getsockname()); a1, _ = lst.accept()
c2 = socket.create_connection(lst.getsockname()); a2, _ = lst.accept()
c3 = socket.create_connection(lst.getsockname()); a3, _ = lst.accept()
c3.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 0))
c4 = socket.create_connection(lst.getsockname()); a4, _ = lst.accept()
c5 = socket.create_connection(lst.getsockname()); a5, _ = lst.accept()
ep = select.epoll(); ep.register(a5.fileno(), select.EPOLLIN)
c6 = socket.create_connection(lst.getsockname()); a6, _ = lst.accept()
started = []
def blocker(name, f):
    def run():
        started.append(name)
        f()
        print("returned", name, flush=True)
    threading.Thread(target=run, daemon=True).start()
p = select.poll(); p.register(a2.fileno(), select.POLLIN)
blocker("recv", lambda: a1.recv(10))
blocker("accept", lambda: lst2.accept())
blocker("sendall", lambda: c3.sendall(b"x" * (64 << 20)))   # a3 never reads
blocker("poll", lambda: p.poll())
blocker("select", lambda: select.select([c2], [], []))
blocker("recvfrom", lambda: u.recvfrom(100))
blocker("epoll", lambda: ep.poll())
blocker("read", lambda: os.read(a6.fileno(), 10))
if disk != "-":
    def writer():
        i = 0
        while True:
            with open(f"{disk}/w{i % 4}", "wb") as f: f.write(os.urandom(65536))
            i += 1
    threading.Thread(target=writer, daemon=True).start()
while len(started) < 8: time.sleep(0.01)
time.sleep(0.3)   # let every one of them block
def now(): return time.monotonic()
if how == "exit-main":
    print("exiting", flush=True); ctypes.CDLL(None).exit(7)
elif how == "exit-thread":
    def bye(): print("exiting", flush=True); ctypes.CDLL(None).exit(8)
    threading.Thread(target=bye).start(); c1.recv(10)
elif how == "sys-exit":
    print("exiting", flush=True); sys.exit(9)
"#;

/// Runs one exit case on the host and under the hijack.
fn exit_case(how: &str, want: i32) {
    let t = Scratch::new(how);
    let image = t.path("fs.img");
    make_image(&image, "ext4", 64);
    let config = t.path("cfg.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"disks":[{{"image":"{}","fstype":"ext4","mount":"/d"}}]}}"#,
            image.display()
        ),
    )
    .unwrap();
    let host_dir = t.path("hostdisk");
    std::fs::create_dir_all(&host_dir).unwrap();
    let mut times = Vec::new();
    for hijacked in [false, true] {
        let disk = if hijacked {
            "/d"
        } else {
            host_dir.to_str().unwrap()
        };
        let mut child = python(hijacked.then_some(&*config), BLOCKERS, &[how, disk]);
        let who = if hijacked { "hijacked" } else { "host" };
        if let Err(e) = wait_line(&mut child, "exiting") {
            let (_, _, err) = wait_within(&mut child, LIMIT);
            panic!("{how} ({who}): {e}\n{err}");
        }
        let (st, took, err) = wait_within(&mut child, LIMIT);
        let st =
            st.unwrap_or_else(|| panic!("{how} ({who}): still running after {LIMIT:?}: {err}"));
        assert_eq!(st.code(), Some(want), "{how} ({who}): {st}\n{err}");
        assert!(err.trim().is_empty(), "{how} ({who}): stderr: {err}");
        times.push(took);
    }
    let out = Command::new("e2fsck")
        .arg("-fn")
        .arg(&image)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{how}: the disk is not clean after exit: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    println!(
        "{how}: 8 threads blocked + a disk writer: exit {want} in {:?} (host {:?})",
        times[1], times[0]
    );
}

#[testkit::needs(python3, mkfs_ext4)]
#[test]
fn exit_from_main_with_eight_threads_blocked() {
    exit_case("exit-main", 7);
}

#[testkit::needs(python3, mkfs_ext4)]
#[test]
fn exit_from_a_thread_with_eight_threads_blocked() {
    exit_case("exit-thread", 8);
}

#[testkit::needs(python3, mkfs_ext4)]
#[test]
fn sys_exit_with_eight_threads_blocked() {
    exit_case("sys-exit", 9);
}

/// A threading server with one client connection open (its handler
/// blocked in recv), started by the script itself so it works on the
/// kernel's loopback too.
const SERVERS: &str = r#"
import socket, socketserver, sys, threading, time
kind = sys.argv[1]
if kind == "socketserver":
    class H(socketserver.BaseRequestHandler):
        def handle(self):
            while self.request.recv(100): pass
    class S(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True
    srv = S(("127.0.0.1", 0), H)
else:
    import http.server
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
addr = srv.server_address
def client():
    c = socket.create_connection(addr)
    c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")   # half a request: the handler waits
    time.sleep(3600)
threading.Thread(target=client, daemon=True).start()
time.sleep(0.2)
print("serving", flush=True)
try:
    srv.serve_forever()
except KeyboardInterrupt:
    srv.server_close()
    sys.exit(0)
"#;

fn signal_case(kind: &str, sig: i32) {
    use std::os::unix::process::ExitStatusExt;
    let t = Scratch::new(&format!("{kind}-{sig}"));
    let config = t.path("cfg.json");
    std::fs::write(&config, "{}").unwrap();
    let mut results = Vec::new();
    for hijacked in [false, true] {
        let who = if hijacked { "hijacked" } else { "host" };
        let mut child = python(hijacked.then_some(&*config), SERVERS, &[kind]);
        if let Err(e) = wait_line(&mut child, "serving") {
            let (_, _, err) = wait_within(&mut child, LIMIT);
            panic!("{kind} ({who}): {e}\n{err}");
        }
        std::thread::sleep(Duration::from_millis(300)); // into serve_forever's poll
                                                        // SAFETY: signals our own child.
        unsafe { libc::kill(child.id() as i32, sig) };
        let (st, took, err) = wait_within(&mut child, LIMIT);
        let st = st.unwrap_or_else(|| {
            panic!("{kind} ({who}): still running {LIMIT:?} after signal {sig}: {err}")
        });
        results.push((st.code(), st.signal(), took, err));
    }
    let (host, ours) = (&results[0], &results[1]);
    assert_eq!(
        (host.0, host.1),
        (ours.0, ours.1),
        "{kind} signal {sig}: exit differs from the host's: host {host:?}, hijacked {ours:?}"
    );
    assert!(
        !ours.3.contains("lkl-hijack") && !ours.3.contains("panicked"),
        "{kind} signal {sig}: {}",
        ours.3
    );
    println!(
        "{kind}: signal {sig} ends it in {:?} (host {:?}), status {:?}/signal {:?} as on the host",
        ours.2, host.2, ours.0, ours.1
    );
}

#[testkit::needs(python3)]
#[test]
fn sigint_and_sigterm_end_a_socketserver() {
    signal_case("socketserver", libc::SIGINT);
    signal_case("socketserver", libc::SIGTERM);
}

#[testkit::needs(python3)]
#[test]
fn sigint_and_sigterm_end_an_http_server() {
    signal_case("http", libc::SIGINT);
    signal_case("http", libc::SIGTERM);
}
