//! sendfile and splice between any two descriptors: in the kernel when
//! both ends are kernel descriptors, on the host when both are host ones,
//! and by a bounded copy loop through a 64 KiB buffer when one end is on
//! each side.

use std::ffi::c_int;

use lkl::syscall::nr;

use crate::hijack::call::{arg, kcall, SIGSET_SIZE};
use crate::hijack::fdtable;
use crate::hijack::host::{errno, fail};

/// Copy-loop buffer.
const CHUNK: usize = 64 << 10;

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
                crate::hijack::host::host_syscall!(libc::SYS_read, fd, ptr, len) as isize
            },
            // SAFETY: as above.
            (End::Host(fd), Some(o)) => unsafe {
                crate::hijack::host::host_syscall!(libc::SYS_pread64, fd, ptr, len, o) as isize
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
                crate::hijack::host::host_syscall!(libc::SYS_write, fd, ptr, len) as isize
            },
            // SAFETY: as above.
            (End::Host(fd), Some(o)) => unsafe {
                crate::hijack::host::host_syscall!(libc::SYS_pwrite64, fd, ptr, len, o) as isize
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
            End::Host(fd) => unsafe {
                crate::hijack::host::host_syscall!(libc::SYS_lseek, fd, n, libc::SEEK_CUR) >= 0
            },
            End::Kernel(k) => kcall(nr::LSEEK, [k.into(), n, libc::SEEK_CUR.into(), 0, 0, 0]) >= 0,
        }
    }

    /// Waits until the output takes more data (or fails: the write after
    /// this says how). A signal ends the wait early; the caller writes
    /// again either way.
    fn wait_writable(self) {
        let (fd, host) = match self {
            End::Host(fd) => (fd, true),
            End::Kernel(k) => (k, false),
        };
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLOUT,
            revents: 0,
        };
        let pp = &mut p as *mut libc::pollfd;
        if host {
            // SAFETY: one pollfd of ours.
            unsafe { crate::hijack::host::host_syscall!(libc::SYS_poll, pp, 1, -1) };
        } else {
            // No timeout: blocks in the kernel until the socket drains,
            // fails or a signal interrupts the call.
            kcall(nr::PPOLL, [arg!(pp), 1, 0, 0, SIGSET_SIZE, 0]);
        }
    }
}

/// Copies up to `count` bytes from `src` to `dst` through a buffer:
/// `in_off` (the program's offset pointer, updated) or the file position;
/// `out_off` likewise for the output. Stops at end of input, or when the
/// output would block after some progress. Bytes read but not written go
/// back to a seekable input; for an unseekable one (a socket) the rest is
/// written out, waiting for the output to drain, rather than lost.
///
/// Only EAGAIN means "would block". An output that fails for good (EPIPE,
/// ECONNRESET: the peer went away) ends the copy as the host's sendfile
/// ends: the bytes that went, else -1 with that error (a would-block
/// answer here would make an event loop wait for writability forever, or
/// spin: the socket stays "writable"); -1 also when bytes taken from an
/// unseekable input were lost with it. SIGPIPE comes as on the host: a
/// host write raises it itself, a kernel one through `kcall`.
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
        // The output's error that ends the copy, if any, and whether bytes
        // taken from the input went nowhere.
        let mut failed = None;
        let mut lost = false;
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
            // A zero-byte write took nothing: as if it would block.
            let e = if w < 0 { errno() } else { libc::EAGAIN };
            // The input gives the unwritten bytes back (an offset the
            // program passed is simply not advanced past them).
            if !in_off.is_null() || src.unread(got - put) {
                if e != libc::EAGAIN {
                    failed = Some(e);
                }
                break;
            }
            // Unseekable input: its bytes are ours to deliver.
            if e == libc::EAGAIN {
                dst.wait_writable();
                continue;
            }
            if e == libc::EINTR {
                continue;
            }
            // Output failed for good: what was read is lost (as a failed
            // write after a read would lose it). The caller must hear of
            // the error now, not of a count: it would think those bytes
            // still in the input and wait there for them.
            failed = Some(e);
            lost = true;
            break;
        }
        if !in_off.is_null() {
            // SAFETY: as above.
            unsafe { *in_off += put as i64 };
        }
        done += put;
        if let Some(e) = failed {
            // Otherwise the next call reports the error if some bytes went.
            if done == 0 || lost {
                return fail(e);
            }
            break;
        }
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
            crate::hijack::host::host_syscall!(libc::SYS_sendfile, o, i, offset, count) as isize
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
            unsafe {
                crate::hijack::host::host_syscall!(
                    libc::SYS_splice,
                    i,
                    off_in,
                    o,
                    off_out,
                    len,
                    flags
                ) as isize
            }
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
