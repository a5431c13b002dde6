//! Kernel processes for host processes (the process-tree mode): a kernel
//! in a server process gives each host process of a tree a kernel process
//! of its own (an anchor task holding its descriptor table and the cookie
//! of its memory) and each of its threads a host task in that process.
//! See kernel/arch/lkl/kernel/process.c and docs/process-tree.md.

use std::ffi::c_void;
use std::ptr::NonNull;

use crate::host::process_mem;
use crate::sys;
use crate::syscall::Errno;

fn check(rc: i32) -> Result<(), Errno> {
    if rc < 0 {
        Err(Errno(-rc))
    } else {
        Ok(())
    }
}

/// A kernel process: its anchor task. Ended (with its descriptor table's
/// last reference, unless a child shares files) by [`KProcess::exit`].
#[derive(Debug)]
pub struct KProcess(NonNull<c_void>);

// SAFETY: the anchor is a kernel task pointer the kernel keeps alive while
// we hold it; every use goes through the kernel's entry points, which take
// the CPU lock.
unsafe impl Send for KProcess {}
// SAFETY: as above; the only use of a shared reference is entering the
// anchor, which the owner serialises (see `fork`, `thread`).
unsafe impl Sync for KProcess {}

/// A host task: one thread of a kernel process.
#[derive(Debug)]
pub struct KTask(NonNull<c_void>);

// SAFETY: as for KProcess; a task is used by one host thread at a time
// (its owner).
unsafe impl Send for KTask {}
// SAFETY: the shared uses (`tid`) only read the task's id.
unsafe impl Sync for KTask {}

impl KProcess {
    /// A first process, with an empty descriptor table, for host process
    /// `pid`, under the same pid in the kernel where it is free.
    pub fn new_root(pid: i32) -> Result<KProcess, Errno> {
        let as_ = process_mem::cookie(pid);
        Self::create(std::ptr::null_mut(), as_, pid)
            .or_else(|_| Self::create(std::ptr::null_mut(), as_, 0))
    }

    /// A process of no host process (its calls must pass no pointers):
    /// the server's own, holding files on their way between processes.
    pub fn new_unbound() -> Result<KProcess, Errno> {
        Self::create(std::ptr::null_mut(), process_mem::NO_PROCESS, 0)
    }

    /// The process's kernel pid.
    pub fn pid(&self) -> i32 {
        // SAFETY: an anchor we hold.
        unsafe { sys::lkl_task_pid(self.0.as_ptr()) }
    }

    fn create(parent: *mut c_void, as_: *mut c_void, pid: i32) -> Result<KProcess, Errno> {
        let mut out = std::ptr::null_mut();
        // SAFETY: `parent` is NULL or an anchor we hold; `out` is written
        // on success only.
        check(unsafe { sys::lkl_process_new(parent, as_, pid, &mut out) })?;
        NonNull::new(out).map(KProcess).ok_or(Errno::ENOMEM)
    }

    /// This process's fork: a copy of its descriptor table, whose memory
    /// is no process's until [`KProcess::set_pid`]. The caller makes sure
    /// no other thread enters this process meanwhile.
    pub fn fork(&self) -> Result<KProcess, Errno> {
        Self::create(self.0.as_ptr(), process_mem::NO_PROCESS, 0)
    }

    /// This process, forked once more to take host process `pid`'s pid
    /// (a fork made before the host fork could not know it): the new one,
    /// or this one (named after `pid`) if the pid is taken.
    pub fn renumbered(self, pid: i32) -> KProcess {
        match Self::create(self.0.as_ptr(), process_mem::cookie(pid), pid) {
            Ok(k) => {
                self.exit();
                k
            }
            Err(_) => {
                self.set_pid(pid);
                self
            }
        }
    }

    /// Names the host process whose memory this process's calls use.
    pub fn set_pid(&self, pid: i32) {
        // SAFETY: an anchor we hold.
        unsafe { sys::lkl_process_set_as(self.0.as_ptr(), process_mem::cookie(pid)) }
    }

    /// A new thread of this process, with thread id `tid` where it is
    /// positive and free (a host thread's id), else the kernel's choice.
    /// The caller makes sure no other thread enters this process meanwhile.
    pub fn thread(&self, tid: i32) -> Result<KTask, Errno> {
        let mut out = std::ptr::null_mut();
        // SAFETY: an anchor we hold; `out` is written on success only.
        check(unsafe { sys::lkl_process_thread_tid(self.0.as_ptr(), tid, &mut out) })?;
        NonNull::new(out).map(KTask).ok_or(Errno::ENOMEM)
    }

    /// System call `nr` as this process's anchor (the process's own
    /// housekeeping: closing descriptors at exec). Same contract as
    /// [`KTask::call`].
    ///
    /// # Safety
    /// As for [`crate::syscall::raw`], with pointers in the process's memory.
    pub unsafe fn call(&self, nr: i64, args: [i64; 6]) -> Result<i64, Errno> {
        // SAFETY: the caller's contract.
        unsafe { task_call(self.0.as_ptr(), nr, args) }
    }

    /// Ends the process's anchor; its threads end with their owners.
    pub fn exit(self) {
        // SAFETY: an anchor we hold, given up here.
        unsafe { sys::lkl_task_exit(self.0.as_ptr()) }
    }
}

/// System call `nr` as host task `task`.
///
/// # Safety
/// As for [`crate::syscall::raw`].
unsafe fn task_call(task: *mut c_void, nr: i64, mut args: [i64; 6]) -> Result<i64, Errno> {
    // SAFETY: `args` has the six slots the kernel reads; the caller
    // vouches for the rest.
    let r = unsafe { sys::lkl_task_syscall(task, nr, args.as_mut_ptr()) };
    if (-4095..0).contains(&r) {
        Err(Errno(-r as i32))
    } else {
        Ok(r)
    }
}

impl KTask {
    /// System call `nr` as this thread. Pointer arguments are addresses in
    /// the memory of the process the thread belongs to.
    ///
    /// # Safety
    /// As for [`crate::syscall::raw`]; one host thread at a time.
    pub unsafe fn call(&self, nr: i64, args: [i64; 6]) -> Result<i64, Errno> {
        // SAFETY: the caller's contract.
        unsafe { task_call(self.0.as_ptr(), nr, args) }
    }

    /// The thread's kernel id, as [`crate::interrupt`] takes it.
    pub fn tid(&self) -> i32 {
        // SAFETY: a task we hold.
        unsafe { sys::lkl_task_pid(self.0.as_ptr()) }
    }

    /// Ends the thread.
    pub fn exit(self) {
        // SAFETY: a task we hold, given up here.
        unsafe { sys::lkl_task_exit(self.0.as_ptr()) }
    }
}
