//! The system-call tier (`syscalls: "all"`, `LKL_HIJACK_SYSCALLS=all`):
//! every system call of the program reaches the same router as the
//! `LD_PRELOAD` hooks, also the raw `syscall` instructions that never go
//! through the dynamic libc (Go's runtime, `syscall(SYS_socket, ...)` in a
//! library, inline assembly). Built on the host's Syscall User Dispatch
//! (Linux >= 5.11, no privilege): docs/every-syscall.md.
//!
//! - `gate`: each armed thread's block (selector, stack, `%gs`), `allowed`
//!   (ALLOW around a call of ours that must reach the host: `libc_fn!` and
//!   the kernel call use it), the program's recorded SIGSYS action. The
//!   one part the layers below use (host, signals).
//! - `trap`: the SIGSYS handler, which only redirects to the trampoline
//!   on the thread's own stack; the trampoline; the clone stub whose child
//!   arms itself before it runs the program.
//! - `route`: the dispatch table: a trapped call to the library's own hook
//!   for it (the exported `read`, `socket`, ...), else to the host;
//!   `exit_group` after the library's exit path (any program: Go's
//!   `os.Exit`, `_exit`).
//! - `arm`: the host checked, the handler installed, threads armed; the
//!   blocks' free list.
//! - `rewrite`: hot `syscall` sites patched after their first trap to
//!   jump into a stub of ours that enters the trampoline without the
//!   signal (`LKL_HIJACK_REWRITE=0` turns it off).
//! - `loader`: what a static program run by the loader (loader/) needs:
//!   its `%fs` swapped for ours while a call is routed, `arch_prctl` of
//!   `%fs` kept in the frame, `brk` left to `mmap`, `/proc/self/exe`.

pub mod gate;

mod arm;
mod loader;
mod rewrite;
mod route;
mod trap;
mod twin;

use std::sync::atomic::{AtomicBool, Ordering};

/// Set by the constructor from the config: arm before `main`.
static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Records the config's `syscalls` (the constructor, once the config is
/// read).
pub fn request(s: lkl::config::Syscalls) {
    REQUESTED.store(s == lkl::config::Syscalls::All, Ordering::Release);
}

/// Arms the tier if the config asks for it: the constructor's last step,
/// so that from its return on every system call of this thread is routed.
/// Err: why it cannot be (the program must not run unrouted).
pub fn arm_if_requested() -> Result<(), String> {
    if !REQUESTED.load(Ordering::Acquire) {
        return Ok(());
    }
    arm::arm()?;
    rewrite::init()?;
    gate::set_selector(gate::BLOCK);
    Ok(())
}

/// The exit path: this thread's calls go straight to the host from here
/// (the kernel is being halted by our own code).
pub fn leave() {
    gate::set_selector(gate::ALLOW);
}
