//! Host notifiers on kernel files: one host poll waits on a host pipe and
//! on kernel readiness (through a kernel epoll) at once, with the
//! drain -> harvest -> block protocol; nothing is lost under a race.

use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use lkl::syscall::{self as sys, abi, EventfdNotifier};
use testkit::{boot, in_child};

fn host_poll(fds: &[i32], timeout_ms: i32) -> usize {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: a pollfd array we own.
    let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout_ms) };
    n.max(0) as usize
}

#[test]
fn kernel_readiness_wakes_a_host_poll() {
    in_child(
        "kernel_readiness_wakes_a_host_poll",
        Duration::from_secs(120),
        || {
            let (kernel, _c) = boot(32 << 20);
            let (r, w) = sys::pipe2(abi::O_NONBLOCK).unwrap();
            let ep = sys::epoll_create(0).unwrap();
            sys::epoll_ctl(
                ep,
                abi::EPOLL_CTL_ADD,
                r,
                Some(abi::EpollEvent {
                    events: abi::EPOLLIN,
                    data: 7,
                }),
            )
            .unwrap();
            let notifier = EventfdNotifier::new(ep, abi::EPOLLIN).unwrap();

            // Nothing ready: the host poll times out.
            notifier.drain();
            assert_eq!(host_poll(&[notifier.as_raw_fd()], 50), 0);

            // A write from another thread wakes the host poll.
            let writer = thread::spawn(move || {
                thread::sleep(Duration::from_millis(30));
                sys::write(w, b"x").unwrap();
                w
            });
            assert_eq!(host_poll(&[notifier.as_raw_fd()], 5000), 1, "no wake-up");
            let w = writer.join().unwrap();
            let mut events = [abi::EpollEvent::default(); 4];
            assert_eq!(sys::epoll_wait(ep, &mut events, 0), Ok(1));
            let mut buf = [0u8; 64];
            assert_eq!(sys::read(r, &mut buf), Ok(1));

            // The race: 20,000 writes with random pauses; the consumer follows
            // drain -> harvest(0) -> block and must never time out with data
            // pending.
            const N: usize = 20_000;
            let notifier = Arc::new(notifier);
            let producer = thread::spawn(move || {
                let mut x = 0x2545_f491u32;
                for _ in 0..N {
                    while sys::write(w, b"y") == Err(lkl::Errno::EAGAIN) {
                        thread::yield_now();
                    }
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    if x.is_multiple_of(4) {
                        thread::sleep(Duration::from_micros(u64::from(x % 20)));
                    }
                }
            });
            let mut got = 0;
            let mut lost = 0;
            while got < N {
                notifier.drain();
                match sys::epoll_wait(ep, &mut events, 0) {
                    Ok(0) => {
                        if host_poll(&[notifier.as_raw_fd()], 1000) == 0 {
                            // Timed out: was data pending all along?
                            if sys::epoll_wait(ep, &mut events, 0) == Ok(1) {
                                lost += 1;
                            }
                        }
                    }
                    Ok(_) => {
                        while let Ok(n) = sys::read(r, &mut buf) {
                            got += n;
                        }
                    }
                    Err(e) => panic!("epoll_wait: {e}"),
                }
            }
            producer.join().unwrap();
            assert_eq!(lost, 0, "lost wake-ups");
            println!("{N} kernel writes, all seen through the host eventfd, 0 lost");

            // After deletion, writes no longer signal.
            drop(notifier);
            sys::write(w, b"z").unwrap();
            kernel.halt().unwrap();
        },
    );
}

#[test]
fn notifier_errors() {
    in_child("notifier_errors", Duration::from_secs(60), || {
        let (kernel, _c) = boot(32 << 20);
        assert_eq!(
            EventfdNotifier::new(999, abi::EPOLLIN).unwrap_err(),
            lkl::Errno::EBADF
        );
        assert_eq!(sys::notifier_del(12345), Err(lkl::Errno::ENOENT));
        kernel.halt().unwrap();
    });
}
