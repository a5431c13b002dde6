//! From the merged JSON tree to a [`Config`]: every key checked against the
//! schema, every value parsed into its type, cross-field rules enforced,
//! host files looked at. The first problem found is returned; nothing is
//! skipped or defaulted in its place.
//!
//! Values may be written as LKL writes them (strings: `"1500"`, `"0x883"`)
//! or as JSON numbers and booleans. Numbers in strings follow LKL's base:
//! strtol base 0 (`0x` hex, leading `0` octal) for `debug` and `offload`,
//! decimal elsewhere; unlike LKL, trailing junk is an error.

use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::FileTypeExt;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use super::env;
use super::error::{ConfigError, JsonPath, Location, Suggestion};
use super::node::{Member, Node, Number, Origin};
use super::suggest;
use super::types::*;
use crate::virtio::net::backends::SlirpNetwork;

/// The keys of one kind of object, and the hints for near misses.
struct Schema {
    keys: &'static [&'static str],
    /// Synonyms (lower case) that edit distance would not find.
    aliases: &'static [(&'static str, &'static str)],
    /// Keys of other objects, and where they belong.
    elsewhere: &'static [(&'static [&'static str], &'static str)],
}

const TOP_KEYS: &[&str] = &[
    "interfaces",
    "gateway",
    "gateway6",
    "nameserver",
    "debug",
    "mount",
    "singlecpu",
    "sysctl",
    "boot_cmdline",
    "dump",
    "delay_main",
    "routes",
    "disks",
    "log",
];

const INTERFACE_KEYS: &[&str] = &[
    "type",
    "param",
    "mtu",
    "ip",
    "masklen",
    "ifgateway",
    "ipv6",
    "masklen6",
    "ifgateway6",
    "mac",
    "neigh",
    "qdisc",
    "offload",
];

const DISK_KEYS: &[&str] = &["image", "fstype", "partition", "mount", "readonly"];

const ROUTE_KEYS: &[&str] = &["destination", "gateway", "device", "table", "metric"];

const IN_INTERFACES: &str = "inside an element of \"interfaces\"";

const TOP: Schema = Schema {
    keys: TOP_KEYS,
    aliases: &[
        ("gateways", "gateway"),
        ("gw", "gateway"),
        ("gw6", "gateway6"),
        ("dns", "nameserver"),
        ("nameservers", "nameserver"),
        ("resolver", "nameserver"),
        ("cmdline", "boot_cmdline"),
        ("bootargs", "boot_cmdline"),
        ("single_cpu", "singlecpu"),
        ("delay", "delay_main"),
        ("logfile", "log"),
        ("log_file", "log"),
        ("disk", "disks"),
        ("route", "routes"),
        ("interface", "interfaces"),
        ("ifaces", "interfaces"),
        ("netdevs", "interfaces"),
    ],
    elsewhere: &[(INTERFACE_KEYS, IN_INTERFACES)],
};

const INTERFACE: Schema = Schema {
    keys: INTERFACE_KEYS,
    aliases: &[
        ("iftype", "type"),
        ("backend", "type"),
        ("ifparams", "param"),
        ("params", "param"),
        ("ifname", "param"),
        ("tap", "param"),
        ("ipv4", "ip"),
        ("addr", "ip"),
        ("address", "ip"),
        ("netmask_len", "masklen"),
        ("netmask-len", "masklen"),
        ("netmasklen", "masklen"),
        ("netmask", "masklen"),
        ("prefix", "masklen"),
        ("prefixlen", "masklen"),
        ("prefix_len", "masklen"),
        ("netmask6_len", "masklen6"),
        ("netmask6-len", "masklen6"),
        ("prefix6", "masklen6"),
        ("prefixlen6", "masklen6"),
        ("gateway", "ifgateway"),
        ("gateway6", "ifgateway6"),
        ("hwaddr", "mac"),
        ("macaddr", "mac"),
        ("mac_address", "mac"),
        ("neighbor", "neigh"),
        ("neighbors", "neigh"),
        ("neighbour", "neigh"),
        ("neighbours", "neigh"),
        ("offloads", "offload"),
    ],
    elsewhere: &[(TOP_KEYS, "at the top level")],
};

const DISK: Schema = Schema {
    keys: DISK_KEYS,
    aliases: &[
        ("file", "image"),
        ("path", "image"),
        ("type", "fstype"),
        ("fs", "fstype"),
        ("part", "partition"),
        ("mountpoint", "mount"),
        ("mount_point", "mount"),
        ("ro", "readonly"),
        ("read_only", "readonly"),
    ],
    elsewhere: &[],
};

const ROUTE: Schema = Schema {
    keys: ROUTE_KEYS,
    aliases: &[
        ("dst", "destination"),
        ("dest", "destination"),
        ("to", "destination"),
        ("via", "gateway"),
        ("gw", "gateway"),
        ("dev", "device"),
        ("interface", "device"),
        ("priority", "metric"),
    ],
    elsewhere: &[],
};

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

/// The members of one object, after the key checks.
struct Fields<'n> {
    ctx: Ctx,
    found: Vec<(&'static str, &'n Member)>,
}

impl<'n> Fields<'n> {
    fn get(&self, key: &str) -> Option<(&'n Node, Ctx)> {
        self.found
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, m)| (&m.value, self.ctx.member(m)))
    }
}

/// A scalar value, whatever JSON type carried it.
#[derive(Debug, Clone, Copy)]
enum Scalar<'n> {
    Str(&'n str),
    Num(Number),
    Bool(bool),
}

impl Scalar<'_> {
    fn text(&self) -> String {
        match self {
            Scalar::Str(s) => (*s).to_string(),
            Scalar::Num(n) => n.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

/// How a number in a string is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Radix {
    /// strtol base 0: `0x` hex, leading `0` octal, else decimal.
    Auto,
    Decimal,
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

    // ---- objects and scalars --------------------------------------------

    fn object<'n>(
        &self,
        node: &'n Node,
        ctx: &Ctx,
        schema: &Schema,
    ) -> Result<Fields<'n>, ConfigError> {
        let members = match node {
            Node::Object(m) => m,
            other => return Err(self.wrong_type(other, ctx, "an object")),
        };
        let mut found: Vec<(&'static str, &'n Member)> = Vec::new();
        for m in members {
            let key = match schema.keys.iter().find(|k| **k == m.key) {
                Some(k) => *k,
                None => {
                    return Err(ConfigError::UnknownKey {
                        at: self.at(ctx),
                        key: m.key.clone(),
                        suggestion: suggestion(&m.key, schema),
                    })
                }
            };
            if found.iter().any(|(k, _)| *k == key) {
                return Err(ConfigError::DuplicateKey {
                    at: self.at(&ctx.member(m)),
                    key: m.key.clone(),
                });
            }
            found.push((key, m));
        }
        Ok(Fields {
            ctx: ctx.clone(),
            found,
        })
    }

    fn array<'n>(
        &self,
        node: &'n Node,
        ctx: &Ctx,
        expected: &'static str,
    ) -> Result<&'n [Node], ConfigError> {
        match node {
            Node::Array(items) => Ok(items),
            other => Err(self.wrong_type(other, ctx, expected)),
        }
    }

    /// A string without NUL bytes (they would cut the C strings it becomes).
    fn string<'n>(&self, node: &'n Node, ctx: &Ctx) -> Result<&'n str, ConfigError> {
        match node {
            Node::String(s) => self.no_nul(s, ctx).map(|()| s.as_str()),
            other => Err(self.wrong_type(other, ctx, "a string")),
        }
    }

    fn no_nul(&self, s: &str, ctx: &Ctx) -> Result<(), ConfigError> {
        if s.contains('\0') {
            return Err(ConfigError::BadValue {
                at: self.at(ctx),
                value: s.into(),
                why: "contains a NUL character".into(),
            });
        }
        Ok(())
    }

    /// A string, number or boolean (as `expected` says which are allowed).
    fn scalar<'n>(
        &self,
        node: &'n Node,
        ctx: &Ctx,
        bool_ok: bool,
        expected: &'static str,
    ) -> Result<Scalar<'n>, ConfigError> {
        match node {
            Node::String(s) => {
                self.no_nul(s, ctx)?;
                Ok(Scalar::Str(s))
            }
            Node::Number(n) => Ok(Scalar::Num(*n)),
            Node::Bool(b) if bool_ok => Ok(Scalar::Bool(*b)),
            other => Err(self.wrong_type(other, ctx, expected)),
        }
    }

    /// An unsigned number from a string or a JSON number. The error says
    /// why; the caller picks the variant.
    fn unsigned(value: Scalar<'_>, radix: Radix) -> Result<u64, String> {
        match value {
            Scalar::Num(Number::Unsigned(n)) => Ok(n),
            Scalar::Num(Number::Signed(_)) => Err("is negative".into()),
            Scalar::Num(Number::Float(_)) => Err("is not a whole number".into()),
            Scalar::Bool(b) => Ok(u64::from(b)),
            Scalar::Str(s) => parse_unsigned(s.trim(), radix),
        }
    }

    fn number(&self, node: &Node, ctx: &Ctx, radix: Radix, max: u64) -> Result<u64, ConfigError> {
        let value = self.scalar(node, ctx, false, "a number or a string holding one")?;
        let n = Validator::unsigned(value, radix).map_err(|why| ConfigError::BadNumber {
            at: self.at(ctx),
            value: value.text(),
            why,
        })?;
        if n > max {
            return Err(ConfigError::BadNumber {
                at: self.at(ctx),
                value: value.text(),
                why: format!("is too large (at most {max})"),
            });
        }
        Ok(n)
    }

    fn boolean(&self, node: &Node, ctx: &Ctx) -> Result<bool, ConfigError> {
        let value = self.scalar(node, ctx, true, "a boolean")?;
        let b = match value {
            Scalar::Bool(b) => Some(b),
            Scalar::Num(Number::Unsigned(0)) => Some(false),
            Scalar::Num(Number::Unsigned(1)) => Some(true),
            Scalar::Str(s) => match s.trim() {
                "1" | "true" | "yes" => Some(true),
                "0" | "false" | "no" => Some(false),
                _ => None,
            },
            Scalar::Num(_) => None,
        };
        b.ok_or_else(|| ConfigError::BadValue {
            at: self.at(ctx),
            value: value.text(),
            why: "is not a boolean (true, false, 1 or 0)".into(),
        })
    }

    /// A list written LKL's way (one string, items separated by `seps`,
    /// empty items skipped as strtok does) or as a JSON array of strings.
    fn list<'n>(
        &self,
        node: &'n Node,
        ctx: &Ctx,
        seps: &[char],
    ) -> Result<Vec<(&'n str, Ctx)>, ConfigError> {
        match node {
            Node::String(s) => {
                self.no_nul(s, ctx)?;
                Ok(s.split(seps)
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(|item| (item, ctx.clone()))
                    .collect())
            }
            Node::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let c = ctx.index(i);
                    self.string(item, &c).map(|s| (s.trim(), c))
                })
                .collect(),
            other => Err(self.wrong_type(other, ctx, "a string or an array of strings")),
        }
    }

    // ---- addresses ------------------------------------------------------

    fn ipv4(&self, node: &Node, ctx: &Ctx) -> Result<Ipv4Addr, ConfigError> {
        let s = self.string(node, ctx)?;
        self.parse_ipv4(s.trim(), ctx)
    }

    fn parse_ipv4(&self, s: &str, ctx: &Ctx) -> Result<Ipv4Addr, ConfigError> {
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

    fn ipv6(&self, node: &Node, ctx: &Ctx) -> Result<Ipv6Addr, ConfigError> {
        let s = self.string(node, ctx)?;
        self.parse_ipv6(s.trim(), ctx)
    }

    fn parse_ipv6(&self, s: &str, ctx: &Ctx) -> Result<Ipv6Addr, ConfigError> {
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

    fn parse_ip(&self, s: &str, ctx: &Ctx) -> Result<IpAddr, ConfigError> {
        s.parse::<IpAddr>().map_err(|_| ConfigError::BadAddress {
            at: self.at(ctx),
            value: s.into(),
            why: "is not an IPv4 or IPv6 address".into(),
        })
    }

    /// An address that can be a host's own or a next hop: not unspecified,
    /// not multicast, not the IPv4 broadcast address.
    fn unicast(&self, ip: IpAddr, ctx: &Ctx) -> Result<(), ConfigError> {
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

    fn prefix(&self, node: &Node, ctx: &Ctx, max: u8) -> Result<u8, ConfigError> {
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

    fn mac(&self, s: &str, ctx: &Ctx) -> Result<MacAddr, ConfigError> {
        MacAddr::parse(s).map_err(|why| ConfigError::BadMac {
            at: self.at(ctx),
            value: s.into(),
            why,
        })
    }

    // ---- host files -----------------------------------------------------

    fn host_path(&self, s: &str, ctx: &Ctx) -> Result<PathBuf, ConfigError> {
        if s.is_empty() {
            return Err(ConfigError::BadValue {
                at: self.at(ctx),
                value: String::new(),
                why: "is empty; a path is needed".into(),
            });
        }
        self.no_nul(s, ctx)?;
        Ok(self.base.join(s))
    }

    fn file_error(&self, ctx: &Ctx, file: &Path, why: String) -> ConfigError {
        ConfigError::File {
            at: self.at(ctx),
            file: file.to_path_buf(),
            why,
        }
    }

    fn metadata(&self, path: &Path, ctx: &Ctx) -> Result<fs::Metadata, ConfigError> {
        fs::metadata(path).map_err(|e| self.file_error(ctx, path, io_why(&e)))
    }

    /// A disk image: a regular file or a block device we can open in the
    /// mode it will be attached with.
    fn check_image(&self, path: &Path, writable: bool, ctx: &Ctx) -> Result<(), ConfigError> {
        let meta = self.metadata(path, ctx)?;
        let kind = meta.file_type();
        if !kind.is_file() && !kind.is_block_device() {
            return Err(self.file_error(
                ctx,
                path,
                format!("is {}, not a disk image or block device", file_kind(&kind)),
            ));
        }
        fs::OpenOptions::new()
            .read(true)
            .write(writable)
            .open(path)
            .map(drop)
            .map_err(|e| {
                let mode = if writable { "read-write" } else { "read-only" };
                self.file_error(
                    ctx,
                    path,
                    format!("cannot be opened {mode}: {}", io_why(&e)),
                )
            })
    }

    /// A FIFO of the `pipe` backend: it must exist (the peer or the user
    /// makes it beforehand) and not be a directory.
    fn check_fifo(&self, path: &Path, ctx: &Ctx) -> Result<(), ConfigError> {
        if self.metadata(path, ctx)?.is_dir() {
            return Err(self.file_error(ctx, path, "is a directory, not a FIFO".into()));
        }
        Ok(())
    }

    // ---- the document ---------------------------------------------------

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

    fn interface(&self, node: &Node, ctx: &Ctx, index: usize) -> Result<Interface, ConfigError> {
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

    fn missing_type_why(&self, f: &Fields<'_>) -> String {
        match f.found.first() {
            Some((_, m)) => match m.origin {
                Origin::Env(var) => format!("{var} is set and an interface needs a backend type"),
                Origin::Json => format!("every interface needs one: {}", backend_names()),
            },
            None => format!("every interface needs one: {}", backend_names()),
        }
    }

    fn backend(
        &self,
        kind: BackendKind,
        param: Option<(&Node, Ctx)>,
        parent: &Ctx,
    ) -> Result<Backend, ConfigError> {
        let (node, ctx) = match (kind, param) {
            (BackendKind::Slirp, None) => return Ok(Backend::Slirp { param: None }),
            (_, Some(p)) => p,
            (_, None) => {
                return Err(ConfigError::MissingKey {
                    at: self.at_missing(parent, "param"),
                    key: "param",
                    why: format!("the {kind} backend needs {}", param_help(kind)),
                })
            }
        };
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

    /// Two interfaces must not share a tap, a host NIC, a macvtap, a FIFO
    /// or an fd (LKL would fail the second attach at run time and drop the
    /// interface). VDE switches and slirp can be shared.
    fn distinct_backends(
        &self,
        items: &[Node],
        ctx: &Ctx,
        ifaces: &[Interface],
    ) -> Result<(), ConfigError> {
        let mut seen: Vec<(String, usize)> = Vec::new();
        for (i, iface) in ifaces.iter().enumerate() {
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
                    return Err(ConfigError::DuplicateBackend {
                        at: self.at(&param_ctx(i)),
                        first: self.at(&param_ctx(*first)),
                        what: claim,
                    });
                }
                seen.push((claim, i));
            }
        }
        Ok(())
    }

    fn neighbor(&self, entry: &str, ctx: &Ctx) -> Result<Neighbor, ConfigError> {
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

    fn qdisc(&self, entry: &str, ctx: &Ctx) -> Result<Qdisc, ConfigError> {
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

    fn nameservers(&self, node: &Node, ctx: &Ctx) -> Result<Vec<IpAddr>, ConfigError> {
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

    fn mounts(&self, node: &Node, ctx: &Ctx) -> Result<Vec<String>, ConfigError> {
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

    fn single_cpu(&self, node: &Node, ctx: &Ctx) -> Result<SingleCpu, ConfigError> {
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

    fn sysctls(&self, node: &Node, ctx: &Ctx) -> Result<Vec<Sysctl>, ConfigError> {
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

    fn sysctl(&self, key: &str, value: &str, ctx: &Ctx) -> Result<Sysctl, ConfigError> {
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

    /// A path inside the kernel's file system: absolute, no `..`.
    fn kernel_path(&self, s: &str, ctx: &Ctx) -> Result<String, ConfigError> {
        let p = Path::new(s);
        let why = if !p.is_absolute() {
            Some("is not an absolute path (paths here are inside the kernel's file system)")
        } else if p.components().any(|c| c == Component::ParentDir) {
            Some("contains \"..\"")
        } else {
            None
        };
        match why {
            Some(why) => Err(ConfigError::BadValue {
                at: self.at(ctx),
                value: s.into(),
                why: why.into(),
            }),
            None => Ok(s.into()),
        }
    }

    fn log(&self, node: &Node, ctx: &Ctx) -> Result<LogTarget, ConfigError> {
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

    fn disk(&self, node: &Node, ctx: &Ctx) -> Result<Disk, ConfigError> {
        let f = self.object(node, ctx, &DISK)?;
        let readonly = match f.get("readonly") {
            Some((n, c)) => self.boolean(n, &c)?,
            None => false,
        };
        let (image_node, image_ctx) = f.get("image").ok_or_else(|| ConfigError::MissingKey {
            at: self.at(ctx),
            key: "image",
            why: "a disk needs an image file or block device".into(),
        })?;
        let image = self.host_path(self.string(image_node, &image_ctx)?.trim(), &image_ctx)?;
        self.check_image(&image, !readonly, &image_ctx)?;

        let fstype = match f.get("fstype") {
            Some((n, c)) => {
                let s = self.string(n, &c)?.trim();
                fstype_ok(s).map_err(|why| ConfigError::BadValue {
                    at: self.at(&c),
                    value: s.into(),
                    why,
                })?;
                Some(s.to_string())
            }
            None => None,
        };
        let partition = match f.get("partition") {
            // Linux gives a disk at most 256 minors (DISK_MAX_PARTS), so 255
            // partitions; 0 is the whole disk.
            Some((n, c)) => u32::try_from(self.number(n, &c, Radix::Decimal, 255)?).unwrap_or(0),
            None => 0,
        };
        let mount = match f.get("mount") {
            Some((n, c)) => {
                let s = self.kernel_path(self.string(n, &c)?.trim(), &c)?;
                if Path::new(&s).components().all(|c| c == Component::RootDir) {
                    return Err(ConfigError::BadValue {
                        at: self.at(&c),
                        value: s,
                        why: "is the kernel's root; mount the disk on a directory below it".into(),
                    });
                }
                if fstype.is_none() {
                    return Err(ConfigError::MissingKey {
                        at: self.at(ctx),
                        key: "fstype",
                        why: "a disk with a mount point needs its filesystem type".into(),
                    });
                }
                Some(s)
            }
            None => None,
        };
        Ok(Disk {
            image,
            fstype,
            partition,
            mount,
            readonly,
        })
    }

    /// No image attached twice unless every attachment is read-only; no
    /// mount point used twice or over a `mount` pseudo filesystem.
    fn disks_apart(&self, cfg: &Config, ctx: &Ctx) -> Result<(), ConfigError> {
        for (i, d) in cfg.disks.iter().enumerate() {
            let di = ctx.index(i);
            for (j, e) in cfg.disks.iter().enumerate().take(i) {
                if canonical(&d.image) == canonical(&e.image) && !(d.readonly && e.readonly) {
                    return Err(ConfigError::DuplicateBackend {
                        at: self.at(&di.path_key("image")),
                        first: self.at(&ctx.index(j).path_key("image")),
                        what: format!("writable image {}", d.image.display()),
                    });
                }
                if d.mount.is_some() && d.mount == e.mount {
                    return Err(ConfigError::Conflict {
                        at: self.at(&di.path_key("mount")),
                        why: format!(
                            "{} is already the mount point of {}",
                            d.mount.as_deref().unwrap_or_default(),
                            ctx.index(j).path
                        ),
                    });
                }
            }
            if let Some(m) = &d.mount {
                if let Some(fs) = cfg
                    .mounts
                    .iter()
                    .find(|fs| Path::new(m) == Path::new("/").join(fs))
                {
                    return Err(ConfigError::Conflict {
                        at: self.at(&di.path_key("mount")),
                        why: format!("{m} is where \"mount\" puts {fs}"),
                    });
                }
            }
        }
        Ok(())
    }

    fn route(&self, node: &Node, ctx: &Ctx, ifaces: &[Interface]) -> Result<Route, ConfigError> {
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

    fn cidr(&self, s: &str, ctx: &Ctx) -> Result<IpNet, ConfigError> {
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

    fn table(&self, node: &Node, ctx: &Ctx) -> Result<u32, ConfigError> {
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

    fn routes_distinct(&self, routes: &[Route], ctx: &Ctx) -> Result<(), ConfigError> {
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
    fn on_link(
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

fn suggestion(key: &str, schema: &Schema) -> Option<Suggestion> {
    if let Some(name) = suggest::nearest(key, schema.keys, schema.aliases) {
        return Some(Suggestion::Name(name));
    }
    schema.elsewhere.iter().find_map(|(keys, place)| {
        keys.contains(&key).then(|| Suggestion::Elsewhere {
            key: key.into(),
            place,
        })
    })
}

/// Parses an unsigned integer; trailing junk, signs and empty text are
/// errors (LKL's atoi/strtol would take "1500abc" as 1500).
fn parse_unsigned(s: &str, radix: Radix) -> Result<u64, String> {
    if s.is_empty() {
        return Err("is empty; a number is needed".into());
    }
    if s.starts_with('-') {
        return Err("is negative".into());
    }
    let (digits, base, base_name) = match radix {
        Radix::Auto => {
            if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
                (hex, 16, "hexadecimal")
            } else if s.len() > 1 && s.starts_with('0') {
                (&s[1..], 8, "octal (it starts with 0)")
            } else {
                (s, 10, "decimal")
            }
        }
        Radix::Decimal => (s, 10, "decimal"),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(base)) {
        return Err(format!("is not a {base_name} number"));
    }
    u64::from_str_radix(digits, base).map_err(|_| "is too large".into())
}

/// Linux's rule for interface names (`dev_valid_name`): 1 to 15 bytes,
/// not `.` or `..`, no `/`, `:` or white space.
fn ifname_ok(name: &str) -> Result<(), String> {
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

fn fstype_ok(name: &str) -> Result<(), String> {
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

/// The backend types we build, for messages (dpdk is parsed but refused).
fn backend_names() -> String {
    BackendKind::ALL
        .iter()
        .filter(|k| **k != BackendKind::Dpdk)
        .map(|k| k.name())
        .collect::<Vec<_>>()
        .join(", ")
}

fn param_help(kind: BackendKind) -> &'static str {
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

fn is_link_local(ip: Ipv6Addr) -> bool {
    ip.segments()[0] & 0xffc0 == 0xfe80
}

fn canonical(path: &Path) -> PathBuf {
    fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

fn file_kind(t: &fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_file() {
        "a regular file"
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

/// An I/O error in words, without Rust's "(os error N)".
pub(crate) fn io_why(e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::NotFound => "does not exist".into(),
        ErrorKind::PermissionDenied => "permission denied".into(),
        _ => {
            let s = e.to_string();
            match s.find(" (os error") {
                Some(i) => s[..i].to_string(),
                None => s,
            }
        }
    }
}
