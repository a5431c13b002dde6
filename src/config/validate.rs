//! From the merged JSON tree to a [`Config`]: every key checked against the
//! schema, every value parsed into its type, cross-field rules enforced,
//! host files looked at. The first problem found is returned; nothing is
//! skipped or defaulted in its place.
//!
//! Values may be written as LKL writes them (strings: `"1500"`, `"0x883"`)
//! or as JSON numbers and booleans. Numbers in strings follow LKL's base:
//! strtol base 0 (`0x` hex, leading `0` octal) for `debug` and `offload`,
//! decimal elsewhere; unlike LKL, trailing junk is an error.
//!
//! One file per part of the document, each an `impl Validator` block:
//! [`schema`] (the keys of each object), [`values`] (scalars and lists),
//! [`addresses`], [`paths`] (host files, kernel paths), [`interfaces`] and
//! [`backends`], [`globals`] (the other top-level settings), [`disks`],
//! [`routes`]. This file holds the walk over the top level and where an
//! error is reported.

mod addresses;
mod backends;
mod disks;
mod globals;
mod interfaces;
mod paths;
mod routes;
mod schema;
mod values;

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use super::env;
use super::error::{ConfigError, JsonPath, Location};
use super::node::{Member, Node, Origin};
use super::types::{Config, DebugFlags};
use schema::TOP;
use values::Radix;

pub(crate) use paths::io_why;

/// Where in the tree we are, and which source the value came from.
#[derive(Debug, Clone)]
struct Ctx {
    path: JsonPath,
    origin: Origin,
}

impl Ctx {
    fn member(&self, m: &Member) -> Ctx {
        Ctx {
            path: self.path.key(&m.key),
            origin: m.origin,
        }
    }

    fn index(&self, i: usize) -> Ctx {
        Ctx {
            path: self.path.index(i),
            origin: self.origin,
        }
    }

    /// The member `key` below this path, keeping the origin (for errors
    /// about values already validated).
    fn path_key(&self, key: &str) -> Ctx {
        Ctx {
            path: self.path.key(key),
            origin: self.origin,
        }
    }

    fn in_env_interface(&self) -> bool {
        matches!(self.origin, Origin::Env(_)) && self.path.as_str().starts_with("interfaces")
    }
}

/// Turns the merged tree into a [`Config`].
pub(crate) struct Validator<'a> {
    /// The config file, for error locations.
    pub file: Option<&'a Path>,
    /// Relative host paths are resolved against this directory.
    pub base: &'a Path,
}

impl Validator<'_> {
    fn at(&self, ctx: &Ctx) -> Location {
        match ctx.origin {
            Origin::Env(var) => Location::Env(var),
            Origin::Json => Location::Json {
                file: self.file.map(Path::to_path_buf),
                path: ctx.path.clone(),
            },
        }
    }

    /// How to call `key` of the object at `parent` in a message: the JSON
    /// key, or the variable that sets it.
    fn name_of(parent: &Ctx, key: &'static str) -> &'static str {
        if let Origin::Env(_) = parent.origin {
            let var = if parent.in_env_interface() {
                env::interface_var(key)
            } else {
                env::top_var(key)
            };
            if let Some(var) = var {
                return var;
            }
        }
        key
    }

    /// Where to report that `key` of the object at `parent` is missing:
    /// the object, or for the environment interface the key's variable.
    fn at_missing(&self, parent: &Ctx, key: &'static str) -> Location {
        match parent.origin {
            Origin::Env(_) => Location::Env(Validator::name_of(parent, key)),
            Origin::Json => self.at(parent),
        }
    }

    fn wrong_type(&self, node: &Node, ctx: &Ctx, expected: &'static str) -> ConfigError {
        ConfigError::WrongType {
            at: self.at(ctx),
            expected,
            found: node.type_name(),
        }
    }

    pub(crate) fn config(&self, root: &Node) -> Result<Config, ConfigError> {
        let top = Ctx {
            path: JsonPath::root(),
            origin: Origin::Json,
        };
        let f = self.object(root, &top, &TOP)?;
        let mut cfg = Config::default();

        if let Some((node, ctx)) = f.get("interfaces") {
            let items = self.array(node, &ctx, "an array of objects")?;
            for (i, item) in items.iter().enumerate() {
                cfg.interfaces.push(self.interface(item, &ctx.index(i), i)?);
            }
            self.distinct_backends(items, &ctx, &cfg.interfaces)?;
        }
        if let Some((node, ctx)) = f.get("gateway") {
            let gw = self.ipv4(node, &ctx)?;
            self.unicast(IpAddr::V4(gw), &ctx)?;
            cfg.gateway = Some(gw);
        }
        if let Some((node, ctx)) = f.get("gateway6") {
            let gw = self.ipv6(node, &ctx)?;
            self.unicast(IpAddr::V6(gw), &ctx)?;
            cfg.gateway6 = Some(gw);
        }
        if let Some((node, ctx)) = f.get("nameserver") {
            cfg.nameservers = self.nameservers(node, &ctx)?;
        }
        if let Some((node, ctx)) = f.get("debug") {
            let value = self.scalar(node, &ctx, true, "a number, a string or a boolean")?;
            let n = Validator::unsigned(value, Radix::Auto)
                .and_then(|n| u32::try_from(n).map_err(|_| "is larger than 32 bits".into()))
                .map_err(|why| ConfigError::BadNumber {
                    at: self.at(&ctx),
                    value: value.text(),
                    why,
                })?;
            cfg.debug = DebugFlags(n);
        }
        if let Some((node, ctx)) = f.get("mount") {
            cfg.mounts = self.mounts(node, &ctx)?;
        }
        if let Some((node, ctx)) = f.get("singlecpu") {
            cfg.single_cpu = self.single_cpu(node, &ctx)?;
        }
        if let Some((node, ctx)) = f.get("sysctl") {
            cfg.sysctls = self.sysctls(node, &ctx)?;
        }
        if let Some((node, ctx)) = f.get("boot_cmdline") {
            cfg.boot_cmdline = self.string(node, &ctx)?.to_string();
        }
        if let Some((node, ctx)) = f.get("dump") {
            for (item, c) in self.list(node, &ctx, &[','])? {
                cfg.dump.push(self.kernel_path(item, &c)?);
            }
        }
        if let Some((node, ctx)) = f.get("delay_main") {
            let us = self.number(node, &ctx, Radix::Decimal, u64::MAX)?;
            cfg.delay_main = Some(Duration::from_micros(us));
        }
        if let Some((node, ctx)) = f.get("log") {
            cfg.log = self.log(node, &ctx)?;
        }
        if let Some((node, ctx)) = f.get("disks") {
            let items = self.array(node, &ctx, "an array of objects")?;
            for (i, item) in items.iter().enumerate() {
                cfg.disks.push(self.disk(item, &ctx.index(i))?);
            }
            self.disks_apart(&cfg, &ctx)?;
        }
        if let Some((node, ctx)) = f.get("routes") {
            let items = self.array(node, &ctx, "an array of objects")?;
            for (i, item) in items.iter().enumerate() {
                let route = self.route(item, &ctx.index(i), &cfg.interfaces)?;
                cfg.routes.push(route);
            }
            self.routes_distinct(&cfg.routes, &ctx)?;
            for (i, route) in cfg.routes.iter().enumerate() {
                if let Some(gw) = route.gateway {
                    self.on_link(
                        &cfg,
                        gw,
                        route.device.as_deref(),
                        &ctx.index(i).path_key("gateway"),
                    )?;
                }
            }
        }
        // The default gateways last: they may be on link through a route.
        // With ip= on the command line the kernel configures addresses
        // itself (DHCP), so the subnets are not known here.
        let kernel_ip = cfg
            .boot_cmdline
            .split_whitespace()
            .any(|p| p.starts_with("ip="));
        if !kernel_ip {
            if let (Some(gw), Some((_, ctx))) = (cfg.gateway, f.get("gateway")) {
                self.on_link(&cfg, IpAddr::V4(gw), None, &ctx)?;
            }
            if let (Some(gw), Some((_, ctx))) = (cfg.gateway6, f.get("gateway6")) {
                self.on_link(&cfg, IpAddr::V6(gw), None, &ctx)?;
            }
        }
        Ok(cfg)
    }
}
