//! The hijack library's system-facing parts: names resolved through the
//! kernel, signals interrupting kernel calls, fork and exec, exit.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use testkit::hijack::*;
use testkit::images::Scratch;
use testkit::netns::in_netns;

#[testkit::needs(root, tun, python3, curl)]
#[test]
fn hijack_resolves_names_through_the_kernel() {
    in_netns(
        "hijack_resolves_names_through_the_kernel",
        "hjdns",
        tap_setup,
        || {
            let dir = Scratch::new("dns");
            let server =
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/hijack/dns_server.py");
            let mut dns = Helper(
                Command::new(PYTHON)
                    .arg(&server)
                    .arg("192.168.113.1")
                    .stdout(Stdio::piped())
                    .spawn()
                    .unwrap(),
            );
            let mut line = String::new();
            BufReader::new(dns.0.stdout.take().unwrap())
                .read_line(&mut line)
                .unwrap();
            assert_eq!(line.trim(), "ready");
            let blob: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7919 % 251) as u8).collect();
            std::fs::write(dir.0.join("blob"), &blob).unwrap();
            let _http = Helper(
                Command::new(PYTHON)
                    .args([
                        "-m",
                        "http.server",
                        "8080",
                        "--bind",
                        "192.168.113.1",
                        "--directory",
                    ])
                    .arg(&dir.0)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap(),
            );
            wait_for_tcp("192.168.113.1:8080");
            let config = dir.0.join("tap.json");
            std::fs::write(
                &config,
                r#"{"interfaces":[{"type":"tap","param":"tap0","ip":"192.168.113.2","masklen":"24"}],"nameserver":"192.168.113.1"}"#,
            )
            .unwrap();
            let env = [("LKL_HIJACK_CONFIG_FILE", config.to_str().unwrap())];
            let py = r#"
import socket as s
def addrs(name, fam=0, flags=0):
    return sorted({a[4][0] for a in s.getaddrinfo(name, 8080, fam, s.SOCK_STREAM, 0, flags)})
assert addrs("web.test") == ["192.168.113.1"], addrs("web.test")
assert addrs("WEB.test.") == ["192.168.113.1"]
assert addrs("both.test") == ["192.168.113.1", "fd00::1"], addrs("both.test")
assert addrs("both.test", s.AF_INET6) == ["fd00::1"]
assert addrs("big.test") == ["192.168.113.7"], "TCP fallback"
ai = s.getaddrinfo("alias.test", 80, 0, s.SOCK_STREAM, 0, s.AI_CANONNAME)
assert ai[0][3] == "web.test" and ai[0][4][0] == "192.168.113.1", ai
try:
    s.getaddrinfo("nosuch.test", 80); raise SystemExit("nosuch resolved")
except s.gaierror as e:
    assert e.errno == s.EAI_NONAME, e
try:
    s.getaddrinfo("web.test", 80, 0, 0, 0, s.AI_NUMERICHOST); raise SystemExit("numeric")
except s.gaierror as e:
    assert e.errno == s.EAI_NONAME, e
assert addrs("localhost", s.AF_INET) == ["127.0.0.1"]          # /etc/hosts
assert addrs("10.1.2.3", 0, s.AI_NUMERICHOST) == ["10.1.2.3"]
p = s.getaddrinfo(None, 80, s.AF_INET, s.SOCK_STREAM, 0, s.AI_PASSIVE)
assert p[0][4] == ("0.0.0.0", 80), p
three = s.getaddrinfo("web.test", 80)
assert sorted(a[1] for a in three) == [s.SOCK_STREAM, s.SOCK_DGRAM, s.SOCK_RAW], three
assert s.getaddrinfo("web.test", "http", s.AF_INET, s.SOCK_STREAM)[0][4][1] == 80
assert s.gethostbyname("web.test") == "192.168.113.1"
assert s.gethostbyname_ex("alias.test") == ("web.test", [], ["192.168.113.1"]), s.gethostbyname_ex("alias.test")
assert s.getnameinfo(("192.168.113.1", 80), 0) == ("web.test", "http"), s.getnameinfo(("192.168.113.1", 80), 0)
assert s.getnameinfo(("192.168.113.9", 80), s.NI_NUMERICSERV) == ("192.168.113.9", "80")
c = s.create_connection(("web.test", 8080)); c.close()
print("resolved ok")
"#;
            let out = hijacked(&[PYTHON, "-c", py], &env);
            assert!(
                out.status.success()
                    && String::from_utf8_lossy(&out.stdout).contains("resolved ok"),
                "{}",
                show(&out)
            );
            let got = dir.0.join("got");
            let out = hijacked(
                &[
                    "curl",
                    "-sS",
                    "--max-time",
                    "20",
                    "-o",
                    got.to_str().unwrap(),
                    "http://web.test:8080/blob",
                ],
                &env,
            );
            assert!(out.status.success(), "{}", show(&out));
            let fetched = std::fs::read(&got).unwrap();
            assert_eq!(sha256(&fetched), sha256(&blob), "curl fetched other bytes");
            println!(
                "curl http://web.test:8080/blob: {} bytes, SHA-256 matches",
                fetched.len()
            );
        },
    );
}

#[testkit::needs(python3)]
#[test]
fn sigint_ends_a_server_blocked_in_accept() {
    let script = r#"
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
print("listening", flush=True)
try:
    s.accept()
except KeyboardInterrupt:
    print("interrupted", flush=True); sys.exit(0)
print("accept returned", flush=True); sys.exit(2)
"#;
    let (mut child, line) = start_python(script, &[]);
    assert_eq!(line.trim(), "listening");
    std::thread::sleep(Duration::from_millis(200)); // let it block in accept
                                                    // SAFETY: signals our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let (st, took) = wait_within(&mut child, Duration::from_secs(1));
    let rest = drain(&mut child);
    assert!(st.success() && rest.contains("interrupted"), "{st}: {rest}");
    println!("SIGINT to exit: {took:?}");
}

#[testkit::needs(python3)]
#[test]
fn sa_restart_decides_between_eintr_and_restart() {
    // The Python-level handler runs while recv is blocked if the call
    // returned EINTR; only after the data came if the call was restarted.
    let script = r#"
import signal, socket, threading, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
c = socket.create_connection(s.getsockname()); a, _ = s.accept()
main = threading.main_thread().ident
def trial(interrupt):
    seen = []
    signal.signal(signal.SIGUSR1, lambda *x: seen.append(time.monotonic()))
    signal.siginterrupt(signal.SIGUSR1, interrupt)
    def later():
        time.sleep(0.2); signal.pthread_kill(main, signal.SIGUSR1)
        time.sleep(0.4); c.send(b"x")
    threading.Thread(target=later).start()
    t0 = time.monotonic(); got = a.recv(1); t1 = time.monotonic()
    assert got == b"x"
    return "eintr" if seen and seen[0] - t0 < 0.5 else "restart"
print(trial(True), trial(False))
"#;
    run_python(script, "eintr restart");
}

#[testkit::needs(python3)]
#[test]
fn write_to_a_closed_peer_raises_sigpipe() {
    let script = r#"
import signal, socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
c = socket.create_connection(s.getsockname()); a, _ = s.accept(); a.close()
try:
    for i in range(50): c.send(b"x" * 1000, socket.MSG_NOSIGNAL); time.sleep(0.01)
except BrokenPipeError:
    print("nosignal EPIPE", flush=True)
c2 = socket.create_connection(s.getsockname()); a2, _ = s.accept(); a2.close()
signal.signal(signal.SIGPIPE, signal.SIG_DFL)
for i in range(50): c2.send(b"x" * 1000); time.sleep(0.01)
print("survived", flush=True)
"#;
    let out = hijacked(&[PYTHON, "-c", script], &[]);
    use std::os::unix::process::ExitStatusExt;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("nosignal EPIPE"), "{}", show(&out));
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{}", show(&out));
}

#[testkit::needs(python3)]
#[test]
fn single_process_fork_child_gets_ebadf_and_exec_boots_its_own_kernel() {
    let script = r#"
import errno, os, socket, subprocess, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(4)
c = socket.create_connection(s.getsockname()); a, _ = s.accept()
# A forking server: the child cannot use the connection (the kernel
# stayed in the parent) and says so at once; the parent carries on.
pid = os.fork()
if pid == 0:
    code = 0
    try:
        a.send(b"x"); code = 3
    except OSError as e:
        code = 0 if e.errno == errno.EBADF else 4
    try:
        socket.socket(); code = 5
    except OSError:
        pass
    a.close()
    os._exit(code)
_, st = os.waitpid(pid, 0)
assert os.WEXITSTATUS(st) == 0, os.WEXITSTATUS(st)
a.send(b"y"); assert c.recv(1) == b"y"
assert os.system("true") == 0
out = subprocess.run([sys.executable, "-c",
    "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); print('child kernel', s.getsockname()[1] > 0)"],
    capture_output=True, text=True, timeout=20)
assert out.returncode == 0 and "child kernel True" in out.stdout, out
print("fork ok")
"#;
    // LKL's way: the kernel lives in the program's process.
    let out = hijacked(&["--single-process", PYTHON, "-c", script], &[]);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("fork ok"),
        "{}",
        show(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("fork of the one that runs the kernel"),
        "{}",
        show(&out)
    );
}

#[testkit::needs(python3)]
#[test]
fn main_returns_with_a_thread_blocked_in_the_kernel() {
    let script = r#"
import socket, threading, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
c = socket.create_connection(s.getsockname()); a, _ = s.accept()
threading.Thread(target=lambda: a.recv(1), daemon=True).start()
time.sleep(0.1)
print("main returns", flush=True)
"#;
    let (mut child, line) = start_python(script, &[]);
    assert_eq!(line.trim(), "main returns");
    let (st, took) = wait_within(&mut child, Duration::from_secs(1));
    assert!(st.success(), "{st}: {}", drain(&mut child));
    println!("exit with a blocked thread: {took:?}");
}

#[testkit::needs(python3)]
#[test]
fn exit_from_another_thread_while_main_is_blocked() {
    let script = r#"
import ctypes, socket, threading, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
def bye():
    time.sleep(0.2); print("exiting", flush=True); ctypes.CDLL(None).exit(0)
threading.Thread(target=bye).start()
s.accept()
"#;
    let (mut child, line) = start_python(script, &[]);
    assert_eq!(line.trim(), "exiting");
    let (st, took) = wait_within(&mut child, Duration::from_secs(1));
    assert!(st.success(), "{st}: {}", drain(&mut child));
    println!("exit() from a thread: {took:?}");
}

#[testkit::needs(python3)]
#[test]
fn dump_paths_are_printed_at_exit() {
    let dir = Scratch::new("dump");
    let config = dir.0.join("dump.json");
    std::fs::write(
        &config,
        r#"{"mount":"proc","dump":"/proc/sys/net/ipv4/tcp_congestion_control,/proc/nonexistent"}"#,
    )
    .unwrap();
    let out = hijacked(
        &[PYTHON, "-c", "print('ran')"],
        &[("LKL_HIJACK_CONFIG_FILE", config.to_str().unwrap())],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        stderr.contains("dump /proc/sys/net/ipv4/tcp_congestion_control:\ncubic"),
        "{}",
        show(&out)
    );
    assert!(
        stderr.contains("dump /proc/nonexistent: "),
        "{}",
        show(&out)
    );
}

#[testkit::needs(python3)]
#[test]
fn interface_queries_answer_for_the_kernel() {
    // The kernel has only lo (no config): the host's interfaces do not show.
    let script = r#"
import fcntl, socket, struct
assert socket.if_nametoindex("lo") == 1
assert socket.if_indextoname(1) == "lo"
assert [n for _, n in socket.if_nameindex()] == ["lo"], socket.if_nameindex()
try:
    socket.if_nametoindex("eth0"); raise SystemExit("eth0 exists")
except OSError:
    pass
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
r = fcntl.ioctl(s.fileno(), 0x8933, struct.pack("16si20x", b"lo", 0))   # SIOCGIFINDEX
assert struct.unpack("16si20x", r)[1] == 1
r = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("16s24x", b"lo"))       # SIOCGIFADDR
assert socket.inet_ntoa(r[20:24]) == "127.0.0.1"
print("ifaces ok")
"#;
    run_python(script, "ifaces ok");
}

#[testkit::needs(python3)]
#[test]
fn launcher_help_and_config_option() {
    let out = Command::new(script()).arg("--help").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--config FILE"));
    let out = Command::new(script())
        .args(["--config", "/nonexistent.json", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.json"));
    let dir = Scratch::new("cfg");
    let config = dir.0.join("c.json");
    std::fs::write(&config, r#"{"nameserver":"192.0.2.53"}"#).unwrap();
    let out = hijacked(
        &[
            "--config",
            config.to_str().unwrap(),
            PYTHON,
            "-c",
            "import sys; print(sys.argv[1:])",
            "a  b",
            "$x",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "['a  b', '$x']"
    );
}
