//! The process-tree mode, client side: this process's kernel calls go to a
//! kernel server that serves every process of the tree
//! (docs/process-tree.md). Started by `bin/lkl-hijack.sh`, which runs the
//! server and names it in `LKL_HIJACK_SERVER`; without that variable the
//! library boots a kernel of its own (the single-process mode).
//!
//! Below the descriptor table: it only carries calls. What a call means
//! (the table, fork, exec) is decided above (`process.rs`); the server is
//! `serve.rs`.

pub mod channel;
pub mod page;
pub mod spin;
pub use lkl::syscall::wire;

use std::ffi::c_int;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use lkl::syscall::Errno;

use wire::Request;

/// The variable naming the server's socket.
pub const SERVER_VAR: &str = "LKL_HIJACK_SERVER";

/// True in a client of a kernel server.
static CLIENT: AtomicBool = AtomicBool::new(false);

/// The datagram socket for interrupts, and its address's directory.
static INTERRUPTS: AtomicI32 = AtomicI32::new(-1);
static INTERRUPT_ADDR: std::sync::OnceLock<libc::sockaddr_un> = std::sync::OnceLock::new();

/// True in a client of a kernel server.
#[inline]
pub fn client() -> bool {
    CLIENT.load(Ordering::Acquire)
}

/// The socket path of a server's interrupt socket, next to its channel.
pub fn interrupt_path(server: &std::path::Path) -> std::path::PathBuf {
    server.with_file_name("interrupt.sock")
}

/// Connects this image to the server at `path`: every kernel call goes
/// there from now on. Returns the kernel descriptors an exec kept
/// (host number, kernel number).
pub fn attach(path: &std::ffi::OsStr) -> Result<Vec<(i32, i32)>, String> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_bytes())
        .map_err(|_| format!("{SERVER_VAR}: a NUL in the path"))?;
    channel::set_server(c);
    let mut pairs = Vec::new();
    channel::open_image(&mut pairs).map_err(|e| {
        format!(
            "{SERVER_VAR}={}: cannot reach the tree's kernel server: {}",
            std::path::Path::new(path).display(),
            std::io::Error::from_raw_os_error(e)
        )
    })?;
    open_interrupts(std::path::Path::new(path));
    allow_server_to_copy();
    channel::enable_staging();
    // SAFETY: `route` has the signature set_route wants and is safe to
    // call from any thread.
    unsafe { lkl::syscall::set_route(route) };
    CLIENT.store(true, Ordering::Release);
    Ok(pairs)
}

/// Under Yama's ptrace scope 1 only an ancestor may read a process's
/// memory: name the server as ours.
fn allow_server_to_copy() {
    let pid = channel::SERVER_PID.load(Ordering::Acquire);
    if pid > 0 && std::path::Path::new("/proc/sys/kernel/yama/ptrace_scope").exists() {
        // SAFETY: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_PTRACER, pid as libc::c_ulong, 0, 0, 0) };
    }
}

fn open_interrupts(server: &std::path::Path) {
    use std::os::unix::ffi::OsStrExt;
    let path = interrupt_path(server);
    let bytes = path.as_os_str().as_bytes();
    // SAFETY: an all-zero sockaddr_un is valid.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if bytes.len() >= addr.sun_path.len() {
        return;
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    // SAFETY: a new socket of ours.
    let fd = unsafe {
        crate::hijack::host::host_syscall!(
            libc::SYS_socket,
            libc::AF_UNIX,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            0,
        )
    } as c_int;
    let fd = channel::lift(fd);
    channel::mark_ours(fd, true);
    // Connected now, so that sends need no lookup of the path (after a
    // change of user ids the private directory is out of reach).
    // SAFETY: connects our socket to an address on our stack.
    let connected = fd >= 0
        && unsafe {
            crate::hijack::host::host_syscall!(
                libc::SYS_connect,
                fd,
                &addr as *const libc::sockaddr_un,
                std::mem::size_of::<libc::sockaddr_un>(),
            )
        } == 0;
    if !connected {
        let _ = INTERRUPT_ADDR.set(addr);
    }
    INTERRUPTS.store(fd, Ordering::Release);
}

/// True if host descriptor `fd` is one of the library's own (a channel to
/// the server): a program that closes every descriptor it does not know
/// (daemons do) must not cut itself off from its kernel.
#[inline]
pub fn owns(fd: c_int) -> bool {
    client() && channel::is_ours(fd)
}

/// Asks the server to interrupt the call kernel thread `ktid` is in (a
/// signal arrived for the thread waiting on it). Async-signal-safe.
pub fn interrupt(ktid: i32) {
    let fd = INTERRUPTS.load(Ordering::Acquire);
    if fd < 0 {
        return;
    }
    // The address only if the socket could not be connected.
    let (addr, len) = match INTERRUPT_ADDR.get() {
        Some(a) => (
            a as *const libc::sockaddr_un,
            std::mem::size_of::<libc::sockaddr_un>(),
        ),
        None => (std::ptr::null(), 0),
    };
    let v = ktid.to_ne_bytes();
    // SAFETY: a datagram from a stack buffer to the server's socket.
    unsafe {
        crate::hijack::host::host_syscall!(
            libc::SYS_sendto,
            fd,
            v.as_ptr(),
            v.len(),
            libc::MSG_DONTWAIT,
            addr,
            len,
        )
    };
}

/// Every kernel call of a client (`lkl::syscall::raw`).
///
/// # Safety
/// As for `lkl::syscall::raw`: the server's kernel reads and writes this
/// process's memory at the pointers in `args`.
unsafe fn route(nr: i64, args: [i64; 6]) -> Result<i64, Errno> {
    match channel::request(Request::Call { nr, args }, &[], None) {
        Ok(r) if (-4095..0).contains(&r.ret) => Err(Errno(-r.ret as i32)),
        Ok(r) => Ok(r.ret),
        Err(e) => Err(lost(e)),
    }
}

/// A channel that failed: the server is gone (or refused us).
#[cold]
fn lost(e: i32) -> Errno {
    use std::sync::atomic::AtomicBool;
    static SAID: AtomicBool = AtomicBool::new(false);
    if !SAID.swap(true, Ordering::AcqRel) {
        let msg = b"lkl-hijack: the tree's kernel server cannot be reached: kernel calls fail\n";
        // SAFETY: a write of a static buffer to stderr.
        unsafe { crate::hijack::host::host_syscall!(libc::SYS_write, 2, msg.as_ptr(), msg.len()) };
    }
    let _ = e;
    Errno::ESHUTDOWN
}

/// Registers a notifier in the server: `eventfd` (ours) is bumped when
/// kernel descriptor `kfd` is woken with one of `events`.
pub fn notifier_add(kfd: i32, events: u32, eventfd: c_int) -> Result<i32, Errno> {
    match channel::request(Request::NotifierAdd { kfd, events }, &[], Some(eventfd)) {
        Ok(r) if r.ret < 0 => Err(Errno(-r.ret as i32)),
        Ok(r) => Ok(r.ret as i32),
        Err(e) => Err(lost(e)),
    }
}

pub fn notifier_del(id: i32) {
    let _ = channel::request(Request::NotifierDel { id }, &[], None);
}

/// Before a host fork: the server forks this process's kernel process;
/// the token for the child.
pub fn fork_prepare() -> Result<u64, Errno> {
    match channel::request(Request::Fork, &[], None) {
        Ok(r) if r.ret < 0 => Err(Errno(-r.ret as i32)),
        Ok(r) => Ok(r.value as u64),
        Err(e) => Err(lost(e)),
    }
}

/// After the host fork, in the parent: which pid the fork made (-1: none).
pub fn fork_parent(token: u64, pid: i32) {
    let _ = channel::request(Request::ForkDone { token, pid }, &[], None);
}

/// Opens this thread's channel now if it has none (before a change of
/// user ids, after which the server's directory is out of reach).
pub fn connect_now() {
    let _ = channel::channel();
}

/// After the host fork, in the child.
pub fn fork_child(token: u64) {
    channel::after_fork_child(token);
}

/// A fork the system-call tier issues itself (a static program's `fork`,
/// a raw `clone` without `CLONE_VM`; no hook of ours runs around it):
/// `token` (from [`fork_prepare`]; `None` where the calling thread has no
/// library state to ask the server with: the child then starts a kernel
/// process of its own, with no kernel descriptors, and says so) is handed
/// to the child through memory. The caller issues the fork, then calls
/// [`tier_fork_parent`] in the parent and [`tier_fork_child`] in the child.
/// Atomics only with `None`.
pub fn tier_fork_prepare(token: Option<u64>) {
    channel::clone_token_set(token.unwrap_or(channel::NO_TOKEN));
}

/// After the tier's fork, in the parent: `pid` as for [`fork_parent`].
pub fn tier_fork_parent(token: Option<u64>, pid: i32) {
    channel::clone_token_clear();
    if let Some(t) = token {
        fork_parent(t, pid);
    }
}

/// After the tier's fork, in the child, before it runs the program:
/// atomics only (no host call may be made there); the child's first
/// kernel request closes the parent's channels and presents the token.
pub fn tier_fork_child() {
    channel::clone_child();
}

/// Before an exec: the kernel descriptors the new image keeps.
pub fn exec_prepare(pairs: &[(i32, i32)]) {
    let mut bytes = Vec::with_capacity(pairs.len() * 8);
    wire::encode_pairs(pairs, &mut bytes);
    let _ = channel::request(Request::ExecPrepare, &bytes, None);
}

/// Keeps kernel descriptor `kfd`'s file for another process of the tree:
/// the ticket that claims it.
pub fn stash(kfd: i32) -> Result<u64, Errno> {
    match channel::request(Request::Stash { kfd }, &[], None) {
        Ok(r) if r.ret < 0 => Err(Errno(-r.ret as i32)),
        Ok(r) => Ok(r.value as u64),
        Err(e) => Err(lost(e)),
    }
}

/// The file of `ticket`, as a new kernel descriptor of this process.
pub fn claim(ticket: u64) -> Result<i32, Errno> {
    match channel::request(Request::Claim { ticket }, &[], None) {
        Ok(r) if r.ret < 0 => Err(Errno(-r.ret as i32)),
        Ok(r) => Ok(r.ret as i32),
        Err(e) => Err(lost(e)),
    }
}

/// True if host process `pid` belongs to this tree.
pub fn in_tree(pid: i32) -> bool {
    matches!(channel::request(Request::InTree { pid }, &[], None), Ok(r) if r.ret == 1)
}

/// At exit (after the program's streams are flushed): if this is the
/// tree's last process and its only thread is left, it hands itself over to the server (its kernel
/// process ends now) and waits, at most `HALT_WAIT`, for the server to halt
/// the kernel and exit; so that whoever waits for the program (a harness,
/// the shell) finds the kernel's last output written and its disks synced
/// when it ends, as in the single-process mode. A process that is not the
/// last exits at once, as before.
pub fn wait_for_halt() {
    const HALT_WAIT_MS: c_int = 10_000;
    // Only a process whose other threads are gone: the halt would end
    // the kernel calls they may still be in, and they would see errors
    // while the process exits (it exits at once, as before; the halt
    // follows its end).
    if !only_thread() {
        return;
    }
    // Quietly: a server already gone is no news at exit.
    if !matches!(channel::request(Request::Stats, &[], None), Ok(r) if r.ret == 1) {
        return;
    }
    let spid = channel::SERVER_PID.load(Ordering::Acquire);
    if spid <= 0 {
        return;
    }
    // SAFETY: pidfd_open with integer arguments; the result is ours.
    let pfd = unsafe { crate::hijack::host::host_syscall!(libc::SYS_pidfd_open, spid, 0) };
    if pfd < 0 {
        return;
    }
    interrupt(0);
    let mut p = libc::pollfd {
        fd: pfd as c_int,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: polls our pidfd; then closes it.
    unsafe {
        crate::hijack::host::host_syscall!(libc::SYS_poll, &raw mut p, 1, HALT_WAIT_MS);
        crate::hijack::host::host_syscall!(libc::SYS_close, pfd);
    }
}

/// True if the calling thread is its process's only one.
fn only_thread() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|st| {
        st.lines()
            .find_map(|l| l.strip_prefix("Threads:"))
            .is_some_and(|n| n.trim() == "1")
    })
}

/// The server's counts: processes, threads' tasks, files in passing,
/// kernel tasks, kernel free memory (KiB).
pub fn stats() -> Result<[i64; 5], Errno> {
    match channel::request(Request::Stats, &[], None) {
        Ok(r) => Ok([r.ret, r.more[0], r.more[1], r.more[2], r.more[3]]),
        Err(e) => Err(lost(e)),
    }
}
