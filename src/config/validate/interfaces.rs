//! One element of `interfaces` (or the `LKL_HIJACK_NET_*` interface): its
//! backend, addresses and gateways, MTU, MAC, neighbours, qdisc, offloads,
//! duplicate address detection.

use std::net::IpAddr;

use super::addresses::is_link_local;
use super::schema::{Fields, INTERFACE};
use super::values::Radix;
use super::{Ctx, Validator};
use crate::config::error::ConfigError;
use crate::config::node::Node;
use crate::config::types::{Interface, IpNet, MacAddr, Neighbor, Offload, Qdisc};
use crate::virtio::net::backends::BackendKind;

/// What became of an optional setting.
#[derive(Debug, Clone, Copy)]
enum Checked<T> {
    /// Not in the config.
    Absent,
    /// Given, but wrong (reported).
    Bad,
    /// Given and valid.
    Valid(T),
}

impl<T> Checked<T> {
    fn valid(self) -> Option<T> {
        match self {
            Checked::Valid(v) => Some(v),
            Checked::Absent | Checked::Bad => None,
        }
    }
}

impl Validator<'_> {
    /// One interface, `eth<index>`. Every key is checked, also after one
    /// was found wrong; the interface exists only if all are right.
    pub(super) fn interface(&self, node: &Node, ctx: &Ctx, index: usize) -> Option<Interface> {
        let before = self.error_count();
        let f = self.ok(self.object(node, ctx, &INTERFACE))?;
        let name_of = |key| Validator::name_of(ctx, key);

        let kind = self.backend_kind(&f, ctx);
        let backend = kind.and_then(|kind| self.backend(kind, &f, ctx));

        let v4_keys = ("ip", "masklen", "ifgateway");
        let ipv4 = self.address_pair(&f, ctx, v4_keys, 32, |node, c| {
            self.ipv4(node, c).map(IpAddr::V4)
        });
        let ifgateway = self.if_gateway(&f, ctx, v4_keys, ipv4, |node, c| {
            self.ipv4(node, c).map(IpAddr::V4)
        });
        let v6_keys = ("ipv6", "masklen6", "ifgateway6");
        let ipv6 = self.address_pair(&f, ctx, v6_keys, 128, |node, c| {
            self.ipv6(node, c).map(IpAddr::V6)
        });
        let ifgateway6 = self.if_gateway(&f, ctx, v6_keys, ipv6, |node, c| {
            self.ipv6(node, c).map(IpAddr::V6)
        });

        let mtu = f.get("mtu").and_then(|(node, mctx)| {
            let with_ipv6 = f.get("ipv6").is_some();
            self.ok(self.mtu(node, &mctx, with_ipv6, name_of("ipv6")))
        });
        let mac = f
            .get("mac")
            .and_then(|(node, mctx)| self.ok(self.interface_mac(node, &mctx)));
        let neighbors = match f.get("neigh") {
            Some((node, nctx)) => self.neighbors(node, &nctx),
            None => Vec::new(),
        };
        let qdiscs = match f.get("qdisc") {
            Some((node, qctx)) => self.qdiscs(node, &qctx),
            None => Vec::new(),
        };
        // No key: the best the backend supports (none where the peer may
        // be a kernel that did not negotiate them).
        let offload = match f.get("offload") {
            Some((node, octx)) => self.ok(self.offload(node, &octx, kind)),
            None => kind.map(Offload::default_for),
        };
        let dad = f.get("dad").and_then(|(node, dctx)| {
            let dad = self.ok(self.boolean(node, &dctx))?;
            if dad && matches!(ipv6, Checked::Absent) && f.missing("ipv6") {
                self.report(ConfigError::Conflict {
                    at: self.at(&dctx),
                    why: format!(
                        "{} asks for duplicate address detection, which is for IPv6 \
                         addresses, but {} is not set",
                        name_of("dad"),
                        name_of("ipv6")
                    ),
                });
                return None;
            }
            Some(dad)
        });

        if self.error_count() != before {
            return None;
        }
        Some(Interface {
            name: format!("eth{index}"),
            backend: backend?,
            mtu,
            ipv4: match ipv4.valid() {
                Some(IpNet::V4(n)) => Some(n),
                _ => None,
            },
            ifgateway: match ifgateway {
                Some(IpAddr::V4(a)) => Some(a),
                _ => None,
            },
            ipv6: match ipv6.valid() {
                Some(IpNet::V6(n)) => Some(n),
                _ => None,
            },
            ifgateway6: match ifgateway6 {
                Some(IpAddr::V6(a)) => Some(a),
                _ => None,
            },
            mac,
            neighbors,
            qdiscs,
            offload: offload?,
            dad: dad.unwrap_or(false),
        })
    }

    /// An address key and its prefix-length key, which go together (LKL
    /// silently skips either alone). One without the other is reported
    /// (unless the other is there misspelled, which is reported already).
    fn address_pair(
        &self,
        f: &Fields<'_>,
        ctx: &Ctx,
        (addr_key, len_key, _): (&'static str, &'static str, &'static str),
        max: u8,
        parse: impl Fn(&Node, &Ctx) -> Result<IpAddr, ConfigError>,
    ) -> Checked<IpNet> {
        let name_of = |key| Validator::name_of(ctx, key);
        match (f.get(addr_key), f.get(len_key)) {
            (Some((ip_node, ip_ctx)), Some((len_node, len_ctx))) => {
                let ip = self.ok(parse(ip_node, &ip_ctx).and_then(|ip| {
                    self.unicast(ip, &ip_ctx)?;
                    Ok(ip)
                }));
                let len = self.ok(self.prefix(len_node, &len_ctx, max));
                match ip.zip(len).and_then(|(ip, len)| IpNet::new(ip, len)) {
                    Some(net) => Checked::Valid(net),
                    None => Checked::Bad,
                }
            }
            (Some((_, ip_ctx)), None) => {
                if f.missing(len_key) {
                    self.report(ConfigError::Conflict {
                        at: self.at(&ip_ctx),
                        why: format!(
                            "{} is set but {} (its prefix length) is not",
                            name_of(addr_key),
                            name_of(len_key)
                        ),
                    });
                }
                Checked::Bad
            }
            (None, Some((_, len_ctx))) => {
                if f.missing(addr_key) {
                    self.report(ConfigError::Conflict {
                        at: self.at(&len_ctx),
                        why: format!(
                            "{} is set but {} is not",
                            name_of(len_key),
                            name_of(addr_key)
                        ),
                    });
                }
                Checked::Bad
            }
            (None, None) => Checked::Absent,
        }
    }

    /// `ifgateway` (or `ifgateway6`): a policy-routing next hop, another
    /// host on the interface's subnet `net` (for IPv6 also link-local).
    /// `None` if absent or wrong (reported; not when `net` is wrong too).
    fn if_gateway(
        &self,
        f: &Fields<'_>,
        ctx: &Ctx,
        (addr_key, len_key, key): (&'static str, &'static str, &'static str),
        net: Checked<IpNet>,
        parse: impl Fn(&Node, &Ctx) -> Result<IpAddr, ConfigError>,
    ) -> Option<IpAddr> {
        let name_of = |key| Validator::name_of(ctx, key);
        let (node, gctx) = f.get(key)?;
        let gw = self.ok(parse(node, &gctx).and_then(|gw| {
            self.unicast(gw, &gctx)?;
            Ok(gw)
        }))?;
        let net = match net {
            Checked::Valid(net) => net,
            Checked::Bad => return None,
            Checked::Absent => {
                self.report(ConfigError::Conflict {
                    at: self.at(&gctx),
                    why: format!(
                        "{} needs {} and {}",
                        name_of(key),
                        name_of(addr_key),
                        name_of(len_key)
                    ),
                });
                return None;
            }
        };
        let (network, on_link, why) = match (net, gw) {
            (IpNet::V4(n), IpAddr::V4(_)) => (
                IpAddr::V4(n.network()),
                net.contains(gw),
                "is not another host on this interface's subnet",
            ),
            (IpNet::V6(n), IpAddr::V6(a)) => (
                IpAddr::V6(n.network()),
                net.contains(gw) || is_link_local(a),
                "is neither link-local nor another host in this interface's prefix",
            ),
            // One parser per family: cannot happen.
            _ => (
                net.addr(),
                false,
                "is not of the interface's address family",
            ),
        };
        if !on_link || gw == net.addr() {
            self.report(ConfigError::BadAddress {
                at: self.at(&gctx),
                value: gw.to_string(),
                why: format!("{why} {network}/{}", net.prefix()),
            });
            return None;
        }
        Some(gw)
    }

    /// `mtu`; `with_ipv6` if the interface has an `ipv6` key (called
    /// `ipv6_name` in messages).
    fn mtu(
        &self,
        node: &Node,
        ctx: &Ctx,
        with_ipv6: bool,
        ipv6_name: &str,
    ) -> Result<u32, ConfigError> {
        let value = self.scalar(node, ctx, false, "a number or a string holding one")?;
        let bad = |why: String| ConfigError::BadMtu {
            at: self.at(ctx),
            value: value.text(),
            why,
        };
        let mtu = Validator::unsigned(value, Radix::Decimal).map_err(bad)?;
        // 68: the IPv4 minimum (RFC 791); 65535: ETH_MAX_MTU.
        if !(68..=65535).contains(&mtu) {
            return Err(bad("is not an MTU between 68 and 65535".into()));
        }
        // The kernel turns IPv6 off on a link below 1280 (RFC 8200).
        if mtu < 1280 && with_ipv6 {
            return Err(bad(format!(
                "is below 1280, the IPv6 minimum, and {ipv6_name} is set"
            )));
        }
        u32::try_from(mtu).map_err(|e| bad(e.to_string()))
    }

    /// An interface's own `mac`: unicast, not zero.
    fn interface_mac(&self, node: &Node, ctx: &Ctx) -> Result<MacAddr, ConfigError> {
        let s = self.string(node, ctx)?.trim();
        let mac = self.mac(s, ctx)?;
        let why = if mac.is_multicast() {
            Some("is a multicast address (the lowest bit of the first byte is set); an interface needs a unicast one")
        } else if mac.is_zero() {
            Some("is all zeros")
        } else {
            None
        };
        match why {
            Some(why) => Err(ConfigError::BadMac {
                at: self.at(ctx),
                value: s.into(),
                why: why.into(),
            }),
            None => Ok(mac),
        }
    }

    fn neighbors(&self, node: &Node, ctx: &Ctx) -> Vec<Neighbor> {
        let mut out: Vec<Neighbor> = Vec::new();
        for item in self.list(node, ctx, &[';']) {
            let Some((entry, c)) = self.ok(item) else {
                continue;
            };
            let n = self.neighbor(entry, &c).and_then(|n| {
                if out.iter().any(|m| m.ip == n.ip) {
                    return Err(ConfigError::BadValue {
                        at: self.at(&c),
                        value: entry.into(),
                        why: format!("lists {} a second time", n.ip),
                    });
                }
                Ok(n)
            });
            out.extend(self.ok(n));
        }
        out
    }

    fn qdiscs(&self, node: &Node, ctx: &Ctx) -> Vec<Qdisc> {
        let mut out: Vec<Qdisc> = Vec::new();
        for item in self.list(node, ctx, &[';']) {
            let Some((entry, c)) = self.ok(item) else {
                continue;
            };
            let q = self.qdisc(entry, &c).and_then(|q| {
                if !out.is_empty() {
                    return Err(ConfigError::BadValue {
                        at: self.at(&c),
                        value: entry.into(),
                        why: "is a second root qdisc; an interface has one root".into(),
                    });
                }
                Ok(q)
            });
            out.extend(self.ok(q));
        }
        out
    }

    /// An explicit `offload` (0 included), for the backend `kind` if its
    /// type is valid.
    fn offload(
        &self,
        node: &Node,
        ctx: &Ctx,
        kind: Option<BackendKind>,
    ) -> Result<Offload, ConfigError> {
        let value = self.scalar(node, ctx, false, "a number or a string holding one")?;
        let bad = |why: String| ConfigError::BadOffload {
            at: self.at(ctx),
            value: value.text(),
            why,
        };
        let bits = Validator::unsigned(value, Radix::Auto)
            .and_then(|n| u32::try_from(n).map_err(|_| "is larger than 32 bits".into()))
            .map_err(bad)?;
        let offload = Offload::new(bits).map_err(bad)?;
        match kind {
            Some(kind) if !offload.is_empty() && !kind.supports_offload() => {
                Err(ConfigError::Unsupported {
                    at: self.at(ctx),
                    what: format!("offload on the {kind} backend"),
                    why: "only tap, macvtap and pipe carry the virtio-net header offloads need \
                          (LKL drops the setting with a warning); remove it or set it to 0",
                })
            }
            _ => Ok(offload),
        }
    }

    pub(super) fn neighbor(&self, entry: &str, ctx: &Ctx) -> Result<Neighbor, ConfigError> {
        let mut parts = entry.split('|');
        let (ip, mac) = match (parts.next(), parts.next(), parts.next()) {
            (Some(ip), Some(mac), None) => (ip.trim(), mac.trim()),
            _ => {
                return Err(ConfigError::BadValue {
                    at: self.at(ctx),
                    value: entry.into(),
                    why: "is not \"ip|mac\"".into(),
                })
            }
        };
        let ip = self.parse_ip(ip, ctx)?;
        self.unicast(ip, ctx)?;
        let mac = self.mac(mac, ctx)?;
        Ok(Neighbor { ip, mac })
    }

    pub(super) fn qdisc(&self, entry: &str, ctx: &Ctx) -> Result<Qdisc, ConfigError> {
        let bad = |why: &str| ConfigError::BadValue {
            at: self.at(ctx),
            value: entry.into(),
            why: why.into(),
        };
        let mut parts = entry.split('|');
        let (parent, kind) = match (parts.next(), parts.next(), parts.next()) {
            (Some(p), Some(k), None) => (p.trim(), k.trim()),
            _ => return Err(bad("is not \"root|kind\" (e.g. \"root|fq\")")),
        };
        if parent != "root" {
            return Err(bad(
                "has a parent other than \"root\"; only root qdiscs are supported (as in LKL)",
            ));
        }
        // A qdisc kind is a kernel module name of at most IFNAMSIZ-1 bytes.
        let legal = !kind.is_empty()
            && kind.len() < 16
            && kind
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !legal {
            return Err(bad(
                "does not name a qdisc kind (lower-case letters, digits and _, e.g. fq, fq_codel)",
            ));
        }
        Ok(Qdisc { kind: kind.into() })
    }
}
