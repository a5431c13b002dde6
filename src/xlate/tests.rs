//! Every row of every table, checked against the host's `libc` values (the
//! host column) and against the built kernel's uapi headers (the generic
//! column), found in the kernel build cache beside `lkl.o`'s build.

use std::collections::HashMap;
use std::path::PathBuf;

use super::*;

/// The kernel build's exported headers (`make headers`: usr/include).
fn uapi_dir() -> PathBuf {
    let cache = std::env::var_os("LKL_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("lkl-hijack")))
        .or_else(|| std::env::var_os("HOME").map(|d| PathBuf::from(d).join(".cache/lkl-hijack")))
        .expect("no LKL_CACHE_DIR, XDG_CACHE_HOME or HOME");
    let config = std::env::var("LKL_CONFIG").unwrap_or_else(|_| "defconfig".into());
    let dir = cache.join("build").join(config).join("usr/include");
    assert!(
        dir.join("asm-generic/errno.h").exists(),
        "{}: the kernel's headers are missing (build.rs builds them with the kernel)",
        dir.display()
    );
    dir
}

/// `#define NAME VALUE` lines of some headers.
fn defines(files: &[&str]) -> HashMap<String, String> {
    let dir = uapi_dir();
    let mut map = HashMap::new();
    for f in files {
        let text = std::fs::read_to_string(dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        for line in text.lines() {
            let Some(rest) = line.trim_start().strip_prefix("#define") else {
                continue;
            };
            let mut parts = rest.trim().splitn(2, char::is_whitespace);
            let (Some(name), Some(value)) = (parts.next(), parts.next()) else {
                continue;
            };
            let value = value.split("/*").next().unwrap_or("").trim().to_string();
            map.insert(name.to_string(), value);
        }
    }
    map
}

/// A tiny evaluator for the constant expressions these headers use:
/// numbers (octal, hex, U suffix), other macros, casts to __poll_t, + | <<.
struct Eval<'a> {
    defs: &'a HashMap<String, String>,
}

impl Eval<'_> {
    fn value(&self, name: &str, depth: u32) -> Option<i64> {
        let expr = self.defs.get(name)?.replace("(__poll_t)", "");
        let tokens = tokenize(&expr);
        let mut pos = 0;
        let v = self.or(&tokens, &mut pos, depth + 1)?;
        (pos == tokens.len()).then_some(v)
    }

    fn or(&self, t: &[String], pos: &mut usize, d: u32) -> Option<i64> {
        let mut v = self.shift(t, pos, d)?;
        while t.get(*pos).map(String::as_str) == Some("|") {
            *pos += 1;
            v |= self.shift(t, pos, d)?;
        }
        Some(v)
    }

    fn shift(&self, t: &[String], pos: &mut usize, d: u32) -> Option<i64> {
        let mut v = self.add(t, pos, d)?;
        while t.get(*pos).map(String::as_str) == Some("<<") {
            *pos += 1;
            v <<= self.add(t, pos, d)?;
        }
        Some(v)
    }

    fn add(&self, t: &[String], pos: &mut usize, d: u32) -> Option<i64> {
        let mut v = self.prim(t, pos, d)?;
        while t.get(*pos).map(String::as_str) == Some("+") {
            *pos += 1;
            v += self.prim(t, pos, d)?;
        }
        Some(v)
    }

    fn prim(&self, t: &[String], pos: &mut usize, d: u32) -> Option<i64> {
        let tok = t.get(*pos)?.clone();
        *pos += 1;
        if tok == "(" {
            let v = self.or(t, pos, d)?;
            (t.get(*pos).map(String::as_str) == Some(")")).then_some(())?;
            *pos += 1;
            return Some(v);
        }
        if tok.starts_with(|c: char| c.is_ascii_digit()) {
            let n = tok.trim_end_matches(['U', 'u', 'L', 'l']);
            return if let Some(h) = n.strip_prefix("0x").or_else(|| n.strip_prefix("0X")) {
                i64::from_str_radix(h, 16).ok()
            } else if n.len() > 1 && n.starts_with('0') {
                i64::from_str_radix(&n[1..], 8).ok()
            } else {
                n.parse().ok()
            };
        }
        if d > 8 {
            return None;
        }
        self.value(&tok, d)
    }
}

fn tokenize(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c.is_ascii_alphanumeric() || c == '_' {
            let mut w = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_ascii_alphanumeric() || c == '_' {
                    w.push(c);
                    chars.next();
                } else {
                    break;
                }
            }
            out.push(w);
        } else if c == '<' {
            chars.next();
            chars.next();
            out.push("<<".into());
        } else {
            out.push(c.to_string());
            chars.next();
        }
    }
    out
}

/// Checks each row's generic column against the headers.
fn check_generic(table: &str, rows: &[Row], files: &[&str]) {
    let defs = defines(files);
    let eval = Eval { defs: &defs };
    let mut bad = Vec::new();
    for (name, generic, _) in rows {
        match eval.value(name, 0) {
            Some(v) if v == *generic => {}
            other => bad.push(format!("{name}: table {generic:#x}, headers {other:x?}")),
        }
    }
    assert!(bad.is_empty(), "{table} vs {files:?}:\n{}", bad.join("\n"));
}

#[test]
fn errno_rows_match_the_headers_and_libc() {
    check_generic(
        "ERRNO",
        ERRNO,
        &["asm-generic/errno-base.h", "asm-generic/errno.h"],
    );
    assert!(ERRNO.len() >= 130);
    // The host column is libc's by construction; x86_64 uses the same file.
    const { assert!(ERRNO_IDENTITY) };
    assert_eq!(errno_to_host(104), libc::ECONNRESET);
}

#[test]
fn sockopt_rows_match_the_headers_and_libc() {
    check_generic("SOCKOPT", SOCKOPT, &["asm-generic/socket.h"]);
    const { assert!(SOCKOPT_IDENTITY) };
    assert_eq!(
        sockopt_to_kernel(libc::SOL_SOCKET, libc::SO_REUSEADDR),
        (1, 2)
    );
    assert_eq!(
        sockopt_to_kernel(libc::IPPROTO_TCP, libc::TCP_NODELAY),
        (6, 1)
    );
}

#[test]
fn ioctl_rows_match_the_headers_and_libc() {
    check_generic(
        "IOCTL",
        IOCTL,
        &[
            "asm-generic/ioctls.h",
            "asm-generic/sockios.h",
            "linux/sockios.h",
        ],
    );
    const { assert!(IOCTL_IDENTITY) };
    assert_eq!(ioctl_to_kernel(libc::FIONREAD), 0x541B);
}

#[test]
fn fcntl_rows_match_the_headers_and_libc() {
    check_generic("FCNTL", FCNTL, &["asm-generic/fcntl.h", "linux/fcntl.h"]);
    const { assert!(FCNTL_IDENTITY) };
    assert_eq!(fcntl_to_kernel(libc::F_DUPFD_CLOEXEC), 1030);
}

#[test]
fn open_flag_rows_match_the_headers_and_libc() {
    check_generic("OFLAGS", OFLAGS, &["asm-generic/fcntl.h"]);
    // The composite flags, as libc writes them, from the rows.
    let k = oflags_to_kernel(libc::O_SYNC);
    assert_eq!(k, 0o4010000);
    assert_eq!(oflags_to_kernel(libc::O_TMPFILE), 0o20200000);
    const { assert!(OFLAGS_IDENTITY) };
    assert_eq!(oflags_to_host(0o104002), 0o104002);
}

#[test]
fn socket_type_flags_and_msg_flags_match_libc() {
    // Kernel values from include/linux/net.h and include/linux/socket.h,
    // which are not exported as uapi: the rows are checked against the
    // O_* rows they are defined from, and against libc.
    let o = defines(&["asm-generic/fcntl.h"]);
    let eval = Eval { defs: &o };
    assert_eq!(eval.value("O_NONBLOCK", 0), Some(SOCKFLAGS[0].1));
    assert_eq!(eval.value("O_CLOEXEC", 0), Some(SOCKFLAGS[1].1));
    const { assert!(SOCKFLAGS_IDENTITY && MSGFLAGS_IDENTITY) };
    assert_eq!(
        socktype_to_kernel(libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC),
        1 | 0o4000 | 0o2000000
    );
}

#[test]
fn event_rows_match_the_headers_and_libc() {
    check_generic(
        "EVENTS",
        EVENTS,
        &["asm-generic/poll.h", "linux/eventpoll.h"],
    );
    let epoll: Vec<Row> = EVENTS
        .iter()
        .filter(|r| r.0.starts_with("POLL"))
        .map(|r| (r.0, r.1, r.2))
        .collect();
    // Each POLL* bit has the same EPOLL* value in linux/eventpoll.h.
    let defs = defines(&["linux/eventpoll.h"]);
    let eval = Eval { defs: &defs };
    for (name, generic, _) in epoll {
        assert_eq!(eval.value(&format!("E{name}"), 0), Some(generic), "E{name}");
    }
    const { assert!(EVENTS_IDENTITY) };
}

#[test]
fn structure_sizes() {
    // Both kernels pack epoll_event (see the module doc and
    // tests/xlate_kernel.rs, which checks the running kernel).
    assert_eq!(HOST_EPOLL_EVENT_SIZE, KERNEL_EPOLL_EVENT_SIZE);
    assert_eq!(KERNEL_STAT_SIZE, std::mem::size_of::<abi::Stat>());
    assert_eq!(HOST_STAT_SIZE, 144);
    let defs = defines(&["asm-generic/signal.h"]);
    let nsig = Eval { defs: &defs }.value("_NSIG", 0).expect("_NSIG");
    assert_eq!(KERNEL_SIGSET_SIZE as i64, nsig / 8);
    assert_eq!(HOST_SIGSET_SIZE, 8);
}

#[test]
fn stat_becomes_the_x86_64_layout() {
    let k = abi::Stat {
        st_dev: 0x801,
        st_ino: 1234567,
        st_mode: 0o100644,
        st_nlink: 3,
        st_uid: 1000,
        st_gid: 100,
        st_rdev: 0x103,
        st_size: 1 << 40,
        st_blksize: 4096,
        st_blocks: 99,
        st_atime: 1,
        st_atime_nsec: 2,
        st_mtime: 3,
        st_mtime_nsec: 4,
        st_ctime: 5,
        st_ctime_nsec: 6,
        ..Default::default()
    };
    let h = stat_to_host(&k);
    assert_eq!(
        (h.st_dev, h.st_ino, h.st_mode, h.st_nlink, h.st_uid, h.st_gid, h.st_rdev),
        (0x801, 1234567, 0o100644, 3, 1000, 100, 0x103)
    );
    assert_eq!((h.st_size, h.st_blksize, h.st_blocks), (1 << 40, 4096, 99));
    assert_eq!(
        (
            h.st_atime,
            h.st_atime_nsec,
            h.st_mtime,
            h.st_mtime_nsec,
            h.st_ctime,
            h.st_ctime_nsec
        ),
        (1, 2, 3, 4, 5, 6)
    );
}
