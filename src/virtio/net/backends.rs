/*!
The host network backends: where the frames of a virtio-net device go.

Each type here is a [`NetBackend`] over one host descriptor, chosen at run
time from a [`Backend`] (the description the config builds; [`spec`]
holds it and the other types that describe a backend) by [`open_backend`]:

| `type` | param | type here | host side | vnet header |
|---|---|---|---|---|
| `tap` | interface name | [`Tap`] | `/dev/net/tun`, `TUNSETIFF` `IFF_TAP\|IFF_NO_PI` | when offloads are wanted |
| `macvtap` | `/dev/tapN` | [`Macvtap`] | the macvtap's character device | when offloads are wanted |
| `raw` | interface name | [`RawSocket`] | `AF_PACKET` `SOCK_RAW`, promiscuous | never |
| `pipe` | `rx_path\|tx_path` | [`Pipe`] | two FIFOs, length-prefixed frames | always (as LKL) |
| `vde` | switch directory | [`Vde`] | a `vde_switch` port (`AF_UNIX` datagrams) | never |
| `fd` | descriptor number | [`InheritedFd`] | a datagram/seqpacket socket or a tap fd | socket: when offloads are wanted; tap: as the fd is set |

What every backend guarantees: its descriptor is non-blocking (or used
with `MSG_DONTWAIT`) and close-on-exec, one `send` writes one whole frame and
one `recv` reads one whole frame or reports a truncated one as
`InvalidData`; a backend that cannot be opened is a [`BackendError`] naming
the backend, its parameter, the failing step and the host error, with the
usual remedy where there is one.

**Where we differ from LKL** (`tools/lkl/lib/virtio_net_*.c`):

- `pipe` frames are length-prefixed on the FIFOs (a 4-byte little-endian
  length, then the frame). LKL writes bare frames and reads each with one
  `readv`; a FIFO is a byte stream, so two frames written before the
  reader wakes are read as one (the second is lost), and a frame bigger
  than `PIPE_BUF` can be split. Our pipes therefore do not talk to LKL's.
- `tap` maps only the negotiated `GUEST_*` bits to `TUNSETOFFLOAD`
  (`GUEST_CSUM`→`TUN_F_CSUM`, `GUEST_TSO4/6`→`TUN_F_TSO4/6`,
  `GUEST_UFO`→`TUN_F_UFO`); LKL also turns on TSO4 for `MRG_RXBUF`, which
  says nothing about segmentation. A tap that does not exist is created
  (non-persistent) when we may; LKL fails.
- `raw` ignores frames the host itself sends on the interface
  (`PACKET_IGNORE_OUTGOING`) and keeps the qdisc (LKL bypasses it, which
  also hides our frames from `tcpdump` on the host and turns a full queue
  into drops).
- `vde` speaks the switch's protocol itself instead of linking libvdeplug.
- `fd` is not in LKL's hijack config (LKL has it only as a library call).
- Errors are typed and say why; LKL prints `perror` text.

**Unsafe code** is confined to [`hostio`] (the libc calls) and `slirp::ffi`
(the dlopen'ed libslirp); every other file here forbids it. This module,
`virtio/net.rs` and `slirp.rs` say `deny` rather than `forbid` so that those
two can allow it: a `forbid` cannot be relaxed by a child module.
*/

#![deny(unsafe_code)]

pub mod error;
pub mod fd;
pub mod hostio;
pub mod pipe;
pub mod raw;
pub mod slirp;
pub mod spec;
pub mod tap;
#[cfg(test)]
mod test_utils;
pub mod vde;

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use crate::virtio::hostio as vio;

use super::NetBackend;

pub use error::{BackendError, Cause};
pub use fd::InheritedFd;
pub use pipe::Pipe;
pub use raw::RawSocket;
pub use slirp::Slirp;
pub use spec::{Backend, BackendKind, SlirpNetwork, SlirpNetwork6};
pub use tap::{Macvtap, Tap};
pub use vde::Vde;

/// Opens the backend `backend` names. `offload_wanted` says whether the
/// interface asks for offloads (a non-zero `offload`), which needs frames
/// with a virtio-net header: tap and macvtap then set `IFF_VNET_HDR`, and an
/// inherited socket carries the header. Raw and VDE never have one; a pipe
/// always has (as LKL).
pub fn open_backend(
    backend: &Backend,
    offload_wanted: bool,
) -> Result<Box<dyn NetBackend>, BackendError> {
    Ok(match backend {
        Backend::Tap { ifname } => Box::new(Tap::open(ifname, offload_wanted)?),
        Backend::Macvtap { path } => Box::new(Macvtap::open(path, offload_wanted)?),
        Backend::Raw { ifname } => Box::new(RawSocket::open(ifname)?),
        Backend::Pipe { rx, tx } => Box::new(Pipe::open(rx, tx)?),
        Backend::Vde { path } => Box::new(Vde::open(path)?),
        Backend::Fd { fd } => Box::new(InheritedFd::open(*fd, offload_wanted)?),
        Backend::Slirp { param: None } => Box::new(Slirp::open()?),
        Backend::Slirp { param: Some(p) } => {
            let network = p
                .parse::<SlirpNetwork>()
                .map_err(|why| BackendError::new(BackendKind::Slirp, p, Cause::BadParam(why)))?;
            Box::new(Slirp::open_with(&network)?)
        }
    })
}

/// How one descriptor carries frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FrameIo {
    /// A socket that keeps message boundaries (datagram, seqpacket,
    /// packet): `sendmsg`/`recvmsg` with `MSG_DONTWAIT`, so the descriptor's
    /// own blocking mode (which an inherited one shares with its owner) is
    /// left alone; truncation is seen in `MSG_TRUNC`.
    Message,
    /// A character device whose every `read`/`write` is one frame (tap,
    /// macvtap), opened or set `O_NONBLOCK`. A read reports the frame's
    /// full length even when it did not fit, which is how truncation is
    /// seen (`tun_put_user`, `tap_put_user`).
    Device,
}

/// A descriptor that moves one frame per call: the common core of the
/// backends.
pub(crate) struct FrameFd {
    fd: OwnedFd,
    io: FrameIo,
}

impl FrameFd {
    /// Wraps `fd`, which must already be non-blocking if `io` is
    /// [`FrameIo::Device`].
    pub(crate) fn new(fd: OwnedFd, io: FrameIo) -> Self {
        FrameFd { fd, io }
    }

    /// The descriptor, for `ioctl`s.
    pub(crate) fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// Sends one frame without blocking (`WouldBlock` when full).
    pub(crate) fn send(&self, frame: &[IoSlice<'_>]) -> io::Result<usize> {
        match self.io {
            FrameIo::Message => vio::send_vectored(self.fd.as_fd(), frame),
            FrameIo::Device => hostio::writev(self.fd.as_fd(), frame),
        }
    }

    /// Receives one frame without blocking; a frame that did not fit is
    /// `InvalidData` (and gone).
    pub(crate) fn recv(&self, frame: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        let truncated = || io::Error::new(io::ErrorKind::InvalidData, "frame truncated");
        match self.io {
            FrameIo::Message => match vio::recv_vectored(self.fd.as_fd(), frame)? {
                (_, true) => Err(truncated()),
                (n, false) => Ok(n),
            },
            FrameIo::Device => {
                let room: usize = frame.iter().map(|b| b.len()).sum();
                let n = hostio::readv(self.fd.as_fd(), frame)?;
                if n > room {
                    Err(truncated())
                } else {
                    Ok(n)
                }
            }
        }
    }
}

impl AsRawFd for FrameFd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}

impl fmt::Debug for FrameFd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameFd")
            .field("fd", &self.fd.as_raw_fd())
            .field("io", &self.io)
            .finish()
    }
}

/// A backend that is one [`FrameFd`] (its field `$field`) and always
/// (`true`) or never (`false`) carries a vnet header: the backend calls go
/// to the descriptor.
macro_rules! frame_fd_backend {
    ($ty:ty, $field:ident, vnet_hdr: $vnet:expr) => {
        impl std::os::fd::AsRawFd for $ty {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                self.$field.as_raw_fd()
            }
        }

        impl crate::virtio::net::NetBackend for $ty {
            fn send(&mut self, frame: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
                self.$field.send(frame)
            }

            fn recv(&mut self, frame: &mut [std::io::IoSliceMut<'_>]) -> std::io::Result<usize> {
                self.$field.recv(frame)
            }

            fn has_vnet_hdr(&self) -> bool {
                $vnet
            }
        }
    };
}
pub(crate) use frame_fd_backend;

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn open_err(b: &Backend, offload: bool) -> BackendError {
        match open_backend(b, offload) {
            Err(e) => e,
            Ok(_) => panic!("{b:?} opened"),
        }
    }

    #[test]
    fn open_backend_maps_each_kind_and_names_it_in_errors() {
        // Opens where libslirp is installed; says so where it is not.
        if let Err(e) = open_backend(&Backend::Slirp { param: None }, false) {
            assert!(e.to_string().starts_with("slirp: libslirp.so.0: "), "{e}");
        }
        let custom = Backend::Slirp {
            param: Some("net=10.0.3.0/24,ipv6=off".into()),
        };
        if let Err(e) = open_backend(&custom, false) {
            assert!(e.to_string().starts_with("slirp: libslirp.so.0: "), "{e}");
        }
        // The config checks the param; one made by hand is checked here.
        let bad = Backend::Slirp {
            param: Some("net=10.0.3.0/24,host=10.9.9.9".into()),
        };
        assert!(open_err(&bad, false).to_string().contains("host"));
        let e = open_err(
            &Backend::Raw {
                ifname: "lklbk-none0".into(),
            },
            false,
        );
        assert!(e.to_string().starts_with("raw lklbk-none0: "), "{e}");
        let e = open_err(
            &Backend::Macvtap {
                path: PathBuf::from("/nonexistent/tap99"),
            },
            true,
        );
        assert!(
            e.to_string().starts_with("macvtap /nonexistent/tap99: "),
            "{e}"
        );
        let e = open_err(
            &Backend::Pipe {
                rx: "/nonexistent/rx".into(),
                tx: "/nonexistent/tx".into(),
            },
            false,
        );
        assert!(
            e.to_string()
                .starts_with("pipe /nonexistent/rx|/nonexistent/tx: "),
            "{e}"
        );
        let e = open_err(
            &Backend::Vde {
                path: "/nonexistent/vde".into(),
            },
            false,
        );
        assert!(e.to_string().starts_with("vde /nonexistent/vde: "), "{e}");
        let e = open_err(&Backend::Fd { fd: -1 }, false);
        assert!(e.to_string().starts_with("fd -1: "), "{e}");
        let e = open_err(
            &Backend::Tap {
                ifname: "a-name-much-too-long".into(),
            },
            false,
        );
        assert!(matches!(e.cause(), Cause::BadParam(_)), "{e}");
        assert!(
            e.to_string().starts_with("tap a-name-much-too-long: "),
            "{e}"
        );
    }

    #[test]
    fn frame_fd_reports_truncation_on_messages() {
        let (a, b) = vio::seqpacket_pair().unwrap();
        let a = FrameFd::new(a, FrameIo::Message);
        let b = FrameFd::new(b, FrameIo::Message);
        assert_eq!(a.send(&[IoSlice::new(&[1; 40])]).unwrap(), 40);
        let mut small = [0u8; 10];
        let e = b.recv(&mut [IoSliceMut::new(&mut small)]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        let e = b.recv(&mut [IoSliceMut::new(&mut small)]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "never blocks");
    }
}
