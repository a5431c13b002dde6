//! Unmodified programs on the in-process kernel through LD_PRELOAD
//! (`bin/lkl-hijack.sh`): their sockets live in the kernel, not the host.

use testkit::hijack::*;
use testkit::images::Scratch;
use testkit::netns::in_netns;

#[testkit::needs(python3)]
#[test]
fn python_sockets_live_in_the_kernel() {
    // A listener in the hijacked program, on the kernel's loopback; a client
    // in the same program reaches it, a host client does not.
    let script = r#"
import socket, subprocess, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0)); s.listen(1); port = s.getsockname()[1]
c = socket.create_connection(("127.0.0.1", port)); a, _ = s.accept()
c.sendall(b"x" * 200000); got = 0
while got < 200000: got += len(a.recv(65536))
a.sendall(b"pong"); assert c.recv(4) == b"pong"
# A host process (not hijacked: an empty LD_PRELOAD is the way out of a
# tree, which follows a child whose environment was merely cleared)
# cannot see the kernel's listener.
host = subprocess.run([sys.executable, "-c",
    "import socket,sys\ntry:\n socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=1); print('reached')\nexcept OSError: print('refused')",
    str(port)], env={"LD_PRELOAD": ""}, capture_output=True, text=True).stdout.strip()
print("kernel-echo", got, "host-client", host)
"#;
    let out = hijacked(&[PYTHON, "-c", script], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("kernel-echo 200000 host-client refused"),
        "{stdout}"
    );
}

#[testkit::needs(python3)]
#[test]
fn bad_config_stops_the_program_before_main() {
    let dir = std::env::temp_dir().join(format!("lkl-hijack-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.json");
    std::fs::write(
        &file,
        r#"{"interfaces":[{"type":"tap","param":"tap0","ip":"10.0.0.300","masklen":"24"}]}"#,
    )
    .unwrap();
    let out = hijacked(
        &[PYTHON, "-c", "print('main ran')"],
        &[("LKL_HIJACK_CONFIG_FILE", file.to_str().unwrap())],
    );
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(!stdout.contains("main ran"), "main must not run");
    assert!(
        stderr.contains("interfaces[0].ip") && stderr.contains("10.0.0.300"),
        "{stderr}"
    );
}

#[testkit::needs(root, tun, ping)]
#[test]
fn hijacked_ping_over_tap() {
    in_netns("hijacked_ping_over_tap", "hjping", tap_setup, || {
        let dir = std::env::temp_dir().join(format!("lkl-hijack-ping-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("tap.json");
        std::fs::write(&file, tap_config(None)).unwrap();
        let rx_before =
            std::fs::read_to_string("/sys/class/net/tap0/statistics/rx_packets").unwrap();
        let out = hijacked(
            &["ping", "-c", "3", "-i", "0.2", "192.168.113.1"],
            &[("LKL_HIJACK_CONFIG_FILE", file.to_str().unwrap())],
        );
        let rx_after =
            std::fs::read_to_string("/sys/class/net/tap0/statistics/rx_packets").unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("3 packets transmitted, 3 received"),
            "{stdout}"
        );
        let (before, after): (u64, u64) = (
            rx_before.trim().parse().unwrap(),
            rx_after.trim().parse().unwrap(),
        );
        // The echo requests came in through the tap: the kernel in ping sent them.
        assert!(after >= before + 3, "tap rx {before} -> {after}");
        println!(
            "{}",
            stdout
                .lines()
                .find(|l| l.contains("packets transmitted"))
                .unwrap_or("")
        );
    });
}

#[testkit::needs(python3)]
#[test]
fn poll_waits_on_host_and_kernel_descriptors_together() {
    let script = r#"
import os, select, socket, threading
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
c = socket.create_connection(s.getsockname()); a, _ = s.accept()
r, w = os.pipe()                      # a host pipe
p = select.poll(); p.register(a, select.POLLIN); p.register(r, select.POLLIN)
assert p.poll(100) == [], "nothing is ready yet"
threading.Timer(0.2, lambda: c.send(b"k")).start()
ev = p.poll(5000); assert ev == [(a.fileno(), select.POLLIN)], ev
assert a.recv(1) == b"k"
threading.Timer(0.2, lambda: os.write(w, b"h")).start()
ev = p.poll(5000); assert ev == [(r, select.POLLIN)], ev
print("mixed poll ok")
"#;
    run_python(script, "mixed poll ok");
}

#[testkit::needs(python3)]
#[test]
fn select_waits_on_host_and_kernel_descriptors_together() {
    let script = r#"
import os, select, socket, threading
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
c = socket.create_connection(s.getsockname()); a, _ = s.accept()
r, w = os.pipe()
assert select.select([a, r], [], [], 0.1) == ([], [], [])
threading.Timer(0.2, lambda: c.send(b"k")).start()
rd, wr, ex = select.select([a, r], [], [], 5); assert rd == [a], rd
assert a.recv(1) == b"k"
threading.Timer(0.2, lambda: os.write(w, b"h")).start()
rd, wr, ex = select.select([a, r], [], [], 5); assert rd == [r], rd
rd, wr, ex = select.select([], [a], [], 1); assert wr == [a], wr
print("mixed select ok")
"#;
    run_python(script, "mixed select ok");
}

#[testkit::needs(python3)]
#[test]
fn dup_family_keeps_the_table_right() {
    let script = r#"
import os, socket, fcntl
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
c = socket.create_connection(s.getsockname()); a, _ = s.accept()
d = os.dup(a.fileno()); os.write(d, b"1"); assert c.recv(1) == b"1"
os.dup2(a.fileno(), 77); os.write(77, b"2"); assert c.recv(1) == b"2"
e = fcntl.fcntl(a.fileno(), fcntl.F_DUPFD, 200); assert e >= 200
os.write(e, b"3"); assert c.recv(1) == b"3"
os.close(d); os.close(77); os.close(e)
os.write(a.fileno(), b"4"); assert c.recv(1) == b"4"   # the original still works
r, w = os.pipe(); os.dup2(r, 77); os.write(w, b"h"); assert os.read(77, 1) == b"h"  # host onto the old number
saved = os.dup(1)
os.dup2(a.fileno(), 1); os.write(1, b"via stdout\n"); os.dup2(saved, 1)
assert c.recv(64) == b"via stdout\n"
print("dup ok")
"#;
    run_python(script, "dup ok");
}

#[testkit::needs(root, tun, python3)]
#[test]
fn data_written_before_exit_reaches_the_peer() {
    // The program's kernel goes with it at exit: the library must let it
    // send what was queued (and the FIN) first, as the host would after
    // the process is gone. 5 MB written, no close, exit.
    in_netns(
        "data_written_before_exit_reaches_the_peer",
        "hjlinger",
        tap_setup,
        || {
            let dir = Scratch::new("hjlinger");
            let config = dir.path("tap.json");
            std::fs::write(&config, tap_config(Some("0x883"))).unwrap();
            let server = r#"
import hashlib, socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("192.168.113.1", 7777)); s.listen(1); print("ready", flush=True)
c, _ = s.accept(); c.settimeout(10); h = hashlib.sha256(); n = 0
try:
    while True:
        d = c.recv(1 << 16)
        if not d: break
        h.update(d); n += len(d)
    print("eof", n, h.hexdigest())
except OSError as e:
    print("error", e, n)
"#;
            let mut cmd = std::process::Command::new(PYTHON);
            cmd.args(["-c", server]);
            let (mut host, line) = start_first_line(cmd);
            assert_eq!(line.trim(), "ready");
            let client = r#"
import socket
c = socket.create_connection(("192.168.113.1", 7777))
c.sendall(bytes(range(256)) * 20000)
print("sent")
"#;
            let out = hijacked(
                &[PYTHON, "-c", client],
                &[("LKL_HIJACK_CONFIG_FILE", config.to_str().unwrap())],
            );
            assert!(out.status.success(), "{}", show(&out));
            let rest = drain(&mut host);
            let want = sha256(&(0..=255u8).collect::<Vec<_>>().repeat(20000));
            let hex: String = want.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(rest.trim(), format!("eof 5120000 {hex}"), "{}", show(&out));
            println!("all 5120000 bytes and the FIN arrived after the program exited");
        },
    );
}

/// LKL's scripts preload the library as `liblkl-hijack.so` (found through
/// `LD_LIBRARY_PATH`): that name, the link `bin/setup.sh` makes next to
/// the built `liblkl_hijack.so` (made here too, the same way), loads the
/// same library, directly and through the launcher.
#[test]
fn preloading_by_lkl_s_name_works() {
    let lib = library();
    let dir = lib.parent().unwrap();
    let lkl_name = dir.join("liblkl-hijack.so");
    match std::os::unix::fs::symlink("liblkl_hijack.so", &lkl_name) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => panic!("{}: {e}", lkl_name.display()),
    }
    let out = std::process::Command::new("/bin/sh")
        .args(["-c", "echo ran"])
        .env_remove("LKL_HIJACK_CONFIG_FILE")
        .env("LD_PRELOAD", "liblkl-hijack.so")
        .env("LD_LIBRARY_PATH", dir)
        .env("LKL_HIJACK_DEBUG", "1")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ran\n");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("lkl-hijack: debug: 0x1"),
        "{}",
        show(&out)
    );
    let out = command(&["/bin/sh", "-c", "echo ran"], &[("LKL_HIJACK_DEBUG", "1")])
        .env("LKL_HIJACK_LIB", &lkl_name)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("lkl-hijack: debug: 0x1"),
        "{}",
        show(&out)
    );
}
