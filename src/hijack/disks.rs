//! The config's disks: attached before boot, mounted after it, and at exit
//! unmounted and synced so what the program wrote is on the host images.

use lkl::config::Config;
use lkl::disk::{self, Disk, DiskError};
use lkl::syscall::nr;
use lkl::Kernel;

use crate::fdtable;
use crate::files::kcall;
use crate::paths;

/// The config's place for `disks[i].key`, as config errors name it.
fn place(config: &Config, i: usize, key: &str) -> String {
    match &config.file {
        Some(f) => format!("{}: disks[{i}].{key}", f.display()),
        None => format!("disks[{i}].{key}"),
    }
}

/// Attaches every disk (before boot: they go on the command line).
pub fn attach(config: &Config) -> Result<Vec<Disk>, String> {
    config
        .disks
        .iter()
        .enumerate()
        .map(|(i, d)| {
            Disk::attach(&d.image, d.readonly)
                .map_err(|e| format!("{}: {e}", place(config, i, "image")))
        })
        .collect()
}

/// Mounts every disk that has a mount point and turns path routing on.
pub fn mount(config: &Config, disks: &[Disk]) -> Result<(), String> {
    let mut points = Vec::new();
    for (i, (d, disk)) in config.disks.iter().zip(disks).enumerate() {
        let (Some(target), Some(fstype)) = (&d.mount, &d.fstype) else {
            continue;
        };
        let partition = (d.partition != 0).then_some(d.partition);
        disk.mount(partition, fstype, target, "").map_err(|e| {
            let key = match e {
                DiskError::UnknownFsType(_) | DiskError::WrongFsType { .. } => "fstype",
                DiskError::NoPartition { .. } => "partition",
                DiskError::Image { .. } | DiskError::NotFound { .. } => "image",
                _ => "mount",
            };
            format!("{}: {e}", place(config, i, key))
        })?;
        points.push(target.clone());
    }
    paths::set_mounts(points);
    Ok(())
}

/// At exit: flushes the program's streams (kernel `FILE`s write through
/// the kernel), closes every kernel descriptor still open (so nothing
/// keeps a disk busy), unmounts, syncs, halts and syncs the images.
pub fn finish(kernel: Kernel) {
    // SAFETY: fflush(NULL) flushes every stream; we are in the exit path
    // after the program's atexit handlers, before stdio's own cleanup.
    unsafe { libc::fflush(std::ptr::null_mut()) };
    if paths::routing() {
        crate::files::leave_kernel_cwd();
        for fd in 0..(1 << 16) {
            if let Some(k) = fdtable::remove(fd) {
                let _ = kcall(nr::CLOSE, [k.into(), 0, 0, 0, 0, 0]);
            }
        }
    }
    if let Err(e) = disk::halt(kernel) {
        eprintln!("lkl-hijack: at exit: {e}");
    }
}
