//! A counting semaphore on a futex: the kernel's scheduling primitive (the
//! CPU lock, each task's wait point, idle). `down` never returns early.

use std::ffi::c_int;
use std::ptr;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::sys::Sem;

/// Counting semaphore. `up` wakes one waiter; `down` blocks while the count
/// is zero.
#[derive(Debug)]
pub struct Semaphore {
    count: AtomicU32,
    waiters: AtomicU32,
}

impl Semaphore {
    pub const fn new(count: u32) -> Self {
        Semaphore {
            count: AtomicU32::new(count),
            waiters: AtomicU32::new(0),
        }
    }

    /// Takes one unit if there is one, without blocking.
    pub fn try_down(&self) -> bool {
        let mut c = self.count.load(Ordering::Relaxed);
        while c > 0 {
            match self
                .count
                .compare_exchange_weak(c, c - 1, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(now) => c = now,
            }
        }
        false
    }

    /// Takes one unit, waiting for it as long as it takes.
    pub fn down(&self) {
        if self.try_down() {
            return;
        }
        // Most hand-offs complete within a few microseconds on another core:
        // a short spin saves a futex sleep and wake-up.
        let spin: u32 = spin_limit();
        for _ in 0..spin {
            std::hint::spin_loop();
            if self.count.load(Ordering::Relaxed) > 0 && self.try_down() {
                return;
            }
        }
        loop {
            if self.try_down() {
                return;
            }
            // Announce the wait before sleeping: `up` reads `waiters` after
            // raising the count, and FUTEX_WAIT rechecks the count, so a
            // wake-up cannot fall between the check and the sleep.
            self.waiters.fetch_add(1, Ordering::SeqCst);
            if self.count.load(Ordering::SeqCst) == 0 {
                futex_wait(&self.count, 0);
            }
            self.waiters.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Adds one unit and wakes a waiter if there is one.
    pub fn up(&self) {
        self.count.fetch_add(1, Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) != 0 {
            futex_wake(&self.count, 1);
        }
    }
}

fn spin_limit() -> u32 {
    use std::sync::OnceLock;
    static LIMIT: OnceLock<u32> = OnceLock::new();
    *LIMIT.get_or_init(|| {
        std::env::var("LKL_SPIN")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    })
}

fn futex_wait(word: &AtomicU32, expected: u32) {
    // SAFETY: FUTEX_WAIT_PRIVATE reads the u32 behind a valid reference and
    // sleeps only while it still equals `expected`; no timeout pointer.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            ptr::null::<libc::timespec>(),
        );
    }
}

fn futex_wake(word: &AtomicU32, n: i32) {
    // SAFETY: FUTEX_WAKE_PRIVATE only uses the address as a key.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            n,
        );
    }
}

pub(super) unsafe extern "C" fn sem_alloc(count: c_int) -> *mut Sem {
    Box::into_raw(Box::new(Semaphore::new(count.max(0) as u32))).cast()
}

/// # Safety
/// `sem` comes from `sem_alloc` and is not used again.
pub(super) unsafe extern "C" fn sem_free(sem: *mut Sem) {
    if !sem.is_null() {
        // SAFETY: the kernel frees each semaphore once, after its last use.
        drop(unsafe { Box::from_raw(sem.cast::<Semaphore>()) });
    }
}

/// # Safety
/// `sem` comes from `sem_alloc` and is still allocated.
pub(super) unsafe extern "C" fn sem_up(sem: *mut Sem) {
    // SAFETY: see the function's contract.
    unsafe { &*sem.cast::<Semaphore>() }.up();
}

/// # Safety
/// `sem` comes from `sem_alloc` and is still allocated.
pub(super) unsafe extern "C" fn sem_down(sem: *mut Sem) {
    // SAFETY: see the function's contract.
    unsafe { &*sem.cast::<Semaphore>() }.down();
}

/// # Safety
/// `sem` comes from `sem_alloc` and is still allocated.
pub(super) unsafe extern "C" fn sem_trydown(sem: *mut Sem) -> c_int {
    // SAFETY: see the function's contract.
    c_int::from(unsafe { &*sem.cast::<Semaphore>() }.try_down())
}
