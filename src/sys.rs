//! Raw bindings to the kernel object: the `lkl_*` entry points and the host
//! operations table. Mirrors `kernel/arch/lkl/include/asm/host_ops.h` and
//! `asm/lkl.h`; nothing else in the crate declares foreign kernel items.
//!
//! Also the one "forked" flag: the kernel's threads do not come along into
//! the child of a `fork()`, so the child must never call into the copy of
//! the kernel it inherited (every call would wait for a CPU no thread
//! runs). [`watch_forks`] registers the `pthread_atfork` handler that sets
//! it; [`forked`] reads it. Every layer above asks here.

use std::ffi::{c_char, c_int, c_long, c_ulong, c_ulonglong, c_void};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

/// Opaque host objects: the kernel only passes the pointers back.
pub type Sem = c_void;
pub type TlsKey = c_void;
pub type Timer = c_void;
pub type ThreadHandle = c_ulong;

/// `sem_alloc` flag: a contended lock whose waiters may spin first.
pub const LKL_SEM_SPIN: c_int = 1;

/// `struct lkl_host_operations`, field for field.
#[repr(C)]
pub struct HostOps {
    pub print: Option<unsafe extern "C" fn(*const c_char, c_int)>,
    pub panic: Option<extern "C" fn()>,
    pub sem_alloc: unsafe extern "C" fn(c_int, c_int) -> *mut Sem,
    pub sem_free: unsafe extern "C" fn(*mut Sem),
    pub sem_up: unsafe extern "C" fn(*mut Sem),
    pub sem_down: unsafe extern "C" fn(*mut Sem),
    pub sem_trydown: unsafe extern "C" fn(*mut Sem) -> c_int,
    pub thread_create:
        unsafe extern "C" fn(unsafe extern "C" fn(*mut c_void), *mut c_void) -> ThreadHandle,
    pub thread_join: unsafe extern "C" fn(ThreadHandle) -> c_int,
    pub thread_self: extern "C" fn() -> ThreadHandle,
    pub tls_alloc: unsafe extern "C" fn(Option<unsafe extern "C" fn(*mut c_void)>) -> *mut TlsKey,
    pub tls_free: unsafe extern "C" fn(*mut TlsKey),
    pub tls_set: unsafe extern "C" fn(*mut TlsKey, *mut c_void) -> c_int,
    pub tls_get: unsafe extern "C" fn(*mut TlsKey) -> *mut c_void,
    pub mem_alloc: unsafe extern "C" fn(c_ulong) -> *mut c_void,
    pub mem_free: unsafe extern "C" fn(*mut c_void),
    pub page_alloc: unsafe extern "C" fn(c_ulong) -> *mut c_void,
    pub page_free: unsafe extern "C" fn(*mut c_void, c_ulong),
    /// Optional: whole pages of the kernel's code it does not need now.
    pub image_discard: Option<unsafe extern "C" fn(*mut c_void, c_ulong)>,
    pub time: extern "C" fn() -> c_ulonglong,
    pub realtime: extern "C" fn() -> c_ulonglong,
    pub timer_alloc:
        unsafe extern "C" fn(unsafe extern "C" fn(*mut c_void), *mut c_void) -> *mut Timer,
    pub timer_set_oneshot: unsafe extern "C" fn(*mut Timer, c_ulonglong) -> c_int,
    pub timer_free: unsafe extern "C" fn(*mut Timer),
    pub iomem_access: unsafe extern "C" fn(*const c_void, *mut c_void, c_int, c_int) -> c_int,
    /// Program memory: (address space, dst, src, n) -> bytes not copied.
    pub user_read:
        unsafe extern "C" fn(*mut c_void, *mut c_void, *const c_void, c_ulong) -> c_ulong,
    pub user_write:
        unsafe extern "C" fn(*mut c_void, *mut c_void, *const c_void, c_ulong) -> c_ulong,
    pub user_clear: unsafe extern "C" fn(*mut c_void, *mut c_void, c_ulong) -> c_ulong,
}

extern "C" {
    /// Boots the kernel; returns 0 once pid 1 belongs to the calling thread.
    pub fn lkl_start_kernel(ops: *const HostOps, cmdline: *const c_char) -> c_int;
    /// Runs system call `no` with six arguments; a negative errno on failure.
    pub fn lkl_syscall(no: c_long, params: *mut c_long) -> c_long;
    /// Syncs, powers off and tears everything down; 0 on success.
    pub fn lkl_sys_halt() -> c_long;
    pub fn lkl_is_running() -> c_int;
    pub fn lkl_trigger_irq(irq: c_int) -> c_int;
    pub fn lkl_get_free_irq(user: *const c_char) -> c_int;
    pub fn lkl_put_irq(irq: c_int, user: *const c_char);
    /// Interrupts the call task `tid` is blocked in (async-signal-safe).
    pub fn lkl_interrupt_async(tid: c_int) -> c_int;
    /// System call `no` as host task `task` (a process's thread).
    pub fn lkl_task_syscall(task: *mut c_void, no: c_long, params: *mut c_long) -> c_long;
    /// A new kernel process (a fork of `parent`, or a first one when NULL)
    /// whose user copies use cookie `as_`, with pid `pid` if positive; 0
    /// and `*out`, or a negative errno (EEXIST: that pid is taken).
    pub fn lkl_process_new(
        parent: *mut c_void,
        as_: *mut c_void,
        pid: c_int,
        out: *mut *mut c_void,
    ) -> c_int;
    /// A new host task in `process`'s thread group, with thread id `tid`
    /// if it is positive and free (else the kernel's choice).
    pub fn lkl_process_thread_tid(process: *mut c_void, tid: c_int, out: *mut *mut c_void)
        -> c_int;
    /// Sets the address-space cookie of `process`'s mm.
    pub fn lkl_process_set_as(process: *mut c_void, as_: *mut c_void);
    /// `task`'s kernel thread id.
    pub fn lkl_task_pid(task: *mut c_void) -> c_int;
    /// Ends host task `task` and drops the caller's hold on it.
    pub fn lkl_task_exit(task: *mut c_void);
}

/// Set in the child of a fork() of a process that called [`watch_forks`].
static FORKED: AtomicBool = AtomicBool::new(false);

extern "C" fn mark_forked() {
    FORKED.store(true, Ordering::Release);
}

/// Registers (once per process, however often it is called) the
/// `pthread_atfork` child handler that makes [`forked`] true in every child
/// forked from now on. The kernel registers it before it boots.
pub fn watch_forks() {
    static REGISTERED: Once = Once::new();
    REGISTERED.call_once(|| {
        // SAFETY: registers a handler that only stores to an atomic.
        unsafe { libc::pthread_atfork(None, None, Some(mark_forked)) };
    });
}

/// Marks this process as a fork child, for a fork the `pthread_atfork`
/// handler did not see (a raw `fork`/`clone` system call, caught by the
/// hijack's system-call tier).
pub fn set_forked() {
    mark_forked();
}

/// True in a process forked from one that called [`watch_forks`] (the one
/// running the kernel): the kernel stayed in the parent.
#[inline]
pub fn forked() -> bool {
    FORKED.load(Ordering::Relaxed)
}
