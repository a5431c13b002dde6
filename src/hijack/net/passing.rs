//! Kernel descriptors passed with `SCM_RIGHTS` over host UNIX sockets
//! between processes of a tree. What crosses the host socket for a kernel
//! descriptor is a ticket: a small memfd named `lkl-hijack-ticket` holding
//! the number the kernel server gave the file when the sender handed it
//! over (`Stash`; the server keeps a reference, so the sender may exit at
//! once). The receiver's `recvmsg` finds the memfd among the descriptors it
//! got, claims the file (`Claim`: a new descriptor in its own kernel
//! table) and puts a placeholder for it at the memfd's number. A peer that
//! is not a process of the tree cannot use a kernel descriptor: the send
//! fails with EBADF and a message. In the single-process mode a kernel
//! descriptor cannot leave its process: EBADF as well.

use std::ffi::{c_int, c_void};

use crate::hijack::fdtable;
use crate::hijack::host::set_errno;
use crate::hijack::lifecycle::diag;
use crate::hijack::tree;

const TICKET_NAME: &[u8] = b"/memfd:lkl-hijack-ticket";

/// The descriptors of every SCM_RIGHTS message in `msg`'s control data.
///
/// # Safety
/// `msg` is a valid msghdr whose control buffer holds `msg_controllen` bytes.
unsafe fn rights(msg: *const libc::msghdr) -> Vec<*mut c_int> {
    let mut out = Vec::new();
    // SAFETY: the caller's contract; CMSG_* walk within the buffer.
    unsafe {
        if msg.is_null() || (*msg).msg_control.is_null() {
            return out;
        }
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let n = ((*c).cmsg_len as usize).saturating_sub(libc::CMSG_LEN(0) as usize) / 4;
                let data = libc::CMSG_DATA(c).cast::<c_int>();
                for i in 0..n {
                    out.push(data.add(i));
                }
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
    out
}

/// A memfd holding `ticket`.
fn ticket_fd(ticket: u64) -> Result<c_int, i32> {
    // SAFETY: host calls on a new descriptor of ours and a local buffer.
    unsafe {
        let fd = libc::memfd_create(c"lkl-hijack-ticket".as_ptr(), libc::MFD_CLOEXEC);
        if fd < 0 {
            return Err(crate::hijack::host::errno());
        }
        let b = ticket.to_ne_bytes();
        if libc::pwrite(fd, b.as_ptr().cast::<c_void>(), b.len(), 0) != b.len() as isize {
            libc::close(fd);
            return Err(libc::EIO);
        }
        Ok(fd)
    }
}

/// The peer of a connected host socket, if it says.
fn peer_pid(fd: c_int) -> Option<i32> {
    crate::hijack::host::peer_cred(fd)
        .map(|c| c.pid)
        .filter(|&p| p > 0)
}

/// `sendmsg` on host socket `fd`: None if the message carries no kernel
/// descriptor (libc's sendmsg serves it), else the result of sending it
/// with tickets in their place.
///
/// # Safety
/// libc's contract for `sendmsg`.
pub unsafe fn send(
    fd: c_int,
    msg: *const libc::msghdr,
    sendmsg: impl Fn(*const libc::msghdr) -> isize,
) -> Option<isize> {
    // SAFETY: the program's message.
    let slots = unsafe { rights(msg) };
    // SAFETY: each slot is an int inside the program's control buffer.
    let kernel: Vec<(usize, i32)> = slots
        .iter()
        .enumerate()
        .filter_map(|(i, &p)| fdtable::kernel_fd(unsafe { *p }).map(|k| (i, k)))
        .collect();
    if kernel.is_empty() {
        return None;
    }
    if !tree::client() {
        diag("sendmsg: a kernel descriptor cannot leave its process in the single-process mode (bin/lkl-hijack.sh without --single-process shares one kernel among a tree)");
        set_errno(libc::EBADF);
        return Some(-1);
    }
    if let Some(pid) = peer_pid(fd) {
        if !tree::in_tree(pid) {
            diag(&format!(
                "sendmsg: a kernel descriptor cannot go to pid {pid}: not a process of this tree"
            ));
            set_errno(libc::EBADF);
            return Some(-1);
        }
    }
    // A copy of the control data with tickets in place of kernel descriptors.
    // SAFETY: the program's msghdr, copied; its control buffer is valid for
    // msg_controllen bytes.
    let (mut copy, mut control) = unsafe {
        let m = *msg;
        let c = std::slice::from_raw_parts(m.msg_control.cast::<u8>(), m.msg_controllen).to_vec();
        (m, c)
    };
    let base = copy.msg_control as usize;
    copy.msg_control = control.as_mut_ptr().cast();
    let mut made = Vec::new();
    for (i, kfd) in kernel {
        let ticket = match tree::stash(kfd) {
            Ok(t) => t,
            Err(e) => {
                close_all(&made);
                set_errno(lkl::xlate::errno_to_host(e.0));
                return Some(-1);
            }
        };
        let tfd = match ticket_fd(ticket) {
            Ok(f) => f,
            Err(e) => {
                close_all(&made);
                set_errno(e);
                return Some(-1);
            }
        };
        made.push(tfd);
        let off = slots[i] as usize - base;
        control[off..off + 4].copy_from_slice(&tfd.to_ne_bytes());
    }
    let r = sendmsg(&copy);
    let saved = crate::hijack::host::errno();
    close_all(&made);
    set_errno(saved);
    Some(r)
}

fn close_all(fds: &[c_int]) {
    for &f in fds {
        let _ = crate::hijack::host::close(f);
    }
}

/// After a host `recvmsg` that succeeded: every ticket among the received
/// descriptors becomes the kernel descriptor it stands for, at the same
/// number.
///
/// # Safety
/// `msg` is the message the host just filled.
pub unsafe fn received(msg: *mut libc::msghdr, flags: c_int) {
    if !tree::client() {
        return;
    }
    // SAFETY: the message the host just filled.
    for p in unsafe { rights(msg) } {
        // SAFETY: an int inside the control buffer.
        let fd = unsafe { *p };
        let mut link = [0u8; 64];
        let path = format!("/proc/self/fd/{fd}\0");
        // SAFETY: readlink into a local buffer.
        let n =
            unsafe { libc::readlink(path.as_ptr().cast(), link.as_mut_ptr().cast(), link.len()) };
        if n <= 0 || !link[..n as usize].starts_with(TICKET_NAME) {
            continue;
        }
        let mut b = [0u8; 8];
        // SAFETY: reads 8 bytes of the memfd into a local.
        if unsafe { libc::pread(fd, b.as_mut_ptr().cast(), 8, 0) } != 8 {
            continue;
        }
        let cloexec = flags & libc::MSG_CMSG_CLOEXEC != 0;
        match tree::claim(u64::from_ne_bytes(b)) {
            Ok(kfd) => {
                if fdtable::insert_at(kfd, fd, cloexec).is_err() {
                    diag("recvmsg: no host number for a kernel descriptor received");
                }
            }
            Err(e) => diag(&format!(
                "recvmsg: a kernel descriptor received could not be claimed: {e}"
            )),
        }
    }
}
