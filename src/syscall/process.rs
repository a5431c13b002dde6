//! Identity, time and other per-process calls.

use std::time::Duration;

use super::abi::{Timespec, UtsName};
use super::{nr, ptr, ptr_mut, raw, Errno};

pub fn getpid() -> Result<i32, Errno> {
    // SAFETY: no arguments.
    unsafe { raw(nr::GETPID, [0; 6]) }.map(|v| v as i32)
}

pub fn gettid() -> Result<i32, Errno> {
    // SAFETY: no arguments.
    unsafe { raw(nr::GETTID, [0; 6]) }.map(|v| v as i32)
}

pub fn uname() -> Result<UtsName, Errno> {
    let mut u = UtsName::default();
    // SAFETY: a struct new_utsname the kernel fills.
    unsafe { raw(nr::UNAME, [ptr_mut(&mut u), 0, 0, 0, 0, 0]) }?;
    Ok(u)
}

/// Sleeps in the kernel (a task sleep driven by the kernel's timers).
pub fn nanosleep(d: Duration) -> Result<(), Errno> {
    let ts = Timespec {
        tv_sec: d.as_secs() as i64,
        tv_nsec: i64::from(d.subsec_nanos()),
    };
    // SAFETY: a timespec to read; no remainder pointer.
    unsafe { raw(nr::NANOSLEEP, [ptr(&ts), 0, 0, 0, 0, 0]) }.map(drop)
}

pub fn sched_yield() -> Result<(), Errno> {
    // SAFETY: no arguments.
    unsafe { raw(nr::SCHED_YIELD, [0; 6]) }.map(drop)
}

/// The kernel's CLOCK_MONOTONIC.
pub fn clock_monotonic() -> Result<Timespec, Errno> {
    let mut ts = Timespec::default();
    // SAFETY: a timespec the kernel fills.
    unsafe { raw(nr::CLOCK_GETTIME, [1, ptr_mut(&mut ts), 0, 0, 0, 0]) }?;
    Ok(ts)
}

/// Adds a virtio-mmio device after boot: its registers at host address
/// `base` (an [`crate::host::iomem`] region) and interrupt `irq`. Returns
/// the platform device id (`virtio-mmio.<id>.auto`).
pub fn virtio_mmio_device_add(base: u64, size: u64, irq: u32) -> Result<i32, Errno> {
    // SAFETY: no pointer arguments (the kernel only records the address).
    unsafe {
        raw(
            nr::VIRTIO_MMIO_DEVICE_ADD,
            [base as i64, size as i64, irq as i64, 0, 0, 0],
        )
    }
    .map(|v| v as i32)
}

/// `RLIMIT_NOFILE`: the most descriptors a task may hold open.
pub const RLIMIT_NOFILE: u32 = 7;

/// Sets a resource limit of the calling process (`prlimit64` on itself):
/// `(soft, hard)`.
pub fn setrlimit(resource: u32, soft: u64, hard: u64) -> Result<(), Errno> {
    let lim = [soft, hard];
    // SAFETY: a struct rlimit64 (two u64) to read; no old-limit pointer.
    unsafe {
        raw(
            nr::PRLIMIT64,
            [0, resource as i64, ptr(lim.as_ptr()), 0, 0, 0],
        )
    }
    .map(drop)
}
