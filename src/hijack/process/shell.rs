//! `system`, `popen` and `pclose` with kernel descriptors.
//!
//! glibc's `system` and `popen` start their shell with its internal
//! spawn, which no hook sees: the shell would get none of the parent's
//! kernel descriptors (`system("echo hi >&5")` on a kernel socket 5 would
//! write to its placeholder). So in a tree's process whose child would
//! hold something of the kernel's (the reasons of spawn.rs's `needs_own`:
//! a kernel descriptor the exec keeps, a working directory on a disk; or
//! an environment that dropped the tree's variables, which only our exec
//! hooks put back) these calls run here, as glibc runs them, through
//! spawn.rs's own spawn (our fork, attributes, file actions through the
//! hooks, our exec):
//! - `system(CMD)`: `/bin/sh -c CMD` (argv[0] `sh`), SIGINT and SIGQUIT
//!   ignored and SIGCHLD blocked in the caller while it waits (the first
//!   of concurrent callers saves the actions, the last puts them back, as
//!   glibc counts them), the child with the caller's mask and SIGINT and
//!   SIGQUIT at their default unless they were ignored; the wait status,
//!   or 127 << 8 with errno set if the shell could not be started;
//!   `system(NULL)` is always glibc's (its shell needs nothing);
//! - `popen(CMD, "r"|"w")`, with `e` for a close-on-exec stream: a pipe,
//!   the child's end on the shell's stdout or stdin, the descriptors of
//!   the other streams this process `popen`ed closed in the child (POSIX),
//!   the parent's end as an `fdopen` stream; the stream and its child are
//!   recorded for `pclose`, which closes the stream and waits for the
//!   child (retried on EINTR), returning its status.
//!
//! Every other call is glibc's; `popen` then records glibc's stream too
//! (its descriptor, so that a shell of ours closes it; `pclose` passes it
//! to glibc). Once this process has a stream of ours open, its other
//! `popen`s are ours too, so that each child closes the others' streams.
//! Differences from glibc, documented in docs/process-tree.md: our spawn
//! forks, so `pthread_atfork` handlers run; a stream of ours closed with
//! `fclose` instead of `pclose` leaves its child unwaited (a zombie until
//! this process ends).

use std::ffi::{c_char, c_int, CStr};
use std::sync::Mutex;

use super::spawn::{self, Action, Attrs, Plan};
use crate::hijack::host::{errno, fail, host_syscall, libc_fn, set_errno};
use crate::hijack::tree;

/// The shell, as glibc's `_PATH_BSHELL`.
const SHELL: &CStr = c"/bin/sh";

extern "C" {
    static environ: *const *const c_char;
}

/// True if a call of this process starting a shell must be ours (see the
/// module comment); `actions` are the file actions it will run.
fn own(actions: &[Action]) -> bool {
    if !tree::client() {
        return false;
    }
    // SAFETY: the process's own environment vector.
    spawn::needs_own(actions) || unsafe { super::keep_in_tree(environ) }.is_some()
}

/// `sh -c CMD`'s argument vector: the strings and the NULL-terminated
/// pointers to them (which point into `cmd` and static strings).
fn shell_argv(cmd: &CStr) -> [*const c_char; 4] {
    [
        c"sh".as_ptr(),
        c"-c".as_ptr(),
        cmd.as_ptr(),
        std::ptr::null(),
    ]
}

/// Waits for `pid` (retried on EINTR): its status, or -1 with errno.
fn wait_for(pid: libc::pid_t) -> c_int {
    let mut status: c_int = 0;
    loop {
        // SAFETY: waitpid on our own child into a local int.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            return status;
        }
        if r < 0 && errno() == libc::EINTR {
            continue;
        }
        return -1;
    }
}

// --- system ---------------------------------------------------------------

/// The actions of SIGINT and SIGQUIT before the first of the callers of
/// `system` now waiting ignored them, and how many wait.
struct Ignored {
    users: usize,
    intr: libc::sigaction,
    quit: libc::sigaction,
}

// SAFETY: plain C data (handler addresses and masks), no pointer we own.
unsafe impl Send for Ignored {}

static IGNORED: Mutex<Option<Ignored>> = Mutex::new(None);

fn ignored() -> std::sync::MutexGuard<'static, Option<Ignored>> {
    IGNORED.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sets `sig`'s action (through our hook, which keeps its own record).
fn set_action(sig: c_int, act: &libc::sigaction, old: Option<&mut libc::sigaction>) {
    let old = old.map_or(std::ptr::null_mut(), |o| o as *mut libc::sigaction);
    // SAFETY: valid structs for sigaction.
    unsafe { crate::hijack::signals::sigaction(sig, act, old) };
}

/// The caller's side of glibc's `system` around the wait: SIGINT and
/// SIGQUIT ignored (by the first caller); their previous actions.
fn ignore_interrupts() -> (libc::sigaction, libc::sigaction) {
    let mut g = ignored();
    if let Some(i) = g.as_mut() {
        i.users += 1;
        return (i.intr, i.quit);
    }
    // SAFETY: all-zero sigactions are valid (SIG_DFL, empty mask).
    let (mut ign, mut intr, mut quit): (libc::sigaction, libc::sigaction, libc::sigaction) =
        unsafe { std::mem::zeroed() };
    ign.sa_sigaction = libc::SIG_IGN;
    set_action(libc::SIGINT, &ign, Some(&mut intr));
    set_action(libc::SIGQUIT, &ign, Some(&mut quit));
    *g = Some(Ignored {
        users: 1,
        intr,
        quit,
    });
    (intr, quit)
}

/// The last caller waiting puts SIGINT's and SIGQUIT's actions back.
fn restore_interrupts() {
    let mut g = ignored();
    let last = match g.as_mut() {
        Some(i) => {
            i.users -= 1;
            i.users == 0
        }
        None => false,
    };
    if last {
        if let Some(i) = g.take() {
            set_action(libc::SIGINT, &i.intr, None);
            set_action(libc::SIGQUIT, &i.quit, None);
        }
    }
}

/// glibc's `system`. Not through the tier's gate: the tier follows
/// glibc's clone.
fn glibc_system(cmd: *const c_char) -> c_int {
    match libc_fn!(system, fn(*const c_char) -> c_int) {
        // SAFETY: the program's argument, for glibc's system.
        Some(f) => unsafe { f(cmd) },
        None => fail(libc::ENOSYS),
    }
}

/// # Safety
/// libc's contract for `system`.
#[no_mangle]
pub unsafe extern "C" fn system(cmd: *const c_char) -> c_int {
    if cmd.is_null() || !own(&[]) {
        return glibc_system(cmd);
    }
    // SAFETY: the program's command, a C string.
    let cmd = unsafe { CStr::from_ptr(cmd) };
    let (intr, quit) = ignore_interrupts();
    let mut attrs = Attrs::none();
    // SAFETY: all-zero is a valid sigset_t.
    let mut omask: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: sigset_t locals, as the calls take them.
    unsafe {
        let mut chld: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut chld);
        libc::sigaddset(&mut chld, libc::SIGCHLD);
        libc::pthread_sigmask(libc::SIG_BLOCK, &chld, &mut omask);
        libc::sigemptyset(&mut attrs.sigdefault);
        if intr.sa_sigaction != libc::SIG_IGN {
            libc::sigaddset(&mut attrs.sigdefault, libc::SIGINT);
        }
        if quit.sa_sigaction != libc::SIG_IGN {
            libc::sigaddset(&mut attrs.sigdefault, libc::SIGQUIT);
        }
    }
    attrs.sigmask = omask;
    attrs.flags = spawn::SETSIGDEF | spawn::SETSIGMASK;
    let argv = shell_argv(cmd);
    // SAFETY: the process's own environment.
    let envp = unsafe { environ };
    let mut plan = Plan::new(SHELL.to_owned(), argv.as_ptr(), envp, &[], attrs);
    let mut pid: libc::pid_t = 0;
    // SAFETY: a local pid and the plan above (its vectors live until the
    // call returns).
    let err = unsafe { spawn::spawn_own(&mut pid, &mut plan) };
    let (status, e) = if err == 0 {
        let s = wait_for(pid);
        (s, errno())
    } else {
        // The shell could not run: as if it had exited with 127 (glibc).
        (127 << 8, err)
    };
    restore_interrupts();
    // SAFETY: the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &omask, std::ptr::null_mut()) };
    set_errno(e);
    status
}

// --- popen / pclose -----------------------------------------------------

/// A stream `popen` returned and not yet `pclose`d.
struct Stream {
    file: usize,
    fd: c_int,
    /// The pipe's device and inode, to tell the stream's descriptor from a
    /// later one under the same number (a stream closed with `fclose`).
    id: (u64, u64),
    /// Our child; None for a stream of glibc's.
    pid: Option<libc::pid_t>,
}

/// Every stream of this process (few: a linear search is enough). Not
/// held across a spawn: a fork by another thread meanwhile would leave
/// its child with the lock taken.
static STREAMS: Mutex<Vec<Stream>> = Mutex::new(Vec::new());

fn streams() -> std::sync::MutexGuard<'static, Vec<Stream>> {
    STREAMS.lock().unwrap_or_else(|e| e.into_inner())
}

/// The device and inode of host descriptor `fd`, if it is open.
fn identity(fd: c_int) -> Option<(u64, u64)> {
    // SAFETY: all-zero is a valid stat; the host's fstat into it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let r = unsafe { host_syscall!(libc::SYS_fstat, fd, &mut st as *mut libc::stat) };
    (r == 0).then_some((st.st_dev, st.st_ino))
}

/// Records stream `file` on host descriptor `fd` (replacing a stale
/// record of the same address).
fn remember(file: *mut libc::FILE, fd: c_int, pid: Option<libc::pid_t>) {
    let Some(id) = identity(fd) else {
        return;
    };
    let mut s = streams();
    s.retain(|r| r.file != file as usize);
    s.push(Stream {
        file: file as usize,
        fd,
        id,
        pid,
    });
}

/// glibc's `popen`. Not through the tier's gate (as [`glibc_system`]).
fn glibc_popen(cmd: *const c_char, mode: *const c_char) -> *mut libc::FILE {
    match libc_fn!(popen, fn(*const c_char, *const c_char) -> *mut libc::FILE) {
        // SAFETY: the program's arguments, for glibc's popen.
        Some(f) => unsafe { f(cmd, mode) },
        None => {
            set_errno(libc::ENOSYS);
            std::ptr::null_mut()
        }
    }
}

/// `popen`'s mode: reading (else writing), close-on-exec; None if invalid
/// (glibc's rule: `r` or `w`, not both, and any `e`).
fn parse_mode(mode: &CStr) -> Option<(bool, bool)> {
    let (mut r, mut w, mut e) = (false, false, false);
    for b in mode.to_bytes() {
        match b {
            b'r' => r = true,
            b'w' => w = true,
            b'e' => e = true,
            _ => return None,
        }
    }
    (r != w).then_some((r, e))
}

/// # Safety
/// libc's contract for `popen`.
#[no_mangle]
pub unsafe extern "C" fn popen(cmd: *const c_char, mode: *const c_char) -> *mut libc::FILE {
    // A stream of ours still open (not one closed with fclose since).
    let ours_open = || {
        streams()
            .iter()
            .any(|s| s.pid.is_some() && identity(s.fd) == Some(s.id))
    };
    if cmd.is_null() || mode.is_null() || !(own(&[]) || (tree::client() && ours_open())) {
        let f = glibc_popen(cmd, mode);
        if !f.is_null() && tree::client() {
            // SAFETY: glibc's new stream.
            let fd = unsafe { libc::fileno(f) };
            remember(f, fd, None);
        }
        return f;
    }
    // SAFETY: the program's arguments, C strings.
    let (cmd, mode) = unsafe { (CStr::from_ptr(cmd), CStr::from_ptr(mode)) };
    // SAFETY: as above.
    match unsafe { popen_own(cmd, mode) } {
        Ok(f) => f,
        Err(e) => {
            set_errno(e);
            std::ptr::null_mut()
        }
    }
}

/// Our `popen`: the stream, or Err(errno).
///
/// # Safety
/// In a tree's process; `cmd` and `mode` are the program's.
unsafe fn popen_own(cmd: &CStr, mode: &CStr) -> Result<*mut libc::FILE, c_int> {
    let (read, cloexec) = parse_mode(mode).ok_or(libc::EINVAL)?;
    let mut pipe = [-1 as c_int; 2];
    // SAFETY: the host's pipe2 into a local array of two.
    if unsafe { host_syscall!(libc::SYS_pipe2, pipe.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(errno());
    }
    let [r, w] = pipe;
    let (mine, theirs, target) = if read { (r, w, 1) } else { (w, r, 0) };
    let fmode: &CStr = if read { c"r" } else { c"w" };
    let file = match libc_fn!(fdopen, fn(c_int, *const c_char) -> *mut libc::FILE) {
        // SAFETY: our pipe's end and a mode string.
        Some(f) => unsafe { f(mine, fmode.as_ptr()) },
        None => {
            set_errno(libc::ENOSYS);
            std::ptr::null_mut()
        }
    };
    if file.is_null() {
        let e = errno();
        crate::hijack::host::close(r);
        crate::hijack::host::close(w);
        return Err(e);
    }
    // The child's end onto stdin or stdout (a dup2 onto itself clears its
    // close-on-exec), the other streams' descriptors closed (those still
    // open under the number they had).
    let mut actions = vec![Action::Dup2(theirs, target)];
    actions.extend(
        streams()
            .iter()
            .filter(|s| s.fd != target && identity(s.fd) == Some(s.id))
            .map(|s| Action::Close(s.fd)),
    );
    let argv = shell_argv(cmd);
    // SAFETY: the process's own environment.
    let envp = unsafe { environ };
    let mut plan = Plan::new(
        SHELL.to_owned(),
        argv.as_ptr(),
        envp,
        &actions,
        Attrs::none(),
    );
    let mut pid: libc::pid_t = 0;
    // SAFETY: a local pid and the plan above (its vectors live until the
    // call returns).
    let err = unsafe { spawn::spawn_own(&mut pid, &mut plan) };
    crate::hijack::host::close(theirs);
    if err != 0 {
        // SAFETY: our stream (it closes our end).
        unsafe { libc::fclose(file) };
        return Err(err);
    }
    if !cloexec {
        // SAFETY: the host's fcntl on our pipe's end.
        unsafe { host_syscall!(libc::SYS_fcntl, mine, libc::F_SETFD, 0) };
    }
    remember(file, mine, Some(pid));
    Ok(file)
}

/// # Safety
/// libc's contract for `pclose`.
#[no_mangle]
pub unsafe extern "C" fn pclose(file: *mut libc::FILE) -> c_int {
    let child = {
        let mut s = streams();
        match s.iter().position(|r| r.file == file as usize) {
            Some(i) => s.swap_remove(i).pid,
            None => None,
        }
    };
    if let Some(pid) = child {
        // SAFETY: our stream: closed first, as glibc does, so that a
        // reading child sees the end of its input.
        unsafe { libc::fclose(file) };
        return wait_for(pid);
    }
    match libc_fn!(pclose, fn(*mut libc::FILE) -> c_int) {
        // SAFETY: the program's stream, for glibc's pclose.
        Some(f) => unsafe { f(file) },
        None => fail(libc::ENOSYS),
    }
}
