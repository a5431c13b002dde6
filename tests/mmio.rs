//! Device registers reach host code: a fake virtio-mmio device added after
//! boot (lkl's hot-add call) sees the kernel probe its registers.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lkl::host::iomem::{self, MmioDevice};
use lkl::syscall as sys;
use testkit::{boot, in_child};

/// Answers like a virtio-mmio v2 device with device id 0 ("no device"),
/// which the driver probes and then declines.
struct Placeholder {
    reads: AtomicU32,
}

impl MmioDevice for Placeholder {
    fn read(&self, offset: u64, data: &mut [u8]) {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let v: u32 = match offset {
            0x000 => 0x7472_6976, // "virt"
            0x004 => 2,
            0x008 => 0,
            0x00c => 0x554d_4551,
            _ => 0,
        };
        let bytes = v.to_le_bytes();
        let n = data.len().min(4);
        data[..n].copy_from_slice(&bytes[..n]);
    }
    fn write(&self, _offset: u64, _data: &[u8]) {}
}

#[test]
fn hot_added_device_is_probed_through_host_registers() {
    in_child(
        "hot_added_device_is_probed_through_host_registers",
        Duration::from_secs(60),
        || {
            let (kernel, console) = boot(32 << 20);
            let dev = Arc::new(Placeholder {
                reads: AtomicU32::new(0),
            });
            let region = iomem::register(dev.clone(), 0x200).unwrap();
            // SAFETY: lkl_get_free_irq only touches an atomic bitmap.
            let irq = unsafe { lkl::sys::lkl_get_free_irq(c"test".as_ptr()) };
            assert!(irq > 0);
            let id = sys::virtio_mmio_device_add(region.base(), 0x200, irq as u32).unwrap();
            assert!(id >= 0);
            assert!(
                dev.reads.load(Ordering::SeqCst) >= 3,
                "the driver read magic, version and device id"
            );
            assert_eq!(
                sys::virtio_mmio_device_add(region.base(), 0, irq as u32),
                Err(lkl::Errno::EINVAL)
            );
            kernel.halt().unwrap();
            drop(region);
            let _ = console;
        },
    );
}
