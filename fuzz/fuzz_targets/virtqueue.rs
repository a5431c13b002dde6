//! The split virtqueue against a hostile driver: the fuzzer writes the
//! whole of guest memory (descriptor table, rings, indirect tables), the
//! device pops every chain it is offered, reads and writes through it and
//! returns it. Nothing may panic, loop, or touch memory outside the region
//! (GuestMemory checks every access; a stray one would be a panic here).
#![no_main]

use std::io::{Read, Write};

use libfuzzer_sys::fuzz_target;
use lkl::virtio::{GuestAddress, GuestMemory, Queue, QueueConfig};

const MEM: usize = 64 * 1024;
const BASE: u64 = 0x10_0000;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let size = 1u16 << (data[0] % 9); // 1..=256
    let features = u64::from(data[1] & 3) << 28; // INDIRECT_DESC, EVENT_IDX
    let Ok(mem) = GuestMemory::new_owned(MEM, GuestAddress(BASE)) else {
        return;
    };
    let _ = mem.write(GuestAddress(BASE), &data[2..data.len().min(MEM + 2)]);
    let mut config = QueueConfig::new(256);
    config.size = size;
    config.ready = true;
    config.desc_table = GuestAddress(BASE);
    config.avail_ring = GuestAddress(BASE + 0x1000);
    config.used_ring = GuestAddress(BASE + 0x2000);
    let Ok(mut queue) = Queue::new(mem.clone(), &config, features) else {
        return;
    };
    let mut buf = vec![0u8; 4096];
    // Bounded: a hostile avail index can offer at most 65535 chains.
    for _ in 0..4 * usize::from(size) {
        let chain = match queue.pop_chain() {
            Ok(Some(c)) => c,
            Ok(None) | Err(_) => break,
        };
        let n = chain.reader(&mem).read(&mut buf).unwrap_or(0);
        let w = chain.writer(&mem).write(&buf[..n]).unwrap_or(0);
        let _ = queue.add_used(chain.head(), w as u32);
        let _ = queue.needs_notification();
    }
});
