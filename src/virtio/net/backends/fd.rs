//! The `fd` backend: a descriptor the process already has, given by number
//! (a socket its parent passed down, or a tap it opened).
//!
//! What the descriptor is decides how frames cross it:
//! - a socket that keeps message boundaries (`SOCK_DGRAM`,
//!   `SOCK_SEQPACKET`, or a `SOCK_RAW` packet socket): one message is one
//!   frame. The socket must be connected (or be a bound packet socket).
//!   Messages carry the 12-byte virtio-net header when the interface wants
//!   offloads, bare Ethernet frames otherwise: the program on the other
//!   end must agree;
//! - a tap (`/dev/net/tun` attached with `IFF_TAP | IFF_NO_PI`, or a
//!   macvtap): one read or write is one frame, with the vnet header if the
//!   descriptor has `IFF_VNET_HDR` (it is then set to 12 bytes).
//!
//! Stream sockets, FIFOs and files are refused: they keep no frame
//! boundaries. We work on a close-on-exec duplicate, so the number itself
//! stays its owner's; but a duplicate shares the open file, so a tap is
//! switched to non-blocking for both (sockets are not touched: they are
//! used with `MSG_DONTWAIT`).

#![forbid(unsafe_code)]

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, RawFd};

use super::error::{BackendError, Cause};
use super::spec::BackendKind;
use super::tap::{configure_vnet_hdr, TapFd};
use super::{hostio, FrameFd, FrameIo};
use crate::virtio::hostio as vio;
use crate::virtio::net::NetBackend;

enum Inner {
    Socket { frames: FrameFd, vnet_hdr: bool },
    Tap(TapFd),
}

/// A descriptor the process inherited (or opened itself).
pub struct InheritedFd {
    inner: Inner,
    fd: RawFd,
}

impl InheritedFd {
    /// Uses descriptor `fd` (a duplicate of it). `vnet_hdr` applies to a
    /// socket only: a tap's own `IFF_VNET_HDR` decides for a tap.
    pub fn open(fd: RawFd, vnet_hdr: bool) -> Result<InheritedFd, BackendError> {
        let param = fd.to_string();
        let kind = BackendKind::Fd;
        let bad = |why: String| BackendError::new(kind, &param, Cause::BadParam(why));
        let os = |what: &str, e: io::Error, hint: Option<String>| {
            BackendError::os(kind, &param, what, e, hint)
        };
        if fd < 0 {
            return Err(bad("is not a descriptor number".into()));
        }
        let dup = hostio::dup_cloexec(fd).map_err(|e| {
            let hint = (e.raw_os_error() == Some(libc::EBADF))
                .then(|| "it is not open in this process".to_string());
            os("descriptor", e, hint)
        })?;
        let ftype = hostio::file_type(dup.as_fd()).map_err(|e| os("fstat", e, None))?;
        let inner = match ftype {
            libc::S_IFSOCK => {
                let stype = hostio::getsockopt_int(dup.as_fd(), libc::SOL_SOCKET, libc::SO_TYPE)
                    .map_err(|e| os("SO_TYPE", e, None))?;
                match stype {
                    libc::SOCK_DGRAM | libc::SOCK_SEQPACKET => {
                        let connected = hostio::is_connected(dup.as_fd())
                            .map_err(|e| os("getpeername", e, None))?;
                        if !connected {
                            return Err(bad(
                                "is a socket with no peer: connect it before passing it".into(),
                            ));
                        }
                    }
                    // A packet socket sends on the interface it is bound to.
                    libc::SOCK_RAW => {}
                    libc::SOCK_STREAM => {
                        return Err(bad("is a stream socket, which keeps no frame boundaries; \
                             use SOCK_SEQPACKET or SOCK_DGRAM"
                            .into()))
                    }
                    t => return Err(bad(format!("is a socket of unusable type {t}"))),
                }
                Inner::Socket {
                    frames: FrameFd::new(dup, FrameIo::Message),
                    vnet_hdr,
                }
            }
            libc::S_IFCHR => {
                let (name, flags) = hostio::tun_get_iff(dup.as_fd()).map_err(|e| {
                    os(
                        "TUNGETIFF",
                        e,
                        Some("a character device, but not an attached tap".into()),
                    )
                })?;
                if flags & libc::IFF_TAP == 0 {
                    return Err(bad(format!(
                        "is attached to {name}, a tun (IP) device; frames need a tap"
                    )));
                }
                if flags & libc::IFF_NO_PI == 0 {
                    return Err(bad(format!(
                        "is attached to {name} without IFF_NO_PI: frames would carry \
                         packet-information headers"
                    )));
                }
                let has_vnet = flags & libc::IFF_VNET_HDR != 0;
                if has_vnet {
                    configure_vnet_hdr(&dup)
                        .map_err(|e| os("vnet header (TUNSETVNETHDRSZ)", e, None))?;
                }
                vio::set_nonblocking(dup.as_fd()).map_err(|e| os("O_NONBLOCK", e, None))?;
                Inner::Tap(TapFd::new(dup, has_vnet))
            }
            libc::S_IFIFO => {
                return Err(bad("is a pipe or FIFO, which keeps no frame boundaries; \
                     the pipe backend takes two FIFOs"
                    .into()))
            }
            _ => return Err(bad("is neither a socket nor a tap".into())),
        };
        Ok(InheritedFd { inner, fd })
    }

    /// The number given (our duplicate is [`as_raw_fd`](AsRawFd::as_raw_fd)).
    pub fn given_fd(&self) -> RawFd {
        self.fd
    }

    /// True if the descriptor is a tap.
    pub fn is_tap(&self) -> bool {
        matches!(self.inner, Inner::Tap(_))
    }
}

impl fmt::Debug for InheritedFd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InheritedFd")
            .field("given", &self.fd)
            .field("fd", &self.as_raw_fd())
            .field("tap", &self.is_tap())
            .field("vnet_hdr", &self.has_vnet_hdr())
            .finish()
    }
}

impl AsRawFd for InheritedFd {
    fn as_raw_fd(&self) -> RawFd {
        match &self.inner {
            Inner::Socket { frames, .. } => frames.as_raw_fd(),
            Inner::Tap(t) => t.as_raw_fd(),
        }
    }
}

impl NetBackend for InheritedFd {
    fn send(&mut self, frame: &[IoSlice<'_>]) -> io::Result<usize> {
        match &self.inner {
            Inner::Socket { frames, .. } => frames.send(frame),
            Inner::Tap(t) => t.send(frame),
        }
    }

    fn recv(&mut self, frame: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        match &self.inner {
            Inner::Socket { frames, .. } => frames.recv(frame),
            Inner::Tap(t) => t.recv(frame),
        }
    }

    fn has_vnet_hdr(&self) -> bool {
        match &self.inner {
            Inner::Socket { vnet_hdr, .. } => *vnet_hdr,
            Inner::Tap(t) => t.has_vnet_hdr(),
        }
    }

    fn set_offload(&mut self, acked_features: u64) -> io::Result<()> {
        match &self.inner {
            // The peer program reads the header; nothing to tell a kernel.
            Inner::Socket { .. } => Ok(()),
            Inner::Tap(t) => t.set_offload(acked_features),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::virtio::net::backends::hostio::mkfifo;
    use crate::virtio::net::backends::test_utils::{frame, recv_frame, send_frame, TempDir};
    use std::fs::OpenOptions;
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::net::{UnixDatagram, UnixStream};

    #[test]
    fn frames_cross_a_seqpacket_pair() {
        let (ours, peer) = vio::seqpacket_pair().unwrap();
        let mut b = InheritedFd::open(ours.as_raw_fd(), true).unwrap();
        assert!(b.has_vnet_hdr() && !b.is_tap());
        assert_ne!(b.as_raw_fd(), ours.as_raw_fd(), "a duplicate");
        // The number stays its owner's: closing ours leaves the backend.
        drop(ours);
        let peer = FrameFd::new(peer, FrameIo::Message);
        let f = frame(1500, 9);
        send_frame(&mut b, &f);
        let mut buf = vec![0u8; 2000];
        let n = peer.recv(&mut [IoSliceMut::new(&mut buf)]).unwrap();
        assert_eq!(&buf[..n], &f[..]);
        peer.send(&[IoSlice::new(&f[..100])]).unwrap();
        assert_eq!(recv_frame(&mut b), &f[..100]);
        b.set_offload(u64::MAX).unwrap();
    }

    #[test]
    fn frames_cross_a_datagram_pair() {
        let (a, peer) = UnixDatagram::pair().unwrap();
        let mut b = InheritedFd::open(a.as_raw_fd(), false).unwrap();
        assert!(!b.has_vnet_hdr());
        send_frame(&mut b, b"frame one");
        let mut buf = [0u8; 64];
        let n = peer.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"frame one");
        // The owner's socket is still blocking: only MSG_DONTWAIT is used.
        peer.set_nonblocking(true).unwrap();
        assert!(!is_nonblocking(a.as_raw_fd()));
    }

    fn is_nonblocking(fd: RawFd) -> bool {
        // /proc tells a descriptor's flags (in octal) without unsafe code.
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap();
        let flags = info
            .lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .map(|v| i32::from_str_radix(v.trim(), 8).unwrap())
            .unwrap();
        flags & libc::O_NONBLOCK != 0
    }

    #[test]
    fn unusable_descriptors_are_refused_with_the_reason() {
        let e = InheritedFd::open(-1, false).unwrap_err();
        assert_eq!(e.to_string(), "fd -1: is not a descriptor number");
        // A number well above anything open.
        let e = InheritedFd::open(999_999, false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "fd 999999: descriptor: bad file descriptor (it is not open in this process)"
        );
        let (s, _t) = UnixStream::pair().unwrap();
        let e = InheritedFd::open(s.as_raw_fd(), false).unwrap_err();
        assert!(e.to_string().contains("is a stream socket"), "{e}");
        let unconnected = UnixDatagram::unbound().unwrap();
        let e = InheritedFd::open(unconnected.as_raw_fd(), false).unwrap_err();
        assert!(e.to_string().contains("no peer"), "{e}");
        let dir = TempDir::new("fd");
        let fifo = dir.0.join("f");
        mkfifo(&fifo, 0o600).unwrap();
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .unwrap();
        let e = InheritedFd::open(f.as_raw_fd(), false).unwrap_err();
        assert!(e.to_string().contains("is a pipe or FIFO"), "{e}");
        let null = std::fs::File::open("/dev/null").unwrap();
        let e = InheritedFd::open(null.as_raw_fd(), false).unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("fd {}: TUNGETIFF: ", null.as_raw_fd())),
            "{e}"
        );
        let file = std::fs::File::open("/proc/self/status").unwrap();
        let e = InheritedFd::open(file.as_raw_fd(), false).unwrap_err();
        assert!(e.to_string().contains("neither a socket nor a tap"), "{e}");
    }
}
