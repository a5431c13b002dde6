//! The tier's part for a static program run by the loader (loader/): the
//! loader is a dynamic program with this library preloaded (the kernel
//! booted, the tier armed); it maps the static ELF and calls
//! `lkl_hijack_loader_begin` before it jumps to the program's entry. From
//! then on:
//! - `%fs`: the program sets its own TLS (`arch_prctl(ARCH_SET_FS)`), but
//!   the router and the hooks use the library's (glibc's) TLS: the
//!   trampoline swaps `%fs` (`wrfsbase`, so the CPU must have FSGSBASE),
//!   and `arch_prctl` of `%fs` is answered from the frame;
//! - `brk` does not move (the loader's heap is there): the program's
//!   allocator falls back to `mmap`, as glibc's and musl's do;
//! - `readlink("/proc/self/exe")` is the program's path, not the loader's;
//! - `exit_group` goes through the library's exit path (route.rs: the
//!   kernel halts, TCP data still queued goes out);
//! - `rt_sigaction` (other than SIGSYS) goes to the host as it is: the
//!   hook's wrapper would run our code on the program's TLS (so a signal
//!   does not interrupt a blocking kernel call here);
//! - threads (`clone` with `CLONE_VM` and not `CLONE_VFORK`): each gets a
//!   pthread twin that makes its hooked calls (twin.rs): the thread has no
//!   TLS of ours;
//! - `execve` of `/proc/self/exe` is of the program; `execve` of a static
//!   program goes through the loader again (a dynamic one loads the
//!   library by `LD_PRELOAD`, which the environment carries).

use std::ffi::{c_char, c_int, CStr};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::gate;
use super::route::{host, rt_sigaction, spawn};
use super::trap::Frame;
use crate::hijack::lifecycle::diag;

/// ARCH_SET_FS, ARCH_GET_FS (asm/prctl.h).
const ARCH_SET_FS: i64 = 0x1002;
const ARCH_GET_FS: i64 = 0x1003;
/// HWCAP2_FSGSBASE (asm/hwcap2.h).
const HWCAP2_FSGSBASE: u64 = 1 << 1;

/// The program's path (what `/proc/self/exe` shows it), NUL-terminated.
static mut EXE: [u8; 4096] = [0; 4096];
static EXE_LEN: AtomicUsize = AtomicUsize::new(0);

/// Called by the loader before it jumps to a static program: 0, or -1
/// with the reason on stderr (the loader stops).
///
/// # Safety
/// `path` is a NUL-terminated path; the calling thread is the one that
/// will run the program.
#[no_mangle]
pub unsafe extern "C" fn lkl_hijack_loader_begin(path: *const c_char) -> c_int {
    if !gate::on() {
        diag("loader: the system-call tier is not armed (LKL_HIJACK_SYSCALLS=all)");
        return -1;
    }
    // SAFETY: getauxval has no preconditions.
    if unsafe { libc::getauxval(libc::AT_HWCAP2) } & HWCAP2_FSGSBASE == 0 {
        diag("loader: this CPU or kernel has no FSGSBASE (rdfsbase/wrfsbase), which a static program's own TLS needs");
        return -1;
    }
    let b = gate::current();
    if b.is_null() {
        diag("loader: this thread is not armed");
        return -1;
    }
    // SAFETY: the caller's NUL-terminated path.
    let p = unsafe { CStr::from_ptr(path) }.to_bytes();
    if p.len() >= 4096 {
        diag("loader: program path too long");
        return -1;
    }
    // SAFETY: written once, before the program runs and reads it.
    unsafe {
        let exe = &mut *std::ptr::addr_of_mut!(EXE);
        exe[..p.len()].copy_from_slice(p);
        exe[p.len()] = 0;
    }
    EXE_LEN.store(p.len(), Ordering::Release);
    if let Ok(l) = std::fs::read_link("/proc/self/exe") {
        let l = l.as_os_str().as_bytes();
        if l.len() < 4096 {
            // SAFETY: written once, before the program runs.
            unsafe { (&mut *std::ptr::addr_of_mut!(LOADER))[..l.len()].copy_from_slice(l) };
            LOADER_LEN.store(l.len(), Ordering::Release);
        }
    }
    let fs: usize;
    // SAFETY: reads this thread's %fs base (FSGSBASE checked above).
    unsafe { std::arch::asm!("rdfsbase {}", out(reg) fs, options(nostack, nomem)) };
    // SAFETY: this thread's live block.
    unsafe {
        (*b).host_fs = fs;
        (*b).swap_fs = 1;
    }
    super::twin::MAIN_FS.store(fs, Ordering::Relaxed);
    gate::STATIC.store(true, Ordering::Release);
    0
}

/// The loader's own path (the host's /proc/self/exe), for `execve`.
static mut LOADER: [u8; 4096] = [0; 4096];
static LOADER_LEN: AtomicUsize = AtomicUsize::new(0);

/// The loader's path.
fn loader() -> &'static [u8] {
    let n = LOADER_LEN.load(Ordering::Acquire);
    // SAFETY: written before STATIC was set, never again.
    unsafe { &(&*std::ptr::addr_of!(LOADER))[..n] }
}

/// Whether the file at `path` is a static x86_64 ELF (no PT_INTERP).
fn is_static_elf(path: &[u8]) -> bool {
    use std::io::Read;
    let path = std::path::Path::new(std::ffi::OsStr::from_bytes(path));
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let mut head = vec![0u8; 4096];
    let Ok(n) = f.read(&mut head) else {
        return false;
    };
    let h = &head[..n];
    if n < 64 || &h[..4] != b"\x7fELF" || h[4] != 2 {
        return false;
    }
    let phoff = u64::from_le_bytes(h[32..40].try_into().unwrap_or([0; 8])) as usize;
    let size = usize::from(u16::from_le_bytes([h[54], h[55]]));
    let num = usize::from(u16::from_le_bytes([h[56], h[57]]));
    if size < 4 || phoff + num * size > n {
        return false;
    }
    !(0..num).any(|i| {
        let o = phoff + i * size;
        u32::from_le_bytes(h[o..o + 4].try_into().unwrap_or([0; 4])) == 3
    })
}

/// The NUL-terminated strings of a program's `char *[]` (null-ended).
fn c_strings(v: i64) -> Vec<&'static [u8]> {
    let mut out = Vec::new();
    if v == 0 {
        return out;
    }
    let mut p = v as usize as *const *const c_char;
    // SAFETY: the program's argv/envp array and its strings.
    unsafe {
        while !(*p).is_null() {
            out.push(CStr::from_ptr(*p).to_bytes());
            p = p.add(1);
        }
    }
    out
}

/// `execve(path, argv, envp)` of a static program: the loader again.
fn execve(nr: i64, a: [i64; 6]) -> Option<i64> {
    if nr != 59 || a[0] == 0 {
        return None;
    }
    // SAFETY: the program's NUL-terminated path.
    let mut path = unsafe { CStr::from_ptr(a[0] as usize as *const c_char) }.to_bytes();
    if is_self_exe(a[0]) {
        path = exe();
    }
    if !is_static_elf(path) || loader().is_empty() {
        if path.as_ptr() != a[0] as usize as *const u8 {
            let p = std::ffi::CString::new(path).ok()?;
            return Some(host(nr, [p.as_ptr() as i64, a[1], a[2], 0, 0, 0]));
        }
        return None;
    }
    let argv = c_strings(a[1]);
    let mut strings: Vec<std::ffi::CString> = Vec::new();
    for s in [loader(), path]
        .into_iter()
        .chain(std::iter::once(argv.first().copied().unwrap_or(path)))
        .chain(argv.iter().skip(1).copied())
    {
        strings.push(std::ffi::CString::new(s).ok()?);
    }
    let mut ptrs: Vec<*const c_char> = strings.iter().map(|s| s.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    Some(host(
        nr,
        [
            strings[0].as_ptr() as i64,
            ptrs.as_ptr() as i64,
            a[2],
            0,
            0,
            0,
        ],
    ))
}

/// The program's path.
fn exe() -> &'static [u8] {
    let n = EXE_LEN.load(Ordering::Acquire);
    // SAFETY: written before STATIC was set, never again.
    unsafe { &(&*std::ptr::addr_of!(EXE))[..n] }
}

/// True for the path "/proc/self/exe" (or /proc/PID/exe of ours).
fn is_self_exe(p: i64) -> bool {
    if p == 0 {
        return false;
    }
    // SAFETY: the program's NUL-terminated path.
    let s = unsafe { CStr::from_ptr(p as usize as *const c_char) }.to_bytes();
    s == b"/proc/self/exe" || s == b"/proc/thread-self/exe"
}

/// `readlink` of `/proc/self/exe`: the program's path.
fn readlink_exe(buf: i64, size: i64) -> i64 {
    let e = exe();
    let n = e.len().min(size.max(0) as usize);
    // SAFETY: the program's buffer of `size` bytes.
    unsafe { std::ptr::copy_nonoverlapping(e.as_ptr(), buf as usize as *mut u8, n) };
    n as i64
}

/// The program's handler for each signal, behind `shim`, and its flags.
static HANDLERS: [AtomicUsize; 65] = [const { AtomicUsize::new(0) }; 65];
static FLAGS: [AtomicU64; 65] = [const { AtomicU64::new(0) }; 65];

/// A static program's handler runs on the program's `%fs`: a signal that
/// arrives while a routed call runs (our `%fs` swapped in) would have it
/// read its TLS from ours (Go's finds its goroutine there). So each
/// handler is installed behind this shim, which puts the program's `%fs`
/// back around it in that case. And, as our wrapper does for a dynamic
/// program (signals.rs), it first ends the thread's blocking kernel call
/// (EINTR after the handler, or the call issued again under SA_RESTART):
/// the thread's own (our `%fs` in: the main thread, a fork child), or the
/// one its twin makes for it (twin.rs). A process-wide signal on a thread
/// other than the main one is first queued again for the main thread
/// (`gate::redirect_to_main`, as the wrapper does). Async-signal-safe:
/// registers, the thread's block, atomics, raw calls.
extern "C" fn shim(sig: c_int, info: *mut libc::siginfo_t, ctx: *mut std::ffi::c_void) {
    let Some(i) = usize::try_from(sig).ok().filter(|&i| i < HANDLERS.len()) else {
        return;
    };
    let h = HANDLERS[i].load(Ordering::Acquire);
    if h <= 1 {
        return;
    }
    // A process-wide signal taken by a thread that trapped goes where the
    // host would have delivered it, as in our wrapper (signals.rs).
    if gate::redirect_to_main(sig, info) {
        return;
    }
    let restart = FLAGS[i].load(Ordering::Acquire) & libc::SA_RESTART as u64 != 0;
    // SAFETY: the program installed `h` as a handler (called with the
    // three arguments, which a one-argument handler ignores).
    let handler: extern "C" fn(c_int, *mut libc::siginfo_t, *mut std::ffi::c_void) =
        unsafe { std::mem::transmute(h) };
    let (gs, fs): (usize, usize);
    // SAFETY: FSGSBASE is there (lkl_hijack_loader_begin checked it).
    unsafe {
        std::arch::asm!("rdgsbase {}", "rdfsbase {}", out(reg) gs, out(reg) fs,
            options(nostack, nomem))
    };
    let b = gs as *mut gate::Block;
    // SAFETY: a non-zero %gs base is a block of ours (an armed thread, or
    // one made by one); its fields are plain data.
    let ours = !b.is_null() && unsafe { (*b).swap_fs != 0 && (*b).host_fs == fs };
    if !ours {
        if !b.is_null() {
            // SAFETY: as above.
            super::twin::on_signal(unsafe { (*b).twin }, restart);
        }
        handler(sig, info, ctx);
        return;
    }
    // Our %fs is in: the library's thread-locals are this thread's.
    crate::hijack::signals::interrupt_own_call(restart);
    // SAFETY: as above.
    let prog = unsafe { (*b).prog_fs };
    // SAFETY: the program's %fs, then ours again once its handler is done.
    unsafe { std::arch::asm!("wrfsbase {}", in(reg) prog, options(nostack, nomem)) };
    handler(sig, info, ctx);
    // SAFETY: as above.
    unsafe { std::arch::asm!("wrfsbase {}", in(reg) fs, options(nostack, nomem)) };
}

/// `rt_sigaction` of a static program (not SIGSYS): the host's, its
/// handler behind `shim`, SIGSYS unblocked in it.
fn sigaction(a: [i64; 6]) -> i64 {
    let sig = a[0] as usize;
    if sig == 0 || sig >= HANDLERS.len() {
        return host(13, a);
    }
    let mine = shim as *const () as usize;
    let sa_siginfo = libc::SA_SIGINFO as u64;
    let (prev, prev_flags) = (
        HANDLERS[sig].load(Ordering::Acquire),
        FLAGS[sig].load(Ordering::Acquire),
    );
    let mut k = a;
    let mut act: gate::KSigaction;
    if a[1] != 0 {
        // SAFETY: the program's kernel sigaction.
        act = unsafe { (a[1] as usize as *const gate::KSigaction).read_unaligned() };
        act.mask &= !gate::SIGSYS_BIT;
        if act.handler > 1 {
            HANDLERS[sig].store(act.handler, Ordering::Release);
            FLAGS[sig].store(act.flags, Ordering::Release);
            act.handler = mine;
            // The shim reads the siginfo (`redirect_to_main`): the host
            // fills it in only with SA_SIGINFO.
            act.flags |= sa_siginfo;
        }
        k[1] = &act as *const gate::KSigaction as i64;
    }
    let r = host(13, k);
    if r == 0 && a[2] != 0 {
        // SAFETY: the program's old-action struct, just written.
        unsafe {
            let o = a[2] as usize as *mut gate::KSigaction;
            if (*o).handler == mine {
                // The program's own handler and flags, not the shim's.
                (*o).handler = prev;
                (*o).flags = ((*o).flags & !sa_siginfo) | (prev_flags & sa_siginfo);
            }
        }
    }
    r
}

/// The calls a static program needs answered differently; None: route
/// as usual.
pub fn route(f: &mut Frame, nr: i64, a: [i64; 6]) -> Option<i64> {
    // SAFETY: the thread's live block.
    let swapped = unsafe { (*f.block).swap_fs } != 0;
    Some(match nr {
        158 if a[0] == ARCH_SET_FS && swapped => {
            f.fs = a[1] as u64;
            0
        }
        158 if a[0] == ARCH_GET_FS && swapped => {
            // SAFETY: the program's u64.
            unsafe { (a[1] as usize as *mut u64).write_unaligned(f.fs) };
            0
        }
        12 => host(nr, [0; 6]),
        89 if is_self_exe(a[0]) => readlink_exe(a[1], a[2]),
        267 if is_self_exe(a[1]) => readlink_exe(a[2], a[3]),
        13 if a[0] != i64::from(libc::SIGSYS) && a[3] == 8 => sigaction(a),
        13 => rt_sigaction(a),
        59 => return execve(nr, a),
        56 | 435 => {
            let flags = if nr == 56 {
                a[0] as u64
            } else if a[0] != 0 && a[1] >= 8 {
                // SAFETY: the program's clone_args (flags first).
                unsafe { (a[0] as usize as *const u64).read_unaligned() }
            } else {
                0
            };
            if flags & libc::CLONE_VM as u64 != 0 && flags & libc::CLONE_VFORK as u64 == 0 {
                // A thread: its twin first (the thread has no TLS of ours).
                let twin = super::twin::for_new_thread(f);
                if twin.is_null() {
                    return Some(-i64::from(libc::EAGAIN));
                }
                return Some(spawn(f, nr, a, twin));
            }
            spawn(f, nr, a, std::ptr::null_mut())
        }
        _ => return None,
    })
}
