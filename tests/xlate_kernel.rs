//! Layouts the hijack's translation table (src/xlate.rs) relies on, checked
//! against the running kernel rather than its headers: the kernel is built
//! by the host's x86_64 compiler, so `__x86_64__` is defined and
//! `include/uapi/linux/eventpoll.h` packs `struct epoll_event` (12 bytes),
//! while `struct stat` is asm-generic's (128 bytes, not x86_64's 144).

use std::time::Duration;

use lkl::syscall::{self as sys, abi, nr, raw};
use testkit::{boot, in_child};

#[test]
fn kernel_epoll_event_is_packed_like_x86_64() {
    in_child(
        "kernel_epoll_event_is_packed_like_x86_64",
        Duration::from_secs(60),
        || {
            let (_kernel, _c) = boot(32 << 20);
            let ep = sys::epoll_create(0).unwrap();
            let mut ends = Vec::new();
            for data in [0x1111_2222_3333_4444u64, 0x5555_6666_7777_8888] {
                let (r, w) = sys::pipe2(abi::O_NONBLOCK).unwrap();
                sys::write(w, b"x").unwrap();
                sys::epoll_ctl(
                    ep,
                    abi::EPOLL_CTL_ADD,
                    r,
                    Some(abi::EpollEvent {
                        events: abi::EPOLLIN,
                        data,
                    }),
                )
                .unwrap();
                ends.push((r, w));
            }
            let mut buf = [0xffu8; 64];
            // SAFETY: room for two events of either layout (32 bytes).
            let n = unsafe {
                raw(
                    nr::EPOLL_PWAIT,
                    [ep.into(), buf.as_mut_ptr() as usize as i64, 2, 0, 0, 8],
                )
            }
            .unwrap();
            assert_eq!(n, 2);
            let word = |off: usize| u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap());
            // The second event's `events` (EPOLLIN = 1) sits at offset 12 when
            // packed, 16 when not.
            assert_eq!(word(12), abi::EPOLLIN, "{buf:02x?}");
            assert_eq!(buf[24], 0xff, "more than 24 bytes written: {buf:02x?}");
        },
    );
}
