//! Data and file calls on kernel descriptors beyond read/write: fstat,
//! lseek, pread/pwrite(v), recvmmsg/sendmmsg, sendfile and splice (in the
//! kernel when both ends are kernel descriptors, by a bounded copy loop
//! through a 64 KiB buffer when one end is the host's), and ppoll/pselect
//! over host and kernel descriptors with the caller's signal mask applied
//! atomically around the blocking step (drain -> harvest -> block, as poll).
//!
//! Values that cross here are the same in both ABIs (the identities are
//! asserted at compile time from lkl::xlate's checked tables) except
//! `struct stat`, which xlate converts.

use std::ffi::{c_int, c_void};
use std::time::{Duration, Instant};

use lkl::syscall::{abi, nr};

use crate::hijack::call::{arg, kcall, SIGSET_SIZE};
use crate::hijack::fdtable;
use crate::hijack::host::{errno, fail, set_errno};

/// Copy-loop buffer.
const CHUNK: usize = 64 << 10;

// fstat, lseek and positioned I/O on kernel descriptors live in files.rs.

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
    unsafe { libc::syscall(libc::SYS_recvmmsg, fd, msgs, n, flags, timeout) as c_int }
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
    unsafe { libc::syscall(libc::SYS_sendmmsg, fd, msgs, n, flags) as c_int }
}

/// One end of a copy.
#[derive(Clone, Copy)]
enum End {
    Host(c_int),
    Kernel(i32),
}

impl End {
    fn of(fd: c_int) -> End {
        match fdtable::kernel_fd(fd) {
            Some(k) => End::Kernel(k),
            None => End::Host(fd),
        }
    }

    /// Reads at `off` (or the file position): bytes read, or -1 and errno.
    fn read(self, buf: &mut [u8], off: Option<i64>) -> isize {
        let (ptr, len) = (buf.as_mut_ptr(), buf.len());
        match (self, off) {
            // SAFETY: at most `len` bytes into our buffer.
            (End::Host(fd), None) => unsafe {
                libc::syscall(libc::SYS_read, fd, ptr, len) as isize
            },
            // SAFETY: as above.
            (End::Host(fd), Some(o)) => unsafe {
                libc::syscall(libc::SYS_pread64, fd, ptr, len, o) as isize
            },
            (End::Kernel(k), None) => {
                kcall(nr::READ, [k.into(), arg!(ptr), len as i64, 0, 0, 0]) as isize
            }
            (End::Kernel(k), Some(o)) => {
                kcall(nr::PREAD64, [k.into(), arg!(ptr), len as i64, o, 0, 0]) as isize
            }
        }
    }

    fn write(self, buf: &[u8], off: Option<i64>) -> isize {
        let (ptr, len) = (buf.as_ptr(), buf.len());
        match (self, off) {
            // SAFETY: `len` bytes from our buffer.
            (End::Host(fd), None) => unsafe {
                libc::syscall(libc::SYS_write, fd, ptr, len) as isize
            },
            // SAFETY: as above.
            (End::Host(fd), Some(o)) => unsafe {
                libc::syscall(libc::SYS_pwrite64, fd, ptr, len, o) as isize
            },
            (End::Kernel(k), None) => {
                kcall(nr::WRITE, [k.into(), arg!(ptr), len as i64, 0, 0, 0]) as isize
            }
            (End::Kernel(k), Some(o)) => {
                kcall(nr::PWRITE64, [k.into(), arg!(ptr), len as i64, o, 0, 0]) as isize
            }
        }
    }

    /// Moves the file position back by `n` (bytes read but not written).
    fn unread(self, n: usize) -> bool {
        let n = -(n as i64);
        match self {
            // SAFETY: no pointer arguments.
            End::Host(fd) => unsafe { libc::syscall(libc::SYS_lseek, fd, n, libc::SEEK_CUR) >= 0 },
            End::Kernel(k) => kcall(nr::LSEEK, [k.into(), n, libc::SEEK_CUR.into(), 0, 0, 0]) >= 0,
        }
    }

    /// Waits until a host descriptor takes more data.
    fn wait_writable(self) {
        if let End::Host(fd) = self {
            let mut p = libc::pollfd {
                fd,
                events: libc::POLLOUT,
                revents: 0,
            };
            // SAFETY: one pollfd of ours.
            unsafe { libc::syscall(libc::SYS_poll, &mut p as *mut libc::pollfd, 1, -1) };
        }
    }
}

/// Copies up to `count` bytes from `src` to `dst` through a buffer:
/// `in_off` (the program's offset pointer, updated) or the file position;
/// `out_off` likewise for the output. Stops at end of input, or when the
/// output would block after some progress. Bytes read but not written go
/// back to a seekable input; for an unseekable one (a socket) the rest is
/// written out, waiting for a host output to drain, rather than lost.
fn copy(
    src: End,
    dst: End,
    in_off: *mut i64,
    out_off: *mut i64,
    count: usize,
    once: bool,
) -> isize {
    let mut buf = vec![0u8; CHUNK.min(count.max(1))];
    let mut done = 0usize;
    while done < count {
        let want = buf.len().min(count - done);
        // SAFETY: the program's offset, if given.
        let ioff = (!in_off.is_null()).then(|| unsafe { *in_off });
        let got = src.read(&mut buf[..want], ioff);
        if got < 0 {
            return if done > 0 { done as isize } else { -1 };
        }
        if got == 0 {
            break;
        }
        let got = got as usize;
        let mut put = 0usize;
        while put < got {
            // SAFETY: as above.
            let ooff = (!out_off.is_null()).then(|| unsafe { *out_off });
            let w = dst.write(&buf[put..got], ooff);
            if w > 0 {
                put += w as usize;
                if !out_off.is_null() {
                    // SAFETY: as above.
                    unsafe { *out_off += w as i64 };
                }
                continue;
            }
            let e = errno();
            if !in_off.is_null() || src.unread(got - put) {
                // The input gives the unwritten bytes back.
                break;
            }
            if e == libc::EAGAIN {
                dst.wait_writable();
                continue;
            }
            // Output failed for good: what was read is lost (as a failed
            // write after a read would lose it).
            set_errno(e);
            return if done + put > 0 {
                (done + put) as isize
            } else {
                -1
            };
        }
        if !in_off.is_null() {
            // SAFETY: as above.
            unsafe { *in_off += put as i64 };
        }
        done += put;
        if put < got {
            // The output would block: return what went, or EAGAIN.
            if done == 0 {
                return fail(libc::EAGAIN);
            }
            break;
        }
        if once {
            break;
        }
    }
    done as isize
}

/// # Safety
/// libc's contract for `sendfile`.
#[no_mangle]
pub unsafe extern "C" fn sendfile(
    out_fd: c_int,
    in_fd: c_int,
    offset: *mut i64,
    count: usize,
) -> isize {
    match (End::of(out_fd), End::of(in_fd)) {
        // SAFETY: the program's arguments to the same host call.
        (End::Host(o), End::Host(i)) => unsafe {
            libc::syscall(libc::SYS_sendfile, o, i, offset, count) as isize
        },
        (End::Kernel(o), End::Kernel(i)) => kcall(
            nr::SENDFILE,
            [o.into(), i.into(), arg!(offset), count as i64, 0, 0],
        ) as isize,
        (dst, src) => copy(src, dst, offset, std::ptr::null_mut(), count, false),
    }
}

/// # Safety
/// libc's contract for `sendfile64`.
#[no_mangle]
pub unsafe extern "C" fn sendfile64(
    out_fd: c_int,
    in_fd: c_int,
    offset: *mut i64,
    count: usize,
) -> isize {
    // SAFETY: same contract.
    unsafe { sendfile(out_fd, in_fd, offset, count) }
}

/// # Safety
/// libc's contract for `splice`. With one end on each side there is no
/// pipe to splice through: one buffered copy of up to 64 KiB (flags other
/// than SPLICE_F_NONBLOCK have no meaning for a copy).
#[no_mangle]
pub unsafe extern "C" fn splice(
    fd_in: c_int,
    off_in: *mut i64,
    fd_out: c_int,
    off_out: *mut i64,
    len: usize,
    flags: u32,
) -> isize {
    match (End::of(fd_in), End::of(fd_out)) {
        (End::Host(i), End::Host(o)) => {
            // SAFETY: the program's arguments to the same host call.
            unsafe { libc::syscall(libc::SYS_splice, i, off_in, o, off_out, len, flags) as isize }
        }
        (End::Kernel(i), End::Kernel(o)) => kcall(
            nr::SPLICE,
            [
                i.into(),
                arg!(off_in),
                o.into(),
                arg!(off_out),
                len as i64,
                flags.into(),
            ],
        ) as isize,
        (src, dst) => copy(src, dst, off_in, off_out, len, true),
    }
}

/// The mixed wait behind ppoll and pselect: kernel entries are confirmed
/// against the kernel (zero timeout) after draining their placeholders,
/// host entries are polled with a zero timeout, and only then does the
/// host ppoll block, on the host entries and the placeholders, with
/// `sigmask` in force for the blocking step alone.
pub(crate) fn wait(
    set: &mut [libc::pollfd],
    timeout: Option<Duration>,
    sigmask: *const libc::sigset_t,
) -> c_int {
    for p in set.iter() {
        if let Err(e) = fdtable::ensure_notifier(p.fd) {
            return fail(e);
        }
    }
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut kset: Vec<libc::pollfd> = Vec::new();
    let mut hset: Vec<libc::pollfd> = Vec::with_capacity(set.len());
    loop {
        for p in set.iter() {
            if fdtable::kernel_fd(p.fd).is_some() {
                fdtable::drain(p.fd);
            }
        }
        kset.clear();
        hset.clear();
        for p in set.iter() {
            match fdtable::kernel_fd(p.fd) {
                Some(k) => kset.push(libc::pollfd {
                    fd: k,
                    events: p.events,
                    revents: 0,
                }),
                None => hset.push(libc::pollfd {
                    fd: p.fd,
                    events: p.events,
                    revents: 0,
                }),
            }
        }
        let zero = abi::Timespec::default();
        if !kset.is_empty()
            && kcall(
                nr::PPOLL,
                [
                    arg!(kset.as_mut_ptr()),
                    kset.len() as i64,
                    arg!(&zero as *const abi::Timespec),
                    0,
                    SIGSET_SIZE,
                    0,
                ],
            ) < 0
        {
            return -1;
        }
        let host_zero = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        if !hset.is_empty()
            // SAFETY: our pollfd array of hset.len() entries and a zero
            // timespec, no mask.
            && unsafe {
                libc::syscall(
                    libc::SYS_ppoll,
                    hset.as_mut_ptr(),
                    hset.len(),
                    &host_zero as *const libc::timespec,
                    std::ptr::null::<c_void>(),
                    SIGSET_SIZE,
                )
            } < 0
        {
            return -1;
        }
        let (mut ki, mut hi, mut ready) = (0, 0, 0);
        for p in set.iter_mut() {
            if fdtable::kernel_fd(p.fd).is_some() {
                p.revents = kset[ki].revents;
                ki += 1;
            } else {
                p.revents = hset[hi].revents;
                hi += 1;
            }
            if p.revents != 0 {
                ready += 1;
            }
        }
        if ready > 0 {
            return ready;
        }
        let ts = match deadline {
            None => None,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return 0;
                }
                Some(libc::timespec {
                    tv_sec: left.as_secs() as libc::time_t,
                    tv_nsec: left.subsec_nanos().into(),
                })
            }
        };
        // Block: host entries as asked, kernel entries on their placeholder.
        hset.clear();
        for p in set.iter() {
            hset.push(libc::pollfd {
                fd: p.fd,
                events: if fdtable::kernel_fd(p.fd).is_some() {
                    libc::POLLIN
                } else {
                    p.events
                },
                revents: 0,
            });
        }
        let tsp = ts
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: our pollfd array of hset.len() entries, our timespec or
        // null, the program's signal mask or null.
        if unsafe {
            libc::syscall(
                libc::SYS_ppoll,
                hset.as_mut_ptr(),
                hset.len(),
                tsp,
                sigmask,
                SIGSET_SIZE,
            )
        } < 0
        {
            return -1;
        }
    }
}

fn timeout_of(ts: *const libc::timespec) -> Result<Option<Duration>, i32> {
    if ts.is_null() {
        return Ok(None);
    }
    // SAFETY: the program's timespec.
    let t = unsafe { ts.read() };
    if t.tv_sec < 0 || !(0..1_000_000_000).contains(&t.tv_nsec) {
        return Err(libc::EINVAL);
    }
    Ok(Some(Duration::new(t.tv_sec as u64, t.tv_nsec as u32)))
}

/// The host's check on poll's `nfds` (more than RLIMIT_NOFILE: EINVAL),
/// made before anything reads the array.
pub(crate) fn too_many_fds(nfds: libc::nfds_t) -> bool {
    nfds > 256 && nfds > host_nofile()
}

/// The host's RLIMIT_NOFILE (soft).
fn host_nofile() -> libc::nfds_t {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return libc::nfds_t::MAX;
    }
    r.rlim_cur as libc::nfds_t
}

/// # Safety
/// libc's contract for `ppoll`.
#[no_mangle]
pub unsafe extern "C" fn ppoll(
    fds: *mut libc::pollfd,
    nfds: libc::nfds_t,
    ts: *const libc::timespec,
    sigmask: *const libc::sigset_t,
) -> c_int {
    if too_many_fds(nfds) {
        return fail(libc::EINVAL);
    }
    let set = if fds.is_null() || nfds == 0 {
        &mut [][..]
    } else {
        // SAFETY: the program passes `nfds` pollfds at `fds`.
        unsafe { std::slice::from_raw_parts_mut(fds, nfds as usize) }
    };
    if !set.iter().any(|p| fdtable::kernel_fd(p.fd).is_some()) {
        // glibc's ppoll hands the kernel a copy of the timeout: so do we.
        let copy = (!ts.is_null()).then(|| {
            // SAFETY: the program's timespec.
            unsafe { ts.read() }
        });
        let tsp = copy
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: the program's arguments to the same host call, with our
        // copy of its timeout.
        return unsafe { libc::syscall(libc::SYS_ppoll, fds, nfds, tsp, sigmask, SIGSET_SIZE) }
            as c_int;
    }
    match timeout_of(ts) {
        Ok(t) => wait(set, t, sigmask),
        Err(e) => fail(e),
    }
}

/// # Safety
/// glibc's contract for `__ppoll_chk`.
#[no_mangle]
pub unsafe extern "C" fn __ppoll_chk(
    fds: *mut libc::pollfd,
    nfds: libc::nfds_t,
    ts: *const libc::timespec,
    sigmask: *const libc::sigset_t,
    fdslen: usize,
) -> c_int {
    crate::hijack::call::fortify(
        (nfds as usize).saturating_mul(std::mem::size_of::<libc::pollfd>()),
        fdslen,
    );
    // SAFETY: same contract once the length is checked.
    unsafe { ppoll(fds, nfds, ts, sigmask) }
}

/// # Safety
/// libc's contract for `pselect` (the timeout is not written back).
#[no_mangle]
pub unsafe extern "C" fn pselect(
    nfds: c_int,
    readfds: *mut libc::fd_set,
    writefds: *mut libc::fd_set,
    exceptfds: *mut libc::fd_set,
    ts: *const libc::timespec,
    sigmask: *const libc::sigset_t,
) -> c_int {
    if nfds < 0 {
        return fail(libc::EINVAL);
    }
    let nfds = nfds.min(libc::FD_SETSIZE as c_int);
    let mut list = fdsets_to_pollfds(nfds, readfds, writefds, exceptfds);
    if !list.iter().any(|p| fdtable::kernel_fd(p.fd).is_some()) {
        let copy = (!ts.is_null()).then(|| {
            // SAFETY: the program's timespec.
            unsafe { ts.read() }
        });
        let tsp = copy
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // The kernel's pselect6 takes {sigmask, size} by reference.
        let mask = [sigmask as usize, SIGSET_SIZE as usize];
        let maskp = if sigmask.is_null() {
            std::ptr::null()
        } else {
            mask.as_ptr()
        };
        // SAFETY: the program's sets, our copy of its timeout and our
        // {mask, size} pair (or null).
        return unsafe {
            libc::syscall(
                libc::SYS_pselect6,
                nfds,
                readfds,
                writefds,
                exceptfds,
                tsp,
                maskp,
            )
        } as c_int;
    }
    let t = match timeout_of(ts) {
        Ok(t) => t,
        Err(e) => {
            return fail(e);
        }
    };
    if wait(&mut list, t, sigmask) < 0 {
        return -1;
    }
    pollfds_to_fdsets(&list, readfds, writefds, exceptfds)
}

/// The pollfd list select and pselect wait on: one entry per descriptor
/// below `nfds` in any of the program's sets.
pub(crate) fn fdsets_to_pollfds(
    nfds: c_int,
    readfds: *mut libc::fd_set,
    writefds: *mut libc::fd_set,
    exceptfds: *mut libc::fd_set,
) -> Vec<libc::pollfd> {
    // SAFETY: FD_ISSET on the program's sets, for numbers below nfds
    // (at most FD_SETSIZE, checked by the callers).
    let member = |s: *mut libc::fd_set, fd: c_int| !s.is_null() && unsafe { libc::FD_ISSET(fd, s) };
    (0..nfds)
        .filter_map(|fd| {
            let mut events = 0;
            if member(readfds, fd) {
                events |= libc::POLLIN;
            }
            if member(writefds, fd) {
                events |= libc::POLLOUT;
            }
            if member(exceptfds, fd) {
                events |= libc::POLLPRI;
            }
            (events != 0).then_some(libc::pollfd {
                fd,
                events,
                revents: 0,
            })
        })
        .collect()
}

/// Writes a finished wait back into the program's sets as select does and
/// returns the number of bits set, or -1 (EBADF) for a closed descriptor.
pub(crate) fn pollfds_to_fdsets(
    list: &[libc::pollfd],
    readfds: *mut libc::fd_set,
    writefds: *mut libc::fd_set,
    exceptfds: *mut libc::fd_set,
) -> c_int {
    if list.iter().any(|p| p.revents & libc::POLLNVAL != 0) {
        return fail(libc::EBADF);
    }
    for s in [readfds, writefds, exceptfds] {
        if !s.is_null() {
            // SAFETY: clears the program's set.
            unsafe { libc::FD_ZERO(s) };
        }
    }
    let mut count = 0;
    for p in list {
        for (s, ready, asked) in [
            (
                readfds,
                libc::POLLIN | libc::POLLHUP | libc::POLLERR,
                libc::POLLIN,
            ),
            (writefds, libc::POLLOUT | libc::POLLERR, libc::POLLOUT),
            (exceptfds, libc::POLLPRI, libc::POLLPRI),
        ] {
            if !s.is_null() && p.events & asked != 0 && p.revents & ready != 0 {
                // SAFETY: sets a number below nfds in the program's set.
                unsafe { libc::FD_SET(p.fd, s) };
                count += 1;
            }
        }
    }
    count
}
