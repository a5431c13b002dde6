//! Permission checks by our kernel: each request runs with the caller's
//! file-system identity (see [`Permissions::Kernel`]).
//!
//! Credentials belong to a kernel task, and each request thread is its own
//! task, so every thread remembers which identity it last took and changes
//! it only when a request comes from someone else: with one user (the usual
//! case, and the only one a mount without `allow_other` lets in) that is
//! once per thread.

use std::cell::Cell;

use fuser::Request;
use lkl::syscall::{self as sys, Errno};

use super::options::Permissions;
use super::KernelFs;

thread_local! {
    /// The (fsuid, fsgid) this thread's kernel task has; None until first set
    /// (the task starts as root).
    static IDENTITY: Cell<Option<(u32, u32)>> = const { Cell::new(None) };
    /// The supplementary groups are set on this thread's task.
    static GROUPS_SET: Cell<bool> = const { Cell::new(false) };
}

/// Makes this thread's kernel task act as `uid`/`gid` (with `groups`) for
/// file-system checks: `setfsuid`/`setfsgid` change only the identity
/// permission checks and new files use; a non-root identity loses the
/// file-system capabilities (DAC override, owner override, chown...), root
/// gets them back.
fn become_identity(uid: u32, gid: u32, groups: &[u32]) -> Result<(), Errno> {
    if IDENTITY.get() == Some((uid, gid)) {
        return Ok(());
    }
    if uid != 0 && !GROUPS_SET.get() {
        let n = groups.len() as i64;
        // SAFETY: `groups` holds `n` gid_t values the kernel only reads.
        unsafe { sys::raw(sys::nr::SETGROUPS, [n, groups.as_ptr() as i64, 0, 0, 0, 0]) }?;
        GROUPS_SET.set(true);
    }
    // setfsuid/setfsgid return the previous id whatever happens; read the
    // new one back (an invalid id is -1, which changes nothing) to know.
    let set = |nr: i64, id: u32| -> Result<(), Errno> {
        // SAFETY: integer arguments only.
        unsafe { sys::raw(nr, [i64::from(id), 0, 0, 0, 0, 0]) }?;
        // SAFETY: as above; -1 (u32::MAX) only reads the current id.
        let now = unsafe { sys::raw(nr, [i64::from(u32::MAX), 0, 0, 0, 0, 0]) }?;
        if now as u32 == id {
            Ok(())
        } else {
            Err(Errno::EPERM)
        }
    };
    // Forget the old identity first: a failure below leaves it unknown,
    // and the next request sets it again.
    IDENTITY.set(None);
    set(sys::nr::SETFSGID, gid)?;
    set(sys::nr::SETFSUID, uid)?;
    IDENTITY.set(Some((uid, gid)));
    Ok(())
}

impl KernelFs {
    /// True if our kernel checks permissions (each request runs as its caller).
    pub(super) fn kernel_checks(&self) -> bool {
        matches!(self.opts.permissions, Permissions::Kernel { .. })
    }

    /// Runs the calls that follow as the request's caller, if our kernel
    /// checks permissions; with the host checking them, they run as root.
    pub(super) fn as_caller(&self, req: &Request) -> Result<(), Errno> {
        match &self.opts.permissions {
            Permissions::Kernel { groups } => become_identity(req.uid(), req.gid(), groups),
            Permissions::Host => Ok(()),
        }
    }

    /// Runs the calls that follow as root (for the host's own bookkeeping
    /// that the caller's identity must not block; see `do_setattr`).
    pub(super) fn as_root(&self) -> Result<(), Errno> {
        match &self.opts.permissions {
            Permissions::Kernel { groups } => become_identity(0, 0, groups),
            Permissions::Host => Ok(()),
        }
    }
}
