//! Files on the config's disks. A call on a path under a disk's mount
//! point (paths.rs decides) or on a kernel descriptor goes to the kernel,
//! every other one to libc's function. The descriptors the kernel opens
//! join the descriptor table, so the calls on any descriptor (fd/) serve
//! them too.
//!
//! ABI (an x86_64 host, the kernel's generic 64-bit ABI): the `O_*` flags
//! have the same values (open.rs asserts them); `struct stat` differs and
//! is converted (stat.rs); `struct statfs`, `statx`, `timespec` and `iovec`
//! have one layout and pass through.
//!
//! Bottom-up: `paths` (which world a path is in) and `disks` (attached
//! before boot, mounted after it, finished at exit, leaving the kernel's
//! working directory through `cwd`); the hooks by path or descriptor, each
//! file one family of calls (`open`, `stat`, `access`, `names`, `attrs`,
//! `statfs`, `file`, `cwd`); and the streams over kernel files, `dirs`
//! (`DIR`) and `stdio` (`FILE`), which open through `open`.

pub mod paths;

pub mod access;
pub mod attrs;
pub mod cwd;
pub mod file;
pub mod names;
pub mod open;
pub mod stat;
pub mod statfs;

pub mod dirs;
pub mod disks;
pub mod stdio;
