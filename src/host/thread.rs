//! Host threads for the kernel: joinable pthreads with every signal
//! blocked (a host signal handler must never run on a kernel thread) but
//! SIGSEGV and SIGBUS, which a fault of the kernel's copies of program
//! memory raises (a blocked one would kill the process, see uaccess.rs),
//! and a stack large enough for the deepest kernel paths.

use std::ffi::{c_int, c_void};
use std::mem::MaybeUninit;
use std::ptr;

use crate::sys::ThreadHandle;

pub use boot_pin::BootPin;

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

mod boot_pin {
    //! Boot's host threads on one CPU. Boot is a chain of hand-offs between
    //! host threads (the creator of a kernel thread, `kthreadd`, the new
    //! thread, back), each a futex wake-up followed at once by the waker's
    //! own sleep. The host puts a woken thread on an idle CPU if there is
    //! one, so every hand-off paid a cross-CPU wake-up (on a VM: an
    //! interrupt to a halted virtual CPU), or a wait behind whatever else
    //! ran there; on the waker's own CPU it is a plain context switch.
    //! While the kernel boots, the booting thread and every thread made
    //! meanwhile (they inherit its affinity) stay on the CPU boot began on;
    //! afterwards each gets the booting thread's own mask back
    //! (docs/kernel.md, "Where boot time went"). `LKL_BOOT_PIN=0` turns it
    //! off, for measurements.

    use std::mem::{self, MaybeUninit};

    const CPU_SET_BYTES: usize = mem::size_of::<libc::cpu_set_t>();

    /// The booting thread's affinity before boot, and the threads that
    /// existed then.
    pub struct BootPin {
        original: libc::cpu_set_t,
        pinned: libc::cpu_set_t,
        before: Vec<i32>,
        me: i32,
    }

    fn affinity(tid: i32) -> Option<libc::cpu_set_t> {
        let mut set = MaybeUninit::<libc::cpu_set_t>::zeroed();
        // SAFETY: the kernel writes at most CPU_SET_BYTES into the set.
        let rc = unsafe { libc::sched_getaffinity(tid, CPU_SET_BYTES, set.as_mut_ptr()) };
        // SAFETY: zero-initialised, then filled by the kernel.
        (rc == 0).then(|| unsafe { set.assume_init() })
    }

    fn set_affinity(tid: i32, set: &libc::cpu_set_t) -> bool {
        // SAFETY: reads CPU_SET_BYTES from a valid set.
        unsafe { libc::sched_setaffinity(tid, CPU_SET_BYTES, set) == 0 }
    }

    /// The process's thread ids, from /proc/self/task read with system
    /// calls made directly (no directory API: the hijack hooks its libc
    /// functions).
    fn thread_ids() -> Vec<i32> {
        let mut ids = Vec::new();
        // SAFETY: a NUL-terminated path; the descriptor is closed below.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat,
                libc::AT_FDCWD,
                c"/proc/self/task".as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return ids;
        }
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: getdents64 fills at most buf.len() bytes of `buf`.
            let n = unsafe { libc::syscall(libc::SYS_getdents64, fd, buf.as_mut_ptr(), buf.len()) };
            if n <= 0 {
                break;
            }
            let mut off = 0usize;
            // Each record: d_ino (8), d_off (8), d_reclen (2), d_type (1),
            // then the NUL-terminated name.
            while off + 19 < n as usize {
                let reclen = usize::from(u16::from_ne_bytes([buf[off + 16], buf[off + 17]]));
                if reclen == 0 || off + reclen > n as usize {
                    break;
                }
                let name = &buf[off + 19..off + reclen];
                let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
                if let Some(id) = std::str::from_utf8(name).ok().and_then(|s| s.parse().ok()) {
                    ids.push(id);
                }
                off += reclen;
            }
        }
        // SAFETY: closes the descriptor opened above.
        unsafe { libc::close(fd as i32) };
        ids
    }

    impl BootPin {
        /// Pins the calling thread to the CPU it runs on, if it may run on
        /// more than one. `None`: nothing was changed.
        pub fn begin() -> Option<BootPin> {
            if std::env::var_os("LKL_BOOT_PIN").is_some_and(|v| v == "0") {
                return None;
            }
            let original = affinity(0)?;
            // SAFETY: reads a valid set.
            if unsafe { libc::CPU_COUNT(&original) } < 2 {
                return None;
            }
            // SAFETY: no preconditions.
            let cpu = unsafe { libc::sched_getcpu() };
            if cpu < 0 || cpu as usize >= 8 * CPU_SET_BYTES {
                return None;
            }
            // SAFETY: reads a valid set at an index checked to be in range.
            if !unsafe { libc::CPU_ISSET(cpu as usize, &original) } {
                return None;
            }
            // SAFETY: all-zero is an empty set; CPU_SET writes inside it.
            let mut pinned: libc::cpu_set_t = unsafe { mem::zeroed() };
            // SAFETY: `cpu` is in range (checked above).
            unsafe { libc::CPU_SET(cpu as usize, &mut pinned) };
            let before = thread_ids();
            // SAFETY: no preconditions.
            let me = unsafe { libc::gettid() };
            if !set_affinity(0, &pinned) {
                return None;
            }
            Some(BootPin {
                original,
                pinned,
                before,
                me,
            })
        }

        /// Gives the calling thread, and every thread made since
        /// [`BootPin::begin`] that is still pinned, the original mask back.
        pub fn end(self) {
            for tid in thread_ids() {
                if tid != self.me && self.before.contains(&tid) {
                    continue;
                }
                let pinned = affinity(tid).is_some_and(|now| {
                    // SAFETY: reads two valid sets.
                    unsafe { libc::CPU_EQUAL(&now, &self.pinned) }
                });
                if pinned {
                    set_affinity(tid, &self.original);
                }
            }
        }
    }
}
