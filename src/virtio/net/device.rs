//! The virtio-net device model and its worker.
//!
//! [`Net`] is the state machine the transport drives: `Inactive` (holding
//! the backend), `Active` (the backend lent to a worker thread), or `Lost`
//! (the worker died with it). The worker serves both queues off the
//! kernel's CPU, woken by two notification eventfds and the backend's fd:
//!
//! - transmit: each chain is read into a bounce buffer, its header checked
//!   (and, for a backend without a vnet header, stripped after finishing a
//!   partial checksum in software), and the frame sent; a full backend
//!   keeps the frame until `POLLOUT`;
//! - receive: the backend is read only while the driver has buffers (one
//!   frame is kept when it has none), the header is fixed up for the
//!   negotiated features, and the frame is written into one chain, or into
//!   as many as needed with `VIRTIO_NET_F_MRG_RXBUF`, published together.
//!
//! Copying through bounce buffers costs one copy per frame each way, but
//! keeps every access to guest memory inside [`GuestMemory`]'s checks.
//!
//! **Transmit inline.** A transmit notification is served on the notifying
//! thread (the kernel's CPU) when the worker is not busy with the state:
//! up to [`TX_INLINE_BUDGET`] chains of at most [`TX_INLINE_MAX_LEN`]
//! bytes, the backend being non-blocking; the rest (a stream's), a long
//! chain, or a frame the backend refused for now, is left to the worker. Waking the worker cost a futex round trip on every
//! request of a request/response exchange (net-bench --rr: 21.8 -> 19.8 us
//! per round trip). The state sits behind a mutex for that; the worker
//! raises interrupts only after letting it go, because raising one may run
//! the kernel on the worker's thread, which may notify again.

#![forbid(unsafe_code)]

use std::io::{IoSlice, IoSliceMut, Read, Write};
use std::mem;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use serde::Serialize;

use super::backend::NetBackend;
use super::{
    complete_checksum, features, NetError, VirtioNetHdr, FRAME_BUF_LEN, NET_QUEUE_MAX_SIZE,
    RX_INDEX, TX_INDEX, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_ECN,
    VIRTIO_NET_HDR_GSO_NONE, VIRTIO_NET_HDR_GSO_TCPV4, VIRTIO_NET_HDR_GSO_TCPV6,
    VIRTIO_NET_HDR_GSO_UDP, VIRTIO_NET_S_LINK_UP, VNET_HDR_LEN,
};
use crate::virtio::device::{
    read_config_bytes, ActivateContext, ActivateError, Interrupt, VirtioDevice,
};
use crate::virtio::device_id;
use crate::virtio::hostio::{EventFd, Interest, PollSet, Readiness};
use crate::virtio::mem::GuestMemory;
use crate::virtio::metrics::Counter;
use crate::virtio::queue::{DescriptorChain, Queue};
use crate::virtio::worker::{EventHandler, Worker};

/// Configuration space: `mac[6]`, `status`, `max_virtqueue_pairs` (5.1.4).
const CONFIG_LEN: usize = 10;
const QUEUE_SIZES: [u16; 2] = [NET_QUEUE_MAX_SIZE; 2];

/// Worker tokens.
const RX_NOTIFY: u32 = 0;
const TX_NOTIFY: u32 = 1;
const BACKEND: u32 = 2;

/// Counters of one net device (Firecracker's naming).
#[derive(Debug, Default, Serialize)]
pub struct NetMetrics {
    /// Frame bytes delivered to the driver (headers excluded).
    pub rx_bytes_count: Counter,
    /// Frames delivered to the driver.
    pub rx_frames_count: Counter,
    /// Frame bytes sent to the backend (headers excluded).
    pub tx_bytes_count: Counter,
    /// Frames sent to the backend.
    pub tx_frames_count: Counter,
    /// Backend read errors.
    pub rx_fails: Counter,
    /// Backend write errors (the frame is dropped).
    pub tx_fails: Counter,
    /// Frames from the backend too big for [`FRAME_BUF_LEN`] (dropped).
    pub rx_truncated: Counter,
    /// Frames dropped because the driver's buffers could not hold them.
    pub rx_dropped_no_room: Counter,
    /// Frames dropped because their header is not allowed by the features
    /// the driver negotiated (or from a vnet-header backend, malformed).
    pub rx_dropped_bad_header: Counter,
    /// Receive chains too small for a header, returned empty.
    pub rx_bad_buffers: Counter,
    /// Times a frame waited because the driver had no receive buffer.
    pub no_rx_avail_buffer: Counter,
    /// Transmit chains that were too short, too long, or had a bad header
    /// (completed, not sent).
    pub tx_malformed: Counter,
    /// Frames dropped because the backend is gone.
    pub tx_dropped: Counter,
    /// Backend hang-ups or errors (the backend is no longer polled).
    pub backend_hangups: Counter,
    /// Unexpected events (notifications while inactive, unknown tokens).
    pub event_fails: Counter,
    /// Driver writes to the read-only configuration space (ignored).
    pub config_writes_ignored: Counter,
    /// Queues the driver broke (the device then asks for a reset).
    pub queue_breaks: Counter,
    /// Worker threads that died (the backend is lost with them).
    pub worker_panics: Counter,
}

enum State {
    Inactive(Box<dyn NetBackend>),
    Active {
        worker: Worker<NetHandler>,
        notify: [Arc<EventFd>; 2],
        /// The worker's state, also served from transmit notifications.
        core: Arc<Mutex<NetWorker>>,
        interrupt: Arc<Interrupt>,
    },
    Lost,
}

/// A virtio-net device (device ID 1).
pub struct Net {
    avail_features: u64,
    config: [u8; CONFIG_LEN],
    state: State,
    metrics: Arc<NetMetrics>,
}

impl std::fmt::Debug for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::Inactive(_) => "inactive",
            State::Active { .. } => "active",
            State::Lost => "lost",
        };
        f.debug_struct("Net")
            .field(
                "avail_features",
                &format_args!("{:#x}", self.avail_features),
            )
            .field("state", &state)
            .finish()
    }
}

impl Net {
    /// A net device over `backend`, offering the virtio-net feature bits in
    /// `features` (the config layer's translation of LKL's `offload`) and,
    /// if `mac` is given, `VIRTIO_NET_F_MAC` with that address.
    /// `VIRTIO_F_VERSION_1` and the ring features are the transport's.
    pub fn new(
        backend: Box<dyn NetBackend>,
        features: u64,
        mac: Option<[u8; 6]>,
    ) -> Result<Self, NetError> {
        let unsupported = features & !features::SUPPORTED;
        if unsupported != 0 {
            return Err(NetError::UnsupportedFeatures(unsupported));
        }
        let mut offered = features;
        match mac {
            Some(_) => offered |= features::MAC,
            None if features & features::MAC != 0 => return Err(NetError::MacMissing),
            None => {}
        }
        if let Some(why) = features::missing_dependency(offered) {
            return Err(NetError::MissingDependency(why));
        }
        if offered & features::HOST_GSO != 0 && !backend.has_vnet_hdr() {
            return Err(NetError::HostGsoNeedsVnetHdr);
        }
        let mut config = [0u8; CONFIG_LEN];
        config[..6].copy_from_slice(&mac.unwrap_or_default());
        // The link is always up: the backend is there from the start.
        config[6..8].copy_from_slice(&VIRTIO_NET_S_LINK_UP.to_le_bytes());
        // max_virtqueue_pairs: one pair (only read with MQ, never offered).
        config[8..10].copy_from_slice(&1u16.to_le_bytes());
        Ok(Net {
            avail_features: offered,
            config,
            state: State::Inactive(backend),
            metrics: Arc::new(NetMetrics::default()),
        })
    }

    /// This device's counters.
    pub fn metrics(&self) -> Arc<NetMetrics> {
        self.metrics.clone()
    }
}

impl VirtioDevice for Net {
    fn device_type(&self) -> u32 {
        device_id::NET
    }

    fn avail_features(&self) -> u64 {
        self.avail_features
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &QUEUE_SIZES
    }

    fn config_len(&self) -> usize {
        CONFIG_LEN
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        read_config_bytes(&self.config, offset, data);
    }

    fn write_config(&mut self, _offset: u64, _data: &[u8]) {
        // 5.1.4: "All of the device configuration fields are read-only for
        // the driver"; 5.1.4.2: "The driver MUST NOT write to any of the
        // device configuration fields."
        self.metrics.config_writes_ignored.inc();
    }

    fn check_features(&self, acked: u64) -> bool {
        // 2.2.1: a subset breaking 5.1.3.1's dependencies is not valid.
        features::missing_dependency(acked).is_none()
    }

    fn activate(&mut self, ctx: ActivateContext) -> Result<(), ActivateError> {
        if ctx.queues.len() != QUEUE_SIZES.len() {
            return Err(ActivateError::QueueCount {
                expected: QUEUE_SIZES.len(),
                got: ctx.queues.len(),
            });
        }
        let mut backend = match mem::replace(&mut self.state, State::Lost) {
            State::Inactive(b) => b,
            active @ State::Active { .. } => {
                self.state = active;
                return Err(ActivateError::AlreadyActive);
            }
            State::Lost => return Err(ActivateError::BackendUnavailable),
        };
        let setup = backend
            .set_offload(ctx.acked_features)
            .and_then(|()| Ok([Arc::new(EventFd::new()?), Arc::new(EventFd::new()?)]));
        let notify = match setup {
            Ok(n) => n,
            Err(e) => {
                self.state = State::Inactive(backend);
                return Err(e.into());
            }
        };
        let mut queues = ctx.queues.into_iter();
        let (Some(rx), Some(tx)) = (queues.next(), queues.next()) else {
            self.state = State::Inactive(backend);
            return Err(ActivateError::QueueCount {
                expected: 2,
                got: 0,
            });
        };
        let acked = ctx.acked_features;
        let vnet_hdr = backend.has_vnet_hdr();
        let interrupt = ctx.interrupt;
        let worker = NetWorker {
            mem: ctx.mem,
            rx,
            tx,
            backend,
            notify: notify.clone(),
            metrics: self.metrics.clone(),
            mrg_rxbuf: acked & features::MRG_RXBUF != 0,
            guest_csum: acked & features::GUEST_CSUM != 0,
            acked,
            vnet_hdr,
            rx_buf: vec![0; FRAME_BUF_LEN],
            rx_frame: None,
            rx_chains: Vec::new(),
            rx_room: 0,
            rx_used: Vec::new(),
            rx_starved: false,
            tx_buf: vec![0; FRAME_BUF_LEN],
            tx_pending: None,
            backend_dead: false,
            broken_reported: false,
            irq_due: false,
            reset_due: false,
            rx_resume: false,
            rx_streaming: false,
        };
        let core = Arc::new(Mutex::new(worker));
        let handler = NetHandler {
            core: core.clone(),
            interrupt: interrupt.clone(),
            wanted: None,
        };
        match Worker::spawn("virtio-net", handler) {
            Ok(worker) => {
                self.state = State::Active {
                    worker,
                    notify,
                    core,
                    interrupt,
                };
                Ok(())
            }
            Err(e) => {
                drop(e.handler);
                self.state = match Arc::try_unwrap(core) {
                    Ok(m) => State::Inactive(into_inner(m).backend),
                    Err(_) => State::Lost,
                };
                Err(ActivateError::Io(e.error))
            }
        }
    }

    fn reset(&mut self) {
        self.state = match mem::replace(&mut self.state, State::Lost) {
            State::Active { worker, core, .. } => match worker.stop() {
                Ok(handler) => {
                    // The handler's reference first: ours is then the last.
                    drop(handler);
                    match Arc::try_unwrap(core) {
                        Ok(m) => State::Inactive(into_inner(m).backend),
                        Err(_) => State::Lost,
                    }
                }
                Err(_) => {
                    self.metrics.worker_panics.inc();
                    State::Lost
                }
            },
            other => other,
        };
    }

    fn is_activated(&self) -> bool {
        matches!(self.state, State::Active { .. })
    }

    fn queue_notify(&self, index: u32) {
        match (&self.state, index as usize) {
            (
                State::Active {
                    notify,
                    core,
                    interrupt,
                    ..
                },
                TX_INDEX,
            ) => {
                if !transmit_inline(core, interrupt) && notify[TX_INDEX].notify().is_err() {
                    self.metrics.event_fails.inc();
                }
            }
            (State::Active { notify, .. }, i @ RX_INDEX) => {
                // Cannot block (non-blocking eventfd; a saturated counter
                // already means "wake up").
                if notify[i].notify().is_err() {
                    self.metrics.event_fails.inc();
                }
            }
            _ => self.metrics.event_fails.inc(),
        }
    }
}

/// Frames up to this long (header included) get their interrupt before the
/// next read when they are the first of a wake-up: a stream's full-sized
/// frames keep one interrupt per batch.
const EARLY_IRQ_MAX_LEN: usize = 512;

/// A received frame longer than this (header included: a full-sized
/// Ethernet frame or an offload segment) marks a stream being received.
const RX_STREAM_MIN_LEN: usize = 1024;

/// Frames sent from a transmit notification before the rest is left to the
/// worker: a request/response exchange sends one or two, a stream more
/// (whose copies and backend writes then stay off the kernel's CPU).
const TX_INLINE_BUDGET: usize = 4;
/// Longer chains (header included) are left to the worker: a segmentation
/// offload frame of a stream costs the kernel's CPU a 64 KiB copy and the
/// host's segmentation, which the worker does in parallel (inline, upload
/// throughput fell from 41 to 33 Gbit/s).
const TX_INLINE_MAX_LEN: usize = 2048;

fn into_inner(m: Mutex<NetWorker>) -> NetWorker {
    // A panic while locked leaves the state as it was between two frames.
    m.into_inner().unwrap_or_else(|e| e.into_inner())
}

/// Serves the transmit queue on the notifying thread (which holds the
/// kernel's CPU), saving the wake-up of the worker, a futex round trip on
/// every request's path. The backend is non-blocking, so this cannot
/// block; nothing here calls into the kernel (an interrupt raised from
/// the CPU's own thread is only marked pending). Returns false, having
/// done nothing or only part, if the worker must take over: it holds the
/// state, the budget ran out, or the backend is full.
fn transmit_inline(core: &Mutex<NetWorker>, interrupt: &Interrupt) -> bool {
    let mut w = match core.try_lock() {
        Ok(w) => w,
        Err(TryLockError::WouldBlock) => return false,
        Err(TryLockError::Poisoned(e)) => e.into_inner(),
    };
    if w.rx_streaming {
        // Receiving a stream: what we send are its ACKs, and the kernel's
        // CPU is the bottleneck; the worker is awake anyway.
        return false;
    }
    let done = w.process_tx_upto(TX_INLINE_BUDGET, TX_INLINE_MAX_LEN);
    let tx_pending = w.tx_pending.is_some();
    let (irq, reset) = w.take_interrupts();
    drop(w);
    raise(interrupt, irq, reset);
    done && !tx_pending
}

fn raise(interrupt: &Interrupt, irq: bool, reset: bool) {
    if irq {
        interrupt.signal_used_queue();
    }
    if reset {
        interrupt.set_needs_reset();
    }
}

/// The fds a worker waits on (notifications, and the backend if wanted).
#[derive(Clone, Copy)]
struct Wanted {
    fds: [(RawFd, u32, Interest); 3],
    len: usize,
}

/// The worker thread's handler: the state is shared with
/// [`transmit_inline`]; the interrupt is raised after the lock is let go
/// (raising it may run the kernel on this thread, which may notify).
///
/// What to wait on is taken under the same lock as the work, so that the
/// wait does not lock again: that contended with the transmit of the reply
/// that the interrupt had just woken up. It cannot go stale: only the
/// worker changes the receive side, and a transmit notification that
/// leaves work (a frame waiting for `POLLOUT`) also writes the eventfd.
struct NetHandler {
    core: Arc<Mutex<NetWorker>>,
    interrupt: Arc<Interrupt>,
    wanted: Option<Wanted>,
}

impl NetHandler {
    fn with(&mut self, f: impl FnOnce(&mut NetWorker)) {
        let mut w: MutexGuard<'_, NetWorker> = self.core.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut w);
        self.wanted = Some(w.interest());
        let (irq, reset) = w.take_interrupts();
        drop(w);
        raise(&self.interrupt, irq, reset);
    }
}

impl EventHandler for NetHandler {
    fn start(&mut self) {
        self.with(|w| w.start());
    }

    fn interest(&mut self, set: &mut PollSet) {
        if self.wanted.is_none() {
            self.with(|_| {});
        }
        if let Some(wanted) = self.wanted.take() {
            for &(fd, token, interest) in &wanted.fds[..wanted.len] {
                set.add(fd, token, interest);
            }
        }
    }

    fn ready(&mut self, token: u32, r: Readiness) {
        let mut again = false;
        self.with(|w| {
            w.ready(token, r);
            again = mem::take(&mut w.rx_resume);
        });
        if again {
            // The interrupt for the first frame is out: read the rest.
            self.with(|w| w.process_rx(false));
        }
    }
}

/// A frame waiting to be sent: `tx_buf[start..end]` for chain `head`.
#[derive(Clone, Copy, Debug)]
struct TxFrame {
    head: u16,
    start: usize,
    end: usize,
}

enum TxOutcome {
    Sent,
    Dropped,
    Blocked,
}

enum RxRead {
    Frame(usize),
    Skip,
    Empty,
}

enum Delivery {
    Done,
    Dropped,
    NoBuffers,
}

/// The device's state while active, owned by its worker thread.
struct NetWorker {
    mem: GuestMemory,
    rx: Queue,
    tx: Queue,
    backend: Box<dyn NetBackend>,
    notify: [Arc<EventFd>; 2],
    metrics: Arc<NetMetrics>,
    mrg_rxbuf: bool,
    guest_csum: bool,
    acked: u64,
    vnet_hdr: bool,
    /// Bounce buffer for received frames, header first.
    rx_buf: Vec<u8>,
    /// Length (header included) of a frame in `rx_buf` not delivered yet.
    rx_frame: Option<usize>,
    /// Mergeable buffers popped for `rx_frame`, and their room.
    rx_chains: Vec<DescriptorChain>,
    rx_room: usize,
    /// The used elements of one mergeable frame (reused).
    rx_used: Vec<(u16, u32)>,
    /// The driver had no buffer: stop reading the backend until it
    /// notifies the receive queue.
    rx_starved: bool,
    tx_buf: Vec<u8>,
    tx_pending: Option<TxFrame>,
    backend_dead: bool,
    broken_reported: bool,
    /// A used-buffer interrupt to raise once the lock is released.
    irq_due: bool,
    /// `DEVICE_NEEDS_RESET` to report once the lock is released.
    reset_due: bool,
    /// `process_rx` stopped early to raise an interrupt: call it again.
    rx_resume: bool,
    /// The last frame received was long (a stream's): transmits are left
    /// to the worker (sending a stream's ACKs inline took the kernel's CPU
    /// from the receive path: download fell from ~13 to ~9 Gbit/s).
    rx_streaming: bool,
}

impl NetWorker {
    /// Signals the driver if it wants to hear about what `queue` used.
    fn signal_used(&mut self, queue: usize) {
        let q = if queue == RX_INDEX {
            &mut self.rx
        } else {
            &mut self.tx
        };
        match q.needs_notification() {
            Ok(true) => self.irq_due = true,
            Ok(false) => {}
            Err(_) => self.metrics.event_fails.inc(),
        }
        if (self.rx.is_broken() || self.tx.is_broken()) && !self.broken_reported {
            // 2.1.2: the driver corrupted a ring; only a reset recovers.
            self.broken_reported = true;
            self.metrics.queue_breaks.inc();
            self.reset_due = true;
        }
    }

    /// The interrupts due (used buffers, needs-reset), cleared.
    fn take_interrupts(&mut self) -> (bool, bool) {
        (mem::take(&mut self.irq_due), mem::take(&mut self.reset_due))
    }

    // ---- transmit ----

    fn process_tx_queue_event(&mut self) {
        let _ = self.notify[TX_INDEX].drain();
        self.process_tx(usize::MAX);
    }

    /// Sends what the driver queued, at most `budget` frames; true if the
    /// queue was drained (notifications re-enabled), false if frames are
    /// left (notifications stay off: the caller hands them to the worker).
    fn process_tx(&mut self, budget: usize) -> bool {
        self.process_tx_upto(budget, usize::MAX)
    }

    /// [`process_tx`](Self::process_tx), stopping (as for the budget)
    /// before a chain longer than `max_len`.
    fn process_tx_upto(&mut self, budget: usize, max_len: usize) -> bool {
        // Driver notifications are not needed while we drain the queue
        // (re-enabled, with a re-check, before we sleep).
        let _ = self.tx.disable_notification();
        let mut sent = 0;
        let mut drained = true;
        loop {
            if sent >= budget && self.tx_pending.is_none() {
                drained = false;
                break;
            }
            sent += 1;
            let frame = match self.tx_pending.take() {
                Some(f) => f,
                None => match self.tx.pop() {
                    Some(chain) if chain.readable_len() as usize > max_len => {
                        self.tx.undo_pop();
                        drained = false;
                        break;
                    }
                    Some(chain) => match self.load_tx_frame(&chain) {
                        Some(f) => f,
                        None => {
                            self.complete_tx(chain.head());
                            continue;
                        }
                    },
                    None => match self.tx.enable_notification() {
                        Ok(true) => continue,
                        _ => break,
                    },
                },
            };
            match self.send_frame(frame) {
                TxOutcome::Blocked => {
                    // Keep it; POLLOUT on the backend resumes us.
                    self.tx_pending = Some(frame);
                    break;
                }
                TxOutcome::Sent | TxOutcome::Dropped => self.complete_tx(frame.head),
            }
        }
        self.signal_used(TX_INDEX);
        drained
    }

    fn complete_tx(&mut self, head: u16) {
        // Transmit buffers are only read: 0 bytes written (2.7.8).
        if self.tx.add_used(head, 0).is_err() {
            self.metrics.event_fails.inc();
        }
    }

    /// Copies a transmit chain into `tx_buf` and prepares it for the
    /// backend, or returns `None` (counted) if it cannot be sent.
    fn load_tx_frame(&mut self, chain: &DescriptorChain) -> Option<TxFrame> {
        let len = chain.readable_len() as usize;
        // 5.1.6.2: a header, then the frame.
        if !(VNET_HDR_LEN..=FRAME_BUF_LEN).contains(&len) {
            self.metrics.tx_malformed.inc();
            return None;
        }
        if chain
            .reader(&self.mem)
            .read_exact(&mut self.tx_buf[..len])
            .is_err()
        {
            self.metrics.tx_malformed.inc();
            return None;
        }
        let head = chain.head();
        if self.vnet_hdr {
            // The backend takes the header as is (it does what it says).
            return Some(TxFrame {
                head,
                start: 0,
                end: len,
            });
        }
        let mut h = [0u8; VNET_HDR_LEN];
        h.copy_from_slice(&self.tx_buf[..VNET_HDR_LEN]);
        let hdr = VirtioNetHdr::from_bytes(&h);
        // HOST_* segmentation is never offered without a vnet header
        // (Net::new), so a driver asking for it is at fault (5.1.6.2.1:
        // "If none of the VIRTIO_NET_F_HOST_TSO4, TSO6, USO or UFO options
        // have been negotiated, the driver MUST set gso_type to
        // VIRTIO_NET_HDR_GSO_NONE").
        if hdr.gso_type != VIRTIO_NET_HDR_GSO_NONE {
            self.metrics.tx_malformed.inc();
            return None;
        }
        // 5.1.6.2.2: csum_start/csum_offset are used only with NEEDS_CSUM;
        // the driver may set it only with VIRTIO_NET_F_CSUM (5.1.6.2.1).
        if hdr.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM != 0
            && (self.acked & features::CSUM == 0
                || !complete_checksum(
                    &mut self.tx_buf[VNET_HDR_LEN..len],
                    hdr.csum_start,
                    hdr.csum_offset,
                ))
        {
            self.metrics.tx_malformed.inc();
            return None;
        }
        Some(TxFrame {
            head,
            start: VNET_HDR_LEN,
            end: len,
        })
    }

    fn send_frame(&mut self, f: TxFrame) -> TxOutcome {
        if self.backend_dead {
            self.metrics.tx_dropped.inc();
            return TxOutcome::Dropped;
        }
        match self
            .backend
            .send(&[IoSlice::new(&self.tx_buf[f.start..f.end])])
        {
            Ok(_) => {
                let payload = f.end - f.start.max(VNET_HDR_LEN);
                self.metrics.tx_bytes_count.add(payload as u64);
                self.metrics.tx_frames_count.inc();
                TxOutcome::Sent
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => TxOutcome::Blocked,
            Err(_) => {
                self.metrics.tx_fails.inc();
                TxOutcome::Dropped
            }
        }
    }

    // ---- receive ----

    fn process_rx_queue_event(&mut self) {
        let _ = self.notify[RX_INDEX].drain();
        self.rx_starved = false;
        self.process_rx(false);
    }

    /// Delivers what the backend has. With `early_irq`, a first small
    /// frame (a request, an ACK) that the driver wants an interrupt for
    /// stops the loop with `rx_resume` set, so that the interrupt goes out
    /// before the read that finds the backend empty (a syscall on every
    /// request's path); the caller raises it and calls again without.
    fn process_rx(&mut self, early_irq: bool) {
        if self.rx.is_broken() {
            return;
        }
        let mut first = early_irq;
        // Notifications of new receive buffers matter only once we run out
        // (then `enable_notification` below re-arms them and re-checks).
        let _ = self.rx.disable_notification();
        loop {
            let len = match self.rx_frame {
                Some(len) => len,
                None => {
                    if self.backend_dead {
                        break;
                    }
                    match self.read_frame() {
                        RxRead::Frame(len) => {
                            self.rx_frame = Some(len);
                            len
                        }
                        RxRead::Skip => continue,
                        RxRead::Empty => break,
                    }
                }
            };
            match self.deliver(len) {
                Delivery::Done if mem::take(&mut first) && len <= EARLY_IRQ_MAX_LEN => {
                    self.rx_frame = None;
                    self.signal_used(RX_INDEX);
                    if self.irq_due {
                        self.rx_resume = true;
                        return;
                    }
                }
                Delivery::Done | Delivery::Dropped => self.rx_frame = None,
                Delivery::NoBuffers => match self.rx.enable_notification() {
                    Ok(true) => continue,
                    _ => {
                        self.metrics.no_rx_avail_buffer.inc();
                        self.rx_starved = true;
                        break;
                    }
                },
            }
        }
        self.signal_used(RX_INDEX);
    }

    /// Reads one frame from the backend into `rx_buf`, header first.
    fn read_frame(&mut self) -> RxRead {
        let off = if self.vnet_hdr { 0 } else { VNET_HDR_LEN };
        match self
            .backend
            .recv(&mut [IoSliceMut::new(&mut self.rx_buf[off..])])
        {
            // End of stream (a hang-up follows) or an empty datagram.
            Ok(0) => RxRead::Empty,
            Ok(n) if self.vnet_hdr && n < VNET_HDR_LEN => {
                self.metrics.rx_dropped_bad_header.inc();
                RxRead::Skip
            }
            Ok(n) => {
                if !self.vnet_hdr {
                    // A plain frame: fully checksummed, not segmented.
                    self.rx_buf[..VNET_HDR_LEN].fill(0);
                }
                RxRead::Frame(off + n)
            }
            Err(e) => match e.kind() {
                std::io::ErrorKind::WouldBlock => RxRead::Empty,
                std::io::ErrorKind::Interrupted => RxRead::Skip,
                std::io::ErrorKind::InvalidData => {
                    self.metrics.rx_truncated.inc();
                    RxRead::Skip
                }
                _ => {
                    self.metrics.rx_fails.inc();
                    RxRead::Empty
                }
            },
        }
    }

    /// Makes the header of the frame in `rx_buf` acceptable to the driver
    /// (5.1.6.4.1 "Device Requirements: Processing of Incoming Packets"),
    /// or returns `None` to drop the frame.
    fn fix_rx_header(&mut self, len: usize) -> Option<VirtioNetHdr> {
        let mut h = [0u8; VNET_HDR_LEN];
        h.copy_from_slice(&self.rx_buf[..VNET_HDR_LEN]);
        let mut hdr = VirtioNetHdr::from_bytes(&h);
        // "If none of the VIRTIO_NET_F_GUEST_TSO4, TSO6, UFO ... options
        // have been negotiated, the device MUST set gso_type to
        // VIRTIO_NET_HDR_GSO_NONE": a segment type needs its feature.
        let needed = match hdr.gso_type & !VIRTIO_NET_HDR_GSO_ECN {
            VIRTIO_NET_HDR_GSO_NONE => 0,
            VIRTIO_NET_HDR_GSO_TCPV4 => features::GUEST_TSO4,
            VIRTIO_NET_HDR_GSO_TCPV6 => features::GUEST_TSO6,
            VIRTIO_NET_HDR_GSO_UDP => features::GUEST_UFO,
            _ => u64::MAX,
        };
        if self.acked & needed != needed {
            return None;
        }
        // "If VIRTIO_NET_F_GUEST_CSUM is not negotiated, the device MUST
        // set flags to zero and SHOULD supply a fully checksummed packet".
        if !self.guest_csum {
            if hdr.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM != 0
                && !complete_checksum(
                    &mut self.rx_buf[VNET_HDR_LEN..len],
                    hdr.csum_start,
                    hdr.csum_offset,
                )
            {
                return None;
            }
            hdr.flags = 0;
        }
        Some(hdr)
    }

    fn deliver(&mut self, len: usize) -> Delivery {
        let Some(mut hdr) = self.fix_rx_header(len) else {
            self.metrics.rx_dropped_bad_header.inc();
            return Delivery::Dropped;
        };
        let result = if self.mrg_rxbuf {
            self.deliver_mergeable(&mut hdr, len)
        } else {
            self.deliver_single(&mut hdr, len)
        };
        if let Delivery::Done = result {
            self.rx_streaming = len > RX_STREAM_MIN_LEN;
            self.metrics.rx_bytes_count.add((len - VNET_HDR_LEN) as u64);
            self.metrics.rx_frames_count.inc();
        }
        result
    }

    /// Pops receive chains, returning those that cannot hold even a header
    /// to the driver empty (5.1.6.3.1: each buffer "MUST be at least size
    /// of struct virtio_net_hdr").
    fn pop_rx_buffer(&mut self) -> Option<DescriptorChain> {
        loop {
            let c = self.rx.pop()?;
            if (c.writable_len() as usize) >= VNET_HDR_LEN {
                return Some(c);
            }
            self.metrics.rx_bad_buffers.inc();
            if self.rx.add_used(c.head(), 0).is_err() {
                self.metrics.event_fails.inc();
            }
        }
    }

    /// Without `VIRTIO_NET_F_MRG_RXBUF`: the whole frame in one chain
    /// (5.1.6.3.2: "The device MUST use only a single descriptor if
    /// VIRTIO_NET_F_MRG_RXBUF was not negotiated").
    fn deliver_single(&mut self, hdr: &mut VirtioNetHdr, len: usize) -> Delivery {
        let Some(chain) = self.pop_rx_buffer() else {
            return Delivery::NoBuffers;
        };
        if (chain.writable_len() as usize) < len {
            // Cannot split the frame: drop it, keep the buffer for the next.
            self.rx.undo_pop();
            self.metrics.rx_dropped_no_room.inc();
            return Delivery::Dropped;
        }
        hdr.num_buffers = 1;
        self.rx_buf[..VNET_HDR_LEN].copy_from_slice(&hdr.to_bytes());
        let mut w = chain.writer(&self.mem);
        if w.write_all(&self.rx_buf[..len]).is_err() {
            self.metrics.rx_fails.inc();
        }
        let written = w.written() as u32;
        if self.rx.add_used(chain.head(), written).is_err() {
            self.metrics.event_fails.inc();
        }
        Delivery::Done
    }

    /// With `VIRTIO_NET_F_MRG_RXBUF`: as many chains as the frame needs,
    /// `num_buffers` in the first header (5.1.6.3.2: "The device MUST set
    /// num_buffers to the number of descriptors used to hold the incoming
    /// packet"), all made visible by one used-index update.
    fn deliver_mergeable(&mut self, hdr: &mut VirtioNetHdr, len: usize) -> Delivery {
        while self.rx_room < len {
            if self.rx_chains.len() >= usize::from(self.rx.size()) {
                // Every buffer the ring can hold is ours and it is still
                // not enough: this frame can never fit. Keep the buffers
                // for the next frame.
                self.metrics.rx_dropped_no_room.inc();
                return Delivery::Dropped;
            }
            let Some(c) = self.pop_rx_buffer() else {
                // Keep what we have; more buffers will follow.
                return Delivery::NoBuffers;
            };
            self.rx_room += c.writable_len() as usize;
            self.rx_chains.push(c);
        }
        self.rx_room = 0;
        // At most a queue's worth of chains (checked above): fits a u16.
        hdr.num_buffers = self.rx_chains.len() as u16;
        self.rx_buf[..VNET_HDR_LEN].copy_from_slice(&hdr.to_bytes());
        let mut pos = 0;
        // Both vectors keep their allocation from frame to frame.
        self.rx_used.clear();
        for c in self.rx_chains.drain(..) {
            let mut w = c.writer(&self.mem);
            let n = w.write(&self.rx_buf[pos..len]).unwrap_or_else(|_| {
                self.metrics.rx_fails.inc();
                w.written()
            });
            pos += n;
            self.rx_used.push((c.head(), n as u32));
        }
        if self.rx.add_used_batch(&self.rx_used).is_err() {
            self.metrics.event_fails.inc();
        }
        Delivery::Done
    }

    fn process_backend_event(&mut self, r: Readiness) {
        if r.readable {
            self.process_rx(true);
        }
        if r.writable {
            self.process_tx(usize::MAX);
        }
        if r.hangup || r.error {
            // The other end is gone: stop polling it; frames still queued
            // for transmit are dropped (and completed) from now on.
            self.backend_dead = true;
            self.metrics.backend_hangups.inc();
            if self.tx_pending.is_some() {
                self.process_tx(usize::MAX);
            }
        }
    }
}

impl NetWorker {
    fn start(&mut self) {
        // Buffers queued before DRIVER_OK got no notification we acted on.
        self.process_tx(usize::MAX);
        self.process_rx(false);
    }

    /// The fds to wait on next, with their tokens.
    fn interest(&self) -> Wanted {
        let mut wanted = Wanted {
            fds: [(0, 0, Interest::default()); 3],
            len: 2,
        };
        wanted.fds[0] = (self.notify[RX_INDEX].as_raw_fd(), RX_NOTIFY, Interest::READ);
        wanted.fds[1] = (self.notify[TX_INDEX].as_raw_fd(), TX_NOTIFY, Interest::READ);
        if !self.backend_dead {
            let interest = Interest {
                read: self.rx_frame.is_none() && !self.rx_starved && !self.rx.is_broken(),
                write: self.tx_pending.is_some(),
            };
            if interest.read || interest.write {
                wanted.fds[2] = (self.backend.as_raw_fd(), BACKEND, interest);
                wanted.len = 3;
            }
        }
        wanted
    }

    fn ready(&mut self, token: u32, r: Readiness) {
        match token {
            RX_NOTIFY => self.process_rx_queue_event(),
            TX_NOTIFY => self.process_tx_queue_event(),
            BACKEND => self.process_backend_event(r),
            _ => self.metrics.event_fails.inc(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::{AsFd, OwnedFd};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    use super::*;
    use crate::virtio::device::INT_USED_RING;
    use crate::virtio::hostio;
    use crate::virtio::mem::{GuestAddress, RAM_PHYS_BASE};
    use crate::virtio::mmio::{regs, MmioTransport};
    use crate::virtio::net::{SocketPairBackend, VIRTIO_NET_HDR_F_DATA_VALID};
    use crate::virtio::test_utils::{
        add_status, device_features, read32, set_driver_features, setup_queue, write32, Buf,
        DriverQueue,
    };
    use crate::virtio::{features as vfeatures, status};

    const BASE: GuestAddress = GuestAddress(RAM_PHYS_BASE);
    const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
    /// Where test buffers live (queues are below).
    const DATA: u64 = RAM_PHYS_BASE + 0x40000;

    fn data(off: u64) -> GuestAddress {
        GuestAddress(DATA + off)
    }

    struct Harness {
        mem: GuestMemory,
        t: MmioTransport,
        rxq: DriverQueue,
        txq: DriverQueue,
        peer: OwnedFd,
        irqs: Arc<AtomicUsize>,
        metrics: Arc<NetMetrics>,
        next_buf: u64,
    }

    fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// A device with `offered` features over a socket pair, brought up the
    /// way Linux's virtio_mmio + virtio_net do, accepting what `accept`
    /// keeps of the offer.
    fn harness(offered: u64, vnet: bool, accept: impl Fn(u64) -> u64) -> Harness {
        let mem = GuestMemory::new_owned(4 << 20, BASE).unwrap();
        let (backend, peer) = SocketPairBackend::pair(vnet).unwrap();
        let net = Net::new(Box::new(backend), offered, Some(MAC)).unwrap();
        let metrics = net.metrics();
        let irqs = Arc::new(AtomicUsize::new(0));
        let i2 = irqs.clone();
        let mut t = MmioTransport::new(
            mem.clone(),
            Box::new(net),
            Arc::new(move || {
                i2.fetch_add(1, Ordering::SeqCst);
            }),
        );
        assert_eq!(read32(&t, regs::DEVICE_ID), 1);
        write32(&mut t, regs::STATUS, 0);
        add_status(&mut t, status::ACKNOWLEDGE);
        add_status(&mut t, status::DRIVER);
        let f = device_features(&mut t);
        set_driver_features(&mut t, accept(f));
        add_status(&mut t, status::FEATURES_OK);
        assert_ne!(read32(&t, regs::STATUS) & status::FEATURES_OK, 0);
        let rxq = DriverQueue::new(&mem, BASE, 256);
        let txq = DriverQueue::new(&mem, GuestAddress(RAM_PHYS_BASE + 0x10000), 256);
        setup_queue(&mut t, 0, &rxq);
        setup_queue(&mut t, 1, &txq);
        add_status(&mut t, status::DRIVER_OK);
        assert!(t.device().is_activated(), "{:?}", t.last_activate_error());
        Harness {
            mem,
            t,
            rxq,
            txq,
            peer,
            irqs,
            metrics,
            next_buf: 0,
        }
    }

    impl Harness {
        fn alloc(&mut self, len: u32) -> GuestAddress {
            let a = data(self.next_buf);
            self.next_buf += u64::from(len).next_multiple_of(64);
            a
        }

        /// Queues a transmit frame as virtio_net's `xmit_skb` does (header
        /// and data in separate descriptors) and notifies.
        fn send(&mut self, hdr: VirtioNetHdr, frame: &[u8]) -> u16 {
            let h = self.alloc(12);
            self.mem.write(h, &hdr.to_bytes()).unwrap();
            let d = self.alloc(frame.len() as u32);
            self.mem.write(d, frame).unwrap();
            let head = self
                .txq
                .add_chain(&[Buf::r(h, 12), Buf::r(d, frame.len() as u32)]);
            write32(&mut self.t, regs::QUEUE_NOTIFY, 1);
            head
        }

        /// Adds `n` receive buffers of `len` bytes and notifies.
        fn add_rx_buffers(&mut self, n: usize, len: u32) -> Vec<(u16, GuestAddress)> {
            let v: Vec<_> = (0..n)
                .map(|_| {
                    let a = self.alloc(len);
                    (self.rxq.add_chain(&[Buf::w(a, len)]), a)
                })
                .collect();
            write32(&mut self.t, regs::QUEUE_NOTIFY, 0);
            v
        }

        fn peer_recv(&self) -> Vec<u8> {
            let mut set = hostio::PollSet::new();
            set.add(self.peer.as_raw_fd(), 0, Interest::READ);
            assert_eq!(
                set.wait(Some(Duration::from_secs(10))).unwrap(),
                1,
                "no frame from the device"
            );
            let mut buf = vec![0u8; 70000];
            let (n, trunc) =
                hostio::recv_vectored(self.peer.as_fd(), &mut [IoSliceMut::new(&mut buf)]).unwrap();
            assert!(!trunc);
            buf.truncate(n);
            buf
        }

        fn peer_send(&self, frame: &[u8]) {
            hostio::send_vectored(self.peer.as_fd(), &[IoSlice::new(frame)]).unwrap();
        }

        fn wait_rx_used(&mut self) -> (u32, u32) {
            let mut e = None;
            wait_until("a used receive buffer", || {
                e = self.rxq.pop_used();
                e.is_some()
            });
            e.unwrap()
        }

        fn wait_tx_used(&mut self) -> (u32, u32) {
            let mut e = None;
            wait_until("a used transmit buffer", || {
                e = self.txq.pop_used();
                e.is_some()
            });
            e.unwrap()
        }

        fn read(&self, a: GuestAddress, len: usize) -> Vec<u8> {
            let mut v = vec![0; len];
            self.mem.read(a, &mut v).unwrap();
            v
        }

        /// What virtio_net's interrupt handler does: read, acknowledge.
        fn take_interrupt(&mut self) -> u32 {
            let s = read32(&self.t, regs::INTERRUPT_STATUS);
            write32(&mut self.t, regs::INTERRUPT_ACK, s);
            s
        }
    }

    fn frame(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
            .collect()
    }

    const LINUX_DEFAULT: u64 = features::MRG_RXBUF | features::STATUS;

    #[test]
    fn constructor_validates_features() {
        let b = || Box::new(SocketPairBackend::pair(false).unwrap().0) as Box<dyn NetBackend>;
        let bv = || Box::new(SocketPairBackend::pair(true).unwrap().0) as Box<dyn NetBackend>;
        assert!(Net::new(b(), features::SUPPORTED & !features::HOST_GSO, Some(MAC)).is_ok());
        assert!(Net::new(bv(), features::SUPPORTED, Some(MAC)).is_ok());
        assert_eq!(
            Net::new(b(), 1 << 17, None).unwrap_err(),
            NetError::UnsupportedFeatures(1 << 17)
        );
        assert_eq!(
            Net::new(b(), features::MAC, None).unwrap_err(),
            NetError::MacMissing
        );
        assert_eq!(
            Net::new(bv(), features::HOST_TSO4, None).unwrap_err(),
            NetError::MissingDependency("HOST_TSO4 requires CSUM")
        );
        assert_eq!(
            Net::new(b(), features::CSUM | features::HOST_TSO4, None).unwrap_err(),
            NetError::HostGsoNeedsVnetHdr
        );
        let n = Net::new(b(), 0, None).unwrap();
        assert_eq!(n.avail_features(), 0);
        let n = Net::new(b(), features::STATUS, Some(MAC)).unwrap();
        assert_eq!(n.avail_features(), features::STATUS | features::MAC);
    }

    #[test]
    fn config_space() {
        let (b, _peer) = SocketPairBackend::pair(false).unwrap();
        let mut n = Net::new(Box::new(b), features::STATUS, Some(MAC)).unwrap();
        let mut mac = [0u8; 6];
        for (i, m) in mac.iter_mut().enumerate() {
            let mut b = [0u8; 1];
            n.read_config(i as u64, &mut b); // virtio_cread_bytes: byte at a time
            *m = b[0];
        }
        assert_eq!(mac, MAC);
        let mut s = [0u8; 2];
        n.read_config(6, &mut s);
        assert_eq!(u16::from_le_bytes(s), VIRTIO_NET_S_LINK_UP);
        let mut past = [0xffu8; 4];
        n.read_config(8, &mut past);
        assert_eq!(past, [1, 0, 0, 0]);
        n.read_config(u64::MAX, &mut past);
        assert_eq!(past, [0; 4]);
        n.write_config(0, &[0; 6]);
        assert_eq!(n.metrics().config_writes_ignored.get(), 1);
        n.read_config(0, &mut mac);
        assert_eq!(mac, MAC, "read-only");
    }

    #[test]
    fn feature_dependencies_enforced_at_features_ok() {
        let (b, _peer) = SocketPairBackend::pair(true).unwrap();
        let n = Net::new(Box::new(b), features::SUPPORTED, Some(MAC)).unwrap();
        assert!(n.check_features(vfeatures::VERSION_1 | features::CSUM | features::HOST_TSO4));
        assert!(!n.check_features(vfeatures::VERSION_1 | features::HOST_TSO4));
    }

    #[test]
    fn tx_end_to_end() {
        let mut h = harness(LINUX_DEFAULT, false, |f| f);
        let f1 = frame(60, 1);
        let head = h.send(VirtioNetHdr::default(), &f1);
        assert_eq!(h.peer_recv(), f1, "header stripped, frame intact");
        assert_eq!(h.wait_tx_used(), (u32::from(head), 0));
        wait_until("the interrupt", || h.irqs.load(Ordering::SeqCst) >= 1);
        assert_eq!(h.take_interrupt(), INT_USED_RING);
        // A large frame, several in a row.
        for i in 0..10 {
            let f = frame(1514 + i * 1000, i as u8);
            h.send(VirtioNetHdr::default(), &f);
            assert_eq!(h.peer_recv(), f);
        }
        // Counters are relaxed: wait for both rather than infer one.
        let bytes = 60 + (0..10).map(|i| 1514 + i * 1000).sum::<u64>();
        wait_until("the counters", || {
            h.metrics.tx_frames_count.get() == 11 && h.metrics.tx_bytes_count.get() == bytes
        });
    }

    #[test]
    fn tx_indirect_chain() {
        let mut h = harness(0, false, |f| f);
        let f = frame(100, 3);
        let hd = h.alloc(12);
        h.mem.write(hd, &[0; 12]).unwrap();
        let d = h.alloc(100);
        h.mem.write(d, &f).unwrap();
        let table = h.alloc(32);
        h.txq.add_indirect(table, &[Buf::r(hd, 12), Buf::r(d, 100)]);
        write32(&mut h.t, regs::QUEUE_NOTIFY, 1);
        assert_eq!(h.peer_recv(), f);
    }

    #[test]
    fn tx_malformed_chains_are_completed() {
        let mut h = harness(0, false, |f| f);
        // Too short for a header.
        let a = h.alloc(8);
        let head = h.txq.add_chain(&[Buf::r(a, 8)]);
        write32(&mut h.t, regs::QUEUE_NOTIFY, 1);
        assert_eq!(h.wait_tx_used(), (u32::from(head), 0));
        // A segmentation request that was never offered.
        let hdr = VirtioNetHdr {
            gso_type: VIRTIO_NET_HDR_GSO_TCPV4,
            ..Default::default()
        };
        let head = h.send(hdr, &frame(3000, 0));
        assert_eq!(h.wait_tx_used(), (u32::from(head), 0));
        // A looping chain.
        let d = |next| crate::virtio::queue::Descriptor {
            addr: DATA,
            len: 64,
            flags: crate::virtio::queue::VIRTQ_DESC_F_NEXT,
            next,
        };
        h.txq.write_desc(200, d(201));
        h.txq.write_desc(201, d(200));
        h.txq.publish(200);
        write32(&mut h.t, regs::QUEUE_NOTIFY, 1);
        assert_eq!(h.wait_tx_used(), (200, 0));
        // The device still works.
        let f = frame(64, 9);
        h.send(VirtioNetHdr::default(), &f);
        assert_eq!(h.peer_recv(), f);
        wait_until("the counters", || h.metrics.tx_frames_count.get() == 1);
        assert_eq!(h.metrics.tx_malformed.get(), 2);
    }

    #[test]
    fn tx_checksum_in_software() {
        let mut h = harness(features::CSUM, false, |f| f);
        let mut f = frame(80, 5);
        let pseudo = 0x1234u16;
        f[40..42].copy_from_slice(&pseudo.to_be_bytes());
        let hdr = VirtioNetHdr {
            flags: VIRTIO_NET_HDR_F_NEEDS_CSUM,
            csum_start: 34,
            csum_offset: 6,
            ..Default::default()
        };
        h.send(hdr, &f);
        let got = h.peer_recv();
        let mut want = f.clone();
        assert!(complete_checksum(&mut want, 34, 6));
        assert_eq!(got, want);
        assert_ne!(got[40..42], pseudo.to_be_bytes());
    }

    #[test]
    fn rx_end_to_end_without_mrg_rxbuf() {
        let mut h = harness(LINUX_DEFAULT, false, |f| f & !features::MRG_RXBUF);
        let bufs = h.add_rx_buffers(4, 12 + 1518);
        let f = frame(1514, 2);
        h.peer_send(&f);
        let (id, len) = h.wait_rx_used();
        assert_eq!((id, len), (u32::from(bufs[0].0), 12 + 1514));
        let got = h.read(bufs[0].1, len as usize);
        let hdr = VirtioNetHdr::from_bytes(got[..12].try_into().unwrap());
        assert_eq!(
            hdr,
            VirtioNetHdr {
                num_buffers: 1,
                ..Default::default()
            }
        );
        assert_eq!(&got[12..], &f[..]);
        wait_until("the interrupt", || h.irqs.load(Ordering::SeqCst) >= 1);
        assert_eq!(h.take_interrupt() & INT_USED_RING, INT_USED_RING);
        // Two more frames land in the next buffers, in order.
        h.peer_send(&frame(100, 3));
        h.peer_send(&frame(200, 4));
        assert_eq!(h.wait_rx_used(), (u32::from(bufs[1].0), 112));
        assert_eq!(h.wait_rx_used(), (u32::from(bufs[2].0), 212));
        assert_eq!(&h.read(bufs[2].1, 212)[12..], &frame(200, 4)[..]);
        wait_until("the counters", || h.metrics.rx_frames_count.get() == 3);
    }

    #[test]
    fn rx_frame_too_big_for_single_buffer_is_dropped() {
        let mut h = harness(0, false, |f| f);
        let bufs = h.add_rx_buffers(1, 100);
        h.peer_send(&frame(200, 1));
        h.peer_send(&frame(50, 2));
        let (id, len) = h.wait_rx_used();
        assert_eq!(
            (id, len),
            (u32::from(bufs[0].0), 62),
            "the small frame used the buffer"
        );
        assert_eq!(&h.read(bufs[0].1, 62)[12..], &frame(50, 2)[..]);
        assert_eq!(h.metrics.rx_dropped_no_room.get(), 1);
    }

    #[test]
    fn rx_end_to_end_with_mrg_rxbuf() {
        let mut h = harness(LINUX_DEFAULT, false, |f| f);
        let bufs = h.add_rx_buffers(8, 256);
        let f = frame(1000, 6);
        h.peer_send(&f);
        // 12 + 1000 bytes need four 256-byte buffers.
        let used: Vec<_> = (0..4).map(|_| h.wait_rx_used()).collect();
        let ids: Vec<u32> = bufs[..4].iter().map(|b| u32::from(b.0)).collect();
        assert_eq!(used.iter().map(|u| u.0).collect::<Vec<_>>(), ids);
        assert_eq!(
            used.iter().map(|u| u.1).collect::<Vec<_>>(),
            vec![256, 256, 256, 244]
        );
        let mut got = Vec::new();
        for (b, u) in bufs[..4].iter().zip(&used) {
            got.extend(h.read(b.1, u.1 as usize));
        }
        let hdr = VirtioNetHdr::from_bytes(got[..12].try_into().unwrap());
        assert_eq!(hdr.num_buffers, 4);
        assert_eq!(&got[12..], &f[..]);
        // A small one takes one buffer.
        h.peer_send(&frame(10, 7));
        let (id, len) = h.wait_rx_used();
        assert_eq!((id, len), (u32::from(bufs[4].0), 22));
        assert_eq!(
            VirtioNetHdr::from_bytes(h.read(bufs[4].1, 12)[..].try_into().unwrap()).num_buffers,
            1
        );
    }

    #[test]
    fn rx_waits_for_buffers() {
        let mut h = harness(LINUX_DEFAULT, false, |f| f);
        let f = frame(600, 8);
        h.peer_send(&f);
        wait_until("the device to notice it has no buffer", || {
            h.metrics.no_rx_avail_buffer.get() >= 1
        });
        assert_eq!(h.rxq.pop_used(), None);
        // Mergeable: a frame may wait with part of its buffers.
        let first = h.add_rx_buffers(1, 256);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(h.rxq.pop_used(), None, "one buffer is not enough");
        let more = h.add_rx_buffers(2, 256);
        let used: Vec<_> = (0..3).map(|_| h.wait_rx_used()).collect();
        assert_eq!(used[0].0, u32::from(first[0].0));
        assert_eq!(used[1].0, u32::from(more[0].0));
        assert_eq!(used.iter().map(|u| u.1).sum::<u32>(), 612);
    }

    #[test]
    fn rx_event_idx_suppresses_interrupts() {
        let mut h = harness(0, false, |f| f);
        assert_ne!(h.t.acked_features() & vfeatures::RING_EVENT_IDX, 0);
        h.add_rx_buffers(8, 1526);
        h.peer_send(&frame(60, 0));
        h.wait_rx_used();
        wait_until("the first interrupt", || h.irqs.load(Ordering::SeqCst) == 1);
        h.take_interrupt();
        // The driver asks for an interrupt only after the third next
        // buffer (used_event = 3, i.e. when used idx passes 3).
        h.rxq.set_used_event(3);
        h.peer_send(&frame(60, 1));
        h.wait_rx_used();
        h.peer_send(&frame(60, 2));
        h.wait_rx_used();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(h.irqs.load(Ordering::SeqCst), 1, "suppressed");
        h.peer_send(&frame(60, 3));
        h.wait_rx_used();
        wait_until("the requested interrupt", || {
            h.irqs.load(Ordering::SeqCst) == 2
        });
    }

    #[test]
    fn vnet_hdr_backend_passes_headers() {
        let offered = features::SUPPORTED & !features::MAC;
        let mut h = harness(offered, true, |f| f);
        // Transmit: the header goes to the backend untouched.
        let hdr = VirtioNetHdr {
            flags: VIRTIO_NET_HDR_F_NEEDS_CSUM,
            gso_type: VIRTIO_NET_HDR_GSO_TCPV4,
            hdr_len: 54,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
            num_buffers: 0,
        };
        let f = frame(5000, 1);
        h.send(hdr, &f);
        let got = h.peer_recv();
        assert_eq!(VirtioNetHdr::from_bytes(got[..12].try_into().unwrap()), hdr);
        assert_eq!(&got[12..], &f[..]);
        // Receive: the backend's header arrives, num_buffers set by us.
        let bufs = h.add_rx_buffers(64, 1536);
        let rxh = VirtioNetHdr {
            flags: VIRTIO_NET_HDR_F_DATA_VALID,
            gso_type: VIRTIO_NET_HDR_GSO_TCPV6,
            hdr_len: 74,
            gso_size: 1428,
            csum_start: 0,
            csum_offset: 0,
            num_buffers: 77,
        };
        let big = frame(20000, 2);
        let mut msg = rxh.to_bytes().to_vec();
        msg.extend_from_slice(&big);
        h.peer_send(&msg);
        let need = (12 + 20000usize).div_ceil(1536);
        let used: Vec<_> = (0..need).map(|_| h.wait_rx_used()).collect();
        let total: u32 = used.iter().map(|u| u.1).sum();
        assert_eq!(total as usize, 12 + 20000);
        let mut got = Vec::new();
        for (b, u) in bufs.iter().zip(&used) {
            assert_eq!(u.0, u32::from(b.0));
            got.extend(h.read(b.1, u.1 as usize));
        }
        let want = VirtioNetHdr {
            num_buffers: need as u16,
            ..rxh
        };
        assert_eq!(
            VirtioNetHdr::from_bytes(got[..12].try_into().unwrap()),
            want
        );
        assert_eq!(&got[12..], &big[..]);
        wait_until("the counters", || h.metrics.rx_frames_count.get() == 1);
    }

    #[test]
    fn rx_header_must_match_negotiated_features() {
        // Offered everything, but the driver takes no GUEST_* offloads.
        let offered = features::SUPPORTED & !features::MAC;
        let mut h = harness(offered, true, |f| {
            f & !(features::GUEST_CSUM | features::GUEST_GSO)
        });
        let bufs = h.add_rx_buffers(4, 1536);
        // A segmented frame: not acceptable, dropped.
        let gso = VirtioNetHdr {
            gso_type: VIRTIO_NET_HDR_GSO_TCPV4,
            gso_size: 1448,
            ..Default::default()
        };
        let mut msg = gso.to_bytes().to_vec();
        msg.extend_from_slice(&frame(3000, 0));
        h.peer_send(&msg);
        // A partially checksummed frame: completed in software, flags 0.
        let mut f = frame(100, 1);
        f[40..42].copy_from_slice(&0x4321u16.to_be_bytes());
        let partial = VirtioNetHdr {
            flags: VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID,
            csum_start: 34,
            csum_offset: 6,
            ..Default::default()
        };
        let mut msg = partial.to_bytes().to_vec();
        msg.extend_from_slice(&f);
        h.peer_send(&msg);
        let (id, len) = h.wait_rx_used();
        assert_eq!((id, len), (u32::from(bufs[0].0), 112));
        let got = h.read(bufs[0].1, 112);
        let hdr = VirtioNetHdr::from_bytes(got[..12].try_into().unwrap());
        assert_eq!((hdr.flags, hdr.gso_type, hdr.num_buffers), (0, 0, 1));
        let mut want = f.clone();
        assert!(complete_checksum(&mut want, 34, 6));
        assert_eq!(&got[12..], &want[..]);
        assert_eq!(h.metrics.rx_dropped_bad_header.get(), 1);
    }

    #[test]
    fn reset_stops_and_joins_the_worker_and_reactivates() {
        let mut h = harness(LINUX_DEFAULT, false, |f| f);
        // The worker holds a clone of the metrics while it runs.
        assert_eq!(Arc::strong_count(&h.metrics), 3);
        write32(&mut h.t, regs::STATUS, 0);
        assert!(!h.t.device().is_activated());
        assert_eq!(
            Arc::strong_count(&h.metrics),
            2,
            "worker joined, its state dropped"
        );
        // Nothing reads the backend now.
        h.peer_send(&frame(60, 0));
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(h.metrics.rx_frames_count.get(), 0);
        // The driver brings the device up again on the same backend; the
        // waiting frame is then delivered.
        add_status(&mut h.t, status::ACKNOWLEDGE);
        add_status(&mut h.t, status::DRIVER);
        set_driver_features(&mut h.t, vfeatures::VERSION_1 | features::MRG_RXBUF);
        add_status(&mut h.t, status::FEATURES_OK);
        h.rxq = DriverQueue::new(&h.mem, BASE, 256);
        h.txq = DriverQueue::new(&h.mem, GuestAddress(RAM_PHYS_BASE + 0x10000), 256);
        setup_queue(&mut h.t, 0, &h.rxq);
        setup_queue(&mut h.t, 1, &h.txq);
        add_status(&mut h.t, status::DRIVER_OK);
        assert!(h.t.device().is_activated());
        h.add_rx_buffers(2, 1526);
        assert_eq!(h.wait_rx_used().1, 72);
    }

    #[test]
    fn drop_joins_the_worker_even_under_traffic() {
        let mut h = harness(LINUX_DEFAULT, false, |f| f);
        h.add_rx_buffers(16, 1526);
        for i in 0..50 {
            h.peer_send(&frame(500, i));
        }
        let Harness {
            t, peer, metrics, ..
        } = h;
        drop(t);
        assert_eq!(Arc::strong_count(&metrics), 1, "device and worker are gone");
        drop(peer);
    }

    #[test]
    fn backend_hangup_drops_transmits_without_stalling() {
        let mut h = harness(0, false, |f| f);
        let peer = mem::replace(&mut h.peer, hostio::seqpacket_pair().unwrap().0);
        drop(peer);
        h.add_rx_buffers(2, 1526); // wakes the worker; it sees the hang-up
        wait_until("the hang-up", || h.metrics.backend_hangups.get() == 1);
        let head = h.send(VirtioNetHdr::default(), &frame(60, 0));
        assert_eq!(h.wait_tx_used(), (u32::from(head), 0));
        assert_eq!(h.metrics.tx_dropped.get(), 1);
    }

    #[test]
    fn corrupt_ring_asks_for_reset_without_spinning() {
        let mut h = harness(0, false, |f| f);
        // The driver moves the transmit avail index 1000 ahead.
        h.txq.set_avail_idx(1000);
        write32(&mut h.t, regs::QUEUE_NOTIFY, 1);
        wait_until("DEVICE_NEEDS_RESET", || {
            read32(&h.t, regs::STATUS) & status::DEVICE_NEEDS_RESET != 0
        });
        assert_eq!(h.metrics.queue_breaks.get(), 1);
        assert_eq!(
            h.take_interrupt() & crate::virtio::device::INT_CONFIG,
            crate::virtio::device::INT_CONFIG
        );
        // The worker is still responsive (not spinning): receive works, and
        // a reset joins it.
        h.add_rx_buffers(1, 1526);
        h.peer_send(&frame(60, 1));
        assert_eq!(h.wait_rx_used().1, 72);
        write32(&mut h.t, regs::STATUS, 0);
        assert!(!h.t.device().is_activated());
        assert_eq!(read32(&h.t, regs::STATUS), 0);
    }

    #[test]
    fn transmit_is_served_in_the_notification() {
        let mut h = harness(0, false, |f| f);
        let f = frame(60, 3);
        let head = h.send(VirtioNetHdr::default(), &f);
        // Used already when the register write returns: no worker wake-up.
        assert_eq!(h.txq.pop_used(), Some((u32::from(head), 0)));
        assert_eq!(h.take_interrupt() & INT_USED_RING, INT_USED_RING);
        assert_eq!(h.peer_recv(), f);
    }

    #[test]
    fn long_transmit_is_left_to_the_worker() {
        let mut h = harness(0, false, |f| f);
        let small = frame(60, 1);
        let long = frame(TX_INLINE_MAX_LEN, 2);
        for f in [&small, &long, &small] {
            let hd = h.alloc(12);
            h.mem
                .write(hd, &VirtioNetHdr::default().to_bytes())
                .unwrap();
            let d = h.alloc(f.len() as u32);
            h.mem.write(d, f).unwrap();
            h.txq
                .add_chain(&[Buf::r(hd, 12), Buf::r(d, f.len() as u32)]);
        }
        write32(&mut h.t, regs::QUEUE_NOTIFY, 1);
        // In order, the first inline, the rest by the worker.
        for f in [&small, &long, &small] {
            assert_eq!(&h.peer_recv(), f);
        }
        for _ in 0..3 {
            h.wait_tx_used();
        }
    }

    #[test]
    fn transmit_burst_past_the_inline_budget_is_finished_by_the_worker() {
        let mut h = harness(0, false, |f| f);
        let n = TX_INLINE_BUDGET * 3 + 1;
        // Queued without notifying, then one notification for all.
        let frames: Vec<Vec<u8>> = (0..n).map(|i| frame(100, i as u8)).collect();
        for f in &frames {
            let hd = h.alloc(12);
            h.mem
                .write(hd, &VirtioNetHdr::default().to_bytes())
                .unwrap();
            let d = h.alloc(f.len() as u32);
            h.mem.write(d, f).unwrap();
            h.txq
                .add_chain(&[Buf::r(hd, 12), Buf::r(d, f.len() as u32)]);
        }
        write32(&mut h.t, regs::QUEUE_NOTIFY, 1);
        for f in &frames {
            assert_eq!(&h.peer_recv(), f);
        }
        for _ in 0..n {
            h.wait_tx_used();
        }
        assert_eq!(h.metrics.tx_frames_count.get(), n as u64);
    }

    #[test]
    fn notify_before_activation_is_counted() {
        let (b, _peer) = SocketPairBackend::pair(false).unwrap();
        let n = Net::new(Box::new(b), 0, None).unwrap();
        n.queue_notify(0);
        n.queue_notify(5);
        assert_eq!(n.metrics().event_fails.get(), 2);
    }
}
