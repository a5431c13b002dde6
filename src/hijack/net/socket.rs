//! The socket calls. A call on a kernel socket goes to the kernel, every
//! other one to libc's function; `socket` itself makes a kernel socket for
//! every family but AF_UNIX (local IPC, the program's own included, stays
//! on the host) once the kernel runs, and none in a forked child (the
//! kernel stayed in the parent). The structures passed through (sockaddr,
//! msghdr, mmsghdr, timespec) have the same layout in the host's x86_64
//! ABI and the kernel's generic one, and so do the flag and errno values
//! (call.rs asserts xlate's tables). Packet-socket rings are emulated
//! (packet.rs): the socket options that set them up are answered there.

use std::ffi::{c_int, c_void};

use lkl::syscall::nr;

use crate::hijack::call::{arg, fd_hook, fortify, kcall, kcall_newfd};
use crate::hijack::fdtable;
use crate::hijack::host::{fail, libc_fn};
use crate::hijack::lifecycle::{active, forked, forked_socket_error, park_if_exiting};
use crate::hijack::net::packet;
use crate::hijack::net::passing;

/// # Safety
/// libc's contract for `socket`.
#[no_mangle]
pub unsafe extern "C" fn socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int {
    // AF_UNIX stays on the host: local IPC (and the program's own) keeps working.
    if !active() && domain != libc::AF_UNIX {
        park_if_exiting();
    }
    if active() && domain != libc::AF_UNIX {
        if forked() {
            forked_socket_error();
            return fail(libc::ENETDOWN);
        }
        return kcall_newfd(
            nr::SOCKET,
            [domain.into(), ty.into(), protocol.into(), 0, 0, 0],
        );
    }
    libc_fn!(socket, fn(c_int, c_int, c_int) -> c_int; domain, ty, protocol)
}

fd_hook!(bind, nr::BIND, (addr: *const libc::sockaddr, len: libc::socklen_t) -> c_int);
fd_hook!(connect, nr::CONNECT, (addr: *const libc::sockaddr, len: libc::socklen_t) -> c_int);
fd_hook!(listen, nr::LISTEN, (backlog: c_int) -> c_int);
fd_hook!(sendto, nr::SENDTO, (buf: *const c_void, len: usize, flags: c_int, addr: *const libc::sockaddr, alen: libc::socklen_t) -> isize);
fd_hook!(recvfrom, nr::RECVFROM, (buf: *mut c_void, len: usize, flags: c_int, addr: *mut libc::sockaddr, alen: *mut libc::socklen_t) -> isize);
fd_hook!(any_sendmsg = sendmsg, nr::SENDMSG, (msg: *const libc::msghdr, flags: c_int) -> isize);
fd_hook!(any_recvmsg = recvmsg, nr::RECVMSG, (msg: *mut libc::msghdr, flags: c_int) -> isize);

/// # Safety
/// libc's contract for `sendmsg`.
#[no_mangle]
pub unsafe extern "C" fn sendmsg(fd: c_int, msg: *const libc::msghdr, flags: c_int) -> isize {
    if fdtable::kernel_fd(fd).is_none() {
        // Kernel descriptors in SCM_RIGHTS over a host socket (passing.rs).
        // SAFETY: the program's arguments.
        if let Some(r) = unsafe { passing::send(fd, msg, |m| any_sendmsg(fd, m, flags)) } {
            return r;
        }
    }
    // SAFETY: the program's arguments.
    unsafe { any_sendmsg(fd, msg, flags) }
}

/// # Safety
/// libc's contract for `recvmsg`.
#[no_mangle]
pub unsafe extern "C" fn recvmsg(fd: c_int, msg: *mut libc::msghdr, flags: c_int) -> isize {
    // SAFETY: the program's arguments.
    let r = unsafe { any_recvmsg(fd, msg, flags) };
    if r >= 0 && fdtable::kernel_fd(fd).is_none() {
        // SAFETY: the message the host just filled.
        unsafe { passing::received(msg, flags) };
    }
    r
}
fd_hook!(kernel_setsockopt = setsockopt, nr::SETSOCKOPT, (level: c_int, name: c_int, val: *const c_void, len: libc::socklen_t) -> c_int);
fd_hook!(kernel_getsockopt = getsockopt, nr::GETSOCKOPT, (level: c_int, name: c_int, val: *mut c_void, len: *mut libc::socklen_t) -> c_int);

/// # Safety
/// libc's contract for `setsockopt`. Packet-socket rings are emulated
/// (packet.rs).
#[no_mangle]
pub unsafe extern "C" fn setsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *const c_void,
    len: libc::socklen_t,
) -> c_int {
    if level == packet::SOL_PACKET && fdtable::kernel_fd(fd).is_some() {
        if let Some(r) = packet::setsockopt(fd, level, name, val, len) {
            return r;
        }
    }
    // SAFETY: same contract.
    unsafe { kernel_setsockopt(fd, level, name, val, len) }
}

/// # Safety
/// libc's contract for `getsockopt`. See `setsockopt`.
#[no_mangle]
pub unsafe extern "C" fn getsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *mut c_void,
    len: *mut libc::socklen_t,
) -> c_int {
    if level == packet::SOL_PACKET && fdtable::kernel_fd(fd).is_some() {
        if let Some(r) = packet::getsockopt(level, name, val) {
            return r;
        }
    }
    // SAFETY: same contract.
    unsafe { kernel_getsockopt(fd, level, name, val, len) }
}
fd_hook!(getsockname, nr::GETSOCKNAME, (addr: *mut libc::sockaddr, len: *mut libc::socklen_t) -> c_int);
fd_hook!(getpeername, nr::GETPEERNAME, (addr: *mut libc::sockaddr, len: *mut libc::socklen_t) -> c_int);
fd_hook!(shutdown, nr::SHUTDOWN, (how: c_int) -> c_int);

/// # Safety
/// libc's contract for `send`.
#[no_mangle]
pub unsafe extern "C" fn send(fd: c_int, buf: *const c_void, len: usize, flags: c_int) -> isize {
    if let Some(kfd) = fdtable::kernel_fd(fd) {
        return kcall(
            nr::SENDTO,
            [kfd.into(), arg!(buf), len as i64, flags.into(), 0, 0],
        ) as isize;
    }
    libc_fn!(send, fn(c_int, *const c_void, usize, c_int) -> isize; fd, buf, len, flags)
}

/// # Safety
/// libc's contract for `recv`.
#[no_mangle]
pub unsafe extern "C" fn recv(fd: c_int, buf: *mut c_void, len: usize, flags: c_int) -> isize {
    if let Some(kfd) = fdtable::kernel_fd(fd) {
        return kcall(
            nr::RECVFROM,
            [kfd.into(), arg!(buf), len as i64, flags.into(), 0, 0],
        ) as isize;
    }
    libc_fn!(recv, fn(c_int, *mut c_void, usize, c_int) -> isize; fd, buf, len, flags)
}

/// # Safety
/// libc's contract for `accept`.
#[no_mangle]
pub unsafe extern "C" fn accept(
    fd: c_int,
    addr: *mut libc::sockaddr,
    len: *mut libc::socklen_t,
) -> c_int {
    // SAFETY: same contract.
    unsafe { accept4(fd, addr, len, 0) }
}

/// # Safety
/// libc's contract for `accept4`.
#[no_mangle]
pub unsafe extern "C" fn accept4(
    fd: c_int,
    addr: *mut libc::sockaddr,
    len: *mut libc::socklen_t,
    flags: c_int,
) -> c_int {
    if let Some(kfd) = fdtable::kernel_fd(fd) {
        return kcall_newfd(
            nr::ACCEPT4,
            [kfd.into(), arg!(addr), arg!(len), flags.into(), 0, 0],
        );
    }
    libc_fn!(accept4, fn(c_int, *mut libc::sockaddr, *mut libc::socklen_t, c_int) -> c_int; fd, addr, len, flags)
}

/// # Safety
/// glibc's contract for `__recv_chk`.
#[no_mangle]
pub unsafe extern "C" fn __recv_chk(
    fd: c_int,
    buf: *mut c_void,
    len: usize,
    buflen: usize,
    flags: c_int,
) -> isize {
    fortify(len, buflen);
    // SAFETY: same contract as recv once the length is checked.
    unsafe { recv(fd, buf, len, flags) }
}

/// # Safety
/// glibc's contract for `__recvfrom_chk`.
#[no_mangle]
pub unsafe extern "C" fn __recvfrom_chk(
    fd: c_int,
    buf: *mut c_void,
    len: usize,
    buflen: usize,
    flags: c_int,
    addr: *mut libc::sockaddr,
    alen: *mut libc::socklen_t,
) -> isize {
    fortify(len, buflen);
    // SAFETY: same contract as recvfrom once the length is checked.
    unsafe { recvfrom(fd, buf, len, flags, addr, alen) }
}

/// # Safety
/// libc's contract for `recvmmsg` (struct mmsghdr and timespec have one
/// layout in both ABIs).
#[no_mangle]
pub unsafe extern "C" fn recvmmsg(
    fd: c_int,
    msgs: *mut libc::mmsghdr,
    n: u32,
    flags: c_int,
    timeout: *mut libc::timespec,
) -> c_int {
    if let Some(kfd) = fdtable::kernel_fd(fd) {
        return kcall(
            nr::RECVMMSG,
            [
                kfd.into(),
                arg!(msgs),
                n.into(),
                flags.into(),
                arg!(timeout),
                0,
            ],
        ) as c_int;
    }
    // SAFETY: the program's arguments to the same host call.
    unsafe {
        crate::hijack::host::host_syscall!(libc::SYS_recvmmsg, fd, msgs, n, flags, timeout) as c_int
    }
}

/// # Safety
/// libc's contract for `sendmmsg`.
#[no_mangle]
pub unsafe extern "C" fn sendmmsg(
    fd: c_int,
    msgs: *mut libc::mmsghdr,
    n: u32,
    flags: c_int,
) -> c_int {
    if let Some(kfd) = fdtable::kernel_fd(fd) {
        return kcall(
            nr::SENDMMSG,
            [kfd.into(), arg!(msgs), n.into(), flags.into(), 0, 0],
        ) as c_int;
    }
    // SAFETY: the program's arguments to the same host call.
    unsafe { crate::hijack::host::host_syscall!(libc::SYS_sendmmsg, fd, msgs, n, flags) as c_int }
}
