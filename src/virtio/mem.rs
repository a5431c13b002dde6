//! Guest memory: the kernel's RAM as the devices see it.
//!
//! The kernel's RAM is one host memory region. The kernel calls an address
//! inside it "physical": `host_addr - region_start + RAM_PHYS_BASE` (see
//! `kernel/arch/lkl/include/asm/page.h`), and those are the addresses it
//! writes into queue registers and descriptors. [`GuestMemory`] maps that
//! guest-physical range back to the host region.
//!
//! What this layer guarantees:
//! - every access is bounds-checked against the region, with overflow-free
//!   arithmetic, before any byte is touched; nothing outside the region is
//!   ever read or written, whatever address the kernel supplies;
//! - no Rust reference into guest memory is ever created. The kernel writes
//!   this memory concurrently, so bytes are only copied in and out
//!   (`ptr::copy`) and ring indices use atomics; every value copied out is
//!   validated by the caller *after* the copy, never re-read;
//! - the region stays valid while any clone of a [`GuestMemory`] exists: an
//!   owned region is freed with the last clone, a borrowed one
//!   ([`GuestMemory::from_raw_parts`]) is the caller's promise.
//!
//! Like vm-memory, this type only gives access, it never manages memory:
//! devices do not know whether it is the kernel's arena or a test buffer.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

/// Guest-physical address of the first byte of the kernel's RAM
/// (`LKL_PHYS_BASE` in the arch port).
pub const RAM_PHYS_BASE: u64 = 0x10_0000;

/// Most iovecs per `preadv`/`pwritev` call (`IOV_MAX` on Linux).
const MAX_IOV: usize = 1024;

#[derive(Clone, Copy)]
enum Direction {
    FromFile,
    ToFile,
}

/// Why [`GuestMemory::read_file_at`] or [`GuestMemory::write_file_at`]
/// failed.
#[derive(Debug)]
pub enum FileIoError {
    /// A range is not inside guest memory (nothing was transferred).
    Memory(MemError),
    /// The ranges or the file range are too long to address.
    TooLong,
    /// The host call failed (part may have been transferred).
    Io(io::Error),
}

impl fmt::Display for FileIoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileIoError::Memory(e) => write!(f, "{e}"),
            FileIoError::TooLong => f.write_str("file range too long"),
            FileIoError::Io(e) => write!(f, "file I/O: {e}"),
        }
    }
}

impl std::error::Error for FileIoError {}

/// Alignment required of the host region: enough for the atomic ring
/// indices (and the kernel's RAM is page aligned anyway).
const REGION_ALIGN: usize = 8;

/// A guest-physical address. A newtype, so that it cannot be mixed up with a
/// host address or an offset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GuestAddress(pub u64);

impl GuestAddress {
    /// `self + offset`, or `None` on overflow.
    pub fn checked_add(self, offset: u64) -> Option<GuestAddress> {
        self.0.checked_add(offset).map(GuestAddress)
    }

    /// The raw value.
    pub fn raw(self) -> u64 {
        self.0
    }
}

impl fmt::Display for GuestAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// Errors of guest memory access.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemError {
    /// The kernel named a range that is not inside its RAM.
    OutOfRange {
        /// First guest-physical address of the range.
        addr: u64,
        /// Length of the range in bytes.
        len: u64,
    },
    /// An atomic access at an address not aligned to its size.
    Misaligned {
        /// The guest-physical address.
        addr: u64,
        /// The required alignment.
        align: u64,
    },
    /// The host region handed to the constructor is unusable.
    InvalidRegion(&'static str),
    /// The host could not allocate an owned region.
    AllocFailed,
}

impl fmt::Display for MemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemError::OutOfRange { addr, len } => {
                write!(f, "guest range {addr:#x}+{len:#x} is outside guest memory")
            }
            MemError::Misaligned { addr, align } => {
                write!(f, "guest address {addr:#x} is not {align}-byte aligned")
            }
            MemError::InvalidRegion(why) => write!(f, "invalid guest memory region: {why}"),
            MemError::AllocFailed => write!(f, "could not allocate guest memory"),
        }
    }
}

impl std::error::Error for MemError {}

/// The host side of the mapping, shared by every clone of a `GuestMemory`.
struct Region {
    host: NonNull<u8>,
    len: usize,
    phys_base: u64,
    /// True if we mapped the region (`new_owned`) and must unmap it.
    owned: bool,
}

impl Drop for Region {
    fn drop(&mut self) {
        if self.owned {
            // SAFETY: `host..host + len` was mapped by `mmap` in
            // `GuestMemory::new_owned` and is unmapped only here, once, when
            // the last clone is gone (the `Arc` guarantees no access follows).
            unsafe { libc::munmap(self.host.as_ptr().cast(), self.len) };
        }
    }
}

// SAFETY: `Region` is a pointer plus bounds. All access goes through
// `GuestMemory`'s methods, which only copy bytes with `ptr::copy` or use
// atomics, so using it from several threads is no different from the kernel
// and the device threads sharing that memory, which they do by design.
unsafe impl Send for Region {}
// SAFETY: as for `Send`: shared access never creates references into the
// region, only copies and atomic operations.
unsafe impl Sync for Region {}

/// The kernel's RAM (or a test buffer standing in for it), addressed by
/// guest-physical address. Cheap to clone.
#[derive(Clone)]
pub struct GuestMemory {
    region: Arc<Region>,
}

impl fmt::Debug for GuestMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuestMemory")
            .field("phys_base", &format_args!("{:#x}", self.region.phys_base))
            .field("len", &format_args!("{:#x}", self.region.len))
            .field("owned", &self.region.owned)
            .finish()
    }
}

impl GuestMemory {
    /// Maps `len` bytes of host memory at `host` to guest-physical
    /// addresses from `phys_base`. For the kernel's RAM, `host` is
    /// `memory_start` and `phys_base` is [`RAM_PHYS_BASE`].
    ///
    /// # Safety
    /// `host..host + len` must be mapped readable and writable for as long as
    /// this value or any clone of it exists (in particular, every device
    /// using it must be stopped before the kernel's RAM is unmapped at halt),
    /// and no Rust reference may point into it meanwhile (the kernel and raw
    /// pointers may).
    pub unsafe fn from_raw_parts(
        host: *mut u8,
        len: usize,
        phys_base: GuestAddress,
    ) -> Result<Self, MemError> {
        let host = NonNull::new(host).ok_or(MemError::InvalidRegion("null host address"))?;
        Self::check_layout(host, len, phys_base)?;
        Ok(GuestMemory {
            region: Arc::new(Region {
                host,
                len,
                phys_base: phys_base.0,
                owned: false,
            }),
        })
    }

    /// Maps a zeroed, page-aligned region of `len` bytes that lives as long
    /// as the last clone (for tests and for devices exercised without a
    /// kernel). Like the kernel's RAM it is an anonymous mapping whose pages
    /// are committed only when touched, so a large region is cheap.
    pub fn new_owned(len: usize, phys_base: GuestAddress) -> Result<Self, MemError> {
        if len == 0 {
            return Err(MemError::InvalidRegion("empty region"));
        }
        // SAFETY: an anonymous private mapping at no fixed address; no
        // existing memory is affected. The result is checked below.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(MemError::AllocFailed);
        }
        let host = NonNull::new(p.cast::<u8>()).ok_or(MemError::AllocFailed)?;
        let region = Region {
            host,
            len,
            phys_base: phys_base.0,
            owned: true,
        };
        // On error the region is dropped here and the mapping removed.
        Self::check_layout(host, len, phys_base)?;
        Ok(GuestMemory {
            region: Arc::new(region),
        })
    }

    fn check_layout(
        host: NonNull<u8>,
        len: usize,
        phys_base: GuestAddress,
    ) -> Result<(), MemError> {
        if len == 0 {
            return Err(MemError::InvalidRegion("empty region"));
        }
        if host.as_ptr() as usize & (REGION_ALIGN - 1) != 0 {
            return Err(MemError::InvalidRegion("host address not 8-byte aligned"));
        }
        if phys_base.0 & (REGION_ALIGN as u64 - 1) != 0 {
            return Err(MemError::InvalidRegion("guest base not 8-byte aligned"));
        }
        // `ptr::add` needs offsets within isize, and both ends of the
        // mapping must be representable, so no later sum can overflow.
        if len > isize::MAX as usize || (host.as_ptr() as usize).checked_add(len).is_none() {
            return Err(MemError::InvalidRegion("host range overflows"));
        }
        if phys_base.0.checked_add(len as u64).is_none() {
            return Err(MemError::InvalidRegion("guest range overflows"));
        }
        Ok(())
    }

    /// First guest-physical address of the region.
    pub fn phys_base(&self) -> GuestAddress {
        GuestAddress(self.region.phys_base)
    }

    /// Length of the region in bytes.
    pub fn len(&self) -> usize {
        self.region.len
    }

    /// Always false: a region is never empty.
    pub fn is_empty(&self) -> bool {
        self.region.len == 0
    }

    /// One past the last guest-physical address (cannot overflow: checked at
    /// construction).
    pub fn end(&self) -> GuestAddress {
        GuestAddress(self.region.phys_base + self.region.len as u64)
    }

    /// The guest-physical address of a host address inside the region, as
    /// the kernel's `__pa` computes it.
    pub fn guest_address_of(&self, host_addr: usize) -> Option<GuestAddress> {
        let start = self.region.host.as_ptr() as usize;
        let off = host_addr.checked_sub(start)?;
        (off < self.region.len).then(|| GuestAddress(self.region.phys_base + off as u64))
    }

    /// Offset into the region of `addr..addr + len`, if all of it is inside.
    /// A zero-length range may sit at the very end.
    fn offset(&self, addr: GuestAddress, len: u64) -> Result<usize, MemError> {
        let err = MemError::OutOfRange { addr: addr.0, len };
        let off = addr
            .0
            .checked_sub(self.region.phys_base)
            .ok_or(err.clone())?;
        let end = off.checked_add(len).ok_or(err.clone())?;
        if end > self.region.len as u64 {
            return Err(err);
        }
        // `off <= end <= len <= isize::MAX`, so it fits in usize.
        Ok(off as usize)
    }

    /// Checks that `addr..addr + len` lies inside guest memory.
    pub fn check_range(&self, addr: GuestAddress, len: u64) -> Result<(), MemError> {
        self.offset(addr, len).map(|_| ())
    }

    /// Copies `buf.len()` bytes from guest memory at `addr` into `buf`.
    pub fn read(&self, addr: GuestAddress, buf: &mut [u8]) -> Result<(), MemError> {
        let off = self.offset(addr, buf.len() as u64)?;
        // SAFETY: `off + buf.len() <= region.len` (checked by `offset`), and
        // the region is valid for reads while `self` exists (constructor
        // contract). `ptr::copy` tolerates overlap, and we never hold a
        // reference into the region, so the kernel writing concurrently can
        // only make the copied bytes stale, which callers must (and do)
        // validate after copying.
        unsafe {
            ptr::copy(
                self.region.host.as_ptr().add(off),
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
        Ok(())
    }

    /// Copies `buf` into guest memory at `addr`.
    pub fn write(&self, addr: GuestAddress, buf: &[u8]) -> Result<(), MemError> {
        let off = self.offset(addr, buf.len() as u64)?;
        // SAFETY: bounds as in `read`; the region is valid for writes while
        // `self` exists (constructor contract) and no reference into it
        // exists that this write could invalidate.
        unsafe { ptr::copy(buf.as_ptr(), self.region.host.as_ptr().add(off), buf.len()) };
        Ok(())
    }

    /// Reads `file` from byte `offset` straight into the guest ranges
    /// `ranges` (address, length), in order, as `preadv` does: no bounce
    /// copy. Every range is bounds-checked before any I/O. Returns the bytes
    /// read: less than the ranges hold only at the end of the file.
    pub fn read_file_at(
        &self,
        file: &File,
        offset: u64,
        ranges: &[(GuestAddress, u64)],
    ) -> Result<usize, FileIoError> {
        self.file_io(file, offset, ranges, Direction::FromFile)
    }

    /// Writes the guest ranges `ranges`, in order, to `file` from byte
    /// `offset`, as `pwritev` does (all of them, or an error).
    pub fn write_file_at(
        &self,
        file: &File,
        offset: u64,
        ranges: &[(GuestAddress, u64)],
    ) -> Result<usize, FileIoError> {
        self.file_io(file, offset, ranges, Direction::ToFile)
    }

    fn file_io(
        &self,
        file: &File,
        offset: u64,
        ranges: &[(GuestAddress, u64)],
        dir: Direction,
    ) -> Result<usize, FileIoError> {
        // Host pointers of every range, checked before the first call.
        let mut iov = Vec::with_capacity(ranges.len());
        let mut total = 0u64;
        for &(addr, len) in ranges {
            let off = self.offset(addr, len).map_err(FileIoError::Memory)?;
            total = total.checked_add(len).ok_or(FileIoError::TooLong)?;
            if len > 0 {
                iov.push(libc::iovec {
                    // SAFETY: `off + len <= region.len` (checked by
                    // `offset`), so the pointer stays inside the region.
                    iov_base: unsafe { self.region.host.as_ptr().add(off) }.cast(),
                    iov_len: len as usize, // <= region.len: fits
                });
            }
        }
        if i64::try_from(offset)
            .ok()
            .and_then(|o| o.checked_add(i64::try_from(total).ok()?))
            .is_none()
        {
            return Err(FileIoError::TooLong);
        }
        let fd = file.as_raw_fd();
        let mut done = 0usize;
        let mut first = 0usize;
        while first < iov.len() {
            let batch = &iov[first..iov.len().min(first + MAX_IOV)];
            let pos = (offset + done as u64) as libc::off_t; // checked above
                                                             // SAFETY: every iovec points into the region (checked above),
                                                             // which is valid for reads and writes while `self` exists
                                                             // (constructor contract). The host kernel copies bytes in or out
                                                             // as `ptr::copy` would: no Rust reference into the region exists,
                                                             // and the kernel touching it concurrently only makes the data
                                                             // stale, never unsound. `batch` outlives the call.
            let n = unsafe {
                match dir {
                    Direction::FromFile => {
                        libc::preadv(fd, batch.as_ptr(), batch.len() as i32, pos)
                    }
                    Direction::ToFile => libc::pwritev(fd, batch.as_ptr(), batch.len() as i32, pos),
                }
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(FileIoError::Io(e));
            }
            if n == 0 {
                return match dir {
                    Direction::FromFile => Ok(done),
                    Direction::ToFile => Err(FileIoError::Io(io::ErrorKind::WriteZero.into())),
                };
            }
            let mut n = n as usize;
            done += n;
            // Drop the iovecs done, shorten a partly done one.
            while n > 0 && first < iov.len() {
                let v = &mut iov[first];
                if n >= v.iov_len {
                    n -= v.iov_len;
                    first += 1;
                } else {
                    // SAFETY: `n < iov_len`: still inside the same range.
                    v.iov_base = unsafe { v.iov_base.cast::<u8>().add(n) }.cast();
                    v.iov_len -= n;
                    n = 0;
                }
            }
        }
        Ok(done)
    }

    /// Reads a little-endian `u16`.
    pub fn read_u16(&self, addr: GuestAddress) -> Result<u16, MemError> {
        let mut b = [0; 2];
        self.read(addr, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }

    /// Reads a little-endian `u32`.
    pub fn read_u32(&self, addr: GuestAddress) -> Result<u32, MemError> {
        let mut b = [0; 4];
        self.read(addr, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// Reads a little-endian `u64`.
    pub fn read_u64(&self, addr: GuestAddress) -> Result<u64, MemError> {
        let mut b = [0; 8];
        self.read(addr, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Writes a little-endian `u16`.
    pub fn write_u16(&self, addr: GuestAddress, val: u16) -> Result<(), MemError> {
        self.write(addr, &val.to_le_bytes())
    }

    /// Writes a little-endian `u32`.
    pub fn write_u32(&self, addr: GuestAddress, val: u32) -> Result<(), MemError> {
        self.write(addr, &val.to_le_bytes())
    }

    /// Writes a little-endian `u64`.
    pub fn write_u64(&self, addr: GuestAddress, val: u64) -> Result<(), MemError> {
        self.write(addr, &val.to_le_bytes())
    }

    /// The host address of a 2-byte aligned `u16` in guest memory, for the
    /// atomic accessors.
    fn atomic_u16_ptr(&self, addr: GuestAddress) -> Result<*mut u16, MemError> {
        let off = self.offset(addr, 2)?;
        // The host base is 8-aligned (constructor), so host alignment equals
        // the alignment of the offset.
        if off % 2 != 0 {
            return Err(MemError::Misaligned {
                addr: addr.0,
                align: 2,
            });
        }
        // SAFETY: `off + 2 <= region.len`, so the result stays inside the
        // region's allocation.
        Ok(unsafe { self.region.host.as_ptr().add(off) }.cast::<u16>())
    }

    /// Atomically loads a little-endian `u16` (a ring index shared with the
    /// kernel) with the given ordering.
    pub fn load_u16(&self, addr: GuestAddress, order: Ordering) -> Result<u16, MemError> {
        let p = self.atomic_u16_ptr(addr)?;
        // SAFETY: `p` is in bounds, 2-byte aligned and valid for the
        // region's lifetime, which outlives this call. The kernel accesses
        // ring indices with single aligned 16-bit loads and stores
        // (READ_ONCE/WRITE_ONCE), so treating the location as an atomic
        // matches how both sides use it.
        let v = unsafe { AtomicU16::from_ptr(p) }.load(order);
        Ok(u16::from_le(v))
    }

    /// Atomically stores a little-endian `u16` with the given ordering.
    pub fn store_u16(&self, addr: GuestAddress, val: u16, order: Ordering) -> Result<(), MemError> {
        let p = self.atomic_u16_ptr(addr)?;
        // SAFETY: as in `load_u16`.
        unsafe { AtomicU16::from_ptr(p) }.store(val.to_le(), order);
        Ok(())
    }
}

/// A guest memory region with guard zones on both sides, to prove in tests
/// that no access ever lands outside the region.
#[cfg(test)]
pub(crate) struct GuardedMemory {
    mem: Option<GuestMemory>,
    raw: *mut [u64],
    guard_words: usize,
}

#[cfg(test)]
impl GuardedMemory {
    const PATTERN: u64 = 0xA5A5_5A5A_DEAD_BEEF;

    /// `len` must be a multiple of 8.
    pub(crate) fn new(len: usize, phys_base: GuestAddress) -> Self {
        assert_eq!(len % 8, 0);
        let guard_words = 512;
        let words = len / 8 + 2 * guard_words;
        let raw = Box::into_raw(vec![Self::PATTERN; words].into_boxed_slice());
        let base = raw.cast::<u64>();
        // SAFETY: `guard_words < words`, so the pointer stays inside the
        // allocation.
        let inner = unsafe { base.add(guard_words) }.cast::<u8>();
        // SAFETY: `inner..inner + len` is inside the leaked box, which lives
        // until `Drop` below, after `mem` is dropped; no reference into it
        // exists (we only keep the raw pointer).
        let mem = unsafe { GuestMemory::from_raw_parts(inner, len, phys_base) }.unwrap();
        // Guest memory starts zeroed, like the kernel's freshly mapped RAM.
        mem.write(phys_base, &vec![0; len]).unwrap();
        GuardedMemory {
            mem: Some(mem),
            raw,
            guard_words,
        }
    }

    pub(crate) fn mem(&self) -> &GuestMemory {
        self.mem.as_ref().unwrap()
    }

    /// True if no byte of either guard zone was changed.
    pub(crate) fn guards_intact(&self) -> bool {
        let words = self.raw.len();
        let base = self.raw.cast::<u64>();
        (0..self.guard_words)
            .chain(words - self.guard_words..words)
            // SAFETY: `i < words`, inside the live allocation; read through
            // a raw pointer, no reference into the guest region is formed.
            .all(|i| unsafe { base.add(i).read() } == Self::PATTERN)
    }
}

#[cfg(test)]
impl Drop for GuardedMemory {
    fn drop(&mut self) {
        // Clones must be gone too: tests drop their devices first.
        self.mem = None;
        // SAFETY: `raw` came from `Box::into_raw` in `new` and is freed once.
        drop(unsafe { Box::from_raw(self.raw) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: GuestAddress = GuestAddress(RAM_PHYS_BASE);

    fn scratch_file(content: &[u8]) -> (std::path::PathBuf, File) {
        use std::io::Write as _;
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "lkl-mem-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&p)
            .unwrap();
        f.write_all(content).unwrap();
        (p, f)
    }

    #[test]
    fn file_io_straight_to_and_from_guest_ranges() {
        let m = GuestMemory::new_owned(1 << 20, BASE).unwrap();
        let content: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
        let (path, f) = scratch_file(&content);
        // 1500 ranges of 100 bytes, every other 100 bytes: more than one
        // preadv batch (IOV_MAX), out of order in guest memory.
        let ranges: Vec<(GuestAddress, u64)> = (0..1500u64)
            .map(|i| (GuestAddress(RAM_PHYS_BASE + (1499 - i) * 200), 100))
            .collect();
        assert_eq!(m.read_file_at(&f, 1000, &ranges).unwrap(), 150_000);
        for (i, &(a, _)) in ranges.iter().enumerate() {
            let mut b = [0u8; 100];
            m.read(a, &mut b).unwrap();
            assert_eq!(b[..], content[1000 + i * 100..1000 + i * 100 + 100]);
        }
        // Back out to another place in the file.
        assert_eq!(m.write_file_at(&f, 300_000, &ranges).unwrap(), 150_000);
        let now = std::fs::read(&path).unwrap();
        assert_eq!(now[300_000..450_000], content[1000..151_000]);
        // At the end of the file: a short count, not an error.
        let tail = [(BASE, 4096u64)];
        assert_eq!(m.read_file_at(&f, 600_000 - 10, &tail).unwrap(), 10);
        // A range outside guest memory: refused before any I/O.
        let bad = [
            (BASE, 10u64),
            (GuestAddress(RAM_PHYS_BASE + (1 << 20) - 4), 8),
        ];
        assert!(matches!(
            m.write_file_at(&f, 0, &bad),
            Err(FileIoError::Memory(_))
        ));
        assert_eq!(std::fs::read(&path).unwrap()[..10], content[..10]);
        // Offsets past i64: refused.
        assert!(matches!(
            m.read_file_at(&f, u64::MAX - 5, &tail),
            Err(FileIoError::TooLong)
        ));
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn bounds_are_checked() {
        let m = GuestMemory::new_owned(4096, BASE).unwrap();
        assert_eq!(m.end(), GuestAddress(RAM_PHYS_BASE + 4096));
        let mut b = [0u8; 8];
        assert!(m.read(BASE, &mut b).is_ok());
        assert!(m.read(GuestAddress(RAM_PHYS_BASE + 4088), &mut b).is_ok());
        assert_eq!(
            m.read(GuestAddress(RAM_PHYS_BASE + 4089), &mut b),
            Err(MemError::OutOfRange {
                addr: RAM_PHYS_BASE + 4089,
                len: 8
            })
        );
        // Below the base, at zero, and near u64::MAX (overflow) all fail.
        assert!(m.read(GuestAddress(RAM_PHYS_BASE - 1), &mut b).is_err());
        assert!(m.read(GuestAddress(0), &mut b).is_err());
        assert!(m.read(GuestAddress(u64::MAX - 3), &mut b).is_err());
        assert!(m.check_range(BASE, u64::MAX).is_err());
        // A zero-length range may sit at the end, not past it.
        assert!(m.check_range(m.end(), 0).is_ok());
        assert!(m.check_range(GuestAddress(m.end().0 + 1), 0).is_err());
    }

    #[test]
    fn round_trips_values() {
        let m = GuestMemory::new_owned(4096, BASE).unwrap();
        let a = GuestAddress(RAM_PHYS_BASE + 16);
        m.write_u64(a, 0x0102_0304_0506_0708).unwrap();
        assert_eq!(m.read_u64(a).unwrap(), 0x0102_0304_0506_0708);
        assert_eq!(m.read_u32(a).unwrap(), 0x0506_0708);
        assert_eq!(m.read_u16(a).unwrap(), 0x0708);
        let mut b = [0; 2];
        m.read(a, &mut b).unwrap();
        assert_eq!(b, [0x08, 0x07], "little-endian in memory");
        m.store_u16(a, 0xbeef, Ordering::Release).unwrap();
        assert_eq!(m.load_u16(a, Ordering::Acquire).unwrap(), 0xbeef);
        assert_eq!(
            m.load_u16(GuestAddress(RAM_PHYS_BASE + 17), Ordering::Acquire),
            Err(MemError::Misaligned {
                addr: RAM_PHYS_BASE + 17,
                align: 2
            })
        );
        assert!(m.store_u16(m.end(), 1, Ordering::Relaxed).is_err());
    }

    #[test]
    fn rejects_bad_regions() {
        assert!(GuestMemory::new_owned(0, BASE).is_err());
        assert!(GuestMemory::new_owned(4096, GuestAddress(u64::MAX - 100)).is_err());
        assert!(GuestMemory::new_owned(4096, GuestAddress(3)).is_err());
        let mut buf = vec![0u64; 4];
        // SAFETY: the buffer outlives `m`; this call fails before mapping.
        let bad = unsafe {
            GuestMemory::from_raw_parts(buf.as_mut_ptr().cast::<u8>().wrapping_add(1), 8, BASE)
        };
        assert!(bad.is_err());
        // SAFETY: null is rejected before anything else.
        assert!(unsafe { GuestMemory::from_raw_parts(ptr::null_mut(), 8, BASE) }.is_err());
    }

    #[test]
    fn translates_host_addresses() {
        let g = GuardedMemory::new(4096, BASE);
        let m = g.mem();
        let host = m.region.host.as_ptr() as usize;
        assert_eq!(m.guest_address_of(host), Some(BASE));
        assert_eq!(
            m.guest_address_of(host + 4095),
            Some(GuestAddress(RAM_PHYS_BASE + 4095))
        );
        assert_eq!(m.guest_address_of(host + 4096), None);
        assert_eq!(m.guest_address_of(host - 1), None);
    }

    #[test]
    fn guard_zones_stay_intact() {
        let g = GuardedMemory::new(4096, BASE);
        let m = g.mem().clone();
        m.write(BASE, &[0xff; 4096]).unwrap();
        assert!(m
            .write(GuestAddress(RAM_PHYS_BASE + 4090), &[0xff; 8])
            .is_err());
        assert!(m
            .write(GuestAddress(RAM_PHYS_BASE - 8), &[0xff; 8])
            .is_err());
        drop(m);
        assert!(g.guards_intact());
    }
}
