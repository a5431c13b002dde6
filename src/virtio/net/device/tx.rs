//! Transmit: chains the driver queued become frames for the backend, on
//! the worker or, for a few short ones, on the notifying thread
//! ([`transmit_inline`]).

use std::io::{IoSlice, Read};
use std::sync::{Mutex, TryLockError};

use super::worker::{raise, NetWorker};
use crate::virtio::device::Interrupt;
use crate::virtio::net::{
    complete_checksum, features, VirtioNetHdr, FRAME_BUF_LEN, TX_INDEX,
    VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_NONE, VNET_HDR_LEN,
};
use crate::virtio::queue::DescriptorChain;

/// Frames sent from a transmit notification before the rest is left to the
/// worker: a request/response exchange sends one or two, a stream more
/// (whose copies and backend writes then stay off the kernel's CPU).
pub(super) const TX_INLINE_BUDGET: usize = 4;
/// Longer chains (header included) are left to the worker: a segmentation
/// offload frame of a stream costs the kernel's CPU a 64 KiB copy and the
/// host's segmentation, which the worker does in parallel (inline, upload
/// throughput fell from 41 to 33 Gbit/s).
pub(super) const TX_INLINE_MAX_LEN: usize = 2048;

/// Serves the transmit queue on the notifying thread (which holds the
/// kernel's CPU), saving the wake-up of the worker, a futex round trip on
/// every request's path. The backend is non-blocking, so this cannot
/// block; nothing here calls into the kernel (an interrupt raised from
/// the CPU's own thread is only marked pending). Returns false, having
/// done nothing or only part, if the worker must take over: it holds the
/// state, the budget ran out, or the backend is full.
pub(super) fn transmit_inline(core: &Mutex<NetWorker>, interrupt: &Interrupt) -> bool {
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

/// A frame waiting to be sent: `tx_buf[start..end]` for chain `head`.
#[derive(Clone, Copy, Debug)]
pub(super) struct TxFrame {
    head: u16,
    start: usize,
    end: usize,
}

pub(super) enum TxOutcome {
    Sent,
    Dropped,
    Blocked,
}

impl NetWorker {
    pub(super) fn process_tx_queue_event(&mut self) {
        let _ = self.notify[TX_INDEX].drain();
        self.process_tx(usize::MAX);
    }

    /// Sends what the driver queued, at most `budget` frames; true if the
    /// queue was drained (notifications re-enabled), false if frames are
    /// left (notifications stay off: the caller hands them to the worker).
    pub(super) fn process_tx(&mut self, budget: usize) -> bool {
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
}
