//! Attaching virtio devices to the kernel: a device model gets an IRQ line,
//! an MMIO region the kernel reaches through `iomem_access`, and the
//! kernel's RAM as guest memory; the kernel learns of it from its command
//! line (added before boot) or through lkl's hot-add call (after boot).

use std::ffi::c_int;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::host::iomem::{self, MmioDevice, MmioRegion};
use crate::host::kernel_ram;
use crate::kernel::{self, Kernel};
use crate::sys;
use crate::syscall::{self, Errno};
use crate::virtio::{
    GuestAddress, GuestMemory, MemoryProvider, MmioTransport, VirtioDevice, RAM_PHYS_BASE,
};

/// Why a device could not be attached.
#[derive(Debug)]
pub enum DeviceError {
    /// Every IRQ line is taken.
    NoIrq,
    /// No address range for the registers.
    Region(std::io::Error),
    /// The kernel refused the hot-added device.
    HotAdd(Errno),
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceError::NoIrq => f.write_str("no free IRQ line for the device"),
            DeviceError::Region(e) => write!(f, "cannot reserve the device's register range: {e}"),
            DeviceError::HotAdd(e) => write!(f, "the kernel refused the device: {e}"),
        }
    }
}

impl std::error::Error for DeviceError {}

/// The kernel's RAM as guest memory, once the kernel allocated it.
fn kernel_memory() -> Option<GuestMemory> {
    let (start, len) = kernel_ram()?;
    // SAFETY: the region stays mapped until halt, and host::mem's page_free
    // shuts every device down before it unmaps the region.
    unsafe { GuestMemory::from_raw_parts(start as *mut u8, len, GuestAddress(RAM_PHYS_BASE)) }.ok()
}

/// The transport behind its lock, as the host MMIO registry sees it.
struct Registers(Mutex<MmioTransport>);

impl Registers {
    fn lock(&self) -> MutexGuard<'_, MmioTransport> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl MmioDevice for Registers {
    fn read(&self, offset: u64, data: &mut [u8]) {
        // A bad access reads as zeros; the transport counts it.
        if self.lock().read(offset, data).is_err() {
            data.fill(0);
        }
    }

    fn write(&self, offset: u64, data: &[u8]) {
        let _ = self.lock().write(offset, data);
    }

    fn shutdown(&self) {
        self.lock().shutdown();
    }
}

/// A device attached to the kernel. Keep it for as long as the kernel may
/// use the device; dropping it withdraws the registers.
pub struct AttachedDevice {
    registers: Arc<Registers>,
    region: MmioRegion,
    irq: c_int,
    platform_id: Option<i32>,
}

impl fmt::Debug for AttachedDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AttachedDevice")
            .field("base", &self.region.base())
            .field("irq", &self.irq)
            .finish()
    }
}

impl AttachedDevice {
    /// The IRQ line the device raises.
    pub fn irq(&self) -> i32 {
        self.irq
    }

    /// The platform device id (`virtio-mmio.<id>.auto`) of a hot-added device.
    pub fn platform_id(&self) -> Option<i32> {
        self.platform_id
    }

    /// Runs `f` on the transport (status, features, metrics).
    pub fn with_transport<R>(&self, f: impl FnOnce(&MmioTransport) -> R) -> R {
        f(&self.registers.lock())
    }
}

/// Attaches `device`: before boot it joins the boot command line, after
/// boot it is hot-added.
pub fn attach(device: Box<dyn VirtioDevice>) -> Result<AttachedDevice, DeviceError> {
    // SAFETY: lkl_get_free_irq only touches an atomic bitmap.
    let irq = unsafe { sys::lkl_get_free_irq(c"virtio".as_ptr()) };
    if irq <= 0 {
        return Err(DeviceError::NoIrq);
    }
    let release_irq = || {
        // SAFETY: gives back the line taken above.
        unsafe { sys::lkl_put_irq(irq, c"virtio".as_ptr()) }
    };
    let raise: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
        // SAFETY: lkl_trigger_irq may be called from any thread, also from
        // inside a register access.
        unsafe { sys::lkl_trigger_irq(irq) };
    });
    let provider: MemoryProvider = Arc::new(kernel_memory);
    let transport = MmioTransport::with_memory_provider(provider, device, raise);
    let len = transport.mmio_len();
    let registers = Arc::new(Registers(Mutex::new(transport)));
    let region = match iomem::register(registers.clone(), len as usize) {
        Ok(r) => r,
        Err(e) => {
            release_irq();
            return Err(DeviceError::Region(e));
        }
    };
    let mut platform_id = None;
    if Kernel::is_running() {
        match syscall::virtio_mmio_device_add(region.base(), len, irq as u32) {
            Ok(id) => platform_id = Some(id),
            Err(e) => {
                drop(region);
                release_irq();
                return Err(DeviceError::HotAdd(e));
            }
        }
    } else {
        let arg = registers
            .lock()
            .cmdline_arg(region.base() as usize, irq as u32);
        kernel::add_boot_param(arg);
    }
    Ok(AttachedDevice {
        registers,
        region,
        irq,
        platform_id,
    })
}
