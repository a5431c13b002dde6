//! The kernel server of the process-tree mode: this process booted the
//! tree's kernel from the config (as any hijacked program does, `init`),
//! and `lkl_hijack_serve` (called by the `lkl-server` program, started by
//! `bin/lkl-hijack.sh`) serves every process of the tree until the last
//! one has ended; the program then exits and the exit path halts the
//! kernel cleanly, as in the single-process mode.
//!
//! Its ways in: `DIR/kernel.sock` (one connection per client thread,
//! `conn.rs`) and `DIR/interrupt.sock` (datagrams asking to interrupt a
//! blocked call). DIR must be a directory of the server's user, mode
//! 0700; every connection's peer must be that user (`SO_PEERCRED`), and an
//! interrupt is honoured only for a thread of the sender's own process.

mod conn;
mod registry;

use std::ffi::{c_char, c_int, CStr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use registry::Registry;

use crate::hijack::lifecycle::{active, diag};

fn errno_now() -> std::io::Error {
    std::io::Error::last_os_error()
}

/// A bound UNIX socket of `kind` at `path`.
fn bound(path: &Path, kind: c_int) -> Result<OwnedFd, String> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    // SAFETY: an all-zero sockaddr_un is valid.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if bytes.len() >= addr.sun_path.len() {
        return Err(format!("{}: path too long for a socket", path.display()));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as c_char;
    }
    // SAFETY: a new socket of ours, bound to a path we were given.
    unsafe {
        let fd = libc::socket(libc::AF_UNIX, kind | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(format!("socket: {}", errno_now()));
        }
        let fd = OwnedFd::from_raw_fd(fd);
        if libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_un).cast(),
            std::mem::size_of::<libc::sockaddr_un>() as u32,
        ) != 0
        {
            return Err(format!("bind {}: {}", path.display(), errno_now()));
        }
        Ok(fd)
    }
}

/// The directory must be ours and private: nobody else may reach the
/// kernel through it.
fn check_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // SAFETY: no arguments.
    let uid = unsafe { libc::geteuid() };
    if !m.is_dir() || m.uid() != uid || m.mode() & 0o077 != 0 {
        return Err(format!(
            "{}: must be a directory of user {uid} with mode 0700",
            dir.display()
        ));
    }
    Ok(())
}

/// Interrupt datagrams: a kernel thread id, from a process of ours (0:
/// the process is exiting).
fn interrupts(reg: &Registry, sock: OwnedFd) {
    let one: c_int = 1;
    // SAFETY: sets an int option on our socket.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PASSCRED,
            (&one as *const c_int).cast(),
            4,
        )
    };
    loop {
        let mut v = [0u8; 4];
        let mut iov = libc::iovec {
            iov_base: v.as_mut_ptr().cast(),
            iov_len: v.len(),
        };
        let mut cbuf = [0u64; 8];
        // SAFETY: an all-zero msghdr is valid; it points at our buffers.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&cbuf);
        // SAFETY: receives into our buffers.
        let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, 0) };
        if n < 0 {
            if errno_now().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return;
        }
        if n != 4 {
            continue;
        }
        let mut sender = None;
        // SAFETY: walks the control messages the host wrote into cbuf.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            if !c.is_null()
                && (*c).cmsg_level == libc::SOL_SOCKET
                && (*c).cmsg_type == libc::SCM_CREDENTIALS
            {
                sender = Some(std::ptr::read_unaligned(
                    libc::CMSG_DATA(c).cast::<libc::ucred>(),
                ));
            }
        }
        let Some(cred) = sender else { continue };
        let ktid = i32::from_ne_bytes(v);
        if ktid == 0 {
            // The sender is exiting (tree.rs, `wait_for_halt`).
            if reg.get(cred.pid).is_some() {
                reg.leaving(cred.pid);
            }
            continue;
        }
        if reg.get(cred.pid).is_some_and(|p| p.has_thread(ktid)) {
            let _ = lkl::interrupt(ktid);
        }
    }
}

/// The program the launcher ran has ended, leaving other processes of the
/// tree (a daemon) behind: the stderr it shared with us
/// is its caller's (a harness reading it to the end, `$(...)`), which must
/// not wait for a daemon the program left behind. Later diagnostics are
/// dropped (LKL_HIJACK_DEBUG keeps them).
fn release_stderr() {
    if std::env::var_os("LKL_HIJACK_DEBUG").is_some_and(|v| !v.is_empty() && v != "0") {
        return;
    }
    // SAFETY: opens /dev/null and puts it on descriptor 2 (ours).
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if null >= 0 {
            libc::dup2(null, 2);
            libc::close(null);
        }
    }
}

/// SIGTERM, SIGINT or SIGHUP sent to the server (`kill`, a session's
/// end) stop it the way the tree's end does: the accept loop ends, the
/// directory goes, and the exit path halts the kernel cleanly (disks
/// synced); the tree's processes then get ESHUTDOWN. The signals are
/// blocked in every thread made from here on and taken by one thread.
fn stop_on_signals(lfd: c_int, stopping: Arc<std::sync::atomic::AtomicBool>) -> Result<(), String> {
    // SAFETY: a zeroed sigset_t, filled by sigemptyset/sigaddset; the
    // mask is the calling thread's (inherited by the threads it makes).
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    std::thread::Builder::new()
        .name("lkl-signals".into())
        .spawn(move || {
            let mut sig: c_int = 0;
            // SAFETY: waits for one of the blocked signals.
            if unsafe { libc::sigwait(&set, &mut sig) } == 0 {
                diag(&format!("server: signal {sig}: halting the tree's kernel"));
                stopping.store(true, std::sync::atomic::Ordering::Release);
                // SAFETY: shuts our listening socket down (ends accept).
                unsafe { libc::shutdown(lfd, libc::SHUT_RDWR) };
            }
        })
        .map(drop)
        .map_err(|e| format!("thread: {e}"))
}

fn serve(dir: &Path, watch: i32) -> Result<(), String> {
    if !active() {
        return Err("the kernel is not running in this process (start the server through bin/lkl-hijack.sh)".into());
    }
    check_dir(dir)?;
    let reg = Arc::new(Registry::new().map_err(|e| format!("epoll: {e}"))?);
    if watch > 0 {
        reg.watch(watch)
            .map_err(|e| format!("watching pid {watch}: {e}"))?;
    }
    let intr = bound(&dir.join("interrupt.sock"), libc::SOCK_DGRAM)?;
    // Last: the channel's socket appearing says the server is ready.
    let tmp: PathBuf = dir.join("kernel.sock.new");
    let listener = bound(&tmp, libc::SOCK_SEQPACKET)?;
    // SAFETY: listens on our socket.
    if unsafe { libc::listen(listener.as_raw_fd(), 128) } != 0 {
        return Err(format!("listen: {}", errno_now()));
    }
    let lfd = listener.as_raw_fd();
    let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
    stop_on_signals(lfd, stopping.clone())?;
    std::fs::rename(&tmp, dir.join("kernel.sock"))
        .map_err(|e| format!("{}: {e}", dir.display()))?;

    {
        let reg = reg.clone();
        std::thread::Builder::new()
            .name("lkl-interrupts".into())
            .spawn(move || interrupts(&reg, intr))
            .map_err(|e| format!("thread: {e}"))?;
    }
    {
        let reg = reg.clone();
        std::thread::Builder::new()
            .name("lkl-ends".into())
            .spawn(move || {
                reg.watch_ends(
                    |pid, left| {
                        if pid == watch && left > 0 {
                            release_stderr();
                        }
                    },
                    || {
                        // Ends the accept loop.
                        // SAFETY: shuts our listening socket down.
                        unsafe { libc::shutdown(lfd, libc::SHUT_RDWR) };
                    },
                )
            })
            .map_err(|e| format!("thread: {e}"))?;
    }
    // SAFETY: no arguments.
    let uid = unsafe { libc::geteuid() };
    loop {
        // SAFETY: accepts on our socket.
        let fd = unsafe {
            libc::accept4(
                lfd,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_CLOEXEC,
            )
        };
        if fd < 0 {
            let e = errno_now();
            if reg.finished.load(std::sync::atomic::Ordering::Acquire)
                || stopping.load(std::sync::atomic::Ordering::Acquire)
            {
                break;
            }
            match e.raw_os_error() {
                Some(libc::EINTR)
                | Some(libc::ECONNABORTED)
                | Some(libc::EMFILE)
                | Some(libc::ENFILE) => continue,
                _ => return Err(format!("accept: {e}")),
            }
        }
        // SAFETY: a new descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let Some(cred) = crate::hijack::host::peer_cred(fd.as_raw_fd()) else {
            continue;
        };
        if cred.uid != uid {
            diag(&format!(
                "refused a connection from uid {} (pid {}): not this tree's user",
                cred.uid, cred.pid
            ));
            continue;
        }
        let reg = reg.clone();
        let _ = std::thread::Builder::new()
            .name("lkl-client".into())
            .stack_size(256 << 10)
            .spawn(move || conn::serve(&reg, fd, cred.pid));
    }
    let _ = std::fs::remove_file(dir.join("kernel.sock"));
    let _ = std::fs::remove_file(dir.join("interrupt.sock"));
    let _ = std::fs::remove_dir(dir);
    Ok(())
}

/// Serves the processes of a tree on this process's kernel, from the
/// private directory `dir`, until every process has ended (`watch`, the
/// program the launcher is about to exec, counts from the start). 0, or 1
/// with the reason on stderr.
///
/// # Safety
/// `dir` is a NUL-terminated path.
#[no_mangle]
pub unsafe extern "C" fn lkl_hijack_serve(dir: *const c_char, watch: c_int) -> c_int {
    if dir.is_null() {
        return 1;
    }
    // SAFETY: the caller's contract.
    let dir = unsafe { CStr::from_ptr(dir) };
    let dir =
        Path::new(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(dir.to_bytes()));
    match std::panic::catch_unwind(|| serve(dir, watch)) {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            diag(&format!("server: {e}"));
            1
        }
        Err(_) => {
            diag("server: internal error");
            1
        }
    }
}

/// `lkl-server --stats` (run through `bin/lkl-hijack.sh --attach PID`):
/// prints the tree's server's counts on stdout, one `name value` a line
/// (this process counts as one). 0, or 1 if this is no client of a tree.
#[no_mangle]
pub extern "C" fn lkl_hijack_stats() -> c_int {
    match crate::hijack::tree::stats() {
        Ok([procs, threads, stashed, tasks, free]) if crate::hijack::tree::client() => {
            println!("processes {procs}\nthreads {threads}\npassing {stashed}\nkernel_tasks {tasks}\nkernel_free_kib {free}");
            0
        }
        _ => {
            diag("stats: not a process of a tree (run: bin/lkl-hijack.sh --attach PID lkl-server --stats)");
            1
        }
    }
}
