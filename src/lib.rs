//! Linux 6.12 as a library.
//!
//! The kernel (compiled from Debian's `linux-source-6.12` with our own arch
//! port, `kernel/arch/lkl`) is linked into this crate as one relocatable
//! object whose only global symbols are `lkl_*`. [`Kernel::boot`] starts it
//! inside the calling process; from then on any thread may make system
//! calls into it through the typed wrappers in [`syscall`], each returning
//! `Result<_, Errno>` with the kernel's own (generic-ABI) errno numbers.
//!
//! Layers, from the bottom:
//! - [`sys`]: the raw `lkl_*` entry points and the host-operations table;
//! - [`host`]: what the kernel needs from its host (threads, semaphores,
//!   TLS, memory, clocks, timers, console);
//! - [`kernel`]: booting and halting, the one global kernel state;
//! - [`syscall`]: system-call numbers, ABI structures and safe wrappers.

#![deny(unsafe_op_in_unsafe_fn)]

pub mod config;
pub mod devices;
pub mod disk;
pub mod dns;
pub mod host;
pub mod kernel;
pub mod netcfg;
pub mod netstat;
pub mod sys;
pub mod syscall;
pub mod virtio;
pub mod xlate;

pub use kernel::{interrupt, BootError, BootOptions, Kernel};
pub use syscall::Errno;

/// The kernel release this crate was built with (e.g. "6.12.117").
pub const KERNEL_VERSION: &str = env!("LKL_KERNEL_VERSION");
/// Where build.rs found the kernel object (for the symbol checks in tests).
pub const KERNEL_OBJECT: &str = env!("LKL_KERNEL_OBJECT");
