//! The process-tree mode's process events, as the program makes them:
//! start (this image joins the tree's kernel), fork (the kernel process
//! forks first, so the child's descriptor table is a copy of the parent's
//! whatever the order in which they then run or exit) and exec (the new
//! image gets the kernel descriptors that are not close-on-exec, under the
//! same numbers). In the single-process mode these hooks only pass through.

mod execl;
mod shell;
mod spawn;

use std::ffi::{c_char, c_int};

use crate::hijack::fdtable;
use crate::hijack::host::libc_fn;
use crate::hijack::lifecycle::diag;
use crate::hijack::tree;

/// Joins the tree's kernel at `server` (at start): every kernel call goes
/// there; the kernel descriptors an exec kept are ours again.
pub fn join(server: &std::ffi::OsStr) -> Result<(), String> {
    let kept = tree::attach(server)?;
    remember_tree_env();
    let mut lost = 0;
    for (hfd, kfd) in kept {
        if !fdtable::restore(hfd, kfd) {
            // Its placeholder did not survive: the kernel file goes too.
            // SAFETY: closes a kernel descriptor of this process.
            let _ =
                unsafe { lkl::syscall::raw(lkl::syscall::nr::CLOSE, [kfd.into(), 0, 0, 0, 0, 0]) };
            lost += 1;
        }
    }
    if lost > 0 {
        diag(&format!(
            "{lost} kernel descriptor(s) kept by exec lost their host number on the way"
        ));
    }
    // A kernel socket kept on stdin/stdout (inetd style): stdio uses it.
    for fd in 0..=2 {
        crate::hijack::fd::stream::follow_std(fd);
    }
    Ok(())
}

thread_local! {
    /// True while this thread is in our `fork` hook: the host fork it
    /// makes (trapped by the system-call tier when armed) needs no more.
    static IN_FORK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// True while the calling thread is in our `fork` hook (the caller must
/// run with the library's thread-local storage).
pub fn in_fork_hook() -> bool {
    IN_FORK.try_with(std::cell::Cell::get).unwrap_or(false)
}

/// `fork`: in the tree mode the kernel process forks first (its token
/// goes to the child, which presents it when it connects).
///
/// # Safety
/// libc's contract for `fork`.
#[no_mangle]
pub unsafe extern "C" fn fork() -> libc::pid_t {
    let token = if tree::client() {
        match tree::fork_prepare() {
            Ok(t) => Some(t),
            Err(e) => {
                diag(&format!("fork: the kernel process could not fork ({e}): the child has no kernel descriptors"));
                None
            }
        }
    } else {
        None
    };
    // Not through the tier's gate: under the system-call tier, glibc's
    // clone is trapped so that the child is armed before it runs.
    let Some(libc_fork) = libc_fn!(fork, fn() -> libc::pid_t) else {
        crate::hijack::host::set_errno(libc::ENOSYS);
        return -1;
    };
    let _ = IN_FORK.try_with(|f| f.set(true));
    // SAFETY: libc's fork, no arguments.
    let pid = unsafe { libc_fork() };
    let _ = IN_FORK.try_with(|f| f.set(false));
    if let Some(t) = token {
        if pid == 0 {
            tree::fork_child(t);
            fdtable::after_fork_child();
        } else {
            tree::fork_parent(t, if pid > 0 { pid } else { -1 });
        }
    }
    pid
}

/// # Safety
/// libc's contract for `syscall`. Variadic in C; on x86_64 its arguments
/// travel in the registers (the sixth on the stack) a fixed signature
/// reads, and unused ones are passed on as glibc's own `syscall` passes
/// them. In a tree, a fork made this way (`SYS_fork`, `SYS_vfork`, a
/// `SYS_clone` of just SIGCHLD and no stack) is our `fork`, so that the
/// child gets a kernel process of its own instead of its parent's
/// channels (`vfork` is served by `fork`, as the `vfork` hook does); the
/// descriptor calls are fd/control.rs's; every other number is issued as
/// is.
#[no_mangle]
pub unsafe extern "C" fn syscall(
    nr: std::ffi::c_long,
    a1: std::ffi::c_long,
    a2: std::ffi::c_long,
    a3: std::ffi::c_long,
    a4: std::ffi::c_long,
    a5: std::ffi::c_long,
    a6: std::ffi::c_long,
) -> std::ffi::c_long {
    let forks = nr == libc::SYS_fork
        || nr == libc::SYS_vfork
        || (nr == libc::SYS_clone && a1 == std::ffi::c_long::from(libc::SIGCHLD) && a2 == 0);
    if forks && tree::client() {
        // SAFETY: our fork hook, no arguments.
        return std::ffi::c_long::from(unsafe { fork() });
    }
    // SAFETY: the caller's contract, passed on.
    unsafe { crate::hijack::fd::control::syscall(nr, a1, a2, a3, a4, a5, a6) }
}

/// Before this process changes its user ids (a root daemon's workers
/// dropping privileges: nginx's `user`): the server's directory is private
/// to the tree's user and the server accepts only that user, so a channel
/// must be open before the change. This thread connects now (other threads
/// that have not connected yet cannot after it; docs/process-tree.md).
fn before_uid_change() {
    if tree::client() {
        tree::connect_now();
    }
}

/// # Safety
/// libc's contract for `setuid`.
#[no_mangle]
pub unsafe extern "C" fn setuid(uid: libc::uid_t) -> c_int {
    before_uid_change();
    libc_fn!(setuid, fn(libc::uid_t) -> c_int; uid)
}

/// # Safety
/// libc's contract for `seteuid`.
#[no_mangle]
pub unsafe extern "C" fn seteuid(uid: libc::uid_t) -> c_int {
    before_uid_change();
    libc_fn!(seteuid, fn(libc::uid_t) -> c_int; uid)
}

/// # Safety
/// libc's contract for `setreuid`.
#[no_mangle]
pub unsafe extern "C" fn setreuid(ruid: libc::uid_t, euid: libc::uid_t) -> c_int {
    before_uid_change();
    libc_fn!(setreuid, fn(libc::uid_t, libc::uid_t) -> c_int; ruid, euid)
}

/// # Safety
/// libc's contract for `setresuid`.
#[no_mangle]
pub unsafe extern "C" fn setresuid(
    ruid: libc::uid_t,
    euid: libc::uid_t,
    suid: libc::uid_t,
) -> c_int {
    before_uid_change();
    libc_fn!(setresuid, fn(libc::uid_t, libc::uid_t, libc::uid_t) -> c_int; ruid, euid, suid)
}

/// What keeps an exec'd program in the tree, as this image started with
/// it: `LD_PRELOAD` (the library) and every `LKL_HIJACK_*` variable
/// (`LKL_HIJACK_SERVER`, the config's).
static TREE_ENV: std::sync::OnceLock<Vec<(Vec<u8>, std::ffi::CString)>> =
    std::sync::OnceLock::new();

/// Remembers [`TREE_ENV`] (at start, in a tree's process).
pub fn remember_tree_env() {
    use std::os::unix::ffi::OsStrExt;
    let vars = std::env::vars_os()
        .filter(|(k, _)| k == "LD_PRELOAD" || k.as_bytes().starts_with(b"LKL_HIJACK_"))
        .filter_map(|(k, v)| {
            let mut entry = k.as_bytes().to_vec();
            entry.push(b'=');
            entry.extend_from_slice(v.as_bytes());
            Some((k.as_bytes().to_vec(), std::ffi::CString::new(entry).ok()?))
        })
        .collect();
    let _ = TREE_ENV.set(vars);
}

/// An environment for an exec: the program's own, plus the tree's
/// variables it dropped (`env -i`, a sanitised environment), so that the
/// new program stays on the tree's kernel instead of falling back to the
/// host's. None if nothing is missing (or this is no tree's process).
struct KeptEnv {
    _entries: Vec<std::ffi::CString>,
    ptrs: Vec<*const c_char>,
}

/// # Safety
/// `envp` is NULL or a NULL-terminated array of C strings.
unsafe fn keep_in_tree(envp: *const *const c_char) -> Option<KeptEnv> {
    if !tree::client() {
        return None;
    }
    let saved = TREE_ENV.get()?;
    let mut ptrs: Vec<*const c_char> = Vec::new();
    let mut names: Vec<&[u8]> = Vec::new();
    if !envp.is_null() {
        let mut i = 0;
        loop {
            // SAFETY: the caller's NULL-terminated array.
            let p = unsafe { *envp.add(i) };
            if p.is_null() {
                break;
            }
            // SAFETY: a C string of the array.
            let entry = unsafe { std::ffi::CStr::from_ptr(p) }.to_bytes();
            names.push(entry.split(|&b| b == b'=').next().unwrap_or(entry));
            ptrs.push(p);
            i += 1;
        }
    }
    let missing: Vec<&(Vec<u8>, std::ffi::CString)> = saved
        .iter()
        .filter(|(k, _)| !names.iter().any(|n| n == &k.as_slice()))
        .collect();
    if missing.is_empty() {
        return None;
    }
    let entries: Vec<std::ffi::CString> = missing.iter().map(|(_, e)| e.clone()).collect();
    ptrs.extend(entries.iter().map(|e| e.as_ptr()));
    ptrs.push(std::ptr::null());
    Some(KeptEnv {
        _entries: entries,
        ptrs,
    })
}

extern "C" {
    static environ: *const *const c_char;
}

/// Every exec hook's shape: before the exec, the server learns which
/// kernel descriptors the new image keeps (tree mode); then `exec` runs
/// with `envp`, or with `envp` plus the tree's variables it dropped.
///
/// # Safety
/// `envp` is NULL or a NULL-terminated array of C strings.
unsafe fn exec_in_tree(
    envp: *const *const c_char,
    exec: impl FnOnce(*const *const c_char) -> c_int,
) -> c_int {
    if tree::client() {
        tree::exec_prepare(&fdtable::kept_across_exec());
    }
    // SAFETY: the caller's contract for `envp`.
    match unsafe { keep_in_tree(envp) } {
        Some(kept) => exec(kept.ptrs.as_ptr()),
        None => exec(envp),
    }
}

type ExecFn =
    unsafe extern "C" fn(*const c_char, *const *const c_char, *const *const c_char) -> c_int;

/// Runs libc's `execve` or `execvpe` (`f`, looked up by the caller), or
/// fails with ENOSYS. Not through the tier's gate: the tier routes an exec
/// of a static program to the loader.
///
/// # Safety
/// libc's contract for the call `f` is.
unsafe fn libc_exec(
    f: Option<ExecFn>,
    path: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    match f {
        // SAFETY: the caller's arguments, for libc's function.
        Some(f) => unsafe { f(path, argv, envp) },
        None => crate::hijack::host::fail(libc::ENOSYS),
    }
}

/// libc's `execve`.
fn execve_fn() -> Option<ExecFn> {
    libc_fn!(
        execve,
        fn(*const c_char, *const *const c_char, *const *const c_char) -> c_int
    )
}

/// libc's `execvpe` (a PATH search).
fn execvpe_fn() -> Option<ExecFn> {
    libc_fn!(
        execvpe,
        fn(*const c_char, *const *const c_char, *const *const c_char) -> c_int
    )
}

/// # Safety
/// libc's contract for `execve`.
#[no_mangle]
pub unsafe extern "C" fn execve(
    path: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    // SAFETY: the program's arguments, passed on.
    unsafe { exec_in_tree(envp, |env| libc_exec(execve_fn(), path, argv, env)) }
}

/// `execv` is `execve` with the current environment (as in glibc).
///
/// # Safety
/// libc's contract for `execv`.
#[no_mangle]
pub unsafe extern "C" fn execv(path: *const c_char, argv: *const *const c_char) -> c_int {
    // SAFETY: the program's arguments and its own environment.
    unsafe { exec_in_tree(environ, |env| libc_exec(execve_fn(), path, argv, env)) }
}

/// `execvp` is `execvpe` with the current environment (as in glibc).
///
/// # Safety
/// libc's contract for `execvp`.
#[no_mangle]
pub unsafe extern "C" fn execvp(file: *const c_char, argv: *const *const c_char) -> c_int {
    // SAFETY: the program's arguments and its own environment.
    unsafe { exec_in_tree(environ, |env| libc_exec(execvpe_fn(), file, argv, env)) }
}

/// # Safety
/// libc's contract for `execvpe`.
#[no_mangle]
pub unsafe extern "C" fn execvpe(
    file: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    // SAFETY: the program's arguments, passed on.
    unsafe { exec_in_tree(envp, |env| libc_exec(execvpe_fn(), file, argv, env)) }
}

/// # Safety
/// libc's contract for `fexecve`.
#[no_mangle]
pub unsafe extern "C" fn fexecve(
    fd: c_int,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    // SAFETY: the program's arguments, passed on.
    unsafe {
        exec_in_tree(envp, |env| {
            match libc_fn!(
                fexecve,
                fn(c_int, *const *const c_char, *const *const c_char) -> c_int
            ) {
                // SAFETY: the program's descriptor and arguments, for
                // libc's fexecve. Not through the tier's gate.
                Some(f) => f(fd, argv, env),
                None => crate::hijack::host::fail(libc::ENOSYS),
            }
        })
    }
}

/// True in a tree's kernel server (`lkl-server`), which boots the kernel
/// like any hijacked program but runs no program of the tree.
pub fn is_server() -> bool {
    std::fs::read_link("/proc/self/exe")
        .ok()
        .and_then(|p| p.file_name().map(|n| n == "lkl-server"))
        .unwrap_or(false)
}

/// The server path, if this process is a client of a tree's kernel.
pub fn server_from_env() -> Option<std::ffi::OsString> {
    std::env::var_os(tree::SERVER_VAR).filter(|v| !v.is_empty())
}
