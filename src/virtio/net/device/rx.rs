//! Receive: frames the backend has become used chains of the receive
//! queue, their headers fixed up for what the driver negotiated.

use std::io::{IoSliceMut, Write};
use std::mem;

use super::worker::NetWorker;
use crate::virtio::net::{
    complete_checksum, features, VirtioNetHdr, RX_INDEX, VIRTIO_NET_HDR_F_NEEDS_CSUM,
    VIRTIO_NET_HDR_GSO_ECN, VIRTIO_NET_HDR_GSO_NONE, VIRTIO_NET_HDR_GSO_TCPV4,
    VIRTIO_NET_HDR_GSO_TCPV6, VIRTIO_NET_HDR_GSO_UDP, VNET_HDR_LEN,
};
use crate::virtio::queue::DescriptorChain;

/// Frames up to this long (header included) get their interrupt before the
/// next read when they are the first of a wake-up: a stream's full-sized
/// frames keep one interrupt per batch.
const EARLY_IRQ_MAX_LEN: usize = 512;

/// A received frame longer than this (header included: a full-sized
/// Ethernet frame or an offload segment) marks a stream being received.
const RX_STREAM_MIN_LEN: usize = 1024;

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

impl NetWorker {
    pub(super) fn process_rx_queue_event(&mut self) {
        let _ = self.notify[RX_INDEX].drain();
        self.rx_starved = false;
        self.process_rx(false);
    }

    /// Delivers what the backend has. With `early_irq`, a first small
    /// frame (a request, an ACK) that the driver wants an interrupt for
    /// stops the loop with `rx_resume` set, so that the interrupt goes out
    /// before the read that finds the backend empty (a syscall on every
    /// request's path); the caller raises it and calls again without.
    pub(super) fn process_rx(&mut self, early_irq: bool) {
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
}
