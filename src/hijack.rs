//! `liblkl_hijack.so`: run an unmodified program on the in-process kernel.
//!
//! Loaded with `LD_PRELOAD` (see `bin/lkl-hijack.sh`), the library boots
//! the kernel from the JSON config before `main` (init), and interposes the
//! libc socket and descriptor calls (export): a call on a kernel descriptor
//! goes to the kernel, every other one to the real libc function (real).
//! Which descriptor is whose is kept in a table, not by a number threshold:
//! a kernel descriptor is shown to the program under the number of a host
//! placeholder descriptor, so the two can never collide (fdtable).
//!
//! No panic may cross into the program: every export returns -1 and sets
//! errno on failure, and nothing on a hook path unwraps. Every hook calls
//! the kernel the same way (call).
//!
//! Modules by job: socket and descriptor calls (export, io), mixed
//! host/kernel readiness for epoll (epoll; poll/select in export,
//! ppoll/pselect in io), the config's disks (disks) and the file calls
//! routed by path to them (paths decides, files/dirs/stdio serve; hostfs
//! finds the real libc file functions).
//!
//! Names resolve through the kernel when the config has a `nameserver`
//! (resolve); host signals interrupt kernel calls and a write to a gone
//! peer raises SIGPIPE (signals); interface queries answer for the
//! kernel's interfaces (ifaddrs). In a forked child the kernel stays with
//! the parent: inherited kernel descriptors are EBADF, new sockets fail
//! with ENETDOWN and a one-line message; an exec boots a kernel of its own.
//! Not yet: res_* (glibc's resolver API keeps using the host).

// The module tree sits in src/hijack/ under an inline `hijack` module (the
// compiler's own lookup: no #[path]).
mod hijack {
    pub mod call;
    pub mod fd;
    pub mod fdtable;
    pub mod fs;
    pub mod host;
    pub mod init;
    pub mod lifecycle;
    pub mod net;
    pub mod signals;
}
