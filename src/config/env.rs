//! The `LKL_HIJACK_*` environment variables, as LKL's hijack reads them.
//!
//! Each variable becomes the JSON member LKL maps it to, marked with the
//! variable's name, so the same validation runs on both sources and an
//! error names the variable. The interface variables describe one
//! interface, `interfaces[0]`.

use std::collections::BTreeMap;
use std::ffi::OsString;

use super::error::{ConfigError, ConfigWarning, Location, Suggestion};
use super::node::{Member, Node, Origin};
use super::suggest;

/// Where a variable's value goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// A top-level key.
    Top(&'static str),
    /// A key of the one environment interface.
    Interface(&'static str),
    /// Handled by hand (config file, check mode, obsolete tap, zpoline).
    Special,
}

/// Every variable we read, in the order their members are built.
const VARS: &[(&str, Scope)] = &[
    ("LKL_HIJACK_CONFIG_FILE", Scope::Special),
    ("LKL_HIJACK_CHECK_CONFIG", Scope::Special),
    ("LKL_HIJACK_SERVER", Scope::Special),
    ("LKL_HIJACK_ZPOLINE", Scope::Special),
    ("LKL_HIJACK_NET_TAP", Scope::Special),
    ("LKL_HIJACK_NET_IFTYPE", Scope::Interface("type")),
    ("LKL_HIJACK_NET_IFPARAMS", Scope::Interface("param")),
    ("LKL_HIJACK_NET_MTU", Scope::Interface("mtu")),
    ("LKL_HIJACK_NET_IP", Scope::Interface("ip")),
    ("LKL_HIJACK_NET_NETMASK_LEN", Scope::Interface("masklen")),
    ("LKL_HIJACK_NET_IPV6", Scope::Interface("ipv6")),
    ("LKL_HIJACK_NET_NETMASK6_LEN", Scope::Interface("masklen6")),
    ("LKL_HIJACK_NET_IFGATEWAY", Scope::Interface("ifgateway")),
    ("LKL_HIJACK_NET_IFGATEWAY6", Scope::Interface("ifgateway6")),
    ("LKL_HIJACK_NET_MAC", Scope::Interface("mac")),
    ("LKL_HIJACK_NET_NEIGHBOR", Scope::Interface("neigh")),
    ("LKL_HIJACK_NET_QDISC", Scope::Interface("qdisc")),
    ("LKL_HIJACK_OFFLOAD", Scope::Interface("offload")),
    ("LKL_HIJACK_NET_DAD", Scope::Interface("dad")),
    ("LKL_HIJACK_NET_GATEWAY", Scope::Top("gateway")),
    ("LKL_HIJACK_NET_GATEWAY6", Scope::Top("gateway6")),
    ("LKL_HIJACK_DEBUG", Scope::Top("debug")),
    ("LKL_HIJACK_MOUNT", Scope::Top("mount")),
    ("LKL_HIJACK_SINGLE_CPU", Scope::Top("singlecpu")),
    ("LKL_HIJACK_SYSCTL", Scope::Top("sysctl")),
    ("LKL_HIJACK_BOOT_CMDLINE", Scope::Top("boot_cmdline")),
    ("LKL_HIJACK_DUMP", Scope::Top("dump")),
    // Ours: LKL has these keys in JSON only, or not at all.
    ("LKL_HIJACK_DELAY_MAIN", Scope::Top("delay_main")),
    ("LKL_HIJACK_MODE", Scope::Top("mode")),
    ("LKL_HIJACK_NAMESERVER", Scope::Top("nameserver")),
    ("LKL_HIJACK_LOG", Scope::Top("log")),
    ("LKL_HIJACK_SYSCALLS", Scope::Top("syscalls")),
    // Read by the system-call tier itself (src/hijack/tier/rewrite.rs).
    ("LKL_HIJACK_REWRITE", Scope::Special),
    // Read by the system-call tier itself (src/hijack/tier/arm.rs).
    ("LKL_HIJACK_XSAVE", Scope::Special),
];

/// Variables LKL once had; setting one is an error that says what replaced it.
const REMOVED: &[(&str, &str)] = &[
    (
        "LKL_HIJACK_MEMSIZE",
        "it was removed from LKL; put mem=<size> in LKL_HIJACK_BOOT_CMDLINE",
    ),
    (
        "LKL_HIJACK_NET_IFNAME",
        "it was renamed; use LKL_HIJACK_NET_IFPARAMS",
    ),
];

/// The variable that sets interface key `key`.
pub(crate) fn interface_var(key: &str) -> Option<&'static str> {
    VARS.iter().find_map(|(var, scope)| match scope {
        Scope::Interface(k) if *k == key => Some(*var),
        _ => None,
    })
}

/// The variable that sets top-level key `key`.
pub(crate) fn top_var(key: &str) -> Option<&'static str> {
    VARS.iter().find_map(|(var, scope)| match scope {
        Scope::Top(k) if *k == key => Some(*var),
        _ => None,
    })
}

/// What the environment says.
#[derive(Debug, Default)]
pub(crate) struct EnvConfig {
    /// The top-level object (with an `interfaces` member holding the one
    /// environment interface, if any interface variable is set).
    pub members: Vec<Member>,
    /// `LKL_HIJACK_CONFIG_FILE`, if set.
    pub config_file: Option<OsString>,
    /// The interface variables that were set.
    pub interface_vars: Vec<&'static str>,
    /// Warnings to pass on.
    pub warnings: Vec<ConfigWarning>,
    /// What is wrong with the variables (each variable's own problem;
    /// their values are checked with the rest of the config).
    pub errors: Vec<ConfigError>,
    /// False if `LKL_HIJACK_CONFIG_FILE` is set but unusable (empty or
    /// not a name): then no file is read at all.
    pub file_ok: bool,
}

/// Reads the `LKL_HIJACK_*` variables out of `vars`. An empty value counts
/// as unset (`VAR= program` is the shell's way to unset), except for
/// `LKL_HIJACK_CONFIG_FILE`, where it is an error as in LKL. Every
/// problem is collected in [`EnvConfig::errors`], sorted by variable.
pub(crate) fn load<I>(vars: I) -> EnvConfig
where
    I: IntoIterator<Item = (OsString, OsString)>,
{
    // Sorted, so errors come in an order that does not depend on the order
    // the process's environment happens to be in.
    let mut ours: BTreeMap<String, OsString> = BTreeMap::new();
    for (name, value) in vars {
        let name = match name.into_string() {
            Ok(n) => n,
            Err(_) => continue, // not UTF-8, so not one of ours
        };
        if name.starts_with("LKL_HIJACK_") {
            ours.insert(name, value);
        }
    }

    let mut out = EnvConfig {
        file_ok: true,
        ..EnvConfig::default()
    };
    let mut values: BTreeMap<&'static str, String> = BTreeMap::new();
    for (name, value) in ours {
        let var = match VARS.iter().find(|(v, _)| *v == name) {
            Some((v, _)) => *v,
            None => {
                out.errors.push(unknown(&name));
                continue;
            }
        };
        if var == "LKL_HIJACK_CONFIG_FILE" {
            if value.is_empty() {
                out.errors.push(ConfigError::BadValue {
                    at: Location::Env(var),
                    value: String::new(),
                    why: "is empty; unset it, or name a JSON config file".into(),
                });
                out.file_ok = false;
            } else {
                out.config_file = Some(value);
            }
            continue;
        }
        match value.into_string() {
            Ok(value) if !value.is_empty() => {
                values.insert(var, value);
            }
            Ok(_) => {}
            Err(v) => out.errors.push(ConfigError::BadValue {
                at: Location::Env(var),
                value: v.to_string_lossy().into_owned(),
                why: "is not valid UTF-8".into(),
            }),
        }
    }

    if values.contains_key("LKL_HIJACK_ZPOLINE") {
        out.errors.push(ConfigError::Unsupported {
            at: Location::Env("LKL_HIJACK_ZPOLINE"),
            what: "the zpoline front end".into(),
            why: "lkl-hijack interposes libc calls with LD_PRELOAD only; unset LKL_HIJACK_ZPOLINE",
        });
    }

    let mut iface = Vec::new();
    // Which interface was meant is unclear: none is made from the variables.
    let mut tap_conflict = false;
    if let Some(tap) = values.get("LKL_HIJACK_NET_TAP") {
        const TAP: &str = "LKL_HIJACK_NET_TAP";
        let both: Vec<&str> = ["LKL_HIJACK_NET_IFTYPE", "LKL_HIJACK_NET_IFPARAMS"]
            .into_iter()
            .filter(|other| values.contains_key(other))
            .collect();
        if let Some(other) = both.first() {
            tap_conflict = true;
            out.errors.push(ConfigError::Conflict {
                at: Location::Env(TAP),
                why: format!(
                    "{TAP} (obsolete) and {other} are both set; LKL would silently \
                     prefer the tap, so unset one of them"
                ),
            });
        } else {
            iface.push(member("type", "tap".into(), TAP));
            iface.push(member("param", tap.clone(), TAP));
            out.interface_vars.push(TAP);
            out.warnings.push(ConfigWarning::ObsoleteTapVariable);
        }
    }

    for (var, scope) in VARS {
        let value = match values.get(var) {
            Some(v) => v,
            None => continue,
        };
        match scope {
            Scope::Top(key) => out.members.push(member(key, value.clone(), var)),
            Scope::Interface(_) if tap_conflict => {}
            Scope::Interface(key) => {
                iface.push(member(key, value.clone(), var));
                out.interface_vars.push(var);
            }
            Scope::Special => {}
        }
    }

    if !iface.is_empty() {
        // The origin of the array is the variable that makes an interface
        // exist; an error about a missing key there names the key's own
        // variable (see validate.rs).
        out.members.push(Member {
            key: "interfaces".into(),
            value: Node::Array(vec![Node::Object(iface)]),
            origin: Origin::Env("LKL_HIJACK_NET_IFTYPE"),
        });
    }
    out
}

/// True if `LKL_HIJACK_CHECK_CONFIG` is set to a non-empty value in
/// `vars`: the hijack library then checks the config and prints the
/// effective settings instead of running the program.
pub fn check_config_requested<I>(vars: I) -> bool
where
    I: IntoIterator<Item = (OsString, OsString)>,
{
    vars.into_iter()
        .any(|(k, v)| k == "LKL_HIJACK_CHECK_CONFIG" && !v.is_empty())
}

fn member(key: &str, value: String, var: &'static str) -> Member {
    Member {
        key: key.into(),
        value: Node::String(value),
        origin: Origin::Env(var),
    }
}

fn unknown(name: &str) -> ConfigError {
    if let Some((var, why)) = REMOVED.iter().find(|(v, _)| *v == name) {
        return ConfigError::Unsupported {
            at: Location::Env(var),
            what: "this variable".into(),
            why,
        };
    }
    let names: Vec<&'static str> = VARS.iter().map(|(v, _)| *v).collect();
    ConfigError::UnknownEnv {
        var: name.into(),
        suggestion: suggest::nearest(name, &names, &ENV_ALIASES).map(Suggestion::Name),
    }
}

/// Spellings seen in the wild (and in LKL's own docs) that edit distance
/// alone would not connect.
const ENV_ALIASES: [(&str, &str); 4] = [
    ("lkl_hijack_config", "LKL_HIJACK_CONFIG_FILE"),
    ("lkl_hijack_net_gw", "LKL_HIJACK_NET_GATEWAY"),
    ("lkl_hijack_net_neighbour", "LKL_HIJACK_NET_NEIGHBOR"),
    ("lkl_hijack_singlecpu", "LKL_HIJACK_SINGLE_CPU"),
];
