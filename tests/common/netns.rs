//! Network namespaces for tests: each test that creates interfaces makes a
//! namespace of its own, puts its devices there, runs its body there (this
//! test binary again, under `ip netns exec`) and deletes it at the end.
//! Traffic stays inside; name lookups go to 127.0.0.1 and fail at once.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const INNER_ENV: &str = "LKL_TEST_NETNS";

/// Why this host cannot run namespace tests, if it cannot.
pub fn missing_privilege() -> Option<String> {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let caps = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    for (bit, name) in [
        (12, "CAP_NET_ADMIN"),
        (13, "CAP_NET_RAW"),
        (21, "CAP_SYS_ADMIN"),
    ] {
        if caps & (1 << bit) == 0 {
            return Some(format!("needs {name} (run as root)"));
        }
    }
    if !Path::new("/dev/net/tun").exists() {
        return Some("/dev/net/tun is absent".into());
    }
    if Command::new("ip")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        return Some("iproute2's `ip` is not installed".into());
    }
    None
}

pub fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("{cmd:?}: cannot run: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A network namespace of our own, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn create(tag: &str) -> Result<Netns, String> {
        let name = format!("lkl-{}-{tag}", std::process::id());
        run(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Netns { name };
        let etc = ns.etc_dir();
        fs::create_dir_all(&etc)
            .and_then(|()| fs::write(etc.join("resolv.conf"), "nameserver 127.0.0.1\n"))
            .map_err(|e| format!("{}: {e}", etc.display()))?;
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    fn etc_dir(&self) -> PathBuf {
        Path::new("/etc/netns").join(&self.name)
    }

    /// `ip -n <ns> ARGS`.
    pub fn ip(&self, args: &[&str]) -> Result<String, String> {
        run(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run(Command::new("ip").args(["netns", "del", &self.name]));
        let _ = fs::remove_dir_all(self.etc_dir());
    }
}

/// Runs `body` inside a fresh namespace prepared by `setup`; `test` is the
/// test function's name. Skips (saying why) only where the host truly
/// cannot: no privilege, no /dev/net/tun, no iproute2.
pub fn in_netns(test: &str, setup: impl FnOnce(&Netns) -> Result<(), String>, body: impl FnOnce()) {
    if std::env::var(INNER_ENV).as_deref() == Ok(test) {
        return body();
    }
    if let Some(why) = missing_privilege() {
        println!("skipped {test}: {why}");
        return;
    }
    let ns = Netns::create(test.get(..8).unwrap_or(test))
        .unwrap_or_else(|e| panic!("creating the namespace: {e}"));
    if let Err(e) = setup(&ns) {
        panic!("setting up {}: {e}", ns.name);
    }
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .arg(&exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(INNER_ENV, test)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    drop(ns);
    for line in stdout.lines() {
        if !(line.is_empty() || line.starts_with("running ") || line.starts_with("test ")) {
            println!("  | {line}");
        }
    }
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "inside the namespace: {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
}
