//! The virtio-net device: [`Net`] is the state machine the transport
//! drives, `Inactive` (holding the backend), `Active` (the backend lent to
//! a worker thread), or `Lost` (the worker died with it).
//!
//! While active, the device's state is a `NetWorker`,
//! served off the kernel's CPU by a worker thread that two notification
//! eventfds and the backend's fd wake up (`worker.rs`), which moves frames
//! both ways:
//!
//! - transmit (`tx.rs`): each chain is read into a bounce buffer, its
//!   header checked (and, for a backend without a vnet header, stripped
//!   after finishing a partial checksum in software), and the frame sent; a
//!   full backend keeps the frame until `POLLOUT`;
//! - receive (`rx.rs`): the backend is read only while the driver has
//!   buffers (one frame is kept when it has none), the header is fixed up
//!   for the negotiated features, and the frame is written into one chain,
//!   or into as many as needed with `VIRTIO_NET_F_MRG_RXBUF`, published
//!   together.
//!
//! With receive polling (`LKL_RX_POLL`, `rxpoll.rs`), a program thread
//! about to sleep in the kernel may do the receive work instead of the
//! worker, on a tap backend ([`NetBackend::rx_pollable`]).
//!
//! Copying through bounce buffers costs one copy per frame each way, but
//! keeps every access to guest memory inside
//! [`GuestMemory`](crate::virtio::mem::GuestMemory)'s checks.
//!
//! **Transmit inline.** A transmit notification is served on the notifying
//! thread (the kernel's CPU) when the worker is not busy with the state
//! (`tx::transmit_inline`): up to a few short chains, the backend being
//! non-blocking; the rest (a stream's), a long chain, or a frame the backend
//! refused for now, is left to the worker. Waking the worker cost a futex
//! round trip on every request of a request/response exchange (net-bench
//! --rr: 21.8 -> 19.8 us per round trip). The state sits behind a mutex for
//! that; the worker raises interrupts only after letting it go, because
//! raising one may run the kernel on the worker's thread, which may notify
//! again.

#![forbid(unsafe_code)]

mod rx;
mod rxpoll;
#[cfg(test)]
mod tests;
mod tx;
mod worker;

use std::mem;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::backend::NetBackend;
use super::{features, NetError, NET_QUEUE_MAX_SIZE, RX_INDEX, TX_INDEX, VIRTIO_NET_S_LINK_UP};
use crate::host::rxpoll::{self as host_rxpoll, Gate, Registration};
use crate::virtio::device::{
    read_config_bytes, ActivateContext, ActivateError, Interrupt, VirtioDevice,
};
use crate::virtio::device_id;
use crate::virtio::hostio::EventFd;
use crate::virtio::metrics::Counter;
use crate::virtio::worker::Worker;
use rxpoll::NetRxSource;
use tx::transmit_inline;
use worker::{into_inner, NetHandler, NetWorker};

/// Configuration space: `mac[6]`, `status`, `max_virtqueue_pairs` (5.1.4).
const CONFIG_LEN: usize = 10;
const QUEUE_SIZES: [u16; 2] = [NET_QUEUE_MAX_SIZE; 2];

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

/// A device's registration with the receive pollers, and the source
/// (kept until the worker is stopped: the worker polls its gate).
type RxPoll = (Registration, Arc<NetRxSource>);

enum State {
    Inactive(Box<dyn NetBackend>),
    Active {
        /// First, so that dropping the state takes the device out of the
        /// pollers' hands before anything else goes.
        rx_poll: Option<RxPoll>,
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
        let interrupt = ctx.interrupt;
        // A gate for program threads to serve receive (host::rxpoll); none
        // if it is off or cannot be made (the worker then reads as before).
        let gate = (backend.rx_pollable() && host_rxpoll::enabled())
            .then(|| Gate::new(backend.as_raw_fd()).ok().map(Arc::new))
            .flatten();
        let fd = backend.as_raw_fd();
        let mut worker = NetWorker::new(
            ctx.mem,
            [rx, tx],
            backend,
            notify.clone(),
            self.metrics.clone(),
            ctx.acked_features,
        );
        worker.rx_gate = gate.clone();
        let core = Arc::new(Mutex::new(worker));
        let handler = NetHandler::new(core.clone(), interrupt.clone());
        match Worker::spawn("virtio-net", handler) {
            Ok(worker) => {
                let rx_poll = gate.and_then(|gate| {
                    let source = Arc::new(NetRxSource {
                        core: core.clone(),
                        interrupt: interrupt.clone(),
                        gate,
                        fd,
                    });
                    host_rxpoll::register(source.clone()).map(|r| (r, source))
                });
                self.state = State::Active {
                    rx_poll,
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
            State::Active {
                rx_poll,
                worker,
                core,
                ..
            } => {
                // No poller serves the device from here on.
                if let Some((registration, _)) = &rx_poll {
                    registration.close();
                }
                match worker.stop() {
                    Ok(handler) => {
                        // The handler's and the source's references first:
                        // ours is then the last.
                        drop(handler);
                        drop(rx_poll);
                        match Arc::try_unwrap(core) {
                            Ok(m) => State::Inactive(into_inner(m).backend),
                            Err(_) => State::Lost,
                        }
                    }
                    Err(_) => {
                        self.metrics.worker_panics.inc();
                        State::Lost
                    }
                }
            }
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
