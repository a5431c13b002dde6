//! What describes a backend, apart from opening it: the kinds the config's
//! `type` names ([`BackendKind`]), a backend with its checked parameter
//! ([`Backend`]), and the virtual network a `slirp` backend emulates
//! ([`SlirpNetwork`], parsed from its `param`).
//!
//! These types belong to the backends; the config layer re-exports them
//! (`config::{Backend, BackendKind, ...}`) and builds them from the
//! JSON or the environment. Nothing here imports the config, so the imports
//! point one way: config → virtio.

#![forbid(unsafe_code)]

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::str::FromStr;

use crate::virtio::net::features;

/// The kinds of network backend LKL's `type` key names, plus `fd` and
/// `slirp` (LKL has both as library backends; its hijack config does not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// A tap device (`/dev/net/tun`), named by `param`.
    Tap,
    /// A macvtap character device, `param` is its path (`/dev/tap5`).
    Macvtap,
    /// An AF_PACKET socket on the host interface named by `param`.
    Raw,
    /// Two FIFOs, `param` = `rx_path|tx_path`.
    Pipe,
    /// A VDE switch, `param` = its control path.
    Vde,
    /// An inherited file descriptor, `param` = its number.
    Fd,
    /// User-mode networking (libslirp); `param` optional, in QEMU's
    /// `-netdev user` syntax.
    Slirp,
    /// DPDK: parsed (the config refuses it: we do not build it).
    Dpdk,
}

impl BackendKind {
    /// Every kind, in the order error messages list them.
    pub const ALL: [BackendKind; 8] = [
        BackendKind::Tap,
        BackendKind::Macvtap,
        BackendKind::Raw,
        BackendKind::Pipe,
        BackendKind::Vde,
        BackendKind::Fd,
        BackendKind::Slirp,
        BackendKind::Dpdk,
    ];

    /// The name used in `type` and `LKL_HIJACK_NET_IFTYPE`.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Tap => "tap",
            BackendKind::Macvtap => "macvtap",
            BackendKind::Raw => "raw",
            BackendKind::Pipe => "pipe",
            BackendKind::Vde => "vde",
            BackendKind::Fd => "fd",
            BackendKind::Slirp => "slirp",
            BackendKind::Dpdk => "dpdk",
        }
    }

    /// The kind with this exact name.
    pub fn from_name(name: &str) -> Option<BackendKind> {
        BackendKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// True if the backend carries a virtio-net header, which offloads
    /// need (LKL: tap, macvtap, pipe; dpdk too, but we do not build it).
    pub fn supports_offload(self) -> bool {
        matches!(
            self,
            BackendKind::Tap | BackendKind::Macvtap | BackendKind::Pipe
        )
    }

    /// The virtio-net features offered when the config has no `offload`
    /// key (LKL offers none then).
    ///
    /// - **tap, macvtap**: [`BEST_TAP_OFFLOAD`]. The host's tap driver
    ///   takes partial checksums and TSO segments from us and hands us
    ///   its own (after `TUNSETOFFLOAD`, set from what the kernel's driver
    ///   acked), so nothing is lost whatever the kernel negotiates.
    /// - **pipe**: none. The peer is another kernel, whose driver may not
    ///   have negotiated what ours would send (a TSO segment to a peer
    ///   without `GUEST_TSO4` is dropped there), and nothing negotiates
    ///   across a FIFO: offloads on a pipe are asked for on both sides.
    /// - **raw, vde, slirp**: none; they carry no virtio-net header.
    /// - **fd**: none; the descriptor's other end is unknown (as pipe).
    pub fn default_offload(self) -> u64 {
        match self {
            BackendKind::Tap | BackendKind::Macvtap => BEST_TAP_OFFLOAD,
            _ => 0,
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a tap or macvtap interface offers with no `offload` key (`0x9983`):
/// partial checksums and TCP segmentation both ways, IPv4 and IPv6, and
/// mergeable receive buffers (LKL's `0x883` is the IPv4 half without
/// them). Measured with iperf3 through the hijack (README, "The config"):
/// without TSO6 an IPv6 stream moves an eighth of what it does with it;
/// mergeable buffers take less CPU per byte. UFO is left out: the
/// kernel's driver makes nothing of `HOST_UFO` (Linux 6.12 has no UDP
/// fragmentation offload), and our `offload` key has no `GUEST_UFO`.
pub const BEST_TAP_OFFLOAD: u64 = features::CSUM
    | features::GUEST_CSUM
    | features::GUEST_TSO4
    | features::GUEST_TSO6
    | features::HOST_TSO4
    | features::HOST_TSO6
    | features::MRG_RXBUF;

/// A network backend with its validated parameter. Paths are absolute
/// (resolved against the directory the config was loaded in).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Backend {
    /// An existing tap interface.
    Tap {
        /// Its name (a legal Linux interface name).
        ifname: String,
    },
    /// A macvtap character device.
    Macvtap {
        /// `/dev/tapN`.
        path: PathBuf,
    },
    /// An AF_PACKET socket bound to a host interface.
    Raw {
        /// The host interface.
        ifname: String,
    },
    /// Two FIFOs (two LKL instances connect by swapping them).
    Pipe {
        /// Read packets from here.
        rx: PathBuf,
        /// Write packets here.
        tx: PathBuf,
    },
    /// A VDE switch.
    Vde {
        /// Its control path.
        path: PathBuf,
    },
    /// A file descriptor the process inherited (a socket or tap fd).
    Fd {
        /// The descriptor.
        fd: i32,
    },
    /// User-mode networking (libslirp).
    Slirp {
        /// The virtual network in QEMU's `-netdev user` syntax
        /// (`net=10.0.3.0/24,host=10.0.3.2,ipv6=off`; parsed by
        /// [`SlirpNetwork`], checked when the config is read); `None` for
        /// QEMU's default network (10.0.2.0/24).
        param: Option<String>,
    },
}

impl Backend {
    /// The kind.
    pub fn kind(&self) -> BackendKind {
        match self {
            Backend::Tap { .. } => BackendKind::Tap,
            Backend::Macvtap { .. } => BackendKind::Macvtap,
            Backend::Raw { .. } => BackendKind::Raw,
            Backend::Pipe { .. } => BackendKind::Pipe,
            Backend::Vde { .. } => BackendKind::Vde,
            Backend::Fd { .. } => BackendKind::Fd,
            Backend::Slirp { .. } => BackendKind::Slirp,
        }
    }

    /// The parameter in LKL's `param` syntax (for slirp, QEMU's; None if
    /// it had none).
    pub fn param(&self) -> Option<String> {
        match self {
            Backend::Tap { ifname } | Backend::Raw { ifname } => Some(ifname.clone()),
            Backend::Macvtap { path } | Backend::Vde { path } => {
                Some(path.to_string_lossy().into_owned())
            }
            Backend::Pipe { rx, tx } => Some(format!("{}|{}", rx.display(), tx.display())),
            Backend::Fd { fd } => Some(fd.to_string()),
            Backend::Slirp { param } => param.clone(),
        }
    }
}

/// The IPv6 side of a [`SlirpNetwork`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlirpNetwork6 {
    /// The prefix advertised to the guest.
    pub prefix: Ipv6Addr,
    /// Its length (at most 126).
    pub prefix_len: u8,
    /// The gateway and host address (reaches the host's `::1`).
    pub host: Ipv6Addr,
    /// The DNS forwarder's address.
    pub dns: Ipv6Addr,
}

/// The virtual network slirp emulates. [`Default`] is QEMU's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlirpNetwork {
    /// The network address (host bits zero).
    pub net: Ipv4Addr,
    /// Its prefix length (1 to 30).
    pub prefix_len: u8,
    /// The gateway, which is also the host: connections to it reach the
    /// host's 127.0.0.1.
    pub host: Ipv4Addr,
    /// The DNS forwarder (to the host's resolvers).
    pub dns: Ipv4Addr,
    /// The first address DHCP hands out (the guest's usual address).
    pub dhcp_start: Ipv4Addr,
    /// IPv6, or `None` for IPv4 only.
    pub ipv6: Option<SlirpNetwork6>,
    /// QEMU's `restrict=on`: the guest reaches no host socket at all, only
    /// slirp's own services (DHCP, TFTP, and echo replies from the host
    /// address).
    pub restricted: bool,
    /// Whether the host address maps to the host's loopback (true, as
    /// QEMU); false refuses connections to it.
    pub host_loopback: bool,
}

impl Default for SlirpNetwork {
    fn default() -> Self {
        SlirpNetwork {
            net: Ipv4Addr::new(10, 0, 2, 0),
            prefix_len: 24,
            host: Ipv4Addr::new(10, 0, 2, 2),
            dns: Ipv4Addr::new(10, 0, 2, 3),
            dhcp_start: Ipv4Addr::new(10, 0, 2, 15),
            ipv6: Some(SlirpNetwork6 {
                prefix: Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0),
                prefix_len: 64,
                host: Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 2),
                dns: Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 3),
            }),
            restricted: false,
            host_loopback: true,
        }
    }
}

fn mask4(len: u8) -> u32 {
    match len {
        0 => 0,
        l => u32::MAX << (32 - u32::from(l.min(32))),
    }
}

fn in_net6(a: Ipv6Addr, prefix: Ipv6Addr, len: u8) -> bool {
    let mask = match len {
        0 => 0,
        l => u128::MAX << (128 - u32::from(l.min(128))),
    };
    u128::from(a) & mask == u128::from(prefix) & mask
}

/// `base` plus `n` in its host part (QEMU's derived addresses).
fn nth4(base: Ipv4Addr, n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(base).wrapping_add(n))
}

fn nth6(base: Ipv6Addr, n: u128) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(base).wrapping_add(n))
}

impl SlirpNetwork {
    /// The netmask of [`prefix_len`](Self::prefix_len).
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(mask4(self.prefix_len))
    }

    /// Checks what libslirp would otherwise refuse with only a glib warning
    /// (or accept and misbehave): every address inside its network, none
    /// the network or broadcast address, host and DNS distinct.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=30).contains(&self.prefix_len) {
            return Err(format!(
                "prefix length {} is out of range (1 to 30)",
                self.prefix_len
            ));
        }
        let mask = mask4(self.prefix_len);
        let net = u32::from(self.net);
        if net & !mask != 0 {
            return Err(format!(
                "{}/{} has host bits set",
                self.net, self.prefix_len
            ));
        }
        for (what, a) in [
            ("host", self.host),
            ("dns", self.dns),
            ("dhcpstart", self.dhcp_start),
        ] {
            let v = u32::from(a);
            if v & mask != net {
                return Err(format!(
                    "{what} {a} is outside {}/{}",
                    self.net, self.prefix_len
                ));
            }
            if v & !mask == 0 || v & !mask == !mask {
                return Err(format!(
                    "{what} {a} is the network's own or broadcast address"
                ));
            }
        }
        if self.host == self.dns {
            return Err(format!("host and dns are both {}", self.host));
        }
        if let Some(v6) = &self.ipv6 {
            if !(1..=126).contains(&v6.prefix_len) {
                return Err(format!(
                    "IPv6 prefix length {} is out of range (1 to 126)",
                    v6.prefix_len
                ));
            }
            for (what, a) in [("ipv6-host", v6.host), ("ipv6-dns", v6.dns)] {
                if !in_net6(a, v6.prefix, v6.prefix_len) {
                    return Err(format!(
                        "{what} {a} is outside {}/{}",
                        v6.prefix, v6.prefix_len
                    ));
                }
            }
            if v6.host == v6.dns {
                return Err(format!("ipv6-host and ipv6-dns are both {}", v6.host));
            }
        }
        Ok(())
    }
}

/// Parses QEMU's `-netdev user` option syntax, comma-separated, every key
/// optional: `net=ADDR/LEN` (or `ADDR/MASK`), `host=`, `dns=`,
/// `dhcpstart=`, `ipv6=on|off`, `ipv6-net=PREFIX/LEN`, `ipv6-host=`,
/// `ipv6-dns=`, `restrict=on|off`. As in QEMU, a `net` without `host`,
/// `dns` or `dhcpstart` derives them (.2, .3, .15), and `ipv6-net` derives
/// `::2` and `::3`. The result is validated.
impl FromStr for SlirpNetwork {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut n = SlirpNetwork::default();
        let (mut host, mut dns, mut dhcp) = (None, None, None);
        let (mut host6, mut dns6) = (None, None);
        let mut v6 = n.ipv6.expect("the default has IPv6");
        let mut ipv6_on = true;
        let v4 = |k: &str, v: &str| {
            v.parse::<Ipv4Addr>()
                .map_err(|_| format!("{k}={v}: not an IPv4 address"))
        };
        let v6addr = |k: &str, v: &str| {
            v.parse::<Ipv6Addr>()
                .map_err(|_| format!("{k}={v}: not an IPv6 address"))
        };
        let onoff = |k: &str, v: &str| match v {
            "on" | "yes" | "true" => Ok(true),
            "off" | "no" | "false" => Ok(false),
            _ => Err(format!("{k}={v}: expected on or off")),
        };
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| format!("{item}: expected key=value"))?;
            match k {
                "net" => {
                    let (addr, len) = v
                        .split_once('/')
                        .ok_or_else(|| format!("net={v}: expected ADDR/LEN"))?;
                    n.net = v4(k, addr)?;
                    n.prefix_len = match len.parse::<u8>() {
                        Ok(l) => l,
                        Err(_) => {
                            let m = u32::from(v4(k, len)?);
                            if m.leading_ones() + m.trailing_zeros() != 32 {
                                return Err(format!("net={v}: {len} is not a netmask"));
                            }
                            // At most 32: fits.
                            m.leading_ones() as u8
                        }
                    };
                }
                "host" => host = Some(v4(k, v)?),
                "dns" => dns = Some(v4(k, v)?),
                "dhcpstart" => dhcp = Some(v4(k, v)?),
                "restrict" => n.restricted = onoff(k, v)?,
                "ipv6" => ipv6_on = onoff(k, v)?,
                "ipv6-net" => {
                    let (addr, len) = v
                        .split_once('/')
                        .ok_or_else(|| format!("ipv6-net={v}: expected PREFIX/LEN"))?;
                    v6.prefix = v6addr(k, addr)?;
                    v6.prefix_len = len
                        .parse()
                        .map_err(|_| format!("ipv6-net={v}: bad prefix length"))?;
                    v6.host = nth6(v6.prefix, 2);
                    v6.dns = nth6(v6.prefix, 3);
                }
                "ipv6-host" => host6 = Some(v6addr(k, v)?),
                "ipv6-dns" => dns6 = Some(v6addr(k, v)?),
                _ => {
                    return Err(format!(
                        "unknown key {k} (known: net, host, dns, dhcpstart, restrict, ipv6, \
                         ipv6-net, ipv6-host, ipv6-dns)"
                    ))
                }
            }
        }
        n.host = host.unwrap_or(nth4(n.net, 2));
        n.dns = dns.unwrap_or(nth4(n.net, 3));
        n.dhcp_start = dhcp.unwrap_or(nth4(n.net, 15));
        v6.host = host6.unwrap_or(v6.host);
        v6.dns = dns6.unwrap_or(v6.dns);
        n.ipv6 = ipv6_on.then_some(v6);
        n.validate()?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_qemus_network() {
        let n = SlirpNetwork::default();
        assert_eq!(n.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(n.host, Ipv4Addr::new(10, 0, 2, 2));
        assert_eq!(n.dns, Ipv4Addr::new(10, 0, 2, 3));
        assert_eq!(n.dhcp_start, Ipv4Addr::new(10, 0, 2, 15));
        assert!(!n.restricted && n.host_loopback);
        assert_eq!(n.validate(), Ok(()));
        assert_eq!("".parse::<SlirpNetwork>(), Ok(n));
    }

    #[test]
    fn qemu_syntax_parses_and_derives() {
        let n: SlirpNetwork = "net=192.168.76.0/255.255.255.0,ipv6=off,restrict=on"
            .parse()
            .unwrap();
        assert_eq!(n.net, Ipv4Addr::new(192, 168, 76, 0));
        assert_eq!(n.prefix_len, 24);
        assert_eq!(n.host, Ipv4Addr::new(192, 168, 76, 2));
        assert_eq!(n.dns, Ipv4Addr::new(192, 168, 76, 3));
        assert_eq!(n.dhcp_start, Ipv4Addr::new(192, 168, 76, 15));
        assert!(n.ipv6.is_none() && n.restricted);
        let n: SlirpNetwork = "net=10.9.0.0/16, host=10.9.1.1, dns=10.9.1.53, \
                               ipv6-net=fd00:9::/64, ipv6-dns=fd00:9::53"
            .parse()
            .unwrap();
        assert_eq!(n.prefix_len, 16);
        assert_eq!(n.host, Ipv4Addr::new(10, 9, 1, 1));
        assert_eq!(n.dns, Ipv4Addr::new(10, 9, 1, 53));
        let v6 = n.ipv6.unwrap();
        assert_eq!(v6.host, "fd00:9::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(v6.dns, "fd00:9::53".parse::<Ipv6Addr>().unwrap());
    }

    #[test]
    fn bad_networks_say_why() {
        let e = |s: &str| s.parse::<SlirpNetwork>().unwrap_err();
        assert_eq!(
            e("net=10.0.2.0/31"),
            "prefix length 31 is out of range (1 to 30)"
        );
        assert_eq!(e("net=10.0.2.1/24"), "10.0.2.1/24 has host bits set");
        assert_eq!(e("host=10.0.3.2"), "host 10.0.3.2 is outside 10.0.2.0/24");
        assert_eq!(
            e("dns=10.0.2.255"),
            "dns 10.0.2.255 is the network's own or broadcast address"
        );
        assert_eq!(e("dns=10.0.2.2"), "host and dns are both 10.0.2.2");
        assert_eq!(e("host=x"), "host=x: not an IPv4 address");
        assert_eq!(
            e("net=10.0.2.0/255.0.255.0"),
            "net=10.0.2.0/255.0.255.0: 255.0.255.0 is not a netmask"
        );
        assert_eq!(
            e("ipv6-host=fec1::2"),
            "ipv6-host fec1::2 is outside fec0::/64"
        );
        assert_eq!(e("ipv6=maybe"), "ipv6=maybe: expected on or off");
        assert!(e("hostfwd=tcp::22-:22").starts_with("unknown key hostfwd"));
        assert_eq!(e("net"), "net: expected key=value");
    }

    #[test]
    fn kinds_round_trip_their_names() {
        for kind in BackendKind::ALL {
            assert_eq!(BackendKind::from_name(kind.name()), Some(kind));
        }
        assert_eq!(BackendKind::from_name("tun"), None);
    }
}
