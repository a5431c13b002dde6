//! Host signals and kernel calls. A host signal interrupts a blocked host
//! call; a thread blocked in a kernel call sleeps on a host semaphore
//! instead, which the signal would not end. So the program's handlers are
//! wrapped: `sigaction`/`signal` install ours, which runs the program's
//! handler and, if its thread is inside a kernel call, makes that call
//! return (`lkl::interrupt`). The call then returns EINTR, or is issued
//! again when the handler has SA_RESTART and man 7 signal says the host
//! would restart it (never poll/select/epoll, nor a socket call with a
//! timeout set).
//!
//! Also here: SIGPIPE. A write to a kernel socket whose peer has gone
//! raises SIGPIPE in the program, as the host kernel would, unless
//! MSG_NOSIGNAL. And the jumps out of handlers (`siglongjmp` and its kin),
//! which leave the thread's handlers (`jump_hook!`).
//!
//! The handler allocates nothing and calls only async-signal-safe code:
//! thread-local atomics, `lkl::interrupt`, and libc's `sigaction` to
//! read the current flags. What the program's handler may call in turn,
//! and what it gets, is in docs/hijack-signals.md: a kernel call from a
//! handler that interrupted a kernel call of the same thread fails with
//! EDEADLK (that thread's kernel task is inside the interrupted call), and
//! `close` of a kernel descriptor from a handler is finished later
//! (`fdtable::close_later`).

use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicUsize, Ordering};

use lkl::syscall::{nr, raw, Errno};

use crate::hijack::fdtable;
use crate::hijack::host::{errno, fail, libc_fn, set_errno};
use crate::hijack::lifecycle::park_if_exiting;
use crate::hijack::tier::gate::{allowed, sigsys_glibc_action};

const NSIG: usize = 65;

/// The program's handler for each signal (0: none of ours installed).
static HANDLERS: [AtomicUsize; NSIG] = [const { AtomicUsize::new(0) }; NSIG];
/// Its sa_flags as the program gave them.
static FLAGS: [AtomicI32; NSIG] = [const { AtomicI32::new(0) }; NSIG];

thread_local! {
    /// This thread's kernel task id (0: not asked yet).
    static KTID: AtomicI32 = const { AtomicI32::new(0) };
    /// True while this thread is inside a kernel call.
    static IN_CALL: AtomicBool = const { AtomicBool::new(false) };
    /// Set by our handler when it interrupted this thread's call.
    static INTERRUPTED: AtomicBool = const { AtomicBool::new(false) };
    /// Whether that handler asked for SA_RESTART.
    static RESTART: AtomicBool = const { AtomicBool::new(false) };
    /// How many of the program's handlers this thread is running (ours
    /// called them; a jump out of one sets it to 0, see `jump_hook!`).
    static IN_HANDLER: AtomicU32 = const { AtomicU32::new(0) };
}

/// True while this thread runs one of the program's signal handlers.
#[inline]
pub fn in_handler() -> bool {
    IN_HANDLER.with(|h| h.load(Ordering::Acquire)) != 0
}

/// True while this thread is inside a kernel call of ours (seen from a
/// signal handler: the handler interrupted it).
#[inline]
pub fn in_kernel_call() -> bool {
    IN_CALL.with(|c| c.load(Ordering::Acquire))
}

type SigactionFn =
    unsafe extern "C" fn(c_int, *const libc::sigaction, *mut libc::sigaction) -> c_int;

/// glibc's sigaction, found before any handler can run: the constructor
/// looks it up (`host::look_up_all`), and the `sigaction` hook asks for it
/// before it installs our handler; this one call site keeps the address
/// for all (the handler must not call dlsym).
fn libc_sigaction() -> Option<SigactionFn> {
    libc_fn!(
        sigaction,
        fn(c_int, *const libc::sigaction, *mut libc::sigaction) -> c_int
    )
}

/// Our handler: interrupt this thread's kernel call, then run the
/// program's handler.
extern "C" fn wrapper(sig: c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    let Some(idx) = usize::try_from(sig).ok().filter(|&i| i < NSIG) else {
        return;
    };
    // This thread's errno, saved and restored around our part.
    let saved = errno();
    // The system-call tier: a process-wide signal taken by a thread that
    // trapped goes where the host would have delivered it.
    if crate::hijack::tier::gate::redirect_to_main(sig, info) {
        set_errno(saved);
        return;
    }
    if IN_CALL.with(|c| c.load(Ordering::Acquire)) {
        let mut cur: libc::sigaction = zeroed_sigaction();
        let restart = match libc_sigaction() {
            // SAFETY: reads the current action (async-signal-safe); the
            // flags may have been changed by glibc's siginterrupt, which
            // calls its internal sigaction, so ask now.
            Some(f) if allowed(|| unsafe { f(sig, std::ptr::null(), &mut cur) }) == 0 => {
                cur.sa_flags & libc::SA_RESTART != 0
            }
            _ => FLAGS[idx].load(Ordering::Relaxed) & libc::SA_RESTART != 0,
        };
        interrupt_own_call(restart);
    }
    set_errno(saved);
    let h = HANDLERS[idx].load(Ordering::Acquire);
    let flags = FLAGS[idx].load(Ordering::Acquire);
    if flags & libc::SA_RESETHAND as c_int != 0 {
        HANDLERS[idx].store(0, Ordering::Release);
    }
    if h == 0 || h == libc::SIG_DFL || h == libc::SIG_IGN {
        return;
    }
    IN_HANDLER.with(|d| d.fetch_add(1, Ordering::AcqRel));
    if flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the program installed this as an sa_sigaction handler.
        let f: extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void) =
            unsafe { std::mem::transmute(h) };
        f(sig, info, ctx);
    } else {
        // SAFETY: the program installed this as an sa_handler.
        let f: extern "C" fn(c_int) = unsafe { std::mem::transmute(h) };
        f(sig);
    }
    IN_HANDLER.with(|d| d.fetch_sub(1, Ordering::AcqRel));
}

/// From a signal handler on a thread with the library's TLS: if the
/// thread is inside a kernel call, the call is ended (EINTR, or issued
/// again when `restart` and man 7 signal say so). Async-signal-safe.
pub fn interrupt_own_call(restart: bool) {
    if !IN_CALL.with(|c| c.load(Ordering::Acquire)) {
        return;
    }
    RESTART.with(|r| r.store(restart, Ordering::Release));
    INTERRUPTED.with(|i| i.store(true, Ordering::Release));
    interrupt_task(KTID.with(|t| t.load(Ordering::Acquire)));
}

/// Ends kernel task `tid`'s call (the kernel in the process, or the tree's
/// server). Async-signal-safe; errno kept.
pub fn interrupt_task(tid: i32) {
    if tid <= 0 {
        return;
    }
    let saved = errno();
    if crate::hijack::tree::client() {
        crate::hijack::tree::interrupt(tid);
    } else {
        let _ = lkl::interrupt(tid);
    }
    set_errno(saved);
}

/// A thread's kernel-call state, seen from another thread: a static
/// program's thread, whose hooked calls its twin makes (tier/twin.rs),
/// ends the twin's call through it when a signal reaches the thread. The
/// pointers are the twin's thread-locals, valid while the twin lives.
pub struct CallState {
    in_call: *const AtomicBool,
    interrupted: *const AtomicBool,
    restart: *const AtomicBool,
    ktid: *const AtomicI32,
}

impl CallState {
    /// The calling thread's.
    pub fn this_thread() -> CallState {
        CallState {
            in_call: IN_CALL.with(|c| c as *const AtomicBool),
            interrupted: INTERRUPTED.with(|c| c as *const AtomicBool),
            restart: RESTART.with(|c| c as *const AtomicBool),
            ktid: KTID.with(|c| c as *const AtomicI32),
        }
    }

    /// From a signal handler on another thread: if the owner is inside a
    /// kernel call, marks it interrupted (with `restart`, as our wrapper
    /// does) and returns true; the caller then has the call ended
    /// (`interrupt_task` with `ktid`, from a thread of ours). Atomics only.
    pub fn mark_interrupted(&self, restart: bool) -> bool {
        // SAFETY: the owner's thread-locals; it lives while its program
        // thread (the caller's) does.
        unsafe {
            if !(*self.in_call).load(Ordering::Acquire) {
                return false;
            }
            (*self.restart).store(restart, Ordering::Release);
            (*self.interrupted).store(true, Ordering::Release);
        }
        true
    }

    /// The owner's kernel task id if it is inside a kernel call (else 0).
    pub fn ktid_in_call(&self) -> i32 {
        // SAFETY: as above.
        unsafe {
            if (*self.in_call).load(Ordering::Acquire) {
                (*self.ktid).load(Ordering::Acquire)
            } else {
                0
            }
        }
    }
}

/// A jump out of a signal handler (`siglongjmp` from it to a `sigsetjmp`
/// outside, the alarm timeout idiom) never comes back to our wrapper, so
/// the thread would count as inside a handler for good: every close of a
/// kernel descriptor it made would only be left for later, and none of its
/// kernel calls would finish those (a single-threaded program's sockets
/// would never close). So the jumps are hooked: a jump made inside a
/// handler is taken to leave all of them. (A jump to a `setjmp` inside the
/// same handler, rare, then counts as outside one: a close from the rest
/// of that handler takes the full path.) Glibc's own jumps (thread
/// cancellation) do not come through here.
macro_rules! jump_hook {
    ($name:ident) => {
        /// # Safety
        /// libc's contract for this jump: `env` was filled by a `setjmp`
        /// whose caller has not returned.
        #[no_mangle]
        pub unsafe extern "C" fn $name(env: *mut c_void, val: c_int) -> ! {
            IN_HANDLER.with(|h| h.store(0, Ordering::Release));
            if crate::hijack::tree::client() {
                // In a tree the call this thread may have left runs in the
                // server, which the handler already asked to interrupt;
                // its late answer is told apart (tree/channel.rs) and the
                // thread may call again.
                IN_CALL.with(|c| c.store(false, Ordering::Release));
            }
            if let Some(f) = libc_fn!($name, fn(*mut c_void, c_int) -> ()) {
                // SAFETY: libc's jump with the program's arguments; it
                // does not return.
                unsafe { f(env, val) };
            }
            // SAFETY: no libc jump to make: nothing sensible is left.
            unsafe { libc::abort() }
        }
    };
}

jump_hook!(siglongjmp);
jump_hook!(longjmp);
jump_hook!(_longjmp);
jump_hook!(__longjmp_chk);

fn zeroed_sigaction() -> libc::sigaction {
    // SAFETY: struct sigaction is plain data; all-zero is valid.
    unsafe { std::mem::zeroed() }
}

/// Whether man 7 signal restarts `nr` after a SA_RESTART handler.
fn restartable(nr: i64, args: &[i64; 6]) -> bool {
    let recv_side = match nr {
        nr::READ | nr::READV | nr::RECVFROM | nr::RECVMSG | nr::ACCEPT4 => true,
        nr::WRITE | nr::WRITEV | nr::SENDTO | nr::SENDMSG | nr::CONNECT => false,
        _ => return false,
    };
    // A socket with a receive (send) timeout returns EINTR instead.
    let opt = if recv_side {
        libc::SO_RCVTIMEO
    } else {
        libc::SO_SNDTIMEO
    };
    let mut tv = [0i64; 2];
    let mut len: u32 = 16;
    // SAFETY: a 16-byte timeval and its length for the kernel to fill.
    let r = unsafe {
        raw(
            nr::GETSOCKOPT,
            [
                args[0],
                libc::SOL_SOCKET.into(),
                opt.into(),
                tv.as_mut_ptr() as i64,
                &mut len as *mut u32 as i64,
                0,
            ],
        )
    };
    match r {
        Ok(_) => tv == [0, 0],
        Err(Errno::ENOTSOCK) => true,
        Err(_) => false,
    }
}

/// This thread's kernel task id.
fn ktid() -> i32 {
    let t = KTID.with(|t| t.load(Ordering::Relaxed));
    if t != 0 {
        return t;
    }
    // SAFETY: no arguments.
    let t = unsafe { raw(nr::GETTID, [0; 6]) }.map_or(-1, |t| t as i32);
    KTID.with(|k| k.store(t, Ordering::Release));
    t
}

/// One kernel call, interruptible by the program's signal handlers, and
/// raising SIGPIPE as the host would.
pub fn call(nr: i64, args: [i64; 6]) -> Result<i64, Errno> {
    if in_kernel_call() {
        // A signal handler's call while this thread's kernel task is inside
        // the call the signal interrupted: entering the kernel with that
        // task again would run it twice at once. The kernel says EDEADLK
        // itself when this thread holds its CPU; say it in every case.
        return Err(Errno(libc::EDEADLK));
    }
    park_if_exiting();
    let outside_handler = !in_handler();
    if outside_handler {
        // Closes a handler left for later (fdtable::close_later).
        fdtable::finish_closes();
    }
    ktid();
    loop {
        INTERRUPTED.with(|i| i.store(false, Ordering::Release));
        IN_CALL.with(|c| c.store(true, Ordering::Release));
        // SAFETY: the caller's arguments for this call. (`allowed`: the
        // kernel's host calls are not trapped by the system-call tier.)
        let r = allowed(|| unsafe { raw(nr, args) });
        IN_CALL.with(|c| c.store(false, Ordering::Release));
        if outside_handler {
            // A handler that interrupted this call may have closed some.
            fdtable::finish_closes();
        }
        // A call ended by the exit path (its descriptor closed, the kernel
        // halted) does not return to the program.
        park_if_exiting();
        if r == Err(Errno::EINTR)
            && INTERRUPTED.with(|i| i.load(Ordering::Acquire))
            && RESTART.with(|r| r.load(Ordering::Acquire))
            && restartable(nr, &args)
        {
            continue;
        }
        if r == Err(Errno::EPIPE) {
            let flags = match nr {
                nr::WRITE | nr::WRITEV => Some(0),
                nr::SENDTO => Some(args[3]),
                nr::SENDMSG => Some(args[2]),
                _ => None,
            };
            if flags.is_some_and(|f| f & i64::from(libc::MSG_NOSIGNAL) == 0) {
                // SAFETY: signals this thread, as the kernel does for EPIPE.
                unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGPIPE) };
            }
        }
        return r;
    }
}

fn is_handler(h: usize) -> bool {
    h != libc::SIG_DFL && h != libc::SIG_IGN && h != libc::SIG_ERR
}

/// # Safety
/// libc's contract for `sigaction`.
#[no_mangle]
pub unsafe extern "C" fn sigaction(
    sig: c_int,
    act: *const libc::sigaction,
    old: *mut libc::sigaction,
) -> c_int {
    let Some(f) = libc_sigaction() else {
        return fail(libc::ENOSYS);
    };
    // The system-call tier holds SIGSYS: the program's action is recorded.
    if sig == libc::SIGSYS {
        // SAFETY: the program's structs, as sigaction takes them.
        if let Some(r) = unsafe { sigsys_glibc_action(act, old) } {
            return r;
        }
    }
    let Some(idx) = usize::try_from(sig).ok().filter(|&i| i > 0 && i < NSIG) else {
        // SAFETY: libc's sigaction reports the bad signal number.
        return unsafe { f(sig, act, old) };
    };
    let prev_h = HANDLERS[idx].load(Ordering::Acquire);
    let prev_f = FLAGS[idx].load(Ordering::Acquire);
    let mut mine = zeroed_sigaction();
    let act_to_pass = if act.is_null() {
        act
    } else {
        // SAFETY: the program's struct sigaction.
        let a = unsafe { &*act };
        if is_handler(a.sa_sigaction) && sig != libc::SIGKILL && sig != libc::SIGSTOP {
            mine = *a;
            mine.sa_sigaction = wrapper as *const () as usize;
            mine.sa_flags |= libc::SA_SIGINFO;
            crate::hijack::tier::gate::unmask_sigsys(&mut mine.sa_mask);
            &mine as *const libc::sigaction
        } else {
            act
        }
    };
    // SAFETY: libc's sigaction with a valid (or null) action and the
    // program's old-action pointer. SIGSEGV and SIGBUS: the handler of the
    // kernel's fault-safe copies stays installed and chains to this one.
    let r = allowed(|| unsafe {
        if lkl::host::uaccess::is_fault_signal(sig) {
            lkl::host::uaccess::sigaction_behind(sig, act_to_pass, old)
        } else {
            f(sig, act_to_pass, old)
        }
    });
    if r != 0 {
        return r;
    }
    if !act.is_null() {
        // SAFETY: the program's struct sigaction, read again.
        let a = unsafe { &*act };
        if std::ptr::eq(act_to_pass, &mine) {
            FLAGS[idx].store(a.sa_flags, Ordering::Release);
            HANDLERS[idx].store(a.sa_sigaction, Ordering::Release);
        } else {
            HANDLERS[idx].store(0, Ordering::Release);
        }
    }
    if !old.is_null() {
        // SAFETY: the old action libc's sigaction just wrote.
        let o = unsafe { &mut *old };
        if o.sa_sigaction == wrapper as *const () as usize {
            // Show the program its own handler, not ours.
            o.sa_sigaction = if prev_h == 0 { libc::SIG_DFL } else { prev_h };
            o.sa_flags = (o.sa_flags & !libc::SA_SIGINFO) | (prev_f & libc::SA_SIGINFO);
        }
    }
    0
}

/// `signal` with the given flags (BSD semantics: SA_RESTART).
fn set_handler(sig: c_int, handler: usize, flags: c_int) -> usize {
    let mut act = zeroed_sigaction();
    act.sa_sigaction = handler;
    act.sa_flags = flags;
    // SAFETY: an empty mask in our own struct.
    unsafe { libc::sigemptyset(&mut act.sa_mask) };
    let mut old = zeroed_sigaction();
    // SAFETY: our own structs.
    if unsafe { sigaction(sig, &act, &mut old) } != 0 {
        return libc::SIG_ERR;
    }
    old.sa_sigaction
}

/// # Safety
/// libc's contract for `signal` (glibc's BSD semantics).
#[no_mangle]
pub unsafe extern "C" fn signal(sig: c_int, handler: usize) -> usize {
    set_handler(sig, handler, libc::SA_RESTART)
}

/// # Safety
/// libc's contract for `bsd_signal`.
#[no_mangle]
pub unsafe extern "C" fn bsd_signal(sig: c_int, handler: usize) -> usize {
    set_handler(sig, handler, libc::SA_RESTART)
}

/// # Safety
/// libc's contract for `sysv_signal` (one-shot, no restart).
#[no_mangle]
pub unsafe extern "C" fn sysv_signal(sig: c_int, handler: usize) -> usize {
    set_handler(sig, handler, libc::SA_RESETHAND | libc::SA_NODEFER)
}
