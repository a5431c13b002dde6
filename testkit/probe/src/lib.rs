//! What the tests need from the machine, one probe per prerequisite.
//!
//! A test names its prerequisites with `#[testkit::needs(root, tun)]`
//! (the `testkit-needs` attribute). These probes run twice: when that
//! attribute's crate is built (its build script records which are missing,
//! and a test that needs a missing one is compiled with `#[ignore]`, so it
//! shows as ignored in the runner's summary), and when the test runs
//! (`testkit::require`, which fails the test if one is missing after all:
//! never a silent pass). With `CI` set (`CI=true`) nothing is ignored, so a
//! missing prerequisite fails the test. docs/testing.md tells the story.
//!
//! Each probe is cheap: it looks at files and `$PATH`, spawns nothing.

use std::env;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// One prerequisite: its name in `#[testkit::needs(...)]` and what it is.
pub struct Need {
    pub name: &'static str,
    pub what: &'static str,
}

/// Every prerequisite a test may name.
pub const NEEDS: &[Need] = &[
    Need {
        name: "root",
        what: "CAP_NET_ADMIN, CAP_NET_RAW and CAP_SYS_ADMIN (run as root) and iproute2's `ip`, for network namespaces",
    },
    Need {
        name: "tun",
        what: "/dev/net/tun (modprobe tun)",
    },
    Need {
        name: "macvtap",
        what: "macvtap in the host kernel (CONFIG_MACVTAP)",
    },
    Need {
        name: "kernel_net",
        what: "networking in the kernel config (LKL_CONFIG; the default, defconfig, has it)",
    },
    Need {
        name: "ipv6_loopback",
        what: "::1 on the host's loopback",
    },
    Need {
        name: "libslirp",
        what: "libslirp.so.0 (Debian package libslirp0)",
    },
    Need {
        name: "vde_switch",
        what: "vde_switch (Debian package vde2)",
    },
    Need {
        name: "ping",
        what: "ping (Debian package iputils-ping)",
    },
    Need {
        name: "curl",
        what: "curl (Debian package curl)",
    },
    Need {
        name: "iperf3",
        what: "iperf3 (Debian package iperf3)",
    },
    Need {
        name: "python3",
        what: "/usr/bin/python3 (Debian package python3)",
    },
    Need {
        name: "node",
        what: "node (Debian package nodejs)",
    },
    Need {
        name: "go",
        what: "the Go toolchain, go (Debian package golang-go)",
    },
    Need {
        name: "musl_gcc",
        what: "musl-gcc (Debian package musl-tools)",
    },
    Need {
        name: "busybox",
        what: "a static busybox at /bin/busybox (Debian package busybox-static)",
    },
    Need {
        name: "sud",
        what: "Syscall User Dispatch in the host kernel (Linux 5.11 or later)",
    },
    Need {
        name: "cc",
        what: "a C compiler, cc (Debian package gcc)",
    },
    Need {
        name: "mkfs_ext4",
        what: "mkfs.ext4 and e2fsck (Debian package e2fsprogs)",
    },
    Need {
        name: "mkfs_vfat",
        what: "mkfs.vfat and fsck.vfat (Debian package dosfstools)",
    },
    Need {
        name: "mkfs_xfs",
        what: "mkfs.xfs and xfs_repair (Debian package xfsprogs)",
    },
    Need {
        name: "mkfs_btrfs",
        what: "mkfs.btrfs and btrfs (Debian package btrfs-progs)",
    },
    Need {
        name: "immutable",
        what: "chattr (e2fsprogs) and CAP_LINUX_IMMUTABLE (run as root), for an immutable file",
    },
    Need {
        name: "nginx",
        what: "nginx (Debian package nginx-light or nginx)",
    },
    Need {
        name: "wrk",
        what: "wrk (Debian package wrk)",
    },
    Need {
        name: "linux_source",
        what: "the Linux 6.12 source: $LKL_LINUX_SRC, or the tarball $LKL_LINUX_TARBALL (default /usr/src/linux-source-6.12.tar.xz, Debian package linux-source-6.12)",
    },
    Need {
        name: "fuse",
        what: "/dev/fuse and fusermount3 (Debian package fuse3)",
    },
];

/// True when the tests run under CI (`CI` set, and not to "", "0" or
/// "false"): there, a missing prerequisite fails a test.
pub fn ci() -> bool {
    env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"))
}

/// Why the prerequisite `name` is missing here, or `None` if it is there.
/// An unknown name is reported as missing (the attribute refuses one at
/// build time).
pub fn missing(name: &str) -> Option<String> {
    let have = match name {
        "root" => return missing_privilege(),
        "tun" => Path::new("/dev/net/tun").exists(),
        "macvtap" => has_macvtap(),
        "kernel_net" => kernel_config_has_net(),
        "ipv6_loopback" => std::net::TcpListener::bind(("::1", 0)).is_ok(),
        "libslirp" => find_library("libslirp.so.0"),
        "vde_switch" => on_path("vde_switch"),
        "ping" => on_path("ping"),
        "curl" => on_path("curl"),
        "iperf3" => on_path("iperf3"),
        "python3" => is_executable(Path::new("/usr/bin/python3")),
        "node" => on_path("node"),
        "cc" => on_path("cc"),
        "go" => on_path("go"),
        "musl_gcc" => on_path("musl-gcc"),
        "busybox" => is_executable(Path::new("/bin/busybox")),
        "sud" => kernel_at_least(5, 11),
        "mkfs_ext4" => on_path("mkfs.ext4") && on_path("e2fsck"),
        "mkfs_vfat" => on_path("mkfs.vfat") && on_path("fsck.vfat"),
        "mkfs_xfs" => on_path("mkfs.xfs") && on_path("xfs_repair"),
        "mkfs_btrfs" => on_path("mkfs.btrfs") && on_path("btrfs"),
        "nginx" => on_path("nginx") || is_executable(Path::new("/usr/sbin/nginx")),
        "wrk" => on_path("wrk"),
        "linux_source" => linux_source().is_some(),
        "fuse" => Path::new("/dev/fuse").exists() && on_path("fusermount3"),
        "immutable" => effective_caps() & (1 << 9) != 0 && on_path("chattr"),
        other => return Some(format!("`{other}` is no prerequisite testkit-probe knows")),
    };
    if have {
        None
    } else {
        let what = NEEDS.iter().find(|n| n.name == name).map_or("", |n| n.what);
        Some(format!("no {what}"))
    }
}

/// The environment variables the probes read: a build that records their
/// results must be redone when one of them changes.
pub const ENV: &[&str] = &[
    "CI",
    "PATH",
    "LD_LIBRARY_PATH",
    "LKL_CONFIG",
    "USER",
    "LKL_LINUX_SRC",
    "LKL_LINUX_TARBALL",
];

/// Files whose change may change a probe's answer: the package database
/// (a tool installed or removed), the loader's cache (a library), the
/// kernel config. Only those that exist (a missing file would make cargo
/// rerun the probes on every build). Device nodes and privileges are not
/// watched: after `modprobe tun` or a change of user, rebuild
/// (`cargo clean -p testkit-needs`).
pub fn watched_files() -> Vec<PathBuf> {
    let mut files = vec![
        PathBuf::from("/var/lib/dpkg/status"),
        PathBuf::from("/etc/ld.so.cache"),
        kernel_config(),
    ];
    files.retain(|f| f.exists());
    files
}

/// The Linux source the kernel is built from, as the build script finds
/// it: a tree (`$LKL_LINUX_SRC`) or a tarball (`$LKL_LINUX_TARBALL`, else
/// Debian's /usr/src/linux-source-6.12.tar.xz). `None` if there is none.
pub fn linux_source() -> Option<PathBuf> {
    if let Some(src) = env::var_os("LKL_LINUX_SRC").filter(|s| !s.is_empty()) {
        let src = PathBuf::from(src);
        return src.join("Makefile").is_file().then_some(src);
    }
    let tarball = env::var_os("LKL_LINUX_TARBALL")
        .filter(|s| !s.is_empty())
        .map_or_else(
            || PathBuf::from("/usr/src/linux-source-6.12.tar.xz"),
            PathBuf::from,
        );
    tarball.is_file().then_some(tarball)
}

/// Why this process cannot make network namespaces, or `None`.
pub fn missing_privilege() -> Option<String> {
    let caps = effective_caps();
    for (bit, name) in [
        (12, "CAP_NET_ADMIN"),
        (13, "CAP_NET_RAW"),
        (21, "CAP_SYS_ADMIN"),
    ] {
        if caps & (1 << bit) == 0 {
            return Some(format!("no {name} (run as root)"));
        }
    }
    if !on_path("ip") {
        return Some("no iproute2's `ip` (Debian package iproute2)".into());
    }
    None
}

/// This process's effective capabilities (a bit per CAP_*).
fn effective_caps() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0)
}

/// True if `cmd` is an executable file in a directory of `$PATH`.
pub fn on_path(cmd: &str) -> bool {
    let path = env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    env::split_paths(&path).any(|dir| is_executable(&dir.join(cmd)))
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The repository's top folder (this crate is testkit/probe).
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The kernel config the build uses (build.rs: `LKL_CONFIG`, default
/// defconfig, a file under kernel/arch/lkl/configs).
fn kernel_config() -> PathBuf {
    let name = env::var("LKL_CONFIG").unwrap_or_else(|_| "defconfig".into());
    repo().join("kernel/arch/lkl/configs").join(name)
}

/// Networking is on unless the config turns it off (Kconfig's default for
/// CONFIG_NET is y).
fn kernel_config_has_net() -> bool {
    let text = fs::read_to_string(kernel_config()).unwrap_or_default();
    !text.lines().any(|l| l.trim() == "# CONFIG_NET is not set")
}

/// Macvtap is registered (built in, or its module loaded), or the host
/// kernel has it as a module to load on demand.
fn has_macvtap() -> bool {
    if Path::new("/sys/class/macvtap").exists() || Path::new("/sys/module/macvtap").exists() {
        return true;
    }
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let release = release.trim();
    let config = fs::read_to_string(format!("/boot/config-{release}")).unwrap_or_default();
    if config
        .lines()
        .any(|l| l == "CONFIG_MACVTAP=y" || l == "CONFIG_MACVTAP=m")
    {
        return true;
    }
    ["modules.builtin", "modules.dep"].iter().any(|f| {
        fs::read_to_string(format!("/lib/modules/{release}/{f}"))
            .is_ok_and(|t| t.contains("/macvtap.ko"))
    })
}

/// True if the dynamic loader would find `soname`: in `$LD_LIBRARY_PATH`,
/// the directories /etc/ld.so.conf.d names, or the default ones.
fn find_library(soname: &str) -> bool {
    let mut dirs: Vec<PathBuf> = env::var_os("LD_LIBRARY_PATH")
        .map(|p| env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Ok(entries) = fs::read_dir("/etc/ld.so.conf.d") {
        for e in entries.flatten() {
            let text = fs::read_to_string(e.path()).unwrap_or_default();
            dirs.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| l.starts_with('/'))
                    .map(PathBuf::from),
            );
        }
    }
    dirs.extend(
        ["/lib", "/usr/lib", "/lib64", "/usr/lib64", "/usr/local/lib"]
            .iter()
            .map(PathBuf::from),
    );
    dirs.iter().any(|d| d.join(soname).exists())
}

/// True when the running kernel's release is at least `major.minor`.
fn kernel_at_least(major: u32, minor: u32) -> bool {
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse::<u32>().ok());
    match (parts.next(), parts.next()) {
        (Some(a), Some(b)) => (a, b) >= (major, minor),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_need_has_a_probe() {
        for n in NEEDS {
            if let Some(why) = missing(n.name) {
                assert!(!why.contains("knows"), "{}: {why}", n.name);
            }
        }
        assert!(missing("no_such_thing").is_some());
    }
}
