//! Register offsets (virtio 1.2, 4.2.2, table "MMIO Device Register
//! Layout").

/// R: `0x74726976`.
pub const MAGIC_VALUE: u64 = 0x000;
/// R: 2.
pub const VERSION: u64 = 0x004;
/// R: device type.
pub const DEVICE_ID: u64 = 0x008;
/// R: vendor.
pub const VENDOR_ID: u64 = 0x00c;
/// R: 32 feature bits selected by `DEVICE_FEATURES_SEL`.
pub const DEVICE_FEATURES: u64 = 0x010;
/// W.
pub const DEVICE_FEATURES_SEL: u64 = 0x014;
/// W: 32 feature bits selected by `DRIVER_FEATURES_SEL`.
pub const DRIVER_FEATURES: u64 = 0x020;
/// W.
pub const DRIVER_FEATURES_SEL: u64 = 0x024;
/// W: selects the queue the queue registers apply to.
pub const QUEUE_SEL: u64 = 0x030;
/// R.
pub const QUEUE_NUM_MAX: u64 = 0x034;
/// W.
pub const QUEUE_NUM: u64 = 0x038;
/// RW.
pub const QUEUE_READY: u64 = 0x044;
/// W: queue index.
pub const QUEUE_NOTIFY: u64 = 0x050;
/// R.
pub const INTERRUPT_STATUS: u64 = 0x060;
/// W.
pub const INTERRUPT_ACK: u64 = 0x064;
/// RW.
pub const STATUS: u64 = 0x070;
/// W.
pub const QUEUE_DESC_LOW: u64 = 0x080;
/// W.
pub const QUEUE_DESC_HIGH: u64 = 0x084;
/// W: the available ring.
pub const QUEUE_DRIVER_LOW: u64 = 0x090;
/// W.
pub const QUEUE_DRIVER_HIGH: u64 = 0x094;
/// W: the used ring.
pub const QUEUE_DEVICE_LOW: u64 = 0x0a0;
/// W.
pub const QUEUE_DEVICE_HIGH: u64 = 0x0a4;
/// W: shared memory region select.
pub const SHM_SEL: u64 = 0x0ac;
/// R.
pub const SHM_LEN_LOW: u64 = 0x0b0;
/// R.
pub const SHM_LEN_HIGH: u64 = 0x0b4;
/// R.
pub const SHM_BASE_LOW: u64 = 0x0b8;
/// R.
pub const SHM_BASE_HIGH: u64 = 0x0bc;
/// RW (only with `VIRTIO_F_RING_RESET`, which we do not offer).
pub const QUEUE_RESET: u64 = 0x0c0;
/// R.
pub const CONFIG_GENERATION: u64 = 0x0fc;
/// Start of the device-specific configuration space.
pub const CONFIG: u64 = 0x100;
