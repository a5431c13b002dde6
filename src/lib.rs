//! Linux 6.12 as a library.
//!
//! The kernel (compiled from Debian's `linux-source-6.12` with our own arch
//! port, `kernel/arch/lkl`) is linked into this crate as one relocatable
//! object whose only global symbols are `lkl_*`. [`Kernel::boot`] starts it
//! inside the calling process; from then on any thread may make system
//! calls into it through the typed wrappers in [`syscall`], each returning
//! `Result<_, Errno>` with the kernel's own (generic-ABI) errno numbers.
//!
//! ## Modules, bottom-up
//!
//! Each module imports only from modules of lower layers (never from one
//! above, nor from another of its own layer), so the crate's import graph
//! has no cycle. `tests/layers.rs` reads this table and checks every
//! `crate::` and `super::` path under `src/` against it; `docs/layers.md`
//! says why the order is this one.
//!
//! | layer | module | what it is |
//! |---|---|---|
//! | 0 | [`sys`] | the kernel object's `lkl_*` entry points, the host-operations table, the one fork flag |
//! | 1 | [`host`] | what the kernel calls on its host: threads, semaphores, TLS, memory, clocks, timers, console, MMIO |
//! | 2 | [`syscall`] | system-call numbers, the kernel's ABI structures, `Errno`, safe typed wrappers |
//! | 3 | [`xlate`] | translation between the host's x86_64 ABI and the kernel's generic one |
//! | 4 | [`kernel`] | booting and halting, the one global kernel state, the boot parameters |
//! | 5 | [`virtio`] | host-side virtio devices: guest memory, virtqueues, the MMIO transport, net and its backends, blk |
//! | 6 | [`devices`] | attaching a virtio device to the kernel (IRQ, register range, boot parameter or hot-add) |
//! | 7 | [`config`] | the JSON config, parsed and validated, with its errors |
//! | 8 | [`disk`] | image files as virtio-blk disks: attach, find, mount, unmount |
//! | 8 | [`dns`] | name resolution over the kernel's network |
//! | 8 | [`netcfg`] | configuring the kernel's network: links, addresses, routes, rules, neighbours, sysctls |
//! | 9 | [`netstat`] | the kernel's sockets and counters, read from its `/proc` |
//!
//! Above the crate: the hijack library (`src/hijack.rs`), the tools
//! (`tools/`) and the benchmarks (`bench/`).

#![deny(unsafe_op_in_unsafe_fn)]

pub mod sys;

pub mod host;

pub mod syscall;

pub mod xlate;

pub mod kernel;

pub mod virtio;

pub mod devices;

pub mod config;

pub mod disk;
pub mod dns;
pub mod netcfg;

pub mod netstat;

pub use kernel::{interrupt, BootError, BootOptions, Kernel};
pub use syscall::Errno;

/// The kernel release this crate was built with (e.g. "6.12.117").
pub const KERNEL_VERSION: &str = env!("LKL_KERNEL_VERSION");
/// Where build.rs found the kernel object (for the symbol checks in tests).
pub const KERNEL_OBJECT: &str = env!("LKL_KERNEL_OBJECT");
