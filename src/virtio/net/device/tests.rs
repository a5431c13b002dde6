//! The virtio-net device driven through its MMIO transport, as the kernel
//! drives it.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::tx::{TX_INLINE_BUDGET, TX_INLINE_MAX_LEN};
use super::*;
use crate::virtio::device::INT_USED_RING;
use crate::virtio::hostio::{self, Interest};
use crate::virtio::mem::{GuestAddress, GuestMemory, RAM_PHYS_BASE};
use crate::virtio::mmio::{regs, MmioTransport};
use crate::virtio::net::{
    complete_checksum, SocketPairBackend, VirtioNetHdr, VIRTIO_NET_HDR_F_DATA_VALID,
    VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, VIRTIO_NET_HDR_GSO_TCPV6,
};
use crate::virtio::test_utils::{
    add_status, device_features, negotiate, read32, set_driver_features, setup_queue, wait_until,
    write32, Buf, DriverQueue,
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

/// A device with `offered` features over a socket pair, brought up the
/// way Linux's virtio_mmio + virtio_net do, accepting what `accept`
/// keeps of the offer.
fn harness(offered: u64, vnet: bool, accept: impl Fn(u64) -> u64) -> Harness {
    let (backend, peer) = SocketPairBackend::pair(vnet).unwrap();
    harness_on(Box::new(backend), peer, offered, accept, Arc::new(|| {}))
}

/// [`harness`] over `backend` (whose other end is `peer`), calling
/// `on_irq` on every interrupt, on the raising thread.
fn harness_on(
    backend: Box<dyn NetBackend>,
    peer: OwnedFd,
    offered: u64,
    accept: impl Fn(u64) -> u64,
    on_irq: Arc<dyn Fn() + Send + Sync>,
) -> Harness {
    let mem = GuestMemory::new_owned(4 << 20, BASE).unwrap();
    let net = Net::new(backend, offered, Some(MAC)).unwrap();
    let metrics = net.metrics();
    let irqs = Arc::new(AtomicUsize::new(0));
    let i2 = irqs.clone();
    let mut t = MmioTransport::new(
        mem.clone(),
        Box::new(net),
        Arc::new(move || {
            i2.fetch_add(1, Ordering::SeqCst);
            on_irq();
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
    /// and data in separate descriptors), without notifying.
    fn queue_tx(&mut self, hdr: VirtioNetHdr, frame: &[u8]) -> u16 {
        let h = self.alloc(12);
        self.mem.write(h, &hdr.to_bytes()).unwrap();
        let d = self.alloc(frame.len() as u32);
        self.mem.write(d, frame).unwrap();
        self.txq
            .add_chain(&[Buf::r(h, 12), Buf::r(d, frame.len() as u32)])
    }

    /// [`queue_tx`](Self::queue_tx), then notifies.
    fn send(&mut self, hdr: VirtioNetHdr, frame: &[u8]) -> u16 {
        let head = self.queue_tx(hdr, frame);
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

    /// After a reset: the driver brings the device up again on the same
    /// backend, and the 60-byte frame waiting there is delivered.
    fn reactivate_and_receive_waiting_frame(&mut self) {
        negotiate(&mut self.t, vfeatures::VERSION_1 | features::MRG_RXBUF);
        self.rxq = DriverQueue::new(&self.mem, BASE, 256);
        self.txq = DriverQueue::new(&self.mem, GuestAddress(RAM_PHYS_BASE + 0x10000), 256);
        setup_queue(&mut self.t, 0, &self.rxq);
        setup_queue(&mut self.t, 1, &self.txq);
        add_status(&mut self.t, status::DRIVER_OK);
        assert!(self.t.device().is_activated());
        self.add_rx_buffers(2, 1526);
        assert_eq!(self.wait_rx_used().1, 72);
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
    h.reactivate_and_receive_waiting_frame();
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
        h.queue_tx(VirtioNetHdr::default(), f);
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
        h.queue_tx(VirtioNetHdr::default(), f);
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

/// A socket-pair backend that lets program threads poll it, as a tap does
/// (a seqpacket socket's wake-ups name their event too).
struct Pollable(SocketPairBackend);

impl AsRawFd for Pollable {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
}

impl NetBackend for Pollable {
    fn send(&mut self, frame: &[IoSlice<'_>]) -> std::io::Result<usize> {
        self.0.send(frame)
    }
    fn recv(&mut self, frame: &mut [IoSliceMut<'_>]) -> std::io::Result<usize> {
        self.0.recv(frame)
    }
    fn has_vnet_hdr(&self) -> bool {
        self.0.has_vnet_hdr()
    }
    fn rx_pollable(&self) -> bool {
        true
    }
}

/// A device whose interrupt raises `task` (as the kernel's wake-up of the
/// task waiting for the frame would), recording the raising threads.
fn polled_harness(
    task: Arc<crate::host::Semaphore>,
) -> (Harness, Arc<Mutex<Vec<std::thread::ThreadId>>>) {
    let (backend, peer) = SocketPairBackend::pair(false).unwrap();
    let raised_on = Arc::new(Mutex::new(Vec::new()));
    let r2 = raised_on.clone();
    let h = harness_on(
        Box::new(Pollable(backend)),
        peer,
        LINUX_DEFAULT,
        |f| f,
        Arc::new(move || {
            r2.lock().unwrap().push(std::thread::current().id());
            task.up();
        }),
    );
    (h, raised_on)
}

/// A thread waiting on `task` that has become the device's poller. A
/// waiter that finds the device busy (its worker holds it: the receive
/// buffers just added) leaves it to the worker and sleeps on the futex
/// for good; it is let go and another one tried.
fn polling_waiter(
    task: &Arc<crate::host::Semaphore>,
) -> std::thread::JoinHandle<std::thread::ThreadId> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let t2 = task.clone();
        let waiter = std::thread::spawn(move || {
            t2.down();
            std::thread::current().id()
        });
        let tried = std::time::Instant::now();
        while tried.elapsed() < Duration::from_millis(500) {
            if crate::host::rxpoll::polls_on(task) {
                return waiter;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for a waiter to poll"
        );
        task.up();
        let _ = waiter.join();
    }
}

#[test]
fn a_waiting_thread_receives_the_frame_itself() {
    let _serial = crate::host::rxpoll::test_serial();
    let task = Arc::new(crate::host::Semaphore::new(0));
    let (mut h, raised_on) = polled_harness(task.clone());
    let bufs = h.add_rx_buffers(4, 1526);
    let waiter = polling_waiter(&task);
    h.peer_send(&frame(60, 9));
    let waiter = waiter.join().unwrap();
    // The frame was read and its interrupt raised on the waiting thread.
    assert_eq!(h.wait_rx_used(), (u32::from(bufs[0].0), 72));
    assert_eq!(raised_on.lock().unwrap().first(), Some(&waiter));
    assert_eq!(&h.read(bufs[0].1, 72)[12..], &frame(60, 9)[..]);
    // Frames while nobody waits still arrive (the worker, once the gate
    // stops lingering).
    h.peer_send(&frame(70, 1));
    assert_eq!(h.wait_rx_used(), (u32::from(bufs[1].0), 82));
    assert_eq!(h.metrics.worker_panics.get(), 0);
}

#[test]
fn reset_takes_the_device_from_a_polling_thread() {
    let _serial = crate::host::rxpoll::test_serial();
    let task = Arc::new(crate::host::Semaphore::new(0));
    let (mut h, raised_on) = polled_harness(task.clone());
    h.add_rx_buffers(4, 1526);
    let waiter = polling_waiter(&task);
    // The reset returns with the poller gone from the device and the
    // backend back (not lost): the device comes up again on it.
    write32(&mut h.t, regs::STATUS, 0);
    assert!(!h.t.device().is_activated());
    assert_eq!(Arc::strong_count(&h.metrics), 2, "worker and poller let go");
    h.peer_send(&frame(60, 0));
    std::thread::sleep(Duration::from_millis(20));
    assert!(raised_on.lock().unwrap().is_empty());
    assert!(!waiter.is_finished());
    task.up();
    waiter.join().unwrap();
    h.reactivate_and_receive_waiting_frame();
}
