//! The device's state while active ([`NetWorker`]) and how the worker
//! thread serves it ([`NetHandler`]): what to wait on, and what each event
//! starts. The transmit and receive paths are `tx.rs` and `rx.rs`.

use std::mem;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard};

use super::tx::TxFrame;
use super::NetMetrics;
use crate::host::rxpoll::Gate;
use crate::virtio::device::Interrupt;
use crate::virtio::hostio::{EventFd, Interest, PollSet, Readiness};
use crate::virtio::mem::GuestMemory;
use crate::virtio::net::backend::NetBackend;
use crate::virtio::net::{features, FRAME_BUF_LEN, RX_INDEX, TX_INDEX};
use crate::virtio::queue::{DescriptorChain, Queue};
use crate::virtio::worker::EventHandler;

/// Worker tokens.
const RX_NOTIFY: u32 = 0;
const TX_NOTIFY: u32 = 1;
const BACKEND: u32 = 2;
/// The receive gate (`host::rxpoll::Gate`) in place of the backend's
/// readability, when a program thread may serve it.
const BACKEND_RX: u32 = 3;
/// The gate's timer: a poller left it off long enough.
const GATE_TIMER: u32 = 4;

pub(super) fn into_inner(m: Mutex<NetWorker>) -> NetWorker {
    // A panic while locked leaves the state as it was between two frames.
    m.into_inner().unwrap_or_else(|e| e.into_inner())
}

#[inline]
pub(super) fn raise(interrupt: &Interrupt, irq: bool, reset: bool) {
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
    fds: [(RawFd, u32, Interest); 5],
    len: usize,
}

/// The worker thread's handler: the state is shared with
/// [`transmit_inline`](super::tx::transmit_inline); the interrupt is raised after the lock is let go
/// (raising it may run the kernel on this thread, which may notify).
///
/// What to wait on is taken under the same lock as the work, so that the
/// wait does not lock again: that contended with the transmit of the reply
/// that the interrupt had just woken up. It cannot go stale in a way that
/// loses work: a transmit notification that leaves work (a frame waiting
/// for `POLLOUT`) also writes the eventfd; a receive poller
/// (`rxpoll.rs`) that leaves the driver without buffers only makes the
/// worker wake once more for the gate, and find that out.
pub(super) struct NetHandler {
    core: Arc<Mutex<NetWorker>>,
    interrupt: Arc<Interrupt>,
    wanted: Option<Wanted>,
}

impl NetHandler {
    pub(super) fn new(core: Arc<Mutex<NetWorker>>, interrupt: Arc<Interrupt>) -> Self {
        NetHandler {
            core,
            interrupt,
            wanted: None,
        }
    }

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

/// The device's state while active, owned by its worker thread.
pub(super) struct NetWorker {
    pub(super) mem: GuestMemory,
    pub(super) rx: Queue,
    pub(super) tx: Queue,
    pub(super) backend: Box<dyn NetBackend>,
    pub(super) notify: [Arc<EventFd>; 2],
    pub(super) metrics: Arc<NetMetrics>,
    pub(super) mrg_rxbuf: bool,
    pub(super) guest_csum: bool,
    pub(super) acked: u64,
    pub(super) vnet_hdr: bool,
    /// Bounce buffer for received frames, header first.
    pub(super) rx_buf: Vec<u8>,
    /// Length (header included) of a frame in `rx_buf` not delivered yet.
    pub(super) rx_frame: Option<usize>,
    /// Mergeable buffers popped for `rx_frame`, and their room.
    pub(super) rx_chains: Vec<DescriptorChain>,
    pub(super) rx_room: usize,
    /// The used elements of one mergeable frame (reused).
    pub(super) rx_used: Vec<(u16, u32)>,
    /// The driver had no buffer: stop reading the backend until it
    /// notifies the receive queue.
    pub(super) rx_starved: bool,
    pub(super) tx_buf: Vec<u8>,
    pub(super) tx_pending: Option<TxFrame>,
    pub(super) backend_dead: bool,
    pub(super) broken_reported: bool,
    /// A used-buffer interrupt to raise once the lock is released.
    pub(super) irq_due: bool,
    /// `DEVICE_NEEDS_RESET` to report once the lock is released.
    pub(super) reset_due: bool,
    /// `process_rx` stopped early to raise an interrupt: call it again.
    pub(super) rx_resume: bool,
    /// The last frame received was long (a stream's): transmits are left
    /// to the worker (sending a stream's ACKs inline took the kernel's CPU
    /// from the receive path: download fell from ~13 to ~9 Gbit/s).
    pub(super) rx_streaming: bool,
    /// The receive gate, polled for the backend's readability in its
    /// place, when program threads may serve receive (`rxpoll.rs`).
    pub(super) rx_gate: Option<Arc<Gate>>,
}

impl NetWorker {
    /// The state of a device just activated with features `acked`.
    pub(super) fn new(
        mem: GuestMemory,
        [rx, tx]: [Queue; 2],
        backend: Box<dyn NetBackend>,
        notify: [Arc<EventFd>; 2],
        metrics: Arc<NetMetrics>,
        acked: u64,
    ) -> Self {
        let vnet_hdr = backend.has_vnet_hdr();
        NetWorker {
            mem,
            rx,
            tx,
            backend,
            notify,
            metrics,
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
            rx_gate: None,
        }
    }

    /// Signals the driver if it wants to hear about what `queue` used.
    #[inline]
    pub(super) fn signal_used(&mut self, queue: usize) {
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
    #[inline]
    pub(super) fn take_interrupts(&mut self) -> (bool, bool) {
        (mem::take(&mut self.irq_due), mem::take(&mut self.reset_due))
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

    fn start(&mut self) {
        // Buffers queued before DRIVER_OK got no notification we acted on.
        self.process_tx(usize::MAX);
        self.process_rx(false);
    }

    /// Whether the backend is to be read now: there is room for a frame
    /// and somewhere to put it.
    pub(super) fn rx_wanted(&self) -> bool {
        !self.backend_dead && self.rx_frame.is_none() && !self.rx_starved && !self.rx.is_broken()
    }

    /// The fds to wait on next, with their tokens.
    fn interest(&self) -> Wanted {
        let mut wanted = Wanted {
            fds: [(0, 0, Interest::default()); 5],
            len: 2,
        };
        wanted.fds[0] = (self.notify[RX_INDEX].as_raw_fd(), RX_NOTIFY, Interest::READ);
        wanted.fds[1] = (self.notify[TX_INDEX].as_raw_fd(), TX_NOTIFY, Interest::READ);
        if self.backend_dead {
            return wanted;
        }
        let read = self.rx_wanted();
        let write = self.tx_pending.is_some();
        match &self.rx_gate {
            Some(gate) => {
                // Readability through the gate; the backend itself for
                // `POLLOUT`, and (with no events) for hang-ups and errors:
                // a tap's wake-ups name their event, so a frame does not
                // wake a wait that did not ask for `POLLIN`.
                wanted.fds[2] = (
                    self.backend.as_raw_fd(),
                    BACKEND,
                    Interest { read: false, write },
                );
                wanted.fds[3] = (gate.timer_fd(), GATE_TIMER, Interest::READ);
                wanted.len = 4;
                if read {
                    wanted.fds[4] = (gate.as_raw_fd(), BACKEND_RX, Interest::READ);
                    wanted.len = 5;
                }
            }
            None if read || write => {
                wanted.fds[2] = (self.backend.as_raw_fd(), BACKEND, Interest { read, write });
                wanted.len = 3;
            }
            None => {}
        }
        wanted
    }

    fn ready(&mut self, token: u32, r: Readiness) {
        match token {
            RX_NOTIFY => self.process_rx_queue_event(),
            TX_NOTIFY => self.process_tx_queue_event(),
            BACKEND => self.process_backend_event(r),
            BACKEND_RX => self.process_backend_event(Readiness {
                readable: r.readable,
                ..Readiness::default()
            }),
            GATE_TIMER => {
                if let Some(gate) = &self.rx_gate {
                    gate.timer_fired();
                }
            }
            _ => self.metrics.event_fails.inc(),
        }
    }
}
