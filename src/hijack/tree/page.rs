//! A channel's shared page (wire.rs, [`SharedPage`]) and its stage: the
//! server makes them (a sealed memfd of one page and `STAGE_SIZE` bytes)
//! for each connection and passes the memfd in its hello answer; both
//! ends map it. Sealed against shrinking and growing before it leaves the
//! server, so a client cannot make the server's mapping fault (a
//! truncated memfd raises SIGBUS in its mapper); what the client writes
//! in the page is only ever read as a record and decoded, and what it
//! writes in the stage (the buffer of its `write` or `send`) only ever
//! taken as that call's data.

use std::ffi::c_int;
use std::os::fd::{FromRawFd, OwnedFd};
use std::ptr::NonNull;

use lkl::syscall::wire::{SharedPage, SHARED_SIZE, STAGE_OFFSET};

/// A mapping of a shared page, unmapped when dropped.
pub struct Mapped(NonNull<SharedPage>);

// SAFETY: the page holds only atomics.
unsafe impl Send for Mapped {}
// SAFETY: as above.
unsafe impl Sync for Mapped {}

impl Mapped {
    pub fn page(&self) -> &SharedPage {
        // SAFETY: mapped for our lifetime, SHARED_SIZE bytes, all atomics.
        unsafe { self.0.as_ref() }
    }

    /// The stage after the page (`STAGE_SIZE` bytes, shared with the
    /// client: it may write there at any time).
    pub fn stage(&self) -> *const u8 {
        // SAFETY: the mapping is SHARED_SIZE bytes, the stage inside it.
        unsafe { stage_of(self.0.as_ptr()) }
    }

    /// The mapping's address (kept by a client thread in its channel).
    pub fn into_raw(self) -> *mut SharedPage {
        let p = self.0.as_ptr();
        std::mem::forget(self);
        p
    }

    /// Unmaps a page `into_raw` gave.
    ///
    /// # Safety
    /// `p` came from `into_raw` and is not used afterwards.
    pub unsafe fn unmap_raw(p: *mut SharedPage) {
        // SAFETY: the caller's contract: our mapping of SHARED_SIZE bytes.
        unsafe {
            crate::hijack::host::host_syscall!(libc::SYS_munmap, p, SHARED_SIZE);
        }
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: our mapping, no longer used.
        unsafe { Mapped::unmap_raw(self.0.as_ptr()) }
    }
}

/// The stage of the mapping at `p`: `STAGE_SIZE` bytes at
/// [`STAGE_OFFSET`].
///
/// # Safety
/// `p` is a mapping of [`SHARED_SIZE`] bytes (`map`, `into_raw`).
pub unsafe fn stage_of(p: *mut SharedPage) -> *mut u8 {
    // SAFETY: the caller's contract: the offset is inside the mapping.
    unsafe { p.cast::<u8>().add(STAGE_OFFSET) }
}

/// Maps the shared page (and its stage) in memfd `fd`.
pub fn map(fd: c_int) -> Option<Mapped> {
    // SAFETY: a new shared mapping of the memfd; the host checks `fd`.
    let p = unsafe {
        crate::hijack::host::host_syscall!(
            libc::SYS_mmap,
            0usize,
            SHARED_SIZE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            0usize,
        )
    };
    if p == -1 || p == 0 {
        return None;
    }
    NonNull::new(p as usize as *mut SharedPage).map(Mapped)
}

/// Server: a new page, sealed at its size, mapped; the memfd to pass.
pub fn create() -> Option<(OwnedFd, Mapped)> {
    // SAFETY: host calls on a memfd of ours.
    unsafe {
        let fd = libc::memfd_create(
            c"lkl-channel".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        );
        if fd < 0 {
            return None;
        }
        let fd = OwnedFd::from_raw_fd(fd);
        use std::os::fd::AsRawFd;
        let raw = fd.as_raw_fd();
        if libc::ftruncate(raw, SHARED_SIZE as libc::off_t) != 0
            || libc::fcntl(
                raw,
                libc::F_ADD_SEALS,
                libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL,
            ) != 0
        {
            return None;
        }
        let m = map(raw)?;
        Some((fd, m))
    }
}
