//! Disks: an image file attached to the kernel as a virtio-blk device,
//! found as a block device, mounted and unmounted.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use lkl::disk::{self, Disk};
//! let disk = Disk::attach("fs.img", false)?; // before or after boot
//! let kernel = lkl::Kernel::boot(Default::default())?;
//! disk.mount(None, "ext4", "/mnt", "")?; // or Some(1) for partition 1
//! // ... file calls under /mnt ...
//! disk::halt(kernel)?; // unmounts, syncs, halts, fdatasyncs the images
//! # Ok(()) }
//! ```
//!
//! How a disk is found: each disk gets a serial (`lkl-disk<N>`), which the
//! device answers to `GET_ID` and the kernel shows in
//! `/sys/block/vdX/serial`; the disk's (or partition's) `dev` file there
//! gives the major:minor for a node made with `mknod` under `/dev` of the
//! kernel's rootfs (sysfs is mounted at `/sys` if it is not there).
//! Partitions are the kernel's own MBR and GPT parsing.
//!
//! Durability: writes the kernel flushed are `fdatasync`ed by the device.
//! [`unmount`], [`Disk::detach`] and [`halt`] also sync the file systems
//! and `fdatasync` the images, so everything written is on the host disk
//! when they return.

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::devices::{self, AttachedDevice, DeviceError};
use crate::syscall::{self, abi, Errno};
use crate::virtio::blk::{Blk, BlkError};
use crate::Kernel;

/// Why a disk operation failed. Every message is one line naming what is
/// wrong.
#[derive(Debug)]
pub enum DiskError {
    /// The image could not be opened or used.
    Image {
        /// The image path.
        path: PathBuf,
        /// Why.
        error: BlkError,
    },
    /// The device could not be attached.
    Attach(DeviceError),
    /// The operation needs a running kernel.
    NotRunning,
    /// The kernel did not show the disk as a block device in time.
    NotFound {
        /// The disk's serial.
        serial: String,
    },
    /// The disk has no such partition.
    NoPartition {
        /// The image path.
        image: PathBuf,
        /// The partition asked for.
        partition: u32,
        /// The partitions there are.
        available: Vec<u32>,
    },
    /// The kernel has no such file-system type.
    UnknownFsType(String),
    /// The file system is there, but refused these mount options.
    BadMountOptions {
        /// The type asked for.
        fstype: String,
        /// What was mounted (image, partition).
        what: String,
        /// The options it refused.
        options: String,
    },
    /// The device does not hold a file system of that type (or it is
    /// corrupt): the kernel refused to mount it.
    WrongFsType {
        /// The type asked for.
        fstype: String,
        /// What was mounted (image, partition).
        what: String,
        /// The kernel's error.
        errno: Errno,
    },
    /// A system call into the kernel failed.
    Syscall {
        /// The call.
        call: &'static str,
        /// Its argument.
        what: String,
        /// The kernel's error.
        errno: Errno,
    },
    /// Syncing the image on the host failed.
    HostSync {
        /// The image path.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
}

impl fmt::Display for DiskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiskError::Image { error, .. } => write!(f, "{error}"),
            DiskError::Attach(e) => write!(f, "cannot attach the disk: {e}"),
            DiskError::NotRunning => f.write_str("the kernel is not running"),
            DiskError::NotFound { serial } => {
                write!(f, "the kernel did not show disk {serial} as a block device")
            }
            DiskError::NoPartition {
                image,
                partition,
                available,
            } => {
                write!(f, "{} has no partition {partition}", image.display())?;
                if available.is_empty() {
                    f.write_str(" (no partition table found)")
                } else {
                    let list: Vec<String> = available.iter().map(u32::to_string).collect();
                    write!(f, " (partitions: {})", list.join(", "))
                }
            }
            DiskError::UnknownFsType(t) => write!(f, "unknown file-system type {t}"),
            DiskError::BadMountOptions {
                fstype,
                what,
                options,
            } => write!(
                f,
                "the {fstype} file system in {what} refused the mount options '{options}'"
            ),
            DiskError::WrongFsType { fstype, what, .. } => {
                write!(f, "{what} is not a {fstype} file system (or it is corrupt)")
            }
            DiskError::Syscall { call, what, errno } => write!(f, "{call} {what}: {errno}"),
            DiskError::HostSync { path, error } => {
                write!(f, "cannot sync image {}: {error}", path.display())
            }
        }
    }
}

impl std::error::Error for DiskError {}

fn failed(call: &'static str, what: impl Into<String>) -> impl FnOnce(Errno) -> DiskError {
    let what = what.into();
    move |errno| DiskError::Syscall { call, what, errno }
}

/// An image file attached to the kernel as a virtio-blk disk.
#[derive(Debug)]
pub struct Disk {
    path: PathBuf,
    serial: String,
    read_only: bool,
    file: Arc<File>,
}

/// What the module keeps for the life of the process: the attached devices
/// (the kernel may touch their registers until it halts), the images to
/// sync, and the mounts made through [`Disk::mount`].
struct Registry {
    devices: Vec<AttachedDevice>,
    images: Vec<(PathBuf, Arc<File>)>,
    /// (serial, mount point), in mount order.
    mounts: Vec<(String, String)>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    devices: Vec::new(),
    images: Vec::new(),
    mounts: Vec::new(),
});

fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// How long the kernel gets to show a new disk in sysfs.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

impl Disk {
    /// Attaches the image at `path`, read-only or read-write. Before boot
    /// the disk is on the kernel's command line; after boot it is
    /// hot-added.
    pub fn attach(path: impl AsRef<Path>, read_only: bool) -> Result<Disk, DiskError> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = path.as_ref().to_path_buf();
        let serial = format!("lkl-disk{}", NEXT.fetch_add(1, Ordering::SeqCst));
        let blk = Blk::open(&path, read_only, &serial).map_err(|error| DiskError::Image {
            path: path.clone(),
            error,
        })?;
        let file = blk.file();
        let device = devices::attach(Box::new(blk)).map_err(DiskError::Attach)?;
        let mut reg = registry();
        reg.devices.push(device);
        reg.images.push((path.clone(), file.clone()));
        Ok(Disk {
            path,
            serial,
            read_only,
            file,
        })
    }

    /// The image path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The serial the kernel shows in `/sys/block/vdX/serial`.
    pub fn serial(&self) -> &str {
        &self.serial
    }

    /// True for a read-only disk.
    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// The kernel's name for the disk (`vda`, ...), waiting for the kernel
    /// to probe it.
    pub fn kernel_name(&self) -> Result<String, DiskError> {
        if !Kernel::is_running() {
            return Err(DiskError::NotRunning);
        }
        ensure_sysfs()?;
        let deadline = Instant::now() + PROBE_TIMEOUT;
        loop {
            for name in syscall::read_dir("/sys/block").map_err(failed("list", "/sys/block"))? {
                if name.starts_with('.') {
                    continue;
                }
                let serial = read_kernel_file(&format!("/sys/block/{name}/serial"));
                if serial.as_deref().map(str::trim) == Ok(self.serial.as_str()) {
                    return Ok(name);
                }
            }
            if Instant::now() > deadline {
                return Err(DiskError::NotFound {
                    serial: self.serial.clone(),
                });
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// The partition numbers the kernel found on the disk.
    pub fn partitions(&self) -> Result<Vec<u32>, DiskError> {
        let name = self.kernel_name()?;
        let dir = format!("/sys/block/{name}");
        let mut parts: Vec<u32> = syscall::read_dir(&dir)
            .map_err(failed("list", dir.clone()))?
            .into_iter()
            .filter(|e| e.starts_with(&name))
            .filter_map(|e| read_kernel_file(&format!("{dir}/{e}/partition")).ok())
            .filter_map(|s| s.trim().parse().ok())
            .collect();
        parts.sort_unstable();
        Ok(parts)
    }

    /// Makes the block-device node of the whole disk (`None`) or of one
    /// partition under `/dev` in the kernel and returns its path
    /// (`/dev/vda`, `/dev/vda1`).
    pub fn block_device(&self, partition: Option<u32>) -> Result<String, DiskError> {
        let name = self.kernel_name()?;
        let dev_name = match partition {
            None => name.clone(),
            Some(n) => {
                let parts = self.partitions()?;
                if !parts.contains(&n) {
                    return Err(DiskError::NoPartition {
                        image: self.path.clone(),
                        partition: n,
                        available: parts,
                    });
                }
                format!("{name}{n}")
            }
        };
        let sysdir = match partition {
            None => format!("/sys/block/{name}"),
            Some(_) => format!("/sys/block/{name}/{dev_name}"),
        };
        let dev = read_kernel_file(&format!("{sysdir}/dev"))
            .map_err(failed("read", format!("{sysdir}/dev")))?;
        let (major, minor) = dev
            .trim()
            .split_once(':')
            .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)))
            .ok_or(DiskError::Syscall {
                call: "parse",
                what: format!("{sysdir}/dev"),
                errno: Errno::EINVAL,
            })?;
        mkdir_p("/dev")?;
        let node = format!("/dev/{dev_name}");
        match syscall::mknod(&node, abi::S_IFBLK | 0o600, encode_dev(major, minor)) {
            Ok(()) => {}
            Err(Errno::EEXIST) => {
                // Made earlier (or left by a removed disk): make it anew so
                // it has this disk's numbers.
                let _ = syscall::unlink(&node);
                syscall::mknod(&node, abi::S_IFBLK | 0o600, encode_dev(major, minor))
                    .map_err(failed("mknod", node.clone()))?;
            }
            Err(e) => return Err(failed("mknod", node)(e)),
        }
        Ok(node)
    }

    /// Mounts the disk (`partition` None) or one partition as `fstype` at
    /// `target` (made with `mkdir -p`), with `options` as for `mount -o`
    /// (`ro`, `noatime`, ... become flags, the rest goes to the file
    /// system). A read-only disk is always mounted read-only.
    pub fn mount(
        &self,
        partition: Option<u32>,
        fstype: &str,
        target: &str,
        options: &str,
    ) -> Result<(), DiskError> {
        let node = self.block_device(partition)?;
        mkdir_p(target)?;
        let (mut flags, data) = parse_options(options);
        if self.read_only {
            flags |= MS_RDONLY;
        }
        let data = (!data.is_empty()).then_some(data.as_str());
        let what = match partition {
            None => self.path.display().to_string(),
            Some(n) => format!("partition {n} of {}", self.path.display()),
        };
        syscall::mount(&node, target, fstype, flags, data).map_err(|errno| match errno {
            Errno::ENODEV => DiskError::UnknownFsType(fstype.to_owned()),
            // EINVAL also means options the file system does not know: if
            // it mounts without them (read-only, to change nothing), say so.
            Errno::EINVAL
                if data.is_some()
                    && syscall::mount(&node, target, fstype, flags | MS_RDONLY, None).is_ok() =>
            {
                let _ = syscall::umount(target, 0);
                DiskError::BadMountOptions {
                    fstype: fstype.to_owned(),
                    what: what.clone(),
                    options: options.to_owned(),
                }
            }
            // EINVAL: no such superblock; EUCLEAN (117): corrupt; EIO: a
            // read failed (e.g. past the end of a truncated image).
            Errno::EINVAL | Errno(117) | Errno::EIO => DiskError::WrongFsType {
                fstype: fstype.to_owned(),
                what,
                errno,
            },
            e => failed("mount", format!("{node} at {target}"))(e),
        })?;
        registry()
            .mounts
            .push((self.serial.clone(), target.to_owned()));
        Ok(())
    }

    /// Writes what the kernel buffered for this disk's file systems and
    /// `fdatasync`s the image.
    pub fn flush(&self) -> Result<(), DiskError> {
        if Kernel::is_running() {
            syscall::sync().map_err(failed("sync", ""))?;
        }
        self.file.sync_data().map_err(|error| DiskError::HostSync {
            path: self.path.clone(),
            error,
        })
    }

    /// Unmounts what [`mount`](Self::mount) mounted from this disk (last
    /// first) and flushes it. The device itself stays known to the kernel
    /// until it halts (the kernel has no way to unplug it).
    pub fn detach(self) -> Result<(), DiskError> {
        let mine: Vec<String> = registry()
            .mounts
            .iter()
            .filter(|(s, _)| *s == self.serial)
            .map(|(_, t)| t.clone())
            .collect();
        for target in mine.iter().rev() {
            unmount(target)?;
        }
        self.flush()
    }
}

/// Unmounts `target` (syncing its file system first, as `umount` does) and
/// `fdatasync`s every image.
pub fn unmount(target: &str) -> Result<(), DiskError> {
    syscall::umount(target, 0).map_err(failed("umount", target))?;
    registry().mounts.retain(|(_, t)| t != target);
    sync_images()
}

/// `fdatasync`s every attached image on the host.
pub fn sync_images() -> Result<(), DiskError> {
    let images: Vec<_> = registry().images.clone();
    for (path, file) in images {
        file.sync_data()
            .map_err(|error| DiskError::HostSync { path, error })?;
    }
    Ok(())
}

/// Unmounts every file system mounted through this module (last first;
/// one still busy is detached lazily), syncs, halts the kernel and
/// `fdatasync`s the images: what the tools do at exit.
pub fn halt(kernel: Kernel) -> Result<(), DiskError> {
    let mounts: Vec<String> = registry().mounts.iter().map(|(_, t)| t.clone()).collect();
    let mut first_err = None;
    for target in mounts.iter().rev() {
        if let Err(e) = syscall::umount(target, 0) {
            let _ = syscall::umount(target, MNT_DETACH);
            first_err.get_or_insert(failed("umount", target.clone())(e));
        }
    }
    registry().mounts.clear();
    let _ = syscall::sync();
    let halted = kernel.halt();
    let synced = sync_images();
    if let Some(e) = first_err {
        return Err(e);
    }
    halted.map_err(failed("halt", "kernel"))?;
    synced
}

/// `MS_RDONLY`.
pub const MS_RDONLY: u64 = 1;
/// `MNT_DETACH` for `umount2`.
const MNT_DETACH: i32 = 2;

/// Splits `mount -o` options into mount flags and file-system data.
pub fn parse_options(options: &str) -> (u64, String) {
    let mut flags = 0u64;
    let mut data = Vec::new();
    for opt in options.split(',').filter(|o| !o.is_empty()) {
        let f: u64 = match opt {
            "ro" => MS_RDONLY,
            "rw" => {
                flags &= !MS_RDONLY;
                continue;
            }
            "nosuid" => 2,
            "nodev" => 4,
            "noexec" => 8,
            "sync" => 16,
            "dirsync" => 128,
            "noatime" => 1024,
            "nodiratime" => 2048,
            "relatime" => 1 << 21,
            "strictatime" => 1 << 24,
            "lazytime" => 1 << 25,
            "defaults" | "async" | "atime" | "suid" | "dev" | "exec" => continue,
            other => {
                data.push(other);
                continue;
            }
        };
        flags |= f;
    }
    (flags, data.join(","))
}

/// The kernel's `new_encode_dev`: the `dev` argument of `mknod`.
fn encode_dev(major: u32, minor: u32) -> u64 {
    u64::from((minor & 0xff) | (major << 8) | ((minor & !0xff) << 12))
}

/// Reads a small kernel file as text.
fn read_kernel_file(path: &str) -> Result<String, Errno> {
    let fd = syscall::open(path, abi::O_RDONLY | abi::O_CLOEXEC, 0)?;
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    let r = loop {
        match syscall::read(fd, &mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => break Err(e),
        }
        if out.len() > 65536 {
            break Ok(());
        }
    };
    let _ = syscall::close(fd);
    r.map(|()| String::from_utf8_lossy(&out).into_owned())
}

/// Mounts sysfs at `/sys` unless it is there.
fn ensure_sysfs() -> Result<(), DiskError> {
    if syscall::stat("/sys/block").is_ok() {
        return Ok(());
    }
    mkdir_p("/sys")?;
    syscall::mount("sysfs", "/sys", "sysfs", 0, None).map_err(failed("mount", "sysfs at /sys"))
}

/// `mkdir -p` in the kernel.
pub fn mkdir_p(path: &str) -> Result<(), DiskError> {
    let mut cur = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        cur.push('/');
        cur.push_str(part);
        match syscall::mkdir(&cur, 0o755) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(failed("mkdir", cur)(e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_split_into_flags_and_data() {
        assert_eq!(parse_options(""), (0, String::new()));
        assert_eq!(
            parse_options("ro,noatime,data=ordered,errors=remount-ro"),
            (
                MS_RDONLY | 1024,
                "data=ordered,errors=remount-ro".to_owned()
            )
        );
        assert_eq!(parse_options("ro,rw,defaults"), (0, String::new()));
    }

    #[test]
    fn dev_encoding_matches_the_kernel() {
        assert_eq!(encode_dev(254, 0), 254 << 8);
        assert_eq!(encode_dev(254, 3), (254 << 8) | 3);
        assert_eq!(encode_dev(259, 0x1234), 0x34 | (259 << 8) | (0x1200 << 12));
    }
}
