//! Running unmodified programs under the hijack (`bin/lkl-hijack.sh` with
//! the preload library built next to the test binary), and what tests of
//! hijacked programs share: a tap namespace layout, helper processes,
//! waiting with a limit.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use crate::netns::Netns;

/// The system's Python (the pyenv shim would spawn many processes).
pub const PYTHON: &str = "/usr/bin/python3";

/// The preload library built next to this test binary.
pub fn library() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let lib = dir.join("liblkl_hijack.so");
    assert!(
        lib.exists(),
        "{} missing: build the workspace first (cargo build --workspace)",
        lib.display()
    );
    lib
}

/// The launcher.
pub fn script() -> PathBuf {
    crate::repo().join("bin/lkl-hijack.sh")
}

/// `args` under the hijack, with no config from whoever runs the tests
/// (`envs` may set one), in the temp directory.
pub fn command(args: &[&str], envs: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(script());
    cmd.env_remove("LKL_HIJACK_CONFIG_FILE");
    cmd.args(args).env("LKL_HIJACK_LIB", library());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.current_dir(std::env::temp_dir());
    cmd
}

/// `args` under the hijack with the config file `config`.
pub fn with_config(config: &std::path::Path, args: &[&str]) -> Command {
    let mut cmd = command(args, &[]);
    cmd.env("LKL_HIJACK_CONFIG_FILE", config);
    cmd
}

/// Runs `args` under the hijack to the end.
pub fn hijacked(args: &[&str], envs: &[(&str, &str)]) -> Output {
    command(args, envs)
        .output()
        .expect("run the hijacked program")
}

/// An exit status and both streams, for assertion messages.
pub fn show(out: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `script` under the hijack with `envs`; it must succeed and print
/// `expect`. Returns its stdout.
pub fn run_python_with(script: &str, expect: &str, envs: &[(&str, &str)]) -> String {
    let out = hijacked(&[PYTHON, "-c", script], envs);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && stdout.contains(expect),
        "expected {expect:?}\n{}",
        show(&out)
    );
    stdout
}

/// Runs `script` under the hijack (loopback only); see [`run_python_with`].
pub fn run_python(script: &str, expect: &str) -> String {
    run_python_with(script, expect, &[])
}

/// Starts `script` under the hijack and waits for its first line.
pub fn start_python(script: &str, envs: &[(&str, &str)]) -> (Child, String) {
    let mut cmd = command(&[PYTHON, "-c", script], envs);
    cmd.stderr(Stdio::piped());
    start_first_line(cmd)
}

/// Starts `cmd` with its stdout piped (stderr as `cmd` has it) and waits
/// for its first line.
pub fn start_first_line(mut cmd: Command) -> (Child, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the program");
    let mut line = String::new();
    let stdout = child.stdout.as_mut().expect("piped stdout");
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("first line");
    (child, line)
}

/// Waits for `child` at most `limit`; kills it and fails after that.
pub fn wait_within(child: &mut Child, limit: Duration) -> (ExitStatus, Duration) {
    let t0 = Instant::now();
    match crate::wait_limited(child, limit) {
        Some(st) => (st, t0.elapsed()),
        None => panic!("still running after {limit:?}: {}", drain(child)),
    }
}

/// Waits for `child` and returns what is left of its stdout and stderr.
pub fn drain(child: &mut Child) -> String {
    let _ = child.wait();
    let mut s = String::new();
    if let Some(o) = child.stdout.as_mut() {
        let _ = o.read_to_string(&mut s);
    }
    if let Some(e) = child.stderr.as_mut() {
        let _ = e.read_to_string(&mut s);
    }
    s
}

/// A helper process, killed on drop.
pub struct Helper(pub Child);

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Namespace setup: tap0 = 192.168.113.1/24 on the host side (the kernel
/// takes 192.168.113.2 through a config naming tap0). The test needs
/// `root, tun`.
pub fn tap_setup(ns: &Netns) -> Result<(), String> {
    ns.lo_up()?;
    ns.add_tap("tap0", false, &["192.168.113.1/24"])
}

/// The config for [`tap_setup`]'s tap (offloads as given, e.g. "0x883").
pub fn tap_config(offload: Option<&str>) -> String {
    let offload = offload
        .map(|o| format!(r#","offload":"{o}""#))
        .unwrap_or_default();
    format!(
        r#"{{"interfaces":[{{"type":"tap","param":"tap0","ip":"192.168.113.2","masklen":"24"{offload}}}]}}"#
    )
}

/// [`tap_config`] (no `offload` key) in a file of its own in `dir`.
pub fn tap_config_file(dir: &std::path::Path, tag: &str) -> PathBuf {
    let file = dir.join(format!("tap-{tag}-{}.json", std::process::id()));
    std::fs::write(&file, tap_config(None)).expect("write the tap config");
    file
}

/// Waits until something listens on `addr` (10 s at most).
pub fn wait_for_tcp(addr: &str) {
    let t0 = Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{addr} never listened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    Sha256::digest(data).to_vec()
}

/// `n` concurrent HTTP GETs of `/` at `addr` (connections closed after
/// each), each checked: status 200, the server saw the client at `peer`
/// (its `X-Peer` header: the tests' Go server), a body of `body` bytes.
pub fn concurrent_gets(addr: &str, n: usize, peer: &str, body: usize) {
    use std::io::Write;
    let clients: Vec<_> = (0..n)
        .map(|_| {
            let addr = addr.to_owned();
            std::thread::spawn(move || {
                let mut c = std::net::TcpStream::connect(&addr).unwrap();
                c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                c.write_all(b"GET / HTTP/1.1\r\nHost: k\r\nConnection: close\r\n\r\n")
                    .unwrap();
                let mut all = Vec::new();
                c.read_to_end(&mut all).unwrap();
                String::from_utf8_lossy(&all).into_owned()
            })
        })
        .collect();
    for c in clients {
        let resp = c.join().unwrap();
        let head = &resp[..resp.len().min(300)];
        assert!(resp.starts_with("HTTP/1.1 200"), "{head}");
        assert!(resp.contains(&format!("X-Peer: {peer}")), "{head}");
        assert_eq!(
            resp.split("\r\n\r\n").nth(1).unwrap_or("").len(),
            body,
            "{head}"
        );
    }
}
