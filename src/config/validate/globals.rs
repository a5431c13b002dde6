//! The top-level settings that are not objects of their own:
//! `nameserver`, `debug`, `mount`, `dump`, `singlecpu`, `sysctl`, `log`.
//! In a list, each bad item is reported and the others are still checked.

use std::fs;
use std::net::IpAddr;

use super::values::Radix;
use super::{Ctx, Validator};
use crate::config::error::ConfigError;
use crate::config::node::Node;
use crate::config::types::{DebugFlags, LogTarget, Mode, SingleCpu, Syscalls, Sysctl};

impl Validator<'_> {
    pub(super) fn nameservers(&self, node: &Node, ctx: &Ctx) -> Vec<IpAddr> {
        let mut out = Vec::new();
        for item in self.list(node, ctx, &[',', ' ', '\t']) {
            let Some((item, c)) = self.ok(item) else {
                continue;
            };
            let ip = self.parse_ip(item, &c).and_then(|ip| {
                self.unicast(ip, &c)?;
                if out.contains(&ip) {
                    return Err(ConfigError::BadValue {
                        at: self.at(&c),
                        value: item.into(),
                        why: "is listed twice".into(),
                    });
                }
                Ok(ip)
            });
            out.extend(self.ok(ip));
        }
        // glibc's resolver reads the first three (MAXNS) and ignores the rest.
        if out.len() > 3 {
            self.report(ConfigError::BadValue {
                at: self.at(ctx),
                value: out
                    .iter()
                    .map(IpAddr::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
                why: "lists more than 3 name servers; the resolver uses only the first 3".into(),
            });
        }
        out
    }

    /// `debug`: LKL's bitmask, in strtol's base 0.
    pub(super) fn debug(&self, node: &Node, ctx: &Ctx) -> Result<DebugFlags, ConfigError> {
        let value = self.scalar(node, ctx, true, "a number, a string or a boolean")?;
        Validator::unsigned(value, Radix::Auto)
            .and_then(|n| u32::try_from(n).map_err(|_| "is larger than 32 bits".into()))
            .and_then(debug_bits_ok)
            .map(DebugFlags)
            .map_err(|why| ConfigError::BadNumber {
                at: self.at(ctx),
                value: value.text(),
                why,
            })
    }

    pub(super) fn mounts(&self, node: &Node, ctx: &Ctx) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for item in self.list(node, ctx, &[',']) {
            let Some((item, c)) = self.ok(item) else {
                continue;
            };
            let bad = |why: String| ConfigError::BadValue {
                at: self.at(&c),
                value: item.into(),
                why,
            };
            let fs = fstype_ok(item).map_err(bad).and_then(|()| {
                if out.iter().any(|m| m == item) {
                    return Err(bad("is listed twice".into()));
                }
                Ok(item.to_string())
            });
            out.extend(self.ok(fs));
        }
        out
    }

    /// `dump`: paths in the kernel.
    pub(super) fn dump(&self, node: &Node, ctx: &Ctx) -> Vec<String> {
        self.list(node, ctx, &[','])
            .into_iter()
            .filter_map(|item| {
                let (item, c) = self.ok(item)?;
                self.ok(self.kernel_path(item, &c))
            })
            .collect()
    }

    pub(super) fn single_cpu(&self, node: &Node, ctx: &Ctx) -> Result<SingleCpu, ConfigError> {
        let value = self.scalar(node, ctx, true, "0, 1 or 2")?;
        match Validator::unsigned(value, Radix::Decimal) {
            Ok(0) => Ok(SingleCpu::Off),
            Ok(1) => Ok(SingleCpu::Kernel),
            Ok(2) => Ok(SingleCpu::KernelAndPolling),
            _ => Err(ConfigError::BadValue {
                at: self.at(ctx),
                value: value.text(),
                why: "is not 0 (off), 1 (pin the kernel) or 2 (also pin device polling); \
                      LKL would warn and use 0"
                    .into(),
            }),
        }
    }

    pub(super) fn mode(&self, node: &Node, ctx: &Ctx) -> Result<Mode, ConfigError> {
        let value = self.string(node, ctx)?;
        match value {
            "tree" => Ok(Mode::Tree),
            "single-process" => Ok(Mode::SingleProcess),
            other => Err(ConfigError::BadValue {
                at: self.at(ctx),
                value: other.to_string(),
                why: "is not \"tree\" (one kernel for the program and every process it starts) or \"single-process\" (the kernel inside the program, as LKL)".into(),
            }),
        }
    }

    pub(super) fn syscalls(&self, node: &Node, ctx: &Ctx) -> Result<Syscalls, ConfigError> {
        let value = self.scalar(node, ctx, false, "\"libc\" or \"all\"")?;
        match value.text().as_str() {
            "libc" => Ok(Syscalls::Libc),
            "all" => Ok(Syscalls::All),
            _ => Err(ConfigError::BadValue {
                at: self.at(ctx),
                value: value.text(),
                why: "is not \"libc\" (the calls through the dynamic libc, LD_PRELOAD) or \"all\" \
                      (every system call, raw ones too: Syscall User Dispatch)"
                    .into(),
            }),
        }
    }

    pub(super) fn sysctls(&self, node: &Node, ctx: &Ctx) -> Vec<Sysctl> {
        let mut out: Vec<Sysctl> = Vec::new();
        let mut push = |s: Result<Sysctl, ConfigError>, c: &Ctx| {
            let s = s.and_then(|s| {
                if out.iter().any(|o| o.proc_path() == s.proc_path()) {
                    return Err(ConfigError::BadValue {
                        at: self.at(c),
                        value: s.key,
                        why: "is set twice".into(),
                    });
                }
                Ok(s)
            });
            out.extend(self.ok(s));
        };
        match node {
            // Our form: {"net.ipv4.ip_forward": "1", ...}.
            Node::Object(members) => {
                for m in members {
                    let c = ctx.member(m);
                    let s = self
                        .scalar(&m.value, &c, true, "a string or a number")
                        .and_then(|value| self.sysctl(&m.key, &value.text(), &c));
                    push(s, &c);
                }
            }
            // LKL's form: "key=value;key=value".
            _ => {
                for item in self.list(node, ctx, &[';']) {
                    let Some((entry, c)) = self.ok(item) else {
                        continue;
                    };
                    let s = match entry.split_once('=') {
                        Some((key, value)) => self.sysctl(key.trim(), value.trim(), &c),
                        None => Err(ConfigError::BadValue {
                            at: self.at(&c),
                            value: entry.into(),
                            why: "is not \"key=value\"".into(),
                        }),
                    };
                    push(s, &c);
                }
            }
        }
        out
    }

    pub(super) fn sysctl(&self, key: &str, value: &str, ctx: &Ctx) -> Result<Sysctl, ConfigError> {
        self.no_nul(key, ctx)?;
        self.no_nul(value, ctx)?;
        let legal = !key.is_empty()
            && !key.starts_with(['.', '/'])
            && !key.ends_with(['.', '/'])
            && !key.contains("..")
            && !key.contains("//")
            && !key.split('/').any(|c| c == "." || c == "..")
            && !key
                .chars()
                .any(|c| c.is_whitespace() || c == '=' || c == ';');
        if !legal {
            return Err(ConfigError::BadValue {
                at: self.at(ctx),
                value: key.into(),
                why: "is not a sysctl name (like net.ipv4.tcp_congestion_control)".into(),
            });
        }
        Ok(Sysctl {
            key: key.into(),
            value: value.into(),
        })
    }

    pub(super) fn log(&self, node: &Node, ctx: &Ctx) -> Result<LogTarget, ConfigError> {
        let s = self.string(node, ctx)?.trim();
        match s {
            "stderr" => return Ok(LogTarget::Stderr),
            "stdout" => return Err(ConfigError::BadValue {
                at: self.at(ctx),
                value: s.into(),
                why:
                    "would mix diagnostics into the program's output; use \"stderr\" or a file path"
                        .into(),
            }),
            _ => {}
        }
        let path = self.host_path(s, ctx)?;
        if let Ok(meta) = fs::metadata(&path) {
            if meta.is_dir() {
                return Err(self.file_error(
                    ctx,
                    &path,
                    "is a directory; the log needs a file".into(),
                ));
            }
        }
        let dir = path.parent().unwrap_or(self.base);
        let dir_meta = self.metadata(dir, ctx)?;
        if !dir_meta.is_dir() {
            return Err(self.file_error(ctx, dir, "is not a directory".into()));
        }
        Ok(LogTarget::File(path))
    }
}

pub(super) fn fstype_ok(name: &str) -> Result<(), String> {
    let legal = !name.is_empty()
        && name.len() < 32
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.');
    if legal {
        Ok(())
    } else {
        Err("is not a filesystem type (like ext4, vfat, proc, sysfs)".into())
    }
}

/// `debug`'s bits: those LKL gives a meaning we can honour (see
/// [`DebugFlags`]); the others are errors naming why.
fn debug_bits_ok(n: u32) -> Result<u32, String> {
    if n & DebugFlags::DPDK_LOG != 0 {
        return Err("sets 0x400, LKL's DPDK logging: there is no DPDK backend here".into());
    }
    let unknown = n & !DebugFlags::ACCEPTED;
    if unknown != 0 {
        return Err(format!(
            "sets {unknown:#x}, bits LKL defines nothing for (1-0xff: console, \
             0x100: pause at exit, 0x200: wait for Enter before boot)"
        ));
    }
    Ok(n)
}
