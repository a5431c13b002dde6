//! The seam between the net device and the host side of the wire.
//!
//! A [`NetBackend`] moves whole frames (after smoltcp's `Device` and LKL's
//! `lkl_dev_net_ops`): one `send` is one frame out, one `recv` one frame
//! in. It is used only from the device's worker thread, which waits for
//! its fd with `poll`, so both calls must be non-blocking. The device is
//! chosen at run time by the config layer, so it is held as a
//! `Box<dyn NetBackend>`.

#![forbid(unsafe_code)]

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use crate::virtio::hostio;

/// The host end of a virtio-net device.
///
/// If [`has_vnet_hdr`](Self::has_vnet_hdr) is true, every frame in both
/// directions starts with the 12-byte `virtio_net_hdr_v1` (a tap device
/// with `IFF_VNET_HDR` and `TUNSETVNETHDRSZ` 12); otherwise frames are
/// bare Ethernet frames and the device adds and strips the header.
pub trait NetBackend: Send + AsRawFd {
    /// Sends one frame gathered from `frame`. Must not block: returns
    /// `WouldBlock` when the fd is not writable (the device then waits for
    /// `POLLOUT` on [`as_raw_fd`](AsRawFd::as_raw_fd) and retries).
    fn send(&mut self, frame: &[IoSlice<'_>]) -> io::Result<usize>;

    /// Receives one frame into `frame` and returns its length. Must not
    /// block: `WouldBlock` when there is none. A frame that did not fit is
    /// reported as `InvalidData` (and discarded). `Ok(0)` means no frame
    /// (end of stream or an empty datagram).
    fn recv(&mut self, frame: &mut [IoSliceMut<'_>]) -> io::Result<usize>;

    /// Whether frames carry the virtio-net header.
    fn has_vnet_hdr(&self) -> bool;

    /// Called at activation with the negotiated features, so that a backend
    /// with a vnet header can configure its offloads (`TUNSETOFFLOAD` for
    /// the `GUEST_*` bits). An error fails the activation.
    fn set_offload(&mut self, _acked_features: u64) -> io::Result<()> {
        Ok(())
    }

    /// Whether a program thread about to sleep may wait on this backend's
    /// descriptor and receive from it itself (`host::rxpoll`): true for
    /// taps, whose wake-ups name the event (a poller waiting for `POLLOUT`
    /// only is not woken by a frame).
    fn rx_pollable(&self) -> bool {
        false
    }
}

/// A backend over a connected `AF_UNIX` `SOCK_SEQPACKET` (or `SOCK_DGRAM`)
/// socket: each message is one frame. The other end can be another program
/// (LKL's "pipe" backend) or a test acting as the wire.
pub struct SocketPairBackend {
    fd: OwnedFd,
    vnet_hdr: bool,
}

impl fmt::Debug for SocketPairBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SocketPairBackend")
            .field("fd", &self.fd.as_raw_fd())
            .field("vnet_hdr", &self.vnet_hdr)
            .finish()
    }
}

impl SocketPairBackend {
    /// Wraps a connected message socket (made non-blocking here).
    pub fn new(fd: OwnedFd, has_vnet_hdr: bool) -> io::Result<Self> {
        hostio::set_nonblocking(fd.as_fd())?;
        Ok(SocketPairBackend {
            fd,
            vnet_hdr: has_vnet_hdr,
        })
    }

    /// A backend and the other end of its wire (a blocking
    /// `SOCK_SEQPACKET` socket).
    pub fn pair(has_vnet_hdr: bool) -> io::Result<(Self, OwnedFd)> {
        let (ours, theirs) = hostio::seqpacket_pair()?;
        Ok((Self::new(ours, has_vnet_hdr)?, theirs))
    }
}

impl AsRawFd for SocketPairBackend {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl NetBackend for SocketPairBackend {
    fn send(&mut self, frame: &[IoSlice<'_>]) -> io::Result<usize> {
        hostio::send_vectored(self.fd.as_fd(), frame)
    }

    fn recv(&mut self, frame: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        match hostio::recv_vectored(self.fd.as_fd(), frame)? {
            (_, true) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "frame truncated",
            )),
            (n, false) => Ok(n),
        }
    }

    fn has_vnet_hdr(&self) -> bool {
        self.vnet_hdr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_cross_the_pair() {
        let (mut b, peer) = SocketPairBackend::pair(false).unwrap();
        assert!(!b.has_vnet_hdr());
        let n = b.send(&[IoSlice::new(b"ab"), IoSlice::new(b"cd")]).unwrap();
        assert_eq!(n, 4);
        let mut buf = [0u8; 16];
        let (n, _) = hostio::recv_vectored(peer.as_fd(), &mut [IoSliceMut::new(&mut buf)]).unwrap();
        assert_eq!(&buf[..n], b"abcd");
        let e = b.recv(&mut [IoSliceMut::new(&mut buf)]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "non-blocking");
        hostio::send_vectored(peer.as_fd(), &[IoSlice::new(&[7; 20])]).unwrap();
        let e = b.recv(&mut [IoSliceMut::new(&mut buf)]).unwrap_err();
        assert_eq!(
            e.kind(),
            io::ErrorKind::InvalidData,
            "truncation is reported"
        );
    }
}
