//! The `raw` backend: an `AF_PACKET` socket on a host interface, so the
//! kernel's device shares the host NIC's wire.
//!
//! The socket is bound to the interface for every EtherType (`ETH_P_ALL`)
//! and joins it in promiscuous mode (`PACKET_MR_PROMISC`, dropped by the
//! kernel when the socket closes), since frames for our own MAC address
//! would otherwise be filtered by the NIC. Frames the host itself sends on
//! the interface are not read (`PACKET_IGNORE_OUTGOING`, Linux 4.20): they
//! are not on the wire for us, and reading them would echo the host's
//! traffic into the kernel.
//!
//! Frames carry no virtio-net header, so the kernel's offloads stay off (as
//! LKL). Two consequences worth knowing, LKL's as well:
//! - a host NIC with GRO or LRO hands packet sockets merged super-frames
//!   whose checksums no longer match, which the kernel then drops; turn
//!   them off (`ethtool -K IF gro off lro off`) on an interface used here;
//! - the host and the kernel cannot talk to each other through this
//!   interface (our frames leave on the wire, the host's never come back).
//!
//! `PACKET_VNET_HDR` would carry GRO's frames intact, but its header is the
//! 10-byte legacy one (the 12-byte `PACKET_VNET_HDR_SZ` needs Linux 6.2) and
//! the driver would have to negotiate every `GUEST_*` offload the NIC's GRO
//! can produce, or lose those frames; not used.

#![forbid(unsafe_code)]

use std::fmt;
use std::os::fd::{AsFd, AsRawFd};

use super::error::BackendError;
use super::spec::BackendKind;
use super::{frame_fd_backend, hostio, FrameFd, FrameIo};

/// An `AF_PACKET` `SOCK_RAW` socket bound to one host interface.
pub struct RawSocket {
    frames: FrameFd,
    ifname: String,
    ifindex: u32,
}

impl RawSocket {
    /// Opens a packet socket on the host interface `ifname` (needs
    /// `CAP_NET_RAW`).
    pub fn open(ifname: &str) -> Result<RawSocket, BackendError> {
        let kind = BackendKind::Raw;
        let ifindex = hostio::if_nametoindex(ifname).map_err(|e| {
            let hint = match e.raw_os_error() {
                Some(libc::ENODEV) | Some(libc::ENXIO) => {
                    Some("no such interface in this network namespace".into())
                }
                _ => None,
            };
            BackendError::os(kind, ifname, "interface", e, hint)
        })?;
        let fd = hostio::packet_socket().map_err(|e| {
            let hint = match e.raw_os_error() {
                Some(libc::EPERM) | Some(libc::EACCES) => Some("needs CAP_NET_RAW".into()),
                Some(libc::EAFNOSUPPORT) => Some("the host kernel has no AF_PACKET".into()),
                _ => None,
            };
            BackendError::os(kind, ifname, "packet socket", e, hint)
        })?;
        // Older kernels lack the option; they echo outgoing frames, which
        // is LKL's behaviour, not a reason to fail.
        match hostio::setsockopt_int(
            fd.as_fd(),
            libc::SOL_PACKET,
            libc::PACKET_IGNORE_OUTGOING,
            1,
        ) {
            Err(e) if e.raw_os_error() != Some(libc::ENOPROTOOPT) => {
                return Err(BackendError::os(
                    kind,
                    ifname,
                    "PACKET_IGNORE_OUTGOING",
                    e,
                    None,
                ))
            }
            _ => {}
        }
        // ETH_P_ALL (3) fits the 16-bit protocol field.
        hostio::packet_bind(fd.as_fd(), ifindex, libc::ETH_P_ALL as u16)
            .map_err(|e| BackendError::os(kind, ifname, "bind", e, None))?;
        hostio::packet_add_membership(fd.as_fd(), ifindex, libc::PACKET_MR_PROMISC)
            .map_err(|e| BackendError::os(kind, ifname, "promiscuous mode", e, None))?;
        Ok(RawSocket {
            frames: FrameFd::new(fd, FrameIo::Message),
            ifname: ifname.to_string(),
            ifindex,
        })
    }

    /// The host interface.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// Its index (in the namespace it was opened in).
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }
}

impl fmt::Debug for RawSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawSocket")
            .field("ifname", &self.ifname)
            .field("ifindex", &self.ifindex)
            .field("fd", &self.frames.as_raw_fd())
            .finish()
    }
}

frame_fd_backend!(RawSocket, frames, vnet_hdr: false);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_interface_is_named() {
        let e = RawSocket::open("lklbk-none0").unwrap_err();
        assert_eq!(
            e.to_string(),
            "raw lklbk-none0: interface: no such device \
             (no such interface in this network namespace)"
        );
        assert_eq!(e.os_error().unwrap().raw_os_error(), Some(libc::ENODEV));
    }
}
