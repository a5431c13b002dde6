//! The validated config, as typed values. Everything here has passed the
//! checks in `validate.rs`: addresses parse and fit their prefixes, files
//! exist, names are legal. Consumers need not check again.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use crate::virtio::net::backends::{Backend, BackendKind};

/// An Ethernet address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// Parses `aa:bb:cc:dd:ee:ff` (six groups of one or two hex digits, as
    /// LKL reads them). On failure, says why.
    pub fn parse(s: &str) -> Result<MacAddr, String> {
        let mut octets = [0u8; 6];
        let mut groups = s.split(':');
        for (i, octet) in octets.iter_mut().enumerate() {
            let group = match groups.next() {
                Some(g) => g,
                None => {
                    return Err(format!(
                        "has {i} groups; a MAC address has 6 (aa:bb:cc:dd:ee:ff)"
                    ))
                }
            };
            if group.is_empty() || group.len() > 2 || !group.bytes().all(|b| b.is_ascii_hexdigit())
            {
                return Err(format!(
                    "has {} as group {}; each group is one or two hex digits (aa:bb:cc:dd:ee:ff)",
                    serde_json::Value::from(group),
                    i + 1
                ));
            }
            *octet = u8::from_str_radix(group, 16).map_err(|e| e.to_string())?;
        }
        if groups.next().is_some() {
            return Err("has more than 6 groups; a MAC address has 6 (aa:bb:cc:dd:ee:ff)".into());
        }
        Ok(MacAddr(octets))
    }

    /// True for a group (multicast or broadcast) address: the lowest bit
    /// of the first byte is set.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 != 0
    }

    /// True for 00:00:00:00:00:00.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

fn mask_v4(prefix: u8) -> u32 {
    // A shift by 32 would overflow; /0 is the empty mask.
    u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0)
}

fn mask_v6(prefix: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(prefix.min(128)))
        .unwrap_or(0)
}

/// An IPv4 address with its prefix length (`192.168.13.2/24`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Net {
    addr: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Net {
    /// None if `prefix` > 32.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Option<Ipv4Net> {
        (prefix <= 32).then_some(Ipv4Net { addr, prefix })
    }
    /// The address.
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }
    /// The prefix length, 0..=32.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }
    /// The netmask (`255.255.255.0` for /24).
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(mask_v4(self.prefix))
    }
    /// The address with the host bits cleared.
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & mask_v4(self.prefix))
    }
    /// True if `ip` is in this subnet.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = mask_v4(self.prefix);
        u32::from(ip) & mask == u32::from(self.addr) & mask
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// An IPv6 address with its prefix length (`fc03::2/64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Net {
    addr: Ipv6Addr,
    prefix: u8,
}

impl Ipv6Net {
    /// None if `prefix` > 128.
    pub fn new(addr: Ipv6Addr, prefix: u8) -> Option<Ipv6Net> {
        (prefix <= 128).then_some(Ipv6Net { addr, prefix })
    }
    /// The address.
    pub fn addr(&self) -> Ipv6Addr {
        self.addr
    }
    /// The prefix length, 0..=128.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }
    /// The address with the host bits cleared.
    pub fn network(&self) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.addr) & mask_v6(self.prefix))
    }
    /// True if `ip` is in this subnet.
    pub fn contains(&self, ip: Ipv6Addr) -> bool {
        let mask = mask_v6(self.prefix);
        u128::from(ip) & mask == u128::from(self.addr) & mask
    }
}

impl fmt::Display for Ipv6Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A subnet of either family (a route's destination).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpNet {
    /// IPv4.
    V4(Ipv4Net),
    /// IPv6.
    V6(Ipv6Net),
}

impl IpNet {
    /// `0.0.0.0/0`.
    pub const DEFAULT_V4: IpNet = IpNet::V4(Ipv4Net {
        addr: Ipv4Addr::UNSPECIFIED,
        prefix: 0,
    });
    /// `::/0`.
    pub const DEFAULT_V6: IpNet = IpNet::V6(Ipv6Net {
        addr: Ipv6Addr::UNSPECIFIED,
        prefix: 0,
    });

    /// None if `prefix` is too long for the family.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<IpNet> {
        match addr {
            IpAddr::V4(a) => Ipv4Net::new(a, prefix).map(IpNet::V4),
            IpAddr::V6(a) => Ipv6Net::new(a, prefix).map(IpNet::V6),
        }
    }
    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        match self {
            IpNet::V4(n) => n.prefix(),
            IpNet::V6(n) => n.prefix(),
        }
    }
    /// The address part.
    pub fn addr(&self) -> IpAddr {
        match self {
            IpNet::V4(n) => IpAddr::V4(n.addr()),
            IpNet::V6(n) => IpAddr::V6(n.addr()),
        }
    }
    /// True if `ip` is in this subnet (false across families).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self, ip) {
            (IpNet::V4(n), IpAddr::V4(ip)) => n.contains(ip),
            (IpNet::V6(n), IpAddr::V6(ip)) => n.contains(ip),
            _ => false,
        }
    }
    /// True for an IPv4 subnet.
    pub fn is_ipv4(&self) -> bool {
        matches!(self, IpNet::V4(_))
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpNet::V4(n) => n.fmt(f),
            IpNet::V6(n) => n.fmt(f),
        }
    }
}

/// virtio-net feature bits offered to the kernel's driver (LKL's `offload`
/// key). Only the bits LKL's backends implement are accepted, and each
/// bit's dependencies (virtio 1.2, 5.1.3.1) must be present.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Offload(u32);

impl Offload {
    /// VIRTIO_NET_F_CSUM: the device takes packets with partial checksums.
    pub const CSUM: u32 = 1 << 0;
    /// VIRTIO_NET_F_GUEST_CSUM: received packets may have partial checksums.
    pub const GUEST_CSUM: u32 = 1 << 1;
    /// VIRTIO_NET_F_GUEST_TSO4: the kernel can receive TSOv4.
    pub const GUEST_TSO4: u32 = 1 << 7;
    /// VIRTIO_NET_F_GUEST_TSO6: the kernel can receive TSOv6.
    pub const GUEST_TSO6: u32 = 1 << 8;
    /// VIRTIO_NET_F_HOST_TSO4: the device takes TSOv4.
    pub const HOST_TSO4: u32 = 1 << 11;
    /// VIRTIO_NET_F_HOST_TSO6: the device takes TSOv6.
    pub const HOST_TSO6: u32 = 1 << 12;
    /// VIRTIO_NET_F_HOST_UFO: the device takes UFO.
    pub const HOST_UFO: u32 = 1 << 14;
    /// VIRTIO_NET_F_MRG_RXBUF: mergeable receive buffers.
    pub const MRG_RXBUF: u32 = 1 << 15;

    /// Every accepted bit with its name.
    pub const BITS: [(u32, &'static str); 8] = [
        (Offload::CSUM, "CSUM"),
        (Offload::GUEST_CSUM, "GUEST_CSUM"),
        (Offload::GUEST_TSO4, "GUEST_TSO4"),
        (Offload::GUEST_TSO6, "GUEST_TSO6"),
        (Offload::HOST_TSO4, "HOST_TSO4"),
        (Offload::HOST_TSO6, "HOST_TSO6"),
        (Offload::HOST_UFO, "HOST_UFO"),
        (Offload::MRG_RXBUF, "MRG_RXBUF"),
    ];

    /// Bits that need another bit: (bit, needs).
    const NEEDS: [(u32, u32); 5] = [
        (Offload::GUEST_TSO4, Offload::GUEST_CSUM),
        (Offload::GUEST_TSO6, Offload::GUEST_CSUM),
        (Offload::HOST_TSO4, Offload::CSUM),
        (Offload::HOST_TSO6, Offload::CSUM),
        (Offload::HOST_UFO, Offload::CSUM),
    ];

    /// Checks a bitmask; on failure, says which bit is wrong.
    pub fn new(bits: u32) -> Result<Offload, String> {
        let known = Offload::BITS.iter().fold(0, |acc, (b, _)| acc | b);
        let unknown = bits & !known;
        if unknown != 0 {
            let bit = unknown.trailing_zeros();
            return Err(format!(
                "sets bit {bit} ({:#x}), which is not an offload LKL's backends implement \
                 (known: {})",
                1u32 << bit,
                Offload::BITS
                    .iter()
                    .map(|(b, n)| format!("{n}={b:#x}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        for (bit, needs) in Offload::NEEDS {
            if bits & bit != 0 && bits & needs == 0 {
                return Err(format!(
                    "sets {} without {} ({needs:#x}), which it depends on (virtio 1.2, 5.1.3.1)",
                    Offload::name(bit),
                    Offload::name(needs)
                ));
            }
        }
        Ok(Offload(bits))
    }

    fn name(bit: u32) -> &'static str {
        Offload::BITS
            .iter()
            .find(|(b, _)| *b == bit)
            .map_or("?", |(_, n)| n)
    }

    /// What an interface of this backend gets with no `offload` key (see
    /// [`BackendKind::default_offload`]).
    pub fn default_for(kind: BackendKind) -> Offload {
        u32::try_from(kind.default_offload())
            .ok()
            .and_then(|bits| Offload::new(bits).ok())
            .unwrap_or_default()
    }

    /// The names of the bits set (`CSUM`, `GUEST_CSUM`...).
    pub fn names(self) -> Vec<&'static str> {
        Offload::BITS
            .iter()
            .filter(|(b, _)| self.0 & b != 0)
            .map(|(_, n)| *n)
            .collect()
    }

    /// The bitmask.
    pub fn bits(self) -> u32 {
        self.0
    }
    /// True if every bit of `bits` is set.
    pub fn contains(self, bits: u32) -> bool {
        self.0 & bits == bits
    }
    /// True for no offloads.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// A permanent neighbour (ARP or NDP) entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Neighbor {
    /// The neighbour's address.
    pub ip: IpAddr,
    /// Its link-layer address.
    pub mac: MacAddr,
}

/// A root queueing discipline (LKL supports only the `root` parent).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Qdisc {
    /// The qdisc kind (`fq`, `fq_codel`, `pfifo`...).
    pub kind: String,
}

/// One network interface: `interfaces[i]` in JSON, `eth<i>` in the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// The name the kernel gives it: `eth<index>`.
    pub name: String,
    /// Where its packets go.
    pub backend: Backend,
    /// MTU (68..=65535, at least 1280 with IPv6); None keeps the default.
    pub mtu: Option<u32>,
    /// `ip` and `masklen`.
    pub ipv4: Option<Ipv4Net>,
    /// `ifgateway`: a policy-routing table for this interface (rule "from
    /// ip" → table 2×ifindex, holding the subnet and a default route via
    /// this gateway). Always inside `ipv4`'s subnet.
    pub ifgateway: Option<Ipv4Addr>,
    /// `ipv6` and `masklen6`.
    pub ipv6: Option<Ipv6Net>,
    /// `ifgateway6`: as `ifgateway`, table 2×ifindex+1. Link-local, or
    /// inside `ipv6`'s prefix.
    pub ifgateway6: Option<Ipv6Addr>,
    /// The interface's MAC; None lets the device pick.
    pub mac: Option<MacAddr>,
    /// `neigh`: permanent neighbour entries.
    pub neighbors: Vec<Neighbor>,
    /// `qdisc`: root qdiscs (at most one).
    pub qdiscs: Vec<Qdisc>,
    /// `offload`: the virtio-net features offered to the kernel's driver;
    /// without the key, [`Offload::default_for`] the backend. Empty unless
    /// the backend supports them.
    pub offload: Offload,
    /// `dad`: add `ipv6` for duplicate address detection and wait for it
    /// to end before `main` (ours). Off by default: the address is added
    /// with `IFA_F_NODAD`, usable at once.
    pub dad: bool,
}

/// The `main` routing table.
pub const TABLE_MAIN: u32 = 254;
/// The `local` routing table.
pub const TABLE_LOCAL: u32 = 255;
/// The `default` routing table.
pub const TABLE_DEFAULT: u32 = 253;

/// A static route (`routes[i]`, our extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The destination subnet (host bits clear).
    pub destination: IpNet,
    /// The next hop, same family as `destination`.
    pub gateway: Option<IpAddr>,
    /// The output interface: `lo` or `eth<i>` of a configured interface.
    pub device: Option<String>,
    /// The routing table ([`TABLE_MAIN`] unless given).
    pub table: u32,
    /// The route's metric (priority).
    pub metric: Option<u32>,
}

/// A disk image (`disks[i]`, our extension): attached as a virtio-blk
/// device, mounted inside the kernel if `mount` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    /// The image file or block device on the host (absolute).
    pub image: PathBuf,
    /// The filesystem type (`ext4`, `vfat`...); required with `mount`.
    pub fstype: Option<String>,
    /// The partition to mount; 0 is the whole disk (LKL's convention).
    pub partition: u32,
    /// The mount point inside the kernel (an absolute path).
    pub mount: Option<String>,
    /// Attach read-only.
    pub readonly: bool,
}

/// One sysctl setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sysctl {
    /// The key as written (`net.ipv4.tcp_congestion_control`).
    pub key: String,
    /// The value written to the file.
    pub value: String,
}

impl Sysctl {
    /// The file under the kernel's `/proc/sys`: dots become slashes, as in
    /// LKL; a key already written with slashes is kept as it is (so names
    /// with dots, like VLAN interfaces, stay reachable).
    pub fn proc_path(&self) -> String {
        if self.key.contains('/') {
            format!("/proc/sys/{}", self.key)
        } else {
            format!("/proc/sys/{}", self.key.replace('.', "/"))
        }
    }
}

/// LKL's `debug` bitmask (`LKL_HIJACK_DEBUG`). In LKL's hijack any
/// non-zero value shows the kernel console (and its own messages); 0x100
/// pauses the program at exit, 0x200 waits for Enter before boot, 0x400
/// turns on DPDK's logging. Here: non-zero shows the console and the
/// effective settings, 0x100 and 0x200 as LKL; 0x400 and the bits LKL
/// defines nothing for (above 0x400) are rejected by validation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct DebugFlags(pub u32);

impl DebugFlags {
    /// Pause forever at exit, keeping the kernel alive for inspection.
    pub const PAUSE_AT_EXIT: u32 = 0x100;
    /// Wait for Enter on stdin before booting.
    pub const WAIT_BEFORE_BOOT: u32 = 0x200;
    /// LKL: DPDK's EAL logging (no DPDK backend here).
    pub const DPDK_LOG: u32 = 0x400;
    /// The bits accepted: 0x1-0xff (LKL gives them no meaning beyond
    /// "non-zero": the console), 0x100 and 0x200.
    pub const ACCEPTED: u32 = 0xff | Self::PAUSE_AT_EXIT | Self::WAIT_BEFORE_BOOT;

    /// True if the kernel console and library messages are shown.
    pub fn console(self) -> bool {
        self.0 != 0
    }
    /// True if bit 0x100 is set.
    pub fn pause_at_exit(self) -> bool {
        self.0 & DebugFlags::PAUSE_AT_EXIT != 0
    }
    /// True if bit 0x200 is set.
    pub fn wait_before_boot(self) -> bool {
        self.0 & DebugFlags::WAIT_BEFORE_BOOT != 0
    }
}

/// `mode`: where the kernel runs (ours; LKL has only the single-process
/// way). Read by `bin/lkl-hijack.sh`, which starts a kernel server for the
/// tree or not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Mode {
    /// One kernel, in a server, for the program and every process it
    /// starts (the launcher's default).
    #[default]
    Tree,
    /// The kernel inside the program's process (LKL's way).
    SingleProcess,
}

impl Mode {
    /// The config's spelling.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Tree => "tree",
            Mode::SingleProcess => "single-process",
        }
    }
}

/// LKL's `singlecpu`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum SingleCpu {
    /// 0: no pinning.
    #[default]
    Off,
    /// 1: pin the kernel's threads to the first allowed CPU (the threads
    /// boot creates, and the kernel's later ones, which inherit it).
    Kernel,
    /// 2: also pin the device threads (network polling, disk I/O).
    KernelAndPolling,
}

/// `syscalls` (ours): which system calls of the program reach the kernel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Syscalls {
    /// "libc": the calls that go through the dynamic libc (the
    /// `LD_PRELOAD` hooks).
    #[default]
    Libc,
    /// "all": every system call, also raw `syscall` instructions (Syscall
    /// User Dispatch; docs/every-syscall.md).
    All,
}

impl Syscalls {
    /// The config's word for it.
    pub fn word(self) -> &'static str {
        match self {
            Syscalls::Libc => "libc",
            Syscalls::All => "all",
        }
    }
}

impl SingleCpu {
    /// LKL's number for this mode.
    pub fn number(self) -> u8 {
        match self {
            SingleCpu::Off => 0,
            SingleCpu::Kernel => 1,
            SingleCpu::KernelAndPolling => 2,
        }
    }
}

/// Where the library's diagnostics go (`log`, `LKL_HIJACK_LOG`; ours).
/// Whether the kernel console is shown is `debug`'s business.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub enum LogTarget {
    /// The program's stderr (the default).
    #[default]
    Stderr,
    /// Appended to this file (absolute; its directory exists).
    File(PathBuf),
}

/// A validated configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// The network interfaces, `eth0` first.
    pub interfaces: Vec<Interface>,
    /// `gateway`: the IPv4 default route (main table).
    pub gateway: Option<Ipv4Addr>,
    /// `gateway6`: the IPv6 default route.
    pub gateway6: Option<Ipv6Addr>,
    /// `nameserver`: written to the kernel's `/etc/resolv.conf`, one line
    /// each (at most 3, glibc's limit).
    pub nameservers: Vec<IpAddr>,
    /// `debug`.
    pub debug: DebugFlags,
    /// `mount`: pseudo filesystems, each mounted at `/<type>`.
    pub mounts: Vec<String>,
    /// `singlecpu`.
    pub single_cpu: SingleCpu,
    /// `mode`.
    pub mode: Mode,
    /// `syscalls` (ours).
    pub syscalls: Syscalls,
    /// `sysctl`, in order.
    pub sysctls: Vec<Sysctl>,
    /// `boot_cmdline`: extra kernel command-line parameters.
    pub boot_cmdline: String,
    /// `dump`: kernel paths printed at exit.
    pub dump: Vec<String>,
    /// `delay_main`: sleep after configuring, before `main()`.
    pub delay_main: Option<Duration>,
    /// `routes` (ours).
    pub routes: Vec<Route>,
    /// `disks` (ours).
    pub disks: Vec<Disk>,
    /// `log` (ours).
    pub log: LogTarget,
    /// The config file that was read, if any.
    pub file: Option<PathBuf>,
    /// Things accepted for compatibility that deserve a line on stderr.
    pub warnings: Vec<super::ConfigWarning>,
}
