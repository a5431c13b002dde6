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
    /// One route; every key is checked, the route exists only if all are
    /// right. `names` are the interfaces a `device` may name (besides
    /// `lo`), valid or not.
    pub(super) fn route(&self, node: &Node, ctx: &Ctx, names: &[String]) -> Option<Route> {
        let before = self.error_count();
        let f = self.ok(self.object(node, ctx, &ROUTE))?;
        // Outer None: absent; inner None: given but wrong.
        let gateway = f.get("gateway").map(|(n, c)| {
            let ip = self.string(n, &c).and_then(|s| {
                let ip = self.parse_ip(s.trim(), &c)?;
                self.unicast(ip, &c)?;
                Ok(ip)
            });
            self.ok(ip).map(|ip| (ip, c))
        });
        let destination = match f.get("destination") {
            Some((n, c)) => self.ok(self.string(n, &c)).and_then(|dst| {
                let dst = dst.trim();
                if dst != "default" {
                    return self.ok(self.cidr(dst, &c));
                }
                match &gateway {
                    Some(Some((IpAddr::V4(_), _))) => Some(IpNet::DEFAULT_V4),
                    Some(Some((IpAddr::V6(_), _))) => Some(IpNet::DEFAULT_V6),
                    // The gateway's own error is reported.
                    Some(None) => None,
                    None => {
                        self.report(ConfigError::BadValue {
                            at: self.at(&c),
                            value: dst.into(),
                            why: "has no family without a gateway; write 0.0.0.0/0 or ::/0".into(),
                        });
                        None
                    }
                }
            }),
            None => {
                if f.missing("destination") {
                    self.report(ConfigError::MissingKey {
                        at: self.at(ctx),
                        key: "destination",
                        why: "a route needs a destination (a CIDR such as 10.1.0.0/16, or \
                              \"default\")"
                            .into(),
                    });
                }
                None
            }
        };
        if let (Some(Some((gw, gctx))), Some(destination)) = (&gateway, &destination) {
            if gw.is_ipv4() != destination.is_ipv4() {
                self.report(ConfigError::BadAddress {
                    at: self.at(gctx),
                    value: gw.to_string(),
                    why: format!("is not of the same family as the destination {destination}"),
                });
            }
        }
        // Outer None: absent; inner None: given but wrong.
        let device = f.get("device").map(|(n, c)| {
            let s = self.ok(self.string(n, &c))?.trim();
            if s != "lo" && !names.iter().any(|name| name == s) {
                let mut known = vec!["lo".to_string()];
                known.extend(names.iter().cloned());
                self.report(ConfigError::BadValue {
                    at: self.at(&c),
                    value: s.into(),
                    why: format!(
                        "is not a configured interface (known: {})",
                        known.join(", ")
                    ),
                });
                return None;
            }
            Some(s.to_string())
        });
        if gateway.is_none() && device.is_none() && f.missing("gateway") && f.missing("device") {
            self.report(ConfigError::MissingKey {
                at: self.at(ctx),
                key: "gateway",
                why: "a route needs a gateway, a device, or both".into(),
            });
        }
        if let (Some(Some((IpAddr::V6(gw), gctx))), None) = (&gateway, &device) {
            if is_link_local(*gw) && f.missing("device") {
                self.report(ConfigError::Conflict {
                    at: self.at(gctx),
                    why: format!("{gw} is link-local, so the route needs a \"device\""),
                });
            }
        }
        let table = match f.get("table") {
            Some((n, c)) => self.ok(self.table(n, &c)),
            None => Some(TABLE_MAIN),
        };
        let metric = f.get("metric").map(|(n, c)| {
            self.ok(self.number(n, &c, Radix::Decimal, u64::from(u32::MAX)))
                .and_then(|m| u32::try_from(m).ok())
        });
        if self.error_count() != before {
            return None;
        }
        Some(Route {
            destination: destination?,
            gateway: gateway.flatten().map(|(ip, _)| ip),
            device: device.flatten(),
            table: table?,
            metric: metric.flatten(),
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

    /// No two routes with the same destination, table and metric.
    /// `routes` are the valid ones with their index.
    pub(super) fn routes_distinct(&self, routes: &[(usize, Route)], ctx: &Ctx) {
        for (k, (i, r)) in routes.iter().enumerate() {
            if let Some((j, _)) = routes.iter().take(k).find(|(_, o)| {
                o.destination == r.destination && o.table == r.table && o.metric == r.metric
            }) {
                self.report(ConfigError::Conflict {
                    at: self.at(&ctx.index(*i)),
                    why: format!(
                        "a route to {} in table {} with the same metric is already {}",
                        r.destination,
                        r.table,
                        ctx.index(*j).path
                    ),
                });
            }
        }
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
