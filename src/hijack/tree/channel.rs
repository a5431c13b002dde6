//! A thread's channel to the kernel server: a `SOCK_SEQPACKET` UNIX socket
//! connected on the thread's first kernel call, whose server-side thread
//! runs the calls as this thread's kernel task. Closed when the thread
//! exits (the server ends the task); in a forked child every inherited
//! channel is closed at once (they are the parent's threads') and the
//! child's threads connect anew, the first presenting the fork's token.
//!
//! Everything here is host system calls on stack buffers: a request may be
//! made from a signal handler.

use std::cell::Cell;
use std::ffi::{c_int, c_void, CStr};
use std::sync::atomic::{AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;

use lkl::syscall::wire::{self, Hello, Reply, Request, SharedPage};

use super::page::Mapped;
use super::spin;

/// The server's socket path (`LKL_HIJACK_SERVER`), set once at start.
static SERVER: OnceLock<std::ffi::CString> = OnceLock::new();

/// Bumped in a forked child: channels of an older generation are the
/// parent's.
static GENERATION: AtomicU64 = AtomicU64::new(1);

/// The token a forked child's first connection presents (0: none).
static CHILD_TOKEN: AtomicU64 = AtomicU64::new(0);

/// The token of a fork the system-call tier issues (a static program's
/// `fork`: no hook of ours runs around it), set by the parent before the
/// call and cleared after it: the child finds it in its copy of memory.
static CLONE_TOKEN: AtomicU64 = AtomicU64::new(0);

/// In such a child: the token its first request takes up. The child's
/// first steps run where no host call may be made (the tier's selector
/// blocks them), so closing the parent's channels waits until then.
static FORK_PENDING: AtomicU64 = AtomicU64::new(0);

/// A [`CLONE_TOKEN`] that says the kernel process did not fork: the child
/// is a process of its own with no kernel descriptors.
pub const NO_TOKEN: u64 = u64::MAX;

/// Every open channel's descriptor (+1; 0: free slot), so that a forked
/// child can close its parent's.
const SLOTS: usize = 4096;
static OPEN: [AtomicI32; SLOTS] = [const { AtomicI32::new(0) }; SLOTS];
/// The shared page of the channel in the same slot of OPEN (0: none).
static MAPS: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];

/// Which host descriptors are the library's own (channels, the interrupt
/// socket): a bit each, so `close` can tell in one load.
static OURS: [AtomicU64; 1024] = [const { AtomicU64::new(0) }; 1024];

/// Marks (or unmarks) descriptor `fd` as the library's own.
pub fn mark_ours(fd: c_int, ours: bool) {
    let Some(word) = usize::try_from(fd).ok().and_then(|f| OURS.get(f / 64)) else {
        return;
    };
    let bit = 1u64 << (fd as usize % 64);
    if ours {
        word.fetch_or(bit, Ordering::AcqRel);
    } else {
        word.fetch_and(!bit, Ordering::AcqRel);
    }
}

/// True if `fd` is one of the library's own descriptors.
#[inline]
pub fn is_ours(fd: c_int) -> bool {
    usize::try_from(fd)
        .ok()
        .and_then(|f| OURS.get(f / 64))
        .is_some_and(|w| w.load(Ordering::Acquire) & (1u64 << (fd as usize % 64)) != 0)
}

/// The server's pid, from the first hello's answer.
pub static SERVER_PID: AtomicI32 = AtomicI32::new(0);

struct Chan {
    fd: Cell<c_int>,
    /// The channel's shared page (null: none, the socket carries all).
    page: Cell<*mut SharedPage>,
    generation: Cell<u64>,
}

impl Drop for Chan {
    fn drop(&mut self) {
        let fd = self.fd.replace(-1);
        let page = self.page.replace(std::ptr::null_mut());
        if fd >= 0 && self.generation.get() == GENERATION.load(Ordering::Acquire) {
            forget(fd);
            crate::hijack::host::close(fd);
            if !page.is_null() {
                // SAFETY: our mapping (adopt), used by this thread only.
                unsafe { Mapped::unmap_raw(page) };
            }
        }
    }
}

thread_local! {
    static CHAN: Chan = const {
        Chan {
            fd: Cell::new(-1),
            page: Cell::new(std::ptr::null_mut()),
            generation: Cell::new(0),
        }
    };
    /// Whether waits spin, per kind of call (its number's low bits).
    static ADAPT: [spin::Adapt; 16] = const { [const { spin::Adapt::new() }; 16] };
}

fn remember(fd: c_int, page: *mut SharedPage) {
    mark_ours(fd, true);
    for (slot, map) in OPEN.iter().zip(MAPS.iter()) {
        if slot
            .compare_exchange(0, fd + 1, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            map.store(page as usize, Ordering::Release);
            return;
        }
    }
}

fn forget(fd: c_int) {
    mark_ours(fd, false);
    for (slot, map) in OPEN.iter().zip(MAPS.iter()) {
        if slot.load(Ordering::Acquire) == fd + 1 {
            map.store(0, Ordering::Release);
            if slot
                .compare_exchange(fd + 1, 0, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return;
            }
        }
    }
}

/// Sets the server's address (at start).
pub fn set_server(path: std::ffi::CString) {
    let _ = SERVER.set(path);
}

fn last_errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// The lowest number the library's own descriptors take (channels, the
/// interrupt socket).
const OWN_FDS_FROM: c_int = 100;

/// Moves new descriptor `fd` of the library's to a number of at least
/// [`OWN_FDS_FROM`] (where it can be), and returns its number. Created at
/// the lowest free number, it could take a number the program is about to
/// use: a shell that saves stdout, closes it and `dup2`s a kernel socket
/// onto it (`cmd >&5` in dash) would otherwise replace the channel its
/// first kernel call just opened on 1; and a program that closed stdin
/// expects its next `open` to return 0.
pub fn lift(fd: c_int) -> c_int {
    if !(0..OWN_FDS_FROM).contains(&fd) {
        return fd;
    }
    // SAFETY: the host's fcntl on our own descriptor.
    let moved = unsafe {
        crate::hijack::host::host_syscall!(libc::SYS_fcntl, fd, libc::F_DUPFD_CLOEXEC, OWN_FDS_FROM)
    } as c_int;
    if moved < 0 {
        // No free number up there (a low RLIMIT_NOFILE): where it is.
        return fd;
    }
    crate::hijack::host::close(fd);
    moved
}

/// A new connection to the server (not yet introduced).
fn connect() -> Result<c_int, i32> {
    let path: &CStr = SERVER.get().ok_or(libc::ENOTCONN)?;
    let bytes = path.to_bytes();
    // SAFETY: an all-zero sockaddr_un is valid.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if bytes.len() >= addr.sun_path.len() {
        return Err(libc::ENAMETOOLONG);
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    // SAFETY: host calls with valid arguments; the socket is ours.
    unsafe {
        let fd = crate::hijack::host::host_syscall!(
            libc::SYS_socket,
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
        ) as c_int;
        if fd < 0 {
            return Err(last_errno());
        }
        let fd = lift(fd);
        loop {
            let r = crate::hijack::host::host_syscall!(
                libc::SYS_connect,
                fd,
                &addr as *const libc::sockaddr_un,
                std::mem::size_of::<libc::sockaddr_un>(),
            );
            if r == 0 {
                return Ok(fd);
            }
            let e = last_errno();
            if e != libc::EINTR {
                crate::hijack::host::close(fd);
                return Err(e);
            }
        }
    }
}

/// Sends one packet (`record` + `extra`), with `pass` as SCM_RIGHTS.
fn send(
    fd: c_int,
    record: &[u8; wire::RECORD],
    extra: &[u8],
    pass: Option<c_int>,
) -> Result<(), i32> {
    let iov = [
        libc::iovec {
            iov_base: record.as_ptr() as *mut c_void,
            iov_len: record.len(),
        },
        libc::iovec {
            iov_base: extra.as_ptr() as *mut c_void,
            iov_len: extra.len(),
        },
    ];
    // Room for one descriptor's control message.
    let mut cbuf: crate::hijack::host::OneFdControl = [0; 4];
    // SAFETY: an all-zero msghdr is valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = if extra.is_empty() { 1 } else { 2 };
    if let Some(pfd) = pass {
        crate::hijack::host::attach_fd(&mut msg, &mut cbuf, pfd);
    }
    loop {
        // SAFETY: the message points at live buffers.
        let r = unsafe {
            crate::hijack::host::host_syscall!(
                libc::SYS_sendmsg,
                fd,
                &msg as *const libc::msghdr,
                libc::MSG_NOSIGNAL,
            )
        };
        if r >= 0 {
            return Ok(());
        }
        let e = last_errno();
        if e != libc::EINTR {
            return Err(e);
        }
    }
}

/// Receives a packet into `buf` (a reply record and pairs after it, or a
/// doorbell), returning the bytes received, and the descriptor passed
/// with it if `want_fd`. A signal does not end the wait: the server
/// answers an interrupted call soon (signals.rs asks it to).
fn recv(fd: c_int, buf: &mut [u8], want_fd: Option<&mut c_int>) -> Result<usize, i32> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut cbuf = [0u64; 4];
    loop {
        // SAFETY: an all-zero msghdr is valid; it points at our buffers.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if want_fd.is_some() {
            msg.msg_control = cbuf.as_mut_ptr().cast();
            msg.msg_controllen = std::mem::size_of_val(&cbuf);
        }
        // SAFETY: receives into our buffers, alive for this call.
        let r = unsafe {
            crate::hijack::host::host_syscall!(
                libc::SYS_recvmsg,
                fd,
                &mut msg as *mut libc::msghdr,
                libc::MSG_CMSG_CLOEXEC,
            )
        };
        match r {
            r if r > 0 => {
                if let Some(out) = want_fd {
                    // SAFETY: walks the control messages the host wrote.
                    unsafe {
                        let c = libc::CMSG_FIRSTHDR(&msg);
                        if !c.is_null()
                            && (*c).cmsg_level == libc::SOL_SOCKET
                            && (*c).cmsg_type == libc::SCM_RIGHTS
                        {
                            *out = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<c_int>());
                        }
                    }
                }
                return Ok(r as usize);
            }
            0 => return Err(libc::ECONNRESET),
            _ => match last_errno() {
                libc::EINTR => continue,
                e => return Err(e),
            },
        }
    }
}

/// Numbers requests, so that a late answer is told from the one awaited.
static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

fn exchange(
    fd: c_int,
    req: Request,
    extra: &[u8],
    pass: Option<c_int>,
    rest: &mut [u8],
    mut got_fd: Option<&mut c_int>,
) -> Result<(Reply, usize), i32> {
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    send(fd, &req.encode_seq(seq), extra, pass)?;
    // A reply with pairs: one packet, record then pairs.
    let mut whole = vec![0u8; wire::RECORD + rest.len()];
    loop {
        let n = recv(fd, &mut whole, got_fd.as_deref_mut())?;
        if n <= wire::DOORBELL {
            // For an answer in the page this thread no longer waits for.
            continue;
        }
        let reply = Reply::decode(&whole).ok_or(libc::EPROTO)?;
        // An answer to a call this thread left (siglongjmp out of a
        // handler that interrupted it) is dropped.
        if reply.seq != seq {
            continue;
        }
        let extra_len = n.saturating_sub(wire::RECORD).min(rest.len());
        rest[..extra_len].copy_from_slice(&whole[wire::RECORD..wire::RECORD + extra_len]);
        return Ok((reply, extra_len));
    }
}

/// One request through the channel's shared page: the record is posted
/// there (a doorbell wakes the server if it sleeps), and its answer is
/// polled for there (spinning first if waits of this kind have been
/// short, tree/spin.rs), then slept for on the socket, where the server
/// rings when it has answered a sleeping client.
///
/// # Safety
/// `mapped` is this thread's mapping of its channel's page and stage.
unsafe fn exchange_page(fd: c_int, mapped: *mut SharedPage, req: Request) -> Result<Reply, i32> {
    // SAFETY: the caller's contract.
    let page = unsafe { &*mapped };
    // A number the page does not show yet (0 is "none" to the server; the
    // counter wraps after 2^32 calls of the whole process).
    let seq = loop {
        let s = SEQ.fetch_add(1, Ordering::Relaxed);
        if s != 0
            && s != page.req_seq.load(Ordering::Relaxed)
            && s != page.rep_seq.load(Ordering::Relaxed)
        {
            break s;
        }
    };
    // SAFETY: the caller's contract.
    unsafe { stage(mapped, seq, &req) };
    page.post_request(&req.encode_seq(seq));
    std::sync::atomic::fence(Ordering::SeqCst);
    if page.server_waits.swap(0, Ordering::SeqCst) != 0 {
        ring_server(fd)?;
    }
    if let Some(r) = page.take_reply(seq) {
        return Ok(r);
    }
    let kind = match req {
        Request::Call { nr, .. } => (nr & 15) as usize,
        _ => 15,
    };
    let spun = ADAPT
        .try_with(|a| {
            let a = &a[kind];
            if !a.try_spin() {
                return None;
            }
            let got = spin::until(|| page.take_reply(seq));
            a.spun(got.is_some());
            got
        })
        .ok()
        .flatten();
    if let Some(r) = spun {
        return Ok(r);
    }
    let mut b = [0u8; wire::RECORD];
    loop {
        page.client_waits.store(1, Ordering::SeqCst);
        std::sync::atomic::fence(Ordering::SeqCst);
        if let Some(r) = page.take_reply(seq) {
            page.client_waits.store(0, Ordering::Relaxed);
            return Ok(r);
        }
        let got = recv(fd, &mut b, None);
        page.client_waits.store(0, Ordering::Relaxed);
        got?;
    }
}

/// Whether this process copies the buffers of its writes into its
/// channels' stages (the fault handler is installed: a bad pointer gives
/// a short copy, not a crash).
static STAGING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// At start: stage writes from now on if copies of our memory can be made
/// fault-safe (installs the fault handler, as a kernel's boot does in the
/// single-process mode).
pub fn enable_staging() {
    if lkl::host::uaccess::FAULT_SAFE_COPIES && lkl::host::uaccess::install_fault_handler().is_ok()
    {
        STAGING.store(true, Ordering::Release);
    }
}

/// Stages the buffer of a `write`, `send` or `pwrite` of up to
/// `STAGE_SIZE` bytes in the channel's stage before request `seq` is
/// posted, so that the server's kernel reads it with plain copies instead
/// of reading our memory with a system call; the copy runs here, on our
/// CPU. A buffer that cannot be read whole is staged up to its first bad
/// byte; the server's kernel reads the rest from us (EFAULT, short
/// counts). A larger buffer is left to the server (one `process_vm_readv`
/// ahead of the call). Nothing is staged while the server may still be reading the
/// last staged buffer (a call this thread left by a jump out of a
/// handler).
///
/// # Safety
/// `mapped` is this thread's mapping of its channel's page and stage.
unsafe fn stage(mapped: *mut SharedPage, seq: u32, req: &Request) {
    // SAFETY: the caller's contract.
    let page = unsafe { &*mapped };
    let mut staged = 0;
    if let Request::Call { nr, args } = *req {
        let writes = matches!(
            nr,
            lkl::syscall::nr::WRITE | lkl::syscall::nr::SENDTO | lkl::syscall::nr::PWRITE64
        );
        if writes
            && args[1] != 0
            && args[2] > 0
            && args[2] as u64 <= wire::STAGE_SIZE as u64
            && STAGING.load(Ordering::Relaxed)
            && page.stage_free()
        {
            let want = args[2] as usize;
            // SAFETY: the caller's contract.
            staged = unsafe { copy_to_stage(mapped, args[1] as usize, want) };
        }
    }
    if staged > 0 || page.stage_seq.load(Ordering::Relaxed) != 0 {
        page.set_staged(seq, staged);
    }
}

/// Copies `n` bytes of our memory at `buf` to the stage; returns how
/// many could be read.
///
/// # Safety
/// As for [`stage`]; `n` is at most `STAGE_SIZE`.
unsafe fn copy_to_stage(mapped: *mut SharedPage, buf: usize, n: usize) -> usize {
    // SAFETY: the stage is STAGE_SIZE bytes of this channel's mapping
    // (SHARED_SIZE, see page.rs); our buffer may be anything: the copy
    // stops at a fault (STAGING says it is caught).
    let left = unsafe {
        lkl::host::uaccess::copy_from_program(super::page::stage_of(mapped), buf as *const u8, n)
    };
    n - left.min(n)
}

/// A doorbell for the server's thread.
fn ring_server(fd: c_int) -> Result<(), i32> {
    let b = [0u8; wire::DOORBELL];
    loop {
        // SAFETY: sends our one-byte buffer.
        let r = unsafe {
            crate::hijack::host::host_syscall!(
                libc::SYS_sendto,
                fd,
                b.as_ptr(),
                b.len(),
                libc::MSG_NOSIGNAL,
                0usize,
                0usize,
            )
        };
        if r >= 0 {
            return Ok(());
        }
        match last_errno() {
            libc::EINTR => continue,
            e => return Err(e),
        }
    }
}

/// Opens and introduces a channel; the hello's reply, and the channel's
/// shared page if the server passed one (null if not).
fn open(hello: Hello, rest: &mut [u8]) -> Result<(c_int, *mut SharedPage, Reply, usize), i32> {
    let fd = connect()?;
    let mut passed = -1;
    match exchange(
        fd,
        // SAFETY: gettid has no arguments.
        Request::Hello(hello, unsafe { libc::gettid() }),
        &[],
        None,
        rest,
        Some(&mut passed),
    ) {
        Ok((r, n)) if r.ret >= 0 => {
            SERVER_PID.store(r.server_pid, Ordering::Release);
            let page = if passed >= 0 {
                let m = super::page::map(passed);
                crate::hijack::host::close(passed);
                m.map_or(std::ptr::null_mut(), Mapped::into_raw)
            } else {
                std::ptr::null_mut()
            };
            Ok((fd, page, r, n))
        }
        r => {
            if passed >= 0 {
                crate::hijack::host::close(passed);
            }
            crate::hijack::host::close(fd);
            Err(match r {
                Ok((r, _)) => (-r.ret) as i32,
                Err(e) => e,
            })
        }
    }
}

/// The program image's first connection (at start); its answer's pairs
/// (the kernel descriptors an exec kept) are written to `pairs`.
pub fn open_image(pairs: &mut Vec<(i32, i32)>) -> Result<(), i32> {
    let mut rest = vec![0u8; wire::MAX_PAIRS * 8];
    let (fd, page, reply, n) = open(Hello::Image, &mut rest)?;
    if let Some(p) = wire::decode_pairs(&rest[..n.min(reply.pairs as usize * 8)]) {
        *pairs = p;
    }
    adopt(fd, page);
    Ok(())
}

/// Makes `fd` (and `page`) this thread's channel.
fn adopt(fd: c_int, page: *mut SharedPage) {
    remember(fd, page);
    let _ = CHAN.try_with(|c| {
        c.fd.set(fd);
        c.page.set(page);
        c.generation.set(GENERATION.load(Ordering::Acquire));
    });
}

/// This thread's channel (and its shared page, null if none), connecting
/// it first if need be.
fn channel_and_page() -> Result<(c_int, *mut SharedPage), i32> {
    if FORK_PENDING.load(Ordering::Relaxed) != 0 {
        match FORK_PENDING.swap(0, Ordering::AcqRel) {
            0 => {}
            NO_TOKEN => {
                crate::hijack::lifecycle::diag(
                    "fork from a thread with no library state (a static program's thread): \
                     the child has a kernel process of its own, with no kernel descriptors",
                );
                after_fork_child(0);
            }
            token => after_fork_child(token),
        }
    }
    let current = GENERATION.load(Ordering::Acquire);
    let have = CHAN
        .try_with(|c| {
            (c.generation.get() == current && c.fd.get() >= 0).then(|| (c.fd.get(), c.page.get()))
        })
        .map_err(|_| libc::ESHUTDOWN)?;
    if let Some(have) = have {
        return Ok(have);
    }
    let token = CHILD_TOKEN.swap(0, Ordering::AcqRel);
    let hello = if token != 0 {
        Hello::Forked(token)
    } else {
        Hello::Thread
    };
    match open(hello, &mut []) {
        Ok((fd, page, _, _)) => {
            adopt(fd, page);
            Ok((fd, page))
        }
        Err(e) => {
            if token != 0 {
                CHILD_TOKEN.store(token, Ordering::Release);
            }
            Err(e)
        }
    }
}

/// This thread's channel, connecting it first if need be.
pub fn channel() -> Result<c_int, i32> {
    channel_and_page().map(|(fd, _)| fd)
}

/// One request on this thread's channel.
pub fn request(req: Request, extra: &[u8], pass: Option<c_int>) -> Result<Reply, i32> {
    // The channel's own calls (polls that find nothing: EAGAIN) must not
    // show in the program's errno: a caller that reads errno after a call
    // that succeeded (readdir's end) would see them.
    let saved = crate::hijack::host::errno();
    let r = match channel_and_page() {
        Ok((fd, page)) => {
            if !page.is_null() && extra.is_empty() && pass.is_none() && req.fits_page() {
                // SAFETY: this thread's mapping, alive while its channel is.
                unsafe { exchange_page(fd, page, req) }
            } else {
                exchange(fd, req, extra, pass, &mut [], None).map(|(r, _)| r)
            }
        }
        Err(libc::ESHUTDOWN) => late_request(req, extra, pass),
        Err(e) => Err(e),
    };
    crate::hijack::host::set_errno(saved);
    r
}

/// The connection of threads whose own channel is gone with their
/// thread-locals: at exit, glibc destroys them before it flushes the
/// streams, and a stream on a kernel descriptor (fd/stream.rs) still has
/// to write through the kernel then. Kept to the end (a fork child's copy
/// is closed with the others: it is of an older generation); one request
/// at a time.
static LATE: std::sync::Mutex<(c_int, u64)> = std::sync::Mutex::new((-1, 0));

fn late_request(req: Request, extra: &[u8], pass: Option<c_int>) -> Result<Reply, i32> {
    let mut late = LATE.lock().unwrap_or_else(|e| e.into_inner());
    let current = GENERATION.load(Ordering::Acquire);
    if late.0 < 0 || late.1 != current {
        // Its shared page stays unused (packets only), kept with it.
        let (fd, page, _, _) = open(Hello::Thread, &mut [])?;
        remember(fd, page);
        *late = (fd, current);
    }
    exchange(late.0, req, extra, pass, &mut [], None).map(|(r, _)| r)
}

/// Before the tier issues a fork: `token` (or [`NO_TOKEN`]) is for the
/// child. Waits while another thread's such fork is in flight (atomics
/// only: a thread without the library's thread-local state may call it).
pub fn clone_token_set(token: u64) {
    while CLONE_TOKEN
        .compare_exchange(0, token, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        std::hint::spin_loop();
    }
}

/// After the tier's fork, in the parent.
pub fn clone_token_clear() {
    CLONE_TOKEN.store(0, Ordering::Release);
}

/// In the child of the tier's fork, before it runs the program (atomics
/// only): its first request closes the parent's channels and presents the
/// token.
pub fn clone_child() {
    let token = CLONE_TOKEN.swap(0, Ordering::AcqRel);
    if token != 0 {
        FORK_PENDING.store(token, Ordering::Release);
    }
}

/// In a forked child: the parent's channels are closed (and their pages
/// unmapped), and the first connection presents `token`.
pub fn after_fork_child(token: u64) {
    GENERATION.fetch_add(1, Ordering::AcqRel);
    CHILD_TOKEN.store(token, Ordering::Release);
    for (slot, map) in OPEN.iter().zip(MAPS.iter()) {
        let v = slot.swap(0, Ordering::AcqRel);
        let page = map.swap(0, Ordering::AcqRel);
        if v > 0 {
            // The child's copy of a parent's channel.
            mark_ours(v - 1, false);
            crate::hijack::host::close(v - 1);
        }
        if page != 0 {
            // SAFETY: the child's copy of a parent's mapping, unused here.
            unsafe { Mapped::unmap_raw(page as *mut SharedPage) };
        }
    }
}
