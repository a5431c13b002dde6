//! The boot test list (after LKL's boot test, written anew): the host
//! primitives, then one booted kernel per test process.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use lkl::host::{spawn_kernel_thread, Semaphore};
use lkl::syscall::{self as sys, abi};
use lkl::{BootError, BootOptions, Errno, Kernel};
use testkit::{boot, host_threads, in_child, kernel_has_net};

const LIMIT: Duration = Duration::from_secs(120);

#[test]
fn host_semaphore_mutex_and_join() {
    // Semaphore: counts, blocks, wakes.
    let sem = Arc::new(Semaphore::new(0));
    assert!(!sem.try_down());
    sem.up();
    assert!(sem.try_down());
    let s2 = sem.clone();
    let t = thread::spawn(move || {
        s2.down();
        s2.down();
    });
    thread::sleep(Duration::from_millis(20));
    sem.up();
    sem.up();
    t.join().unwrap();

    // A binary semaphore as a mutex: 4 threads x 10,000 increments.
    let lock = Arc::new(Semaphore::new(1));
    let counter = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (lock, counter) = (lock.clone(), counter.clone());
            thread::spawn(move || {
                for _ in 0..10_000 {
                    lock.down();
                    let v = counter.load(Ordering::Relaxed);
                    counter.store(v + 1, Ordering::Relaxed);
                    lock.up();
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(counter.load(Ordering::SeqCst), 40_000);

    // Kernel-style host thread: runs, is joined.
    static RAN: AtomicUsize = AtomicUsize::new(0);
    unsafe extern "C" fn f(arg: *mut std::ffi::c_void) {
        RAN.store(arg as usize, Ordering::SeqCst);
    }
    // SAFETY: `f` only stores its argument.
    let t = unsafe { spawn_kernel_thread(f, 42 as *mut _) }.unwrap();
    t.join().unwrap();
    assert_eq!(RAN.load(Ordering::SeqCst), 42);
}

#[test]
fn boot_basics_and_halt() {
    in_child("boot_basics_and_halt", LIMIT, || {
        let before = host_threads();
        let (kernel, console) = boot(32 << 20);
        assert!(
            console.contents().contains("Linux version 6.12"),
            "{}",
            console.contents()
        );

        assert_eq!(sys::getpid(), Ok(1));
        let u = sys::uname().unwrap();
        assert_eq!(abi::cstr_field(&u.sysname), "Linux");
        assert!(
            abi::cstr_field(&u.release).starts_with("6.12"),
            "release {}",
            abi::cstr_field(&u.release)
        );
        assert!(sys::gettid().unwrap() >= 1);

        // umask
        sys::umask(0o022);
        assert_eq!(sys::umask(0o777), 0o022);
        sys::umask(0o022);

        // creat / write / lseek / read / fstat
        let fd = sys::creat("/file", 0o644).unwrap();
        assert_eq!(sys::write(fd, b"hello kernel"), Ok(12));
        sys::close(fd).unwrap();
        let fd = sys::open("/file", abi::O_RDWR, 0).unwrap();
        assert_eq!(sys::lseek(fd, 6, abi::SEEK_SET), Ok(6));
        let mut buf = [0u8; 32];
        assert_eq!(sys::read(fd, &mut buf), Ok(6));
        assert_eq!(&buf[..6], b"kernel");
        let st = sys::fstat(fd).unwrap();
        assert_eq!(st.st_size, 12);
        assert_eq!(st.st_mode, abi::S_IFREG | 0o644);
        sys::close(fd).unwrap();
        assert_eq!(sys::close(fd), Err(Errno::EBADF));

        // mkdir / stat
        sys::mkdir("/mnt", 0o755).unwrap();
        let st = sys::stat("/mnt").unwrap();
        assert_eq!(st.st_mode & abi::S_IFMT, abi::S_IFDIR);
        assert_eq!(sys::mkdir("/mnt", 0o755), Err(Errno::EEXIST));
        assert_eq!(sys::stat("/nonexistent").unwrap_err(), Errno::ENOENT);

        // nanosleep of 87.65 ms lasts at least 90% of that
        let t0 = Instant::now();
        sys::nanosleep(Duration::from_micros(87_650)).unwrap();
        let slept = t0.elapsed();
        assert!(
            slept >= Duration::from_micros(78_885),
            "slept only {slept:?}"
        );

        // non-blocking pipe2
        let (r, w) = sys::pipe2(abi::O_NONBLOCK).unwrap();
        assert_eq!(sys::read(r, &mut buf), Err(Errno::EAGAIN));
        assert_eq!(sys::write(w, b"x"), Ok(1));
        assert_eq!(sys::read(r, &mut buf), Ok(1));

        // epoll: no event before a write, one after
        let ep = sys::epoll_create(0).unwrap();
        let ev = abi::EpollEvent {
            events: abi::EPOLLIN,
            data: 0xfeed,
        };
        sys::epoll_ctl(ep, abi::EPOLL_CTL_ADD, r, Some(ev)).unwrap();
        let mut events = [abi::EpollEvent::default(); 4];
        assert_eq!(sys::epoll_wait(ep, &mut events, 0), Ok(0));
        sys::write(w, b"y").unwrap();
        assert_eq!(sys::epoll_wait(ep, &mut events, 1000), Ok(1));
        assert_eq!({ events[0].data }, 0xfeed);
        assert_eq!(events[0].events & abi::EPOLLIN, abi::EPOLLIN);
        for fd in [ep, r, w] {
            sys::close(fd).unwrap();
        }

        // mount proc, getdents64, umount
        sys::mkdir("/proc", 0o555).unwrap();
        sys::mount("proc", "/proc", "proc", 0, None).unwrap();
        let names = sys::read_dir("/proc").unwrap();
        assert!(names.iter().any(|n| n == "1"), "{names:?}");
        assert!(names.iter().any(|n| n == "self"), "{names:?}");
        sys::umount("/proc", 0).unwrap();
        assert!(sys::read_dir("/proc")
            .unwrap()
            .iter()
            .all(|n| n == "." || n == ".."));

        // lo up where the config has networking (the default does); a
        // config without it (tiny_defconfig) has no sockets at all.
        let config_has_net = testkit::probe::missing("kernel_net").is_none();
        assert_eq!(kernel_has_net(), config_has_net, "networking vs the config");
        if config_has_net {
            let flags = sys::if_set_up("lo", true).unwrap();
            assert_eq!(
                flags & (abi::IFF_UP | abi::IFF_LOOPBACK),
                abi::IFF_UP | abi::IFF_LOOPBACK
            );
        }

        // a second boot is refused
        assert_eq!(
            Kernel::boot(BootOptions::default()).unwrap_err(),
            BootError::AlreadyBooted
        );

        kernel.halt().unwrap();
        assert_eq!(sys::getpid(), Err(Errno::ESHUTDOWN));
        assert_eq!(host_threads(), before, "host threads after halt");
    });
}

/// The CPU mask of host thread `tid` (0: the caller).
fn cpu_mask(tid: i32) -> libc::cpu_set_t {
    // SAFETY: all-zero is an empty set; the kernel fills at most its size.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: a valid set of the size passed.
    let rc = unsafe { libc::sched_getaffinity(tid, std::mem::size_of_val(&set), &mut set) };
    assert_eq!(rc, 0, "sched_getaffinity({tid})");
    set
}

/// Boot keeps its host threads on one CPU (src/host/thread.rs, `BootPin`);
/// once it returns, every thread (the booting one, the kernel's, the
/// worker a disk's activation started during boot) has the booting
/// thread's mask again.
#[test]
fn boot_gives_every_thread_its_cpu_mask_back() {
    in_child("boot_gives_every_thread_its_cpu_mask_back", LIMIT, || {
        let mask = cpu_mask(0);
        // SAFETY: reads a valid set.
        if unsafe { libc::CPU_COUNT(&mask) } < 2 {
            eprintln!("skipped: this process may use one CPU only");
            return;
        }
        let dir = testkit::images::Scratch::new("boot-affinity");
        let image = dir.path("disk.img");
        std::fs::write(&image, vec![0u8; 1 << 20]).unwrap();
        let disk = lkl::disk::Disk::attach(&image, false).unwrap();
        let before = host_threads();
        let (kernel, _c) = boot(32 << 20);
        assert!(host_threads() > before + 5, "kernel and worker threads");
        for entry in std::fs::read_dir("/proc/self/task").unwrap() {
            let tid: i32 = entry
                .unwrap()
                .file_name()
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            let now = cpu_mask(tid);
            // SAFETY: reads two valid sets.
            let same = unsafe { libc::CPU_EQUAL(&now, &mask) };
            assert!(same, "thread {tid}'s CPU mask");
        }
        drop(disk);
        kernel.halt().unwrap();
    });
}

#[test]
fn blocking_write_released_by_reader_thread() {
    in_child("blocking_write_released_by_reader_thread", LIMIT, || {
        let (kernel, _c) = boot(32 << 20);
        let (r, w) = sys::pipe2(0).unwrap();
        let wrote = Arc::new(AtomicUsize::new(0));
        let w2 = wrote.clone();
        // 256 KiB is far more than a pipe holds: the write blocks until read.
        let writer = thread::spawn(move || {
            let data = vec![7u8; 256 << 10];
            let mut off = 0;
            while off < data.len() {
                off += sys::write(w, &data[off..]).unwrap();
            }
            w2.store(off, Ordering::SeqCst);
            sys::close(w).unwrap();
        });
        thread::sleep(Duration::from_millis(100));
        assert_eq!(
            wrote.load(Ordering::SeqCst),
            0,
            "the write should still be blocked"
        );
        let mut total = 0;
        let mut buf = vec![0u8; 16 << 10];
        loop {
            let n = sys::read(r, &mut buf).unwrap();
            if n == 0 {
                break;
            }
            assert!(buf[..n].iter().all(|&b| b == 7));
            total += n;
        }
        writer.join().unwrap();
        assert_eq!(total, 256 << 10);
        assert_eq!(wrote.load(Ordering::SeqCst), 256 << 10);
        kernel.halt().unwrap();
    });
}

#[test]
fn many_short_lived_threads() {
    in_child("many_short_lived_threads", LIMIT, || {
        let before = host_threads();
        let (kernel, _c) = boot(32 << 20);
        let tids: Vec<i32> = (0..64)
            .map(|_| thread::spawn(|| (sys::getpid().unwrap(), sys::gettid().unwrap())))
            .map(|t| t.join().unwrap())
            .map(|(pid, tid)| {
                assert_eq!(pid, 1);
                tid
            })
            .collect();
        // Each live thread had a task of its own (tids of exited tasks may be reused).
        assert!(tids.iter().all(|&t| t > 1), "{tids:?}");
        // 64 at once, all alive together.
        let barrier = Arc::new(std::sync::Barrier::new(64));
        let handles: Vec<_> = (0..64)
            .map(|_| {
                let b = barrier.clone();
                thread::spawn(move || {
                    let tid = sys::gettid().unwrap();
                    b.wait();
                    assert_eq!(sys::getpid(), Ok(1));
                    tid
                })
            })
            .collect();
        let mut tids: Vec<i32> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        tids.sort();
        tids.dedup();
        assert_eq!(tids.len(), 64, "each concurrent thread has its own task");
        kernel.halt().unwrap();
        assert_eq!(host_threads(), before);
    });
}

#[test]
fn sixteen_threads_mixed_syscalls() {
    in_child("sixteen_threads_mixed_syscalls", LIMIT, || {
        let (kernel, _c) = boot(64 << 20);
        let handles: Vec<_> = (0..16)
            .map(|i| {
                thread::spawn(move || {
                    let path = format!("/t{i}");
                    let (r, w) = sys::pipe2(0).unwrap();
                    let mut buf = [0u8; 64];
                    for n in 0..10_000u32 {
                        match n % 5 {
                            0 => assert_eq!(sys::getpid(), Ok(1)),
                            1 => {
                                sys::write(w, &n.to_le_bytes()).unwrap();
                                assert_eq!(sys::read(r, &mut buf), Ok(4));
                                assert_eq!(&buf[..4], &n.to_le_bytes());
                            }
                            2 => {
                                let fd =
                                    sys::open(&path, abi::O_CREAT | abi::O_RDWR, 0o600).unwrap();
                                sys::pwrite(fd, &n.to_le_bytes(), 0).unwrap();
                                sys::close(fd).unwrap();
                            }
                            3 => assert_eq!(sys::stat(&path).unwrap().st_size, 4),
                            _ => {
                                let _ = sys::uname().unwrap();
                            }
                        }
                    }
                    sys::close(r).unwrap();
                    sys::close(w).unwrap();
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        kernel.halt().unwrap();
    });
}

#[test]
fn halt_releases_blocked_threads() {
    in_child("halt_releases_blocked_threads", LIMIT, || {
        let before = host_threads();
        let (kernel, _c) = boot(32 << 20);
        let (r, _w) = sys::pipe2(0).unwrap();
        let blocked = thread::spawn(move || {
            let mut buf = [0u8; 8];
            sys::read(r, &mut buf)
        });
        thread::sleep(Duration::from_millis(50));
        let t0 = Instant::now();
        kernel.halt().unwrap();
        assert_eq!(blocked.join().unwrap(), Err(Errno::ESHUTDOWN));
        assert!(
            t0.elapsed() < Duration::from_secs(1),
            "halt took {:?}",
            t0.elapsed()
        );
        assert_eq!(sys::getpid(), Err(Errno::ESHUTDOWN));
        assert_eq!(host_threads(), before);
    });
}

#[test]
fn calls_before_boot_fail_cleanly() {
    in_child("calls_before_boot_fail_cleanly", LIMIT, || {
        assert_eq!(sys::getpid(), Err(Errno::ENODEV));
        assert!(!Kernel::is_running());
    });
}

#[test]
fn forked_child_sees_the_kernel_gone() {
    in_child("forked_child_sees_the_kernel_gone", LIMIT, || {
        let (kernel, _c) = boot(32 << 20);
        // SAFETY: the child only makes one call and exits with _exit.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let ok = sys::getpid() == Err(Errno::ESHUTDOWN);
            // SAFETY: leaves the forked child without running destructors.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waits for the child forked above.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "child status {status}"
        );
        assert_eq!(sys::getpid(), Ok(1), "the parent's kernel is untouched");
        kernel.halt().unwrap();
    });
}

#[test]
fn syscall_from_kernel_context_is_refused() {
    in_child("syscall_from_kernel_context_is_refused", LIMIT, || {
        use std::sync::Mutex;
        static SEEN: Mutex<Option<Result<i32, Errno>>> = Mutex::new(None);
        let console = lkl::host::Console::Callback(Arc::new(|_bytes: &[u8]| {
            let mut seen = SEEN.lock().unwrap();
            if seen.is_none() {
                *seen = Some(sys::getpid());
            }
        }));
        let kernel = Kernel::boot(BootOptions {
            memory: 32 << 20,
            console,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(*SEEN.lock().unwrap(), Some(Err(Errno(libc::EDEADLK))));
        kernel.halt().unwrap();
    });
}

#[test]
fn blocked_call_is_interrupted() {
    in_child("blocked_call_is_interrupted", LIMIT, || {
        let (kernel, _c) = boot(32 << 20);
        let (r, w) = sys::pipe2(0).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = thread::spawn(move || {
            tx.send(sys::gettid().unwrap()).unwrap();
            let mut buf = [0u8; 8];
            let first = sys::read(r, &mut buf);
            // The interruption is spent: the next call blocks until data comes.
            let second = sys::read(r, &mut buf);
            (first, second)
        });
        let tid = rx.recv().unwrap();
        thread::sleep(Duration::from_millis(50));
        lkl::interrupt(tid).unwrap();
        thread::sleep(Duration::from_millis(50));
        sys::write(w, b"x").unwrap();
        let (first, second) = reader.join().unwrap();
        assert_eq!(first, Err(Errno::EINTR));
        assert_eq!(second, Ok(1));
        // A thread outside the kernel is left alone.
        lkl::interrupt(sys::gettid().unwrap()).unwrap();
        thread::sleep(Duration::from_millis(20));
        assert_eq!(sys::write(w, b"y"), Ok(1));
        assert_eq!(lkl::interrupt(0), Err(Errno::EINVAL));
        kernel.halt().unwrap();
    });
}

#[test]
fn host_signal_interrupts_blocked_call() {
    in_child("host_signal_interrupts_blocked_call", LIMIT, || {
        use std::sync::atomic::AtomicI32;
        static TID: AtomicI32 = AtomicI32::new(0);
        extern "C" fn on_signal(_: libc::c_int) {
            // Async-signal-safe: atomics and lkl::interrupt only.
            let _ = lkl::interrupt(TID.load(Ordering::SeqCst));
        }
        let (kernel, _c) = boot(32 << 20);
        // SAFETY: installs a handler that only calls async-signal-safe code.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut());
        }
        let (r, _w) = sys::pipe2(0).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = thread::spawn(move || {
            TID.store(sys::gettid().unwrap(), Ordering::SeqCst);
            // SAFETY: pthread_self has no preconditions.
            tx.send(unsafe { libc::pthread_self() }).unwrap();
            let mut buf = [0u8; 8];
            sys::read(r, &mut buf)
        });
        let pthread = rx.recv().unwrap();
        thread::sleep(Duration::from_millis(50));
        let t0 = Instant::now();
        // SAFETY: signals a live thread of this process.
        unsafe { libc::pthread_kill(pthread, libc::SIGUSR1) };
        assert_eq!(reader.join().unwrap(), Err(Errno::EINTR));
        println!("signal to EINTR: {:?}", t0.elapsed());
        kernel.halt().unwrap();
    });
}

#[test]
fn no_restart_codes_or_stuck_eintr_after_signals() {
    in_child(
        "no_restart_codes_or_stuck_eintr_after_signals",
        LIMIT,
        || {
            let (kernel, _c) = boot(32 << 20);
            // A kernel-side SIGPIPE handler, as a program that traps SIGPIPE would have.
            let act = [1u64, 0, 0, 0]; // handler address 1 (not SIG_DFL/SIG_IGN), no flags
                                       // SAFETY: a generic-ABI struct sigaction the kernel reads; 8-byte sigset.
            unsafe { sys::raw(sys::nr::RT_SIGACTION, [13, act.as_ptr() as i64, 0, 8, 0, 0]) }
                .unwrap();
            for _ in 0..3 {
                let (r, w) = sys::pipe2(0).unwrap();
                sys::close(r).unwrap();
                // The widowed pipe: EPIPE, and a SIGPIPE queued to this task.
                assert_eq!(sys::write(w, b"x"), Err(Errno::EPIPE));
                sys::close(w).unwrap();
                // Later blocking calls behave normally: no -512/-513/-516, no EINTR.
                let t0 = Instant::now();
                assert_eq!(sys::nanosleep(Duration::from_millis(20)), Ok(()));
                assert!(t0.elapsed() >= Duration::from_millis(18));
            }
            let (r, w) = sys::pipe2(0).unwrap();
            let reader = thread::spawn(move || {
                let mut buf = [0u8; 4];
                sys::read(r, &mut buf)
            });
            thread::sleep(Duration::from_millis(30));
            sys::write(w, b"ok").unwrap();
            assert_eq!(reader.join().unwrap(), Ok(2));
            kernel.halt().unwrap();
        },
    );
}

#[test]
fn exited_threads_release_their_tasks_and_wall_clock_is_host_time() {
    in_child(
        "exited_threads_release_their_tasks_and_wall_clock_is_host_time",
        LIMIT,
        || {
            let (kernel, _c) = boot(32 << 20);
            sys::mkdir("/proc", 0o555).unwrap();
            sys::mount("proc", "/proc", "proc", 0, None).unwrap();
            let tasks = || sys::read_dir("/proc/1/task").unwrap().len();
            let before = tasks();
            let handles: Vec<_> = (0..32)
                .map(|_| thread::spawn(|| sys::gettid().unwrap()))
                .collect();
            for h in handles {
                h.join().unwrap();
            }
            // Host tasks of exited threads are gone (pid 1's group: host0, the
            // factory, its pool).
            let deadline = Instant::now() + Duration::from_secs(5);
            while tasks() > before && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(10));
            }
            assert!(
                tasks() <= before,
                "tasks before {before}, after {}",
                tasks()
            );

            // CLOCK_REALTIME in the kernel is the host's wall clock, to
            // well under a millisecond, and stays so.
            for _ in 0..2 {
                let off = lkl::kernel::wall_clock_offset_ns().unwrap();
                assert!(off.abs() < 1_000_000, "kernel wall clock off by {off} ns");
                println!("wall clock offset {off} ns");
                thread::sleep(Duration::from_millis(500));
            }
            kernel.halt().unwrap();
        },
    );
}

#[test]
fn halt_under_load() {
    in_child("halt_under_load", LIMIT, || {
        let before = host_threads();
        let (kernel, _c) = boot(32 << 20);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut handles = Vec::new();
        // Eight threads blocked in reads, eight making calls in a loop.
        for _ in 0..8 {
            // The write ends stay open (kernel fds are plain numbers).
            let (r, _w) = sys::pipe2(0).unwrap();
            handles.push(thread::spawn(move || {
                let mut buf = [0u8; 4];
                sys::read(r, &mut buf).map(|_| ())
            }));
        }
        for _ in 0..8 {
            let stop = stop.clone();
            handles.push(thread::spawn(move || loop {
                match sys::getpid() {
                    Ok(1) => {}
                    Err(Errno::ESHUTDOWN) => return Ok(()),
                    other => panic!("getpid: {other:?}"),
                }
                if stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
            }));
        }
        thread::sleep(Duration::from_millis(100));
        let t0 = Instant::now();
        kernel.halt().unwrap();
        let took = t0.elapsed();
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            let r = h.join().unwrap();
            assert!(r.is_ok() || r == Err(Errno::ESHUTDOWN), "{r:?}");
        }
        assert!(took < Duration::from_secs(1), "halt took {took:?}");
        assert_eq!(host_threads(), before);
    });
}
