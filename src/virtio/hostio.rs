//! The libc edge of the virtio layer: eventfds, `poll(2)`, and connected
//! packet sockets.
//!
//! Each type owns its descriptor (`OwnedFd`, made on the line after the
//! syscall that created it), so it is closed exactly once. Every call here is
//! non-blocking except [`PollSet::wait`], which is the one place a device
//! worker sleeps. Nothing here is reachable from the kernel's CPU except
//! [`EventFd::notify`], which never blocks.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// A libc return value: -1 (any negative) is `errno`'s error.
pub(crate) fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A libc byte count: -1 (any negative) is `errno`'s error.
pub(crate) fn cvt_size(ret: libc::ssize_t) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

/// A non-blocking eventfd used as a counter-style wake-up.
#[derive(Debug)]
pub struct EventFd(OwnedFd);

impl EventFd {
    /// A new eventfd with count 0 (non-blocking, close-on-exec).
    pub fn new() -> io::Result<Self> {
        // SAFETY: eventfd has no memory arguments; we check the result.
        let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
        // SAFETY: `fd` was just returned by eventfd and is owned by nobody else.
        Ok(EventFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Adds one to the counter, waking any poller. Never blocks: if the
    /// counter is saturated a wake-up is already pending, which is enough.
    pub fn notify(&self) -> io::Result<()> {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live local to an fd we own.
        let r = unsafe { libc::write(self.0.as_raw_fd(), (&one as *const u64).cast(), 8) };
        match cvt_size(r) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Reads and resets the counter; 0 if it was already 0.
    pub fn drain(&self) -> io::Result<u64> {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a live local from an fd we own.
        let r = unsafe { libc::read(self.0.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
        match cvt_size(r) {
            Ok(_) => Ok(v),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(e),
        }
    }
}

impl AsFd for EventFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl AsRawFd for EventFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// What a poller waits for on one fd.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Interest {
    /// Wake when readable.
    pub read: bool,
    /// Wake when writable.
    pub write: bool,
}

impl Interest {
    /// Readable only.
    pub const READ: Interest = Interest {
        read: true,
        write: false,
    };
    /// Writable only.
    pub const WRITE: Interest = Interest {
        read: false,
        write: true,
    };
}

/// What `poll` reported for one fd.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Readiness {
    /// `POLLIN`.
    pub readable: bool,
    /// `POLLOUT`.
    pub writable: bool,
    /// `POLLHUP`: the peer is gone.
    pub hangup: bool,
    /// `POLLERR` or `POLLNVAL`: the fd is broken or closed.
    pub error: bool,
}

impl Readiness {
    fn from_revents(r: libc::c_short) -> Self {
        Readiness {
            readable: r & libc::POLLIN != 0,
            writable: r & libc::POLLOUT != 0,
            hangup: r & libc::POLLHUP != 0,
            error: r & (libc::POLLERR | libc::POLLNVAL) != 0,
        }
    }

    /// True if anything at all was reported.
    pub fn any(&self) -> bool {
        self.readable || self.writable || self.hangup || self.error
    }
}

/// A set of fds for one `poll(2)` call, each tagged with a caller token.
/// Rebuilt before every wait, so interest can change from one wait to the
/// next (the net worker stops polling its backend while it has nowhere to
/// put a frame).
#[derive(Debug, Default)]
pub struct PollSet {
    fds: Vec<libc::pollfd>,
    tokens: Vec<u32>,
}

impl PollSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Removes every fd.
    pub fn clear(&mut self) {
        self.fds.clear();
        self.tokens.clear();
    }

    /// Adds `fd` with the events in `interest`, reported under `token`.
    /// Hang-ups and errors are always reported.
    pub fn add(&mut self, fd: RawFd, token: u32, interest: Interest) {
        let mut events = 0;
        if interest.read {
            events |= libc::POLLIN;
        }
        if interest.write {
            events |= libc::POLLOUT;
        }
        self.fds.push(libc::pollfd {
            fd,
            events,
            revents: 0,
        });
        self.tokens.push(token);
    }

    /// Number of fds in the set.
    pub fn len(&self) -> usize {
        self.fds.len()
    }

    /// True if the set has no fd.
    pub fn is_empty(&self) -> bool {
        self.fds.is_empty()
    }

    /// Waits until an fd is ready or `timeout` passes (`None`: forever).
    /// Returns how many fds are ready; an interrupted wait returns 0.
    pub fn wait(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        for p in &mut self.fds {
            p.revents = 0;
        }
        let ms = match timeout {
            None => -1,
            Some(d) => d.as_millis().min(i32::MAX as u128) as libc::c_int,
        };
        // SAFETY: `fds` is a live, initialised array of `len()` pollfds that
        // poll may write `revents` into; we check the result.
        let r = unsafe { libc::poll(self.fds.as_mut_ptr(), self.fds.len() as libc::nfds_t, ms) };
        match cvt(r) {
            Ok(n) => Ok(n as usize),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// The fds that were ready after the last [`wait`](Self::wait).
    pub fn ready(&self) -> impl Iterator<Item = (u32, Readiness)> + '_ {
        self.fds
            .iter()
            .zip(&self.tokens)
            .filter(|(p, _)| p.revents != 0)
            .map(|(p, t)| (*t, Readiness::from_revents(p.revents)))
    }
}

/// A connected pair of `AF_UNIX` `SOCK_SEQPACKET` sockets (close-on-exec,
/// blocking): reliable, ordered, and every send is one message, like a
/// frame on a wire.
pub fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a live array of two ints for socketpair to fill.
    cvt(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    // SAFETY: both fds were just created by socketpair and are owned by us.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Sets `O_NONBLOCK` on `fd`.
pub fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: fcntl on a live fd, no pointers.
    let flags = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })?;
    // SAFETY: as above.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) })?;
    Ok(())
}

/// Sends one message gathered from `bufs` on a connected socket, without
/// blocking and without raising `SIGPIPE` if the peer is gone.
pub fn send_vectored(fd: BorrowedFd<'_>, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    // SAFETY: an all-zero msghdr is a valid empty message.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    // `IoSlice` is guaranteed ABI-compatible with `iovec` on Unix.
    msg.msg_iov = bufs.as_ptr().cast_mut().cast::<libc::iovec>();
    msg.msg_iovlen = bufs.len() as _;
    // SAFETY: `msg` points at `bufs`, live for the call; sendmsg only reads
    // the iovecs and the memory they describe.
    cvt_size(unsafe {
        libc::sendmsg(
            fd.as_raw_fd(),
            &msg,
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
        )
    })
}

/// Receives one message into `bufs` without blocking. Returns its length
/// and whether it was truncated (did not fit; the excess is discarded).
pub fn recv_vectored(fd: BorrowedFd<'_>, bufs: &mut [IoSliceMut<'_>]) -> io::Result<(usize, bool)> {
    // SAFETY: an all-zero msghdr is a valid empty message.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    // `IoSliceMut` is guaranteed ABI-compatible with `iovec` on Unix.
    msg.msg_iov = bufs.as_mut_ptr().cast::<libc::iovec>();
    msg.msg_iovlen = bufs.len() as _;
    // SAFETY: `msg` points at `bufs`, exclusively borrowed for the call;
    // recvmsg writes at most each iovec's length into its buffer.
    let n = cvt_size(unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) })?;
    Ok((n, msg.msg_flags & libc::MSG_TRUNC != 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eventfd_counts_and_wakes() {
        let e = EventFd::new().unwrap();
        assert_eq!(e.drain().unwrap(), 0);
        e.notify().unwrap();
        e.notify().unwrap();
        let mut set = PollSet::new();
        set.add(e.as_raw_fd(), 7, Interest::READ);
        assert_eq!(set.wait(Some(Duration::from_millis(1000))).unwrap(), 1);
        let ready: Vec<_> = set.ready().collect();
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].0, 7);
        assert!(ready[0].1.readable);
        assert_eq!(e.drain().unwrap(), 2);
        assert_eq!(set.wait(Some(Duration::from_millis(0))).unwrap(), 0);
    }

    #[test]
    fn seqpacket_keeps_boundaries_and_reports_truncation() {
        let (a, b) = seqpacket_pair().unwrap();
        set_nonblocking(a.as_fd()).unwrap();
        set_nonblocking(b.as_fd()).unwrap();
        let n = send_vectored(
            a.as_fd(),
            &[IoSlice::new(b"hello "), IoSlice::new(b"world")],
        )
        .unwrap();
        assert_eq!(n, 11);
        send_vectored(a.as_fd(), &[IoSlice::new(b"second")]).unwrap();
        let mut buf = [0u8; 64];
        let (n, trunc) = recv_vectored(b.as_fd(), &mut [IoSliceMut::new(&mut buf)]).unwrap();
        assert_eq!((&buf[..n], trunc), (&b"hello world"[..], false));
        let mut small = [0u8; 3];
        let (n, trunc) = recv_vectored(b.as_fd(), &mut [IoSliceMut::new(&mut small)]).unwrap();
        assert_eq!((&small[..n], trunc), (&b"sec"[..], true));
        let e = recv_vectored(b.as_fd(), &mut [IoSliceMut::new(&mut buf)]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        drop(a);
        let mut set = PollSet::new();
        set.add(b.as_raw_fd(), 1, Interest::READ);
        set.wait(Some(Duration::from_millis(1000))).unwrap();
        let (_, r) = set.ready().next().unwrap();
        assert!(r.hangup);
        let e = send_vectored(b.as_fd(), &[IoSlice::new(b"x")]).unwrap_err();
        assert_eq!(
            e.raw_os_error(),
            Some(libc::EPIPE),
            "and no SIGPIPE killed us"
        );
    }
}
