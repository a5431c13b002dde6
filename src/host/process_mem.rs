//! Program memory in another process: the user copies of a kernel that
//! serves the processes of a tree from a server process
//! (docs/process-tree.md). The address-space cookie of such a process's
//! kernel mm is its host pid; `process_vm_readv`/`process_vm_writev` move
//! the bytes and stop at the first page they cannot reach, which the
//! kernel then reports as `EFAULT` (or a short count), as for a local
//! pointer into an unmapped page.

use std::cell::Cell;
use std::ffi::{c_ulong, c_void};

/// The cookie of a process not yet known (a fork whose child has not
/// reported in): every copy moves nothing.
pub const NO_PROCESS: *mut c_void = usize::MAX as *mut c_void;

/// The address-space cookie for host process `pid`.
pub fn cookie(pid: i32) -> *mut c_void {
    pid as usize as *mut c_void
}

/// The host pid a cookie names, if it names one.
fn pid_of(as_: *mut c_void) -> Option<libc::pid_t> {
    let v = as_ as usize;
    (v > 0 && v <= i32::MAX as usize).then_some(v as libc::pid_t)
}

/// A copy of part of a process's memory made before a call (the buffer a
/// `write` or `send` will read), so that the kernel's many small reads of
/// it are plain copies instead of a system call each: (pid, address,
/// bytes, length). Per host thread: the call runs on the thread that set
/// it.
#[derive(Clone, Copy)]
struct Window {
    pid: libc::pid_t,
    base: usize,
    data: *const u8,
    len: usize,
}

thread_local! {
    static WINDOW: Cell<Option<Window>> = const { Cell::new(None) };
}

/// Runs `f` with `data`, a copy of host process `pid`'s memory at `base`,
/// standing in for it: the kernel's reads inside it come from the copy.
pub fn with_read_window<R>(pid: i32, base: usize, data: &[u8], f: impl FnOnce() -> R) -> R {
    // SAFETY: the slice is alive and unchanged for the call.
    unsafe { with_shared_read_window(pid, base, data.as_ptr(), data.len(), f) }
}

/// As [`with_read_window`], with the copy in memory the process shares
/// with us and may change meanwhile (a channel's stage, which it filled
/// before the call). What the process writes there is only ever data of
/// this call: the kernel's reads see whatever is there, as they would
/// reading the process's own buffer while it changes it.
///
/// # Safety
/// `data` is mapped and readable for `len` bytes during `f`.
pub unsafe fn with_shared_read_window<R>(
    pid: i32,
    base: usize,
    data: *const u8,
    len: usize,
    f: impl FnOnce() -> R,
) -> R {
    let w = Window {
        pid,
        base,
        data,
        len,
    };
    let old = WINDOW.with(|c| c.replace(Some(w)));
    let r = f();
    WINDOW.with(|c| c.set(old));
    r
}

/// Where the kernel's writes into a process's buffer go during a call
/// that fills it (`read`, `recv`, `pread`): a local buffer standing in for
/// the first `cap` bytes at `base`, filled from its start (`filled`), and
/// written to the process in one `process_vm_writev` when the call ends
/// (or earlier, if the kernel writes or reads that memory out of order).
/// `landed`: how many of the bytes written so far reached the process
/// (`usize::MAX` until a flush came up short).
struct WriteWindow {
    pid: libc::pid_t,
    base: usize,
    data: *mut u8,
    cap: usize,
    filled: usize,
    /// Set once the window was flushed early: writes go straight through.
    closed: bool,
    landed: usize,
}

thread_local! {
    static WRITE_WINDOW: std::cell::RefCell<Option<WriteWindow>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `f` (a call that fills host process `pid`'s buffer at `base`)
/// with the kernel's in-order writes to the first `buf.len()` bytes there
/// collected in `buf`, then writes them to the process in one go. Returns
/// `f`'s result and how many of the collected bytes could not be written
/// (the process unmapped or protected the buffer: the caller turns that
/// into a short count or EFAULT, as for a fault on the host).
pub fn with_write_window<R>(
    pid: i32,
    base: usize,
    buf: &mut [u8],
    f: impl FnOnce() -> R,
) -> (R, Option<usize>) {
    let w = WriteWindow {
        pid,
        base,
        data: buf.as_mut_ptr(),
        cap: buf.len(),
        filled: 0,
        closed: false,
        landed: usize::MAX,
    };
    let old = WRITE_WINDOW.with(|c| c.replace(Some(w)));
    let r = f();
    let w = WRITE_WINDOW.with(|c| c.replace(old));
    let short = w.and_then(|mut w| {
        flush(&mut w);
        (w.landed != usize::MAX).then_some(w.landed)
    });
    (r, short)
}

/// Writes a window's collected bytes to its process.
fn flush(w: &mut WriteWindow) {
    if w.filled > 0 {
        // SAFETY: `data` holds `filled` bytes we wrote (the caller's buffer).
        let left = unsafe {
            transfer(
                cookie(w.pid),
                Way::ToProcess,
                w.data.cast(),
                w.base,
                w.filled,
            )
        };
        if left != 0 && w.landed == usize::MAX {
            w.landed = w.filled - left;
        }
    }
    w.closed = true;
    w.filled = 0;
}

/// Serves a write into the window if it continues the collected bytes;
/// flushes the window first if the write touches it otherwise. True if
/// the write was collected.
///
/// # Safety
/// `src` is valid for `n` bytes.
unsafe fn to_window(pid: libc::pid_t, dst: usize, src: *const u8, n: usize) -> bool {
    WRITE_WINDOW.with(|c| {
        let Ok(mut slot) = c.try_borrow_mut() else {
            return false;
        };
        let Some(w) = slot.as_mut().filter(|w| w.pid == pid && !w.closed) else {
            return false;
        };
        let end = dst.saturating_add(n);
        if end <= w.base || dst >= w.base + w.cap {
            return false;
        }
        if dst == w.base + w.filled && end <= w.base + w.cap {
            // SAFETY: [filled, filled + n) is inside our buffer of `cap`
            // bytes; `src` is the caller's.
            unsafe { std::ptr::copy_nonoverlapping(src, w.data.add(w.filled), n) };
            w.filled += n;
            return true;
        }
        flush(w);
        false
    })
}

/// A read of memory the window has collected writes for sees them: the
/// window is flushed first.
fn before_read(pid: libc::pid_t, src: usize, n: usize) {
    WRITE_WINDOW.with(|c| {
        let Ok(mut slot) = c.try_borrow_mut() else {
            return;
        };
        if let Some(w) = slot.as_mut().filter(|w| w.pid == pid && w.filled > 0) {
            let end = src.saturating_add(n);
            if end > w.base && src < w.base + w.filled {
                flush(w);
            }
        }
    })
}

/// True if every page of host process `pid`'s memory in `[base, base +
/// len)` can be read (one byte of each, in one `process_vm_readv`): a
/// buffer about to be filled through a write window is checked this way,
/// so that a buffer in unmapped memory gets the kernel's own fault
/// handling (EFAULT, nothing consumed) instead of a failed final write.
/// At most 256 KiB.
pub fn pages_mapped(pid: i32, base: usize, len: usize) -> bool {
    const PAGE: usize = 4096;
    const MAX: usize = (256 << 10) / PAGE + 1;
    if len == 0 || len > 256 << 10 {
        return false;
    }
    let Some(end) = base.checked_add(len) else {
        return false;
    };
    let mut scratch = [0u8; MAX];
    let local = libc::iovec {
        iov_base: scratch.as_mut_ptr().cast(),
        iov_len: MAX,
    };
    let mut remote = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; MAX];
    let mut count = 0;
    let mut at = base;
    while at < end && count < MAX {
        remote[count] = libc::iovec {
            iov_base: at as *mut c_void,
            iov_len: 1,
        };
        count += 1;
        at = (at / PAGE + 1) * PAGE;
    }
    // SAFETY: one local iovec within `scratch` (room for every byte
    // asked), remote iovecs the host checks against the process's
    // mappings.
    let r = unsafe { libc::process_vm_readv(pid, &local, 1, remote.as_ptr(), count as u64, 0) };
    r == count as isize
}

/// Reads `n` bytes of host process `pid` at `src` into `dst` in one go;
/// false unless all of them could be read.
///
/// # Safety
/// `dst` is valid for `n` bytes.
pub unsafe fn read_all(pid: i32, dst: *mut u8, src: usize, n: usize) -> bool {
    // SAFETY: the caller's contract.
    unsafe { transfer(cookie(pid), Way::FromProcess, dst.cast(), src, n) == 0 }
}

/// Serves a read from the window, if it covers it.
///
/// # Safety
/// `dst` is valid for `n` bytes.
unsafe fn from_window(pid: libc::pid_t, dst: *mut c_void, src: usize, n: usize) -> bool {
    let Some(w) = WINDOW.with(|c| c.get()) else {
        return false;
    };
    let inside =
        w.pid == pid && src >= w.base && src.checked_add(n).is_some_and(|e| e <= w.base + w.len);
    if inside {
        // SAFETY: the window's copy is alive for the call (with_read_window
        // holds it) and covers [src, src + n); `dst` is the caller's.
        unsafe { std::ptr::copy_nonoverlapping(w.data.add(src - w.base), dst.cast::<u8>(), n) };
    }
    inside
}

/// Which way a copy goes.
#[derive(Clone, Copy)]
enum Way {
    FromProcess,
    ToProcess,
}

/// Moves `n` bytes between our `local` and the process's `remote`,
/// returning how many were not moved.
///
/// # Safety
/// `local` is valid for `n` bytes (writable for `FromProcess`).
unsafe fn transfer(
    as_: *mut c_void,
    way: Way,
    local: *mut c_void,
    remote: usize,
    n: usize,
) -> usize {
    let Some(pid) = pid_of(as_) else {
        return n;
    };
    let mut done = 0usize;
    while done < n {
        let l = libc::iovec {
            iov_base: (local as usize + done) as *mut c_void,
            iov_len: n - done,
        };
        let r = libc::iovec {
            iov_base: (remote + done) as *mut c_void,
            iov_len: n - done,
        };
        // SAFETY: one local iovec within the caller's buffer, one remote
        // iovec the host checks against the other process's mappings.
        let moved = unsafe {
            match way {
                Way::FromProcess => libc::process_vm_readv(pid, &l, 1, &r, 1, 0),
                Way::ToProcess => libc::process_vm_writev(pid, &l, 1, &r, 1, 0),
            }
        };
        if moved <= 0 {
            break;
        }
        done += moved as usize;
    }
    n - done
}

/// `user_read` for another process: `n` bytes at its `src` into `dst`.
///
/// # Safety
/// `dst` is valid for `n` bytes.
pub unsafe fn read(as_: *mut c_void, dst: *mut c_void, src: *const c_void, n: c_ulong) -> c_ulong {
    if let Some(pid) = pid_of(as_) {
        // SAFETY: the caller's contract.
        if unsafe { from_window(pid, dst, src as usize, n as usize) } {
            return 0;
        }
        before_read(pid, src as usize, n as usize);
    }
    // SAFETY: the caller's contract.
    unsafe { transfer(as_, Way::FromProcess, dst, src as usize, n as usize) as c_ulong }
}

/// `user_write` for another process: `n` bytes of `src` to its `dst`.
///
/// # Safety
/// `src` is valid for `n` bytes.
pub unsafe fn write(as_: *mut c_void, dst: *mut c_void, src: *const c_void, n: c_ulong) -> c_ulong {
    if let Some(pid) = pid_of(as_) {
        // SAFETY: the caller's contract.
        if unsafe { to_window(pid, dst as usize, src.cast(), n as usize) } {
            return 0;
        }
    }
    // SAFETY: the caller's contract; the local side is only read.
    unsafe {
        transfer(
            as_,
            Way::ToProcess,
            src as *mut c_void,
            dst as usize,
            n as usize,
        ) as c_ulong
    }
}

/// `user_clear` for another process: zeroes `n` bytes at its `dst`.
///
/// # Safety
/// None of ours: only the other process's memory is written (the host
/// checks it).
pub unsafe fn clear(as_: *mut c_void, dst: *mut c_void, n: c_ulong) -> c_ulong {
    static ZEROS: [u8; 4096] = [0; 4096];
    let n = n as usize;
    if let Some(pid) = pid_of(as_) {
        // Collected writes there land first.
        before_read(pid, dst as usize, n);
    }
    let mut done = 0usize;
    while done < n {
        let chunk = (n - done).min(ZEROS.len());
        // SAFETY: ZEROS is valid for `chunk` bytes and only read.
        let left = unsafe {
            transfer(
                as_,
                Way::ToProcess,
                ZEROS.as_ptr() as *mut c_void,
                dst as usize + done,
                chunk,
            )
        };
        done += chunk - left;
        if left != 0 {
            break;
        }
    }
    (n - done) as c_ulong
}
