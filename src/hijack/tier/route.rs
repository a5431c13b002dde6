//! The router: a trapped call goes to the library's own hook for it, the
//! very function the program reaches through `LD_PRELOAD` (the exported
//! `socket`, `read`, `accept4`, `epoll_pwait`, ...), so both tiers share
//! one decision (kernel or host) and one descriptor table. A number with
//! no hook is issued to the host as it is. A few are the tier's own:
//! the clone family (the child armed before it runs), `rt_sigaction` of
//! SIGSYS (recorded, never given to the host), `prctl` of the dispatch
//! (refused), io_uring (ENOSYS: programs fall back to plain calls).
//!
//! A hook answers as libc does (-1 and errno); the program's `syscall`
//! instruction wants the kernel's answer (-errno), and its errno left
//! alone: both handled here.
//!
//! The hooks are called by their C names (`libc::read` and the rest): in
//! this library those names are our own exported hooks (that is how the
//! program reaches them too), so the call is the hook, never libc's.

use std::ffi::{c_char, c_int, c_uint};
use std::sync::atomic::{AtomicBool, Ordering};

use super::arm;
use super::gate::{self, KSigaction};
use super::trap::{self, Frame};
use crate::hijack::fdtable;
use crate::hijack::host::{errno, set_errno};
use crate::hijack::lifecycle::diag;

extern "C" {
    // Hooks of ours whose C declarations the libc crate lacks.
    fn epoll_pwait2(
        epfd: c_int,
        events: *mut libc::epoll_event,
        max: c_int,
        timeout: *const libc::timespec,
        sigmask: *const libc::sigset_t,
    ) -> c_int;
}

/// Called by the trampoline, on the thread's own stack, selector ALLOW.
pub extern "C" fn lkl_tier_dispatch(f: *mut Frame) {
    // SAFETY: the trampoline passes the frame the handler wrote.
    let f = unsafe { &mut *f };
    // SAFETY: the thread's live block.
    if !unsafe { (*f.block).twin }.is_null() {
        // A static program's thread: no TLS of ours here.
        f.rax = super::twin::route(f) as u64;
        return;
    }
    // SAFETY: the thread's live block (its own: only it writes `adopted`).
    unsafe {
        if (*f.block).adopted == 0 {
            gate::adopt(f.block);
            (*f.block).adopted = 1;
        }
    }
    f.rax = route_with_errno(f) as u64;
}

/// The call in `f`, routed, the program's errno left as it was (on a
/// thread with the library's TLS: its own, or its twin).
pub(super) fn route_with_errno(f: &mut Frame) -> i64 {
    let saved = errno();
    let r = route(f);
    set_errno(saved);
    r
}

/// Whether call `nr` (first argument `a0`) needs the library's TLS: the
/// calls routed to hooks, and the loader's `execve` and `exit_group`.
pub(super) fn needs_tls(nr: i64, a0: i64) -> bool {
    matches!(
        nr,
        0..=9
            | 16..=21
            | 23
            | 32
            | 33
            | 40..=52
            | 54
            | 55
            | 59
            | 72..=77
            | 79..=94
            | 137
            | 138
            | 213
            | 231
            | 232
            | 233
            | 257..=260
            | 262..=271
            | 275
            | 280
            | 281
            | 285
            | 288
            | 291
            | 292
            | 295
            | 296
            | 299
            | 306
            | 307
            | 316
            | 332
            | 439
            | 441
    ) || (nr == 157 && a0 == trap::PR_SET_SYSCALL_USER_DISPATCH)
        || (nr == 13 && !gate::STATIC.load(Ordering::Relaxed))
}

/// The arguments of the call in `f`.
pub(super) fn args(f: &Frame) -> [i64; 6] {
    [
        f.rdi as i64,
        f.rsi as i64,
        f.rdx as i64,
        f.r10 as i64,
        f.r8 as i64,
        f.r9 as i64,
    ]
}

/// A call whose hook would hand it straight to libc: a read, write, send,
/// receive or accept on a host descriptor, a `poll`/`ppoll` of host
/// descriptors only. A thread with a twin (twin.rs) issues it itself, with
/// no TLS of ours: no hand-off, and its signals interrupt it as the host's
/// (the host restarts it under SA_RESTART). None: not such a call.
pub(super) fn host_fd_call(nr: i64, a: [i64; 6]) -> Option<i64> {
    let host_fd = |fd: i64| fdtable::kernel_fd(fd as c_int).is_none();
    match nr {
        0 | 1 | 17..=20 | 43..=45 | 288 if host_fd(a[0]) => Some(host(nr, a)),
        7 if host_pollfds(a[0], a[1]) => Some(host(nr, a)),
        271 if host_pollfds(a[0], a[1]) => {
            let m = Unblocked::new(a[3]);
            Some(host(nr, [a[0], a[1], a[2], m.ptr() as i64, a[4], a[5]]))
        }
        _ => None,
    }
}

/// Whether the program's `nfds` pollfds at `fds` are all host descriptors
/// (a large or unreadable set: left to the hook).
fn host_pollfds(fds: i64, nfds: i64) -> bool {
    if !(0..=256).contains(&nfds) || (fds == 0 && nfds > 0) {
        return false;
    }
    let p = fds as usize as *const libc::pollfd;
    (0..nfds as usize).all(|i| {
        // SAFETY: the program's array of `nfds` pollfds (poll reads it too).
        let fd = unsafe { std::ptr::addr_of!((*p.add(i)).fd).read_unaligned() };
        fdtable::kernel_fd(fd).is_none()
    })
}

/// The calls that need no TLS of ours (a thread with a twin makes them
/// itself): the loader's, signal masks, clone, io_uring, the host's.
pub(super) fn route_without_tls(f: &mut Frame) -> i64 {
    let nr = f.rax as i64;
    let a = args(f);
    special(f, nr, a).unwrap_or_else(|| host(nr, a))
}

/// The tier's own answers (no TLS of ours used); None: a hook's or the
/// host's call.
fn special(f: &mut Frame, nr: i64, a: [i64; 6]) -> Option<i64> {
    if gate::STATIC.load(Ordering::Relaxed) {
        if let Some(r) = super::loader::route(f, nr, a) {
            return Some(r);
        }
    }
    Some(match nr {
        13 => rt_sigaction(a),
        14 => sigprocmask(a),
        // A raw exit_group (Go's runtime, `_exit`, a static program's
        // exit) skips libc's exit and so our destructor: the kernel is
        // halted first, as the destructor would (unsent TCP data goes out).
        231 => {
            crate::hijack::init::before_exit_group();
            host(nr, a)
        }
        56 | 57 | 58 | 435 => spawn(f, nr, a, std::ptr::null_mut()),
        130 if a[1] == 8 && a[0] != 0 => {
            let m = Unblocked::new(a[0]);
            host(nr, [m.ptr() as i64, 8, 0, 0, 0, 0])
        }
        // io_uring's calls are invisible once set up: programs fall back
        // to plain calls.
        425..=427 => -i64::from(libc::ENOSYS),
        _ => return None,
    })
}

/// A hook's libc-style answer as the system call's.
fn ret(r: i64) -> i64 {
    if r == -1 {
        -i64::from(errno())
    } else {
        r
    }
}

/// The host's own call, as the program made it.
pub(super) fn host(nr: i64, a: [i64; 6]) -> i64 {
    let r: i64;
    // SAFETY: the program's own call with its own arguments; the selector
    // is ALLOW here, so it goes to the host.
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") nr => r,
            in("rdi") a[0], in("rsi") a[1], in("rdx") a[2],
            in("r10") a[3], in("r8") a[4], in("r9") a[5],
            lateout("rcx") _, lateout("r11") _,
            options(nostack),
        );
    }
    r
}

macro_rules! p {
    ($e:expr) => {
        $e as usize as *mut _
    };
}

/// The call in `f`, routed.
fn route(f: &mut Frame) -> i64 {
    let nr = f.rax as i64;
    let a = args(f);
    let i = |k: usize| a[k] as c_int;
    let u = |k: usize| a[k] as usize;
    if let Some(r) = special(f, nr, a) {
        return r;
    }
    // SAFETY: each hook gets the program's own arguments for the call of
    // that number, in the C types of its libc function; the hooks check
    // them as libc would (EFAULT for impossible pointers).
    unsafe {
        let r: i64 = match nr {
            0 => libc::read(i(0), p!(a[1]), u(2)) as i64,
            1 => libc::write(i(0), p!(a[1]), u(2)) as i64,
            2 => libc::open(p!(a[0]), i(1), a[2] as c_uint).into(),
            3 => libc::close(i(0)).into(),
            4 => libc::stat(p!(a[0]), p!(a[1])).into(),
            5 => libc::fstat(i(0), p!(a[1])).into(),
            6 => libc::lstat(p!(a[0]), p!(a[1])).into(),
            7 => libc::poll(p!(a[0]), a[1] as libc::nfds_t, i(2)).into(),
            8 => libc::lseek(i(0), a[1], i(2)),
            9 => libc::mmap(p!(a[0]), u(1), i(2), i(3), i(4), a[5]) as i64,
            16 => libc::ioctl(i(0), a[1] as libc::c_ulong, a[2]).into(),
            17 => libc::pread(i(0), p!(a[1]), u(2), a[3]) as i64,
            18 => libc::pwrite(i(0), p!(a[1]), u(2), a[3]) as i64,
            19 => libc::readv(i(0), p!(a[1]), i(2)) as i64,
            20 => libc::writev(i(0), p!(a[1]), i(2)) as i64,
            21 => libc::access(p!(a[0]), i(1)).into(),
            23 => libc::select(i(0), p!(a[1]), p!(a[2]), p!(a[3]), p!(a[4])).into(),
            32 => libc::dup(i(0)).into(),
            33 => libc::dup2(i(0), i(1)).into(),
            40 => libc::sendfile(i(0), i(1), p!(a[2]), u(3)) as i64,
            41 => libc::socket(i(0), i(1), i(2)).into(),
            42 => libc::connect(i(0), p!(a[1]), a[2] as u32).into(),
            43 => libc::accept(i(0), p!(a[1]), p!(a[2])).into(),
            44 => libc::sendto(i(0), p!(a[1]), u(2), i(3), p!(a[4]), a[5] as u32) as i64,
            45 => libc::recvfrom(i(0), p!(a[1]), u(2), i(3), p!(a[4]), p!(a[5])) as i64,
            46 => libc::sendmsg(i(0), p!(a[1]), i(2)) as i64,
            47 => libc::recvmsg(i(0), p!(a[1]), i(2)) as i64,
            48 => libc::shutdown(i(0), i(1)).into(),
            49 => libc::bind(i(0), p!(a[1]), a[2] as u32).into(),
            50 => libc::listen(i(0), i(1)).into(),
            51 => libc::getsockname(i(0), p!(a[1]), p!(a[2])).into(),
            52 => libc::getpeername(i(0), p!(a[1]), p!(a[2])).into(),
            54 => libc::setsockopt(i(0), i(1), i(2), p!(a[3]), a[4] as u32).into(),
            55 => libc::getsockopt(i(0), i(1), i(2), p!(a[3]), p!(a[4])).into(),
            72 => libc::fcntl(i(0), i(1), a[2]).into(),
            73 => libc::flock(i(0), i(1)).into(),
            74 => libc::fsync(i(0)).into(),
            75 => libc::fdatasync(i(0)).into(),
            76 => libc::truncate(p!(a[0]), a[1]).into(),
            77 => libc::ftruncate(i(0), a[1]).into(),
            79 => {
                let buf: *mut c_char = p!(a[0]);
                if libc::getcwd(buf, u(1)).is_null() {
                    -1
                } else {
                    libc::strlen(buf) as i64 + 1
                }
            }
            80 => libc::chdir(p!(a[0])).into(),
            81 => libc::fchdir(i(0)).into(),
            82 => libc::rename(p!(a[0]), p!(a[1])).into(),
            83 => libc::mkdir(p!(a[0]), a[1] as libc::mode_t).into(),
            84 => libc::rmdir(p!(a[0])).into(),
            85 => libc::creat(p!(a[0]), a[1] as libc::mode_t).into(),
            86 => libc::link(p!(a[0]), p!(a[1])).into(),
            87 => libc::unlink(p!(a[0])).into(),
            88 => libc::symlink(p!(a[0]), p!(a[1])).into(),
            89 => libc::readlink(p!(a[0]), p!(a[1]), u(2)) as i64,
            90 => libc::chmod(p!(a[0]), a[1] as libc::mode_t).into(),
            91 => libc::fchmod(i(0), a[1] as libc::mode_t).into(),
            92 => libc::chown(p!(a[0]), a[1] as u32, a[2] as u32).into(),
            93 => libc::fchown(i(0), a[1] as u32, a[2] as u32).into(),
            94 => libc::lchown(p!(a[0]), a[1] as u32, a[2] as u32).into(),
            137 => libc::statfs(p!(a[0]), p!(a[1])).into(),
            138 => libc::fstatfs(i(0), p!(a[1])).into(),
            213 => libc::epoll_create(i(0)).into(),
            232 => libc::epoll_wait(i(0), p!(a[1]), i(2), i(3)).into(),
            233 => libc::epoll_ctl(i(0), i(1), i(2), p!(a[3])).into(),
            257 => libc::openat(i(0), p!(a[1]), i(2), a[3] as c_uint).into(),
            258 => libc::mkdirat(i(0), p!(a[1]), a[2] as libc::mode_t).into(),
            259 => libc::mknodat(i(0), p!(a[1]), a[2] as libc::mode_t, a[3] as libc::dev_t).into(),
            260 => libc::fchownat(i(0), p!(a[1]), a[2] as u32, a[3] as u32, i(4)).into(),
            262 => libc::fstatat(i(0), p!(a[1]), p!(a[2]), i(3)).into(),
            263 => libc::unlinkat(i(0), p!(a[1]), i(2)).into(),
            264 => libc::renameat(i(0), p!(a[1]), i(2), p!(a[3])).into(),
            265 => libc::linkat(i(0), p!(a[1]), i(2), p!(a[3]), i(4)).into(),
            266 => libc::symlinkat(p!(a[0]), i(1), p!(a[2])).into(),
            267 => libc::readlinkat(i(0), p!(a[1]), p!(a[2]), u(3)) as i64,
            268 => libc::fchmodat(i(0), p!(a[1]), a[2] as libc::mode_t, i(3)).into(),
            269 => libc::faccessat(i(0), p!(a[1]), i(2), 0).into(),
            439 => libc::faccessat(i(0), p!(a[1]), i(2), i(3)).into(),
            270 => pselect6(a),
            271 => {
                let m = Unblocked::new(a[3]);
                libc::ppoll(p!(a[0]), a[1] as libc::nfds_t, p!(a[2]), m.ptr()).into()
            }
            275 => libc::splice(i(0), p!(a[1]), i(2), p!(a[3]), u(4), a[5] as c_uint) as i64,
            280 => libc::utimensat(i(0), p!(a[1]), p!(a[2]), i(3)).into(),
            281 => {
                let m = Unblocked::new(a[4]);
                libc::epoll_pwait(i(0), p!(a[1]), i(2), i(3), m.ptr()).into()
            }
            441 => {
                let m = Unblocked::new(a[4]);
                epoll_pwait2(i(0), p!(a[1]), i(2), p!(a[3]), m.ptr()).into()
            }

            285 => libc::fallocate(i(0), i(1), a[2], a[3]).into(),
            288 => libc::accept4(i(0), p!(a[1]), p!(a[2]), i(3)).into(),
            291 => libc::epoll_create1(i(0)).into(),
            292 => libc::dup3(i(0), i(1), i(2)).into(),
            295 => libc::preadv(i(0), p!(a[1]), i(2), a[3]) as i64,
            296 => libc::pwritev(i(0), p!(a[1]), i(2), a[3]) as i64,
            299 => libc::recvmmsg(i(0), p!(a[1]), a[2] as c_uint, i(3), p!(a[4])).into(),
            306 => libc::syncfs(i(0)).into(),
            307 => libc::sendmmsg(i(0), p!(a[1]), a[2] as c_uint, i(3)).into(),
            316 => libc::renameat2(i(0), p!(a[1]), i(2), p!(a[3]), a[4] as c_uint).into(),
            332 => libc::statx(i(0), p!(a[1]), i(2), a[3] as c_uint, p!(a[4])).into(),
            157 if a[0] == trap::PR_SET_SYSCALL_USER_DISPATCH => {
                static SAID: AtomicBool = AtomicBool::new(false);
                if !SAID.swap(true, Ordering::Relaxed) {
                    diag("prctl(PR_SET_SYSCALL_USER_DISPATCH) refused (EBUSY): the system-call tier (syscalls=all) holds it");
                }
                return -i64::from(libc::EBUSY);
            }
            _ => return host(nr, a),
        };
        ret(r)
    }
}

/// A signal mask of the program's (a call's argument) without SIGSYS:
/// a trap while SIGSYS is blocked kills the process.
struct Unblocked(Option<libc::sigset_t>);

impl Unblocked {
    /// From the program's `sigset_t *` (0: none).
    fn new(p: i64) -> Self {
        if p == 0 {
            return Unblocked(None);
        }
        // SAFETY: the program's set; only its first 8 bytes (the kernel's
        // 64 signals) count, the rest is zeroed here.
        unsafe {
            let mut s: libc::sigset_t = std::mem::zeroed();
            let bits = (p as usize as *const u64).read_unaligned() & !gate::SIGSYS_BIT;
            std::ptr::addr_of_mut!(s)
                .cast::<u64>()
                .write_unaligned(bits);
            Unblocked(Some(s))
        }
    }

    fn ptr(&self) -> *const libc::sigset_t {
        self.0.as_ref().map_or(std::ptr::null(), |s| s as *const _)
    }
}

/// `pselect6`: its sixth argument points at { sigset pointer, size }.
unsafe fn pselect6(a: [i64; 6]) -> i64 {
    let mut mask = Unblocked(None);
    if a[5] != 0 {
        // SAFETY: the program's { const sigset_t *, size_t } pair.
        mask = Unblocked::new(unsafe { *(a[5] as usize as *const i64) });
    }
    let mask = mask.ptr();
    // SAFETY: the program's arguments for pselect.
    unsafe {
        libc::pselect(
            a[0] as c_int,
            p!(a[1]),
            p!(a[2]),
            p!(a[3]),
            a[4] as usize as *const libc::timespec,
            mask,
        )
    }
    .into()
}

/// `rt_sigaction`: SIGSYS is the tier's (the program's action recorded);
/// any other signal goes to the `sigaction` hook, in glibc's layout (the
/// hook wraps handlers so that signals interrupt kernel calls).
pub(super) fn rt_sigaction(a: [i64; 6]) -> i64 {
    let (sig, act, old) = (a[0] as c_int, a[1] as usize, a[2] as usize);
    if a[3] != 8 {
        return -i64::from(libc::EINVAL);
    }
    if sig == libc::SIGSYS {
        // SAFETY: the program's kernel-layout structs (or null).
        return unsafe { gate::sigsys_kaction(act as *const KSigaction, old as *mut KSigaction) };
    }
    // SAFETY: all-zero is a valid sigaction; the program's struct is read
    // in the kernel's layout.
    unsafe {
        let mut g: libc::sigaction = std::mem::zeroed();
        if act != 0 {
            let k = (act as *const KSigaction).read_unaligned();
            g.sa_sigaction = k.handler;
            // glibc sets its own restorer.
            g.sa_flags = (k.flags & !gate::SA_RESTORER) as c_int;
            std::ptr::addr_of_mut!(g.sa_mask)
                .cast::<u64>()
                .write_unaligned(k.mask & !gate::SIGSYS_BIT);
        }
        let mut o: libc::sigaction = std::mem::zeroed();
        let r = libc::sigaction(
            sig,
            if act != 0 { &g } else { std::ptr::null() },
            if old != 0 {
                &mut o
            } else {
                std::ptr::null_mut()
            },
        );
        if r != 0 {
            return -i64::from(errno());
        }
        if old != 0 {
            let k = KSigaction {
                handler: o.sa_sigaction,
                flags: o.sa_flags as u32 as u64,
                restorer: o.sa_restorer.map_or(0, |f| f as usize),
                mask: std::ptr::addr_of!(o.sa_mask).cast::<u64>().read_unaligned(),
            };
            (old as *mut KSigaction).write_unaligned(k);
        }
        0
    }
}

/// `rt_sigprocmask`: SIGSYS is never blocked (a trap while it is blocked
/// kills the process: the host resets the handler), so it is taken out of
/// any set the program blocks (glibc blocks every signal around
/// `pthread_create`, a new thread starts so).
fn sigprocmask(a: [i64; 6]) -> i64 {
    if a[1] == 0 || a[0] == i64::from(libc::SIG_UNBLOCK) || a[3] != 8 {
        return host(libc::SYS_rt_sigprocmask, a);
    }
    // SAFETY: the program's 8-byte set.
    let set = unsafe { (a[1] as usize as *const u64).read_unaligned() } & !gate::SIGSYS_BIT;
    let mut b = a;
    b[1] = &set as *const u64 as i64;
    host(libc::SYS_rt_sigprocmask, b)
}

/// Whether the library's thread-local storage is in use on this frame's
/// thread: a dynamic program's thread, a static program's thread whose own
/// calls reach the hooks; not a thread with a twin (docs/every-syscall.md).
fn has_library_tls(f: &Frame) -> bool {
    // SAFETY: the thread's live block.
    !gate::STATIC.load(Ordering::Relaxed) || unsafe { (*f.block).swap_fs } != 0
}

/// The clone family: the call issued by `lkl_tier_clone`, whose child
/// arms itself before it runs the program. A child sharing our memory
/// gets a block (stack, selector) of its own; the parent waits until it
/// no longer reads the frame (a vfork parent is held by the host kernel
/// until the child execs or exits, and then gives its block back).
pub(super) fn spawn(f: &mut Frame, nr: i64, a: [i64; 6], twin: *mut super::twin::Twin) -> i64 {
    let (flags, new_stack) = match nr {
        57 => (libc::SIGCHLD as u64, false),
        58 => ((libc::CLONE_VM | libc::CLONE_VFORK) as u64, false),
        56 => (a[0] as u64, a[1] != 0),
        _ => {
            // clone3(struct clone_args *, size): flags at 0, stack at 40.
            if a[1] < 64 || a[0] == 0 {
                return host(nr, a);
            }
            // SAFETY: the program's clone_args, at least 64 bytes.
            let (fl, stack) = unsafe {
                let p = a[0] as usize as *const u64;
                (p.read_unaligned(), p.add(5).read_unaligned())
            };
            (fl, stack != 0)
        }
    };
    let vm = flags & libc::CLONE_VM as u64 != 0;
    let vfork = flags & libc::CLONE_VFORK as u64 != 0;
    if vm {
        let b = arm::alloc_block(!vfork);
        if b.is_null() {
            return -i64::from(libc::ENOMEM);
        }
        f.child_block = b;
        // SAFETY: the new block; the parent's, live. A vfork child shares
        // our memory and TLS (and the waiting parent's twin); a thread
        // with a twin has no TLS of ours.
        unsafe {
            if twin.is_null() {
                (*b).swap_fs = (*f.block).swap_fs;
                (*b).host_fs = (*f.block).host_fs;
                (*b).twin = (*f.block).twin;
            } else {
                (*b).twin = twin.cast();
            }
        }
        // SAFETY: the new block.
        f.child_sel = unsafe { std::ptr::addr_of_mut!((*b).selector) };
    } else {
        f.child_block = std::ptr::null_mut();
        // SAFETY: the thread's own block, which the child's copy of memory
        // holds at the same address.
        f.child_sel = unsafe { std::ptr::addr_of_mut!((*f.block).selector) };
    }
    f.child_keep_sp = new_stack.into();
    // The child inherits the %fs the trampoline swapped in: the program's
    // goes back, unless the host gives the child its own (CLONE_SETTLS).
    // SAFETY: the thread's live block.
    let swapped = unsafe { (*f.block).swap_fs } != 0;
    f.child_fs = (swapped && flags & libc::CLONE_SETTLS as u64 == 0).into();
    f.child_done.store(0, Ordering::Release);
    // A fork no hook of ours is around (a static program's `fork`, a raw
    // `clone` without CLONE_VM) in a tree: the kernel process forks first,
    // as in the `fork` hook (process.rs), so that the child gets a copy of
    // the descriptor table and channels of its own, never its parent's.
    let tree_fork = if vm || !crate::hijack::tree::client() {
        None
    } else if !has_library_tls(f) {
        // Nothing here may ask the server; a twin-less child at least
        // gets channels of its own.
        Some(None)
    } else if crate::hijack::process::in_fork_hook() {
        None
    } else {
        match crate::hijack::tree::fork_prepare() {
            Ok(t) => Some(Some(t)),
            Err(e) => {
                diag(&format!(
                    "fork: the kernel process could not fork ({e}): the child has no kernel descriptors"
                ));
                Some(None)
            }
        }
    };
    if let Some(t) = tree_fork {
        crate::hijack::tree::tier_fork_prepare(t);
    }
    // SAFETY: the frame holds the program's call and what the child needs.
    let r = unsafe { trap::lkl_tier_clone(f) };
    if let Some(t) = tree_fork {
        crate::hijack::tree::tier_fork_parent(t, if r > 0 { r as i32 } else { -1 });
    }
    if vm {
        if r < 0 || vfork {
            arm::free_block(f.child_block);
        } else {
            while f.child_done.load(Ordering::Acquire) == 0 {
                host(libc::SYS_sched_yield, [0; 6]);
            }
        }
    }
    r
}
