//! The hijack configuration: LKL's JSON config and `LKL_HIJACK_*`
//! environment variables, key for key, validated into a typed [`Config`].
//!
//! # Sources and precedence (as in LKL's hijack init)
//!
//! 1. The `LKL_HIJACK_*` environment variables are read first. The
//!    interface variables (`LKL_HIJACK_NET_IFTYPE`, `..._IFPARAMS`,
//!    `..._IP`, ...) describe one interface, `eth0`.
//! 2. Then a JSON file: the one `LKL_HIJACK_CONFIG_FILE` names, else
//!    `./lkl-hijack.json` if it exists, else none. Each top-level key in the
//!    file replaces the same setting from the environment; an `interfaces`
//!    array replaces the environment's interface (with a warning).
//!
//! [`Config::from_sources`] does both; [`Config::parse_str`] and
//! [`Config::parse_file`] read JSON alone.
//!
//! # Keys
//!
//! Top level: `interfaces`, `gateway`, `gateway6`, `nameserver`, `debug`,
//! `mount`, `singlecpu`, `sysctl`, `boot_cmdline`, `dump`, `delay_main`
//! (all LKL's), and `routes`, `disks`, `log` (ours). Interface:
//! `type`, `param`, `mtu`, `ip`, `masklen`, `ifgateway`, `ipv6`,
//! `masklen6`, `ifgateway6`, `mac`, `neigh`, `qdisc`, `offload` (LKL's),
//! `dad` (ours).
//! A disk: `image`, `fstype`, `partition`, `mount`, `readonly`. A route:
//! `destination`, `gateway`, `device`, `table`, `metric`.
//! `tests/hijack/configs/full.json` uses every one of them.
//!
//! Values may be LKL-style strings (`"1500"`, `"0x883"`) or JSON numbers
//! and booleans. LKL's separated lists (`mount`, `dump`, `neigh`, `qdisc`,
//! `nameserver`) may also be JSON arrays of items, and `sysctl` an object
//! `{"net.ipv4.ip_forward": "1"}`.
//!
//! # Where we differ from LKL, and why
//!
//! - **Errors stop the program, all of them at once.** LKL prints a line
//!   and runs the program on the host's network stack (its init gives up
//!   on the config but not on the program), so a typo passes unnoticed. Here every problem is a
//!   [`ConfigError`] that names the JSON path (with the file) or the
//!   variable; a config's problems come together as [`ConfigErrors`] (a
//!   check that depends on a wrong setting is skipped, so one mistake is
//!   one error), and the hijack library prints them, one per line, and
//!   exits 1. Nothing falls back. A file that is not JSON stops at its
//!   first syntax error.
//! - **Offloads by default.** Without an `offload` key, tap and macvtap
//!   get the best set the backend supports
//!   ([`BackendKind::default_offload`]); LKL offers none. An explicit value,
//!   0 included, is used as given.
//! - **No IPv6 duplicate address detection unless asked for** (`dad`):
//!   the address is usable at once (see `netcfg.rs`).
//! - **Strict values.** LKL reads numbers with `atoi`/`strtol` and ignores
//!   junk (`"1500abc"` is 1500), skips an `ip` without `masklen` (and vice
//!   versa) silently, ignores a /32, reads a MAC with `strtol` per group,
//!   warns and uses 0 for a bad `singlecpu`, and warns and drops `offload`
//!   on `raw`/`vde`. All of these are errors here; /32 is accepted.
//!   Offload bits must be ones LKL's backends implement, with their virtio
//!   dependencies (GUEST_TSO4 needs GUEST_CSUM...).
//! - **Cross-checks LKL leaves to the kernel** (which then fails at run
//!   time, interface by interface): two interfaces on one tap, FIFO, NIC or
//!   fd; an `ifgateway` outside its subnet; a `gateway` not on any link; an
//!   MTU below 1280 with IPv6.
//! - **Unknown keys and variables** are errors with a "did you mean" hint
//!   (LKL stops at unknown keys too, but says only "unexpected key"; it
//!   ignores unknown variables). Duplicate keys are errors (LKL keeps the
//!   last). There is no 300-token limit.
//! - **The environment-only interface works** (it was not linked into the
//!   config in LKL before its pull request #571).
//! - **`./lkl-hijack.json` that exists but cannot be read** is an error;
//!   LKL silently ignores it. `LKL_HIJACK_NET_TAP` (obsolete) together with
//!   `LKL_HIJACK_NET_IFTYPE` is an error; LKL silently prefers the tap.
//! - **Empty variables count as unset** (`VAR= prog`), except an empty
//!   `LKL_HIJACK_CONFIG_FILE`, an error as in LKL.
//! - **Host paths** (`pipe` FIFOs, `macvtap`, `vde`, disk images, the log
//!   file) are resolved against the current directory when the config is
//!   loaded, stored absolute, and checked to exist then.
//! - **sysctl** values are split at the first `=` only (LKL cuts a value
//!   at a second `=`). **nameserver** takes up to 3 validated addresses.
//! - **`debug` bits:** 0x1-0xff (no meaning in LKL beyond "non-zero": the
//!   console), 0x100 (pause at exit) and 0x200 (wait for Enter before
//!   boot) as LKL; 0x400 (LKL's DPDK logging) and higher bits (undefined in
//!   LKL) are errors. `delay_main` and `singlecpu` are honoured as LKL does
//!   (the hijack's `init.rs`); the [`ConfigWarning`]s are printed there.
//! - **Not supported:** `type: "dpdk"` and `LKL_HIJACK_ZPOLINE` (clear
//!   errors). `LKL_HIJACK_MEMSIZE` and `LKL_HIJACK_NET_IFNAME` (long
//!   removed from LKL) are errors saying what replaced them.
//! - **Ours:** `disks`, `routes`, `log`/`LKL_HIJACK_LOG` (where diagnostics
//!   go: `"stderr"` or a file; `debug` still decides whether the kernel
//!   console is shown), `LKL_HIJACK_NAMESERVER`, `LKL_HIJACK_DELAY_MAIN`,
//!   `dad`/`LKL_HIJACK_NET_DAD`, `LKL_HIJACK_CHECK_CONFIG` (check the
//!   config, print [`Config::settings`], run nothing), and the `fd` and
//!   `slirp` backends.

#![forbid(unsafe_code)]

mod env;
mod error;
mod node;
mod show;
mod suggest;
mod types;
mod validate;

#[cfg(test)]
mod tests;

use std::ffi::OsString;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// What describes a network backend belongs to the backends
/// (`virtio/net/backends/spec.rs`); the config re-exports it.
pub use crate::virtio::net::backends::{Backend, BackendKind, SlirpNetwork, SlirpNetwork6};
pub use env::check_config_requested;
pub use error::{ConfigError, ConfigErrors, ConfigWarning, JsonPath, Location, Suggestion};
pub use types::{
    Config, DebugFlags, Disk, Interface, IpNet, Ipv4Net, Ipv6Net, LogTarget, MacAddr, Mode,
    Neighbor, Offload, Qdisc, Route, SingleCpu, Syscalls, Sysctl, TABLE_DEFAULT, TABLE_LOCAL,
    TABLE_MAIN,
};

use node::{Node, SyntaxError};
use validate::{io_why, Validator};

/// The file read when `LKL_HIJACK_CONFIG_FILE` is not set.
pub const DEFAULT_CONFIG_FILE: &str = "lkl-hijack.json";

/// A config file larger than this is refused (a real one is a few KiB).
pub const MAX_CONFIG_FILE_BYTES: u64 = 1 << 20;

impl Config {
    /// Loads the config the way the hijack library does: the process's
    /// `LKL_HIJACK_*` variables, then `LKL_HIJACK_CONFIG_FILE` or
    /// `./lkl-hijack.json`, relative paths against the current directory.
    pub fn from_sources() -> Result<Config, ConfigErrors> {
        // If the current directory is gone, "." still means it for every
        // relative open that follows.
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        Config::from_sources_in(std::env::vars_os(), &cwd)
    }

    /// [`Config::from_sources`] with the environment and the current
    /// directory given (for tests and tools). Every problem is reported:
    /// the variables', then the file's; a file that cannot be read or is
    /// not JSON ends the list (nothing in it can be checked).
    pub fn from_sources_in<I>(vars: I, cwd: &Path) -> Result<Config, ConfigErrors>
    where
        I: IntoIterator<Item = (OsString, OsString)>,
    {
        let env = env::load(vars);
        let errors = env.errors;
        let stop = |errors: Vec<ConfigError>, e: ConfigError| ConfigErrors::from(e).after(errors);
        let file = match &env.config_file {
            _ if !env.file_ok => None,
            Some(name) => {
                let path = cwd.join(name);
                match read_config(&path) {
                    Ok(text) => Some((path, text)),
                    Err(e) => return Err(stop(errors, e)),
                }
            }
            None => {
                let path = cwd.join(DEFAULT_CONFIG_FILE);
                match read_config_if_present(&path) {
                    Ok(text) => text.map(|text| (path, text)),
                    Err(e) => return Err(stop(errors, e)),
                }
            }
        };

        let mut members = env.members;
        let mut warnings = env.warnings;
        let root = match &file {
            None => Node::Object(members),
            Some((path, text)) => match node::parse(text) {
                Err(e) => return Err(stop(errors, syntax_error(e, Some(path)))),
                Ok(Node::Object(file_members)) => {
                    let replaces_iface = file_members.iter().any(|m| m.key == "interfaces");
                    if replaces_iface && !env.interface_vars.is_empty() {
                        warnings.push(ConfigWarning::EnvInterfaceReplaced {
                            file: path.clone(),
                            vars: env.interface_vars.clone(),
                        });
                    }
                    // A key in the file replaces the environment's.
                    members.retain(|m| !file_members.iter().any(|f| f.key == m.key));
                    members.extend(file_members);
                    Node::Object(members)
                }
                // Not an object: validation reports it.
                Ok(other) => other,
            },
        };

        let validator = Validator::new(file.as_ref().map(|(p, _)| p.as_path()), cwd);
        match (validator.config(&root), ConfigErrors::new(errors)) {
            (Ok(mut cfg), None) => {
                cfg.file = file.map(|(p, _)| p);
                cfg.warnings = warnings;
                Ok(cfg)
            }
            (Ok(_), Some(env_errors)) => Err(env_errors),
            (Err(e), env_errors) => {
                Err(e.after(env_errors.map_or_else(Vec::new, |e| e.into_vec())))
            }
        }
    }

    /// Parses and validates JSON text alone (no environment); relative host
    /// paths are resolved against the current directory.
    pub fn parse_str(json: &str) -> Result<Config, ConfigErrors> {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        Config::parse_str_in(json, &cwd)
    }

    /// [`Config::parse_str`] with relative host paths resolved against `base`.
    pub fn parse_str_in(json: &str, base: &Path) -> Result<Config, ConfigErrors> {
        let root = node::parse(json).map_err(|e| syntax_error(e, None))?;
        Validator::new(None, base).config(&root)
    }

    /// Reads, parses and validates one JSON file (no environment); relative
    /// host paths are resolved against the current directory.
    pub fn parse_file(path: &Path) -> Result<Config, ConfigErrors> {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        let text = read_config(path)?;
        let root = node::parse(&text).map_err(|e| syntax_error(e, Some(path)))?;
        let mut cfg = Validator::new(Some(path), &cwd).config(&root)?;
        cfg.file = Some(path.to_path_buf());
        Ok(cfg)
    }

    /// The config as JSON that [`Config::parse_str`] reads back to an equal
    /// `Config` (paths absolute, lists as arrays, `sysctl` as an object,
    /// defaults left out). For showing the effective configuration.
    pub fn to_json(&self) -> Value {
        let mut top = Map::new();
        let strings =
            |items: Vec<String>| Value::Array(items.into_iter().map(Value::String).collect());
        if !self.interfaces.is_empty() {
            top.insert(
                "interfaces".into(),
                Value::Array(self.interfaces.iter().map(interface_json).collect()),
            );
        }
        if let Some(gw) = self.gateway {
            top.insert("gateway".into(), gw.to_string().into());
        }
        if let Some(gw) = self.gateway6 {
            top.insert("gateway6".into(), gw.to_string().into());
        }
        if !self.nameservers.is_empty() {
            let ns = self.nameservers.iter().map(ToString::to_string).collect();
            top.insert("nameserver".into(), strings(ns));
        }
        if self.debug.console() {
            top.insert("debug".into(), format!("{:#x}", self.debug.0).into());
        }
        if !self.mounts.is_empty() {
            top.insert("mount".into(), strings(self.mounts.clone()));
        }
        if self.syscalls != Syscalls::Libc {
            top.insert("syscalls".into(), self.syscalls.word().into());
        }
        if self.single_cpu != SingleCpu::Off {
            top.insert(
                "singlecpu".into(),
                self.single_cpu.number().to_string().into(),
            );
        }
        if !self.sysctls.is_empty() {
            let map = self
                .sysctls
                .iter()
                .map(|s| (s.key.clone(), Value::String(s.value.clone())))
                .collect();
            top.insert("sysctl".into(), Value::Object(map));
        }
        if !self.boot_cmdline.is_empty() {
            top.insert("boot_cmdline".into(), self.boot_cmdline.clone().into());
        }
        if !self.dump.is_empty() {
            top.insert("dump".into(), strings(self.dump.clone()));
        }
        if self.mode != Mode::Tree {
            top.insert("mode".into(), self.mode.name().into());
        }
        if let Some(d) = self.delay_main {
            let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
            top.insert("delay_main".into(), us.into());
        }
        if let LogTarget::File(path) = &self.log {
            top.insert("log".into(), path.to_string_lossy().into_owned().into());
        }
        if !self.disks.is_empty() {
            let disks = self.disks.iter().map(disk_json).collect();
            top.insert("disks".into(), Value::Array(disks));
        }
        if !self.routes.is_empty() {
            let routes = self.routes.iter().map(route_json).collect();
            top.insert("routes".into(), Value::Array(routes));
        }
        Value::Object(top)
    }
}

fn interface_json(i: &Interface) -> Value {
    let mut o = Map::new();
    o.insert("type".into(), i.backend.kind().name().into());
    if let Some(p) = i.backend.param() {
        o.insert("param".into(), p.into());
    }
    if let Some(mtu) = i.mtu {
        o.insert("mtu".into(), mtu.into());
    }
    if let Some(n) = i.ipv4 {
        o.insert("ip".into(), n.addr().to_string().into());
        o.insert("masklen".into(), n.prefix().into());
    }
    if let Some(gw) = i.ifgateway {
        o.insert("ifgateway".into(), gw.to_string().into());
    }
    if let Some(n) = i.ipv6 {
        o.insert("ipv6".into(), n.addr().to_string().into());
        o.insert("masklen6".into(), n.prefix().into());
    }
    if let Some(gw) = i.ifgateway6 {
        o.insert("ifgateway6".into(), gw.to_string().into());
    }
    if let Some(mac) = i.mac {
        o.insert("mac".into(), mac.to_string().into());
    }
    if !i.neighbors.is_empty() {
        let n = i
            .neighbors
            .iter()
            .map(|n| Value::String(format!("{}|{}", n.ip, n.mac)))
            .collect();
        o.insert("neigh".into(), Value::Array(n));
    }
    if !i.qdiscs.is_empty() {
        let q = i
            .qdiscs
            .iter()
            .map(|q| Value::String(format!("root|{}", q.kind)))
            .collect();
        o.insert("qdisc".into(), Value::Array(q));
    }
    // Always where the backend takes offloads: without the key the
    // backend's default applies, which an explicit 0 must not become.
    if i.backend.kind().supports_offload() {
        o.insert("offload".into(), format!("{:#x}", i.offload.bits()).into());
    }
    if i.dad {
        o.insert("dad".into(), true.into());
    }
    Value::Object(o)
}

fn disk_json(d: &Disk) -> Value {
    let mut o = Map::new();
    o.insert(
        "image".into(),
        d.image.to_string_lossy().into_owned().into(),
    );
    if let Some(fs) = &d.fstype {
        o.insert("fstype".into(), fs.clone().into());
    }
    o.insert("partition".into(), d.partition.into());
    if let Some(m) = &d.mount {
        o.insert("mount".into(), m.clone().into());
    }
    o.insert("readonly".into(), d.readonly.into());
    Value::Object(o)
}

fn route_json(r: &Route) -> Value {
    let mut o = Map::new();
    o.insert("destination".into(), r.destination.to_string().into());
    if let Some(gw) = r.gateway {
        o.insert("gateway".into(), gw.to_string().into());
    }
    if let Some(dev) = &r.device {
        o.insert("device".into(), dev.clone().into());
    }
    o.insert("table".into(), r.table.into());
    if let Some(m) = r.metric {
        o.insert("metric".into(), m.into());
    }
    Value::Object(o)
}

fn syntax_error(e: SyntaxError, file: Option<&Path>) -> ConfigError {
    ConfigError::Syntax {
        file: file.map(Path::to_path_buf),
        line: e.line,
        column: e.column,
        message: e.message,
    }
}

fn read_error(path: &Path, why: String) -> ConfigError {
    ConfigError::ReadFile {
        file: path.to_path_buf(),
        why,
    }
}

/// Reads a config file that must exist.
fn read_config(path: &Path) -> Result<String, ConfigError> {
    let file = File::open(path).map_err(|e| read_error(path, io_why(&e)))?;
    read_open_config(path, file)
}

/// Reads `./lkl-hijack.json`: absent is fine, anything else wrong is not.
fn read_config_if_present(path: &Path) -> Result<Option<String>, ConfigError> {
    match File::open(path) {
        Ok(file) => read_open_config(path, file).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(read_error(path, io_why(&e))),
    }
}

fn read_open_config(path: &Path, file: File) -> Result<String, ConfigError> {
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| read_error(path, io_why(&e)))?;
    if u64::try_from(bytes.len()).map_or(true, |n| n > MAX_CONFIG_FILE_BYTES) {
        return Err(read_error(
            path,
            format!("is larger than {MAX_CONFIG_FILE_BYTES} bytes"),
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        read_error(
            path,
            format!(
                "is not UTF-8 text (bad byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}
