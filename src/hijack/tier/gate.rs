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
    /// 1 when the trampoline swaps `%fs` (a static program under the
    /// loader: its TLS is not the library's): ours (`host_fs`, the
    /// thread's glibc TLS) while a routed call runs, the program's after.
    pub swap_fs: u8,
    pub _pad2: [u8; 7],
    /// The `%fs` base of the library's TLS for this thread.
    pub host_fs: usize,
    /// The program's `%fs` base while a routed call runs with ours.
    pub prog_fs: usize,
    /// A thread of a static program has no TLS of the library's: its
    /// calls that need one (the hooks) run on this pthread twin of it
    /// (tier/twin.rs); null on other threads.
    pub twin: *mut std::ffi::c_void,
    /// The `%fs` base its thread had at its last trap (or when a clone's
    /// child armed itself): a rewritten site (rewrite.rs) routes a call
    /// only on the thread this matches, never on a thread that inherited
    /// this `%gs` without being armed (one our own code created).
    pub owner_fs: usize,
    /// Where a call that a rewritten site issues to the host directly
    /// returns to (trap.rs's `lkl_tier_fast`: its registers are the
    /// program's, `rcx` and `r11` are the `syscall`'s).
    pub fast_ret: usize,
    /// Calls this thread made through rewritten sites (rewrite.rs's
    /// counters): written by its own thread only, summed over `all_next`
    /// when read. Kept when the block is reused (the sum stays the
    /// process's).
    pub fast_calls: u64,
    /// The next of every block ever mapped (never unmapped).
    pub all_next: *mut Block,
    /// 1 once the router has recorded this block as its thread's
    /// (`adopt`): it need not look at the thread-local again.
    pub adopted: u8,
}

/// The offset of `Block::me`, read through `%gs`.
pub const ME: usize = std::mem::offset_of!(Block, me);

/// True once the tier is armed in this process.
pub static ON: AtomicBool = AtomicBool::new(false);

/// True once the loader runs a static program in this process
/// (`lkl_hijack_loader_begin`).
pub static STATIC: AtomicBool = AtomicBool::new(false);

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

extern "C" {
    /// One host system call through the exempt range (tier/trap.rs's
    /// assembly): passes whatever the selector says.
    pub fn lkl_tier_raw(nr: i64, a1: i64, a2: i64, a3: i64, a4: i64, a5: i64, a6: i64) -> i64;
}

/// A host system call that is never trapped (the exempt range), for code
/// of ours that may run with the selector at BLOCK (signal handlers).
pub fn exempt(nr: i64, a: [i64; 6]) -> i64 {
    // SAFETY: the caller passes the call's arguments as the host takes
    // them; `lkl_tier_raw` only issues it.
    unsafe { lkl_tier_raw(nr, a[0], a[1], a[2], a[3], a[4], a[5]) }
}

/// `len` bytes of fresh private anonymous memory (read/write, no swap
/// reserved), mapped through [`exempt`]; None if the host refuses.
pub fn map_anon(len: usize) -> Option<usize> {
    let m = exempt(
        libc::SYS_mmap,
        [
            0,
            len as i64,
            i64::from(libc::PROT_READ | libc::PROT_WRITE),
            i64::from(libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE),
            -1,
            0,
        ],
    );
    (!(-4095..0).contains(&m)).then_some(m as usize)
}

/// `si_code` SI_KERNEL (asm-generic/siginfo.h): the host's own signals
/// to a process (setitimer's SIGALRM).
const SI_KERNEL: c_int = 0x80;

/// With the tier armed, a thread that traps enters the host's signal
/// delivery at once, and takes any signal pending for the whole process
/// there, before the thread the host chose (the main thread, when it does
/// not block the signal) wakes up: a process-wide signal meant to end
/// the main thread's blocking call (Python's handlers run on the main
/// thread only) would be spent elsewhere. So the program's handler wrapper
/// (signals.rs) asks here first: a process-wide signal (kill, sigqueue,
/// the host's own, SIGCHLD) on a thread that is not the main thread, while
/// the main thread lives and does not block it, is queued again for the
/// main thread (`rt_tgsigqueueinfo`, its siginfo kept; a code of the
/// host's becomes SI_QUEUE, which is what a process may queue itself) and
/// true is returned: the handler runs there. Async-signal-safe: raw
/// calls and a stack buffer.
pub fn redirect_to_main(sig: c_int, info: *const libc::siginfo_t) -> bool {
    if !on() || info.is_null() {
        return false;
    }
    // SAFETY: the host's siginfo for this signal.
    let code = unsafe { (*info).si_code };
    let process_wide = matches!(code, libc::SI_USER | libc::SI_QUEUE | SI_KERNEL)
        || (sig == libc::SIGCHLD && code > 0);
    if !process_wide {
        return false;
    }
    let pid = exempt(libc::SYS_getpid, [0; 6]);
    let tid = exempt(libc::SYS_gettid, [0; 6]);
    if pid == tid || !main_takes(pid, sig) {
        return false;
    }
    // SAFETY: a copy of the host's siginfo.
    let mut copy = unsafe { info.read() };
    if copy.si_code >= 0 {
        copy.si_code = libc::SI_QUEUE;
    }
    let r = exempt(
        libc::SYS_rt_tgsigqueueinfo,
        [pid, pid, sig.into(), &copy as *const _ as i64, 0, 0],
    );
    r == 0
}

/// Whether the main thread (`pid`) is alive and does not block `sig`,
/// from /proc/self/task/PID/status. Small on the stack (a few hundred
/// bytes, read in pieces): it runs in signal handlers, maybe on a small
/// alternate stack (Rust's runtime gives the loader's main thread one of
/// 8 KiB, which a static program inherits), below the host's signal frame.
#[inline(never)]
fn main_takes(pid: i64, sig: c_int) -> bool {
    let mut path = [0u8; 48];
    let mut n = 0;
    for b in b"/proc/self/task/" {
        path[n] = *b;
        n += 1;
    }
    let mut digits = [0u8; 20];
    let (mut d, mut v) = (0, pid as u64);
    loop {
        digits[d] = b'0' + (v % 10) as u8;
        d += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    while d > 0 {
        d -= 1;
        path[n] = digits[d];
        n += 1;
    }
    for b in b"/status" {
        path[n] = *b;
        n += 1;
    }
    let fd = exempt(
        libc::SYS_openat,
        [
            libc::AT_FDCWD.into(),
            path.as_ptr() as i64,
            i64::from(libc::O_RDONLY | libc::O_CLOEXEC),
            0,
            0,
            0,
        ],
    );
    if fd < 0 {
        return false;
    }
    // The lines' first bytes (enough for "State:\t" and "SigBlk:\t" with
    // its 16 hex digits), a piece of the file at a time.
    let mut line = [0u8; 40];
    let mut len = 0usize;
    let mut alive = None;
    let mut blocked = None;
    let mut buf = [0u8; 256];
    'read: loop {
        let r = exempt(
            libc::SYS_read,
            [fd, buf.as_mut_ptr() as i64, buf.len() as i64, 0, 0, 0],
        );
        if r == -i64::from(libc::EINTR) {
            continue;
        }
        if r <= 0 {
            break;
        }
        for &c in &buf[..r as usize] {
            if c != b'\n' {
                if len < line.len() {
                    line[len] = c;
                    len += 1;
                }
                continue;
            }
            let l = &line[..len];
            if let Some(s) = l.strip_prefix(b"State:\t") {
                alive = Some(s.first().is_some_and(|&c| c != b'Z' && c != b'X'));
            } else if let Some(h) = l.strip_prefix(b"SigBlk:\t") {
                blocked = Some(parse_hex(h));
            }
            len = 0;
            if alive.is_some() && blocked.is_some() {
                break 'read;
            }
        }
    }
    exempt(libc::SYS_close, [fd, 0, 0, 0, 0, 0]);
    match (alive, blocked) {
        (Some(true), Some(b)) => b & (1u64 << (sig - 1)) == 0,
        _ => false,
    }
}

/// A hexadecimal number (up to the first other byte).
fn parse_hex(h: &[u8]) -> u64 {
    let mut v = 0u64;
    for &c in h {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => break,
        };
        v = (v << 4) | u64::from(d);
    }
    v
}
