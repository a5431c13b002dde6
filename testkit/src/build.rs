//! Building the small programs tests run (C with the system's compiler,
//! Go with Debian's toolchain, offline) and running a command with a time
//! limit, so that a hang fails its test instead of holding the suite.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::hijack::show;

/// Runs `cmd`, which must succeed (`what` names it in the failure).
pub fn run_ok(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(out.status.success(), "{what}: {}", show(&out));
}

/// Compiles `src` into `out` with `cc -O2 -Wall` and `extra` arguments.
pub fn cc(src: &Path, out: &Path, extra: &[&str]) -> PathBuf {
    run_ok(
        Command::new("cc")
            .args(["-O2", "-Wall", "-o"])
            .arg(out)
            .arg(src)
            .args(extra),
        &format!("cc {}", src.display()),
    );
    out.to_path_buf()
}

/// Builds the Go program in `dir` into `out`, with cgo (dynamic) or
/// without (static), offline, with its caches under `cache`; checks which
/// it is.
pub fn go(dir: &Path, out: &Path, cgo: bool, cache: &Path) -> PathBuf {
    run_ok(
        Command::new("go")
            .args(["build", "-o"])
            .arg(out)
            .arg(".")
            .current_dir(dir)
            .env("CGO_ENABLED", if cgo { "1" } else { "0" })
            .env("GOCACHE", cache.join("cache"))
            .env("GOPATH", cache.join("path"))
            .env("GOFLAGS", "-mod=mod")
            .env("GOPROXY", "off"),
        &format!("go build {}", dir.display()),
    );
    let elf = std::fs::read(out).unwrap_or_default();
    let dynamic = elf.windows(16).any(|w| w == b"/lib64/ld-linux-");
    assert_eq!(dynamic, cgo, "{}: dynamic {dynamic}", out.display());
    out.to_path_buf()
}

/// Runs `cmd` to the end, at most `limit` (then it is killed and the test
/// fails with what it printed).
pub fn output_within(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the command");
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut v);
            }
            v
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|o| Box::new(o) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|e| Box::new(e) as Box<dyn Read + Send>),
    );
    let status = crate::wait_limited(&mut child, limit);
    let (stdout, stderr) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    let Some(status) = status else {
        panic!(
            "still running after {} s (killed)\n--- stdout\n{}\n--- stderr\n{}",
            limit.as_secs(),
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        );
    };
    Output {
        status,
        stdout,
        stderr,
    }
}
