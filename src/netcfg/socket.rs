//! An rtnetlink socket inside the kernel: requests that are acknowledged,
//! and dumps, each matched to its reply by sequence number.
//!
//! Replies are accepted only from the kernel (port id 0) and only with our
//! sequence number; anything else in the socket (a stale reply of an
//! earlier request that timed out) is skipped. Every wait is bounded.

use std::io::{IoSlice, IoSliceMut};
use std::time::{Duration, Instant};

use crate::syscall::{self, abi, Errno, SockAddr, SockAddrNl};

use super::wire::{self, flags, nlmsg, Request};
use super::NetcfgError;

/// How long one reply may take. The kernel answers rtnetlink requests
/// synchronously, so this only fires if something is badly wrong.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Receive buffer: the kernel sizes dump messages to fit 32 KiB (or the
/// socket's receive buffer); twice that leaves room.
const RECV_BUF: usize = 64 * 1024;

/// A message of a reply, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// `nlmsg_type`.
    pub ty: u16,
    /// `nlmsg_flags`.
    pub flags: u16,
    /// The bytes after `nlmsghdr`.
    pub payload: Vec<u8>,
}

/// An `AF_NETLINK`/`NETLINK_ROUTE` socket in the kernel. Closed on drop.
#[derive(Debug)]
pub struct Rtnl {
    fd: i32,
    seq: u32,
    timeout: Duration,
}

impl Drop for Rtnl {
    fn drop(&mut self) {
        let _ = syscall::close(self.fd);
    }
}

fn sys(call: &'static str) -> impl Fn(Errno) -> NetcfgError {
    move |errno| NetcfgError::Syscall {
        call,
        what: "rtnetlink socket".into(),
        errno,
    }
}

impl Rtnl {
    /// Opens and binds a socket (the kernel picks the port id). Asks for
    /// extended acks, so refusals come with the kernel's explanation; for
    /// capped acks, so errors do not echo whole requests; and for strict
    /// checking, so dumps are filtered (by table, by interface) in the
    /// kernel.
    pub fn open() -> Result<Rtnl, NetcfgError> {
        let fd = syscall::socket(
            abi::AF_NETLINK,
            abi::SOCK_RAW | abi::SOCK_CLOEXEC,
            syscall::NETLINK_ROUTE,
        )
        .map_err(sys("socket"))?;
        let rtnl = Rtnl {
            fd,
            seq: 1,
            timeout: REPLY_TIMEOUT,
        };
        syscall::bind(fd, &SockAddr::Nl(SockAddrNl::new(0, 0))).map_err(sys("bind"))?;
        // Optional comforts; a kernel without them still works, since we
        // filter dumps ourselves too.
        for opt in [
            syscall::NETLINK_EXT_ACK,
            syscall::NETLINK_CAP_ACK,
            syscall::NETLINK_GET_STRICT_CHK,
        ] {
            let _ = syscall::setsockopt_int(fd, syscall::SOL_NETLINK, opt, 1);
        }
        Ok(rtnl)
    }

    /// Changes how long a reply may take.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    fn send(&mut self, req: &Request, what: &str) -> Result<u32, NetcfgError> {
        let seq = self.next_seq();
        let bytes = req.finish(seq).ok_or_else(|| NetcfgError::Malformed {
            request: what.into(),
            why: "request too large".into(),
        })?;
        let to = SockAddr::Nl(SockAddrNl::kernel());
        let n = loop {
            match syscall::sendmsg(self.fd, &[IoSlice::new(&bytes)], Some(&to), 0) {
                Err(Errno::EINTR) => continue,
                r => break r,
            }
        }
        .map_err(|errno| NetcfgError::Syscall {
            call: "sendmsg",
            what: what.into(),
            errno,
        })?;
        if n != bytes.len() {
            return Err(NetcfgError::Malformed {
                request: what.into(),
                why: format!("sent {n} of {} bytes", bytes.len()),
            });
        }
        Ok(seq)
    }

    /// Waits for and reads one datagram from the kernel.
    fn recv(
        &mut self,
        buf: &mut [u8],
        what: &str,
        deadline: Instant,
    ) -> Result<usize, NetcfgError> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(NetcfgError::Timeout {
                    request: what.into(),
                    waited: self.timeout,
                });
            }
            let mut pfd = [abi::PollFd {
                fd: self.fd,
                events: abi::POLLIN,
                revents: 0,
            }];
            let ts = abi::Timespec {
                tv_sec: left.as_secs() as i64,
                tv_nsec: i64::from(left.subsec_nanos()),
            };
            match syscall::ppoll(&mut pfd, Some(ts)) {
                Ok(0) | Err(Errno::EINTR) => continue,
                Ok(_) => {}
                Err(errno) => {
                    return Err(NetcfgError::Syscall {
                        call: "ppoll",
                        what: what.into(),
                        errno,
                    })
                }
            }
            let got = syscall::recvmsg(self.fd, &mut [IoSliceMut::new(buf)], syscall::MSG_DONTWAIT);
            match got {
                Err(Errno::EINTR) | Err(Errno::EAGAIN) => continue,
                Err(errno) => {
                    return Err(NetcfgError::Syscall {
                        call: "recvmsg",
                        what: what.into(),
                        errno,
                    })
                }
                Ok(m) => {
                    // Only the kernel may answer (a spoofing peer would
                    // need a port id of 0, which only the kernel has).
                    match m.from {
                        Some(SockAddr::Nl(a)) if a.nl_pid == 0 => {}
                        _ => continue,
                    }
                    if m.flags & syscall::MSG_TRUNC != 0 {
                        return Err(NetcfgError::Malformed {
                            request: what.into(),
                            why: format!("reply larger than {} bytes", buf.len()),
                        });
                    }
                    return Ok(m.len.min(buf.len()));
                }
            }
        }
    }

    /// Sends `req` with `NLM_F_ACK` and returns the messages the kernel
    /// sent before its acknowledgement (for a get: the object). A refusal
    /// is [`NetcfgError::Rejected`] with the kernel's errno.
    pub fn request(&mut self, mut req: Request, what: &str) -> Result<Vec<Reply>, NetcfgError> {
        req.add_flags(flags::ACK);
        let seq = self.send(&req, what)?;
        let deadline = Instant::now() + self.timeout;
        let mut buf = vec![0u8; RECV_BUF];
        let mut replies = Vec::new();
        loop {
            let n = self.recv(&mut buf, what, deadline)?;
            for m in wire::messages(&buf[..n]) {
                let m = m.map_err(|e| malformed(what, e))?;
                if m.seq != seq {
                    continue;
                }
                match m.ty {
                    nlmsg::ERROR => {
                        let e = wire::parse_error(&m).map_err(|e| malformed(what, e))?;
                        return if e.error == 0 {
                            Ok(replies)
                        } else {
                            Err(rejected(what, e))
                        };
                    }
                    nlmsg::NOOP => {}
                    _ => replies.push(Reply {
                        ty: m.ty,
                        flags: m.flags,
                        payload: m.payload.to_vec(),
                    }),
                }
            }
        }
    }

    /// Sends `req` as a dump request and returns every message of type
    /// `want` until `NLMSG_DONE`. A dump the kernel interrupted because the
    /// data changed under it (`NLM_F_DUMP_INTR`) is asked for again.
    pub fn dump(&mut self, req: Request, want: u16, what: &str) -> Result<Vec<Reply>, NetcfgError> {
        const ATTEMPTS: usize = 5;
        let mut req = req;
        req.add_flags(flags::DUMP);
        for _ in 0..ATTEMPTS {
            match self.dump_once(&req, want, what)? {
                Some(replies) => return Ok(replies),
                None => continue,
            }
        }
        Err(NetcfgError::Malformed {
            request: what.into(),
            why: format!("dump interrupted {ATTEMPTS} times by concurrent changes"),
        })
    }

    fn dump_once(
        &mut self,
        req: &Request,
        want: u16,
        what: &str,
    ) -> Result<Option<Vec<Reply>>, NetcfgError> {
        let seq = self.send(req, what)?;
        let deadline = Instant::now() + self.timeout;
        let mut buf = vec![0u8; RECV_BUF];
        let mut replies = Vec::new();
        let mut interrupted = false;
        loop {
            let n = self.recv(&mut buf, what, deadline)?;
            for m in wire::messages(&buf[..n]) {
                let m = m.map_err(|e| malformed(what, e))?;
                if m.seq != seq {
                    continue;
                }
                interrupted |= m.flags & flags::DUMP_INTR != 0;
                match m.ty {
                    nlmsg::DONE => {
                        let e = wire::parse_done(&m);
                        if e.error != 0 {
                            return Err(rejected(what, e));
                        }
                        return Ok((!interrupted).then_some(replies));
                    }
                    nlmsg::ERROR => {
                        let e = wire::parse_error(&m).map_err(|e| malformed(what, e))?;
                        if e.error != 0 {
                            return Err(rejected(what, e));
                        }
                    }
                    ty if ty == want => replies.push(Reply {
                        ty: m.ty,
                        flags: m.flags,
                        payload: m.payload.to_vec(),
                    }),
                    _ => {}
                }
            }
        }
    }
}

fn malformed(what: &str, e: wire::WireError) -> NetcfgError {
    NetcfgError::Malformed {
        request: what.into(),
        why: e.to_string(),
    }
}

fn rejected(what: &str, e: wire::ErrorMsg) -> NetcfgError {
    // A positive "error" is not an errno; keep its number visible anyway.
    let errno = Errno(e.error.checked_neg().unwrap_or(i32::MAX).abs());
    NetcfgError::Rejected {
        request: what.into(),
        errno,
        message: e.message,
    }
}
