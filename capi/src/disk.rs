//! Disks: `lkl_disk_add`, `lkl_disk_remove`, `lkl_get_virtio_blkdev`,
//! `lkl_mount_dev`, `lkl_umount_dev`, over [`lkl::disk`].

use std::ffi::{c_char, c_int, c_long, c_uint, c_void};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use lkl::disk::{self as kdisk, Disk, DiskError};
use lkl::Errno;

use crate::{c_str, entry, Failure};

/// `struct lkl_disk` (LKL's layout: a device pointer, the fd/handle union,
/// the block operations).
#[repr(C)]
pub struct LklDisk {
    /// Set by `lkl_disk_add`: the disk's id + 1 (never NULL once added).
    pub dev: *mut c_void,
    /// The image's descriptor (LKL's union of `fd` and a Windows handle).
    pub file: FdOrHandle,
    /// Custom block operations: must be NULL (the library's own are used).
    pub ops: *mut c_void,
}

/// `union { int fd; void *handle; }`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union FdOrHandle {
    /// The descriptor (the only member used on Linux).
    pub fd: c_int,
    /// LKL's Windows handle (unused).
    pub handle: *mut c_void,
}

/// The disks added, by id; None once removed.
static DISKS: Mutex<Vec<Option<Disk>>> = Mutex::new(Vec::new());

fn disks() -> MutexGuard<'static, Vec<Option<Disk>>> {
    DISKS.lock().unwrap_or_else(|e| e.into_inner())
}

/// The errno that best says why a disk operation failed.
pub(crate) fn errno_of(e: &DiskError) -> Errno {
    match e {
        DiskError::Syscall { errno, .. } | DiskError::WrongFsType { errno, .. } => *errno,
        DiskError::NotRunning => Errno::ENODEV,
        DiskError::NotFound { .. } => Errno::ENXIO,
        DiskError::NoPartition { .. } => Errno::ENOENT,
        DiskError::UnknownFsType(_) => Errno::ENODEV,
        DiskError::BadMountOptions { .. } => Errno::EINVAL,
        DiskError::Image { .. } | DiskError::HostSync { .. } => Errno::EIO,
        DiskError::Attach(_) => Errno::EBUSY,
    }
}

fn failure(e: DiskError) -> Failure {
    Failure::new(errno_of(&e), e)
}

/// Runs `f` on disk `id`.
fn with_disk<T>(id: c_int, f: impl FnOnce(&Disk) -> Result<T, Failure>) -> Result<T, Failure> {
    let list = disks();
    let disk = usize::try_from(id)
        .ok()
        .and_then(|i| list.get(i))
        .and_then(Option::as_ref)
        .ok_or_else(|| Failure::new(Errno::EINVAL, format!("no disk with id {id}")))?;
    f(disk)
}

/// Partition `part` as the crate names it: 0 is the whole disk (LKL's).
fn partition(part: c_uint) -> Option<u32> {
    (part != 0).then_some(part)
}

/// Adds the image open at `disk->fd` as a virtio-blk disk (before or after
/// boot); returns its id (0 is valid) or a negative errno. The descriptor
/// is reopened (through /proc/self/fd), read-only if it was opened so;
/// the caller may close it afterwards.
///
/// # Safety
/// `disk` is NULL or points to a `struct lkl_disk`.
#[no_mangle]
pub unsafe extern "C" fn lkl_disk_add(disk: *mut LklDisk) -> c_int {
    entry("lkl_disk_add", || {
        if disk.is_null() {
            return Err(Failure::new(Errno::EINVAL, "disk is NULL"));
        }
        // SAFETY: non-NULL, and the caller passes a struct lkl_disk.
        let d = unsafe { &mut *disk };
        if !d.ops.is_null() {
            return Err(Failure::new(
                Errno::EINVAL,
                "custom block operations (disk.ops) are not supported: leave it NULL",
            ));
        }
        // SAFETY: `fd` is the member C sets; any int is valid.
        let fd = unsafe { d.file.fd };
        if fd < 0 {
            return Err(Failure::new(Errno::EBADF, "disk.fd is not a descriptor"));
        }
        // SAFETY: F_GETFL only reads the descriptor's flags.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if flags < 0 {
            return Err(Failure::new(
                Errno::EBADF,
                format!("disk.fd {fd} is not open"),
            ));
        }
        let read_only = flags & libc::O_ACCMODE == libc::O_RDONLY;
        let added = Disk::attach(format!("/proc/self/fd/{fd}"), read_only).map_err(failure)?;
        let mut list = disks();
        list.push(Some(added));
        let id = list.len() - 1;
        d.dev = (id + 1) as *mut c_void;
        c_int::try_from(id).map_err(|_| Failure::new(Errno::ENOSPC, "too many disks"))
    })
}

/// Forgets a disk added by `lkl_disk_add`: unmounts what was mounted from
/// it and flushes its image. The kernel keeps the device until halt (a
/// virtio-mmio device cannot be unplugged), so its id is not reused.
#[no_mangle]
pub extern "C" fn lkl_disk_remove(disk: LklDisk) -> c_int {
    entry("lkl_disk_remove", || {
        let id = (disk.dev as usize).checked_sub(1).ok_or_else(|| {
            Failure::new(Errno::EINVAL, "disk.dev is not set: the disk was not added")
        })?;
        let taken = disks().get_mut(id).and_then(Option::take);
        let taken = taken.ok_or_else(|| Failure::new(Errno::EINVAL, "disk already removed"))?;
        taken.detach().map_err(failure)?;
        Ok(0)
    })
}

/// The kernel's device number of the disk (partition `part`, 0 for the
/// whole disk), as `new_encode_dev` encodes it.
fn devid(id: c_int, part: c_uint) -> Result<u32, Failure> {
    let node = with_disk(id, |d| d.block_device(partition(part)).map_err(failure))?;
    let st = lkl::syscall::stat(&node).map_err(|e| Failure::new(e, format!("stat {node}")))?;
    u32::try_from(st.st_rdev).map_err(|_| Failure::new(Errno::ERANGE, "device number"))
}

/// Stores the device number of disk `disk_id` (partition `part`, 0 for
/// the whole disk) at `pdevid`; 0 or a negative errno.
///
/// # Safety
/// `pdevid` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lkl_get_virtio_blkdev(
    disk_id: c_int,
    part: c_uint,
    pdevid: *mut u32,
) -> c_int {
    entry("lkl_get_virtio_blkdev", || {
        if pdevid.is_null() {
            return Err(Failure::new(Errno::EINVAL, "pdevid is NULL"));
        }
        let dev = devid(disk_id, part)?;
        // SAFETY: non-NULL and writable (the caller's promise).
        unsafe { *pdevid = dev };
        Ok(0)
    })
}

/// `MS_*` flags as the mount-option words [`lkl::disk::parse_options`]
/// reads back.
const FLAG_WORDS: &[(u64, &str)] = &[
    (1, "ro"),
    (2, "nosuid"),
    (4, "nodev"),
    (8, "noexec"),
    (16, "sync"),
    (128, "dirsync"),
    (1024, "noatime"),
    (2048, "nodiratime"),
    (1 << 21, "relatime"),
    (1 << 24, "strictatime"),
    (1 << 25, "lazytime"),
];

/// `flags` and `opts` as one option string.
fn mount_options(flags: c_int, opts: &str) -> Result<String, Failure> {
    let mut rest = flags as u32 as u64;
    let mut words = Vec::new();
    for (bit, word) in FLAG_WORDS {
        if rest & bit != 0 {
            words.push(*word);
            rest &= !bit;
        }
    }
    if rest != 0 {
        return Err(Failure::new(
            Errno::EINVAL,
            format!("mount flags {rest:#x} are not supported (only MS_RDONLY, MS_NOSUID, ...)"),
        ));
    }
    if !opts.is_empty() {
        words.push(opts);
    }
    Ok(words.join(","))
}

/// Where `lkl_mount_dev` mounts a disk: LKL's `/mnt/<devid in hex>`.
fn mount_point(id: c_int, part: c_uint) -> Result<String, Failure> {
    Ok(format!("/mnt/{:08x}", devid(id, part)?))
}

/// Mounts disk `disk_id` (partition `part`, 0 for the whole disk) as
/// `fs_type` at `/mnt/<devid>` with `flags` (`LKL_MS_*`) and `opts` (may
/// be NULL); writes the mount point to `mnt_str`. 0 or a negative errno
/// (`-ERANGE` if `mnt_str_len` is too small: nothing is mounted then).
///
/// # Safety
/// `fs_type` is a NUL-terminated string, `opts` NULL or one, `mnt_str`
/// writable for `mnt_str_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn lkl_mount_dev(
    disk_id: c_uint,
    part: c_uint,
    fs_type: *const c_char,
    flags: c_int,
    opts: *const c_char,
    mnt_str: *mut c_char,
    mnt_str_len: c_uint,
) -> c_long {
    c_long::from(entry("lkl_mount_dev", || {
        let id = c_int::try_from(disk_id).map_err(|_| Failure::new(Errno::EINVAL, "disk id"))?;
        // SAFETY: the caller passes NUL-terminated strings.
        let fstype = unsafe { c_str(fs_type, "fs_type") }?;
        let opts = if opts.is_null() {
            ""
        } else {
            // SAFETY: as above.
            unsafe { c_str(opts, "opts") }?
        };
        if mnt_str.is_null() {
            return Err(Failure::new(Errno::EINVAL, "mnt_str is NULL"));
        }
        let options = mount_options(flags, opts)?;
        let target = mount_point(id, part)?;
        if target.len() + 1 > mnt_str_len as usize {
            return Err(Failure::new(
                Errno::ERANGE,
                format!("mnt_str_len {mnt_str_len} is too small for {target}"),
            ));
        }
        with_disk(id, |d| {
            d.mount(partition(part), fstype, &target, &options)
                .map_err(failure)
        })?;
        // SAFETY: `mnt_str` has room for the path and its NUL (checked).
        unsafe {
            std::ptr::copy_nonoverlapping(target.as_ptr(), mnt_str.cast(), target.len());
            *mnt_str.add(target.len()) = 0;
        }
        Ok(0)
    }))
}

/// Unmounts what `lkl_mount_dev` mounted for disk `disk_id` (partition
/// `part`), retrying while busy for up to `timeout_ms`, and removes the
/// mount point. `flags` must be 0. 0 or a negative errno.
#[no_mangle]
pub extern "C" fn lkl_umount_dev(
    disk_id: c_uint,
    part: c_uint,
    flags: c_int,
    timeout_ms: c_long,
) -> c_long {
    c_long::from(entry("lkl_umount_dev", || {
        if flags != 0 {
            return Err(Failure::new(
                Errno::EINVAL,
                "umount flags are not supported: pass 0 (lkl_sys_umount2 takes them)",
            ));
        }
        let id = c_int::try_from(disk_id).map_err(|_| Failure::new(Errno::EINVAL, "disk id"))?;
        let target = mount_point(id, part)?;
        let deadline = Instant::now() + Duration::from_millis(timeout_ms.max(0) as u64);
        loop {
            match kdisk::unmount(&target) {
                Ok(()) => break,
                Err(DiskError::Syscall {
                    errno: Errno::EBUSY,
                    ..
                }) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => return Err(failure(e)),
            }
        }
        lkl::syscall::rmdir(&target).map_err(|e| Failure::new(e, format!("rmdir {target}")))?;
        Ok(0)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_become_words() {
        assert_eq!(mount_options(0, "").ok().as_deref(), Some(""));
        assert_eq!(
            mount_options(1, "errors=remount-ro").ok().as_deref(),
            Some("ro,errors=remount-ro")
        );
        assert_eq!(
            mount_options(1 | 1024, "").ok().as_deref(),
            Some("ro,noatime")
        );
        assert!(mount_options(1 << 14, "").is_err());
    }
}
