//! IP and MAC addresses, prefix lengths and CIDR subnets.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::values::{parse_unsigned, Radix};
use super::{Ctx, Validator};
use crate::config::error::ConfigError;
use crate::config::node::Node;
use crate::config::types::{IpNet, MacAddr};

impl Validator<'_> {
    pub(super) fn ipv4(&self, node: &Node, ctx: &Ctx) -> Result<Ipv4Addr, ConfigError> {
        let s = self.string(node, ctx)?;
        self.parse_ipv4(s.trim(), ctx)
    }

    pub(super) fn parse_ipv4(&self, s: &str, ctx: &Ctx) -> Result<Ipv4Addr, ConfigError> {
        s.parse::<Ipv4Addr>().map_err(|_| {
            let why = if s.eq_ignore_ascii_case("dhcp") {
                "is not an IPv4 address (for DHCP, put ip=dhcp in boot_cmdline)".into()
            } else if s.parse::<Ipv6Addr>().is_ok() {
                "is an IPv6 address; this key takes IPv4".into()
            } else {
                "is not an IPv4 address".into()
            };
            ConfigError::BadAddress {
                at: self.at(ctx),
                value: s.into(),
                why,
            }
        })
    }

    pub(super) fn ipv6(&self, node: &Node, ctx: &Ctx) -> Result<Ipv6Addr, ConfigError> {
        let s = self.string(node, ctx)?;
        self.parse_ipv6(s.trim(), ctx)
    }

    pub(super) fn parse_ipv6(&self, s: &str, ctx: &Ctx) -> Result<Ipv6Addr, ConfigError> {
        s.parse::<Ipv6Addr>().map_err(|_| ConfigError::BadAddress {
            at: self.at(ctx),
            value: s.into(),
            why: if s.parse::<Ipv4Addr>().is_ok() {
                "is an IPv4 address; this key takes IPv6".into()
            } else {
                "is not an IPv6 address".into()
            },
        })
    }

    pub(super) fn parse_ip(&self, s: &str, ctx: &Ctx) -> Result<IpAddr, ConfigError> {
        s.parse::<IpAddr>().map_err(|_| ConfigError::BadAddress {
            at: self.at(ctx),
            value: s.into(),
            why: "is not an IPv4 or IPv6 address".into(),
        })
    }

    /// An address that can be a host's own or a next hop: not unspecified,
    /// not multicast, not the IPv4 broadcast address.
    pub(super) fn unicast(&self, ip: IpAddr, ctx: &Ctx) -> Result<(), ConfigError> {
        let why = match ip {
            IpAddr::V4(a) if a.is_unspecified() => Some("is the unspecified address"),
            IpAddr::V4(a) if a.is_broadcast() => Some("is the broadcast address"),
            IpAddr::V4(a) if a.is_multicast() => Some("is a multicast address"),
            IpAddr::V6(a) if a.is_unspecified() => Some("is the unspecified address"),
            IpAddr::V6(a) if a.is_multicast() => Some("is a multicast address"),
            _ => None,
        };
        match why {
            Some(why) => Err(ConfigError::BadAddress {
                at: self.at(ctx),
                value: ip.to_string(),
                why: why.into(),
            }),
            None => Ok(()),
        }
    }

    pub(super) fn prefix(&self, node: &Node, ctx: &Ctx, max: u8) -> Result<u8, ConfigError> {
        let value = self.scalar(node, ctx, false, "a number or a string holding one")?;
        let bad = |why: String| ConfigError::BadPrefix {
            at: self.at(ctx),
            value: value.text(),
            why,
        };
        let n = Validator::unsigned(value, Radix::Decimal).map_err(bad)?;
        if n == 0 || n > u64::from(max) {
            return Err(bad(format!("is not a prefix length between 1 and {max}")));
        }
        // n <= max <= 128 here, so it fits.
        u8::try_from(n).map_err(|e| bad(e.to_string()))
    }

    pub(super) fn mac(&self, s: &str, ctx: &Ctx) -> Result<MacAddr, ConfigError> {
        MacAddr::parse(s).map_err(|why| ConfigError::BadMac {
            at: self.at(ctx),
            value: s.into(),
            why,
        })
    }

    pub(super) fn cidr(&self, s: &str, ctx: &Ctx) -> Result<IpNet, ConfigError> {
        let (addr, len) = s.split_once('/').ok_or_else(|| ConfigError::BadPrefix {
            at: self.at(ctx),
            value: s.into(),
            why: "is not in CIDR form (address/prefix, e.g. 10.1.0.0/16)".into(),
        })?;
        let ip = self.parse_ip(addr.trim(), ctx)?;
        let max: u8 = if ip.is_ipv4() { 32 } else { 128 };
        let bad = |why: String| ConfigError::BadPrefix {
            at: self.at(ctx),
            value: s.into(),
            why,
        };
        let net = parse_unsigned(len.trim(), Radix::Decimal)
            .ok()
            .and_then(|n| u8::try_from(n).ok())
            .and_then(|len| IpNet::new(ip, len))
            .ok_or_else(|| {
                bad(format!(
                    "has a prefix length that is not between 0 and {max}"
                ))
            })?;
        let len = net.prefix();
        let network = match net {
            IpNet::V4(n) => IpAddr::V4(n.network()),
            IpNet::V6(n) => IpAddr::V6(n.network()),
        };
        if network != ip {
            // The kernel refuses these ("Invalid prefix for given prefix length").
            return Err(bad(format!(
                "has host bits set; did you mean {network}/{len}?"
            )));
        }
        Ok(net)
    }
}

pub(super) fn is_link_local(ip: Ipv6Addr) -> bool {
    ip.segments()[0] & 0xffc0 == 0xfe80
}
