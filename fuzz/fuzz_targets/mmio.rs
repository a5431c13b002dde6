//! The virtio-mmio register file with a virtio-net device behind it, driven
//! by a hostile driver: arbitrary register reads and writes (any offset,
//! width and value, any order of status transitions) over guest memory
//! whose rings the fuzzer also wrote. Activation starts the device's worker
//! thread, which serves whatever the rings say; the final reset must stop
//! it. Nothing may panic or hang.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use lkl::virtio::{GuestAddress, GuestMemory, MmioTransport, Net, SocketPairBackend};

const MEM: usize = 64 * 1024;
const BASE: u64 = 0x10_0000;
const OP: usize = 6;

fuzz_target!(|data: &[u8]| {
    let Some((&count, data)) = data.split_first() else {
        return;
    };
    let (ops, rest) = data.split_at(usize::from(count).min(data.len() / OP) * OP);
    let Ok(mem) = GuestMemory::new_owned(MEM, GuestAddress(BASE)) else {
        return;
    };
    let _ = mem.write(GuestAddress(BASE), &rest[..rest.len().min(MEM)]);
    let Ok((backend, _wire)) = SocketPairBackend::pair(true) else {
        return;
    };
    let Ok(net) = Net::new(Box::new(backend), 0, Some([2, 0, 0, 0, 0, 1])) else {
        return;
    };
    let mut t = MmioTransport::new(mem.clone(), Box::new(net), Arc::new(|| {}));
    // Half the inputs start from a correctly activated device (both queues
    // at fixed places in the region), so the fuzzer spends its time on
    // what the worker does with hostile rings, not on finding the
    // handshake.
    if count & 1 == 1 {
        activate(&mut t, u32::from(count >> 1));
    }
    for op in ops.chunks_exact(OP) {
        let offset = u64::from(op[1]) * 2;
        let width = [1usize, 2, 4, 4][usize::from(op[0] >> 1 & 3)];
        // Queue addresses are made to point into the region most of the time.
        let mut value = u32::from_le_bytes([op[2], op[3], op[4], op[5]]);
        if op[0] & 0x80 != 0 && matches!(offset, 0x80 | 0x90 | 0xa0) {
            value = (BASE as u32) + (value & 0xfff0);
        }
        if op[0] & 1 == 0 {
            let mut buf = [0u8; 4];
            let _ = t.read(offset, &mut buf[..width]);
        } else {
            let _ = t.write(offset, &value.to_le_bytes()[..width]);
        }
    }
    // Let the worker look at the rings once more, then reset.
    let _ = mem.write(GuestAddress(BASE), &rest[..rest.len().min(MEM)]);
    let _ = t.write(0x50, &0u32.to_le_bytes());
    let _ = t.write(0x50, &1u32.to_le_bytes());
    // Reset: stops and joins the worker if the device was activated.
    let _ = t.write(0x70, &0u32.to_le_bytes());
});

fn w(t: &mut MmioTransport, offset: u64, value: u32) {
    let _ = t.write(offset, &value.to_le_bytes());
}

/// The driver's side of virtio 1.2, 4.2.3.1 "Device Initialization",
/// accepting the feature bits in `features` (low word) and VERSION_1.
fn activate(t: &mut MmioTransport, features: u32) {
    w(t, 0x70, 1); // ACKNOWLEDGE
    w(t, 0x70, 3); // DRIVER
    w(t, 0x24, 0);
    w(t, 0x20, features);
    w(t, 0x24, 1);
    w(t, 0x20, 1); // VERSION_1 (bit 32)
    w(t, 0x70, 11); // FEATURES_OK
    for q in 0..2u32 {
        let area = BASE as u32 + q * 0x4000;
        w(t, 0x30, q);
        w(t, 0x38, 64);
        w(t, 0x80, area);
        w(t, 0x84, 0);
        w(t, 0x90, area + 0x1000);
        w(t, 0x94, 0);
        w(t, 0xa0, area + 0x2000);
        w(t, 0xa4, 0);
        w(t, 0x44, 1);
    }
    w(t, 0x70, 15); // DRIVER_OK
}
