//! Pthread twins: a thread a static program creates (`clone` with
//! `CLONE_VM`) has the program's TLS only, while the hooks need the
//! library's (errno, the kernel call's thread state, the descriptor
//! table's users). Each such thread gets a twin, a pthread of ours, parked
//! on a futex: the thread's calls that go to a hook are handed to its twin
//! (the frame's registers; the thread waits), every other call (futex,
//! mmap, gettid, signal masks, clone: the per-thread ones above all) runs
//! on the thread itself, with no TLS used. So does a call a hook would hand
//! straight to libc (a read, write, send, receive or accept on a host
//! descriptor, a poll of host descriptors only: `route::host_fd_call`),
//! which its signals then interrupt as the host's. A call through the
//! twin costs two futex hand-offs more. A signal to the thread while its
//! twin is inside a kernel call for it ends that call as our handler
//! wrapper would (`on_signal`, the interrupter).

use std::ffi::c_void;
use std::sync::atomic::{AtomicI64, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use super::gate::{self, Block};
use super::route::{host, route_with_errno};
use super::trap::Frame;
use crate::hijack::signals::{interrupt_task, CallState};

const IDLE: u32 = 0;
const REQUEST: u32 = 1;
const DONE: u32 = 2;
const QUIT: u32 = 3;

/// What a request asks.
const ROUTE: usize = 0;
const MAKE_TWIN: usize = 1;

/// One twin's mailbox.
pub struct Twin {
    state: AtomicU32,
    kind: AtomicUsize,
    frame: AtomicPtr<Frame>,
    result: AtomicI64,
    /// The number of the request (one per routed call), so that a late
    /// interrupt never ends a later call.
    seq: AtomicU64,
    /// The twin's kernel-call state (set by the twin when it starts).
    calls: AtomicPtr<CallState>,
}

fn futex(word: &AtomicU32, op: i32, val: u32) {
    host(
        libc::SYS_futex,
        [
            word as *const AtomicU32 as i64,
            i64::from(op | libc::FUTEX_PRIVATE_FLAG),
            i64::from(val),
            0,
            0,
            0,
        ],
    );
}

/// The twin's loop: one request at a time, on its own (armed-free)
/// thread, with the library's TLS.
fn serve(t: &'static Twin) {
    // The program's signals are for its own threads (Go's handlers take a
    // thread of ours for a foreign one).
    block_all();
    // Leaked once per twin (twins are few and live as long as the
    // program's threads).
    let calls: &'static CallState = Box::leak(Box::new(CallState::this_thread()));
    t.calls.store(
        calls as *const CallState as *mut CallState,
        Ordering::Release,
    );
    loop {
        let s = t.state.load(Ordering::Acquire);
        match s {
            REQUEST => {}
            QUIT => {
                // Our thread-locals go with this thread: the interrupter
                // must not be reading them.
                t.calls.store(std::ptr::null_mut(), Ordering::SeqCst);
                while BUSY.load(Ordering::SeqCst) == t as *const Twin as usize {
                    std::thread::yield_now();
                }
                return;
            }
            _ => {
                futex(&t.state, libc::FUTEX_WAIT, s);
                continue;
            }
        }
        let f = t.frame.load(Ordering::Acquire);
        let r = match t.kind.load(Ordering::Acquire) {
            // SAFETY: the requesting thread waits on its frame.
            ROUTE => route_with_errno(unsafe { &mut *f }),
            _ => create() as i64,
        };
        t.result.store(r, Ordering::Release);
        t.state.store(DONE, Ordering::Release);
        futex(&t.state, libc::FUTEX_WAKE, 1);
    }
}

/// A new twin (a pthread of ours, never armed: made from our own code,
/// its `clone` is not trapped). Null if no thread could be made.
pub fn create() -> *mut Twin {
    let t: &'static Twin = Box::leak(Box::new(Twin {
        state: AtomicU32::new(IDLE),
        kind: AtomicUsize::new(ROUTE),
        frame: AtomicPtr::new(std::ptr::null_mut()),
        result: AtomicI64::new(0),
        seq: AtomicU64::new(0),
        calls: AtomicPtr::new(std::ptr::null_mut()),
    }));
    start_interrupter();
    if spawn_quiet("lkl-twin", 1 << 20, move || serve(t)) {
        t as *const Twin as *mut Twin
    } else {
        std::ptr::null_mut()
    }
}

/// Blocks every signal on this thread (one of ours: never unblocked).
fn block_all() {
    // SAFETY: a full set, this thread's mask.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, std::ptr::null_mut());
    }
}

/// Starts a thread of ours that never runs the program's handlers: it
/// inherits a mask with every signal but SIGSYS blocked (the creator's,
/// set around the spawn; a trap while SIGSYS is blocked would kill the
/// process) and blocks the rest itself. False if no thread could be made.
fn spawn_quiet(name: &str, stack: usize, f: impl FnOnce() + Send + 'static) -> bool {
    // SAFETY: plain sigset_t values and this thread's mask, restored below.
    let old = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigdelset(&mut all, libc::SIGSYS);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
        old
    };
    let made = std::thread::Builder::new()
        .name(name.into())
        .stack_size(stack)
        .spawn(f)
        .is_ok();
    // SAFETY: the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    made
}

/// Hands `kind` (with frame `f`) to twin `t` and waits for its answer.
/// Uses no TLS.
fn ask(t: *mut Twin, kind: usize, f: *mut Frame) -> i64 {
    // SAFETY: a twin lives as long as its thread.
    let t = unsafe { &*t };
    t.frame.store(f, Ordering::Release);
    t.kind.store(kind, Ordering::Release);
    t.seq.fetch_add(1, Ordering::AcqRel);
    t.state.store(REQUEST, Ordering::Release);
    futex(&t.state, libc::FUTEX_WAKE, 1);
    loop {
        let s = t.state.load(Ordering::Acquire);
        if s == DONE {
            break;
        }
        futex(&t.state, libc::FUTEX_WAIT, s);
    }
    let r = t.result.load(Ordering::Acquire);
    t.state.store(IDLE, Ordering::Release);
    r
}

/// The call in `f`, on a thread with a twin: a hook's call through the
/// twin, the rest here (no TLS).
pub fn route(f: &mut Frame) -> i64 {
    let nr = f.rax as i64;
    // SAFETY: the thread's live block.
    let t = unsafe { (*f.block).twin } as *mut Twin;
    if super::route::needs_tls(nr, f.rdi as i64) {
        if let Some(r) = super::route::host_fd_call(nr, super::route::args(f)) {
            return r;
        }
        return ask(t, ROUTE, f);
    }
    super::route::route_without_tls(f)
}

/// A twin for a new thread of the program, made by the calling thread (if
/// it has the library's TLS) or its twin. Null if none could be made.
pub fn for_new_thread(f: &mut Frame) -> *mut Twin {
    // SAFETY: the thread's live block.
    let mine = unsafe { (*f.block).twin } as *mut Twin;
    if mine.is_null() {
        create()
    } else {
        ask(mine, MAKE_TWIN, f) as usize as *mut Twin
    }
}

/// The exiting thread's twin ends (from the SIGSYS handler: atomics and
/// a raw futex wake only).
pub fn quit(t: *mut c_void) {
    if t.is_null() {
        return;
    }
    // SAFETY: a twin lives until told to quit.
    let t = unsafe { &*(t as *const Twin) };
    t.state.store(QUIT, Ordering::Release);
    gate::exempt(
        libc::SYS_futex,
        [
            &t.state as *const AtomicU32 as i64,
            i64::from(libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG),
            1,
            0,
            0,
            0,
        ],
    );
}

/// The main thread's library TLS (`%fs`), for a fork child of a thread
/// with a twin: the twin did not come along (fork copies one thread), so
/// the child runs our code on the copy of the main thread's TLS, as the
/// only thread of its process.
pub static MAIN_FS: AtomicUsize = AtomicUsize::new(0);

/// In a fork child, before it runs the program (the program's TLS:
/// plain memory only).
///
/// # Safety
/// `b` is the child's (copied) block.
pub unsafe fn after_fork(b: *mut Block) {
    // SAFETY: the caller's block.
    unsafe {
        if !(*b).twin.is_null() {
            (*b).twin = std::ptr::null_mut();
            (*b).host_fs = MAIN_FS.load(Ordering::Relaxed);
            (*b).swap_fs = 1;
        }
    }
}

/// A signal reached a thread whose hooked calls twin `t` makes (the
/// thread's signal handler, `loader.rs`'s shim): if the twin is inside a
/// kernel call for it, that call is marked interrupted (`restart`: the
/// handler's SA_RESTART) and the interrupter is asked to end it, as our
/// handler wrapper ends its own thread's call (signals.rs). The thread
/// has no TLS of ours, and ending a kernel call needs it (the kernel's
/// CPU lock knows its owner by `pthread_self`), hence the interrupter, a
/// pthread of ours. Async-signal-safe: atomics and a raw futex wake.
pub fn on_signal(t: *mut std::ffi::c_void, restart: bool) {
    if t.is_null() {
        return;
    }
    // SAFETY: a twin lives as long as its thread (the caller).
    let t = unsafe { &*(t as *const Twin) };
    if t.state.load(Ordering::Acquire) != REQUEST || t.kind.load(Ordering::Acquire) != ROUTE {
        return;
    }
    let calls = t.calls.load(Ordering::Acquire);
    // SAFETY: set once by the twin, leaked.
    if calls.is_null() || !unsafe { &*calls }.mark_interrupted(restart) {
        return;
    }
    let seq = t.seq.load(Ordering::Acquire);
    for slot in &PENDING {
        if slot
            .twin
            .compare_exchange(
                0,
                t as *const Twin as usize,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
        {
            slot.seq.store(seq, Ordering::Release);
            slot.ready.store(1, Ordering::Release);
            WAKE.fetch_add(1, Ordering::AcqRel);
            gate::exempt(
                libc::SYS_futex,
                [
                    &WAKE as *const AtomicU32 as i64,
                    i64::from(libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG),
                    1,
                    0,
                    0,
                    0,
                ],
            );
            return;
        }
    }
    // All slots busy (64 signals in flight): the call is not ended, as
    // when a host signal arrives just before a call blocks.
}

/// An interrupt asked for by `on_signal`.
struct Pending {
    twin: AtomicUsize,
    seq: AtomicU64,
    ready: AtomicU32,
}

static PENDING: [Pending; 64] = [const {
    Pending {
        twin: AtomicUsize::new(0),
        seq: AtomicU64::new(0),
        ready: AtomicU32::new(0),
    }
}; 64];

/// Bumped for each interrupt asked for; the interrupter waits on it.
static WAKE: AtomicU32 = AtomicU32::new(0);
/// The twin the interrupter is looking at (its thread-locals).
static BUSY: AtomicUsize = AtomicUsize::new(0);
static INTERRUPTER: std::sync::Once = std::sync::Once::new();

/// The interrupter: a pthread of ours (the library's TLS) that ends twins'
/// kernel calls for their threads' signals. Started with the first twin.
fn start_interrupter() {
    INTERRUPTER.call_once(|| {
        spawn_quiet("lkl-interrupt", 256 << 10, interrupter);
    });
}

fn interrupter() {
    block_all();
    loop {
        let w = WAKE.load(Ordering::Acquire);
        for slot in &PENDING {
            if slot.ready.load(Ordering::Acquire) == 0 {
                continue;
            }
            let t = slot.twin.load(Ordering::Acquire) as *const Twin;
            let seq = slot.seq.load(Ordering::Acquire);
            slot.ready.store(0, Ordering::Release);
            slot.twin.store(0, Ordering::Release);
            // SAFETY: a twin of a thread that was signalled; mailboxes are
            // never freed (leaked).
            let t = unsafe { &*t };
            BUSY.store(t as *const Twin as usize, Ordering::SeqCst);
            let calls = t.calls.load(Ordering::SeqCst);
            // Still the call the signal found (not a later one).
            if !calls.is_null()
                && t.seq.load(Ordering::Acquire) == seq
                && t.state.load(Ordering::Acquire) == REQUEST
            {
                // SAFETY: the twin's state: it waits for BUSY to change
                // before it ends.
                interrupt_task(unsafe { &*calls }.ktid_in_call());
            }
            BUSY.store(0, Ordering::SeqCst);
        }
        futex(&WAKE, libc::FUTEX_WAIT, w);
    }
}
