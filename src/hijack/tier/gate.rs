//! The tier's low part, which the layers below the router use: each
//! armed thread's block (its Syscall User Dispatch selector byte and the
//! stack the routed calls run on), `allowed` (the selector set to ALLOW
//! around a call of ours that must reach the host as it is), and the
//! program's own SIGSYS action, kept here instead of the host's.
//!
//! A thread finds its block two ways: the trap handler and the trampoline
//! through `%gs` (its base is the block, set when the thread is armed:
//! x86_64 Linux programs leave `%gs` alone, glibc, musl and Go alike), and
//! Rust code through a thread-local pointer (`MINE`), checked against
//! `%gs` so that a thread sharing another's TLS (a `clone` without
//! `CLONE_SETTLS`, a vfork child) never flips someone else's selector.

use std::cell::Cell;
use std::ffi::c_int;
use std::sync::atomic::{compiler_fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// The selector value that lets system calls through to the host.
pub const ALLOW: u8 = 0;
/// The selector value that makes every system call outside the exempt
/// range trap (SIGSYS).
pub const BLOCK: u8 = 1;

/// One armed thread's state, at the top of a mapping of its own:
/// `[guard page][stack ...][Block]`. `%gs` holds its address.
#[repr(C)]
pub struct Block {
    /// The selector byte the host kernel reads at each system call.
    pub selector: u8,
    /// Whether an `exit` of its thread gives it back (a thread's block;
    /// not the main thread's, nor a vfork child's, which its parent frees).
    pub thread_owned: u8,
    pub _pad: [u8; 6],
    /// Its own address, read as `%gs:8` to find it.
    pub me: *mut Block,
    /// The lowest usable address of its stack.
    pub stack_lo: usize,
    /// The stack's top (exclusive): the block's own address.
    pub stack_top: usize,
    /// The mapping (for munmap) and its length.
    pub map: usize,
    pub map_len: usize,
    /// The next free block (the free list).
    pub next: *mut Block,
}

/// The offset of `Block::me`, read through `%gs`.
pub const ME: usize = std::mem::offset_of!(Block, me);

/// True once the tier is armed in this process.
pub static ON: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// This thread's block (null: not armed, or not known yet).
    static MINE: Cell<*mut Block> = const { Cell::new(std::ptr::null_mut()) };
}

/// True once the tier is armed in this process.
#[inline]
pub fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// The block `%gs` points at. Only on a thread whose `%gs` base is set
/// (an armed thread, or one created by an armed one).
#[inline]
fn gs_block() -> *mut Block {
    let b: usize;
    // SAFETY: reads 8 bytes at %gs:ME; callers make sure %gs is set.
    unsafe {
        std::arch::asm!("mov {}, qword ptr gs:[{me}]", out(reg) b, me = const ME,
            options(nostack, readonly, preserves_flags));
    }
    b as *mut Block
}

/// This thread's block, if it has one of its own.
#[inline]
pub fn current() -> *mut Block {
    let b = MINE.with(|m| m.get());
    if b.is_null() || gs_block() != b {
        return std::ptr::null_mut();
    }
    b
}

/// Records `b` as this thread's block, if the thread knows none (a new
/// thread with fresh TLS; a thread sharing its creator's TLS keeps it).
pub fn adopt(b: *mut Block) {
    MINE.with(|m| {
        if m.get().is_null() {
            m.set(b);
        }
    });
}

/// Runs `f` with this thread's selector at ALLOW: a call of ours that
/// must reach the host (libc's function behind a hook, a kernel call with
/// its host futexes) is not trapped and routed again. One load when the
/// tier is off.
#[inline]
pub fn allowed<R>(f: impl FnOnce() -> R) -> R {
    if !on() {
        return f();
    }
    let b = current();
    if b.is_null() {
        return f();
    }
    // SAFETY: `b` is this thread's live block (current checked %gs).
    unsafe {
        let sel = std::ptr::addr_of_mut!((*b).selector);
        let prev = sel.read_volatile();
        sel.write_volatile(ALLOW);
        compiler_fence(Ordering::SeqCst);
        let r = f();
        compiler_fence(Ordering::SeqCst);
        sel.write_volatile(prev);
        r
    }
}

/// Sets this thread's selector to `v` (the constructor's way out to the
/// program, the destructor's way in).
pub fn set_selector(v: u8) {
    let b = current();
    if !b.is_null() {
        // SAFETY: this thread's live block.
        unsafe { std::ptr::addr_of_mut!((*b).selector).write_volatile(v) };
    }
}

/// SIGSYS in a kernel signal set: never blocked while the tier is armed
/// (a trap while it is blocked kills the process).
pub const SIGSYS_BIT: u64 = 1 << (libc::SIGSYS - 1);

/// Takes SIGSYS out of a handler's mask (the `sigaction` hook), when the
/// tier is armed: a trap inside the handler must reach ours.
pub fn unmask_sigsys(mask: &mut libc::sigset_t) {
    if on() {
        // SAFETY: a valid set.
        unsafe { libc::sigdelset(mask, libc::SIGSYS) };
    }
}

/// SA_RESTORER (asm/signal.h): the action names its own restorer.
pub const SA_RESTORER: u64 = 0x0400_0000;

/// The kernel's `struct sigaction` (x86_64): what `rt_sigaction` takes.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct KSigaction {
    pub handler: usize,
    pub flags: u64,
    pub restorer: usize,
    pub mask: u64,
}

/// The program's SIGSYS action, which the host never sees: the tier's
/// handler holds SIGSYS (Go installs a handler for every signal and
/// throws if `rt_sigaction` fails, so the call succeeds and is recorded).
static SIGSYS_HANDLER: AtomicUsize = AtomicUsize::new(0);
static SIGSYS_FLAGS: AtomicU64 = AtomicU64::new(0);
static SIGSYS_MASK: AtomicU64 = AtomicU64::new(0);
static SIGSYS_RESTORER: AtomicUsize = AtomicUsize::new(0);

/// The program's recorded SIGSYS action.
pub fn sigsys_action() -> KSigaction {
    KSigaction {
        handler: SIGSYS_HANDLER.load(Ordering::Acquire),
        flags: SIGSYS_FLAGS.load(Ordering::Acquire),
        restorer: SIGSYS_RESTORER.load(Ordering::Acquire),
        mask: SIGSYS_MASK.load(Ordering::Acquire),
    }
}

fn set_sigsys_action(a: &KSigaction) {
    SIGSYS_FLAGS.store(a.flags, Ordering::Release);
    SIGSYS_MASK.store(a.mask, Ordering::Release);
    SIGSYS_RESTORER.store(a.restorer, Ordering::Release);
    SIGSYS_HANDLER.store(a.handler, Ordering::Release);
}

/// `rt_sigaction(SIGSYS, act, old)` in the kernel's layout, answered from
/// the record.
///
/// # Safety
/// `act` and `old` are null or valid for the kernel's struct.
pub unsafe fn sigsys_kaction(act: *const KSigaction, old: *mut KSigaction) -> i64 {
    let prev = sigsys_action();
    if !act.is_null() {
        // SAFETY: the caller's struct.
        set_sigsys_action(&unsafe { act.read_unaligned() });
    }
    if !old.is_null() {
        // SAFETY: the caller's struct.
        unsafe { old.write_unaligned(prev) };
    }
    0
}

/// The `sigaction` hook's part: with the tier armed, SIGSYS is the tier's,
/// and the program's action is only recorded (glibc's layout). None when
/// the tier is off: the host's sigaction serves it.
///
/// # Safety
/// `act` and `old` are null or valid glibc `struct sigaction`s.
pub unsafe fn sigsys_glibc_action(
    act: *const libc::sigaction,
    old: *mut libc::sigaction,
) -> Option<c_int> {
    if !on() {
        return None;
    }
    let prev = sigsys_action();
    if !act.is_null() {
        // SAFETY: the caller's struct.
        let a = unsafe { &*act };
        // SAFETY: sigset_t's first 8 bytes are the kernel's 64 signals.
        let mask = unsafe { std::ptr::addr_of!(a.sa_mask).cast::<u64>().read_unaligned() };
        set_sigsys_action(&KSigaction {
            handler: a.sa_sigaction,
            flags: a.sa_flags as u32 as u64,
            restorer: 0,
            mask,
        });
    }
    if !old.is_null() {
        // SAFETY: the caller's struct; all-zero is a valid sigaction.
        unsafe {
            let mut o: libc::sigaction = std::mem::zeroed();
            o.sa_sigaction = prev.handler;
            o.sa_flags = prev.flags as c_int;
            std::ptr::addr_of_mut!(o.sa_mask)
                .cast::<u64>()
                .write_unaligned(prev.mask);
            *old = o;
        }
    }
    Some(0)
}
