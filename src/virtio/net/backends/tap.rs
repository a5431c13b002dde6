//! The `tap` and `macvtap` backends: a host tap interface, reached through
//! `/dev/net/tun` or through a macvtap link's `/dev/tapN`.
//!
//! Both are tap descriptors (`IFF_TAP | IFF_NO_PI`): every `read` is one
//! Ethernet frame the host sent to the interface, every `write` one frame
//! the interface receives. With offloads wanted the descriptor also has
//! `IFF_VNET_HDR` and a 12-byte header (`TUNSETVNETHDRSZ`), the
//! `virtio_net_hdr_v1` the device uses, so partial checksums and segmented
//! frames cross untouched in both directions; [`NetBackend::set_offload`]
//! then tells the host which of them the driver accepts (`TUNSETOFFLOAD`).

#![forbid(unsafe_code)]

use std::fmt;
use std::fs::OpenOptions;
use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::error::{BackendError, Cause};
use super::spec::BackendKind;
use super::{hostio, FrameFd, FrameIo};
use crate::virtio::net::{features, NetBackend, VNET_HDR_LEN};

/// The tun/tap clone device.
pub const TUN_PATH: &str = "/dev/net/tun";

/// The `TUN_F_*` offloads to accept on a tap whose reader negotiated
/// `acked` (virtio-net feature bits). Only the driver's receive side
/// matters: a `GUEST_*` bit says the driver takes such frames. TSO and UFO
/// come only with `TUN_F_CSUM`, which the kernel requires (`set_offload`
/// in drivers/net/tun.c refuses them alone), as virtio does (5.1.3.1).
pub fn tun_offload_flags(acked: u64) -> libc::c_uint {
    if acked & features::GUEST_CSUM == 0 {
        return 0;
    }
    let mut flags = libc::TUN_F_CSUM;
    if acked & features::GUEST_TSO4 != 0 {
        flags |= libc::TUN_F_TSO4;
    }
    if acked & features::GUEST_TSO6 != 0 {
        flags |= libc::TUN_F_TSO6;
    }
    if acked & features::GUEST_UFO != 0 {
        flags |= libc::TUN_F_UFO;
    }
    flags
}

/// A tap descriptor: tap, macvtap, or an inherited tap fd.
pub(crate) struct TapFd {
    frames: FrameFd,
    vnet_hdr: bool,
}

impl TapFd {
    /// Wraps a non-blocking tap descriptor whose vnet header, if
    /// `vnet_hdr`, is already [`configure_vnet_hdr`]ed.
    pub(crate) fn new(fd: OwnedFd, vnet_hdr: bool) -> Self {
        TapFd {
            frames: FrameFd::new(fd, FrameIo::Device),
            vnet_hdr,
        }
    }

    pub(crate) fn send(&self, frame: &[IoSlice<'_>]) -> io::Result<usize> {
        self.frames.send(frame)
    }

    pub(crate) fn recv(&self, frame: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.frames.recv(frame)
    }

    pub(crate) fn has_vnet_hdr(&self) -> bool {
        self.vnet_hdr
    }

    /// `TUNSETOFFLOAD` for the negotiated features. Without a vnet header
    /// the host never offloads to us and there is nothing to set.
    pub(crate) fn set_offload(&self, acked: u64) -> io::Result<()> {
        if !self.vnet_hdr {
            return Ok(());
        }
        hostio::tun_set_offload(self.frames.fd().as_fd(), tun_offload_flags(acked))
    }
}

impl AsRawFd for TapFd {
    fn as_raw_fd(&self) -> RawFd {
        self.frames.as_raw_fd()
    }
}

/// Sets the vnet header a tap descriptor with `IFF_VNET_HDR` carries to
/// our 12-byte, little-endian `virtio_net_hdr_v1`.
pub(crate) fn configure_vnet_hdr(fd: &OwnedFd) -> io::Result<()> {
    // 12 fits an int.
    hostio::tun_set_vnet_hdr_sz(fd.as_fd(), VNET_HDR_LEN as libc::c_int)?;
    if cfg!(target_endian = "big") {
        // A tap's header is in host order by default; virtio 1.x is LE.
        hostio::tun_set_vnet_le(fd.as_fd())?;
    }
    Ok(())
}

/// Opens a character device read-write, non-blocking and close-on-exec.
fn open_device(path: &Path) -> io::Result<OwnedFd> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    Ok(OwnedFd::from(file))
}

/// A host tap interface, attached by name through `/dev/net/tun`.
pub struct Tap {
    tap: TapFd,
    ifname: String,
    created: bool,
}

impl Tap {
    /// Attaches to the tap interface `ifname`, or creates it if there is
    /// none and we may (`CAP_NET_ADMIN`; a created tap is not persistent
    /// and goes away with this backend). `vnet_hdr` sets `IFF_VNET_HDR`
    /// and the 12-byte header (wanted for offloads).
    pub fn open(ifname: &str, vnet_hdr: bool) -> Result<Tap, BackendError> {
        let kind = BackendKind::Tap;
        let bad = |why: &str| BackendError::new(kind, ifname, Cause::BadParam(why.into()));
        check_ifname(ifname).map_err(bad)?;
        let existed = hostio::if_nametoindex(ifname).is_ok();

        let fd = open_device(Path::new(TUN_PATH)).map_err(|e| {
            let hint = match e.raw_os_error() {
                Some(libc::ENOENT) | Some(libc::ENODEV) | Some(libc::ENXIO) => {
                    Some("no tun driver: `modprobe tun`, or `mknod /dev/net/tun c 10 200`".into())
                }
                Some(libc::EACCES) | Some(libc::EPERM) => {
                    Some("needs CAP_NET_ADMIN or read-write access to /dev/net/tun".into())
                }
                _ => None,
            };
            BackendError::os(kind, ifname, TUN_PATH, e, hint)
        })?;

        let flags = libc::IFF_TAP | libc::IFF_NO_PI | if vnet_hdr { libc::IFF_VNET_HDR } else { 0 };
        let attached = match hostio::tun_set_iff(fd.as_fd(), ifname, flags) {
            // A tap made with `multi_queue` takes only multi-queue attaches.
            Err(e) if existed && e.raw_os_error() == Some(libc::EINVAL) => {
                hostio::tun_set_iff(fd.as_fd(), ifname, flags | libc::IFF_MULTI_QUEUE)
                    .map_err(|_| e)
            }
            r => r,
        };
        let name = attached.map_err(|e| {
            let hint = match e.raw_os_error() {
                Some(libc::EPERM) | Some(libc::EACCES) if existed => Some(format!(
                    "the tap belongs to another user: make it with \
                     `ip tuntap add {ifname} mode tap user $USER`, or run with CAP_NET_ADMIN"
                )),
                Some(libc::EPERM) | Some(libc::EACCES) => Some(format!(
                    "creating a tap needs CAP_NET_ADMIN; or make it beforehand with \
                     `ip tuntap add {ifname} mode tap user $USER`"
                )),
                Some(libc::EBUSY) => Some("another program has it open".into()),
                Some(libc::EINVAL) if existed => {
                    Some("an interface with that name exists but is not a tap".into())
                }
                _ => None,
            };
            BackendError::os(kind, ifname, "attach (TUNSETIFF)", e, hint)
        })?;

        if vnet_hdr {
            configure_vnet_hdr(&fd).map_err(|e| {
                BackendError::os(kind, ifname, "vnet header (TUNSETVNETHDRSZ)", e, None)
            })?;
        }
        // A persistent tap keeps the offloads its last reader switched on:
        // start from none, so the host never sends us segments we did not
        // negotiate (set_offload turns on what the driver accepts).
        hostio::tun_set_offload(fd.as_fd(), 0).map_err(|e| {
            BackendError::os(kind, ifname, "clear offloads (TUNSETOFFLOAD)", e, None)
        })?;
        Ok(Tap {
            tap: TapFd::new(fd, vnet_hdr),
            ifname: name,
            created: !existed,
        })
    }

    /// The interface name, as the kernel reports it.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// True if the interface did not exist and we created it.
    pub fn created(&self) -> bool {
        self.created
    }
}

/// Why `name` cannot be an existing interface's name, mirroring the
/// kernel's `dev_valid_name` (net/core/dev.c), plus `%` (a name pattern
/// would make the kernel pick a new name).
fn check_ifname(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("an interface name is needed");
    }
    if name.len() >= libc::IFNAMSIZ {
        return Err("is longer than 15 bytes, the longest interface name");
    }
    if name == "." || name == ".." {
        return Err("is not an interface name");
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c == '%' || c == '\0' || c.is_whitespace())
    {
        return Err("contains a character interface names cannot have (/ : % or a space)");
    }
    Ok(())
}

impl fmt::Debug for Tap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tap")
            .field("ifname", &self.ifname)
            .field("fd", &self.tap.as_raw_fd())
            .field("vnet_hdr", &self.tap.vnet_hdr)
            .field("created", &self.created)
            .finish()
    }
}

/// `Tap` and `Macvtap` are both a tap descriptor (`self.tap`) with a name:
/// the backend calls go to the descriptor.
macro_rules! tap_backend {
    ($ty:ty) => {
        impl AsRawFd for $ty {
            fn as_raw_fd(&self) -> RawFd {
                self.tap.as_raw_fd()
            }
        }

        impl NetBackend for $ty {
            fn send(&mut self, frame: &[IoSlice<'_>]) -> io::Result<usize> {
                self.tap.send(frame)
            }

            fn recv(&mut self, frame: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
                self.tap.recv(frame)
            }

            fn has_vnet_hdr(&self) -> bool {
                self.tap.has_vnet_hdr()
            }

            fn set_offload(&mut self, acked_features: u64) -> io::Result<()> {
                self.tap.set_offload(acked_features)
            }

            fn rx_pollable(&self) -> bool {
                true
            }
        }
    };
}

tap_backend!(Tap);

/// A macvtap link's character device (`/dev/tapN`, N its ifindex): frames
/// go out through the lower device and come in for the macvtap's MAC.
pub struct Macvtap {
    tap: TapFd,
    ifname: String,
}

impl Macvtap {
    /// Opens the macvtap character device at `path`. `vnet_hdr` as for
    /// [`Tap::open`] (a macvtap has the header by default; it is turned
    /// off here unless wanted).
    pub fn open(path: &Path, vnet_hdr: bool) -> Result<Macvtap, BackendError> {
        let kind = BackendKind::Macvtap;
        let param = path.display().to_string();
        let fd = open_device(path).map_err(|e| {
            let hint = match e.raw_os_error() {
                Some(libc::ENOENT) => Some(
                    "a macvtap link's device is /dev/tap<ifindex>; \
                     see `ip -d link show type macvtap`"
                        .into(),
                ),
                Some(libc::EACCES) | Some(libc::EPERM) => {
                    Some("the device must be readable and writable by this user".into())
                }
                Some(libc::ENXIO) | Some(libc::ENODEV) => {
                    Some("the macvtap link behind it is gone".into())
                }
                _ => None,
            };
            BackendError::os(kind, &param, path.display().to_string(), e, hint)
        })?;
        // A macvtap answers TUNGETIFF with its link's name; anything else
        // (a tty, an unattached /dev/net/tun, a file) does not.
        let (ifname, flags) = hostio::tun_get_iff(fd.as_fd()).map_err(|e| {
            BackendError::os(
                kind,
                &param,
                "TUNGETIFF",
                e,
                Some("not a macvtap character device".into()),
            )
        })?;
        if flags & libc::IFF_TAP == 0 {
            return Err(BackendError::new(
                kind,
                &param,
                Cause::BadParam(format!("{ifname} is not a tap-like interface")),
            ));
        }
        let want = libc::IFF_TAP | libc::IFF_NO_PI | if vnet_hdr { libc::IFF_VNET_HDR } else { 0 };
        // macvtap's TUNSETIFF ignores the name and sets only these flags.
        hostio::tun_set_iff(fd.as_fd(), "", want)
            .map_err(|e| BackendError::os(kind, &param, "TUNSETIFF", e, None))?;
        if vnet_hdr {
            configure_vnet_hdr(&fd).map_err(|e| {
                BackendError::os(kind, &param, "vnet header (TUNSETVNETHDRSZ)", e, None)
            })?;
        }
        Ok(Macvtap {
            tap: TapFd::new(fd, vnet_hdr),
            ifname,
        })
    }

    /// The macvtap link's interface name.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }
}

impl fmt::Debug for Macvtap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Macvtap")
            .field("ifname", &self.ifname)
            .field("fd", &self.tap.as_raw_fd())
            .field("vnet_hdr", &self.tap.vnet_hdr)
            .finish()
    }
}

tap_backend!(Macvtap);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offload_flags_follow_the_guest_bits() {
        use features::*;
        assert_eq!(tun_offload_flags(0), 0);
        // Host-side bits and MRG_RXBUF ask nothing of the tap's reader.
        assert_eq!(tun_offload_flags(CSUM | HOST_TSO4 | MRG_RXBUF), 0);
        assert_eq!(tun_offload_flags(GUEST_CSUM), libc::TUN_F_CSUM);
        assert_eq!(
            tun_offload_flags(GUEST_CSUM | GUEST_TSO4 | GUEST_TSO6 | GUEST_UFO),
            libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6 | libc::TUN_F_UFO
        );
        // Segmentation without checksums is refused by the kernel: never
        // asked for.
        assert_eq!(tun_offload_flags(GUEST_TSO4), 0);
        // LKL's 0x883 = CSUM | GUEST_CSUM | GUEST_TSO4 | HOST_TSO4.
        assert_eq!(
            tun_offload_flags(0x883),
            libc::TUN_F_CSUM | libc::TUN_F_TSO4
        );
    }

    #[test]
    fn bad_names_are_refused_before_any_syscall() {
        for (name, frag) in [
            ("", "needed"),
            ("sixteen-bytes-xx", "longer than 15"),
            ("..", "not an interface"),
            ("tap%d", "character"),
            ("a b", "character"),
            ("a/b", "character"),
        ] {
            let e = Tap::open(name, false).unwrap_err();
            assert!(matches!(e.cause(), Cause::BadParam(_)), "{name}: {e}");
            assert!(e.to_string().contains(frag), "{name}: {e}");
        }
    }

    #[test]
    fn macvtap_errors_name_the_path() {
        let e = Macvtap::open(Path::new("/nonexistent/tap42"), true).unwrap_err();
        assert_eq!(
            e.to_string(),
            "macvtap /nonexistent/tap42: /nonexistent/tap42: no such file or directory \
             (a macvtap link's device is /dev/tap<ifindex>; see `ip -d link show type macvtap`)"
        );
        // /dev/null opens, but is no macvtap.
        let e = Macvtap::open(Path::new("/dev/null"), false).unwrap_err();
        assert!(
            e.to_string().starts_with("macvtap /dev/null: TUNGETIFF: "),
            "{e}"
        );
        assert!(
            e.to_string().ends_with("(not a macvtap character device)"),
            "{e}"
        );
    }
}
