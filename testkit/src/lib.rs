//! The helpers the tests of every member share. The kernel boots once per process, so every test
//! that boots runs its body in a child process of the test binary (the
//! same binary, filtered to that one test). This works the same under
//! `cargo test` and `cargo nextest`.
//!
//! A test that needs something of the machine says so with
//! `#[testkit::needs(...)]` above its `#[test]`: where it is missing the
//! test is ignored (listed with the reason, counted in "N ignored"), and
//! under `CI=true` it fails. docs/testing.md has the list and the rules.

#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use lkl::config::Config;
use lkl::devices::AttachedDevice;
use lkl::host::{Console, ConsoleBuffer};
use lkl::virtio::net::backends::open_backend;
use lkl::virtio::Net;
use lkl::{BootOptions, Kernel};

pub use testkit_needs::needs;
pub use testkit_probe as probe;

const CHILD_ENV: &str = "LKL_TEST_CHILD";

/// Fails the test if a prerequisite in `names` is missing here (the
/// `needs` attribute puts this call first in the test). Only the test's
/// own process checks: the children it starts (a boot in a child, the
/// half inside a namespace) were started because it passed.
pub fn require(names: &[&str]) {
    if std::env::var_os(CHILD_ENV).is_some() || std::env::var_os(netns::INNER_ENV).is_some() {
        return;
    }
    let missing: Vec<String> = names
        .iter()
        .filter_map(|n| probe::missing(n).map(|why| format!("{n}: {why}")))
        .collect();
    assert!(
        missing.is_empty(),
        "missing prerequisite: {} (bin/setup.sh installs tools). {}",
        missing.join("; "),
        if probe::ci() {
            "CI is set: a missing prerequisite fails the test."
        } else {
            "The build found it (or the test runs with --ignored): rebuild to have it ignored."
        }
    );
}

/// The repository's top folder (scripts, `bin/`, `tests/hijack/`).
pub fn repo() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}

/// A program of the workspace (`cptofs`, `lklfuse`, `hijack-stress`, ...),
/// built into the same target folder as the running test binary; a test
/// in the package that defines it uses `CARGO_BIN_EXE_*` instead.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let bin = dir.join(name);
    assert!(
        bin.exists(),
        "{} missing: build the workspace first (cargo build --workspace)",
        bin.display()
    );
    bin
}

/// Runs `body` in a fresh child process; fails if it fails, crashes or
/// takes longer than `limit`.
pub fn in_child(name: &str, limit: Duration, body: fn()) {
    if std::env::var(CHILD_ENV).as_deref() == Ok(name) {
        body();
        return;
    }
    let exe = std::env::current_exe().expect("test binary path");
    let mut child = Command::new(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, name)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn test child");
    let status = wait_limited(&mut child, limit);
    let mut out = String::new();
    let mut err = String::new();
    let _ = child.stdout.take().map(|mut s| s.read_to_string(&mut out));
    let _ = child.stderr.take().map(|mut s| s.read_to_string(&mut err));
    // Relay the child's own lines (libtest's summary lines are noise here).
    for line in out.lines().chain(err.lines()) {
        if !line.starts_with("running ")
            && !line.starts_with("test result")
            && !line.trim().is_empty()
        {
            println!("  | {line}");
        }
    }
    match status {
        None => panic!("{name}: no result after {limit:?} (hang?)"),
        Some(s) if !s.success() => panic!("{name}: child failed: {s}"),
        Some(_) => {}
    }
}

/// Waits for `child` at most `limit`; after that kills and reaps it
/// (it is our own child) and returns None.
pub fn wait_limited(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait for a child") {
            return Some(status);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Boots with `mem` bytes of RAM, console kept in memory.
pub fn boot(mem: u64) -> (Kernel, ConsoleBuffer) {
    let buf = ConsoleBuffer::new();
    let opts = BootOptions {
        memory: mem,
        console: Console::Buffer(buf.clone()),
        ..Default::default()
    };
    match Kernel::boot(opts) {
        Ok(k) => (k, buf),
        Err(e) => panic!("boot failed: {e}\n{}", buf.contents()),
    }
}

/// Attaches one virtio-net device made from the first interface of
/// `config` (its backend, its offloads, its MAC or else `default_mac`),
/// boots with `mem` bytes of RAM and applies the config to it as eth0.
pub fn boot_with_net(
    config: &Config,
    mem: u64,
    default_mac: Option<[u8; 6]>,
) -> (Kernel, AttachedDevice) {
    let iface = &config.interfaces[0];
    let features = u64::from(iface.offload.bits());
    let backend = open_backend(&iface.backend, features != 0).expect("network backend");
    let mac = iface.mac.map(|m| m.0).or(default_mac);
    let net = Net::new(backend, features, mac).expect("net device");
    let device = lkl::devices::attach(Box::new(net)).expect("attach");
    let kernel = Kernel::boot(BootOptions {
        memory: mem,
        ..Default::default()
    })
    .expect("boot");
    lkl::netcfg::apply(config, &[(0, "eth0".to_string())]).expect("apply config");
    (kernel, device)
}

/// The whole content of a file in the kernel's tree.
pub fn read_kernel_file(path: &str) -> Vec<u8> {
    let fd = lkl::syscall::open(path, lkl::syscall::abi::O_RDONLY, 0).expect("open");
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = lkl::syscall::read(fd, &mut buf).expect("read");
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    lkl::syscall::close(fd).expect("close");
    out
}

/// Host threads of this process.
pub fn host_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// True when the built kernel has networking (the default config does).
pub fn kernel_has_net() -> bool {
    lkl::syscall::socket(lkl::syscall::abi::AF_INET, lkl::syscall::abi::SOCK_DGRAM, 0)
        .map(|fd| {
            let _ = lkl::syscall::close(fd);
        })
        .is_ok()
}

/// Runs `cmd` (stdin empty, output captured) with a time limit; None if it had to be killed.
pub fn run_limited(mut cmd: Command, limit: Duration) -> Option<Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_limited(&mut child, limit)?;
    Some(child.wait_with_output().expect("collect the output"))
}

/// Runs `program ARGS`: it must fail, saying `want` on stderr in at most
/// two lines.
pub fn refuses(program: &str, args: &[&str], want: &str) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(err.contains(want), "{args:?}: {err}");
    assert!(err.trim().lines().count() <= 2, "{args:?}: {err}");
}

/// No crash signal, no panic.
pub fn no_crash(what: &str, out: &Output) {
    use std::os::unix::process::ExitStatusExt;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.signal().is_none(),
        "{what}: killed by signal {:?}\n{err}",
        out.status.signal()
    );
    assert!(!err.contains("panicked"), "{what}: panic\n{err}");
}

pub mod build;
pub mod hijack;
pub mod images;
pub mod netns;
pub mod wire;
