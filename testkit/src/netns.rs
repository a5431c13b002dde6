//! Network namespaces for tests: a test that creates interfaces makes a
//! namespace of its own (`lkl-<pid>-<tag>`, with
//! `/etc/netns/<name>/resolv.conf` saying `nameserver 127.0.0.1` so name
//! lookups fail at once), creates its devices there, runs its body there by
//! re-running this test binary, filtered to the one test, under
//! `ip netns exec`, and deletes the namespace at the end, passed or failed.
//! Traffic stays inside. A test that uses this says
//! `#[testkit::needs(root)]`: without the privileges it is ignored (under
//! `CI=true`, it fails).

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The variable that tells a re-run binary it is the inner half.
pub const INNER_ENV: &str = "LKL_TEST_NETNS";

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
        // `ip netns exec` binds this over /etc/resolv.conf inside.
        let etc = ns.etc_dir();
        fs::create_dir_all(&etc)
            .and_then(|()| fs::write(etc.join("resolv.conf"), "nameserver 127.0.0.1\n"))
            .map_err(|e| format!("{}: {e}", etc.display()))?;
        Ok(ns)
    }

    fn etc_dir(&self) -> PathBuf {
        Path::new("/etc/netns").join(&self.name)
    }

    /// `ip -n <ns> ARGS`.
    pub fn ip(&self, args: &[&str]) -> Result<String, String> {
        run(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    /// Brings the namespace's loopback up.
    pub fn lo_up(&self) -> Result<(), String> {
        self.ip(&["link", "set", "lo", "up"]).map(drop)
    }

    /// A tap `name` (with `vnet_hdr` if asked), host addresses `addrs`
    /// ("192.168.113.1/24"; IPv6 ones without duplicate detection), up.
    pub fn add_tap(&self, name: &str, vnet_hdr: bool, addrs: &[&str]) -> Result<(), String> {
        let mut add = vec!["tuntap", "add", "dev", name, "mode", "tap"];
        if vnet_hdr {
            add.push("vnet_hdr");
        }
        self.ip(&add)?;
        for a in addrs {
            if a.contains(':') {
                self.ip(&["-6", "addr", "add", a, "dev", name, "nodad"])?;
            } else {
                self.ip(&["addr", "add", a, "dev", name])?;
            }
        }
        self.ip(&["link", "set", name, "up"]).map(drop)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run(Command::new("ip").args(["netns", "del", &self.name]));
        let _ = fs::remove_dir_all(self.etc_dir());
    }
}

/// Runs `body` inside a fresh namespace prepared by `setup`. `test` must be
/// the test function's name (the re-run's filter); the test must say
/// `#[testkit::needs(root)]` (and whatever its setup needs: `tun`, ...).
pub fn in_netns(
    test: &str,
    tag: &str,
    setup: impl FnOnce(&Netns) -> Result<(), String>,
    body: impl FnOnce(),
) {
    if std::env::var(INNER_ENV).as_deref() == Ok(tag) {
        return body();
    }
    if let Some(why) = testkit_probe::missing_privilege() {
        panic!("{test}: network namespaces: {why} (a test that uses them says #[testkit::needs(root)])");
    }
    let ns = Netns::create(tag).unwrap_or_else(|e| panic!("creating the namespace: {e}"));
    if let Err(e) = setup(&ns) {
        panic!("setting up {}: {e}", ns.name);
    }
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .arg(&exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(INNER_ENV, tag)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let ns_name = ns.name.clone();
    drop(ns);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "inside the namespace: {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    // What the body printed, without libtest's lines.
    for line in stdout.lines() {
        // libtest's "test NAME ... " prefix shares a line with the body's
        // first output under --nocapture.
        let line = match line
            .strip_prefix("test ")
            .and_then(|l| l.split_once(" ... "))
        {
            Some((_, rest)) => rest,
            None => line,
        };
        let libtest = line.is_empty()
            || line == "ok"
            || line.starts_with("running ")
            || line.starts_with("test result:");
        if !libtest {
            println!("  [{}] {line}", ns_name);
        }
    }
}
