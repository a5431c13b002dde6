//! epoll, ppoll, pselect6.

use super::abi::{EpollEvent, PollFd, Timespec};
use super::{nr, ptr, ptr_mut, raw, Errno};

pub fn epoll_create(flags: i32) -> Result<i32, Errno> {
    // SAFETY: no pointer arguments.
    unsafe { raw(nr::EPOLL_CREATE1, [flags as i64, 0, 0, 0, 0, 0]) }.map(|fd| fd as i32)
}

pub fn epoll_ctl(epfd: i32, op: i32, fd: i32, event: Option<EpollEvent>) -> Result<(), Errno> {
    let ev = event.unwrap_or_default();
    let evp = if event.is_some() { ptr(&ev) } else { 0 };
    // SAFETY: a generic-ABI epoll_event, or null for EPOLL_CTL_DEL.
    unsafe {
        raw(
            nr::EPOLL_CTL,
            [epfd as i64, op as i64, fd as i64, evp, 0, 0],
        )
    }
    .map(drop)
}

/// Waits up to `timeout_ms` (-1: forever) for events.
pub fn epoll_wait(epfd: i32, events: &mut [EpollEvent], timeout_ms: i32) -> Result<usize, Errno> {
    // SAFETY: room for `events.len()` events; no signal mask.
    unsafe {
        raw(
            nr::EPOLL_PWAIT,
            [
                epfd as i64,
                ptr_mut(events.as_mut_ptr()),
                events.len() as i64,
                timeout_ms as i64,
                0,
                8,
            ],
        )
    }
    .map(|n| n as usize)
}

pub fn ppoll(fds: &mut [PollFd], timeout: Option<Timespec>) -> Result<usize, Errno> {
    let ts = timeout.unwrap_or_default();
    let tsp = if timeout.is_some() { ptr(&ts) } else { 0 };
    // SAFETY: the pollfd array and an optional timespec; no signal mask.
    unsafe {
        raw(
            nr::PPOLL,
            [ptr_mut(fds.as_mut_ptr()), fds.len() as i64, tsp, 0, 8, 0],
        )
    }
    .map(|n| n as usize)
}

/// A 1024-bit fd_set.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct FdSet(pub [u64; 16]);

impl FdSet {
    pub fn set(&mut self, fd: i32) {
        self.0[fd as usize / 64] |= 1 << (fd as usize % 64);
    }
    pub fn is_set(&self, fd: i32) -> bool {
        self.0[fd as usize / 64] & (1 << (fd as usize % 64)) != 0
    }
}

pub fn pselect(
    nfds: i32,
    read: Option<&mut FdSet>,
    write: Option<&mut FdSet>,
    timeout: Option<Timespec>,
) -> Result<usize, Errno> {
    let ts = timeout.unwrap_or_default();
    let tsp = if timeout.is_some() { ptr(&ts) } else { 0 };
    let rp = read.map_or(0, |s| ptr_mut(s));
    let wp = write.map_or(0, |s| ptr_mut(s));
    // SAFETY: fd_sets of 1024 bits and an optional timespec; no sigmask.
    unsafe { raw(nr::PSELECT6, [nfds as i64, rp, wp, 0, tsp, 0]) }.map(|n| n as usize)
}
