//! `FILE` streams on kernel descriptors. glibc's stdio reads and writes
//! through its internal calls, which never reach the hooks, so a stream on
//! a kernel descriptor is a `fopencookie` stream whose functions call the
//! kernel ([`cookie_stream`]; `fopen` of a disk path and `fdopen` of a
//! kernel descriptor make one, fs/stdio.rs).
//!
//! The standard streams follow their descriptors ([`follow_std`]): when
//! descriptor 0, 1 or 2 becomes a kernel one (a `dup2` onto it, as a
//! shell's `echo > /mnt/disk/f` or an inetd-style server does, or a new
//! image that kept one across exec), `stdin`/`stdout`/`stderr` point at a
//! cookie stream on it; when it becomes a host one again, at libc's own
//! stream. What the old stream buffered is flushed before the descriptor
//! changes ([`before_std_change`]), to where it was meant to go.

use std::ffi::{c_char, c_int, c_void};
use std::sync::atomic::{AtomicI32, AtomicPtr, Ordering};

use lkl::syscall::nr;

use crate::hijack::call::{arg, close_kernel_fd, kcall};
use crate::hijack::fdtable;
use crate::hijack::host::{fail, set_errno};

type ReadFn = unsafe extern "C" fn(*mut c_void, *mut c_char, usize) -> isize;
type WriteFn = unsafe extern "C" fn(*mut c_void, *const c_char, usize) -> isize;
type SeekFn = unsafe extern "C" fn(*mut c_void, *mut i64, c_int) -> c_int;
type CloseFn = unsafe extern "C" fn(*mut c_void) -> c_int;

/// glibc's `cookie_io_functions_t`.
#[repr(C)]
struct CookieIo {
    read: Option<ReadFn>,
    write: Option<WriteFn>,
    seek: Option<SeekFn>,
    close: Option<CloseFn>,
}

extern "C" {
    fn fopencookie(cookie: *mut c_void, mode: *const c_char, io: CookieIo) -> *mut libc::FILE;
    fn fflush(stream: *mut libc::FILE) -> c_int;
    static mut stdin: *mut libc::FILE;
    static mut stdout: *mut libc::FILE;
    static mut stderr: *mut libc::FILE;
}

/// Offset of `_fileno` in glibc's `struct _IO_FILE` on x86-64 (public,
/// <bits/types/struct_FILE.h>: twelve pointers, `_markers`, `_chain`).
const FILENO_OFFSET: usize = 112;

/// A cookie: the host number of the kernel descriptor (-1 once a standard
/// stream's descriptor went back to the host), and the standard stream it
/// serves (-1 for none).
struct Cookie {
    hfd: AtomicI32,
    std: c_int,
}

fn kernel_of(cookie: *mut c_void) -> Option<i32> {
    // SAFETY: the cookie is a Box<Cookie> of ours, alive until close.
    let hfd = unsafe { &*cookie.cast::<Cookie>() }
        .hfd
        .load(Ordering::Acquire);
    fdtable::kernel_fd(hfd)
}

unsafe extern "C" fn c_read(cookie: *mut c_void, buf: *mut c_char, n: usize) -> isize {
    let Some(k) = kernel_of(cookie) else {
        return fail(libc::EBADF);
    };
    kcall(nr::READ, [k.into(), arg!(buf), n as i64, 0, 0, 0]) as isize
}

unsafe extern "C" fn c_write(cookie: *mut c_void, buf: *const c_char, n: usize) -> isize {
    let Some(k) = kernel_of(cookie) else {
        set_errno(libc::EBADF);
        return 0;
    };
    // A cookie write reports an error as 0 bytes (errno set).
    kcall(nr::WRITE, [k.into(), arg!(buf), n as i64, 0, 0, 0]).max(0) as isize
}

unsafe extern "C" fn c_seek(cookie: *mut c_void, off: *mut i64, whence: c_int) -> c_int {
    let Some(k) = kernel_of(cookie) else {
        return fail(libc::EBADF);
    };
    // SAFETY: glibc passes a valid offset.
    let at = unsafe { *off };
    let r = kcall(nr::LSEEK, [k.into(), at, whence.into(), 0, 0, 0]);
    if r < 0 {
        return -1;
    }
    // SAFETY: as above.
    unsafe { *off = r };
    0
}

unsafe extern "C" fn c_close(cookie: *mut c_void) -> c_int {
    // SAFETY: the Box<Cookie> made in `make`, closed once (glibc's fclose).
    let c = unsafe { Box::from_raw(cookie.cast::<Cookie>()) };
    if let Some(slot) = STD.get(c.std as usize) {
        // The program closed a standard stream of ours: never reuse it.
        slot.set(std::ptr::null_mut(), std::ptr::null_mut());
    }
    match c.hfd.load(Ordering::Acquire) {
        hfd if hfd >= 0 => close_kernel_fd(hfd),
        _ => 0,
    }
}

/// A cookie stream over host number `hfd`, serving standard stream `std`
/// (-1: none), and its cookie; `fileno` of it is `hfd`.
fn make(hfd: c_int, std: c_int, mode: *const c_char) -> Option<(*mut libc::FILE, *mut Cookie)> {
    let raw = Box::into_raw(Box::new(Cookie {
        hfd: AtomicI32::new(hfd),
        std,
    }));
    let cookie = raw.cast::<c_void>();
    let io = CookieIo {
        read: Some(c_read),
        write: Some(c_write),
        seek: Some(c_seek),
        close: Some(c_close),
    };
    // SAFETY: glibc's fopencookie with our cookie and functions; the mode
    // is the program's or ours.
    let f = unsafe { fopencookie(cookie, mode, io) };
    if f.is_null() {
        // SAFETY: the cookie was not taken.
        drop(unsafe { Box::from_raw(raw) });
        return None;
    }
    // glibc gives a cookie stream -1; programs ask `fileno` of streams
    // (isatty(fileno(stdout))). Nothing in glibc's cookie functions reads it.
    // SAFETY: `f` is a glibc FILE; the field is an int at this offset.
    unsafe { f.cast::<u8>().add(FILENO_OFFSET).cast::<c_int>().write(hfd) };
    Some((f, raw))
}

/// A stream over host number `hfd` of a kernel descriptor (owned by the
/// stream from now on: `fclose` closes it).
pub fn cookie_stream(hfd: c_int, mode: *const c_char) -> *mut libc::FILE {
    make(hfd, -1, mode).map_or(std::ptr::null_mut(), |(f, _)| f)
}

/// One standard stream's cookie stream, once made: reused each time its
/// descriptor becomes a kernel one again (pointers, not owned: glibc frees
/// the stream if the program closes it, and `c_close` then clears this).
struct StdSlot {
    file: AtomicPtr<libc::FILE>,
    cookie: AtomicPtr<Cookie>,
    /// libc's own stream, while ours stands in for it.
    host: AtomicPtr<libc::FILE>,
}

impl StdSlot {
    const fn new() -> Self {
        StdSlot {
            file: AtomicPtr::new(std::ptr::null_mut()),
            cookie: AtomicPtr::new(std::ptr::null_mut()),
            host: AtomicPtr::new(std::ptr::null_mut()),
        }
    }

    fn set(&self, file: *mut libc::FILE, cookie: *mut Cookie) {
        self.file.store(file, Ordering::Release);
        self.cookie.store(cookie, Ordering::Release);
    }
}

static STD: [StdSlot; 3] = [StdSlot::new(), StdSlot::new(), StdSlot::new()];

/// `stdin`, `stdout` or `stderr`, the variable itself.
fn std_var(fd: c_int) -> *mut *mut libc::FILE {
    match fd {
        0 => &raw mut stdin,
        1 => &raw mut stdout,
        _ => &raw mut stderr,
    }
}

/// Before descriptor `fd` changes (a `dup2`/`dup3` onto it): the standard
/// stream on it writes out what it holds, to where it was meant to go.
pub fn before_std_change(fd: c_int) {
    if (1..=2).contains(&fd) {
        // SAFETY: reads glibc's variable; flushes the program's stream.
        unsafe { fflush(*std_var(fd)) };
    }
}

/// After descriptor `fd` changed: its standard stream (if it is 0, 1 or
/// 2) is a cookie stream if the descriptor is a kernel one, libc's own if
/// not.
pub fn follow_std(fd: c_int) {
    let Some(slot) = STD.get(fd as usize) else {
        return;
    };
    let var = std_var(fd);
    // SAFETY: glibc's variable, read.
    let current = unsafe { *var };
    let ours = slot.file.load(Ordering::Acquire);
    let on_kernel = fdtable::kernel_fd(fd).is_some();
    if on_kernel {
        if !ours.is_null() && current == ours {
            return;
        }
        let cookie = slot.cookie.load(Ordering::Acquire);
        let file = if ours.is_null() || cookie.is_null() {
            let mode = if fd == 0 { c"r" } else { c"w" };
            let Some((f, c)) = make(fd, fd, mode.as_ptr()) else {
                return;
            };
            if fd == 2 {
                // stderr is unbuffered, as libc's.
                // SAFETY: a stream of ours, before any I/O.
                unsafe { libc::setvbuf(f, std::ptr::null_mut(), libc::_IONBF, 0) };
            }
            slot.set(f, c);
            f
        } else {
            // SAFETY: our cookie, alive while the stream is (not closed).
            unsafe { &*cookie }.hfd.store(fd, Ordering::Release);
            ours
        };
        slot.host.store(current, Ordering::Release);
        // SAFETY: glibc's variable, written (as freopen would).
        unsafe { *var = file };
    } else if !ours.is_null() && current == ours {
        let cookie = slot.cookie.load(Ordering::Acquire);
        if !cookie.is_null() {
            // SAFETY: as above.
            unsafe { &*cookie }.hfd.store(-1, Ordering::Release);
        }
        let host = slot.host.load(Ordering::Acquire);
        if !host.is_null() {
            // SAFETY: glibc's variable, given back its own stream.
            unsafe { *var = host };
        }
    }
}
