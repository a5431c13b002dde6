//! `posix_spawn` and `posix_spawnp` with kernel descriptors.
//!
//! glibc's spawn clones a child that runs the file actions and the exec
//! with its internal calls, which no hook sees: a `dup2` of a kernel socket
//! onto stdin would be a host `dup2` of its placeholder, and the new image
//! would find no kernel descriptor there. So the file-action builders are
//! hooked too: each passes to glibc (whose record the spawn still uses)
//! and, when glibc accepted it, keeps a copy of the action here, keyed by
//! the address of the `posix_spawn_file_actions_t`. A spawn in a tree's
//! process whose child would hold or touch a kernel descriptor or the
//! kernel's files ([`needs_own`]) is run here instead, as Linux runs it:
//! our `fork` (the child joins the tree with a copy of the kernel
//! descriptor table), the attributes, the file actions through our hooks,
//! then our exec hooks (the kernel descriptors that are not close-on-exec
//! survive). An exec that fails is reported to the parent over a
//! close-on-exec pipe carrying its errno, and `posix_spawn` returns that
//! error number, as glibc's does. Every other spawn is glibc's (with the
//! tree's variables put back in an environment that dropped them, as the
//! exec hooks do).

use std::ffi::{c_char, c_int, CStr, CString};
use std::sync::Mutex;

use crate::hijack::fdtable;
use crate::hijack::fs::paths::{self, route, Route};
use crate::hijack::host::{errno, host_syscall, libc_fn};
use crate::hijack::tree;

type FileActions = libc::posix_spawn_file_actions_t;
type Attr = libc::posix_spawnattr_t;

/// One file action, as the program added it (or as `popen` makes it).
#[derive(Clone, Debug)]
pub(super) enum Action {
    Close(c_int),
    Dup2(c_int, c_int),
    Open {
        fd: c_int,
        path: CString,
        oflag: c_int,
        mode: libc::mode_t,
    },
    Chdir(CString),
    Fchdir(c_int),
    Closefrom(c_int),
    Tcsetpgrp(c_int),
}

/// The actions of one `posix_spawn_file_actions_t`.
struct Record {
    key: usize,
    actions: Vec<Action>,
    /// False if we did not see it initialised (its first actions may be
    /// missing here): its spawn is left to glibc.
    complete: bool,
}

/// Every live record (few at a time: a linear search is enough).
static RECORDS: Mutex<Vec<Record>> = Mutex::new(Vec::new());

fn records() -> std::sync::MutexGuard<'static, Vec<Record>> {
    RECORDS.lock().unwrap_or_else(|e| e.into_inner())
}

fn key(fa: *const FileActions) -> usize {
    fa as usize
}

/// Appends `action` to `fa`'s record (glibc accepted it).
fn add(fa: *const FileActions, action: Action) {
    let mut recs = records();
    match recs.iter_mut().find(|r| r.key == key(fa)) {
        Some(r) => r.actions.push(action),
        None => recs.push(Record {
            key: key(fa),
            actions: vec![action],
            complete: false,
        }),
    }
}

/// `fa`'s actions, if its record is complete.
fn actions_of(fa: *const FileActions) -> Option<Vec<Action>> {
    if fa.is_null() {
        return Some(Vec::new());
    }
    records()
        .iter()
        .find(|r| r.key == key(fa))
        .filter(|r| r.complete)
        .map(|r| r.actions.clone())
}

/// # Safety
/// libc's contract for `posix_spawn_file_actions_init`.
#[no_mangle]
pub unsafe extern "C" fn posix_spawn_file_actions_init(fa: *mut FileActions) -> c_int {
    let r = libc_fn!(posix_spawn_file_actions_init, fn(*mut FileActions) -> c_int; fa);
    if r == 0 {
        let mut recs = records();
        recs.retain(|r| r.key != key(fa));
        recs.push(Record {
            key: key(fa),
            actions: Vec::new(),
            complete: true,
        });
    }
    r
}

/// # Safety
/// libc's contract for `posix_spawn_file_actions_destroy`.
#[no_mangle]
pub unsafe extern "C" fn posix_spawn_file_actions_destroy(fa: *mut FileActions) -> c_int {
    records().retain(|r| r.key != key(fa));
    libc_fn!(posix_spawn_file_actions_destroy, fn(*mut FileActions) -> c_int; fa)
}

/// A builder that adds an action on one number (a descriptor, or where
/// `closefrom` starts): glibc's, then our copy if glibc accepted it.
macro_rules! one_number_action {
    ($name:ident, $variant:ident) => {
        /// # Safety
        /// libc's contract for this call.
        #[no_mangle]
        pub unsafe extern "C" fn $name(fa: *mut FileActions, n: c_int) -> c_int {
            let r = libc_fn!($name, fn(*mut FileActions, c_int) -> c_int; fa, n);
            if r == 0 {
                add(fa, Action::$variant(n));
            }
            r
        }
    };
}

one_number_action!(posix_spawn_file_actions_addclose, Close);

/// # Safety
/// libc's contract for `posix_spawn_file_actions_adddup2`.
#[no_mangle]
pub unsafe extern "C" fn posix_spawn_file_actions_adddup2(
    fa: *mut FileActions,
    fd: c_int,
    newfd: c_int,
) -> c_int {
    let r = libc_fn!(
        posix_spawn_file_actions_adddup2,
        fn(*mut FileActions, c_int, c_int) -> c_int;
        fa, fd, newfd
    );
    if r == 0 {
        add(fa, Action::Dup2(fd, newfd));
    }
    r
}

/// # Safety
/// libc's contract for `posix_spawn_file_actions_addopen`.
#[no_mangle]
pub unsafe extern "C" fn posix_spawn_file_actions_addopen(
    fa: *mut FileActions,
    fd: c_int,
    path: *const c_char,
    oflag: c_int,
    mode: libc::mode_t,
) -> c_int {
    let r = libc_fn!(
        posix_spawn_file_actions_addopen,
        fn(*mut FileActions, c_int, *const c_char, c_int, libc::mode_t) -> c_int;
        fa, fd, path, oflag, mode
    );
    if r == 0 && !path.is_null() {
        // SAFETY: glibc accepted it: a C string (glibc keeps its own copy
        // too, as we do).
        let path = unsafe { CStr::from_ptr(path) }.to_owned();
        add(
            fa,
            Action::Open {
                fd,
                path,
                oflag,
                mode,
            },
        );
    }
    r
}

/// # Safety
/// libc's contract for `posix_spawn_file_actions_addchdir_np`.
#[no_mangle]
pub unsafe extern "C" fn posix_spawn_file_actions_addchdir_np(
    fa: *mut FileActions,
    path: *const c_char,
) -> c_int {
    let r = libc_fn!(
        posix_spawn_file_actions_addchdir_np,
        fn(*mut FileActions, *const c_char) -> c_int;
        fa, path
    );
    if r == 0 && !path.is_null() {
        // SAFETY: glibc accepted it: a C string.
        add(
            fa,
            Action::Chdir(unsafe { CStr::from_ptr(path) }.to_owned()),
        );
    }
    r
}

one_number_action!(posix_spawn_file_actions_addfchdir_np, Fchdir);

one_number_action!(posix_spawn_file_actions_addclosefrom_np, Closefrom);

one_number_action!(posix_spawn_file_actions_addtcsetpgrp_np, Tcsetpgrp);

fn is_kernel(fd: c_int) -> bool {
    fdtable::kernel_fd(fd).is_some()
}

/// True if the child of a spawn with `actions` would hold or touch a
/// kernel descriptor or the kernel's files, which glibc's child cannot:
/// a kernel descriptor the exec keeps (not close-on-exec), an action on a
/// kernel descriptor (as source or as target), a path on a disk, a working
/// directory on a disk (the program's, or a `chdir` action's while disks
/// are mounted).
pub(super) fn needs_own(actions: &[Action]) -> bool {
    if paths::kernel_cwd().is_some() || !fdtable::kept_across_exec().is_empty() {
        return true;
    }
    let on_disk = |p: &CString| matches!(route(libc::AT_FDCWD, p.as_ptr()), Route::Kernel(..));
    actions.iter().any(|a| match a {
        Action::Close(fd) | Action::Fchdir(fd) | Action::Tcsetpgrp(fd) => is_kernel(*fd),
        Action::Dup2(from, to) => is_kernel(*from) || is_kernel(*to),
        Action::Open { fd, path, .. } => is_kernel(*fd) || on_disk(path),
        Action::Chdir(_) => paths::routing(),
        // Only kernel descriptors the exec would keep matter (above).
        Action::Closefrom(_) => false,
    })
}

/// The spawn attributes the child applies, read before the fork.
pub(super) struct Attrs {
    pub(super) flags: c_int,
    pgroup: libc::pid_t,
    pub(super) sigdefault: libc::sigset_t,
    pub(super) sigmask: libc::sigset_t,
    policy: c_int,
    param: libc::sched_param,
}

// glibc's flag values (<spawn.h>).
const RESETIDS: c_int = 0x01;
const SETPGROUP: c_int = 0x02;
pub(super) const SETSIGDEF: c_int = 0x04;
pub(super) const SETSIGMASK: c_int = 0x08;
const SETSCHEDPARAM: c_int = 0x10;
const SETSCHEDULER: c_int = 0x20;
const SETSID: c_int = 0x80;

impl Attrs {
    /// No attribute set (a NULL `posix_spawnattr_t`).
    pub(super) fn none() -> Attrs {
        // SAFETY: plain C structs, all-zero is a valid (empty) value.
        unsafe { std::mem::zeroed() }
    }

    /// # Safety
    /// `attr` is NULL or an initialised `posix_spawnattr_t`.
    unsafe fn read(attr: *const Attr) -> Attrs {
        let mut a = Attrs::none();
        if attr.is_null() {
            return a;
        }
        let mut flags: libc::c_short = 0;
        // SAFETY: glibc's getters on the program's initialised attributes,
        // each writing one local of the type it takes.
        unsafe {
            libc::posix_spawnattr_getflags(attr, &mut flags);
            libc::posix_spawnattr_getpgroup(attr, &mut a.pgroup);
            libc::posix_spawnattr_getsigdefault(attr, &mut a.sigdefault);
            libc::posix_spawnattr_getsigmask(attr, &mut a.sigmask);
            libc::posix_spawnattr_getschedpolicy(attr, &mut a.policy);
            libc::posix_spawnattr_getschedparam(attr, &mut a.param);
        }
        a.flags = c_int::from(flags) & 0xffff;
        a
    }
}

/// The candidates a `posix_spawnp` tries, in order (glibc's search: a name
/// with a slash as it is, else each directory of the caller's `PATH`, by
/// default `/bin:/usr/bin`; an empty entry is the working directory).
/// Made in the parent (the child of a multithreaded program should not
/// take the environment's lock).
fn candidates(file: &CStr) -> Vec<CString> {
    let name = file.to_bytes();
    if name.is_empty() || name.contains(&b'/') {
        return vec![file.to_owned()];
    }
    let path = std::env::var_os("PATH")
        .map(std::os::unix::ffi::OsStringExt::into_vec)
        .unwrap_or_else(|| b"/bin:/usr/bin".to_vec());
    path.split(|&b| b == b':')
        .filter_map(|dir| {
            let mut full = dir.to_vec();
            if !full.is_empty() {
                full.push(b'/');
            }
            full.extend_from_slice(name);
            CString::new(full).ok()
        })
        .collect()
}

/// What the child needs, made before the fork.
pub(super) struct Plan<'a> {
    /// Exec candidates (one for `posix_spawn`).
    pub(super) paths: Vec<CString>,
    pub(super) argv: *const *const c_char,
    pub(super) envp: *const *const c_char,
    pub(super) actions: &'a [Action],
    pub(super) attrs: Attrs,
    /// The signal mask the parent had (the child's unless SETSIGMASK).
    pub(super) old_mask: libc::sigset_t,
}

impl<'a> Plan<'a> {
    /// A plan to run `path` with `argv` and `envp` (as `posix_spawn`
    /// takes them), `actions` and `attrs`.
    pub(super) fn new(
        path: CString,
        argv: *const *const c_char,
        envp: *const *const c_char,
        actions: &'a [Action],
        attrs: Attrs,
    ) -> Plan<'a> {
        Plan {
            paths: vec![path],
            argv,
            envp,
            actions,
            attrs,
            // SAFETY: all-zero is a valid sigset_t; filled at the fork.
            old_mask: unsafe { std::mem::zeroed() },
        }
    }
}

/// `posix_spawn`/`posix_spawnp` as our fork, actions and exec; the error
/// number, or 0 with the child's pid in `*pid`. (The shell hooks,
/// process/shell.rs, run `system` and `popen` through it too.)
///
/// # Safety
/// The arguments of a `posix_spawn` call.
pub(super) unsafe fn spawn_own(pid: *mut libc::pid_t, plan: &mut Plan) -> c_int {
    let mut pipe = [-1 as c_int; 2];
    // SAFETY: the host's pipe2 into a local array of two.
    if unsafe { host_syscall!(libc::SYS_pipe2, pipe.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return errno();
    }
    let [r, w] = pipe;
    // Every signal blocked across the fork: the child must not run the
    // program's handlers before it has reset them (glibc does the same).
    // SAFETY: sigset_t locals, as the calls take them.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut plan.old_mask);
    }
    // SAFETY: our fork hook (the child joins the tree).
    let child = unsafe { super::fork() };
    if child == 0 {
        // SAFETY: the forked child, with the plan made for it.
        unsafe { in_child(r, w, plan) }
    }
    let fork_err = errno();
    // SAFETY: the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &plan.old_mask, std::ptr::null_mut()) };
    crate::hijack::host::close(w);
    if child < 0 {
        crate::hijack::host::close(r);
        return fork_err;
    }
    // The child's errno if its exec failed; end of file once it succeeded.
    let mut err: c_int = 0;
    let got = loop {
        // SAFETY: reads into a local int, from our pipe.
        let n = unsafe {
            host_syscall!(
                libc::SYS_read,
                r,
                (&mut err as *mut c_int).cast::<u8>(),
                std::mem::size_of::<c_int>()
            )
        };
        if n >= 0 || errno() != libc::EINTR {
            break n;
        }
    };
    crate::hijack::host::close(r);
    if got == std::mem::size_of::<c_int>() as i64 {
        // The child has ended (or is about to): reap it, as glibc does.
        // SAFETY: waitpid on our own child, no status wanted.
        while unsafe { libc::waitpid(child, std::ptr::null_mut(), 0) } < 0 && errno() == libc::EINTR
        {
        }
        return if err > 0 { err } else { libc::ECHILD };
    }
    if !pid.is_null() {
        // SAFETY: the caller's pointer for the pid.
        unsafe { *pid = child };
    }
    0
}

/// The child's side: the attributes (glibc's order), the file actions
/// through our hooks, the signal mask, the exec. Never returns; a failure
/// sends its errno to the parent and exits with 127.
///
/// # Safety
/// In the child of [`spawn_own`]'s fork.
unsafe fn in_child(r: c_int, mut w: c_int, plan: &Plan) -> ! {
    crate::hijack::host::close(r);
    let a = &plan.attrs;
    // The program's handlers go (they would run in the child), and the
    // signals of SETSIGDEF go back to their default.
    for sig in 1..=libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: sigaction with locals; our hook keeps its own record.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            if crate::hijack::signals::sigaction(sig, std::ptr::null(), &mut sa) != 0 {
                continue;
            }
            let h = sa.sa_sigaction;
            let handler = h != libc::SIG_DFL && h != libc::SIG_IGN;
            let default = a.flags & SETSIGDEF != 0 && libc::sigismember(&a.sigdefault, sig) == 1;
            if handler || default {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigemptyset(&mut dfl.sa_mask);
                crate::hijack::signals::sigaction(sig, &dfl, std::ptr::null_mut());
            }
        }
    }
    // SAFETY: plain calls on this process with the attributes' values.
    unsafe {
        if a.flags & SETSCHEDULER != 0 {
            if libc::sched_setscheduler(0, a.policy, &a.param) < 0 {
                fail(w, errno());
            }
        } else if a.flags & SETSCHEDPARAM != 0 && libc::sched_setparam(0, &a.param) < 0 {
            fail(w, errno());
        }
        if a.flags & SETSID != 0 && libc::setsid() < 0 {
            fail(w, errno());
        }
        if a.flags & SETPGROUP != 0 && libc::setpgid(0, a.pgroup) < 0 {
            fail(w, errno());
        }
        if a.flags & RESETIDS != 0
            && (super::seteuid(libc::getuid()) != 0 || libc::setegid(libc::getgid()) != 0)
        {
            fail(w, errno());
        }
    }
    // The error pipe out of the way of every number the actions name.
    let named = plan
        .actions
        .iter()
        .flat_map(|a| match a {
            Action::Close(fd)
            | Action::Fchdir(fd)
            | Action::Tcsetpgrp(fd)
            | Action::Open { fd, .. } => [*fd, -1],
            Action::Dup2(x, y) => [*x, *y],
            Action::Chdir(_) | Action::Closefrom(_) => [-1, -1],
        })
        .max()
        .unwrap_or(-1);
    if w <= named {
        // SAFETY: the host's fcntl on our pipe.
        let moved = unsafe { host_syscall!(libc::SYS_fcntl, w, libc::F_DUPFD_CLOEXEC, named + 1) };
        if moved >= 0 {
            crate::hijack::host::close(w);
            w = moved as c_int;
        }
    }
    for act in plan.actions {
        // SAFETY: our hooks, with the program's numbers and our copies of
        // its paths.
        let ok = unsafe { run_action(act, w) };
        if !ok {
            fail(w, errno());
        }
    }
    let mask = if a.flags & SETSIGMASK != 0 {
        &a.sigmask
    } else {
        &plan.old_mask
    };
    // SAFETY: a sigset_t of ours.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, mask, std::ptr::null_mut()) };
    // glibc's search: EACCES is remembered, a missing or unusable entry
    // goes on to the next, any other error ends it.
    let mut eacces = false;
    let mut last = libc::ENOENT;
    for p in &plan.paths {
        // SAFETY: our execve hook, with the program's vectors.
        unsafe { super::execve(p.as_ptr(), plan.argv, plan.envp) };
        last = errno();
        match last {
            libc::EACCES => eacces = true,
            libc::ENOENT | libc::ESTALE | libc::ENOTDIR | libc::ENODEV | libc::ETIMEDOUT => {}
            _ => fail(w, last),
        }
    }
    fail(w, if eacces { libc::EACCES } else { last })
}

/// Reports `e` to the parent over error pipe `w` and leaves (the child's
/// failure before or at its exec).
fn fail(w: c_int, e: c_int) -> ! {
    // SAFETY: writes a local int to our pipe, then leaves.
    unsafe {
        host_syscall!(
            libc::SYS_write,
            w,
            (&e as *const c_int).cast::<u8>(),
            std::mem::size_of::<c_int>()
        );
        libc::_exit(127)
    }
}

/// One file action through our hooks; false (errno set) if it failed.
///
/// # Safety
/// In the child of [`spawn_own`]; `w` is its error pipe.
unsafe fn run_action(act: &Action, w: c_int) -> bool {
    use crate::hijack::fd::control;
    // SAFETY: the hooks' contracts: the program's numbers, our C strings.
    unsafe {
        match act {
            // glibc ignores a close that fails on a valid number.
            Action::Close(fd) => {
                control::close(*fd);
                true
            }
            Action::Dup2(from, to) if from == to => {
                // POSIX (and glibc): the descriptor stays, without FD_CLOEXEC.
                let flags = control::fcntl(*from, libc::F_GETFD, 0);
                flags >= 0
                    && control::fcntl(
                        *from,
                        libc::F_SETFD,
                        (flags & !libc::FD_CLOEXEC) as libc::c_ulong,
                    ) >= 0
            }
            Action::Dup2(from, to) => control::dup2(*from, *to) == *to,
            Action::Open {
                fd,
                path,
                oflag,
                mode,
            } => {
                let got = crate::hijack::fs::open::open(path.as_ptr(), *oflag, *mode);
                if got < 0 {
                    return false;
                }
                if got != *fd {
                    if control::dup2(got, *fd) != *fd {
                        return false;
                    }
                    control::close(got);
                }
                true
            }
            Action::Chdir(path) => crate::hijack::fs::cwd::chdir(path.as_ptr()) == 0,
            Action::Fchdir(fd) => crate::hijack::fs::cwd::fchdir(*fd) == 0,
            Action::Closefrom(from) => {
                // Every descriptor from `from` on but the error pipe (our
                // close_range keeps the channel to the kernel).
                let from = (*from).max(0) as u32;
                let w = w as u32;
                if from < w {
                    control::close_range(from, w - 1, 0);
                }
                control::close_range(from.max(w + 1), u32::MAX, 0);
                true
            }
            Action::Tcsetpgrp(fd) => libc::tcsetpgrp(*fd, libc::getpgid(0)) == 0,
        }
    }
}

/// The body of both hooks.
///
/// # Safety
/// The arguments of a `posix_spawn` call.
unsafe fn spawn(
    pid: *mut libc::pid_t,
    file: *const c_char,
    fa: *const FileActions,
    attr: *const Attr,
    argv: *const *mut c_char,
    envp: *const *mut c_char,
    search: bool,
) -> c_int {
    type SpawnFn = unsafe extern "C" fn(
        *mut libc::pid_t,
        *const c_char,
        *const FileActions,
        *const Attr,
        *const *mut c_char,
        *const *mut c_char,
    ) -> c_int;
    let glibc = |envp: *const *mut c_char| -> c_int {
        let f: Option<SpawnFn> = if search {
            libc_fn!(
                posix_spawnp,
                fn(
                    *mut libc::pid_t,
                    *const c_char,
                    *const FileActions,
                    *const Attr,
                    *const *mut c_char,
                    *const *mut c_char,
                ) -> c_int
            )
        } else {
            libc_fn!(
                posix_spawn,
                fn(
                    *mut libc::pid_t,
                    *const c_char,
                    *const FileActions,
                    *const Attr,
                    *const *mut c_char,
                    *const *mut c_char,
                ) -> c_int
            )
        };
        match f {
            // SAFETY: the program's arguments (the environment possibly
            // with the tree's variables added), for glibc's spawn. Not
            // through the tier's gate: the tier follows glibc's clone.
            Some(f) => unsafe { f(pid, file, fa, attr, argv, envp) },
            None => libc::ENOSYS,
        }
    };
    if !tree::client() || file.is_null() {
        return glibc(envp);
    }
    let own = match actions_of(fa) {
        Some(actions) if needs_own(&actions) => Some(actions),
        _ => None,
    };
    let Some(actions) = own else {
        // SAFETY: the program's environment vector.
        return match unsafe { super::keep_in_tree(envp as *const *const c_char) } {
            Some(kept) => glibc(kept.ptrs.as_ptr() as *const *mut c_char),
            None => glibc(envp),
        };
    };
    // SAFETY: the program's path, a C string.
    let file = unsafe { CStr::from_ptr(file) };
    // As given (NULL too: glibc passes it on to execve).
    let mut plan = Plan::new(
        file.to_owned(),
        argv as *const *const c_char,
        envp as *const *const c_char,
        &actions,
        // SAFETY: the program's attributes (or NULL).
        unsafe { Attrs::read(attr) },
    );
    if search {
        plan.paths = candidates(file);
    }
    // SAFETY: the caller's pid pointer; the plan made above.
    unsafe { spawn_own(pid, &mut plan) }
}

/// # Safety
/// libc's contract for `posix_spawn`.
#[no_mangle]
pub unsafe extern "C" fn posix_spawn(
    pid: *mut libc::pid_t,
    path: *const c_char,
    fa: *const FileActions,
    attr: *const Attr,
    argv: *const *mut c_char,
    envp: *const *mut c_char,
) -> c_int {
    // SAFETY: the program's arguments, passed on.
    unsafe { spawn(pid, path, fa, attr, argv, envp, false) }
}

/// # Safety
/// libc's contract for `posix_spawnp`.
#[no_mangle]
pub unsafe extern "C" fn posix_spawnp(
    pid: *mut libc::pid_t,
    file: *const c_char,
    fa: *const FileActions,
    attr: *const Attr,
    argv: *const *mut c_char,
    envp: *const *mut c_char,
) -> c_int {
    // SAFETY: the program's arguments, passed on.
    unsafe { spawn(pid, file, fa, attr, argv, envp, true) }
}
