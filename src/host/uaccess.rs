//! Program ("user") memory for the kernel: the `user_read`, `user_write`
//! and `user_clear` host operations, fault-safe.
//!
//! The kernel runs in the program's process without an MMU, so a "user"
//! pointer is a host address that may be unmapped or read-only. The host
//! kernel answers `EFAULT` for such a buffer; a plain copy would crash the
//! program. Here a copy is one `rep movsb` (`rep stosb` to clear) at a
//! known address. A SIGSEGV or SIGBUS raised by that instruction resumes
//! at a fixup that returns the count left in RCX, the bytes not copied, as
//! an MMU kernel's exception table does. Any other fault is the program's:
//! it goes on to the handler that was there before ours (the program's,
//! Go's, the JVM's, a sanitizer's, Rust's stack-overflow report), with the
//! mask and flags that handler asked for, or, with none, to the default
//! action, so the program dies as it would have.
//!
//! Ours is installed at boot, in front of whatever is there. Under the
//! hijack the library's `sigaction` hook keeps it in front: a handler the
//! program installs later is recorded as the one we chain to
//! ([`sigaction_behind`]). Without the hijack, a program that installs a
//! SIGSEGV/SIGBUS handler after boot replaces ours; calling
//! [`install_fault_handler`] again puts ours back in front of it.
//!
//! The handler allocates nothing and takes no lock: atomics, a
//! thread-local cell, `sigaction`, `pthread_sigmask` and `raise`.
//! docs/uaccess.md has the design and the seam a second implementation
//! (programs in other processes) plugs into.

use std::ffi::{c_int, c_ulong, c_void};
use std::sync::atomic::{fence, AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

#[cfg(target_arch = "x86_64")]
std::arch::global_asm!(
    ".pushsection .text.lkl_host_user,\"ax\",@progbits",
    // copy(dst rdi, src rsi, n rdx) -> rax: the bytes not copied.
    ".p2align 4",
    ".globl lkl_host_user_copy",
    ".hidden lkl_host_user_copy",
    ".type lkl_host_user_copy,@function",
    "lkl_host_user_copy:",
    "    mov rcx, rdx",
    ".globl lkl_host_user_copy_rep",
    ".hidden lkl_host_user_copy_rep",
    "lkl_host_user_copy_rep:",
    "    rep movsb",
    "    xor eax, eax",
    "    ret",
    ".size lkl_host_user_copy, . - lkl_host_user_copy",
    // zero(dst rdi, n rsi) -> rax: the bytes not zeroed.
    ".p2align 4",
    ".globl lkl_host_user_zero",
    ".hidden lkl_host_user_zero",
    ".type lkl_host_user_zero,@function",
    "lkl_host_user_zero:",
    "    mov rcx, rsi",
    "    xor eax, eax",
    ".globl lkl_host_user_zero_rep",
    ".hidden lkl_host_user_zero_rep",
    "lkl_host_user_zero_rep:",
    "    rep stosb",
    "    ret",
    ".size lkl_host_user_zero, . - lkl_host_user_zero",
    // Where a fault in either `rep` resumes: RCX holds what was left.
    ".p2align 4",
    ".globl lkl_host_user_fixup",
    ".hidden lkl_host_user_fixup",
    ".type lkl_host_user_fixup,@function",
    "lkl_host_user_fixup:",
    "    mov rax, rcx",
    "    ret",
    ".size lkl_host_user_fixup, . - lkl_host_user_fixup",
    ".popsection",
);

#[cfg(target_arch = "x86_64")]
extern "C" {
    fn lkl_host_user_copy(dst: *mut c_void, src: *const c_void, n: usize) -> usize;
    fn lkl_host_user_zero(dst: *mut c_void, n: usize) -> usize;
    // Labels, never called: only their addresses are used.
    fn lkl_host_user_copy_rep();
    fn lkl_host_user_zero_rep();
    fn lkl_host_user_fixup();
}

/// Copies `n` bytes from `src` to `dst`; returns the bytes not copied
/// (from the first that faulted on).
///
/// # Safety
/// Whichever side is not the program's must be valid for `n` bytes; the
/// program's side may be anything. Unless the fault handler is installed,
/// a fault crashes the process.
#[cfg(target_arch = "x86_64")]
unsafe fn copy(dst: *mut c_void, src: *const c_void, n: usize) -> usize {
    // SAFETY: see the function's contract; the routine touches only
    // dst..dst+n and src..src+n and follows the C calling convention.
    unsafe { lkl_host_user_copy(dst, src, n) }
}

/// Zeroes `n` bytes at `dst`; returns the bytes not zeroed.
///
/// # Safety
/// As for [`copy`].
#[cfg(target_arch = "x86_64")]
unsafe fn zero(dst: *mut c_void, n: usize) -> usize {
    // SAFETY: see the function's contract.
    unsafe { lkl_host_user_zero(dst, n) }
}

// Other hosts: plain copies, a bad pointer crashes the program.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn copy(dst: *mut c_void, src: *const c_void, n: usize) -> usize {
    // SAFETY: the caller's contract, without the fault safety.
    unsafe { std::ptr::copy_nonoverlapping(src.cast::<u8>(), dst.cast::<u8>(), n) };
    0
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn zero(dst: *mut c_void, n: usize) -> usize {
    // SAFETY: the caller's contract, without the fault safety.
    unsafe { std::ptr::write_bytes(dst.cast::<u8>(), 0, n) };
    0
}

/// True where [`copy_from_program`] is fault-safe (once the fault handler
/// is installed): x86_64 hosts.
pub const FAULT_SAFE_COPIES: bool = cfg!(target_arch = "x86_64");

/// Copies `n` bytes of this process's memory at `src`, which may be
/// unmapped or unreadable, to `dst`; returns the bytes not copied (from
/// the first that faulted on). A tree-mode client stages a `write`'s
/// buffer with it (docs/process-tree.md).
///
/// # Safety
/// `dst` is valid for `n` bytes. The fault handler is installed
/// ([`install_fault_handler`]) and [`FAULT_SAFE_COPIES`] holds; else a
/// fault in `src` crashes the process.
pub unsafe fn copy_from_program(dst: *mut u8, src: *const u8, n: usize) -> usize {
    // SAFETY: the caller's contract.
    unsafe { copy(dst.cast(), src.cast(), n) }
}

/// `user_read`: `n` bytes of the program at `src` into the kernel's `dst`.
/// A non-NULL `as_` names another process's memory (process_mem.rs).
///
/// # Safety
/// `dst` is kernel memory valid for `n` bytes.
pub(super) unsafe extern "C" fn user_read(
    as_: *mut c_void,
    dst: *mut c_void,
    src: *const c_void,
    n: c_ulong,
) -> c_ulong {
    if !as_.is_null() {
        // SAFETY: the function's contract.
        return unsafe { super::process_mem::read(as_, dst, src, n) };
    }
    // SAFETY: see the function's contract; `src` may fault, caught.
    unsafe { copy(dst, src, n as usize) as c_ulong }
}

/// `user_write`: `n` bytes of the kernel at `src` to the program's `dst`.
///
/// # Safety
/// `src` is kernel memory valid for `n` bytes.
pub(super) unsafe extern "C" fn user_write(
    as_: *mut c_void,
    dst: *mut c_void,
    src: *const c_void,
    n: c_ulong,
) -> c_ulong {
    if !as_.is_null() {
        // SAFETY: the function's contract.
        return unsafe { super::process_mem::write(as_, dst, src, n) };
    }
    // SAFETY: see the function's contract; `dst` may fault, caught.
    unsafe { copy(dst, src, n as usize) as c_ulong }
}

/// `user_clear`: zeroes `n` bytes of the program at `dst`.
///
/// # Safety
/// None beyond the kernel's: `dst` may fault, caught.
pub(super) unsafe extern "C" fn user_clear(
    as_: *mut c_void,
    dst: *mut c_void,
    n: c_ulong,
) -> c_ulong {
    if !as_.is_null() {
        // SAFETY: writes only the other process's memory.
        return unsafe { super::process_mem::clear(as_, dst, n) };
    }
    // SAFETY: only the program's memory is written; a fault is caught.
    unsafe { zero(dst, n as usize) as c_ulong }
}

type SigactionFn =
    unsafe extern "C" fn(c_int, *const libc::sigaction, *mut libc::sigaction) -> c_int;

/// The C library's `sigaction`, not the hijack's hook of the same name.
static REAL_SIGACTION: AtomicUsize = AtomicUsize::new(0);

/// Found once, outside any signal handler ([`install_fault_handler`]).
fn real_sigaction() -> SigactionFn {
    let mut p = REAL_SIGACTION.load(Ordering::Acquire);
    if p == 0 {
        // SAFETY: a NUL-terminated name. RTLD_NEXT, seen from this object
        // (the hijack library, or the program that links this crate),
        // finds the C library's function behind any hook of ours.
        p = unsafe { libc::dlsym(libc::RTLD_NEXT, c"sigaction".as_ptr()) } as usize;
        if p == 0 {
            p = libc::sigaction as SigactionFn as usize;
        }
        REAL_SIGACTION.store(p, Ordering::Release);
    }
    // SAFETY: `p` is a `sigaction` with this signature.
    unsafe { std::mem::transmute::<usize, SigactionFn>(p) }
}

const MASK_WORDS: usize = std::mem::size_of::<libc::sigset_t>() / 8;
const _: () = assert!(MASK_WORDS * 8 == std::mem::size_of::<libc::sigset_t>());

/// A signal action as the program (or whoever was first) installed it.
#[derive(Clone, Copy)]
struct Action {
    handler: usize,
    flags: c_int,
    mask: [u64; MASK_WORDS],
}

impl Action {
    fn from_sigaction(a: &libc::sigaction) -> Action {
        Action {
            handler: a.sa_sigaction,
            flags: a.sa_flags,
            // SAFETY: sigset_t is plain data of this size (checked above).
            mask: unsafe { std::mem::transmute::<libc::sigset_t, [u64; MASK_WORDS]>(a.sa_mask) },
        }
    }

    fn to_sigaction(self) -> libc::sigaction {
        // SAFETY: struct sigaction is plain data; all-zero is valid.
        let mut a: libc::sigaction = unsafe { std::mem::zeroed() };
        a.sa_sigaction = self.handler;
        a.sa_flags = self.flags;
        // SAFETY: as in `from_sigaction`.
        a.sa_mask = unsafe { std::mem::transmute::<[u64; MASK_WORDS], libc::sigset_t>(self.mask) };
        a
    }
}

/// The action we chain to for one signal, readable from a signal handler:
/// a sequence lock whose writers are serialised by [`INSTALL`].
struct Chained {
    seq: AtomicU32,
    handler: AtomicUsize,
    flags: AtomicI32,
    mask: [AtomicU64; MASK_WORDS],
}

impl Chained {
    const fn new() -> Chained {
        Chained {
            seq: AtomicU32::new(0),
            handler: AtomicUsize::new(libc::SIG_DFL),
            flags: AtomicI32::new(0),
            mask: [const { AtomicU64::new(0) }; MASK_WORDS],
        }
    }

    /// Only with [`INSTALL`] held.
    fn store(&self, a: &Action) {
        let s = self.seq.load(Ordering::Relaxed);
        self.seq.store(s.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        self.handler.store(a.handler, Ordering::Relaxed);
        self.flags.store(a.flags, Ordering::Relaxed);
        for (w, v) in self.mask.iter().zip(a.mask) {
            w.store(v, Ordering::Relaxed);
        }
        self.seq.store(s.wrapping_add(2), Ordering::Release);
    }

    /// A consistent copy; after many torn reads (a writer stopped in the
    /// middle, on this very thread) the last one.
    fn load(&self) -> Action {
        let mut a = Action {
            handler: libc::SIG_DFL,
            flags: 0,
            mask: [0; MASK_WORDS],
        };
        for _ in 0..1000 {
            let s1 = self.seq.load(Ordering::Acquire);
            a.handler = self.handler.load(Ordering::Relaxed);
            a.flags = self.flags.load(Ordering::Relaxed);
            for (v, w) in a.mask.iter_mut().zip(&self.mask) {
                *v = w.load(Ordering::Relaxed);
            }
            fence(Ordering::Acquire);
            if s1.is_multiple_of(2) && self.seq.load(Ordering::Relaxed) == s1 {
                break;
            }
            std::hint::spin_loop();
        }
        a
    }
}

static CHAINED_SEGV: Chained = Chained::new();
static CHAINED_BUS: Chained = Chained::new();

/// Serialises installs and the writers of [`Chained`] (never taken in the
/// handler).
static INSTALL: Mutex<()> = Mutex::new(());

fn chained(sig: c_int) -> Option<&'static Chained> {
    match sig {
        libc::SIGSEGV => Some(&CHAINED_SEGV),
        libc::SIGBUS => Some(&CHAINED_BUS),
        _ => None,
    }
}

/// True for the signals a bad pointer raises, whose handler is ours.
pub fn is_fault_signal(sig: c_int) -> bool {
    chained(sig).is_some()
}

fn our_handler() -> usize {
    on_fault as extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void) as usize
}

/// Puts our handler in front of the current one (with [`INSTALL`] held).
fn install_locked(sig: c_int, slot: &Chained) -> Result<(), i32> {
    let real = real_sigaction();
    // SAFETY: struct sigaction is plain data; all-zero is valid.
    let mut cur: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: reads the current action into our struct.
    if unsafe { real(sig, std::ptr::null(), &mut cur) } != 0 {
        return Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EINVAL));
    }
    if cur.sa_sigaction == our_handler() {
        return Ok(());
    }
    // Recorded first, so that a fault from here on finds it.
    slot.store(&Action::from_sigaction(&cur));
    // SAFETY: as above.
    let mut ours: libc::sigaction = unsafe { std::mem::zeroed() };
    ours.sa_sigaction = our_handler();
    // SA_ONSTACK: a program's alternate stack (stack overflows, Go) is used
    // as its own handler would be. SA_NODEFER: a fault inside the handler
    // we chain to is delivered, not fatal because blocked.
    ours.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_NODEFER;
    // SAFETY: an empty mask in our own struct.
    unsafe { libc::sigemptyset(&mut ours.sa_mask) };
    // SAFETY: as above.
    let mut prev: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: installs our handler, reading back the one it replaced.
    if unsafe { real(sig, &ours, &mut prev) } != 0 {
        return Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EINVAL));
    }
    if prev.sa_sigaction != cur.sa_sigaction && prev.sa_sigaction != our_handler() {
        // Someone installed one in between: that is the one to chain to.
        slot.store(&Action::from_sigaction(&prev));
    }
    Ok(())
}

/// Installs the handler that makes the kernel's copies of program memory
/// fault-safe, for SIGSEGV and SIGBUS, in front of the handlers there now,
/// to which any other fault goes on. [`crate::Kernel::boot`] calls it.
/// Calling it again after installing a SIGSEGV/SIGBUS handler of one's
/// own (without the hijack) puts ours back in front of that one; with
/// ours still in front it does nothing. Errors are errno values.
pub fn install_fault_handler() -> Result<(), i32> {
    let _g = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    install_locked(libc::SIGSEGV, &CHAINED_SEGV)?;
    install_locked(libc::SIGBUS, &CHAINED_BUS)
}

/// True while our handler is the installed one for SIGSEGV and SIGBUS.
pub fn fault_handler_installed() -> bool {
    let real = real_sigaction();
    [libc::SIGSEGV, libc::SIGBUS].iter().all(|&sig| {
        // SAFETY: struct sigaction is plain data; all-zero is valid.
        let mut cur: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: reads the current action into our struct.
        (unsafe { real(sig, std::ptr::null(), &mut cur) }) == 0 && cur.sa_sigaction == our_handler()
    })
}

/// `sigaction` for a program whose SIGSEGV and SIGBUS handlers must run
/// behind ours (the hijack's hook): for those two signals, `act` becomes
/// the action we chain to and `old` gets the previous one, while ours stays
/// installed; any other signal goes to the C library's `sigaction`.
///
/// # Safety
/// The C library's contract for `sigaction`: `act` and `old` are NULL or
/// valid.
pub unsafe fn sigaction_behind(
    sig: c_int,
    act: *const libc::sigaction,
    old: *mut libc::sigaction,
) -> c_int {
    let real = real_sigaction();
    let Some(slot) = chained(sig) else {
        // SAFETY: the caller's arguments, as its contract says.
        return unsafe { real(sig, act, old) };
    };
    let _g = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    if install_locked(sig, slot).is_err() {
        // SAFETY: as above: without ours, the plain call.
        return unsafe { real(sig, act, old) };
    }
    let prev = slot.load();
    // SAFETY: the caller's struct sigaction, if any.
    if let Some(a) = unsafe { act.as_ref() } {
        // Ours (read with the plain sigaction and given back) is already
        // in front: chaining to it would be a loop.
        if a.sa_sigaction != our_handler() {
            slot.store(&Action::from_sigaction(a));
        }
    }
    if !old.is_null() {
        // SAFETY: the caller's struct sigaction to fill.
        unsafe { *old = prev.to_sigaction() };
    }
    0
}

thread_local! {
    /// While this thread runs a handler we chained to: its context and how
    /// deep our frame was (0, 0: none). A call back into us with the same
    /// context from deeper down is that handler chaining to us again.
    static CHAINING: std::cell::Cell<(usize, usize)> = const { std::cell::Cell::new((0, 0)) };
}

/// The SIGSEGV/SIGBUS handler: a fault of the copy routine resumes at its
/// fixup; any other goes on to the chained action.
extern "C" fn on_fault(sig: c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    // A fault has a positive si_code (SEGV_MAPERR, BUS_ADRERR, SI_KERNEL for
    // a non-canonical address); kill(), sigqueue() and tgkill() do not.
    let code = if info.is_null() {
        0
    } else {
        // SAFETY: the kernel passes a valid siginfo_t to SA_SIGINFO handlers.
        unsafe { (*info).si_code }
    };
    #[cfg(target_arch = "x86_64")]
    if code > 0 && !ctx.is_null() {
        // SAFETY: the kernel passes a valid ucontext_t to SA_SIGINFO
        // handlers; this thread is the only one to touch it.
        let uc = unsafe { &mut *ctx.cast::<libc::ucontext_t>() };
        let rip = uc.uc_mcontext.gregs[libc::REG_RIP as usize] as usize;
        if rip == lkl_host_user_copy_rep as unsafe extern "C" fn() as usize
            || rip == lkl_host_user_zero_rep as unsafe extern "C" fn() as usize
        {
            // RCX still holds the count left; the fixup returns it.
            uc.uc_mcontext.gregs[libc::REG_RIP as usize] =
                lkl_host_user_fixup as unsafe extern "C" fn() as usize as i64;
            return;
        }
    }
    // SAFETY: our own handler's arguments, passed on.
    unsafe { chain(sig, info, ctx, code) };
}

/// The program's fault: run the action we chain to as the kernel would
/// have run it.
///
/// # Safety
/// Called from our handler with its arguments.
unsafe fn chain(sig: c_int, info: *mut libc::siginfo_t, ctx: *mut c_void, code: c_int) {
    let Some(slot) = chained(sig) else { return };
    let a = slot.load();
    let depth = 0u8;
    let here = std::ptr::addr_of!(depth) as usize;
    let outer = CHAINING.with(|c| c.get());
    let looped = outer.0 == ctx as usize && here < outer.1;
    let handled = a.handler != libc::SIG_DFL && a.handler != libc::SIG_IGN && !looped;
    if !handled {
        if a.handler == libc::SIG_IGN && code <= 0 {
            // A sent signal the program ignores.
            return;
        }
        // No handler (an ignored fault is fatal too, as the host kernel
        // makes it): the default action. A fault happens again when this
        // returns, now fatal; a sent signal is raised again.
        // SAFETY: this thread's errno, kept for the interrupted code.
        let saved = unsafe { *libc::__errno_location() };
        // SAFETY: struct sigaction is plain data; all-zero is SIG_DFL.
        let dfl: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: sigaction is async-signal-safe; our own struct.
        unsafe { real_sigaction()(sig, &dfl, std::ptr::null_mut()) };
        if code <= 0 {
            // SAFETY: async-signal-safe; SA_NODEFER left it unblocked.
            unsafe { libc::raise(sig) };
        }
        // SAFETY: as above.
        unsafe { *libc::__errno_location() = saved };
        return;
    }
    if a.flags & libc::SA_RESETHAND != 0 {
        let _ = slot.handler.compare_exchange(
            a.handler,
            libc::SIG_DFL,
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
    }
    // Its mask, and the signal itself unless SA_NODEFER, blocked while it
    // runs; returning from our handler restores the mask of the context.
    let mut set = a.to_sigaction().sa_mask;
    if a.flags & libc::SA_NODEFER == 0 {
        // SAFETY: our own set.
        unsafe { libc::sigaddset(&mut set, sig) };
    }
    // SAFETY: blocks more signals for this thread (a plain system call).
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    CHAINING.with(|c| c.set((ctx as usize, here)));
    if a.flags & libc::SA_SIGINFO != 0 {
        // SAFETY: installed as an sa_sigaction handler.
        let f = unsafe {
            std::mem::transmute::<usize, extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void)>(
                a.handler,
            )
        };
        f(sig, info, ctx);
    } else {
        // SAFETY: installed as an sa_handler.
        let f = unsafe { std::mem::transmute::<usize, extern "C" fn(c_int)>(a.handler) };
        f(sig);
    }
    CHAINING.with(|c| c.set(outer));
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    /// Two pages, the second PROT_NONE.
    fn half_mapped() -> *mut u8 {
        // SAFETY: a fresh anonymous mapping, then the protection of its
        // second page.
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                8192,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert_ne!(p, libc::MAP_FAILED);
            assert_eq!(
                libc::mprotect(p.cast::<u8>().add(4096).cast(), 4096, libc::PROT_NONE),
                0
            );
            p.cast()
        }
    }

    #[test]
    fn copies_stop_at_the_fault_and_count_what_is_left() {
        install_fault_handler().unwrap();
        assert!(fault_handler_installed());
        let p = half_mapped();
        let mut buf = vec![7u8; 300];
        // SAFETY: 100 bytes before the hole, 200 in it; buf holds 300.
        unsafe {
            let src = p.add(4096 - 100);
            std::ptr::write_bytes(src, 1, 100);
            assert_eq!(
                user_read(
                    std::ptr::null_mut(),
                    buf.as_mut_ptr().cast(),
                    src.cast(),
                    300
                ),
                200
            );
            assert!(buf[..100].iter().all(|&b| b == 1));
            assert_eq!(
                user_write(std::ptr::null_mut(), src.cast(), buf.as_ptr().cast(), 300),
                200
            );
            assert_eq!(user_clear(std::ptr::null_mut(), src.cast(), 300), 200);
            assert_eq!(*src, 0);
            assert_eq!(
                user_read(
                    std::ptr::null_mut(),
                    buf.as_mut_ptr().cast(),
                    0x10 as *const c_void,
                    8
                ),
                8
            );
            let kernel_half = 0xffff_8000_0000_1000usize as *const c_void;
            assert_eq!(
                user_read(
                    std::ptr::null_mut(),
                    buf.as_mut_ptr().cast(),
                    kernel_half,
                    8
                ),
                8
            );
            assert_eq!(
                user_read(
                    std::ptr::null_mut(),
                    buf.as_mut_ptr().cast(),
                    src.cast(),
                    100
                ),
                0
            );
            assert_eq!(
                user_read(8 as *mut c_void, buf.as_mut_ptr().cast(), src.cast(), 100),
                100
            );
            libc::munmap(p.cast(), 8192);
        }
    }
}
