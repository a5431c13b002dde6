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
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use lkl::host::{Console, ConsoleBuffer};
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
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for test child") {
            break Some(status);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
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
    let t0 = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return Some(child.wait_with_output().unwrap());
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
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

pub mod hijack;
pub mod images;
pub mod netns;
pub mod wire;
