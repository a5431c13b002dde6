//! The top-level settings that are not objects of their own:
//! `nameserver`, `mount`, `singlecpu`, `sysctl`, `log`.

use std::fs;
use std::net::IpAddr;

use super::values::Radix;
use super::{Ctx, Validator};
use crate::config::error::ConfigError;
use crate::config::node::Node;
use crate::config::types::{LogTarget, SingleCpu, Sysctl};

impl Validator<'_> {
    pub(super) fn nameservers(&self, node: &Node, ctx: &Ctx) -> Result<Vec<IpAddr>, ConfigError> {
        let mut out = Vec::new();
        for (item, c) in self.list(node, ctx, &[',', ' ', '\t'])? {
            let ip = self.parse_ip(item, &c)?;
            self.unicast(ip, &c)?;
            if out.contains(&ip) {
                return Err(ConfigError::BadValue {
                    at: self.at(&c),
                    value: item.into(),
                    why: "is listed twice".into(),
                });
            }
            out.push(ip);
        }
        // glibc's resolver reads the first three (MAXNS) and ignores the rest.
        if out.len() > 3 {
            return Err(ConfigError::BadValue {
                at: self.at(ctx),
                value: out
                    .iter()
                    .map(IpAddr::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
                why: "lists more than 3 name servers; the resolver uses only the first 3".into(),
            });
        }
        Ok(out)
    }

    pub(super) fn mounts(&self, node: &Node, ctx: &Ctx) -> Result<Vec<String>, ConfigError> {
        let mut out: Vec<String> = Vec::new();
        for (item, c) in self.list(node, ctx, &[','])? {
            fstype_ok(item).map_err(|why| ConfigError::BadValue {
                at: self.at(&c),
                value: item.into(),
                why,
            })?;
            if out.iter().any(|m| m == item) {
                return Err(ConfigError::BadValue {
                    at: self.at(&c),
                    value: item.into(),
                    why: "is listed twice".into(),
                });
            }
            out.push(item.into());
        }
        Ok(out)
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

    pub(super) fn sysctls(&self, node: &Node, ctx: &Ctx) -> Result<Vec<Sysctl>, ConfigError> {
        let mut out: Vec<Sysctl> = Vec::new();
        let push = |s: Sysctl, c: &Ctx, out: &mut Vec<Sysctl>| -> Result<(), ConfigError> {
            if out.iter().any(|o| o.proc_path() == s.proc_path()) {
                return Err(ConfigError::BadValue {
                    at: self.at(c),
                    value: s.key,
                    why: "is set twice".into(),
                });
            }
            out.push(s);
            Ok(())
        };
        match node {
            // Our form: {"net.ipv4.ip_forward": "1", ...}.
            Node::Object(members) => {
                for m in members {
                    let c = ctx.member(m);
                    let value = self
                        .scalar(&m.value, &c, true, "a string or a number")?
                        .text();
                    let s = self.sysctl(&m.key, &value, &c)?;
                    push(s, &c, &mut out)?;
                }
            }
            // LKL's form: "key=value;key=value".
            _ => {
                for (entry, c) in self.list(node, ctx, &[';'])? {
                    let (key, value) =
                        entry.split_once('=').ok_or_else(|| ConfigError::BadValue {
                            at: self.at(&c),
                            value: entry.into(),
                            why: "is not \"key=value\"".into(),
                        })?;
                    let s = self.sysctl(key.trim(), value.trim(), &c)?;
                    push(s, &c, &mut out)?;
                }
            }
        }
        Ok(out)
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
