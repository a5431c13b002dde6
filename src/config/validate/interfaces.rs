//! One element of `interfaces` (or the `LKL_HIJACK_NET_*` interface): its
//! backend, addresses and gateways, MTU, MAC, neighbours, qdisc, offloads.

use std::net::IpAddr;

use super::addresses::is_link_local;
use super::backends::backend_names;
use super::schema::INTERFACE;
use super::values::Radix;
use super::{Ctx, Validator};
use crate::config::error::ConfigError;
use crate::config::node::Node;
use crate::config::suggest;
use crate::config::types::*;
use crate::virtio::net::backends::BackendKind;

impl Validator<'_> {
    pub(super) fn interface(
        &self,
        node: &Node,
        ctx: &Ctx,
        index: usize,
    ) -> Result<Interface, ConfigError> {
        let f = self.object(node, ctx, &INTERFACE)?;
        let name_of = |key| Validator::name_of(ctx, key);

        let (type_node, type_ctx) = f.get("type").ok_or_else(|| ConfigError::MissingKey {
            at: self.at_missing(ctx, "type"),
            key: "type",
            why: self.missing_type_why(&f),
        })?;
        let type_name = self.string(type_node, &type_ctx)?.trim();
        let kind = BackendKind::from_name(type_name).ok_or_else(|| {
            let names: Vec<&'static str> = BackendKind::ALL.iter().map(|k| k.name()).collect();
            let aliases = [("tun", "tap"), ("packet", "raw"), ("af_packet", "raw")];
            let hint = match suggest::nearest(type_name, &names, &aliases) {
                Some(n) => format!("; did you mean \"{n}\"?"),
                None => String::new(),
            };
            ConfigError::BadValue {
                at: self.at(&type_ctx),
                value: type_name.into(),
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
        let backend = self.backend(kind, f.get("param"), ctx)?;

        let mut iface = Interface {
            name: format!("eth{index}"),
            backend,
            mtu: None,
            ipv4: None,
            ifgateway: None,
            ipv6: None,
            ifgateway6: None,
            mac: None,
            neighbors: Vec::new(),
            qdiscs: Vec::new(),
            offload: Offload::default(),
        };

        // IPv4: ip and masklen go together (LKL silently skips either alone).
        match (f.get("ip"), f.get("masklen")) {
            (Some((ip_node, ip_ctx)), Some((len_node, len_ctx))) => {
                let ip = self.ipv4(ip_node, &ip_ctx)?;
                self.unicast(IpAddr::V4(ip), &ip_ctx)?;
                let len = self.prefix(len_node, &len_ctx, 32)?;
                iface.ipv4 = Ipv4Net::new(ip, len);
            }
            (Some((_, ip_ctx)), None) => {
                return Err(ConfigError::Conflict {
                    at: self.at(&ip_ctx),
                    why: format!(
                        "{} is set but {} (its prefix length) is not",
                        name_of("ip"),
                        name_of("masklen")
                    ),
                })
            }
            (None, Some((_, len_ctx))) => {
                return Err(ConfigError::Conflict {
                    at: self.at(&len_ctx),
                    why: format!("{} is set but {} is not", name_of("masklen"), name_of("ip")),
                })
            }
            (None, None) => {}
        }
        if let Some((node, gctx)) = f.get("ifgateway") {
            let gw = self.ipv4(node, &gctx)?;
            self.unicast(IpAddr::V4(gw), &gctx)?;
            let net = iface.ipv4.ok_or_else(|| ConfigError::Conflict {
                at: self.at(&gctx),
                why: format!(
                    "{} needs {} and {}",
                    name_of("ifgateway"),
                    name_of("ip"),
                    name_of("masklen")
                ),
            })?;
            if !net.contains(gw) || gw == net.addr() {
                return Err(ConfigError::BadAddress {
                    at: self.at(&gctx),
                    value: gw.to_string(),
                    why: format!(
                        "is not another host on this interface's subnet {}/{}",
                        net.network(),
                        net.prefix()
                    ),
                });
            }
            iface.ifgateway = Some(gw);
        }

        match (f.get("ipv6"), f.get("masklen6")) {
            (Some((ip_node, ip_ctx)), Some((len_node, len_ctx))) => {
                let ip = self.ipv6(ip_node, &ip_ctx)?;
                self.unicast(IpAddr::V6(ip), &ip_ctx)?;
                let len = self.prefix(len_node, &len_ctx, 128)?;
                iface.ipv6 = Ipv6Net::new(ip, len);
            }
            (Some((_, ip_ctx)), None) => {
                return Err(ConfigError::Conflict {
                    at: self.at(&ip_ctx),
                    why: format!(
                        "{} is set but {} (its prefix length) is not",
                        name_of("ipv6"),
                        name_of("masklen6")
                    ),
                })
            }
            (None, Some((_, len_ctx))) => {
                return Err(ConfigError::Conflict {
                    at: self.at(&len_ctx),
                    why: format!(
                        "{} is set but {} is not",
                        name_of("masklen6"),
                        name_of("ipv6")
                    ),
                })
            }
            (None, None) => {}
        }
        if let Some((node, gctx)) = f.get("ifgateway6") {
            let gw = self.ipv6(node, &gctx)?;
            self.unicast(IpAddr::V6(gw), &gctx)?;
            let net = iface.ipv6.ok_or_else(|| ConfigError::Conflict {
                at: self.at(&gctx),
                why: format!(
                    "{} needs {} and {}",
                    name_of("ifgateway6"),
                    name_of("ipv6"),
                    name_of("masklen6")
                ),
            })?;
            if gw == net.addr() || !(net.contains(gw) || is_link_local(gw)) {
                return Err(ConfigError::BadAddress {
                    at: self.at(&gctx),
                    value: gw.to_string(),
                    why: format!(
                        "is neither link-local nor another host in this interface's prefix {}/{}",
                        net.network(),
                        net.prefix()
                    ),
                });
            }
            iface.ifgateway6 = Some(gw);
        }

        if let Some((node, mctx)) = f.get("mtu") {
            let value = self.scalar(node, &mctx, false, "a number or a string holding one")?;
            let bad = |why: String| ConfigError::BadMtu {
                at: self.at(&mctx),
                value: value.text(),
                why,
            };
            let mtu = Validator::unsigned(value, Radix::Decimal).map_err(bad)?;
            // 68: the IPv4 minimum (RFC 791); 65535: ETH_MAX_MTU.
            if !(68..=65535).contains(&mtu) {
                return Err(bad("is not an MTU between 68 and 65535".into()));
            }
            // The kernel turns IPv6 off on a link below 1280 (RFC 8200).
            if mtu < 1280 && iface.ipv6.is_some() {
                return Err(bad(format!(
                    "is below 1280, the IPv6 minimum, and {} is set",
                    name_of("ipv6")
                )));
            }
            iface.mtu = u32::try_from(mtu).ok();
        }

        if let Some((node, mctx)) = f.get("mac") {
            let s = self.string(node, &mctx)?.trim();
            let mac = self.mac(s, &mctx)?;
            let why = if mac.is_multicast() {
                Some("is a multicast address (the lowest bit of the first byte is set); an interface needs a unicast one")
            } else if mac.is_zero() {
                Some("is all zeros")
            } else {
                None
            };
            if let Some(why) = why {
                return Err(ConfigError::BadMac {
                    at: self.at(&mctx),
                    value: s.into(),
                    why: why.into(),
                });
            }
            iface.mac = Some(mac);
        }

        if let Some((node, nctx)) = f.get("neigh") {
            for (entry, c) in self.list(node, &nctx, &[';'])? {
                let n = self.neighbor(entry, &c)?;
                if iface.neighbors.iter().any(|m| m.ip == n.ip) {
                    return Err(ConfigError::BadValue {
                        at: self.at(&c),
                        value: entry.into(),
                        why: format!("lists {} a second time", n.ip),
                    });
                }
                iface.neighbors.push(n);
            }
        }

        if let Some((node, qctx)) = f.get("qdisc") {
            for (entry, c) in self.list(node, &qctx, &[';'])? {
                let q = self.qdisc(entry, &c)?;
                if !iface.qdiscs.is_empty() {
                    return Err(ConfigError::BadValue {
                        at: self.at(&c),
                        value: entry.into(),
                        why: "is a second root qdisc; an interface has one root".into(),
                    });
                }
                iface.qdiscs.push(q);
            }
        }

        if let Some((node, octx)) = f.get("offload") {
            let value = self.scalar(node, &octx, false, "a number or a string holding one")?;
            let bad = |why: String| ConfigError::BadOffload {
                at: self.at(&octx),
                value: value.text(),
                why,
            };
            let bits = Validator::unsigned(value, Radix::Auto)
                .and_then(|n| u32::try_from(n).map_err(|_| "is larger than 32 bits".into()))
                .map_err(bad)?;
            let offload = Offload::new(bits).map_err(bad)?;
            if !offload.is_empty() && !kind.supports_offload() {
                return Err(ConfigError::Unsupported {
                    at: self.at(&octx),
                    what: format!("offload on the {kind} backend"),
                    why: "only tap, macvtap and pipe carry the virtio-net header offloads need \
                          (LKL drops the setting with a warning); remove it or set it to 0",
                });
            }
            iface.offload = offload;
        }
        Ok(iface)
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
