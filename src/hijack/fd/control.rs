//! The calls that manage descriptors, kernel and host ones alike: close
//! (a kernel descriptor leaves its epoll sets and its packet ring first;
//! from a signal handler it is only retired, see `fdtable::close_later`),
//! `syscall`'s descriptor calls (SYS_close is our close; the hook itself
//! is process.rs's, which also follows a fork made this way), dup, dup2, dup3 and fcntl's
//! F_DUPFD (a kernel duplicate gets a host number of its own, the one
//! asked for where there is one), fcntl and ioctl.
//!
//! `fcntl`, `ioctl` and `syscall` are variadic in C; on x86_64 the
//! arguments of a variadic call travel in the same registers (and stack
//! slots) as fixed ones, so they are defined here with fixed pointer-sized
//! arguments.

use std::ffi::{c_int, c_long, c_ulong};

use lkl::syscall::{nr, raw};

use crate::hijack::call::kcall;
use crate::hijack::fd::{epoll, stream};
use crate::hijack::fdtable;
use crate::hijack::host::{self, fail, libc_fn, set_errno};
use crate::hijack::lifecycle::{forked, park_if_exiting};
use crate::hijack::net::packet;
use crate::hijack::signals;

/// # Safety
/// libc's contract for `close`.
#[no_mangle]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    if crate::hijack::tree::owns(fd) {
        // The library's channel to the tree's kernel: it stays (as if
        // closed, the number stays taken).
        return 0;
    }
    if let Some(k) = fdtable::kernel_fd(fd) {
        if fdtable::retired(k) {
            // Closed already (by a signal handler, the rest still to do)
            // or retired by the exit path (where this thread stops).
            park_if_exiting();
            return fail(libc::EBADF);
        }
        if signals::in_handler() && !forked() {
            // From a signal handler: no lock, no allocation, no kernel call.
            fdtable::close_later(fd);
            return 0;
        }
        forget_users(fd);
    }
    epoll::forget_epoll(fd);
    if let Some(kfd) = fdtable::remove(fd) {
        // In a forked child the kernel descriptor is the parent's: only
        // the placeholder goes.
        let r = if forked() {
            0
        } else {
            kcall(nr::CLOSE, [kfd.into(), 0, 0, 0, 0, 0])
        };
        // The placeholder that stood for the kernel descriptor.
        host::close(fd);
        return r as c_int;
    }
    libc_fn!(close, fn(c_int) -> c_int; fd)
}

/// Drops what the layers above the table keep for kernel descriptor `fd`
/// (being closed): its packet ring and its epoll memberships, before the
/// kernel close (a member's notifier holds the kernel file). Also what
/// `fdtable::finish_closes` calls for a close a signal handler left (init
/// hands it over).
pub fn forget_users(fd: c_int) {
    packet::forget(fd);
    epoll::forget_member(fd);
}

/// `close_range`: kernel descriptors in the range are closed as `close`
/// closes them (the kernel's file, the placeholder); the library's own
/// channel to a tree's kernel stays; the rest is the host's. With
/// `CLOSE_RANGE_CLOEXEC` only flags change: the host's call does it all.
///
/// # Safety
/// libc's contract for `close_range`.
#[no_mangle]
pub unsafe extern "C" fn close_range(first: u32, last: u32, flags: c_int) -> c_int {
    // libc's own (a `syscall` here would come back to this hook).
    let host_range = |a: u32, b: u32| -> c_int {
        libc_fn!(close_range, fn(u32, u32, c_int) -> c_int; a, b, flags)
    };
    if flags & libc::CLOSE_RANGE_CLOEXEC as c_int != 0 || last < first {
        return host_range(first, last);
    }
    let top = last.min(fdtable::MAX_FDS as u32 - 1);
    let mut from = first;
    let mut fd = first;
    while fd <= top {
        let n = fd as c_int;
        if fdtable::kernel_fd(n).is_some() {
            // SAFETY: close's contract: a descriptor of the program's.
            unsafe { close(n) };
        } else if crate::hijack::tree::owns(n) {
            if fd > from {
                let r = host_range(from, fd - 1);
                if r < 0 {
                    return r;
                }
            }
            from = fd + 1;
        }
        fd += 1;
    }
    if from <= last {
        host_range(from, last)
    } else {
        0
    }
}

/// `closefrom`: `close_range(lowfd, ~0, 0)`.
///
/// # Safety
/// libc's contract for `closefrom`.
#[no_mangle]
pub unsafe extern "C" fn closefrom(lowfd: c_int) {
    // SAFETY: the same contract.
    unsafe { close_range(lowfd.max(0) as u32, u32::MAX, 0) };
}

/// `syscall` (the hook is process.rs's): `close` made this way (libuv
/// closes every descriptor with `syscall(SYS_close, fd)`) goes to our
/// `close`: otherwise only the placeholder would close, the kernel
/// descriptor would stay open (its peer never sees the connection end)
/// and its notifier would go on bumping whatever descriptor is given that
/// number next. Every other number is issued as is, also the library's
/// own `libc::syscall` calls, which bind to the hook too.
///
/// # Safety
/// libc's contract for `syscall`, with every argument slot passed on as
/// glibc's own `syscall` passes them.
#[allow(clippy::too_many_arguments)]
pub unsafe fn syscall(
    nr: c_long,
    a1: c_long,
    a2: c_long,
    a3: c_long,
    a4: c_long,
    a5: c_long,
    a6: c_long,
) -> c_long {
    if nr == libc::SYS_close {
        // SAFETY: same contract as close.
        return c_long::from(unsafe { close(a1 as c_int) });
    }
    if nr == libc::SYS_close_range {
        // SAFETY: same contract as close_range.
        return c_long::from(unsafe { close_range(a1 as u32, a2 as u32, a3 as c_int) });
    }
    let r: c_long;
    // SAFETY: the caller's system call with the caller's arguments, as
    // glibc's syscall issues it (rcx and r11 are the instruction's).
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") nr => r,
            in("rdi") a1,
            in("rsi") a2,
            in("rdx") a3,
            in("r10") a4,
            in("r8") a5,
            in("r9") a6,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    if (-4095..0).contains(&r) {
        return fail(-r as c_int);
    }
    r
}

/// A kernel duplicate of `kfd`, placed by `place`.
fn kernel_dup(kfd: i32, place: impl FnOnce(i32) -> Result<c_int, i32>) -> c_int {
    let knew = kcall(
        nr::FCNTL,
        [kfd.into(), libc::F_DUPFD_CLOEXEC.into(), 0, 0, 0, 0],
    );
    if knew < 0 {
        return -1;
    }
    match place(knew as i32) {
        Ok(h) => h,
        Err(e) => {
            // SAFETY: closes the duplicate the kernel just made.
            let _ = unsafe { raw(nr::CLOSE, [knew, 0, 0, 0, 0, 0]) };
            set_errno(e);
            -1
        }
    }
}

/// Drops the kernel side of host number `fd` if it was a kernel one
/// (before something else is put on that number).
fn forget_kernel(fd: c_int) {
    epoll::forget_epoll(fd);
    if fdtable::kernel_fd(fd).is_some() {
        epoll::forget_member(fd);
    }
    if let Some(k) = fdtable::remove(fd) {
        // SAFETY: closes a kernel descriptor nothing refers to any more.
        let _ = unsafe { raw(nr::CLOSE, [k.into(), 0, 0, 0, 0, 0]) };
    }
}

/// # Safety
/// libc's contract for `dup`.
#[no_mangle]
pub unsafe extern "C" fn dup(fd: c_int) -> c_int {
    if let Some(kfd) = fdtable::kernel_fd(fd) {
        return kernel_dup(kfd, fdtable::insert);
    }
    libc_fn!(dup, fn(c_int) -> c_int; fd)
}

/// # Safety
/// libc's contract for `dup3`.
#[no_mangle]
pub unsafe extern "C" fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
    if old == new {
        return fail(libc::EINVAL);
    }
    stream::before_std_change(new);
    let r = if let Some(kfd) = fdtable::kernel_fd(old) {
        forget_kernel(new);
        kernel_dup(kfd, |k| {
            fdtable::insert_at(k, new, flags & libc::O_CLOEXEC != 0)
        })
    } else {
        forget_kernel(new);
        libc_fn!(dup3, fn(c_int, c_int, c_int) -> c_int; old, new, flags)
    };
    if r >= 0 {
        // A standard stream follows its descriptor (fd/stream.rs).
        stream::follow_std(new);
    }
    r
}

/// # Safety
/// libc's contract for `dup2`.
#[no_mangle]
pub unsafe extern "C" fn dup2(old: c_int, new: c_int) -> c_int {
    if old == new {
        // dup2 onto itself only checks that the descriptor is open.
        if fdtable::kernel_fd(old).is_some() {
            return new;
        }
        return libc_fn!(dup2, fn(c_int, c_int) -> c_int; old, new);
    }
    // SAFETY: same contract, no flags.
    unsafe { dup3(old, new, 0) }
}

/// # Safety
/// libc's contract for `fcntl` (integer or pointer third argument).
#[no_mangle]
pub unsafe extern "C" fn fcntl(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    if let Some(kfd) = fdtable::kernel_fd(fd) {
        if cmd == libc::F_DUPFD || cmd == libc::F_DUPFD_CLOEXEC {
            let min = arg as c_int;
            return kernel_dup(kfd, |k| {
                fdtable::insert_min(k, min, cmd == libc::F_DUPFD_CLOEXEC)
            });
        }
        // Close-on-exec is the placeholder's business (exec drops the
        // kernel with the process anyway): answer for the host number.
        if cmd == libc::F_GETFD || cmd == libc::F_SETFD {
            // SAFETY: the host's fcntl on our placeholder.
            return unsafe { crate::hijack::host::host_syscall!(libc::SYS_fcntl, fd, cmd, arg) }
                as c_int;
        }
        return kcall(nr::FCNTL, [kfd.into(), cmd.into(), arg as i64, 0, 0, 0]) as c_int;
    }
    // SAFETY: the host's fcntl with the program's three words.
    unsafe { crate::hijack::host::host_syscall!(libc::SYS_fcntl, fd, cmd, arg) as c_int }
}

/// # Safety
/// libc's contract for `ioctl` (pointer third argument).
#[no_mangle]
pub unsafe extern "C" fn ioctl(fd: c_int, request: c_ulong, arg: c_ulong) -> c_int {
    if let Some(kfd) = fdtable::kernel_fd(fd) {
        // Close-on-exec is the placeholder's, as for fcntl's F_SETFD
        // (Python's `os.set_inheritable` uses these).
        if request == libc::FIOCLEX || request == libc::FIONCLEX {
            // SAFETY: the host's ioctl on our placeholder, no pointer.
            return unsafe { crate::hijack::host::host_syscall!(libc::SYS_ioctl, fd, request, arg) }
                as c_int;
        }
        return kcall(nr::IOCTL, [kfd.into(), request as i64, arg as i64, 0, 0, 0]) as c_int;
    }
    // SAFETY: the host's ioctl with the program's three words.
    unsafe { crate::hijack::host::host_syscall!(libc::SYS_ioctl, fd, request, arg) as c_int }
}

/// # Safety
/// libc's contract for `fcntl64` (what programs built with 64-bit file
/// offsets, and glibc's own callers, reach instead of `fcntl`).
#[no_mangle]
pub unsafe extern "C" fn fcntl64(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    // SAFETY: same contract.
    unsafe { fcntl(fd, cmd, arg) }
}
