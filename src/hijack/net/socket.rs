//! The interposed libc functions. Each one sends a call on a kernel
//! descriptor to the kernel and every other call to libc's function.
//! Structures passed through (sockaddr, msghdr, pollfd, timeval) have the
//! same layout in the host's x86_64 ABI and the kernel's generic one, and
//! so do the flag and errno values these calls use.
//!
//! `fcntl` and `ioctl` are variadic in C; on x86_64 the third argument of
//! a variadic call travels in the same register as a fixed one, so they
//! are defined here with a fixed pointer-sized third argument.

use std::ffi::{c_int, c_ulong, c_void};

use lkl::syscall::{nr, raw};

use crate::hijack::call::{arg, fd_hook, fortify, kcall, kcall_newfd};
use crate::hijack::fdtable;
use crate::hijack::host::{fail, libc_fn, set_errno};
use crate::hijack::lifecycle::active;

/// # Safety
/// libc's contract for `socket`.
#[no_mangle]
pub unsafe extern "C" fn socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int {
    // AF_UNIX stays on the host: local IPC (and the program's own) keeps working.
    if !active() && domain != libc::AF_UNIX {
        crate::hijack::lifecycle::park_if_exiting();
    }
    if active() && domain != libc::AF_UNIX {
        if crate::hijack::lifecycle::forked() {
            crate::hijack::lifecycle::forked_socket_error();
            return fail(libc::ENETDOWN);
        }
        return kcall_newfd(
            nr::SOCKET,
            [domain.into(), ty.into(), protocol.into(), 0, 0, 0],
        );
    }
    libc_fn!(socket, fn(c_int, c_int, c_int) -> c_int; domain, ty, protocol)
}

/// # Safety
/// libc's contract for `close`.
#[no_mangle]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    if fdtable::kernel_fd(fd).is_some() {
        crate::hijack::net::packet::forget(fd);
        // Out of every epoll first: a member's notifier holds the file.
        crate::hijack::fd::epoll::forget_member(fd);
    }
    crate::hijack::fd::epoll::forget_epoll(fd);
    if let Some(kfd) = fdtable::remove(fd) {
        // In a forked child the kernel descriptor is the parent's: only
        // the placeholder goes.
        let r = if crate::hijack::lifecycle::forked() {
            0
        } else {
            kcall(nr::CLOSE, [kfd.into(), 0, 0, 0, 0, 0])
        };
        // The placeholder that stood for the kernel descriptor.
        crate::hijack::host::close(fd);
        return r as c_int;
    }
    libc_fn!(close, fn(c_int) -> c_int; fd)
}

/// # Safety
/// libc's contract for `read`.
#[no_mangle]
pub unsafe extern "C" fn read(fd: c_int, buf: *mut c_void, count: usize) -> isize {
    if let Some(kfd) = fdtable::kernel_fd(fd) {
        return kcall(nr::READ, [kfd.into(), arg!(buf), count as i64, 0, 0, 0]) as isize;
    }
    libc_fn!(read, fn(c_int, *mut c_void, usize) -> isize; fd, buf, count)
}

/// # Safety
/// libc's contract for `write`.
#[no_mangle]
pub unsafe extern "C" fn write(fd: c_int, buf: *const c_void, count: usize) -> isize {
    if let Some(kfd) = fdtable::kernel_fd(fd) {
        return kcall(nr::WRITE, [kfd.into(), arg!(buf), count as i64, 0, 0, 0]) as isize;
    }
    libc_fn!(write, fn(c_int, *const c_void, usize) -> isize; fd, buf, count)
}

fd_hook!(bind, nr::BIND, (addr: *const libc::sockaddr, len: libc::socklen_t) -> c_int);
fd_hook!(connect, nr::CONNECT, (addr: *const libc::sockaddr, len: libc::socklen_t) -> c_int);
fd_hook!(listen, nr::LISTEN, (backlog: c_int) -> c_int);
fd_hook!(sendto, nr::SENDTO, (buf: *const c_void, len: usize, flags: c_int, addr: *const libc::sockaddr, alen: libc::socklen_t) -> isize);
fd_hook!(recvfrom, nr::RECVFROM, (buf: *mut c_void, len: usize, flags: c_int, addr: *mut libc::sockaddr, alen: *mut libc::socklen_t) -> isize);
fd_hook!(sendmsg, nr::SENDMSG, (msg: *const libc::msghdr, flags: c_int) -> isize);
fd_hook!(recvmsg, nr::RECVMSG, (msg: *mut libc::msghdr, flags: c_int) -> isize);
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
    if level == crate::hijack::net::packet::SOL_PACKET && fdtable::kernel_fd(fd).is_some() {
        if let Some(r) = crate::hijack::net::packet::setsockopt(fd, level, name, val, len) {
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
    if level == crate::hijack::net::packet::SOL_PACKET && fdtable::kernel_fd(fd).is_some() {
        if let Some(r) = crate::hijack::net::packet::getsockopt(level, name, val) {
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
    crate::hijack::fd::epoll::forget_epoll(fd);
    if fdtable::kernel_fd(fd).is_some() {
        crate::hijack::fd::epoll::forget_member(fd);
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
    if let Some(kfd) = fdtable::kernel_fd(old) {
        forget_kernel(new);
        return kernel_dup(kfd, |k| {
            fdtable::insert_at(k, new, flags & libc::O_CLOEXEC != 0)
        });
    }
    forget_kernel(new);
    libc_fn!(dup3, fn(c_int, c_int, c_int) -> c_int; old, new, flags)
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
            return unsafe { libc::syscall(libc::SYS_fcntl, fd, cmd, arg) } as c_int;
        }
        return kcall(nr::FCNTL, [kfd.into(), cmd.into(), arg as i64, 0, 0, 0]) as c_int;
    }
    // SAFETY: the host's fcntl with the program's three words.
    unsafe { libc::syscall(libc::SYS_fcntl, fd, cmd, arg) as c_int }
}

/// # Safety
/// libc's contract for `ioctl` (pointer third argument).
#[no_mangle]
pub unsafe extern "C" fn ioctl(fd: c_int, request: c_ulong, arg: c_ulong) -> c_int {
    if let Some(kfd) = fdtable::kernel_fd(fd) {
        return kcall(nr::IOCTL, [kfd.into(), request as i64, arg as i64, 0, 0, 0]) as c_int;
    }
    // SAFETY: the host's ioctl with the program's three words.
    unsafe { libc::syscall(libc::SYS_ioctl, fd, request, arg) as c_int }
}

/// # Safety
/// libc's contract for `poll`. Emulated packet rings among the
/// descriptors are filled around the wait (packet.rs).
#[no_mangle]
pub unsafe extern "C" fn poll(fds: *mut libc::pollfd, nfds: libc::nfds_t, timeout: c_int) -> c_int {
    if crate::hijack::fd::poll::too_many_fds(nfds) {
        return fail(libc::EINVAL);
    }
    if !crate::hijack::net::packet::any() || fds.is_null() || nfds == 0 {
        // SAFETY: same contract.
        return unsafe { poll_descriptors(fds, nfds, timeout) };
    }
    // SAFETY: the program passes `nfds` pollfds at `fds`.
    let set = unsafe { std::slice::from_raw_parts_mut(fds, nfds as usize) };
    let now = crate::hijack::net::packet::before_poll(set);
    // SAFETY: same contract.
    let r = unsafe { poll_descriptors(fds, nfds, if now { 0 } else { timeout }) };
    if r < 0 {
        return r;
    }
    // SAFETY: as above; poll_descriptors has returned.
    let set = unsafe { std::slice::from_raw_parts_mut(fds, nfds as usize) };
    r + crate::hijack::net::packet::after_poll(set)
}

/// `poll` over host and kernel descriptors.
unsafe fn poll_descriptors(fds: *mut libc::pollfd, nfds: libc::nfds_t, timeout: c_int) -> c_int {
    let set = if fds.is_null() || nfds == 0 {
        &mut [][..]
    } else {
        // SAFETY: the program passes `nfds` pollfds at `fds` (not null).
        unsafe { std::slice::from_raw_parts_mut(fds, nfds as usize) }
    };
    let kernel = set
        .iter()
        .filter(|p| fdtable::kernel_fd(p.fd).is_some())
        .count();
    if kernel == 0 {
        return libc_fn!(poll, fn(*mut libc::pollfd, libc::nfds_t, c_int) -> c_int; fds, nfds, timeout);
    }
    if kernel == set.len() {
        // All kernel descriptors: one ppoll in the kernel, on kernel numbers.
        let host: Vec<c_int> = set.iter().map(|p| p.fd).collect();
        for p in set.iter_mut() {
            p.fd = fdtable::kernel_fd(p.fd).unwrap_or(-1);
        }
        let ts = (timeout >= 0).then(|| lkl::syscall::abi::Timespec {
            tv_sec: i64::from(timeout / 1000),
            tv_nsec: i64::from(timeout % 1000) * 1_000_000,
        });
        let tsp = ts.as_ref().map_or(0, |t| arg!(t as *const _));
        let r = kcall(nr::PPOLL, [arg!(fds), nfds as i64, tsp, 0, 8, 0]);
        for (p, h) in set.iter_mut().zip(host) {
            p.fd = h;
        }
        return r as c_int;
    }
    // Host and kernel descriptors together, without a thread or a polling
    // loop (io::wait: drain the placeholders, harvest both sides, block).
    let t = (timeout >= 0).then(|| std::time::Duration::from_millis(timeout as u64));
    crate::hijack::fd::poll::wait(set, t, std::ptr::null())
}

/// # Safety
/// libc's contract for `select`.
#[no_mangle]
pub unsafe extern "C" fn select(
    nfds: c_int,
    readfds: *mut libc::fd_set,
    writefds: *mut libc::fd_set,
    exceptfds: *mut libc::fd_set,
    timeout: *mut libc::timeval,
) -> c_int {
    let nfds = nfds.clamp(0, libc::FD_SETSIZE as c_int);
    let mut list = crate::hijack::fd::poll::fdsets_to_pollfds(nfds, readfds, writefds, exceptfds);
    if !list.iter().any(|p| fdtable::kernel_fd(p.fd).is_some()) {
        return libc_fn!(select, fn(c_int, *mut libc::fd_set, *mut libc::fd_set, *mut libc::fd_set, *mut libc::timeval) -> c_int; nfds, readfds, writefds, exceptfds, timeout);
    }
    let t = if timeout.is_null() {
        None
    } else {
        // SAFETY: the program's timeval.
        let tv = unsafe { timeout.read() };
        if tv.tv_sec < 0 || !(0..1_000_000).contains(&tv.tv_usec) {
            return fail(libc::EINVAL);
        }
        Some(std::time::Duration::new(
            tv.tv_sec as u64,
            tv.tv_usec as u32 * 1000,
        ))
    };
    let start = std::time::Instant::now();
    if crate::hijack::fd::poll::wait(&mut list, t, std::ptr::null()) < 0 {
        return -1;
    }
    let count = crate::hijack::fd::poll::pollfds_to_fdsets(&list, readfds, writefds, exceptfds);
    if let Some(t) = t {
        // Linux's select leaves the time not slept in *timeout.
        let left = t.saturating_sub(start.elapsed());
        // SAFETY: the program's timeval.
        unsafe {
            (*timeout).tv_sec = left.as_secs() as libc::time_t;
            (*timeout).tv_usec = left.subsec_micros() as libc::suseconds_t;
        }
    }
    count
}

/// # Safety
/// libc's contract for `fcntl64` (what programs built with 64-bit file
/// offsets, and glibc's own callers, reach instead of `fcntl`).
#[no_mangle]
pub unsafe extern "C" fn fcntl64(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    // SAFETY: same contract.
    unsafe { fcntl(fd, cmd, arg) }
}

fd_hook!(readv, nr::READV, (iov: *const libc::iovec, n: c_int) -> isize);
fd_hook!(writev, nr::WRITEV, (iov: *const libc::iovec, n: c_int) -> isize);

/// # Safety
/// glibc's contract for `__read_chk`.
#[no_mangle]
pub unsafe extern "C" fn __read_chk(
    fd: c_int,
    buf: *mut c_void,
    count: usize,
    buflen: usize,
) -> isize {
    fortify(count, buflen);
    // SAFETY: same contract as read once the length is checked.
    unsafe { read(fd, buf, count) }
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
/// glibc's contract for `__poll_chk`.
#[no_mangle]
pub unsafe extern "C" fn __poll_chk(
    fds: *mut libc::pollfd,
    nfds: libc::nfds_t,
    timeout: c_int,
    fdslen: usize,
) -> c_int {
    fortify(
        (nfds as usize).saturating_mul(std::mem::size_of::<libc::pollfd>()),
        fdslen,
    );
    // SAFETY: same contract as poll once the length is checked.
    unsafe { poll(fds, nfds, timeout) }
}
