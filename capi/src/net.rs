//! Network devices and interface settings: `lkl_netdev_*_create`,
//! `lkl_netdev_add`, `lkl_netdev_get_ifindex`, `lkl_if_*`,
//! `lkl_set_ipv4_gateway`, ... over [`lkl::virtio::net::backends`],
//! [`lkl::devices`] and [`lkl::netcfg`].

use std::ffi::{c_char, c_int, c_uint, c_void};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use lkl::config::{IpNet, Offload, TABLE_MAIN};
use lkl::devices::AttachedDevice;
use lkl::netcfg::{AddressSpec, Link, NetcfgError, RouteSpec, Rtnl};
use lkl::virtio::net::backends::{open_backend, Backend};
use lkl::virtio::{Net, NetBackend};
use lkl::Errno;

use crate::{c_str, entry, guard, set_last_error, Failure};

/// `struct lkl_netdev` (opaque to C): an opened host backend waiting for
/// `lkl_netdev_add`.
pub struct Netdev {
    backend: Option<Box<dyn NetBackend>>,
    offload: u32,
}

/// `struct lkl_netdev_args`.
#[repr(C)]
pub struct NetdevArgs {
    /// NULL, or 6 bytes: the device's MAC address.
    pub mac: *const u8,
    /// virtio-net feature bits (LKL's `offload`).
    pub offload: c_uint,
}

/// A device given to the kernel: kept until the process ends (the kernel
/// uses it until halt), with the MAC it is found by.
struct Added {
    _device: AttachedDevice,
    mac: [u8; 6],
}

static NETDEVS: Mutex<Vec<Added>> = Mutex::new(Vec::new());

fn netdevs() -> MutexGuard<'static, Vec<Added>> {
    NETDEVS.lock().unwrap_or_else(|e| e.into_inner())
}

/// The MAC a device without one gets: locally administered, unique per id.
pub(crate) fn default_mac(id: usize) -> [u8; 6] {
    let [a, b, c, d] = (id as u32 + 1).to_be_bytes();
    [0x02, 0x4c, a, b, c, d]
}

/// Attaches a virtio-net device over `backend` with `features`; its id.
pub(crate) fn add(
    backend: Box<dyn NetBackend>,
    features: u32,
    mac: Option<[u8; 6]>,
) -> Result<usize, Failure> {
    Offload::new(features).map_err(|why| Failure::new(Errno::EINVAL, format!("offload: {why}")))?;
    let mut list = netdevs();
    let id = list.len();
    let mac = mac.unwrap_or_else(|| default_mac(id));
    let net = Net::new(backend, u64::from(features), Some(mac))
        .map_err(|e| Failure::new(Errno::EINVAL, e))?;
    let device = lkl::devices::attach(Box::new(net)).map_err(|e| Failure::new(Errno::EBUSY, e))?;
    list.push(Added {
        _device: device,
        mac,
    });
    Ok(id)
}

/// Opens `backend`, for the `lkl_netdev_*_create` functions: NULL and a
/// line on stderr when it cannot (LKL prints one too).
fn create(what: &str, backend: Result<Backend, Failure>, offload: c_int) -> *mut Netdev {
    guard(std::ptr::null_mut(), || {
        let opened = backend.and_then(|b| {
            open_backend(&b, offload != 0).map_err(|e| Failure::new(Errno::EINVAL, e))
        });
        match opened {
            Ok(b) => Box::into_raw(Box::new(Netdev {
                backend: Some(b),
                offload: offload as u32,
            })),
            Err(f) => {
                eprintln!("lkl: {what}: {}", f.message);
                set_last_error(format!("{what}: {}", f.message));
                std::ptr::null_mut()
            }
        }
    })
}

/// # Safety
/// `p` is NULL or a NUL-terminated string.
unsafe fn owned(p: *const c_char, what: &str) -> Result<String, Failure> {
    // SAFETY: the caller's promise.
    unsafe { c_str(p, what) }.map(str::to_owned)
}

/// A tap interface `ifname` (created if it does not exist and we may);
/// `offload` non-zero asks for virtio-net headers on the tap.
///
/// # Safety
/// `ifname` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn lkl_netdev_tap_create(
    ifname: *const c_char,
    offload: c_int,
) -> *mut Netdev {
    // SAFETY: the caller's promise.
    let b = unsafe { owned(ifname, "ifname") }.map(|ifname| Backend::Tap { ifname });
    create("lkl_netdev_tap_create", b, offload)
}

/// A raw (`AF_PACKET`) socket on host interface `ifname`.
///
/// # Safety
/// `ifname` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn lkl_netdev_raw_create(ifname: *const c_char) -> *mut Netdev {
    // SAFETY: the caller's promise.
    let b = unsafe { owned(ifname, "ifname") }.map(|ifname| Backend::Raw { ifname });
    create("lkl_netdev_raw_create", b, 0)
}

/// The macvtap character device at `path` (`/dev/tapN`).
///
/// # Safety
/// `path` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn lkl_netdev_macvtap_create(
    path: *const c_char,
    offload: c_int,
) -> *mut Netdev {
    // SAFETY: the caller's promise.
    let b = unsafe { owned(path, "path") }.map(|p| Backend::Macvtap {
        path: PathBuf::from(p),
    });
    create("lkl_netdev_macvtap_create", b, offload)
}

/// Two FIFOs, `"rx_path|tx_path"`. Our frames are length-prefixed (see
/// docs/c-api.md), so the peer must be this library too.
///
/// # Safety
/// `ifname` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn lkl_netdev_pipe_create(
    ifname: *const c_char,
    offload: c_int,
) -> *mut Netdev {
    // SAFETY: the caller's promise.
    let b = unsafe { owned(ifname, "ifname") }.and_then(|s| match s.split_once('|') {
        Some((rx, tx)) if !rx.is_empty() && !tx.is_empty() => Ok(Backend::Pipe {
            rx: PathBuf::from(rx),
            tx: PathBuf::from(tx),
        }),
        _ => Err(Failure::new(
            Errno::EINVAL,
            format!("'{s}': want \"rx_path|tx_path\""),
        )),
    });
    create("lkl_netdev_pipe_create", b, offload)
}

/// A port on the VDE switch whose control directory is `switch_path`.
///
/// # Safety
/// `switch_path` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn lkl_netdev_vde_create(switch_path: *const c_char) -> *mut Netdev {
    // SAFETY: the caller's promise.
    let b = unsafe { owned(switch_path, "switch_path") }.map(|p| Backend::Vde {
        path: PathBuf::from(p),
    });
    create("lkl_netdev_vde_create", b, 0)
}

/// Gives `nd` to the kernel as a virtio-net device (before boot, or
/// hot-added after); its id (0 is valid) or a negative errno. `args` may
/// be NULL; its `offload` replaces the one `nd` was created with.
///
/// # Safety
/// `nd` is NULL or from an `lkl_netdev_*_create`; `args` NULL or a
/// `struct lkl_netdev_args` whose `mac` is NULL or 6 readable bytes.
#[no_mangle]
pub unsafe extern "C" fn lkl_netdev_add(nd: *mut Netdev, args: *const NetdevArgs) -> c_int {
    entry("lkl_netdev_add", || {
        if nd.is_null() {
            return Err(Failure::new(
                Errno::EINVAL,
                "nd is NULL (did the create call fail?)",
            ));
        }
        // SAFETY: non-NULL, and from lkl_netdev_*_create (caller's promise).
        let nd = unsafe { &mut *nd };
        let (mut features, mut mac) = (nd.offload, None);
        if !args.is_null() {
            // SAFETY: non-NULL, the caller passes a struct lkl_netdev_args.
            let args = unsafe { &*args };
            features = args.offload;
            if !args.mac.is_null() {
                let mut m = [0u8; 6];
                // SAFETY: `mac` points to 6 readable bytes (caller's promise).
                unsafe { std::ptr::copy_nonoverlapping(args.mac, m.as_mut_ptr(), 6) };
                mac = Some(m);
            }
        }
        let backend = nd
            .backend
            .take()
            .ok_or_else(|| Failure::new(Errno::EBUSY, "this netdev was already added"))?;
        let id = add(backend, features, mac)?;
        c_int::try_from(id).map_err(|_| Failure::new(Errno::ENOSPC, "too many devices"))
    })
}

/// Frees a netdev that was never added (an added one belongs to the
/// kernel until halt; freeing its handle is harmless).
///
/// # Safety
/// `nd` is NULL or from an `lkl_netdev_*_create`, freed once.
#[no_mangle]
pub unsafe extern "C" fn lkl_netdev_free(nd: *mut Netdev) {
    guard((), || {
        if !nd.is_null() {
            // SAFETY: from Box::into_raw in `create`, freed once.
            drop(unsafe { Box::from_raw(nd) });
        }
    })
}

fn netcfg_failure(e: NetcfgError) -> Failure {
    Failure::new(e.errno().unwrap_or(Errno::EIO), e)
}

fn rtnl() -> Result<Rtnl, Failure> {
    if !lkl::Kernel::is_running() {
        return Err(Failure::new(Errno::ENODEV, "the kernel is not running"));
    }
    Rtnl::open().map_err(netcfg_failure)
}

/// The kernel's ifindex of the device with `mac`, waiting up to 2 s for a
/// device hot-added a moment ago to be probed.
pub(crate) fn ifindex_of(mac: &[u8; 6]) -> Result<Link, Failure> {
    let mut rtnl = rtnl()?;
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let links = rtnl.links().map_err(netcfg_failure)?;
        if let Some(l) = links
            .iter()
            .find(|l| l.address.as_deref() == Some(&mac[..]))
        {
            return Ok(l.link());
        }
        if Instant::now() > deadline {
            return Err(Failure::new(
                Errno::ENODEV,
                "the kernel shows no interface for the device",
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The ifindex of network device `id` (from `lkl_netdev_add`).
#[no_mangle]
pub extern "C" fn lkl_netdev_get_ifindex(id: c_int) -> c_int {
    entry("lkl_netdev_get_ifindex", || {
        let mac = usize::try_from(id)
            .ok()
            .and_then(|i| netdevs().get(i).map(|a| a.mac))
            .ok_or_else(|| {
                Failure::new(Errno::EINVAL, format!("no network device with id {id}"))
            })?;
        let link = ifindex_of(&mac)?;
        c_int::try_from(link.index).map_err(|_| Failure::new(Errno::ERANGE, "ifindex"))
    })
}

/// The ifindex of interface `name`.
///
/// # Safety
/// `name` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn lkl_ifname_to_ifindex(name: *const c_char) -> c_int {
    entry("lkl_ifname_to_ifindex", || {
        // SAFETY: the caller's promise.
        let name = unsafe { c_str(name, "name") }?;
        let index = rtnl()?.ifindex(name).map_err(netcfg_failure)?;
        c_int::try_from(index).map_err(|_| Failure::new(Errno::ERANGE, "ifindex"))
    })
}

/// The link with `ifindex`, for requests (its name is for messages).
fn link(rtnl: &mut Rtnl, ifindex: c_int) -> Result<Link, Failure> {
    let links = rtnl.links().map_err(netcfg_failure)?;
    links
        .iter()
        .find(|l| i64::from(l.index) == i64::from(ifindex))
        .map(|l| l.link())
        .ok_or_else(|| {
            Failure::new(
                Errno::ENODEV,
                format!("no interface with ifindex {ifindex}"),
            )
        })
}

fn set_up(ifindex: c_int, up: bool) -> Result<c_int, Failure> {
    let mut rtnl = rtnl()?;
    let l = link(&mut rtnl, ifindex)?;
    rtnl.set_link_up(&l, up).map_err(netcfg_failure)?;
    Ok(0)
}

/// Brings interface `ifindex` up.
#[no_mangle]
pub extern "C" fn lkl_if_up(ifindex: c_int) -> c_int {
    entry("lkl_if_up", || set_up(ifindex, true))
}

/// Takes interface `ifindex` down.
#[no_mangle]
pub extern "C" fn lkl_if_down(ifindex: c_int) -> c_int {
    entry("lkl_if_down", || set_up(ifindex, false))
}

/// Sets the MTU of interface `ifindex`.
#[no_mangle]
pub extern "C" fn lkl_if_set_mtu(ifindex: c_int, mtu: c_int) -> c_int {
    entry("lkl_if_set_mtu", || {
        let mtu = u32::try_from(mtu).map_err(|_| Failure::new(Errno::EINVAL, "negative MTU"))?;
        let mut rtnl = rtnl()?;
        let l = link(&mut rtnl, ifindex)?;
        rtnl.set_mtu(&l, mtu).map_err(netcfg_failure)?;
        Ok(0)
    })
}

fn add_address(ifindex: c_int, ip: IpAddr, prefix: c_uint) -> Result<c_int, Failure> {
    let addr = u8::try_from(prefix)
        .ok()
        .and_then(|p| IpNet::new(ip, p))
        .ok_or_else(|| Failure::new(Errno::EINVAL, format!("prefix length {prefix} for {ip}")))?;
    let mut rtnl = rtnl()?;
    let l = link(&mut rtnl, ifindex)?;
    rtnl.add_address(&AddressSpec {
        link: l,
        addr,
        nodad: true,
    })
    .map_err(netcfg_failure)?;
    Ok(0)
}

/// Adds IPv4 address `addr` (network byte order, a `struct in_addr`'s
/// `s_addr`) with prefix `netmask_len` to interface `ifindex`.
#[no_mangle]
pub extern "C" fn lkl_if_set_ipv4(ifindex: c_int, addr: c_uint, netmask_len: c_uint) -> c_int {
    entry("lkl_if_set_ipv4", || {
        add_address(
            ifindex,
            IpAddr::V4(Ipv4Addr::from(u32::from_be(addr))),
            netmask_len,
        )
    })
}

/// Reads a 16-byte IPv6 address.
///
/// # Safety
/// `addr` is NULL or 16 readable bytes.
unsafe fn ipv6(addr: *const c_void) -> Result<Ipv6Addr, Failure> {
    if addr.is_null() {
        return Err(Failure::new(Errno::EINVAL, "addr is NULL"));
    }
    let mut b = [0u8; 16];
    // SAFETY: 16 readable bytes (the caller's promise).
    unsafe { std::ptr::copy_nonoverlapping(addr.cast::<u8>(), b.as_mut_ptr(), 16) };
    Ok(Ipv6Addr::from(b))
}

/// Adds IPv6 address `addr` (a `struct in6_addr`) with prefix
/// `netprefix_len` to interface `ifindex`, usable at once (no duplicate
/// address detection, as the config's addresses).
///
/// # Safety
/// `addr` is NULL or 16 readable bytes.
#[no_mangle]
pub unsafe extern "C" fn lkl_if_set_ipv6(
    ifindex: c_int,
    addr: *const c_void,
    netprefix_len: c_uint,
) -> c_int {
    entry("lkl_if_set_ipv6", || {
        // SAFETY: the caller's promise.
        let ip = unsafe { ipv6(addr) }?;
        add_address(ifindex, IpAddr::V6(ip), netprefix_len)
    })
}

fn default_route(gw: IpAddr) -> Result<c_int, Failure> {
    let any = match gw {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let destination = IpNet::new(any, 0).ok_or_else(|| Failure::new(Errno::EINVAL, "route"))?;
    rtnl()?
        .add_route(&RouteSpec {
            destination,
            gateway: Some(gw),
            dev: None,
            table: TABLE_MAIN,
            metric: None,
        })
        .map_err(netcfg_failure)?;
    Ok(0)
}

/// Adds an IPv4 default route via `addr` (network byte order).
#[no_mangle]
pub extern "C" fn lkl_set_ipv4_gateway(addr: c_uint) -> c_int {
    entry("lkl_set_ipv4_gateway", || {
        default_route(IpAddr::V4(Ipv4Addr::from(u32::from_be(addr))))
    })
}

/// Adds an IPv6 default route via `addr` (a `struct in6_addr`).
///
/// # Safety
/// `addr` is NULL or 16 readable bytes.
#[no_mangle]
pub unsafe extern "C" fn lkl_set_ipv6_gateway(addr: *const c_void) -> c_int {
    entry("lkl_set_ipv6_gateway", || {
        // SAFETY: the caller's promise.
        default_route(IpAddr::V6(unsafe { ipv6(addr) }?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_macs_are_local_and_distinct() {
        assert_eq!(default_mac(0), [0x02, 0x4c, 0, 0, 0, 1]);
        assert_ne!(default_mac(0), default_mac(1));
        assert_eq!(default_mac(0)[0] & 0x03, 0x02);
    }
}
