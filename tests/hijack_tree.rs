//! The process-tree mode (the launcher's default): PROGRAM and every
//! process it starts share ONE kernel, in a kernel server. Each test has
//! the parent use the kernel too (a wrapper that merely did not boot could
//! not pass) and proves where the traffic went: a listener only the
//! kernel has (the host has none on that port), the kernel's address as
//! the peer's view of the source, or the tap's counters.

use std::process::Stdio;
use std::time::Duration;

use testkit::hijack::*;
use testkit::images::{make_image, Scratch};
use testkit::netns::in_netns;

/// The tap's byte counters in this namespace (received, sent).
fn tap_bytes() -> (u64, u64) {
    let read = |f: &str| {
        std::fs::read_to_string(format!("/sys/class/net/tap0/statistics/{f}"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    };
    (read("rx_bytes"), read("tx_bytes"))
}

fn tap_json(dir: &Scratch) -> std::path::PathBuf {
    let file = dir.path("tap.json");
    std::fs::write(&file, tap_config(Some("0x883"))).unwrap();
    file
}

/// A forked child shares the parent's listening socket (the kernel forked
/// the descriptor table), the parent's close leaves the child's copy
/// open, and an exec'd program keeps a socket `dup2`'d onto stdin and
/// stdout (inetd style) but not a close-on-exec one.
#[testkit::needs(python3)]
#[test]
fn fork_and_exec_keep_kernel_descriptors() {
    let script = r#"
import os, socket, subprocess, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8); port = s.getsockname()[1]
# Only the kernel has this listener.
assert (":%04X" % port) not in open("/proc/net/tcp").read()
pid = os.fork()
if pid == 0:
    a, _ = s.accept(); a.sendall(a.recv(100).upper()); a.close(); os._exit(0)
s.close()                      # the child's copy stays open
c = socket.create_connection(("127.0.0.1", port)); c.sendall(b"fork"); print(c.recv(100).decode(), flush=True)
os.waitpid(pid, 0)
# inetd style: a connection on stdin/stdout of an exec'd program.
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(1)
c2 = socket.create_connection(l.getsockname()); a2, _ = l.accept()
pid = os.fork()
if pid == 0:
    os.dup2(a2.fileno(), 0); os.dup2(a2.fileno(), 1)
    os.execv(sys.executable, [sys.executable, "-c",
        "import os; d = os.read(0, 100); os.write(1, b'exec:' + d)"])
a2.close()
c2.sendall(b"stdin"); print(c2.recv(100).decode(), flush=True)
os.waitpid(pid, 0)
# A close-on-exec kernel socket does not reach the new image.
k = socket.socket(); k.bind(("127.0.0.1", 0))
r = subprocess.run([sys.executable, "-c", "import os,sys; os.fstat(int(sys.argv[1]))", str(k.fileno())],
                   capture_output=True, text=True)
print("cloexec", "gone" if r.returncode != 0 else "kept")
"#;
    let out = hijacked(&[PYTHON, "-c", script], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        stdout.contains("FORK") && stdout.contains("exec:stdin") && stdout.contains("cloexec gone"),
        "{}",
        show(&out)
    );
}

/// Children started the ways glibc does it itself (`system`, `popen`,
/// `posix_spawn`) and Python's `subprocess` reach the parent's kernel
/// listener: they are on the same kernel.
#[testkit::needs(python3)]
#[test]
fn system_popen_spawn_and_subprocess_children_share_the_kernel() {
    let script = r#"
import os, socket, subprocess, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8); port = s.getsockname()[1]
assert (":%04X" % port) not in open("/proc/net/tcp").read()
hello = "import socket,sys; c = socket.create_connection(('127.0.0.1', %d)); c.sendall(sys.argv[1].encode())" % port
def got():
    a, _ = s.accept(); d = a.recv(100).decode(); a.close(); return d
assert os.system("%s -c \"%s\" system" % (sys.executable, hello)) == 0; print(got())
p = os.popen("%s -c \"%s\" popen" % (sys.executable, hello)); p.read(); p.close(); print(got())
pid = os.posix_spawn(sys.executable, [sys.executable, "-c", hello, "spawn"], os.environ); os.waitpid(pid, 0); print(got())
subprocess.run([sys.executable, "-c", hello, "subprocess"], check=True); print(got())
"#;
    let out = hijacked(&[PYTHON, "-c", script], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", show(&out));
    for w in ["system", "popen", "spawn", "subprocess"] {
        assert!(stdout.lines().any(|l| l == w), "{w}: {}", show(&out));
    }
}

/// A shell harness: a server started in the background and a client of it,
/// both children of the hijacked shell, over the kernel's address on the
/// tap; the server's log shows the client came from the kernel's own
/// address (the host's stack would come from 192.168.113.1).
#[testkit::needs(root, tun, python3, curl)]
#[test]
fn bash_server_and_curl_share_one_kernel() {
    in_netns(
        "bash_server_and_curl_share_one_kernel",
        "tree-bash",
        tap_setup,
        || {
            let t = Scratch::new("tree-bash");
            let cfg = tap_json(&t);
            let data: Vec<u8> = (0..3u32 << 20).map(|i| (i * 7 % 251) as u8).collect();
            std::fs::write(t.path("big"), &data).unwrap();
            let script = format!(
                "cd {dir} && exec {py} -m http.server -b 192.168.113.2 8000 2>server.log >/dev/null & \
                 for i in $(seq 100); do curl -s -o /dev/null http://192.168.113.2:8000/ && break; sleep 0.05; done; \
                 curl -s http://192.168.113.2:8000/big | sha256sum; kill %1; wait; cat {dir}/server.log >&2",
                dir = t.path("").display(),
                py = PYTHON
            );
            let out = with_config(&cfg, &["bash", "-c", &script])
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let want = sha256(&data)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>();
            assert!(stdout.starts_with(&want), "{}", show(&out));
            assert!(
                stderr.contains("192.168.113.2 - - ") && stderr.contains("GET /big"),
                "the server did not see the kernel's address: {}",
                show(&out)
            );
        },
    );
}

/// A wrapper in front of the program (`timeout`, a `#!/bin/sh` shim that
/// runs `uname` and execs curl) no longer takes the tap for itself: curl
/// fetches from a host-side server over the tap, which sees the kernel's
/// address as the client's.
#[testkit::needs(root, tun, python3, curl)]
#[test]
fn wrappers_and_shims_leave_the_network_to_the_program() {
    in_netns(
        "wrappers_and_shims_leave_the_network_to_the_program",
        "tree-shim",
        tap_setup,
        || {
            let t = Scratch::new("tree-shim");
            let cfg = tap_json(&t);
            std::fs::write(t.path("f"), b"over the tap\n").unwrap();
            let mut server = Helper(
                std::process::Command::new(PYTHON)
                    .args(["-m", "http.server", "-b", "192.168.113.1", "8001"])
                    .current_dir(t.path(""))
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap(),
            );
            wait_for_tcp("192.168.113.1:8001");
            let shim = t.path("shim");
            std::fs::write(&shim, "#!/bin/sh\nuname >/dev/null\nexec curl \"$@\"\n").unwrap();
            std::process::Command::new("chmod")
                .arg("+x")
                .arg(&shim)
                .status()
                .unwrap();
            let (rx0, _) = tap_bytes();
            for argv in [
                vec!["timeout", "10", "curl", "-s", "http://192.168.113.1:8001/f"],
                vec![shim.to_str().unwrap(), "-s", "http://192.168.113.1:8001/f"],
            ] {
                let out = with_config(&cfg, &argv).output().unwrap();
                assert!(
                    out.status.success()
                        && String::from_utf8_lossy(&out.stdout) == "over the tap\n",
                    "{argv:?}: {}",
                    show(&out)
                );
            }
            let (rx1, _) = tap_bytes();
            assert!(rx1 > rx0, "nothing crossed the tap");
            let _ = server.0.kill();
            let log = drain(&mut server.0);
            assert_eq!(log.matches("192.168.113.2 - - ").count(), 2, "{log}");
        },
    );
}

/// `socketserver.ForkingTCPServer` on the kernel's address: each child
/// echoes 3 MB to one of 3 host-side clients; the bytes cross the tap.
#[testkit::needs(root, tun, python3)]
#[test]
fn forking_server_echoes_to_three_clients() {
    in_netns(
        "forking_server_echoes_to_three_clients",
        "tree-fork",
        tap_setup,
        || {
            let t = Scratch::new("tree-fork");
            let cfg = tap_json(&t);
            let server = r#"
import os, socketserver
class H(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            d = self.request.recv(65536)
            if not d: break
            self.request.sendall(d)
socketserver.ForkingTCPServer.allow_reuse_address = True
srv = socketserver.ForkingTCPServer(("192.168.113.2", 11300), H)
print("serving", flush=True)
srv.serve_forever()
"#;
            let mut child = Helper(
                with_config(&cfg, &[PYTHON, "-c", server])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap(),
            );
            wait_for_tcp("192.168.113.2:11300");
            let (rx0, tx0) = tap_bytes();
            let clients: Vec<_> = (0..3)
                .map(|i| {
                    std::thread::spawn(move || {
                        use std::io::{Read, Write};
                        let data: Vec<u8> = (0..3u32 << 20).map(|j| (j * 13 + i) as u8).collect();
                        let mut s = std::net::TcpStream::connect("192.168.113.2:11300").unwrap();
                        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                        let mut w = s.try_clone().unwrap();
                        let d2 = data.clone();
                        let sender = std::thread::spawn(move || {
                            w.write_all(&d2).unwrap();
                            w.shutdown(std::net::Shutdown::Write).unwrap();
                        });
                        let mut got = Vec::new();
                        s.read_to_end(&mut got).unwrap();
                        sender.join().unwrap();
                        got == data
                    })
                })
                .collect();
            for c in clients {
                assert!(c.join().unwrap(), "a client got back other bytes");
            }
            let (rx1, tx1) = tap_bytes();
            assert!(
                rx1 - rx0 > 9 << 20 && tx1 - tx0 > 9 << 20,
                "rx {} tx {}",
                rx1 - rx0,
                tx1 - tx0
            );
            let _ = child.0.kill();
            let rest = drain(&mut child.0);
            assert!(!rest.contains("Bad file descriptor"), "{rest}");
        },
    );
}

/// Workers that share a listening socket keep serving when one of them is
/// SIGKILLed in the middle of a `recv`; the parent has a thread blocked in
/// `accept` while it forks.
#[testkit::needs(python3)]
#[test]
fn sigkill_of_a_worker_mid_recv_leaves_the_others_serving() {
    let script = r#"
import os, signal, socket, threading, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(16); port = s.getsockname()[1]
# A thread of the parent blocked in accept while the workers are forked.
accepted = []
th = threading.Thread(target=lambda: accepted.append(s.accept()[0].recv(10)), daemon=True); th.start()
time.sleep(0.2)
workers = []
for i in range(3):
    pid = os.fork()
    if pid == 0:
        while True:
            a, _ = s.accept()
            d = a.recv(100)
            if d == b"hang":
                a.recv(100)        # killed here
            a.sendall(b"w%d:" % i + d); a.close()
    workers.append(pid)
def ask(msg):
    c = socket.create_connection(("127.0.0.1", port), timeout=10); c.sendall(msg); return c
first = ask(b"parent")
th.join(10); assert accepted == [b"parent"], accepted
hung = ask(b"hang"); time.sleep(0.3)
victim = None
# Kill every worker in turn until the hung connection is reset, then check the rest serve.
for pid in list(workers):
    os.kill(pid, signal.SIGKILL); os.waitpid(pid, 0); workers.remove(pid)
    hung.settimeout(2.0)
    try:
        if hung.recv(10) == b"":
            victim = pid; break
    except socket.timeout:
        pass
    except ConnectionResetError:
        victim = pid; break
assert victim is not None, "the hung worker's connection never ended"
ok = 0
for i in range(6):
    c = ask(b"x%d" % i); r = c.recv(100); ok += r.endswith(b"x%d" % i)
print("served", ok, "after killing", 3 - len(workers))
for pid in workers: os.kill(pid, signal.SIGKILL); os.waitpid(pid, 0)
"#;
    let out = hijacked(&[PYTHON, "-c", script], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("served 6"),
        "{}",
        show(&out)
    );
}

/// A hijacked program whose working directory is on a config disk runs
/// `tar -cf` and `sha256sum` of files there as children: the tree's
/// kernel mounted the disk once, the children see the same files.
#[testkit::needs(mkfs_ext4)]
#[test]
fn children_work_on_the_trees_disk() {
    let t = Scratch::new("tree-disk");
    let image = t.path("fs.img");
    make_image(&image, "ext4", 32);
    let cfg = t.path("disk.json");
    std::fs::write(
        &cfg,
        format!(
            r#"{{"disks":[{{"image":"{}","fstype":"ext4","mount":"/mnt/tree-disk"}}]}}"#,
            image.display()
        ),
    )
    .unwrap();
    // (tee writes the files: bash's own echo would write through stdio,
    // whose buffered writes to a redirected stdout the library does not
    // see; see docs/hijack.md.)
    let script = "set -e; mkdir -p /mnt/tree-disk/d; echo one | tee /mnt/tree-disk/d/a >/dev/null; \
                  echo two | tee /mnt/tree-disk/d/b >/dev/null; \
                  cd /mnt/tree-disk && tar -cf t.tar d && tar -tf t.tar | sort && sha256sum d/a d/b";
    let out = with_config(&cfg, &["bash", "-c", script]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        stdout.contains("d/a") && stdout.contains("d/b"),
        "{}",
        show(&out)
    );
    // sha256 of "one\n"
    assert!(
        stdout.contains("2c8b08da5ce60398e1f19af0e5dccc744df274b826abe585eaba68c525434806  d/a"),
        "{}",
        show(&out)
    );
    // Nothing of it reached the host's file system.
    assert!(!std::path::Path::new("/mnt/tree-disk/d").exists());
}

/// The launcher returns with the program; the kernel server ends with the
/// tree's last process (a daemon that outlives the program keeps it up),
/// halts and removes its directory.
#[testkit::needs(python3)]
#[test]
fn the_server_ends_after_the_last_process() {
    let script = r#"
import os, socket, sys, time
print(os.environ["LKL_HIJACK_SERVER"], flush=True)
if os.fork() == 0:
    os.setsid()
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2): os.dup2(null, fd)     # (the test waits for EOF on them)
    s = socket.socket(); s.bind(("127.0.0.1", 0)); time.sleep(1.5); os._exit(0)
"#;
    let out = hijacked(&[PYTHON, "-c", script], &[]);
    assert!(out.status.success(), "{}", show(&out));
    let sock = std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let dir = sock.parent().unwrap().to_path_buf();
    assert!(sock.exists(), "the daemon's kernel went with the program");
    let t0 = std::time::Instant::now();
    while dir.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the server did not end"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        t0.elapsed() > Duration::from_millis(500),
        "ended before the daemon did"
    );
}

/// `--attach PID` runs one more program on a running tree's kernel: it
/// sees the tree's listener. Another user is refused.
#[testkit::needs(root, python3)]
#[test]
fn attach_runs_a_command_on_the_trees_kernel_and_refuses_others() {
    let script = r#"
import socket, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
print(s.getsockname()[1], flush=True)
a, _ = s.accept(); a.sendall(b"attached"); time.sleep(0.5)
"#;
    let (mut child, line) = start_python(script, &[]);
    let port: u16 = line.trim().parse().unwrap();
    let pid = child.id().to_string();
    let client = format!(
        "import socket; c = socket.create_connection(('127.0.0.1', {port}), 5); print(c.recv(20).decode())"
    );
    // Another user first: the private directory keeps it out.
    let nobody = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(testkit::hijack::script())
        .args(["--attach", &pid, PYTHON, "-c", &client])
        .env("LKL_HIJACK_LIB", library())
        .env_remove("LKL_HIJACK_CONFIG_FILE")
        .current_dir("/")
        .output()
        .unwrap();
    assert!(
        !nobody.status.success(),
        "another user got in: {}",
        show(&nobody)
    );
    let out = command(&["--attach", &pid, PYTHON, "-c", &client], &[])
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("attached"),
        "{}",
        show(&out)
    );
    let (st, _) = wait_within(&mut child, Duration::from_secs(10));
    assert!(st.success(), "{}", drain(&mut child));
}

/// A kernel socket sent with `SCM_RIGHTS` over a host socketpair to a
/// sibling: the sender exits, the receiver still serves on it. A kernel
/// descriptor sent to a process outside the tree fails with EBADF.
#[testkit::needs(python3)]
#[test]
fn kernel_sockets_pass_between_processes_with_scm_rights() {
    let script = r#"
import os, socket, subprocess, sys
a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
sender = os.fork()
if sender == 0:
    s2 = socket.socket(); s2.bind(("127.0.0.1", 0)); s2.listen(4)
    socket.send_fds(a, [b"x"], [s2.fileno()]); a.send(s2.getsockname()[1].to_bytes(4, "little"))
    os._exit(0)
os.waitpid(sender, 0)
msg, fds, _, _ = socket.recv_fds(b, 1, 4)
port = int.from_bytes(b.recv(4), "little")
assert (":%04X" % port) not in open("/proc/net/tcp").read()
srv = socket.socket(fileno=fds[0])
c = socket.create_connection(("127.0.0.1", port)); x, _ = srv.accept(); x.sendall(b"served")
print(c.recv(10).decode(), flush=True)
# A process outside the tree (no LD_PRELOAD) listening on a path.
import tempfile, time
path = os.path.join(tempfile.mkdtemp(), "outside.sock")
env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "LKL_HIJACK_SERVER")}
env["LD_PRELOAD"] = ""     # the way out of the tree (a dropped variable is put back)
out = subprocess.Popen([sys.executable, "-c",
    "import socket,sys; l = socket.socket(socket.AF_UNIX); l.bind(sys.argv[1]); l.listen(1); print('ready', flush=True); c, _ = l.accept(); print(c.recv(10))",
    path], env=env, stdout=subprocess.PIPE, text=True)
out.stdout.readline()
p = socket.socket(socket.AF_UNIX); p.connect(path)
try:
    socket.send_fds(p, [b"y"], [srv.fileno()]); print("sent outside")
except OSError as e:
    print("outside", e.errno == 9)
p.send(b"z"); out.wait()
"#;
    let out = hijacked(&[PYTHON, "-c", script], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        stdout.contains("served") && stdout.contains("outside True"),
        "{}",
        show(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a process of this tree"),
        "{}",
        show(&out)
    );
}

/// 100 fork/exit cycles, each child using the kernel: no kernel process,
/// task, passing file or memory is left behind (the server's counts,
/// through `--attach PID lkl-server --stats`).
#[testkit::needs(python3)]
#[test]
fn fork_exit_cycles_leave_nothing_behind() {
    let server = library().with_file_name("lkl-server");
    let script = format!(
        r#"
import os, socket, subprocess, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(4)
def stats():
    out = subprocess.run(["{launcher}", "--attach", str(os.getpid()), "{server}", "--stats"],
                         capture_output=True, text=True, check=True)
    return {{k: int(v) for k, v in (l.split() for l in out.stdout.splitlines())}}
# The kernel's counts move while its pool of tasks for host threads
# refills (each stats run takes one): the most of three samples before,
# and after, the counts given up to 3 s to settle back (a leak stays).
samples = []
for _ in range(3):
    samples.append(stats()); time.sleep(0.1)
before = {{k: max(s[k] for s in samples) for k in samples[0]}}
before["kernel_free_kib"] = min(s["kernel_free_kib"] for s in samples)
for i in range(100):
    pid = os.fork()
    if pid == 0:
        c = socket.socket(); c.connect(s.getsockname()); c.close(); os._exit(0)
    os.waitpid(pid, 0)
    a, _ = s.accept(); a.close()
deadline = time.time() + 3
while True:
    time.sleep(0.2)
    after = stats()
    settled = all(after[k] <= before[k] for k in ("processes", "threads", "passing", "kernel_tasks"))
    if settled or time.time() > deadline:
        break
print(before, after)
for k in ("processes", "threads", "passing"):
    assert after[k] == before[k], (k, before, after)
# The kernel's own workers come and go: on a loaded machine its workqueue
# pools add kworkers while work waits (they retire after 5 idle minutes),
# so a few more tasks are theirs; a task left per fork would be 100 more.
assert after["kernel_tasks"] - before["kernel_tasks"] < 10, (before, after)
assert before["kernel_free_kib"] - after["kernel_free_kib"] < 1024, (before, after)
print("nothing left")
"#,
        launcher = script().display(),
        server = server.display()
    );
    let out = hijacked(&[PYTHON, "-c", &script], &[]);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("nothing left"),
        "{}",
        show(&out)
    );
}

/// A daemon that closes every descriptor it does not know (`closerange`,
/// `close` in a loop) closes its kernel sockets but not the library's
/// channel to the tree's kernel: its next socket is the kernel's again.
#[testkit::needs(python3)]
#[test]
fn closing_every_descriptor_keeps_the_kernel() {
    let script = r#"
import os, socket
def cut(g):
    # An end of file, or a reset (the server closed with the client's
    # bytes unread): either way the server let the channel go.
    g.settimeout(5)
    try: return g.recv(64) == b""
    except ConnectionResetError: return True
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
os.closerange(3, 4096)
try:
    s.getsockname(); print("still open")
except OSError as e:
    print("closed", e.errno == 9)
for fd in range(3, 256):
    try: os.close(fd)
    except OSError: pass
t = socket.socket(); t.bind(("127.0.0.1", 0)); t.listen()
port = t.getsockname()[1]
assert (":%04X" % port) not in open("/proc/net/tcp").read()
c = socket.create_connection(("127.0.0.1", port)); a, _ = t.accept(); a.sendall(b"k"); print("kernel", c.recv(1) == b"k")
"#;
    let out = hijacked(&[PYTHON, "-c", script], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("closed True") && stdout.contains("kernel True"),
        "{}",
        show(&out)
    );
}

/// Ctrl-C in a terminal signals the foreground process group: the program
/// gets SIGINT, the kernel server (in a session of its own) does not, so
/// the program's handler can still use the kernel.
#[testkit::needs(python3)]
#[test]
fn ctrl_c_reaches_the_program_not_the_kernel() {
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    let script = r#"
import signal, socket, sys, time
got = []
signal.signal(signal.SIGINT, lambda *a: got.append(1))
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
print("ready", flush=True)
t0 = time.time()
while not got and time.time() - t0 < 10: time.sleep(0.05)
t = socket.socket(); t.bind(("127.0.0.1", 0))
print("sigint", bool(got), "kernel", t.getsockname()[1] > 0, flush=True)
"#;
    let mut cmd = command(&[PYTHON, "-c", script], &[]);
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd.spawn().unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    // SAFETY: signals the process group the test made for the launcher.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGINT) };
    let last = lines.next().unwrap().unwrap();
    let (st, _) = wait_within(&mut child, Duration::from_secs(15));
    assert!(
        st.success() && last == "sigint True kernel True",
        "{last}: {}",
        drain(&mut child)
    );
}

/// Where the kernel runs: the tree by default, the single-process mode by
/// `--single-process`, the config's `"mode"` or `LKL_HIJACK_MODE`; the
/// launcher's switches win; a bad mode stops before `main` naming the key.
#[testkit::needs(python3)]
#[test]
fn the_mode_key_and_switches_choose_where_the_kernel_runs() {
    let t = Scratch::new("tree-mode");
    let single = t.path("single.json");
    std::fs::write(&single, r#"{"mode":"single-process"}"#).unwrap();
    let bad = t.path("bad.json");
    std::fs::write(&bad, r#"{"mode":"sideways"}"#).unwrap();
    let probe = "import os; print('tree' if os.environ.get('LKL_HIJACK_SERVER') else 'single')";
    let mode = |args: &[&str], envs: &[(&str, &str)]| {
        let mut all = args.to_vec();
        all.extend([PYTHON, "-c", probe]);
        let out = hijacked(&all, envs);
        assert!(out.status.success(), "{}", show(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let cfg = single.to_str().unwrap();
    assert_eq!(mode(&[], &[]), "tree");
    assert_eq!(mode(&["--single-process"], &[]), "single");
    assert_eq!(mode(&["--config", cfg], &[]), "single");
    assert_eq!(mode(&["--tree", "--config", cfg], &[]), "tree");
    assert_eq!(
        mode(&[], &[("LKL_HIJACK_MODE", "single-process")]),
        "single"
    );
    let out = with_config(&bad, &[PYTHON, "-c", "print('main ran')"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("mode: \"sideways\" is not"),
        "{}",
        show(&out)
    );
}

/// A client that sends garbage on a channel of its own to the kernel
/// server, or writes garbage in that channel's shared page, is cut off;
/// the tree's other connections are unaffected.
#[testkit::needs(python3)]
#[test]
fn garbage_on_a_channel_cuts_only_that_channel() {
    let script = r#"
import os, socket
def cut(g):
    # An end of file, or a reset (the server closed with the client's
    # bytes unread): either way the server let the channel go.
    g.settimeout(5)
    try: return g.recv(64) == b""
    except ConnectionResetError: return True
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
for junk in (b"\x00" * 10, b"\xff" * 64, b"\x01" + b"\x07" * 63, os.urandom(4096)):
    g = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    g.connect(os.environ["LKL_HIJACK_SERVER"])
    g.send(junk)
    print("cut", cut(g))
# A channel's shared page: sealed at its size, and garbage written in it
# (a record that is no request) cuts that channel off too.
import array, mmap, struct
g = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
g.connect(os.environ["LKL_HIJACK_SERVER"])
g.send(struct.pack("<8Q", 1 | (5 << 32), 2, 0, 0, 0, 0, 0, 0))
msg, anc, _, _ = g.recvmsg(64, socket.CMSG_SPACE(4))
fds = array.array("i")
for level, kind, data in anc:
    if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
        fds.frombytes(data[:4])
page = mmap.mmap(fds[0], 4096)
try:
    os.ftruncate(fds[0], 0); print("sealed False")
except OSError:
    print("sealed True")
page[64:128] = b"\xff" * 64
page[0:4] = struct.pack("<I", 77)
g.send(b"\0")
print("cut", cut(g))
c = socket.create_connection(s.getsockname()); a, _ = s.accept(); a.sendall(b"ok"); print("still", c.recv(2).decode())
"#;
    let out = hijacked(&[PYTHON, "-c", script], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", show(&out));
    assert!(stdout.contains("sealed True"), "{}", show(&out));
    assert_eq!(stdout.matches("cut True").count(), 5, "{}", show(&out));
    assert!(stdout.contains("still ok"), "{}", show(&out));
}

/// The alarm idiom: `siglongjmp` out of a handler that interrupted a
/// blocking kernel call (`accept`). In a tree the call ends in the server
/// (the handler asked it to) and its late answer is dropped: the thread's
/// next calls get their own answers, three rounds in a row.
#[testkit::needs(cc)]
#[test]
fn siglongjmp_out_of_a_blocked_call_leaves_the_kernel_serving() {
    let t = Scratch::new("tree-jmp");
    let exe = t.path("jmp");
    let src = testkit::repo().join("tests/nohang/siglongjmp_out_of_accept.c");
    let cc = std::process::Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&exe)
        .arg(&src)
        .status()
        .unwrap();
    assert!(cc.success());
    let mut child = command(&[exe.to_str().unwrap()], &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (st, _) = wait_within(&mut child, Duration::from_secs(20));
    let out = drain(&mut child);
    assert!(st.success() && out.contains("round 2 ok"), "{st}: {out}");
}

/// Static programs (busybox-static, through the loader and the
/// system-call tier) in a tree: a shell's background listener and a
/// client in a pipeline share the tree's kernel (the host has no such
/// listener).
#[testkit::needs(busybox)]
#[test]
fn static_busybox_processes_share_the_trees_kernel() {
    let t = Scratch::new("tree-bb");
    let out_file = t.path("got");
    let script = format!(
        "busybox nc -l -p 9317 > {out} & sleep 0.5; \
         if grep -q ':245D ' /proc/net/tcp; then echo host-listens; fi; \
         echo hello-tree | busybox nc -w 1 127.0.0.1 9317; wait",
        out = out_file.display()
    );
    let out = hijacked(&["busybox", "sh", "-c", &script], &[]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("host-listens"),
        "{}",
        show(&out)
    );
    assert_eq!(
        std::fs::read_to_string(&out_file).unwrap_or_default(),
        "hello-tree\n",
        "{}",
        show(&out)
    );
}

/// A child started with a cleared environment (`env -i`, a sanitised
/// `subprocess` environment) stays on the tree's kernel: the exec hooks
/// put back what it dropped (the library, the server, the config).
#[testkit::needs(python3)]
#[test]
fn a_child_with_a_cleared_environment_stays_in_the_tree() {
    let script = r#"
import os, socket, subprocess, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(4); port = s.getsockname()[1]
assert (":%04X" % port) not in open("/proc/net/tcp").read()
hello = "import socket; c = socket.create_connection(('127.0.0.1', %d)); c.sendall(b'clean')" % port
subprocess.run(["env", "-i", sys.executable, "-c", hello], check=True)
a, _ = s.accept(); print(a.recv(10).decode())
subprocess.run([sys.executable, "-c", hello], env={}, check=True)
a, _ = s.accept(); print(a.recv(10).decode())
"#;
    let out = hijacked(&[PYTHON, "-c", script], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(stdout.matches("clean").count(), 2, "{}", show(&out));
}

/// `execl`, `execlp` and `execle` (variadic: glibc's call its internal
/// `execve`, which no hook sees) keep a kernel socket `dup2`'d onto the
/// new image's stdin and stdout, and arguments past those in registers
/// arrive intact; `execle`'s own environment is kept, with the tree's
/// variables put back (the shell it runs is hijacked: its stdin is the
/// kernel socket). stdio (`fgets`, `printf`: glibc's internal calls) on
/// such a socket works, in a new image and right after the `dup2`s.
#[testkit::needs(cc)]
#[test]
fn execl_execlp_and_execle_keep_kernel_descriptors() {
    tree_program_prints(
        "execl",
        &[],
        "a0:l:a1:a2:a3:a4:a5:none\np0:lp:p1:p2:p3:p4:p5:none\ne0:le:e1:e2:e3:e4:e5:env\n\
         new-image:fgets\nsame-process:fgets\n",
    );
}

/// Builds tests/tree/NAME.c (with `extra` compiler arguments), runs it
/// hijacked (the tree mode) and checks that it succeeds printing `want`.
fn tree_program_prints(name: &str, extra: &[&str], want: &str) {
    let t = Scratch::new(&format!("tree-{name}"));
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/tree")
        .join(format!("{name}.c"));
    let prog = testkit::build::cc(&src, &t.path(name), extra);
    let out = hijacked(&[prog.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), want, "{}", show(&out));
}

/// The tree's last process, when it exits normally, waits for the
/// kernel's halt: a harness that sends the output to a file and reads it
/// as soon as the launcher returns finds the kernel's last lines there
/// (the config's `dump`, printed as the kernel halts), as in the
/// single-process mode. (`Command::output` would hide a late write: it
/// reads stderr to its end, which the server holds until it exits.)
#[test]
fn the_last_process_waits_for_the_halt() {
    let t = Scratch::new("tree-halt");
    let cfg = t.path("dump.json");
    std::fs::write(
        &cfg,
        r#"{"mount":"sysfs","dump":"/sysfs/class/net/lo/mtu"}"#,
    )
    .unwrap();
    let err = t.path("err");
    let line = format!(
        "for i in 1 2 3; do {launcher} --config {cfg} true 2>{err} || exit 9; \
         grep -q '^65536' {err} || {{ echo \"round $i: no dump line\"; cat {err}; exit 1; }}; done",
        launcher = script().display(),
        cfg = cfg.display(),
        err = err.display()
    );
    let out = std::process::Command::new("bash")
        .args(["-c", &line])
        .env("LKL_HIJACK_LIB", library())
        .env_remove("LKL_HIJACK_CONFIG_FILE")
        .output()
        .expect("run bash");
    assert!(out.status.success(), "{}", show(&out));
}

/// `posix_spawn`/`posix_spawnp` with file actions on kernel descriptors
/// (glibc's spawn runs them with internal calls no hook sees; the library
/// runs such a spawn itself): `cat` with a kernel connection `dup2`'d onto
/// stdin and stdout echoes through the kernel's loopback (a listener the
/// host does not have); `addopen`, `addclosefrom_np` and the attributes
/// (`POSIX_SPAWN_SETSID`, a signal mask) are honoured; a kernel socket
/// that is not close-on-exec reaches the new image without any action;
/// a missing program is ENOENT from both calls.
#[testkit::needs(cc)]
#[test]
fn posix_spawn_file_actions_on_kernel_descriptors() {
    tree_program_prints(
        "spawn",
        &[],
        "cat:through the kernel\nsh:setsid\nsigmask:usr2\ninherited:kept\nmissing:ENOENT:ENOENT\n",
    );
}

/// `system` and `popen` from a parent whose kernel sockets are not
/// close-on-exec (glibc's internal spawn would give the shell none of
/// them; the library runs such a call itself): the shell writes to an
/// inherited kernel socket and the parent reads it through the kernel's
/// loopback (a listener the host does not have); a SOCK_CLOEXEC socket
/// does not reach the shell; `system` and `pclose` return the shell's
/// status, `system(NULL)` finds the shell; a popen shell lacks the other
/// popen streams' pipes, `e` makes a stream close-on-exec, a connected
/// kernel UDP socket works as well, the shell has SIGINT and SIGQUIT at
/// their default and SIGCHLD open while the caller's handler comes back,
/// a bad mode is EINVAL; with no kernel descriptor to keep, glibc's calls
/// run (no fork).
#[testkit::needs(cc)]
#[test]
fn system_and_popen_children_inherit_kernel_sockets() {
    tree_program_prints(
        "shell",
        &["-pthread"],
        "fast:0:fast:0:glibc\nnull:shell\nsystem:system:3:own\ncloexec:cloexec:gone:0\nioctl:ioctl:gone:0\n\
         popen-r:piped:popen:0:own\npopen-w:written:4\nothers:closed:inherit:cloexec:seen\n\
         udp:udp\nsignals:default:chld-open:restored\nmode:EINVAL\n",
    );
}

/// A thread's kernel task takes the host thread's id (set_tid, as a
/// process's anchor takes its pid): `F_SETOWN_EX` naming the calling
/// thread (`F_OWNER_TID`, `gettid()`) on a kernel socket works from a
/// second thread and `F_GETOWN_EX` gives its id back; a netlink socket a
/// thread binds with `nl_pid` 0 gets the process's pid, as on Linux.
#[testkit::needs(cc)]
#[test]
fn threads_have_their_host_ids_in_the_kernel() {
    tree_program_prints(
        "threads",
        &["-pthread"],
        "main-owner:tid\nthread-owner:tid\nthread-netlink:pid\n",
    );
}
