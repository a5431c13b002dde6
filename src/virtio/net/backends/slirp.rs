//! The `slirp` backend: user-mode networking through libslirp, so a kernel
//! with no root and no tap can make outbound TCP and UDP connections.
//!
//! **The network** is QEMU's `-netdev user` by default ([`SlirpNetwork`]):
//! 10.0.2.0/24 with the gateway, which is also "the host", at 10.0.2.2, a
//! DNS forwarder at 10.0.2.3 and DHCP handing out 10.0.2.15 onwards; IPv6
//! fec0::/64 with the host at fec0::2 and DNS at fec0::3 (announced by
//! router advertisements). A connection to the host address, or to any
//! other address of the virtual network but the DNS one, reaches the host's
//! loopback (127.0.0.1 or ::1); any other destination is the Internet, by
//! ordinary host sockets. Nothing from outside can connect in (there are
//! no port forwards here).
//!
//! **Threads.** libslirp is single-threaded and not thread-safe, so one
//! thread of ours ("lkl-slirp") makes the instance, owns it, waits in
//! `poll` on its sockets, and runs its timers. It exchanges frames with the
//! device's worker over an `AF_UNIX` `SOCK_SEQPACKET` pair, so to the device
//! this backend is one message socket like any other (one message, one
//! bare Ethernet frame; no vnet header). Frames slirp sends while the
//! device is not reading wait in a bounded queue ([`QUEUE_MAX_BYTES`]);
//! beyond it they are dropped and counted, which libslirp allows (TCP
//! retransmits). Dropping the backend stops the thread and joins it.
//!
//! **Loading.** libslirp (and glib) are loaded on first use with `dlopen`,
//! never linked; without `libslirp.so.0` opening fails with a
//! [`BackendError`] that says what to install. The FFI is in [`ffi`]
//! (`slirp/ffi.rs`), the only slirp file with `unsafe` code.
//!
//! **`param`.** LKL's hijack config has no slirp type (LKL has a slirp
//! backend in its library only, configured in C), so there is no LKL
//! syntax to follow; the config's `param` for `slirp` is QEMU's `-netdev
//! user` option syntax (`net=10.0.3.0/24,host=10.0.3.2,ipv6=off`), parsed
//! into a [`SlirpNetwork`] for [`Slirp::open_with`]; without it the
//! network is QEMU's default, 10.0.2.0/24.

// `deny`, not `forbid`: the FFI child module must be able to allow it.
#![deny(unsafe_code)]

mod ffi;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, JoinHandle};

use serde::Serialize;

use super::error::{BackendError, Cause};
use super::spec::{BackendKind, SlirpNetwork};
use super::{frame_fd_backend, FrameFd, FrameIo};
use crate::virtio::hostio::{self as vio, EventFd};
use crate::virtio::metrics::Counter;
use crate::virtio::net::FRAME_BUF_LEN;
use ffi::{Host, LoadError, Stack};

/// Bytes of frames from slirp that may wait for the device; more are
/// dropped. slirp's TCP has no window scaling, so at most 64 KiB per
/// connection are in flight towards the guest: this holds over a hundred
/// full windows.
pub const QUEUE_MAX_BYTES: usize = 8 << 20;
/// Frames taken from the device before the slirp thread looks at its
/// sockets again.
const BURST: usize = 64;

/// Counters of one slirp backend.
#[derive(Debug, Default, Serialize)]
pub struct SlirpMetrics {
    /// Frames from the guest handed to slirp.
    pub tx_frames_count: Counter,
    /// Frames from slirp passed on to the guest.
    pub rx_frames_count: Counter,
    /// Frames from slirp dropped: the device was not reading and the queue
    /// was full, or the frame was too big.
    pub rx_drops_count: Counter,
    /// Frames from the guest slirp found malformed (its `guest_error`).
    pub guest_errors_count: Counter,
}

/// What the backend and its thread share.
#[derive(Default)]
struct Shared {
    metrics: Arc<SlirpMetrics>,
    /// The last `guest_error` message.
    last_guest_error: Mutex<Option<String>>,
    /// Why the thread stopped on its own, if it did.
    failure: Mutex<Option<String>>,
}

/// Loads libslirp (once per process) and returns its version ("4.7.0"),
/// or the error [`Slirp::open`] would give. Tests use it to skip.
pub fn probe() -> Result<&'static str, BackendError> {
    ffi::library()
        .map(|lib| lib.version())
        .map_err(|e| load_error(&e))
}

fn load_error(e: &LoadError) -> BackendError {
    let os = |error, hint: Option<&str>| {
        BackendError::os(
            BackendKind::Slirp,
            "",
            ffi::SONAME,
            error,
            hint.map(str::to_string),
        )
    };
    match e {
        LoadError::NotFound => os(
            io::Error::new(io::ErrorKind::NotFound, "not found"),
            Some("apt-get install libslirp0"),
        ),
        LoadError::Failed(why) => os(io::Error::other(why.clone()), None),
        LoadError::MissingSymbol(name) => os(
            io::Error::other(format!("has no {name}")),
            Some("libslirp 4.0 or newer is needed"),
        ),
    }
}

/// User-mode networking through libslirp, on a thread of its own.
pub struct Slirp {
    link: FrameFd,
    stop: Arc<EventFd>,
    thread: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
    network: SlirpNetwork,
    version: &'static str,
}

impl Slirp {
    /// Opens a slirp backend on QEMU's default network.
    pub fn open() -> Result<Slirp, BackendError> {
        Self::open_with(&SlirpNetwork::default())
    }

    /// Opens a slirp backend on `network`: loads libslirp, starts the
    /// slirp thread and waits until it has made its instance.
    pub fn open_with(network: &SlirpNetwork) -> Result<Slirp, BackendError> {
        let bad = |why: String| BackendError::new(BackendKind::Slirp, "", Cause::BadParam(why));
        network.validate().map_err(bad)?;
        let lib = ffi::library().map_err(|e| load_error(&e))?;
        let os = |what: &str, e| BackendError::os(BackendKind::Slirp, "", what, e, None);
        let (ours, theirs) = vio::seqpacket_pair().map_err(|e| os("socketpair", e))?;
        vio::set_nonblocking(theirs.as_fd()).map_err(|e| os("socketpair", e))?;
        let stop = Arc::new(EventFd::new().map_err(|e| os("eventfd", e))?);
        let shared = Arc::new(Shared::default());
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = {
            let stop = Arc::clone(&stop);
            let shared = Arc::clone(&shared);
            let network = network.clone();
            thread::Builder::new()
                .name("lkl-slirp".into())
                .spawn(move || {
                    let link = Link {
                        fd: theirs,
                        queue: RefCell::new(VecDeque::new()),
                        queued_bytes: Cell::new(0),
                        shared: Arc::clone(&shared),
                    };
                    // The instance is made here, on the thread that will
                    // use it, and never leaves it.
                    let Some(stack) = Stack::new(lib, &network, link) else {
                        let _ = ready_tx.send(false);
                        return;
                    };
                    let _ = ready_tx.send(true);
                    drop(ready_tx);
                    if let Err(why) = run(&stack, &stop) {
                        if let Ok(mut slot) = shared.failure.lock() {
                            *slot = Some(why);
                        }
                    }
                    // Dropping the stack closes slirp's sockets and then
                    // the link: the device sees a hang-up.
                })
                .map_err(|e| os("slirp thread", e))?
        };
        // The thread answers before anything else; a closed channel means
        // it panicked.
        if ready_rx.recv() != Ok(true) {
            let _ = thread.join();
            return Err(BackendError::new(
                BackendKind::Slirp,
                "",
                Cause::BadParam(format!(
                    "libslirp {} refused the network {}/{}",
                    lib.version(),
                    network.net,
                    network.prefix_len
                )),
            ));
        }
        Ok(Slirp {
            link: FrameFd::new(ours, FrameIo::Message),
            stop,
            thread: Some(thread),
            shared,
            network: network.clone(),
            version: lib.version(),
        })
    }

    /// The virtual network.
    pub fn network(&self) -> &SlirpNetwork {
        &self.network
    }

    /// libslirp's version ("4.7.0").
    pub fn version(&self) -> &'static str {
        self.version
    }

    /// The backend's counters (shared: they stay readable after the
    /// backend has moved into a device).
    pub fn metrics(&self) -> Arc<SlirpMetrics> {
        Arc::clone(&self.shared.metrics)
    }

    /// The last complaint of slirp about a frame from the guest.
    pub fn last_guest_error(&self) -> Option<String> {
        self.shared
            .last_guest_error
            .lock()
            .ok()
            .and_then(|g| g.clone())
    }

    /// Why the slirp thread stopped on its own, if it did (the device then
    /// sees a hang-up).
    pub fn failure(&self) -> Option<String> {
        self.shared.failure.lock().ok().and_then(|g| g.clone())
    }
}

impl Drop for Slirp {
    fn drop(&mut self) {
        // The thread sleeps only in poll, with `stop` in the set, and never
        // blocks otherwise: the join is prompt.
        let _ = self.stop.notify();
        if let Some(h) = self.thread.take() {
            let _ = h.join();
        }
    }
}

impl fmt::Debug for Slirp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slirp")
            .field("network", &self.network)
            .field("libslirp", &self.version)
            .field("fd", &self.link.as_raw_fd())
            .finish()
    }
}

frame_fd_backend!(Slirp, link, vnet_hdr: false);

/// The slirp thread's end of the link, and what slirp's callbacks reach.
/// Used only on the slirp thread, from shared references (see
/// [`ffi`]), hence the cells.
struct Link {
    fd: OwnedFd,
    /// Frames from slirp waiting for room on the link, in order.
    queue: RefCell<VecDeque<Box<[u8]>>>,
    queued_bytes: Cell<usize>,
    shared: Arc<Shared>,
}

/// The device end of the link is gone.
struct Gone;

impl Link {
    /// Sends one frame now: `Ok(false)` if the link is full.
    fn try_send(&self, frame: &[u8]) -> Result<bool, Gone> {
        loop {
            match vio::send_vectored(self.fd.as_fd(), &[IoSlice::new(frame)]) {
                Ok(_) => {
                    self.shared.metrics.rx_frames_count.inc();
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // EPIPE, ECONNRESET: the backend was dropped.
                Err(_) => return Err(Gone),
            }
        }
    }

    /// Sends queued frames until the link is full or the queue empty.
    fn flush(&self) -> Result<(), Gone> {
        loop {
            let mut queue = self.queue.borrow_mut();
            let Some(frame) = queue.front() else {
                return Ok(());
            };
            if !self.try_send(frame)? {
                return Ok(());
            }
            let len = frame.len();
            queue.pop_front();
            self.queued_bytes.set(self.queued_bytes.get() - len);
        }
    }

    fn has_queued(&self) -> bool {
        !self.queue.borrow().is_empty()
    }
}

impl Host for Link {
    fn send_packet(&self, frame: &[u8]) {
        let m = &self.shared.metrics;
        if frame.len() > FRAME_BUF_LEN {
            m.rx_drops_count.inc();
            return;
        }
        // Keep the order: straight out only if nothing is waiting.
        if !self.has_queued() {
            match self.try_send(frame) {
                Ok(true) => return,
                Ok(false) => {}
                // The loop notices the hang-up and stops.
                Err(Gone) => return m.rx_drops_count.inc(),
            }
        }
        if self.queued_bytes.get() + frame.len() > QUEUE_MAX_BYTES {
            return m.rx_drops_count.inc();
        }
        self.queue.borrow_mut().push_back(frame.into());
        self.queued_bytes.set(self.queued_bytes.get() + frame.len());
    }

    fn guest_error(&self, msg: &str) {
        self.shared.metrics.guest_errors_count.inc();
        if let Ok(mut slot) = self.shared.last_guest_error.lock() {
            *slot = Some(msg.to_string());
        }
    }
}

/// The slirp thread's loop: until the backend is dropped (`Ok`) or `poll`
/// fails.
fn run(stack: &Stack<Link>, stop: &EventFd) -> Result<(), String> {
    const STOP: usize = 0;
    const LINK: usize = 1;
    let link = stack.host();
    let mut fds: Vec<libc::pollfd> = Vec::with_capacity(16);
    let mut buf = vec![0u8; FRAME_BUF_LEN];
    loop {
        if link.flush().is_err() {
            return Ok(());
        }
        fds.clear();
        fds.push(libc::pollfd {
            fd: stop.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        fds.push(libc::pollfd {
            fd: link.fd.as_raw_fd(),
            events: if link.has_queued() {
                libc::POLLIN | libc::POLLOUT
            } else {
                libc::POLLIN
            },
            revents: 0,
        });
        // Our timers bound the wait; slirp lowers it for its TCP timers.
        let mut timeout: u32 = stack
            .next_timer_ms()
            .map_or(u32::MAX, |ms| u32::try_from(ms).unwrap_or(u32::MAX - 1));
        stack.fill(&mut fds, &mut timeout);
        let ms = if timeout == u32::MAX {
            -1
        } else {
            libc::c_int::try_from(timeout).unwrap_or(libc::c_int::MAX)
        };
        let polled = ffi::poll(&mut fds, ms);
        // slirp also runs its TCP timers here, ready fds or not.
        stack.poll_done(&fds, polled.is_err());
        if let Err(e) = polled {
            return Err(format!("poll: {}", super::error::describe(&e)));
        }
        if fds[STOP].revents != 0 {
            return Ok(());
        }
        let r = fds[LINK].revents;
        if r & libc::POLLIN != 0 {
            for _ in 0..BURST {
                match vio::recv_vectored(link.fd.as_fd(), &mut [IoSliceMut::new(&mut buf)]) {
                    // Nothing, or the backend closed (its hang-up ends us).
                    Ok((0, _)) => break,
                    // Bigger than any frame the device makes: dropped.
                    Ok((_, true)) => {}
                    Ok((n, false)) => {
                        link.shared.metrics.tx_frames_count.inc();
                        stack.input(&buf[..n]);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return Ok(()),
                }
            }
        } else if r & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
            // Hung up with nothing left to read: the backend is gone.
            return Ok(());
        }
        stack.run_timers();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::virtio::net::backends::test_utils::{recv_frame, send_frame};
    use crate::virtio::net::NetBackend;
    use std::net::Ipv4Addr;

    #[test]
    fn a_bad_network_is_refused_at_open() {
        let err = Slirp::open_with(&SlirpNetwork {
            prefix_len: 0,
            ..SlirpNetwork::default()
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "slirp: prefix length 0 is out of range (1 to 30)"
        );
    }

    #[test]
    fn a_missing_library_says_what_to_install() {
        let e = load_error(&LoadError::NotFound);
        assert_eq!(
            e.to_string(),
            "slirp: libslirp.so.0: not found (apt-get install libslirp0)"
        );
        assert_eq!(e.os_error().unwrap().kind(), io::ErrorKind::NotFound);
        let e = load_error(&LoadError::MissingSymbol("slirp_new"));
        assert_eq!(
            e.to_string(),
            "slirp: libslirp.so.0: has no slirp_new (libslirp 4.0 or newer is needed)"
        );
    }

    /// True if libslirp is installed; says so and skips otherwise.
    fn have_libslirp() -> bool {
        match probe() {
            Ok(_) => true,
            Err(e) => {
                eprintln!("skipped: {e}");
                false
            }
        }
    }

    const GUEST_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

    /// An ARP request from the guest (10.0.2.15) for `target`.
    fn arp_request(target: Ipv4Addr) -> Vec<u8> {
        let mut f = Vec::with_capacity(42);
        f.extend_from_slice(&[0xff; 6]);
        f.extend_from_slice(&GUEST_MAC);
        f.extend_from_slice(&[0x08, 0x06]); // ARP
        f.extend_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, 1]); // Ethernet/IPv4, request
        f.extend_from_slice(&GUEST_MAC);
        f.extend_from_slice(&[10, 0, 2, 15]);
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&target.octets());
        f
    }

    /// Drops `b` and checks its thread has finished: the thread's share of
    /// the state is gone with it.
    fn drop_and_check_joined(b: Slirp) {
        let shared = Arc::clone(&b.shared);
        drop(b);
        assert_eq!(Arc::strong_count(&shared), 1, "the slirp thread is joined");
    }

    #[test]
    fn slirp_answers_arp_for_the_host_and_stops_on_drop() {
        if !have_libslirp() {
            return;
        }
        let mut b = Slirp::open().unwrap();
        assert!(!b.has_vnet_hdr());
        assert!(!b.version().is_empty());
        for target in [Ipv4Addr::new(10, 0, 2, 2), Ipv4Addr::new(10, 0, 2, 3)] {
            send_frame(&mut b, &arp_request(target));
            // Skip anything else slirp may say (IPv6 router advertisements).
            let reply = loop {
                let f = recv_frame(&mut b);
                if f.len() >= 42 && f[12..14] == [0x08, 0x06] {
                    break f;
                }
            };
            assert_eq!(&reply[0..6], &GUEST_MAC, "to the guest");
            assert_eq!(&reply[20..22], &[0, 2], "an ARP reply");
            assert_eq!(&reply[28..32], &target.octets(), "sender is {target}");
            assert_eq!(&reply[38..42], &[10, 0, 2, 15]);
        }
        // The slirp thread counts after it hands a frame over: give the
        // counters a moment to catch up with what we already received.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while (b.metrics().tx_frames_count.get() < 2 || b.metrics().rx_frames_count.get() < 2)
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(b.metrics().tx_frames_count.get() >= 2);
        assert!(b.metrics().rx_frames_count.get() >= 2);
        assert!(b.failure().is_none());
        // A runt is slirp's problem, not ours: ignored, no crash.
        send_frame(&mut b, &[1, 2, 3]);
        drop_and_check_joined(b);
    }

    #[test]
    fn many_backends_come_and_go() {
        if !have_libslirp() {
            return;
        }
        for _ in 0..20 {
            let a = Slirp::open().unwrap();
            let b = Slirp::open_with(&"ipv6=off".parse().unwrap()).unwrap();
            drop_and_check_joined(a);
            drop_and_check_joined(b);
        }
    }
}
