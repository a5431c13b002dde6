//! Host threads for the kernel: joinable pthreads with every signal
//! blocked (a host signal handler must never run on a kernel thread) but
//! SIGSEGV and SIGBUS, which a fault of the kernel's copies of program
//! memory raises (a blocked one would kill the process, see uaccess.rs),
//! and a stack large enough for the deepest kernel paths.

use std::ffi::{c_int, c_void};
use std::mem::MaybeUninit;
use std::ptr;

use crate::sys::ThreadHandle;

/// Stack for threads that run kernel code (softirqs, file systems).
pub const KERNEL_STACK_SIZE: usize = 2 << 20;

struct Start {
    f: unsafe extern "C" fn(*mut c_void),
    arg: *mut c_void,
}

extern "C" fn trampoline(p: *mut c_void) -> *mut c_void {
    // SAFETY: `p` is the Box leaked by `spawn_kernel_thread` for this thread.
    let start = unsafe { Box::from_raw(p.cast::<Start>()) };
    super::rxpoll::mark_kernel_thread();
    let mut faults = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: a local set, filled before use; unblocks two synchronous
    // signals for this thread only.
    unsafe {
        libc::sigemptyset(faults.as_mut_ptr());
        libc::sigaddset(faults.as_mut_ptr(), libc::SIGSEGV);
        libc::sigaddset(faults.as_mut_ptr(), libc::SIGBUS);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, faults.as_ptr(), ptr::null_mut());
    }
    // SAFETY: the kernel gave a function and the argument it expects.
    unsafe { (start.f)(start.arg) };
    ptr::null_mut()
}

/// A joinable host thread created for kernel code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelThread(pub libc::pthread_t);

impl KernelThread {
    /// Waits for the thread to end.
    pub fn join(self) -> Result<(), i32> {
        // SAFETY: the handle is a joinable thread that nobody joined yet.
        match unsafe { libc::pthread_join(self.0, ptr::null_mut()) } {
            0 => Ok(()),
            e => Err(e),
        }
    }
}

/// Starts `f(arg)` on a new host thread with all signals blocked but
/// SIGSEGV and SIGBUS.
///
/// # Safety
/// `f` must be safe to call with `arg` on another thread.
pub unsafe fn spawn_kernel_thread(
    f: unsafe extern "C" fn(*mut c_void),
    arg: *mut c_void,
) -> Result<KernelThread, i32> {
    let start = Box::into_raw(Box::new(Start { f, arg }));
    let mut attr = MaybeUninit::<libc::pthread_attr_t>::uninit();
    let mut all = MaybeUninit::<libc::sigset_t>::uninit();
    let mut old = MaybeUninit::<libc::sigset_t>::uninit();
    let mut thread = MaybeUninit::<libc::pthread_t>::uninit();
    // SAFETY: every pointer is to a local; the attribute object is
    // initialised before use and destroyed after; the new thread takes
    // ownership of `start` only if pthread_create succeeds. Blocking all
    // signals around the creation makes the new thread inherit the full mask.
    let rc = unsafe {
        libc::pthread_attr_init(attr.as_mut_ptr());
        libc::pthread_attr_setstacksize(attr.as_mut_ptr(), KERNEL_STACK_SIZE);
        libc::sigfillset(all.as_mut_ptr());
        libc::pthread_sigmask(libc::SIG_SETMASK, all.as_ptr(), old.as_mut_ptr());
        let rc = libc::pthread_create(thread.as_mut_ptr(), attr.as_ptr(), trampoline, start.cast());
        libc::pthread_sigmask(libc::SIG_SETMASK, old.as_ptr(), ptr::null_mut());
        libc::pthread_attr_destroy(attr.as_mut_ptr());
        rc
    };
    if rc != 0 {
        // SAFETY: the thread was not created, so `start` is still ours.
        drop(unsafe { Box::from_raw(start) });
        return Err(rc);
    }
    // SAFETY: pthread_create succeeded and wrote the handle.
    Ok(KernelThread(unsafe { thread.assume_init() }))
}

pub(super) unsafe extern "C" fn thread_create(
    f: unsafe extern "C" fn(*mut c_void),
    arg: *mut c_void,
) -> ThreadHandle {
    // SAFETY: the kernel passes its own bootstrap function and argument.
    match unsafe { spawn_kernel_thread(f, arg) } {
        Ok(t) => t.0 as ThreadHandle,
        Err(_) => 0,
    }
}

pub(super) unsafe extern "C" fn thread_join(t: ThreadHandle) -> c_int {
    match KernelThread(t as libc::pthread_t).join() {
        Ok(()) => 0,
        Err(_) => -1,
    }
}

pub(super) extern "C" fn thread_self() -> ThreadHandle {
    // SAFETY: pthread_self has no preconditions.
    unsafe { libc::pthread_self() as ThreadHandle }
}
