//! The host side of the kernel: the operations table the kernel calls for
//! threads, semaphores, TLS, memory, clocks, timers, its console and the
//! program's memory (fault-safe copies, `uaccess`). Each
//! `extern "C"` function is a thin wrapper over a safe type in the
//! submodules; none of them can unwind into the kernel.

mod console;
pub mod iomem;
mod mem;
pub mod process_mem;
pub mod rxpoll;
pub use mem::kernel_ram;
mod sem;
mod thread;
mod timer;
mod tls;
pub mod uaccess;

pub use console::{Console, ConsoleBuffer, ConsoleFn};
pub use sem::Semaphore;
pub(crate) use thread::BootPin;
pub use thread::{spawn_kernel_thread, KernelThread};
pub use timer::host_timer_threads;

use crate::sys::HostOps;

/// The table handed to `lkl_start_kernel`. It lives for the whole process.
pub(crate) static OPS: HostOps = HostOps {
    print: Some(console::print),
    panic: Some(console::panic),
    sem_alloc: sem::sem_alloc,
    sem_free: sem::sem_free,
    sem_up: sem::sem_up,
    sem_down: sem::sem_down,
    sem_trydown: sem::sem_trydown,
    thread_create: thread::thread_create,
    thread_join: thread::thread_join,
    thread_self: thread::thread_self,
    tls_alloc: tls::tls_alloc,
    tls_free: tls::tls_free,
    tls_set: tls::tls_set,
    tls_get: tls::tls_get,
    mem_alloc: mem::mem_alloc,
    mem_free: mem::mem_free,
    page_alloc: mem::page_alloc,
    page_free: mem::page_free,
    image_discard: Some(mem::image_discard),
    time: timer::monotonic_ns,
    realtime: timer::realtime_ns,
    timer_alloc: timer::timer_alloc,
    timer_set_oneshot: timer::timer_set_oneshot,
    timer_free: timer::timer_free,
    iomem_access: iomem::iomem_access,
    user_read: uaccess::user_read,
    user_write: uaccess::user_write,
    user_clear: uaccess::user_clear,
};

pub(crate) use console::set_console;
