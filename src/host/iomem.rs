//! Device registers. A device model registers an MMIO region here; the
//! region gets a unique host address range (reserved, never mapped
//! readable) that the kernel is told is the device's base. The kernel's
//! register accesses arrive through the `iomem_access` host op, with the
//! CPU lock held, and are dispatched to the device by address.

use std::ffi::{c_int, c_void};
use std::sync::{Arc, RwLock};

/// What a device exposes to the kernel at its MMIO base. Calls come with
/// the kernel's CPU lock held: they must not block or call into the kernel
/// (raising an IRQ with `lkl_trigger_irq` is fine).
pub trait MmioDevice: Send + Sync {
    /// Reads `data.len()` (1, 2, 4 or 8) bytes of registers at `offset`.
    fn read(&self, offset: u64, data: &mut [u8]);
    /// Writes `data.len()` (1, 2, 4 or 8) bytes of registers at `offset`.
    fn write(&self, offset: u64, data: &[u8]);
    /// The kernel halted and is about to free its RAM: stop every access
    /// to it (join workers). Called once, with the kernel frozen.
    fn shutdown(&self) {}
}

struct Region {
    base: usize,
    size: usize,
    device: Arc<dyn MmioDevice>,
}

static REGIONS: RwLock<Vec<Region>> = RwLock::new(Vec::new());

/// A registered region; unregisters (and frees its address range) on drop.
pub struct MmioRegion {
    base: usize,
    reserved: usize,
}

impl std::fmt::Debug for MmioRegion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MmioRegion({:#x})", self.base)
    }
}

impl MmioRegion {
    /// The host address the kernel uses as the device's base.
    pub fn base(&self) -> u64 {
        self.base as u64
    }
}

/// Registers `device` with `size` bytes of registers.
pub fn register(device: Arc<dyn MmioDevice>, size: usize) -> std::io::Result<MmioRegion> {
    let page = 4096;
    let reserved = size.max(1).div_ceil(page) * page;
    // SAFETY: reserves address space only (PROT_NONE); nothing reads it.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            reserved,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    let base = p as usize;
    REGIONS
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .push(Region { base, size, device });
    Ok(MmioRegion { base, reserved })
}

impl Drop for MmioRegion {
    fn drop(&mut self) {
        REGIONS
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|r| r.base != self.base);
        // SAFETY: unmaps the reservation made in `register`.
        unsafe { libc::munmap(self.base as *mut c_void, self.reserved) };
    }
}

/// Stops every registered device (see [`MmioDevice::shutdown`]).
pub(crate) fn shutdown_all() {
    let devices: Vec<Arc<dyn MmioDevice>> = REGIONS
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|r| r.device.clone())
        .collect();
    for d in devices {
        d.shutdown();
    }
}

/// The `iomem_access` host op.
///
/// # Safety
/// `val` points to `size` bytes the caller owns.
pub(super) unsafe extern "C" fn iomem_access(
    addr: *const c_void,
    val: *mut c_void,
    size: c_int,
    write: c_int,
) -> c_int {
    let addr = addr as usize;
    let Ok(len) = usize::try_from(size) else {
        return -libc::EINVAL;
    };
    if !matches!(len, 1 | 2 | 4 | 8) || val.is_null() {
        return -libc::EINVAL;
    }
    let regions = REGIONS.read().unwrap_or_else(|e| e.into_inner());
    let Some(r) = regions
        .iter()
        .find(|r| addr >= r.base && addr + len <= r.base + r.size)
    else {
        return -libc::EFAULT;
    };
    let offset = (addr - r.base) as u64;
    if write != 0 {
        // SAFETY: see the function's contract.
        let data = unsafe { std::slice::from_raw_parts(val.cast::<u8>(), len) };
        r.device.write(offset, data);
    } else {
        // SAFETY: see the function's contract.
        let data = unsafe { std::slice::from_raw_parts_mut(val.cast::<u8>(), len) };
        r.device.read(offset, data);
    }
    0
}
