//! The rtnetlink operations: links, addresses, routes, rules, neighbours
//! and qdiscs, each a request in and a typed result out, plus the dumps
//! that read them back.
//!
//! What the kernel returns in a dump is kept only if it parses whole; an
//! entry that does not is an error naming the dump, never a guess.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use crate::config::{IpNet, MacAddr, TABLE_DEFAULT, TABLE_LOCAL, TABLE_MAIN};
use crate::syscall::Errno;

use super::socket::{Reply, Rtnl};
use super::wire::{
    self, fra, ifa, iff, ifla, nda, rta, rtm, tca, Attr, FamilyHeader, IfAddrMsg, IfInfoMsg, NdMsg,
    Request, RtMsg, TcMsg, AF_INET, AF_INET6, AF_UNSPEC,
};
use super::NetcfgError;

/// A kernel network interface: its index and name (the name is only for
/// messages; requests use the index).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Link {
    /// `ifindex`.
    pub index: u32,
    /// The kernel's name for it (`eth0`).
    pub name: String,
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (ifindex {})", self.name, self.index)
    }
}

fn table_name(t: u32) -> String {
    match t {
        TABLE_MAIN => "main".into(),
        TABLE_LOCAL => "local".into(),
        TABLE_DEFAULT => "default".into(),
        n => n.to_string(),
    }
}

/// An address to add to an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressSpec {
    /// The interface.
    pub link: Link,
    /// The address and its prefix length.
    pub addr: IpNet,
    /// IPv6: set `IFA_F_NODAD` (usable at once, no duplicate check).
    pub nodad: bool,
}

impl fmt::Display for AddressSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "address {} on {}", self.addr, self.link.name)?;
        if self.nodad {
            f.write_str(" nodad")?;
        }
        Ok(())
    }
}

/// A route to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// The destination (`0.0.0.0/0` or `::/0` for a default route).
    pub destination: IpNet,
    /// The next hop; None for a route straight onto the link.
    pub gateway: Option<IpAddr>,
    /// The output interface; None lets the kernel find it from the gateway.
    pub dev: Option<Link>,
    /// The table (254 is `main`).
    pub table: u32,
    /// The metric (`RTA_PRIORITY`).
    pub metric: Option<u32>,
}

impl fmt::Display for RouteSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.destination.prefix() == 0 {
            f.write_str("route default")?;
        } else {
            write!(f, "route {}", self.destination)?;
        }
        if let Some(gw) = self.gateway {
            write!(f, " via {gw}")?;
        }
        if let Some(dev) = &self.dev {
            write!(f, " dev {}", dev.name)?;
        }
        write!(f, " table {}", table_name(self.table))?;
        if let Some(m) = self.metric {
            write!(f, " metric {m}")?;
        }
        Ok(())
    }
}

/// A policy-routing rule to add: packets from `from` are looked up in `table`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSpec {
    /// The source address or subnet.
    pub from: IpNet,
    /// The table to look up.
    pub table: u32,
    /// The rule's priority; None lets the kernel pick (just before the
    /// main table's rule, as `ip rule add` does).
    pub priority: Option<u32>,
}

impl fmt::Display for RuleSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rule from {} lookup {}",
            self.from,
            table_name(self.table)
        )?;
        if let Some(p) = self.priority {
            write!(f, " priority {p}")?;
        }
        Ok(())
    }
}

/// A permanent neighbour entry to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighborSpec {
    /// The interface.
    pub link: Link,
    /// The neighbour's address.
    pub ip: IpAddr,
    /// Its link-layer address.
    pub mac: MacAddr,
}

impl fmt::Display for NeighborSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "neighbour {} lladdr {} dev {} permanent",
            self.ip, self.mac, self.link.name
        )
    }
}

/// A link as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    /// `ifindex`.
    pub index: u32,
    /// `IFLA_IFNAME`.
    pub name: String,
    /// `IFF_*` flags.
    pub flags: u32,
    /// `IFLA_MTU`.
    pub mtu: Option<u32>,
    /// `IFLA_ADDRESS` (6 bytes on Ethernet; `lo` has zeros).
    pub address: Option<Vec<u8>>,
    /// `IFLA_QDISC`: the root qdisc's kind.
    pub qdisc: Option<String>,
    /// `IFLA_OPERSTATE` (`IF_OPER_*`: 6 is up).
    pub operstate: Option<u8>,
}

impl LinkInfo {
    /// The [`Link`] for requests.
    pub fn link(&self) -> Link {
        Link {
            index: self.index,
            name: self.name.clone(),
        }
    }

    /// True if administratively up.
    pub fn is_up(&self) -> bool {
        self.flags & iff::UP != 0
    }

    /// True if up and with carrier (`IFF_RUNNING`).
    pub fn is_running(&self) -> bool {
        self.flags & iff::RUNNING != 0
    }
}

/// An address as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrInfo {
    /// The interface's index.
    pub index: u32,
    /// The local address (`IFA_LOCAL`, else `IFA_ADDRESS`) and prefix.
    pub addr: IpNet,
    /// All `IFA_F_*` flags (`IFA_FLAGS`, else the header's 8 bits).
    pub flags: u32,
    /// `ifa_scope`.
    pub scope: u8,
    /// `IFA_LABEL` (IPv4).
    pub label: Option<String>,
}

impl AddrInfo {
    /// Duplicate address detection still running.
    pub fn is_tentative(&self) -> bool {
        self.flags & ifa::F_TENTATIVE != 0
    }

    /// Duplicate address detection found the address in use.
    pub fn dad_failed(&self) -> bool {
        self.flags & ifa::F_DADFAILED != 0
    }
}

/// A route as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    /// The destination (prefix 0 for a default route).
    pub destination: IpNet,
    /// `RTA_GATEWAY`.
    pub gateway: Option<IpAddr>,
    /// `RTA_OIF`.
    pub oif: Option<u32>,
    /// `RTA_TABLE`, else `rtm_table`.
    pub table: u32,
    /// `RTA_PRIORITY`.
    pub metric: Option<u32>,
    /// `RTA_PREFSRC`.
    pub prefsrc: Option<IpAddr>,
    /// `rtm_protocol` (`RTPROT_*`).
    pub protocol: u8,
    /// `rtm_scope`.
    pub scope: u8,
    /// `rtm_type` (`RTN_*`).
    pub ty: u8,
}

/// A policy-routing rule as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleInfo {
    /// `AF_INET` or `AF_INET6`.
    pub family: u8,
    /// `FRA_SRC` with `src_len`, if the rule matches a source.
    pub from: Option<IpNet>,
    /// `FRA_DST` with `dst_len`, if the rule matches a destination.
    pub to: Option<IpNet>,
    /// `FRA_TABLE`, else the header's 8 bits.
    pub table: u32,
    /// `FRA_PRIORITY` (0 if absent: the `local` rule).
    pub priority: u32,
    /// `FR_ACT_*`.
    pub action: u8,
}

/// A neighbour entry as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighInfo {
    /// The interface's index.
    pub index: u32,
    /// `NDA_DST`.
    pub ip: IpAddr,
    /// `NDA_LLADDR`.
    pub lladdr: Option<Vec<u8>>,
    /// `NUD_*` state bits.
    pub state: u16,
}

impl NeighInfo {
    /// True for a permanent entry.
    pub fn is_permanent(&self) -> bool {
        self.state & nda::NUD_PERMANENT != 0
    }
}

/// A qdisc as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QdiscInfo {
    /// The interface's index.
    pub index: u32,
    /// `tcm_handle`.
    pub handle: u32,
    /// `tcm_parent` ([`wire::tca::H_ROOT`] for a root qdisc).
    pub parent: u32,
    /// `TCA_KIND`.
    pub kind: String,
}

impl QdiscInfo {
    /// True for the interface's root qdisc.
    pub fn is_root(&self) -> bool {
        self.parent == tca::H_ROOT
    }
}

/// What [`Rtnl::wait_dad`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DadOutcome {
    /// The address is usable.
    Done,
    /// The address carries `IFA_F_NODAD`: there was nothing to wait for.
    Skipped,
}

fn malformed(what: &str, why: impl fmt::Display) -> NetcfgError {
    NetcfgError::Malformed {
        request: what.into(),
        why: why.to_string(),
    }
}

fn parse<'a, H: FamilyHeader>(r: &'a Reply, what: &str) -> Result<(H, Vec<Attr<'a>>), NetcfgError> {
    wire::parse_payload::<H>(&r.payload).map_err(|e| malformed(what, e))
}

fn net_of(addr: IpAddr, prefix: u8, what: &str) -> Result<IpNet, NetcfgError> {
    IpNet::new(addr, prefix)
        .ok_or_else(|| malformed(what, format!("prefix length {prefix} too long for {addr}")))
}

fn unspecified(family: u8) -> Option<IpAddr> {
    match family {
        AF_INET => Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        AF_INET6 => Some(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
        _ => None,
    }
}

fn ifindex_i32(link: &Link, what: &str) -> Result<i32, NetcfgError> {
    i32::try_from(link.index)
        .map_err(|_| malformed(what, format!("ifindex {} out of range", link.index)))
}

/// `rtm_table` for a table number: the number if it fits in 8 bits, else
/// `RT_TABLE_UNSPEC` with the real number in `RTA_TABLE`.
fn table_byte(table: u32) -> u8 {
    u8::try_from(table).unwrap_or(rta::TABLE_UNSPEC)
}

fn parse_link(r: &Reply, what: &str) -> Result<LinkInfo, NetcfgError> {
    let (h, a) = parse::<IfInfoMsg>(r, what)?;
    let index = u32::try_from(h.index).map_err(|_| malformed(what, "negative ifindex"))?;
    Ok(LinkInfo {
        index,
        name: wire::find(&a, ifla::IFNAME)
            .map(Attr::string)
            .unwrap_or_default(),
        flags: h.flags,
        mtu: wire::find(&a, ifla::MTU).and_then(Attr::u32),
        address: wire::find(&a, ifla::ADDRESS).map(|a| a.data.to_vec()),
        qdisc: wire::find(&a, ifla::QDISC).map(Attr::string),
        operstate: wire::find(&a, ifla::OPERSTATE).and_then(Attr::u8),
    })
}

fn parse_addr(r: &Reply, what: &str) -> Result<AddrInfo, NetcfgError> {
    let (h, a) = parse::<IfAddrMsg>(r, what)?;
    let ip = wire::find(&a, ifa::LOCAL)
        .or_else(|| wire::find(&a, ifa::ADDRESS))
        .and_then(|a| a.ip(h.family))
        .ok_or_else(|| malformed(what, "address entry without a valid address"))?;
    Ok(AddrInfo {
        index: h.index,
        addr: net_of(ip, h.prefixlen, what)?,
        flags: wire::find(&a, ifa::FLAGS)
            .and_then(Attr::u32)
            .unwrap_or(u32::from(h.flags)),
        scope: h.scope,
        label: wire::find(&a, ifa::LABEL).map(Attr::string),
    })
}

fn parse_route(r: &Reply, what: &str) -> Result<RouteInfo, NetcfgError> {
    let (h, a) = parse::<RtMsg>(r, what)?;
    let dst = match wire::find(&a, rta::DST) {
        Some(d) => d
            .ip(h.family)
            .ok_or_else(|| malformed(what, "route with a bad RTA_DST"))?,
        None => unspecified(h.family)
            .ok_or_else(|| malformed(what, format!("route of family {}", h.family)))?,
    };
    let ip = |ty: u16| -> Result<Option<IpAddr>, NetcfgError> {
        match wire::find(&a, ty) {
            None => Ok(None),
            Some(x) => x
                .ip(h.family)
                .map(Some)
                .ok_or_else(|| malformed(what, format!("route attribute {ty} is no address"))),
        }
    };
    Ok(RouteInfo {
        destination: net_of(dst, h.dst_len, what)?,
        gateway: ip(rta::GATEWAY)?,
        oif: wire::find(&a, rta::OIF).and_then(Attr::u32),
        table: wire::find(&a, rta::TABLE)
            .and_then(Attr::u32)
            .unwrap_or(u32::from(h.table)),
        metric: wire::find(&a, rta::PRIORITY).and_then(Attr::u32),
        prefsrc: ip(rta::PREFSRC)?,
        protocol: h.protocol,
        scope: h.scope,
        ty: h.ty,
    })
}

fn parse_rule(r: &Reply, what: &str) -> Result<RuleInfo, NetcfgError> {
    let (h, a) = parse::<RtMsg>(r, what)?;
    let net = |ty: u16, len: u8| -> Result<Option<IpNet>, NetcfgError> {
        match wire::find(&a, ty) {
            None => Ok(None),
            Some(x) => {
                let ip = x
                    .ip(h.family)
                    .ok_or_else(|| malformed(what, format!("rule attribute {ty} is no address")))?;
                net_of(ip, len, what).map(Some)
            }
        }
    };
    Ok(RuleInfo {
        family: h.family,
        from: net(fra::SRC, h.src_len)?,
        to: net(fra::DST, h.dst_len)?,
        table: wire::find(&a, fra::TABLE)
            .and_then(Attr::u32)
            .unwrap_or(u32::from(h.table)),
        priority: wire::find(&a, fra::PRIORITY)
            .and_then(Attr::u32)
            .unwrap_or(0),
        action: h.ty,
    })
}

fn parse_neigh(r: &Reply, what: &str) -> Result<Option<NeighInfo>, NetcfgError> {
    let (h, a) = parse::<NdMsg>(r, what)?;
    // Bridge and other families carry no IP; they are not ours to read.
    let Some(ip) = wire::find(&a, nda::DST).and_then(|d| d.ip(h.family)) else {
        return Ok(None);
    };
    Ok(Some(NeighInfo {
        index: u32::try_from(h.ifindex).map_err(|_| malformed(what, "negative ifindex"))?,
        ip,
        lladdr: wire::find(&a, nda::LLADDR).map(|a| a.data.to_vec()),
        state: h.state,
    }))
}

fn parse_qdisc(r: &Reply, what: &str) -> Result<QdiscInfo, NetcfgError> {
    let (h, a) = parse::<TcMsg>(r, what)?;
    Ok(QdiscInfo {
        index: u32::try_from(h.ifindex).map_err(|_| malformed(what, "negative ifindex"))?,
        handle: h.handle,
        parent: h.parent,
        kind: wire::find(&a, tca::KIND)
            .map(Attr::string)
            .unwrap_or_default(),
    })
}

/// Longest interface name the kernel takes (`IFNAMSIZ` - 1).
const IFNAME_MAX: usize = 15;

impl Rtnl {
    /// The link called `name` ([`NetcfgError::NoSuchInterface`] if none).
    pub fn link_by_name(&mut self, name: &str) -> Result<LinkInfo, NetcfgError> {
        if name.is_empty() || name.len() > IFNAME_MAX || name.contains(['/', '\0']) {
            return Err(NetcfgError::NoSuchInterface { name: name.into() });
        }
        let what = format!("look up interface {name}");
        let mut req = Request::new(rtm::GETLINK, 0, &IfInfoMsg::default());
        req.attr_str(ifla::IFNAME, name)
            .ok_or_else(|| malformed(&what, "name too long"))?;
        let replies = match self.request(req, &what) {
            Err(NetcfgError::Rejected {
                errno: Errno::ENODEV,
                ..
            }) => return Err(NetcfgError::NoSuchInterface { name: name.into() }),
            r => r?,
        };
        let reply = replies
            .iter()
            .find(|r| r.ty == rtm::NEWLINK)
            .ok_or_else(|| malformed(&what, "no link in the reply"))?;
        parse_link(reply, &what)
    }

    /// The ifindex of the link called `name`.
    pub fn ifindex(&mut self, name: &str) -> Result<u32, NetcfgError> {
        self.link_by_name(name).map(|l| l.index)
    }

    /// Every link.
    pub fn links(&mut self) -> Result<Vec<LinkInfo>, NetcfgError> {
        let what = "dump links";
        let req = Request::new(rtm::GETLINK, 0, &IfInfoMsg::default());
        self.dump(req, rtm::NEWLINK, what)?
            .iter()
            .map(|r| parse_link(r, what))
            .collect()
    }

    fn set_link(
        &mut self,
        link: &Link,
        flags: u32,
        change: u32,
        attrs: &[(u16, Vec<u8>)],
        what: &str,
    ) -> Result<(), NetcfgError> {
        let hdr = IfInfoMsg {
            family: AF_UNSPEC,
            ty: 0,
            index: ifindex_i32(link, what)?,
            flags,
            change,
        };
        let mut req = Request::new(rtm::NEWLINK, 0, &hdr);
        for (ty, data) in attrs {
            req.attr(*ty, data)
                .ok_or_else(|| malformed(what, "attribute too long"))?;
        }
        self.request(req, what).map(drop)
    }

    /// Brings `link` up or down.
    pub fn set_link_up(&mut self, link: &Link, up: bool) -> Result<(), NetcfgError> {
        let what = format!("set {} {}", link.name, if up { "up" } else { "down" });
        let flags = if up { iff::UP } else { 0 };
        self.set_link(link, flags, iff::UP, &[], &what)
    }

    /// Sets `link`'s MTU.
    pub fn set_mtu(&mut self, link: &Link, mtu: u32) -> Result<(), NetcfgError> {
        let what = format!("set mtu {mtu} on {}", link.name);
        self.set_link(
            link,
            0,
            0,
            &[(ifla::MTU, mtu.to_ne_bytes().to_vec())],
            &what,
        )
    }

    /// Sets `link`'s MAC address.
    pub fn set_mac(&mut self, link: &Link, mac: MacAddr) -> Result<(), NetcfgError> {
        let what = format!("set address {mac} on {}", link.name);
        self.set_link(link, 0, 0, &[(ifla::ADDRESS, mac.0.to_vec())], &what)
    }

    /// Adds an address (`ip addr add`). For IPv6 without `nodad` the
    /// address is tentative until duplicate address detection ends: see
    /// [`Rtnl::wait_dad`].
    pub fn add_address(&mut self, spec: &AddressSpec) -> Result<(), NetcfgError> {
        let what = format!("add {spec}");
        let ip = spec.addr.addr();
        let mut flags = 0u32;
        if spec.nodad && !ip.is_ipv4() {
            flags |= ifa::F_NODAD;
        }
        let hdr = IfAddrMsg {
            family: wire::family_of(&ip),
            prefixlen: spec.addr.prefix(),
            // Both flags we may set fit in the header's byte.
            flags: u8::try_from(flags).unwrap_or(0),
            scope: rta::SCOPE_UNIVERSE,
            index: spec.link.index,
        };
        let mut req = Request::new(rtm::NEWADDR, wire::flags::CREATE | wire::flags::EXCL, &hdr);
        req.attr_ip(ifa::LOCAL, &ip).attr_ip(ifa::ADDRESS, &ip);
        if flags != 0 {
            req.attr_u32(ifa::FLAGS, flags);
        }
        // IPv4: the broadcast address, as `ifconfig` and LKL's old ioctl
        // path set it (a /31 or /32 has none).
        if let IpNet::V4(n) = spec.addr {
            if n.prefix() <= 30 {
                let host_mask = u32::MAX.checked_shr(u32::from(n.prefix())).unwrap_or(0);
                let brd = Ipv4Addr::from(u32::from(n.addr()) | host_mask);
                req.attr_ip(ifa::BROADCAST, &IpAddr::V4(brd));
            }
        }
        self.request(req, &what).map(drop)
    }

    /// Every address of `family` (`AF_UNSPEC`: all), optionally of one link.
    pub fn addresses(
        &mut self,
        family: u8,
        index: Option<u32>,
    ) -> Result<Vec<AddrInfo>, NetcfgError> {
        let what = "dump addresses";
        let hdr = IfAddrMsg {
            family,
            index: index.unwrap_or(0),
            ..Default::default()
        };
        let req = Request::new(rtm::GETADDR, 0, &hdr);
        let mut out = Vec::new();
        for r in self.dump(req, rtm::NEWADDR, what)? {
            let a = parse_addr(&r, what)?;
            // The kernel filters too (strict checking); this is for when not.
            let fam_ok = family == AF_UNSPEC || wire::family_of(&a.addr.addr()) == family;
            if fam_ok && (index.is_none() || index == Some(a.index)) {
                out.push(a);
            }
        }
        Ok(out)
    }

    /// Waits until duplicate address detection of `addr` on `link` ends:
    /// `IFA_F_TENTATIVE` clears ([`DadOutcome::Done`]), or the address was
    /// added with `IFA_F_NODAD` ([`DadOutcome::Skipped`]). Errors if DAD
    /// fails, the address vanishes, or `timeout` passes (the error then
    /// says whether the link has carrier: DAD does not start without it).
    pub fn wait_dad(
        &mut self,
        link: &Link,
        addr: Ipv6Addr,
        timeout: Duration,
    ) -> Result<DadOutcome, NetcfgError> {
        // One probe takes a second (RetransTimer) after up to a second of
        // random delay (rtr_solicit_delay); poll well within that.
        const POLL: Duration = Duration::from_millis(50);
        let deadline = Instant::now() + timeout;
        loop {
            let found = self
                .addresses(AF_INET6, Some(link.index))?
                .into_iter()
                .find(|a| a.addr.addr() == IpAddr::V6(addr));
            let Some(a) = found else {
                return Err(NetcfgError::Dad {
                    link: link.clone(),
                    addr,
                    why: "the address is gone from the interface".into(),
                });
            };
            if a.dad_failed() {
                return Err(NetcfgError::Dad {
                    link: link.clone(),
                    addr,
                    why: "duplicate address detection failed: another host has this address".into(),
                });
            }
            if !a.is_tentative() {
                return Ok(if a.flags & ifa::F_NODAD != 0 {
                    DadOutcome::Skipped
                } else {
                    DadOutcome::Done
                });
            }
            if Instant::now() >= deadline {
                let running = self
                    .link_by_name(&link.name)
                    .map(|l| l.is_running())
                    .unwrap_or(false);
                let hint = if running {
                    ""
                } else {
                    " (the link has no carrier, so detection never started)"
                };
                return Err(NetcfgError::Dad {
                    link: link.clone(),
                    addr,
                    why: format!("still tentative after {timeout:?}{hint}"),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// Adds a route (`ip route add`, failing if it exists).
    pub fn add_route(&mut self, spec: &RouteSpec) -> Result<(), NetcfgError> {
        self.new_route(spec, false)
    }

    /// Adds a route or replaces the one with the same destination, table
    /// (and, for IPv6, metric) (`ip route replace`).
    pub fn replace_route(&mut self, spec: &RouteSpec) -> Result<(), NetcfgError> {
        self.new_route(spec, true)
    }

    fn new_route(&mut self, spec: &RouteSpec, replace: bool) -> Result<(), NetcfgError> {
        let what = format!("{} {spec}", if replace { "replace" } else { "add" });
        let dst = spec.destination;
        let family = wire::family_of(&dst.addr());
        if let Some(gw) = spec.gateway {
            if wire::family_of(&gw) != family {
                return Err(malformed(&what, "gateway and destination differ in family"));
            }
        }
        let hdr = RtMsg {
            family,
            dst_len: dst.prefix(),
            table: table_byte(spec.table),
            protocol: rta::RTPROT_BOOT,
            // A route without a next hop is on the link (IPv6 ignores this).
            scope: if spec.gateway.is_none() && family == AF_INET {
                rta::SCOPE_LINK
            } else {
                rta::SCOPE_UNIVERSE
            },
            ty: rta::RTN_UNICAST,
            ..Default::default()
        };
        let how = if replace {
            wire::flags::REPLACE
        } else {
            wire::flags::EXCL
        };
        let mut req = Request::new(rtm::NEWROUTE, wire::flags::CREATE | how, &hdr);
        if dst.prefix() > 0 {
            req.attr_ip(rta::DST, &dst.addr());
        }
        if let Some(gw) = spec.gateway {
            req.attr_ip(rta::GATEWAY, &gw);
        }
        if let Some(dev) = &spec.dev {
            req.attr_u32(rta::OIF, dev.index);
        }
        req.attr_u32(rta::TABLE, spec.table);
        if let Some(m) = spec.metric {
            req.attr_u32(rta::PRIORITY, m);
        }
        self.request(req, &what).map(drop)
    }

    /// Every route of `family` (`AF_UNSPEC`: both), optionally of one
    /// table only. A table that does not exist has no routes.
    pub fn routes(
        &mut self,
        family: u8,
        table: Option<u32>,
    ) -> Result<Vec<RouteInfo>, NetcfgError> {
        let what = match table {
            Some(t) => format!("dump routes of table {}", table_name(t)),
            None => "dump routes".into(),
        };
        let hdr = RtMsg {
            family,
            ..Default::default()
        };
        let mut req = Request::new(rtm::GETROUTE, 0, &hdr);
        if let Some(t) = table {
            req.attr_u32(rta::TABLE, t);
        }
        let replies = match self.dump(req, rtm::NEWROUTE, &what) {
            // IPv4 refuses to dump a table it never made.
            Err(NetcfgError::Rejected {
                errno: Errno::ENOENT,
                ..
            }) if table.is_some() => Vec::new(),
            r => r?,
        };
        let mut out = Vec::new();
        for r in &replies {
            let route = parse_route(r, &what)?;
            let fam_ok =
                family == AF_UNSPEC || wire::family_of(&route.destination.addr()) == family;
            if fam_ok && (table.is_none() || table == Some(route.table)) {
                out.push(route);
            }
        }
        Ok(out)
    }

    /// Adds a policy-routing rule (`ip rule add from X lookup T`).
    pub fn add_rule(&mut self, spec: &RuleSpec) -> Result<(), NetcfgError> {
        let what = format!("add {spec}");
        let from = spec.from;
        let hdr = RtMsg {
            family: wire::family_of(&from.addr()),
            src_len: from.prefix(),
            table: table_byte(spec.table),
            ty: fra::ACT_TO_TBL,
            ..Default::default()
        };
        let mut req = Request::new(rtm::NEWRULE, wire::flags::CREATE | wire::flags::EXCL, &hdr);
        if from.prefix() > 0 {
            req.attr_ip(fra::SRC, &from.addr());
        }
        req.attr_u32(fra::TABLE, spec.table);
        if let Some(p) = spec.priority {
            req.attr_u32(fra::PRIORITY, p);
        }
        self.request(req, &what).map(drop)
    }

    /// Every rule of `family` (`AF_UNSPEC`: both).
    pub fn rules(&mut self, family: u8) -> Result<Vec<RuleInfo>, NetcfgError> {
        let what = "dump rules";
        let hdr = RtMsg {
            family,
            ..Default::default()
        };
        let req = Request::new(rtm::GETRULE, 0, &hdr);
        self.dump(req, rtm::NEWRULE, what)?
            .iter()
            .map(|r| parse_rule(r, what))
            .filter(|r| {
                r.as_ref()
                    .map_or(true, |r| family == AF_UNSPEC || r.family == family)
            })
            .collect()
    }

    /// Adds or replaces a permanent neighbour entry.
    pub fn add_neighbor(&mut self, spec: &NeighborSpec) -> Result<(), NetcfgError> {
        let what = format!("add {spec}");
        let hdr = NdMsg {
            family: wire::family_of(&spec.ip),
            ifindex: ifindex_i32(&spec.link, &what)?,
            state: nda::NUD_PERMANENT,
            flags: 0,
            ty: 0,
        };
        let mut req = Request::new(
            rtm::NEWNEIGH,
            wire::flags::CREATE | wire::flags::REPLACE,
            &hdr,
        );
        req.attr_ip(nda::DST, &spec.ip);
        req.attr(nda::LLADDR, &spec.mac.0)
            .ok_or_else(|| malformed(&what, "attribute too long"))?;
        self.request(req, &what).map(drop)
    }

    /// Every IPv4 and IPv6 neighbour entry of `family` (`AF_UNSPEC`: both).
    pub fn neighbors(&mut self, family: u8) -> Result<Vec<NeighInfo>, NetcfgError> {
        let what = "dump neighbours";
        let hdr = NdMsg {
            family,
            ..Default::default()
        };
        let req = Request::new(rtm::GETNEIGH, 0, &hdr);
        let mut out = Vec::new();
        for r in self.dump(req, rtm::NEWNEIGH, what)? {
            if let Some(n) = parse_neigh(&r, what)? {
                out.push(n);
            }
        }
        Ok(out)
    }

    /// Makes `kind` (`fq`, `fq_codel`, `pfifo`...) with its default
    /// parameters the root qdisc of `link`, replacing what was there
    /// (`tc qdisc replace dev L root KIND`). An unknown kind is refused
    /// with `ENOENT`; one that needs parameters (`tbf`) with `EINVAL`.
    pub fn set_root_qdisc(&mut self, link: &Link, kind: &str) -> Result<(), NetcfgError> {
        let what = format!("set root qdisc {kind} on {}", link.name);
        let hdr = TcMsg {
            family: AF_UNSPEC,
            ifindex: ifindex_i32(link, &what)?,
            handle: 0,
            parent: tca::H_ROOT,
            info: 0,
        };
        let mut req = Request::new(
            rtm::NEWQDISC,
            wire::flags::CREATE | wire::flags::REPLACE,
            &hdr,
        );
        // The whole name, NUL included (LKL once sent only 2 bytes of it).
        req.attr_str(tca::KIND, kind)
            .ok_or_else(|| malformed(&what, "kind too long"))?;
        self.request(req, &what).map(drop)
    }

    /// Every qdisc.
    pub fn qdiscs(&mut self) -> Result<Vec<QdiscInfo>, NetcfgError> {
        let what = "dump qdiscs";
        let req = Request::new(rtm::GETQDISC, 0, &TcMsg::default());
        self.dump(req, rtm::NEWQDISC, what)?
            .iter()
            .map(|r| parse_qdisc(r, what))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply<H: FamilyHeader>(ty: u16, hdr: &H, attrs: &[(u16, Vec<u8>)]) -> Reply {
        let mut req = Request::new(ty, 0, hdr);
        for (t, d) in attrs {
            req.attr(*t, d).unwrap();
        }
        let b = req.finish(1).unwrap();
        Reply {
            ty,
            flags: 0,
            payload: b[16..].to_vec(),
        }
    }

    #[test]
    fn routes_parse_and_refuse_nonsense() {
        let hdr = RtMsg {
            family: AF_INET,
            dst_len: 16,
            table: 0,
            protocol: rta::RTPROT_BOOT,
            ty: rta::RTN_UNICAST,
            ..Default::default()
        };
        let r = reply(
            rtm::NEWROUTE,
            &hdr,
            &[
                (rta::DST, vec![10, 1, 0, 0]),
                (rta::GATEWAY, vec![10, 0, 0, 1]),
                (rta::OIF, 3u32.to_ne_bytes().to_vec()),
                (rta::TABLE, 1000u32.to_ne_bytes().to_vec()),
                (rta::PRIORITY, 100u32.to_ne_bytes().to_vec()),
            ],
        );
        let info = parse_route(&r, "t").unwrap();
        assert_eq!(info.destination.to_string(), "10.1.0.0/16");
        assert_eq!(info.gateway, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(
            (info.oif, info.table, info.metric),
            (Some(3), 1000, Some(100))
        );

        // Default route: no RTA_DST.
        let d = RtMsg {
            family: AF_INET6,
            table: 254,
            ..Default::default()
        };
        let info = parse_route(&reply(rtm::NEWROUTE, &d, &[]), "t").unwrap();
        assert_eq!(info.destination.to_string(), "::/0");
        assert_eq!(info.table, 254);

        // A 5-byte gateway, a /40 IPv4 prefix, an unknown family.
        let bad = reply(rtm::NEWROUTE, &hdr, &[(rta::GATEWAY, vec![1, 2, 3, 4, 5])]);
        assert!(matches!(
            parse_route(&bad, "t"),
            Err(NetcfgError::Malformed { .. })
        ));
        let long = RtMsg {
            family: AF_INET,
            dst_len: 40,
            ..Default::default()
        };
        let bad = reply(rtm::NEWROUTE, &long, &[(rta::DST, vec![1, 2, 3, 4])]);
        assert!(parse_route(&bad, "t").is_err());
        let odd = RtMsg {
            family: 7,
            ..Default::default()
        };
        assert!(parse_route(&reply(rtm::NEWROUTE, &odd, &[]), "t").is_err());
        // Truncated header.
        let short = Reply {
            ty: rtm::NEWROUTE,
            flags: 0,
            payload: vec![2, 0, 0],
        };
        assert!(parse_route(&short, "t").is_err());
    }

    #[test]
    fn addresses_links_rules_neighbours_qdiscs_parse() {
        let a = reply(
            rtm::NEWADDR,
            &IfAddrMsg {
                family: AF_INET6,
                prefixlen: 64,
                flags: 0x40,
                scope: 0,
                index: 2,
            },
            &[(
                ifa::ADDRESS,
                "fc03::2".parse::<Ipv6Addr>().unwrap().octets().to_vec(),
            )],
        );
        let a = parse_addr(&a, "t").unwrap();
        assert_eq!(a.addr.to_string(), "fc03::2/64");
        assert!(a.is_tentative());
        // IFA_FLAGS wins over the header byte.
        let b = reply(
            rtm::NEWADDR,
            &IfAddrMsg {
                family: AF_INET,
                prefixlen: 24,
                flags: 0x40,
                scope: 0,
                index: 2,
            },
            &[
                (ifa::LOCAL, vec![10, 0, 0, 2]),
                (ifa::FLAGS, 0x80u32.to_ne_bytes().to_vec()),
                (ifa::LABEL, b"eth0\0".to_vec()),
            ],
        );
        let b = parse_addr(&b, "t").unwrap();
        assert!(!b.is_tentative());
        assert_eq!(b.label.as_deref(), Some("eth0"));
        // No address at all.
        let c = reply(rtm::NEWADDR, &IfAddrMsg::default(), &[]);
        assert!(parse_addr(&c, "t").is_err());

        let l = reply(
            rtm::NEWLINK,
            &IfInfoMsg {
                index: 2,
                flags: iff::UP | iff::RUNNING,
                ..Default::default()
            },
            &[
                (ifla::IFNAME, b"eth0\0".to_vec()),
                (ifla::MTU, 1500u32.to_ne_bytes().to_vec()),
                (ifla::QDISC, b"fq\0".to_vec()),
            ],
        );
        let l = parse_link(&l, "t").unwrap();
        assert_eq!((l.name.as_str(), l.mtu), ("eth0", Some(1500)));
        assert!(l.is_up() && l.is_running());
        assert_eq!(l.qdisc.as_deref(), Some("fq"));
        let neg = reply(
            rtm::NEWLINK,
            &IfInfoMsg {
                index: -1,
                ..Default::default()
            },
            &[],
        );
        assert!(parse_link(&neg, "t").is_err());

        let rule = reply(
            rtm::NEWRULE,
            &RtMsg {
                family: AF_INET,
                src_len: 32,
                table: 4,
                ty: fra::ACT_TO_TBL,
                ..Default::default()
            },
            &[
                (fra::SRC, vec![10, 0, 0, 2]),
                (fra::TABLE, 4u32.to_ne_bytes().to_vec()),
                (fra::PRIORITY, 32765u32.to_ne_bytes().to_vec()),
            ],
        );
        let rule = parse_rule(&rule, "t").unwrap();
        assert_eq!(rule.from.unwrap().to_string(), "10.0.0.2/32");
        assert_eq!((rule.table, rule.priority), (4, 32765));

        let n = reply(
            rtm::NEWNEIGH,
            &NdMsg {
                family: AF_INET,
                ifindex: 2,
                state: nda::NUD_PERMANENT,
                ..Default::default()
            },
            &[
                (nda::DST, vec![10, 0, 0, 9]),
                (nda::LLADDR, vec![2, 0, 0, 0, 0, 1]),
            ],
        );
        let n = parse_neigh(&n, "t").unwrap().unwrap();
        assert!(n.is_permanent());
        assert_eq!(n.lladdr.as_deref(), Some(&[2, 0, 0, 0, 0, 1][..]));
        // A bridge entry (no IP): skipped, not an error.
        let fdb = reply(rtm::NEWNEIGH, &NdMsg::default(), &[]);
        assert_eq!(parse_neigh(&fdb, "t").unwrap(), None);

        let q = reply(
            rtm::NEWQDISC,
            &TcMsg {
                ifindex: 2,
                handle: 0x8001_0000,
                parent: tca::H_ROOT,
                ..Default::default()
            },
            &[(tca::KIND, b"fq\0".to_vec())],
        );
        let q = parse_qdisc(&q, "t").unwrap();
        assert!(q.is_root());
        assert_eq!(q.kind, "fq");
    }

    #[test]
    fn specs_describe_themselves() {
        let eth1 = Link {
            index: 3,
            name: "eth1".into(),
        };
        let r = RouteSpec {
            destination: "10.1.0.0"
                .parse()
                .map(|a| IpNet::new(a, 16).unwrap())
                .unwrap(),
            gateway: Some("10.0.0.1".parse().unwrap()),
            dev: Some(eth1.clone()),
            table: TABLE_MAIN,
            metric: Some(100),
        };
        assert_eq!(
            r.to_string(),
            "route 10.1.0.0/16 via 10.0.0.1 dev eth1 table main metric 100"
        );
        let d = RouteSpec {
            destination: IpNet::DEFAULT_V6,
            gateway: Some("fc03::1".parse().unwrap()),
            dev: None,
            table: 7,
            metric: None,
        };
        assert_eq!(d.to_string(), "route default via fc03::1 table 7");
        let rule = RuleSpec {
            from: IpNet::new("10.0.0.2".parse().unwrap(), 32).unwrap(),
            table: 6,
            priority: None,
        };
        assert_eq!(rule.to_string(), "rule from 10.0.0.2/32 lookup 6");
        assert_eq!(eth1.to_string(), "eth1 (ifindex 3)");
    }
}
