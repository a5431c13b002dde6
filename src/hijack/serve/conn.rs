//! One client thread's connection: its hello names the process and makes
//! the thread's kernel task; then each request is served in turn on this
//! server thread, a call running as that task. A packet that is not a
//! request (or a second hello) cuts the connection off; the client's
//! other connections are unaffected.

use std::ffi::{c_int, c_void};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use lkl::kernel::process::KTask;
use lkl::syscall::{nr, Errno};

use super::registry::{Proc, Registry};
use crate::hijack::tree::spin;
use lkl::syscall::wire::{self, Hello, Pairs, Reply, Request, SharedPage};

/// Calls a client may not make: lkl's own, which take host addresses.
fn forbidden(call: i64) -> bool {
    matches!(call, nr::VIRTIO_MMIO_DEVICE_ADD | 245 | 246)
}

fn errno_now() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// One server thread at a time may spin for its client's next request.
static SPINNING: AtomicBool = AtomicBool::new(false);

/// What a connection's client asked next.
enum Next {
    /// A request from the shared page, with its sequence number.
    Page(u32, Request),
    /// A packet of this many bytes in the buffer (and a descriptor).
    Packet(usize, Option<OwnedFd>),
}

/// The next request of a client: from its shared page (caught by
/// spinning if its requests have been coming quickly and no other server
/// thread spins, tree/spin.rs) or from its socket, where a sleeping
/// server is woken by a doorbell or a whole packet. Err: the client is
/// gone, or put garbage in its page (it is cut off).
fn next(
    fd: c_int,
    page: Option<&SharedPage>,
    last: &mut u32,
    buf: &mut [u8],
    adapt: &spin::Adapt,
) -> Result<Next, i32> {
    let Some(page) = page else {
        return recv_flags(fd, buf, 0).map(|(n, p)| Next::Packet(n, p));
    };
    let take = |last: &mut u32| -> Option<Result<Next, i32>> {
        match page.take_request(*last)? {
            Some((seq, req)) => {
                *last = seq;
                Some(Ok(Next::Page(seq, req)))
            }
            None => Some(Err(libc::EPROTO)),
        }
    };
    if let Some(r) = take(last) {
        return r;
    }
    if adapt.try_spin()
        && SPINNING
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    {
        let got = spin::until(|| (page.req_seq.load(Ordering::Acquire) != *last).then_some(()));
        SPINNING.store(false, Ordering::Release);
        adapt.spun(got.is_some());
        if let Some(r) = take(last) {
            return r;
        }
    }
    loop {
        page.server_waits.store(1, Ordering::SeqCst);
        std::sync::atomic::fence(Ordering::SeqCst);
        if let Some(r) = take(last) {
            page.server_waits.store(0, Ordering::Relaxed);
            return r;
        }
        let got = recv_flags(fd, buf, 0);
        page.server_waits.store(0, Ordering::Relaxed);
        match got? {
            (n, _) if n <= wire::DOORBELL => {
                if let Some(r) = take(last) {
                    return r;
                }
            }
            (n, passed) => return Ok(Next::Packet(n, passed)),
        }
    }
}

/// Wakes a client that sleeps waiting for its answer in the page.
fn ring(fd: c_int, waits: &std::sync::atomic::AtomicU32) {
    std::sync::atomic::fence(Ordering::SeqCst);
    if waits.swap(0, Ordering::SeqCst) != 0 {
        let b = [0u8; wire::DOORBELL];
        // SAFETY: sends our one-byte buffer.
        unsafe {
            libc::send(
                fd,
                b.as_ptr().cast(),
                b.len(),
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            )
        };
    }
}

/// Receives a packet into `buf` with recvmsg `flags`.
fn recv_flags(fd: c_int, buf: &mut [u8], flags: c_int) -> Result<(usize, Option<OwnedFd>), i32> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast::<c_void>(),
        iov_len: buf.len(),
    };
    let mut cbuf = [0u64; 8];
    loop {
        // SAFETY: an all-zero msghdr is valid; it points at our buffers.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&cbuf);
        // SAFETY: receives into our buffers.
        let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_CMSG_CLOEXEC | flags) };
        if n < 0 {
            let e = errno_now();
            if e == libc::EINTR {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(0);
        }
        let mut passed = None;
        // SAFETY: walks the control messages the host wrote into cbuf.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                    let count = ((*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize) / 4;
                    let data = libc::CMSG_DATA(c).cast::<c_int>();
                    for i in 0..count {
                        let pfd = std::ptr::read_unaligned(data.add(i));
                        let owned = OwnedFd::from_raw_fd(pfd);
                        if passed.is_none() {
                            passed = Some(owned);
                        }
                    }
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        if msg.msg_flags & libc::MSG_TRUNC != 0 {
            return Err(libc::EMSGSIZE);
        }
        return Ok((n as usize, passed));
    }
}

fn send(fd: c_int, reply: Reply, pairs: &[(i32, i32)]) -> Result<(), i32> {
    send_passing(fd, reply, pairs, None)
}

/// Sends an answer (and pairs), with descriptor `pass` as SCM_RIGHTS.
fn send_passing(
    fd: c_int,
    reply: Reply,
    pairs: &[(i32, i32)],
    pass: Option<c_int>,
) -> Result<(), i32> {
    let mut out = reply.encode().to_vec();
    wire::encode_pairs(pairs, &mut out);
    let iov = libc::iovec {
        iov_base: out.as_mut_ptr().cast(),
        iov_len: out.len(),
    };
    let mut cbuf: crate::hijack::host::OneFdControl = [0; 4];
    // SAFETY: an all-zero msghdr is valid; it points at our buffers.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &iov as *const libc::iovec as *mut libc::iovec;
    msg.msg_iovlen = 1;
    if let Some(pfd) = pass {
        crate::hijack::host::attach_fd(&mut msg, &mut cbuf, pfd);
    }
    // SAFETY: sends our buffers.
    let r = unsafe { libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL) };
    if r < 0 {
        Err(errno_now())
    } else {
        Ok(())
    }
}

/// Our pid (asked once: a reply carries it).
fn server_pid() -> i32 {
    static PID: std::sync::OnceLock<i32> = std::sync::OnceLock::new();
    *PID.get_or_init(|| std::process::id() as i32)
}

fn reply(ret: Result<i64, Errno>) -> Reply {
    Reply {
        ret: match ret {
            Ok(v) => v,
            Err(e) => -i64::from(e.0),
        },
        value: 0,
        server_pid: server_pid(),
        pairs: 0,
        seq: 0,
        more: [0; 4],
    }
}

/// Makes the thread's process and task from its hello.
fn introduce(reg: &Registry, pid: i32, hello: Hello) -> Result<(Arc<Proc>, Pairs), Errno> {
    match hello {
        Hello::Image => match reg.get(pid) {
            // A known process with a new image: it exec'd.
            Some(p) => {
                let keep = p.exec_done();
                Ok((p, keep))
            }
            None => Ok((reg.new_root(pid)?, Vec::new())),
        },
        Hello::Forked(token) => reg
            .forked(token, pid)
            .map(|p| (p, Vec::new()))
            .ok_or(Errno::ESRCH),
        Hello::Thread => match reg.get(pid) {
            Some(p) => Ok((p, Vec::new())),
            None => Ok((reg.new_root(pid)?, Vec::new())),
        },
    }
}

/// The kernel thread id a connection's task should take: the host's id of
/// the thread it is for, if that is a thread of host process `pid` other
/// than its main thread (whose id is the process's, the anchor's); else 0
/// (the kernel's choice).
fn host_tid(pid: i32, tid: i32) -> i32 {
    let ours =
        tid > 0 && tid != pid && std::path::Path::new(&format!("/proc/{pid}/task/{tid}")).exists();
    if ours {
        tid
    } else {
        0
    }
}

/// Serves connection `fd` from host process `pid` until it closes.
pub fn serve(reg: &Registry, fd: OwnedFd, pid: i32) {
    let fd_raw = fd.as_raw_fd();
    let mut buf = vec![0u8; wire::MAX_PACKET];
    let Ok((n, _)) = recv_flags(fd_raw, &mut buf, 0) else {
        return;
    };
    let Some(Request::Hello(hello, tid)) = Request::decode(&buf[..n]) else {
        return;
    };
    let seq = wire::seq_of(&buf[..n]);
    let made = introduce(reg, pid, hello).and_then(|(p, keep)| {
        let task = p.with(|k| k.thread(host_tid(pid, tid)))?;
        Ok((p, keep, task))
    });
    let (proc_, keep, task) = match made {
        Ok(m) => m,
        Err(e) => {
            let mut out = reply(Err(e));
            out.seq = seq;
            let _ = send(fd_raw, out, &[]);
            return;
        }
    };
    let tid = task.tid();
    proc_.add_thread(tid);
    let mut hello_reply = reply(Ok(0));
    hello_reply.value = i64::from(tid);
    hello_reply.pairs = keep.len() as u32;
    hello_reply.seq = seq;
    // The shared page, if one can be made (else the socket carries all).
    let shared = crate::hijack::tree::page::create();
    let passed = shared.as_ref().map(|(f, _)| f.as_raw_fd());
    if send_passing(fd_raw, hello_reply, &keep, passed).is_ok() {
        let page = shared.map(|(f, m)| {
            drop(f);
            m
        });
        requests(reg, &proc_, &task, fd_raw, &mut buf, page.as_ref());
    }
    proc_.remove_thread(tid);
    task.exit();
}

fn requests(
    reg: &Registry,
    proc_: &Arc<Proc>,
    task: &KTask,
    fd: c_int,
    buf: &mut [u8],
    page: Option<&crate::hijack::tree::page::Mapped>,
) {
    // Whether to spin for the next request, per kind of the request just
    // answered: a `send`'s caller asks again at once, a `recv`'s only
    // once it has woken up.
    let adapt: [spin::Adapt; 16] = [const { spin::Adapt::new() }; 16];
    let mut kind = 0usize;
    let stage = page.map(|m| m.stage());
    let page = page.map(|m| m.page());
    let mut last = 0u32;
    loop {
        let Ok(next) = next(fd, page, &mut last, buf, &adapt[kind]) else {
            return;
        };
        let (req, seq, passed, packet, on_page) = match next {
            Next::Page(seq, req) => (req, seq, None, &buf[..0], true),
            Next::Packet(n, passed) => {
                let packet = &buf[..n];
                let Some(req) = Request::decode(packet) else {
                    return;
                };
                (req, wire::seq_of(packet), passed, packet, false)
            }
        };
        kind = match req {
            Request::Call { nr: call, .. } => (call & 15) as usize,
            _ => 15,
        };
        let mut out = reply(Ok(0));
        match req {
            Request::Hello(..) => return,
            Request::Call { nr: call, args } => {
                out = if forbidden(call) {
                    reply(Err(Errno::EPERM))
                } else if proc_.dead.load(Ordering::Acquire) {
                    reply(Err(Errno::ESHUTDOWN))
                } else {
                    // The bytes of its buffer the client staged (a page
                    // request's only).
                    let staged = match (page, stage) {
                        (Some(p), Some(st)) if on_page => Some((st, p.staged(seq))),
                        _ => None,
                    };
                    reply(run_call(proc_, task, call, args, staged))
                };
            }
            Request::Fork => match reg.fork(proc_) {
                Ok(token) => out.value = token as i64,
                Err(e) => out = reply(Err(e)),
            },
            Request::ForkDone { token, pid } => {
                reg.forked(token, pid);
            }
            Request::ExecPrepare => {
                let Some(pairs) = wire::decode_pairs(&packet[wire::RECORD..]) else {
                    return;
                };
                *proc_.keep.lock().unwrap_or_else(|e| e.into_inner()) = Some(pairs);
            }
            Request::NotifierAdd { kfd, events } => {
                let Some(efd) = passed else {
                    return;
                };
                out = reply(add_notifier(proc_, task, kfd, events, efd));
            }
            Request::Stash { kfd } => match reg.stash(proc_, kfd) {
                Ok(ticket) => out.value = ticket as i64,
                Err(e) => out = reply(Err(e)),
            },
            Request::Claim { ticket } => out = reply(reg.claim(task, ticket)),
            Request::InTree { pid } => out = reply(Ok(i64::from(reg.in_tree(pid)))),
            Request::Stats => {
                let (procs, threads, stashed) = reg.counts();
                out.ret = procs as i64;
                out.more = [threads as i64, stashed as i64, 0, 0];
                if let Ok((tasks, free_kib)) = kernel_counts() {
                    out.more[2] = tasks;
                    out.more[3] = free_kib;
                }
            }
            Request::NotifierDel { id } => {
                let mut list = proc_.notifiers.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(i) = list.iter().position(|(n, _)| *n == id) {
                    let _ = lkl::syscall::notifier_del(id);
                    list.swap_remove(i);
                } else {
                    out = reply(Err(Errno::ENOENT));
                }
            }
        }
        out.seq = seq;
        if let Some(page) = page.filter(|_| on_page) {
            page.post_reply(&out);
            ring(fd, &page.client_waits);
        } else if send(fd, out, &[]).is_err() {
            return;
        }
    }
}

/// The largest buffer read ahead of a call.
const READ_AHEAD: usize = 256 << 10;

/// The smallest buffer whose filling is collected (a smaller one takes
/// one or two copies anyway).
const WRITE_BEHIND_MIN: usize = 8 << 10;

thread_local! {
    static AHEAD: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs a client's call as its task. The buffer a `write`, `send` or
/// `pwrite` hands the kernel is read from the client in one
/// `process_vm_readv` first, so the kernel's copies of it (a page or a
/// segment at a time) are plain copies (process_mem.rs); a buffer that
/// cannot be read whole is left to the kernel's own copies (EFAULT and
/// short counts as the host gives them). The buffer a `read`, `recv` or
/// `pread` fills is collected on our side and written to the client in
/// one `process_vm_writev` when the call ends (at most [`READ_AHEAD`]
/// bytes of it; the kernel's writes past that go straight through). Such
/// a buffer must be mapped (pages_mapped), so that an unmapped one gets
/// the kernel's own EFAULT; one mapped but not writable (a read into
/// read-only memory) is noticed only when the bytes are written back:
/// the call then returns the bytes that landed, or EFAULT, and the rest
/// of what the kernel gave is lost (on the host a TCP socket keeps it).
fn run_call(
    proc_: &Proc,
    task: &KTask,
    call: i64,
    args: [i64; 6],
    staged: Option<(*const u8, usize)>,
) -> Result<i64, Errno> {
    let ahead = match call {
        nr::WRITE | nr::SENDTO | nr::PWRITE64 => Some((args[1] as usize, args[2] as usize)),
        _ => None,
    };
    // The client copied the buffer (up to STAGE_SIZE) into the channel's
    // stage before it posted the call: the kernel's reads of those bytes
    // come from there; past them (a copy that faulted) the kernel's own
    // copies read the client (EFAULT and short counts as the host gives
    // them).
    if let (Some((base, len)), Some((stage, n))) = (ahead, staged) {
        let n = n.min(len);
        if base != 0 && n > 0 {
            // SAFETY: the stage is mapped for the connection's life (the
            // caller's mapping), STAGE_SIZE >= n bytes; the call's
            // pointers are addresses in the client's memory.
            return unsafe {
                lkl::host::process_mem::with_shared_read_window(proc_.pid, base, stage, n, || {
                    task.call(call, args)
                })
            };
        }
    }
    if let Some((base, len)) = ahead.filter(|&(b, l)| b != 0 && l > 0 && l <= READ_AHEAD) {
        let done = AHEAD.with(|cell| {
            let mut buf = cell.try_borrow_mut().ok()?;
            if buf.len() < len {
                buf.resize(len, 0);
            }
            // SAFETY: our buffer holds at least `len` bytes.
            if !unsafe { lkl::host::process_mem::read_all(proc_.pid, buf.as_mut_ptr(), base, len) }
            {
                return None;
            }
            Some(lkl::host::process_mem::with_read_window(
                proc_.pid,
                base,
                &buf[..len],
                || {
                    // SAFETY: the call's pointers are addresses in the client's
                    // memory, reached through the kernel's user copies.
                    unsafe { task.call(call, args) }
                },
            ))
        });
        if let Some(r) = done {
            return r;
        }
    }
    let behind = match call {
        nr::READ | nr::RECVFROM | nr::PREAD64 => Some((args[1] as usize, args[2] as usize)),
        _ => None,
    };
    if let Some((base, len)) = behind.filter(|&(b, l)| b != 0 && l >= WRITE_BEHIND_MIN) {
        let cap = len.min(READ_AHEAD);
        let done = AHEAD.with(|cell| {
            if !lkl::host::process_mem::pages_mapped(proc_.pid, base, cap) {
                return None;
            }
            let mut buf = cell.try_borrow_mut().ok()?;
            if buf.len() < cap {
                buf.resize(cap, 0);
            }
            let (r, short) =
                lkl::host::process_mem::with_write_window(proc_.pid, base, &mut buf[..cap], || {
                    // SAFETY: as above.
                    unsafe { task.call(call, args) }
                });
            Some(match (r, short) {
                // The bytes the kernel gave could not all be written: a
                // short count, or EFAULT if none were, as on the host.
                (Ok(n), Some(landed)) if n as u64 > landed as u64 => {
                    if landed == 0 {
                        Err(Errno::EFAULT)
                    } else {
                        Ok(landed as i64)
                    }
                }
                (r, _) => r,
            })
        });
        if let Some(r) = done {
            return r;
        }
    }
    // SAFETY: as above.
    unsafe { task.call(call, args) }
}

/// The kernel's number of tasks and its free memory in KiB (sysinfo, in
/// the server's own process).
fn kernel_counts() -> Result<(i64, i64), Errno> {
    // struct sysinfo of the generic ABI: uptime, loads[3], totalram,
    // freeram, sharedram, bufferram, totalswap, freeswap (longs), procs
    // (u16), ..., mem_unit (u32) at 104.
    let mut info = [0u8; 112];
    // SAFETY: a buffer of the structure's size, in our own memory.
    unsafe { lkl::syscall::raw(nr::SYSINFO, [info.as_mut_ptr() as i64, 0, 0, 0, 0, 0]) }?;
    let word = |i: usize| u64::from_ne_bytes(info[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
    let procs = u16::from_ne_bytes([info[80], info[81]]);
    let unit = u32::from_ne_bytes(info[104..108].try_into().unwrap_or([0; 4])).max(1);
    Ok((i64::from(procs), (word(5) * u64::from(unit) / 1024) as i64))
}

/// A notifier on the client's kernel descriptor `kfd` that bumps the
/// client's eventfd (our copy of it).
fn add_notifier(
    proc_: &Proc,
    task: &KTask,
    kfd: i32,
    events: u32,
    efd: OwnedFd,
) -> Result<i64, Errno> {
    use std::os::fd::AsRawFd;
    let bump = crate::hijack::fdtable::bump as unsafe extern "C" fn(*mut c_void);
    // SAFETY: the kernel calls `bump` with our eventfd's number, which
    // stays open until the notifier is deleted (the list owns it).
    let id = unsafe {
        task.call(
            245,
            [
                i64::from(kfd),
                i64::from(events),
                bump as usize as i64,
                i64::from(efd.as_raw_fd()),
                0,
                0,
            ],
        )
    }?;
    proc_
        .notifiers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((id as i32, efd));
    Ok(id)
}
