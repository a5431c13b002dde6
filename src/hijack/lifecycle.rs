//! Where the process is in its life, as every hook needs to know it: the
//! kernel running (calls on kernel descriptors can be served), a forked
//! child (the kernel stayed in the parent), or the exit path running in
//! some thread (others stop where they meet the kernel). init.rs moves the
//! process through these; the hooks only ask.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// True while calls on kernel descriptors can be served.
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// The thread running the exit path (0: the program is not exiting).
static EXITING: AtomicI32 = AtomicI32::new(0);

/// True while calls on kernel descriptors can be served.
#[inline]
pub fn active() -> bool {
    ACTIVE.load(Ordering::Acquire)
}

/// Says whether calls on kernel descriptors can be served (init only).
pub fn set_active(on: bool) {
    ACTIVE.store(on, Ordering::Release);
}

/// True in a process forked from the one running the kernel (the one
/// flag, `lkl::sys::forked`, set by the atfork handler the kernel registers
/// when it boots).
#[inline]
pub fn forked() -> bool {
    lkl::sys::forked()
}

/// A kernel call's error as the program should see it: in a forked child
/// the inherited kernel descriptors are gone (EBADF), not ESHUTDOWN.
pub fn after_fork(e: lkl::Errno) -> lkl::Errno {
    if e == lkl::Errno::ESHUTDOWN && forked() {
        lkl::Errno::EBADF
    } else {
        e
    }
}

/// Says once why a forked child gets no kernel sockets.
pub fn forked_socket_error() {
    static SAID: AtomicBool = AtomicBool::new(false);
    if !SAID.swap(true, Ordering::AcqRel) {
        diag("socket(): this process is a fork of the one that runs the kernel, which stayed there: no kernel sockets here (exec a program to boot its own)");
    }
}

/// The calling thread starts the exit path: from here on other threads
/// stop where they meet the kernel (`park_if_exiting`).
pub fn begin_exit() {
    // SAFETY: gettid has no arguments.
    EXITING.store(unsafe { libc::gettid() }, Ordering::Release);
}

/// True once some thread runs the exit path.
pub fn exiting() -> bool {
    EXITING.load(Ordering::Acquire) != 0
}

/// Called where a thread is about to use the kernel (or has just come back
/// from it): while another thread runs the exit path, this thread stops
/// here for good, as it would stay blocked in its call on the host until
/// exit_group ends it. It must not see the kernel's descriptors closed,
/// its disks unmounted or the kernel halted (a blocked call's ESHUTDOWN,
/// a path that fell back to the host): the program would print errors, or
/// open a file that keeps a disk from being unmounted. Holds no lock of
/// ours; `pause` is the host's, so signals are still handled.
#[inline]
pub fn park_if_exiting() {
    let t = EXITING.load(Ordering::Acquire);
    if t != 0 {
        park_unless(t);
    }
}

#[cold]
fn park_unless(exiting: i32) {
    // SAFETY: gettid has no arguments.
    if unsafe { libc::gettid() } == exiting {
        return;
    }
    loop {
        // SAFETY: waits for a signal; the process ends around us.
        unsafe { libc::pause() };
    }
}

/// A one-line diagnostic on stderr.
pub fn diag(msg: &str) {
    eprintln!("lkl-hijack: {msg}");
}
