//! virtio-blk device tests: the device brought up the way Linux's
//! virtio_mmio + virtio_blk do, requests built by hand, hostile chains.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::virtio::mem::{GuestAddress, RAM_PHYS_BASE};
use crate::virtio::mmio::{regs, MmioTransport};
use crate::virtio::queue::Descriptor;
use crate::virtio::test_utils::{
    add_status, device_features, read32, set_driver_features, setup_queue, wait_until, write32,
    Buf, DriverQueue, XorShift,
};
use crate::virtio::{features as vfeatures, status as dstatus};

const BASE: GuestAddress = GuestAddress(RAM_PHYS_BASE);
/// Where test buffers live (the queue is below).
const DATA: u64 = RAM_PHYS_BASE + 0x40000;
const MEM_LEN: usize = 8 << 20;

/// A temporary image file, removed on drop.
struct Image(PathBuf);

impl Image {
    fn new(content: &[u8]) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "lkl-blk-test-{}-{}.img",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::File::create(&p)
            .unwrap()
            .write_all(content)
            .unwrap();
        Image(p)
    }

    fn read(&self) -> Vec<u8> {
        std::fs::read(&self.0).unwrap()
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

struct Harness {
    mem: GuestMemory,
    t: MmioTransport,
    q: DriverQueue,
    metrics: Arc<BlkMetrics>,
    irqs: Arc<AtomicUsize>,
    next_buf: u64,
}

fn harness(img: &Image, read_only: bool) -> Harness {
    let mem = GuestMemory::new_owned(MEM_LEN, BASE).unwrap();
    let blk = Blk::open(&img.0, read_only, "test-serial").unwrap();
    let metrics = blk.metrics();
    let irqs = Arc::new(AtomicUsize::new(0));
    let i2 = irqs.clone();
    let mut t = MmioTransport::new(
        mem.clone(),
        Box::new(blk),
        Arc::new(move || {
            i2.fetch_add(1, Ordering::SeqCst);
        }),
    );
    assert_eq!(read32(&t, regs::DEVICE_ID), device_id::BLOCK);
    write32(&mut t, regs::STATUS, 0);
    add_status(&mut t, dstatus::ACKNOWLEDGE);
    add_status(&mut t, dstatus::DRIVER);
    let f = device_features(&mut t);
    set_driver_features(&mut t, f);
    add_status(&mut t, dstatus::FEATURES_OK);
    assert_ne!(read32(&t, regs::STATUS) & dstatus::FEATURES_OK, 0);
    let q = DriverQueue::new(&mem, BASE, 256);
    setup_queue(&mut t, 0, &q);
    add_status(&mut t, dstatus::DRIVER_OK);
    assert!(t.device().is_activated(), "{:?}", t.last_activate_error());
    Harness {
        mem,
        t,
        q,
        metrics,
        irqs,
        next_buf: 0,
    }
}

impl Harness {
    fn alloc(&mut self, len: u32) -> GuestAddress {
        let a = GuestAddress(DATA + self.next_buf);
        self.next_buf += u64::from(len).next_multiple_of(64);
        assert!(self.next_buf < MEM_LEN as u64 - 0x40000);
        a
    }

    fn header(&mut self, kind: u32, sector: u64) -> GuestAddress {
        let h = self.alloc(16);
        let mut b = [0u8; 16];
        b[0..4].copy_from_slice(&kind.to_le_bytes());
        b[8..16].copy_from_slice(&sector.to_le_bytes());
        self.mem.write(h, &b).unwrap();
        h
    }

    /// Submits `bufs` as one chain, waits for it, returns (used len, status
    /// byte at `status`).
    fn submit(&mut self, bufs: &[Buf], status: GuestAddress) -> (u32, u8) {
        self.mem.write(status, &[0xff]).unwrap();
        let head = self.q.add_chain(bufs);
        write32(&mut self.t, regs::QUEUE_NOTIFY, 0);
        let mut e = None;
        wait_until("a used request", || {
            e = self.q.pop_used();
            e.is_some()
        });
        let (id, len) = e.unwrap();
        assert_eq!(id, u32::from(head));
        let mut s = [0u8];
        self.mem.read(status, &mut s).unwrap();
        (len, s[0])
    }

    fn read(&mut self, sector: u64, len: u32) -> (u8, Vec<u8>) {
        let h = self.header(req::IN, sector);
        let d = self.alloc(len);
        let s = self.alloc(1);
        let (used, st) = self.submit(&[Buf::r(h, 16), Buf::w(d, len), Buf::w(s, 1)], s);
        let mut v = vec![0; len as usize];
        self.mem.read(d, &mut v).unwrap();
        if st == status::OK {
            assert_eq!(used, len + 1);
        }
        (st, v)
    }

    fn write(&mut self, sector: u64, data: &[u8]) -> u8 {
        let h = self.header(req::OUT, sector);
        let d = self.alloc(data.len() as u32);
        self.mem.write(d, data).unwrap();
        let s = self.alloc(1);
        self.submit(
            &[Buf::r(h, 16), Buf::r(d, data.len() as u32), Buf::w(s, 1)],
            s,
        )
        .1
    }

    fn simple(&mut self, kind: u32) -> u8 {
        let h = self.header(kind, 0);
        let s = self.alloc(1);
        self.submit(&[Buf::r(h, 16), Buf::w(s, 1)], s).1
    }
}

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut r = XorShift::new(seed);
    (0..len).map(|_| r.next() as u8).collect()
}

#[test]
fn config_space_and_features() {
    let img = Image::new(&vec![0; 1024 * 1024 + 100]);
    let b = Blk::open(&img.0, false, "abc").unwrap();
    assert_eq!(b.capacity(), 2048, "a partial last sector is left out");
    let mut c = [0u8; 8];
    b.read_config(0, &mut c);
    assert_eq!(u64::from_le_bytes(c), 2048);
    let mut c4 = [0u8; 4];
    b.read_config(20, &mut c4);
    assert_eq!(u32::from_le_bytes(c4), 512);
    b.read_config(12, &mut c4);
    assert_eq!(u32::from_le_bytes(c4), SEG_MAX);
    // Past the end reads as zero, also at absurd offsets.
    let mut far = [0xffu8; 4];
    b.read_config(u64::MAX, &mut far);
    assert_eq!(far, [0; 4]);
    assert_eq!(b.avail_features() & features::RO, 0);
    assert_ne!(b.avail_features() & features::FLUSH, 0);
    let ro = Blk::open(&img.0, true, "abc").unwrap();
    assert_ne!(ro.avail_features() & features::RO, 0);
    assert!(matches!(
        Blk::open(Path::new("/nonexistent/x.img"), true, ""),
        Err(BlkError::Open { .. })
    ));
    let tiny = Image::new(&[0; 100]);
    assert!(matches!(
        Blk::open(&tiny.0, true, ""),
        Err(BlkError::TooSmall(100))
    ));
}

#[test]
fn read_write_flush_get_id() {
    let orig = pattern(1 << 20, 1);
    let img = Image::new(&orig);
    let mut h = harness(&img, false);
    assert_ne!(h.t.acked_features() & vfeatures::RING_EVENT_IDX, 0);
    let (st, v) = h.read(8, 4096);
    assert_eq!(st, status::OK);
    assert_eq!(v, orig[4096..8192]);
    let new = pattern(8192, 2);
    assert_eq!(h.write(100, &new), status::OK);
    assert_eq!(h.simple(req::FLUSH), status::OK);
    let on_disk = img.read();
    assert_eq!(on_disk[100 * 512..100 * 512 + 8192], new[..]);
    assert_eq!(on_disk[..100 * 512], orig[..100 * 512]);
    let (st, v) = h.read(100, 8192);
    assert_eq!(st, status::OK);
    assert_eq!(v, new);
    // GET_ID: 20 bytes, zero padded.
    let hd = h.header(req::GET_ID, 0);
    let d = h.alloc(20);
    let s = h.alloc(1);
    let (used, st) = h.submit(&[Buf::r(hd, 16), Buf::w(d, 20), Buf::w(s, 1)], s);
    assert_eq!((used, st), (21, status::OK));
    let mut id = [0u8; 20];
    h.mem.read(d, &mut id).unwrap();
    assert_eq!(&id[..11], b"test-serial");
    assert_eq!(id[11..], [0; 9]);
    // An unknown type.
    assert_eq!(h.simple(42), status::UNSUPP);
    assert!(h.irqs.load(Ordering::SeqCst) > 0);
    assert_eq!(h.metrics.write_count.get(), 1);
    assert_eq!(h.metrics.flush_count.get(), 1);
}

#[test]
fn big_request_across_many_segments_and_indirect() {
    let orig = pattern(4 << 20, 3);
    let img = Image::new(&orig);
    let mut h = harness(&img, false);
    // 3 MiB read spread over 48 segments of 64 KiB in an indirect table.
    let hd = h.header(req::IN, 512);
    let mut bufs = vec![Buf::r(hd, 16)];
    let segs: Vec<_> = (0..48).map(|_| h.alloc(65536)).collect();
    bufs.extend(segs.iter().map(|a| Buf::w(*a, 65536)));
    let s = h.alloc(1);
    bufs.push(Buf::w(s, 1));
    h.mem.write(s, &[0xff]).unwrap();
    let table = h.alloc(16 * bufs.len() as u32);
    h.q.add_indirect(table, &bufs);
    write32(&mut h.t, regs::QUEUE_NOTIFY, 0);
    let mut e = None;
    wait_until("the indirect read", || {
        e = h.q.pop_used();
        e.is_some()
    });
    assert_eq!(e.unwrap().1, 48 * 65536 + 1);
    let mut st = [0u8];
    h.mem.read(s, &mut st).unwrap();
    assert_eq!(st[0], status::OK);
    let mut got = Vec::new();
    for a in segs {
        let mut v = vec![0; 65536];
        h.mem.read(a, &mut v).unwrap();
        got.extend(v);
    }
    assert_eq!(got, orig[512 * 512..512 * 512 + 48 * 65536]);
}

#[test]
fn hostile_requests_get_ioerr() {
    let img = Image::new(&pattern(64 * 1024, 4));
    let before = img.read();
    let mut h = harness(&img, false);
    // Past the end, straddling the end, and a sector number that overflows.
    assert_eq!(h.read(128, 512).0, status::IOERR);
    assert_eq!(h.read(127, 1024).0, status::IOERR);
    assert_eq!(h.read(u64::MAX, 512).0, status::IOERR);
    assert_eq!(h.read(u64::MAX / 512, 512).0, status::IOERR);
    assert_eq!(h.write(126, &[1; 2048]), status::IOERR);
    assert_eq!(h.write(u64::MAX - 1, &[1; 1024]), status::IOERR);
    // Not a whole number of sectors.
    assert_eq!(h.read(0, 100).0, status::IOERR);
    assert_eq!(h.write(0, &[7; 700]), status::IOERR);
    // The last sector exactly is fine.
    assert_eq!(h.read(127, 512).0, status::OK);
    // A header shorter than 16 bytes.
    let hd = h.header(req::IN, 0);
    let s = h.alloc(1);
    assert_eq!(h.submit(&[Buf::r(hd, 8), Buf::w(s, 1)], s).1, status::IOERR);
    // No header at all, only a status byte.
    let s = h.alloc(1);
    assert_eq!(h.submit(&[Buf::w(s, 1)], s).1, status::IOERR);
    // No writable byte: nowhere to put a status; returned with length 0.
    let hd = h.header(req::FLUSH, 0);
    let head = h.q.add_chain(&[Buf::r(hd, 16)]);
    write32(&mut h.t, regs::QUEUE_NOTIFY, 0);
    let mut e = None;
    wait_until("the statusless request", || {
        e = h.q.pop_used();
        e.is_some()
    });
    assert_eq!(e.unwrap(), (u32::from(head), 0));
    // A chain pointing outside guest memory is completed by the queue
    // layer; the device keeps working.
    let hd = h.header(req::IN, 0);
    h.q.add_raw_chain(&[
        Descriptor {
            addr: hd.0,
            len: 16,
            flags: 0,
            next: 0,
        },
        Descriptor {
            addr: u64::MAX - 100,
            len: 512,
            flags: crate::virtio::queue::VIRTQ_DESC_F_WRITE,
            next: 0,
        },
    ]);
    write32(&mut h.t, regs::QUEUE_NOTIFY, 0);
    wait_until("the bad chain", || h.q.pop_used().is_some());
    assert_eq!(h.read(1, 512).0, status::OK);
    assert_eq!(img.read(), before, "no hostile request changed the image");
    assert!(h.metrics.invalid_requests.get() >= 9);
}

#[test]
fn read_only_refuses_writes() {
    let img = Image::new(&pattern(64 * 1024, 5));
    let before = img.read();
    let mut h = harness(&img, true);
    assert_eq!(h.write(0, &[0; 512]), status::IOERR);
    assert_eq!(h.simple(req::FLUSH), status::OK);
    assert_eq!(h.read(0, 512).1, before[..512]);
    assert_eq!(h.metrics.ro_refusals.get(), 1);
    assert_eq!(img.read(), before);
}

#[test]
fn reset_and_reactivate() {
    let img = Image::new(&pattern(64 * 1024, 6));
    let before = img.read();
    let mut h = harness(&img, false);
    assert_eq!(h.read(2, 512).1, before[1024..1536]);
    write32(&mut h.t, regs::STATUS, 0);
    assert!(!h.t.device().is_activated());
    // Bring it up again on a fresh queue.
    add_status(&mut h.t, dstatus::ACKNOWLEDGE);
    add_status(&mut h.t, dstatus::DRIVER);
    let f = device_features(&mut h.t);
    set_driver_features(&mut h.t, f);
    add_status(&mut h.t, dstatus::FEATURES_OK);
    h.q = DriverQueue::new(&h.mem, BASE, 256);
    setup_queue(&mut h.t, 0, &h.q);
    add_status(&mut h.t, dstatus::DRIVER_OK);
    assert!(h.t.device().is_activated());
    assert_eq!(h.read(3, 512).1, before[1536..2048]);
}

#[test]
fn random_requests_match_a_model() {
    let len = 256 * 1024;
    let mut model = pattern(len, 7);
    let img = Image::new(&model);
    let mut h = harness(&img, false);
    let mut r = XorShift::new(99);
    for i in 0..200 {
        h.next_buf = 0;
        let sectors = 1 + r.below(16);
        let sector = r.below(len as u64 / 512 + 4);
        let n = (sectors * 512) as usize;
        let fits = (sector + sectors) * 512 <= len as u64;
        if r.below(2) == 0 {
            let data = pattern(n, 1000 + i);
            let st = h.write(sector, &data);
            if fits {
                assert_eq!(st, status::OK);
                let o = sector as usize * 512;
                model[o..o + n].copy_from_slice(&data);
            } else {
                assert_eq!(st, status::IOERR);
            }
        } else {
            let (st, v) = h.read(sector, n as u32);
            if fits {
                assert_eq!(st, status::OK);
                let o = sector as usize * 512;
                assert_eq!(v, model[o..o + n]);
            } else {
                assert_eq!(st, status::IOERR);
            }
        }
    }
    assert_eq!(img.read(), model);
}

#[test]
fn header_data_and_status_may_share_descriptors() {
    let orig = pattern(64 * 1024, 9);
    let img = Image::new(&orig);
    let mut h = harness(&img, false);
    // A write whose header and data are one readable descriptor: the
    // header, then the data straight after it.
    let data = pattern(1024, 10);
    let hd = h.header(req::OUT, 4);
    let _room = h.alloc(1024); // keep later buffers clear of the data
    h.mem.write(GuestAddress(hd.0 + 16), &data).unwrap();
    let s = h.alloc(1);
    let (_, st) = h.submit(&[Buf::r(hd, 16 + 1024), Buf::w(s, 1)], s);
    assert_eq!(st, status::OK);
    let mut want = orig.clone();
    want[4 * 512..4 * 512 + 1024].copy_from_slice(&data);
    assert_eq!(img.read(), want);
    // A read whose data and status byte are one writable descriptor.
    let hd = h.header(req::IN, 4);
    let d = h.alloc(1024 + 1);
    let status_at = GuestAddress(d.0 + 1024);
    let (used, st) = h.submit(&[Buf::r(hd, 16), Buf::w(d, 1024 + 1)], status_at);
    assert_eq!((used, st), (1024 + 1, status::OK));
    let mut got = vec![0u8; 1024];
    h.mem.read(d, &mut got).unwrap();
    assert_eq!(got, data);
}
