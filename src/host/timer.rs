//! Clocks and one-shot timers. All timers share one host thread (not a
//! thread per expiry): it sleeps until the earliest deadline and runs that
//! timer's function, which raises the kernel's timer IRQ and may run kernel
//! code, so the thread has a kernel-sized stack and blocks every signal.
//!
//! Arming a timer wakes the thread only if the new deadline is earlier than
//! the one it sleeps toward: the kernel reprograms its clockevent at every
//! idle entry and exit (NO_HZ), mostly to later deadlines, and a wake-up
//! per reprogramming cost two futex round trips and lock contention on the
//! CPU's thread at each network round trip. A thread that sleeps past a
//! deadline that moved later wakes once at the old one and sleeps again.

use std::ffi::{c_int, c_ulonglong, c_void};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle, ThreadId};
use std::time::Duration;

use crate::sys::Timer;

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; these clocks always exist.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

/// Host monotonic time in ns (the kernel's clocksource).
pub extern "C" fn monotonic_ns() -> c_ulonglong {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// Host wall-clock time in ns since the Unix epoch.
pub extern "C" fn realtime_ns() -> c_ulonglong {
    clock_ns(libc::CLOCK_REALTIME)
}

const DISARMED: u64 = u64::MAX;

struct Entry {
    id: usize,
    f: unsafe extern "C" fn(*mut c_void),
    arg: *mut c_void,
    deadline: u64,
}

#[derive(Default)]
struct Wheel {
    entries: Vec<Entry>,
    next_id: usize,
    firing: Option<usize>,
    stop: bool,
    thread: Option<JoinHandle<()>>,
    thread_id: Option<ThreadId>,
    /// The deadline the thread sleeps toward (`DISARMED`: none), or `None`
    /// while it is awake (it looks at the entries before it sleeps again).
    sleeping_until: Option<u64>,
}

// SAFETY: `arg` is an opaque kernel pointer that is only handed back to the
// kernel's own function; the kernel allows that from any thread.
unsafe impl Send for Wheel {}

static WHEEL: Mutex<Wheel> = Mutex::new(Wheel {
    entries: Vec::new(),
    next_id: 1,
    firing: None,
    stop: false,
    thread: None,
    thread_id: None,
    sleeping_until: None,
});
static CHANGED: Condvar = Condvar::new();

fn lock() -> MutexGuard<'static, Wheel> {
    WHEEL.lock().unwrap_or_else(|e| e.into_inner())
}

fn run() {
    let mut w = lock();
    while !w.stop {
        let now = monotonic_ns();
        let next = w
            .entries
            .iter_mut()
            .filter(|e| e.deadline != DISARMED)
            .min_by_key(|e| e.deadline);
        match next {
            None => {
                w.sleeping_until = Some(DISARMED);
                w = CHANGED.wait(w).unwrap_or_else(|e| e.into_inner());
                w.sleeping_until = None;
            }
            Some(e) if e.deadline <= now => {
                e.deadline = DISARMED;
                let (id, f, arg) = (e.id, e.f, e.arg);
                w.firing = Some(id);
                drop(w);
                // SAFETY: the kernel registered `f` for `arg`; timer_free
                // waits for this call to finish before forgetting them.
                unsafe { f(arg) };
                w = lock();
                w.firing = None;
                CHANGED.notify_all();
            }
            Some(e) => {
                let wait = Duration::from_nanos(e.deadline - now);
                w.sleeping_until = Some(e.deadline);
                w = CHANGED
                    .wait_timeout(w, wait)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
                w.sleeping_until = None;
            }
        }
    }
}

fn spawn_timer_thread() -> std::io::Result<JoinHandle<()>> {
    let mut all = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    let mut old = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: local sigsets; the new thread inherits the full mask and the
    // caller's mask is restored right after.
    unsafe {
        libc::sigfillset(all.as_mut_ptr());
        libc::pthread_sigmask(libc::SIG_SETMASK, all.as_ptr(), old.as_mut_ptr());
    }
    let handle = thread::Builder::new()
        .name("lkl-timer".into())
        .stack_size(super::thread::KERNEL_STACK_SIZE)
        .spawn(run);
    // SAFETY: restores the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, old.as_ptr(), std::ptr::null_mut()) };
    handle
}

/// Number of live host timer threads (0 or 1), for tests.
pub fn host_timer_threads() -> usize {
    usize::from(lock().thread.is_some())
}

pub(super) unsafe extern "C" fn timer_alloc(
    f: unsafe extern "C" fn(*mut c_void),
    arg: *mut c_void,
) -> *mut Timer {
    let mut w = lock();
    if w.thread.is_none() {
        w.stop = false;
        match spawn_timer_thread() {
            Ok(h) => {
                w.thread_id = Some(h.thread().id());
                w.thread = Some(h);
            }
            Err(_) => return std::ptr::null_mut(),
        }
    }
    let id = w.next_id;
    w.next_id += 1;
    w.entries.push(Entry {
        id,
        f,
        arg,
        deadline: DISARMED,
    });
    id as *mut Timer
}

/// Arms the timer `delta_ns` from now; `u64::MAX` disarms it.
pub(super) unsafe extern "C" fn timer_set_oneshot(t: *mut Timer, delta_ns: c_ulonglong) -> c_int {
    let id = t as usize;
    let mut w = lock();
    let Some(e) = w.entries.iter_mut().find(|e| e.id == id) else {
        return -libc::EINVAL;
    };
    let deadline = if delta_ns == DISARMED {
        DISARMED
    } else {
        monotonic_ns().saturating_add(delta_ns).min(DISARMED - 1)
    };
    e.deadline = deadline;
    // An awake thread looks at every entry before it sleeps (under this
    // lock); a sleeping one needs waking only to wake up earlier.
    if w.sleeping_until.is_some_and(|until| deadline < until) {
        CHANGED.notify_all();
    }
    0
}

pub(super) unsafe extern "C" fn timer_free(t: *mut Timer) {
    let id = t as usize;
    let mut w = lock();
    w.entries.retain(|e| e.id != id);
    let on_timer_thread = w.thread_id == Some(thread::current().id());
    while w.firing == Some(id) && !on_timer_thread {
        w = CHANGED.wait(w).unwrap_or_else(|e| e.into_inner());
    }
    if w.entries.is_empty() && !on_timer_thread {
        w.stop = true;
        let handle = w.thread.take();
        w.thread_id = None;
        CHANGED.notify_all();
        drop(w);
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}
