//! `routes`, and the rule every next hop (a route's, `gateway`,
//! `gateway6`) must be on a link.

use std::net::IpAddr;

use super::addresses::is_link_local;
use super::schema::ROUTE;
use super::values::{Radix, Scalar};
use super::{Ctx, Validator};
use crate::config::error::ConfigError;
use crate::config::node::Node;
use crate::config::types::{
    Config, Interface, IpNet, Route, TABLE_DEFAULT, TABLE_LOCAL, TABLE_MAIN,
};

impl Validator<'_> {
    pub(super) fn route(
        &self,
        node: &Node,
        ctx: &Ctx,
        ifaces: &[Interface],
    ) -> Result<Route, ConfigError> {
        let f = self.object(node, ctx, &ROUTE)?;
        let gateway = match f.get("gateway") {
            Some((n, c)) => {
                let s = self.string(n, &c)?.trim();
                let ip = self.parse_ip(s, &c)?;
                self.unicast(ip, &c)?;
                Some((ip, c))
            }
            None => None,
        };
        let (dst_node, dst_ctx) = f
            .get("destination")
            .ok_or_else(|| ConfigError::MissingKey {
                at: self.at(ctx),
                key: "destination",
                why: "a route needs a destination (a CIDR such as 10.1.0.0/16, or \"default\")"
                    .into(),
            })?;
        let dst = self.string(dst_node, &dst_ctx)?.trim();
        let destination = if dst == "default" {
            match &gateway {
                Some((IpAddr::V4(_), _)) => IpNet::DEFAULT_V4,
                Some((IpAddr::V6(_), _)) => IpNet::DEFAULT_V6,
                None => {
                    return Err(ConfigError::BadValue {
                        at: self.at(&dst_ctx),
                        value: dst.into(),
                        why: "has no family without a gateway; write 0.0.0.0/0 or ::/0".into(),
                    })
                }
            }
        } else {
            self.cidr(dst, &dst_ctx)?
        };
        if let Some((gw, gctx)) = &gateway {
            if gw.is_ipv4() != destination.is_ipv4() {
                return Err(ConfigError::BadAddress {
                    at: self.at(gctx),
                    value: gw.to_string(),
                    why: format!("is not of the same family as the destination {destination}"),
                });
            }
        }
        let device = match f.get("device") {
            Some((n, c)) => {
                let s = self.string(n, &c)?.trim();
                if s != "lo" && !ifaces.iter().any(|i| i.name == s) {
                    let mut known = vec!["lo".to_string()];
                    known.extend(ifaces.iter().map(|i| i.name.clone()));
                    return Err(ConfigError::BadValue {
                        at: self.at(&c),
                        value: s.into(),
                        why: format!(
                            "is not a configured interface (known: {})",
                            known.join(", ")
                        ),
                    });
                }
                Some(s.to_string())
            }
            None => None,
        };
        if gateway.is_none() && device.is_none() {
            return Err(ConfigError::MissingKey {
                at: self.at(ctx),
                key: "gateway",
                why: "a route needs a gateway, a device, or both".into(),
            });
        }
        if let (Some((IpAddr::V6(gw), gctx)), None) = (&gateway, &device) {
            if is_link_local(*gw) {
                return Err(ConfigError::Conflict {
                    at: self.at(gctx),
                    why: format!("{gw} is link-local, so the route needs a \"device\""),
                });
            }
        }
        let table = match f.get("table") {
            Some((n, c)) => self.table(n, &c)?,
            None => TABLE_MAIN,
        };
        let metric = match f.get("metric") {
            Some((n, c)) => {
                u32::try_from(self.number(n, &c, Radix::Decimal, u64::from(u32::MAX))?).ok()
            }
            None => None,
        };
        Ok(Route {
            destination,
            gateway: gateway.map(|(ip, _)| ip),
            device,
            table,
            metric,
        })
    }

    pub(super) fn table(&self, node: &Node, ctx: &Ctx) -> Result<u32, ConfigError> {
        let value = self.scalar(node, ctx, false, "a number or a table name")?;
        let named = match value {
            Scalar::Str(s) => match s.trim() {
                "main" => Some(TABLE_MAIN),
                "local" => Some(TABLE_LOCAL),
                "default" => Some(TABLE_DEFAULT),
                _ => None,
            },
            _ => None,
        };
        if let Some(t) = named {
            return Ok(t);
        }
        match Validator::unsigned(value, Radix::Decimal)
            .ok()
            .and_then(|n| u32::try_from(n).ok())
        {
            Some(t) if t != 0 => Ok(t),
            _ => Err(ConfigError::BadValue {
                at: self.at(ctx),
                value: value.text(),
                why: "is not a routing table (1 to 4294967295, main, local or default)".into(),
            }),
        }
    }

    pub(super) fn routes_distinct(&self, routes: &[Route], ctx: &Ctx) -> Result<(), ConfigError> {
        for (i, r) in routes.iter().enumerate() {
            if let Some(j) = routes.iter().take(i).position(|o| {
                o.destination == r.destination && o.table == r.table && o.metric == r.metric
            }) {
                return Err(ConfigError::Conflict {
                    at: self.at(&ctx.index(i)),
                    why: format!(
                        "a route to {} in table {} with the same metric is already {}",
                        r.destination,
                        r.table,
                        ctx.index(j).path
                    ),
                });
            }
        }
        Ok(())
    }

    /// A next hop must be on a link: inside an interface's subnet, inside
    /// a device route (one without a gateway), or, for IPv6, link-local.
    pub(super) fn on_link(
        &self,
        cfg: &Config,
        gw: IpAddr,
        device: Option<&str>,
        ctx: &Ctx,
    ) -> Result<(), ConfigError> {
        let on_iface = |i: &Interface| match gw {
            IpAddr::V4(a) => i.ipv4.is_some_and(|n| n.contains(a)),
            IpAddr::V6(a) => is_link_local(a) || i.ipv6.is_some_and(|n| n.contains(a)),
        };
        let ok = cfg
            .interfaces
            .iter()
            .filter(|i| match device {
                None => true,
                Some(d) => d == i.name,
            })
            .any(on_iface)
            || cfg.routes.iter().any(|r| {
                r.gateway.is_none()
                    && r.destination.contains(gw)
                    && (device.is_none() || r.device.as_deref() == device)
            });
        if ok {
            return Ok(());
        }
        let subnets: Vec<String> = cfg
            .interfaces
            .iter()
            .flat_map(|i| {
                let v4 = i
                    .ipv4
                    .map(|n| format!("{}/{} on {}", n.network(), n.prefix(), i.name));
                let v6 = i
                    .ipv6
                    .map(|n| format!("{}/{} on {}", n.network(), n.prefix(), i.name));
                v4.into_iter().chain(v6)
            })
            .collect();
        let known = if subnets.is_empty() {
            "no interface has an address".to_string()
        } else {
            format!("subnets: {}", subnets.join(", "))
        };
        Err(ConfigError::Conflict {
            at: self.at(ctx),
            why: format!(
                "{gw} is not on any configured link, so the kernel cannot reach it ({known})"
            ),
        })
    }
}
