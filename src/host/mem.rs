//! Memory for the kernel: small host objects from malloc, and its RAM as
//! one anonymous mapping (zero-filled, committed only when touched).

use std::ffi::{c_ulong, c_void};
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The kernel's RAM region (host address, length), once allocated.
static RAM_START: AtomicUsize = AtomicUsize::new(0);
static RAM_LEN: AtomicUsize = AtomicUsize::new(0);

/// Where the kernel's RAM is: (host address, length in bytes). Its first
/// byte is guest-physical address `virtio::RAM_PHYS_BASE`.
pub fn kernel_ram() -> Option<(usize, usize)> {
    let start = RAM_START.load(Ordering::Acquire);
    (start != 0).then(|| (start, RAM_LEN.load(Ordering::Acquire)))
}

pub(super) unsafe extern "C" fn mem_alloc(size: c_ulong) -> *mut c_void {
    // SAFETY: malloc has no preconditions.
    unsafe { libc::malloc(size as usize) }
}

/// # Safety
/// `p` comes from `mem_alloc` (or is null).
pub(super) unsafe extern "C" fn mem_free(p: *mut c_void) {
    // SAFETY: see the function's contract.
    unsafe { libc::free(p) }
}

pub(super) unsafe extern "C" fn page_alloc(size: c_ulong) -> *mut c_void {
    // SAFETY: an anonymous private mapping with no fixed address.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            size as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return ptr::null_mut();
    }
    // The kernel allocates its RAM once, at boot.
    RAM_LEN.store(size as usize, Ordering::Release);
    RAM_START.store(p as usize, Ordering::Release);
    prefault_low_end(p, size as usize);
    p
}

/// RAM boot fills from its first page on: the page allocator hands out
/// the low end first, and boot writes all of its first MiB (at mem=32M
/// and 64M alike; the rest of what it touches is scattered).
const LOW_END_BYTES: usize = 1 << 20;

/// Makes the low end of the kernel's RAM present in one call
/// (`MADV_POPULATE_WRITE`, Linux 5.14; contents untouched, still zero)
/// rather than by 256 page faults during boot: 0.2 ms less boot on a
/// 2-vCPU VM, no more resident memory (docs/kernel.md). Best effort: an
/// older host just takes the faults.
fn prefault_low_end(p: *mut c_void, size: usize) {
    const MADV_POPULATE_WRITE: i32 = 23;
    if std::env::var_os("LKL_RAM_PREFAULT").is_some_and(|v| v == "0") {
        return;
    }
    // SAFETY: a range inside the mapping just made; populating never
    // changes its contents.
    unsafe { libc::madvise(p, LOW_END_BYTES.min(size), MADV_POPULATE_WRITE) };
}

/// # Safety
/// `p` and `size` are those of one `page_alloc` call, not used again.
pub(super) unsafe extern "C" fn page_free(p: *mut c_void, size: c_ulong) {
    // The kernel is frozen; no device may touch its RAM past this point.
    super::iomem::shutdown_all();
    if RAM_START.load(Ordering::Acquire) == p as usize {
        RAM_START.store(0, Ordering::Release);
    }
    // SAFETY: see the function's contract.
    unsafe { libc::munmap(p, size as usize) };
}

/// Drops the pages of `[start, start + len)` (the kernel's code or
/// read-only data in the host image) from the process's resident set: what
/// boot used once. Only pages still backed by the file are dropped
/// (MADV_DONTNEED maps them back from the page cache when next touched); a
/// page that became private (relocated data, a debugger's breakpoint) is
/// kept, as are pages not mapped.
///
/// # Safety
/// The range is page aligned and lies in a mapping of the host image.
pub(super) unsafe extern "C" fn image_discard(start: *mut c_void, len: c_ulong) {
    const PAGE: usize = 4096;
    const PRESENT: u64 = 1 << 63;
    const FILE_OR_SHARED: u64 = 1 << 61;
    let start = start as usize;
    let pages = len as usize / PAGE;
    // SAFETY: a plain open of a NUL-terminated path.
    let fd = unsafe {
        libc::open(
            c"/proc/self/pagemap".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return;
    }
    let mut entries = [0u64; 512];
    let mut run: Option<usize> = None;
    let mut page = 0;
    let flush = |from: usize, to: usize| {
        // SAFETY: whole pages of file-backed code; see the function's doc.
        unsafe {
            libc::madvise(
                (start + from * PAGE) as *mut c_void,
                (to - from) * PAGE,
                libc::MADV_DONTNEED,
            )
        };
    };
    while page < pages {
        let want = entries.len().min(pages - page);
        let offset = ((start / PAGE + page) * 8) as libc::off_t;
        // SAFETY: reads into a local buffer of `want` entries.
        let got = unsafe { libc::pread(fd, entries.as_mut_ptr().cast(), want * 8, offset) };
        if got <= 0 {
            break;
        }
        for (i, e) in entries[..got as usize / 8].iter().enumerate() {
            let droppable = e & (PRESENT | FILE_OR_SHARED) == PRESENT | FILE_OR_SHARED;
            match (droppable, run) {
                (true, None) => run = Some(page + i),
                (false, Some(from)) => {
                    flush(from, page + i);
                    run = None;
                }
                _ => {}
            }
        }
        page += got as usize / 8;
    }
    if let Some(from) = run {
        flush(from, page);
    }
    // SAFETY: closes the descriptor opened above.
    unsafe { libc::close(fd) };
}
