//! An interface's `type` and `param` to a [`Backend`], and the rule that
//! two interfaces do not share a host device.

use std::os::unix::fs::FileTypeExt;

use super::paths::{canonical, file_kind};
use super::schema::Fields;
use super::values::Radix;
use super::{Ctx, Validator};
use crate::config::error::ConfigError;
use crate::config::node::{Node, Origin};
use crate::config::suggest;
use crate::config::types::Interface;
use crate::virtio::net::backends::{Backend, BackendKind, SlirpNetwork};

impl Validator<'_> {
    /// The interface's `type`; `None` if it is missing or bad (reported,
    /// unless a misspelled key stands for it).
    pub(super) fn backend_kind(&self, f: &Fields<'_>, ctx: &Ctx) -> Option<BackendKind> {
        let Some((node, type_ctx)) = f.get("type") else {
            if f.missing("type") {
                self.report(ConfigError::MissingKey {
                    at: self.at_missing(ctx, "type"),
                    key: "type",
                    why: self.missing_type_why(f),
                });
            }
            return None;
        };
        let kind = self.string(node, &type_ctx).and_then(|name| {
            let name = name.trim();
            let kind = BackendKind::from_name(name).ok_or_else(|| {
                let names: Vec<&'static str> = BackendKind::ALL.iter().map(|k| k.name()).collect();
                let aliases = [("tun", "tap"), ("packet", "raw"), ("af_packet", "raw")];
                let hint = match suggest::nearest(name, &names, &aliases) {
                    Some(n) => format!("; did you mean \"{n}\"?"),
                    None => String::new(),
                };
                ConfigError::BadValue {
                    at: self.at(&type_ctx),
                    value: name.into(),
                    why: format!("is not a backend type ({}){hint}", backend_names()),
                }
            })?;
            if kind == BackendKind::Dpdk {
                return Err(ConfigError::Unsupported {
                    at: self.at(&type_ctx),
                    what: "the dpdk backend".into(),
                    why: "lkl-hijack is not built with DPDK; use tap, macvtap or raw",
                });
            }
            Ok(kind)
        });
        self.ok(kind)
    }

    /// The backend of type `kind` with the interface's `param`; `None` if
    /// that is missing or bad (reported, as in [`Validator::backend_kind`]).
    pub(super) fn backend(
        &self,
        kind: BackendKind,
        f: &Fields<'_>,
        parent: &Ctx,
    ) -> Option<Backend> {
        match (kind, f.get("param")) {
            (BackendKind::Slirp, None) => Some(Backend::Slirp { param: None }),
            (_, Some((node, ctx))) => self.ok(self.backend_param(kind, node, &ctx)),
            (_, None) => {
                if f.missing("param") {
                    self.report(ConfigError::MissingKey {
                        at: self.at_missing(parent, "param"),
                        key: "param",
                        why: format!("the {kind} backend needs {}", param_help(kind)),
                    });
                }
                None
            }
        }
    }

    fn backend_param(
        &self,
        kind: BackendKind,
        node: &Node,
        ctx: &Ctx,
    ) -> Result<Backend, ConfigError> {
        let ctx = ctx.clone();
        let value = self.scalar(node, &ctx, false, "a string")?;
        let text = value.text();
        let text = text.trim();
        let bad = |why: String| ConfigError::BadValue {
            at: self.at(&ctx),
            value: text.into(),
            why,
        };
        if text.is_empty() {
            return Err(bad(format!(
                "is empty; the {kind} backend needs {}",
                param_help(kind)
            )));
        }
        Ok(match kind {
            BackendKind::Tap | BackendKind::Raw => {
                ifname_ok(text).map_err(bad)?;
                if kind == BackendKind::Tap {
                    Backend::Tap {
                        ifname: text.into(),
                    }
                } else {
                    Backend::Raw {
                        ifname: text.into(),
                    }
                }
            }
            BackendKind::Macvtap => {
                let path = self.host_path(text, &ctx)?;
                let meta = self.metadata(&path, &ctx)?;
                if !meta.file_type().is_char_device() {
                    return Err(self.file_error(
                        &ctx,
                        &path,
                        format!(
                            "is {}, not a macvtap character device (/dev/tapN)",
                            file_kind(&meta.file_type())
                        ),
                    ));
                }
                Backend::Macvtap { path }
            }
            BackendKind::Pipe => {
                let mut parts = text.split('|');
                let (rx, tx) = match (parts.next(), parts.next(), parts.next()) {
                    (Some(rx), Some(tx), None) if !rx.is_empty() && !tx.is_empty() => (rx, tx),
                    _ => return Err(bad("is not \"rx_path|tx_path\" (two FIFO paths)".into())),
                };
                let (rx, tx) = (self.host_path(rx, &ctx)?, self.host_path(tx, &ctx)?);
                if rx == tx {
                    return Err(bad(
                        "uses one path for both directions; rx and tx need a FIFO each".into(),
                    ));
                }
                self.check_fifo(&rx, &ctx)?;
                self.check_fifo(&tx, &ctx)?;
                Backend::Pipe { rx, tx }
            }
            BackendKind::Vde => {
                let path = self.host_path(text, &ctx)?;
                // vde_switch's control path is a directory; it must exist.
                self.metadata(&path, &ctx)?;
                Backend::Vde { path }
            }
            BackendKind::Fd => {
                let fd = Validator::unsigned(value, Radix::Decimal)
                    .and_then(|n| {
                        i32::try_from(n).map_err(|_| "is too large for a file descriptor".into())
                    })
                    .map_err(|why| {
                        bad(format!("{why}; the fd backend needs a descriptor number"))
                    })?;
                Backend::Fd { fd }
            }
            BackendKind::Slirp => {
                text.parse::<SlirpNetwork>().map_err(|why| {
                    bad(format!(
                        "{why}; the slirp backend takes {}",
                        param_help(kind)
                    ))
                })?;
                Backend::Slirp {
                    param: Some(text.into()),
                }
            }
            BackendKind::Dpdk => {
                return Err(bad("dpdk is not supported".into()));
            }
        })
    }

    fn missing_type_why(&self, f: &Fields<'_>) -> String {
        match f.found.first() {
            Some((_, m)) => match m.origin {
                Origin::Env(var) => format!("{var} is set and an interface needs a backend type"),
                Origin::Json => format!("every interface needs one: {}", backend_names()),
            },
            None => format!("every interface needs one: {}", backend_names()),
        }
    }

    /// Two interfaces must not share a tap, a host NIC, a macvtap, a FIFO
    /// or an fd (LKL would fail the second attach at run time and drop the
    /// interface). VDE switches and slirp can be shared. `ifaces` are the
    /// valid ones, with their index in `items`.
    pub(super) fn distinct_backends(
        &self,
        items: &[Node],
        ctx: &Ctx,
        ifaces: &[(usize, Interface)],
    ) {
        let mut seen: Vec<(String, usize)> = Vec::new();
        for &(i, ref iface) in ifaces {
            let claims: Vec<String> = match &iface.backend {
                Backend::Tap { ifname } => vec![format!("tap \"{ifname}\"")],
                Backend::Raw { ifname } => vec![format!("host interface \"{ifname}\" (raw)")],
                Backend::Macvtap { path } => vec![format!("macvtap {}", canonical(path).display())],
                Backend::Pipe { rx, tx } => vec![
                    format!("FIFO {}", canonical(rx).display()),
                    format!("FIFO {}", canonical(tx).display()),
                ],
                Backend::Fd { fd } => vec![format!("file descriptor {fd}")],
                Backend::Vde { .. } | Backend::Slirp { .. } => vec![],
            };
            for claim in claims {
                if let Some((_, first)) = seen.iter().find(|(c, _)| *c == claim) {
                    let param_ctx = |n: usize| -> Ctx {
                        let c = ctx.index(n);
                        match items.get(n) {
                            Some(Node::Object(members)) => members
                                .iter()
                                .find(|m| m.key == "param")
                                .map_or(c.clone(), |m| c.member(m)),
                            _ => c,
                        }
                    };
                    self.report(ConfigError::DuplicateBackend {
                        at: self.at(&param_ctx(i)),
                        first: self.at(&param_ctx(*first)),
                        what: claim,
                    });
                    continue;
                }
                seen.push((claim, i));
            }
        }
    }
}

/// Linux's rule for interface names (`dev_valid_name`): 1 to 15 bytes,
/// not `.` or `..`, no `/`, `:` or white space.
pub(super) fn ifname_ok(name: &str) -> Result<(), String> {
    if name.len() > 15 {
        return Err("is longer than 15 bytes, the limit for a Linux interface name".into());
    }
    if name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        return Err("is not a legal Linux interface name (no /, : or spaces; not . or ..)".into());
    }
    Ok(())
}

/// The backend types we build, for messages (dpdk is parsed but refused).
pub(super) fn backend_names() -> String {
    BackendKind::ALL
        .iter()
        .filter(|k| **k != BackendKind::Dpdk)
        .map(|k| k.name())
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn param_help(kind: BackendKind) -> &'static str {
    match kind {
        BackendKind::Tap => "the name of an existing tap interface",
        BackendKind::Macvtap => "the path of a macvtap device (/dev/tapN)",
        BackendKind::Raw => "the name of a host interface",
        BackendKind::Pipe => "\"rx_path|tx_path\" (two FIFOs)",
        BackendKind::Vde => "the path of a VDE switch",
        BackendKind::Fd => "a file descriptor number",
        BackendKind::Slirp => {
            "QEMU's -netdev user options (net=ADDR/LEN,host=,dns=,dhcpstart=,\
             ipv6=on|off,ipv6-net=PREFIX/LEN,ipv6-host=,ipv6-dns=,restrict=on|off), \
             or no param for 10.0.2.0/24"
        }
        BackendKind::Dpdk => "no param",
    }
}
