//! The config's disks: attached before boot, mounted after it, and at exit
//! unmounted and synced so what the program wrote is on the host images.

use lkl::config::Config;
use lkl::disk::{self, Disk, DiskError};
use lkl::syscall::nr;
use lkl::Kernel;
use std::ffi::c_int;

use crate::hijack::call::kcall;
use crate::hijack::fdtable;
use crate::hijack::fs::cwd;
use crate::hijack::fs::paths;

/// The config's place for `disks[i].key`, as config errors name it.
fn config_place(config: &Config, i: usize, key: &str) -> String {
    match &config.file {
        Some(f) => format!("{}: disks[{i}].{key}", f.display()),
        None => format!("disks[{i}].{key}"),
    }
}

/// Attached disks and the locks that keep other processes off them.
pub struct Attached {
    /// The disks, in config order.
    pub disks: Vec<Disk>,
    _locks: Vec<std::fs::File>,
}

/// Locks an image for this process: shared for a read-only disk,
/// exclusive otherwise, so a second kernel (another tree, or a child of a
/// single-process program that inherited LD_PRELOAD and the config)
/// cannot mount a writable image the first one has mounted, which would
/// corrupt it.
fn lock(path: &std::path::Path, shared: bool) -> Result<std::fs::File, String> {
    use std::os::unix::io::AsRawFd;
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let op = if shared { libc::LOCK_SH } else { libc::LOCK_EX };
    // A tree that just ended may still be unmounting it (its kernel
    // server halts after the tree's last process): wait a little.
    for _ in 0..200 {
        // SAFETY: the host's flock on a descriptor we own.
        if unsafe {
            crate::hijack::host::host_syscall!(libc::SYS_flock, f.as_raw_fd(), op | libc::LOCK_NB)
        } == 0
        {
            return Ok(f);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    Err(format!(
        "{} is in use by another process (it holds a lock on it)",
        path.display()
    ))
}

/// Attaches every disk (before boot: they go on the command line).
pub fn attach(config: &Config) -> Result<Attached, String> {
    let mut disks = Vec::new();
    let mut locks = Vec::new();
    for (i, d) in config.disks.iter().enumerate() {
        let at = || config_place(config, i, "image");
        locks.push(lock(&d.image, d.readonly).map_err(|e| format!("{}: {e}", at()))?);
        disks.push(Disk::attach(&d.image, d.readonly).map_err(|e| format!("{}: {e}", at()))?);
    }
    Ok(Attached {
        disks,
        _locks: locks,
    })
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
            format!("{}: {e}", config_place(config, i, key))
        })?;
        points.push(target.clone());
    }
    paths::set_mounts(points);
    Ok(())
}

/// In a process of a tree: the tree's kernel (the server) mounted the
/// disks; paths under their mount points go to it.
pub fn route_mounts(config: &Config) {
    let points = config
        .disks
        .iter()
        .filter(|d| d.fstype.is_some())
        .filter_map(|d| d.mount.clone())
        .collect();
    paths::set_mounts(points);
}

/// At exit: flushes the program's streams (kernel `FILE`s write through
/// the kernel), closes every kernel descriptor still open (so nothing
/// keeps a disk busy), unmounts, syncs, halts and syncs the images.
pub fn finish(kernel: Kernel) {
    // SAFETY: fflush(NULL) flushes every stream; we are in the exit path
    // after the program's atexit handlers, before stdio's own cleanup.
    unsafe { libc::fflush(std::ptr::null_mut()) };
    if paths::routing() {
        cwd::leave_kernel_cwd();
    }
    // Close what the program left open, as the host does at exit: sockets
    // send their FIN, files drop their references.
    for fd in 0..fdtable::MAX_FDS as c_int {
        if let Some(k) = fdtable::retire(fd) {
            let _ = kcall(nr::CLOSE, [k.into(), 0, 0, 0, 0, 0]);
        }
    }
    // Every other kernel file too: the library's own, and one a thread
    // opened in a call that was in flight when the exit began (that
    // thread stops as the call returns, holding the new descriptor).
    close_all_kernel_fds();
    // The host kernel would go on sending after the process is gone; ours
    // goes with it, so let it finish first.
    linger();
    if paths::routing() {
        for target in paths::mount_points() {
            // A call still inside the kernel (waiting for the disk) holds
            // its file until it returns: retry for a while.
            for attempt in 0..100 {
                match disk::unmount(&target) {
                    Ok(()) => break,
                    Err(_) if attempt < 99 => {
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        close_all_kernel_fds();
                    }
                    // disk::halt tries again (and then detaches it).
                    Err(_) => break,
                }
            }
        }
    }
    if let Err(e) = disk::halt(kernel) {
        eprintln!("lkl-hijack: at exit: {e}");
    }
}

/// Waits until the kernel's TCP sockets have sent what the program queued
/// and their FINs are acknowledged: while data keeps moving, for up to
/// 10 s; a peer that takes nothing for 1 s (gone, unreachable) is given
/// up on, as the program would not wait for it either.
fn linger() {
    use std::time::{Duration, Instant};
    let start = Instant::now();
    let mut last = lkl::netstat::unsent();
    let mut moved = Instant::now();
    // A FIN is acknowledged in well under a millisecond on a local link:
    // look again soon, then every 2 ms.
    let mut nap = Duration::from_micros(50);
    while !last.is_empty() && start.elapsed() < Duration::from_secs(10) {
        if moved.elapsed() > Duration::from_secs(1) {
            break;
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(2));
        let now = lkl::netstat::unsent();
        if now != last {
            moved = Instant::now();
        }
        last = now;
    }
}

/// Closes every descriptor of the kernel's process.
fn close_all_kernel_fds() {
    let _ = kcall(nr::CLOSE_RANGE, [0, i64::from(u32::MAX), 0, 0, 0, 0]);
}
