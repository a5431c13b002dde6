//! `liblkl_hijack.so`: run an unmodified program on the in-process kernel.
//!
//! Loaded with `LD_PRELOAD` (see `bin/lkl-hijack.sh`), the library boots
//! the kernel from the JSON config before `main` (`init`), and interposes
//! libc's socket, descriptor, file and name calls: a call on a kernel
//! descriptor (or a path on one of the config's disks) goes to the kernel,
//! every other one to libc's own function (`host`). Which descriptor is
//! whose is kept in a table, not by a number threshold: a kernel descriptor
//! is shown to the program under the number of a host placeholder
//! descriptor, so the two can never collide (`fdtable`).
//!
//! No panic may cross into the program: every hook returns libc's failure
//! (-1 and errno, or a null pointer) and nothing on a hook path unwraps.
//! Every hook calls the kernel the same way (`call`). On a host descriptor
//! a hook costs one table load and one load of libc's function's address
//! before libc's function runs (`bin/hook-cost.sh` counts it).
//!
//! Names resolve through the kernel when the config has a `nameserver`;
//! host signals interrupt kernel calls, and a write to a gone peer raises
//! SIGPIPE; interface queries answer for the kernel's interfaces. With
//! `LKL_HIJACK_SERVER` set (the launcher's process-tree mode) the library
//! boots nothing: every kernel call goes to the tree's kernel server, and
//! fork and exec keep the kernel descriptors as the host keeps host ones
//! (docs/process-tree.md). Without it, in a forked child the kernel stays
//! with the parent: inherited kernel descriptors are EBADF, new sockets
//! fail with ENETDOWN and a one-line message; an exec boots a kernel of
//! its own. Not yet: res_* (glibc's
//! resolver API keeps using the host).
//!
//! # Modules, bottom-up
//!
//! Each uses only modules listed before it:
//!
//! - `host`: the one way to libc's functions (`libc_fn!`: found by name
//!   once per call site, the crate's only `dlsym`) and errno (`errno`,
//!   `set_errno`, `fail`).
//! - `lifecycle`: where the process is in its life: the kernel running, a
//!   forked child, the exit path running (`park_if_exiting`); `diag`.
//! - `tree`: the process-tree mode's client side: every kernel call over a
//!   per-thread channel to the tree's kernel server (`channel`, `spin`),
//!   notifiers, interrupts, fork and exec announcements.
//! - `fdtable`: which host descriptor stands for which kernel one, and the
//!   kernel notifiers that wake a placeholder.
//! - `signals`: the kernel call that the program's signal handlers can
//!   interrupt (and restart), SIGPIPE, the `sigaction`/`signal` hooks and
//!   the jumps out of handlers (`siglongjmp` and its kin).
//! - `call`: how a hook calls the kernel: `kcall`, `new_fd`, errno as libc
//!   sets it, the argument cast `arg!`, `fd_hook!`.
//! - `net`: sockets and the network's names: `packet` (emulated packet
//!   rings) ← `socket` (the socket calls); `ifreq` (interfaces by name and
//!   index) ← `resolve` (getaddrinfo and the rest, through the kernel);
//!   `ifaddrs` (getifaddrs).
//! - `fd`: calls on any descriptor: `epoll` ← `control` (close, dup, fcntl,
//!   ioctl, `syscall`'s close); `rw` (read, write); `copy` (sendfile,
//!   splice); `poll` (poll, select, ppoll, pselect).
//! - `fs`: files on the config's disks: `paths` (which world a path is in)
//!   ← all the rest; the hooks `open` ← `dirs`, `stdio`; `stat`, `access`,
//!   `names`, `attrs`, `statfs`, `file`, `cwd` ← `disks`.
//! - `process`: the tree's process events as the program makes them:
//!   `fork` (the kernel process forks first), the `exec*` hooks (the
//!   descriptors an exec keeps), joining the tree at start.
//! - `serve`: the kernel server (`lkl_hijack_serve`, run by `lkl-server`):
//!   the processes of a tree (`registry`), one connection per client
//!   thread (`conn`).
//! - `tier`: every system call, raw ones too, through the same hooks
//!   (Syscall User Dispatch; `syscalls: "all"`). Its `gate` (the
//!   per-thread selector) is the one part used from below: by `host`'s
//!   `libc_fn!` and `signals`' kernel call, which must reach the host
//!   untrapped.
//! - `init`: boot before `main` (or join the tree's kernel), halt at exit;
//!   `vfork` served by `fork`.
//!
//! So the imports point one way:
//! `host ← lifecycle ← tree ← fdtable ← signals ← call ← net ← fd ← fs ← process ← serve ← tier ← init`
//! (`x ← y`: y may use x, never the reverse). docs/hijack.md draws it and
//! follows one call through it.
//!
//! # Where the modules are
//!
//! The crate root's path, src/hijack.rs, is fixed by the project's
//! top-level design. A crate root looks for `mod x;` in src/x.rs, among the
//! kernel library's own files; so the modules sit in the inline module
//! `hijack` below, whose children the compiler finds in src/hijack/ by its
//! own rules, with no `#[path]` to keep in step with the tree. The price is
//! the `crate::hijack::` prefix in paths.

mod hijack {
    pub mod host;

    pub mod lifecycle;

    pub mod tree;

    pub mod fdtable;

    pub mod signals;

    pub mod call;

    pub mod net;

    pub mod fd;

    pub mod fs;

    pub mod process;

    pub mod serve;

    pub mod tier;

    pub mod init;
}
