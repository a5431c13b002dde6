//! From the merged JSON tree to a [`Config`]: every key checked against the
//! schema, every value parsed into its type, cross-field rules enforced,
//! host files looked at. Every problem found is returned, each with its
//! JSON path or variable; nothing is skipped or defaulted in its place.
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

use std::cell::RefCell;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use super::env;
use super::error::{ConfigError, ConfigErrors, JsonPath, Location};
use super::node::{Member, Node, Origin};
use super::types::{Config, Disk, Route};
use schema::{Fields, TOP};
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

/// Turns the merged tree into a [`Config`], or into every problem found.
pub(crate) struct Validator<'a> {
    /// The config file, for error locations.
    pub file: Option<&'a Path>,
    /// Relative host paths are resolved against this directory.
    pub base: &'a Path,
    /// What was found wrong so far, in the order checked.
    errors: RefCell<Vec<ConfigError>>,
}

impl<'a> Validator<'a> {
    pub(crate) fn new(file: Option<&'a Path>, base: &'a Path) -> Validator<'a> {
        Validator {
            file,
            base,
            errors: RefCell::new(Vec::new()),
        }
    }

    /// Records an error; validation goes on with the next setting.
    fn report(&self, e: ConfigError) {
        self.errors.borrow_mut().push(e);
    }

    /// The value, or `None` with its error recorded.
    fn ok<T>(&self, r: Result<T, ConfigError>) -> Option<T> {
        r.map_err(|e| self.report(e)).ok()
    }

    /// How many errors were recorded so far.
    fn error_count(&self) -> usize {
        self.errors.borrow().len()
    }

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

    /// Validates the whole document: every error found, or the config.
    pub(crate) fn config(&self, root: &Node) -> Result<Config, ConfigErrors> {
        let cfg = self.document(root);
        match ConfigErrors::new(self.errors.take()) {
            Some(errors) => Err(errors),
            None => Ok(cfg),
        }
    }

    /// Each top-level setting is checked on its own, so one bad value
    /// does not hide the next. A check across settings (two interfaces on
    /// one tap, a gateway on a link) runs over the ones that are valid;
    /// one that needs every interface and route (on-link) runs only when
    /// they all are, so a typo in an address is not reported twice.
    fn document(&self, root: &Node) -> Config {
        let top = Ctx {
            path: JsonPath::root(),
            origin: Origin::Json,
        };
        let mut cfg = Config::default();
        let Some(f) = self.ok(self.object(root, &top, &TOP)) else {
            return cfg;
        };
        let mut all_valid = true;

        // Every element of "interfaces" is eth<i>, valid or not: routes
        // name them so.
        let mut iface_names = Vec::new();
        if let Some((node, ctx)) = f.get("interfaces") {
            let before = self.error_count();
            if let Some(items) = self.ok(self.array(node, &ctx, "an array of objects")) {
                let mut valid = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    iface_names.push(format!("eth{i}"));
                    if let Some(iface) = self.interface(item, &ctx.index(i), i) {
                        valid.push((i, iface));
                    }
                }
                self.distinct_backends(items, &ctx, &valid);
                cfg.interfaces = valid.into_iter().map(|(_, iface)| iface).collect();
            }
            all_valid &= self.error_count() == before;
        }
        if let Some((node, ctx)) = f.get("gateway") {
            cfg.gateway = self.ok(self.ipv4(node, &ctx).and_then(|gw| {
                self.unicast(IpAddr::V4(gw), &ctx)?;
                Ok(gw)
            }));
        }
        if let Some((node, ctx)) = f.get("gateway6") {
            cfg.gateway6 = self.ok(self.ipv6(node, &ctx).and_then(|gw| {
                self.unicast(IpAddr::V6(gw), &ctx)?;
                Ok(gw)
            }));
        }
        if let Some((node, ctx)) = f.get("nameserver") {
            cfg.nameservers = self.nameservers(node, &ctx);
        }
        if let Some((node, ctx)) = f.get("debug") {
            cfg.debug = self.ok(self.debug(node, &ctx)).unwrap_or_default();
        }
        if let Some((node, ctx)) = f.get("mount") {
            cfg.mounts = self.mounts(node, &ctx);
        }
        if let Some((node, ctx)) = f.get("singlecpu") {
            cfg.single_cpu = self.ok(self.single_cpu(node, &ctx)).unwrap_or_default();
        }
        if let Some((node, ctx)) = f.get("sysctl") {
            cfg.sysctls = self.sysctls(node, &ctx);
        }
        if let Some((node, ctx)) = f.get("boot_cmdline") {
            match self.ok(self.string(node, &ctx)) {
                Some(s) => cfg.boot_cmdline = s.to_string(),
                None => all_valid = false,
            }
        }
        if let Some((node, ctx)) = f.get("dump") {
            cfg.dump = self.dump(node, &ctx);
        }
        if let Some((node, ctx)) = f.get("mode") {
            match self.ok(self.mode(node, &ctx)) {
                Some(m) => cfg.mode = m,
                None => all_valid = false,
            }
        }
        if let Some((node, ctx)) = f.get("delay_main") {
            cfg.delay_main = self
                .ok(self.number(node, &ctx, Radix::Decimal, u64::MAX))
                .map(Duration::from_micros);
        }
        if let Some((node, ctx)) = f.get("syscalls") {
            cfg.syscalls = self.ok(self.syscalls(node, &ctx)).unwrap_or_default();
        }
        if let Some((node, ctx)) = f.get("log") {
            cfg.log = self.ok(self.log(node, &ctx)).unwrap_or_default();
        }
        if let Some((node, ctx)) = f.get("disks") {
            if let Some(items) = self.ok(self.array(node, &ctx, "an array of objects")) {
                let disks: Vec<(usize, Disk)> = items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, item)| Some((i, self.disk(item, &ctx.index(i))?)))
                    .collect();
                self.disks_apart(&disks, &cfg.mounts, &ctx);
                cfg.disks = disks.into_iter().map(|(_, d)| d).collect();
            }
        }
        let mut routes_at = None;
        if let Some((node, ctx)) = f.get("routes") {
            let before = self.error_count();
            if let Some(items) = self.ok(self.array(node, &ctx, "an array of objects")) {
                let routes: Vec<(usize, Route)> = items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, item)| {
                        Some((i, self.route(item, &ctx.index(i), &iface_names)?))
                    })
                    .collect();
                self.routes_distinct(&routes, &ctx);
                cfg.routes = routes.into_iter().map(|(_, r)| r).collect();
            }
            all_valid &= self.error_count() == before;
            routes_at = Some(ctx);
        }
        if all_valid {
            self.next_hops_on_link(&cfg, &f, routes_at.as_ref());
        }
        cfg
    }

    /// Every next hop (a route's gateway, then the default gateways, which
    /// may be on link through a route) must be on a link. With `ip=` on
    /// the command line the kernel configures addresses itself (DHCP), so
    /// the subnets of the default gateways are not known here.
    fn next_hops_on_link(&self, cfg: &Config, f: &Fields<'_>, routes: Option<&Ctx>) {
        if let Some(ctx) = routes {
            for (i, route) in cfg.routes.iter().enumerate() {
                if let Some(gw) = route.gateway {
                    let at = ctx.index(i).path_key("gateway");
                    self.ok(self.on_link(cfg, gw, route.device.as_deref(), &at));
                }
            }
        }
        let kernel_ip = cfg
            .boot_cmdline
            .split_whitespace()
            .any(|p| p.starts_with("ip="));
        if !kernel_ip {
            if let (Some(gw), Some((_, ctx))) = (cfg.gateway, f.get("gateway")) {
                self.ok(self.on_link(cfg, IpAddr::V4(gw), None, &ctx));
            }
            if let (Some(gw), Some((_, ctx))) = (cfg.gateway6, f.get("gateway6")) {
                self.ok(self.on_link(cfg, IpAddr::V6(gw), None, &ctx));
            }
        }
    }
}
