//! Asking a nameserver through the kernel's sockets: UDP first, each
//! server in turn, `attempts` rounds with a per-try timeout; TCP when a
//! reply is truncated. Replies that do not answer our query (wrong id,
//! wrong question, garbage) are dropped and the wait goes on, so a stray
//! or spoofed datagram cannot end a lookup.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::wire::{self, Reply};
use crate::syscall::abi::{self, PollFd, Timespec};
use crate::syscall::{self, Errno, SockAddr};

/// Why a lookup gave no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// NXDOMAIN: the name does not exist.
    NoName,
    /// Every server failed or did not answer in time.
    Failed(String),
    /// The name cannot be asked for.
    BadName,
}

impl fmt::Display for LookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LookupError::NoName => f.write_str("no such name"),
            LookupError::Failed(why) => write!(f, "no nameserver answered: {why}"),
            LookupError::BadName => f.write_str("the name cannot be sent in a query"),
        }
    }
}

impl std::error::Error for LookupError {}

/// Nameservers and patience.
#[derive(Debug, Clone)]
pub struct Client {
    pub servers: Vec<IpAddr>,
    /// Wait for one try at one server.
    pub timeout: Duration,
    /// Rounds over all servers.
    pub attempts: u32,
}

impl Client {
    /// glibc's defaults: 5 s per try, 2 rounds.
    pub fn new(servers: Vec<IpAddr>) -> Self {
        Client {
            servers,
            timeout: Duration::from_secs(5),
            attempts: 2,
        }
    }

    /// The reply for `name`, type `qtype`, from the first server that
    /// gives a usable one (an answer, no data, or NXDOMAIN).
    pub fn ask(&self, name: &str, qtype: u16) -> Result<Reply, LookupError> {
        let mut last = String::from("no nameserver configured");
        for _ in 0..self.attempts.max(1) {
            for &server in &self.servers {
                let id = random_id();
                let query = wire::query(id, name, qtype).map_err(|_| LookupError::BadName)?;
                let dest = SocketAddr::new(server, 53);
                let q = Question {
                    query: &query,
                    id,
                    name,
                    qtype,
                };
                let reply = match udp(dest, &q, self.timeout) {
                    Ok(r) if r.truncated => tcp(dest, &q, self.timeout),
                    other => other,
                };
                match reply {
                    Ok(r) if r.rcode == wire::RCODE_NXDOMAIN => return Err(LookupError::NoName),
                    Ok(r) if r.rcode == wire::RCODE_OK && !r.truncated => return Ok(r),
                    Ok(r) => last = format!("{dest}: response code {}", r.rcode),
                    Err(e) => last = format!("{dest}: {e}"),
                }
            }
        }
        Err(LookupError::Failed(last))
    }
}

/// A query id nobody can guess.
fn random_id() -> u16 {
    let mut b = [0u8; 2];
    // SAFETY: fills a 2-byte local; GRND_NONBLOCK never blocks.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), 2, libc::GRND_NONBLOCK) };
    if n != 2 {
        let t = Instant::now().elapsed().subsec_nanos() ^ std::process::id();
        return t as u16;
    }
    u16::from_ne_bytes(b)
}

/// Why one exchange failed.
#[derive(Debug)]
enum Transport {
    Syscall(&'static str, Errno),
    Timeout,
    Closed,
    Bad(wire::WireError),
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Transport::Syscall(what, e) => write!(f, "{what}: {e}"),
            Transport::Timeout => f.write_str("timed out"),
            Transport::Closed => f.write_str("connection closed early"),
            Transport::Bad(e) => write!(f, "{e}"),
        }
    }
}

/// A kernel socket, closed on drop.
struct Sock(i32);

impl Drop for Sock {
    fn drop(&mut self) {
        let _ = syscall::close(self.0);
    }
}

fn sockaddr(a: SocketAddr) -> SockAddr {
    match a {
        SocketAddr::V4(v) => SockAddr::v4(*v.ip(), v.port()),
        SocketAddr::V6(v) => SockAddr::v6(*v.ip(), v.port()),
    }
}

fn open(dest: SocketAddr, ty: i32) -> Result<Sock, Transport> {
    let family = if dest.is_ipv4() {
        abi::AF_INET
    } else {
        abi::AF_INET6
    };
    let fd = syscall::socket(family, ty | abi::SOCK_CLOEXEC | abi::SOCK_NONBLOCK, 0)
        .map_err(|e| Transport::Syscall("socket", e))?;
    Ok(Sock(fd))
}

/// Waits until `fd` has `events` or `deadline` passes.
fn wait(fd: i32, events: i16, deadline: Instant) -> Result<(), Transport> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Transport::Timeout);
        }
        let mut p = [PollFd {
            fd,
            events,
            revents: 0,
        }];
        let ts = Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        match syscall::ppoll(&mut p, Some(ts)) {
            Ok(0) | Err(Errno::EINTR) => continue,
            Ok(_) => return Ok(()),
            Err(e) => return Err(Transport::Syscall("poll", e)),
        }
    }
}

/// One query on the wire, and what its reply must match.
struct Question<'a> {
    query: &'a [u8],
    id: u16,
    name: &'a str,
    qtype: u16,
}

impl Question<'_> {
    fn parse_reply(&self, buf: &[u8]) -> Result<Reply, wire::WireError> {
        wire::parse_reply(buf, self.id, self.name, self.qtype)
    }
}

fn udp(dest: SocketAddr, q: &Question<'_>, timeout: Duration) -> Result<Reply, Transport> {
    let s = open(dest, abi::SOCK_DGRAM)?;
    // Connected: the kernel drops datagrams from any other address.
    syscall::connect(s.0, &sockaddr(dest)).map_err(|e| Transport::Syscall("connect", e))?;
    syscall::send(s.0, q.query, 0).map_err(|e| Transport::Syscall("send", e))?;
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; 65536];
    loop {
        wait(s.0, abi::POLLIN, deadline)?;
        match syscall::recv(s.0, &mut buf, 0) {
            Ok(n) => {
                if let Ok(r) = q.parse_reply(&buf[..n]) {
                    return Ok(r);
                }
                // Not ours or malformed: keep waiting for the real one.
            }
            Err(Errno::EAGAIN) | Err(Errno::EINTR) => {}
            Err(e) => return Err(Transport::Syscall("recv", e)),
        }
    }
}

fn send_all(fd: i32, mut data: &[u8], deadline: Instant) -> Result<(), Transport> {
    while !data.is_empty() {
        match syscall::send(fd, data, libc::MSG_NOSIGNAL) {
            Ok(n) => data = &data[n..],
            Err(Errno::EAGAIN) | Err(Errno::EINTR) => wait(fd, abi::POLLOUT, deadline)?,
            Err(e) => return Err(Transport::Syscall("send", e)),
        }
    }
    Ok(())
}

fn recv_exact(fd: i32, buf: &mut [u8], deadline: Instant) -> Result<(), Transport> {
    let mut got = 0;
    while got < buf.len() {
        match syscall::recv(fd, &mut buf[got..], 0) {
            Ok(0) => return Err(Transport::Closed),
            Ok(n) => got += n,
            Err(Errno::EAGAIN) | Err(Errno::EINTR) => wait(fd, abi::POLLIN, deadline)?,
            Err(e) => return Err(Transport::Syscall("recv", e)),
        }
    }
    Ok(())
}

fn tcp(dest: SocketAddr, q: &Question<'_>, timeout: Duration) -> Result<Reply, Transport> {
    let s = open(dest, abi::SOCK_STREAM)?;
    let deadline = Instant::now() + timeout;
    match syscall::connect(s.0, &sockaddr(dest)) {
        Ok(()) => {}
        Err(Errno::EINPROGRESS) => {
            wait(s.0, abi::POLLOUT, deadline)?;
            let err = syscall::getsockopt_int(s.0, abi::SOL_SOCKET, libc::SO_ERROR)
                .map_err(|e| Transport::Syscall("getsockopt", e))?;
            if err != 0 {
                return Err(Transport::Syscall("connect", Errno(err)));
            }
        }
        Err(e) => return Err(Transport::Syscall("connect", e)),
    }
    let mut framed = (q.query.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(q.query);
    send_all(s.0, &framed, deadline)?;
    let mut len = [0u8; 2];
    recv_exact(s.0, &mut len, deadline)?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    recv_exact(s.0, &mut buf, deadline)?;
    q.parse_reply(&buf).map_err(Transport::Bad).and_then(|r| {
        if r.truncated {
            Err(Transport::Closed)
        } else {
            Ok(r)
        }
    })
}
