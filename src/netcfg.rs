/*!
Network configuration inside the kernel: what LKL's hijack init does after
boot (addresses, routes, neighbours, qdiscs, sysctls, mounts, in LKL's
order), from a validated [`Config`].

Everything goes through the kernel's own interfaces by way of
[`crate::syscall`]: an rtnetlink client of our own ([`Rtnl`]: links,
addresses, routes, rules, neighbours, qdiscs, each with a dump to read it
back) over `AF_NETLINK` sockets, and files under `/proc/sys` and `/etc`.
No host socket is involved and no netlink crate: the messages are built
and parsed in [`wire`], and every reply is parsed as untrusted input.

# Order (LKL's)

[`apply`] does, stopping at the first error:

1. `mount`: each pseudo file system at `/<type>`;
2. `lo` up (LKL brings it up just before);
3. per interface, in config order: MAC (only if the device has another),
   up, MTU, IPv4 address, then for `ifgateway` the policy table
   `2 × ifindex` (rule "from ip/32", the subnet route, a default route via
   the gateway), IPv6 address (and, where the config asks for it, the
   wait for duplicate address detection), then for `ifgateway6` table
   `2 × ifindex + 1` likewise,
   permanent neighbours, the root qdisc;
4. `routes` (ours; before the default gateways, which may be reachable
   only through one of them);
5. `gateway`, `gateway6`: default routes in the main table, replacing one
   already there with the same metric (IPv6 router advertisements install
   one as soon as the link is up, and adding ours next to it failed with
   `EEXIST`);
6. `sysctl`, each written under `/proc/sys` (procfs is mounted if needed);
7. `nameserver`: `/etc/resolv.conf`.

`delay_main` is not ours: the caller sleeps after [`apply`] if it wants to.

# Where we differ from LKL, and why

- **Errors stop.** LKL prints a failure and goes on (and stops configuring
  interfaces at the first one without a device). Here the first failure is
  a [`NetcfgError`] naming the config key, the interface and the kernel's
  errno (with the kernel's own explanation when it gives one), in keeping
  with the config layer's "nothing falls back" rule.
- **IPv6 duplicate address detection is off unless asked for.** LKL adds
  the address and waits, without limit, for `IFA_F_TENTATIVE` to clear (a
  tentative address cannot be bound to): a program started with an `ipv6`
  address waits 1 to 2 s before `main`. We add the config's addresses with
  `IFA_F_NODAD`, usable by the first `bind`; the address is the user's
  statement, as a static address given to `ip addr add ... nodad` is.
  An interface with `"dad": true` (ours) gets LKL's behaviour instead,
  bounded by [`ApplyOptions::dad`] (10 s: a probe takes about 1.3 s
  here), and a failed detection (`IFA_F_DADFAILED`) is an error. Those
  waits come after every interface's addresses are added, so all
  interfaces probe at once (LKL waits interface by interface).
  [`Dad::Skip`] turns detection off even where the config asks for it.
  (Optimistic DAD, RFC 4429, is not used: our kernel is built without
  `CONFIG_IPV6_OPTIMISTIC_DAD`, and a duplicate it found would take the
  address away from a program already running.)
- **Which interface is which** is the caller's: [`apply`] gets pairs of
  (index in `config.interfaces`, kernel interface name), so a device that
  was not attached is simply not listed, and names need not be `eth<i>`.
  A route's `device` is translated the same way.
- **The root qdisc replaces** whatever root qdisc is there (`tc qdisc
  replace`), where LKL's `tc qdisc add` fails on a second run; the kind is
  sent whole (an old LKL sent 2 bytes of it).
- A link-local `gateway6` needs an interface: the only configured one with
  IPv6, else an error (LKL's route ioctl would fail in the kernel).
*/

#![forbid(unsafe_code)]

mod fs;
mod ops;
mod socket;
pub mod wire;

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use crate::config::{Config, IpNet, MacAddr, TABLE_MAIN};
use crate::syscall::Errno;

pub use fs::{ensure_proc, mount_pseudo, read_file, resolv_conf, write_resolv_conf, write_sysctl};
pub use ops::{
    AddrInfo, AddressSpec, DadOutcome, Link, LinkInfo, NeighInfo, NeighborSpec, QdiscInfo,
    RouteInfo, RouteSpec, RuleInfo, RuleSpec,
};
pub use socket::{Reply, Rtnl, REPLY_TIMEOUT};

/// How long [`apply`] waits for IPv6 duplicate address detection by default.
pub const DAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Why network configuration failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetcfgError {
    /// A system call into the kernel failed.
    Syscall {
        /// The call (`socket`, `mount`, `open`...).
        call: &'static str,
        /// On what.
        what: String,
        /// The kernel's errno.
        errno: Errno,
    },
    /// The kernel refused a netlink request.
    Rejected {
        /// The request, in `ip`-like words.
        request: String,
        /// The kernel's errno.
        errno: Errno,
        /// The kernel's explanation (extended ack), if it gave one.
        message: Option<String>,
    },
    /// A reply from the kernel did not parse.
    Malformed {
        /// The request it answered.
        request: String,
        /// What was wrong.
        why: String,
    },
    /// The kernel did not answer in time.
    Timeout {
        /// The request.
        request: String,
        /// How long we waited.
        waited: Duration,
    },
    /// The kernel has no interface of this name.
    NoSuchInterface {
        /// The name asked for.
        name: String,
    },
    /// IPv6 duplicate address detection failed or did not end.
    Dad {
        /// The interface.
        link: Link,
        /// The address.
        addr: Ipv6Addr,
        /// What happened.
        why: String,
    },
    /// An interface pair names a config index that does not exist.
    BadInterfaceIndex {
        /// The index given.
        index: usize,
        /// The kernel interface it was paired with.
        name: String,
        /// How many interfaces the config has.
        count: usize,
    },
    /// Two interface pairs name the same config index.
    DuplicateInterface {
        /// The index.
        index: usize,
    },
    /// A setting names an interface that is not among those configured.
    NotConfigured {
        /// The config's name for it (`eth1`).
        name: String,
    },
    /// A route needs an interface that cannot be worked out.
    NeedsDevice {
        /// The route.
        what: String,
        /// Why none could be picked.
        why: String,
    },
    /// A step of [`apply`] failed: which config key it was applying.
    At {
        /// The key (`interfaces[1].ip`, `routes[0]`, `sysctl.net.ipv4.ip_forward`).
        key: String,
        /// What failed.
        source: Box<NetcfgError>,
    },
}

impl NetcfgError {
    /// The kernel's errno behind this error, if there is one.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            NetcfgError::Syscall { errno, .. } | NetcfgError::Rejected { errno, .. } => {
                Some(*errno)
            }
            NetcfgError::At { source, .. } => source.errno(),
            _ => None,
        }
    }

    /// The config key an [`apply`] error happened at.
    pub fn key(&self) -> Option<&str> {
        match self {
            NetcfgError::At { key, .. } => Some(key),
            _ => None,
        }
    }

    /// The innermost error (without the [`NetcfgError::At`] wrapper).
    pub fn root(&self) -> &NetcfgError {
        match self {
            NetcfgError::At { source, .. } => source.root(),
            e => e,
        }
    }

    fn at(self, key: &str) -> NetcfgError {
        NetcfgError::At {
            key: key.into(),
            source: Box::new(self),
        }
    }
}

impl fmt::Display for NetcfgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetcfgError::Syscall { call, what, errno } => {
                write!(f, "{call} ({what}) failed: {errno}")
            }
            NetcfgError::Rejected {
                request,
                errno,
                message,
            } => {
                write!(f, "{request}: the kernel refused: {errno}")?;
                if let Some(m) = message {
                    write!(f, " ({m})")?;
                }
                Ok(())
            }
            NetcfgError::Malformed { request, why } => {
                write!(f, "{request}: malformed reply from the kernel: {why}")
            }
            NetcfgError::Timeout { request, waited } => {
                write!(f, "{request}: no reply from the kernel within {waited:?}")
            }
            NetcfgError::NoSuchInterface { name } => {
                write!(f, "the kernel has no interface named {name:?}")
            }
            NetcfgError::Dad { link, addr, why } => {
                write!(f, "IPv6 address {addr} on {link}: {why}")
            }
            NetcfgError::BadInterfaceIndex { index, name, count } => write!(
                f,
                "interface {name:?} is paired with interfaces[{index}], but the config has {count}"
            ),
            NetcfgError::DuplicateInterface { index } => {
                write!(
                    f,
                    "interfaces[{index}] is paired with two kernel interfaces"
                )
            }
            NetcfgError::NotConfigured { name } => write!(
                f,
                "interface {name} is not among the interfaces being configured (no device?)"
            ),
            NetcfgError::NeedsDevice { what, why } => write!(f, "{what}: {why}"),
            NetcfgError::At { key, source } => write!(f, "{key}: {source}"),
        }
    }
}

impl std::error::Error for NetcfgError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            NetcfgError::At { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}

/// What to do about IPv6 duplicate address detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dad {
    /// As the config says: an interface with `"dad": true` gets its address
    /// added for detection and a wait of up to this long for it to end
    /// (LKL's behaviour, bounded); every other address is added with
    /// `IFA_F_NODAD`, usable at once.
    Wait(Duration),
    /// Every address with `IFA_F_NODAD`, whatever the config says.
    Skip,
}

/// Choices [`apply_with`] leaves to its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApplyOptions {
    /// IPv6 duplicate address detection.
    pub dad: Dad,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            dad: Dad::Wait(DAD_TIMEOUT),
        }
    }
}

/// One thing [`apply`] does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Mount a pseudo file system at `/<fstype>`.
    Mount {
        /// `proc`, `sysfs`...
        fstype: String,
    },
    /// Bring a link up.
    LinkUp(Link),
    /// Set a link's MAC address.
    SetMac {
        /// The link.
        link: Link,
        /// The address.
        mac: MacAddr,
    },
    /// Set a link's MTU.
    SetMtu {
        /// The link.
        link: Link,
        /// The MTU.
        mtu: u32,
    },
    /// Add an address.
    AddAddress(AddressSpec),
    /// Wait for IPv6 duplicate address detection.
    WaitDad {
        /// The link.
        link: Link,
        /// The address.
        addr: Ipv6Addr,
        /// How long at most.
        timeout: Duration,
    },
    /// Add a policy-routing rule.
    AddRule(RuleSpec),
    /// Add a route.
    AddRoute(RouteSpec),
    /// Add a route, or replace the one with the same destination, table
    /// and metric (`ip route replace`).
    ReplaceRoute(RouteSpec),
    /// Add a permanent neighbour.
    AddNeighbor(NeighborSpec),
    /// Set the root qdisc.
    SetQdisc {
        /// The link.
        link: Link,
        /// `fq`, `fq_codel`, `pfifo`...
        kind: String,
    },
    /// Write a sysctl.
    Sysctl {
        /// The file under `/proc/sys`.
        path: String,
        /// The value.
        value: String,
    },
    /// Write `/etc/resolv.conf`.
    ResolvConf(Vec<IpAddr>),
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Mount { fstype } => write!(f, "mount {fstype} at /{fstype}"),
            Action::LinkUp(l) => write!(f, "set {} up", l.name),
            Action::SetMac { link, mac } => write!(f, "set address {mac} on {}", link.name),
            Action::SetMtu { link, mtu } => write!(f, "set mtu {mtu} on {}", link.name),
            Action::AddAddress(a) => write!(f, "add {a}"),
            Action::WaitDad { link, addr, .. } => {
                write!(f, "wait for DAD of {addr} on {}", link.name)
            }
            Action::AddRule(r) => write!(f, "add {r}"),
            Action::AddRoute(r) => write!(f, "add {r}"),
            Action::ReplaceRoute(r) => write!(f, "replace {r}"),
            Action::AddNeighbor(n) => write!(f, "add {n}"),
            Action::SetQdisc { link, kind } => {
                write!(f, "set root qdisc {kind} on {}", link.name)
            }
            Action::Sysctl { path, value } => write!(f, "write {value:?} to {path}"),
            Action::ResolvConf(ns) => {
                write!(f, "write /etc/resolv.conf ({} nameservers)", ns.len())
            }
        }
    }
}

/// An [`Action`] with the config key it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// `interfaces[0].ip`, `routes[1]`, `gateway6`...
    pub key: String,
    /// What to do.
    pub action: Action,
}

/// The policy-routing table LKL's `ifgateway` uses for `ifindex`.
pub fn ifgateway_table(ifindex: u32) -> u32 {
    ifindex.saturating_mul(2)
}

/// The table of `ifgateway6`.
pub fn ifgateway6_table(ifindex: u32) -> u32 {
    ifindex.saturating_mul(2).saturating_add(1)
}

/// Works out every step of [`apply`], in order, without touching the
/// kernel: `links` pairs each configured interface's index in
/// `config.interfaces` with what the kernel says about it, `lo` is the
/// loopback link.
pub fn plan(
    config: &Config,
    links: &[(usize, LinkInfo)],
    lo: &Link,
    opts: &ApplyOptions,
) -> Result<Vec<Step>, NetcfgError> {
    let mut steps = Vec::new();
    let mut push = |key: String, action: Action| steps.push(Step { key, action });
    // Duplicate address detection runs on every interface at once: the
    // waits come after all the interfaces' addresses are in (routes and
    // rules may name a tentative address), so N interfaces cost one probe
    // time, not N.
    let mut dad_waits: Vec<Step> = Vec::new();

    for (i, fstype) in config.mounts.iter().enumerate() {
        push(
            format!("mount[{i}]"),
            Action::Mount {
                fstype: fstype.clone(),
            },
        );
    }
    push("lo".into(), Action::LinkUp(lo.clone()));

    // Config order, whatever order the pairs came in.
    let mut order: Vec<&(usize, LinkInfo)> = links.iter().collect();
    order.sort_by_key(|(i, _)| *i);
    for pair in order.windows(2) {
        if pair[0].0 == pair[1].0 {
            return Err(NetcfgError::DuplicateInterface { index: pair[0].0 });
        }
    }
    for (i, info) in order.iter().copied() {
        let iface = config
            .interfaces
            .get(*i)
            .ok_or_else(|| NetcfgError::BadInterfaceIndex {
                index: *i,
                name: info.name.clone(),
                count: config.interfaces.len(),
            })?;
        let link = info.link();
        let key = |k: &str| {
            if k.is_empty() {
                format!("interfaces[{i}]")
            } else {
                format!("interfaces[{i}].{k}")
            }
        };
        if let Some(mac) = iface.mac {
            if info.address.as_deref() != Some(&mac.0[..]) {
                push(
                    key("mac"),
                    Action::SetMac {
                        link: link.clone(),
                        mac,
                    },
                );
            }
        }
        push(key(""), Action::LinkUp(link.clone()));
        if let Some(mtu) = iface.mtu {
            push(
                key("mtu"),
                Action::SetMtu {
                    link: link.clone(),
                    mtu,
                },
            );
        }
        if let Some(net) = iface.ipv4 {
            push(
                key("ip"),
                Action::AddAddress(AddressSpec {
                    link: link.clone(),
                    addr: IpNet::V4(net),
                    nodad: false,
                }),
            );
            if let Some(gw) = iface.ifgateway {
                let table = ifgateway_table(link.index);
                let host = IpNet::new(IpAddr::V4(net.addr()), 32);
                let subnet = IpNet::new(IpAddr::V4(net.network()), net.prefix());
                if let (Some(host), Some(subnet)) = (host, subnet) {
                    push(
                        key("ifgateway"),
                        Action::AddRule(RuleSpec {
                            from: host,
                            table,
                            priority: None,
                        }),
                    );
                    push(
                        key("ifgateway"),
                        Action::AddRoute(RouteSpec {
                            destination: subnet,
                            gateway: None,
                            dev: Some(link.clone()),
                            table,
                            metric: None,
                        }),
                    );
                }
                push(
                    key("ifgateway"),
                    Action::AddRoute(RouteSpec {
                        destination: IpNet::DEFAULT_V4,
                        gateway: Some(IpAddr::V4(gw)),
                        dev: Some(link.clone()),
                        table,
                        metric: None,
                    }),
                );
            }
        }
        if let Some(net) = iface.ipv6 {
            // Detection only where the config asks for it (`dad`).
            let wait = match opts.dad {
                Dad::Wait(timeout) if iface.dad => Some(timeout),
                Dad::Wait(_) | Dad::Skip => None,
            };
            push(
                key("ipv6"),
                Action::AddAddress(AddressSpec {
                    link: link.clone(),
                    addr: IpNet::V6(net),
                    nodad: wait.is_none(),
                }),
            );
            if let Some(timeout) = wait {
                dad_waits.push(Step {
                    key: key("ipv6"),
                    action: Action::WaitDad {
                        link: link.clone(),
                        addr: net.addr(),
                        timeout,
                    },
                });
            }
            if let Some(gw) = iface.ifgateway6 {
                let table = ifgateway6_table(link.index);
                let host = IpNet::new(IpAddr::V6(net.addr()), 128);
                let subnet = IpNet::new(IpAddr::V6(net.network()), net.prefix());
                if let (Some(host), Some(subnet)) = (host, subnet) {
                    push(
                        key("ifgateway6"),
                        Action::AddRule(RuleSpec {
                            from: host,
                            table,
                            priority: None,
                        }),
                    );
                    push(
                        key("ifgateway6"),
                        Action::AddRoute(RouteSpec {
                            destination: subnet,
                            gateway: None,
                            dev: Some(link.clone()),
                            table,
                            metric: None,
                        }),
                    );
                }
                push(
                    key("ifgateway6"),
                    Action::AddRoute(RouteSpec {
                        destination: IpNet::DEFAULT_V6,
                        gateway: Some(IpAddr::V6(gw)),
                        dev: Some(link.clone()),
                        table,
                        metric: None,
                    }),
                );
            }
        }
        for (j, n) in iface.neighbors.iter().enumerate() {
            push(
                key(&format!("neigh[{j}]")),
                Action::AddNeighbor(NeighborSpec {
                    link: link.clone(),
                    ip: n.ip,
                    mac: n.mac,
                }),
            );
        }
        for (j, q) in iface.qdiscs.iter().enumerate() {
            push(
                key(&format!("qdisc[{j}]")),
                Action::SetQdisc {
                    link: link.clone(),
                    kind: q.kind.clone(),
                },
            );
        }
    }

    for w in dad_waits {
        push(w.key, w.action);
    }

    // A config interface name (`eth1`) to the kernel link configured for it.
    let by_config_name = |name: &str| -> Result<Link, NetcfgError> {
        if name == "lo" {
            return Ok(lo.clone());
        }
        links
            .iter()
            .find(|(i, _)| config.interfaces.get(*i).is_some_and(|c| c.name == name))
            .map(|(_, info)| info.link())
            .ok_or_else(|| NetcfgError::NotConfigured { name: name.into() })
    };
    for (i, r) in config.routes.iter().enumerate() {
        let key = format!("routes[{i}]");
        let dev = match &r.device {
            Some(name) => Some(by_config_name(name).map_err(|e| e.at(&key))?),
            None => None,
        };
        push(
            key,
            Action::AddRoute(RouteSpec {
                destination: r.destination,
                gateway: r.gateway,
                dev,
                table: r.table,
                metric: r.metric,
            }),
        );
    }

    if let Some(gw) = config.gateway {
        push(
            "gateway".into(),
            Action::ReplaceRoute(RouteSpec {
                destination: IpNet::DEFAULT_V4,
                gateway: Some(IpAddr::V4(gw)),
                dev: None,
                table: TABLE_MAIN,
                metric: None,
            }),
        );
    }
    if let Some(gw) = config.gateway6 {
        let mut route = RouteSpec {
            destination: IpNet::DEFAULT_V6,
            gateway: Some(IpAddr::V6(gw)),
            dev: None,
            table: TABLE_MAIN,
            metric: None,
        };
        // fe80::/10: meaningless without an interface.
        if gw.segments()[0] & 0xffc0 == 0xfe80 {
            let v6: Vec<Link> = links
                .iter()
                .filter(|(i, _)| config.interfaces.get(*i).is_some_and(|c| c.ipv6.is_some()))
                .map(|(_, info)| info.link())
                .collect();
            match v6.as_slice() {
                [only] => route.dev = Some(only.clone()),
                _ => {
                    return Err(NetcfgError::NeedsDevice {
                        what: route.to_string(),
                        why: format!(
                            "{gw} is link-local and {} configured interfaces have IPv6; \
                             give the route with a device in \"routes\" instead",
                            v6.len()
                        ),
                    }
                    .at("gateway6"))
                }
            }
        }
        push("gateway6".into(), Action::ReplaceRoute(route));
    }

    for s in &config.sysctls {
        push(
            format!("sysctl.{}", s.key),
            Action::Sysctl {
                path: s.proc_path(),
                value: s.value.clone(),
            },
        );
    }
    if !config.nameservers.is_empty() {
        push(
            "nameserver".into(),
            Action::ResolvConf(config.nameservers.clone()),
        );
    }
    Ok(steps)
}

/// Runs one action.
pub fn run(rtnl: &mut Rtnl, action: &Action) -> Result<(), NetcfgError> {
    match action {
        Action::Mount { fstype } => mount_pseudo(fstype).map(drop),
        Action::LinkUp(link) => rtnl.set_link_up(link, true),
        Action::SetMac { link, mac } => rtnl.set_mac(link, *mac),
        Action::SetMtu { link, mtu } => rtnl.set_mtu(link, *mtu),
        Action::AddAddress(a) => rtnl.add_address(a),
        Action::WaitDad {
            link,
            addr,
            timeout,
        } => rtnl.wait_dad(link, *addr, *timeout).map(drop),
        Action::AddRule(r) => rtnl.add_rule(r),
        Action::AddRoute(r) => rtnl.add_route(r),
        Action::ReplaceRoute(r) => rtnl.replace_route(r),
        Action::AddNeighbor(n) => rtnl.add_neighbor(n),
        Action::SetQdisc { link, kind } => rtnl.set_root_qdisc(link, kind),
        Action::Sysctl { path, value } => write_sysctl(path, value),
        Action::ResolvConf(ns) => write_resolv_conf(ns),
    }
}

/// Applies `config` to the running kernel in LKL's order (see the module
/// documentation). `ifaces` pairs an index into `config.interfaces` with
/// the kernel's name for that interface's device (`(0, "eth0")`);
/// interfaces not listed are left alone. Errors name the config key, the
/// interface and the kernel's errno.
pub fn apply(config: &Config, ifaces: &[(usize, String)]) -> Result<(), NetcfgError> {
    apply_with(config, ifaces, &ApplyOptions::default()).map(drop)
}

/// [`apply`] with explicit [`ApplyOptions`]; returns the steps it took.
pub fn apply_with(
    config: &Config,
    ifaces: &[(usize, String)],
    opts: &ApplyOptions,
) -> Result<Vec<Step>, NetcfgError> {
    let mut rtnl = Rtnl::open()?;
    let lo = rtnl.link_by_name("lo").map_err(|e| e.at("lo"))?.link();
    let mut links = Vec::with_capacity(ifaces.len());
    for (i, name) in ifaces {
        let info = rtnl
            .link_by_name(name)
            .map_err(|e| e.at(&format!("interfaces[{i}]")))?;
        links.push((*i, info));
    }
    let steps = plan(config, &links, &lo, opts)?;
    for step in &steps {
        run(&mut rtnl, &step.action).map_err(|e| e.at(&step.key))?;
    }
    Ok(steps)
}

#[cfg(test)]
mod tests;
