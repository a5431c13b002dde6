//! The split virtqueue against a driver of our own (`test_utils`), and
//! against everything a hostile one may write.

use std::io::{Read, Write};

use super::*;
use crate::virtio::mem::{GuardedMemory, RAM_PHYS_BASE};
use crate::virtio::test_utils::{Buf, DriverQueue, XorShift};

const BASE: GuestAddress = GuestAddress(RAM_PHYS_BASE);
const ALL: u64 = features::RING_EVENT_IDX | features::RING_INDIRECT_DESC;

fn addr(off: u64) -> GuestAddress {
    GuestAddress(RAM_PHYS_BASE + off)
}

fn setup(size: u16, features: u64) -> (GuestMemory, DriverQueue, Queue) {
    let mem = GuestMemory::new_owned(1 << 20, BASE).unwrap();
    let dq = DriverQueue::new(&mem, BASE, size);
    let q = Queue::new(mem.clone(), &dq.config(size), features).unwrap();
    (mem, dq, q)
}

#[test]
fn config_validation() {
    let mem = GuestMemory::new_owned(1 << 16, BASE).unwrap();
    let dq = DriverQueue::new(&mem, BASE, 16);
    let good = dq.config(16);
    assert!(good.validate(&mem).is_ok());
    assert!(Queue::new(mem.clone(), &good, 0).is_ok());

    let mut c = good.clone();
    c.ready = false;
    assert_eq!(
        Queue::new(mem.clone(), &c, 0).unwrap_err(),
        QueueError::NotReady
    );

    for (size, max) in [(0, 16), (12, 16), (32, 16), (16, 0), (16, 24)] {
        let mut c = good.clone();
        c.size = size;
        c.max_size = max;
        assert_eq!(
            c.validate(&mem),
            Err(QueueError::InvalidSize { size, max }),
            "size {size} max {max}"
        );
    }
    let mut c = good.clone();
    c.size = 8; // smaller than the maximum is fine
    assert!(c.validate(&mem).is_ok());

    let mut c = good.clone();
    c.desc_table = GuestAddress(c.desc_table.0 + 8);
    assert!(matches!(
        c.validate(&mem),
        Err(QueueError::Misaligned {
            area: "descriptor table",
            ..
        })
    ));
    let mut c = good.clone();
    c.avail_ring = GuestAddress(c.avail_ring.0 + 1);
    assert!(matches!(
        c.validate(&mem),
        Err(QueueError::Misaligned {
            area: "available ring",
            ..
        })
    ));
    let mut c = good.clone();
    c.used_ring = GuestAddress(c.used_ring.0 + 2);
    assert!(matches!(
        c.validate(&mem),
        Err(QueueError::Misaligned {
            area: "used ring",
            ..
        })
    ));

    let mut c = good.clone();
    c.used_ring = GuestAddress(mem.end().0 - 8);
    assert!(matches!(
        c.validate(&mem),
        Err(QueueError::AreaOutOfRange {
            area: "used ring",
            ..
        })
    ));
    let mut c = good.clone();
    c.desc_table = GuestAddress(0);
    assert!(matches!(
        c.validate(&mem),
        Err(QueueError::AreaOutOfRange { .. })
    ));
    let mut c = good;
    c.avail_ring = GuestAddress(u64::MAX - 1);
    assert!(matches!(
        c.validate(&mem),
        Err(QueueError::AreaOutOfRange { .. })
    ));
}

#[test]
fn simple_chain() {
    let (mem, mut dq, mut q) = setup(16, 0);
    assert_eq!(q.pop(), None);
    mem.write(addr(0x8000), b"hello").unwrap();
    let head = dq.add_chain(&[Buf::r(addr(0x8000), 5)]);
    assert!(q.has_available().unwrap());
    let c = q.pop().unwrap();
    assert_eq!(c.head(), head);
    assert_eq!((c.readable_len(), c.writable_len()), (5, 0));
    let mut s = String::new();
    c.reader(&mem).read_to_string(&mut s).unwrap();
    assert_eq!(s, "hello");
    q.add_used(c.head(), 0).unwrap();
    assert_eq!(dq.pop_used(), Some((u32::from(head), 0)));
    assert_eq!(q.pop(), None);
}

#[test]
fn multi_descriptor_chain() {
    let (mem, mut dq, mut q) = setup(16, 0);
    mem.write(addr(0x8000), b"abc").unwrap();
    mem.write(addr(0x9000), b"defg").unwrap();
    let head = dq.add_chain(&[
        Buf::r(addr(0x8000), 3),
        Buf::r(addr(0x9000), 4),
        Buf::w(addr(0xa000), 2),
        Buf::w(addr(0xb000), 10),
    ]);
    let c = q.pop().unwrap();
    assert_eq!(c.readable().len(), 2);
    assert_eq!(c.writable().len(), 2);
    assert_eq!((c.readable_len(), c.writable_len()), (7, 12));
    let mut r = c.reader(&mem);
    let mut buf = [0u8; 7];
    r.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"abcdefg");
    assert_eq!(r.remaining(), 0);
    assert_eq!(r.read(&mut buf).unwrap(), 0);
    let mut w = c.writer(&mem);
    w.write_all(b"0123456789").unwrap();
    assert_eq!((w.written(), w.available()), (10, 2));
    assert_eq!(
        w.write(b"abcdef").unwrap(),
        2,
        "stops at the end of the chain"
    );
    assert_eq!(w.write(b"x").unwrap(), 0);
    let mut out = [0u8; 10];
    mem.read(addr(0xb000), &mut out).unwrap();
    assert_eq!(&out, b"23456789ab");
    mem.read(addr(0xa000), &mut out[..2]).unwrap();
    assert_eq!(&out[..2], b"01");
    q.add_used(c.head(), 12).unwrap();
    assert_eq!(dq.pop_used(), Some((u32::from(head), 12)));
}

#[test]
fn indirect_chain() {
    let (mem, mut dq, mut q) = setup(16, ALL);
    mem.write(addr(0x8000), b"xyz").unwrap();
    let head = dq.add_indirect(
        addr(0x7000),
        &[
            Buf::r(addr(0x8000), 3),
            Buf::w(addr(0x9000), 4),
            Buf::w(addr(0xa000), 4),
        ],
    );
    let c = q.pop().unwrap();
    assert_eq!(c.head(), head);
    assert_eq!((c.readable().len(), c.writable().len()), (1, 2));
    assert_eq!((c.readable_len(), c.writable_len()), (3, 8));
    let mut s = String::new();
    c.reader(&mem).read_to_string(&mut s).unwrap();
    assert_eq!(s, "xyz");
}

#[test]
fn direct_then_indirect() {
    // 2.7.5.3.2: zero or more normal descriptors, then one indirect.
    let (mem, mut dq, mut q) = setup(16, ALL);
    let table = addr(0x7000);
    dq.write_table(table, &[Buf::w(addr(0x9000), 6)]);
    let head = dq.add_raw_chain(&[
        Descriptor {
            addr: addr(0x8000).0,
            len: 2,
            flags: 0,
            next: 0,
        },
        Descriptor {
            addr: table.0,
            len: 16,
            flags: VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_WRITE, // WRITE ignored
            next: 0,
        },
    ]);
    let c = q.pop().unwrap();
    assert_eq!(c.head(), head);
    assert_eq!((c.readable_len(), c.writable_len()), (2, 6));
    let _ = mem;
}

/// Pops the chain just published through `pop_chain`, expecting
/// `error`; then rewinds and checks that `pop` completes it with length 0
/// (and counts it again).
fn expect_invalid(dq: &mut DriverQueue, q: &mut Queue, head: u16, error: ChainError) {
    let before = q.metrics().invalid_chains.get();
    match q.pop_chain() {
        Err(QueueError::InvalidChain { head: h, error: e }) => {
            assert_eq!((h, e), (head, error));
        }
        other => panic!("expected {error:?}, got {other:?}"),
    }
    q.undo_pop();
    assert_eq!(q.pop(), None);
    assert_eq!(q.metrics().invalid_chains.get(), before + 2);
    assert_eq!(dq.pop_used(), Some((u32::from(head), 0)));
}

#[test]
fn looping_chain_rejected() {
    let (_mem, mut dq, mut q) = setup(8, 0);
    let d = |next| Descriptor {
        addr: addr(0x8000).0,
        len: 4,
        flags: VIRTQ_DESC_F_NEXT,
        next,
    };
    dq.write_desc(0, d(1));
    dq.write_desc(1, d(2));
    dq.write_desc(2, d(0));
    dq.publish(0);
    expect_invalid(&mut dq, &mut q, 0, ChainError::TooLong);
    // A self-loop too.
    dq.write_desc(3, d(3));
    dq.publish(3);
    expect_invalid(&mut dq, &mut q, 3, ChainError::TooLong);
}

#[test]
fn longest_legal_chain_accepted() {
    let (_mem, mut dq, mut q) = setup(8, 0);
    let bufs: Vec<_> = (0..8).map(|i| Buf::r(addr(0x8000 + i * 16), 16)).collect();
    dq.add_chain(&bufs);
    let c = q.pop().unwrap();
    assert_eq!(c.readable().len(), 8);
}

#[test]
fn out_of_range_addresses_rejected() {
    let (mem, mut dq, mut q) = setup(8, ALL);
    let end = mem.end().0;
    for (a, len) in [
        (end - 4, 8u32),
        (end, 1),
        (RAM_PHYS_BASE - 1, 2),
        (0, 1),
        (u64::MAX, 2),
    ] {
        let head = dq.add_chain(&[Buf::r(GuestAddress(a), len)]);
        expect_invalid(
            &mut dq,
            &mut q,
            head,
            ChainError::AddressOutOfRange { addr: a, len },
        );
    }
    // An indirect table outside memory.
    let head = dq.add_raw_chain(&[Descriptor {
        addr: end - 16,
        len: 32,
        flags: VIRTQ_DESC_F_INDIRECT,
        next: 0,
    }]);
    expect_invalid(
        &mut dq,
        &mut q,
        head,
        ChainError::AddressOutOfRange {
            addr: end - 16,
            len: 32,
        },
    );
    // A next index past the table.
    let head = dq.add_raw_chain(&[Descriptor {
        addr: addr(0x8000).0,
        len: 1,
        flags: VIRTQ_DESC_F_NEXT,
        next: 8,
    }]);
    expect_invalid(
        &mut dq,
        &mut q,
        head,
        ChainError::NextOutOfRange {
            next: 8,
            table_len: 8,
        },
    );
}

#[test]
fn head_out_of_range_is_skipped() {
    let (_mem, mut dq, mut q) = setup(8, 0);
    dq.publish(8);
    dq.publish(0xffff);
    let good = dq.add_chain(&[Buf::r(addr(0x8000), 1)]);
    let c = q.pop().unwrap();
    assert_eq!(c.head(), good);
    assert_eq!(q.metrics().invalid_heads.get(), 2);
    assert_eq!(dq.pop_used(), None, "nothing to give back for a bad head");
    assert_eq!(q.add_used(8, 0), Err(QueueError::UsedHeadOutOfRange(8)));
}

#[test]
fn length_overflow_rejected() {
    // Two 2 GiB buffers at the same place add up to 2^32 bytes. The
    // region is a lazily committed mapping, so this costs nothing.
    let mem = GuestMemory::new_owned((1 << 31) + (1 << 20), BASE).unwrap();
    let mut dq = DriverQueue::new(&mem, BASE, 8);
    let mut q = Queue::new(mem.clone(), &dq.config(8), 0).unwrap();
    let head = dq.add_chain(&[
        Buf::w(addr(1 << 20), 1 << 31),
        Buf::w(addr(1 << 20), 1 << 31),
    ]);
    expect_invalid(&mut dq, &mut q, head, ChainError::TooManyBytes);
    // Just under the limit is fine.
    dq.add_chain(&[
        Buf::w(addr(1 << 20), 1 << 31),
        Buf::w(addr(1 << 20), (1 << 31) - 1),
    ]);
    assert_eq!(q.pop().unwrap().writable_len(), u32::MAX);
}

#[test]
fn bad_indirect_tables_rejected() {
    let (_mem, mut dq, mut q) = setup(8, ALL);
    let table = addr(0x7000);
    let ind = |addr: GuestAddress, len, flags| Descriptor {
        addr: addr.0,
        len,
        flags: VIRTQ_DESC_F_INDIRECT | flags,
        next: 1,
    };

    // Nested: an indirect table whose entry is itself indirect.
    dq.write_raw_table(table, &[ind(addr(0x6000), 16, 0)]);
    let head = dq.add_raw_chain(&[ind(table, 16, 0)]);
    expect_invalid(&mut dq, &mut q, head, ChainError::NestedIndirect);

    let head = dq.add_raw_chain(&[ind(table, 16, VIRTQ_DESC_F_NEXT)]);
    expect_invalid(&mut dq, &mut q, head, ChainError::IndirectWithNext);

    for len in [0, 8, 17] {
        let head = dq.add_raw_chain(&[ind(table, len, 0)]);
        expect_invalid(&mut dq, &mut q, head, ChainError::IndirectBadLength(len));
    }
    let head = dq.add_raw_chain(&[ind(table, 16 * 9, 0)]);
    expect_invalid(&mut dq, &mut q, head, ChainError::IndirectTooLarge(9));

    // A loop inside the table ends too.
    dq.write_raw_table(
        table,
        &[
            Descriptor {
                addr: addr(0x8000).0,
                len: 1,
                flags: VIRTQ_DESC_F_NEXT,
                next: 1,
            },
            Descriptor {
                addr: addr(0x8000).0,
                len: 1,
                flags: VIRTQ_DESC_F_NEXT,
                next: 0,
            },
        ],
    );
    let head = dq.add_raw_chain(&[ind(table, 32, 0)]);
    expect_invalid(&mut dq, &mut q, head, ChainError::TooLong);
}

#[test]
fn indirect_needs_negotiation() {
    let (_mem, mut dq, mut q) = setup(8, features::RING_EVENT_IDX);
    let head = dq.add_indirect(addr(0x7000), &[Buf::r(addr(0x8000), 1)]);
    expect_invalid(&mut dq, &mut q, head, ChainError::IndirectNotNegotiated);
}

#[test]
fn readable_after_writable_rejected() {
    let (_mem, mut dq, mut q) = setup(8, 0);
    let head = dq.add_chain(&[Buf::w(addr(0x8000), 1), Buf::r(addr(0x9000), 1)]);
    expect_invalid(&mut dq, &mut q, head, ChainError::ReadableAfterWritable);
}

#[test]
fn avail_overrun_breaks_the_queue() {
    let (_mem, mut dq, mut q) = setup(8, 0);
    dq.add_chain(&[Buf::r(addr(0x8000), 1)]);
    assert!(q.pop().is_some());
    dq.set_avail_idx(1 + 9);
    assert!(matches!(
        q.pop_chain(),
        Err(QueueError::AvailOverrun {
            avail_idx: 10,
            next_avail: 1
        })
    ));
    assert!(q.is_broken());
    assert_eq!(q.pop(), None);
    assert_eq!(q.pop_chain(), Err(QueueError::Broken));
    // The "re-check after enabling" step must not report work either,
    // or a device loop would spin on a ring it can never pop.
    assert_eq!(q.has_available(), Err(QueueError::Broken));
    assert_eq!(q.enable_notification(), Err(QueueError::Broken));
    assert_eq!(q.metrics().avail_overruns.get(), 1);
}

#[test]
fn used_ring_wraps_and_batches() {
    let (_mem, mut dq, mut q) = setup(4, 0);
    for round in 0..5u32 {
        let heads: Vec<u16> = (0..3)
            .map(|_| dq.add_chain(&[Buf::w(addr(0x8000), 8)]))
            .collect();
        let chains: Vec<_> = (0..3).map(|_| q.pop().unwrap()).collect();
        assert_eq!(chains.iter().map(|c| c.head()).collect::<Vec<_>>(), heads);
        let elems: Vec<_> = chains.iter().map(|c| (c.head(), round)).collect();
        assert_eq!(
            q.add_used_batch(&[(0, 1), (4, 1)]),
            Err(QueueError::UsedHeadOutOfRange(4))
        );
        q.add_used_batch(&elems).unwrap();
        for h in &heads {
            assert_eq!(dq.pop_used(), Some((u32::from(*h), round)));
        }
    }
    assert_eq!(q.next_used(), 15);
    assert_eq!(dq.used_idx(), 15);
}

#[test]
fn undo_pop_returns_the_chain() {
    let (_mem, mut dq, mut q) = setup(8, 0);
    let head = dq.add_chain(&[Buf::w(addr(0x8000), 8)]);
    let c = q.pop().unwrap();
    q.undo_pop();
    assert_eq!(q.pop().unwrap(), c);
    assert_eq!(c.head(), head);
}

#[test]
fn need_event_math() {
    // Driver wants an interrupt when the entry at used_event is used.
    assert!(vring_need_event(0, 1, 0));
    assert!(!vring_need_event(1, 1, 0));
    assert!(vring_need_event(1, 2, 0));
    assert!(vring_need_event(4, 5, 3));
    assert!(!vring_need_event(5, 5, 3), "event not reached yet");
    assert!(
        !vring_need_event(2, 5, 3),
        "event already passed before old"
    );
    assert!(!vring_need_event(7, 7, 7), "nothing new");
    // Wrap-around of the 16-bit indices.
    assert!(vring_need_event(0xffff, 1, 0xfffe));
    assert!(vring_need_event(0xfffe, 0, 0xfffe));
    assert!(!vring_need_event(0, 0, 0xfffe));
    assert!(vring_need_event(0, 1, 0xffff));
    // Exhaustive against a straightforward model on a small window.
    for old in [0u16, 1, 100, 0xfff0, 0xffff] {
        for n in 0..20u16 {
            let new = old.wrapping_add(n);
            for e in 0..40u16 {
                let event = old.wrapping_sub(10).wrapping_add(e);
                let model = (0..n).any(|k| old.wrapping_add(k) == event);
                assert_eq!(
                    vring_need_event(event, new, old),
                    model,
                    "{event} {new} {old}"
                );
            }
        }
    }
}

#[test]
fn event_idx_suppression() {
    fn use_one(dq: &mut DriverQueue, q: &mut Queue) {
        dq.add_chain(&[Buf::w(addr(0x8000), 8)]);
        let c = q.pop().unwrap();
        q.add_used(c.head(), 8).unwrap();
        dq.pop_used();
    }
    let (_mem, mut dq, mut q) = setup(8, features::RING_EVENT_IDX);
    assert!(!q.needs_notification().unwrap(), "nothing used yet");
    use_one(&mut dq, &mut q);
    assert!(
        q.needs_notification().unwrap(),
        "used_event 0: the first completion notifies"
    );
    assert!(!q.needs_notification().unwrap(), "nothing new since");
    // Driver asks to be told only when used entry 3 is written.
    dq.set_used_event(3);
    use_one(&mut dq, &mut q); // used idx 2 (entry 1)
    assert!(!q.needs_notification().unwrap());
    use_one(&mut dq, &mut q); // used idx 3 (entry 2)
    assert!(!q.needs_notification().unwrap());
    use_one(&mut dq, &mut q); // used idx 4 (entry 3)
    assert!(q.needs_notification().unwrap());
    // A batch jumping over the event also notifies.
    dq.set_used_event(5);
    use_one(&mut dq, &mut q);
    use_one(&mut dq, &mut q);
    use_one(&mut dq, &mut q);
    assert!(q.needs_notification().unwrap());
    // The NO_INTERRUPT flag is ignored with EVENT_IDX (2.7.7.2).
    dq.set_avail_flags(VIRTQ_AVAIL_F_NO_INTERRUPT);
    dq.set_used_event(q.next_used());
    use_one(&mut dq, &mut q);
    assert!(q.needs_notification().unwrap());
}

#[test]
fn flag_suppression_without_event_idx() {
    let (_mem, mut dq, mut q) = setup(8, 0);
    dq.add_chain(&[Buf::w(addr(0x8000), 8)]);
    let c = q.pop().unwrap();
    q.add_used(c.head(), 0).unwrap();
    dq.set_avail_flags(VIRTQ_AVAIL_F_NO_INTERRUPT);
    assert!(!q.needs_notification().unwrap());
    dq.add_chain(&[Buf::w(addr(0x8000), 8)]);
    let c = q.pop().unwrap();
    q.add_used(c.head(), 0).unwrap();
    dq.set_avail_flags(0);
    assert!(q.needs_notification().unwrap());

    // Device-side: NO_NOTIFY in the used ring.
    q.disable_notification().unwrap();
    assert_eq!(dq.used_flags(), VIRTQ_USED_F_NO_NOTIFY);
    assert!(!q.enable_notification().unwrap());
    assert_eq!(dq.used_flags(), 0);
    dq.add_chain(&[Buf::w(addr(0x8000), 8)]);
    assert!(
        q.enable_notification().unwrap(),
        "buffers arrived: caller must process"
    );
}

#[test]
fn enable_notification_sets_avail_event() {
    let (_mem, mut dq, mut q) = setup(8, features::RING_EVENT_IDX);
    assert!(!q.enable_notification().unwrap());
    assert_eq!(dq.avail_event(), 0);
    dq.add_chain(&[Buf::w(addr(0x8000), 8)]);
    dq.add_chain(&[Buf::w(addr(0x8000), 8)]);
    assert!(q.enable_notification().unwrap());
    q.pop().unwrap();
    q.pop().unwrap();
    assert!(!q.enable_notification().unwrap());
    assert_eq!(
        dq.avail_event(),
        2,
        "driver must notify when it makes entry 2 available"
    );
    q.disable_notification().unwrap();
    assert_eq!(dq.used_flags(), 0, "flags stay 0 with EVENT_IDX");
}

/// Random descriptor tables, rings and indices: no panic, no access
/// outside guest memory, every accepted chain inside memory and within
/// the limits, every used entry a valid head.
#[test]
fn random_tables_never_escape() {
    const LEN: usize = 64 * 1024;
    let mut rng = XorShift::new(0x5eed_1234_abcd_0001);
    let guarded = GuardedMemory::new(LEN, BASE);
    let mem = guarded.mem().clone();
    let mut stats = [0usize; 2];
    for round in 0..2000 {
        let size = 1u16 << (rng.next() % 7); // 1..64
        let feats = rng.next() & ALL;
        mem.write(BASE, &vec![0; LEN]).unwrap();
        let mut dq = DriverQueue::new(&mem, BASE, size);
        // Descriptors: mostly plausible, sometimes wild.
        let pick_addr = |rng: &mut XorShift| match rng.next() % 8 {
            0 => rng.next(),
            1 => RAM_PHYS_BASE + LEN as u64 - rng.next() % 64,
            2 => RAM_PHYS_BASE - rng.next() % 64,
            3 => u64::MAX - rng.next() % 64,
            _ => RAM_PHYS_BASE + 0x4000 + rng.next() % (LEN as u64 - 0x4000),
        };
        let pick_len = |rng: &mut XorShift| match rng.next() % 6 {
            0 => rng.next() as u32,
            1 => 16 * (rng.next() % 80) as u32,
            _ => (rng.next() % 512) as u32,
        };
        let random_desc = |rng: &mut XorShift| Descriptor {
            addr: pick_addr(rng),
            len: pick_len(rng),
            flags: (rng.next() % 8) as u16,
            next: if rng.below(4) == 0 {
                rng.next() as u16
            } else {
                (rng.next() % u64::from(size)) as u16
            },
        };
        for i in 0..size {
            dq.write_desc(i, random_desc(&mut rng));
        }
        // Some indirect tables inside the data area.
        for _ in 0..4 {
            let at = RAM_PHYS_BASE + 0x4000 + 16 * (rng.next() % 0x800);
            let n = rng.next() % 8;
            for k in 0..n {
                let d = random_desc(&mut rng);
                let _ = mem.write(GuestAddress(at + 16 * k), &d.to_bytes());
            }
        }
        for slot in 0..size {
            let head = if rng.below(8) == 0 {
                rng.next() as u16
            } else {
                (rng.next() % u64::from(size)) as u16
            };
            dq.write_avail_slot(slot, head);
        }
        let avail = if rng.below(8) == 0 {
            rng.next() as u16
        } else {
            (rng.next() % (u64::from(size) + 1)) as u16
        };
        dq.set_avail_idx(avail);
        dq.set_used_event(rng.next() as u16);

        let mut q = Queue::new(mem.clone(), &dq.config(size), feats).unwrap();
        let mut steps = 0;
        while let Some(c) = q.pop() {
            steps += 1;
            assert!(
                steps <= usize::from(size),
                "round {round}: popped more than a ring"
            );
            let total = u64::from(c.readable_len()) + u64::from(c.writable_len());
            assert!(total < 1 << 32);
            for s in c.readable().iter().chain(c.writable()) {
                assert!(mem.check_range(s.addr, u64::from(s.len)).is_ok());
            }
            assert!(c.readable().len() + c.writable().len() <= 2 * usize::from(size));
            // Exercise the stream accessors on what was accepted.
            let mut sink = Vec::new();
            c.reader(&mem).take(4096).read_to_end(&mut sink).unwrap();
            let mut w = c.writer(&mem);
            w.write_all(&vec![0xee; w.available().min(256)]).unwrap();
            let n = w.written() as u32;
            q.add_used(c.head(), n).unwrap();
            let _ = q.needs_notification();
            let _ = q.enable_notification();
            stats[0] += 1;
        }
        stats[1] += q.metrics().invalid_chains.get() as usize;
        // Every used entry names a valid head.
        for i in 0..q.next_used() {
            let (id, _) = dq.used_elem(i);
            assert!(id < u32::from(size));
        }
    }
    drop(mem);
    assert!(guarded.guards_intact(), "a write escaped guest memory");
    assert!(
        stats[0] > 100 && stats[1] > 100,
        "both outcomes exercised: {stats:?}"
    );
}
