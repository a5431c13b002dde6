//! The keys each kind of object has (the top level, an interface, a disk,
//! a route), the hints for near misses, and the check of an object's keys
//! against them: unknown and duplicate keys.

use super::{Ctx, Validator};
use crate::config::error::{ConfigError, Suggestion};
use crate::config::node::{Member, Node};
use crate::config::suggest;

/// The keys of one kind of object, and the hints for near misses.
pub(super) struct Schema {
    keys: &'static [&'static str],
    /// Synonyms (lower case) that edit distance would not find.
    aliases: &'static [(&'static str, &'static str)],
    /// Keys of other objects, and where they belong.
    elsewhere: &'static [(&'static [&'static str], &'static str)],
}

pub(super) const TOP_KEYS: &[&str] = &[
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
    "mode",
    "routes",
    "disks",
    "log",
    "syscalls",
];

pub(super) const INTERFACE_KEYS: &[&str] = &[
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
    "dad",
];

pub(super) const DISK_KEYS: &[&str] = &["image", "fstype", "partition", "mount", "readonly"];

pub(super) const ROUTE_KEYS: &[&str] = &["destination", "gateway", "device", "table", "metric"];

pub(super) const IN_INTERFACES: &str = "inside an element of \"interfaces\"";

pub(super) const TOP: Schema = Schema {
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

pub(super) const INTERFACE: Schema = Schema {
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
        ("accept_dad", "dad"),
        ("nodad", "dad"),
    ],
    elsewhere: &[(TOP_KEYS, "at the top level")],
};

pub(super) const DISK: Schema = Schema {
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

pub(super) const ROUTE: Schema = Schema {
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

/// The members of one object, after the key checks.
pub(super) struct Fields<'n> {
    ctx: Ctx,
    pub(super) found: Vec<(&'static str, &'n Member)>,
    /// The keys that unknown keys look like a misspelling of.
    misspelled: Vec<&'static str>,
}

impl<'n> Fields<'n> {
    pub(super) fn get(&self, key: &str) -> Option<(&'n Node, Ctx)> {
        self.found
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, m)| (&m.value, self.ctx.member(m)))
    }

    /// True if `key` is absent and no unknown key looks like a misspelling
    /// of it (that one is reported already: a "missing" error on top
    /// would say the same thing twice).
    pub(super) fn missing(&self, key: &str) -> bool {
        self.get(key).is_none() && !self.misspelled.contains(&key)
    }
}

impl Validator<'_> {
    /// The members of an object whose keys are in `schema`. Each unknown
    /// or repeated key is reported and left out; the rest are returned.
    pub(super) fn object<'n>(
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
        let mut misspelled = Vec::new();
        for m in members {
            let Some(key) = schema.keys.iter().find(|k| **k == m.key) else {
                let suggestion = suggestion(&m.key, schema);
                if let Some(Suggestion::Name(name)) = suggestion {
                    misspelled.push(name);
                }
                self.report(ConfigError::UnknownKey {
                    at: self.at(ctx),
                    key: m.key.clone(),
                    suggestion,
                });
                continue;
            };
            if found.iter().any(|(k, _)| k == key) {
                self.report(ConfigError::DuplicateKey {
                    at: self.at(&ctx.member(m)),
                    key: m.key.clone(),
                });
                continue;
            }
            found.push((key, m));
        }
        Ok(Fields {
            ctx: ctx.clone(),
            found,
            misspelled,
        })
    }
}

pub(super) fn suggestion(key: &str, schema: &Schema) -> Option<Suggestion> {
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
